"""What every task's demo shares (``scripts/demo.py``): reading an image, a folder of images
or a video, writing the annotated pictures (or an annotated MP4), ``predictions.json`` (one
entry per image or frame, checked against the task's schema before it is written) and
``predictions.csv``, and the bad-input policy.

An unreadable image is named and counted (``strict``: stops); a video frame OpenCV cannot
decode is kept in ``predictions.json`` as ``{"image": "<frame>", "skipped": reason,
"people": []}``, counted, and reading goes on; a frame where no person is found is written
with ``"people": []`` and counted, never dropped. The output folder is created; a non-empty
one only with ``overwrite``, and only when it holds an earlier demo output.

A task's demo is a ``FrameDemo``: ``frame(name, rgb, tracker, extra)`` predicts and draws one
picture; ``process`` may be overridden where a frame's answer needs later frames (Looking-At-Me's
windows).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from gazefollow.engine.face_detector import IoUTracker
from gazefollow.engine.folders import refuse_to_replace
from gazefollow.engine.images import as_rgb_image
from gazefollow.engine.samples import BadInput

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230)]  # RGB, one per person id


@dataclass
class DemoReport:
    entries: list[dict] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    without_people: list[str] = field(default_factory=list)
    undecodable_frames: list[str] = field(default_factory=list)
    bad_boxes: list[str] = field(default_factory=list)  # "<image>: <reason>" per person left out
    unmatched_names: list[str] = field(default_factory=list)  # boxes-file names never seen


class FrameDemo:
    """A task's demo, frame by frame; ``boxes``: a boxes file's content (``read_boxes_file``:
    boxes per image name or frame index) or None (every box found by the detector)."""

    suffix = "demo"  # the annotated pictures are <stem>_<suffix>.png / .mp4
    schema: dict = {}  # a predictions.json entry's fields (``check_entries``)

    def __init__(self, boxes: dict | None = None):
        self.boxes, self.seen, self.report = boxes, set(), DemoReport()

    def given_boxes(self, name: str) -> list | None:
        """The boxes file's boxes of this image or frame (None: not named there)."""
        if self.boxes is None or name not in self.boxes:
            return None
        self.seen.add(name)
        return self.boxes[name]

    def read_image(self, file: Path) -> tuple[np.ndarray, object]:
        """(the RGB array, anything else the task reads beside the image)."""
        return np.asarray(as_rgb_image(file)), None

    def skip_file(self, file: Path) -> bool:
        """Whether a file of the folder is not a picture to predict on (e.g. a depth map)."""
        return False

    def start_video(self) -> None:
        """A new video begins (its track ids start again)."""

    def frame(self, name: str, rgb: np.ndarray, tracker, extra) -> np.ndarray:
        """Predict on one picture, record its entry, and return it annotated (a task's demo
        defines this, or overrides ``process``)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither frame() nor process()")

    def skip_frame(self, name: str, reason: str) -> None:
        """A video frame that could not be decoded: kept in predictions.json, counted."""
        self.report.undecodable_frames.append(name)
        self.report.entries.append({"image": name, "skipped": reason, "people": []})

    def process(self, frames, video: bool):
        """(name, annotated RGB or None for a skipped frame) for each (name, rgb or None,
        extra) of ``frames``, in order."""
        tracker = IoUTracker() if video else None
        if video:
            self.start_video()
        for name, rgb, extra in frames:
            if rgb is None:
                self.skip_frame(name, "frame could not be decoded")
                yield name, None
            else:
                yield name, self.frame(name, rgb, tracker, extra)

    def finish(self) -> None:
        """Name the boxes-file entries that matched no image or frame."""
        if self.boxes is not None:
            self.report.unmatched_names = sorted(set(self.boxes) - self.seen)

    def csv_rows(self) -> tuple[list[str], list[list]]:
        """(header, rows) of predictions.csv: one row per person (each task's demo defines
        its columns)."""
        raise NotImplementedError(f"{type(self).__name__} defines no predictions.csv columns")


def check_entries(entries: list[dict], schema: dict) -> None:
    """Every entry has the fields of ``schema`` ({field: type}; "people": {field: type} of
    each person); a skipped frame has image, skipped and people. ValueError names the first
    entry and field that do not fit."""
    base = {"image": str, "width": int, "height": int}
    for number, item in enumerate(entries):
        expected = {"image": str, "skipped": str} if "skipped" in item else base
        people = schema.get("people", {})
        problems = [f"{key} ({kind.__name__})" for key, kind in expected.items()
                    if not isinstance(item.get(key), kind)]
        for person in item.get("people", []) if isinstance(item.get("people"), list) else [None]:
            problems += [f"people.{key} ({kinds})" for key, kinds in people.items()
                         if not isinstance(person, dict) or
                         not isinstance(person.get(key), kinds)]
        if problems:
            raise ValueError(f"predictions.json entry {number} ({item.get('image')}) does not "
                             f"fit its schema: {', '.join(problems[:4])}")


def run(demo: FrameDemo, source: Path, out: Path, strict: bool) -> None:
    """The demo on an image, a folder of images or a video."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        run_images(demo, files, out, strict)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        run_video(demo, source, out, strict)
    elif source.is_file():
        run_images(demo, [source], out, strict)
    else:
        raise BadInput(f"no image, folder or video at {source}")
    demo.finish()


