"""Evaluation: sample heatmaps for a split and score them with the protocol metrics."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from gazefollow import metrics
from gazefollow.data.heatmap import gaussian_heatmap
from gazefollow.diffusion.sampling import ddim_sample, initial_noise

PRIOR_SIGMA_AT_64 = 16.0  # the centre prior: one broad Gaussian at the image centre


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def center_prior_heatmap(size: int) -> torch.Tensor:
    """The baseline every table shows: a broad Gaussian at (0.5, 0.5), argmax at the centre."""
    return gaussian_heatmap(np.array([[0.5, 0.5]]), size, PRIOR_SIGMA_AT_64)[0]


METRIC_KEYS = {"gazefollow": ("auc", "avg_l2", "min_l2"), "vat": ("auc", "l2")}


def protocol_of(config) -> str:
    """VideoAttentionTarget is scored with its own protocol; GazeFollow, GOO and the synthetic
    world with GazeFollow's (DESIGN.md §4)."""
    return "vat" if config.data.source_dataset == "videoattentiontarget" else "gazefollow"


def score_instance(heatmap, points, inout: float, width: int, height: int,
                   protocol: str = "gazefollow") -> dict:
    """Protocol metrics of one in-frame instance; NaN for out-of-frame ones."""
    keys = METRIC_KEYS[protocol]
    valid = np.asarray(points)[(np.asarray(points) >= 0).all(axis=1)]
    if inout < 0.5 or len(valid) == 0:
        return {**{k: math.nan for k in keys}, "pred": (math.nan,) * 2}
    pred = metrics.heatmap_argmax(heatmap)
    if protocol == "vat":
        return {"auc": metrics.vat_auc(heatmap, valid[0]), "l2": metrics.vat_l2(pred, valid[0]),
                "pred": pred}
    avg_l2, min_l2 = metrics.gazefollow_l2(pred, valid)
    return {"auc": metrics.gazefollow_auc(heatmap, valid, width, height),
            "avg_l2": avg_l2, "min_l2": min_l2, "pred": pred}


