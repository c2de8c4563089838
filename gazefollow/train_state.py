"""What ``train()`` is made of: the run's state, resume-or-start, saving, one optimizer step
(accumulation and the NaN/Inf guard) and the session's statistics."""
from __future__ import annotations

import itertools
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object
from diffusers.training_utils import EMAModel

from gazefollow.checkpoint import (CHECKPOINTS_DIR, find_resumable, incomplete_checkpoints,
                                   load_checkpoint, load_rng_state, save_checkpoint)
from gazefollow.config import Config, ConfigError, to_dict, to_yaml
from gazefollow.init_weights import load_initial_weights
from gazefollow.run_records import git_commit, peak_memory_mib, write_train_stats
from gazefollow.training_parts import all_finite, ema_parameters, restore


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


def load_start_weights(net, config: Config, run_dir: Path, accelerator: Accelerator, log) -> None:
    """``run.init_weights`` into a fresh run's model, with its report beside the run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    report = run_dir / "init_weights_report.json" if accelerator.is_main_process else None
    load_initial_weights(net, config.run, log, report_file=report)


def resume_or_start(state: RunState, latest: Path | None, parts: TrainParts, config: Config,
                    run_dir: Path, accelerator: Accelerator, log) -> None:
    """Restore ``latest`` (weights, EMA, optimizer, schedule, step, counters, wandb id) or
    start fresh; then the run directory gets this run's config and commit."""
    if config.run.resume:
        for broken in incomplete_checkpoints(run_dir):
            log(f"ignoring {broken}: its save was interrupted")
    if latest is not None:
        stored = load_checkpoint(latest)
        state.step = restore(stored, config, accelerator.num_processes, parts.net, parts.ema,
                             parts.optimizer, parts.lr_scheduler)
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
    content = {} if not accelerator.is_main_process else {
        "model": parts.net.state_dict(), "ema": parts.ema.state_dict(),
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


@dataclass
class StepResult:
    finite: bool  # False: the update was skipped (NaN/Inf loss or gradient on any process)
    losses: dict  # the last micro-batch's losses


class OptimizerStep:
    """Forward and backward of each micro-batch; at a step's last one, the guarded update
    (gradient clipping, optimizer and LR schedule step, EMA step) and the step count.

    The NaN/Inf guard: a step whose losses (any micro-batch) or gradients are not finite on
    any process is skipped on all of them (its batches still count, so the data order stays
    exact), logged and counted; more than ``optim.max_nonfinite_steps`` in a row save the last
    good state and stop the run."""

    def __init__(self, accelerator: Accelerator, parts: TrainParts, config: Config,
                 state: RunState, loss_fn, run_dir: Path, log):
        self.accelerator, self.parts, self.config, self.state = accelerator, parts, config, state
        self.loss_fn, self.run_dir, self.log, self.in_a_row = loss_fn, run_dir, log, 0
        self.nonfinite_loss = torch.zeros(1, device=accelerator.device)

    def __call__(self, batch: dict) -> StepResult | None:
        """-> None for a micro-batch inside a step, the step's result at its last one."""
        accelerator, parts, optim = self.accelerator, self.parts, self.config.optim
        with accelerator.accumulate(parts.model):
            losses = self.loss_fn(parts.model, batch, self.config.loss)
            accelerator.backward(losses["loss"])
            # every micro-batch's loss is checked, not only the last one's
            self.nonfinite_loss += (~torch.isfinite(losses["loss"].detach())).float()
            finite = accelerator.sync_gradients and all_finite(accelerator, self.nonfinite_loss,
                                                               parts.net)
            if finite:
                if optim.grad_clip > 0:
                    accelerator.clip_grad_norm_(parts.model.parameters(), optim.grad_clip)
                parts.optimizer.step()
                if not parts.optimizer.step_was_skipped:  # fp16: the scaler skips overflows
                    parts.lr_scheduler.step()
            if accelerator.sync_gradients:
                parts.optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            return None
        self.nonfinite_loss.zero_()
        self.state.step += 1
        if finite:
            self.in_a_row = 0
            if not parts.optimizer.step_was_skipped:
                parts.ema.step(ema_parameters(parts.net, self.config.optim))
        else:
            self._skipped()
        return StepResult(finite, losses)

    def _skipped(self) -> None:
        state, counters = self.state, self.state.counters
        counters["nonfinite_steps"] += 1
        self.in_a_row += 1
        self.log(f"step {state.step}: non-finite loss or gradient, update skipped "
                 f"({self.in_a_row} in a row, {counters['nonfinite_steps']} in all)")
        self.accelerator.log({"nonfinite_steps": counters["nonfinite_steps"]}, step=state.step)
        limit = self.config.optim.max_nonfinite_steps
        if self.in_a_row > limit:
            state.step -= 1  # the checkpoint holds the last good state, not this step's
            save(state, self.parts, self.config, self.run_dir, self.accelerator)
            raise FloatingPointError(
                f"{self.in_a_row} non-finite steps in a row (optim.max_nonfinite_steps={limit}):"
                f" stopped; the last good state (step {state.step}) is saved under "
                f"{self.run_dir / CHECKPOINTS_DIR}. Lower the learning rate or check the data, "
                "then resume.")


def end_session(state: RunState, first_step: int, seconds: float, clock: dict,
                bad_inputs: list[str], config: Config, run_dir: Path, accelerator: Accelerator,
                log) -> None:
    """Say where the session stopped, write its statistics, finish the trackers (not
    end_training(): the evaluation still needs the process group)."""
    if state.interrupted_by is None and state.step < state.total_steps:
        log(f"halted at step {state.step} of {state.total_steps} (run.halt_at_step); run again "
            "without it (or with a later one) to resume")
    write_session_stats(state, first_step, seconds, clock, bad_inputs, config, run_dir,
                        accelerator, log)
    accelerator.wait_for_everyone()
    for tracker in accelerator.trackers:
        tracker.finish()


def write_session_stats(state: RunState, first_step: int, seconds: float, clock: dict,
                        bad_inputs: list[str], config: Config, run_dir: Path,
                        accelerator: Accelerator, log) -> None:
    """This session's speed, memory and skipped samples: logged, and ``train_stats.json``."""
    if accelerator.num_processes > 1:  # every process's skipped samples, not only the main's
        bad_inputs = gather_object(bad_inputs)
    bad_inputs = list(dict.fromkeys(bad_inputs))  # a sample skipped in every epoch counts once
    if bad_inputs:
        log(f"SKIPPED {len(bad_inputs)} training samples that failed to load "
            "(data.on_bad_input=skip): " + " | ".join(bad_inputs[:5]))
    peaks = accelerator.gather(torch.tensor([peak_memory_mib(accelerator.device)],
                                            device=accelerator.device)).tolist()
    steps = state.step - first_step
    if not accelerator.is_main_process or steps <= 0:
        return
    global_batch = config.data.batch_size * config.optim.grad_accumulation * \
        accelerator.num_processes
    write_train_stats(run_dir, {
        "steps": steps, "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / steps, 4),
        "samples_per_second": round(steps * global_batch / seconds, 2),
        "global_batch": global_batch, "processes": accelerator.num_processes,
        "threads_per_process": torch.get_num_threads(),
        "data_wait_share": round(clock["data_wait"] / seconds, 4),
        "peak_memory_mib_per_process": [round(p) for p in peaks],
        "skipped_unreadable": len(bad_inputs), "skipped_examples": bad_inputs[:20],
        "nonfinite_steps_skipped": state.counters["nonfinite_steps"]})
