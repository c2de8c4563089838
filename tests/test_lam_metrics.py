"""Looking-At-Me metrics against a slow reference written as Ego4D's evaluation runs: rows
ranked by score, true positives counted row by row, the VOC envelope by a backward loop."""
import numpy as np
import pytest

from gazefollow.social.metrics import (all_positive_baseline, lam_accuracy, lam_map,
                                       voc_average_precision)


def slow_ap(scores, labels) -> float:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    positives = sum(labels)
    precision, recall, hits = [], [], 0
    for rank, i in enumerate(order, start=1):
        hits += labels[i]
        precision.append(hits / rank)
        recall.append(hits / positives)
    recall = [0.0] + recall + [1.0]
    precision = [0.0] + precision + [0.0]
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    return sum((recall[i] - recall[i - 1]) * precision[i] for i in range(1, len(recall))
               if recall[i] != recall[i - 1])


def slow_map(scores, labels) -> float:
    return (slow_ap(scores, labels) + slow_ap([1 - s for s in scores],
                                              [1 - y for y in labels])) / 2


def test_lam_map_matches_the_slow_reference_on_random_predictions():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        labels[0], labels[1] = 0, 1  # both classes
        scores = np.round(rng.random(n), 1 if trial % 2 else 6)  # some with ties
        assert lam_map(scores, labels) == pytest.approx(slow_map(list(scores), list(labels)))


def test_hand_worked_ap_and_accuracy():
    # ranked: 1 (0.9), 0 (0.8), 1 (0.7), 0 (0.1): precision 1, 1/2, 2/3, 1/2 at recall .5 .5 1 1
    scores, labels = [0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]
    assert voc_average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # not looking: 1 - scores = 0.1, 0.2, 0.3, 0.9 for labels 0, 1, 0, 1 ranks 1, 0, 1, 0 too
    assert lam_map(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert lam_map([0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 + 2 / 6)
    assert lam_accuracy(scores, labels) == 0.75  # 0.8 is a false positive
    assert lam_accuracy(scores, labels, threshold=0.95) == 0.5
    assert lam_map([0.9, 0.1], [1, 0]) == 1.0


def test_all_positive_baseline_is_the_class_shares():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    baseline = all_positive_baseline(labels)
    assert baseline["accuracy"] == pytest.approx(0.2)
    assert baseline["map"] == pytest.approx(0.5 * (0.2 + 0.8))
    assert voc_average_precision(np.ones(10), labels, ties="grouped") == pytest.approx(0.2)


def test_bad_scores_and_labels_are_refused():
    with pytest.raises(ValueError, match="0 or 1"):
        lam_map([0.5, 0.2], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        lam_map([float("nan"), 0.2], [1, 0])
    with pytest.raises(ValueError, match="2 scores for 3 labels"):
        lam_accuracy([0.5, 0.2], [1, 0, 1])
