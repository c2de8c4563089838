"""GazePose's per-frame priors, in the files its loader reads (``json_prior/`` under the
dataset root, one set per split):

- ``<split>_headpose.json``: ``{"<clip_uid>:<track_id>:<frame>": [yaw, pitch, roll, ...]}``
  in degrees (a head-pose network on the face crop; GazePose's README writes the keys with
  dashes, its loader reads colons, as here). A key frame without one takes the 90-degree
  bins, as GazePose does; they are counted in the load report.
- ``<split>_mesh.json``: ``{clip_uid: {track_id: {frame: [[x, y, z, visibility] x 5]}}}``,
  MediaPipe Pose's points 0, 2, 5, 9, 10 (nose, eyes, mouth corners) in [0, 1] of the crop.
  A key frame takes the nearest frame that has them, in the order 0, -1, +1, -2, +2, +3, -3;
  none within 3 frames gives zeros (counted).
- ``<split>_p.json``: ``{clip_uid: {track_id: {frame: p}}}``, each crop's quality for the
  Gaussian temporal dropout (``frame_quality``).
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np

from gazefollow.engine.samples import BadInput
from gazefollow.social.data import ego4d_lam as layout

KINDS = {"headpose": "headpose", "landmarks": "mesh", "quality": "p"}  # -> file suffix
UNKNOWN_POSE = 90.0  # degrees: GazePose's value for a frame without a head pose
NEAR_ORDER = (0, -1, 1, -2, 2, 3, -3)


def prior_file(root, split: str, kind: str):
    return layout.Path(root) / "json_prior" / f"{split}_{KINDS[kind]}.json"


def pose_key(uid: str, track_id: str, frame: int) -> str:
    return f"{uid}:{track_id}:{frame}"


def read_prior(root, split: str, kind: str) -> dict:
    path = prior_file(root, split, kind)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the {kind} prior is switched on, and "
                                f"GazePose's priors are read from json_prior/<split>_"
                                f"{KINDS[kind]}.json")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadInput(f"{path}: not valid JSON: {err}") from None
    if not isinstance(content, dict):
        raise BadInput(f"{path}: expected a JSON object of per-frame priors, found a JSON "
                       f"{type(content).__name__}")
    return content


def write_priors(root, split: str, priors: dict) -> None:
    for kind, values in priors.items():
        path = prior_file(root, split, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def head_pose_of(table: dict | None, uid: str, track_id: str, frame: int,
                 report) -> np.ndarray:
    """[yaw, pitch, roll] degrees of a key frame (NaN without the prior switched on)."""
    if table is None:
        return np.full(3, np.nan)
    values = table.get(pose_key(uid, track_id, frame))
    if not _numbers(values, 3):
        report.fixed["no head-pose prior (the 90-degree bins, as GazePose)"] += 1
        return np.full(3, UNKNOWN_POSE)
    return np.asarray(values[:3], dtype=np.float64)


def _numbers(values, count: int) -> bool:
    """Whether ``values`` is a list starting with ``count`` finite numbers (a prior file is
    data from elsewhere: a string or a bare number in it is a missing prior, not a crash)."""
    if not isinstance(values, list) or len(values) < count:
        return False
    try:
        return bool(np.isfinite(np.asarray(values[:count], dtype=np.float64)).all())
    except (TypeError, ValueError):
        return False


def landmark_vector(points: np.ndarray) -> np.ndarray:
    """GazePose's 15-d landmark prior of five [x, y, z, visibility] points (crop units):
    x (5), y (5) relative to the middle of the two eyes, in crop sizes and clamped to
    [-2, 2], then the visibilities clamped to at most 1."""
    points = np.asarray(points, dtype=np.float64)
    middle = points[1:3, :2].mean(axis=0)
    xy = np.clip(points[:, :2] - middle, -2, 2)
    return np.concatenate([xy[:, 0], xy[:, 1], np.minimum(points[:, 3], 1.0)])


def landmarks_near(table: dict | None, uid: str, track_id: str, frame: int,
                   report) -> np.ndarray:
    if table is None:
        return np.zeros(15)
    clip = table.get(uid)
    frames = clip.get(track_id) if isinstance(clip, dict) else None
    for offset in NEAR_ORDER:
        points = frames.get(str(frame + offset)) if isinstance(frames, dict) else None
        if isinstance(points, list) and len(points) == 5 and all(_numbers(p, 4) and len(p) == 4
                                                                 for p in points):
            return landmark_vector(points)
    report.fixed["no landmarks within 3 frames (zeros, as GazePose)"] += 1
    return np.zeros(15)


def sharpness(image: np.ndarray) -> float:
    """The variance of the Laplacian of a crop (RGB uint8), GazePose's quality measure."""
    return float(cv2.Laplacian(image, cv2.CV_64F).var())


def frame_quality(values: dict, mean: float, std: float) -> dict:
    """{uid: {track: {frame: sharpness}}} -> the same with p = the normal CDF of each
    sharpness under the training crops' mean and standard deviation (GazePose's
    vartool.py)."""
    def cdf(v: float) -> float:
        return 0.5 * (1 + math.erf((v - mean) / (max(std, 1e-9) * math.sqrt(2))))
    return {uid: {track: {frame: round(cdf(v), 4) for frame, v in frames.items()}
                  for track, frames in tracks.items()} for uid, tracks in values.items()}
