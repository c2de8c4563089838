"""The one (image, head box) -> model-input function, shared by the datasets, the predictor
and the tests: scene resize, head-position channel, enlarged face crop, normalisation."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gazefollow.engine.images import to_tensor
from gazefollow.following.data.heatmap import enlarge_box, head_channel


SCENE_RESIZES = ("pil", "antialias")


def scene_tensor(image: Image.Image, size: int, resize: str = "pil") -> torch.Tensor:
    """The scene as the model's input [3, S, S]: ``pil`` resizes the 8-bit image (PIL's
    bilinear filter), then normalises; ``antialias`` normalises the full image in float32,
    then resizes it (bilinear with antialiasing: torchvision's ToTensor, Normalize, Resize on
    a tensor, as Gaze-LLE prepares its input)."""
    if resize == "pil":
        return to_tensor(image.resize((size, size), Image.BILINEAR))
    full = to_tensor(image).unsqueeze(0)
    return F.interpolate(full, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def model_inputs(image: Image.Image, head_box: np.ndarray, input_size: int, face_size: int,
                 head_enlarge: float, scene_resize: str = "pil") -> dict:
    """An RGB image and one person's head box (pixels xyxy, inside the image) -> the encoder's
    inputs: ``image`` [3, S, S] (ImageNet-normalised, ``scene_tensor``), ``head_channel``
    [1, S, S], ``face`` [3, F, F] (the box enlarged by ``head_enlarge`` per side, clamped,
    resized) and ``head_box`` [4] (normalised xyxy)."""
    width, height = image.size
    face_box = enlarge_box(head_box, head_enlarge, width, height)
    face = image.crop(tuple(int(round(v)) for v in face_box))
    return {
        "image": scene_tensor(image, input_size, scene_resize),
        "head_channel": head_channel(head_box, width, height, input_size),
        "face": to_tensor(face.resize((face_size, face_size), Image.BILINEAR)),
        "head_box": torch.tensor(head_box / [width, height, width, height], dtype=torch.float32),
    }
