"""Looking-At-Me samples: a window of face crops around a key frame of a track.

A sample is one key frame of one track: every ``lam.train_stride``-th frame of each track
for training, every ``lam.val_stride``-th for validation and testing (1: every frame, as the
challenge scores). Its window is the ``data.clip_length`` frames centred on it (7: t-3 ..
t+3, as Ego4D's and GazePose's loaders take). Frames before a track's first or after its
last repeat the end frame (edge padding, as Ego4D's ``pad_video``); a frame inside a
track gap (``ego4d_lam.read_track``) takes the crop of the nearest observed frame before it
with ``lam.crops: faces`` (there is no crop file for it), or is cut from the frame at
the interpolated box with ``frames``.

Batch keys: ``faces`` [T, 3, S, S] (ImageNet-normalised), ``label`` (0/1 of the key frame),
``head_pose`` [T, 3] (yaw, pitch, roll, degrees) and ``landmarks`` [T, 5, 2] (in [0, 1] of
the crop) where the priors are read (NaN otherwise), ``valid`` [T] (False for padding),
``uid``, ``track_id``, ``frame``, ``box`` [4] (the key frame's x1 y1 x2 y2) and ``position``.
A missing or unreadable crop is a named BadInput (skip mode: the sample is counted and left
out, as every task's datasets do (``engine/samples.py``)).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gazefollow.engine.images import color_jitter, image_size, to_tensor
from gazefollow.engine.samples import BAD_KEY, BadInput, LoadReport
from gazefollow.social.data import ego4d_lam as layout

# the five landmarks (MediaPipe Pose 0, 2, 5, 9, 10: nose, left eye, right eye, mouth left,
# mouth right, as GazePose keeps them) after a mirror: left and right swap
MIRRORED_FIVE = [0, 2, 1, 4, 3]


def key_frames(tracks: list, stride: int) -> list[tuple[int, int]]:
    """(track, position in the track) of every ``stride``-th frame of each track."""
    return [(t, k) for t, track in enumerate(tracks) for k in range(0, len(track.frames), stride)]


def window(track, centre: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions in the track of the ``length`` frames centred on ``centre``, edge-padded;
    whether each is inside the track)."""
    offsets = np.arange(length) - length // 2
    wanted = centre + offsets
    return np.clip(wanted, 0, len(track.frames) - 1), (wanted >= 0) & (wanted < len(track.frames))


def _observed_source(track, position: int) -> int:
    """The nearest observed frame at or before ``position`` (a gap frame has no crop)."""
    while position > 0 and not track.observed[position]:
        position -= 1
    return position


