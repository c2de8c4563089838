"""Evaluation: sample heatmaps for a split and score them with the protocol metrics."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from gazefollow import metrics
from gazefollow.data.heatmap import PRIOR_SIGMA_AT_64, center_prior_heatmap
from gazefollow.diffusion.sampling import initial_noise, sample
from gazefollow.reporting import format_table, log_to_wandb, write_metrics, write_predictions



def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


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
def sample_heatmaps(model, diffusion, cond: dict, ids: list[int], size: int, seed: int,
                    steps: int, device, draws: int = 1, trajectory: list | None = None,
                    first_draw: int = 0):
    """Heatmaps [B, O, O] (numpy) from the configured sampler, the mean over ``draws`` initial
    noises (numbered from ``first_draw``) when > 1; the conditioning ``cond`` is computed once
    by the caller and reused for every draw and step. ``diffusion`` None: the regression
    decoder's single pass."""
    if diffusion is None:
        return model.decode(cond)[:, 0].float().cpu().numpy()
    total, sampler = None, diffusion.cfg.sampler
    for draw in range(first_draw, first_draw + draws):
        x_T = initial_noise(ids, (1, size, size), seed, draw).to(device)
        # ancestral DDPM: the noise of step i is seeded by sample id too
        step_noise = (lambda i, d=draw: initial_noise(ids, (1, size, size), seed,
                                                      d + 1000 * (i + 1)))
        heatmap = sample(model, diffusion, cond, x_T, steps, sampler,
                         trajectory if draw == first_draw else None,
                         step_noise)[:, 0].cpu().numpy()
        total = heatmap if total is None else total + heatmap
    return total / draws


def _record(batch: dict, i: int, score: dict, inout_prob: float) -> dict:
    """One row of predictions.csv."""
    pred_x, pred_y = score["pred"]
    return {"id": int(batch["index"][i]), "path": batch["path"][i], "pred_x": pred_x,
            "pred_y": pred_y, "inout_score": inout_prob, "inout": int(batch["inout"][i]),
            **{k: v for k, v in score.items() if k != "pred"}}


def _shard_positions(size: int, shard: tuple[int, int]) -> list[int]:
    """Process ``index`` of ``count`` takes every count-th position: no padding, so gathering
    the shards yields every instance exactly once."""
    index, count = shard
    return list(range(index, size, count))


def _gather(items: list, shard: tuple[int, int]) -> list:
    """Every process's items, concatenated (a collective call with several processes)."""
    if shard[1] == 1:
        return items
    from accelerate.utils import gather_object
    return gather_object(items)


@torch.no_grad()
def run_split(model, diffusion, dataset, steps_list: list[int], *, batch_size: int, seed: int,
              device, prior_inout: float, num_keep: int = 0, num_workers: int = 0,
              num_samples: int = 1, protocol: str = "gazefollow", desc: str = "eval",
              shard: tuple[int, int] = (0, 1)) -> dict:
    """Sample with each DDIM step count in ``steps_list`` (may be empty: in/out only).

    With ``shard`` = (process index, process count) each process samples its share and every
    process gets the merged results (a collective call: all processes must make it).

    Returns {"model": {steps: summary}, "center_prior": summary, "mean_of_samples": summary of
    the mean heatmap of ``num_samples`` draws at the first step count (None when 1),
    "records": per-sample rows at the first step count, "samples": the first ``num_keep``
    instances with heatmaps and denoising trajectories (at the largest step count) for
    pictures, "bad_input": the samples skipped because they failed to load}.
    """
    from torch.utils.data import Subset

    from gazefollow.data.dataset import BAD_KEY, collate_samples

    model.eval()
    size, first = dataset.output_size, (steps_list or [None])[0]
    positions = _shard_positions(len(dataset), shard)
    # its own generator: evaluating never draws from the global RNG (exact training resume)
    loader = DataLoader(Subset(dataset, positions), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_samples,
                        generator=torch.Generator())
    prior = center_prior_heatmap(size)
    entries, bad = [], []
    progress = tqdm(total=len(positions), desc=desc, unit="sample", leave=False,
                    disable=None if shard[0] == 0 else True)
    for batch in loader:
        bad += batch.pop(BAD_KEY)
        batch = _to_device(batch, device)
        batch_positions = batch["position"].tolist()
        cond = model.encode(batch)  # once per sample, reused by every step and draw
        inout_prob = torch.sigmoid(cond["inout_logit"].float()).cpu().numpy()
        ids, heatmaps, trajectory = batch["index"].tolist(), {}, []
        for steps in steps_list:
            keep_path = steps == max(steps_list) and min(batch_positions) < num_keep
            heatmaps[steps] = sample_heatmaps(model, diffusion, cond, ids, size, seed, steps,
                                              device, trajectory=trajectory if keep_path else None)
        mean_map = None
        if num_samples > 1 and steps_list and diffusion is not None:  # draw 0 is heatmaps[first]
            others = sample_heatmaps(model, diffusion, cond, ids, size, seed, first, device,
                                     draws=num_samples - 1, first_draw=1)
            mean_map = (heatmaps[first] + (num_samples - 1) * others) / num_samples
        for i, position in enumerate(batch_positions):
            points = batch["gaze_points"][i].cpu().numpy()
            args = (points, float(batch["inout"][i]), int(batch["width"][i]),
                    int(batch["height"][i]), protocol)
            entry = {"position": position, "prior": score_instance(prior, *args),
                     "steps": {s: score_instance(heatmaps[s][i], *args) for s in steps_list},
                     "mean": score_instance(mean_map[i], *args) if mean_map is not None else None,
                     "inout_score": float(inout_prob[i]), "label": int(batch["inout"][i])}
            if steps_list:
                entry["record"] = _record(batch, i, entry["steps"][first], float(inout_prob[i]))
            if position < num_keep and steps_list:
                entry["kept"] = {
                    "path": batch["path"][i], "index": ids[i],
                    "head_box": batch["head_box"][i].cpu().numpy(), "points": points,
                    "heatmap": heatmaps[first][i], "pred": entry["steps"][first]["pred"],
                    "inout_prob": float(inout_prob[i]),
                    "trajectory": [step[i, 0].numpy() for step in trajectory]}
            entries.append(entry)
        progress.update(len(ids))
    progress.close()
    # dataset order, so means and AP are summed as with one process, to the last bit
    entries = sorted(_gather(entries, shard), key=lambda entry: entry["position"])
    bad = _gather(bad, shard)
    scores = [e["inout_score"] for e in entries]
    labels = [e["label"] for e in entries]
    prior_constant = np.full(len(labels), prior_inout)
    return {
        "model": {steps: summarize([e["steps"][steps] for e in entries], scores, labels,
                                   protocol)
                  for steps in steps_list} or {0: summarize([], scores, labels, protocol)},
        "center_prior": summarize([e["prior"] for e in entries], prior_constant, labels,
                                  protocol),
        "mean_of_samples": summarize([e["mean"] for e in entries], scores, labels, protocol)
        if entries and entries[0]["mean"] is not None else None,
        "records": [e["record"] for e in entries if "record" in e],
        "samples": [e["kept"] for e in entries if "kept" in e],
        "bad_input": bad,
    }


