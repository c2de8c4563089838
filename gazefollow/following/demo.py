"""The demo behind ``scripts/demo.py``: predict on an image, a folder of images or a video,
and write annotated pictures (or an annotated MP4), ``predictions.json`` and
``predictions.csv``.

Each image or frame gets its head boxes from a boxes file (``box_source: "given"``) or from
the detector (``"detected"``); a frame where none is found is written with ``"people": []``
and counted, never dropped. A video frame OpenCV cannot decode is written as
``{"image": "<frame>", "skipped": reason, "people": []}`` and counted, and reading goes on;
``--strict`` stops there instead. In a video a greedy IoU tracker keeps person ids across frames;
``smoothing`` > 0 averages each track's predicted point exponentially (off by default).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from gazefollow.engine.face_detector import IoUTracker  # noqa: F401  (the demo's tracker)
from gazefollow.engine.folders import refuse_to_replace
from gazefollow.engine.samples import BadInput

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230)]  # RGB, one per person id


@dataclass
class DemoReport:
    entries: list[dict] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    without_heads: list[str] = field(default_factory=list)
    undecodable_frames: list[str] = field(default_factory=list)
    bad_boxes: list[str] = field(default_factory=list)  # "<image>: <reason>" per person left out
    unmatched_names: list[str] = field(default_factory=list)  # boxes-file names never seen


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


class Demo:
    """Predict and draw, frame by frame (see the module docstring)."""

    def __init__(self, predictor, boxes: dict | None, make_detector=None, num_samples: int = 1,
                 steps: int | None = None, seed: int = 0, smoothing: float = 0.0):
        # the detector is built at the first image the boxes file does not name
        self.predictor, self.boxes, self.make_detector = predictor, boxes, make_detector
        self.detector = None
        self.num_samples, self.steps, self.seed = num_samples, steps, seed
        self.smoothing = smoothing
        self.report, self.smoothed, self.seen = DemoReport(), {}, set()
        self.wants_depth = predictor.config.model.depth_branch

    def _heads(self, name: str, rgb: np.ndarray) -> tuple[list, list]:
        if self.boxes is not None and name in self.boxes:
            self.seen.add(name)
            usable = self._usable(name, self.boxes[name], rgb)
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

    def finish(self) -> None:
        """Name the boxes-file entries that matched no image or frame."""
        if self.boxes is not None:
            self.report.unmatched_names = sorted(set(self.boxes) - self.seen)

    def frame(self, name: str, rgb: np.ndarray, tracker: IoUTracker | None,
              depth=None) -> np.ndarray:
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
            self.report.without_heads.append(name)
        self.report.entries.append(entry(name, rgb.shape[1], rgb.shape[0], people, sources, ids))
        return draw(rgb, people, ids)

    def skip_frame(self, name: str, reason: str) -> None:
        """A video frame that could not be decoded: kept in predictions.json, counted."""
        self.report.undecodable_frames.append(name)
        self.report.entries.append({"image": name, "skipped": reason, "people": []})

    def _smooth(self, people: list, ids: list, width: int, height: int) -> None:
        for person, track in zip(people, ids):
            previous = self.smoothed.get(track)
            point = np.asarray(person.point) if previous is None else \
                self.smoothing * previous + (1 - self.smoothing) * np.asarray(person.point)
            self.smoothed[track] = point
            person.point = (float(point[0]), float(point[1]))
            person.point_px = (person.point[0] * width, person.point[1] * height)


def run_images(demo: Demo, files: list[Path], out: Path, strict: bool) -> None:
    from gazefollow.following.data.depth import depth_path
    from gazefollow.following.predict import as_depth_image, as_rgb_image

    # a depth-branch model reads each image's depth map beside it, named as in its datasets
    suffix = demo.predictor.config.data.depth_suffix if demo.wants_depth else ""
    files = [f for f in files if not (suffix and f.name.endswith(suffix))]  # maps, not images
    for file in tqdm(files, desc="images", unit="image"):
        try:
            rgb = np.asarray(as_rgb_image(file))
            depth = as_depth_image(depth_path(file, suffix), (rgb.shape[1], rgb.shape[0]),
                                   file.name) if suffix else None
        except BadInput as err:
            if strict:
                raise
            demo.report.unreadable.append(f"{file}: {err}")
            continue
        annotated = demo.frame(file.name, rgb, None, depth)
        cv2.imwrite(str(out / f"{file.stem}_gaze.png"), annotated[:, :, ::-1])


def run_video(demo: Demo, video: Path, out: Path, strict: bool = False) -> None:
    """Every frame OpenCV can decode, annotated; a frame it cannot decode is recorded as
    skipped (``--strict``: stops there) and reading goes on to the stream's end."""
    if demo.wants_depth:
        raise BadInput(f"{video}: this model has a depth branch and a video has no depth maps; "
                       "predict on its frames as images with a depth map beside each")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise BadInput(f"cannot open video {video}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    # a failed read is the end only past the stated length (0 when the container does not
    # say: then the first failed read ends the video)
    length = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    writer, tracker, index, annotated = None, IoUTracker(), 0, None
    demo.predictor.forget_tracks()  # a new video's track ids start again at 0
    progress = tqdm(desc="frames", unit="frame", total=length or None)
    while True:
        ok, bgr = capture.read()
        if not ok and index >= length:
            break
        if ok:
            annotated = demo.frame(str(index), np.ascontiguousarray(bgr[:, :, ::-1]), tracker)
        else:
            if strict:
                raise BadInput(f"{video}: frame {index} could not be decoded (--strict)")
            demo.skip_frame(str(index), "frame could not be decoded")
        if annotated is not None:  # a skipped frame repeats the last one: timing is kept
            if writer is None:
                writer = cv2.VideoWriter(str(out / f"{video.stem}_gaze.mp4"),
                                         cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (annotated.shape[1], annotated.shape[0]))
            writer.write(np.ascontiguousarray(annotated[:, :, ::-1]))
        index += 1
        progress.update(1)
    progress.close()
    capture.release()
    if writer is None:
        raise BadInput(f"video {video} has no frames that could be read")
    writer.release()


def is_demo_output(folder: Path) -> bool:
    """Whether ``folder`` holds what the demo writes: its predictions.json, read and
    recognised (a list of entries, each naming its image and people)."""
    try:
        entries = json.loads((folder / "predictions.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(entries, list) and all(
        isinstance(item, dict) and {"image", "people"} <= set(item) for item in entries)


def prepare_output(out: Path, overwrite: bool) -> None:
    """Create ``out``; a non-empty folder only with ``overwrite`` and only when it holds an
    earlier demo output: a user's folder is never written into."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"--output {out} is a file, not a folder")
    refuse_to_replace(out, overwrite, is_demo_output,
                      "choose another folder or --overwrite to replace an earlier demo output",
                      "holds no predictions.json of this demo: it is not a demo output, so it "
                      "is left as it is")
    out.mkdir(parents=True, exist_ok=True)


def write_outputs(report: DemoReport, out: Path) -> None:
    (out / "predictions.json").write_text(json.dumps(report.entries, indent=1))
    with (out / "predictions.csv").open("w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["image", "person", "box_source", "x1", "y1", "x2", "y2", "point_x",
                       "point_y", "point_px_x", "point_px_y", "inout"])
        for item in report.entries:
            for person in item["people"]:
                rows.writerow([item["image"], person["id"], person["box_source"],
                               *person["head_box"], *person["point"], *person["point_px"],
                               person["inout"]])
