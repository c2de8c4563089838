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

from gazefollow.engine.samples import BadInput
from gazefollow.estimation.data.face_patch import FacePatchFiles

SPLIT_FILE = "train_test_split.json"


def train_subjects(root: str | Path) -> list[str]:
    """The ``train`` file names of ``train_test_split.json`` (the only labelled subjects)."""
    file = Path(root) / SPLIT_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no {SPLIT_FILE} in {root} (the ETH-XGaze release has one)")
    try:
        split = json.loads(file.read_text(encoding="utf-8-sig"))
    except ValueError as err:
        raise BadInput(f"{file}: not valid JSON: {err}") from None
    if not isinstance(split, dict) or not isinstance(split.get("train"), list):
        raise BadInput(f"{file}: expected a 'train' list of subject files")
    return [str(name) for name in split["train"]]


class ETHXGaze(FacePatchFiles):
    """The samples of the listed subject files (``subject0000.h5`` ...) in ``<root>/train``."""

    def __init__(self, root: str | Path, subjects: list[str], policy: str = "strict"):
        self.root = Path(root)
        super().__init__([self.root / "train" / name for name in subjects],
                         f"ethxgaze {self.root}", policy, channels="bgr", pose_required=True)
