"""The synthetic gaze world written in the VideoAttentionTarget and GOO layouts.

The GazeFollow layout is ``synthetic.generate_world``. These writers let every reader be
trained, evaluated and benchmarked on generated data in its dataset's exact real layout:

- VAT: ``images/<show>/<clip>/<frame>.jpg`` and ``annotations/{train,test}/<show>/<clip>/
  s00.txt`` (one person track per clip, pixel coordinates, ``-1,-1`` out of frame). A clip
  is one scene held for ``frames_per_clip`` frames; each frame's annotated head box carries
  1 px of annotator noise, which the reader's 11-frame smoothing averages out.
- GOO: GOO-Synth's released layout (``picklefiles/*.pickle``: a list of dicts, file names
  with ``\\`` separators, coordinates on the 640x480 basis, a head point instead of a head
  box) and the images under ``1person/GazeDatasets/`` and ``test/``.
"""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np

from gazefollow.engine.worlds import refuse_to_overwrite, write_manifest
from gazefollow.following.config import SyntheticConfig
from gazefollow.following.data.goo import BASIS_H, BASIS_W, GOO_LAYOUTS
from gazefollow.following.data.synthetic import _head_box, render_scene

SPLIT_SIZE = {"train": "num_train", "test": "num_test"}


def _in_frame(share_out: float, clip: int) -> bool:
    """Exactly ``share_out`` of the clips look out of frame, spread evenly, so even a tiny
    test split has both classes for the in/out AP."""
    return int((clip + 1) * share_out) == int(clip * share_out)


def write_vat_world(cfg: SyntheticConfig, root: str | Path, frames_per_clip: int = 5,
                    clips_per_show: int = 4, overwrite: bool = False) -> Path:
    """Write ``cfg.num_train`` / ``cfg.num_test`` frames per split as VAT clips."""
    root = _fresh(Path(root), overwrite)
    for split in ("train", "test"):
        num_clips = max(1, getattr(cfg, SPLIT_SIZE[split]) // frames_per_clip)
        for clip in range(num_clips):
            show, clip_name = f"{split}_show{clip // clips_per_show:03d}", f"clip{clip:04d}"
            frames = root / "images" / show / clip_name
            frames.mkdir(parents=True, exist_ok=True)
            in_frame = _in_frame(cfg.out_of_frame_share, clip)  # VAT test has out-of-frame too
            image, lay, _ = render_scene(cfg, split, clip, in_frame)
            box = np.array(_head_box(lay, cfg))
            noise = np.random.default_rng([cfg.seed, 4, clip, split == "test"])
            lines = []
            for frame in range(frames_per_clip):
                name = f"{frame:08d}.jpg"
                image.save(frames / name, quality=92)
                noisy = box + noise.normal(0, 1.0, 4)
                gaze = [round(v, 2) for v in lay["target"]] if in_frame else [-1, -1]
                lines.append(",".join([name, *(f"{v:.2f}" for v in noisy), *map(str, gaze)]))
            track = root / "annotations" / split / show / clip_name / "s00.txt"
            track.parent.mkdir(parents=True, exist_ok=True)
            track.write_text("\n".join(lines) + "\n")
    write_manifest(root, cfg, layout="videoattentiontarget", frames_per_clip=frames_per_clip)
    return root


def write_goo_world(cfg: SyntheticConfig, root: str | Path, overwrite: bool = False,
                    release: str = "GOO-Synth release") -> Path:
    """Write ``cfg.num_train`` / ``cfg.num_test`` scenes per split in a released GOO layout
    (``GOO_LAYOUTS``; by default GOO-Synth's: ``picklefiles/trainpickle2to19human.pickle`` with
    images under ``1person/GazeDatasets/``, ``picklefiles/testpickle120.pickle`` with images
    under ``test/``), file names with a ``\\`` separator, as Windows-written pickles have."""
    root = _fresh(Path(root), overwrite)
    sx, sy = BASIS_W / cfg.width, BASIS_H / cfg.height
    for split in ("train", "test"):
        pickle_file, image_dir = GOO_LAYOUTS[release][split]
        (root / image_dir / "scene0").mkdir(parents=True, exist_ok=True)
        entries = []
        for index in range(getattr(cfg, SPLIT_SIZE[split])):
            image, lay, _ = render_scene(cfg, split, index, in_frame=True)  # GOO: all in frame
            image.save(root / image_dir / "scene0" / f"{index:06d}.jpg", quality=92)
            tx, ty = lay["target"]
            entries.append({
                "filename": f"scene0\\{index:06d}.jpg", "width": cfg.width,
                "height": cfg.height, "ann": {"bboxes": np.zeros((0, 4)), "labels": []},
                "gaze_item": 0, "gazeIdx": 0, "gaze_cx": tx * sx, "gaze_cy": ty * sy,
                "hx": lay["hx"] * sx, "hy": lay["hy"] * sy, "seg": None, "occluded": False})
        (root / pickle_file).parent.mkdir(parents=True, exist_ok=True)
        (root / pickle_file).write_bytes(pickle.dumps(entries))
    write_manifest(root, cfg, layout="goo")
    return root


def _fresh(root: Path, overwrite: bool) -> Path:
    """An empty folder to write into: a world of ours is replaced only with ``overwrite``."""
    refuse_to_overwrite(root, overwrite)
    if root.exists():
        shutil.rmtree(root)
    return root
