"""Ego4D's LAM CSV files read back and scored, as its ``run_evaluation`` does: ``gt.csv``
(``video_id, frame_id, x1, y1, x2, y2, track_id, label``) and ``pred.csv`` (the same, then
``label`` 1 and ``score``), without a header. Rows are keyed ``video_id:frame_id:track_id``;
a key seen twice keeps its first row (Ego4D drops duplicates). Every prediction must have its
ground truth and the other way round.

A row with the wrong number of fields, a non-numeric frame, box or score, a label outside
{0, 1}, or a score outside [0, 1] is an error naming the file and row.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gazefollow.engine.samples import BadInput
from gazefollow.social.metrics import lam_accuracy, lam_map

WIDTH = {"gt": 8, "pred": 9}


def _row_values(row: list[str], kind: str, where: str) -> tuple[str, float]:
    """(key, label or score) of one row."""
    if len(row) != WIDTH[kind]:
        raise BadInput(f"{where}: {len(row)} fields, not {WIDTH[kind]} ({kind}.csv's columns)")
    try:
        int(row[1])
        [float(v) for v in row[2:6]]
        value = float(row[-1])
    except ValueError as err:
        raise BadInput(f"{where}: a non-numeric field: {err}") from None
    if kind == "gt" and value not in (0.0, 1.0):
        raise BadInput(f"{where}: label {row[-1]} is not 0 or 1")
    if kind == "pred" and not 0 <= value <= 1:
        raise BadInput(f"{where}: score {row[-1]} is not a probability in [0, 1]")
    return f"{row[0]}:{int(row[1])}:{row[6]}", value


def read_ego4d_csv(path: str | Path, kind: str) -> dict[str, float]:
    """{video_id:frame_id:track_id: label or score}, first row of each key kept."""
    values: dict[str, float] = {}
    with Path(path).open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if row:
                key, value = _row_values(row, kind, f"{path}, row {number}")
                values.setdefault(key, value)
    return values


def score_csvs(gt_path: str | Path, pred_path: str | Path) -> dict:
    gt, pred = read_ego4d_csv(gt_path, "gt"), read_ego4d_csv(pred_path, "pred")
    missing, extra = sorted(set(gt) - set(pred)), sorted(set(pred) - set(gt))
    if missing or extra:
        raise BadInput(f"{pred_path} and {gt_path} differ: {len(missing)} ground-truth rows "
                       f"without a prediction (first {missing[:3]}), {len(extra)} predictions "
                       f"without ground truth (first {extra[:3]})")
    keys = list(gt)  # the file's order: tied scores rank as the evaluation ranked them
    labels = np.array([gt[k] for k in keys], dtype=np.int64)
    scores = np.array([pred[k] for k in keys])
    return {"map": lam_map(scores, labels), "accuracy": lam_accuracy(scores, labels),
            "rows": len(keys)}
