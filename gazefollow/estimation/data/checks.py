"""The faces of a reader checked before training, as every task's images are: a reader of
image files has every file opened (its header; every pixel with ``data.verify_images``), a
reader of HDF5 arrays has every face read with ``data.verify_images`` (a damaged compressed
chunk is found then). A bad face is named by its file and row (strict) or counted and left
out (skip)."""
from __future__ import annotations

from tqdm import tqdm

from gazefollow.engine.images import image_size


def face_problem(reader, index: int, decode: bool) -> tuple[str, str] | None:
    if hasattr(reader, "image_file"):
        size, reason, detail = image_size(reader.image_file(index), decode)
        if size is None:
            return reason, detail.replace(f"{reader.image_file(index)}: ", "")
        if min(size) == 0:
            return "empty face", f"a {size[0]}x{size[1]} image"
        return None
    if decode:
        try:
            face = reader[index]["face"]
        except (OSError, ValueError, KeyError) as err:
            return "unreadable face", f"{type(err).__name__}: {err}"
        if min(face.shape[:2]) == 0:
            return "empty face", f"a {face.shape[1]}x{face.shape[0]} face"
    return None


def check_faces(reader, decode: bool) -> None:
    """Leave out (skip) or name (strict) every face of ``reader`` that cannot be read."""
    if not decode and not hasattr(reader, "image_file"):
        return  # arrays in an HDF5 file: their shapes were checked when the labels were read
    kept = []
    for index in tqdm(range(len(reader)), desc=f"checking faces ({reader.report.source})",
                      unit="face", leave=False, disable=not decode):
        problem = face_problem(reader, index, decode)
        if problem is None:
            kept.append(index)
        else:
            reader.report.bad(reader.where(index), *problem)
    if len(kept) < len(reader.rows):
        reader.rows = [reader.rows[index] for index in kept]
        reader.report.instances = len(reader.rows)
