"""Stopping a training run on request: SIGINT (Ctrl-C) or SIGTERM (what SLURM and Kubernetes
send before they kill a job) finishes the current optimizer step, saves a checkpoint, writes
the logs and ends the run with a message saying how to resume. A second SIGINT aborts at once
(the checkpoints on disk stay consistent: saves are atomic). With several processes, all of
them stop after the same step."""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving; the same command resumes it."""

    def __init__(self, signal_name: str, step: int, run_dir):
        super().__init__(f"stopped by {signal_name} at step {step}, checkpoint saved in "
                         f"{run_dir}; run the same command again to resume")
        self.signal_name, self.exit_code = signal_name, 128 + signal.Signals[signal_name].value


def prepare_worker(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers leave SIGINT / SIGTERM to the main process,
    which stops the run cleanly (a worker dying on Ctrl-C would break the loader instead).
    Each worker also computes on one thread (torch, and OpenMP for what starts in it later):
    N workers on N cores then scale, where each one's thread pool would otherwise fight the
    others' for the same cores. OpenCV's pool is left alone: resizing it in a forked worker
    deadlocks, and the readers decode and resize with PIL, which uses one thread."""
    import os

    import torch

    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


class StopRequest:
    """Context manager: while active, the first SIGINT / SIGTERM is recorded, not raised."""

    def __init__(self, log=print):
        self.log, self.received, self._previous = log, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False

    def _handle(self, number, _frame) -> None:
        if self.received is not None and number == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now
        self.received = signal.Signals(number).name
        self.log(f"\n{self.received} received: finishing the current step, then saving "
                 "(Ctrl-C again aborts at once)")

    def requested(self, accelerator, anywhere: bool) -> bool:
        """Did any process receive a signal? With several processes all must answer alike, so
        they stop after the same step: ``anywhere`` is the answer the NaN guard's collective
        carried (``step.all_finite``, taken the same step on every process)."""
        asked = self.received is not None
        if accelerator.num_processes > 1:
            asked = anywhere
            if asked and self.received is None:
                self.received = "SIGTERM"  # another process's signal: the same stop
        return asked
