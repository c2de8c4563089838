import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from gazefollow.following import metrics


def _slow_gazefollow_auc(heatmap, points, width, height):
    """Obviously-correct reference: upsample, build the multi-hot map, scikit-learn ROC-AUC."""
    scores = torch.nn.functional.interpolate(
        torch.as_tensor(heatmap, dtype=torch.float64)[None, None], size=(height, width),
        mode="bilinear", align_corners=False)[0, 0].numpy()
    target = np.zeros((height, width))
    for x, y in points:
        if x >= 0 and y >= 0:
            target[min(int(y * height), height - 1), min(int(x * width), width - 1)] = 1
    return roc_auc_score(target.ravel(), scores.ravel())


@pytest.mark.parametrize("case", range(12))
def test_gazefollow_auc_matches_sklearn(case):
    rng = np.random.default_rng(case)
    heatmap = rng.random((16, 16))
    if case % 3 == 0:
        heatmap = np.round(heatmap * 3) / 3  # ties
    width, height = int(rng.integers(20, 90)), int(rng.integers(20, 90))
    points = rng.random((int(rng.integers(1, 21)), 2))
    if case % 4 == 0:
        points[0] = [1.0, 1.0]  # border point
    if case % 5 == 0:
        points = np.concatenate([points, -np.ones((3, 2))])  # padding
    assert metrics.gazefollow_auc(heatmap, points, width, height) == pytest.approx(
        _slow_gazefollow_auc(heatmap, points, width, height), abs=1e-9)


def test_flat_heatmap_and_single_annotator():
    # Bilinear resizing leaves rounding-level differences on a flat map; they are part of the
    # protocol, so the reference decides, and the result stays close to chance.
    flat = np.ones((8, 8))
    ours = metrics.gazefollow_auc(flat, [[0.3, 0.3]], 40, 30)
    assert ours == pytest.approx(_slow_gazefollow_auc(flat, [[0.3, 0.3]], 40, 30), abs=1e-9)
    assert ours == pytest.approx(0.5, abs=0.05)


def test_l2_uses_the_mean_annotator_point():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [-1, -1]])
    avg_l2, min_l2 = metrics.gazefollow_l2((0.5, 0.0), points)
    assert avg_l2 == pytest.approx(0.0)  # mean point is (0.5, 0): not the mean distance 0.5
    assert min_l2 == pytest.approx(0.5)


def test_heatmap_argmax_normalised_by_size():
    heatmap = torch.zeros(64, 64)
    heatmap[10, 40] = 1
    assert metrics.heatmap_argmax(heatmap) == (40 / 64, 10 / 64)


def test_inout_ap_matches_sklearn_and_nan_for_one_class():
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 50), rng.random(50)
    assert metrics.inout_ap(scores, labels) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12)
    assert np.isnan(metrics.inout_ap(scores, np.ones(50)))