def evaluate_run(config, model, diffusion, run_dir: str | Path, device, weights: str,
                 log=print, run_id: str | None = None, shard: tuple[int, int] = (0, 1)) -> dict:
    """The end-of-run evaluation: protocol metrics on ``eval.split`` for the model and the
    centre prior, in/out AP; ``metrics.json``, ``predictions.csv`` and pictures in
    ``run_dir``; the same logged to wandb unless it is disabled.

    With ``shard`` = (process index, count), every process samples its share and process 0
    writes the merged results (all processes return them)."""
    from gazefollow.data.build import build_datasets
    from gazefollow.visualize import save_prediction_grid, save_trajectories

    if shard[0] != 0:
        log = lambda *_: None  # noqa: E731  one process speaks
    datasets = build_datasets(config, log=log)
    steps_list = list(dict.fromkeys([config.diffusion.sample_time_steps,
                                     *config.eval.extra_steps]))
    if diffusion is None:  # regression: one pass, no step counts
        steps_list = [1]
    prior_inout = float(np.mean([i.inout for i in datasets["train"].instances]))
    common = dict(batch_size=config.eval.batch_size, seed=config.run.seed, device=device,
                  prior_inout=prior_inout, num_workers=config.data.num_workers, shard=shard)
    split = config.eval.split
    protocol = protocol_of(config)
    main = run_split(model, diffusion, datasets[split], steps_list, protocol=protocol,
                     num_keep=config.eval.num_visualize, num_samples=config.eval.num_samples,
                     desc=f"{split} ({weights})", **common)
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
    ap = inout["model"][next(iter(inout["model"]))]["inout_ap"]
    results = {"model": dict(main["model"][first], inout_ap=ap),
               "center_prior": dict(main["center_prior"],
                                    inout_ap=inout["center_prior"]["inout_ap"]),
               "model_steps": {str(s): dict(main["model"][s], inout_ap=ap) for s in steps_list}}
    if main["mean_of_samples"] is not None:
        results["model_mean_of_samples"] = {
            str(config.eval.num_samples): dict(main["mean_of_samples"], inout_ap=ap)}
    bad = main["bad_input"] + (inout["bad_input"] if inout is not main else [])
    results["info"] = {
        "split": split, "instances": len(datasets[split]) - len(main["bad_input"]),
        "dataset": config.data.source_dataset, "protocol": protocol,
        "subsampled": bool(config.data.subsample_test and split == "test"),
        "sampler": diffusion.cfg.sampler if diffusion is not None else "regression (one pass)",
        "sample_steps": first, "num_samples": config.eval.num_samples,
        "weights": weights, "inout_ap_split": ap_split, "processes": shard[1],
        "inout_ap_instances": len(datasets[ap_split]) - len(inout["bad_input"]),
        "skipped_unreadable": len(bad), "skipped_examples": bad[:5],
        "center_prior": f"Gaussian sigma {PRIOR_SIGMA_AT_64} (at 64 px) at the image centre; "
                        f"in/out score = train in-frame rate {prior_inout:.3f}",
    }
    if shard[0] != 0:
        return results
    run_dir = Path(run_dir)
    write_metrics(results, run_dir / "metrics.json")
    write_predictions(main["records"], run_dir / "predictions.csv")
    pictures = [run_dir / "predictions_grid.png", run_dir / "denoising_trajectories.png"]
    if main["samples"]:
        root = Path(config.data.dataset_dir)
        save_prediction_grid(main["samples"], root, pictures[0])
        save_trajectories(main["samples"][:4], root, pictures[1], max(steps_list))
    log_to_wandb(config, run_dir, results, pictures, run_id)
    if bad:
        log(f"SKIPPED {len(bad)} samples that failed to load (data.on_bad_input=skip): "
            + " | ".join(bad[:5]))
    note = " (SUBSAMPLED test heads: not comparable to the full test set)" \
        if results["info"]["subsampled"] else ""
    log(f"\n{split} split, {results['info']['instances']} instances{note}, {protocol} protocol, "
        f"{results['info']['sampler']} {first} step(s), {weights} weights; in/out AP on "
        f"{ap_split}:\n"
        f"{format_table(results, protocol)}")
    return results


