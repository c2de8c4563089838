"""The Looking-At-Me task (``run.task: lam``): is each visible person looking at the camera
wearer? A window of face crops -> two logits (not looking, looking).

Splits: ``train`` is Ego4D's ``split/train.list``; validation and test are its
``split/val.list`` (the challenge keeps the test labels; the published validation numbers
are on val). The unlabelled challenge crops (``videos_challenge/``), where present, are
predicted at the end of evaluation into the submission JSON.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from gazefollow.social.evaluate import evaluate_lam, predict_windows, score_rows
from gazefollow.tasks import Task

LABELLED = {"train": "train", "val": "val", "test": "val"}  # our split -> Ego4D's list


def dataset_root(config) -> Path:
    root = Path(config.data.dataset_dir)
    if config.data.source_dataset == "synthetic_lam":
        from gazefollow.social.data.synthetic_lam import ensure_lam_world
        ensure_lam_world(config.synthetic_lam, root, log=lambda *_: None)
    elif not root.is_dir():
        raise FileNotFoundError(f"data.dataset_dir={root} does not exist")
    return root


def read_priors_for(config, root: Path, split: str) -> dict:
    """The prior files the configured model and data options use."""
    from gazefollow.social.data.priors import read_prior
    model, data = config.model, config.data
    wanted = {"headpose": model.lam_model == "gazepose" and model.gazepose_head_prior,
              "landmarks": model.lam_model == "gazepose" and model.gazepose_landmark_prior,
              "quality": data.temporal_dropout}
    return {kind: read_prior(root, split, kind) for kind, on in wanted.items() if on}


def build_lam_datasets(config, splits=("train", "val", "test"), log=print) -> dict:
    from gazefollow.social.data.dataset import LAMWindows
    from gazefollow.social.data.ego4d_lam import read_split
    root, out = dataset_root(config), {}
    for split in dict.fromkeys(splits):
        tracks, report = read_split(root, LABELLED[split], config.data.on_bad_input)
        dataset = LAMWindows(root, tracks, report, LABELLED[split], config.data,
                             read_priors_for(config, root, LABELLED[split]),
                             augment=split == "train" and config.data.augment,
                             seed=config.run.seed)
        positives = int(dataset.labels().sum())
        log(f"{split}: {report.summary()}; {len(dataset)} windows of {config.data.clip_length} "
            f"frames, {positives} looking ({positives / max(1, len(dataset)):.1%})")
        out[split] = dataset
    return out


def build_lam_model(config):
    if config.model.lam_model == "gazepose":
        from gazefollow.social.models.gazepose import GazePose
        return GazePose(config.model)
    from gazefollow.social.models.gazelstm import GazeLSTM
    return GazeLSTM(config.model)


def lam_losses(model, batch: dict, loss_cfg, generator=None) -> dict:
    """Cross-entropy with ``loss.class_weights`` (not looking, looking), as both recipes."""
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
    run_label=lambda config: config.model.lam_model,
    build_datasets=build_lam_datasets,
    build_model=build_lam_model,
    training_losses=lam_losses,
    validation_metrics=validation_metrics,
    evaluate_run=evaluate_lam,
    eval_label=lambda config, model: "lam",
)
