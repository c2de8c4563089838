"""Pictures of predictions: image, head box, ground-truth points, heatmap overlay, predicted
point and in-frame probability; grids of many samples; denoising trajectories."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from gazefollow.engine.figures import plt, save_figure
from gazefollow.following.metrics import upsample_heatmap


def draw_prediction(ax, image: Image.Image, sample: dict) -> None:
    """One panel. ``sample`` keys: head_box (normalised xyxy), points ([A, 2], -1 padding),
    heatmap ([O, O] in [0, 1]), pred ((x, y) normalised), inout_prob, index."""
    width, height = image.size
    ax.imshow(image)
    heat = upsample_heatmap(sample["heatmap"], width, height)
    heat = np.clip(heat / max(1e-6, float(heat.max())), 0, 1)
    overlay = plt.get_cmap("jet")(heat)
    overlay[..., 3] = 0.7 * heat  # transparent where the heatmap is low: the scene stays visible
    ax.imshow(overlay)
    x0, y0, x1, y1 = np.asarray(sample["head_box"]) * [width, height, width, height]
    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=1.5))
    head = ((x0 + x1) / 2, (y0 + y1) / 2)
    points = np.asarray(sample["points"]).reshape(-1, 2)
    points = points[(points >= 0).all(axis=1)]
    if len(points):
        ax.scatter(points[:, 0] * width, points[:, 1] * height, s=14, c="white",
                   edgecolors="black", linewidths=0.6, label="ground truth")
    px, py = sample["pred"]
    if not math.isnan(px):
        ax.plot([head[0], px * width], [head[1], py * height], color="red", lw=1.2)
        ax.scatter([px * width], [py * height], s=40, c="red", marker="x", label="prediction")
    ax.set_title(f"#{sample['index']}  in-frame p={sample['inout_prob']:.2f}", fontsize=8)
    ax.axis("off")


def save_prediction_grid(samples: list[dict], root: Path, path: Path, columns: int = 4) -> None:
    """A grid of panels (see ``draw_prediction``); images are read from ``root / sample.path``."""
    rows = math.ceil(len(samples) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax, sample in zip(axes.flat, samples):
        with Image.open(root / sample["path"]) as image:
            draw_prediction(ax, image.convert("RGB"), sample)
    for ax in axes.flat[len(samples):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    save_figure(fig, path, bottom_inches=0.3)


def save_trajectories(samples: list[dict], root: Path, path: Path, num_steps: int,
                      columns: int = 6) -> None:
    """One row per sample: the prediction panel, then the predicted x_0 (as a heatmap) at up
    to ``columns`` evenly spaced steps of a ``num_steps``-step DDIM run, noisiest first."""
    samples = [s for s in samples if s.get("trajectory")]
    if not samples:
        return
    length = len(samples[0]["trajectory"])
    shown = sorted(set(np.linspace(0, length - 1, min(columns, length)).round().astype(int)))
    fig, axes = plt.subplots(len(samples), len(shown) + 1, squeeze=False,
                             figsize=(2.2 * (len(shown) + 1), 2.3 * len(samples)))
    for row, sample in zip(axes, samples):
        with Image.open(root / sample["path"]) as image:
            draw_prediction(row[0], image.convert("RGB"), sample)
        for ax, step in zip(row[1:], shown):
            ax.imshow(np.clip(sample["trajectory"][step], 0, 1), cmap="magma", vmin=0, vmax=1)
            ax.set_title(f"x_0 at step {step + 1}/{num_steps}", fontsize=8)
            ax.axis("off")
    fig.suptitle("predicted heatmap x_0 after each DDIM step", fontsize=9)
    save_figure(fig, path, top_inches=0.6)
