"""Normalized MPIIFaceGaze as the MobileNetV2 GazeNet recipe converts it
(``data.source_dataset: mpiifacegaze_pickle``): one folder per subject holding its faces as
PNG files (``0000.png`` ...) and a pickle ``labels.dict``:

    {"subject_id": "00", "images": [paths of the PNGs], "labels": [16-vectors]}

Each label is the ``.mat`` file's row (gaze pitch, yaw; head pose pitch, yaw; six landmarks),
so it is converted as ``mpiifacegaze.py`` converts it (``conventions.from_mpiifacegaze``). An
image path is used as stored when absolute, else read relative to the subject folder, else to
the root. Subjects are named ``p<subject_id>`` (``p00`` ... ``p14``) so that the protocols of
``protocols.py`` apply unchanged. A subject folder without ``labels.dict``, an unreadable
pickle, lists of different lengths, a label of the wrong length or with NaN, and a missing
image follow ``data.on_bad_input``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from gazefollow.engine.samples import BadInput, LoadReport
from gazefollow.engine.untrusted import UntrustedFileError, load_data_pickle
from gazefollow.estimation.conventions import from_mpiifacegaze
from gazefollow.estimation.data.mpiifacegaze import LABEL_WIDTH
from gazefollow.estimation.data.sample import face_sample

LABELS_FILE = "labels.dict"


def subject_folders(root: str | Path) -> dict[str, Path]:
    """{"p00": folder, ...}: every folder under ``root`` with a ``labels.dict``, by the
    folder's own name as ``p<two digits>`` (``00`` and ``p00`` both give ``p00``)."""
    folders = {}
    for folder in sorted(Path(root).iterdir()):
        digits = folder.name.lstrip("p")
        if folder.is_dir() and digits.isdigit():
            folders[f"p{int(digits):02d}"] = folder
    return folders


def _read_labels(file: Path, report: LoadReport) -> dict | None:
    if not file.is_file():
        report.bad(str(file), "missing subject file", "no such file")
        return None
    try:
        content = load_data_pickle(file, "subject file")
    except UntrustedFileError as err:  # never skipped: a planted payload is not a bad row
        raise BadInput(str(err)) from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        report.bad(str(file), "unreadable file", f"not a pickle: {err}")
        return None
    if not isinstance(content, dict) or not {"images", "labels"} <= set(content):
        report.bad(str(file), "missing key", "expected a dict with 'images' and 'labels'")
        return None
    sequences = (list, tuple, np.ndarray)
    if not (isinstance(content["images"], sequences)
            and isinstance(content["labels"], sequences)):
        report.bad(str(file), "malformed file", "'images' and 'labels' must be lists")
        return None
    if len(content["images"]) == 0:
        report.bad(str(file), "no faces", "the subject file lists no faces")
        return None
    if len(content["images"]) != len(content["labels"]):
        report.bad(str(file), "wrong shape", f"{len(content['images'])} images but "
                   f"{len(content['labels'])} labels")
        return None
    return content


class MPIIFaceGazePickle:
    """The samples of ``subjects`` (``p00`` ...) under ``root``, in subject order."""

    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        self.root = Path(root)
        self.report = LoadReport(source=f"mpiifacegaze_pickle {self.root}", policy=policy,
                                 unit="faces")
        folders = subject_folders(self.root) if self.root.is_dir() else {}
        self.rows: list[tuple[str, Path, np.ndarray]] = []  # (subject, image, label)
        for subject in subjects:
            folder = folders.get(subject, self.root / subject)
            content = _read_labels(folder / LABELS_FILE, self.report)
            if content is None:
                continue
            for number, (image, label) in enumerate(zip(content["images"], content["labels"])):
                self.report.rows += 1
                self._add(subject, folder, number, image, label)
        self.report.instances = len(self.rows)

    def _add(self, subject: str, folder: Path, number: int, image, label) -> None:
        where = f"{folder / LABELS_FILE}, sample {number}"
        try:
            label = np.asarray(label, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            self.report.bad(where, "malformed label", f"not numbers: {str(label)[:60]}")
            return
        if label.shape != (LABEL_WIDTH,):
            self.report.bad(where, "wrong shape", f"a label of {label.size} values, not "
                            f"{LABEL_WIDTH}")
            return
        if not np.isfinite(label).all():
            self.report.bad(where, "NaN label", "the label holds NaN/Inf")
            return
        path = Path(str(image))
        candidates = [path] if path.is_absolute() else [folder / path, self.root / path]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            self.report.bad(where, "missing image", f"no {image} under {folder} or {self.root}")
            return
        self.rows.append((subject, found, label))

    def __len__(self) -> int:
        return len(self.rows)

    def gaze_labels(self) -> np.ndarray:
        """[N, 2] pitch, yaw of every sample (project convention), without reading a face."""
        return from_mpiifacegaze(np.array([label[0:2] for _, _, label in self.rows]).reshape(-1, 2))

    def image_file(self, index: int) -> Path:
        return self.rows[index][1]

    def where(self, index: int) -> str:
        return str(self.image_file(index))

    def __getitem__(self, index: int) -> dict:
        subject, path, label = self.rows[index]
        with Image.open(path) as image:
            face = np.asarray(image.convert("RGB"))
        return face_sample(face, from_mpiifacegaze(label[0:2])[0], subject, index,
                           head_pose=from_mpiifacegaze(label[2:4])[0],
                           landmarks=label[4:16].reshape(6, 2))
