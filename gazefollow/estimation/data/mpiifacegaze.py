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

import numpy as np

from gazefollow.engine.samples import LoadReport
from gazefollow.estimation.conventions import from_mpiifacegaze
from gazefollow.estimation.data.h5files import SubjectFiles, finite_rows, read_subject
from gazefollow.estimation.data.sample import face_sample

SUBJECTS = tuple(f"p{k:02d}" for k in range(15))
LABEL_WIDTH = 16


def subject_file(root: Path, subject: str) -> Path:
    return Path(root) / f"{subject}.mat"


class MPIIFaceGazeMat:
    """The samples of ``subjects`` under ``root``, in subject order, then file order."""

    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        self.root, self.files = Path(root), SubjectFiles()
        self.report = LoadReport(source=f"mpiifacegaze {self.root}", policy=policy,
                                 unit="faces")
        self.rows: list[tuple[str, int, np.ndarray]] = []  # (subject, row in file, labels)
        for subject in subjects:
            file = subject_file(self.root, subject)
            read = read_subject(file, "Data/data", ["Data/label"], self.report)
            if read is None:
                continue
            shape, labels = read[0], read[1]["Data/label"]
            if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or shape[2] == 0:
                self.report.bad(str(file), "wrong shape", f"Data/data is {shape}, not "
                                "[N, 3, S, S]")
                continue
            if labels.shape != (shape[0], LABEL_WIDTH):
                self.report.bad(str(file), "wrong shape", f"Data/label is {labels.shape}, "
                                f"not [{shape[0]}, {LABEL_WIDTH}]")
                continue
            self.report.rows += len(labels)
            self.rows += [(subject, row, labels[row])
                          for row in finite_rows(file, labels, self.report, "Data/label")]
        self.report.instances = len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def gaze_labels(self) -> np.ndarray:
        """[N, 2] pitch, yaw of every sample (project convention), without reading a face."""
        return from_mpiifacegaze(np.array([label[0:2] for _, _, label in self.rows]).reshape(-1, 2))

    def where(self, index: int) -> str:
        """The file and row of a sample, for messages."""
        subject, row, _ = self.rows[index]
        return f"{subject_file(self.root, subject)}, row {row}"

    def __getitem__(self, index: int) -> dict:
        subject, row, label = self.rows[index]
        bgr = self.files(subject_file(self.root, subject))["Data/data"][row]  # [3, S, S]
        face = np.ascontiguousarray(bgr[::-1].transpose(1, 2, 0))
        return face_sample(face, from_mpiifacegaze(label[0:2])[0], subject, index,
                           head_pose=from_mpiifacegaze(label[2:4])[0],
                           landmarks=label[4:16].reshape(6, 2))
