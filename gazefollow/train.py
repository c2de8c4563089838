"""The training loop: Accelerate, AdamW with a learning rate per model part, EMA, checkpoints.

Read top to bottom: set-up, data, model and optimiser, resume, the loop, the final save.
One process, one GPU or many (``accelerate launch`` / ``torchrun``) run the same code.
"""
from __future__ import annotations

import itertools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from gazefollow.checkpoint import (CHECKPOINTS_DIR, find_resumable, incomplete_checkpoints,
                                   load_checkpoint, load_rng_state, save_checkpoint)
from gazefollow.config import Config, to_dict, to_yaml
from gazefollow.data.build import build_datasets
from gazefollow.data.dataset import BAD_KEY, collate_samples
from gazefollow.diffusion.gaussian import build_diffusion
from gazefollow.diffusion.losses import training_losses
from gazefollow.init_weights import load_initial_weights
from gazefollow.models.gaze_model import build_model, optimizer_parameter_groups
from gazefollow.run_records import StepLog, git_commit, peak_memory_mib, write_train_stats
from gazefollow.training_parts import (EpochShuffle, all_finite, describe_setup,
                                       make_accelerator, make_lr_scheduler, restore,
                                       start_trackers, step_logs, timed, validate)


def model_id(config: Config) -> str:
    """The middle part of a run directory's path: dataset, decoder and prediction type."""
    return f"{config.data.source_dataset}-{config.model.decoder}-{config.diffusion.prediction}"


def run_dir_for(config: Config) -> Path:
    """output_dir/<model id>/<tag>."""
    return Path(config.run.output_dir) / model_id(config) / config.run.tag


@dataclass
class TrainOutcome:
    run_dir: Path  # checkpoints/, config.yaml, train_log.jsonl, train_stats.json
    finished: bool  # False when run.halt_at_step ended this session before the last step


