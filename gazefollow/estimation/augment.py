"""Gaze-estimation augmentations, applied to a sample dict (``data/sample.py``) and its labels
together: a horizontal flip (yaw, the vector's x, head-pose yaw and the landmarks mirrored; six
MPIIFaceGaze landmarks also reordered, so the eyes swap as GEFF's flip swaps them),
a small random crop scaled back to the face size (landmarks moved with it; the gaze label is
kept, as the published recipes do: a crop of a few per cent barely turns the virtual camera),
colour jitter (the gaze-following augmentation's own), and GEFF's masks (``erase``). Every
draw comes from the generator given, so an augmented sample is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from gazefollow.engine.images import color_jitter

# MPIIFaceGaze's six landmarks in image order (first eye's two corners, the second eye's, the
# mouth's): mirrored, the order that keeps them in image order
MIRRORED_SIX = (3, 2, 1, 0, 5, 4)


@dataclass
class FaceAugmentSettings:
    flip: float = 0.5  # probability of a horizontal flip
    crop: float = 0.5  # probability of a crop
    crop_share: float = 0.08  # at most this share of the side cut from each edge
    color: float = 0.5  # probability of brightness / contrast / saturation jitter
    color_range: float = 0.3  # factors drawn from [1 - r, 1 + r]
    erase: float = 0.0  # probability of a mask: a random rectangle of the face set to grey


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
    if len(landmarks) == len(MIRRORED_SIX):  # MPIIFaceGaze's six: the eyes swap places
        landmarks = landmarks[list(MIRRORED_SIX)]
    flipped["landmarks"] = landmarks
    return flipped


def erase_region(sample: dict, rng: np.random.Generator) -> dict:
    """A mask, as GEFF trains with: a rectangle of 10-40% of each side set to mid grey."""
    face = sample["face"].copy()
    height, width = face.shape[:2]
    h, w = (int(rng.uniform(0.1, 0.4) * side) for side in (height, width))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    face[y:y + h, x:x + w] = 128
    return {**sample, "face": face}


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
    if settings.erase and rng.random() < settings.erase:  # drawn only when on: old runs' views
        sample = erase_region(sample, rng)
    return sample
