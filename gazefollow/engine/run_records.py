"""What a run leaves beside its checkpoints: the resolved config, the code's commit, a per-step
log (``train_log.jsonl``) and the measured speed (``train_stats.json``)."""
from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import torch

from gazefollow.engine.reporting import strict_json


def git_commit() -> str:
    """The code's commit, recorded in the run directory and every checkpoint."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_memory_mib(device: torch.device | None = None, children: bool = False) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size otherwise,
    with ``children`` the largest of its finished child processes too (Linux reports
    ru_maxrss in KiB)."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        own = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return own / 1024


class StepLog:
    """One JSON line per optimizer step, written by the main process. A resumed run first
    drops the lines after its checkpoint's step (the interrupted session logged steps the
    resumed one repeats) and a last line torn by the kill (counted in the log)."""

    def __init__(self, path: Path, resumed_step: int, enabled: bool, log=print):
        self.path, self.enabled = Path(path), enabled
        if not enabled:
            return
        kept, torn = [], 0
        lines = self.path.read_text(errors="replace").splitlines() if self.path.is_file() else []
        for line in lines:
            try:
                if json.loads(line)["step"] <= resumed_step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                torn += 1
        if torn:
            log(f"{self.path}: dropped {torn} unreadable line(s) left by an interrupted write")
        tmp = self.path.with_name(self.path.name + ".tmp")  # rewritten whole or not at all
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, step: int, values: dict | None) -> None:
        if self.enabled and values is not None:
            with self.path.open("a") as handle:
                handle.write(json.dumps(strict_json({"step": step, **values}),
                                        allow_nan=False) + "\n")


def run_logs(run_dir: Path, resumed_step: int, enabled: bool, log=print) -> tuple:
    """(the step log ``train_log.jsonl``, the validation log ``val_log.jsonl``) of a run."""
    return (StepLog(run_dir / "train_log.jsonl", resumed_step, enabled, log),
            StepLog(run_dir / "val_log.jsonl", resumed_step, enabled, log))


def read_step_log(run_dir: Path, name: str = "train_log.jsonl") -> list[dict]:
    """The lines of a run's step log (``val_log.jsonl``: the validation metrics)."""
    path = Path(run_dir) / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_train_stats(run_dir: Path, stats: dict) -> None:
    """This session's measured speed and memory (the README's numbers come from here), and
    what it skipped."""
    (Path(run_dir) / "train_stats.json").write_text(json.dumps(strict_json(stats), indent=2,
                                                               allow_nan=False))
