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

from gazefollow.engine.evaluation import Evaluation
from gazefollow.engine.evaluation import predict_split as predict_split_rows
from gazefollow.engine.reporting import write_predictions
from gazefollow.estimation.metrics import angular_error, mean_gaze_error
from gazefollow.estimation.models import estimate

# Published mean angular errors (degrees) on the real datasets (docs/estimation.md).
REFERENCE_RESULTS = {
    "mpiifacegaze": [("L2CS-Net (15-fold)", 3.92), ("GazeTR-Hybrid", 4.00),
                     ("ResNet-50, tuned", 4.50), ("GEFF (10-fold p00-p09)", 4.24)],
    "gaze360": [("L2CS-Net", 10.41), ("Gaze360 LSTM", 13.50)],
    "columbia": [("GEFF baseline", 8.59), ("GEFF", 7.35)],
}
REFERENCE_RESULTS["mpiifacegaze_pickle"] = REFERENCE_RESULTS["mpiifacegaze"]


def predict_split(model, dataset, *, batch_size: int, device, num_workers: int = 0,
                  shard: tuple[int, int] = (0, 1), desc: str = "eval") -> tuple[list, list]:
    """(rows {position, index, subject, pred [2], true [2], dataset} in dataset order, the
    messages of samples that failed to load), merged over processes (a collective call with
    several)."""
    def make_rows(batch, outputs) -> list[dict]:
        pred = outputs["predicted gaze"]
        return [{"position": position, "index": int(batch["index"][i]),
                 "subject": batch["subject"][i], "pred": pred[i],
                 "true": batch["gaze"][i].cpu().numpy().copy(),  # not a view of the batch
                 "dataset": batch["dataset"][i] if "dataset" in batch else None}
                for i, position in enumerate(batch["position"].tolist())]

    predicted = predict_split_rows(model, dataset, _predict_gaze, make_rows,
                                   batch_size=batch_size, device=device, shard=shard,
                                   num_workers=num_workers, desc=desc)
    return predicted.rows, predicted.bad_input


def _predict_gaze(model, batch) -> dict:
    return {"predicted gaze": estimate(model, batch).float().cpu().numpy()}


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


def evaluate_estimation(config, model, device, weights: str, shard: tuple[int, int],
                        log) -> Evaluation:
    """The end-of-run evaluation of a gaze-estimation model on ``eval.split``."""
    from gazefollow.estimation.data.build import build_face_datasets

    split = config.eval.split
    datasets = build_face_datasets(config, splits=("train", split), log=log)
    rows, bad = predict_split(model, datasets[split], batch_size=config.eval.batch_size,
                              device=device, num_workers=config.data.num_workers, shard=shard,
                              desc=f"{split} ({weights})")
    scored = score(rows, datasets["train"].gaze_labels())
    errors = scored.pop("errors")
    info = {
        "split": split, "instances": len(rows),
        "dataset": config.data.source_dataset, "fold": config.eval.fold,
        "subjects": sorted(scored["per_subject"]),
        "loaded": {name: datasets[name].load_report.as_dict() for name in dict.fromkeys(
            ["train", split])},
        "mean_gaze": "every face predicted as the mean direction of the train split's faces",
        "trained_on": [entry["name"] for entry in config.estimation.joint
                       if entry["name"] != config.estimation.joint_leave_out]}
    table = (f"\n{split} split, {len(rows)} faces of {len(info['subjects'])} subject(s), "
             f"{weights} weights:\n"
             f"{format_table(scored, config.data.source_dataset, info['trained_on'])}")
    return Evaluation(scored, info, bad, table, lambda run_dir: _write_files(
        config, run_dir, rows, errors, datasets[split]))


def _write_files(config, run_dir: Path, rows: list[dict], errors: np.ndarray,
                 dataset) -> list[Path]:
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
    return [picture]


def format_table(results: dict, dataset: str, trained_on: list[str] = ()) -> str:
    """The printed table; a joint evaluation adds one row per test dataset, marked
    within-dataset (trained on) or cross-dataset."""
    lines = [f"{'':<30}{'angular error (deg)':>20}",
             f"{'model':<30}{results['model']['angular_error']:>20.2f}",
             f"{'mean gaze':<30}{results['mean_gaze']['angular_error']:>20.2f}"]
    if "per_dataset" in results:
        trained = set(trained_on)
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


