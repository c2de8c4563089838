"""What every dataset reader produces: head instances, and a report of what loading did.

Bad input follows ``data.on_bad_input``: "strict" raises at the first problem with the file,
row and reason; "skip" drops the row, counts it by reason and keeps the first examples, and
the report is printed when loading ends. Nothing is dropped silently either way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazefollow.engine.images import image_size
from gazefollow.engine.samples import BadInput, LoadReport


@dataclass
class HeadInstance:
    """One person in one image, with every annotator's gaze point (-1 = none / padding)."""

    index: int  # the sample id: position in the reader's instance order
    path: str  # image path relative to the dataset root
    head_box: np.ndarray  # pixels, xyxy, as annotated (before quirk fixes)
    gaze_points: np.ndarray  # [A, 2], normalised to [0, 1]
    inout: int  # 1 in frame, 0 out of frame
    eye: tuple[float, float] = (-1.0, -1.0)
    rows: list = field(default_factory=list)  # where it came from: line numbers or "file:line"
    box_basis: tuple[float, float] | None = None  # head box in pixels of this (W, H) basis
    pixel_points: bool = False  # gaze points in pixels of the image (VAT), not normalised
    ambiguous: bool = False  # marked so by its dataset (the synthetic world's ambiguous heads)


def fix_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Real-data quirks: swap min/max when reversed, clamp to the image."""
    x0, x1 = sorted((box[0], box[2]))
    y0, y1 = sorted((box[1], box[3]))
    return np.clip([x0, y0, x1, y1], 0, [width - 1, height - 1, width - 1, height - 1])


def usable_box(box: np.ndarray, width: int, height: int, where: str,
               shown=None) -> np.ndarray:
    """``fix_box``, and BadInput (naming ``where`` and the box as ``shown``, default ``box``)
    when nothing of it is left inside the image."""
    fixed = fix_box(box, width, height)
    if fixed[2] - fixed[0] < 1 or fixed[3] - fixed[1] < 1:
        shown = np.asarray(box if shown is None else shown).tolist()
        raise BadInput(f"{where}: head box {shown} is empty inside the {width}x{height} image")
    return fixed


def pixel_box(instance: HeadInstance, width: int, height: int) -> np.ndarray:
    """The annotated head box in this image's pixels (GOO's basis rescaled), before fixes."""
    box = np.asarray(instance.head_box, dtype=np.float64)
    if instance.box_basis is not None:  # e.g. GOO: pixels of a 640x480 basis
        basis_w, basis_h = instance.box_basis
        box = box * [width / basis_w, height / basis_h, width / basis_w, height / basis_h]
    return box


def _geometry_problem(instance: HeadInstance, box: np.ndarray, fixed: np.ndarray, width: int,
                      height: int) -> tuple[str, str] | None:
    """(reason, detail) when the head box (as annotated, in pixels, and after the quirk fixes)
    or the gaze points cannot be in this image."""
    if fixed[2] - fixed[0] < 1 or fixed[3] - fixed[1] < 1:
        return "head box empty inside the image", \
            f"head box {np.round(box, 2).tolist()} in a {width}x{height} image"
    points = np.asarray(instance.gaze_points, dtype=np.float64).reshape(-1, 2)
    if instance.pixel_points and instance.inout and (points > [width, height]).any():
        return "gaze point outside the image", \
            f"gaze {points.tolist()} in a {width}x{height} image"
    return None


def check_images(instances: list[HeadInstance], root: Path, report: LoadReport,
                 decode: bool = False, log=print) -> list[HeadInstance]:
    """Every image is opened before training (its header; with ``decode`` all of it, with a
    progress bar): missing, empty or unreadable images, head boxes empty inside their image
    and pixel gaze points beyond it follow the report's policy, and boxes clamped to the
    image are counted."""
    from tqdm import tqdm

    kept, sizes = [], {}
    progress = tqdm(instances, desc=f"decoding images ({report.source})", unit="sample",
                    leave=False, disable=not decode)
    for inst in progress:
        if inst.path not in sizes:
            sizes[inst.path] = image_size(root / inst.path, decode)
        size, reason, detail = sizes[inst.path]
        problem = (reason, detail)
        if size is not None:
            box = pixel_box(inst, *size)
            fixed = fix_box(box, *size)
            problem = _geometry_problem(inst, box, fixed, *size)
        if problem is not None:
            report.bad(f"{report.source}, rows {inst.rows}", *problem)
            continue
        ordered = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]),
                   max(box[1], box[3])]
        if not np.allclose(ordered, fixed):
            report.fixed["head box clamped to the image"] += 1
        kept.append(inst)
    report.instances = len(kept)
    return kept
