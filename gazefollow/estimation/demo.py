"""Gaze estimation's demo (``scripts/demo.py`` with gaze-estimation weights): every face found
by the detector (or given in a boxes file) with its box, its landmarks and its gaze as an
arrow from between the eyes, the 3D direction in the camera's coordinates projected onto the
picture (its length shrinks as the gaze turns towards or away from the camera). What every
task's demo shares: ``engine/demo.py``.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from gazefollow.engine.demo import COLOURS, FrameDemo
from gazefollow.engine.samples import BadInput

SCHEMA = {"people": {"id": int, "box": list, "box_source": str,
                     "confidence": (float, type(None)), "pitch": float, "yaw": float,
                     "gaze": list, "landmarks": (list, type(None))}}
ARROW = 1.5  # the arrow's length for a gaze in the picture's plane, in face widths


def draw(rgb: np.ndarray, faces: list, ids: list) -> np.ndarray:
    out = np.ascontiguousarray(rgb.copy())
    for face, track in zip(faces, ids):
        colour = tuple(int(c) for c in COLOURS[track % len(COLOURS)])
        x0, y0, x1, y1 = face.box
        cv2.rectangle(out, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))),
                      colour, 2)
        if face.landmarks is not None:
            for x, y in face.landmarks:
                cv2.circle(out, (int(round(x)), int(round(y))), 2, colour, -1)
            start = np.mean(face.landmarks[:2], axis=0)
        else:
            start = np.array([(x0 + x1) / 2, y0 + 0.4 * (y1 - y0)])
        end = start + ARROW * (x1 - x0) * np.asarray(face.gaze[:2])
        cv2.arrowedLine(out, tuple(int(round(v)) for v in start),
                        tuple(int(round(v)) for v in end), colour, 2, tipLength=0.2)
        pitch, yaw = (math.degrees(a) for a in face.pitchyaw)
        cv2.putText(out, f"p {pitch:.0f} y {yaw:.0f}", (int(x0), max(12, int(y0) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out


def entry(name: str, width: int, height: int, faces: list, ids: list) -> dict:
    """One predictions.json entry (docs/predict.md)."""
    return {"image": name, "width": width, "height": height, "people": [{
        "id": int(track), "box": [round(v, 2) for v in face.box], "box_source": face.source,
        "confidence": None if face.confidence is None else round(float(face.confidence), 4),
        "pitch": round(face.pitchyaw[0], 5), "yaw": round(face.pitchyaw[1], 5),
        "gaze": [round(v, 5) for v in face.gaze], "landmarks": face.landmarks}
        for face, track in zip(faces, ids)]}


class EstimationDemo(FrameDemo):
    suffix, schema = "gaze3d", SCHEMA

    def __init__(self, estimator, boxes: dict | None = None):
        super().__init__(boxes)
        self.estimator = estimator

    def frame(self, name: str, rgb: np.ndarray, tracker, extra=None) -> np.ndarray:
        given = self.given_boxes(name)
        faces = self._estimate(name, rgb, given)
        ids = tracker.assign([f.box for f in faces]) if tracker else list(range(len(faces)))
        if not faces:
            self.report.without_people.append(name)
        self.report.entries.append(entry(name, rgb.shape[1], rgb.shape[0], faces, ids))
        return draw(rgb, faces, ids)

    def _estimate(self, name: str, rgb: np.ndarray, given: list | None) -> list:
        """The faces' estimates, all in one call (one detector pass). Where a given box cannot
        be read (outside the picture, or without landmarks for a normalising model), the
        boxes are read one by one, and each such box is left out, named and counted."""
        if given is None:
            return self.estimator.estimate([rgb])[0]
        try:
            return self.estimator.estimate([rgb], [given])[0]
        except BadInput:
            pass
        faces = []
        for number, box in enumerate(given):
            try:
                faces += self.estimator.estimate([rgb], [[box]])[0]
            except BadInput as err:
                self.report.bad_boxes.append(f"{name}: {err} (face {number} of the boxes file)")
        return faces

    def csv_rows(self) -> tuple[list[str], list[list]]:
        header = ["image", "person", "box_source", "x1", "y1", "x2", "y2", "pitch", "yaw",
                  "gaze_x", "gaze_y", "gaze_z", "confidence"]
        rows = [[item["image"], face["id"], face["box_source"], *face["box"], face["pitch"],
                 face["yaw"], *face["gaze"], face["confidence"]]
                for item in self.report.entries for face in item["people"]]
        return header, rows
