"""The synthetic video world (``scripts/make_synthetic.py --layout video``), written in the
VideoAttentionTarget layout so that the real reader serves it.

Each clip is one person among a few objects, filmed by a still camera. The head drifts
smoothly; the gaze dwells on one object for 5-12 frames, then moves to another (the head
turning over 2-3 frames), and now and then looks out of frame. For 1-3 frames at a time a
grey occluder hides the head (about 8% of frames), while the person keeps looking where they
were: such a frame alone does not say where the person looks, the frames before it do.
Everything is a function of (seed, split, clip), so a world is reproducible frame by frame.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import ImageDraw

from gazefollow.engine.worlds import write_manifest, write_world_atomically
from gazefollow.following.config import SyntheticConfig
from gazefollow.following.data.synthetic import (_SPLIT_IDS, _background, _distance_to_ray,
                                                 _draw_object, _draw_person)

SPLIT_CLIPS = {"train": "num_train", "test": "num_test"}  # frames per split / frames_per_clip
HIDDEN_SHARE = 0.08  # frames with the face hidden


def _objects(rng: np.random.Generator, cfg: SyntheticConfig, count: int, radius: float,
             head: tuple[float, float]) -> list[tuple[float, float]]:
    """Object centres spread over the frame, away from the person and from each other."""
    placed = []
    for _ in range(count):
        for _attempt in range(100):
            x = rng.uniform(radius, cfg.width - radius)
            y = rng.uniform(radius, cfg.height - radius)
            if math.hypot(x - head[0], y - head[1]) > 0.3 * min(cfg.width, cfg.height) and \
                    all(math.hypot(x - px, y - py) > 3 * radius for px, py in placed):
                placed.append((x, y))
                break
    return placed


def _aim_out(rng, hx: float, hy: float, objects: list, clearance: float) -> float:
    """A direction whose ray misses every object: looking out of frame."""
    for _ in range(100):
        theta = rng.uniform(0, 2 * math.pi)
        if all(_distance_to_ray(x, y, hx, hy, theta) > clearance for x, y in objects):
            return theta
    return rng.uniform(0, 2 * math.pi)


def clip_track(cfg: SyntheticConfig, split: str, clip: int, frames: int) -> dict:
    """The clip's scene and per-frame head position, facing, target (None: out) and hidden."""
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], 7, clip])
    scale = min(cfg.width, cfg.height) / 192.0
    radius, obj_r = rng.uniform(10, 14) * scale, 9.0 * scale
    start = (rng.uniform(3 * radius, cfg.width - 3 * radius),
             rng.uniform(2 * radius, cfg.height - 5 * radius))
    objects = _objects(rng, cfg, cfg.num_distractors + 1, obj_r, start)
    t = np.arange(frames)
    drift = rng.uniform(0.5, 1.5, 2) * radius
    hx = start[0] + drift[0] * np.sin(2 * math.pi * t / frames + rng.uniform(0, 6))
    hy = start[1] + drift[1] * np.sin(2 * math.pi * t / frames + rng.uniform(0, 6))
    targets, frame = [], 0
    while frame < frames:
        length = int(rng.integers(5, 13))
        out = rng.random() < cfg.out_of_frame_share
        choice = None if out else int(rng.integers(len(objects)))
        targets += [choice] * length
        frame += length
    targets = targets[:frames]
    theta = np.zeros(frames)
    for k in range(frames):
        if targets[k] is None:
            aim = (_aim_out(rng, hx[k], hy[k], objects, 2.2 * obj_r) if k == 0 or
                   targets[k - 1] is not None else theta[k - 1])
        else:
            x, y = objects[targets[k]]
            aim = math.atan2(y - hy[k], x - hx[k])
        if k and targets[k] is not None:  # the head turns over a few frames
            turn = math.atan2(math.sin(aim - theta[k - 1]), math.cos(aim - theta[k - 1]))
            aim = theta[k - 1] + (turn if abs(turn) < 0.3 else 0.6 * turn)
        theta[k] = aim
    hidden = np.zeros(frames, bool)
    for begin in np.flatnonzero(rng.random(frames) < HIDDEN_SHARE / 2):
        hidden[begin:begin + int(rng.integers(1, 4))] = True
    occluder = tuple(int(c) for c in rng.uniform(90, 160, 3))
    return {"occluder": occluder, "radius": radius, "obj_r": obj_r, "objects": objects, "hx": hx,
            "hy": hy, "theta": theta, "targets": targets, "hidden": hidden}


def render_frame(cfg: SyntheticConfig, track: dict, k: int, background) -> tuple:
    """(frame image, head box xyxy, gaze point or None) of frame k."""
    image = background.copy()
    draw = ImageDraw.Draw(image)
    for i, (x, y) in enumerate(track["objects"]):
        _draw_object(draw, np.random.default_rng([i, 11]), x, y, track["obj_r"])
    hx, hy, r = track["hx"][k], track["hy"][k], track["radius"]
    _draw_person(draw, np.random.default_rng(17), hx, hy, r, track["theta"][k])
    if track["hidden"][k]:  # an occluder in front of the head
        draw.rectangle((hx - 1.2 * r, hy - 1.2 * r, hx + 1.2 * r, hy + 1.2 * r),
                       fill=track["occluder"])
    box = [max(0.0, hx - r), max(0.0, hy - r), min(cfg.width - 1.0, hx + r),
           min(cfg.height - 1.0, hy + r)]
    target = track["targets"][k]  # while the head still turns, the label is the new target
    return image, box, None if target is None else track["objects"][target]


def write_video_world(cfg: SyntheticConfig, root: str | Path, frames_per_clip: int = 24,
                      clips_per_show: int = 2, overwrite: bool = False, log=print) -> Path:
    """``num_train`` / ``num_test`` frames per split as VAT clips of ``frames_per_clip``."""
    def write(folder: Path) -> None:
        for split in ("train", "test"):
            clips = max(1, getattr(cfg, SPLIT_CLIPS[split]) // frames_per_clip)
            for clip in range(clips):
                show, name = f"{split}_show{clip // clips_per_show:03d}", f"clip{clip:04d}"
                track = clip_track(cfg, split, clip, frames_per_clip)
                background = _background(np.random.default_rng([cfg.seed, 9, clip,
                                                                _SPLIT_IDS[split]]),
                                         cfg.width, cfg.height)
                frames_dir = folder / "images" / show / name
                frames_dir.mkdir(parents=True, exist_ok=True)
                lines = []
                for k in range(frames_per_clip):
                    image, box, point = render_frame(cfg, track, k, background)
                    frame = f"{k:08d}.jpg"
                    image.save(frames_dir / frame, quality=92)
                    gaze = ["-1", "-1"] if point is None else [f"{v:.2f}" for v in point]
                    lines.append(",".join([frame, *(f"{v:.2f}" for v in box), *gaze]))
                annotation = folder / "annotations" / split / show / name / "s00.txt"
                annotation.parent.mkdir(parents=True, exist_ok=True)
                annotation.write_text("\n".join(lines) + "\n")
        write_manifest(folder, cfg, layout="video", frames_per_clip=frames_per_clip)

    root = write_world_atomically(root, overwrite, write)
    log(f"synthetic video world written to {root} (VideoAttentionTarget layout, "
        f"{frames_per_clip} frames per clip)")
    return root
