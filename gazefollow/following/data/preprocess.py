"""The one (image, head box) -> model-input function, shared by the datasets, the predictor
and the tests: scene resize, head-position channel, enlarged face crop, normalisation."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gazefollow.engine.images import ColorJitter, normalise, to_tensor
from gazefollow.following.data.heatmap import enlarge_box, head_channel


def _torch_resized(image: Image.Image, size: int) -> torch.Tensor:
    """8-bit [3, S, S]: torch's antialiased bilinear filter on the image's bytes."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None]
    return F.interpolate(pixels.contiguous(memory_format=torch.channels_last), size=(size, size),
                         mode="bilinear", antialias=True, align_corners=False)[0]


def resized_scene(image: Image.Image, size: int, resize: str = "pil") -> Image.Image:
    """The scene as 8-bit pixels at S x S: PIL's bilinear filter (``pil``), or torch's
    antialiased bilinear filter on the bytes (``torch``: the same filter, rounded differently:
    values differ from PIL's by one grey level at most, about 0.2% of them when a 640x480
    image is reduced, more when a small one is enlarged; about 5x faster)."""
    if resize != "torch":
        return image.resize((size, size), Image.BILINEAR)
    return Image.fromarray(_torch_resized(image, size).permute(1, 2, 0).numpy())


def scene_tensor(image: Image.Image, size: int, resize: str = "pil") -> torch.Tensor:
    """The scene as the model's input [3, S, S]: ``pil`` and ``torch`` resize the 8-bit image
    (``resized_scene``; ``torch`` stays a tensor), then normalise; ``antialias`` normalises
    the full image in float32, then resizes it (bilinear with antialiasing: torchvision's
    ToTensor, Normalize, Resize on a tensor, as Gaze-LLE prepares its input)."""
    if resize == "torch":
        return normalise(_torch_resized(image, size))
    if resize == "pil":
        return to_tensor(resized_scene(image, size, resize))
    full = to_tensor(image).unsqueeze(0)
    return F.interpolate(full, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def chong_box(box: np.ndarray, share: float) -> np.ndarray:
    """Chong et al.'s enlarged head box, in their code's order: x1 and y1 move out by
    ``share`` of the box, then x2 and y2 by ``share`` of the box already grown (so 10% to
    the left, 11% to the right); not clamped (their crop pads outside the image)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1 -= share * abs(x2 - x1)
    y1 -= share * abs(y2 - y1)
    x2 += share * abs(x2 - x1)
    y2 += share * abs(y2 - y1)
    return np.array([x1, y1, x2, y2])


def chong_head_channel(box: np.ndarray, width: int, height: int, size: int) -> torch.Tensor:
    """Their head channel [1, S, S]: the box scaled to S, truncated to integers, clipped to
    [0, S - 1], rows y1..y2-1 and columns x1..x2-1 set."""
    x1, y1, x2, y2 = np.clip((np.asarray(box) / [width, height, width, height] * size)
                             .astype(int), 0, size - 1)
    mask = torch.zeros(1, size, size)
    mask[:, y1:y2, x1:x2] = 1.0
    return mask


def _head_crop_and_channel(image: Image.Image, head_box: np.ndarray, input_size: int,
                           head_enlarge: float, head_inputs: str) -> tuple:
    width, height = image.size
    if head_inputs == "ours":
        face_box = enlarge_box(head_box, head_enlarge, width, height)
        crop = tuple(int(round(v)) for v in face_box)
        return image.crop(crop), head_channel(head_box, width, height, input_size)
    box = chong_box(head_box, head_enlarge)
    # their dataset crops at int() of the box; their demo hands PIL the floats (rounded)
    crop = tuple(int(v) for v in box) if head_inputs == "chong" else tuple(box.tolist())
    return image.crop(crop), chong_head_channel(box, width, height, input_size)


def model_inputs(image: Image.Image, head_box: np.ndarray, input_size: int, face_size: int,
                 head_enlarge: float, scene_resize: str = "pil", head_inputs: str = "ours",
                 scene: torch.Tensor | None = None, color: ColorJitter | None = None) -> dict:
    """An RGB image and one person's head box (pixels xyxy, inside the image) -> the encoder's
    inputs: ``image`` [3, S, S] (ImageNet-normalised, ``scene_tensor``), ``head_channel``
    [1, S, S], ``face`` [3, F, F] (with ``head_inputs="ours"`` the box enlarged by
    ``head_enlarge`` per side, clamped, resized; "chong" / "chong_demo": ``chong_box``) and
    ``head_box`` [4] (normalised xyxy, as given). ``scene``: the image's ``scene_tensor``
    when the caller already has it (the people of one image share it). ``color``: a training
    view's colour jitter, applied to the resized scene and face (the float ``antialias``
    resize takes the jittered whole image)."""
    width, height = image.size
    if color is not None and scene_resize == "antialias":
        image, color = color.apply(image), None
    crop, channel = _head_crop_and_channel(image, head_box, input_size, head_enlarge,
                                           head_inputs)
    face = crop.resize((face_size, face_size), Image.BILINEAR)
    if color is not None:
        # jittered after the resizes: two small pictures instead of the whole image, the
        # contrast of both towards the mean grey of the view (its resized scene)
        resized = color.brighten(resized_scene(image, input_size, scene_resize))
        mean = color.grey_mean(resized)
        scene, face = to_tensor(color.apply(resized, mean, brightened=True)), \
            color.apply(face, mean)
    elif scene is None:
        scene = scene_tensor(image, input_size, scene_resize)
    return {
        "image": scene,
        "head_channel": channel,
        "face": to_tensor(face),
        "head_box": torch.tensor(head_box / [width, height, width, height], dtype=torch.float32),
    }