def run_images(demo: FrameDemo, files: list[Path], out: Path, strict: bool) -> None:
    def frames():
        for file in tqdm([f for f in files if not demo.skip_file(f)], desc="images",
                         unit="image"):
            try:
                rgb, extra = demo.read_image(file)
            except BadInput as err:
                if strict:
                    raise
                demo.report.unreadable.append(f"{file}: {err}")
                continue
            yield file.name, rgb, extra
    for name, annotated in demo.process(frames(), video=False):
        cv2.imwrite(str(out / f"{Path(name).stem}_{demo.suffix}.png"), annotated[:, :, ::-1])


def _video_frames(video: Path, strict: bool):
    """(frame index as a name, RGB or None when it cannot be decoded, None) of every frame;
    a failed read is the end only past the stated length (0 when the container does not
    say: then the first failed read ends the video)."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise BadInput(f"cannot open video {video}")
    length = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    index, progress = 0, tqdm(desc="frames", unit="frame", total=length or None)
    while True:
        ok, bgr = capture.read()
        if not ok and index >= length:
            break
        if not ok and strict:
            raise BadInput(f"{video}: frame {index} could not be decoded (--strict)")
        yield str(index), (np.ascontiguousarray(bgr[:, :, ::-1]) if ok else None), None
        index += 1
        progress.update(1)
    progress.close()
    capture.release()


def run_video(demo: FrameDemo, video: Path, out: Path, strict: bool = False) -> None:
    """Every frame OpenCV can decode, annotated into an MP4 at the video's frame rate; a
    skipped frame repeats the last annotated one, so timing is kept."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    writer, last = None, None
    for _, annotated in demo.process(_video_frames(video, strict), video=True):
        last = annotated if annotated is not None else last
        if last is None:
            continue
        if writer is None:
            writer = cv2.VideoWriter(str(out / f"{video.stem}_{demo.suffix}.mp4"),
                                     cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                     (last.shape[1], last.shape[0]))
        writer.write(np.ascontiguousarray(last[:, :, ::-1]))
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


def write_outputs(demo: FrameDemo, out: Path) -> None:
    """predictions.json (checked against the task's schema) and predictions.csv."""
    import csv

    check_entries(demo.report.entries, demo.schema)
    (out / "predictions.json").write_text(json.dumps(demo.report.entries, indent=1))
    header, rows = demo.csv_rows()
    with (out / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def summary(demo: FrameDemo, out: Path) -> list[str]:
    """The lines the demo prints at the end: counts, then every skipped item by name."""
    report = demo.report
    lines = [f"{len(report.entries)} image(s) or frame(s) -> {out}; {len(report.without_people)}"
             f" without a person found; {len(report.unreadable)} unreadable; "
             f"{len(report.undecodable_frames)} video frame(s) could not be decoded; "
             f"{len(report.bad_boxes)} given box(es) outside their image"]
    if report.undecodable_frames:
        lines.append(f"  SKIPPED frames {', '.join(report.undecodable_frames)}: could not be "
                     "decoded (in predictions.json as skipped; the annotated video repeats the "
                     "last frame)")
    lines += [f"  SKIPPED {line}" for line in report.unreadable + report.bad_boxes]
    if report.unmatched_names:
        lines.append(f"  {len(report.unmatched_names)} name(s) of the boxes file match no "
                     f"image or frame: {', '.join(report.unmatched_names[:10])}")
    return lines
