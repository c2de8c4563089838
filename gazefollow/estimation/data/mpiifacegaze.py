"""Normalized MPIIFaceGaze (``data.source_dataset: mpiifacegaze``): one ``pXX.mat`` per subject.

The files are MATLAB v7.3, i.e. HDF5, read with h5py:

- ``Data/data``: uint8 [N, 3, S, S] (N = 3000, S = 448 as released), channels in BGR order;
- ``Data/label``: [N, 16]: ``[0:2]`` gaze (pitch, yaw) in radians, ``[2:4]`` head pose
  (pitch, yaw), ``[4:16]`` six landmarks (x, y) in pixels of the face image: four eye corners
  and two mouth corners.

Labels are read once when the reader is built (they are small) and converted by
``conventions.from_mpiifacegaze``; faces are read per sample, so a subject's 1.8 GB of pixels
never sits in memory. Bad input follows ``data.on_bad_input`` through a ``LoadReport``: a
missing or unreadable file, a missing key or a wrong shape makes the whole subject bad; a
label row with NaN/Inf makes that sample bad.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from gazefollow.data.instances import LoadReport
from gazefollow.estimation.conventions import from_mpiifacegaze
from gazefollow.estimation.data.sample import face_sample

SUBJECTS = tuple(f"p{k:02d}" for k in range(15))
LABEL_WIDTH = 16


def subject_file(root: Path, subject: str) -> Path:
    return Path(root) / f"{subject}.mat"


def _labels(file: Path, report: LoadReport) -> np.ndarray | None:
    """A subject's label rows [N, 16], or None (after ``report.bad``) when unusable."""
    if not file.is_file():
        report.bad(str(file), "missing subject file", "no such file")
        return None
    try:
        with h5py.File(file, "r") as mat:
            missing = [key for key in ("Data/data", "Data/label") if key not in mat]
            if missing:
                report.bad(str(file), "missing key", f"no {', '.join(missing)} in the file")
                return None
            faces, labels = mat["Data/data"], mat["Data/label"][()]
            shape = faces.shape
            dtype = faces.dtype
    except OSError as err:
        report.bad(str(file), "unreadable file", f"not an HDF5 (MATLAB v7.3) file: {err}")
        return None
    problem = None
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or dtype != np.uint8:
        problem = f"Data/data is {dtype} {shape}, not uint8 [N, 3, S, S]"
    elif labels.ndim != 2 or labels.shape != (shape[0], LABEL_WIDTH):
        problem = f"Data/label is {labels.shape}, not [{shape[0]}, {LABEL_WIDTH}]"
    if problem:
        report.bad(str(file), "wrong shape", problem)
        return None
    return labels


class MPIIFaceGazeMat:
    """The samples of ``subjects`` under ``root``, in subject order, then file order."""

    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        self.root = Path(root)
        self.report = LoadReport(source=f"mpiifacegaze {self.root}", policy=policy)
        self.rows: list[tuple[str, int, np.ndarray]] = []  # (subject, row in file, labels)
        for subject in subjects:
            file = subject_file(self.root, subject)
            labels = _labels(file, self.report)
            if labels is None:
                continue
            self.report.rows += len(labels)
            for row, label in enumerate(labels):
                if not np.isfinite(label).all():
                    self.report.bad(f"{file}, sample {row}", "NaN label",
                                    f"Data/label row {row} holds NaN/Inf")
                    continue
                self.rows.append((subject, row, label))
        self.report.instances = len(self.rows)
        self._open: dict[str, h5py.File] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _faces(self, subject: str):
        # one handle per subject and process (h5py handles do not survive a fork)
        if subject not in self._open:
            self._open[subject] = h5py.File(subject_file(self.root, subject), "r")
        return self._open[subject]["Data/data"]

    def __getitem__(self, index: int) -> dict:
        subject, row, label = self.rows[index]
        bgr = self._faces(subject)[row]  # [3, S, S]
        face = np.ascontiguousarray(bgr[::-1].transpose(1, 2, 0))
        return face_sample(face, from_mpiifacegaze(label[0:2])[0], subject, index,
                           head_pose=from_mpiifacegaze(label[2:4])[0],
                           landmarks=label[4:16].reshape(6, 2))

    def __getstate__(self) -> dict:  # to worker processes: without open handles
        return {**self.__dict__, "_open": {}}
