"""Initial weights (``run.init_weights``) from three file formats, with a complete report.

- ``gazefollow``: our own checkpoint (a dict with "model" and "config"): its state file, its
  folder, or a run folder (the newest complete checkpoint). It initialises the whole model.
- ``torchvision``: an ImageNet ResNet state dict (``conv1.``, ``bn1.``, ``layer1.`` ... ``fc.``).
  Our ResNet keeps these names, so each key goes to ``gaze.<part>.<key>`` for every ResNet part
  the encoder declares (``RESNET_PARTS``), or those in ``run.init_resnet_parts``; the ImageNet
  classifier (``fc.``) is dropped on purpose.
- ``original``: the original research code's ``pretrained/init_weights.pt``: ``{"model": ...}``
  whose ``scene_backbone.``, ``face_backbone.`` and ``attn.`` keys go to ``gaze.`` + key, as
  its ``load_pretrained`` renamed them (for ``model.encoder=original``); it loaded the rest
  ``strict=False``, i.e. ignored it, so the rest is "dropped" (and listed) here, as is ``attn``
  when the configuration has no head-position attention.
- ``estimation``: a gaze-estimation or SimCLR run of this project (``run.task: estimation``
  or ``simclr``): its
  ``backbone.`` keys go to the gaze-following face branch (``gaze.face.``), which must have
  the run's backbone (``model.face_backbone``: ``resnet`` of the same shape, or ``gazenet``);
  its regression (or projection) head is dropped. Into an estimator an estimation run loads
  whole, as ``gazefollow``; a SimCLR run starts the estimator's backbone.
  The raw (not the EMA) weights are read, as for every checkpoint here.
- ``mae``: an MAE checkpoint (``mae_b16_checkpoint-299.pth``: timm ViT names) for the ViT
  estimator; ``backbones/mae_keys.py`` renames each key (splitting ``qkv``) and
  resizes the position table to the model's patch grid; the decoder is dropped.
- ``gaze360``: Gaze360's ``gaze360_model.pth`` (``{"state_dict": ...}`` saved from
  DataParallel: ``module.base_model.*``, ``module.lstm.*``, ``module.last_layer.*``) for the
  Looking-At-Me models: the prefix is stripped, the frame encoder and the LSTM load, and its
  3-output ``last_layer`` (gaze and uncertainty) is dropped, as Ego4D's and GazePose's code
  drop it.
- ``classic``: the gaze-following initial weights of Chong et al. (CVPR 2020): ``{"model": ...}``
  with ResNet-50 scene and face branches (``conv1_scene``, ``layer1_face.0.conv1`` ...);
  ``<name>_<part><rest>`` goes to ``gaze.<part>.<name><rest>``. Their other layers
  (``layer5_scene``, ``attn``, ``deconv1``, ``fc_inout`` ...) have no place here.

For the parts a file is meant to initialise, every model key it does not cover is "missing",
every file key with no place in the model "unexpected", every shape clash "mismatched"; any
of them refuses the load unless ``run.init_partial`` is set. An encoder stem (``conv1``) with
fewer input channels than ours is "expanded": the file's filters on the first channels, zeros
on the extra ones (head and coordinate maps), so the pretrained response to RGB is unchanged.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from gazefollow.backbones.mae_keys import is_mae, mae_to_vit
from gazefollow.backbones.mobilenet import GazeNetFeatures
from gazefollow.backbones.resnet import ResNet
from gazefollow.config import ConfigError
from gazefollow.engine.checkpoint import (CheckpointError, migrate_model_keys, reading_error,
                                          resolve_checkpoint)
from gazefollow.engine.untrusted import UntrustedFileError, load_torch_file

TORCHVISION_KEY = re.compile(r"(conv1|bn1|layer\d+|fc)\.")
CLASSIC_KEY = re.compile(r"(conv1|bn1|layer\d+)_(scene|face)(\..+)")
GAZE360_PREFIXES = ("module.base_model.", "base_model.")
ORIGINAL_KEY = re.compile(r"(scene_backbone|face_backbone|attn)\.")
SHOWN_IN_ERRORS = 5


class InitWeightsError(ValueError):
    """A load refused because the file does not fit the model; ``report`` says how."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def resolve_init_path(path_or_dir: str | Path) -> Path:
    """A weights file; or a checkpoint folder / run folder, resolved as resume resolves them
    (the newest checkpoint with its COMPLETE marker)."""
    path = Path(path_or_dir)
    if not path.exists():
        raise FileNotFoundError(f"run.init_weights: no file at {path}")
    try:
        return resolve_checkpoint(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"run.init_weights: {err}") from None


