"""The one (image, head box) -> model-input function, shared by the datasets, the predictor
and the tests: scene resize, head-position channel, enlarged face crop, as 8-bit pixels
(``GazeModel.encode`` normalises them on the model's device)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gazefollow.engine.images import ColorJitter, pixels, to_tensor
from gazefollow.following.data.heatmap import enlarge_box, head_channel


def _torch_resized(array: np.ndarray, size: int) -> torch.Tensor:
    """8-bit [H, W, 3] -> 8-bit [3, S, S], contiguous: torch's antialiased bilinear filter."""
    channels_first = torch.from_numpy(array).permute(2, 0, 1)[None]
    return F.interpolate(channels_first.contiguous(memory_format=torch.channels_last),
                         size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].contiguous()


def as_picture(channels_first: torch.Tensor) -> Image.Image:
    """8-bit [3, H, W] -> a PIL RGB image."""
    return Image.fromarray(channels_first.permute(1, 2, 0).contiguous().numpy())


def resized_scene(image: Image.Image, size: int, resize: str = "pil",
                  array: np.ndarray | None = None) -> Image.Image:
    """The scene as 8-bit pixels at S x S: PIL's bilinear filter (``pil``), or torch's
    antialiased bilinear filter on the bytes (``torch``: the same filter, rounded differently:
    values differ from PIL's by one grey level at most, about 0.2% of them when a 640x480
    image is reduced, more when a small one is enlarged; about 5x faster). ``array``: the
    image's bytes, when the caller has them."""
    if resize != "torch":
        return image.resize((size, size), Image.BILINEAR)
    return as_picture(_torch_resized(np.array(image) if array is None else array, size))


def _pil_face(image: Image.Image, window: tuple, size: int) -> Image.Image:
    return image.crop(window).resize((size, size), Image.BILINEAR)


def resized_face(image: Image.Image, window: tuple, size: int, resize: str = "pil",
                 array: np.ndarray | None = None) -> torch.Tensor:
    """The face: the integer ``window`` (xyxy; black outside the image, as PIL crops) as 8-bit
    [3, F, F], by PIL's bilinear filter, or with ``resize="torch"`` by torch's (within one grey
    level of PIL's), cut from ``array`` (the image's bytes, when the caller has them) without
    a copy."""
    if resize != "torch":
        return pixels(_pil_face(image, window, size))
    x0, y0, x1, y1 = window
    if x1 <= x0 or y1 <= y0:  # an empty window: PIL's black face (torch has no empty resize)
        return pixels(_pil_face(image, window, size))
    inside = 0 <= x0 and x1 <= image.size[0] and 0 <= y0 and y1 <= image.size[1]
    if array is None or not inside:
        return _torch_resized(np.array(image.crop(window)), size)
    return _torch_resized(array[y0:y1, x0:x1], size)


def scene_tensor(image: Image.Image, size: int, resize: str = "pil",
                 array: np.ndarray | None = None) -> torch.Tensor:
    """The scene input [3, S, S]: ``pil`` and ``torch`` give the resized image's 8-bit pixels
    (``resized_scene``; ``torch`` stays a tensor, from ``array`` when given), which the model
    normalises on its device (``GazeModel.encode``); ``antialias`` normalises the full image
    in float32, then resizes it (bilinear with antialiasing: torchvision's ToTensor,
    Normalize, Resize on a tensor, as Gaze-LLE prepares its input)."""
    if resize == "torch":
        return _torch_resized(np.array(image) if array is None else array, size)
    if resize == "pil":
        return pixels(resized_scene(image, size, resize))
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


