"""Protocol-exact gaze-following metrics (docs/protocols.md).

Points are normalised (x, y) in [0, 1]; a point with a negative coordinate is padding.
Each function names the protocol it reproduces.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score


def _numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().double().numpy()
    return np.asarray(array, dtype=np.float64)


def _valid_points(points) -> np.ndarray:
    points = _numpy(points).reshape(-1, 2)
    return points[(points >= 0).all(axis=1)]


def heatmap_argmax(heatmap) -> tuple[float, float]:
    """Predicted point of a heatmap [H, W]: the argmax pixel (ix, iy) as (ix / W, iy / H).

    Protocol: Chong et al. 2020 / GazeFollow evaluation (argmax of the 64x64 output map).
    Ties go to the first pixel in row-major order.
    """
    x, y = heatmap_argmaxes(_numpy(heatmap).squeeze())
    return float(x), float(y)


def heatmap_argmaxes(heatmaps) -> np.ndarray:
    """``heatmap_argmax`` of every map of [..., H, W] at once -> [..., 2] (x, y)."""
    heatmaps = _numpy(heatmaps)
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], height * width).argmax(axis=-1)
    return np.stack([flat % width / width, flat // width / height], axis=-1)


def upsample_heatmap(heatmap, width: int, height: int) -> np.ndarray:
    """Bilinear resize to the original image size, half-pixel centres, no antialiasing."""
    tensor = torch.as_tensor(_numpy(heatmap).squeeze())[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=False)[0, 0].numpy()


def auc_from_positives(scores: np.ndarray, positive: np.ndarray) -> float:
    """Exact ROC-AUC (ties count one half) when positives are few: no sort needed.

    AUC = mean over (positive, negative) pairs of [s_neg < s_pos] + 0.5 [s_neg == s_pos].
    """
    scores = scores.ravel()
    positive = np.unique(positive)
    n_pos, n_neg = len(positive), scores.size - len(positive)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    pos_scores = scores[positive]
    wins = 0.0
    for s in pos_scores:
        below = np.count_nonzero(scores < s) - np.count_nonzero(pos_scores < s)
        equal = np.count_nonzero(scores == s) - np.count_nonzero(pos_scores == s)
        wins += below + 0.5 * equal
    return wins / (n_pos * n_neg)


def auc_by_ranks(scores: np.ndarray, positive_mask: np.ndarray) -> float:
    """Exact ROC-AUC (ties count one half) from average ranks (Mann-Whitney U); the faster
    form when positives are many (VAT's 361-pixel target)."""
    scores, positive_mask = scores.ravel(), positive_mask.ravel()
    n_pos = int(positive_mask.sum())
    n_neg = scores.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # scipy.stats costs a second per process: on first use

    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[positive_mask].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gazefollow_auc(heatmap, points, width: int, height: int) -> float:
    """GazeFollow AUC of one head instance (Recasens et al. 2015; Chong et al. 2020 code).

    The predicted heatmap (output resolution, e.g. 64x64) is resized bilinearly to the original
    W x H; the target is multi-hot with one pixel per annotator point, (x, y) going to column
    min(int(x W), W - 1) and row min(int(y H), H - 1); the ROC-AUC of that pixel ranking.
    """
    scores = upsample_heatmap(heatmap, width, height)
    points = _valid_points(points)
    cols = np.minimum((points[:, 0] * width).astype(int), width - 1)
    rows = np.minimum((points[:, 1] * height).astype(int), height - 1)
    return auc_from_positives(scores, rows * width + cols)


def gazefollow_l2(pred_xy, points) -> tuple[float, float]:
    """(Avg L2, Min L2) of GazeFollow (Recasens et al. 2015; Chong et al. 2020 code).

    Avg L2 is the distance to the MEAN annotator point (not the mean of the distances);
    Min L2 the smallest distance to any annotator point. Normalised coordinates.
    """
    points = _valid_points(points)
    pred = _numpy(pred_xy).reshape(2)
    avg_l2 = float(np.linalg.norm(points.mean(axis=0) - pred))
    min_l2 = float(np.linalg.norm(points - pred, axis=1).min())
    return avg_l2, min_l2


def angular_errors(pred_xy, points, eye) -> tuple[float, float]:
    """(Min, Avg) angular error in degrees, the metric the original research code reported for
    GazeFollow (its ``utils.get_angular_error``): per annotator, the angle between the vectors
    head -> annotator point and head -> predicted point, both from the annotated eye point;
    the minimum and the mean over annotators. Its 1e-6 in the cosine's denominator is kept,
    as there: a prediction on the eye point gives 90 degrees, and short vectors gain a small
    floor (0.29 degrees for vectors of length 0.2 and 0.4)."""
    points = _valid_points(points)
    eye, pred = _numpy(eye).reshape(2), _numpy(pred_xy).reshape(2)
    to_true, to_pred = points - eye, pred - eye
    cosine = (to_true @ to_pred) / (np.linalg.norm(to_true, axis=1) * np.linalg.norm(to_pred)
                                    + 1e-6)
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return float(angles.min()), float(angles.mean())


HEATMAP_AP_SIZE = 64


def heatmap_ap(heatmap, points, size: int = HEATMAP_AP_SIZE) -> float:
    """The original research code's heatmap AP: average precision of the predicted heatmap's
    pixels at 64x64 against the multi-hot map of the annotator points there (pixel
    min(int(x 64), 63), min(int(y 64), 63)). A heatmap of another size is first resized
    bilinearly (half-pixel centres); the original used scikit-image's resize for that."""
    scores = _numpy(heatmap).squeeze()
    if scores.shape != (size, size):
        scores = upsample_heatmap(scores, size, size)
    points = _valid_points(points)
    target = np.zeros((size, size), dtype=bool)
    cols = np.minimum((points[:, 0] * size).astype(int), size - 1)
    rows = np.minimum((points[:, 1] * size).astype(int), size - 1)
    target[rows, cols] = True
    return average_precision(scores.ravel(), target.ravel())


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score`` of one binary ranking, computed as it
    computes it (the same arrays and operations: equal to the last bit, tested) without its
    input checks, which took ten times the arithmetic on a 64x64 map: the sum over the
    distinct score values, highest first, of (recall gained) x precision."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    ranked, hits = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]  # each value's last rank
    tps = np.cumsum(hits, dtype=np.float64)[last]
    fps = 1 + last - tps
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    # no positive at all: scikit-learn takes every recall as 1 (and warns), which gives 0
    recall = np.r_[(tps / tps[-1] if tps[-1] else np.ones_like(tps))[::-1], 0.0]
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


VAT_SIGMA = 3  # the reference code draws a sigma-3 Gaussian in a (6 sigma + 1)^2 window


def vat_target(point, size: int = 64) -> np.ndarray:
    """The VideoAttentionTarget AUC target: the sigma-3 Gaussian window of the reference code
    (Chong et al. 2020, ``draw_labelmap``) binarised at > 0, i.e. a 19x19 square whose corners
    are ``int()`` of the point at ``size`` px -/+ 3 sigma (truncation toward zero, as there),
    clipped to the map."""
    x, y = _numpy(point).reshape(2) * size
    target = np.zeros((size, size), dtype=bool)
    reach = 3 * VAT_SIGMA
    left, top = int(x - reach), int(y - reach)
    right, bottom = int(x + reach + 1), int(y + reach + 1)
    if left >= size or top >= size or right < 0 or bottom < 0:
        return target
    target[max(0, top):min(bottom, size), max(0, left):min(right, size)] = True
    return target


def vat_auc(heatmap, point) -> float:
    """VideoAttentionTarget AUC of one in-frame frame (Chong et al. 2020): ROC-AUC at the
    heatmap's own resolution (64x64) against ``vat_target`` of the single gaze point."""
    scores = _numpy(heatmap).squeeze()
    return auc_by_ranks(scores, vat_target(point, scores.shape[-1]))


def vat_l2(pred_xy, point) -> float:
    """VideoAttentionTarget L2 of one in-frame frame (Chong et al. 2020): distance between the
    argmax point and the single gaze point, normalised coordinates."""
    return float(np.linalg.norm(_numpy(pred_xy).reshape(2) - _numpy(point).reshape(2)))


def inout_ap(scores, labels) -> float:
    """Average precision of the in-frame score, in frame = positive (VideoAttentionTarget AP,
    Chong et al. 2020). Meaningless (and NaN here) when only one class is present."""
    labels = _numpy(labels).ravel()
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return float(average_precision_score(labels, _numpy(scores).ravel()))
