"""Weights in the Hugging Face convention, for every task: a folder with ``model.safetensors``
(the weights that evaluate: EMA by default), ``config.json`` (the resolved config; its
``run.task`` says which task's model it is) and a short ``README.md`` (what it was trained on,
its metrics). Each task's predictor saves and loads through here with its own ``Registry``
(``engine/task.py``), so an export of one task is refused by another's predictor by name."""
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


def save_exported(model, config, directory: str | Path, registry, weights: str = "ema",
                  overwrite: bool = False, metrics: dict | None = None,
                  describe: tuple = (), overrides: tuple = ()) -> Path:
    """Write the folder, load it back (``registry``, ``overrides``: as ``load_exported``),
    and only then move it into place. A non-empty folder is refused unless ``overwrite``, and
    then replaced only when it holds an export of ours: a user's folder is never written
    into. ``describe``: the model card's lines about the model."""
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
    (staging / CARD_FILE).write_text(model_card(config, weights, metrics, describe))
    try:
        _check_loads_back(staging, state, registry, overrides)
    except CheckpointError:
        shutil.rmtree(staging)
        raise
    directory.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE):
        os.replace(staging / name, directory / name)
    staging.rmdir()
    return directory


def _check_loads_back(directory: Path, state: dict, registry, overrides) -> None:
    """An export that does not load back to the same tensors is never handed out."""
    model, _ = load_exported(directory, registry, overrides)
    loaded = model.state_dict()
    differ = [k for k, v in state.items() if k not in loaded or not torch.equal(loaded[k], v)]
    if differ:
        raise CheckpointError(f"the export does not load back to the same weights ({len(differ)}"
                              f" tensors differ, first: {differ[:3]}); nothing was written")


def model_card(config, weights: str, metrics: dict | None, describe: tuple = ()) -> str:
    """README.md: the task, what the model is (``describe``), what it was trained on, its
    test metrics (with the run's baseline beside them where it has one)."""
    data = config.data
    lines = [
        f"# gazefollow weights: the `{config.run.task}` task", "",
        *[f"- {line}" for line in describe],
        f"- trained on: `{data.source_dataset}` ({data.dataset_dir}); {config.optim.epochs} "
        f"epochs, tag `{config.run.tag}`",
        f"- weights: {weights}", "",
        "Load with `from_pretrained(\"<this folder>\")` of the task's predictor "
        "(docs/predict.md of gazefollow).",
    ]
    if metrics and isinstance(metrics.get("model"), dict):
        baseline = next((metrics[k] for k in ("center_prior", "mean_gaze", "baseline")
                         if isinstance(metrics.get(k), dict)), {})
        lines += ["", f"Test metrics ({metrics.get('info', {}).get('protocol', '')} protocol):",
                  "", "| metric | model | baseline |", "|---|---|---|"]
        lines += [f"| {key} | {value:.4f} | {baseline.get(key, float('nan')):.4f} |"
                  for key, value in metrics["model"].items() if isinstance(value, float)]
    return "\n".join(lines) + "\n"


def load_exported(directory: str | Path, registry, overrides: tuple = ()) -> tuple:
    """(model, config) of an export, built by its task in ``registry`` (the stored config,
    then ``overrides``); CheckpointError names what does not fit, or the task when it is not
    among the registry's."""
    directory = Path(directory)
    try:
        stored = json.loads((directory / CONFIG_FILE).read_text())
    except ValueError as err:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not valid JSON: {err}") from None
    if stored.get("format") != FORMAT or "config" not in stored:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not a gazefollow export "
                              f"(format {stored.get('format')!r}, expected {FORMAT!r})")
    task = (stored["config"].get("run") or {}).get("task", "following")
    if task not in registry.tasks:
        raise CheckpointError(f"{directory} holds a model of the '{task}' task; this predictor "
                              f"loads the {sorted(registry.tasks)} task's (docs/predict.md)")
    # the task's keys of the stored config (another task's sections are left out)
    config = registry.build_config(overrides=list(overrides), base=stored["config"])
    model = registry.task_of(config).build_model(config)
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


def load_pretrained(path: str | Path, registry, ema: bool = True, overrides: tuple = (),
                    export_overrides: tuple = ()) -> tuple:
    """(model, config, "ema" or "raw") from an export folder (``export_overrides`` first) or
    a run directory, checkpoint directory or checkpoint file (``engine.evaluation
    .load_for_eval``), for every task's ``from_pretrained``."""
    from gazefollow.engine.evaluation import load_for_eval

    path = Path(path)
    if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        model, config = load_exported(path, registry, (*export_overrides, *overrides))
        return model, config, json.loads((path / CONFIG_FILE).read_text()).get("weights", "ema")
    if path.is_file() and path.suffix not in (".pt", *registry.foreign_checkpoints):
        raise ValueError(f"{path} is not a checkpoint of ours ({path.suffix}); for the "
                         "original research code's .pth files pass "
                         "registry=gazefollow.tasks.REGISTRY")
    loaded = load_for_eval(path, [f"optim.ema_on={ema}", *overrides], registry=registry)
    return loaded["model"], loaded["config"], loaded["weights"]


def task_of_weights(path: str | Path) -> str:
    """The task whose model a run directory, checkpoint, export folder or file holds (its
    stored ``run.task``); a file of another code base (a published model's) is gaze
    following's, the one task that reads such files."""
    from gazefollow.engine.checkpoint import (LEGACY_FILE, STATE_FILE, load_checkpoint,
                                              resolve_checkpoint)

    path = Path(path)
    if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        try:
            stored = json.loads((path / CONFIG_FILE).read_text())
        except ValueError as err:
            raise CheckpointError(f"{path / CONFIG_FILE} is not valid JSON: {err}") from None
        return ((stored.get("config") or {}).get("run") or {}).get("task", "following")
    state_file = resolve_checkpoint(path)
    if state_file.name not in (STATE_FILE, LEGACY_FILE):
        return "following"
    return (load_checkpoint(state_file)["config"].get("run") or {}).get("task", "following")
