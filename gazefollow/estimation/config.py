"""Gaze estimation's config section, ``estimation``: the estimator, the protocol (which
subjects train, validate and test), its augmentations and the joint mix. The face ResNet's
and the ViT's shapes are the shared backbones' ``model`` keys (model.face_layers, ...)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EstimationConfig:
    # gazenet (the MobileNetV2 recipe) | resnet (the face ResNet of model.face_layers / block /
    # face_inplanes / face_stem_pool: ResNet-18 or -50) | vit (model.vit_size) | geff |
    # vanilla_fusion
    estimator: str = "gazenet"
    geff_eye: str = "cnn"  # estimator geff / vanilla_fusion: the eye encoder, cnn | resnet
    geff_dim: int = 128  # estimator geff / vanilla_fusion: the fused feature width
    vit_freeze_blocks: int = 0  # estimator vit: freeze the patch embedding and the first N blocks
    gaze_loss: str = "l1"  # l1 (on pitch, yaw) | angular (radians between vectors)
    split_protocol: str = "loso"  # MPIIFaceGaze: loso (eval.fold) | unigaze (p00-p09 / p10-p14)
    val_subjects: int = 1  # training subjects held out for validation (0: none, no val split)
    augment_crop_share: float = 0.08  # the random crop: at most this share cut from each edge
    augment_erase: float = 0.0  # probability of a mask (a grey rectangle; GEFF's)
    label_fraction: float = 1.0  # a seeded share of the training faces is used
    # data.source_dataset joint (gazefollow/estimation/data/joint.py): the training mix
    # [{name, root, weight, split}], what is evaluated [{name, root, split}] (default: each
    # mixed dataset's test split), draws per epoch (0: the mix's size), dataset folders by
    # name, and a file of them (UniGaze's data_path.yaml)
    joint: list[dict[str, Any]] = field(default_factory=list)
    joint_test: list[dict[str, Any]] = field(default_factory=list)
    joint_leave_out: str = ""  # a dataset of the mix: trained without, tested on (cross-dataset)
    epoch_samples: int = 0
    paths: dict[str, str] = field(default_factory=dict)
    paths_file: str = ""

    CHOICES = {"estimator": ("gazenet", "resnet", "vit", "geff", "vanilla_fusion"),
               "geff_eye": ("cnn", "resnet"), "split_protocol": ("loso", "unigaze"),
               "gaze_loss": ("l1", "angular")}
    # where gazefollow kept these keys before 2026-12-05
    RENAMED = {**{f"model.{key}": key for key in
                  ("estimator", "geff_eye", "geff_dim", "vit_freeze_blocks")},
               **{f"data.{key}": key for key in
                  ("split_protocol", "val_subjects", "augment_crop_share", "augment_erase",
                   "label_fraction", "joint", "joint_test", "joint_leave_out", "epoch_samples",
                   "paths", "paths_file")},
               "loss.gaze_loss": "gaze_loss"}