def runs_on_cpu(config) -> bool:
    """CPU when asked, or under "auto" when no GPU is present (training and evaluation)."""
    device = config.run.device
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def eval_processes(config):
    """Accelerate's process state (several under ``accelerate launch`` / ``torchrun``): CPU
    processes talk over gloo when no GPU is used."""
    from accelerate import PartialState
    return PartialState(cpu=runs_on_cpu(config))


def pick_device(config) -> torch.device:
    """The evaluation device: as configured, or CUDA when available under "auto"; with
    several processes, this process's device."""
    processes = eval_processes(config)
    if processes.num_processes > 1:
        return processes.device
    if config.run.device in ("cuda", "mps"):
        return torch.device(config.run.device)
    if config.run.device == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def load_for_eval(checkpoint: str | Path, overrides: list = (), layers: list = ()) -> dict:
    """Saved weights ready to sample: {"config", "model" (on its device, EMA weights when
    ``optim.ema_on`` and the checkpoint holds them), "diffusion", "device", "weights" ("ema" or
    "raw"), "state", "path"}; the checkpoint's config with ``layers`` and ``overrides`` on top."""
    from diffusers.training_utils import EMAModel

    from gazefollow.checkpoint import (latest_checkpoint, load_checkpoint, resolve_checkpoint,
                                       run_dir_of)
    from gazefollow.config import build_config
    from gazefollow.diffusion.gaussian import build_diffusion
    from gazefollow.models.gaze_model import build_model

    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    latest = latest_checkpoint(run_dir_of(path))
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
    return {"config": config, "model": model.to(device), "weights": weights, "state": state,
            "diffusion": build_diffusion(config) if config.model.decoder == "diffusion" else None,
            "device": device, "path": path, "run_dir": run_dir_of(path),
            # outputs of an older checkpoint of the run are named by its step, so they never
            # overwrite those of the newest
            "suffix": "" if latest in (None, path.parent) else f"-step{state['step']}"}


def evaluate_checkpoint(checkpoint: str | Path, overrides: list = (), out_dir=None,
                        layers: list = (), log=print) -> dict:
    """Evaluate saved weights: the checkpoint's own config, then YAML ``layers`` and
    ``overrides`` on top (e.g. ``diffusion.sample_time_steps=4``, ``eval.split=val``,
    ``optim.ema_on=false`` for the raw weights, ``eval.batch_size=1``)."""
    from gazefollow.config import to_yaml

    loaded = load_for_eval(checkpoint, overrides, layers)
    config, path, weights = loaded["config"], loaded["path"], loaded["weights"]
    if out_dir is None:
        steps = config.diffusion.sample_time_steps
        tail = "-subsampled" if config.data.subsample_test and config.eval.split == "test" else ""
        kind = config.diffusion.sampler if config.model.decoder == "diffusion" else "regression"
        out_dir = loaded["run_dir"] / (f"eval-{config.eval.split}-{kind}{steps}-{weights}{tail}"
                                       f"{loaded['suffix']}")
    processes = eval_processes(config)
    if processes.is_main_process:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "eval_config.yaml").write_text(to_yaml(config))
        log(f"evaluating {path} (step {loaded['state']['step']}, {processes.num_processes} "
            f"process(es)) -> {out_dir}")
    return evaluate_run(config, loaded["model"], loaded["diffusion"], out_dir, loaded["device"],
                        weights, log, run_id=loaded["state"].get("wandb_run_id"),
                        shard=(processes.process_index, processes.num_processes))
