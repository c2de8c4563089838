"""Image helpers every task's readers share: the check of an image file before training,
ImageNet normalisation and colour jitter."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageStat

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


def pixels(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> its 8-bit pixels [3, H, W], contiguous."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> ImageNet-normalised float tensor [3, H, W], contiguous (``normalise``)."""
    return normalise(pixels(image))


@functools.lru_cache(maxsize=None)
def _imagenet_stats(device: torch.device) -> tuple[torch.Tensor, ...]:
    # kept per device: copying them from the host at every batch would wait on the device.
    # 255 is a tensor too: CUDA divides by a number as a product with its reciprocal, which
    # rounds differently from the host's division
    return (torch.tensor(255.0, device=device), IMAGENET_MEAN.to(device),
            IMAGENET_STD.to(device))


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """8-bit RGB [..., 3, H, W] on any device -> ImageNet-normalised float32, contiguous. The
    channels are made contiguous while the pixels are still bytes and the arithmetic runs in
    place: the same float32 operations as (x / 255 - mean) / std, element by element and as
    true divisions, so a batch normalised at once equals its samples normalised one by one on
    the host."""
    full, mean, std = _imagenet_stats(pixels.device)
    return pixels.contiguous().float().div_(full).sub_(mean).div_(std)


@dataclass(frozen=True)
class ColorJitter:
    """Brightness, contrast and saturation factors, drawn once per view and applied as PIL's
    ImageEnhance applies them, in that order, to any of the view's pictures."""

    brightness: float
    contrast: float
    saturation: float

    @classmethod
    def draw(cls, rng: np.random.Generator, spread: float) -> ColorJitter:
        """Three factors from [1 - spread, 1 + spread], in that order."""
        return cls(*(rng.uniform(1 - spread, 1 + spread) for _ in range(3)))

    def brighten(self, image: Image.Image) -> Image.Image:
        return ImageEnhance.Brightness(image).enhance(self.brightness)

    @staticmethod
    def grey_mean(image: Image.Image) -> int:
        """The grey level contrast blends towards: the mean of the picture's luminance."""
        return int(ImageStat.Stat(image.convert("L")).mean[0] + 0.5)

    def apply(self, image: Image.Image, grey_mean: int | None = None,
              brightened: bool = False) -> Image.Image:
        """The jittered RGB picture. Contrast blends towards ``grey_mean`` when given (the
        whole view's, for a crop of it), else towards the picture's own mean after the
        brightness; ``brightened``: the brightness factor is already applied."""
        image = image if brightened else self.brighten(image)
        mean = self.grey_mean(image) if grey_mean is None else grey_mean
        image = Image.blend(Image.new("RGB", image.size, (mean,) * 3), image, self.contrast)
        return ImageEnhance.Color(image).enhance(self.saturation)


def color_jitter(image: Image.Image, rng: np.random.Generator, spread: float) -> Image.Image:
    """``image`` with brightness, contrast and saturation jittered (``ColorJitter``)."""
    return ColorJitter.draw(rng, spread).apply(image)


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
