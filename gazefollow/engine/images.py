"""Image helpers every task's readers share: ImageNet normalisation and colour jitter."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageEnhance

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)


IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> ImageNet-normalised float tensor [3, H, W]."""
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - IMAGENET_MEAN) / IMAGENET_STD


def color_jitter(image: Image.Image, rng: np.random.Generator, spread: float) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(1 - spread, 1 + spread))
    return image
