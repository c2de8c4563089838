"""The original research code's checkpoints (``ckpt_last.pth``, ``ckpt_epoch_N.pth``) and
initial weights, mapped onto the original model configuration (``model.encoder=original``).

Its checkpoints are ``{"run_id", "epoch", "model", "optimizer", "ema_params", ...}`` with the
keys of its own modules: ``gaze_model.*`` (the ResNets, ``attn``, the depth fusion),
``model.*`` (ADM's UNet: ``input_blocks``, ``middle_block``, ``output_blocks``, ``out``,
``time_embed``), ``sequential.*`` and ``fc_inout.*`` (the in/out head). The encoder keeps the
original's attribute names, so its keys move by a prefix; the UNet is diffusers'
``UNet2DConditionModel`` here, whose blocks hold the same layers in the same order, so
``adm_unet_key_map`` renames ADM's block indices to diffusers' block names.
"""
from __future__ import annotations

from pathlib import Path

import torch

from gazefollow.engine.checkpoint import CheckpointError, reading_error
from gazefollow.engine.untrusted import UntrustedFileError, load_torch_file

UNET_PREFIX = "head.denoiser.unet."
PREFIXES = {"gaze_model.": "gaze.", "sequential.": "inout_head.conv.",
            "fc_inout.": "inout_head.fc."}
# Fixed buffers of the original's position encoding: recomputed here, never learned.
FIXED_BUFFERS = ("gaze_model.postional_embedding_",)
# ADM ResBlock layers -> diffusers ResnetBlock2D layers.
RESBLOCK = {"in_layers.0.": "norm1.", "in_layers.2.": "conv1.", "emb_layers.1.": "time_emb_proj.",
            "out_layers.0.": "norm2.", "out_layers.3.": "conv2.",
            "skip_connection.": "conv_shortcut."}


def adm_unet_key_map(model_cfg) -> dict[str, tuple[str, str]]:
    """ADM block prefix -> (diffusers block prefix, kind: "resnet" | "same"), for a UNet of
    ``model.unet_multipliers`` levels, ``unet_layers_per_block`` residual blocks per level and
    cross-attention at ``unet_attention_levels`` (ADM's input / middle / output block order)."""
    levels, per_level = len(model_cfg.unet_multipliers), model_cfg.unet_layers_per_block
    attention = set(model_cfg.unet_attention_levels)
    blocks = {"time_embed.0.": ("time_embedding.linear_1.", "same"),
              "time_embed.2.": ("time_embedding.linear_2.", "same"),
              "input_blocks.0.0.": ("conv_in.", "same"), "out.0.": ("conv_norm_out.", "same"),
              "out.2.": ("conv_out.", "same"),
              "middle_block.0.": ("mid_block.resnets.0.", "resnet"),
              "middle_block.1.": ("mid_block.attentions.0.", "same"),
              "middle_block.2.": ("mid_block.resnets.1.", "resnet")}
    index = 0
    for level in range(levels):
        for j in range(per_level):
            index += 1
            blocks[f"input_blocks.{index}.0."] = (f"down_blocks.{level}.resnets.{j}.", "resnet")
            if level in attention:
                blocks[f"input_blocks.{index}.1."] = (f"down_blocks.{level}.attentions.{j}.",
                                                      "same")
        if level != levels - 1:
            index += 1
            blocks[f"input_blocks.{index}.0.op."] = (f"down_blocks.{level}.downsamplers.0.conv.",
                                                     "same")
    index = 0
    for level in reversed(range(levels)):
        up = levels - 1 - level
        for i in range(per_level + 1):
            blocks[f"output_blocks.{index}.0."] = (f"up_blocks.{up}.resnets.{i}.", "resnet")
            if level in attention:
                blocks[f"output_blocks.{index}.1."] = (f"up_blocks.{up}.attentions.{i}.", "same")
            if level and i == per_level:
                position = 2 if level in attention else 1
                blocks[f"output_blocks.{index}.{position}.conv."] = (
                    f"up_blocks.{up}.upsamplers.0.conv.", "same")
            index += 1
    return blocks


def map_original_key(key: str, unet_blocks: dict) -> str | None:
    """Our model key of one of the original's keys; None when it has no place here."""
    for old, new in PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    if not key.startswith("model."):
        return None
    rest = key[len("model."):]
    for block, (target, kind) in sorted(unet_blocks.items(), key=lambda item: -len(item[0])):
        if rest.startswith(block):
            inner = rest[len(block):]
            if kind == "resnet":
                layer = next((k for k in RESBLOCK if inner.startswith(k)), None)
                if layer is None:
                    return None
                inner = RESBLOCK[layer] + inner[len(layer):]
            return UNET_PREFIX + target + inner
    return None


def is_original_checkpoint(content) -> bool:
    return (isinstance(content, dict) and isinstance(content.get("model"), dict)
            and any(str(k).startswith("gaze_model.") for k in content["model"]))


