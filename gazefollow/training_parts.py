"""The pieces train.py puts together: trackers, LR schedule, resume checks, NaN guard,
per-step diagnostics and validation."""
from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch.optim.lr_scheduler import LambdaLR

from gazefollow.config import Config, ConfigError, config_changes, to_dict
from gazefollow.models.gaze_model import optimizer_parameter_groups


def start_trackers(accelerator: Accelerator, config: Config, run_dir: Path, run_id: str,
                   model, log) -> None:
    """wandb through Accelerate, under the run directory; the run id makes a resume continue
    the same wandb run. ``logging.watch_wandb`` (the original's ``--watch_wandb``) adds
    wandb.watch's gradient histograms every ``logging.watch_every`` steps."""
    if config.logging.wandb == "disabled":
        if config.logging.watch_wandb:
            log("logging.watch_wandb: wandb is disabled, so no gradients are watched")
        return
    accelerator.init_trackers(
        "gazefollow", config=to_dict(config),
        init_kwargs={"wandb": {"mode": config.logging.wandb, "dir": str(run_dir),
                               "name": config.run.tag, "id": run_id, "resume": "allow"}})
    if config.logging.watch_wandb and accelerator.is_main_process:
        accelerator.get_tracker("wandb", unwrap=True).watch(
            model, log="gradients", log_freq=config.logging.watch_every)


