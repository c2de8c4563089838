"""Predict where people look in your own images: ``GazePredictor``.

    from gazefollow.following.predict import GazePredictor
    predictor = GazePredictor.from_pretrained("outputs/synthetic-diffusion-x0/synthetic_cpu")
    people = predictor.predict(["photo.jpg"], [[(120, 40, 180, 110)]])  # pixel xyxy head boxes
    people[0][0].point_px, people[0][0].inout

Weights come from a run directory, a checkpoint directory or ``state.pt`` (EMA weights unless
``ema=False``), a folder written by ``save_pretrained`` (``model.safetensors`` +
``config.json``, the Hugging Face convention), or a published model's released file
(``following/published``). Every person goes through
``gazefollow.following.data.preprocess.model_inputs``, the function the datasets use, and the
head's own predictor with noise seeded by (seed, person id), so a call is deterministic. A
model with a depth branch (``model.depth_branch``) takes one depth map per image (``depths=``:
a path read as the datasets read it, or an H x W array), in the datasets' own processing too.
A Chong et al. model crops heads as their demo does (``PREDICTOR_HEAD_INPUTS``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gazefollow.engine.export import load_pretrained, save_exported
from gazefollow.engine.images import as_rgb_image  # noqa: F401  (part of this API)
from gazefollow.engine.runtime import eval_device
from gazefollow.engine.samples import BadInput
from gazefollow.following.data.depth import depth_channels, depth_image, read_depth
from gazefollow.following.data.instances import usable_box
from gazefollow.following.data.preprocess import model_inputs, scene_tensor
from gazefollow.following.hypotheses import cluster_points
from gazefollow.following.metrics import heatmap_argmaxes, upsample_heatmap

# Chong et al.'s demo crops the head as their dataset does, but rounds the crop box
PREDICTOR_HEAD_INPUTS = {"ours": "ours", "chong": "chong_demo"}


@dataclass
class Prediction:
    """One person's prediction in one image.

    ``heatmap`` [O, O] in [0, 1] scale (the mean of the samples when there are several);
    ``point`` (x, y) normalised to the image, ``point_px`` in its pixels; ``inout`` the
    in-frame probability; ``samples`` the K sampled heatmaps and ``sample_points`` their
    points (normalised); ``hypotheses`` those points merged within ``eval.hypothesis_radius``
    as [((x, y), share of the samples)], largest share first (empty for one sample)."""

    heatmap: np.ndarray
    point: tuple[float, float]
    point_px: tuple[float, float]
    inout: float
    head_box: tuple[float, float, float, float]  # pixels, xyxy, as used (clamped)
    samples: list[np.ndarray] = field(default_factory=list)
    sample_points: list[tuple[float, float]] = field(default_factory=list)
    hypotheses: list[tuple[tuple[float, float], float]] = field(default_factory=list)

    def heatmap_at(self, width: int, height: int) -> np.ndarray:
        """The heatmap resized to an image of ``width`` x ``height`` (bilinear, as the AUC
        protocol resizes it)."""
        return upsample_heatmap(self.heatmap, width, height)


def as_depth_image(depth, size: tuple[int, int], name: str) -> Image.Image:
    """A depth map for an image of ``size``: a path (``.png`` by bit depth, ``.npy`` by its
    range, as ``data.depth_suffix`` files are read) or an H x W array (8/16-bit integers by
    bit depth, floats by their range) -> the 8-bit grey image the datasets make."""
    if isinstance(depth, (str, Path)):
        return read_depth(Path(depth), size, name)
    return depth_image(np.asarray(depth), size, f"depth map of {name}")


def _flat_tracks(tracks: list | None, head_boxes: list) -> list | None:
    """One track id per person, in the order of the people (None: no tracks given)."""
    if tracks is None:
        return None
    if len(tracks) != len(head_boxes) or any(len(t) != len(b)
                                             for t, b in zip(tracks, head_boxes)):
        raise ValueError("tracks needs one list of track ids per image, one id per head box")
    return [track for image_tracks in tracks for track in image_tracks]


def checked_box(box, width: int, height: int, name: str) -> np.ndarray:
    """A pixel xyxy box clamped to the image; BadInput when it is empty inside it."""
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.shape != (4,) or not np.isfinite(values).all():
        raise BadInput(f"{name}: a head box is 4 finite pixel values x1, y1, x2, y2; got {box}")
    return usable_box(values, width, height, name)


# an export holds a frozen backbone's weights: they are not read again from where they came
EXPORT_OVERRIDES = ("model.backbone_weights=null",)


def following_registry():
    """The gaze-following task, and the released files of published models
    (``following/published``)."""
    from gazefollow.engine.task import Registry
    from gazefollow.following.published import load_published_for_eval
    from gazefollow.following.task import FOLLOWING
    return Registry({FOLLOWING.name: FOLLOWING}, published=load_published_for_eval)


def describe(config) -> list[str]:
    """The model card's lines about a gaze-following model."""
    data, model = config.data, config.model
    return [f"model: `{model.encoder}` encoder, `{model.head}` head; "
            f"{config.diffusion.prediction} prediction, sampled with {config.sampling.sampler} "
            f"{config.sampling.steps} step(s); {data.input_size} px scene, {data.output_size} "
            "px heatmap",
            "load with `GazePredictor.from_pretrained` (gazefollow/following/predict.py)"]