def read_original_checkpoint(path: Path, trust_pickle: bool = False, log=print) -> dict:
    """The original's checkpoint dict, read as data; CheckpointError when the file is not
    one."""
    try:
        content = load_torch_file(path, "the original's checkpoint", trust_pickle, log)
    except UntrustedFileError:
        raise
    except Exception as err:  # noqa: BLE001  any unreadable file is one named error
        raise CheckpointError(f"cannot read {path}: {reading_error(err)}") from None
    if not is_original_checkpoint(content):
        raise CheckpointError(f"{path} is not a checkpoint of the original research code (no "
                              "'model' dict with gaze_model.* keys)")
    return content


def original_weights(content: dict, use_ema: bool) -> dict[str, torch.Tensor]:
    """The state dict to evaluate, as the original chose it: with EMA, the ``ema_params``
    values from its first UNet key on (the UNet and the in/out head), the raw weights before."""
    weights = dict(content["model"])
    ema = content.get("ema_params")
    if use_ema and isinstance(ema, dict):
        keys = list(ema)
        first = next((i for i, k in enumerate(keys) if k.startswith("model.")), len(keys))
        weights.update({k: ema[k] for k in keys[first:]})
    return weights


def map_original_state(weights: dict, model, model_cfg) -> tuple[dict, dict]:
    """(our state dict, report) for the original's ``weights``. The report lists "loaded",
    "dropped" (fixed buffers, and layers this configuration does not build, such as ``attn``
    without ``model.adm_attention_module``), "unexpected" (no place here), "missing" (model
    keys the file leaves out) and "mismatched" shapes."""
    own, blocks = model.state_dict(), adm_unet_key_map(model_cfg)
    mapped, report = {}, {"dropped": [], "unexpected": [], "mismatched": []}
    for key, value in weights.items():
        if key.startswith(FIXED_BUFFERS):
            report["dropped"].append(key)
            continue
        target = map_original_key(key, blocks)
        if target is None:
            report["unexpected"].append(key)
        elif target not in own:
            # the original builds ``attn`` even when unused; anything else is a misfit
            report["dropped" if target.startswith("gaze.attn.") else "unexpected"].append(
                f"{key} -> {target}")
        elif tuple(value.shape) != tuple(own[target].shape):
            report["mismatched"].append(f"{key} {list(value.shape)} -> {target} "
                                        f"{list(own[target].shape)}")
        else:
            mapped[target] = value
    report["missing"] = [k for k in own if k not in mapped]
    report["loaded"] = len(mapped)
    return mapped, report


def load_original_checkpoint(model, path: Path, config, log=print) -> dict:
    """Load the original's checkpoint into ``model`` (the original configuration); refuse,
    naming the first keys, when any key is missing, unexpected or mismatched. -> report."""
    content = read_original_checkpoint(path, config.run.trust_pickle, log)
    weights = original_weights(content, use_ema=config.optim.ema_on)
    mapped, report = map_original_state(weights, model, config.model)
    log(f"original checkpoint {path} (epoch {content.get('epoch')}): {report['loaded']} "
        f"tensors loaded, {len(report['dropped'])} dropped (fixed buffers and layers this "
        f"configuration does not build: {', '.join(report['dropped'][:3])}"
        f"{' ...' if len(report['dropped']) > 3 else ''})")
    problems = {name: report[name] for name in ("missing", "unexpected", "mismatched")
                if report[name]}
    if problems:
        details = "; ".join(f"{len(v)} {k} (first: {', '.join(v[:3])})"
                            for k, v in problems.items())
        raise CheckpointError(f"{path} does not fit this configuration of the original model: "
                              f"{details}. Use the YAML files it was trained with.")
    model.load_state_dict(mapped)
    return {**report, "epoch": content.get("epoch")}


# The original research code's checkpoints (ckpt_last.pth, ckpt_epoch_N.pth); ours are state.pt.
ORIGINAL_SUFFIX = ".pth"


def load_original_for_eval(path: Path, config) -> dict:
    """``engine.evaluation.load_for_eval``'s answer for a checkpoint of the original research
    code: it stores no config, so ``config`` (the original model configuration) describes
    it; outputs go beside it, in <its folder>/gazefollow-eval/."""
    from gazefollow.config import to_dict
    from gazefollow.engine.runtime import eval_device
    from gazefollow.following.models.gaze_model import build_model

    model = build_model(config)
    report = load_original_checkpoint(model, path, config)
    device = eval_device(config)
    state = {"config": to_dict(config), "step": f"epoch {report['epoch']}"}
    return {"config": config, "model": model.to(device), "device": device, "path": path,
            "weights": "ema" if config.optim.ema_on else "raw", "state": state,
            "run_dir": path.parent / "gazefollow-eval", "suffix": f"-{path.stem}"}