EDGE_CASES = {
    "single annotator": lambda rng: rng.random((1, 2)),
    "twenty annotators": lambda rng: rng.random((20, 2)),
    "points on the border": lambda rng: np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
    "padding": lambda rng: np.concatenate([rng.random((3, 2)), -np.ones((17, 2))]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("heatmap_kind", ["random", "ties", "flat", "peaked"])
def test_every_metric_matches_the_slow_reference(case, heatmap_kind):
    rng = np.random.default_rng(len(case) * 7 + len(heatmap_kind))
    heatmap = {"random": lambda: rng.random((64, 64)),
               "ties": lambda: np.round(rng.random((64, 64)) * 4) / 4,
               "flat": lambda: np.full((64, 64), 0.25),
               "peaked": lambda: np.exp(-((np.arange(64)[:, None] - 20) ** 2
                                          + (np.arange(64)[None] - 40) ** 2) / 18.0),
               }[heatmap_kind]()
    points = EDGE_CASES[case](rng)
    width, height = int(rng.integers(50, 130)), int(rng.integers(40, 110))
    valid = points[(points >= 0).all(axis=1)]
    assert metrics.gazefollow_auc(heatmap, points, width, height) == pytest.approx(
        _slow_gazefollow_auc(heatmap, points, width, height), abs=1e-9)
    for as_tensor in (False, True):
        pred = metrics.heatmap_argmax(torch.as_tensor(heatmap) if as_tensor else heatmap)
        avg_l2, min_l2 = metrics.gazefollow_l2(torch.tensor(pred) if as_tensor else pred, points)
        assert avg_l2 == pytest.approx(np.hypot(*(valid.mean(axis=0) - pred)), abs=1e-12)
        assert min_l2 == pytest.approx(min(np.hypot(*(p - pred)) for p in valid), abs=1e-12)
    target = metrics.vat_target(valid[0])
    assert metrics.vat_auc(heatmap, valid[0]) == pytest.approx(
        roc_auc_score(target.ravel(), heatmap.ravel()), abs=1e-9)
    assert metrics.vat_l2(pred, valid[0]) == pytest.approx(np.hypot(*(valid[0] - pred)))


def test_heatmap_argmax_takes_the_first_of_tied_maxima():
    heatmap = np.zeros((64, 64))
    heatmap[5, 9] = heatmap[30, 2] = 1.0
    assert metrics.heatmap_argmax(heatmap) == (9 / 64, 5 / 64)


def test_heatmap_argmaxes_of_a_batch_equal_the_argmax_of_each_map():
    maps = np.random.default_rng(3).integers(0, 4, (3, 2, 8, 12)).astype(np.float32)
    points = metrics.heatmap_argmaxes(torch.from_numpy(maps))
    assert points.shape == (3, 2, 2)
    for i in range(3):
        for k in range(2):  # small integers: many ties, the first one wins in both
            assert tuple(points[i, k]) == metrics.heatmap_argmax(maps[i, k])


def _angle_reference(pred, points, eye):
    """The original research code's angular error, one annotator at a time."""
    angles = []
    for x, y in points:
        if x < 0:
            continue
        a, b = (x - eye[0], y - eye[1]), (pred[0] - eye[0], pred[1] - eye[1])
        cos = (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b) + 1e-6)
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    return min(angles), sum(angles) / len(angles)


def test_angular_errors_and_heatmap_ap_match_the_original_formulas():
    from gazefollow.following.metrics import angular_errors, heatmap_ap
    rng = np.random.default_rng(3)
    for _ in range(30):
        points = rng.uniform(0, 1, size=(int(rng.integers(1, 6)), 2))
        padded = np.concatenate([points, -np.ones((3, 2))])
        eye, pred = rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)
        assert angular_errors(pred, padded, eye) == pytest.approx(
            _angle_reference(pred, padded, eye), abs=1e-9)
        heatmap = rng.random((64, 64))
        target = np.zeros((64, 64))
        for x, y in points:
            target[min(int(y * 64), 63), min(int(x * 64), 63)] = 1
        assert heatmap_ap(heatmap, padded) == pytest.approx(
            average_precision_score(target.ravel(), heatmap.ravel()), abs=1e-12)
    # straight on: 0 but for the original's 1e-6 in the denominator (0.29 degrees here)
    assert angular_errors([0.9, 0.5], [[0.7, 0.5]], [0.5, 0.5])[0] == pytest.approx(
        math.degrees(math.acos(0.08 / (0.08 + 1e-6))))
    assert angular_errors([0.1, 0.5], [[0.7, 0.5]], [0.5, 0.5])[0] == pytest.approx(
        math.degrees(math.acos(-0.08 / (0.08 + 1e-6))))  # opposite: 180 less that floor
    small, point = rng.random((32, 32)), [[0.3, 0.8]]  # resized to 64 first
    large = torch.nn.functional.interpolate(torch.as_tensor(small)[None, None], size=(64, 64),
                                            mode="bilinear", align_corners=False)[0, 0].numpy()
    assert heatmap_ap(small, point) == heatmap_ap(large, point)


def test_average_precision_is_scikit_learns_to_the_last_bit():
    """heatmap_ap's own AP: the same value as average_precision_score, ties included."""
    from gazefollow.following.metrics import average_precision
    rng = np.random.default_rng(5)
    for trial in range(60):
        size = int(rng.integers(2, 5000))
        scores = rng.random(size)
        if trial % 3 == 0:  # many ties: a few distinct values, or a flat map
            scores = np.round(scores * int(rng.integers(1, 6))) / 5
        positive = rng.random(size) < rng.choice([0.001, 0.05, 0.5])
        positive[int(rng.integers(size))] = True
        assert average_precision(scores, positive) == average_precision_score(positive, scores)
    scores, none = rng.random(10), np.zeros(10, dtype=bool)
    with pytest.warns(UserWarning):  # scikit-learn warns when nothing is positive
        assert average_precision(scores, none) == average_precision_score(none, scores) == 0
