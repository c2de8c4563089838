"""The training loop: Accelerate, AdamW with a learning rate per model part, EMA, checkpoints.

Read top to bottom: set-up, data, model and optimiser, resume, the loop, the final save.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Sampler

from gazefollow.checkpoint import (CHECKPOINT_NAME, load_checkpoint, load_init_weights,
                                   save_checkpoint)
from gazefollow.config import Config, ConfigError, to_dict, to_yaml
from gazefollow.data.build import build_datasets
from gazefollow.data.dataset import BAD_KEY, collate_samples
from gazefollow.diffusion.gaussian import build_diffusion
from gazefollow.diffusion.losses import training_losses
from gazefollow.evaluate import protocol_of, run_split
from gazefollow.models.gaze_model import build_model
from gazefollow.visualize import save_prediction_grid


def model_id(config: Config) -> str:
    """The middle part of a run directory's path: dataset, decoder and prediction type."""
    return f"{config.data.source_dataset}-{config.model.decoder}-{config.diffusion.prediction}"


def run_dir_for(config: Config) -> Path:
    """output_dir/<model id>/<tag>."""
    return Path(config.run.output_dir) / model_id(config) / config.run.tag


def git_commit() -> str:
    """The code's commit, recorded in the run directory and every checkpoint."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class EpochShuffle(Sampler):
    """A fresh permutation per epoch from (seed, epoch): the order is a pure function of both,
    so a resumed run sees the same batches as an uninterrupted one. Items are (position,
    epoch), so the dataset draws each sample's augmentation from the same pair."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        return iter([(position, self.epoch) for position in order])

    def __len__(self) -> int:
        return self.size


def make_accelerator(config: Config, run_dir: Path) -> Accelerator:
    """CPU when asked or when no GPU is present; wandb only when logging is not disabled."""
    device = config.run.device
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device=cuda but no CUDA device is available")
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if cpu and config.optim.amp == "fp16":
        raise ConfigError("optim.amp=fp16 (--amp O1) needs a GPU; on a CPU use bf16 (O2) or no")
    log_with = None if config.logging.wandb == "disabled" else "wandb"
    return Accelerator(cpu=cpu, mixed_precision=config.optim.amp, log_with=log_with,
                       project_dir=str(run_dir))


def start_trackers(accelerator: Accelerator, config: Config, run_dir: Path, run_id: str) -> None:
    """wandb through Accelerate, under the run directory; the run id makes a resume continue
    the same wandb run."""
    if config.logging.wandb == "disabled":
        return
    accelerator.init_trackers(
        "gazefollow", config=to_dict(config),
        init_kwargs={"wandb": {"mode": config.logging.wandb, "dir": str(run_dir),
                               "name": config.run.tag, "id": run_id, "resume": "allow"}})


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


