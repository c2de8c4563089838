"""The run's state and everything about resuming it: the plan (steps per epoch, length), the
checkpoint to resume and what it restores (weights, EMA, optimizer, schedule, step, RNG),
the initial weights of a fresh run, saving, and where in an epoch a resumed run goes on."""
from __future__ import annotations

import itertools
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from diffusers.training_utils import EMAModel

from gazefollow.config import Config, ConfigError, config_changes, to_dict, to_yaml
from gazefollow.engine.checkpoint import (CHECKPOINTS_DIR, find_resumable, incomplete_checkpoints,
                                          load_checkpoint, load_rng_state, save_checkpoint)
from gazefollow.engine.optimizer import load_ema_state
from gazefollow.engine.run_records import git_commit
from gazefollow.engine.weights import (load_trained_state, resolved_source, restore_frozen,
                                       trained_state)


@dataclass
class RunState:
    """The step counter and everything else a checkpoint carries besides the weights."""

    steps_per_epoch: int
    total_steps: int  # the whole run (the LR schedule spans it)
    stop_step: int  # where this session ends (run.halt_at_step)
    step: int = 0
    counters: dict = field(default_factory=lambda: {"nonfinite_steps": 0})
    run_id: str = ""  # the wandb run, continued by a resume
    commit: str = ""
    saved_step: int | None = None  # the step already on disk
    interrupted_by: str | None = None  # the signal that ended this session early
    frozen_source: str | None = None  # the initial-weights file the frozen weights came from

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def due(self, every_steps: int, every_epochs: int = 0) -> bool:
        """Is this step a multiple of ``every_steps``, or the end of a multiple of
        ``every_epochs`` epochs (0 = never)?"""
        return bool((every_steps and self.step % every_steps == 0) or
                    (every_epochs and self.step % (every_epochs * self.steps_per_epoch) == 0))


@dataclass
class TrainParts:
    """What trains and what a checkpoint restores. ``net`` is the plain module (weights, EMA,
    checkpoints); ``model`` what runs (DDP-wrapped, compiled), set once prepared."""

    net: torch.nn.Module
    ema: EMAModel
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    model: torch.nn.Module | None = None


def plan_run(config: Config, batches_per_epoch: int, processes: int, train_size: int) -> RunState:
    """Steps per epoch (this process's share of batches / accumulation) and the run's length."""
    accumulation = config.optim.grad_accumulation
    steps_per_epoch = batches_per_epoch // accumulation
    if steps_per_epoch == 0:
        raise ConfigError(f"the train split has {train_size} samples, fewer than one step of "
                         f"{config.data.batch_size} x {accumulation} accumulation x "
                         f"{processes} process(es)")
    total = config.optim.epochs * steps_per_epoch
    if config.run.max_steps is not None:
        total = min(total, config.run.max_steps)
    return RunState(steps_per_epoch, total, min(total, config.run.halt_at_step or total),
                    run_id=f"{config.run.tag}-{int(time.time())}", commit=git_commit())


def checkpoint_to_resume(config: Config, run_dir: Path, accelerator: Accelerator) -> Path | None:
    """The newest complete checkpoint, chosen by the main process and shared, so every process
    resumes the same one even where a shared filesystem shows files late."""
    latest = find_resumable(run_dir) if config.run.resume else None
    return broadcast_object_list([latest])[0] if accelerator.num_processes > 1 else latest


def load_start_weights(net, task, config: Config, state: RunState, latest: Path | None,
                       run_dir: Path, accelerator: Accelerator, log) -> None:
    """``run.init_weights`` into a fresh run's model (the task's loader), with its report
    beside the run; the file is recorded as the source of the frozen weights. (A resumed
    run's weights come from its checkpoint, its frozen ones from the source it recorded.)"""
    if not config.run.init_weights or latest is not None:
        return
    if task.init_weights is None:
        raise ConfigError(f"run.init_weights: the task '{task.name}' loads no initial weights")
    run_dir.mkdir(parents=True, exist_ok=True)
    report = run_dir / "init_weights_report.json" if accelerator.is_main_process else None
    state.frozen_source = resolved_source(config.run.init_weights)
    task.init_weights(net, config.run, log, report_file=report)


def resume_or_start(state: RunState, latest: Path | None, parts: TrainParts, config: Config,
                    run_dir: Path, accelerator: Accelerator, log, task) -> None:
    """Restore ``latest`` (weights, EMA, optimizer, schedule, step, counters, wandb id) or
    start fresh; then the run directory gets this run's config and commit."""
    if config.run.resume:
        for broken in incomplete_checkpoints(run_dir):
            log(f"ignoring {broken}: its save was interrupted")
    if latest is not None:
        stored = load_checkpoint(latest, config.run.trust_pickle)
        state.step = restore(stored, config, accelerator.num_processes, parts, task)
        state.frozen_source = (stored.get("frozen") or {}).get("source")
        state.counters.update(stored.get("counters", {}))
        state.run_id, state.saved_step = stored.get("wandb_run_id", state.run_id), state.step
        log(f"resumed from {latest} at step {state.step}")
    accelerator.wait_for_everyone()  # nobody still reads a checkpoint that may be deleted now
    if accelerator.is_main_process:
        if not config.run.resume and (run_dir / CHECKPOINTS_DIR).is_dir():
            # a fresh start must not leave older checkpoints to be mistaken for its own
            log(f"run.resume=false: deleting the earlier checkpoints in "
                f"{run_dir / CHECKPOINTS_DIR}")
            shutil.rmtree(run_dir / CHECKPOINTS_DIR)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(config))
        (run_dir / "git_commit.txt").write_text(state.commit + "\n")
    accelerator.wait_for_everyone()


