"""The one sample every gaze-estimation reader returns.

``face_sample(...)`` -> dict:

- ``face``: H x W x 3 uint8 RGB array, the (normalised) face crop as stored;
- ``gaze``: float32 [2], pitch and yaw in radians, in the project's convention
  (``gazefollow/estimation/metrics.py``); ``gaze_vector``: float32 [3], the same as a unit
  vector;
- ``head_pose``: float32 [2] pitch and yaw where the dataset gives it, else NaN;
- ``landmarks``: float32 [K, 2] pixel (x, y) in the face crop where given, else [0, 2];
- ``subject``: the subject id as the dataset names it (``"p00"``, ``"subject0003"`` ...);
- ``index``: the sample id, the position in the reader's sample order.
"""
from __future__ import annotations

import numpy as np

from gazefollow.estimation.metrics import pitchyaw_to_vector


def face_sample(face: np.ndarray, gaze: np.ndarray, subject: str, index: int,
                head_pose: np.ndarray | None = None,
                landmarks: np.ndarray | None = None) -> dict:
    gaze = np.asarray(gaze, dtype=np.float64).reshape(2)
    return {
        "face": face,
        "gaze": gaze.astype(np.float32),
        "gaze_vector": pitchyaw_to_vector(gaze[None])[0].astype(np.float32),
        "head_pose": (np.full(2, np.nan, np.float32) if head_pose is None
                      else np.asarray(head_pose, dtype=np.float32).reshape(2)),
        "landmarks": (np.zeros((0, 2), np.float32) if landmarks is None
                      else np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)),
        "subject": subject,
        "index": int(index),
    }
