"""What every dataset reader produces: head instances, and a report of what loading did.

Bad input follows ``data.on_bad_input``: "strict" raises at the first problem with the file,
row and reason; "skip" drops the row, counts it by reason and keeps the first examples, and
the report is printed when loading ends. Nothing is dropped silently either way.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POLICIES = ("strict", "skip")
MAX_EXAMPLES = 5


class BadInput(ValueError):
    """A malformed annotation row, an impossible box, a missing or unreadable image."""


@dataclass
class HeadInstance:
    """One person in one image, with every annotator's gaze point (-1 = none / padding)."""

    index: int  # the sample id: position in the reader's instance order
    path: str  # image path relative to the dataset root
    head_box: np.ndarray  # pixels, xyxy, as annotated (before quirk fixes)
    gaze_points: np.ndarray  # [A, 2], normalised to [0, 1]
    inout: int  # 1 in frame, 0 out of frame
    eye: tuple[float, float] = (-1.0, -1.0)
    rows: list = field(default_factory=list)  # where it came from: line numbers or "file:line"
    box_basis: tuple[float, float] | None = None  # head box in pixels of this (W, H) basis
    pixel_points: bool = False  # gaze points in pixels of the image (VAT), not normalised


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

    def bad(self, where: str, reason: str, detail: str) -> None:
        """Raise (strict) or count and remember (skip) one bad input."""
        message = f"{where}: {reason}: {detail}"
        if self.policy == "strict":
            raise BadInput(message + " (set data.on_bad_input=skip to skip and count such rows)")
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)

    def summary(self) -> str:
        parts = [f"{self.source}: {self.rows} rows -> {self.instances} head instances"]
        parts += [f"fixed {n} x {reason}" for reason, n in sorted(self.fixed.items())]
        parts += [f"SKIPPED {n} x {reason}" for reason, n in sorted(self.skipped.items())]
        text = "; ".join(parts)
        if self.examples:
            text += "\n  first skipped: " + "\n  first skipped: ".join(self.examples)
        return text


def _file_problem(file: Path) -> str | None:
    if not file.is_file():
        return "missing image"
    if file.stat().st_size == 0:
        return "empty (0-byte) image"
    return None


def check_image_files(instances: list[HeadInstance], root: Path,
                      report: LoadReport) -> list[HeadInstance]:
    """Missing and zero-byte images are found at load time (one stat per image), not
    mid-training; an image that exists but does not decode raises, naming it, when read."""
    kept, seen = [], {}
    for inst in instances:
        if inst.path not in seen:
            seen[inst.path] = _file_problem(root / inst.path)
        if seen[inst.path] is None:
            kept.append(inst)
        else:
            report.bad(f"{report.source}, rows {inst.rows}", seen[inst.path],
                       str(root / inst.path))
    report.instances = len(kept)
    return kept