def read_state_dict(path: Path, trust_pickle: bool = False,
                    log=print) -> tuple[dict[str, torch.Tensor], str | None]:
    """-> (state dict, format when the wrapper tells it, else None). The file is read as data
    (``engine/untrusted.py``)."""
    try:
        content = load_torch_file(path, "run.init_weights:", trust_pickle, log)
    except UntrustedFileError:
        raise
    except Exception as err:  # noqa: BLE001  any unreadable file is one named error
        raise CheckpointError(f"run.init_weights: cannot read {path} as a torch file: "
                              f"{reading_error(err)}") from None
    known = None
    if isinstance(content, dict) and "model" in content and "config" in content:
        _refuse_missing_frozen(content, path)
        content = migrate_model_keys(content["model"], content["config"])
        # a face estimator's run (or its label-free pretraining) keeps its encoder under
        # "backbone.", which no other task's model has at the top
        face_run = any(key.startswith("backbone.") for key in content)
        known = "estimation" if face_run else "gazefollow"
    elif isinstance(content, dict) and isinstance(content.get("model_state_dict"), dict):
        content = content["model_state_dict"]  # the original's first choice
    elif isinstance(content, dict) and isinstance(content.get("model"), dict):
        content = content["model"]  # the classic files wrap their state dict so
    elif isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]  # Gaze360's gaze360_model.pth
    if not isinstance(content, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()):
        raise CheckpointError(f"run.init_weights: {path} holds no state dict (name -> tensor); "
                         f"found {type(content).__name__}")
    return content, known


def _refuse_missing_frozen(checkpoint: dict, path: Path) -> None:
    """A run with frozen parameters does not store them (engine/weights.py): its checkpoint
    cannot start another run alone."""
    frozen = checkpoint.get("frozen") or {}
    if frozen.get("names"):
        source = frozen.get("source") or "the seeded build of its model"
        raise CheckpointError(
            f"run.init_weights: {path} does not store its {len(frozen['names'])} frozen "
            f"parameters (first: {', '.join(frozen['names'][:3])}); they came from {source}. "
            "Start from a run without frozen parameters, or from that file")


def rename_file_keys(keys: list[str], key_map: dict[str, str | None]) -> tuple[dict, list]:
    """``run.init_key_map`` on the file's own names: -> ({renamed: file key}, dropped keys).
    The first matching prefix wins (put the empty prefix last); None drops the key."""
    renamed, dropped = {}, []
    for key in keys:
        new = key
        for old, replacement in key_map.items():
            if key.startswith(old):
                new = None if replacement is None else replacement + key[len(old):]
                break
        if new is None:
            dropped.append(key)
        elif new in renamed:
            raise ConfigError(f"run.init_key_map renames both {renamed[new]} and {key} to {new}")
        else:
            renamed[new] = key
    return renamed, dropped


