"""A whole run: train (under the run directory's lock), then evaluate the final checkpoint,
with the run's wall time and peak memory."""
from __future__ import annotations

import json
import time

from gazefollow.config import Config
from gazefollow.engine.evaluation import evaluate_checkpoint
from gazefollow.engine.loop import run_dir_for, train
from gazefollow.engine.run_lock import run_lock
from gazefollow.engine.run_records import peak_memory_mib
from gazefollow.engine.runtime import eval_processes
from gazefollow.engine.stopping import TrainingInterrupted


def train_and_evaluate(config: Config, registry) -> dict:
    """Train the config's task, then evaluate it (-> metrics.json's content; {} when the run
    halted early, since its evaluation waits for its end)."""
    start = time.perf_counter()
    task = registry.task_of(config)
    main_process = eval_processes(config).is_main_process
    # one run per run directory: the lock is held from before anything is written there
    # until the evaluation's results are
    with run_lock(run_dir_for(config, task), enabled=main_process):
        outcome = train(config, task)
        if outcome.interrupted_by:
            raise TrainingInterrupted(outcome.interrupted_by, outcome.step, outcome.run_dir)
        if not outcome.finished:
            return {}  # halted early (run.halt_at_step): evaluation waits for the run's end
        run_dir = outcome.run_dir
        # every process evaluates its share of the split; the main one writes the results
        results = evaluate_checkpoint(run_dir, out_dir=run_dir, registry=registry)
    if not main_process:
        return results
    wall, peak = time.perf_counter() - start, peak_memory_mib(children=True)
    print(f"run finished in {wall / 60:.1f} min, peak memory {peak:.0f} MiB -> {run_dir}")
    (run_dir / "run_stats.json").write_text(json.dumps(
        {"wall_seconds": round(wall, 1), "peak_rss_mib": round(peak)}, indent=2))
    return results
