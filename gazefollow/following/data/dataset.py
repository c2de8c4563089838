"""The dataset shared by every reader: head instances -> documented sample dicts."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gazefollow.engine.samples import BAD_KEY, BadInput
from gazefollow.following.data.augment import AugmentSettings, View, augment
from gazefollow.following.data.depth import depth_channels, depth_path, read_depth
from gazefollow.following.data.heatmap import gaussian_heatmap, pad_points
from gazefollow.following.data.instances import HeadInstance, pixel_box, usable_box
from gazefollow.following.data.preprocess import model_inputs


class HeadDataset(Dataset):
    """Head instances of one split, as sample dicts.

    Sample keys: ``image`` [3, S, S] and ``face`` [3, F, F] (8-bit pixels, which the model
    normalises; ``preprocess.model_inputs``), ``head_channel`` [1, S, S], ``heatmap``
    [1, O, O] (Gaussian, peak 1; zeros out of frame), ``gaze_points`` [20, 2] (normalised, -1
    padding), ``inout`` (1 in frame, 0 out), ``head_box`` [4] (normalised xyxy, after quirk
    fixes), ``index`` (sample id), ``position`` (in this dataset), ``path``, ``width`` and
    ``height`` (original image size); with a ``depth_suffix``, ``depth``
    [3, S, S] (``gazefollow/following/data/depth.py``).

    An item is a position, or (position, epoch) from the training sampler: with ``augment``
    settings (and ``random_sigma``: the target Gaussian's sigma drawn in 0.5-1.5x) the view is
    drawn from a generator seeded by (seed, epoch, sample id), so it does not depend on
    workers, batch size or resumes. ``sigma_randint`` [lo, hi] draws each view's sigma as an
    integer in [lo, hi] (at 64 px), in every split (the original's random_flag). With
    ``on_bad_input="skip"`` an image that fails to decode (or a box empty inside its image)
    gives ``{"bad_input": message}``, which ``collate_samples`` drops and reports; "strict"
    raises, naming the file and rows.
    """

    def __init__(self, root: str | Path, instances: list[HeadInstance], input_size: int = 224,
                 output_size: int = 64, face_size: int = 224, heatmap_sigma: float = 3.0,
                 head_enlarge: float = 0.1, augment: AugmentSettings | None = None,
                 on_bad_input: str = "strict", random_sigma: bool = False, seed: int = 0,
                 load_report=None, sigma_randint: list[int] | None = None,
                 depth_suffix: str = "", scene_resize: str = "pil", head_inputs: str = "ours"):
        self.root = Path(root)
        self.instances = instances
        self.input_size, self.output_size, self.face_size = input_size, output_size, face_size
        self.heatmap_sigma, self.head_enlarge = heatmap_sigma, head_enlarge
        self.augment, self.on_bad_input = augment, on_bad_input
        self.random_sigma, self.seed = random_sigma, seed
        self.sigma_randint, self.depth_suffix = sigma_randint or [], depth_suffix
        self.scene_resize, self.head_inputs = scene_resize, head_inputs  # preprocess.py
        self.load_report = load_report  # what reading the annotations fixed and dropped

    def __len__(self) -> int:
        return len(self.instances)

    def _load_image(self, instance: HeadInstance) -> Image.Image:
        file = self.root / instance.path
        try:
            # read in one call: PIL reading the file piece by piece took longer than the read
            with Image.open(io.BytesIO(file.read_bytes())) as image:
                image.load()  # an RGB file is used as read, not copied by convert
                return image if image.mode == "RGB" else image.convert("RGB")
        except (OSError, ValueError) as err:
            raise BadInput(f"cannot read image {file} (annotation rows {instance.rows}): "
                           f"{err}") from None

    def _pixel_annotation(self, instance: HeadInstance, width: int,
                          height: int) -> tuple[np.ndarray, np.ndarray]:
        """(head box xyxy after quirk fixes, in-frame gaze points [N, 2]) in image pixels."""
        box = usable_box(pixel_box(instance, width, height), width, height,
                         f"{self.root / instance.path} (annotation rows {instance.rows})",
                         shown=instance.head_box)
        points = np.asarray(instance.gaze_points, dtype=np.float64).reshape(-1, 2)
        if not instance.inout:
            points = np.zeros((0, 2))
        elif not instance.pixel_points:
            points = points * [width, height]
        return box, points

    def __getitem__(self, item) -> dict:
        position, epoch = item if isinstance(item, tuple) else (item, 0)
        instance = self.instances[position]
        try:
            # the position orders evaluation results gathered from several processes
            return {**self._sample(instance, epoch), "position": position}
        except BadInput as err:
            if self.on_bad_input == "skip":
                return {BAD_KEY: str(err)}
            raise

    def _sample(self, instance: HeadInstance, epoch: int, view: int | None = None) -> dict:
        """One instance's sample; ``view`` (default the instance's id) seeds its
        augmentations, so the frames of a clip share one draw."""
        image = self._load_image(instance)
        width, height = image.size  # the original size, reported for the GazeFollow AUC
        box, points = self._pixel_annotation(instance, width, height)
        depth = None
        if self.depth_suffix:
            depth = read_depth(depth_path(self.root / instance.path, self.depth_suffix),
                               image.size, instance.rows)
        rng = np.random.default_rng([self.seed, epoch, instance.index if view is None else view])
        shown = View(image, box, points, depth)
        if self.augment is not None:
            shown = augment(image, box, points, rng, self.augment, depth)
        # random target widths per view (drawn after the augmentations, so switching them does
        # not change those)
        sigma = self.heatmap_sigma * (rng.uniform(0.5, 1.5) if self.random_sigma else 1.0)
        if self.sigma_randint:
            sigma = float(rng.integers(self.sigma_randint[0], self.sigma_randint[1] + 1))
        points = shown.points / shown.image.size
        extra = {}
        if shown.depth is not None:
            depth = depth_channels(shown.depth, self.input_size)
            extra["depth"] = depth.flip(-1) if shown.mirrored else depth
        return {
            **model_inputs(shown.image, shown.box, self.input_size, self.face_size,
                           self.head_enlarge, self.scene_resize, self.head_inputs,
                           color=shown.color, mirrored=shown.mirrored),
            **extra,
            "heatmap": gaussian_heatmap(points, self.output_size, sigma),
            "gaze_points": pad_points(points),
            "inout": torch.tensor(float(instance.inout)),
            "ambiguous": torch.tensor(instance.ambiguous),
            # as annotated (normalised to the original image; -1 when the dataset has none):
            # for the angular error at evaluation, which never augments
            "eye": torch.tensor(instance.eye, dtype=torch.float32),
            "index": instance.index,
            "path": instance.path,
            "width": width,
            "height": height,
        }


def track_of(instance: HeadInstance) -> str:
    """The track an instance belongs to: its annotation file (VAT: one file per track, rows
    "file:line"); in an image dataset each person is a track of one frame."""
    first = instance.rows[0] if instance.rows else None
    if isinstance(first, str) and ":" in first:
        return first.rsplit(":", 1)[0]
    return f"{instance.path}#{instance.index}"


class TrackDataset(HeadDataset):
    """Head instances in track order, each sample with its ``track`` (``track_of``): what a
    model with a state per track streams through (``model.temporal=chong``)."""

    def __getitem__(self, item) -> dict:
        sample = super().__getitem__(item)
        if BAD_KEY not in sample:
            position = item[0] if isinstance(item, tuple) else item
            sample["track"] = track_of(self.instances[position])
        return sample


def clip_positions(instances: list[HeadInstance], length: int, spacing: int) -> list[list[int]]:
    """For each instance, the positions of its clip: the ``length`` frames of its track up to
    it, ``spacing`` instances apart, oldest first; before the track's first frame the first
    frame repeats (the padding at a track's start)."""
    clips, seen = [], {}  # track -> positions so far, in order
    for position, instance in enumerate(instances):
        track = seen.setdefault(track_of(instance), [])
        track.append(position)
        last = len(track) - 1
        clips.append([track[max(0, last - spacing * back)] for back in range(length - 1, -1, -1)])
    return clips


class ClipDataset(HeadDataset):
    """Head instances with their clips (``model.temporal``): the target frame's sample as
    ``HeadDataset`` gives it, plus ``clip_<key>`` [T, ...] for the per-frame encoder inputs
    (image, head_channel, face, head_box, depth) of its ``clip_length`` frames, the target
    last. Clips are built from the instances of the split in track order (``clip_positions``);
    every frame of a clip shares the target's augmentation draw."""

    FRAME_KEYS = ("image", "head_channel", "face", "head_box", "depth")

    def __init__(self, root, instances, clip_length: int, spacing: int, **kwargs):
        super().__init__(root, instances, **kwargs)
        self.clips = clip_positions(instances, clip_length, spacing)

    def __getitem__(self, item) -> dict:
        position, epoch = item if isinstance(item, tuple) else (item, 0)
        target = self.instances[position]
        try:
            frames = [self._sample(self.instances[p], epoch, view=target.index)
                      for p in self.clips[position]]
        except BadInput as err:
            if self.on_bad_input == "skip":
                return {BAD_KEY: str(err)}
            raise
        stacked = {f"clip_{key}": torch.stack([f[key] for f in frames])
                   for key in self.FRAME_KEYS if key in frames[-1]}
        return {**frames[-1], **stacked, "position": position}