def summarize(per_sample: list[dict], inout_scores, inout_labels,
              protocol: str = "gazefollow") -> dict:
    """Means over in-frame instances, and the in/out AP over all of them."""
    out = {}
    for key in METRIC_KEYS[protocol]:
        values = [s[key] for s in per_sample if not math.isnan(s[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    out["inout_ap"] = metrics.inout_ap(inout_scores, inout_labels)
    return out


@torch.no_grad()
def run_split(model, diffusion, dataset, steps_list: list[int], *, batch_size: int, seed: int,
              device, prior_inout: float, num_keep: int = 0, num_workers: int = 0,
              protocol: str = "gazefollow", desc: str = "eval") -> dict:
    """Sample with each DDIM step count in ``steps_list`` (may be empty: in/out only).

    Returns {"model": {steps: summary}, "center_prior": summary, "samples": [...],
    "bad_input": [...]} where "samples" keeps the first ``num_keep`` instances' heatmaps for
    pictures and "bad_input" names the samples skipped because they failed to load.
    """
    from gazefollow.data.dataset import BAD_KEY, collate_samples

    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_samples)
    size = dataset.output_size
    prior = center_prior_heatmap(size)
    per_steps = {steps: [] for steps in steps_list}
    prior_scores, scores, labels, kept, bad = [], [], [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        bad += batch.pop(BAD_KEY)
        batch = _to_device(batch, device)
        cond = model.encode(batch)
        inout_prob = torch.sigmoid(cond["inout_logit"].float()).cpu().numpy()
        scores += inout_prob.tolist()
        labels += batch["inout"].cpu().tolist()
        x_T = initial_noise(batch["index"].tolist(), (1, size, size), seed).to(device)
        heatmaps = {steps: ddim_sample(model, diffusion, cond, x_T, steps)[:, 0].cpu().numpy()
                    for steps in steps_list}
        for i in range(len(inout_prob)):
            points = batch["gaze_points"][i].cpu().numpy()
            args = (points, float(batch["inout"][i]), int(batch["width"][i]),
                    int(batch["height"][i]), protocol)
            prior_scores.append(score_instance(prior, *args))
            for steps in steps_list:
                per_steps[steps].append(score_instance(heatmaps[steps][i], *args))
            if len(kept) < num_keep and steps_list:
                kept.append({"path": batch["path"][i], "index": int(batch["index"][i]),
                             "head_box": batch["head_box"][i].cpu().numpy(), "points": points,
                             "heatmap": heatmaps[steps_list[0]][i],
                             "pred": per_steps[steps_list[0]][-1]["pred"],
                             "inout_prob": float(inout_prob[i])})
    prior_constant = np.full(len(labels), prior_inout)
    return {
        "model": {steps: summarize(per_steps[steps], scores, labels, protocol)
                  for steps in steps_list} or {0: summarize([], scores, labels, protocol)},
        "center_prior": summarize(prior_scores, prior_constant, labels, protocol),
        "samples": kept,
        "bad_input": bad,
    }


COLUMN_NAMES = {"auc": "AUC", "avg_l2": "Avg L2", "min_l2": "Min L2", "l2": "L2",
                "inout_ap": "in/out AP"}


def format_table(results: dict) -> str:
    """metrics.json's content as a terminal table (the protocol's columns)."""
    by_steps = results.get("model_steps", {})
    rows = [("model", results["model"])]
    if len(by_steps) > 1:
        rows += [(f"model, DDIM {k} step(s)", v) for k, v in by_steps.items()]
    rows.append(("center prior", results["center_prior"]))
    keys = [k for k in COLUMN_NAMES if k in results["model"]]
    lines = [f"{'':<24}" + "".join(f"{COLUMN_NAMES[k]:>11}" for k in keys)]
    for name, m in rows:
        lines.append(f"{name:<24}" + "".join(f"{m[k]:>11.4f}" for k in keys))
    return "\n".join(lines)


def write_metrics(results: dict, path: str | Path) -> None:
    """metrics.json (NaN where a metric is undefined, e.g. AP with one class)."""
    Path(path).write_text(json.dumps(results, indent=2, allow_nan=True))


def evaluate_run(config, model, diffusion, run_dir: str | Path, device, weights: str,
                 log=print) -> dict:
    """The end-of-run evaluation: protocol metrics on ``eval.split`` for the model and the
    centre prior, in/out AP, ``metrics.json`` and a PNG grid in ``run_dir``."""
    from gazefollow.data.build import build_datasets
    from gazefollow.visualize import save_prediction_grid

    datasets = build_datasets(config, log=log)
    steps_list = list(dict.fromkeys([config.diffusion.sample_time_steps,
                                     *config.eval.extra_steps]))
    prior_inout = float(np.mean([i.inout for i in datasets["train"].instances]))
    common = dict(batch_size=config.eval.batch_size, seed=config.run.seed, device=device,
                  prior_inout=prior_inout, num_workers=config.data.num_workers)
    split = config.eval.split
    protocol = protocol_of(config)
    main = run_split(model, diffusion, datasets[split], steps_list, protocol=protocol,
                     num_keep=config.eval.num_visualize, desc=f"{split} ({weights})", **common)
    first = steps_list[0]
    # In/out AP needs both classes: VAT's test split has them; GazeFollow-format test sets are
    # all in frame, so AP comes from the validation split there.
    ap_split = split
    if math.isnan(main["model"][first]["inout_ap"]) and split != "val":
        ap_split = "val"
        inout = run_split(model, diffusion, datasets["val"], [], protocol=protocol,
                          desc="val in/out", **common)
    else:
        inout = main
    results = {"model": dict(main["model"][first]), "center_prior": dict(main["center_prior"])}
    ap_source = inout["model"][next(iter(inout["model"]))]
    results["model"]["inout_ap"] = ap_source["inout_ap"]
    results["center_prior"]["inout_ap"] = inout["center_prior"]["inout_ap"]
    results["model_steps"] = {str(s): dict(main["model"][s], inout_ap=ap_source["inout_ap"])
                              for s in steps_list}
    bad = main["bad_input"] + (inout["bad_input"] if inout is not main else [])
    results["info"] = {
        "split": split, "instances": len(datasets[split]) - len(main["bad_input"]),
        "dataset": config.data.source_dataset, "protocol": protocol,
        "subsampled": bool(config.data.subsample_test and split == "test"),
        "sampler": "ddim", "sample_steps": first, "weights": weights,
        "inout_ap_split": ap_split,
        "inout_ap_instances": len(datasets[ap_split]) - len(inout["bad_input"]),
        "skipped_unreadable": len(bad), "skipped_examples": bad[:5],
        "center_prior": f"Gaussian sigma {PRIOR_SIGMA_AT_64} (at 64 px) at the image centre; "
                        f"in/out score = train in-frame rate {prior_inout:.3f}",
    }
    run_dir = Path(run_dir)
    write_metrics(results, run_dir / "metrics.json")
    if main["samples"]:
        save_prediction_grid(main["samples"], Path(config.data.dataset_dir),
                             run_dir / "predictions_grid.png")
    note = " (SUBSAMPLED test heads)" if results["info"]["subsampled"] else ""
    if bad:
        log(f"SKIPPED {len(bad)} samples that failed to load (data.on_bad_input=skip): "
            + " | ".join(bad[:5]))
    log(f"\n{split} split, {results['info']['instances']} instances{note}, {protocol} protocol, "
        f"DDIM {first} step(s), {weights} weights; in/out AP on {ap_split}:\n"
        f"{format_table(results)}")
    return results


def pick_device(config) -> torch.device:
    """The evaluation device: as configured, or CUDA when available under "auto"."""
    if config.run.device in ("cuda", "mps"):
        return torch.device(config.run.device)
    if config.run.device == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def evaluate_checkpoint(checkpoint: str | Path, overrides: list = (), out_dir=None,
                        layers: list = (), log=print) -> dict:
    """Evaluate saved weights: the checkpoint's own config, then YAML ``layers`` and
    ``overrides`` on top (e.g. ``diffusion.sample_time_steps=4`` or ``eval.split=val``).
    EMA weights are used when ``optim.ema_on`` is true and the checkpoint holds them."""
    from diffusers.training_utils import EMAModel

    from gazefollow.checkpoint import load_checkpoint, resolve_checkpoint
    from gazefollow.config import build_config, to_yaml
    from gazefollow.diffusion.gaussian import GaussianDiffusion
    from gazefollow.models.gaze_model import build_model

    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    config = build_config(layers, overrides, base=state["config"])
    model = build_model(config)
    model.load_state_dict(state["model"])
    weights = "raw"
    if config.optim.ema_on and state.get("ema"):
        ema = EMAModel(model.parameters())
        ema.load_state_dict(state["ema"])
        ema.copy_to(model.parameters())
        weights = "ema"
    device = pick_device(config)
    model.to(device)
    if out_dir is None:
        steps = config.diffusion.sample_time_steps
        tail = "-subsampled" if config.data.subsample_test and config.eval.split == "test" else ""
        out_dir = path.parent / f"eval-{config.eval.split}-ddim{steps}-{weights}{tail}"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "eval_config.yaml").write_text(to_yaml(config))
    log(f"evaluating {path} (step {state['step']}) -> {out_dir}")
    return evaluate_run(config, model, GaussianDiffusion(config.diffusion), out_dir, device,
                        weights, log)
