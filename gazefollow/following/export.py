"""Weights in the Hugging Face convention: a folder with ``model.safetensors`` (the weights
that evaluate: EMA by default), ``config.json`` (the resolved config, with the version of
gazefollow that wrote it) and a short ``README.md`` (what it was trained on, its metrics)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gazefollow.config import to_dict
from gazefollow.engine.checkpoint import CheckpointError
from gazefollow.engine.folders import refuse_to_replace

WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "model.safetensors", "config.json", "README.md"
FORMAT = "gazefollow-export-1"


def is_export(directory: Path) -> bool:
    """Whether ``directory`` holds an export of ours: its config.json read and recognised."""
    try:
        stored = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get("format") == FORMAT


def save_exported(model, config, directory: str | Path, weights: str = "ema",
                  overwrite: bool = False, metrics: dict | None = None) -> Path:
    """Write the folder, load it back, and only then move it into place. A non-empty folder
    is refused unless ``overwrite``, and then replaced only when it holds an export of ours:
    a user's folder is never written into."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} is a file, not a folder")
    refuse_to_replace(directory, overwrite, is_export,
                      "choose another folder or pass overwrite=True (--overwrite) to replace "
                      "an export",
                      f"holds no {CONFIG_FILE} of a gazefollow export: it is not an export, so "
                      "it is left as it is")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.export-", dir=directory.parent))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
    (staging / CONFIG_FILE).write_text(json.dumps(
        {"format": FORMAT, "weights": weights, "config": to_dict(config)}, indent=2))
    (staging / CARD_FILE).write_text(model_card(config, weights, metrics))
    try:
        _check_loads_back(staging, state)
    except CheckpointError:
        shutil.rmtree(staging)
        raise
    directory.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE):
        os.replace(staging / name, directory / name)
    staging.rmdir()
    return directory


def _check_loads_back(directory: Path, state: dict) -> None:
    """An export that does not load back to the same tensors is never handed out."""
    model, _ = load_exported(directory)
    loaded = model.state_dict()
    differ = [k for k, v in state.items() if k not in loaded or not torch.equal(loaded[k], v)]
    if differ:
        raise CheckpointError(f"the export does not load back to the same weights ({len(differ)}"
                              f" tensors differ, first: {differ[:3]}); nothing was written")


def model_card(config, weights: str, metrics: dict | None) -> str:
    data, model = config.data, config.model
    lines = [
        "# gazefollow gaze-following weights", "",
        f"- model: `{model.encoder}` encoder, `{model.head}` head; {config.diffusion.prediction}"
        f" prediction, sampled with {config.sampling.sampler} {config.sampling.steps} step(s)",
        f"- trained on: `{data.source_dataset}` ({data.dataset_dir}), {data.input_size} px "
        f"scene, {data.output_size} px heatmap; {config.optim.epochs} epochs, tag "
        f"`{config.run.tag}`",
        f"- weights: {weights}", "",
        "Load with `GazePredictor.from_pretrained(\"<this folder>\")` "
        "(gazefollow/following/predict.py).",
    ]
    if metrics and isinstance(metrics.get("model"), dict):
        lines += ["", f"Test metrics ({metrics.get('info', {}).get('protocol', '')} protocol):",
                  "", "| metric | model | centre prior |", "|---|---|---|"]
        prior = metrics.get("center_prior", {})
        lines += [f"| {key} | {value:.4f} | {prior.get(key, float('nan')):.4f} |"
                  for key, value in metrics["model"].items() if isinstance(value, float)]
    return "\n".join(lines) + "\n"


def load_exported(directory: str | Path, overrides: list = ()) -> tuple:
    """(model, config) of an export; CheckpointError names what does not fit."""
    from gazefollow.engine.task import Registry
    from gazefollow.following.models.gaze_model import build_model
    from gazefollow.following.task import FOLLOWING

    directory = Path(directory)
    try:
        stored = json.loads((directory / CONFIG_FILE).read_text())
    except ValueError as err:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not valid JSON: {err}") from None
    if stored.get("format") != FORMAT or "config" not in stored:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not a gazefollow export "
                              f"(format {stored.get('format')!r}, expected {FORMAT!r})")
    # the gaze-following keys of the stored config (another task's sections are left out);
    # a frozen backbone's weights are in the export, not read again from where they came
    config = Registry({FOLLOWING.name: FOLLOWING}).build_config(
        overrides=["model.backbone_weights=null", *overrides], base=stored["config"])
    model = build_model(config)
    try:
        state = load_file(str(directory / WEIGHTS_FILE))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"cannot read {directory / WEIGHTS_FILE}: {err}") from None
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE} does not fit this version of gazefollow: "
            f"{len(result.missing_keys)} missing (first: {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (first: {result.unexpected_keys[:3]})")
    return model.eval(), config
