"""Gaze directions and the angular error, in the project's convention.

The convention is ETH-XGaze's (and UniGaze's): the gaze direction g is a unit vector in the
(normalised) camera frame, x right, y down, z forward from the camera, and

    pitch = asin(-g_y),   yaw = atan2(-g_x, -g_z)

so a person looking straight into the camera has pitch = yaw = 0, looking up has pitch > 0 and
looking to the camera's left (their right) has yaw > 0. Each dataset's labels are brought into
it by one function in ``gazefollow/estimation/conventions.py``.
"""
from __future__ import annotations

import numpy as np


def pitchyaw_to_vector(pitchyaw: np.ndarray) -> np.ndarray:
    """(N, 2) pitch, yaw in radians -> (N, 3) unit gaze vectors g."""
    pitchyaw = np.asarray(pitchyaw, dtype=np.float64).reshape(-1, 2)
    pitch, yaw = pitchyaw[:, 0], pitchyaw[:, 1]
    return np.stack([-np.cos(pitch) * np.sin(yaw), -np.sin(pitch),
                     -np.cos(pitch) * np.cos(yaw)], axis=1)


def _require_direction(lengths: np.ndarray) -> None:
    """A gaze vector of length 0 has no direction: named by its row."""
    if (lengths == 0).any():
        raise ValueError(f"a gaze vector of length 0 has no direction (row "
                         f"{int(np.flatnonzero(lengths == 0)[0])})")


def vector_to_pitchyaw(vectors: np.ndarray) -> np.ndarray:
    """(N, 3) gaze vectors (any length but 0) -> (N, 2) pitch, yaw in radians."""
    vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    _require_direction(lengths[:, 0])
    g = vectors / lengths
    return np.stack([np.arcsin(np.clip(-g[:, 1], -1, 1)), np.arctan2(-g[:, 0], -g[:, 2])],
                    axis=1)


def _as_vectors(gaze: np.ndarray, name: str) -> np.ndarray:
    gaze = np.asarray(gaze, dtype=np.float64)
    if gaze.ndim != 2 or gaze.shape[1] not in (2, 3):
        raise ValueError(f"{name}: gaze is (N, 3) vectors or (N, 2) pitch/yaw radians, got "
                         f"shape {gaze.shape}")
    if not np.isfinite(gaze).all():
        raise ValueError(f"{name}: gaze has NaN/Inf in row "
                         f"{int(np.flatnonzero(~np.isfinite(gaze).all(axis=1))[0])}")
    return pitchyaw_to_vector(gaze) if gaze.shape[1] == 2 else gaze


def angular_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Degrees between predicted and true gaze, per sample: the arccos of their cosine,
    clipped to [-1, 1]. Each input is (N, 3) vectors (any length but 0) or (N, 2) pitch/yaw
    radians in the project's convention; the two may differ in kind."""
    p, t = _as_vectors(pred, "pred"), _as_vectors(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred has {len(p)} samples but true has {len(t)}")
    lengths = np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1)
    _require_direction(lengths)
    cosine = np.clip(np.sum(p * t, axis=1) / lengths, -1.0, 1.0)
    return np.degrees(np.arccos(cosine))


def mean_gaze_error(train_gaze: np.ndarray, test_gaze: np.ndarray) -> np.ndarray:
    """The mean-gaze baseline: every test sample predicted as the mean training direction
    (the normalised mean of the training vectors), in degrees per test sample."""
    mean = _as_vectors(train_gaze, "train").mean(axis=0, keepdims=True)
    if np.linalg.norm(mean) == 0:
        raise ValueError("the training gaze directions cancel out: no mean direction")
    test = _as_vectors(test_gaze, "test")
    return angular_error(np.repeat(mean, len(test), axis=0), test)