class GazePredictor:
    """Trained weights ready to predict (see the module docstring)."""

    def __init__(self, model, config, device, weights: str = "ema"):
        self.model, self.config, self.device = model.eval(), config, torch.device(device)
        self.weights = weights

    @classmethod
    def from_pretrained(cls, path: str | Path, device=None, ema: bool = True,
                        overrides: list = (), registry=None,
                        backbone_weights: str | None = None) -> GazePredictor:
        """A run directory, checkpoint directory, ``state.pt`` or exported folder, or a
        published model's released file (``following/published``: a Gaze-LLE decoder takes
        its DINOv2 as ``backbone_weights``); with ``registry=gazefollow.tasks.REGISTRY`` also
        a checkpoint of the original research code (``ckpt_*.pth``, described by
        ``overrides``)."""
        if backbone_weights is not None:
            overrides = [*overrides, f"model.backbone_weights={backbone_weights}"]
        model, config, weights = load_pretrained(
            path, registry or following_registry(), ema, overrides, EXPORT_OVERRIDES)
        device = device or eval_device(config)
        return cls(model.to(device), config, device, weights)

    def save_pretrained(self, directory: str | Path, overwrite: bool = False,
                        metrics: dict | None = None) -> Path:
        """Write ``model.safetensors`` (these weights), ``config.json`` and ``README.md``."""
        return save_exported(self.model, self.config, directory, following_registry(),
                             self.weights, overwrite, metrics, describe(self.config),
                             EXPORT_OVERRIDES)

    def _inputs(self, images, head_boxes, depths=None) -> tuple[list[dict], list[tuple]]:
        """Every person's model inputs, and (image index, person index, box, size) of each."""
        data = self.config.data
        if len(images) != len(head_boxes):
            raise ValueError(f"{len(images)} images but {len(head_boxes)} lists of head boxes")
        wants_depth = self.config.model.depth_branch
        if wants_depth and (depths is None or len(depths) != len(images)):
            raise ValueError("this model has a depth branch (model.depth_branch): give one "
                             f"depth map per image, depths=[...] ({len(images)} images)")
        inputs, where = [], []
        for i, (image, boxes) in enumerate(zip(images, head_boxes)):
            name = str(image) if isinstance(image, (str, Path)) else f"image {i}"
            rgb = as_rgb_image(image, name)
            extra = ({"depth": depth_channels(as_depth_image(depths[i], rgb.size, name),
                                              data.input_size)} if wants_depth else {})
            scene = scene_tensor(rgb, data.input_size, data.scene_resize) if boxes else None
            for j, box in enumerate(boxes):
                pixels = checked_box(box, *rgb.size, f"{name}, person {j}")
                inputs.append({**model_inputs(rgb, pixels, data.input_size, data.face_size,
                                              data.head_enlarge, data.scene_resize,
                                              PREDICTOR_HEAD_INPUTS[data.head_inputs], scene),
                               **extra})
                where.append((i, j, tuple(pixels.tolist()), rgb.size))
        return inputs, where

    @torch.no_grad()
    def predict(self, images, head_boxes, num_samples: int = 1, steps: int | None = None,
                seed: int = 0, sampler: str | None = None, person_ids: list[int] | None = None,
                depths: list | None = None, tracks: list | None = None) -> list[list[Prediction]]:
        """One ``Prediction`` per person per image, batched over people and images.

        ``images``: PIL images, HxWx3 RGB arrays or paths; ``head_boxes``: one list of pixel
        xyxy boxes per image. ``steps`` / ``sampler`` change the sampler for this call only.
        The noise of each person is seeded by (``seed``, its id): its position in the call,
        or ``person_ids`` (e.g. a dataset's sample ids, to reproduce its evaluation).
        ``depths``: one depth map per image, for a model with a depth branch only.
        ``tracks``: one list of track ids per image (the people's identities through a
        video, images in time order): a model with a state per track (``model.temporal:
        chong``) carries each one's state to its next frame, in this call and later ones
        (``forget_tracks`` starts anew); without them every person starts from a zero state.
        Other models ignore them."""
        inputs, where = self._inputs(images, head_boxes, depths)
        flat_tracks = _flat_tracks(tracks, head_boxes)
        if person_ids is not None and len(person_ids) != len(inputs):
            raise ValueError(f"{len(person_ids)} person ids for {len(inputs)} people")
        if num_samples > 1 and not self.model.head.stochastic:
            raise ValueError("num_samples > 1 needs a stochastic head (the diffusion head)")
        ids = list(range(len(inputs))) if person_ids is None else list(person_ids)
        sampling = replace(self.config.sampling, steps=steps or self.config.sampling.steps,
                           sampler=sampler or self.config.sampling.sampler)
        out: list[list[Prediction]] = [[] for _ in images]
        chunk = self.config.eval.batch_size
        for start in range(0, len(inputs), chunk):
            batch = {key: torch.stack([p[key] for p in inputs[start:start + chunk]])
                     .to(self.device) for key in inputs[0]}
            if flat_tracks is not None:
                batch["track"] = flat_tracks[start:start + chunk]
            people = self._predict_batch(batch, ids[start:start + chunk], seed, sampling,
                                         num_samples, where[start:start + chunk])
            for (image_index, _, _, _), person in zip(where[start:start + chunk], people):
                out[image_index].append(person)
        return out

    def forget_tracks(self) -> None:
        """Let every track's state go (a model with a state per track; see ``predict``)."""
        self.model.keep_streams([])

    def _predict_batch(self, batch, ids, seed, sampling, num_samples, where) -> list:
        cond = self.model.encode(batch)
        inout = torch.sigmoid(cond["inout_logit"].float()).cpu().numpy()
        draws = [self.model.head.predict(cond, ids, seed, sampling.steps, sampling,
                                         first_draw=k) for k in range(num_samples)]
        # the whole batch at once: mean of the draws, argmax points; then one record per person
        heatmaps = draws[0] if num_samples == 1 else np.mean(draws, axis=0)
        points = heatmap_argmaxes(heatmaps)
        sample_points = heatmap_argmaxes(np.stack(draws, axis=1)) if num_samples > 1 else None
        people, radius = [], self.config.eval.hypothesis_radius
        for i, (_, _, box, (width, height)) in enumerate(where):
            x, y = (float(v) for v in points[i])
            samples = [tuple(map(float, p)) for p in sample_points[i]] if num_samples > 1 else []
            people.append(Prediction(
                heatmap=heatmaps[i], point=(x, y), point_px=(x * width, y * height),
                inout=float(inout[i]), head_box=box,
                samples=[draw[i] for draw in draws] if num_samples > 1 else [],
                sample_points=samples,
                hypotheses=cluster_points(samples, radius) if samples else []))
        return people
