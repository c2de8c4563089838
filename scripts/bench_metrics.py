"""GazeFollow AUC speed: our exact no-sort AUC against the per-sample scikit-learn loop.

    python scripts/bench_metrics.py [--instances 4782] [--seed 0]

A test-sized set (4,782 head instances, as in the GazeFollow test split): image sizes drawn
around 640x480, 1-20 annotator points per instance (about 10 on average, as in the release),
64x64 predicted heatmaps (a few Gaussian blobs plus noise, with some quantised to create ties).
Both sides upsample the heatmap bilinearly to the image size (the protocol); the reference
then builds the multi-hot target and calls sklearn.metrics.roc_auc_score per instance. Prints
both times, the ratio and the largest difference between the two AUCs.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from gazefollow.following.metrics import gazefollow_auc, upsample_heatmap  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=4782)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    instances = make_instances(args.instances, args.seed)
    start = time.perf_counter()
    ours = [gazefollow_auc(*item) for item in instances]
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = [sklearn_auc(*item) for item in instances]
    reference_seconds = time.perf_counter() - start
    difference = float(np.max(np.abs(np.array(ours) - np.array(reference))))
    print(f"| GazeFollow AUC over {args.instances} instances | seconds | ms per instance |")
    print("|---|---|---|")
    print(f"| gazefollow.following.metrics.gazefollow_auc | {ours_seconds:.1f} | "
          f"{1e3 * ours_seconds / args.instances:.2f} |")
    print(f"| per-sample scikit-learn roc_auc_score | {reference_seconds:.1f} | "
          f"{1e3 * reference_seconds / args.instances:.2f} |")
    print(f"\nspeed-up: {reference_seconds / ours_seconds:.1f}x; largest |difference| between "
          f"the two AUCs: {difference:.2e}; mean AUC {np.mean(ours):.6f}")


if __name__ == "__main__":
    main()
