"""The synthetic gaze world (docs/datasets.md), written in the exact GazeFollow (extended) format.

Each image holds a textured background, a few distractor objects and one person: a round head
whose face (eyes, nose) is on the side it faces and whose hair is on the back, above a body.
The gaze target is the one object on the facing ray; distractors are kept off that ray, so the
task is well posed but needs both the head crop (direction) and the scene (where objects are).
A share of train people look out of frame (no object on their ray, ``inout`` 0, gaze -1,-1).
Test heads carry several annotator rows jittered around the target, all in frame.

The ambiguous setting (``synthetic.ambiguous_share``): that share of people have two or three
candidate targets on their ray, near and far (``ambiguous_split`` gives one proportion per
candidate, nearest first). Their test annotators split between the candidates in those
proportions and their rows end in ``ambiguous`` instead of ``gazeworld``; a train row draws
one candidate with the same proportions, as GazeFollow's train rows hold one annotator. The
choice and the extra candidates come from a stream of their own, so a world without the
setting is the same image for image.

Everything is a function of (seed, split, index), so a world is reproducible image by image.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from gazefollow.engine.worlds import ensure_world as ensure_generated
from gazefollow.engine.worlds import write_manifest, write_world_atomically
from gazefollow.following.config import SyntheticConfig

DEPTH_SUFFIX = "_depth.png"  # with synthetic.depth_maps: set data.depth_suffix to this
TRAIN_FILE = "train_annotations_release.txt"
TEST_FILE = "test_annotations_release.txt"
_SPLIT_IDS = {"train": 1, "test": 2}


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth random colour field plus fine grain, so objects are not trivially separable."""
    coarse = rng.uniform(60, 200, size=(4, 5, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
    grain = rng.normal(0, 8, size=(height, width, 1))
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def _draw_object(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, y: float,
                 radius: float) -> None:
    colour = tuple(int(c) for c in rng.choice([0, 255], size=3) * 0.8 + rng.uniform(0, 50, 3))
    box = (x - radius, y - radius, x + radius, y + radius)
    shape = rng.integers(3)
    if shape == 0:
        draw.ellipse(box, fill=colour, outline=(20, 20, 20))
    elif shape == 1:
        draw.rectangle(box, fill=colour, outline=(20, 20, 20))
    else:
        draw.polygon([(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)],
                     fill=colour, outline=(20, 20, 20))


def _draw_person(draw: ImageDraw.ImageDraw, rng: np.random.Generator, hx: float, hy: float,
                 radius: float, theta: float) -> tuple[float, float, float, float]:
    """Draw body, head, hair, eyes and nose; return the body box (x, y, w, h) in pixels."""
    shirt = tuple(int(c) for c in rng.uniform(30, 220, 3))
    body = (hx - 1.3 * radius, hy + 0.9 * radius, hx + 1.3 * radius, hy + 3.6 * radius)
    draw.rounded_rectangle(body, radius=radius * 0.5, fill=shirt)
    skin = tuple(int(c) for c in np.array([225, 180, 150]) * rng.uniform(0.6, 1.05))
    head_box = (hx - radius, hy - radius, hx + radius, hy + radius)
    draw.ellipse(head_box, fill=skin)
    # Hair covers the back half; PIL angles are in degrees, clockwise from +x (image y down).
    facing_deg = math.degrees(theta)
    hair = tuple(int(c) for c in rng.uniform(10, 70, 3))
    draw.pieslice(head_box, facing_deg + 100, facing_deg + 260, fill=hair)
    dx, dy = math.cos(theta), math.sin(theta)
    px, py = -dy, dx  # perpendicular
    for side in (-1, 1):
        ex = hx + 0.45 * radius * dx + side * 0.35 * radius * px
        ey = hy + 0.45 * radius * dy + side * 0.35 * radius * py
        r = max(1.2, 0.14 * radius)
        draw.ellipse((ex - r, ey - r, ex + r, ey + r), fill=(15, 15, 15))
    nx, ny, r = hx + 0.85 * radius * dx, hy + 0.85 * radius * dy, max(1.0, 0.16 * radius)
    draw.ellipse((nx - r, ny - r, nx + r, ny + r), fill=(150, 60, 50))
    return body[0], body[1], body[2] - body[0], body[3] - body[1]


def _distance_to_ray(x: float, y: float, hx: float, hy: float, theta: float) -> float:
    """Distance from (x, y) to the ray leaving (hx, hy) along theta (to its start if behind)."""
    vx, vy = x - hx, y - hy
    along = vx * math.cos(theta) + vy * math.sin(theta)
    if along <= 0:
        return math.hypot(vx, vy)
    return abs(-vx * math.sin(theta) + vy * math.cos(theta))


def _layout(rng: np.random.Generator, cfg: SyntheticConfig, in_frame: bool) -> dict:
    """Sample head, facing direction and target so the target object fits in the image."""
    w, h = cfg.width, cfg.height
    scale = min(w, h) / 192.0
    obj_r = 9.0 * scale
    while True:
        radius = rng.uniform(10, 14) * scale
        hx = rng.uniform(2 * radius, w - 2 * radius)
        hy = rng.uniform(2 * radius, h - 4.5 * radius)  # room for the body below
        theta = rng.uniform(0, 2 * math.pi)
        if not in_frame:
            return dict(hx=hx, hy=hy, radius=radius, theta=theta, target=None, obj_r=obj_r)
        dist = rng.uniform(3.0 * radius, max(w, h))
        tx, ty = hx + dist * math.cos(theta), hy + dist * math.sin(theta)
        body_clear = not (abs(tx - hx) < 1.3 * radius + obj_r and ty > hy)
        if obj_r < tx < w - obj_r and obj_r < ty < h - obj_r and body_clear:
            return dict(hx=hx, hy=hy, radius=radius, theta=theta, target=(tx, ty), obj_r=obj_r)


def _candidates(cfg: SyntheticConfig, lay: dict, split: str, index: int) -> list:
    """The targets on the person's ray, nearest first: the layout's one, or with the
    ambiguous setting (for this person, drawn from its own stream) one per proportion of
    ``ambiguous_split``, at distances at least 3 object radii apart inside the image."""
    if lay["target"] is None or cfg.ambiguous_share <= 0:
        return [lay["target"]] if lay["target"] else []
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], index, 11])
    if rng.uniform() >= cfg.ambiguous_share:
        return [lay["target"]]
    r, (hx, hy), theta = lay["obj_r"], (lay["hx"], lay["hy"]), lay["theta"]
    reach = [d for d in np.arange(3.0 * lay["radius"], max(cfg.width, cfg.height), 1.0)
             if r < hx + d * math.cos(theta) < cfg.width - r
             and r < hy + d * math.sin(theta) < cfg.height - r
             and not (abs(d * math.cos(theta)) < 1.3 * lay["radius"] + r and math.sin(theta) > 0)]
    count = len(cfg.ambiguous_split)
    for _attempt in range(40):
        if not reach:
            break
        chosen = sorted(rng.choice(reach, size=count, replace=len(reach) < count))
        if all(b - a >= 3 * r for a, b in zip(chosen, chosen[1:])):
            return [(hx + d * math.cos(theta), hy + d * math.sin(theta)) for d in chosen]
    return [lay["target"]]  # the ray is too short for several: one target