def validate(model, ema, diffusion, dataset, config: Config, accelerator, step: int,
             run_dir: Path, log) -> None:
    """Validation metrics with the EMA weights (swapped in, then back), logged; never test.
    With ``eval.debugging_maps`` (the original's ``--Debugging_maps``) the first validation
    samples are also drawn: ``debugging_maps/step_<N>.png`` in the run directory.

    The main process evaluates while the others wait at a barrier, so no collective operation
    of the next training step is left hanging for the length of the evaluation."""
    if accelerator.is_main_process:
        net = accelerator.unwrap_model(model)
        ema.store(net.parameters())
        ema.copy_to(net.parameters())
        steps = config.diffusion.sample_time_steps
        keep = config.eval.num_visualize if config.eval.debugging_maps else 0
        result = run_split(net, diffusion, dataset, [steps], batch_size=config.eval.batch_size,
                           seed=config.run.seed, device=accelerator.device, num_keep=keep,
                           prior_inout=0.5, protocol=protocol_of(config),
                           desc="val")  # the prior's row is not used here
        ema.restore(net.parameters())
        net.train()
        metrics = result["model"][steps]
        accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
        log(f"step {step} validation (EMA, {config.diffusion.sampler} {steps} steps): " +
            "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if result["samples"]:
            (run_dir / "debugging_maps").mkdir(exist_ok=True)
            save_prediction_grid(result["samples"], Path(config.data.dataset_dir),
                                 run_dir / "debugging_maps" / f"step_{step:07d}.png")
    accelerator.wait_for_everyone()


def all_finite(accelerator, loss: torch.Tensor, model) -> bool:
    """NaN/Inf guard: is the loss and every gradient finite, on every process (all processes
    must agree to skip, or DDP would hang on the next collective)?"""
    bad = (~torch.isfinite(loss.detach())).any().float()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if grads:
        bad = bad + (~torch.isfinite(torch.stack([g.detach().float().abs().sum()
                                                  for g in grads]))).any().float()
    return accelerator.reduce(bad.reshape(1), reduction="sum").item() == 0


def make_lr_scheduler(optimizer, optim, total_steps: int):
    """Linear warm-up over ``optim.warmup_steps``, then constant or cosine decay.

    Stepped by hand once per optimizer step, not through accelerator.prepare: a prepared
    scheduler steps once per process, which would make warm-up depend on the process count."""
    name = {"constant": "constant_with_warmup", "cosine": "cosine"}[optim.lr_schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=optim.warmup_steps,
                         num_training_steps=max(total_steps, 1))


# Keys that may change when a run is resumed; any other difference is refused, because the
# optimizer, scheduler and EMA states restored from the checkpoint would silently win.
RESUMABLE_CHANGES = ("run.max_steps", "run.print_every", "run.save_every", "run.keep_snapshots",
                     "run.device", "run.resume", "optim.epochs", "data.num_workers", "eval.",
                     "logging.", "diffusion.sample_time_steps", "diffusion.sampler",
                     "diffusion.clip_denoised", "diffusion.eval_from_picture",
                     "diffusion.time_noise")


def resume_conflicts(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between a checkpoint's config and this run's."""
    out = []
    for key in sorted(set(stored) | set(current)):
        dotted, a, b = prefix + key, stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += resume_conflicts(a, b, dotted + ".")
        elif a != b and not any(dotted.startswith(ok) for ok in RESUMABLE_CHANGES):
            out.append(f"{dotted}: {a!r} -> {b!r}")
    return out


def resume(state: dict, config: Config, model, ema, optimizer, lr_scheduler) -> int:
    """Restore everything the loop needs from a checkpoint; return its step."""
    conflicts = resume_conflicts(state["config"], to_dict(config))
    if conflicts:
        raise ConfigError("the run directory holds a checkpoint made with another config ("
                          + "; ".join(conflicts[:6]) + "); use --no_resume or another --tag")
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    return state["step"]


def write_train_stats(run_dir: Path, steps: int, seconds: float, config: Config,
                      processes: int, bad_inputs: list[str], nonfinite_steps: int) -> None:
    """Measured speed of this session's steps (the README's numbers come from here), and the
    samples skipped because they failed to load."""
    stats = {"steps": steps, "seconds": round(seconds, 1),
             "seconds_per_step": round(seconds / steps, 4), "batch_size": config.data.batch_size,
             "processes": processes, "threads": torch.get_num_threads(),
             "skipped_unreadable": len(bad_inputs), "skipped_examples": bad_inputs[:20],
             "nonfinite_steps_skipped": nonfinite_steps}
    (run_dir / "train_stats.json").write_text(json.dumps(stats, indent=2))


def train(config: Config, log=print) -> Path:
    """Train as configured; return the run directory (holding checkpoint.pt and config.yaml)."""
    run_dir = run_dir_for(config)
    accelerator = make_accelerator(config, run_dir)
    set_seed(config.run.seed + accelerator.process_index)
    if not accelerator.is_main_process:
        log = lambda *_: None  # noqa: E731  one process speaks
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(config))
        (run_dir / "git_commit.txt").write_text(git_commit() + "\n")

    # 1. data. The main process builds the synthetic world (if needed) before the others read it.
    with accelerator.main_process_first():
        datasets = build_datasets(config, splits=("train", "val"), log=log)
    train_set = datasets["train"]
    loader = DataLoader(train_set, batch_size=config.data.batch_size,
                        sampler=EpochShuffle(len(train_set), config.run.seed),
                        num_workers=config.data.num_workers, drop_last=True,
                        collate_fn=collate_samples,
                        persistent_workers=config.data.num_workers > 0)
    steps_per_epoch = len(loader) // accelerator.num_processes
    if steps_per_epoch == 0:
        raise ValueError(f"the train split has {len(train_set)} samples, fewer than one batch of "
                         f"{config.data.batch_size} x {accelerator.num_processes} process(es)")
    total_steps = config.optim.epochs * steps_per_epoch
    if config.run.max_steps is not None:
        total_steps = min(total_steps, config.run.max_steps)

    # 2. model, diffusion, optimiser (one learning rate per part), LR schedule, EMA.
    model = build_model(config)
    if config.run.init_weights:
        load_init_weights(model, config.run.init_weights, config.run.init_key_map, log)
    if config.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # None for the regression decoder: one forward pass, no noise, no sampler
    diffusion = build_diffusion(config) if config.model.decoder == "diffusion" else None
    optim = config.optim
    optimizer = torch.optim.AdamW(model.parameter_groups(optim.lr, optim.gaze_lr),
                                  weight_decay=optim.weight_decay)
    lr_scheduler = make_lr_scheduler(optimizer, optim, total_steps)
    ema = EMAModel(model.parameters(), decay=optim.ema_rate, use_ema_warmup=True,
                   inv_gamma=1.0, power=optim.ema_power)

    # 3. resume: everything the loop needs comes back, including the EMA and the wandb run id.
    step, checkpoint_path = 0, run_dir / CHECKPOINT_NAME
    run_id = f"{config.run.tag}-{int(time.time())}"
    if config.run.resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path)
        step = resume(state, config, model, ema, optimizer, lr_scheduler)
        run_id = state.get("wandb_run_id", run_id)
        log(f"resumed from {checkpoint_path} at step {step}")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema.to(accelerator.device)
    start_trackers(accelerator, config, run_dir, run_id)

    def save(final: bool = False) -> None:
        if not accelerator.is_main_process:
            return
        save_checkpoint(checkpoint_path, {
            "model": accelerator.unwrap_model(model).state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
            "step": step, "config": to_dict(config), "wandb_run_id": run_id,
            "git_commit": git_commit(),
        })
        if config.run.keep_snapshots and not final:
            (run_dir / "snapshots").mkdir(exist_ok=True)
            shutil.copyfile(checkpoint_path, run_dir / "snapshots" / f"step_{step:07d}.pt")

    # 4. the loop. Epoch and batch position are derived from the step, so resume skips ahead.
    log(f"training {total_steps} steps ({steps_per_epoch} per epoch, batch "
        f"{config.data.batch_size} x {accelerator.num_processes} process(es)) -> {run_dir}")
    model.train()
    tic, window, bad_inputs = time.perf_counter(), [], []  # bad_inputs: whole session
    nonfinite_total, nonfinite_run = 0, 0
    loop_start, first_step = time.perf_counter(), step
    while step < total_steps:
        epoch, skip = divmod(step, steps_per_epoch)
        # On the prepared loader: it re-applies its own epoch counter at every iteration.
        loader.set_epoch(epoch)
        epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
        for batch in epoch_loader:
            bad_inputs += batch.pop(BAD_KEY)  # skip mode: named, counted, reported at the end
            with accelerator.accumulate(model):
                losses = training_losses(model, diffusion, batch, config.loss)
                accelerator.backward(losses["loss"])
                finite = all_finite(accelerator, losses["loss"], model)
                if finite:
                    if accelerator.sync_gradients and optim.grad_clip > 0:
                        accelerator.clip_grad_norm_(model.parameters(), optim.grad_clip)
                    optimizer.step()
                    lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            step += 1  # a skipped step still consumed its batch: the data order stays exact
            if not finite:
                nonfinite_total, nonfinite_run = nonfinite_total + 1, nonfinite_run + 1
                log(f"step {step}: non-finite loss or gradient, update skipped "
                    f"({nonfinite_run} in a row, {nonfinite_total} in all)")
                accelerator.log({"nonfinite_steps": nonfinite_total}, step=step)
                if nonfinite_run > optim.max_nonfinite_steps:
                    step -= 1  # the checkpoint holds the last good state
                    save(final=True)
                    raise FloatingPointError(
                        f"{nonfinite_run} non-finite steps in a row (optim.max_nonfinite_steps="
                        f"{optim.max_nonfinite_steps}): stopped; the last good state "
                        f"(step {step}) is saved in {checkpoint_path}. Lower the learning rate "
                        "or check the data, then resume.")
                continue
            nonfinite_run = 0
            ema.step(accelerator.unwrap_model(model).parameters())
            # .item() is a device sync point: only once per logged value, not per tensor op.
            window.append(losses["loss"].item())
            logs = {"loss": window[-1], "lr": lr_scheduler.get_last_lr()[0],
                    **{k: losses[k].item() for k in ("inout_bce", "direction_loss") if k in losses},
                    **quartile_losses(losses, config.diffusion.train_time_steps)}
            accelerator.log(logs, step=step)
            if step % config.run.print_every == 0 or step == total_steps:
                rate = len(window) / (time.perf_counter() - tic)
                log(f"step {step}/{total_steps}  loss {sum(window) / len(window):.4f}  "
                    f"{rate:.2f} steps/s  {1 / rate:.3f} s/step  "
                    f"eta {(total_steps - step) / rate / 60:.1f} min")
                tic, window = time.perf_counter(), []
            if config.eval.evaluate_every and step % config.eval.evaluate_every == 0:
                validate(model, ema, diffusion, datasets["val"], config, accelerator, step,
                         run_dir, log)
            if step % config.run.save_every == 0:
                save()
            if step >= total_steps:
                break

    # 5. the final checkpoint (the evaluation loads it) and the trackers' end.
    save(final=True)
    if bad_inputs:
        log(f"SKIPPED {len(bad_inputs)} training samples that failed to load "
            "(data.on_bad_input=skip): " + " | ".join(bad_inputs[:5]))
    if accelerator.is_main_process and step > first_step:
        write_train_stats(run_dir, step - first_step, time.perf_counter() - loop_start, config,
                          accelerator.num_processes, bad_inputs, nonfinite_total)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run_dir
