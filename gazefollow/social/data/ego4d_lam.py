"""Ego4D Looking-At-Me in its released layout (the ``data/`` folder of Ego4D's
social-interactions code, after its scripts have run), plus GazePose's face crops and priors.

Under ``data.dataset_dir``:

- ``split/{train,val}.list``: clip uids, one per line;
- ``json_original/<clip_uid>/<track_id>.json``: one tracklet, a list of rows ``{"clip_uid",
  "frameNumber", "Person ID", "x", "y", "height", "width"}`` (box top-left and size, pixels);
- ``result_LAM/<clip_uid>.json``: the clip's ``social_segments_looking``, a list of
  ``{"label": <Person ID>, "start_frame", "end_frame"}``; a frame of a person is positive
  (looking at the camera wearer) when it falls in one of the person's segments, ends included;
- ``video_imgs/<clip_uid>/img_<frame:05d>.jpg``: the frames;
- ``face_imgs/<clip_uid>/<track_id>/face_<frame:05d>.jpg``: face crops per track and frame
  (GazePose's; ``lam.crops: frames`` cuts them from the frames instead);
- ``json_prior/``: GazePose's per-frame priors (``priors.py``);
- ``videos_challenge/<video_id>/<track_id>/<frame>_<unique_id>.jpg``: the challenge's
  unlabelled test crops (``read_challenge``).

Tracklet rows are cleaned as Ego4D's loader cleans them, under the project's bad-input policy:
a row with an empty box, a frame number below 1, an empty Person ID or a non-numeric field is
bad (strict: an error naming the file and row; skip: counted); frames missing inside a track
(a track gap) get boxes interpolated linearly between their neighbours, counted as fixed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazefollow.engine.samples import BadInput, LoadReport

TRACK_KEYS = ("clip_uid", "frameNumber", "Person ID", "x", "y", "height", "width")


def split_list_path(root: Path, split: str) -> Path:
    return Path(root) / "split" / f"{split}.list"


def tracklet_path(root: Path, uid: str, track_id: str) -> Path:
    return Path(root) / "json_original" / uid / f"{track_id}.json"


def segments_path(root: Path, uid: str) -> Path:
    return Path(root) / "result_LAM" / f"{uid}.json"


def frame_path(root: Path, uid: str, frame: int) -> Path:
    return Path(root) / "video_imgs" / uid / f"img_{frame:05d}.jpg"


def face_crop_path(root: Path, uid: str, track_id: str, frame: int) -> Path:
    return Path(root) / "face_imgs" / uid / track_id / f"face_{frame:05d}.jpg"


def write_split_list(root: Path, split: str, uids: list[str]) -> None:
    path = split_list_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{uid}\n" for uid in uids))


def challenge_crop_path(folder: Path, uid: str, track_id: str, frame: int,
                        unique_id: str) -> Path:
    return Path(folder) / uid / track_id / f"{frame}_{unique_id}.jpg"


@dataclass
class Track:
    """One person's track in one clip, every frame from its first to its last."""

    uid: str
    track_id: str
    person: str
    frames: np.ndarray  # [N] frame numbers, consecutive
    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2 (pixels); gap frames interpolated
    labels: np.ndarray  # [N] 1: looking at the camera wearer
    observed: np.ndarray  # [N] bool: the frame is in the tracklet (not a filled gap)
    source: str = ""  # the tracklet file
    rows: list = field(default_factory=list)


def read_segments(root: Path, uid: str, report: LoadReport) -> dict[str, list]:
    """{Person ID: [(start, end), ...]} of a clip; a missing file means nobody looks."""
    path = segments_path(root, uid)
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        report.bad(str(path), "unreadable JSON", str(err))
        return {}
    if not isinstance(entries, list):
        report.bad(str(path), "malformed file", f"expected a list of segments, found a JSON "
                   f"{type(entries).__name__}")
        return {}
    segments: dict[str, list] = {}
    for row, entry in enumerate(entries):
        try:
            person, start, end = str(entry["label"]), int(entry["start_frame"]), \
                int(entry["end_frame"])
        except (KeyError, TypeError, ValueError) as err:
            report.bad(f"{path}, entry {row}", "malformed segment", repr(err))
            continue
        if end < start or start < 0:
            report.bad(f"{path}, entry {row}", "impossible segment",
                       f"start_frame {start}, end_frame {end}")
            continue
        segments.setdefault(person, []).append((start, end))
    return segments


