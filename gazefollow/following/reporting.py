"""Gaze following's terminal table: the protocol metrics beside the published results."""
from __future__ import annotations

import math

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


def format_table(results: dict, protocol: str, sampler: str = "ddim") -> str:
    """metrics.json's content as a terminal table, then the published results on the real
    dataset of the protocol (comparable only when the evaluated data is that dataset)."""
    keys = [k for k in COLUMN_NAMES if k in results["model"]]
    rows = [("model", results["model"])]
    by_steps = results.get("model_steps", {})
    if len(by_steps) > 1:
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
