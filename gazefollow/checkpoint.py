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
    """Read a checkpoint (file or run directory), refusing files that are not ours."""
    path = resolve_checkpoint(path_or_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError) as err:
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from None
    missing = {"model", "config", "step"} - set(state)
    if missing:
        raise RuntimeError(f"{path} is not a gazefollow checkpoint (missing {sorted(missing)})")
    return state


def rename_keys(state: dict, key_map: dict[str, str | None]) -> tuple[dict, int]:
    """Rename key prefixes by ``key_map`` (old -> new; the first matching prefix wins, so put
    the empty prefix last); a prefix mapped to None drops its keys. -> (renamed, dropped)."""
    renamed, dropped = {}, 0
    for key, value in state.items():
        for old, new in key_map.items():
            if key.startswith(old):
                if new is None:
                    dropped += 1
                    key = None
                else:
                    key = new + key[len(old):]
                break
        if key is not None:
            renamed[key] = value
    return renamed, dropped


def load_init_weights(model: torch.nn.Module, path: str | Path,
                      key_map: dict[str, str | None], log=print) -> None:
    """Load weights for initialisation, renaming key prefixes by ``key_map`` (see rename_keys).

    Model keys absent from the file stay as initialised (counted in the log); file keys the
    model does not have, or whose shapes differ, raise: a silent partial load hides a wrong
    mapping. A gazefollow checkpoint's "model" entry is used when the file is one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run.init_weights: no file at {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("model", state) if isinstance(state, dict) else state
    renamed, dropped = rename_keys(state, key_map)
    own = model.state_dict()
    unexpected = sorted(k for k in renamed if k not in own)
    mismatched = sorted(k for k in renamed if k in own and own[k].shape != renamed[k].shape)
    if unexpected or mismatched:
        raise ValueError(
            f"{path}: {len(unexpected)} keys unknown to the model (first: {unexpected[:5]}), "
            f"{len(mismatched)} with other shapes (first: {mismatched[:5]}); "
            "set run.init_key_map to rename prefixes")
    model.load_state_dict(renamed, strict=False)
    log(f"init weights {path}: loaded {len(renamed)} tensors, dropped {dropped} by the key map, "
        f"{len(own) - len(renamed)} model tensors left as initialised")
