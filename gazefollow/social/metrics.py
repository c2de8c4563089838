"""Looking-At-Me metrics, as Ego4D's LAM evaluation computes them (adapted there from the
AVA active-speaker evaluation).

``lam_map`` is the mean of two VOC-style average precisions: one for "looking at me"
(label 1, the score) and one for "not looking" (label 1 - label, score 1 - score). Each AP
ranks the predictions by score, descending, takes precision and recall at every rank, pads
recall with 0 and 1 and precision with 0 and 0, makes precision monotone from the right
(its envelope), and sums precision x recall step. Tied scores keep the given order (a
stable sort; the original's pandas sort leaves their order unspecified), or with
``ties="grouped"`` count as one rank, read at the group's end: what a constant score (the
all-positive baseline) is worth regardless of the order. ``lam_accuracy`` is top-1 accuracy
with class 1 taken where the score reaches the threshold.
"""
from __future__ import annotations

import numpy as np


def _checked(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(labels.tolist()))[:5]}")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or Inf")
    return scores, labels.astype(np.int64)


def voc_average_precision(scores, labels, ties: str = "stable") -> float:
    """AP of class 1 (``labels`` 0/1) ranked by ``scores``; NaN without positives."""
    scores, labels = _checked(scores, labels)
    positives = labels.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(labels) + 1)
    recall = hits / positives
    if ties == "grouped":  # one rank per run of equal scores: its last prediction
        ranked = scores[order]
        ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
        precision, recall = precision[ends], recall[ends]
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def lam_map(scores, labels, ties: str = "stable") -> float:
    """The mean of the AP of looking at the camera wearer and the AP of not looking."""
    scores, labels = _checked(scores, labels)
    return 0.5 * (voc_average_precision(scores, labels, ties)
                  + voc_average_precision(1.0 - scores, 1 - labels, ties))


def lam_accuracy(scores, labels, threshold: float = 0.5) -> float:
    scores, labels = _checked(scores, labels)
    return float(((scores >= threshold).astype(np.int64) == labels).mean())


def all_positive_baseline(labels) -> dict:
    """Every face scored 1 ("looking"): its mAP with the ties as one rank (each AP is then
    its class's share, so the mAP is 0.5 whenever both classes occur) and its accuracy (the
    share of positives)."""
    scores = np.ones(len(labels))
    return {"map": lam_map(scores, labels, ties="grouped"),
            "accuracy": lam_accuracy(scores, labels)}