def _track_rows(path: Path, report: LoadReport) -> list[tuple[int, str, np.ndarray]]:
    """(frame, Person ID, box x1 y1 x2 y2) of each usable row of a tracklet, by frame."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        report.bad(str(path), "unreadable JSON", str(err))
        return []
    if not isinstance(rows, list):
        report.bad(str(path), "malformed file", f"expected a list of rows, found a JSON "
                   f"{type(rows).__name__}")
        return []
    if not rows:
        report.bad(str(path), "empty tracklet", "the file lists no rows")
        return []
    kept = {}
    for row, entry in enumerate(rows):
        report.rows += 1
        where = f"{path}, row {row}"
        try:
            frame, person = int(entry["frameNumber"]), str(entry["Person ID"]).strip()
            x, y, w, h = (float(entry[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError) as err:
            report.bad(where, "malformed row", f"needs {', '.join(TRACK_KEYS)}: {err!r}")
            continue
        if not np.isfinite([x, y, w, h]).all() or w <= 0 or h <= 0:
            report.bad(where, "impossible box", f"x {x}, y {y}, width {w}, height {h}")
        elif frame < 1:
            report.bad(where, "impossible frame", f"frameNumber {frame} (frames count from 1)")
        elif not person:
            report.bad(where, "no Person ID", "an empty Person ID")
        elif frame in kept:
            report.bad(where, "repeated frame", f"frameNumber {frame} twice in the track")
        else:
            kept[frame] = (frame, person, np.array([x, y, x + w, y + h]))
    return [kept[f] for f in sorted(kept)]


def read_track(root: Path, uid: str, path: Path, segments: dict, report: LoadReport):
    """The cleaned track of one tracklet file, or None when no row is usable."""
    rows = _track_rows(path, report)
    if not rows:
        return None
    person = rows[0][1]
    observed_frames = np.array([r[0] for r in rows])
    frames = np.arange(observed_frames[0], observed_frames[-1] + 1)
    observed = np.isin(frames, observed_frames)
    boxes = np.stack([np.interp(frames, observed_frames, [r[2][c] for r in rows])
                      for c in range(4)], axis=1)
    if (~observed).any():
        report.fixed["track gap (boxes interpolated)"] += int((~observed).sum())
    labels = np.zeros(len(frames), np.int64)
    for start, end in segments.get(person, []):
        labels[(frames >= start) & (frames <= end)] = 1
    return Track(uid, path.stem, person, frames, boxes, labels, observed, str(path))


def read_split(root: str | Path, split: str, policy: str = "strict") -> tuple[list, LoadReport]:
    """Every track of the split's clips, and the report of what loading fixed and skipped."""
    root = Path(root)
    report = LoadReport(source=f"ego4d_lam {root} ({split})", policy=policy, unit="tracks")
    listing = split_list_path(root, split)
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} not found: Ego4D's LAM layout lists each split's "
                                "clip uids in split/<split>.list")
    tracks = []
    for uid in [line.strip() for line in listing.read_text().splitlines() if line.strip()]:
        folder = root / "json_original" / uid
        if not folder.is_dir():
            report.bad(str(folder), "missing clip", f"clip {uid} of {listing} has no tracklets")
            continue
        segments = read_segments(root, uid, report)
        for path in sorted(folder.glob("*.json")):
            track = read_track(root, uid, path, segments, report)
            if track is not None:
                tracks.append(track)
    report.instances = len(tracks)
    if not tracks:
        raise BadInput(f"no usable track in {root} for split {split}: {report.summary()}")
    return tracks, report


def read_challenge(folder: str | Path, policy: str = "strict") -> tuple[list[Track], LoadReport]:
    """The challenge's unlabelled test faces, ``<folder>/<video_id>/<track_id>/<frame>_
    <unique_id>.jpg`` (Ego4D's test loader): one track per folder, its crops in frame order;
    ``Track.rows`` holds each frame's unique id, ``labels`` are -1. A misnamed crop and a
    track folder without crops follow ``policy``."""
    folder = Path(folder)
    report = LoadReport(source=f"challenge crops {folder}", policy=policy, unit="tracks")
    tracks = []
    for track_dir in sorted(p for p in folder.glob("*/*") if p.is_dir()):
        found = {}
        for file in sorted(track_dir.glob("*.jpg")):
            report.rows += 1
            frame, _, unique_id = file.stem.partition("_")
            if not frame.isdigit() or not unique_id:
                report.bad(str(file), "misnamed crop", "a challenge crop is named "
                           "<frame>_<unique_id>.jpg")
                continue
            found[int(frame)] = unique_id
        if not found:
            report.bad(str(track_dir), "empty track", "no <frame>_<unique_id>.jpg crop in it")
            continue
        frames = np.array(sorted(found))
        tracks.append(Track(track_dir.parent.name, track_dir.name, "", frames,
                            np.zeros((len(frames), 4)), np.full(len(frames), -1),
                            np.ones(len(frames), bool), str(track_dir),
                            [found[f] for f in frames]))
    report.instances = len(tracks)
    if not tracks:
        raise BadInput(f"{folder} holds no <video_id>/<track_id>/<frame>_<unique_id>.jpg crops")
    return tracks, report
