"""The synthetic Looking-At-Me world (``data.source_dataset: synthetic_lam``), written in
Ego4D's LAM layout (``ego4d_lam.py``) so that the real reader serves it.

Each clip is a short egocentric video: two or three people stand in front of the camera
wearer, their faces (the face world's renderer) drifting smoothly through the frame. Each
person alternates between looking at the camera (head and eyes turned so that the gaze
points at it, within a few degrees) and looking elsewhere (the gaze at least 20 degrees
off), in segments of 8-30 frames; the head turns over a few frames at each change, as a
person's does. Now and then a face is hidden for 1-3 frames (a hand or an object in front
of it: a grey block), so one frame can be ambiguous while the frames around it are not.

Written per clip: the frames, the tracklets, the looking segments, the face crops (as
GazePose cuts them) and the priors a face-analysis tool would give: head pose (yaw, pitch,
roll in degrees, with noise) and five landmarks. Everything is a function of (seed, clip),
so a world is reproducible frame by frame.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gazefollow.engine.faces import make_subject, render_face
from gazefollow.engine.worlds import MANIFEST, ensure_world, write_world_atomically
from gazefollow.social.data import ego4d_lam as layout
from gazefollow.social.data import priors

LOOK_LIMIT = math.radians(5)  # looking at the camera: gaze within this of it
AWAY_MIN = math.radians(20)  # looking elsewhere: at least this far off
SPLITS = ("train", "val", "challenge")
CHALLENGE = "videos_challenge"  # the unlabelled test crops (ego4d_lam.read_challenge)


@dataclass
class LAMWorldConfig:
    """The generated Looking-At-Me world, written in Ego4D's LAM layout (the config section
    ``synthetic_lam``)."""

    seed: int = 0
    train_clips: int = 24
    val_clips: int = 6
    challenge_clips: int = 1  # unlabelled, under videos_challenge/ (the submission's input)
    frames: int = 90  # per clip (frameNumber 1 .. frames)
    people: int = 2  # per clip (Person ID "1" is the camera wearer, as in Ego4D: not drawn)
    width: int = 256
    height: int = 192
    face_size: int = 64  # face crops are written at this size (GazePose: 224)
    looking_share: float = 0.35  # the share of segments spent looking at the camera
    hidden_share: float = 0.06  # the share of frames a face is hidden
    pose_noise: float = 3.0  # degrees of noise on the head-pose prior


def clip_uid(split: str, index: int) -> str:
    return f"synthetic-{split}-{index:04d}"


def _segments(rng: np.random.Generator, frames: int, share: float) -> np.ndarray:
    """[frames] bool: looking at the camera, in segments of 8-30 frames."""
    looking = np.zeros(frames, bool)
    frame, state = 0, rng.random() < share
    while frame < frames:
        length = int(rng.integers(8, 31))
        looking[frame:frame + length] = state
        frame += length
        state = rng.random() < share
    return looking


def _aim(rng: np.random.Generator, looking: bool) -> tuple[np.ndarray, np.ndarray]:
    """(head (pitch, yaw), eyes (pitch, yaw)) in radians for one segment: the gaze is about
    head + eyes, within LOOK_LIMIT of the camera or at least AWAY_MIN off it."""
    head = rng.normal(0, [0.12, 0.3])
    if looking:
        gaze = rng.normal(0, LOOK_LIMIT / 3, 2)
    else:
        angle, radius = rng.uniform(0, 2 * math.pi), rng.uniform(AWAY_MIN, 0.8)
        gaze = radius * np.array([0.6 * math.sin(angle), math.cos(angle)])
    return head, np.clip(gaze - head, -0.5, 0.5)


def person_track(cfg: LAMWorldConfig, rng: np.random.Generator, slot: int) -> dict:
    """Per frame: box (x, y, w, h), head and eye angles, looking, hidden."""
    n = cfg.frames
    looking = _segments(rng, n, cfg.looking_share)
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], looking.astype(int)])) != 0)
    head, eyes = np.zeros((n, 2)), np.zeros((n, 2))
    for start, end in zip(starts, [*starts[1:], n]):
        aim_head, aim_eyes = _aim(rng, bool(looking[start]))
        head[start:end], eyes[start:end] = aim_head, aim_eyes
    for k in range(1, n):  # heads turn over a few frames; eyes jump (saccades)
        head[k] = 0.6 * head[k - 1] + 0.4 * head[k]
    size = rng.uniform(0.22, 0.3) * cfg.height
    t = np.arange(n) / n
    phase = rng.uniform(0, 2 * math.pi, 2)
    lane = (slot + 0.5) / cfg.people * cfg.width
    cx = lane + 0.12 * cfg.width * np.sin(2 * math.pi * t + phase[0])
    cy = cfg.height * (0.45 + 0.1 * np.sin(2 * math.pi * 0.7 * t + phase[1]))
    hidden = np.zeros(n, bool)
    for start in np.flatnonzero(rng.random(n) < cfg.hidden_share / 2):
        hidden[start:start + int(rng.integers(1, 4))] = True
    boxes = np.stack([cx - size / 2, cy - size / 2, np.full(n, size), np.full(n, size)], 1)
    return {"box": np.round(boxes, 1), "head": head, "eyes": eyes, "looking": looking,
            "hidden": hidden, "subject": make_subject(rng)}


def _segments_of(person: str, looking: np.ndarray) -> list[dict]:
    """Ego4D's looking segments (frame numbers from 1, inclusive ends) of one person."""
    frames = np.concatenate([[0], looking.astype(int), [0]])
    edges = np.flatnonzero(np.diff(frames))
    return [{"label": person, "start_frame": int(a) + 1, "end_frame": int(b)}
            for a, b in zip(edges[::2], edges[1::2])]


