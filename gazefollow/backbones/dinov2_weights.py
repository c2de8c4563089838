"""DINOv2's released weights into the backbone of ``dinov2.py``, from either layout:

- a Hugging Face folder (``facebook/dinov2-base``: ``config.json`` + ``model.safetensors``,
  transformers' own key names, with or without the ``dinov2.`` prefix of its task models),
  or a model id (downloaded where there is internet);
- DINOv2's torch.hub file (``dinov2_vitb14_pretrain.pth``, ``..._reg4_pretrain.pth``): a plain
  state dict in DINOv2's names, mapped key by key to the released Hugging Face names as
  transformers' conversion does (``blocks.i.attn.qkv`` split into query, key and value;
  ``ls1.gamma`` -> ``layer_scale1.lambda1``; giant's ``mlp.w12`` / ``w3`` -> ``weights_in``
  / ``weights_out``; ``register_tokens``; ``norm`` -> ``layernorm``).

Both then take the names of transformers' current modules (``q_proj`` ..., giant's
``weights_in`` split into ``gate_proj`` and ``up_proj``).

The position embedding of the released 37 x 37 grid is resampled to the model's grid as
DINOv2's ``interpolate_pos_encoding`` does it: bicubic in float32, with a scale factor of
(grid + 0.1) / 37 for the plain models and an output size with antialiasing for the register
models (their hub entries set ``interpolate_offset=0``, ``interpolate_antialias=True``).
Every file loads as data (``engine/untrusted.py``); a file of another size is refused with
its width and depth; what was loaded, dropped and left new is reported.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from torch.nn import functional as F

from gazefollow.engine.checkpoint import CheckpointError
from gazefollow.engine.untrusted import load_torch_file

POSITIONS = "embeddings.position_embeddings"
# DINOv2's names -> the names of the released Hugging Face files (transformers' conversion)
HUB_PREFIXES = [("cls_token", "embeddings.cls_token"), ("mask_token", "embeddings.mask_token"),
                ("register_tokens", "embeddings.register_tokens"), ("pos_embed", POSITIONS),
                ("patch_embed.proj.", "embeddings.patch_embeddings.projection."),
                ("norm.", "layernorm.")]
HUB_BLOCK_PARTS = [("attn.proj.", "attention.output.dense."),
                   ("ls1.gamma", "layer_scale1.lambda1"), ("ls2.gamma", "layer_scale2.lambda1"),
                   ("mlp.w12.", "mlp.weights_in."), ("mlp.w3.", "mlp.weights_out."),
                   ("norm1.", "norm1."), ("norm2.", "norm2."), ("mlp.fc1.", "mlp.fc1."),
                   ("mlp.fc2.", "mlp.fc2.")]
HUB_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
# the released files' names -> the modules of transformers 5.24 (requirements.txt), which
# renames them when it loads a file itself
CURRENT_PARTS = [("attention.attention.query.", "attention.q_proj."),
                 ("attention.attention.key.", "attention.k_proj."),
                 ("attention.attention.value.", "attention.v_proj."),
                 ("attention.output.dense.", "attention.o_proj."),
                 ("mlp.weights_out.", "mlp.down_proj.")]
NEW_ALLOWED = ("embeddings.mask_token",)  # unused by the features: may be absent from a file


def read_dinov2_state(source: str, log=print) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, "huggingface" | "hub") of a folder, a file or a model id."""
    path = Path(source)
    if path.is_dir():
        return _read_hf_folder(path), "huggingface"
    if path.is_file():
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = load_torch_file(path, "model.backbone_weights:", log=log)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                   for v in state.values()):
            raise CheckpointError(f"model.backbone_weights: {path} holds no state dict")
        return _strip(state), "hub" if "pos_embed" in state else "huggingface"
    if source.count("/") == 1 and not source.startswith((".", "/")):
        return _read_hf_folder(_download(source)), "huggingface"
    raise FileNotFoundError(f"model.backbone_weights: no folder or file at {source}")


def _download(model_id: str) -> Path:
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(model_id, allow_patterns=["config.json",
                                                                "model.safetensors"]))
    except Exception as err:  # noqa: BLE001  offline, unknown id, no access: one line
        raise FileNotFoundError(f"model.backbone_weights={model_id}: not a local folder, and "
                                f"the Hugging Face model could not be fetched ({err})") from None


