"""Evaluation: sample heatmaps for a split and score them with the protocol metrics."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from gazefollow import metrics
from gazefollow.config import ConfigError
from gazefollow.data.heatmap import PRIOR_SIGMA_AT_64, center_prior_heatmap
from gazefollow.reporting import format_table, log_to_wandb, write_metrics, write_predictions


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# The protocol's metrics, then the original research code's (angles, heatmap AP), which are
# reported beside them for GazeFollow-protocol datasets.
METRIC_KEYS = {"gazefollow": ("auc", "avg_l2", "min_l2", "avg_angle", "min_angle",
                              "heatmap_ap"),
               "vat": ("auc", "l2")}


def protocol_of(config) -> str:
    """VideoAttentionTarget is scored with its own protocol; GazeFollow, GOO and the synthetic
    world with GazeFollow's (docs/protocols.md)."""
    return "vat" if config.data.source_dataset == "videoattentiontarget" else "gazefollow"


def score_instance(heatmap, points, inout: float, width: int, height: int,
                   protocol: str = "gazefollow", eye=(-1.0, -1.0)) -> dict:
    """Protocol metrics of one in-frame instance; NaN for out-of-frame ones (and the angles
    NaN without an annotated eye point)."""
    keys = METRIC_KEYS[protocol]
    valid = np.asarray(points)[(np.asarray(points) >= 0).all(axis=1)]
    if inout < 0.5 or len(valid) == 0:
        return {**{k: math.nan for k in keys}, "pred": (math.nan,) * 2}
    pred = metrics.heatmap_argmax(heatmap)
    if protocol == "vat":
        return {"auc": metrics.vat_auc(heatmap, valid[0]), "l2": metrics.vat_l2(pred, valid[0]),
                "pred": pred}
    avg_l2, min_l2 = metrics.gazefollow_l2(pred, valid)
    has_eye = (np.asarray(eye) >= 0).all()
    min_angle, avg_angle = metrics.angular_errors(pred, valid, eye) if has_eye else (math.nan,) * 2
    return {"auc": metrics.gazefollow_auc(heatmap, valid, width, height),
            "avg_l2": avg_l2, "min_l2": min_l2, "avg_angle": avg_angle, "min_angle": min_angle,
            "heatmap_ap": metrics.heatmap_ap(heatmap, valid), "pred": pred}


