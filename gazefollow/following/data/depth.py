"""Depth maps for the original model's depth branch (``model.depth_branch``).

A depth map lies beside its image: the image's path with the extension replaced by
``data.depth_suffix`` (``scene.jpg`` + ``_depth.png`` -> ``scene_depth.png``). PNG maps are
read at their bit depth (8-bit / 255, 16-bit / 65535); ``.npy`` maps hold any float unit and
are scaled to [0, 1] by their own minimum and maximum. A map of another size than its image is
resized to it. The model sees the map as the original research code did: quantised to 8 bits
and coloured with the magma colour map (3 channels in [0, 1]).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from gazefollow.engine.samples import BadInput


def depth_path(image_path: Path, suffix: str) -> Path:
    return image_path.with_name(image_path.stem + suffix)


def read_depth(file: Path, size: tuple[int, int], rows) -> Image.Image:
    """The depth map of an image of ``size`` (width, height) as an 8-bit grey image of that
    size; BadInput names the file and the annotation rows when it is missing or unusable."""
    where = f"depth map {file} (annotation rows {rows})"
    if not file.is_file():
        raise BadInput(f"{where}: no such file (data.depth_suffix names it)")
    try:
        if file.suffix == ".npy":  # any float unit: scaled by its own range
            depth = np.load(file).astype(np.float64)
        else:  # PNG: by its bit depth
            depth = cv2.imread(str(file), cv2.IMREAD_ANYDEPTH)
            if depth is None:
                raise ValueError("cannot decode it")
    except (OSError, ValueError) as err:
        raise BadInput(f"{where}: {err}") from None
    return depth_image(depth, size, where)


def depth_image(depth: np.ndarray, size: tuple[int, int], where: str) -> Image.Image:
    """A depth array -> an 8-bit grey image of ``size``: 8- and 16-bit integers by their bit
    depth, floats by their own minimum and maximum."""
    if depth.ndim != 2 or not np.isfinite(depth).all():
        raise BadInput(f"{where}: a depth map is one finite channel, got shape "
                       f"{depth.shape}{'' if np.isfinite(depth).all() else ' with NaN/Inf'}")
    if depth.dtype in (np.uint8, np.uint16):
        depth = depth.astype(np.float64) / (65535.0 if depth.dtype == np.uint16 else 255.0)
    else:
        depth = depth.astype(np.float64)
        low, high = depth.min(), depth.max()
        depth = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
    grey = Image.fromarray(np.round(np.clip(depth, 0, 1) * 255).astype(np.uint8), mode="L")
    return grey if grey.size == size else grey.resize(size, Image.BILINEAR)


def depth_channels(depth: Image.Image, size: int) -> torch.Tensor:
    """An 8-bit depth image -> the magma-coloured input [3, size, size] in [0, 1]."""
    grey = np.asarray(depth.resize((size, size), Image.BILINEAR))
    bgr = cv2.applyColorMap(grey, cv2.COLORMAP_MAGMA)
    return torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0
