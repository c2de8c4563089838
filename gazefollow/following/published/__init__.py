"""Released weight files of published gaze-following models, recognised by their keys and
read as data (``engine/untrusted.py``): each becomes a configuration of this project (its
architecture keys, ``architecture``) and its weights under our names. Three doors use them:
``--eval_weights FILE`` (``load_published_for_eval``), ``GazePredictor.from_pretrained(FILE)``
and ``run.init_weights: FILE`` (``init_from_file``: fine-tuning, e.g. Gaze-LLE's
VideoAttentionTarget recipe starting from its GazeFollow decoder).

A file holds what its authors released: a Gaze-LLE file has no backbone, which then comes from
``model.backbone_weights`` (refused, with what to pass, when that is not set); Chong et al.'s
files hold their whole model, whose sizes are read from the keys (``chong.py``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gazefollow.backbones.init_weights import load_initial_weights, resolve_init_path
from gazefollow.config import ConfigError
from gazefollow.engine.checkpoint import CheckpointError, reading_error
from gazefollow.engine.untrusted import UntrustedFileError, load_torch_file
from gazefollow.following.published.chong import (chong_architecture, chong_name, chong_to_ours,
                                                  is_chong_file)
from gazefollow.following.published.gazelle import gazelle_name, gazelle_to_ours, is_gazelle_file

# The published models' architectures as config overrides (configs/experiments/<name>.yaml
# adds each one's training recipe to the same keys).
_GAZELLE = ["model.encoder=gazelle", "model.head=gazelle", "model.gazelle_backbone=dinov2",
            "model.dinov2_registers=0", "model.gazelle_dim=256", "model.gazelle_layers=3",
            "model.gazelle_heads=8", "model.gazelle_mlp_ratio=4.0", "data.input_size=448",
            "data.output_size=64", "data.scene_resize=antialias", "model.inout_hidden=128"]
ARCHITECTURES = {
    f"gazelle_dinov2_{vit}{inout}": [
        *_GAZELLE, f"model.dinov2_size={'base' if vit == 'vitb14' else 'large'}",
        f"model.gazelle_inout_token={str(bool(inout)).lower()}",
        f"model.inout_dropout={0.1 if inout else 0.0}"]
    for vit in ("vitb14", "vitl14") for inout in ("", "_inout")}
# the in/out logit of a model released without an in/out head: every person in frame
IN_FRAME_LOGIT = 30.0


@dataclass
class PublishedWeights:
    """A released file, recognised: its model's name, its architecture (config overrides),
    its weights under our names, and the keys of the file that have no place here."""

    name: str
    file: Path
    architecture: list[str]
    weights: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)
    inout: bool = True  # the file holds an in/out head
    backbone_elsewhere: bool = False  # its backbone comes from model.backbone_weights


def recognise(content, file: Path) -> PublishedWeights | None:
    """The published model a file's content is, or None (one of ours, or unknown)."""
    try:
        if is_gazelle_file(content):
            name = gazelle_name(content)
            weights, dropped = gazelle_to_ours(content)
            return PublishedWeights(name, file, ARCHITECTURES[name], weights, dropped,
                                    inout=name.endswith("_inout"), backbone_elsewhere=True)
        if is_chong_file(content):
            state = content["model"]
            name = chong_name(state)
            weights, dropped = chong_to_ours(state)
            return PublishedWeights(name, file, chong_architecture(state), weights, dropped)
    except ValueError as err:
        raise CheckpointError(f"{file}: {err}") from None
    return None


def read_published(path: str | Path, trust_pickle: bool = False) -> PublishedWeights | None:
    """A released file read as data, recognised; None when it is not a published model's."""
    path = Path(path)
    try:
        content = load_torch_file(path, "weights file", trust_pickle)
    except UntrustedFileError:
        raise
    except Exception as err:  # noqa: BLE001  any unreadable file is one named error
        raise CheckpointError(f"cannot read {path}: {reading_error(err)}") from None
    return recognise(content, path)