def render_scene(cfg: SyntheticConfig, split: str, index: int, in_frame: bool) -> tuple:
    """Return (image, layout, body box) of one scene, a pure function of its arguments; the
    layout's ``candidates`` are its targets (several in the ambiguous setting)."""
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], index])
    lay = _layout(rng, cfg, in_frame)
    image = _background(rng, cfg.width, cfg.height)
    draw = ImageDraw.Draw(image)
    lay["candidates"] = _candidates(cfg, lay, split, index)
    placed = list(lay["candidates"])
    clearance = lay["obj_r"] * 2.2
    for _ in range(cfg.num_distractors):
        for _attempt in range(60):
            x = rng.uniform(lay["obj_r"], cfg.width - lay["obj_r"])
            y = rng.uniform(lay["obj_r"], cfg.height - lay["obj_r"])
            off_ray = _distance_to_ray(x, y, lay["hx"], lay["hy"], lay["theta"]) > clearance
            off_person = (math.hypot(x - lay["hx"], y - lay["hy"] - lay["radius"])
                          > 3 * lay["radius"])
            apart = all(math.hypot(x - px, y - py) > clearance for px, py in placed)
            if off_ray and off_person and apart:
                _draw_object(draw, rng, x, y, lay["obj_r"])
                placed.append((x, y))
                break
    for target in lay["candidates"]:
        _draw_object(draw, rng, *target, lay["obj_r"])
    body = _draw_person(draw, rng, lay["hx"], lay["hy"], lay["radius"], lay["theta"])
    lay["objects"] = placed
    return image, lay, body


def render_depth(cfg: SyntheticConfig, lay: dict, body: tuple) -> np.ndarray:
    """A 16-bit depth map of a scene: a ground plane receding towards the top of the image,
    with the objects and the person standing on it nearer than the ground behind them."""
    w, h = cfg.width, cfg.height
    ramp = 0.95 - 0.65 * (np.arange(h, dtype=np.float64) / (h - 1))  # far (1) at the top
    depth = np.repeat(ramp[:, None], w, axis=1)
    pixels = Image.fromarray(np.zeros((h, w), np.uint8))
    draw = ImageDraw.Draw(pixels)
    r = lay["obj_r"]
    for x, y in lay["objects"]:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(255 * ramp[min(int(y + r), h - 1)]))
    bx, by, bw, bh = body
    person = int(255 * ramp[min(int(by + bh), h - 1)])  # at the depth of its feet
    draw.rectangle((bx, by, bx + bw, by + bh), fill=person)
    hr = lay["radius"]
    draw.ellipse((lay["hx"] - hr, lay["hy"] - hr, lay["hx"] + hr, lay["hy"] + hr), fill=person)
    drawn = np.asarray(pixels, np.float64) / 255.0
    depth = np.where(drawn > 0, drawn - 0.05, depth)
    return np.round(np.clip(depth, 0, 1) * 65535).astype(np.uint16)