def train(config: Config, log=print) -> TrainOutcome:
    """Train as configured (resuming the run directory's newest complete checkpoint)."""
    run_dir = run_dir_for(config)
    accelerator: Accelerator = make_accelerator(config, run_dir)
    set_seed(config.run.seed + accelerator.process_index)  # each process its own noise
    if not accelerator.is_main_process:
        log = lambda *_: None  # noqa: E731  one process speaks

    # 1. data. The main process builds the synthetic world (if needed) before the others read
    # it. The loader's own generator keeps DataLoader seeding off the global RNG, so creating
    # an iterator on resume draws nothing the uninterrupted run did not.
    with accelerator.main_process_first():
        datasets = build_datasets(config, splits=("train", "val"), log=log)
    train_set = datasets["train"]
    loader = accelerator.prepare(DataLoader(
        train_set, batch_size=config.data.batch_size, drop_last=True,
        sampler=EpochShuffle(len(train_set), config.run.seed), collate_fn=collate_samples,
        num_workers=config.data.num_workers, persistent_workers=config.data.num_workers > 0,
        generator=torch.Generator().manual_seed(config.run.seed)))
    accumulation = config.optim.grad_accumulation
    steps_per_epoch = len(loader) // accumulation  # len: this process's share of batches
    if steps_per_epoch == 0:
        raise ValueError(f"the train split has {len(train_set)} samples, fewer than one step "
                         f"of {config.data.batch_size} x {accumulation} accumulation x "
                         f"{accelerator.num_processes} process(es)")
    total_steps = config.optim.epochs * steps_per_epoch
    if config.run.max_steps is not None:
        total_steps = min(total_steps, config.run.max_steps)
    stop_step = min(total_steps, config.run.halt_at_step or total_steps)
    # The checkpoint to resume: chosen by the main process and shared, so every process
    # resumes the same one even where a shared filesystem shows files late.
    latest = find_resumable(run_dir) if config.run.resume else None
    latest = broadcast_object_list([latest])[0] if accelerator.num_processes > 1 else latest

    # 2. model, diffusion, optimiser (one learning rate per part), LR schedule, EMA. ``net`` is
    # the plain module (weights, EMA, checkpoints); ``model`` what runs (DDP, compiled).
    net = build_model(config)
    if config.run.init_weights and latest is None:  # a resumed run has its own weights
        run_dir.mkdir(parents=True, exist_ok=True)
        report_file = run_dir / "init_weights_report.json"
        load_initial_weights(net, config.run, log,
                             report_file=report_file if accelerator.is_main_process else None)
    if config.model.channels_last:
        net = net.to(memory_format=torch.channels_last)
    # None for the regression decoder: one forward pass, no noise, no sampler
    diffusion = build_diffusion(config) if config.model.decoder == "diffusion" else None
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(net, config.optim))
    # Stepped by hand once per optimizer step, never prepared: a prepared scheduler steps once
    # per process, which would make warm-up depend on the process count.
    lr_scheduler = make_lr_scheduler(optimizer, config.optim, total_steps)
    ema = EMAModel(net.parameters(), decay=config.optim.ema_rate,
                   use_ema_warmup=config.optim.ema_warmup,
                   inv_gamma=1.0, power=config.optim.ema_power)

    # 3. resume: everything the loop needs comes back, including the EMA and the wandb run id.
    step, counters, saved_step = 0, {"nonfinite_steps": 0}, None
    run_id, commit = f"{config.run.tag}-{int(time.time())}", git_commit()
    if config.run.resume:
        for broken in incomplete_checkpoints(run_dir):
            log(f"ignoring {broken}: its save was interrupted")
    if latest is not None:
        state = load_checkpoint(latest)
        step = restore(state, config, accelerator.num_processes, net, ema, optimizer,
                       lr_scheduler)
        counters.update(state.get("counters", {}))
        run_id, saved_step = state.get("wandb_run_id", run_id), step
        log(f"resumed from {latest} at step {step}")
    accelerator.wait_for_everyone()  # nobody still reads a checkpoint that may be deleted now
    if accelerator.is_main_process:
        if not config.run.resume and (run_dir / CHECKPOINTS_DIR).is_dir():
            # a fresh start must not leave older checkpoints to be mistaken for its own
            log(f"run.resume=false: deleting the earlier checkpoints in "
                f"{run_dir / CHECKPOINTS_DIR}")
            shutil.rmtree(run_dir / CHECKPOINTS_DIR)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(config))
        (run_dir / "git_commit.txt").write_text(commit + "\n")
    accelerator.wait_for_everyone()
    model, optimizer = accelerator.prepare(net, optimizer)
    if config.model.compile:
        model = torch.compile(model, backend=config.model.compile_backend)
    ema.to(accelerator.device)
    start_trackers(accelerator, config, run_dir, run_id)
    step_log = StepLog(run_dir / "train_log.jsonl", step, accelerator.is_main_process, log)

    def save() -> None:
        """A checkpoint of this step, unless it is already on disk (decided in memory, so
        every process makes the same collective calls)."""
        nonlocal saved_step
        if step == saved_step:
            return
        state = {} if not accelerator.is_main_process else {
            "model": net.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
            "step": step, "total_steps": total_steps, "epoch": step // steps_per_epoch,
            "counters": dict(counters), "processes": accelerator.num_processes,
            "config": to_dict(config), "wandb_run_id": run_id, "git_commit": commit}
        save_checkpoint(accelerator, run_dir, step, state, config.run.keep_last)
        saved_step = step

    # The RNG streams come back last, so nothing in the set-up draws from them afterwards.
    if latest is not None and not load_rng_state(latest, accelerator.process_index,
                                                 accelerator.device):
        log(f"{latest} holds no RNG state for process {accelerator.process_index}: training "
            "continues, but not bit-exactly")

    # 4. the loop. Epoch and position in it follow from the step, so a resumed run skips the
    # batches it has seen and sees the rest in the same shuffled order.
    log(describe_setup(accelerator, config))
    log(f"training {total_steps} steps ({steps_per_epoch} per epoch) -> {run_dir}")
    model.train()
    progress = tqdm(total=total_steps, initial=step, unit="step", desc="train",
                    disable=None if accelerator.is_main_process else True)
    clock = {"data_wait": 0.0}
    tic, window, bad_inputs, nonfinite_run = time.perf_counter(), [], [], 0
    loop_start, first_step = time.perf_counter(), step
    nonfinite_loss = torch.zeros(1, device=accelerator.device)
    while step < stop_step:
        epoch, done = divmod(step, steps_per_epoch)
        # On the prepared loader: it re-applies its own epoch counter at every iteration.
        loader.set_epoch(epoch)
        skipped = accelerator.skip_first_batches(loader, done * accumulation) if done else loader
        # whole optimizer steps only: a trailing partial accumulation is not a step
        micro_batches = itertools.islice(skipped, (steps_per_epoch - done) * accumulation)
        for batch in timed(micro_batches, clock):
            bad_inputs += batch.pop(BAD_KEY)  # skip mode: named, counted, reported at the end
            with accelerator.accumulate(model):
                losses = training_losses(model, diffusion, batch, config.loss)
                accelerator.backward(losses["loss"])
                # every micro-batch's loss is checked, not only the last one's
                nonfinite_loss += (~torch.isfinite(losses["loss"].detach())).float()
                finite = accelerator.sync_gradients and all_finite(accelerator, nonfinite_loss,
                                                                   net)
                if finite:
                    if config.optim.grad_clip > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                    optimizer.step()
                    if not optimizer.step_was_skipped:  # fp16: the scaler skips overflows
                        lr_scheduler.step()
                if accelerator.sync_gradients:
                    optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            nonfinite_loss.zero_()
            step += 1  # a skipped step still consumed its batches: the data order stays exact
            progress.update(1)
            if finite:
                nonfinite_run = 0
                if not optimizer.step_was_skipped:
                    ema.step(net.parameters())
                logs = step_logs(losses, optimizer, epoch, config)
                window.append(logs["loss"])
                accelerator.log(logs, step=step)
                step_log.write(step, logs)
                progress.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            else:
                counters["nonfinite_steps"] += 1
                nonfinite_run += 1
                log(f"step {step}: non-finite loss or gradient, update skipped "
                    f"({nonfinite_run} in a row, {counters['nonfinite_steps']} in all)")
                accelerator.log({"nonfinite_steps": counters["nonfinite_steps"]}, step=step)
                if nonfinite_run > config.optim.max_nonfinite_steps:
                    step -= 1  # the checkpoint holds the last good state, not this step's
                    save()
                    raise FloatingPointError(
                        f"{nonfinite_run} non-finite steps in a row (optim.max_nonfinite_steps="
                        f"{config.optim.max_nonfinite_steps}): stopped; the last good state "
                        f"(step {step}) is saved under {run_dir / CHECKPOINTS_DIR}. Lower the "
                        "learning rate or check the data, then resume.")
            if window and (step % config.run.print_every == 0 or step == stop_step):
                rate = len(window) / (time.perf_counter() - tic)
                log(f"step {step}/{total_steps}  loss {sum(window) / len(window):.4f}  "
                    f"{rate:.2f} steps/s  {1 / rate:.3f} s/step  "
                    f"eta {(total_steps - step) / rate / 60:.1f} min")
                tic, window = time.perf_counter(), []
            if config.eval.evaluate_every and step % config.eval.evaluate_every == 0:
                validate(net, ema, diffusion, datasets["val"], config, accelerator, step,
                         run_dir, log)
            if step % config.run.save_every == 0:
                save()
            if step >= stop_step:
                break
    progress.close()

    # 5. the last checkpoint (the evaluation loads it), the session's numbers, the trackers.
    save()
    if step < total_steps:
        log(f"halted at step {step} of {total_steps} (run.halt_at_step); run again without it "
            "(or with a later one) to resume")
    if accelerator.num_processes > 1:  # every process's skipped samples, not only the main's
        bad_inputs = gather_object(bad_inputs)
    if bad_inputs:
        log(f"SKIPPED {len(bad_inputs)} training samples that failed to load "
            "(data.on_bad_input=skip): " + " | ".join(bad_inputs[:5]))
    peaks = accelerator.gather(torch.tensor([peak_memory_mib(accelerator.device)],
                                            device=accelerator.device)).tolist()
    if accelerator.is_main_process and step > first_step:
        seconds, steps = time.perf_counter() - loop_start, step - first_step
        global_batch = config.data.batch_size * accumulation * accelerator.num_processes
        write_train_stats(run_dir, {
            "steps": steps, "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / steps, 4),
            "samples_per_second": round(steps * global_batch / seconds, 2),
            "global_batch": global_batch, "processes": accelerator.num_processes,
            "threads_per_process": torch.get_num_threads(),
            "data_wait_share": round(clock["data_wait"] / seconds, 4),
            "peak_memory_mib_per_process": [round(p) for p in peaks],
            "skipped_unreadable": len(bad_inputs), "skipped_examples": bad_inputs[:20],
            "nonfinite_steps_skipped": counters["nonfinite_steps"]})
    accelerator.wait_for_everyone()
    for tracker in accelerator.trackers:  # not end_training(): the evaluation still needs
        tracker.finish()                  # the process group
    return TrainOutcome(run_dir, finished=step >= total_steps)
