"""The Looking-At-Me task (``run.task: lam``): is each visible person looking at the camera
wearer? A window of face crops -> two logits (not looking, looking).

Splits: ``train`` is Ego4D's ``split/train.list``; validation and test are its
``split/val.list`` (the challenge keeps the test labels; the published validation numbers
are on val). The unlabelled challenge crops (``videos_challenge/``), where present, are
predicted at the end of evaluation into the submission JSON.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gazefollow.backbones import backbone_config_sections
from gazefollow.backbones.init_weights import load_initial_weights
from gazefollow.engine.task import Task
from gazefollow.social.config import LAMConfig
from gazefollow.social.data.build import build_lam_datasets
from gazefollow.social.data.synthetic_lam import LAMWorldConfig
from gazefollow.social.evaluate import evaluate_lam, predict_windows, score_rows
from gazefollow.social.validate import LAM_SOURCES, validate_lam


def build_lam_model(config):
    if config.lam.model == "gazepose":
        from gazefollow.social.models.gazepose import GazePose
        return GazePose(config.model, config.lam)
    from gazefollow.social.models.gazelstm import GazeLSTM
    return GazeLSTM(config.model, config.lam)


def lam_losses(model, batch: dict, loss_cfg, generator=None) -> dict:
    """Cross-entropy with ``lam.class_weights`` (not looking, looking), as both recipes."""
    logits = model(batch).float()
    weights = torch.tensor(loss_cfg.class_weights, device=logits.device, dtype=torch.float32)
    labels = torch.as_tensor(batch["label"], device=logits.device)
    with torch.no_grad():
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
    return {"loss": F.cross_entropy(logits, labels, weight=weights), "accuracy": accuracy}


def validation_metrics(net, dataset, config, accelerator) -> tuple[dict, str, list]:
    rows, _ = predict_windows(net, dataset, batch_size=config.eval.batch_size,
                              device=accelerator.device, desc="val",
                              shard=(accelerator.process_index, accelerator.num_processes))
    scored = score_rows(rows)
    return {"map": scored["model"]["map"], "accuracy": scored["model"]["accuracy"]}, \
        "one pass", []


LAM = Task(
    name="lam",
    summary="is each face in a video looking at the camera wearer (Ego4D Looking-At-Me)",
    config_files=("lam/base.yaml",),
    default_experiment="lam/synthetic_cpu.yaml",
    dataset_names=LAM_SOURCES,
    validate=validate_lam,
    run_label=lambda config: config.lam.model,
    build_datasets=build_lam_datasets,
    build_model=build_lam_model,
    training_losses=lam_losses,
    validation_metrics=validation_metrics,
    evaluate=evaluate_lam,
    eval_label=lambda config, model: "lam",
    init_weights=load_initial_weights,
    config_sections=lambda: (*backbone_config_sections(), ("lam", LAMConfig),
                             ("synthetic_lam", LAMWorldConfig)),
    loss_section="lam",
    # the windows and crops an evaluation may cut differently
    evaluation_keys=("lam.val_stride", "lam.test_stride", "lam.crops", "lam.challenge_dir"),
)