def _read_hf_folder(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    weights = folder / "model.safetensors"
    if not (folder / "config.json").is_file() or not weights.is_file():
        raise FileNotFoundError(f"model.backbone_weights: {folder} is not a Hugging Face "
                                "folder (config.json + model.safetensors)")
    json.loads((folder / "config.json").read_text())  # a broken config is a broken folder
    return _strip(load_file(str(weights)))


def _strip(state: dict) -> dict:
    """Without the ``dinov2.`` prefix that transformers' task models add."""
    return {key.removeprefix("dinov2."): value for key, value in state.items()}


def hub_to_hf(state: dict[str, torch.Tensor]) -> tuple[dict, list[str]]:
    """(DINOv2's hub state dict in transformers' names, the keys with no place there)."""
    mapped, dropped = {}, []
    for key, value in state.items():
        block = HUB_BLOCK.fullmatch(key)
        if block:
            number, rest = block.groups()
            target = f"encoder.layer.{number}."
            if rest in ("attn.qkv.weight", "attn.qkv.bias"):
                kind = rest.rsplit(".", 1)[1]
                for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    mapped[f"{target}attention.attention.{name}.{kind}"] = part.clone()
                continue
            new = next((rest.replace(old, ours, 1) for old, ours in HUB_BLOCK_PARTS
                        if rest.startswith(old)), None)
        else:
            new = next((key.replace(old, ours, 1) for old, ours in HUB_PREFIXES
                        if key.startswith(old)), None)
            target = ""
        if new is None:
            dropped.append(key)
        else:
            mapped[target + new] = value
    return mapped, dropped


def released_to_current(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released files' names in the modules' names; giant's SwiGLU ``weights_in`` split
    into its gate (first half, as DINOv2's ``x1``) and up projections."""
    current = {}
    for key, value in state.items():
        if ".mlp.weights_in." in key:
            gate, up = value.chunk(2, dim=0)
            current[key.replace("weights_in", "gate_proj")] = gate
            current[key.replace("weights_in", "up_proj")] = up
            continue
        for old, new in CURRENT_PARTS:
            key = key.replace(old, new)
        current[key] = value
    return current


def resample_positions(positions: torch.Tensor, grid: int, registers: int) -> torch.Tensor:
    """[1, 1 + M*M, D] -> [1, 1 + grid*grid, D], as DINOv2's own code resamples them."""
    count = positions.shape[1] - 1
    side = int(math.sqrt(count))
    if side * side != count:
        raise CheckpointError(f"the position embedding holds {count} patch positions, not a "
                              "square grid")
    if side == grid:
        return positions
    dtype, width = positions.dtype, positions.shape[-1]
    patches = positions[:, 1:].float().reshape(1, side, side, width).permute(0, 3, 1, 2)
    if registers:  # the _reg4 hub entries: an output size, antialiased
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", antialias=True)
    else:  # interpolate_offset 0.1 (dino issue 8): a scale factor, not an output size
        scale = (grid + 0.1) / side
        patches = F.interpolate(patches, scale_factor=(scale, scale), mode="bicubic",
                                antialias=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, width)
    return torch.cat([positions[:, :1].float(), patches], dim=1).to(dtype)


def load_dinov2_weights(features, source: str, trust_pickle: bool = False, log=print) -> dict:
    """Load ``source`` into a ``DINOv2Features``; refuse (CheckpointError) a file whose
    tensors do not fit. -> the report {"layout", "loaded", "dropped", "new", "grid"}."""
    state, layout = read_dinov2_state(source, log)
    dropped = []
    if layout == "hub":
        state, dropped = hub_to_hf(state)
    state = released_to_current(state)
    own = features.model.state_dict()
    dropped += [key for key in state if key not in own]
    state = {key: value for key, value in state.items() if key in own}
    released_grid = int(math.sqrt(state[POSITIONS].shape[1] - 1)) if POSITIONS in state else 0
    if POSITIONS in state:
        state[POSITIONS] = resample_positions(state[POSITIONS], features.grid,
                                              features.registers)
    missing = [key for key in own if key not in state and key not in NEW_ALLOWED]
    mismatched = [f"{key} {list(state[key].shape)} (here {list(own[key].shape)})"
                  for key in state if state[key].shape != own[key].shape]
    if missing or mismatched:
        width = own["layernorm.weight"].shape[0]
        raise CheckpointError(
            f"model.backbone_weights: {source} does not fit DINOv2 '{features.size}' ({width} "
            f"wide, {features.registers} registers): {len(missing)} missing (first: "
            f"{missing[:3]}), {len(mismatched)} of another shape (first: {mismatched[:2]})")
    features.model.load_state_dict(state, strict=False)
    report = {"layout": layout, "loaded": len(state), "dropped": dropped,
              "new": [key for key in own if key not in state],
              "grid": [released_grid, features.grid]}
    log(f"DINOv2 weights {source} ({layout} layout): {len(state)} tensors loaded, position "
        f"grid {released_grid} -> {features.grid}; dropped {dropped or 'none'}; kept their "
        f"initialisation: {report['new'] or 'none'}")
    return report