def _face_window_and_channel(image: Image.Image, head_box: np.ndarray, input_size: int,
                             head_enlarge: float, head_inputs: str, mirrored: bool) -> tuple:
    """(the face's integer crop window in ``image``, the head channel)."""
    width, height = image.size
    if head_inputs == "ours":
        face_box = enlarge_box(head_box, head_enlarge, width, height)
        window = tuple(int(round(v)) for v in face_box)
        channel = head_channel(head_box, width, height, input_size)
    else:
        box = chong_box(head_box, head_enlarge)
        # their dataset crops at int() of the box; their demo hands PIL the floats, which
        # PIL rounds
        window = tuple(int(v) if head_inputs == "chong" else int(round(v)) for v in box)
        channel = chong_head_channel(box, width, height, input_size)
    if mirrored:  # the same window of the mirrored image, found in the image itself
        window = (width - window[2], window[1], width - window[0], window[3])
    return window, channel


def _jittered(color: ColorJitter, scene: Image.Image, face: Image.Image) -> tuple:
    """The resized scene and face jittered (two small pictures instead of the whole image),
    the contrast of both towards the mean grey of the view (its resized scene). They are
    jittered as one picture, the face below the scene: every step of the jitter acts pixel by
    pixel (given the mean grey), so each comes out as if jittered alone (tested), with half
    the calls."""
    both = Image.new("RGB", (max(scene.width, face.width), scene.height + face.height))
    both.paste(scene, (0, 0))
    both.paste(face, (0, scene.height))
    both = color.brighten(both)
    mean = color.grey_mean(both.crop((0, 0, scene.width, scene.height)))
    both = pixels(color.apply(both, mean, brightened=True))
    return both[:, :scene.height, :scene.width], both[:, scene.height:, :face.width]


def model_inputs(image: Image.Image, head_box: np.ndarray, input_size: int, face_size: int,
                 head_enlarge: float, scene_resize: str = "pil", head_inputs: str = "ours",
                 scene: torch.Tensor | None = None, color: ColorJitter | None = None,
                 mirrored: bool = False) -> dict:
    """An RGB image and one person's head box (pixels xyxy, inside the image) -> the encoder's
    inputs: ``image`` [3, S, S] (``scene_tensor``: 8-bit pixels, or normalised floats with
    ``antialias``), ``head_channel`` [1, S, S], ``face`` [3, F, F] (8-bit pixels,
    ``resized_face``; with ``head_inputs="ours"`` the box enlarged by ``head_enlarge`` per
    side, clamped; "chong" / "chong_demo": ``chong_box``) and ``head_box`` [4] (normalised
    xyxy, as given). ``GazeModel.encode`` normalises 8-bit pictures on the model's device: a
    batch of bytes is a quarter of the floats to stack and to copy to a GPU.

    ``scene``: the image's ``scene_tensor`` when the caller already has it (the people of one
    image share it). ``color``: a training view's colour jitter, applied to the resized scene
    and face. ``mirrored``: the view is the left-right mirror of ``image`` (``head_box`` is in
    the view's pixels); the scene and face are mirrored after their resizes, which gives the
    same bytes as resizing the mirrored image (the filters are symmetric; tested) without
    copying the whole image once more. The float ``antialias`` resize takes the mirrored and
    jittered whole image."""
    width, height = image.size
    if scene_resize == "antialias" and (color is not None or mirrored):
        image = image.transpose(Image.FLIP_LEFT_RIGHT) if mirrored else image
        image, color, mirrored = color.apply(image) if color else image, None, False
    window, channel = _face_window_and_channel(image, head_box, input_size, head_enlarge,
                                               head_inputs, mirrored)
    # torch resizes the scene and the face from one copy of the bytes
    array = np.array(image) if scene_resize == "torch" and scene is None else None
    if color is not None:  # jittered as pictures
        face = (as_picture(resized_face(image, window, face_size, "torch", array))
                if array is not None else _pil_face(image, window, face_size))
        scene, face = _jittered(color, resized_scene(image, input_size, scene_resize, array),
                                face)
    else:
        face = resized_face(image, window, face_size, scene_resize, array)
        if scene is None:
            scene = scene_tensor(image, input_size, scene_resize, array)
    if mirrored:
        scene, face = scene.flip(-1), face.flip(-1)
    return {
        "image": scene,
        "head_channel": channel,
        "face": face,
        "head_box": torch.tensor(head_box / [width, height, width, height], dtype=torch.float32),
    }
