"""Training augmentations of the published gaze-following recipes (Chong et al. 2020):
head-box jitter, a random crop that keeps the head and the gaze target and a horizontal flip,
applied to the image, the head box and every gaze point together, and colour jitter, drawn
here and applied to the resized scene and face (``preprocess.model_inputs``).

Everything works in pixels of the current image. Each call draws from the generator it is
given (the dataset seeds one per (seed, epoch, sample)), so results are reproducible and the
box jitter never accumulates: the stored annotation is never modified.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gazefollow.engine.images import ColorJitter


@dataclass
class AugmentSettings:
    """Probabilities (0 = never) and ranges; built from ``data.augment_*`` keys."""

    box_jitter: float = 0.5  # probability of expanding the head box
    box_jitter_max: float = 0.2  # expansion, as a share of the box size on each side
    crop: float = 0.5  # probability of a random crop keeping the head and the target
    flip: float = 0.5  # probability of a horizontal flip
    color: float = 0.5  # probability of brightness / contrast / saturation jitter
    color_range: float = 0.5  # factors drawn from [1 - r, 1 + r]


def jitter_box(box: np.ndarray, share: float, width: int, height: int) -> np.ndarray:
    """Expand the box by ``share`` of its width/height on every side, clamped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = share * (x1 - x0), share * (y1 - y0)
    return np.clip([x0 - dx, y0 - dy, x1 + dx, y1 + dy], 0, [width, height, width, height])


def random_crop(image: Image.Image, box: np.ndarray, points: np.ndarray,
                rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Crop an integer window that contains the head box and every gaze point."""
    width, height = image.size
    keep = np.vstack([box.reshape(2, 2), points.reshape(-1, 2)])
    low, high = keep.min(axis=0), keep.max(axis=0)
    x0 = math.floor(rng.uniform(0, max(low[0], 0)))
    y0 = math.floor(rng.uniform(0, max(low[1], 0)))
    x1 = min(width, math.ceil(rng.uniform(min(high[0], width), width)))
    y1 = min(height, math.ceil(rng.uniform(min(high[1], height), height)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    offset = np.array([x0, y0], dtype=np.float64)
    return (image.crop((x0, y0, x1, y1)), box - np.tile(offset, 2),
            points - offset if len(points) else points)


def mirror(box: np.ndarray, points: np.ndarray,
           width: int) -> tuple[np.ndarray, np.ndarray]:
    """The box and points of the left-right mirror of an image ``width`` wide: x -> W - x
    (continuous pixel coordinates)."""
    box = np.array([width - box[2], box[1], width - box[0], box[3]])
    if len(points):
        points = np.column_stack([width - points[:, 0], points[:, 1]])
    return box, points


@dataclass
class View:
    """One training view of an image. ``image`` and ``depth`` are as cropped; when ``mirrored``
    the view is their left-right mirror, and ``box`` and ``points`` are already in its pixels:
    ``model_inputs`` mirrors the resized scene and face, which gives the same bytes as
    mirroring the whole image first. ``color``: the view's colour jitter, or None."""

    image: Image.Image
    box: np.ndarray
    points: np.ndarray
    depth: Image.Image | None = None
    color: ColorJitter | None = None
    mirrored: bool = False


def augment(image: Image.Image, box: np.ndarray, points: np.ndarray, rng: np.random.Generator,
            settings: AugmentSettings, depth: Image.Image | None = None) -> View:
    """One training view (``View``): head box xyxy and in-frame gaze points [N, 2] in pixels;
    a ``depth`` map of the image's size is cropped and mirrored with it (never
    colour-jittered). The colour jitter is drawn here and applied by ``model_inputs`` to the
    resized scene and face: jittering the whole image cost more than the rest of the
    augmentations together.

    An out-of-frame person has no points: the crop then only keeps the head, and the person
    stays out of frame. Which augmentations apply is drawn first, in a fixed order, so changing
    one probability does not change the other decisions.
    """
    draws = rng.uniform(size=4)
    jitter_share = rng.uniform(0, settings.box_jitter_max)
    width, height = image.size
    box = np.asarray(box, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if draws[0] < settings.box_jitter:
        box = jitter_box(box, jitter_share, width, height)
    if draws[1] < settings.crop:
        image, cropped_box, points = random_crop(image, box, points, rng)
        if depth is not None:  # the same window: the offset the box moved by, the new size
            x0, y0 = (box - cropped_box)[:2]
            depth = depth.crop((int(x0), int(y0), int(x0) + image.size[0],
                                               int(y0) + image.size[1]))
        box = cropped_box
    mirrored = bool(draws[2] < settings.flip)
    if mirrored:
        box, points = mirror(box, points, image.size[0])
    color = ColorJitter.draw(rng, settings.color_range) if draws[3] < settings.color else None
    return View(image, box, points, depth, color, mirrored)