def summarize(per_sample: list[dict], protocol: str = "gazefollow") -> dict:
    """Means of the protocol's spatial metrics over in-frame instances."""
    out = {}
    for key in METRIC_KEYS[protocol]:
        values = [s[key] for s in per_sample if not math.isnan(s[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def _record(batch: dict, i: int, score: dict, inout_prob: float) -> dict:
    """One row of predictions.csv."""
    pred_x, pred_y = score["pred"]
    return {"id": int(batch["index"][i]), "path": batch["path"][i], "pred_x": pred_x,
            "pred_y": pred_y, "inout_score": inout_prob, "inout": int(batch["inout"][i]),
            **{k: v for k, v in score.items() if k != "pred"}}


def shard_positions(size: int, shard: tuple[int, int]) -> list[int]:
    """Process ``index`` of ``count`` takes every count-th position: no padding, so gathering
    the shards yields every instance exactly once."""
    index, count = shard
    return list(range(index, size, count))


def gather_shards(items: list, shard: tuple[int, int]) -> list:
    """Every process's items, concatenated (a collective call with several processes)."""
    if shard[1] == 1:
        return items
    from accelerate.utils import gather_object
    return gather_object(items)


@dataclass
class SplitResult:
    """What ``run_split`` measured on one split (merged over processes, in dataset order)."""

    model: dict[int, dict]  # sampler step count -> spatial metrics (empty: in/out only)
    inout_ap: float  # the model's in/out AP over every instance (NaN with one class)
    center_prior: dict  # the baseline's spatial metrics and in/out AP
    mean_of_samples: dict | None  # the mean heatmap of eval.num_samples draws (None when 1)
    records: list[dict]  # predictions.csv rows at the first step count
    samples: list[dict]  # the first num_keep instances with heatmaps and trajectories
    bad_input: list[str]  # samples skipped because they failed to load (skip mode)
    # {"best_auc": samples, "worst_auc": samples}: the instances at both ends of the
    # per-sample AUC ranking at the first step count, with their heatmaps
    extremes: dict = field(default_factory=dict)


def _predict_batch(model, cond, batch, steps_list, seed, num_samples, sampling,
                   keep_path) -> tuple[dict, np.ndarray | None, list]:
    """(heatmaps per step count, mean of num_samples draws at the first count or None, the
    denoising trajectory at the largest count when ``keep_path``)."""
    ids, heatmaps, trajectory = batch["index"].tolist(), {}, []
    for steps in steps_list:
        keep = keep_path and steps == max(steps_list)
        heatmaps[steps] = model.head.predict(cond, ids, seed, steps, sampling,
                                             trajectory=trajectory if keep else None)
    mean_map = None
    if num_samples > 1 and steps_list and model.head.stochastic:  # draw 0 is heatmaps[first]
        first = steps_list[0]
        others = model.head.predict(cond, ids, seed, first, sampling, draws=num_samples - 1,
                                    first_draw=1)
        mean_map = (heatmaps[first] + (num_samples - 1) * others) / num_samples
    return heatmaps, mean_map, trajectory


def _batch_entries(batch, heatmaps, mean_map, trajectory, inout_prob, prior, steps_list,
                   protocol, num_keep) -> list[dict]:
    """Per-instance scores of one batch (model at every step count, prior, mean of draws)."""
    entries, first = [], (steps_list or [None])[0]
    for i, position in enumerate(batch["position"].tolist()):
        for steps in steps_list:  # diverged weights: one named error, not a metric's crash
            if not np.isfinite(heatmaps[steps][i]).all():
                raise FloatingPointError(
                    f"{batch['path'][i]} (sample {int(batch['index'][i])}): the model's "
                    f"{steps}-step heatmap holds NaN or Inf; its weights have diverged")
        points = batch["gaze_points"][i].cpu().numpy()
        args = (points, float(batch["inout"][i]), int(batch["width"][i]),
                int(batch["height"][i]), protocol, batch["eye"][i].cpu().numpy())
        entry = {"position": position, "prior": score_instance(prior, *args),
                 "steps": {s: score_instance(heatmaps[s][i], *args) for s in steps_list},
                 "mean": score_instance(mean_map[i], *args) if mean_map is not None else None,
                 "inout_score": float(inout_prob[i]), "label": int(batch["inout"][i])}
        if steps_list:
            entry["record"] = _record(batch, i, entry["steps"][first], float(inout_prob[i]))
        if steps_list:
            entry["drawable"] = {
                "path": batch["path"][i], "index": int(batch["index"][i]),
                "head_box": batch["head_box"][i].cpu().numpy(), "points": points,
                "heatmap": heatmaps[first][i], "pred": entry["steps"][first]["pred"],
                "inout_prob": float(inout_prob[i])}
        if position < num_keep and steps_list:
            entry["kept"] = {**entry["drawable"],
                             "trajectory": [step[i, 0].numpy() for step in trajectory]}
        entries.append(entry)
    return entries


EXTREMES = 4  # instances drawn at each end of the per-sample AUC ranking


class ExtremeAUC:
    """The EXTREMES instances with the highest and the lowest AUC seen so far, with their
    heatmaps (as the original logged its best / worst test samples to wandb); entries are
    offered batch by batch, so no other heatmap is kept."""

    def __init__(self, count: int):
        self.count, self.best, self.worst = count, [], []

    def offer(self, entries: list[dict], first) -> None:
        for entry in entries:
            drawable = entry.pop("drawable", None)
            auc = entry["steps"][first]["auc"] if first is not None else math.nan
            if drawable is None or math.isnan(auc) or not self.count:
                continue
            item = (auc, entry["position"], drawable)
            self.best = sorted([*self.best, item], key=lambda x: (-x[0], x[1]))[:self.count]
            self.worst = sorted([*self.worst, item], key=lambda x: (x[0], x[1]))[:self.count]

    def merged(self, shard: tuple[int, int]) -> dict[str, list[dict]]:
        """Every process's extremes merged (a collective call with several processes)."""
        best = sorted(gather_shards(self.best, shard), key=lambda x: (-x[0], x[1]))[:self.count]
        worst = sorted(gather_shards(self.worst, shard), key=lambda x: (x[0], x[1]))[:self.count]
        if not best:
            return {}
        return {"best_auc": [x[2] for x in best], "worst_auc": [x[2] for x in worst]}


@torch.no_grad()
def run_split(model, dataset, steps_list: list[int], sampling, *, batch_size: int, seed: int,
              device, prior_inout: float, num_keep: int = 0, num_workers: int = 0,
              num_samples: int = 1, protocol: str = "gazefollow", desc: str = "eval",
              shard: tuple[int, int] = (0, 1)) -> SplitResult:
    """Predict with each sampler step count in ``steps_list`` (may be empty: in/out only) and
    score every instance. With ``shard`` = (process index, process count) each process takes
    its share and every process gets the merged results (a collective call)."""
    from torch.utils.data import Subset

    from gazefollow.data.dataset import BAD_KEY, collate_samples

    model.eval()
    positions = shard_positions(len(dataset), shard)
    # its own generator: evaluating never draws from the global RNG (exact training resume)
    loader = DataLoader(Subset(dataset, positions), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_samples,
                        generator=torch.Generator())
    prior = center_prior_heatmap(dataset.output_size)
    entries, bad = [], []
    extremes = ExtremeAUC(min(EXTREMES, num_keep))
    progress = tqdm(total=len(positions), desc=desc, unit="sample", leave=False,
                    disable=None if shard[0] == 0 else True)
    for batch in loader:
        bad += batch.pop(BAD_KEY)
        batch = _to_device(batch, device)
        cond = model.encode(batch)  # once per sample, reused by every step and draw
        inout_prob = torch.sigmoid(cond["inout_logit"].float()).cpu().numpy()
        keep_path = min(batch["position"].tolist()) < num_keep
        predicted = _predict_batch(model, cond, batch, steps_list, seed, num_samples, sampling,
                                   keep_path)
        batch_entries = _batch_entries(batch, *predicted, inout_prob, prior, steps_list,
                                       protocol, num_keep)
        extremes.offer(batch_entries, (steps_list or [None])[0])
        entries += batch_entries
        progress.update(len(batch["position"]))
    progress.close()
    # dataset order, so means and AP are summed as with one process, to the last bit
    entries = sorted(gather_shards(entries, shard), key=lambda entry: entry["position"])
    labels = [e["label"] for e in entries]
    has_mean = bool(entries) and entries[0]["mean"] is not None
    return SplitResult(
        model={steps: summarize([e["steps"][steps] for e in entries], protocol)
               for steps in steps_list},
        inout_ap=metrics.inout_ap([e["inout_score"] for e in entries], labels),
        center_prior={**summarize([e["prior"] for e in entries], protocol),
                      "inout_ap": metrics.inout_ap(np.full(len(labels), prior_inout), labels)},
        mean_of_samples=summarize([e["mean"] for e in entries], protocol) if has_mean else None,
        records=[e["record"] for e in entries if "record" in e],
        samples=[e["kept"] for e in entries if "kept" in e],
        bad_input=gather_shards(bad, shard), extremes=extremes.merged(shard))


def _results(config, model, main: SplitResult, inout: SplitResult, steps_list, datasets,
             weights: str, prior_inout: float, processes: int) -> dict:
    """metrics.json's content: the headline numbers at the first step count, every count
    under "model_steps", the mean of several draws, the centre prior, and "info"."""
    split, ap_split = config.eval.split, ("val" if inout is not main else config.eval.split)
    first, ap = steps_list[0], inout.inout_ap
    results = {"model": {**main.model[first], "inout_ap": ap},
               "center_prior": {**main.center_prior,
                                "inout_ap": inout.center_prior["inout_ap"]},
               "model_steps": {str(s): {**main.model[s], "inout_ap": ap} for s in steps_list}}
    if main.mean_of_samples is not None:
        results["model_mean_of_samples"] = {
            str(config.eval.num_samples): {**main.mean_of_samples, "inout_ap": ap}}
    bad = main.bad_input + (inout.bad_input if inout is not main else [])
    results["info"] = {
        "split": split, "instances": len(datasets[split]) - len(main.bad_input),
        "dataset": config.data.source_dataset, "protocol": protocol_of(config),
        "subsampled": bool(config.data.subsample_test and split == "test"),
        "sampler": model.head.describe(config.sampling),
        "sample_steps": first, "num_samples": config.eval.num_samples,
        "weights": weights, "inout_ap_split": ap_split, "processes": processes,
        "inout_ap_instances": len(datasets[ap_split]) - len(inout.bad_input),
        "skipped_unreadable": len(bad), "skipped_examples": bad[:5],
        # what reading the annotations fixed and dropped, before any image was decoded
        "loaded": {name: datasets[name].load_report.as_dict()
                   for name in dict.fromkeys([split, ap_split])},
        "center_prior": f"Gaussian sigma {PRIOR_SIGMA_AT_64} (at 64 px) at the image centre; "
                        f"in/out score = train in-frame rate {prior_inout:.3f}",
    }
    unavailable = {}
    if math.isnan(ap):
        unavailable["inout_ap"] = (f"the {ap_split} split holds one class only (every person "
                                   "in frame, or every person out of frame)")
    if any(math.isnan(v) for k, v in results["model"].items() if k != "inout_ap"):
        unavailable["spatial metrics"] = f"the {split} split has no in-frame person to score"
    if unavailable:
        results["info"]["unavailable"] = unavailable  # metrics.json writes them as null
    return results


def evaluate_run(config, model, run_dir: str | Path, device, weights: str, log=print,
                 run_id: str | None = None, shard: tuple[int, int] = (0, 1),
                 differs: dict | None = None) -> dict:
    """The end-of-run evaluation: protocol metrics on ``eval.split`` for the model and the
    centre prior, in/out AP; ``metrics.json``, ``predictions.csv`` and pictures in
    ``run_dir``; the same logged to wandb unless it is disabled.

    With ``shard`` = (process index, count), every process samples its share and process 0
    writes the merged results (all processes return them)."""
    from gazefollow.data.build import build_datasets

    if shard[0] != 0:
        log = lambda *_: None  # noqa: E731  one process speaks
    datasets = build_datasets(config, log=log)
    steps_list = model.head.step_counts(config)
    prior_inout = float(np.mean([i.inout for i in datasets["train"].instances]))
    common = dict(batch_size=config.eval.batch_size, seed=config.run.seed, device=device,
                  prior_inout=prior_inout, num_workers=config.data.num_workers, shard=shard,
                  protocol=protocol_of(config))
    split = config.eval.split
    main = run_split(model, datasets[split], steps_list, config.sampling,
                     num_keep=config.eval.num_visualize, num_samples=config.eval.num_samples,
                     desc=f"{split} ({weights})", **common)
    # In/out AP needs both classes: VAT's test split has them; GazeFollow-format test sets are
    # all in frame, so AP comes from the validation split there.
    inout = main
    if math.isnan(main.inout_ap) and split != "val":
        inout = run_split(model, datasets["val"], [], config.sampling, desc="val in/out",
                          **common)
    results = _results(config, model, main, inout, steps_list, datasets, weights, prior_inout,
                       shard[1])
    results["info"].update(differs_from_training=differs or {}, output_dir=str(run_dir))
    if shard[0] == 0:
        _write_outputs(config, Path(run_dir), results, main, max(steps_list), run_id, log)
    return results


def _write_outputs(config, run_dir: Path, results: dict, main: SplitResult, max_steps: int,
                   run_id: str | None, log) -> None:
    """metrics.json, predictions.csv, the pictures (with the best / worst AUC samples), wandb,
    and the printed table."""
    from gazefollow.visualize import save_prediction_grid, save_trajectories

    write_metrics(results, run_dir / "metrics.json")
    write_predictions(main.records, run_dir / "predictions.csv")
    pictures = [run_dir / "predictions_grid.png", run_dir / "denoising_trajectories.png"]
    if main.samples:
        root = Path(config.data.dataset_dir)
        save_prediction_grid(main.samples, root, pictures[0])
        save_trajectories(main.samples[:4], root, pictures[1], max_steps)
    for name, samples in main.extremes.items():
        pictures.append(run_dir / f"{name}.png")
        save_prediction_grid(samples, Path(config.data.dataset_dir), pictures[-1])
    log_to_wandb(config, run_dir, results, pictures, run_id)
    info = results["info"]
    if info["skipped_unreadable"]:
        log(f"SKIPPED {info['skipped_unreadable']} samples that failed to load "
            "(data.on_bad_input=skip): " + " | ".join(info["skipped_examples"]))
    note = " (SUBSAMPLED test heads: not comparable to the full test set)" \
        if info["subsampled"] else ""
    log(f"\n{info['split']} split, {info['instances']} instances{note}, {info['protocol']} "
        f"protocol, {info['sampler']} {info['sample_steps']} step(s), {info['weights']} "
        f"weights; in/out AP on {info['inout_ap_split']}:\n"
        f"{format_table(results, info['protocol'])}")


def load_for_eval(checkpoint: str | Path, overrides: list = (), layers: list = ()) -> dict:
    """Saved weights ready to predict: {"config", "model" (on its device, EMA weights when
    ``optim.ema_on`` and the checkpoint holds them), "device", "weights" ("ema" or "raw"),
    "state", "path", "run_dir", "suffix"}; the checkpoint's config with ``layers`` and
    ``overrides`` on top."""
    from diffusers.training_utils import EMAModel

    from gazefollow.checkpoint import (latest_checkpoint, load_checkpoint, resolve_checkpoint,
                                       run_dir_of)
    from gazefollow.config import build_config
    from gazefollow.runtime import eval_device
    from gazefollow.tasks import task_of
    from gazefollow.training_parts import ema_parameters

    path = resolve_checkpoint(checkpoint)
    if path.suffix == ORIGINAL_SUFFIX:
        return _load_original_for_eval(path, build_config(layers, overrides))
    state = load_checkpoint(path)
    latest = latest_checkpoint(run_dir_of(path))
    config = build_config(layers, overrides, base=state["config"])
    model = task_of(config).build_model(config)
    model.load_state_dict(state["model"])
    weights = "raw"
    if config.optim.ema_on and state.get("ema"):
        ema = EMAModel(ema_parameters(model, config.optim))
        ema.load_state_dict(state["ema"])
        ema.copy_to(ema_parameters(model, config.optim))
        weights = "ema"
    device = eval_device(config)
    return {"config": config, "model": model.to(device), "weights": weights, "state": state,
            "device": device, "path": path, "run_dir": run_dir_of(path),
            # outputs of an older checkpoint of the run are named by its step, so they never
            # overwrite those of the newest
            "suffix": "" if latest in (None, path.parent) else f"-step{state['step']}"}


# The original research code's checkpoints (ckpt_last.pth, ckpt_epoch_N.pth); ours are state.pt.
ORIGINAL_SUFFIX = ".pth"


def _load_original_for_eval(path: Path, config) -> dict:
    """load_for_eval's answer for a checkpoint of the original research code: it stores no
    config, so ``config`` (the original model configuration) describes it; outputs go beside
    it, in <its folder>/gazefollow-eval/."""
    from gazefollow.config import to_dict
    from gazefollow.models.gaze_model import build_model
    from gazefollow.original_weights import load_original_checkpoint
    from gazefollow.runtime import eval_device

    model = build_model(config)
    report = load_original_checkpoint(model, path, config)
    device = eval_device(config)
    state = {"config": to_dict(config), "step": f"epoch {report['epoch']}"}
    return {"config": config, "model": model.to(device), "device": device, "path": path,
            "weights": "ema" if config.optim.ema_on else "raw", "state": state,
            "run_dir": path.parent / "gazefollow-eval", "suffix": f"-{path.stem}"}


def evaluate_checkpoint(checkpoint: str | Path, overrides: list = (), out_dir=None,
                        layers: list = (), log=print) -> dict:
    """Evaluate saved weights: the checkpoint's own config, then YAML ``layers`` and
    ``overrides`` on top (e.g. ``sampling.steps=4``, ``eval.split=val``,
    ``optim.ema_on=false`` for the raw weights, ``eval.batch_size=1``)."""
    from gazefollow.config import to_yaml
    from gazefollow.runtime import eval_processes
    from gazefollow.tasks import task_of

    loaded = load_for_eval(checkpoint, overrides, layers)
    config, path, weights, model = (loaded["config"], loaded["path"], loaded["weights"],
                                    loaded["model"])
    task = task_of(config)
    differs = differs_from_training(config, loaded["state"]["config"])
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
    return task.evaluate_run(config, model, out_dir, loaded["device"], weights, log,
                             run_id=loaded["state"].get("wandb_run_id"),
                             shard=(processes.process_index, processes.num_processes),
                             differs=differs)


# What an evaluation may change from training and that its folder name must tell apart (the
# split, sampler, steps, EMA and subsampling are in the name itself; the rest as a hash).
EVALUATION_KEYS = ("data.", "eval.", "sampling.", "optim.ema_on")


def differs_from_training(config, stored: dict) -> dict:
    """{dotted key: [training value, evaluation value]} for the evaluation-time keys that
    differ from the checkpoint's own config (``eval.eval_weights`` aside)."""
    from gazefollow.config import config_changes

    return {key: change for key, change in config_changes(stored, config).items()
            if key.startswith(EVALUATION_KEYS) and key != "eval.eval_weights"}


def _short_hash(values: dict) -> str:
    import hashlib
    import json
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
