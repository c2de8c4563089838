"""The gaze-estimation dataset: a reader's sample dicts -> model inputs.

An item is a position, or (position, epoch) from the training sampler, as for gaze following:
the augmentations of a view are drawn from a generator seeded by (seed, epoch, sample id), so
they do not depend on workers, batch size or resumes.

Batch keys: ``face`` [3, S, S] (resized to ``data.face_size``, ImageNet-normalised), ``gaze``
[2] (pitch, yaw, radians), ``gaze_vector`` [3], ``head_pose`` [2] (NaN where none),
``eye_landmarks`` [6, 2] (normalised; NaN unless the six MPIIFaceGaze landmarks), ``subject``,
``index`` (the reader's sample id) and ``position`` (in this dataset). Landmarks stay in the
reader's sample (their count differs between datasets). A face that fails to load gives
``{"bad_input": message}`` in skip mode, as every task's datasets do (``engine/samples.py``),
and raises otherwise; the message names the file and row (``reader.where``).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from gazefollow.engine.images import to_tensor
from gazefollow.engine.samples import BAD_KEY, BadInput
from gazefollow.estimation.augment import FaceAugmentSettings, augment_face


def eye_landmarks(landmarks: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """[6, 2] MPIIFaceGaze-style landmarks normalised to [0, 1] of the face (width, height),
    for the eye crops of GEFF; NaN where the dataset has not these six."""
    if landmarks.shape != (6, 2):
        return torch.full((6, 2), float("nan"))
    return torch.from_numpy((landmarks / np.array(size, np.float32)).astype(np.float32))


class FaceDataset(Dataset):
    def __init__(self, reader, face_size: int, augment: FaceAugmentSettings | None = None,
                 on_bad_input: str = "strict", seed: int = 0):
        self.reader, self.face_size, self.augment = reader, face_size, augment
        self.on_bad_input, self.seed = on_bad_input, seed
        self.load_report = reader.report  # what reading the labels skipped, per reason

    def __len__(self) -> int:
        return len(self.reader)

    def gaze_labels(self) -> np.ndarray:
        return self.reader.gaze_labels()

    def __getitem__(self, item) -> dict:
        position, epoch = item if isinstance(item, tuple) else (item, 0)
        try:
            sample = self._read(position)
        except BadInput as err:
            if self.on_bad_input == "skip":
                return {BAD_KEY: str(err)}
            raise
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, sample["index"]])
            sample = augment_face(sample, rng, self.augment)
        face = Image.fromarray(sample["face"])
        eyes = eye_landmarks(sample["landmarks"], face.size)
        if face.size != (self.face_size, self.face_size):
            face = face.resize((self.face_size, self.face_size), Image.BILINEAR)
        return {"face": to_tensor(face), "gaze": torch.from_numpy(sample["gaze"]),
                "gaze_vector": torch.from_numpy(sample["gaze_vector"]),
                "head_pose": torch.from_numpy(sample["head_pose"]), "eye_landmarks": eyes,
                "subject": sample["subject"], "index": sample["index"], "position": position}

    def _read(self, position: int) -> dict:
        """The reader's sample; a face that cannot be read or decoded is one named BadInput."""
        try:
            return self.reader[position]
        except (OSError, ValueError, KeyError) as err:
            where = self.reader.where(position) if hasattr(self.reader, "where") else \
                f"{self.reader.report.source}, sample {position}"
            raise BadInput(f"{where}: cannot read the face: {err}") from None
