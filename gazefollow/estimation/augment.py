"""Gaze-estimation augmentations, applied to a sample dict (``data/sample.py``) and its labels
together: a horizontal flip (yaw, the vector's x, head-pose yaw and the landmarks mirrored),
a small random crop scaled back to the face size (landmarks moved with it; the gaze label is
kept, as the published recipes do: a crop of a few per cent barely turns the virtual camera),
and colour jitter (the gaze-following augmentation's own). Every draw comes from the generator
given, so an augmented sample is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from gazefollow.data.augment import color_jitter


@dataclass
class FaceAugmentSettings:
    flip: float = 0.5  # probability of a horizontal flip
    crop: float = 0.5  # probability of a crop
    crop_share: float = 0.08  # at most this share of the side cut from each edge
    color: float = 0.5  # probability of brightness / contrast / saturation jitter
    color_range: float = 0.3  # factors drawn from [1 - r, 1 + r]


def flip_sample(sample: dict) -> dict:
    """A sample mirrored left-right: the face flipped, yaw negated (and with it the gaze
    vector's x), head-pose yaw negated, landmarks mirrored (x -> W - x). Pitch is unchanged."""
    width = sample["face"].shape[1]
    flipped = dict(sample)
    flipped["face"] = np.ascontiguousarray(sample["face"][:, ::-1])
    flipped["gaze"] = sample["gaze"] * np.array([1, -1], np.float32)
    flipped["gaze_vector"] = sample["gaze_vector"] * np.array([-1, 1, 1], np.float32)
    flipped["head_pose"] = sample["head_pose"] * np.array([1, -1], np.float32)
    landmarks = sample["landmarks"].copy()
    landmarks[:, 0] = width - landmarks[:, 0]
    flipped["landmarks"] = landmarks
    return flipped


def crop_sample(sample: dict, rng: np.random.Generator, share: float) -> dict:
    """A random window (each edge moved in by up to ``share`` of the side) resized back to
    the face's size; the landmarks follow, the gaze label is kept."""
    height, width = sample["face"].shape[:2]
    x0, x1 = rng.uniform(0, share) * width, width - rng.uniform(0, share) * width
    y0, y1 = rng.uniform(0, share) * height, height - rng.uniform(0, share) * height
    image = Image.fromarray(sample["face"]).resize((width, height), Image.BILINEAR,
                                                   box=(x0, y0, x1, y1))
    cropped = dict(sample)
    cropped["face"] = np.asarray(image)
    scale = np.array([width / (x1 - x0), height / (y1 - y0)], np.float32)
    cropped["landmarks"] = ((sample["landmarks"] - [x0, y0]) * scale).astype(np.float32)
    return cropped


def augment_face(sample: dict, rng: np.random.Generator,
                 settings: FaceAugmentSettings) -> dict:
    if rng.random() < settings.flip:
        sample = flip_sample(sample)
    if rng.random() < settings.crop:
        sample = crop_sample(sample, rng, settings.crop_share)
    if rng.random() < settings.color:
        jittered = color_jitter(Image.fromarray(sample["face"]), rng, settings.color_range)
        sample = {**sample, "face": np.asarray(jittered)}
    return sample
