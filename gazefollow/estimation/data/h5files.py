"""Per-subject HDF5 files (normalized MPIIFaceGaze ``pXX.mat``, ETH-XGaze ``subjectXXXX.h5``):
labels read and checked once, faces read per sample through one handle per file and process.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from gazefollow.engine.samples import LoadReport


def read_subject(file: Path, image_key: str, label_keys: list[str], report: LoadReport,
                 optional: tuple[str, ...] = ()) -> tuple[tuple, dict] | None:
    """(the face array's shape, {label key: array}) of one subject file, or None after
    ``report.bad`` names what is wrong: a missing or unreadable file, or missing keys. The
    ``optional`` keys are read where the file has them."""
    if not file.is_file():
        report.bad(str(file), "missing subject file", "no such file")
        return None
    try:
        with h5py.File(file, "r") as h5:
            missing = [key for key in (image_key, *label_keys) if key not in h5]
            if missing:
                report.bad(str(file), "missing key", f"no {', '.join(missing)} in the file")
                return None
            if h5[image_key].dtype != np.uint8:
                report.bad(str(file), "wrong shape", f"{image_key} is {h5[image_key].dtype}, "
                           "not uint8")
                return None
            present = [*label_keys, *(key for key in optional if key in h5)]
            not_numbers = [key for key in present
                           if not np.issubdtype(h5[key].dtype, np.number)]
            if not_numbers:
                report.bad(str(file), "malformed label", f"{', '.join(not_numbers)} holds "
                           f"{h5[not_numbers[0]].dtype}, not numbers")
                return None
            if h5[image_key].shape[:1] == (0,):
                report.bad(str(file), "no faces", f"{image_key} holds 0 faces")
                return None
            return h5[image_key].shape, {key: h5[key][()] for key in present}
    except OSError as err:
        report.bad(str(file), "unreadable file", f"not an HDF5 file: {err}")
        return None


def finite_rows(file: Path, labels: np.ndarray, report: LoadReport, key: str) -> list[int]:
    """The rows of ``labels`` [N, K] without NaN/Inf; each other row is reported bad."""
    rows = []
    for row, values in enumerate(labels):
        if np.isfinite(values).all():
            rows.append(row)
        else:
            report.bad(f"{file}, sample {row}", "NaN label", f"{key} row {row} holds NaN/Inf")
    return rows


class SubjectFiles:
    """Lazily opened read handles, one per file and process (h5py handles do not survive a
    fork, so a pickled copy, as a worker gets, starts without any)."""

    def __init__(self):
        self._open: dict[Path, h5py.File] = {}

    def __call__(self, file: Path) -> h5py.File:
        if file not in self._open:
            self._open[file] = h5py.File(file, "r")
        return self._open[file]

    def __getstate__(self) -> dict:
        return {"_open": {}}
