"""Scoring a set of gaze hypotheses against the annotators: hand-worked cases, a slow
reference on random sets with padding, and the peaks of a one-pass head's heatmap."""
import math

import numpy as np
import pytest

from gazefollow.following.hypotheses import cluster_points, heatmap_peaks, hypothesis_scores


def slow_scores(hypotheses, annotators, radius):
    """The definitions, one pair at a time."""
    h = [p for p in hypotheses if p[0] >= 0 and p[1] >= 0]
    a = [p for p in annotators if p[0] >= 0 and p[1] >= 0]
    if not h or not a:
        return {"oracle_l2": math.nan, "coverage": math.nan, "energy": math.nan}
    mean = (sum(p[0] for p in a) / len(a), sum(p[1] for p in a) / len(a))
    oracle = min(math.dist(p, mean) for p in h)
    coverage = sum(any(math.dist(p, q) <= radius for p in h) for q in a) / len(a)
    cross = sum(math.dist(p, q) for p in h for q in a) / (len(h) * len(a))
    spread = sum(math.dist(p, q) for p in h for q in h) / (len(h) ** 2)
    return {"oracle_l2": oracle, "coverage": coverage, "energy": cross - 0.5 * spread}


def test_hand_worked_sets():
    annotators = [(0.5, 0.5), (0.7, 0.5)]
    one = hypothesis_scores([(0.5, 0.5)], annotators, radius=0.1)
    assert one == pytest.approx({"oracle_l2": 0.1, "coverage": 0.5, "energy": 0.1})
    two = hypothesis_scores([(0.5, 0.5), (0.7, 0.5)], annotators, radius=0.1)
    # cross distances 0, .2, .2, 0 (mean .1); spread 0, .2, .2, 0 (mean .1, halved)
    assert two == pytest.approx({"oracle_l2": 0.1, "coverage": 1.0, "energy": 0.05})
    # one hypothesis: the energy is its mean distance to the annotators
    far = hypothesis_scores([(0.1, 0.1)], [(0.1, 0.4), (0.5, 0.1)], radius=0.1)
    assert far["energy"] == pytest.approx(0.35) and far["coverage"] == 0.0


def test_equal_to_the_slow_reference_on_random_sets_with_padding():
    rng = np.random.default_rng(0)
    heads, k, m = 64, 8, 10
    hypotheses = rng.uniform(0, 1, (heads, k, 2))
    annotators = rng.uniform(0, 1, (heads, m, 2))
    hypotheses[rng.uniform(size=(heads, k)) < 0.3] = -1  # padded rows
    annotators[rng.uniform(size=(heads, m)) < 0.3] = -1
    annotators[5] = -1  # a head without annotators
    hypotheses[6] = -1  # a head without hypotheses
    fast = hypothesis_scores(hypotheses, annotators, radius=0.15)
    for i in range(heads):
        slow = slow_scores(hypotheses[i].tolist(), annotators[i].tolist(), 0.15)
        for key, value in slow.items():
            if math.isnan(value):
                assert math.isnan(fast[key][i]), (i, key)
            else:
                assert abs(fast[key][i] - value) < 1e-9, (i, key)
    single = hypothesis_scores(hypotheses[0], annotators[0], radius=0.15)
    assert single == pytest.approx({key: fast[key][0] for key in single}, abs=1e-12)


def test_a_heatmaps_separated_peaks():
    size = 32
    ys, xs = np.mgrid[0:size, 0:size]
    heatmap = (np.exp(-((xs - 8) ** 2 + (ys - 8) ** 2) / 8.0)
               + 0.6 * np.exp(-((xs - 24) ** 2 + (ys - 20) ** 2) / 8.0))
    peaks = heatmap_peaks(heatmap, 3, radius=0.2)
    assert peaks[0].tolist() == [8 / size, 8 / size]
    assert peaks[1].tolist() == [24 / size, 20 / size]
    # the third: the highest pixel 0.2 from both, on the first bump's flank
    assert all(math.dist(peaks[2], p) >= 0.2 for p in peaks[:2])
    assert heatmap_peaks(np.zeros((4, 4)), 20, radius=0.5)[-1].tolist() == [-1, -1]


def test_samples_merge_into_hypotheses_with_their_shares():
    points = [(0.2, 0.2), (0.8, 0.5), (0.25, 0.2), (0.21, 0.24), (0.79, 0.52), (0.5, 0.9)]
    merged = cluster_points(points, radius=0.1)
    assert [share for _, share in merged] == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    assert merged[0][0] == pytest.approx((0.22, 0.21333333))
    assert merged[1][0] == pytest.approx((0.795, 0.51))
    assert cluster_points(points, radius=1.5) == [(pytest.approx((0.4583333, 0.4266667)), 1.0)]
