"""GOO-Synth / GOO-Real annotations: a pickle holding a list of dicts.

Used keys: ``filename`` (may use ``\\`` separators), ``width``, ``height``, ``gaze_cx``,
``gaze_cy`` (gaze point) and ``hx``, ``hy`` (head point), in pixels of a 640x480 basis. There is
no head box: it is built as head point +- 0.15 W (x) and +- 0.15 H (y) of that basis. Every
target is in frame; GOO is evaluated with the GazeFollow protocol (one annotator per head), so
a gaze point outside the 640x480 basis is refused.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np

from gazefollow.engine.samples import BadInput, LoadReport
from gazefollow.engine.untrusted import UntrustedFileError, load_data_pickle
from gazefollow.following.data.instances import HeadInstance

BASIS_W, BASIS_H = 640.0, 480.0
HEAD_HALF_SIZE = 0.15  # of the basis width (x) and height (y)
REQUIRED = ("filename", "gaze_cx", "gaze_cy", "hx", "hy")

# GOO's layouts, looked for in this order under data.dataset_dir: split -> (annotation pickle,
# the folder its file names are relative to). GOO-Synth as released (the pickles and image
# folders of the GOO authors' training commands), then the layout of synthetic GOO worlds
# written by earlier gazefollow versions.
GOO_LAYOUTS = {
    "GOO-Synth release": {"train": ("picklefiles/trainpickle2to19human.pickle",
                                    "1person/GazeDatasets"),
                          "test": ("picklefiles/testpickle120.pickle", "test")},
    # GOO-Real as released on Zenodo since December 2021 (its download notes: the pickles'
    # names end in "New"), then the earlier release's names and image folder
    "GOO-Real release": {"train": ("oneshotrealhumansNew.pickle", "finalrealdatasetImgsV3"),
                         "test": ("testrealhumansNew.pickle", "finalrealdatasetImgsV3")},
    "GOO-Real earlier release": {"train": ("oneshotrealhumans.pickle", "finalrealdatasetImgsV2"),
                                 "test": ("testrealhumans.pickle", "finalrealdatasetImgsV2")},
    "earlier gazefollow synthetic GOO": {"train": ("goosynth_train.pickle", ""),
                                         "test": ("goosynth_test.pickle", "")},
}


def goo_head_box(hx: float, hy: float) -> np.ndarray:
    """Head box (pixels, xyxy, on the 640x480 basis) around the annotated head point."""
    dx, dy = HEAD_HALF_SIZE * BASIS_W, HEAD_HALF_SIZE * BASIS_H
    return np.array([hx - dx, hy - dy, hx + dx, hy + dy])


def read_goo(path: str | Path, image_dir: str = "",
             policy: str = "strict") -> tuple[list[HeadInstance], LoadReport]:
    """Parse a GOO pickle into head instances; entries are numbered from 0 in the messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GOO annotation pickle not found: {path}")
    try:
        entries = load_data_pickle(path, "GOO annotation pickle")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        if isinstance(err, UntrustedFileError):
            raise BadInput(str(err)) from None
        raise BadInput(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
    if not isinstance(entries, list):
        raise BadInput(f"{path}: expected a list of dicts, found {type(entries).__name__}")
    report = LoadReport(source=str(path), policy=policy)
    instances = []
    for number, entry in enumerate(entries):
        report.rows += 1
        where = f"{path}, entry {number}"
        missing = [k for k in REQUIRED if not isinstance(entry, dict) or k not in entry]
        if missing:
            report.bad(where, "missing keys", str(missing))
            continue
        values = [entry[k] for k in REQUIRED[1:]]
        try:
            gx, gy, hx, hy = (float(v) for v in values)
        except (TypeError, ValueError):
            report.bad(where, "non-numeric field", str(values))
            continue
        if not all(math.isfinite(v) for v in (gx, gy, hx, hy)):
            report.bad(where, "NaN or infinite value", str(values))
            continue
        if not (0 <= gx <= BASIS_W and 0 <= gy <= BASIS_H):
            report.bad(where, "gaze point outside the 640x480 basis", f"gaze ({gx}, {gy})")
            continue
        file = str(Path(image_dir) / str(entry["filename"]).replace("\\", "/"))
        instances.append(HeadInstance(
            index=len(instances), path=file, head_box=goo_head_box(hx, hy),
            gaze_points=np.array([[gx / BASIS_W, gy / BASIS_H]]), inout=1,
            eye=(hx / BASIS_W, hy / BASIS_H), rows=[number], box_basis=(BASIS_W, BASIS_H)))
    report.instances = len(instances)
    return instances, report
