"""What surrounds the steps of one training session: the trackers, the progress line, the
data-wait clock, validation with the EMA weights, and the session's statistics at its end."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from gazefollow.config import Config, to_dict
from gazefollow.engine.optimizer import ema_parameters
from gazefollow.engine.run_records import peak_memory_mib, write_train_stats
from gazefollow.engine.state import RunState


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


def write_logs(pending, accelerator: Accelerator, step_log, printer: ProgressLog,
               progress=None) -> None:
    """Every pending step's logs (``step.PendingLogs``, read back at once) to the trackers,
    ``train_log.jsonl``, the progress line and the progress bar."""
    for step, logs in pending.flush():
        accelerator.log(logs, step=step)
        step_log.write(step, logs)
        printer.add(logs["loss"])
        if progress is not None:
            progress.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


@contextmanager
def logs_written(pending, accelerator: Accelerator, step_log, printer: ProgressLog):
    """However the loop ends (its last step, a stop request, the NaN guard's stop, an
    error), the steps' logs still pending are written."""
    try:
        yield
    finally:
        write_logs(pending, accelerator, step_log, printer)


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


def validate(task, net, ema, dataset, config: Config, accelerator: Accelerator, step: int,
             run_dir: Path, log, records=None) -> dict | None:
    """The task's validation metrics with the EMA weights (swapped in, then back), logged,
    written to ``records`` (the run's ``val_log.jsonl``) and returned; never test. Every
    process scores its share of the split (None: the protocol has no validation split, and
    this says so).
    Samples the task returns to draw (gaze following's ``eval.debugging_maps``, the
    original's ``--Debugging_maps``) go to ``debugging_maps/step_<N>.png``."""
    if dataset is None:
        log(f"step {step}: no validation split (estimation.val_subjects=0), nothing to validate")
        return None
    ema.store(ema_parameters(net, config.optim))
    ema.copy_to(ema_parameters(net, config.optim))
    metrics, sampled, drawn = task.validation_metrics(net, dataset, config, accelerator)
    ema.restore(ema_parameters(net, config.optim))
    net.train()
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
    if records is not None:
        records.write(step, metrics)
    log(f"step {step} validation (EMA, {sampled}): " +
        "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if drawn and task.draw_validation and accelerator.is_main_process:
        (run_dir / "debugging_maps").mkdir(exist_ok=True)
        task.draw_validation(drawn, config, run_dir / "debugging_maps" / f"step_{step:07d}.png")
    return metrics


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
