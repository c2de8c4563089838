"""Gaze-estimation evaluation: predict a split, score it in degrees, beside the mean-gaze
baseline; metrics.json, predictions.csv, a picture and wandb, as gaze following leaves them.

metrics.json: ``{"model": {"angular_error"}, "mean_gaze": {"angular_error"}, "per_subject":
{subject: {"model", "mean_gaze", "samples"}}, "info": {...}}``, and for a joint run
``"per_dataset"`` in the same form. The mean-gaze baseline predicts
every test face as the mean direction of the training faces, as the centre prior does for
gaze following.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from gazefollow.data.dataset import BAD_KEY, collate_samples
from gazefollow.estimation.metrics import angular_error, mean_gaze_error, pitchyaw_to_vector
from gazefollow.estimation.models import estimate
from gazefollow.evaluate import gather_shards, shard_positions
from gazefollow.reporting import log_to_wandb, write_metrics, write_predictions

# Published mean angular errors (degrees) on the real datasets (docs/estimation.md).
REFERENCE_RESULTS = {
    "mpiifacegaze": [("L2CS-Net (15-fold)", 3.92), ("GazeTR-Hybrid", 4.00),
                     ("ResNet-50, tuned", 4.50), ("GEFF (10-fold p00-p09)", 4.24)],
    "gaze360": [("L2CS-Net", 10.41), ("Gaze360 LSTM", 13.50)],
    "columbia": [("GEFF baseline", 8.59), ("GEFF", 7.35)],
}
REFERENCE_RESULTS["mpiifacegaze_pickle"] = REFERENCE_RESULTS["mpiifacegaze"]


@torch.no_grad()
def predict_split(model, dataset, *, batch_size: int, device, num_workers: int = 0,
                  shard: tuple[int, int] = (0, 1), desc: str = "eval") -> tuple[list, list]:
    """(rows {position, index, subject, pred [2], true [2]} in dataset order, the messages of
    samples that failed to load), merged over processes (a collective call with several)."""
    model.eval()
    positions = shard_positions(len(dataset), shard)
    # its own generator: evaluating never draws from the global RNG (exact training resume)
    loader = DataLoader(Subset(dataset, positions), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_samples,
                        generator=torch.Generator())
    rows, bad = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False,
                      disable=None if shard[0] == 0 else True):
        bad += batch.pop(BAD_KEY)
        batch["face"] = batch["face"].to(device)
        pred = estimate(model, batch).float().cpu().numpy()
        for i, position in enumerate(batch["position"].tolist()):
            if not np.isfinite(pred[i]).all():  # diverged weights: one named error
                raise FloatingPointError(f"sample {int(batch['index'][i])} of subject "
                                         f"{batch['subject'][i]}: the predicted gaze is NaN or "
                                         "Inf; the model's weights have diverged")
            rows.append({"position": position, "index": int(batch["index"][i]),
                         "subject": batch["subject"][i], "pred": pred[i],
                         "true": batch["gaze"][i].numpy(),
                         "dataset": batch["dataset"][i] if "dataset" in batch else None})
    rows = sorted(gather_shards(rows, shard), key=lambda r: r["position"])
    return rows, gather_shards(bad, shard)


def mean_error(rows: list[dict]) -> float:
    """Mean angular error (degrees) of predicted rows; NaN when there are none."""
    if not rows:
        return math.nan
    return float(angular_error(np.stack([r["pred"] for r in rows]),
                               np.stack([r["true"] for r in rows])).mean())


def score(rows: list[dict], train_gaze: np.ndarray) -> dict:
    """The model's and the mean-gaze baseline's mean error, overall and per subject."""
    true = np.stack([r["true"] for r in rows])
    baseline = mean_gaze_error(train_gaze, true)
    model = angular_error(np.stack([r["pred"] for r in rows]), true)
    out = {"model": {"angular_error": float(model.mean())},
           "mean_gaze": {"angular_error": float(baseline.mean())},
           "per_subject": _grouped([r["subject"] for r in rows], model, baseline),
           "errors": model}
    if any(r.get("dataset") for r in rows):  # a joint evaluation: every dataset apart
        out["per_dataset"] = _grouped([r["dataset"] for r in rows], model, baseline)
    return out


def _grouped(keys: list[str], model: np.ndarray, baseline: np.ndarray) -> dict:
    """{key: {"model", "mean_gaze", "samples"}} in first-seen order."""
    groups = {}
    for key in dict.fromkeys(keys):
        mask = np.array([k == key for k in keys])
        groups[key] = {"model": float(model[mask].mean()),
                       "mean_gaze": float(baseline[mask].mean()), "samples": int(mask.sum())}
    return groups


def evaluate_estimation(config, model, run_dir: str | Path, device, weights: str, log=print,
                        run_id: str | None = None, shard: tuple[int, int] = (0, 1),
                        differs: dict | None = None) -> dict:
    """The end-of-run evaluation of a gaze-estimation model on ``eval.split``."""
    from gazefollow.estimation.data.build import build_face_datasets

    if shard[0] != 0:
        log = lambda *_: None  # noqa: E731  one process speaks
    split = config.eval.split
    datasets = build_face_datasets(config, splits=("train", split), log=log)
    rows, bad = predict_split(model, datasets[split], batch_size=config.eval.batch_size,
                              device=device, num_workers=config.data.num_workers, shard=shard,
                              desc=f"{split} ({weights})")
    scored = score(rows, datasets["train"].gaze_labels())
    errors = scored.pop("errors")
    scored["info"] = {
        "task": "estimation", "split": split, "instances": len(rows),
        "dataset": config.data.source_dataset, "fold": config.eval.fold,
        "subjects": sorted(scored["per_subject"]), "weights": weights,
        "processes": shard[1], "skipped_unreadable": len(bad), "skipped_examples": bad[:5],
        "loaded": {name: datasets[name].load_report.as_dict() for name in dict.fromkeys(
            ["train", split])},
        "mean_gaze": "every face predicted as the mean direction of the train split's faces",
        "differs_from_training": differs or {}, "output_dir": str(run_dir),
        "trained_on": [entry["name"] for entry in config.data.joint
                       if entry["name"] != config.data.joint_leave_out]}
    if shard[0] == 0:
        _write_outputs(config, Path(run_dir), scored, rows, errors, datasets[split], run_id, log)
    return scored


def _write_outputs(config, run_dir: Path, results: dict, rows: list[dict], errors: np.ndarray,
                   dataset, run_id: str | None, log) -> None:
    write_metrics(results, run_dir / "metrics.json")
    write_predictions([{"id": r["index"], "subject": r["subject"],
                        "pred_pitch": float(r["pred"][0]), "pred_yaw": float(r["pred"][1]),
                        "true_pitch": float(r["true"][0]), "true_yaw": float(r["true"][1]),
                        "angular_error": float(e)} for r, e in zip(rows, errors)],
                      run_dir / "predictions.csv")
    picture = run_dir / "predictions_grid.png"
    shown = rows[:config.eval.num_visualize]
    if shown:
        from gazefollow.estimation.visualize import save_gaze_grid
        save_gaze_grid([{**r, "face": dataset.reader[r["position"]]["face"], "error": e}
                        for r, e in zip(shown, errors)], picture)
    log_to_wandb(config, run_dir, results, [picture], run_id)
    info = results["info"]
    if info["skipped_unreadable"]:
        log(f"SKIPPED {info['skipped_unreadable']} samples that failed to load "
            "(data.on_bad_input=skip): " + " | ".join(info["skipped_examples"]))
    log(f"\n{info['split']} split, {info['instances']} faces of {len(info['subjects'])} "
        f"subject(s), {info['weights']} weights:\n{format_table(results, info['dataset'])}")


def format_table(results: dict, dataset: str) -> str:
    """The printed table; a joint evaluation adds one row per test dataset, marked
    within-dataset (trained on) or cross-dataset."""
    lines = [f"{'':<30}{'angular error (deg)':>20}",
             f"{'model':<30}{results['model']['angular_error']:>20.2f}",
             f"{'mean gaze':<30}{results['mean_gaze']['angular_error']:>20.2f}"]
    if "per_dataset" in results:
        trained = set(results["info"].get("trained_on", []))
        lines += ["", f"{'test dataset':<22}{'protocol':<10}{'samples':>8}{'model':>10}"
                  f"{'mean gaze':>12}"]
        for name, row in results["per_dataset"].items():
            protocol = "within" if name in trained else "cross"
            lines.append(f"{name:<22}{protocol:<10}{row['samples']:>8}{row['model']:>10.2f}"
                         f"{row['mean_gaze']:>12.2f}")
    if dataset in REFERENCE_RESULTS:
        lines.append(f"published on real {dataset}:")
        lines += [f"  {name:<28}{value:>20.2f}" for name, value in REFERENCE_RESULTS[dataset]]
    return "\n".join(lines)


def gaze_arrow(pitchyaw: np.ndarray, length: float) -> tuple[float, float]:
    """The image-plane arrow (dx, dy) of a gaze direction: its vector's x (right) and y (down)."""
    vector = pitchyaw_to_vector(np.asarray(pitchyaw, np.float64).reshape(1, 2))[0]
    return float(vector[0] * length), float(vector[1] * length)
