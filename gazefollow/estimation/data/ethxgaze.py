"""ETH-XGaze (``data.source_dataset: ethxgaze``): one ``subjectXXXX.h5`` per subject.

Layout, as the dataset's own loader reads it: ``<root>/train_test_split.json`` maps ``train``
(80 subjects), ``test`` and ``test_person_specific`` to file names (``subject0000.h5``), which
lie in ``<root>/train/`` or ``<root>/test/``. Each file holds ``face_patch`` uint8 [N, S, S, 3]
(BGR, S = 224 or 448), ``face_gaze`` and ``face_head_pose`` [N, 2] pitch and yaw in radians
(the project's convention), ``frame_index`` and ``cam_index`` [N, 1] and, in some releases,
``facial_landmarks`` [N, 68, 2]. The test subjects' labels are hidden (leaderboard only), so
this reader serves the ``train`` subjects; ``protocols.ethxgaze_validation`` holds some of them
out for validation.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gazefollow.data.instances import BadInput, LoadReport
from gazefollow.estimation.conventions import from_ethxgaze
from gazefollow.estimation.data.h5files import SubjectFiles, finite_rows, read_subject
from gazefollow.estimation.data.sample import face_sample

SPLIT_FILE = "train_test_split.json"


def train_subjects(root: str | Path) -> list[str]:
    """The ``train`` file names of ``train_test_split.json`` (the only labelled subjects)."""
    file = Path(root) / SPLIT_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no {SPLIT_FILE} in {root} (the ETH-XGaze release has one)")
    split = json.loads(file.read_text(encoding="utf-8-sig"))
    if not isinstance(split, dict) or not isinstance(split.get("train"), list):
        raise BadInput(f"{file}: expected a 'train' list of subject files")
    return [str(name) for name in split["train"]]


class ETHXGaze:
    """The samples of the listed subject files (``subject0000.h5`` ...) in ``<root>/train``."""

    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        self.root, self.files = Path(root), SubjectFiles()
        self.report = LoadReport(source=f"ethxgaze {self.root}", policy=policy,
                                 unit="faces")
        self.rows: list[tuple[Path, int, np.ndarray, np.ndarray]] = []
        for name in subjects:
            file = self.root / "train" / name
            read = read_subject(file, "face_patch", ["face_gaze", "face_head_pose"],
                                self.report)
            if read is None:
                continue
            shape, labels = read
            gaze, pose = labels["face_gaze"], labels["face_head_pose"]
            if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
                self.report.bad(str(file), "wrong shape", f"face_patch is {shape}, not "
                                "[N, S, S, 3]")
                continue
            if gaze.shape != (shape[0], 2) or pose.shape != (shape[0], 2):
                self.report.bad(str(file), "wrong shape", f"face_gaze {gaze.shape} and "
                                f"face_head_pose {pose.shape} must be [{shape[0]}, 2]")
                continue
            self.report.rows += len(gaze)
            both = np.concatenate([gaze, pose], axis=1)
            self.rows += [(file, row, gaze[row], pose[row])
                          for row in finite_rows(file, both, self.report,
                                                 "face_gaze / face_head_pose")]
        self.report.instances = len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def gaze_labels(self) -> np.ndarray:
        """[N, 2] pitch, yaw of every sample (project convention), without reading a face."""
        return from_ethxgaze(np.array([gaze for _, _, gaze, _ in self.rows]).reshape(-1, 2))

    def __getitem__(self, index: int) -> dict:
        file, row, gaze, pose = self.rows[index]
        face = np.ascontiguousarray(self.files(file)["face_patch"][row][:, :, ::-1])
        return face_sample(face, from_ethxgaze(gaze)[0], file.stem, index,
                           head_pose=from_ethxgaze(pose)[0])