def detect_format(keys: list[str], model_keys: set[str], path: Path) -> str:
    """The file's format from its key names (the classic files also hold non-ResNet layers)."""
    if is_mae(keys):
        return "mae"
    if any(k.startswith(GAZE360_PREFIXES) for k in keys) and any("lstm." in k for k in keys):
        return "gaze360"
    if any(CLASSIC_KEY.fullmatch(k) for k in keys):
        return "classic"
    if any(k.startswith(("scene_backbone.", "face_backbone.")) for k in keys):
        return "original"
    if keys and all(TORCHVISION_KEY.match(k) for k in keys):
        return "torchvision"
    top_names = {k.split(".")[0] for k in model_keys}
    if keys and all(k.split(".")[0] in top_names for k in keys):
        return "gazefollow"
    raise ConfigError(f"run.init_weights: cannot tell the format of {path} from its keys "
                     f"(first: {sorted(keys)[:SHOWN_IN_ERRORS]}); set run.init_format to "
                     "gazefollow, torchvision or classic, or rename keys with run.init_key_map")


def model_names(key: str, fmt: str, prefixes: dict[str, str]) -> list[str] | None:
    """Model keys a (renamed) file key initialises: [] = no place in the model, None =
    dropped on purpose (the ImageNet classifier). ``prefixes``: ResNet part -> model key
    prefix, for the parts this load targets."""
    if fmt in ("gazefollow", "mae"):  # mae: keys already in the model's names
        return [key]
    if fmt == "gaze360":  # DataParallel's prefix off; its gaze + uncertainty layer dropped
        key = key.removeprefix("module.")
        return None if key.startswith("last_layer.") else [key]
    if fmt == "estimation":
        return [prefixes["face"] + key.removeprefix("backbone.")] if key.startswith(
            "backbone.") else None
    if fmt == "torchvision":
        return None if key.startswith("fc.") else [prefix + key for prefix in prefixes.values()]
    if fmt == "original":
        return ["gaze." + key] if ORIGINAL_KEY.match(key) else None
    match = CLASSIC_KEY.fullmatch(key)
    return [f"{prefixes[match[2]]}{match[1]}{match[3]}"] if match and match[2] in prefixes else []


def target_prefixes(fmt: str, prefixes: dict[str, str]) -> list[str]:
    """Model key prefixes of the parts a file of this format is meant to initialise."""
    if fmt == "mae":
        return ["backbone."]
    if fmt == "gaze360":
        return ["base_model.", "lstm."]
    return [""] if fmt == "gazefollow" else list(prefixes.values())


