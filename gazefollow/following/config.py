"""Gaze following's own config keys: the ``data``, ``model`` and ``loss`` keys every
model of the task reads, and the synthetic world (``synthetic``). Its encoders, heads and the
shared backbones declare their keys next to their code; ``task.py`` lists them all."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class FollowingData:
    input_size: int = 224  # scene input (px)
    # pil: the 8-bit scene and face resized by PIL | torch: the same filter by torch on the
    # bytes, for the scene and (since 2026-12-06) the face, within one grey level of PIL's,
    # about 5x faster (a choice for new runs: a model is best evaluated with the resize it
    # was trained with) |
    # antialias: the scene normalised, then resized in float (torchvision's tensor Resize:
    # Gaze-LLE's preprocessing), the face by PIL
    scene_resize: str = "pil"
    output_size: int = 64  # heatmap (px)
    heatmap_sigma: float = 3.0  # Gaussian sigma at a 64 px heatmap; scaled to output_size
    head_enlarge: float = 0.1  # heads are enlarged by this share before cropping
    # ours: the crop enlarged on each side and clamped, the channel from the box itself |
    # chong: Chong et al.'s crop and head channel (data/preprocess.py)
    head_inputs: str = "ours"
    padding_threshold: float = 0.0  # test annotator points below this are padding
    # The original's annotator-outlier filter: keep the test annotator points whose distance
    # from their head's mean point is within this quantile of all such distances; 0 = off
    annotator_quantile: float = 0.0
    # Annotation files relative to dataset_dir; null = the dataset's release names
    # (GazeFollow: *_annotations_release.txt; GOO: goosynth_{train,test}.pickle).
    train_annotations: Optional[str] = None
    test_annotations: Optional[str] = None
    image_dir: str = ""  # image folder under dataset_dir (GOO file names; VAT: "" = images)
    frame_stride: int = 1  # VAT: keep every k-th frame of each train track (test: all frames)
    # A depth map per image for model.depth_branch: the image's path with its extension
    # replaced by this suffix (e.g. "_depth.png": 8/16-bit PNG; ".npy": float array); "" = none
    depth_suffix: str = ""
    train_in_frame_only: bool = False  # train on in-frame people only (the original w/o --x_loss)
    # [lo, hi]: each target's sigma drawn as an integer in [lo, hi] at train AND test (at 64 px),
    # the original's --random_flag ([7, 10]); [] = data.heatmap_sigma
    sigma_randint: list[int] = field(default_factory=list)
    # (data.augment switches the training augmentations on; the Chong et al. 2020 recipe)
    augment_box_jitter: float = 0.5  # probability of a head-box jitter
    augment_box_jitter_max: float = 0.2  # head-box expansion, share of its size per side
    val_fraction: float = 0.1  # share of train IMAGES held out for validation (seeded)

    CHOICES = {"scene_resize": ("pil", "torch", "antialias"), "head_inputs": ("ours", "chong")}
    RENAMED = {"data.gaze_point_threshold": "padding_threshold"}


@dataclass
class FollowingModel:
    encoder: str = "resnet_pair"  # a registered gaze encoder (gazefollow/following/encoders/)
    # heatmap head: diffusion | regression | gazelle (Gaze-LLE) | chong (Chong et al. 2020)
    head: str = "diffusion"
    # the scene ResNet of both encoders
    scene_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    scene_inplanes: int = 64
    # the face branch: resnet (the face ResNet: model.face_layers ...) | gazenet (GazeNet's
    # MobileNetV2 features, 256 wide) | vit (model.vit_size); an estimation run of the same
    # backbone starts it through run.init_weights
    face_backbone: str = "resnet"
    context_dim: int = 256  # width of the conditioning tokens (unet_context_vector)
    inout_hidden: int = 128
    inout_dropout: float = 0.0  # dropout before the in/out head's last layer (Gaze-LLE: 0.1)
    freeze_scene: bool = False
    freeze_face: bool = False
    freeze_attention: bool = False  # the head-position attention (original, chong encoders)

    CHOICES = {"head": ("diffusion", "regression", "gazelle", "chong")}
    RENAMED = {"model.decoder": "head", "model.attention_layout": None}


def frozen_parts(model_cfg) -> list[str]:
    """The encoder parts ``--freeze_scene`` / ``--freeze_face`` / ``model.freeze_attention``
    freeze."""
    return [part for part in ("scene", "face", "attention")
            if getattr(model_cfg, f"freeze_{part}")]


@dataclass
class FollowingLoss:
    inout_bce: bool = True  # the in/out BCE term
    inout_weight: float = 0.5
    heatmap_weight: float = 1.0  # the heatmap term's weight (the original's diffuion_weight)
    direction_weight: float = 1.0  # 1 - cos(predicted, true gaze direction), in-frame samples
    # The original's --other_loss: MSE between the soft-argmax of the predicted x_0 heatmap and
    # the gaze point (both normalised here), weighted by point_weight; with kl_div_loss (its
    # --kl_div_loss) a KL term between the two maps' softmaxes instead, weighted by kl_weight.
    other_loss: bool = False
    point_weight: float = 10000.0
    soft_argmax_beta: float = 100.0
    kl_div_loss: bool = False
    kl_weight: float = 10.0

    RENAMED = {"loss.x_loss": "inout_bce", "loss.x_loss_weight": "inout_weight"}


@dataclass
class FollowingEval:
    """Gaze following's ``eval`` keys (beside the engine's)."""

    # with eval.num_samples = K > 1: hypotheses within this distance (normalised) of an
    # annotator cover it; a one-pass head's K peaks are at least this far apart
    hypothesis_radius: float = 0.1


@dataclass
class SyntheticConfig:
    """The procedurally generated gaze world, written in GazeFollow format."""

    seed: int = 0
    num_train: int = 4000  # images in the train file (the validation split is carved from it)
    num_test: int = 300  # head instances in the test file
    width: int = 256
    height: int = 192
    annotators: int = 5  # annotator rows per test head
    out_of_frame_share: float = 0.2  # train people looking outside the image
    num_distractors: int = 4
    annotator_jitter: float = 0.015  # std of annotator points around the target, normalised
    depth_maps: bool = False  # also write <image>_depth.png (16-bit) for the depth branch
    # the ambiguous world: this share of people have 2 (or 3) candidate targets on their line
    # of sight; test annotators split between them in these proportions (near first), a
    # train row draws one candidate with them; marked "ambiguous" in the test file's last column
    ambiguous_share: float = 0.0
    ambiguous_split: list[float] = field(default_factory=lambda: [0.6, 0.4])
