"""Several gaze hypotheses for one person, and how to score them as a set against the
annotators' spread.

A diffusion head draws K heatmaps, each a sample of where the person may look; their argmax
points are the hypotheses. A one-pass head has one heatmap: its hypotheses are its K highest
peaks, each at least ``radius`` from the others (``heatmap_peaks``), so both kinds of head
are scored on the same footing.

``hypothesis_scores`` scores K hypothesis points against M annotator points (normalised
image units; rows with a negative coordinate are padding and ignored):

- ``oracle_l2``: min over k of |h_k - mean(a)|, the Avg L2 of the best hypothesis;
- ``coverage``: the share of annotators within ``radius`` of some hypothesis;
- ``energy``: mean over (k, m) of |h_k - a_m| - 0.5 mean over (k, k') of |h_k - h_k'|, the
  energy score (Gneiting and Raftery 2007), a proper scoring rule: lower is better; for one
  hypothesis it is the mean distance to the annotators.

Vectorised over heads: [N, K, 2] and [N, M, 2] give arrays [N]; a head without a valid
hypothesis or annotator scores NaN.
"""
from __future__ import annotations

import numpy as np

SCORES = ("oracle_l2", "coverage", "energy")


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, P, 2], [N, Q, 2] -> distances [N, P, Q]."""
    return np.sqrt(((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(axis=-1))


def hypothesis_scores(hypotheses, annotators, radius: float = 0.1) -> dict:
    """{"oracle_l2", "coverage", "energy"} (see the module docstring): floats for one head
    ([K, 2], [M, 2]), arrays [N] for N heads ([N, K, 2], [N, M, 2])."""
    h = np.asarray(hypotheses, dtype=np.float64)
    a = np.asarray(annotators, dtype=np.float64)
    single = h.ndim == 2
    if single:
        h, a = h[None], a[None]
    valid_h, valid_a = (h >= 0).all(axis=-1), (a >= 0).all(axis=-1)  # [N, K], [N, M]
    n_h, n_a = valid_h.sum(axis=1), valid_a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a = (a * valid_a[..., None]).sum(axis=1) / n_a[:, None]  # [N, 2]
        to_mean = np.sqrt(((h - mean_a[:, None, :]) ** 2).sum(axis=-1))  # [N, K]
        oracle = np.where(valid_h, to_mean, np.inf).min(axis=1)
        cross = _pairwise(h, a)  # [N, K, M]
        nearest = np.where(valid_h[:, :, None], cross, np.inf).min(axis=1)  # [N, M]
        coverage = ((nearest <= radius) & valid_a).sum(axis=1) / n_a
        pair = valid_h[:, :, None] & valid_a[:, None, :]
        spread = valid_h[:, :, None] & valid_h[:, None, :]
        energy = ((cross * pair).sum(axis=(1, 2)) / (n_h * n_a)
                  - 0.5 * (_pairwise(h, h) * spread).sum(axis=(1, 2)) / (n_h * n_h))
    empty = (n_h == 0) | (n_a == 0)
    out = {key: np.where(empty, np.nan, value)
           for key, value in zip(SCORES, (oracle, coverage, energy))}
    return {key: float(value[0]) for key, value in out.items()} if single else out


def heatmap_peaks(heatmap, count: int, radius: float) -> np.ndarray:
    """The ``count`` highest local maxima of a heatmap [H, W] as points [count, 2]
    (normalised like ``metrics.heatmap_argmax``: pixel i <-> i / size), greedily: the
    highest pixel, then the highest at least ``radius`` (normalised) from every point taken
    (non-maximum suppression). Fewer peaks than ``count`` are padded with -1."""
    heatmap = np.asarray(heatmap, dtype=np.float64).squeeze()
    height, width = heatmap.shape
    ys, xs = np.mgrid[0:height, 0:width]
    points_x, points_y = xs.ravel() / width, ys.ravel() / height
    order = np.argsort(-heatmap.ravel(), kind="stable")  # ties: first in row-major order
    taken: list[tuple[float, float]] = []
    for index in order:
        x, y = points_x[index], points_y[index]
        if all((x - tx) ** 2 + (y - ty) ** 2 >= radius ** 2 for tx, ty in taken):
            taken.append((x, y))
            if len(taken) == count:
                break
    out = np.full((count, 2), -1.0)
    out[:len(taken)] = taken
    return out


def cluster_points(points, radius: float) -> list[tuple[tuple[float, float], float]]:
    """Sampled points merged into hypotheses: [((x, y), share)], largest share first. Each
    point joins the first hypothesis whose centre (the mean of its points) is within
    ``radius``, else starts one; a hypothesis's share is its points over all points. The
    result depends only on the points' order (draw order), so it is deterministic."""
    clusters: list[list] = []  # [sum x, sum y, count]
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        for cluster in clusters:
            cx, cy = cluster[0] / cluster[2], cluster[1] / cluster[2]
            if (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2:
                cluster[0], cluster[1], cluster[2] = cluster[0] + x, cluster[1] + y, cluster[2] + 1
                break
        else:
            clusters.append([x, y, 1])
    total = sum(c[2] for c in clusters)
    merged = [((c[0] / c[2], c[1] / c[2]), c[2] / total) for c in clusters]
    return sorted(merged, key=lambda item: -item[1])  # stable: ties keep draw order
