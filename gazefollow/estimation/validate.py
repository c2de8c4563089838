"""The gaze-estimation task's own configuration checks (the engine's run first)."""
from __future__ import annotations

from gazefollow.backbones.vit import VIT_SIZES
from gazefollow.config import Config
from gazefollow.config.validation import check as _check
from gazefollow.config.validation import check_layer_decay, validate_part_tables
from gazefollow.estimation.models import ESTIMATION_PARTS

# the datasets gaze estimation (and its label-free pretraining) reads; "joint" mixes the others
ESTIMATION_SOURCES = ("synthetic_faces", "mpiifacegaze", "mpiifacegaze_pickle", "ethxgaze",
                      "gaze360", "columbia", "gazecapture", "eyediap", "joint")


def _validate_joint(config: Config) -> None:
    """The joint mix's entries: known datasets, positive weights, known splits."""
    estimation = config.estimation
    _check(config.data.source_dataset != "joint" or estimation.joint, "data.source_dataset="
           "joint needs estimation.joint: [{name, root, weight, split}, ...]")
    _check(estimation.epoch_samples >= 0, "estimation.epoch_samples must be >= 0")
    names = [entry.get("name") for entry in estimation.joint]
    left_out = estimation.joint_leave_out
    _check(not left_out or (left_out in names and len(names) > 1),
           f"estimation.joint_leave_out={left_out} must name one of the mix {names}, which "
           "must hold another dataset to train on")
    for key in ("joint", "joint_test"):
        for number, entry in enumerate(getattr(estimation, key)):
            where = f"estimation.{key}[{number}]"
            unknown = sorted(set(entry) - {"name", "root", "weight", "split"})
            _check(not unknown, f"{where}: unknown keys {unknown} (name, root, weight, split)")
            _check(entry.get("name") in ESTIMATION_SOURCES[:-1], f"{where}: name must be one "
                   f"of {list(ESTIMATION_SOURCES[:-1])}, not {entry.get('name')}")
            _check(float(entry.get("weight", 1.0)) > 0, f"{where}: weight must be > 0")
            _check(entry.get("split", "train") in ("train", "val", "test"),
                   f"{where}: split must be train, val or test")


def _validate_vit(config: Config) -> None:
    """The ViT estimator's keys; layer-wise decay needs a model that numbers its layers."""
    model, face_size = config.model, config.data.face_size
    if config.estimation.estimator != "vit":
        return
    patch, _, layers, _, _ = VIT_SIZES[model.vit_size]
    _check(face_size % patch == 0, f"model.vit_size={model.vit_size} cuts faces into {patch} "
           f"px patches: data.face_size={face_size} is not a multiple of {patch}")
    _check(0 <= config.estimation.vit_freeze_blocks <= layers, "estimation.vit_freeze_blocks "
           f"must be in 0..{layers} (the blocks of model.vit_size={model.vit_size})")


def _validate_protocol(config: Config) -> None:
    """Which subjects train, validate and test, and the augmentation and label shares."""
    estimation, source = config.estimation, config.data.source_dataset
    _check(estimation.val_subjects >= 0, "estimation.val_subjects must be >= 0")
    _check(0 <= estimation.augment_crop_share < 0.5,
           "estimation.augment_crop_share must be in [0, 0.5)")
    _check(0 <= estimation.augment_erase <= 1, "estimation.augment_erase is a probability: "
           "use [0, 1]")
    _check(0 < estimation.label_fraction <= 1, "estimation.label_fraction must be in (0, 1]")
    if source == "ethxgaze":
        _check(config.eval.split == "val" and estimation.val_subjects >= 1, "ETH-XGaze's test "
               "labels are hidden: evaluate on held-out train subjects (eval.split=val, "
               "estimation.val_subjects >= 1; configs/estimation/ethxgaze.yaml)")
    _check(config.eval.split != "val" or estimation.val_subjects >= 1 or source == "gaze360",
           "eval.split=val needs estimation.val_subjects >= 1 (there is no validation split)")
    _check(source != "columbia" or estimation.split_protocol == "loso",
           "estimation.split_protocol=unigaze is MPIIFaceGaze's split; ColumbiaGaze uses "
           "eval.fold")


def validate_estimation(config: Config) -> None:
    """The estimator, its protocol, the joint mix and the model parts."""
    estimator = config.estimation.estimator
    check_layer_decay(config, layered=estimator == "vit")
    _check(estimator != "gazenet" or config.data.face_size == 112, "estimation.estimator="
           "gazenet is built for 112 px faces (its FC layer takes 256 x 4 x 4): set "
           f"data.face_size=112, not {config.data.face_size}")
    _validate_vit(config)
    _validate_joint(config)
    _validate_protocol(config)
    validate_part_tables(config, list(ESTIMATION_PARTS))
    for key in ("freeze_scene", "freeze_face"):  # gaze following's, where it is registered
        _check(not getattr(config.model, key, False), f"model.{key} freezes a gaze-following "
               f"encoder part; the estimation parts are {list(ESTIMATION_PARTS)}")
    for part in config.run.init_resnet_parts:
        _check(part == "backbone" and estimator == "resnet", "run.init_resnet_"
               f"parts has '{part}'; a resnet estimator's ResNet part is 'backbone'")


def validate_pretraining(config: Config) -> None:
    """SimCLR pretrains a ResNet face encoder: the estimation checks, then its own keys."""
    validate_estimation(config)
    _check(config.estimation.estimator == "resnet", "run.task=simclr pretrains a ResNet face "
           "encoder: set estimation.estimator=resnet (and its face_layers, block, face_inplanes)")
    _check(config.simclr.tau > 0 and config.simclr.dim >= 1,
           "simclr.tau must be > 0 and simclr.dim >= 1")
