"""The gaze-estimation task's own configuration checks (the engine's run first)."""
from __future__ import annotations

from gazefollow.backbones.vit import VIT_SIZES
from gazefollow.config import Config, ConfigError
from gazefollow.config.validation import check as _check
from gazefollow.config.validation import check_layer_decay, frozen_parts, validate_part_tables
from gazefollow.estimation.models import ESTIMATION_PARTS

# the datasets gaze estimation (and its label-free pretraining) reads; "joint" mixes the others
ESTIMATION_SOURCES = ("synthetic_faces", "mpiifacegaze", "mpiifacegaze_pickle", "ethxgaze",
                      "gaze360", "columbia", "gazecapture", "eyediap", "joint")


def _validate_joint(config: Config) -> None:
    """The joint mix's entries: known datasets, positive weights, known splits."""
    data = config.data
    _check(data.source_dataset != "joint" or data.joint, "data.source_dataset=joint needs "
           "data.joint: [{name, root, weight, split}, ...]")
    _check(data.epoch_samples >= 0, "data.epoch_samples must be >= 0")
    names = [entry.get("name") for entry in data.joint]
    _check(not data.joint_leave_out or (data.joint_leave_out in names and len(names) > 1),
           f"data.joint_leave_out={data.joint_leave_out} must name one of the mix {names}, "
           "which must hold another dataset to train on")
    for key in ("joint", "joint_test"):
        for number, entry in enumerate(getattr(data, key)):
            where = f"data.{key}[{number}]"
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
    if model.estimator != "vit":
        return
    patch, _, layers, _, _ = VIT_SIZES[model.vit_size]
    _check(face_size % patch == 0, f"model.vit_size={model.vit_size} cuts faces into {patch} "
           f"px patches: data.face_size={face_size} is not a multiple of {patch}")
    _check(0 <= model.vit_freeze_blocks <= layers, f"model.vit_freeze_blocks must be in "
           f"0..{layers} (the blocks of model.vit_size={model.vit_size})")


def validate_estimation(config: Config) -> None:
    """The estimator, its protocol, the joint mix and the model parts."""
    data, model, source = config.data, config.model, config.data.source_dataset
    check_layer_decay(config, layered=model.estimator == "vit")
    _check(model.estimator != "gazenet" or data.face_size == 112, "model.estimator="
           "gazenet is built for 112 px faces (its FC layer takes 256 x 4 x 4): set "
           f"data.face_size=112, not {data.face_size}")
    _validate_vit(config)
    _validate_joint(config)
    if source == "ethxgaze":
        _check(config.eval.split == "val" and data.val_subjects >= 1, "ETH-XGaze's test labels "
               "are hidden: evaluate on held-out train subjects (eval.split=val, "
               "data.val_subjects >= 1; configs/estimation/ethxgaze.yaml)")
    _check(config.eval.split != "val" or data.val_subjects >= 1 or source == "gaze360",
           "eval.split=val needs data.val_subjects >= 1 (there is no validation split)")
    _check(source != "columbia" or data.split_protocol == "loso",
           "data.split_protocol=unigaze is MPIIFaceGaze's split; ColumbiaGaze uses eval.fold")
    validate_part_tables(config, list(ESTIMATION_PARTS))
    for part in frozen_parts(model):
        raise ConfigError(f"model.freeze_{part} freezes a gaze-following encoder part; the "
                          f"estimation parts are {list(ESTIMATION_PARTS)}")
    for part in config.run.init_resnet_parts:
        _check(part == "backbone" and model.estimator == "resnet", "run.init_resnet_"
               f"parts has '{part}'; a resnet estimator's ResNet part is 'backbone'")


def validate_pretraining(config: Config) -> None:
    """SimCLR pretrains a ResNet face encoder: the estimation checks, then its own keys."""
    validate_estimation(config)
    _check(config.model.estimator == "resnet", "run.task=simclr pretrains a ResNet face "
           "encoder: set model.estimator=resnet (and its face_layers, block, face_inplanes)")
    _check(config.loss.simclr_tau > 0 and config.model.simclr_dim >= 1,
           "loss.simclr_tau must be > 0 and model.simclr_dim >= 1")