def make_optimizer(net, optim) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), the original's Adam, or SGD with ``optim.momentum``
    (the GazeNet recipe), one group per model part."""
    groups = optimizer_parameter_groups(net, optim)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=optim.momentum)
    return (torch.optim.Adam if optim.optimizer == "adam" else torch.optim.AdamW)(groups)


def _warmup(step: int, warmup: int) -> float:
    return step / max(1, warmup)


def _constant(step: int, warmup: int, total: int) -> float:
    return _warmup(step, warmup) if step < warmup else 1.0


def _cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def _epoch_warmup_cosine(step: int, steps_per_epoch: int, epochs: int) -> float:
    """The original's schedule, by epoch e: warm-up e / (W - 1) over W = int(0.1 x epochs)
    epochs (from 0 at epoch 0), then 0.5 (1 + cos(pi (e - W) / (epochs - W))). W <= 1: no
    warm-up (the original divides by zero at W = 1)."""
    epoch, warm = step // steps_per_epoch, int(0.1 * epochs)
    if warm > 1 and epoch < warm:
        return epoch / (warm - 1)
    warm = warm if warm > 1 else 0
    return 0.5 * (1 + math.cos(math.pi * min(epoch - warm, epochs - warm) / max(1, epochs - warm)))


def _multistep(step: int, steps_per_epoch: int, milestones: list[int], gamma: float) -> float:
    """gamma ** (the milestones reached by the step's epoch), as torch's MultiStepLR stepped
    once per epoch."""
    epoch = step // steps_per_epoch
    return gamma ** sum(epoch >= milestone for milestone in milestones)


def _anneal_cos(start: float, end: float, share: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * share) + 1)


def _onecycle(step: int, total: int, pct_start: float, div: float, final_div: float) -> float:
    """torch's OneCycleLR (two phases, cosine) as a factor of the peak rate: up from 1 / div
    until step pct_start x total - 1, then down to 1 / (div x final_div) at the last step."""
    peak_step = pct_start * total - 1
    if peak_step > 0 and step <= peak_step:
        return _anneal_cos(1 / div, 1.0, step / peak_step)
    return _anneal_cos(1.0, 1 / (div * final_div), (step - peak_step) / (total - 1 - peak_step))


def lr_factor(optim, total_steps: int, steps_per_epoch: int):
    """The schedule's factor of a group's base rate at optimizer step s (0-based):
    ``constant`` / ``cosine`` after a linear warm-up of ``optim.warmup_steps`` (the formulas
    of diffusers' constant_with_warmup / cosine schedules), ``epoch_warmup_cosine``, or
    ``multistep`` (by epoch, ``optim.lr_milestones`` and ``optim.lr_gamma``), ``onecycle``."""
    if optim.lr_schedule == "multistep":
        return partial(_multistep, steps_per_epoch=steps_per_epoch,
                       milestones=list(optim.lr_milestones), gamma=optim.lr_gamma)
    if optim.lr_schedule == "onecycle":
        return partial(_onecycle, total=max(total_steps, 2), pct_start=optim.onecycle_pct_start,
                       div=optim.onecycle_div, final_div=optim.onecycle_final_div)
    if optim.lr_schedule == "epoch_warmup_cosine":
        return partial(_epoch_warmup_cosine, steps_per_epoch=steps_per_epoch, epochs=optim.epochs)
    schedule = _cosine if optim.lr_schedule == "cosine" else _constant
    return partial(schedule, warmup=optim.warmup_steps, total=max(total_steps, 1))


def make_lr_scheduler(optimizer, optim, total_steps: int, steps_per_epoch: int = 1):
    """The schedule on the groups of ``optim.schedule_parts`` (every group when empty); the
    other groups keep their base rate. Each group keeps its own base rate under the factor."""
    factor = lr_factor(optim, total_steps, steps_per_epoch)
    scheduled = set(optim.schedule_parts)
    return LambdaLR(optimizer, [factor if not scheduled or group.get("name") in scheduled
                                else (lambda step: 1.0) for group in optimizer.param_groups])


def ema_parameters(net, optim) -> list[torch.nn.Parameter]:
    """The parameters the EMA covers, in the model's parameter order (the order its saved
    state lists them in): the trainable ones of ``optim.ema_parts``, or every parameter when
    it is empty (as checkpoints before ``ema_parts`` have them)."""
    if not optim.ema_parts:
        return list(net.parameters())
    covered = {id(p) for name, params in net.trainable_parts().items()
               if name in optim.ema_parts for p in params}
    return [p for p in net.parameters() if id(p) in covered]


def make_ema(net, optim) -> EMAModel:
    """EMA of ``ema_parameters``: decay ceiling ``optim.ema_rate``; with ``optim.ema_warmup``
    the decay ramps as 1 - (1 + step)^-ema_power, else as (1 + step) / (10 + step);
    ``optim.ema_fixed``: ema_rate from the second step on (the first copies the weights)."""
    return EMAModel(ema_parameters(net, optim), decay=optim.ema_rate,
                    min_decay=optim.ema_rate if optim.ema_fixed else 0.0,
                    use_ema_warmup=optim.ema_warmup, inv_gamma=1.0, power=optim.ema_power)


# Keys that may change when a run is resumed; any other difference is refused, because the
# optimizer, scheduler and EMA states restored from the checkpoint would silently win.
# (A resumed run does not reload its initial weights, so run.init_* may change too.)
RESUMABLE_CHANGES = ("run.max_steps", "run.halt_at_step", "run.print_every", "run.save_every",
                     "run.keep_last", "run.device", "run.resume", "run.init_", "optim.epochs",
                     "data.num_workers", "eval.", "logging.", "sampling.", "model.compile",
                     "optim.max_nonfinite_steps")


# ... except these: another fold trains on other subjects
NOT_RESUMABLE = ("eval.fold",)


def resume_conflicts(stored: dict, config: Config) -> list[str]:
    """The changes from a checkpoint's config to this run's that a resume cannot take."""
    return [f"{key}: {old!r} -> {new!r}" for key, (old, new) in
            config_changes(stored, config).items()
            if not key.startswith(RESUMABLE_CHANGES) or key in NOT_RESUMABLE]


def restore(state: dict, config: Config, processes: int, net, ema, optimizer,
            lr_scheduler) -> int:
    """Put a checkpoint's model, EMA, optimizer and LR schedule back; return its step."""
    conflicts = resume_conflicts(state["config"], config)
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
    net.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    return state["step"]


def all_finite(accelerator: Accelerator, nonfinite_loss: torch.Tensor, net) -> bool:
    """NaN/Inf guard: were this step's losses (``nonfinite_loss``: a count over its
    micro-batches) and every gradient finite, on every process (all processes must agree to
    skip, or DDP would hang on the next collective)? Under fp16 the gradient scaler owns
    gradient overflow (it skips the step and lowers the scale; skipping it here would keep
    the scale too high forever), so only the losses are checked."""
    bad = nonfinite_loss.detach().sum().reshape(1)
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if grads and accelerator.scaler is None:
        bad = bad + (~torch.isfinite(torch.stack([g.detach().float().abs().sum()
                                                  for g in grads]))).any().float()
    return accelerator.reduce(bad, reduction="sum").item() == 0


def step_logs(losses: dict, optimizer, epoch: int, config: Config) -> dict:
    """What one optimizer step logs: loss, each part's learning rate, the loss terms and the
    per-quartile denoising loss. (.item() syncs with the device: once per value.)"""
    return {"loss": losses["loss"].item(), "epoch": epoch,
            **{f"lr/{group['name']}": group["lr"] for group in optimizer.param_groups},
            **{k: losses[k].item() for k in ("inout_bce", "direction_loss", "gaze_angle")
               if k in losses},
            **quartile_losses(losses, config.diffusion.train_time_steps)}


def quartile_losses(losses: dict, num_timesteps: int) -> dict:
    """mse_q0..q3: the denoising loss per quarter of the timestep range (ADM's diagnostic)."""
    out = {}
    if "t" not in losses:  # the regression decoder has no timesteps
        return out
    quartile = (losses["t"] * 4 // num_timesteps).clamp(max=3)
    for q in range(4):
        mask = (quartile == q) & (losses["in_frame"] > 0)
        if mask.any():
            out[f"mse_q{q}"] = float(losses["mse"][mask].mean())
    return out


class ProgressLog:
    """The log line every ``run.print_every`` steps (and at the session's last step): mean
    loss of the finite steps since the last line, steps/s, s/step, ETA."""

    def __init__(self, total_steps: int, log):
        self.total_steps, self.log = total_steps, log
        self.tic, self.window = time.perf_counter(), []

    def add(self, loss: float) -> None:
        self.window.append(loss)

    def maybe_print(self, step: int, every: int, stop_step: int) -> None:
        if not self.window or (step % every and step != stop_step):
            return
        rate = len(self.window) / (time.perf_counter() - self.tic)
        self.log(f"step {step}/{self.total_steps}  loss "
                 f"{sum(self.window) / len(self.window):.4f}  {rate:.2f} steps/s  "
                 f"{1 / rate:.3f} s/step  eta {(self.total_steps - step) / rate / 60:.1f} min")
        self.tic, self.window = time.perf_counter(), []


def timed(batches, clock: dict):
    """Yield from ``batches``, adding the time spent waiting for each to clock["data_wait"]."""
    iterator = iter(batches)
    while True:
        start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        clock["data_wait"] += time.perf_counter() - start
        yield batch


def validate(net, ema, dataset, config: Config, accelerator: Accelerator, step: int,
             run_dir: Path, log, records=None) -> dict | None:
    """The task's validation metrics with the EMA weights (swapped in, then back), logged,
    written to ``records`` (the run's ``val_log.jsonl``) and returned; never test. Every
    process scores its share of the split (None: the protocol has no validation split, and
    this says so).
    With ``eval.debugging_maps`` (the original's ``--Debugging_maps``) the first
    gaze-following validation samples are also drawn: ``debugging_maps/step_<N>.png``."""
    from gazefollow.tasks import task_of

    if dataset is None:
        log(f"step {step}: no validation split (data.val_subjects=0), nothing to validate")
        return None
    ema.store(ema_parameters(net, config.optim))
    ema.copy_to(ema_parameters(net, config.optim))
    metrics, sampled, drawn = task_of(config).validation_metrics(net, dataset, config,
                                                                 accelerator)
    ema.restore(ema_parameters(net, config.optim))
    net.train()
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
    if records is not None:
        records.write(step, metrics)
    log(f"step {step} validation (EMA, {sampled}): " +
        "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if drawn and accelerator.is_main_process:
        from gazefollow.visualize import save_prediction_grid  # matplotlib: only when drawing
        (run_dir / "debugging_maps").mkdir(exist_ok=True)
        save_prediction_grid(drawn, Path(config.data.dataset_dir),
                             run_dir / "debugging_maps" / f"step_{step:07d}.png")
    return metrics
