"""Crash-safe checkpoints: one directory per saved step under ``<run dir>/checkpoints``.

    checkpoints/step_0000500/state.pt    model, EMA, optimizer, LR schedule, counters, config
    checkpoints/step_0000500/rng_<k>.pt  process k's RNG states (Python, NumPy, torch, CUDA)
    checkpoints/step_0000500/COMPLETE    written last: only marked directories are resumed

A save writes into ``.tmp-step_N``, renames it into place, then writes the marker, so a
process killed at any moment leaves either the previous checkpoints untouched or a directory
that resume ignores. Rotation runs after the marker, so it never deletes the newest complete
checkpoint.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from gazefollow.engine.untrusted import UntrustedFileError, load_torch_file

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.pt"
MARKER = "COMPLETE"
LEGACY_FILE = "checkpoint.pt"  # the one-file layout of earlier versions: evaluated, not resumed


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or is not ours, named with the reason."""


def checkpoint_step(directory: Path) -> int:
    return int(directory.name.split("_")[-1])


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file() and (directory / STATE_FILE).is_file()


def _step_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted((d for d in root.glob("step_*") if d.is_dir()), key=checkpoint_step)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    return [d for d in _step_dirs(run_dir) if is_complete(d)]


def incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """Directories of interrupted saves (unmarked or still temporary): never resumed."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    temporary = sorted(root.glob(".tmp-step_*")) if root.is_dir() else []
    return [d for d in _step_dirs(run_dir) if not is_complete(d)] + temporary


def latest_checkpoint(run_dir: Path) -> Path | None:
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None


def find_resumable(run_dir: Path) -> Path | None:
    """The checkpoint a run resumes from; refuses a run directory in the one-file layout of
    earlier versions (no RNG states, no marker: it cannot resume exactly)."""
    latest = latest_checkpoint(run_dir)
    if latest is None and (Path(run_dir) / LEGACY_FILE).is_file():
        raise CheckpointError(f"{run_dir} holds a {LEGACY_FILE} from an earlier gazefollow "
                              "version, which cannot be resumed exactly: use another --tag, "
                              f"with run.init_weights={run_dir} to start from its weights, or "
                              "--no_resume to start this one afresh")
    return latest


def rng_state(device: torch.device) -> dict:
    """Every random stream a training step of this process can draw from (on a GPU, its own
    device's only: another machine may show a different number of GPUs), as plain data: the
    file loads with ``weights_only=True``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = {"bit_generator": name, "keys": torch.from_numpy(keys.astype(np.int64)),
                   "pos": int(position), "has_gauss": int(has_gauss),
                   "cached_gaussian": float(cached)}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):  # earlier versions stored numpy's own tuple
        numpy_state = (numpy_state["bit_generator"],
                       numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                       numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a power cut cannot reorder the marker first."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(accelerator, run_dir: Path, step: int, state: dict,
                    keep_last: int) -> Path:
    """Collective: every process calls it; each writes its RNG states, the main process the
    rest. Needs a filesystem all processes share (one machine, or a shared run directory)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    final, tmp = root / f"step_{step:07d}", root / f".tmp-step_{step:07d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # left by a save that was killed
        tmp.mkdir()
    accelerator.wait_for_everyone()
    try:
        torch.save(rng_state(accelerator.device), tmp / f"rng_{accelerator.process_index}.pt")
        if accelerator.is_main_process:
            torch.save(state, tmp / STATE_FILE)
    except OSError as err:  # a full disk, a quota, a vanished mount
        shutil.rmtree(tmp, ignore_errors=True)
        kept = latest_checkpoint(run_dir)
        raise CheckpointError(f"could not write the checkpoint of step {step} in {tmp}: {err}; "
                              f"the earlier checkpoints are untouched (newest: {kept}), and "
                              "the same command resumes from it once the disk has room") from None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for file in tmp.iterdir():
            _fsync(file)
        shutil.rmtree(final, ignore_errors=True)  # an unmarked directory of a killed save
        os.rename(tmp, final)
        marker = {"step": step, "processes": accelerator.num_processes,
                  "files": sorted(f.name for f in final.iterdir())}
        (final / MARKER).write_text(json.dumps(marker) + "\n")
        _fsync(final / MARKER)
        _fsync(root)
        rotate(run_dir, keep_last)
    accelerator.wait_for_everyone()
    return final


def rotate(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints (0 keeps all) and every
    interrupted save older than the newest complete one. -> the deleted directories."""
    complete = complete_checkpoints(run_dir)
    if not complete:
        return []
    newest = checkpoint_step(complete[-1])
    doomed = complete[:-keep_last] if keep_last > 0 else []
    doomed += [d for d in incomplete_checkpoints(run_dir) if checkpoint_step(d) < newest]
    for directory in doomed:
        shutil.rmtree(directory, ignore_errors=True)
    return doomed


