"""VideoAttentionTarget annotations: one text file per person track.

Layout: ``annotations/{train,test}/<show>/<clip>/<person>.txt`` with rows
``frame_file, xmin, ymin, xmax, ymax, gazex, gazey`` (pixels, no header); frames live under
``images/<show>/<clip>/<frame_file>``. Each row is one head instance. As in the dataset's
reference code (Chong et al. 2020): ``gazex == gazey == -1`` is out of frame; a point with only
one negative coordinate is clamped to 0 and counts as in frame; head boxes are smoothed along
each track by an 11-frame moving average (edges padded with the first / last box), at train and
at test time. Gaze points stay in pixels here; the dataset divides by the frame size. A point
beyond the frame's width or height is refused when the frames' sizes are checked at load
time (``instances.check_images``). Files are read as ``utf-8-sig``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gazefollow.engine.samples import LoadReport
from gazefollow.following.data.instances import HeadInstance

COLUMNS = 7
SMOOTHING_WINDOW = 11  # frames; odd, centred on the frame


def smooth_track(values: np.ndarray, window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Centred moving average along axis 0, the ends padded by repeating the first/last row."""
    half = window // 2
    padded = np.pad(values, [(half, half)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, c], kernel, mode="valid")
                     for c in range(values.shape[1])], axis=1)


def _parse_row(row: list[str]) -> tuple[list | None, str, str]:
    """-> ([frame_file, box(4), gaze(2)], reason, detail); None when the row is bad."""
    if len(row) != COLUMNS:
        return None, "wrong column count", f"expected {COLUMNS} columns, found {len(row)}"
    try:
        numbers = np.array([float(v) for v in row[1:]])
    except ValueError as err:
        return None, "non-numeric field", str(err)
    if not np.isfinite(numbers).all():
        return None, "NaN or infinite value", str(row[1:])
    box = numbers[:4]
    if box[0] == box[2] or box[1] == box[3] or (box < 0).all():
        return None, "impossible head box", str(box.tolist())
    return [row[0].strip(), box, numbers[4:]], "", ""


def track_files(annotation_dir: Path) -> list[Path]:
    """Every ``<show>/<clip>/<person>.txt`` under the split's annotation folder, sorted."""
    if not annotation_dir.is_dir():
        raise FileNotFoundError(f"VideoAttentionTarget annotation folder not found: "
                                f"{annotation_dir} (expected annotations/<split>/<show>/<clip>/"
                                "<person>.txt)")
    files = sorted(annotation_dir.glob("*/*/*.txt"))
    if not files:
        raise FileNotFoundError(f"{annotation_dir} holds no <show>/<clip>/<person>.txt tracks")
    return files


def read_vat(annotation_dir: str | Path, image_dir: str = "images", policy: str = "strict",
             frame_stride: int = 1) -> tuple[list[HeadInstance], LoadReport]:
    """Parse every track under ``annotation_dir`` into head instances (one per kept frame).

    Bad rows are named by track file and 1-based row, and raise (``strict``) or are skipped and
    counted (``skip``) before smoothing, so a skipped row never shifts its neighbours' boxes.
    ``frame_stride`` keeps every k-th frame of each track (after smoothing over all of them).
    """
    annotation_dir = Path(annotation_dir)
    report = LoadReport(source=str(annotation_dir), policy=policy)
    instances: list[HeadInstance] = []
    for file in track_files(annotation_dir):
        show, clip = file.parent.parent.name, file.parent.name
        rows = []
        with file.open(newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not row:
                    continue
                report.rows += 1
                item, reason, detail = _parse_row(row)
                if item is None:
                    report.bad(f"{file}, row {line}", reason, detail)
                else:
                    rows.append((line, *item))
        if not rows:
            continue
        boxes = smooth_track(np.stack([r[2] for r in rows]))
        for position, ((line, frame, _, gaze), box) in enumerate(zip(rows, boxes)):
            if position % frame_stride:
                continue
            inout = 0 if gaze[0] == -1 and gaze[1] == -1 else 1
            if inout and (gaze < 0).any():
                report.fixed["half-negative gaze point clamped to 0"] += 1
            points = np.maximum(gaze, 0)[None] if inout else np.zeros((0, 2))
            instances.append(HeadInstance(
                index=len(instances), path=f"{image_dir}/{show}/{clip}/{frame}", head_box=box,
                gaze_points=points, inout=inout, rows=[f"{file}:{line}"], pixel_points=True))
    report.instances = len(instances)
    return instances, report
