import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from gazefollow import metrics


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
