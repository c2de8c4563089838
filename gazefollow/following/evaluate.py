"""Gaze-following evaluation: sample heatmaps for a split (through the engine's sharded
prediction loop) and score them with the protocol metrics, beside the centre prior."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gazefollow.engine.evaluation import Evaluation, gather_shards, predict_split
from gazefollow.engine.reporting import write_predictions
from gazefollow.following import metrics
from gazefollow.following.data.dataset import TrackDataset, track_of
from gazefollow.following.data.heatmap import PRIOR_SIGMA_AT_64, center_prior_heatmap
from gazefollow.following.hypotheses import SCORES, heatmap_peaks, hypothesis_scores
from gazefollow.following.reporting import format_table

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


@dataclass
class SplitResult:
    """What ``run_split`` measured on one split (merged over processes, in dataset order)."""

    model: dict[int, dict]  # sampler step count -> spatial metrics (empty: in/out only)
    inout_ap: float  # the model's in/out AP over every instance (NaN with one class)
    center_prior: dict  # the baseline's spatial metrics and in/out AP
    mean_of_samples: dict | None  # the mean heatmap of eval.num_samples draws (None when 1)
    # with eval.num_samples > 1: {"samples": scores, "mean_point": scores} (hypotheses.py),
    # means over in-frame heads with annotators, and "ambiguous" over the heads marked so
    hypotheses: dict | None
    records: list[dict]  # predictions.csv rows at the first step count
    samples: list[dict]  # the first num_keep instances with heatmaps and trajectories
    bad_input: list[str]  # samples skipped because they failed to load (skip mode)
    # {"best_auc": samples, "worst_auc": samples}: the instances at both ends of the
    # per-sample AUC ranking at the first step count, with their heatmaps
    extremes: dict = field(default_factory=dict)
    # per scored head: {"position", "hypotheses" [K, 2], "annotators" [M, 2], "ambiguous"}
    hypothesis_sets: list = field(default_factory=list)


def _predict_batch(model, cond, batch, steps_list, seed, num_samples, sampling,
                   keep_path, radius) -> tuple:
    """(heatmaps per step count, mean of num_samples draws at the first count or None, the
    denoising trajectory at the largest count when ``keep_path``, the hypotheses [B, K, 2]
    and the single points [B, 2] they are compared with, or None when num_samples is 1).

    A stochastic head's hypotheses are its K draws' points and the single point is the
    argmax of their mean; a one-pass head's are its K separated peaks (``radius`` apart)
    and the single point its argmax."""
    ids, heatmaps, trajectory = batch["index"].tolist(), {}, []
    for steps in steps_list:
        keep = keep_path and steps == max(steps_list)
        heatmaps[steps] = model.head.predict(cond, ids, seed, steps, sampling,
                                             trajectory=trajectory if keep else None)
    if num_samples == 1 or not steps_list:
        return heatmaps, None, trajectory, None, None
    first, mean_map = steps_list[0], None
    if model.head.stochastic:  # draw 0 is heatmaps[first]
        draws = [heatmaps[first]] + [model.head.predict(cond, ids, seed, first, sampling,
                                                        first_draw=k)
                                     for k in range(1, num_samples)]
        mean_map = np.mean(draws, axis=0)
        hypotheses = metrics.heatmap_argmaxes(np.stack(draws, axis=1))
        single = mean_map
    else:
        hypotheses = np.stack([heatmap_peaks(h, num_samples, radius) for h in heatmaps[first]])
        single = heatmaps[first]
    points = metrics.heatmap_argmaxes(single)
    return heatmaps, mean_map, trajectory, hypotheses, points


def _hypothesis_entry(hypotheses, point, annotators, inout: float, radius: float):
    """One head's scores of its hypotheses and of its single point as a set of one, against
    its annotators (padding removed); None for an out-of-frame head or one without any."""
    if inout < 0.5 or len(annotators) == 0:
        return None
    return {"samples": hypothesis_scores(hypotheses, annotators, radius),
            "mean_point": hypothesis_scores(point[None], annotators, radius)}


def _batch_entries(batch, outputs, prior, steps_list, protocol, num_keep,
                   radius: float) -> list[dict]:
    """Per-instance scores of one batch (model at every step count, prior, mean of draws,
    hypotheses)."""
    entries, first = [], (steps_list or [None])[0]
    heatmaps = {steps: outputs[f"{steps}-step heatmap"] for steps in steps_list}
    mean_map, trajectory, inout_prob = (outputs["mean heatmap"], outputs["trajectory"],
                                        outputs["inout"])
    hypotheses = outputs["hypotheses"]
    for i, position in enumerate(batch["position"].tolist()):
        points = batch["gaze_points"][i].cpu().numpy()
        args = (points, float(batch["inout"][i]), int(batch["width"][i]),
                int(batch["height"][i]), protocol, batch["eye"][i].cpu().numpy())
        entry = {"position": position, "prior": score_instance(prior, *args),
                 "steps": {s: score_instance(heatmaps[s][i], *args) for s in steps_list},
                 "mean": score_instance(mean_map[i], *args) if mean_map is not None else None,
                 "inout_score": float(inout_prob[i]), "label": int(batch["inout"][i])}
        if hypotheses is not None:
            annotators = points[(points >= 0).all(axis=1)]
            entry["hypotheses"] = _hypothesis_entry(hypotheses[i], outputs["points"][i],
                                                    annotators, float(batch["inout"][i]), radius)
            entry["ambiguous"] = bool(batch["ambiguous"][i]) if "ambiguous" in batch else False
            if entry["hypotheses"] is not None:
                entry["set"] = {"position": position, "hypotheses": hypotheses[i],
                                "annotators": annotators, "ambiguous": entry["ambiguous"]}
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


def run_split(model, dataset, steps_list: list[int], sampling, *, batch_size: int, seed: int,
              device, prior_inout: float, num_keep: int = 0, num_workers: int = 0,
              num_samples: int = 1, protocol: str = "gazefollow", desc: str = "eval",
              shard: tuple[int, int] = (0, 1), radius: float = 0.1) -> SplitResult:
    """Predict with each sampler step count in ``steps_list`` (may be empty: in/out only) and
    score every instance; with ``num_samples`` K > 1 also K hypotheses per head, scored at
    ``radius`` (``hypotheses.py``). With ``shard`` = (process index, process count) each
    process takes its share and every process gets the merged results (a collective call)."""
    prior = center_prior_heatmap(dataset.output_size)
    extremes = ExtremeAUC(min(EXTREMES, num_keep))
    first = (steps_list or [None])[0]

    def predict_batch(model, batch) -> dict:
        if "track" in batch:  # a model with a state per track: the finished ones let go
            model.keep_streams(batch["track"])
        cond = model.encode(batch)  # once per sample, reused by every step and draw
        keep_path = min(batch["position"].tolist()) < num_keep
        heatmaps, mean_map, trajectory, hypotheses, points = _predict_batch(
            model, cond, batch, steps_list, seed, num_samples, sampling, keep_path, radius)
        return {**{f"{steps}-step heatmap": heatmaps[steps] for steps in steps_list},
                "mean heatmap": mean_map, "trajectory": trajectory,
                "hypotheses": hypotheses, "points": points,
                "inout": torch.sigmoid(cond["inout_logit"].float()).cpu().numpy()}

    def make_rows(batch, outputs) -> list[dict]:
        entries = _batch_entries(batch, outputs, prior, steps_list, protocol, num_keep, radius)
        extremes.offer(entries, first)
        return entries

    # a streamed split (TrackDataset) goes to the processes by whole tracks, each from the
    # start of its state
    groups = [track_of(i) for i in dataset.instances] if isinstance(dataset, TrackDataset) \
        else None
    model.keep_streams([])
    predicted = predict_split(model, dataset, predict_batch, make_rows, batch_size=batch_size,
                              device=device, shard=shard, num_workers=num_workers, desc=desc,
                              groups=groups)
    entries = predicted.rows
    labels = [e["label"] for e in entries]
    has_mean = bool(entries) and entries[0]["mean"] is not None
    return SplitResult(
        model={steps: summarize([e["steps"][steps] for e in entries], protocol)
               for steps in steps_list},
        inout_ap=metrics.inout_ap([e["inout_score"] for e in entries], labels),
        center_prior={**summarize([e["prior"] for e in entries], protocol),
                      "inout_ap": metrics.inout_ap(np.full(len(labels), prior_inout), labels)},
        mean_of_samples=summarize([e["mean"] for e in entries], protocol) if has_mean else None,
        hypotheses=summarize_hypotheses(entries),
        hypothesis_sets=[e["set"] for e in entries if "set" in e],
        records=[e["record"] for e in entries if "record" in e],
        samples=[e["kept"] for e in entries if "kept" in e],
        bad_input=predicted.bad_input, extremes=extremes.merged(shard))


def summarize_hypotheses(entries: list[dict]) -> dict | None:
    """Mean scores of the hypotheses and of the single point over the scored heads, and over
    the heads marked ambiguous alone (when any are)."""
    scored = [e for e in entries if e.get("hypotheses")]
    if not any("hypotheses" in e for e in entries):
        return None

    def means(chosen: list[dict]) -> dict:
        return {kind: {key: float(np.nanmean([e["hypotheses"][kind][key] for e in chosen]))
                       if chosen else math.nan for key in SCORES}
                for kind in ("samples", "mean_point")}
    out = {**means(scored), "heads": len(scored)}
    ambiguous = [e for e in scored if e["ambiguous"]]
    if ambiguous:
        out["ambiguous"] = {**means(ambiguous), "heads": len(ambiguous)}
    return out


def _results(config, main: SplitResult, inout: SplitResult, steps_list) -> dict:
    """metrics.json's numbers: the headline numbers at the first step count, every count
    under "model_steps", the mean of several draws, the centre prior."""
    first, ap = steps_list[0], inout.inout_ap
    results = {"model": {**main.model[first], "inout_ap": ap},
               "center_prior": {**main.center_prior,
                                "inout_ap": inout.center_prior["inout_ap"]},
               "model_steps": {str(s): {**main.model[s], "inout_ap": ap} for s in steps_list}}
    if main.mean_of_samples is not None:
        results["model_mean_of_samples"] = {
            str(config.eval.num_samples): {**main.mean_of_samples, "inout_ap": ap}}
    if main.hypotheses is not None:
        results["hypotheses"] = {"k": config.eval.num_samples,
                                 "radius": config.eval.hypothesis_radius, **main.hypotheses}
    return results


def _info(config, model, main: SplitResult, inout: SplitResult, results: dict, datasets,
          prior_inout: float, first_steps: int) -> dict:
    """The task's ``info`` fields (the engine adds the common ones)."""
    split, ap_split = config.eval.split, ("val" if inout is not main else config.eval.split)
    info = {
        "split": split, "instances": len(datasets[split]) - len(main.bad_input),
        "dataset": config.data.source_dataset, "protocol": protocol_of(config),
        "subsampled": bool(config.data.subsample_test and split == "test"),
        "sampler": model.head.describe(config.sampling),
        "sample_steps": first_steps,
        "num_samples": config.eval.num_samples, "inout_ap_split": ap_split,
        "inout_ap_instances": len(datasets[ap_split]) - len(inout.bad_input),
        # what reading the annotations fixed and dropped, before any image was decoded
        "loaded": {name: datasets[name].load_report.as_dict()
                   for name in dict.fromkeys([split, ap_split])},
        "center_prior": f"Gaussian sigma {PRIOR_SIGMA_AT_64} (at 64 px) at the image centre; "
                        f"in/out score = train in-frame rate {prior_inout:.3f}",
    }
    unavailable = {}
    if math.isnan(results["model"]["inout_ap"]):
        unavailable["inout_ap"] = (f"the {ap_split} split holds one class only (every person "
                                   "in frame, or every person out of frame)")
    if any(math.isnan(v) for k, v in results["model"].items() if k != "inout_ap"):
        unavailable["spatial metrics"] = f"the {split} split has no in-frame person to score"
    if unavailable:
        info["unavailable"] = unavailable  # metrics.json writes them as null
    return info


