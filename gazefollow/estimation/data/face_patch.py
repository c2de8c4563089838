"""Per-subject HDF5 files in ETH-XGaze's layout, which UniGaze's normalised datasets share:
``face_patch`` uint8 [N, S, S, 3], ``face_gaze`` [N, 2] pitch and yaw in radians in the
project's convention (ETH-XGaze's), and ``face_head_pose`` [N, 2] where the file has it.
Channels are BGR (ETH-XGaze, and UniGaze's EYEDIAP) or RGB (UniGaze's GazeCapture).

Missing or unreadable files, missing keys, wrong shapes and NaN labels follow the policy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gazefollow.engine.samples import LoadReport
from gazefollow.estimation.conventions import from_ethxgaze
from gazefollow.estimation.data.h5files import SubjectFiles, finite_rows, read_subject
from gazefollow.estimation.data.sample import face_sample


class FacePatchFiles:
    """The samples of ``files`` in order; ``pose_required``: a file without
    ``face_head_pose`` is bad input (ETH-XGaze always has it)."""

    def __init__(self, files: list[Path], source: str, policy: str = "strict",
                 channels: str = "bgr", pose_required: bool = True):
        self.files, self.channels = SubjectFiles(), channels
        self.report = LoadReport(source=source, policy=policy, unit="faces")
        self.rows: list[tuple[Path, int, np.ndarray, np.ndarray | None]] = []
        pose_keys = ["face_head_pose"] if pose_required else []
        for file in files:
            read = read_subject(file, "face_patch", ["face_gaze", *pose_keys], self.report,
                                optional=() if pose_required else ("face_head_pose",))
            if read is not None:
                self._add(file, *read)
        self.report.instances = len(self.rows)

    def _add(self, file: Path, shape: tuple, labels: dict) -> None:
        gaze, pose = labels["face_gaze"], labels.get("face_head_pose")
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or shape[1] == 0:
            self.report.bad(str(file), "wrong shape", f"face_patch is {shape}, not [N, S, S, 3]")
            return
        if gaze.shape != (shape[0], 2) or (pose is not None and pose.shape != (shape[0], 2)):
            shown = f" and face_head_pose {pose.shape}" if pose is not None else ""
            self.report.bad(str(file), "wrong shape", f"face_gaze {gaze.shape}{shown} must be "
                            f"[{shape[0]}, 2]")
            return
        self.report.rows += len(gaze)
        both = gaze if pose is None else np.concatenate([gaze, pose], axis=1)
        keys = "face_gaze" if pose is None else "face_gaze / face_head_pose"
        self.rows += [(file, row, gaze[row], None if pose is None else pose[row])
                      for row in finite_rows(file, both, self.report, keys)]

    def __len__(self) -> int:
        return len(self.rows)

    def gaze_labels(self) -> np.ndarray:
        """[N, 2] pitch, yaw of every sample (project convention), without reading a face."""
        return from_ethxgaze(np.array([gaze for _, _, gaze, _ in self.rows]).reshape(-1, 2))

    def where(self, index: int) -> str:
        """The file and row of a sample, for messages."""
        file, row, _, _ = self.rows[index]
        return f"{file}, row {row}"

    def __getitem__(self, index: int) -> dict:
        file, row, gaze, pose = self.rows[index]
        face = self.files(file)["face_patch"][row]
        face = np.ascontiguousarray(face[:, :, ::-1] if self.channels == "bgr" else face)
        return face_sample(face, from_ethxgaze(gaze)[0], file.stem, index,
                           head_pose=None if pose is None else from_ethxgaze(pose)[0])