def check_backbone(published: PublishedWeights, model_cfg) -> None:
    if not model_cfg.backbone_weights:
        raise ConfigError(
            f"{published.file.name} holds {published.name}'s decoder only, not its DINOv2 "
            f"backbone: pass model.backbone_weights=<a facebook/dinov2-"
            f"{model_cfg.dinov2_size} folder or model id, or DINOv2's torch.hub file "
            f"dinov2_{published.name.split('_')[2]}_pretrain.pth>")


def load_published(model: nn.Module, published: PublishedWeights, log=print) -> dict:
    """The file's weights into ``model``, checked: every weight of the file has its place and
    shape; the model's keys it lacks are the backbone (``model.backbone_weights``) and, for a
    file without an in/out head, that head and token (reported as new) -> the report."""
    own = model.state_dict()
    unexpected = sorted(set(published.weights) - set(own))
    mismatched = [f"{key}: file {tuple(value.shape)}, model {tuple(own[key].shape)}"
                  for key, value in published.weights.items()
                  if key in own and value.shape != own[key].shape]
    if unexpected or mismatched:
        raise CheckpointError(f"{published.file} ({published.name}) does not fit this model: "
                              f"unexpected {unexpected[:5]}, mismatched {mismatched[:5]}")
    model.load_state_dict(published.weights, strict=False)
    elsewhere = "gaze.backbone." if published.backbone_elsewhere else None
    new = sorted(key for key in set(own) - set(published.weights)
                 if not (elsewhere and key.startswith(elsewhere)))
    report = {"file": str(published.file), "model": published.name,
              "loaded": len(published.weights), "dropped": published.dropped, "new": new}
    log(f"{published.file.name}: {published.name}, {len(published.weights)} tensors loaded"
        + ("; the backbone from model.backbone_weights" if elsewhere else "")
        + f"; new (not in the file): {new or 'none'}"
        + (f"; dropped: {published.dropped[:3]}" if published.dropped else ""))
    return report


def answer_in_frame(model: nn.Module) -> None:
    """A model released without an in/out head predicts every person in frame (what its
    authors' evaluation assumes): the head's last layer gives a constant large logit."""
    last = [m for m in model.inout_head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(IN_FRAME_LOGIT)


# the encoder of each published family: only a model with it reads such a file whole
FAMILIES = {"gazelle": "gazelle", "chong2020": "chong"}


def init_from_file(model: nn.Module, run_cfg, log=print, report_file: Path | None = None):
    """``run.init_weights`` for gaze following: a published model's released file into a
    model of its design (``FAMILIES``), else any format ``backbones/init_weights.py`` reads
    (e.g. Chong et al.'s files as ``classic`` initial weights of other encoders)."""
    if model.gaze.name not in FAMILIES.values():
        return load_initial_weights(model, run_cfg, log, report_file)
    path = resolve_init_path(run_cfg.init_weights)
    published = read_published(path, run_cfg.trust_pickle) if path.is_file() else None
    if published is None:
        return load_initial_weights(model, run_cfg, log, report_file)
    report = load_published(model, published, log)
    if report_file is not None:
        Path(report_file).write_text(json.dumps(report, indent=2))
    return report


def load_published_for_eval(path: Path, layers, overrides, registry) -> dict | None:
    """``engine.evaluation.load_for_eval``'s answer for a published model's file (None for
    any other file): its architecture, then ``layers`` and ``overrides``; outputs go beside
    it, in <its folder>/gazefollow-eval/."""
    from gazefollow.config import to_dict
    from gazefollow.engine.evaluation import trusts_pickle
    from gazefollow.engine.runtime import eval_device
    from gazefollow.following.models.gaze_model import build_model

    published = read_published(path, trusts_pickle(overrides))
    if published is None:
        return None
    config = registry.build_config(layers, [*published.architecture, *overrides])
    if published.backbone_elsewhere:
        check_backbone(published, config.model)
    model = build_model(config)
    load_published(model, published)
    if not published.inout:
        answer_in_frame(model)
    device = eval_device(config)
    return {"config": config, "model": model.to(device), "device": device, "path": path,
            "weights": "raw", "state": {"config": to_dict(config), "step": "released"},
            "run_dir": path.parent / "gazefollow-eval", "suffix": f"-{path.stem}"}
