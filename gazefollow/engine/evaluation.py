"""The one evaluation engine every task uses.

- ``predict_split``: the sharded prediction loop. Each process predicts its share of a split
  (no padding), samples that failed to load are collected (skip mode), every prediction is
  checked for NaN / Inf (diverged weights: one named error), and the rows of every process
  come back merged in dataset order, so means are summed as with one process.
- ``finish_evaluation``: the one end-of-run writer: ``metrics.json`` with the common
  ``info``, the task's own files and pictures, wandb, the skip report and the printed table.
- ``load_for_eval`` / ``evaluate_checkpoint``: saved weights with their stored config, and
  the evaluation folder named by what differs from training.

A task supplies ``predict_batch`` (what its model outputs) and ``make_rows`` (one row per
sample) to the loop, and returns an ``Evaluation`` from its ``evaluate``.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from gazefollow.config import ConfigError, config_changes, to_yaml
from gazefollow.engine.reporting import log_to_wandb, write_metrics
from gazefollow.engine.samples import BAD_KEY, collate_samples
from gazefollow.engine.stopping import prepare_worker


def shard_positions(size: int, shard: tuple[int, int], groups: list | None = None) -> list[int]:
    """Process ``index`` of ``count`` takes every count-th position (with ``groups``, one
    label per position, every count-th group whole, in order: a model that streams a track
    sees all of it): no padding, so gathering the shards yields every instance exactly once."""
    index, count = shard
    if groups is None:
        return list(range(index, size, count))
    mine = set(list(dict.fromkeys(groups))[index::count])
    return [position for position in range(size) if groups[position] in mine]


def gather_shards(items: list, shard: tuple[int, int]) -> list:
    """Every process's items, concatenated (a collective call with several processes)."""
    if shard[1] == 1:
        return items
    from accelerate.utils import gather_object
    return gather_object(items)


def to_device(batch: dict, device, non_blocking: bool = False) -> dict:
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


SAMPLE_NAME_KEYS = ("path", "uid", "subject", "index", "frame")


def sample_name(batch: dict, i: int) -> str:
    """How an error names sample ``i`` of a batch: its file, video, subject, index, frame."""
    parts = []
    for key in SAMPLE_NAME_KEYS:
        if key in batch:
            value = batch[key][i]
            value = value.item() if isinstance(value, torch.Tensor) else value
            parts.append(str(value) if key in ("path", "uid") else f"{key} {value}")
    return ", ".join(parts) or f"position {int(batch['position'][i])}"


def check_finite(batch: dict, outputs: dict) -> None:
    """Diverged weights give one named error, not a metric's crash later on. Tensors and
    arrays ([B, ...]) are checked; other outputs (lists, None) pass unchecked."""
    for key, values in outputs.items():
        if not isinstance(values, (torch.Tensor, np.ndarray)):
            continue
        array = np.asarray(values.detach().float().cpu() if torch.is_tensor(values) else values,
                           dtype=np.float64)
        bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FloatingPointError(f"{sample_name(batch, i)}: the model's {key} holds NaN or "
                                     "Inf; its weights have diverged")


@dataclass
class Predictions:
    rows: list[dict]  # one per sample, in dataset order, merged over processes
    bad_input: list[str]  # messages of the samples skipped because they failed to load


@torch.no_grad()
def predict_split(model, dataset, predict_batch: Callable, make_rows: Callable, *,
                  batch_size: int, device, shard: tuple[int, int] = (0, 1),
                  num_workers: int = 0, desc: str = "eval",
                  groups: list | None = None) -> Predictions:
    """``predict_batch(model, batch)`` -> {name: [B, ...] outputs}, each checked finite;
    ``make_rows(batch, outputs)`` -> a row per sample, each with its ``position``, given the
    batch as loaded (on the host) and run on a second thread while the next batch is
    predicted: it must only read its arguments (and keep its own state in order). With
    ``shard`` = (process index, process count) each process takes its share (whole
    ``groups`` when given) and every process gets the merged rows (a collective call)."""
    model.eval()
    positions = shard_positions(len(dataset), shard, groups)
    # its own generator: evaluating never draws from the global RNG (exact training resume)
    pinned = torch.device(device).type == "cuda"  # copies to the GPU beside the host
    loader = DataLoader(Subset(dataset, positions), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_samples,
                        worker_init_fn=prepare_worker, generator=torch.Generator(),
                        pin_memory=pinned)
    rows, bad, scored = [], [], None
    progress = tqdm(total=len(positions), desc=desc, unit="sample", leave=False,
                    disable=None if shard[0] == 0 else True)
    # a batch's rows are made on a second thread, from the loader's copy of the batch on the
    # host, while the next batch is predicted (a GPU would otherwise wait for the host's
    # scoring); one batch at a time, in order
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rows") as scorer:
        for host_batch in loader:
            bad += host_batch.pop(BAD_KEY)
            batch = to_device(host_batch, device, non_blocking=pinned)
            outputs = predict_batch(model, batch)
            check_finite(batch, outputs)
            rows += scored.result() if scored is not None else []
            scored = scorer.submit(make_rows, host_batch, outputs)
            progress.update(len(batch["position"]))
        rows += scored.result() if scored is not None else []
    progress.close()
    rows = sorted(gather_shards(rows, shard), key=lambda row: row["position"])
    return Predictions(rows, gather_shards(bad, shard))


