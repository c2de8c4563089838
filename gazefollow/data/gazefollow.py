"""GazeFollow (extended) annotations and dataset (DESIGN.md §3), also serving the synthetic world.

Train file: 17 comma-separated columns per row, one row per person. Test file: 16 columns (no
``inout``), one row per annotator; rows sharing ``(path, eye_x, eye_y)`` form one head instance.
Body box, eye and gaze are normalised; the head box is in pixels.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gazefollow.data.heatmap import (enlarge_box, gaussian_heatmap, head_channel, pad_points,
                                     to_tensor)

TRAIN_COLUMNS = 17
TEST_COLUMNS = 16


@dataclass
class HeadInstance:
    """One person in one image, with every annotator's gaze point (normalised; -1 = none)."""

    index: int  # position in the annotation file's instance order: the sample id
    path: str
    head_box: np.ndarray  # pixels, xyxy, as written in the file (before fixing quirks)
    gaze_points: np.ndarray  # [A, 2]
    inout: int
    eye: tuple[float, float]
    rows: list[int] = field(default_factory=list)  # 1-based line numbers in the file


@dataclass
class LoadReport:
    """What loading dropped or fixed, reported at the end of loading (never silent)."""

    file: str
    rows: int = 0
    instances: int = 0
    dropped_invalid_inout: int = 0
    swapped_boxes: int = 0

    def summary(self) -> str:
        return (f"{self.file}: {self.rows} rows -> {self.instances} head instances; "
                f"dropped {self.dropped_invalid_inout} rows with inout=-1; "
                f"swapped {self.swapped_boxes} boxes with min > max")


def _parse_row(row: list[str], expected: int, path: Path, line: int) -> dict:
    if len(row) != expected:
        raise ValueError(f"{path}, row {line}: expected {expected} columns, found {len(row)}")
    try:
        numbers = [float(v) for v in row[2:14]]
        inout = int(float(row[14])) if expected == TRAIN_COLUMNS else 1
    except ValueError as err:
        raise ValueError(f"{path}, row {line}: non-numeric field ({err})") from None
    if not np.all(np.isfinite(numbers)):
        raise ValueError(f"{path}, row {line}: NaN or infinite value in {row[2:14]}")
    return {"path": row[0], "eye": (numbers[4], numbers[5]), "gaze": (numbers[6], numbers[7]),
            "box": np.array(numbers[8:12]), "inout": inout}


def read_annotations(path: str | Path, split: str) -> tuple[list[HeadInstance], LoadReport]:
    """Parse a GazeFollow annotation file into head instances (grouping test annotators)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    expected = TRAIN_COLUMNS if split == "train" else TEST_COLUMNS
    report = LoadReport(file=str(path))
    groups: dict[tuple, HeadInstance] = {}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            report.rows += 1
            item = _parse_row(row, expected, path, line)
            if item["inout"] == -1:
                report.dropped_invalid_inout += 1
                continue
            key = (item["path"], item["eye"]) if split != "train" else (line,)
            if key not in groups:
                groups[key] = HeadInstance(len(groups), item["path"], item["box"],
                                           np.zeros((0, 2)), item["inout"], item["eye"])
            instance = groups[key]
            instance.rows.append(line)
            gaze = np.array([item["gaze"]]) if item["inout"] == 1 else np.zeros((0, 2))
            instance.gaze_points = np.concatenate([instance.gaze_points, gaze])
    instances = list(groups.values())
    report.instances = len(instances)
    report.swapped_boxes = sum(int(i.head_box[0] > i.head_box[2] or i.head_box[1] > i.head_box[3])
                               for i in instances)
    return instances, report


def fix_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Real-data quirks: swap min/max when reversed, clamp to the image."""
    x0, x1 = sorted((box[0], box[2]))
    y0, y1 = sorted((box[1], box[3]))
    return np.clip([x0, y0, x1, y1], 0, [width - 1, height - 1, width - 1, height - 1])


class GazeFollowDataset(Dataset):
    """Head instances of one GazeFollow-format split, as documented sample dicts.

    Sample keys: ``image`` [3, S, S] (ImageNet-normalised), ``head_channel`` [1, S, S],
    ``face`` [3, F, F], ``heatmap`` [1, O, O] (Gaussian, peak 1; zeros out of frame),
    ``gaze_points`` [20, 2] (normalised, -1 padding), ``inout`` (1 in frame, 0 out),
    ``head_box`` [4] (normalised xyxy, after quirk fixes), ``index`` (sample id), ``path``,
    ``width`` and ``height`` (original image size).
    """

    def __init__(self, root: str | Path, instances: list[HeadInstance], input_size: int = 224,
                 output_size: int = 64, face_size: int = 224, heatmap_sigma: float = 3.0,
                 head_enlarge: float = 0.1):
        self.root = Path(root)
        self.instances = instances
        self.input_size, self.output_size, self.face_size = input_size, output_size, face_size
        self.heatmap_sigma, self.head_enlarge = heatmap_sigma, head_enlarge

    def __len__(self) -> int:
        return len(self.instances)

    def _load_image(self, instance: HeadInstance) -> Image.Image:
        file = self.root / instance.path
        try:
            with Image.open(file) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as err:
            raise OSError(f"cannot read image {file} (annotation rows {instance.rows}): {err}") \
                from None

    def __getitem__(self, item: int) -> dict:
        instance = self.instances[item]
        image = self._load_image(instance)
        width, height = image.size
        box = fix_box(instance.head_box, width, height)
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            raise ValueError(f"{self.root / instance.path} (annotation rows {instance.rows}): "
                             f"head box {instance.head_box.tolist()} is empty inside the "
                             f"{width}x{height} image")
        face_box = enlarge_box(box, self.head_enlarge, width, height)
        face = image.crop(tuple(int(round(v)) for v in face_box))
        size = (self.input_size, self.input_size)
        points = instance.gaze_points
        return {
            "image": to_tensor(image.resize(size, Image.BILINEAR)),
            "head_channel": head_channel(box, width, height, self.input_size),
            "face": to_tensor(face.resize((self.face_size,) * 2, Image.BILINEAR)),
            "heatmap": gaussian_heatmap(points if instance.inout else np.zeros((0, 2)),
                                        self.output_size, self.heatmap_sigma),
            "gaze_points": pad_points(points),
            "inout": torch.tensor(float(instance.inout)),
            "head_box": torch.tensor(box / [width, height, width, height], dtype=torch.float32),
            "index": instance.index,
            "path": instance.path,
            "width": width,
            "height": height,
        }
