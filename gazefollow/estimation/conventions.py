"""Each dataset's gaze labels in the project's convention (``metrics.py``: ETH-XGaze's pitch
and yaw of the gaze vector in the normalised camera frame, x right, y down, z forward).

One function per label convention; the readers call them and nothing else converts labels.
"""
from __future__ import annotations

import numpy as np

from gazefollow.estimation.metrics import vector_to_pitchyaw


def from_ethxgaze(pitchyaw: np.ndarray) -> np.ndarray:
    """ETH-XGaze ``face_gaze`` (and UniGaze's labels): the project's convention already."""
    return np.asarray(pitchyaw, dtype=np.float64).reshape(-1, 2).copy()


def from_mpiifacegaze(pitchyaw: np.ndarray) -> np.ndarray:
    """Normalized MPIIFaceGaze ``Data/label[:, 0:2]`` (pitch, yaw): both angles point the
    other way than ETH-XGaze's (as the normalisation's authors note beside their code), so
    both are negated. Errors within MPIIFaceGaze do not depend on this (negating both angles
    is a reflection, which keeps angles between directions); comparisons across datasets do."""
    return -np.asarray(pitchyaw, dtype=np.float64).reshape(-1, 2)


def from_gaze360(vectors: np.ndarray) -> np.ndarray:
    """Gaze360's unit gaze in its eye coordinate system (+x left, +y up, +z away from the
    camera) -> pitch, yaw. In the camera frame that vector is (-x, -y, z); the result equals
    Gaze360's own 2D target (yaw = atan2(x, -z), pitch = asin(y))."""
    g = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    return vector_to_pitchyaw(g * np.array([-1.0, -1.0, 1.0]))


def from_columbia(vertical_deg: np.ndarray, horizontal_deg: np.ndarray) -> np.ndarray:
    """ColumbiaGaze's file-name angles (degrees, gaze relative to the camera: ``V`` vertical,
    ``H`` horizontal) -> pitch, yaw in radians: pitch = V (looking up is positive in both) and
    yaw = H. No public loader we could read settles the sign of H; within Columbia it does
    not matter (negating yaw alone is a reflection, which keeps angles between directions),
    only when a Columbia model is compared on another dataset."""
    angles = np.stack([np.asarray(vertical_deg, np.float64).reshape(-1),
                       np.asarray(horizontal_deg, np.float64).reshape(-1)], axis=1)
    return np.radians(angles)
