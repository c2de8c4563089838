"""The training loop: Accelerate, AdamW with a learning rate per model part, EMA, checkpoints.

Read top to bottom: set-up, data, model and optimiser, resume or start, the loop, the final
save. One process, one GPU or many (``accelerate launch`` / ``torchrun``) run the same code,
for every task: the task (``engine.task.Task``) gives the datasets, the model, the losses and
the validation metrics. The pieces live in ``state.py`` (the run's state, resume, saving),
``step.py`` (one optimizer step), ``optimizer.py`` (groups, schedules, EMA), ``session.py``
(trackers, progress, validation, statistics) and ``runtime.py`` (devices, processes).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm

from gazefollow.config import Config
from gazefollow.engine.optimizer import make_ema, make_lr_scheduler, make_optimizer
from gazefollow.engine.order import EpochShuffle
from gazefollow.engine.run_records import run_logs
from gazefollow.engine.runtime import describe_setup, make_accelerator, runs_on_cpu
from gazefollow.engine.samples import BAD_KEY, collate_samples
from gazefollow.engine.session import (ProgressLog, end_session, logs_written, start_trackers,
                                       timed, validate, write_logs)
from gazefollow.engine.state import (TrainParts, checkpoint_to_resume, epoch_batches,
                                     load_start_weights, plan_run, restore_rng, resume_or_start,
                                     save)
from gazefollow.engine.step import OptimizerStep, PendingLogs
from gazefollow.engine.stopping import prepare_worker


def run_dir_for(config: Config, task) -> Path:
    """output_dir/<dataset>-<model id>/<tag>, e.g. synthetic-diffusion-x0/default or
    synthetic_faces-resnet-fold00/default (the task's ``run_label``)."""
    label = task.run_label(config)
    return Path(config.run.output_dir) / f"{config.data.source_dataset}-{label}" / config.run.tag


@dataclass
class TrainOutcome:
    run_dir: Path  # checkpoints/, config.yaml, train_log.jsonl, train_stats.json
    finished: bool  # False when run.halt_at_step or a signal ended the session early
    interrupted_by: str | None = None  # "SIGINT" / "SIGTERM": stopped on request, saved
    step: int = 0  # the step this session ended at (its checkpoint's)


def train_loader(dataset, config: Config) -> DataLoader:
    """Shuffled by (seed, epoch); the loader's own generator keeps DataLoader seeding off the
    global RNG, so creating an iterator on resume draws nothing an unbroken run did not."""
    data = config.data
    # a dataset with its own draws (a weighted joint mix) gives its sampler
    sampler = (dataset.sampler(config.run.seed) if hasattr(dataset, "sampler") else
               EpochShuffle(len(dataset), config.run.seed))
    # pinned (page-locked) batches on a GPU: their copies to the device run beside the host
    return DataLoader(dataset, batch_size=data.batch_size, drop_last=True, sampler=sampler,
                      collate_fn=collate_samples, num_workers=data.num_workers,
                      persistent_workers=data.num_workers > 0,
                      worker_init_fn=prepare_worker, pin_memory=not runs_on_cpu(config),
                      generator=torch.Generator().manual_seed(config.run.seed))


def train(config: Config, task, log=print) -> TrainOutcome:
    """Train ``task`` as configured (resuming the run folder's newest complete checkpoint)."""
    run_dir = run_dir_for(config, task)
    accelerator = make_accelerator(config, run_dir)
    set_seed(config.run.seed + accelerator.process_index)  # each process its own noise
    if not accelerator.is_main_process:
        log = lambda *_: None  # noqa: E731  one process speaks

    # 1. data: the main process builds the synthetic world (if needed) before the others read
    # it; every split the run will use is read and checked now, not after hours of training
    with accelerator.main_process_first():
        datasets = task.build_datasets(config, splits=("train", "val", config.eval.split),
                                       log=log)
    loader = accelerator.prepare(train_loader(datasets["train"], config))
    state = plan_run(config, len(loader), accelerator.num_processes, len(datasets["train"]))
    latest = checkpoint_to_resume(config, run_dir, accelerator)

    # 2. model, optimiser (one group per part), LR schedule (stepped by hand once per optimizer
    # step, never prepared: a prepared one steps once per process), EMA
    net = task.build_model(config)
    load_start_weights(net, task, config, state, latest, run_dir, accelerator, log)
    if config.model.channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(net, config.optim, fused=accelerator.device.type == "cuda")
    parts = TrainParts(net, make_ema(net, config.optim), optimizer, make_lr_scheduler(
        optimizer, config.optim, state.total_steps, state.steps_per_epoch))

    # 3. resume or start; then what runs: DDP, compiled; the RNG streams come back last
    resume_or_start(state, latest, parts, config, run_dir, accelerator, log, task)
    parts.model, parts.optimizer = accelerator.prepare(net, parts.optimizer)
    if config.model.compile:
        parts.model = torch.compile(parts.model, backend=config.model.compile_backend)
    parts.ema.to(accelerator.device)
    start_trackers(accelerator, config, run_dir, state.run_id, net, log)
    step_log, val_log = run_logs(run_dir, state.step, accelerator.is_main_process, log)
    restore_rng(latest, accelerator, log)

    # 4. the loop: optimizer steps until this session's stop step
    log(describe_setup(accelerator, config))
    log(f"training {state.total_steps} steps ({state.steps_per_epoch} per epoch) -> {run_dir}")
    parts.model.train()
    progress = tqdm(total=state.total_steps, initial=state.step, unit="step", desc="train",
                    disable=None if accelerator.is_main_process else True)
    optimizer_step = OptimizerStep(accelerator, parts, config, state, task, run_dir, log)
    printer, clock, bad_inputs = ProgressLog(state.total_steps, log), {"data_wait": 0.0}, []
    loop_start, first_step = time.perf_counter(), state.step
    pending = PendingLogs()  # each step's logs, on the device until a print step
    with optimizer_step.stop as stop, logs_written(pending, accelerator, step_log, printer):
        while state.step < state.stop_step:
            for batch in timed(epoch_batches(accelerator, loader, state, config), clock):
                bad_inputs += batch.pop(BAD_KEY)  # skip mode: named, counted, reported at the end
                result = optimizer_step(batch)  # counts the step; the NaN guard may stop the run
                if result is None:
                    continue  # a micro-batch inside an accumulating step
                progress.update(1)
                if result.finite:
                    epoch = (state.step - 1) // state.steps_per_epoch  # the step's own epoch
                    pending.add(state.step, result.losses, parts.optimizer, epoch)
                validates = state.due(config.eval.evaluate_every, config.eval.evaluate_every_epochs)
                saves = state.due(config.run.save_every, config.run.save_every_epochs)
                if validates or saves or state.step % config.run.print_every == 0 or \
                        state.step >= state.stop_step:  # logs are read back only here
                    write_logs(pending, accelerator, step_log, printer, progress)
                printer.maybe_print(state.step, config.run.print_every, state.stop_step)
                if validates:
                    validate(task, net, parts.ema, datasets.get("val"), config, accelerator,
                             state.step, run_dir, log, val_log)
                if saves:
                    save(state, parts, config, run_dir, accelerator)
                if stop.requested(accelerator, result.stop_anywhere):  # SIGINT / SIGTERM
                    state.stop_step, state.interrupted_by = state.step, stop.received
                if state.step >= state.stop_step:
                    break
        progress.close()
        # 5. the last checkpoint (the evaluation loads it), the session's numbers, the trackers
        save(state, parts, config, run_dir, accelerator)
        end_session(state, first_step, time.perf_counter() - loop_start, clock, bad_inputs,
                    config, run_dir, accelerator, log)
    return TrainOutcome(run_dir, state.step >= state.total_steps, state.interrupted_by,
                        state.step)
