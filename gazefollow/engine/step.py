"""One optimizer step: accumulation, the NaN/Inf guard, the update, the EMA step, and what
the step logs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from gazefollow.config import Config
from gazefollow.engine.checkpoint import CHECKPOINTS_DIR
from gazefollow.engine.optimizer import ema_parameters
from gazefollow.engine.state import RunState, TrainParts, save
from gazefollow.engine.stopping import StopRequest


@dataclass
class StepResult:
    finite: bool  # False: the update was skipped (NaN/Inf loss or gradient on any process)
    losses: dict  # the last micro-batch's losses
    stop_anywhere: bool = False  # a stop signal had reached some process by the guard


class OptimizerStep:
    """Forward and backward of each micro-batch; at a step's last one, the guarded update
    (gradient clipping, optimizer and LR schedule step, EMA step) and the step count.

    The NaN/Inf guard: a step whose losses (any micro-batch) or gradients are not finite on
    any process is skipped on all of them (its batches still count, so the data order stays
    exact), logged and counted; more than ``optim.max_nonfinite_steps`` in a row save the last
    good state and stop the run."""

    def __init__(self, accelerator: Accelerator, parts: TrainParts, config: Config,
                 state: RunState, task, run_dir: Path, log):
        self.accelerator, self.parts, self.config, self.state = accelerator, parts, config, state
        self.loss_fn, self.run_dir, self.log, self.in_a_row = task.training_losses, run_dir, log, 0
        self.loss_cfg = getattr(config, task.loss_section)  # the section the loss reads
        self.nonfinite_loss = torch.zeros(1, device=accelerator.device)
        # Ctrl-C / SIGTERM, asked across processes in the guard's own collective
        self.stop = StopRequest(log)

    def __call__(self, batch: dict) -> StepResult | None:
        """-> None for a micro-batch inside a step, the step's result at its last one."""
        accelerator, parts, optim = self.accelerator, self.parts, self.config.optim
        with accelerator.accumulate(parts.model):
            losses = self.loss_fn(parts.model, batch, self.loss_cfg)
            accelerator.backward(losses["loss"])
            # every micro-batch's loss is checked, not only the last one's
            self.nonfinite_loss += (~torch.isfinite(losses["loss"].detach())).float()
            finite, stop_anywhere = all_finite(
                accelerator, self.nonfinite_loss, parts.net, self.stop.received is not None) \
                if accelerator.sync_gradients else (False, False)
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
        return StepResult(finite, losses, stop_anywhere)

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


def all_finite(accelerator: Accelerator, nonfinite_loss: torch.Tensor, net,
               stop_here: bool = False) -> tuple[bool, bool]:
    """NaN/Inf guard: were this step's losses (``nonfinite_loss``: a count over its
    micro-batches) and every gradient finite, on every process (all processes must agree to
    skip, or DDP would hang on the next collective)? The gradients' total norm (one foreach
    reduction) is finite exactly when every gradient is. Under fp16 the gradient scaler owns
    gradient overflow (it skips the step and lowers the scale; skipping it here would keep
    the scale too high forever), so only the losses are checked.

    The same collective carries ``stop_here`` (this process received a stop signal), so with
    several processes the stop request costs no collective of its own. -> (finite, a stop
    was asked on some process); this is the step's one host read."""
    bad = nonfinite_loss.detach().sum().reshape(1)
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if grads and accelerator.scaler is None:
        total = torch.nn.utils.get_total_norm(grads, foreach=True).float()
        bad = bad + (~torch.isfinite(total)).float().reshape(1)
    flags = torch.cat([bad, torch.full_like(bad, float(stop_here))])
    bad_sum, stops = accelerator.reduce(flags, reduction="sum").tolist()
    return bad_sum == 0, stops > 0


class PendingLogs:
    """What each finite optimizer step logs, kept on the device and read back for many steps
    at once (``flush``: one host read), so a step that logs nothing in between reads nothing
    back: the loss, each part's learning rate, every other scalar the task's loss returns,
    and the denoising loss per quarter of the timestep range where the loss gives each
    sample's quarter (ADM's diagnostic; per-sample terms are not logged)."""

    def __init__(self):
        self.steps: list[tuple[int, dict, dict]] = []

    def add(self, step: int, losses: dict, optimizer, epoch: int) -> None:
        known = {"epoch": epoch,
                 **{f"lr/{group['name']}": group["lr"] for group in optimizer.param_groups}}
        on_device = {"loss": losses["loss"].detach().float().reshape(())}
        for key, value in losses.items():
            if key == "loss" or not _is_scalar(value):
                continue
            if isinstance(value, torch.Tensor):
                on_device[key] = value.detach().float().reshape(())
            else:
                known[key] = float(value)
        if "t_quartile" in losses:  # e.g. the regression decoder has no timesteps
            on_device.update(quartile_sums(losses))
        self.steps.append((step, known, on_device))

    def flush(self) -> list[tuple[int, dict]]:
        """(step, logs) of every step added since the last flush, in order."""
        if not self.steps:
            return []
        values = torch.cat([torch.stack(list(d.values())) for _, _, d in self.steps]).tolist()
        out, at = [], 0
        for step, known, on_device in self.steps:
            read = dict(zip(on_device, values[at:at + len(on_device)]))
            at += len(on_device)
            out.append((step, _quartile_means({"loss": read.pop("loss"), **known, **read})))
        self.steps = []
        return out


def _is_scalar(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def quartile_sums(losses: dict) -> dict:
    """The in-frame samples' denoising loss summed per quarter of the timestep range, and
    their counts, without reading anything back (``mse_sum_q*``, ``mse_count_q*``)."""
    weights = (losses["in_frame"] > 0).float()
    quarters = torch.nn.functional.one_hot(losses["t_quartile"].long(), 4).float()
    quarters = quarters * weights[:, None]
    sums = (quarters * losses["mse"].detach().float()[:, None]).sum(dim=0)
    counts = quarters.sum(dim=0)
    return {**{f"mse_sum_q{q}": sums[q] for q in range(4)},
            **{f"mse_count_q{q}": counts[q] for q in range(4)}}


def _quartile_means(logs: dict) -> dict:
    """mse_q0..q3 from the read-back sums and counts; a quarter no sample fell in is left
    out, as before."""
    for q in range(4):
        total, count = logs.pop(f"mse_sum_q{q}", None), logs.pop(f"mse_count_q{q}", None)
        if count:
            logs[f"mse_q{q}"] = total / count
    return logs
