"""Gaze following's demo (``scripts/demo.py`` with gaze-following weights): each image or
frame gets its head boxes from a boxes file (``box_source: "given"``) or from the detector
(``"detected"``); the heatmap, the line to the predicted point, the in-frame probability and
the hypotheses are drawn. In a video the IoU tracker keeps person ids across frames (a model
with a state per track carries it along them); ``smoothing`` > 0 averages each track's
predicted point exponentially (off by default). What every task's demo shares (reading,
writing, the bad-input policy): ``engine/demo.py``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gazefollow.engine.demo import COLOURS, FrameDemo
from gazefollow.engine.samples import BadInput

# a predictions.json entry's people (engine/demo.check_entries)
SCHEMA = {"people": {"id": int, "head_box": list, "box_source": str, "point": list,
                     "point_px": list, "inout": float, "samples": list, "hypotheses": list}}


def draw(rgb: np.ndarray, people: list, ids: list[int]) -> np.ndarray:
    """The frame with, per person, the heatmap tinted in its colour, the head box, a line to
    the predicted point, the in-frame probability and the hypotheses as rings sized by the
    share of the samples each gathered, with the share."""
    height, width = rgb.shape[:2]
    canvas = rgb.astype(np.float32)
    for person, track in zip(people, ids):
        colour = np.array(COLOURS[track % len(COLOURS)], dtype=np.float32)
        heat = np.clip(person.heatmap_at(width, height), 0, 1)[:, :, None] * 0.6
        canvas = canvas * (1 - heat) + colour * heat
    out = np.ascontiguousarray(canvas.clip(0, 255).astype(np.uint8))
    for person, track in zip(people, ids):
        colour = tuple(int(c) for c in COLOURS[track % len(COLOURS)])
        x0, y0, x1, y1 = (int(round(v)) for v in person.head_box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        head = ((x0 + x1) // 2, (y0 + y1) // 2)
        point = tuple(int(round(v)) for v in person.point_px)
        cv2.line(out, head, point, colour, 2)
        cv2.circle(out, point, 5, colour, -1)
        for (hx, hy), share in person.hypotheses:
            centre = (int(hx * width), int(hy * height))
            ring = int(min(width, height) * (0.015 + 0.06 * share)) + 2
            cv2.circle(out, centre, ring, colour, 2)
            cv2.putText(out, f"{share:.2f}", (centre[0] + ring, centre[1] - ring),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        cv2.putText(out, f"in {person.inout:.2f}", (x0, max(12, y0 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out


def entry(name, width: int, height: int, people: list, sources: list, ids: list) -> dict:
    """One predictions.json entry."""
    return {"image": name, "width": width, "height": height, "people": [{
        "id": int(track), "head_box": [round(v, 2) for v in person.head_box],
        "box_source": source, "point": [round(v, 5) for v in person.point],
        "point_px": [round(v, 2) for v in person.point_px], "inout": round(person.inout, 5),
        "samples": [[round(x, 5), round(y, 5)] for x, y in person.sample_points],
        "hypotheses": [{"point": [round(x, 5), round(y, 5)],
                        "point_px": [round(x * width, 2), round(y * height, 2)],
                        "share": round(share, 5)} for (x, y), share in person.hypotheses]}
        for person, source, track in zip(people, sources, ids)]}


class Demo(FrameDemo):
    """Predict and draw, frame by frame (see the module docstring)."""

    suffix, schema = "gaze", SCHEMA

    def __init__(self, predictor, boxes: dict | None, make_detector=None, num_samples: int = 1,
                 steps: int | None = None, seed: int = 0, smoothing: float = 0.0):
        super().__init__(boxes)
        # the detector is built at the first image the boxes file does not name
        self.predictor, self.make_detector, self.detector = predictor, make_detector, None
        self.num_samples, self.steps, self.seed = num_samples, steps, seed
        self.smoothing, self.smoothed = smoothing, {}
        self.wants_depth = predictor.config.model.depth_branch
        # a depth-branch model reads each image's depth map beside it, named as in its
        # datasets
        self.depth_suffix = predictor.config.data.depth_suffix if self.wants_depth else ""

    def read_image(self, file: Path):
        from gazefollow.following.data.depth import depth_path
        from gazefollow.following.predict import as_depth_image

        rgb, _ = super().read_image(file)
        depth = as_depth_image(depth_path(file, self.depth_suffix),
                               (rgb.shape[1], rgb.shape[0]), file.name) \
            if self.depth_suffix else None
        return rgb, depth

    def skip_file(self, file: Path) -> bool:
        return bool(self.depth_suffix) and file.name.endswith(self.depth_suffix)  # maps

    def start_video(self) -> None:
        self.predictor.forget_tracks()  # a new video's track ids start again at 0

    def process(self, frames, video: bool):
        if video and self.wants_depth:
            raise BadInput("this model has a depth branch and a video has no depth maps; "
                           "predict on its frames as images with a depth map beside each")
        yield from super().process(frames, video)

    def _heads(self, name: str, rgb: np.ndarray) -> tuple[list, list]:
        given = self.given_boxes(name)
        if given is not None:
            usable = self._usable(name, given, rgb)
            return usable, ["given"] * len(usable)
        if self.make_detector is None:
            return [], []
        self.detector = self.detector or self.make_detector()
        found = [d.box for d in self.detector(rgb)]
        return found, ["detected"] * len(found)

    def _usable(self, name: str, boxes: list, rgb: np.ndarray) -> list:
        """The given boxes with some area inside the image; each other person is left out,
        named and counted (the image's other people are still predicted)."""
        from gazefollow.following.predict import checked_box
        kept = []
        for number, box in enumerate(boxes):
            try:
                checked_box(box, rgb.shape[1], rgb.shape[0], name)
                kept.append(box)
            except BadInput as err:
                self.report.bad_boxes.append(f"{err} (person {number} of the boxes file)")
        return kept

    def frame(self, name: str, rgb: np.ndarray, tracker, depth=None) -> np.ndarray:
        boxes, sources = self._heads(name, rgb)
        # tracks first: a model with a state per track (Chong et al.'s video model) goes on
        # from each person's previous frame
        ids = (tracker.assign([tuple(float(v) for v in box) for box in boxes]) if tracker
               else list(range(len(boxes))))
        people = self.predictor.predict([rgb], [boxes], num_samples=self.num_samples,
                                        steps=self.steps, seed=self.seed,
                                        depths=None if depth is None else [depth],
                                        tracks=[ids] if tracker else None)[0] \
            if boxes else []
        if tracker and self.smoothing:
            self._smooth(people, ids, rgb.shape[1], rgb.shape[0])
        if not people:
            self.report.without_people.append(name)
        self.report.entries.append(entry(name, rgb.shape[1], rgb.shape[0], people, sources, ids))
        return draw(rgb, people, ids)

    def csv_rows(self) -> tuple[list[str], list[list]]:
        header = ["image", "person", "box_source", "x1", "y1", "x2", "y2", "point_x", "point_y",
                  "point_px_x", "point_px_y", "inout"]
        rows = [[item["image"], person["id"], person["box_source"], *person["head_box"],
                 *person["point"], *person["point_px"], person["inout"]]
                for item in self.report.entries for person in item["people"]]
        return header, rows

    def _smooth(self, people: list, ids: list, width: int, height: int) -> None:
        for person, track in zip(people, ids):
            previous = self.smoothed.get(track)
            point = np.asarray(person.point) if previous is None else \
                self.smoothing * previous + (1 - self.smoothing) * np.asarray(person.point)
            self.smoothed[track] = point
            person.point = (float(point[0]), float(point[1]))
            person.point_px = (person.point[0] * width, person.point[1] * height)
