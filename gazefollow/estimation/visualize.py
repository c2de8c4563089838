"""A picture of gaze-estimation predictions: each face with its true (green) and predicted
(red) gaze drawn from the face's centre, and the angle between them."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gazefollow.engine.figures import plt, save_figure
from gazefollow.estimation.metrics import pitchyaw_to_vector


def save_gaze_grid(samples: list[dict], path: Path, columns: int = 8) -> None:
    """``samples``: {"face" (H x W x 3 RGB), "pred", "true" (pitch, yaw), "error" (degrees),
    "subject", "index"}."""
    rows = math.ceil(len(samples) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax, sample in zip(axes.flat, samples):
        height, width = sample["face"].shape[:2]
        ax.imshow(sample["face"])
        for gaze, colour in ((sample["true"], "lime"), (sample["pred"], "red")):
            dx, dy = gaze_arrow(gaze, 0.45 * width)
            ax.arrow(width / 2, height / 2, dx, dy, color=colour, width=0.012 * width,
                     length_includes_head=True)
        ax.set_title(f"{sample['subject']} #{sample['index']}  {sample['error']:.1f} deg",
                     fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("gaze: true (green), predicted (red)", fontsize=8)
    save_figure(fig, path, top_inches=0.4)


def gaze_arrow(pitchyaw: np.ndarray, length: float) -> tuple[float, float]:
    """The image-plane arrow (dx, dy) of a gaze direction: its vector's x (right) and y (down)."""
    vector = pitchyaw_to_vector(np.asarray(pitchyaw, np.float64).reshape(1, 2))[0]
    return float(vector[0] * length), float(vector[1] * length)
