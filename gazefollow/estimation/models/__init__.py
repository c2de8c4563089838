"""Gaze-estimation networks (face image -> pitch, yaw), chosen by ``estimation.estimator``.

Each network names its optimiser parts in ``trainable_parts()`` (``backbone`` and ``head``:
``optim.part_lr.backbone`` ...) and, when its backbone is our ResNet, the key prefix an
ImageNet ResNet file (``run.init_weights``) initialises in ``resnet_prefixes()``. A ResNet
estimator's ``backbone`` has the shape of the gaze-following face ResNet of the same
``model.face_layers`` / ``block`` / ``face_inplanes``, which is what lets its weights start
the face branch of gaze following (``run.init_weights`` of an estimation run).
"""
from __future__ import annotations

from torch import nn

from gazefollow.estimation.models.gazenet import GazeNet
from gazefollow.estimation.models.geff import HeadEyeFusion
from gazefollow.estimation.models.resnet_gaze import ResNetGaze
from gazefollow.estimation.models.vit import ViTGaze

ESTIMATION_PARTS = ("backbone", "head")


def _split_parts(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """backbone: the ``backbone`` module's trainable parameters; head: every other one."""
    backbone = {id(p) for p in model.backbone.parameters()}
    parameters = [p for p in model.parameters() if p.requires_grad]
    return {"backbone": [p for p in parameters if id(p) in backbone],
            "head": [p for p in parameters if id(p) not in backbone]}


class GazeNetEstimator(GazeNet):
    """The GazeNet recipe with the optimiser parts the training loop asks for."""

    trainable_parts = _split_parts

    def resnet_prefixes(self) -> dict[str, str]:
        return {}  # a MobileNetV2: ImageNet files load through gazenet.load_imagenet_backbone


class ResNetEstimator(ResNetGaze):
    trainable_parts = _split_parts

    def resnet_prefixes(self) -> dict[str, str]:
        return {"backbone": "backbone."}


class FusionEstimator(HeadEyeFusion):
    trainable_parts = _split_parts

    def resnet_prefixes(self) -> dict[str, str]:
        return {"backbone": "backbone."}


def estimate(model: nn.Module, batch: dict):
    """The model's pitch, yaw for a batch: the face, and the eye landmarks for a model that
    crops eyes (``uses_landmarks``; DDP- or compile-wrapped models are looked through)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    if getattr(inner, "uses_landmarks", False):
        return model(batch["face"], batch["eye_landmarks"].to(batch["face"].device))
    return model(batch["face"])


class ViTEstimator(ViTGaze):
    trainable_parts = _split_parts

    def resnet_prefixes(self) -> dict[str, str]:
        return {}  # MAE checkpoints load through run.init_weights (format mae)


def build_estimator(config) -> nn.Module:
    """``estimation.estimator``: ``gazenet`` (the recipe, 112 px), ``resnet`` (our ResNet
    shaped by ``model.face_layers``, ``block``, ``face_inplanes``, ``face_stem_pool``), ``vit``
    (``model.vit_size`` at ``data.face_size``, ``estimation.vit_freeze_blocks``), or ``geff``
    / ``vanilla_fusion`` (that ResNet on the face, an eye encoder, fused: ``geff.py``)."""
    model_cfg, estimator = config.model, config.estimation.estimator
    if estimator == "gazenet":
        return GazeNetEstimator()
    if estimator in ("geff", "vanilla_fusion"):
        return FusionEstimator(model_cfg, config.estimation,
                               "moderator" if estimator == "geff" else "concat")
    if estimator == "vit":
        return ViTEstimator(model_cfg.vit_size, config.data.face_size,
                            config.estimation.vit_freeze_blocks)
    return ResNetEstimator(model_cfg.face_layers, model_cfg.block, model_cfg.face_inplanes,
                           stem_pool=model_cfg.face_stem_pool)
