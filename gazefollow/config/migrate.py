"""This project's earlier key names (``RENAMED_KEYS``): stored configs (checkpoints), YAML
files and overrides written with them keep working; nothing else reads the old names."""
from __future__ import annotations

from typing import Any

# Keys of earlier gazefollow versions -> today's. Stored configs (checkpoints), YAML files and
# overrides written with them keep working; nothing else in the project reads the old names.
RENAMED_KEYS = {
    "model.decoder": "model.head",
    "data.gaze_point_threshold": "data.padding_threshold",
    "loss.x_loss": "loss.inout_bce",
    "loss.x_loss_weight": "loss.inout_weight",
    "diffusion.random_flag": "diffusion.random_sigma",
    "diffusion.fix_snr": "diffusion.zero_terminal_snr",
    "diffusion.sampler": "sampling.sampler",
    "diffusion.sample_time_steps": "sampling.steps",
    "diffusion.clip_denoised": "sampling.clip_denoised",
    "diffusion.eval_from_picture": "sampling.start_from_picture",
    "diffusion.time_noise": "sampling.start_timestep",
}


RENAMED_PARTS = {"denoiser": "head"}  # optimiser part names in optim.part_lr / part_weight_decay


# Keys of earlier versions that set nothing (the original never read their flags): dropped.
RETIRED_KEYS = ("model.attention_layout", "optim.lr_anneal_steps")


def _renamed(tree: dict) -> dict:
    """A nested config dict with the keys of earlier versions (RENAMED_KEYS, RENAMED_PARTS)
    under today's names."""
    tree = {section: dict(values) if isinstance(values, dict) else values
            for section, values in tree.items()}
    for old, new in RENAMED_KEYS.items():
        old_section, old_key = old.split(".")
        if isinstance(tree.get(old_section), dict) and old_key in tree[old_section]:
            new_section, new_key = new.split(".")
            tree.setdefault(new_section, {})[new_key] = tree[old_section].pop(old_key)
    for retired in RETIRED_KEYS:
        section, key = retired.split(".")
        if isinstance(tree.get(section), dict):
            tree[section].pop(key, None)
    optim = tree.get("optim")
    for table in ("part_lr", "part_weight_decay"):
        if isinstance(optim, dict) and isinstance(optim.get(table), dict):
            optim[table] = {RENAMED_PARTS.get(k, k): v for k, v in optim[table].items()}
    return tree


def _nest(pairs: list[tuple[str, Any]]) -> dict:
    tree: dict = {}
    for dotted, value in pairs:
        section, key = dotted.split(".", 1)
        tree.setdefault(section, {})[key] = value
    return tree


def migrate_stored(stored: dict) -> dict:
    """A config stored by an earlier version, in today's keys (so old runs still evaluate)."""
    stored = _renamed(stored)
    run = stored.get("run", {})
    if "keep_snapshots" in run:  # one-file checkpoints + snapshots/ became checkpoints/
        run["keep_last"] = 0 if run.pop("keep_snapshots") else 1
    model = stored.get("model")
    if model is not None and "unet_patch_size" not in model:  # UNets before the key existed
        model["unet_patch_size"] = 1  # ran at the heatmap resolution
    return stored
