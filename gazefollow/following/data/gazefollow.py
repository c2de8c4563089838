"""GazeFollow (extended) annotation files; they also serve the synthetic world.

Train file: 17 comma-separated columns per row, one row per person. Test file: 16 columns (no
``inout``), one row per annotator; rows sharing ``(path, eye_x, eye_y)`` form one head instance.
Body box, eye and gaze are normalised; the head box is in pixels. ``inout == -1`` rows are
invalid in the release and are dropped (counted as a fix, not an error). A test row whose
last column is ``ambiguous`` (the synthetic world's ambiguous setting) marks its head so.

Gaze points: an in-frame train row (``inout`` 1) must have its point in [0, 1]; an
out-of-frame row's point is ignored (the release writes -1, -1). A test row's point is in
[0, 1], or negative for padding (ignored by the metrics); anything above 1 is refused, since
it is almost always a pixel coordinate written by mistake. Files are read as ``utf-8-sig``,
so a byte-order mark never becomes part of the first image path.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gazefollow.engine.samples import LoadReport
from gazefollow.following.data.instances import HeadInstance

TRAIN_COLUMNS = 17
TEST_COLUMNS = 16
AMBIGUOUS = "ambiguous"  # a test row's last column: the head's annotators split on purpose


def _parse_row(row: list[str], expected: int) -> tuple[dict | None, str, str]:
    """-> (fields, reason, detail); fields is None when the row is bad."""
    if len(row) != expected:
        return None, "wrong column count", f"expected {expected} columns, found {len(row)}"
    try:
        numbers = [float(v) for v in row[2:14]]
        inout = int(float(row[14])) if expected == TRAIN_COLUMNS else 1
    except ValueError as err:
        return None, "non-numeric field", str(err)
    if not np.all(np.isfinite(numbers)):
        return None, "NaN or infinite value", str(row[2:14])
    box = np.array(numbers[8:12])
    if box[0] == box[2] or box[1] == box[3] or (box < 0).all():
        return None, "impossible head box", str(box.tolist())
    if inout not in (-1, 0, 1):
        return None, "inout not in {-1, 0, 1}", str(inout)
    gaze = np.array(numbers[6:8])
    if expected == TRAIN_COLUMNS and inout == 1 and ((gaze < 0) | (gaze > 1)).any():
        return None, "in-frame gaze point outside [0, 1]", f"gaze {gaze.tolist()}"
    if expected == TEST_COLUMNS and (gaze > 1).any():
        return None, "gaze point above 1 (normalised coordinates expected)", \
            f"gaze {gaze.tolist()}"
    return {"path": row[0], "eye": (numbers[4], numbers[5]), "gaze": (numbers[6], numbers[7]),
            "box": box, "inout": inout,
            "ambiguous": expected == TEST_COLUMNS and row[-1].strip() == AMBIGUOUS}, "", ""


def read_annotations(path: str | Path, split: str,
                     policy: str = "strict") -> tuple[list[HeadInstance], LoadReport]:
    """Parse a GazeFollow annotation file into head instances (grouping test annotators).

    Bad rows raise (policy "strict") or are skipped and counted (policy "skip"); either way
    the message names the file, the 1-based row and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    expected = TRAIN_COLUMNS if split == "train" else TEST_COLUMNS
    report = LoadReport(source=str(path), policy=policy)
    groups: dict[tuple, HeadInstance] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            report.rows += 1
            item, reason, detail = _parse_row(row, expected)
            if item is None:
                report.bad(f"{path}, row {line}", reason, detail)
                continue
            if item["inout"] == -1:
                report.fixed["dropped inout=-1 row"] += 1
                continue
            box = item["box"]
            if box[0] > box[2] or box[1] > box[3]:
                report.fixed["swapped head box (min > max)"] += 1
            key = (item["path"], item["eye"]) if split != "train" else (line,)
            if key not in groups:
                groups[key] = HeadInstance(len(groups), item["path"], box, np.zeros((0, 2)),
                                           item["inout"], item["eye"],
                                           ambiguous=item["ambiguous"])
            instance = groups[key]
            instance.rows.append(line)
            gaze = np.array([item["gaze"]]) if item["inout"] == 1 else np.zeros((0, 2))
            instance.gaze_points = np.concatenate([instance.gaze_points, gaze])
    instances = list(groups.values())
    report.instances = len(instances)
    return instances, report
