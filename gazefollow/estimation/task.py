"""The gaze-estimation task (``run.task: estimation``): face crop -> pitch, yaw."""
from __future__ import annotations

import torch

from gazefollow.backbones import backbone_config_sections
from gazefollow.backbones.init_weights import load_initial_weights
from gazefollow.engine.task import Task
from gazefollow.estimation.config import EstimationConfig
from gazefollow.estimation.data.build import build_face_datasets, fold_count
from gazefollow.estimation.data.synthetic_faces import SyntheticFacesConfig
from gazefollow.estimation.evaluate import evaluate_estimation, mean_error, predict_split
from gazefollow.estimation.folds import run_all_folds
from gazefollow.estimation.models import build_estimator, estimate
from gazefollow.estimation.objective import LOSSES, angular_loss
from gazefollow.estimation.validate import ESTIMATION_SOURCES, validate_estimation

# the estimation keys an evaluation may change (which subjects and datasets it is scored on)
EVALUATION_KEYS = ("estimation.split_protocol", "estimation.val_subjects", "estimation.joint_test",
                   "estimation.paths")


def config_sections() -> tuple:
    return (*backbone_config_sections(), ("estimation", EstimationConfig),
            ("synthetic_faces", SyntheticFacesConfig))


def run_label(config) -> str:
    """e.g. "resnet-fold03" (leave-one-out and Columbia folds), "gazenet-unigaze", "resnet"."""
    label = config.estimation.estimator
    if config.estimation.split_protocol == "unigaze" and "mpii" in config.data.source_dataset:
        return f"{label}-unigaze"
    return f"{label}-fold{config.eval.fold:02d}" if fold_count(config) > 1 else label


def estimation_losses(model, batch: dict, loss_cfg, generator=None) -> dict:
    """``estimation.gaze_loss`` per sample, averaged; the angle in degrees is logged beside it."""
    pred = estimate(model, batch).float()
    true = batch["gaze"].float()
    per_sample = LOSSES[loss_cfg.gaze_loss](pred, true)
    with torch.no_grad():
        degrees = torch.rad2deg(angular_loss(pred, true)).mean()
    return {"loss": per_sample.mean(), "gaze_angle": degrees}


def validation_metrics(net, dataset, config, accelerator) -> tuple[dict, str, list]:
    rows, _ = predict_split(net, dataset, batch_size=config.eval.batch_size,
                            device=accelerator.device, desc="val",
                            shard=(accelerator.process_index, accelerator.num_processes))
    return {"angular_error": mean_error(rows)}, "one pass", []


ESTIMATION = Task(
    name="estimation",
    summary="a face's 3D gaze direction (--all_folds: every fold of the protocol)",
    config_files=("estimation/base.yaml",),
    default_experiment="estimation/synthetic_cpu.yaml",
    dataset_names=ESTIMATION_SOURCES,
    validate=validate_estimation,
    run_label=run_label,
    build_datasets=build_face_datasets,
    build_model=build_estimator,
    training_losses=estimation_losses,
    validation_metrics=validation_metrics,
    evaluate=evaluate_estimation,
    eval_label=lambda config, model: "gaze",
    init_weights=load_initial_weights,
    all_folds=run_all_folds,
    config_sections=config_sections,
    loss_section="estimation",
    evaluation_keys=EVALUATION_KEYS,
)