def _row_prefix(path: str, index: int, cfg: SyntheticConfig, lay: dict, body: tuple) -> list:
    w, h = cfg.width, cfg.height
    eye_x = (lay["hx"] + 0.45 * lay["radius"] * math.cos(lay["theta"])) / w
    eye_y = (lay["hy"] + 0.45 * lay["radius"] * math.sin(lay["theta"])) / h
    bx, by, bw, bh = body
    return [path, index, bx / w, by / h, bw / w, bh / h, eye_x, eye_y]


def _head_box(lay: dict, cfg: SyntheticConfig) -> list[float]:
    r = lay["radius"]
    return [max(0.0, lay["hx"] - r), max(0.0, lay["hy"] - r),
            min(cfg.width - 1.0, lay["hx"] + r), min(cfg.height - 1.0, lay["hy"] + r)]


def _fmt(values: list) -> str:
    return ",".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in values)


def write_split(cfg: SyntheticConfig, root: Path, split: str) -> int:
    """Write the images and the annotation file of one split; return the number of rows."""
    (root / split).mkdir(parents=True, exist_ok=True)
    count = cfg.num_train if split == "train" else cfg.num_test
    lines = []
    for index in range(count):
        rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], index, 7])
        in_frame = split == "test" or rng.uniform() >= cfg.out_of_frame_share
        image, lay, body = render_scene(cfg, split, index, in_frame)
        path = f"{split}/{index:06d}.jpg"
        image.save(root / path, quality=92)
        if cfg.depth_maps:
            cv2.imwrite(str(root / f"{split}/{index:06d}{DEPTH_SUFFIX}"),
                        render_depth(cfg, lay, body))
        prefix = _row_prefix(path, index, cfg, lay, body)
        box = _head_box(lay, cfg)
        candidates = lay["candidates"]
        if split == "train":
            gaze = [-1.0, -1.0]
            if in_frame:
                tx, ty = candidates[_train_choice(cfg, index, len(candidates))]
                gaze = [tx / cfg.width, ty / cfg.height]
            lines.append(_fmt(prefix + gaze + box + [int(in_frame), "synthetic", "gazeworld"]))
            continue
        tag = "ambiguous" if len(candidates) > 1 else "gazeworld"
        for which in _annotator_targets(cfg, len(candidates)):
            tx, ty = candidates[which][0] / cfg.width, candidates[which][1] / cfg.height
            ax = float(np.clip(tx + rng.normal(0, cfg.annotator_jitter), 0, 1))
            ay = float(np.clip(ty + rng.normal(0, cfg.annotator_jitter), 0, 1))
            lines.append(_fmt(prefix + [ax, ay] + box + ["synthetic", tag]))
    annotation = root / (TRAIN_FILE if split == "train" else TEST_FILE)
    annotation.write_text("\n".join(lines) + "\n")
    return len(lines)


def _train_choice(cfg: SyntheticConfig, index: int, count: int) -> int:
    """The candidate a train row names: drawn with the ambiguous split (its own stream)."""
    if count == 1:
        return 0
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS["train"], index, 13])
    shares = np.asarray(cfg.ambiguous_split[:count], dtype=np.float64)
    return int(rng.choice(count, p=shares / shares.sum()))


def _annotator_targets(cfg: SyntheticConfig, count: int) -> list[int]:
    """Which candidate each test annotator marks: the split's proportions of the
    annotators, rounded (largest remainders), nearest candidate first."""
    if count == 1:
        return [0] * cfg.annotators
    shares = np.asarray(cfg.ambiguous_split[:count], dtype=np.float64)
    exact = shares / shares.sum() * cfg.annotators
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[:cfg.annotators - counts.sum()]:
        counts[i] += 1
    return [i for i, n in enumerate(counts) for _ in range(n)]


def generate_world(cfg: SyntheticConfig, root: str | Path, log=print,
                   overwrite: bool = False) -> Path:
    """Write a complete world under ``root`` atomically (``write_world_atomically``)."""
    rows = {}

    def write(folder: Path) -> None:
        rows.update({split: write_split(cfg, folder, split) for split in ("train", "test")})
        write_manifest(folder, cfg, layout="gazefollow", rows=rows)

    root = write_world_atomically(root, overwrite, write)
    log(f"synthetic gaze world written to {root}: {rows['train']} train rows, "
        f"{rows['test']} test rows ({cfg.num_test} heads)")
    return root


def ensure_world(cfg: SyntheticConfig, root: str | Path, log=print) -> Path:
    """The gaze world under ``root``, generated on first use (``engine.worlds.ensure_world``)."""
    return ensure_generated(cfg, root, generate_world, log=log)