class LAMWindows(Dataset):
    """The windows of ``tracks`` (``ego4d_lam.read_split``; with ``challenge_dir``, the
    challenge's unlabelled tracks of ``read_challenge``, every ``lam.test_stride``-th frame)."""

    def __init__(self, root, tracks: list, report, split: str, config, priors: dict,
                 augment: bool = False, seed: int = 0, challenge_dir=None):
        self.root, self.tracks, self.split = root, tracks, split
        self.cfg, self.priors, self.augment, self.seed = config.data, priors, augment, seed
        self.lam = config.lam
        self.challenge_dir = challenge_dir
        self.load_report = report or LoadReport(source=f"challenge crops {challenge_dir}",
                                                unit="tracks")
        stride = {"train": self.lam.train_stride, "challenge": self.lam.test_stride}.get(
            split, self.lam.val_stride)
        self.samples = self._with_readable_crops(key_frames(tracks, stride))
        self.key_priors = [key_frame_priors(tracks[t], k, priors, self.load_report)
                           for t, k in self.samples]

    def _crop_files(self, track, centre: int) -> list[tuple[Path, tuple | None]]:
        """(file, box to cut or None) of every crop the window around ``centre`` reads (with
        temporal dropout, a subset of them)."""
        positions, _ = window(track, centre, self.cfg.clip_length)
        files = []
        for k in dict.fromkeys(int(k) for k in positions):
            frame = int(track.frames[k])
            if self.challenge_dir is not None:
                files.append((layout.challenge_crop_path(self.challenge_dir, track.uid,
                                                         track.track_id, frame, track.rows[k]),
                              None))
            elif self.lam.crops == "faces":
                source = int(track.frames[_observed_source(track, k)])
                files.append((layout.face_crop_path(self.root, track.uid, track.track_id,
                                                    source), None))
            else:
                files.append((layout.frame_path(self.root, track.uid, frame),
                              tuple(track.boxes[k])))
        return files

    def _with_readable_crops(self, samples: list) -> list:
        """The key frames whose every crop opens (its header; every pixel with
        ``data.verify_images``), checked before training as every task's images are: a bad
        file is named (strict) or counted with the windows it takes out (skip)."""
        checked, named, kept = {}, set(), []
        for t, centre in samples:
            problems = []
            for file, box in self._crop_files(self.tracks[t], centre):
                if file not in checked:
                    checked[file] = _crop_problem(file, box, self.cfg.verify_images)
                if checked[file] is not None:
                    problems.append(file)
            if not problems:
                kept.append((t, centre))
                continue
            for file in problems:
                if file not in named:  # each bad file is named once, whatever uses it
                    named.add(file)
                    self.load_report.bad(str(file), *checked[file])
            self.load_report.skipped["windows left out for a bad crop"] += 1
        return kept

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> np.ndarray:
        return np.array([self.tracks[t].labels[k] for t, k in self.samples])

    def __getitem__(self, item) -> dict:
        position, epoch = item if isinstance(item, tuple) else (item, 0)
        t, centre = self.samples[position]
        track = self.tracks[t]
        try:
            return self._sample(track, centre, position, epoch)
        except BadInput as err:
            if self.cfg.on_bad_input == "skip":
                return {BAD_KEY: str(err)}
            raise

    def _sample(self, track, centre: int, position: int, epoch: int) -> dict:
        positions, valid = window(track, centre, self.cfg.clip_length)
        rng = np.random.default_rng([self.seed, epoch, position]) if self.augment else None
        if self.lam.temporal_dropout:
            positions = drop_blurred(positions, self._quality(track, positions), rng)
        faces = [self._crop(track, int(k)) for k in positions]
        pose, landmarks = self.key_priors[position]
        if rng is not None and rng.random() < self.cfg.augment_flip:
            # a mirrored face looks at the camera as much as before; yaw and roll change sign
            faces = [face.transpose(Image.FLIP_LEFT_RIGHT) for face in faces]
            pose, landmarks = pose * [-1, 1, -1], mirror_landmarks(landmarks)
        if rng is not None and rng.random() < self.cfg.augment_color:
            same = int(rng.integers(2**31))  # one jitter for the whole window
            faces = [color_jitter(f, np.random.default_rng(same), self.cfg.augment_color_range)
                     for f in faces]
        size = (self.cfg.face_size, self.cfg.face_size)
        return {"faces": torch.stack([to_tensor(f.resize(size, Image.BILINEAR)) for f in faces]),
                "label": int(track.labels[centre]), "valid": torch.from_numpy(valid),
                "head_pose": torch.tensor(pose, dtype=torch.float32),
                "landmarks": torch.tensor(landmarks, dtype=torch.float32),
                "uid": track.uid, "track_id": track.track_id,
                "frame": int(track.frames[centre]),
                "box": torch.tensor(track.boxes[centre], dtype=torch.float32),
                "position": position}

    def _quality(self, track, positions) -> np.ndarray:
        table = self.priors["quality"].get(track.uid, {}).get(track.track_id, {})
        return np.array([float(table.get(str(int(track.frames[k])), 1.0)) for k in positions])

    def _crop(self, track, k: int) -> Image.Image:
        if self.challenge_dir is not None:
            frame = int(track.frames[k])
            return open_rgb(layout.challenge_crop_path(self.challenge_dir, track.uid,
                                                       track.track_id, frame, track.rows[k]),
                            f"challenge crop of track {track.track_id} in {track.uid}")
        if self.lam.crops == "faces":
            k = _observed_source(track, k)
            path = layout.face_crop_path(self.root, track.uid, track.track_id,
                                         int(track.frames[k]))
            return open_rgb(path, f"face crop of track {track.track_id} in clip {track.uid}, "
                            f"frame {int(track.frames[k])}")
        frame = int(track.frames[k])
        path = layout.frame_path(self.root, track.uid, frame)
        image = open_rgb(path, f"frame {frame} of clip {track.uid}")
        x1, y1, x2, y2 = track.boxes[k]
        if min(x2, image.width) - max(x1, 0) < 1 or min(y2, image.height) - max(y1, 0) < 1:
            raise BadInput(f"{track.source}, frame {frame}: box {track.boxes[k].round(1)} is "
                           f"outside the {image.width}x{image.height} frame")
        return image.crop(tuple(int(round(v)) for v in (x1, y1, x2, y2)))


