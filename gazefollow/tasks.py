"""The tasks one training loop serves (``run.task``): what each builds, trains and scores.

``train.py``, ``training_parts.validate`` and ``evaluate.evaluate_checkpoint`` ask the run's
task for its datasets, model, losses, validation metrics and end-of-run evaluation; the rest
of the machinery (config, Accelerate, resume, EMA, per-part learning rates, the NaN guard,
checkpoints, the bad-input policy, metrics.json, wandb) is the same for every task.

To add a task, write a ``Task`` and add it to ``TASKS`` (its module is imported on first use).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Task:
    name: str
    # config -> the run folder's model id, e.g. "diffusion-x0" (output_dir/<dataset>-<id>/<tag>)
    run_label: Callable
    # (config, splits, log) -> {split: dataset}; items are (position, epoch) or positions,
    # samples dicts (BAD_KEY for a sample skipped in skip mode), batched by collate_samples
    build_datasets: Callable
    build_model: Callable  # config -> a module with trainable_parts() and resnet_prefixes()
    training_losses: Callable  # (model, batch, loss_cfg) -> {"loss": scalar, ...}
    # (net, dataset, config, accelerator) -> ({metric: value}, what was sampled, samples to
    # draw (may be [])): every process scores its share of the validation split
    validation_metrics: Callable
    # (config, model, out_dir, device, weights, log, run_id, shard, differs) -> metrics.json
    evaluate_run: Callable
    eval_label: Callable  # (config, model) -> the evaluation folder's middle name part


# run.task -> "module:attribute" of its Task
TASKS = {"following": "gazefollow.following:FOLLOWING",
         "estimation": "gazefollow.estimation.task:ESTIMATION",
         "simclr": "gazefollow.estimation.simclr:SIMCLR",
         "lam": "gazefollow.social.task:LAM"}


def task_of(config) -> Task:
    module, attribute = TASKS[config.run.task].split(":")
    return getattr(importlib.import_module(module), attribute)
