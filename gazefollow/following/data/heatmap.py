"""Gaze heatmaps and the per-sample input tensors shared by every dataset."""
from __future__ import annotations

import numpy as np
import torch

MAX_ANNOTATORS = 20  # gaze points are padded with -1 to this many per sample
PRIOR_SIGMA_AT_64 = 16.0  # the centre prior: one broad Gaussian at the image centre


def gaussian_heatmap(points: np.ndarray, size: int, sigma_at_64: float = 3.0) -> torch.Tensor:
    """Max over Gaussians (peak 1) at each point; [1, size, size].

    A point (x, y) in [0, 1] is centred at pixel index (x * size, y * size), so the argmax
    pixel i gives back i / size, the protocol's predicted point (docs/protocols.md), within
    half a pixel; each Gaussian is scaled so its peak pixel is exactly 1. Points with a
    negative coordinate (padding, out of frame) are ignored.
    """
    sigma = sigma_at_64 * size / 64.0
    grid = torch.arange(size, dtype=torch.float32)
    heatmap = torch.zeros(size, size)
    for x, y in np.asarray(points, dtype=np.float32).reshape(-1, 2):
        if x < 0 or y < 0:
            continue
        gx = torch.exp(-((grid - x * size) ** 2) / (2 * sigma**2))
        gy = torch.exp(-((grid - y * size) ** 2) / (2 * sigma**2))
        gx, gy = gx / gx.max(), gy / gy.max()  # peak exactly 1 on the nearest pixel
        heatmap = torch.maximum(heatmap, gy[:, None] * gx[None, :])
    return heatmap.unsqueeze(0)


def pad_points(points: np.ndarray) -> torch.Tensor:
    """[N, 2] -> [MAX_ANNOTATORS, 2], padded with -1."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if len(points) > MAX_ANNOTATORS:
        raise ValueError(f"{len(points)} gaze points exceed MAX_ANNOTATORS={MAX_ANNOTATORS}")
    out = torch.full((MAX_ANNOTATORS, 2), -1.0)
    out[: len(points)] = torch.from_numpy(points)
    return out


def head_channel(box_xyxy: np.ndarray, width: int, height: int, size: int) -> torch.Tensor:
    """Binary head-position map [1, size, size] from a pixel head box."""
    x0, y0, x1, y1 = box_xyxy / np.array([width, height, width, height]) * size
    mask = torch.zeros(1, size, size)
    c0, r0 = int(np.floor(x0)), int(np.floor(y0))
    c1, r1 = max(int(np.ceil(x1)), c0 + 1), max(int(np.ceil(y1)), r0 + 1)
    mask[:, r0:r1, c0:c1] = 1.0
    return mask


def enlarge_box(box_xyxy: np.ndarray, share: float, width: int, height: int) -> np.ndarray:
    """Grow a head box by ``share`` of its width/height on each side, then clamp to the image."""
    x0, y0, x1, y1 = box_xyxy
    dx, dy = (x1 - x0) * share, (y1 - y0) * share
    return np.array([max(0.0, x0 - dx), max(0.0, y0 - dy),
                     min(width - 1.0, x1 + dx), min(height - 1.0, y1 + dy)])


def center_prior_heatmap(size: int) -> torch.Tensor:
    """The baseline every table shows (and eval_from_picture's starting picture): a broad
    Gaussian at (0.5, 0.5), argmax at the centre. [size, size]"""
    return gaussian_heatmap(np.array([[0.5, 0.5]]), size, PRIOR_SIGMA_AT_64)[0]