def evaluate_following(config, model, device, weights: str, shard: tuple[int, int],
                       log) -> Evaluation:
    """Protocol metrics on ``eval.split`` for the model and the centre prior, in/out AP;
    ``predictions.csv`` and pictures beside metrics.json. Every process samples its share."""
    from gazefollow.following.data.build import build_datasets

    datasets = build_datasets(config, log=log)
    steps_list = model.head.step_counts(config)
    prior_inout = float(np.mean([i.inout for i in datasets["train"].instances]))
    common = dict(batch_size=config.eval.batch_size, seed=config.run.seed, device=device,
                  prior_inout=prior_inout, num_workers=config.data.num_workers, shard=shard,
                  protocol=protocol_of(config))
    split = config.eval.split
    main = run_split(model, datasets[split], steps_list, config.sampling,
                     num_keep=config.eval.num_visualize, num_samples=config.eval.num_samples,
                     desc=f"{split} ({weights})", radius=config.eval.hypothesis_radius,
                     **common)
    # In/out AP needs both classes: VAT's test split has them; GazeFollow-format test sets are
    # all in frame, so AP comes from the validation split there.
    inout = main
    if math.isnan(main.inout_ap) and split != "val":
        inout = run_split(model, datasets["val"], [], config.sampling, desc="val in/out",
                          **common)
    results = _results(config, main, inout, steps_list)
    info = _info(config, model, main, inout, results, datasets, prior_inout, steps_list[0])
    note = " (SUBSAMPLED test heads: not comparable to the full test set)" \
        if info["subsampled"] else ""
    table = (f"\n{info['split']} split, {info['instances']} instances{note}, "
             f"{info['protocol']} protocol, {info['sampler']} {info['sample_steps']} step(s), "
             f"{weights} weights; in/out AP on {info['inout_ap_split']}:\n"
             f"{format_table(results, info['protocol'], info['sampler'])}")
    bad = main.bad_input + (inout.bad_input if inout is not main else [])
    return Evaluation(results, info, bad, table,
                      lambda run_dir: _write_files(config, run_dir, main, max(steps_list)))


def _write_files(config, run_dir: Path, main: SplitResult, max_steps: int) -> list[Path]:
    """predictions.csv and the pictures (with the best / worst AUC samples)."""
    from gazefollow.following.visualize import save_prediction_grid, save_trajectories

    write_predictions(main.records, run_dir / "predictions.csv")
    pictures = [run_dir / "predictions_grid.png", run_dir / "denoising_trajectories.png"]
    root = Path(config.data.dataset_dir)
    if main.samples:
        save_prediction_grid(main.samples, root, pictures[0])
        save_trajectories(main.samples[:4], root, pictures[1], max_steps)
    for name, samples in main.extremes.items():
        pictures.append(run_dir / f"{name}.png")
        save_prediction_grid(samples, root, pictures[-1])
    return pictures
