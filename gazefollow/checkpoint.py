"""Checkpoints: one file holding model, EMA, optimizer, LR schedule, step and resolved config."""
from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, then rename: a crash mid-write never leaves a torn file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def resolve_checkpoint(path_or_dir: str | Path) -> Path:
    """A checkpoint file, or a run directory holding ``checkpoint.pt``."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def load_checkpoint(path_or_dir: str | Path) -> dict:
    path = resolve_checkpoint(path_or_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError) as err:
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from None
    missing = {"model", "config", "step"} - set(state)
    if missing:
        raise RuntimeError(f"{path} is not a gazefollow checkpoint (missing {sorted(missing)})")
    return state


def load_init_weights(model: torch.nn.Module, path: str | Path, key_map: dict[str, str],
                      log=print) -> None:
    """Load weights for initialisation, renaming key prefixes by ``key_map`` (old -> new).

    Keys absent from the file stay as initialised (counted in the log); keys the model does not
    have, or whose shapes differ, raise: a silent partial load hides a wrong mapping.
    """
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("model", state) if isinstance(state, dict) else state
    renamed = {}
    for key, value in state.items():
        for old, new in key_map.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    own = model.state_dict()
    unexpected = sorted(k for k in renamed if k not in own)
    mismatched = sorted(k for k in renamed if k in own and own[k].shape != renamed[k].shape)
    if unexpected or mismatched:
        raise ValueError(
            f"{path}: {len(unexpected)} keys unknown to the model (first: {unexpected[:5]}), "
            f"{len(mismatched)} with other shapes (first: {mismatched[:5]}); "
            "set run.init_key_map to rename prefixes")
    model.load_state_dict(renamed, strict=False)
    log(f"init weights {path}: loaded {len(renamed)} tensors, "
        f"{len(own) - len(renamed)} left as initialised")