def _crop_problem(file: Path, box, decode: bool) -> tuple[str, str] | None:
    """(reason, detail) when a crop cannot be read, or its box is not inside its frame."""
    size, reason, detail = image_size(file, decode)
    if size is None:
        detail = {"missing image": "no such file", "empty (0-byte) image": "0 bytes"}.get(
            reason, detail.replace(f"{file}: ", ""))
        return reason.replace("image", "crop"), detail
    if box is not None and (min(box[2], size[0]) - max(box[0], 0) < 1
                            or min(box[3], size[1]) - max(box[1], 0) < 1):
        return "box outside the frame", \
            f"box {np.round(box, 1).tolist()} in a {size[0]}x{size[1]} frame"
    return None


def drop_blurred(positions: np.ndarray, quality: np.ndarray, rng) -> np.ndarray:
    """GazePose's Gaussian temporal dropout. ``quality`` is each frame's p (the normal CDF of
    its sharpness among the training crops, ``quality.py``). Training (``rng``) drops a frame
    other than the key frame when a uniform draw exceeds p + 0.2; evaluation drops it when
    p < 0.2. The kept frames close up around the key frame, and the ends repeat the outermost
    kept frame (Ego4D's ``pad_video``), so the key frame stays in the middle."""
    middle = len(positions) // 2
    if rng is not None:
        drop = rng.random(len(positions)) > quality + 0.2
    else:
        drop = quality < 0.2
    drop[middle] = False
    before, after = positions[:middle][~drop[:middle]], positions[middle + 1:][~drop[middle + 1:]]
    before = np.concatenate([np.full(middle - len(before), (before[:1] if len(before) else
                                                             positions[middle:middle + 1])[0]),
                             before])
    tail = len(positions) - middle - 1 - len(after)
    last = after[-1] if len(after) else positions[middle]
    return np.concatenate([before, positions[middle:middle + 1], after,
                           np.full(tail, last)]).astype(positions.dtype)


def mirror_landmarks(vector: np.ndarray) -> np.ndarray:
    """The 15-d landmark prior (x 5, y 5, confidence 5; ``priors.landmark_vector``) of a
    mirrored face: x negated (it is relative to the eyes' middle), left and right swapped."""
    x, y, c = vector.reshape(3, 5)
    return np.concatenate([-x[MIRRORED_FIVE], y[MIRRORED_FIVE], c[MIRRORED_FIVE]])


def key_frame_priors(track, k: int, priors: dict, report) -> tuple[np.ndarray, np.ndarray]:
    """(head pose [3] yaw, pitch, roll in degrees, the 15-d landmark vector) of a key frame,
    as GazePose reads them; what a prior file lacks is counted in the report."""
    from gazefollow.social.data.priors import head_pose_of, landmarks_near
    pose = head_pose_of(priors.get("headpose"), track.uid, track.track_id,
                        int(track.frames[k]), report)
    marks = landmarks_near(priors.get("landmarks"), track.uid, track.track_id,
                           int(track.frames[k]), report)
    return pose, marks


def open_rgb(path, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise BadInput(f"{path}: missing {what}") from None
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: unreadable {what}: {err}") from None