@dataclass
class Evaluation:
    """What a task's ``evaluate`` measured; ``finish_evaluation`` writes it."""

    results: dict  # metrics.json's content without "info"
    info: dict  # the task's own info fields (split, sizes, baselines ...)
    bad_input: list[str]  # samples skipped because they failed to load
    table: str  # the printed summary
    # run_dir -> pictures written (metrics.json aside: predictions, pictures, task files)
    write_files: Callable = field(default=lambda run_dir: [])


def finish_evaluation(config, evaluation: Evaluation, run_dir: str | Path, weights: str,
                      shard: tuple[int, int], run_id: str | None, differs: dict | None,
                      log) -> dict:
    """metrics.json (the task's results, ``info`` with the common fields), the task's files,
    wandb, the skip report and the table; only process 0 writes. -> metrics.json's content."""
    bad = evaluation.bad_input
    results = {**evaluation.results, "info": {
        "task": config.run.task, **evaluation.info, "weights": weights, "processes": shard[1],
        "skipped_unreadable": len(bad), "skipped_examples": bad[:5],
        "differs_from_training": differs or {}, "output_dir": str(run_dir)}}
    if shard[0] != 0:
        return results
    run_dir = Path(run_dir)
    write_metrics(results, run_dir / "metrics.json")
    pictures = evaluation.write_files(run_dir)
    log_to_wandb(config, run_dir, results, pictures, run_id)
    if bad:
        log(f"SKIPPED {len(bad)} samples that failed to load (data.on_bad_input=skip): "
            + " | ".join(bad[:5]))
    log(evaluation.table)
    return results


def run_evaluation(task, config, model, run_dir, device, weights: str, log=print,
                   run_id: str | None = None, shard: tuple[int, int] = (0, 1),
                   differs: dict | None = None) -> dict:
    """The end-of-run evaluation of ``task``: its ``evaluate``, then the one writer."""
    if shard[0] != 0:
        log = lambda *_: None  # noqa: E731  one process speaks
    evaluation = task.evaluate(config, model, device, weights, shard, log)
    return finish_evaluation(config, evaluation, run_dir, weights, shard, run_id, differs, log)


def ema_into(model, config, state: dict) -> str:
    """The checkpoint's EMA weights into ``model`` when ``optim.ema_on`` and it holds them:
    -> "ema", else "raw"."""
    from diffusers.training_utils import EMAModel

    from gazefollow.engine.optimizer import ema_parameters, load_ema_state

    if not (config.optim.ema_on and state.get("ema")):
        return "raw"
    ema = EMAModel(ema_parameters(model, config.optim))
    load_ema_state(ema, state["ema"], model, config.optim)
    ema.copy_to(ema_parameters(model, config.optim))
    return "ema"


def build_trained_model(task, config, state: dict, path: Path):
    """The task's model with a checkpoint's weights. Its frozen parameters are not in the
    checkpoint: they come from the model's build, seeded as training seeded its first
    process, and from the initial-weights file the run started from (``engine.weights``)."""
    from gazefollow.engine.weights import load_trained_state, restore_frozen

    with torch.random.fork_rng(devices=[]):  # the model is built on the CPU
        torch.manual_seed(state["config"]["run"]["seed"])
        model = task.build_model(config)
    restore_frozen(model, state, config.run, task.init_weights, str(path))
    load_trained_state(model, state, str(path))
    return model


