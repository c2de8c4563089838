"""ColumbiaGaze (``data.source_dataset: columbia``): 5,880 photographs of 56 subjects, the
labels in the file names, ``<root>/0001/0001_2m_-15P_10V_-5H.jpg``: subject, distance, head
pose P (the camera's horizontal angle to the head: 0, +-15, +-30 degrees), vertical gaze V
(0, +-10) and horizontal gaze H (0, +-5, +-10, +-15), the gaze relative to the camera
(``conventions.from_columbia``). The head pose is given as (pitch 0, yaw P).

The released photographs show the whole upper body at 5184 x 3456; recipes crop the face
first. This reader serves the images as they are stored under ``root``, so point it at a
folder of face crops that keeps the release's file names. Files are found recursively; a
``.jpg`` whose name does not parse, and an image that fails to decode, follow
``data.on_bad_input``. The subject of a sample is its name's first field (``"0001"``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from gazefollow.engine.samples import LoadReport
from gazefollow.estimation.conventions import from_columbia
from gazefollow.estimation.data.sample import face_sample

NAME = re.compile(r"(\d{4})_(\d+)m_(-?\d+)P_(-?\d+)V_(-?\d+)H")
FOLDS = 5  # cross-subject folds (subjects in name order, dealt round-robin)


def parse_name(name: str) -> tuple[str, float, float, float] | None:
    """``0001_2m_-15P_10V_-5H.jpg`` -> ("0001", P, V, H) in degrees; None when it does not parse."""
    match = NAME.fullmatch(Path(name).stem)
    if match is None:
        return None
    return match[1], float(match[3]), float(match[4]), float(match[5])


def subjects_under(root: str | Path) -> list[str]:
    """The subject ids whose images lie under ``root``, sorted."""
    return sorted({parsed[0] for file in Path(root).rglob("*.jpg")
                   if (parsed := parse_name(file.name)) is not None})


def columbia_folds(subjects: list[str], fold: int, folds: int = FOLDS) -> tuple[list, list]:
    """(train subjects, test subjects) of fold k: every folds-th subject from the k-th."""
    if not 0 <= fold < folds:
        raise ValueError(f"eval.fold={fold}: ColumbiaGaze has folds 0..{folds - 1}")
    test = subjects[fold::folds]
    return [s for s in subjects if s not in test], test


class ColumbiaGaze:
    """The samples of ``subjects`` under ``root``, in file-name order."""

    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        self.root = Path(root)
        self.report = LoadReport(source=f"columbia {self.root}", policy=policy,
                                 unit="faces")
        wanted = set(subjects)
        self.rows: list[tuple[Path, str, np.ndarray, float]] = []  # (file, subject, gaze, P)
        for file in sorted(self.root.rglob("*.jpg")):
            parsed = parse_name(file.name)
            if parsed is None:
                self.report.rows += 1
                self.report.bad(str(file), "malformed file name", "expected "
                                "<subject>_<d>m_<P>P_<V>V_<H>H.jpg")
                continue
            subject, pose, vertical, horizontal = parsed
            if subject in wanted:
                self.report.rows += 1
                self.rows.append((file, subject, from_columbia(vertical, horizontal)[0], pose))
        self.report.instances = len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def gaze_labels(self) -> np.ndarray:
        """[N, 2] pitch, yaw of every sample (project convention), without reading a face."""
        return np.array([gaze for _, _, gaze, _ in self.rows]).reshape(-1, 2)

    def image_file(self, index: int) -> Path:
        return self.rows[index][0]

    def where(self, index: int) -> str:
        return str(self.image_file(index))

    def __getitem__(self, index: int) -> dict:
        file, subject, gaze, pose = self.rows[index]
        with Image.open(file) as image:
            face = np.asarray(image.convert("RGB"))
        return face_sample(face, gaze, subject, index, head_pose=np.radians([0.0, pose]))
