"""What every task's datasets share: the bad-input policy (``data.on_bad_input``), the report
of what loading fixed and skipped, and the batching that carries skipped samples' messages.

Bad input follows ``data.on_bad_input``: "strict" raises at the first problem with the file,
row and reason; "skip" drops the row, counts it by reason and keeps the first examples, and
the report is printed when loading ends. Nothing is dropped silently either way.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from torch.utils.data import default_collate

POLICIES = ("strict", "skip")


MAX_EXAMPLES = 5


class BadInput(ValueError):
    """A malformed annotation row, an impossible box, a missing or unreadable image."""


@dataclass
class LoadReport:
    """Counts of what loading fixed or dropped, by reason, with a few examples of each."""

    source: str
    policy: str = "strict"
    rows: int = 0
    instances: int = 0
    fixed: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    unit: str = "head instances"  # what a kept row is called (gaze estimation: "faces")

    def bad(self, where: str, reason: str, detail: str) -> None:
        """Raise (strict) or count and remember (skip) one bad input."""
        message = f"{where}: {reason}: {detail}"
        if self.policy == "strict":
            raise BadInput(message + " (set data.on_bad_input=skip to skip and count such rows)")
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)

    def as_dict(self) -> dict:
        """For metrics.json: what loading fixed and skipped, per reason, with examples."""
        return {"source": self.source, "rows": self.rows, "instances": self.instances,
                "fixed": dict(self.fixed), "skipped": dict(self.skipped),
                "skipped_examples": list(self.examples)}

    def summary(self) -> str:
        parts = [f"{self.source}: {self.rows} rows -> {self.instances} {self.unit}"]
        parts += [f"fixed {n} x {reason}" for reason, n in sorted(self.fixed.items())]
        parts += [f"SKIPPED {n} x {reason}" for reason, n in sorted(self.skipped.items())]
        text = "; ".join(parts)
        if self.examples:
            text += "\n  first skipped: " + "\n  first skipped: ".join(self.examples)
        return text


BAD_KEY = "bad_input"  # a sample that failed to load in skip mode: {BAD_KEY: message}


def collate_samples(samples: list[dict]) -> dict:
    """Batch the samples that loaded; ``batch["bad_input"]`` lists the messages of those that
    did not (skip mode), so the loop can count and report them whichever worker met them."""
    bad = [s[BAD_KEY] for s in samples if BAD_KEY in s]
    good = [s for s in samples if BAD_KEY not in s]
    if not good:
        raise BadInput("every sample of a batch failed to load: " + " | ".join(bad))
    batch = default_collate(good)
    batch[BAD_KEY] = bad
    return batch