def expand_stem(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """A stem conv [O, c, k, k] into ours [O, C > c, k, k]: its filters on the first c input
    channels, zeros on the rest, so the extra inputs start with no effect. None: no fit."""
    if value.dim() != 4 or target.dim() != 4 or value.shape[1] >= target.shape[1]:
        return None
    if value.shape[0] != target.shape[0] or value.shape[2:] != target.shape[2:]:
        return None
    grown = torch.zeros_like(target)
    grown[:, :value.shape[1]] = value
    return grown


def match_keys(state: dict, renamed: dict, fmt: str, prefixes: dict[str, str],
               own: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """-> (tensors to load by model key, report lists). Reported file keys are the names
    stored in the file; a mapped name the model lacks shows as "file key -> model key"."""
    loaded, lists = {}, {"expanded": [], "dropped": [], "unexpected": [], "mismatched": []}
    stems = {prefix + "conv1.weight" for prefix in prefixes.values()}  # ResNet input convs
    for new_key, file_key in renamed.items():
        targets = model_names(new_key, fmt, prefixes)
        if targets is None:
            lists["dropped"].append(file_key)
        elif not targets:
            lists["unexpected"].append(file_key)
        for model_key in targets or []:
            value = state[file_key]
            if fmt == "original" and model_key.startswith("gaze.attn.") and model_key not in own:
                lists["dropped"].append(file_key)  # built by the original even when unused
            elif model_key not in own:
                lists["unexpected"].append(file_key if model_key == file_key
                                           else f"{file_key} -> {model_key}")
            elif value.shape == own[model_key].shape:
                loaded[model_key] = value
            elif model_key in stems and (
                    grown := expand_stem(value, own[model_key])) is not None:
                loaded[model_key] = grown
                lists["expanded"].append(f"{model_key} ({value.shape[1]} -> "
                                         f"{grown.shape[1]} input channels)")
            else:
                lists["mismatched"].append({
                    "file_key": file_key, "model_key": model_key,
                    "file_shape": list(value.shape), "model_shape": list(own[model_key].shape)})
    return loaded, lists


def missing_keys(own: dict, loaded: dict, mismatched: list[dict],
                 prefixes: list[str]) -> tuple[list, list]:
    """Model keys of the targeted parts the file leaves out -> (missing, defaulted); a key
    the file has in another shape is listed as mismatched only.
    ``num_batches_tracked`` beside a loaded ``running_mean`` is only "defaulted": ImageNet
    files saved before PyTorch 0.4.1 lack these counters, which only matter for BatchNorm
    with momentum=None (not used here)."""
    missing, defaulted = [], []
    accounted = set(loaded) | {clash["model_key"] for clash in mismatched}
    for key in own:
        if key in accounted or not any(key.startswith(prefix) for prefix in prefixes):
            continue
        sibling = key.removesuffix("num_batches_tracked") + "running_mean"
        if key.endswith("num_batches_tracked") and sibling in loaded:
            defaulted.append(key)
        else:
            missing.append(key)
    return missing, defaulted


def load_initial_weights(model: nn.Module, run_cfg, log=print,
                         report_file: Path | None = None) -> dict:
    """Load ``run_cfg.init_weights`` into ``model`` (see the module docstring) -> the report
    {"file", "format", "loaded", "expanded", "dropped", "defaulted", "missing", "unexpected",
    "mismatched"}, also written to ``report_file`` (when given) before a refusal, since its
    full lists are what fixes a key map. Model keys outside the targeted
    parts keep their initialisation. Refuses (InitWeightsError, model untouched) when a key is
    missing, unexpected or mismatched, unless run_cfg.init_partial; and always when nothing
    fits, which is a wrong file or format rather than a partial load."""
    path = resolve_init_path(run_cfg.init_weights)
    state, fmt = read_state_dict(path, run_cfg.trust_pickle, log)
    renamed, key_map_dropped = rename_file_keys(list(state), run_cfg.init_key_map)
    own = model.state_dict()
    if run_cfg.init_format != "auto":
        fmt = run_cfg.init_format
    elif fmt is None:
        fmt = detect_format(list(renamed), set(own), path)
    if fmt == "estimation":
        fmt = _estimation_target(model, state, path)
    if fmt == "mae":  # renamed to the model's keys (qkv split, positions resized) first
        state, converted_away = mae_to_vit({new: state[old] for new, old in renamed.items()},
                                           own)
        renamed, key_map_dropped = {key: key for key in state}, key_map_dropped + converted_away
    prefixes = _resnet_prefixes(model, fmt, run_cfg.init_resnet_parts)
    loaded, lists = match_keys(state, renamed, fmt, prefixes, own)
    missing, defaulted = missing_keys(own, loaded, lists["mismatched"],
                                      target_prefixes(fmt, prefixes))
    report = {"file": str(path), "format": fmt, "loaded": sorted(loaded),
              "expanded": lists["expanded"], "dropped": sorted(key_map_dropped + lists["dropped"]),
              "defaulted": defaulted, "missing": missing, "unexpected": sorted(lists["unexpected"]),
              "mismatched": lists["mismatched"]}
    _log_report(report, log)
    if report_file is not None:
        Path(report_file).write_text(json.dumps(report, indent=2))
    problems = report["missing"] or report["unexpected"] or report["mismatched"]
    if not loaded or (problems and not run_cfg.init_partial):
        raise InitWeightsError(_refusal(report, nothing_fits=not loaded), report)
    result = model.load_state_dict(loaded, strict=False)
    assert not result.unexpected_keys, "match_keys only keeps the model's own keys"
    return report


def _resnet_prefixes(model: nn.Module, fmt: str, named: list[str]) -> dict[str, str]:
    """Model key prefix of each ResNet part the load targets: ``run.init_resnet_parts`` (all
    of the encoder's ResNet parts when empty) for ImageNet files; the scene and face
    branches for the classic files."""
    prefixes = model.resnet_prefixes()
    if fmt == "mae":
        return {}
    if fmt in ("classic", "original"):
        return {part: prefix for part, prefix in prefixes.items() if part in ("scene", "face")}
    if fmt == "estimation":
        return {"face": model.face_prefix() if hasattr(model, "gaze") else "backbone."}
    return {part: prefixes[part] for part in (named or prefixes)}


def _estimation_target(model: nn.Module, state: dict, path: Path) -> str:
    """An estimation run's weights: "estimation" (its backbone into the face branch) for a
    gaze-following model whose face branch has the run's backbone, "gazefollow" (the whole
    model) for another estimator; a refusal with the reason otherwise."""
    if not hasattr(model, "gaze"):  # an estimator: a SimCLR run starts its backbone only
        return "estimation" if any(k.startswith("projection.") for k in state) else "gazefollow"
    run_kind = ("gazenet" if "fc_final.weight" in state else  # GazeNet's last layer
                "vit" if "backbone.embeddings.cls_token" in state else "resnet")
    face = model.gaze.part_modules("face").get("face") if "face" in model.gaze.PARTS else None
    face_kind = ("resnet" if isinstance(face, ResNet) else
                 "gazenet" if isinstance(face, GazeNetFeatures) else
                 "vit" if type(face).__name__ == "ViTFeatures" else None)
    if face_kind is None:
        raise ConfigError(f"run.init_weights: {path} is a gaze-estimation run, which starts a "
                          "face branch; this model.encoder has none it can start")
    if face_kind != run_kind:
        raise ConfigError(f"run.init_weights: {path} is a {run_kind} estimation run; this "
                          f"model's face branch is model.face_backbone={face_kind}. Set "
                          f"model.face_backbone={run_kind} (and the run's shape: for resnet "
                          "model.face_layers, block, face_inplanes; for vit model.vit_size)")
    return "estimation"


def _log_report(report: dict, log) -> None:
    counts = {name: len(report[name]) for name in ("loaded", "expanded", "dropped", "defaulted",
                                                     "missing", "unexpected", "mismatched")}
    log(f"init weights {report['file']} ({report['format']} format): " +
        ", ".join(f"{count} {name}" for name, count in counts.items()))
    # "defaulted" (BatchNorm counters) is only counted here: long, harmless, and in the JSON
    for name in ("expanded", "dropped", "missing", "unexpected", "mismatched"):
        if report[name]:
            log(f"  {name} ({len(report[name])}): " + ", ".join(map(_shown, report[name])))


def _shown(item) -> str:
    if isinstance(item, dict):  # a mismatch
        return (f"{item['file_key']} {item['file_shape']} -> {item['model_key']} "
                f"{item['model_shape']}")
    return item


def _refusal(report: dict, nothing_fits: bool) -> str:
    first = {name: ", ".join(map(_shown, report[name][:SHOWN_IN_ERRORS]))
             for name in ("missing", "unexpected", "mismatched")}
    details = "; ".join(f"{len(report[name])} {name} (first: {first[name]})"
                        for name in first if report[name])
    if nothing_fits:
        return (f"run.init_weights {report['file']} ({report['format']} format): no tensor fits "
                f"the model; {details}. Check run.init_format and run.init_key_map.")
    return (f"run.init_weights {report['file']} ({report['format']} format) does not fit the "
            f"model: {details}. The full lists are in the log. Set run.init_partial=true to load "
            "what fits and keep the rest as initialised, or rename keys with run.init_key_map.")
