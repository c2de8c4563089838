"""What an evaluation leaves behind: the terminal tables (beside the published results),
metrics.json, the per-sample predictions file, and the wandb log."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

# Published results (from each paper; docs/protocols.md): the literature's reference points.
REFERENCE_RESULTS = {
    "gazefollow": ("GazeFollow", ("auc", "avg_l2", "min_l2"), [
        ("Human", 0.924, 0.096, 0.040), ("Chong et al. 2020", 0.921, 0.137, 0.077),
        ("Sharingan 2024", 0.944, 0.113, 0.057), ("ViTGaze 2024", 0.949, 0.105, 0.047),
        ("Gaze-LLE ViT-L 2025", 0.958, 0.099, 0.041)]),
    "vat": ("VideoAttentionTarget", ("auc", "l2", "inout_ap"), [
        ("Human", 0.921, 0.051, 0.925), ("Chong et al. 2020", 0.860, 0.134, 0.853),
        ("Sharingan 2024", math.nan, 0.107, 0.891), ("ViTGaze 2024", 0.938, 0.102, 0.905),
        ("Gaze-LLE ViT-L 2025", 0.937, 0.103, 0.903)]),
}
COLUMN_NAMES = {"auc": "AUC", "avg_l2": "Avg L2", "min_l2": "Min L2", "l2": "L2",
                "inout_ap": "in/out AP", "avg_angle": "Avg ang.", "min_angle": "Min ang.",
                "heatmap_ap": "heatmap AP"}


def _row(name: str, values: dict, keys) -> str:
    cells = "".join(f"{'-' if math.isnan(values[k]) else format(values[k], '.4f'):>11}"
                    for k in keys)
    return f"{name:<30}{cells}"


def format_table(results: dict, protocol: str) -> str:
    """metrics.json's content as a terminal table, then the published results on the real
    dataset of the protocol (comparable only when the evaluated data is that dataset)."""
    keys = [k for k in COLUMN_NAMES if k in results["model"]]
    rows = [("model", results["model"])]
    by_steps = results.get("model_steps", {})
    if len(by_steps) > 1:
        sampler = results.get("info", {}).get("sampler", "ddim")
        rows += [(f"model, {sampler} {k} step(s)", v) for k, v in by_steps.items()]
    for draws, summary in results.get("model_mean_of_samples", {}).items():
        rows.append((f"model, mean of {draws} samples", summary))
    rows.append(("center prior", results["center_prior"]))
    lines = [f"{'':<30}" + "".join(f"{COLUMN_NAMES[k]:>11}" for k in keys)]
    lines += [_row(name, values, keys) for name, values in rows]
    dataset, ref_keys, references = REFERENCE_RESULTS[protocol]
    lines.append(f"published on real {dataset}:")
    for name, *values in references:
        lines.append(_row(f"  {name}", dict(zip(ref_keys, values)),
                          [k for k in keys if k in ref_keys]))
    return "\n".join(lines)


def strict_json(value):
    """``value`` with every NaN / infinity replaced by None, so it dumps as strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(results: dict, path: str | Path) -> None:
    """metrics.json, strict JSON: a metric that is undefined (AP with one class) is null, and
    ``info.unavailable`` says why."""
    Path(path).write_text(json.dumps(strict_json(results), indent=2, allow_nan=False))


def write_predictions(records: list[dict], path: str | Path) -> None:
    """predictions.csv: one row per evaluated instance (sample id, image, predicted point,
    in/out score and label, and the protocol's per-sample metrics; empty when undefined)."""
    if not records:
        return
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in record.items()})


def log_to_wandb(config, run_dir: Path, results: dict, pictures: list[Path],
                 run_id: str | None) -> None:
    """The metrics and pictures, into the run's wandb run (offline unless configured online).
    Does nothing when logging is disabled."""
    if config.logging.wandb == "disabled":
        return
    import wandb

    run = wandb.init(project="gazefollow", dir=str(run_dir), mode=config.logging.wandb,
                     id=run_id, resume="allow" if run_id else None, name=config.run.tag)
    split = results["info"]["split"]
    run.log({**{f"{split}/{k}": v for k, v in results["model"].items()},
             **{f"{split}/{p.stem}": wandb.Image(str(p)) for p in pictures if p.is_file()}})
    run.finish()
