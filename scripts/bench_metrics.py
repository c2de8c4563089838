"""GazeFollow scoring speed: our exact no-sort AUC against the per-sample scikit-learn loop,
our heatmap AP against scikit-learn's average_precision_score, and the whole per-head scoring.

    python scripts/bench_metrics.py [--instances 4782] [--seed 0] [--quick]

A test-sized set (4,782 head instances, as in the GazeFollow test split): image sizes drawn
around 640x480, 1-20 annotator points per instance (about 10 on average, as in the release),
64x64 predicted heatmaps (a few Gaussian blobs plus noise, with some quantised to create ties).
Both sides upsample the heatmap bilinearly to the image size (the protocol); the reference
then builds the multi-hot target and calls sklearn.metrics.roc_auc_score per instance. Prints
both times, the ratio and the largest difference between the two AUCs (``--quick`` leaves
out the scikit-learn AUC loop, about 80 ms per instance). Then the heatmap AP of every
instance, ours and scikit-learn's, and ``score_instance`` (AUC, L2s, angles and heatmap AP of
one head: what evaluation computes per head and step count).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from gazefollow.following.evaluate import score_instance  # noqa: E402
from gazefollow.following.metrics import upsample_heatmap  # noqa: E402
from gazefollow.following.metrics import gazefollow_auc, heatmap_ap  # noqa: E402


def make_instances(count: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    grid = np.arange(64)
    out = []
    for k in range(count):
        width, height = int(rng.integers(480, 801)), int(rng.integers(360, 601))
        heatmap = rng.random((64, 64)) * 0.05
        for _ in range(int(rng.integers(1, 4))):
            cx, cy, sigma = rng.uniform(0, 64), rng.uniform(0, 64), rng.uniform(2, 8)
            heatmap += np.exp(-((grid[None] - cx) ** 2 + (grid[:, None] - cy) ** 2)
                              / (2 * sigma ** 2))
        if k % 5 == 0:
            heatmap = np.round(heatmap * 8) / 8  # plateaus: ties
        points = np.clip(rng.normal(rng.random(2), 0.05, (int(rng.integers(1, 21)), 2)), 0, 1)
        out.append((heatmap, points, width, height))
    return out


def sklearn_auc(heatmap, points, width, height) -> float:
    """The obviously correct reference: the multi-hot target and roc_auc_score."""
    scores = upsample_heatmap(heatmap, width, height)
    target = np.zeros((height, width))
    for x, y in points:
        target[min(int(y * height), height - 1), min(int(x * width), width - 1)] = 1
    return roc_auc_score(target.ravel(), scores.ravel())


def sklearn_ap(heatmap, points) -> float:
    target = np.zeros((64, 64), dtype=bool)
    for x, y in points:
        target[min(int(y * 64), 63), min(int(x * 64), 63)] = True
    return average_precision_score(target.ravel(), heatmap.ravel())


def timed(function, instances) -> tuple[list, float]:
    start = time.perf_counter()
    values = [function(*item) for item in instances]
    return values, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=4782)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="leave out the sklearn AUC loop")
    args = parser.parse_args()
    instances = make_instances(args.instances, args.seed)
    rows = []
    ours, ours_seconds = timed(gazefollow_auc, instances)
    rows.append(("GazeFollow AUC: gazefollow.following.metrics.gazefollow_auc", ours_seconds))
    if not args.quick:
        reference, reference_seconds = timed(sklearn_auc, instances)
        rows.append(("GazeFollow AUC: per-sample scikit-learn roc_auc_score", reference_seconds))
        auc_difference = float(np.max(np.abs(np.array(ours) - np.array(reference))))
    pairs = [(heatmap, points) for heatmap, points, _, _ in instances]
    ap, ap_seconds = timed(heatmap_ap, pairs)
    ap_reference, ap_reference_seconds = timed(sklearn_ap, pairs)
    rows += [("heatmap AP: gazefollow.following.metrics.heatmap_ap", ap_seconds),
             ("heatmap AP: scikit-learn average_precision_score", ap_reference_seconds)]
    _, score_seconds = timed(lambda h, p, w, ht: score_instance(h, p, 1.0, w, ht), instances)
    rows.append(("one head's scores (score_instance: AUC, L2s, angles, heatmap AP)",
                 score_seconds))
    print(f"| {args.instances} instances | seconds | ms per instance |")
    print("|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {1e3 * seconds / args.instances:.2f} |")
    if not args.quick:
        print(f"\nAUC speed-up: {reference_seconds / ours_seconds:.1f}x; largest |difference| "
              f"between the two AUCs: {auc_difference:.2e}; mean AUC {np.mean(ours):.6f}")
    ap_difference = float(np.max(np.abs(np.array(ap) - np.array(ap_reference))))
    print(f"heatmap AP speed-up: {ap_reference_seconds / ap_seconds:.1f}x; largest |difference|: "
          f"{ap_difference:.2e}")


if __name__ == "__main__":
    main()
