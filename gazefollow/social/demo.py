"""Looking-At-Me's demo (``scripts/demo.py`` with Looking-At-Me weights): every face found by
the detector (or given in a boxes file), tracked through a video, its box coloured from red
(not looking at the camera) to green (looking) with the probability. A frame's answer reads
its track's frames up to ``clip_length // 2`` later (``social/predict.py``), so frames are
annotated that much behind the reading; a folder's images are each a video of one frame.
What every task's demo shares: ``engine/demo.py``.
"""
from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from gazefollow.engine.demo import FrameDemo
from gazefollow.engine.face_detector import given_box
from gazefollow.engine.samples import BadInput

SCHEMA = {"people": {"id": int, "box": list, "box_source": str, "probability": float,
                     "confidence": (float, type(None))}}


def draw(rgb: np.ndarray, people: list) -> np.ndarray:
    out = np.ascontiguousarray(rgb.copy())
    for person in people:
        p = person.probability
        colour = (int(round(255 * (1 - p))), int(round(255 * p)), 0)
        x0, y0, x1, y1 = (int(round(v)) for v in person.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 3)
        cv2.putText(out, f"{p:.2f} (#{person.track})", (x0, max(12, y0 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out


def entry(name: str, width: int, height: int, people: list, source: str) -> dict:
    """One predictions.json entry (docs/predict.md)."""
    return {"image": name, "width": width, "height": height, "people": [{
        "id": person.track, "box": [round(v, 2) for v in person.box], "box_source": source,
        "probability": round(person.probability, 5),
        "confidence": None if person.score is None else round(float(person.score), 4)}
        for person in people]}


class LookingDemo(FrameDemo):
    suffix, schema = "looking", SCHEMA

    def __init__(self, predictor, boxes: dict | None = None):
        super().__init__(boxes)
        self.predictor = predictor

    def _boxes(self, name: str, rgb: np.ndarray) -> list | None:
        """The boxes file's usable boxes of a frame (None: found by the detector); a box with
        nothing inside the frame is left out, named and counted."""
        given = self.given_boxes(name)
        if given is None:
            return None
        height, width = rgb.shape[:2]
        kept = []
        for number, box in enumerate(given):
            try:
                given_box(box, width, height, f"{name}, face {number}")
                kept.append(box)
            except BadInput as err:
                self.report.bad_boxes.append(f"{err} (of the boxes file)")
        return kept

    def process(self, frames, video: bool):
        """Frames through ``LookingPredictor.stream`` (a video's as one stream, a folder's
        each alone); a frame that could not be decoded keeps its place in the order."""
        order, boxes, sources = deque(), [], []

        def readable():
            for name, rgb, _ in frames:
                order.append((name, rgb is not None))
                if rgb is None:
                    continue
                boxes.append(self._boxes(name, rgb))
                sources.append("detected" if boxes[-1] is None else "given")
                yield rgb

        def finished(index, rgb, people):
            while order and not order[0][1]:  # skipped frames before this one
                name, _ = order.popleft()
                self.skip_frame(name, "frame could not be decoded")
                yield name, None
            name, _ = order.popleft()
            if not people:
                self.report.without_people.append(name)
            self.report.entries.append(entry(name, rgb.shape[1], rgb.shape[0], people,
                                             sources[index]))
            yield name, draw(rgb, people)

        if video:
            for index, rgb, people in self.predictor.stream(readable(), boxes):
                yield from finished(index, rgb, people)
        else:
            for rgb in readable():
                _, _, people = next(self.predictor.stream([rgb], [boxes[-1]]))
                yield from finished(len(boxes) - 1, rgb, people)
        while order:  # skipped frames at the end
            name, _ = order.popleft()
            self.skip_frame(name, "frame could not be decoded")
            yield name, None

    def csv_rows(self) -> tuple[list[str], list[list]]:
        header = ["image", "person", "box_source", "x1", "y1", "x2", "y2", "probability",
                  "confidence"]
        rows = [[item["image"], person["id"], person["box_source"], *person["box"],
                 person["probability"], person["confidence"]]
                for item in self.report.entries for person in item["people"]]
        return header, rows