def load_for_eval(checkpoint: str | Path, overrides: list = (), layers: list = (), *,
                  registry) -> dict:
    """Saved weights ready to predict: {"config", "model" (on its device, EMA weights when
    ``optim.ema_on`` and the checkpoint holds them), "device", "weights" ("ema" or "raw"),
    "state", "path", "run_dir", "suffix"}; the checkpoint's config with ``layers`` and
    ``overrides`` on top. A file of another code base (``registry.foreign_checkpoints``, by
    suffix) is read by its own loader; a published model's released file
    (``registry.published``, by its keys) becomes its architecture with its weights."""
    from gazefollow.engine.checkpoint import (LEGACY_FILE, STATE_FILE, CheckpointError,
                                              latest_checkpoint, load_checkpoint,
                                              resolve_checkpoint, run_dir_of)
    from gazefollow.engine.runtime import eval_device

    path = resolve_checkpoint(checkpoint)
    if path.suffix in registry.foreign_checkpoints:
        config = registry.build_config(layers, overrides)
        return registry.foreign_checkpoints[path.suffix](path, config)
    if registry.published is not None and path.name not in (STATE_FILE, LEGACY_FILE):
        # a file named by the user may be a published model's (ours have these two names)
        found = registry.published(path, layers, overrides, registry)
        if found is not None:
            return found
    state = load_checkpoint(path, trusts_pickle(overrides))
    task_name = (state["config"].get("run") or {}).get("task", "following")
    if task_name not in registry.tasks:
        raise CheckpointError(f"{path} holds a model of the '{task_name}' task; this loader "
                              f"knows only {sorted(registry.tasks)}")
    latest = latest_checkpoint(run_dir_of(path))
    config = registry.build_config(layers, overrides, base=state["config"])
    model = build_trained_model(registry.task_of(config), config, state, path)
    weights = ema_into(model, config, state)
    device = eval_device(config)
    return {"config": config, "model": model.to(device), "weights": weights, "state": state,
            "device": device, "path": path, "run_dir": run_dir_of(path),
            # outputs of an older checkpoint of the run are named by its step, so they never
            # overwrite those of the newest
            "suffix": "" if latest in (None, path.parent) else f"-step{state['step']}"}


def trusts_pickle(overrides) -> bool:
    """Whether the overrides say ``run.trust_pickle=true``: read before the checkpoint's own
    config exists, since that config is inside the file to be trusted."""
    value = None
    for item in overrides:
        key, new = item if isinstance(item, tuple) else (str(item).split("=", 1) + [""])[:2]
        if key == "run.trust_pickle":
            value = new
    return str(value).strip().lower() in ("true", "1", "yes")


def evaluate_checkpoint(checkpoint: str | Path, overrides: list = (), out_dir=None,
                        layers: list = (), log=print, *, registry) -> dict:
    """Evaluate saved weights: the checkpoint's own config, then YAML ``layers`` and
    ``overrides`` on top (e.g. ``sampling.steps=4``, ``eval.split=val``,
    ``optim.ema_on=false`` for the raw weights, ``eval.batch_size=1``)."""
    from gazefollow.engine.runtime import eval_processes

    loaded = load_for_eval(checkpoint, overrides, layers, registry=registry)
    config, path, weights, model = (loaded["config"], loaded["path"], loaded["weights"],
                                    loaded["model"])
    task = registry.task_of(config)
    differs = differs_from_training(config, loaded["state"]["config"], task.evaluation_keys)
    if "eval.fold" in differs:  # the other folds' test subjects are this model's training ones
        raise ConfigError(f"eval.fold {differs['eval.fold'][0]} -> {differs['eval.fold'][1]}: a "
                          "model is tested on its own fold only (it trained on the others)")
    if out_dir is None:
        tail = "-subsampled" if config.data.subsample_test and config.eval.split == "test" else ""
        tail += f"-{_short_hash(differs)}" if differs else ""
        out_dir = loaded["run_dir"] / (f"eval-{config.eval.split}-"
                                       f"{task.eval_label(config, model)}-{weights}"
                                       f"{tail}{loaded['suffix']}")
    processes = eval_processes(config)
    if processes.is_main_process:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "eval_config.yaml").write_text(to_yaml(config))
        log(f"evaluating {path} (step {loaded['state']['step']}, {processes.num_processes} "
            f"process(es)) -> {out_dir}")
    return run_evaluation(task, config, model, out_dir, loaded["device"], weights, log,
                          run_id=loaded["state"].get("wandb_run_id"),
                          shard=(processes.process_index, processes.num_processes),
                          differs=differs)


# What an evaluation may change from training and that its folder name must tell apart (the
# split, sampler, steps, EMA and subsampling are in the name itself; the rest as a hash).
# The task adds its own (Task.evaluation_keys, e.g. the sampler).
EVALUATION_KEYS = ("data.", "eval.", "optim.ema_on")


def differs_from_training(config, stored: dict, task_keys: tuple = ()) -> dict:
    """{dotted key: [training value, evaluation value]} for the evaluation-time keys (the
    engine's and ``task_keys``) that differ from the checkpoint's own config
    (``eval.eval_weights`` aside)."""
    keys = EVALUATION_KEYS + tuple(task_keys)
    return {key: change for key, change in config_changes(stored, config).items()
            if key.startswith(keys) and key != "eval.eval_weights"}


def _short_hash(values: dict) -> str:
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]

