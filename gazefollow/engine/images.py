"""Image helpers every task's readers share: the check of an image file before training,
ImageNet normalisation and colour jitter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from gazefollow.engine.samples import BadInput

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)


IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def image_size(file: Path, decode: bool) -> tuple[tuple[int, int] | None, str, str]:
    """-> ((width, height) or None, reason, detail): the header is read (and with ``decode``
    the whole image), so missing, empty and undecodable files are found before training."""
    file = Path(file)
    if not file.is_file():
        return None, "missing image", str(file)
    if file.stat().st_size == 0:
        return None, "empty (0-byte) image", str(file)
    try:
        with Image.open(file) as image:
            if decode:
                image.load()
            return image.size, "", ""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return None, "unreadable image", f"{file}: {err}"


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> ImageNet-normalised float tensor [3, H, W], contiguous. The channels are
    moved while the pixels are still bytes and the arithmetic runs in place: the same
    float32 operations as (x / 255 - mean) / std, without the float64 copy and three
    temporaries (several times faster per image)."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    return pixels.float().div_(255.0).sub_(IMAGENET_MEAN).div_(IMAGENET_STD)


def color_jitter(image: Image.Image, rng: np.random.Generator, spread: float) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(1 - spread, 1 + spread))
    return image


def as_rgb_image(image, name: str = "image") -> Image.Image:
    """A PIL image, an HxWx3 RGB array (any memory layout) or a path -> an RGB PIL image;
    BadInput names what could not be read."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise BadInput(f"{name}: an array image must be H x W x 3 RGB, got {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    try:
        with Image.open(image) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError) as err:
        raise BadInput(f"cannot read image {image}: {err}") from None