def _priors(cfg, rng, track: dict, k: int, landmarks: np.ndarray) -> tuple[list, list]:
    """The head pose (yaw, pitch, roll in degrees, noisy, as a head-pose network gives) and
    MediaPipe Pose's five points (nose, left eye, right eye, mouth corners: [x, y, z,
    visibility], x and y in [0, 1] of the crop) of frame k; a hidden face has visibility 0."""
    pitch, yaw = np.degrees(track["head"][k])
    pose = [yaw, pitch, 0.0] + rng.normal(0, cfg.pose_noise, 3)
    eyes = landmarks[:4].reshape(2, 2, 2).mean(axis=1)
    mouth = landmarks[4:6]
    nose = eyes.mean(axis=0) + 0.42 * (mouth.mean(axis=0) - eyes.mean(axis=0))
    xy = np.concatenate([nose[None], eyes, mouth]) / cfg.face_size + rng.normal(0, 0.01, (5, 2))
    seen = 0.0 if track["hidden"][k] else 0.95
    points = [[round(float(x), 4), round(float(y), 4), 0.0, seen] for x, y in xy]
    return [round(float(v), 2) for v in pose], points


def write_clip(cfg: LAMWorldConfig, root: Path, split: str, index: int) -> dict:
    """One clip's frames, tracklets, segments and face crops; -> its priors (``priors.py``;
    "quality" still holds raw sharpness) and, for the challenge split, its crops are
    written under videos_challenge/ with unique ids and no labels."""
    uid = clip_uid(split, index)
    rng = np.random.default_rng([cfg.seed, index, SPLITS.index(split)])
    background = rng.uniform(60, 200, 3)
    frames = [np.tile(background, (cfg.height, cfg.width, 1)).astype(np.uint8)
              for _ in range(cfg.frames)]
    segments, out = [], {"headpose": {}, "landmarks": {uid: {}}, "quality": {uid: {}}}
    for slot in range(cfg.people):
        person = track_id = str(slot + 2)
        track = person_track(cfg, rng, slot)
        rows = []
        out["landmarks"][uid][track_id], out["quality"][uid][track_id] = {}, {}
        for k in range(cfg.frames):
            face, _, landmarks = render_face(track["subject"], cfg.face_size,
                                             tuple(track["head"][k]), tuple(track["eyes"][k]))
            if track["hidden"][k]:
                face = np.full_like(face, 128)
            frame_number = k + 1
            x, y, w, h = track["box"][k]
            _paste(frames[k], face, x, y, w)
            crop = (layout.challenge_crop_path(root / CHALLENGE, uid, track_id, frame_number,
                                               f"{index:03d}{slot}{frame_number:05d}")
                    if split == "challenge" else
                    layout.face_crop_path(root, uid, track_id, frame_number))
            crop.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face).save(crop, quality=92)
            rows.append({"clip_uid": uid, "frameNumber": frame_number, "Person ID": person,
                         "x": float(x), "y": float(y), "height": float(h), "width": float(w)})
            pose, points = _priors(cfg, rng, track, k, landmarks)
            out["headpose"][priors.pose_key(uid, track_id, frame_number)] = pose
            out["landmarks"][uid][track_id][str(frame_number)] = points
            out["quality"][uid][track_id][str(frame_number)] = priors.sharpness(face)
        if split != "challenge":
            tracklet = layout.tracklet_path(root, uid, track_id)
            tracklet.parent.mkdir(parents=True, exist_ok=True)
            tracklet.write_text(json.dumps(rows))
        segments += _segments_of(person, track["looking"])
    if split != "challenge":
        for k, frame in enumerate(frames):
            path = layout.frame_path(root, uid, k + 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(path, quality=92)
        layout.segments_path(root, uid).parent.mkdir(parents=True, exist_ok=True)
        layout.segments_path(root, uid).write_text(json.dumps(segments))
    return out


def _paste(frame: np.ndarray, face: np.ndarray, x: float, y: float, size: float) -> None:
    side = max(2, int(round(size)))
    patch = np.asarray(Image.fromarray(face).resize((side, side), Image.BILINEAR))
    x0, y0 = int(round(x)), int(round(y))
    h, w = frame.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if xb > xa and yb > ya:
        frame[ya:yb, xa:xb] = patch[ya - y0:yb - y0, xa - x0:xb - x0]


def write_lam_world(cfg: LAMWorldConfig, root: str | Path, overwrite: bool = False,
                    log=print) -> Path:
    """The whole world under ``root``, atomically (``write_world_atomically``)."""
    def write(folder: Path) -> None:
        counts = {"train": cfg.train_clips, "val": cfg.val_clips,
                  "challenge": cfg.challenge_clips}
        written = {}
        for split, count in counts.items():
            merged = {"headpose": {}, "landmarks": {}, "quality": {}}
            for index in range(count):
                for kind, values in write_clip(cfg, folder, split, index).items():
                    merged[kind].update(values)
            if split != "challenge":
                layout.write_split_list(folder, split, [clip_uid(split, i) for i in range(count)])
            written[split] = merged
        sharp = [v for tracks in written["train"]["quality"].values() for frames in
                 tracks.values() for v in frames.values()]
        for split, merged in written.items():  # quality: p under the training crops' spread
            merged["quality"] = priors.frame_quality(merged["quality"], float(np.mean(sharp)),
                                                     float(np.std(sharp, ddof=1)))
            priors.write_priors(folder, split, merged)
        (folder / MANIFEST).write_text(json.dumps({"config": asdict(cfg), "layout": "ego4d_lam"},
                                                  indent=2))

    root = write_world_atomically(root, overwrite, write)
    log(f"synthetic Looking-At-Me world written to {root}: {cfg.train_clips} train, "
        f"{cfg.val_clips} val and {cfg.challenge_clips} challenge clips x {cfg.people} people "
        f"x {cfg.frames} frames")
    return root


def ensure_lam_world(cfg: LAMWorldConfig, root: str | Path, log=print) -> Path:
    return ensure_world(cfg, root, write_lam_world, log=log)
