"""The task registry: the one module that names the tasks. A task is its folder plus one line
in ``TASKS``; the engine, the config code and ``main.py`` learn about tasks only here.

It also binds the engine to the registry, which is what ``main.py``, the scripts and the
tests call: ``build_config`` (YAML layers in this project's layout or the original research
code's, and each task's own checks), ``train``, ``train_and_evaluate``, ``load_for_eval``
and ``evaluate_checkpoint`` (our checkpoints and the original's ``.pth`` files).
"""
from __future__ import annotations

from pathlib import Path

from gazefollow.engine import evaluation, loop, runs
from gazefollow.engine.task import Registry, Task
from gazefollow.estimation.simclr import SIMCLR
from gazefollow.estimation.task import ESTIMATION
from gazefollow.following.published import load_published_for_eval
from gazefollow.following.task import FOLLOWING
from gazefollow.original.checkpoints import ORIGINAL_SUFFIX, load_original_for_eval
from gazefollow.original.legacy import flag_names, read_layer
from gazefollow.social.task import LAM

# run.task -> its Task; the first is the default (python main.py)
TASKS: dict[str, Task] = {task.name: task for task in (FOLLOWING, ESTIMATION, SIMCLR, LAM)}
DEFAULT_TASK = FOLLOWING.name

REGISTRY = Registry(TASKS, read_layer=read_layer, flag_names=flag_names(),
                    foreign_checkpoints={ORIGINAL_SUFFIX: load_original_for_eval},
                    published=load_published_for_eval)


def register(task: Task) -> None:
    """Add a task (e.g. a test's own); ``--task NAME`` and ``run.task=NAME`` then run it."""
    TASKS[task.name] = task


def task_of(config) -> Task:
    return REGISTRY.task_of(config)


def build_config(yaml_files=(), overrides=(), base: dict | None = None):
    """The config of YAML layers (ours or the original's) and overrides, checked by the
    engine and by the run's task."""
    return REGISTRY.build_config(yaml_files, overrides, base)


def run_dir_for(config) -> Path:
    return loop.run_dir_for(config, task_of(config))


def train(config, log=print) -> loop.TrainOutcome:
    return loop.train(config, task_of(config), log)


def train_and_evaluate(config) -> dict:
    return runs.train_and_evaluate(config, REGISTRY)


def load_for_eval(checkpoint, overrides: list = (), layers: list = ()) -> dict:
    return evaluation.load_for_eval(checkpoint, overrides, layers, registry=REGISTRY)


def evaluate_checkpoint(checkpoint, overrides: list = (), out_dir=None, layers: list = (),
                        log=print) -> dict:
    return evaluation.evaluate_checkpoint(checkpoint, overrides, out_dir, layers, log,
                                          registry=REGISTRY)