def resolve_checkpoint(path: str | Path) -> Path:
    """The state file of: a state file, a checkpoint directory, or a run directory (its
    newest complete checkpoint)."""
    path = Path(path)
    if path.is_dir() and not (path / CHECKPOINTS_DIR).is_dir() and (path / LEGACY_FILE).is_file():
        return path / LEGACY_FILE
    if path.is_dir() and (path / CHECKPOINTS_DIR).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path} holds no complete checkpoint "
                                    f"(none of {path / CHECKPOINTS_DIR}/step_* has {MARKER})")
        path = latest
    if path.is_dir():
        if not is_complete(path):
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no {MARKER} or "
                                    f"{STATE_FILE}: its save was interrupted)")
        path = path / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.parent.parent.name == CHECKPOINTS_DIR and not (path.parent / MARKER).is_file():
        warnings.warn(f"{path}: its checkpoint folder has no {MARKER} marker, so its save may "
                      "have been interrupted; using it anyway because it was named directly",
                      stacklevel=2)
    return path


def run_dir_of(state_file: Path) -> Path:
    """The run directory a checkpoint's state file belongs to (evaluations are written there,
    not inside a checkpoint directory that rotation may delete)."""
    state_file = Path(state_file)
    if state_file.parent.parent.name == CHECKPOINTS_DIR:
        return state_file.parents[2]
    return state_file.parent


def migrate_model_keys(model_state: dict, stored_config: dict) -> dict:
    """Model weights of earlier versions under today's names: the heatmap head was the
    model's ``denoiser`` attribute, holding the UNet or the regression decoder."""
    if not any(key.startswith("denoiser.") for key in model_state):
        return model_state
    model_section = stored_config.get("model", {})
    head = model_section.get("head", model_section.get("decoder", "diffusion"))
    inner = "head.decoder." if head == "regression" else "head.denoiser."
    return {(inner + key[len("denoiser."):] if key.startswith("denoiser.") else key): value
            for key, value in model_state.items()}


def _migrate(state: dict) -> dict:
    """A checkpoint of an earlier version in today's names (weights, optimiser part names)."""
    from gazefollow.config import RENAMED_PARTS

    state["model"] = migrate_model_keys(state["model"], state["config"])
    for group in (state.get("optimizer") or {}).get("param_groups", []):
        if "name" in group:
            group["name"] = RENAMED_PARTS.get(group["name"], group["name"])
    return state


def reading_error(err: Exception) -> str:
    """An unreadable file's exception as one short line (pickle messages can span two)."""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"


def load_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict:
    """Read a checkpoint (see resolve_checkpoint) as data, refusing files that are not ours;
    one of an earlier version comes back in today's names."""
    path = resolve_checkpoint(path)
    try:
        state = load_torch_file(path, "checkpoint", trust_pickle)
    except UntrustedFileError:
        raise
    except Exception as err:  # noqa: BLE001  any unreadable file (pickle, zip, memory) is one error
        raise CheckpointError(f"cannot read checkpoint {path}: {reading_error(err)}") from None
    missing = {"model", "config", "step"} - set(state) if isinstance(state, dict) else {"model"}
    if missing:
        raise CheckpointError(f"{path} is not a gazefollow checkpoint (missing "
                              f"{sorted(missing)})")
    return _migrate(state)


def load_rng_state(checkpoint_dir: Path, process_index: int, device: torch.device) -> bool:
    """Restore this process's RNG streams; False when the checkpoint has none for it."""
    path = Path(checkpoint_dir) / f"rng_{process_index}.pt"
    if not path.is_file():
        return False
    try:
        state = load_torch_file(path, "RNG state")
    except UntrustedFileError:
        raise
    except Exception as err:  # noqa: BLE001  one named error, whatever broke the file
        raise CheckpointError(f"cannot read the RNG state {path}: {reading_error(err)}") \
            from None
    set_rng_state(state, device)
    return True