def restore_rng(latest: Path | None, accelerator: Accelerator, log) -> None:
    """The RNG streams come back last, so nothing in the set-up draws from them afterwards."""
    if latest is not None and not load_rng_state(latest, accelerator.process_index,
                                                 accelerator.device):
        log(f"{latest} holds no RNG state for process {accelerator.process_index}: training "
            "continues, but not bit-exactly")


def save(state: RunState, parts: TrainParts, config: Config, run_dir: Path,
         accelerator: Accelerator) -> None:
    """A checkpoint of this step, unless it is already on disk (decided in memory, so every
    process makes the same collective calls)."""
    if state.step == state.saved_step:
        return
    model, frozen = (trained_state(parts.net, state.frozen_source)
                     if accelerator.is_main_process else ({}, {}))
    content = {} if not accelerator.is_main_process else {
        "model": model, "frozen": frozen, "ema": parts.ema.state_dict(),
        "optimizer": parts.optimizer.state_dict(), "lr_scheduler": parts.lr_scheduler.state_dict(),
        "step": state.step, "total_steps": state.total_steps, "epoch": state.epoch,
        "counters": dict(state.counters), "processes": accelerator.num_processes,
        "config": to_dict(config), "wandb_run_id": state.run_id, "git_commit": state.commit}
    save_checkpoint(accelerator, run_dir, state.step, content, config.run.keep_last)
    state.saved_step = state.step


def epoch_batches(accelerator: Accelerator, loader, state: RunState, config: Config):
    """The rest of the current epoch's micro-batches, whole optimizer steps only. Epoch and
    position follow from the step, so a resumed run skips the batches it has seen and sees
    the rest in the same shuffled order."""
    done, accumulation = state.step % state.steps_per_epoch, config.optim.grad_accumulation
    loader.set_epoch(state.epoch)  # on the prepared loader: it re-applies it at every iteration
    rest = accelerator.skip_first_batches(loader, done * accumulation) if done else loader
    return itertools.islice(rest, (state.steps_per_epoch - done) * accumulation)


# Keys that may change when a run is resumed; any other difference is refused, because the
# optimizer, scheduler and EMA states restored from the checkpoint would silently win.
# (A resumed run does not reload its initial weights, so run.init_* may change too: its
# frozen weights come from the file recorded in its checkpoint.)
# A task adds the keys it chooses at evaluation time (Task.evaluation_keys, e.g. the sampler).
RESUMABLE_CHANGES = ("run.max_steps", "run.halt_at_step", "run.print_every", "run.save_every",
                     "run.keep_last", "run.device", "run.resume", "run.init_", "optim.epochs",
                     "data.num_workers", "eval.", "logging.", "model.compile",
                     "optim.max_nonfinite_steps")


# ... except these: another fold trains on other subjects
NOT_RESUMABLE = ("eval.fold",)


def resume_conflicts(stored: dict, config: Config, resumable: tuple = ()) -> list[str]:
    """The changes from a checkpoint's config to this run's that a resume cannot take
    (``resumable``: the task's own keys that may change)."""
    return [f"{key}: {old!r} -> {new!r}" for key, (old, new) in
            config_changes(stored, config).items()
            if not key.startswith(RESUMABLE_CHANGES + tuple(resumable)) or key in NOT_RESUMABLE]


def restore(state: dict, config: Config, processes: int, parts: TrainParts, task) -> int:
    """Put a checkpoint's model (its frozen weights from their recorded source through the
    task's ``init_weights``), EMA, optimizer and LR schedule back; return its step."""
    conflicts = resume_conflicts(state["config"], config, task.resumable_keys)
    if conflicts:
        raise ConfigError("the run directory holds a checkpoint made with another config ("
                          + "; ".join(conflicts[:6]) + "); use --no_resume or another --tag")
    saved_with = state.get("processes", processes)
    if saved_with != processes:
        # steps count per-process batches: another process count would put the run at
        # another epoch and position and change its length
        raise ConfigError(f"the checkpoint was trained with {saved_with} process(es), this run "
                          f"has {processes}: resume with {saved_with}, or start a new --tag "
                          "with run.init_weights pointing at this run")
    restore_frozen(parts.net, state, config.run, task.init_weights, "the checkpoint to resume")
    load_trained_state(parts.net, state, "the checkpoint to resume")
    load_ema_state(parts.ema, state["ema"], parts.net, config.optim)
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.lr_scheduler.load_state_dict(state["lr_scheduler"])
    return state["step"]
