"""GazeCapture and EYEDIAP as UniGaze's loaders read them: folders of per-subject ``.h5``
files in ETH-XGaze's layout (``face_patch.py``), the labels already normalised into the
project's convention.

- ``gazecapture``: ``<root>/train/*.h5`` and ``<root>/test/*.h5``, UniGaze's
  ``gazecapture_train_224`` and ``gazecapture_test`` folders (its ``data_path.yaml`` keys),
  one file per subject named by its id (``00002.h5``), RGB, no head pose needed. Train on
  ``train/`` (its last ``estimation.val_subjects`` files validate), test on ``test/``.
- ``eyediap``: ``<root>/person_N.h5``, UniGaze's ``eyediap_cs`` (screen target, persons 1-11
  and 14-16) or ``eyediap_ft`` (floating target, 1-16) folder, BGR. As UniGaze's configs
  split them: persons 1-8 train (the last ``estimation.val_subjects`` of them validate), the
  others test.

Neither folder can be made from the releases with public code: UniGaze publishes no
GazeCapture normalisation, and its EYEDIAP script writes one file per session
(``1_A_FT_S.h5``), the grouping into persons unpublished. These readers take the folders
as UniGaze's loaders read them.
"""
from __future__ import annotations

import re
from pathlib import Path

from gazefollow.estimation.data.face_patch import FacePatchFiles
from gazefollow.estimation.protocols import SubjectSplit, hold_out_last

EYEDIAP_TRAIN = range(1, 9)  # persons 1-8, as UniGaze's eyediap_*_train configs
PERSON = re.compile(r"person_(\d+)\.h5")


def _files(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    return sorted(p.name for p in folder.glob("*.h5"))


def gazecapture_split(root: str | Path, val_subjects: int) -> SubjectSplit:
    root = Path(root)
    train = tuple(f"train/{name}" for name in _files(root / "train"))
    test = tuple(f"test/{name}" for name in _files(root / "test"))
    return hold_out_last(train, val_subjects, test)


def eyediap_split(root: str | Path, val_subjects: int) -> SubjectSplit:
    persons = sorted((int(m[1]), name) for name in _files(Path(root))
                     if (m := PERSON.fullmatch(name)))
    train = tuple(name for number, name in persons if number in EYEDIAP_TRAIN)
    test = tuple(name for number, name in persons if number not in EYEDIAP_TRAIN)
    return hold_out_last(train, val_subjects, test)


class GazeCaptureH5(FacePatchFiles):
    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        super().__init__([Path(root) / name for name in subjects], f"gazecapture {root}",
                         policy, channels="rgb", pose_required=False)


class EyediapH5(FacePatchFiles):
    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        super().__init__([Path(root) / name for name in subjects], f"eyediap {root}",
                         policy, channels="bgr", pose_required=False)
