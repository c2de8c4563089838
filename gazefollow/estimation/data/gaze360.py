"""Gaze360 (``data.source_dataset: gaze360``), single frames: the split's text file and its
head crops.

Layout, as Gaze360's own loader reads it: ``train.txt``, ``validation.txt`` and ``test.txt``
(the splits) hold one sample per line, ``rec_022/head/000000/000131.jpg gx gy gz`` (fields
split by spaces or tabs), the path relative to the image folder (the release's ``imgs/``) and
a 3D gaze vector in Gaze360's eye coordinate system (+x left, +y up, +z away from the camera),
converted by ``conventions.from_gaze360``. Here a root holds ``imgs/`` and the three files.
The subject of a sample is its recording (``rec_022``): the splits are by recording.
A malformed line, a NaN or zero vector and a missing image follow ``data.on_bad_input``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gazefollow.engine.samples import LoadReport
from gazefollow.estimation.conventions import from_gaze360
from gazefollow.estimation.data.sample import face_sample

SPLIT_FILES = {"train": "train.txt", "val": "validation.txt", "test": "test.txt"}


def _gaze(fields: list[str]) -> np.ndarray | None:
    try:
        vector = np.array([float(v) for v in fields[1:4]])
    except ValueError:
        return None
    return vector if np.isfinite(vector).all() and np.linalg.norm(vector) > 0 else None


class Gaze360Frames:
    """The samples of one split (``train``, ``val`` or ``test``) under ``root``."""

    def __init__(self, root: str | Path, split: str, policy: str = "strict"):
        self.root = Path(root)
        if split not in SPLIT_FILES:
            raise ValueError(f"Gaze360 split '{split}': use one of {sorted(SPLIT_FILES)}")
        file = self.root / SPLIT_FILES[split]
        if not file.is_file():
            raise FileNotFoundError(f"no {SPLIT_FILES[split]} in {self.root} (Gaze360's split "
                                    "files lie beside imgs/)")
        self.report = LoadReport(source=f"gaze360 {file}", policy=policy,
                                 unit="faces")
        self.rows: list[tuple[str, np.ndarray, int]] = []  # (image path, pitch/yaw, line)
        for number, line in enumerate(file.read_text(encoding="utf-8-sig").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            self.report.rows += 1
            where = f"{file}, line {number}"
            gaze = _gaze(fields) if len(fields) >= 4 else None
            if gaze is None:
                self.report.bad(where, "malformed line", "expected 'path gx gy gz' with a "
                                f"finite, non-zero gaze vector; got {line.strip()!r}")
                continue
            if not (self.root / "imgs" / fields[0]).is_file():
                self.report.bad(where, "missing image", f"no imgs/{fields[0]}")
                continue
            self.rows.append((fields[0], from_gaze360(gaze)[0], number))
        self.report.instances = len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def gaze_labels(self) -> np.ndarray:
        """[N, 2] pitch, yaw of every sample (project convention), without reading a face."""
        return np.array([gaze for _, gaze, _ in self.rows]).reshape(-1, 2)

    def image_file(self, index: int) -> Path:
        return self.root / "imgs" / self.rows[index][0]

    def where(self, index: int) -> str:
        return f"{self.image_file(index)} (line {self.rows[index][2]} of the split file)"

    def __getitem__(self, index: int) -> dict:
        path, gaze, _ = self.rows[index]
        with Image.open(self.root / "imgs" / path) as image:
            face = np.asarray(image.convert("RGB"))
        return face_sample(face, gaze, path.split("/")[0], index)
