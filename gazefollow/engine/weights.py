"""A model's weights in a checkpoint: the trained ones only.

Frozen parameters (``requires_grad`` off: a frozen encoder part, frozen ViT blocks, a frozen
foundation backbone) never change during a run, so a checkpoint does not repeat them: they
come back from where the run got them, the seeded build of the model and the initial-weights
file the run started from (resolved when it started, and recorded as ``frozen["source"]``,
so a run folder that gains checkpoints later still gives the same file). The checkpoint
keeps their names and a checksum, so a model rebuilt with other frozen weights is refused
instead of evaluated. Buffers are always saved.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch import nn

from gazefollow.engine.checkpoint import resolve_checkpoint


class FrozenWeightsError(ValueError):
    """A checkpoint's trained weights do not fit the model's frozen ones."""


def frozen_names(net: nn.Module) -> list[str]:
    """The state-dict names of the model's frozen parameters, in model order."""
    return [name for name, parameter in net.named_parameters() if not parameter.requires_grad]


def checksum(net: nn.Module, names: list[str]) -> float:
    """A float64 sum over the named parameters (their sums and sums of squares)."""
    params = dict(net.named_parameters())
    total = 0.0
    for name in names:
        values = params[name].detach().double()
        total += float(values.sum()) + float((values * values).sum())
    return total


def trained_state(net: nn.Module, source: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """(the state dict without the frozen parameters, {"names", "checksum", "source"} of
    those; ``source``: the initial-weights file the run started from, or None)."""
    frozen = frozen_names(net)
    skipped = set(frozen)
    state = {key: value for key, value in net.state_dict().items() if key not in skipped}
    return state, {"names": frozen, "checksum": checksum(net, frozen),
                   "source": source if frozen else None}


def resolved_source(path: str) -> str:
    """The file ``run.init_weights`` names now (a run or checkpoint folder: its newest
    checkpoint), absolute."""
    path = Path(path)
    return str((resolve_checkpoint(path) if path.is_dir() else path).resolve())


def restore_frozen(net: nn.Module, stored: dict, run_cfg, init_weights, where: str) -> None:
    """A checkpoint's frozen parameters into ``net`` from the file the run started from (the
    seeded build gave the others); a no-op for checkpoints that store them all."""
    frozen = stored.get("frozen") or {}
    source = frozen.get("source")
    if not frozen.get("names") or not source:
        return
    if not Path(source).is_file():
        raise FrozenWeightsError(
            f"{where} does not store its {len(frozen['names'])} frozen parameters: they come "
            f"from {source}, the initial weights the run started from, which is not there "
            "now; put that file back at that path to resume or evaluate the run")
    if init_weights is None:
        raise FrozenWeightsError(f"{where}: its frozen parameters come from {source}, and "
                                 "this task loads no initial weights")
    init_weights(net, dataclasses.replace(run_cfg, init_weights=source), lambda *_: None)


def load_trained_state(net: nn.Module, stored: dict, where: str) -> None:
    """A checkpoint's model weights into ``net``: every key when the checkpoint holds the
    frozen parameters too (checkpoints before this rule, or a run without frozen ones); else
    the trained ones, after checking that ``net``'s frozen parameters are the run's."""
    frozen = stored.get("frozen") or {"names": []}
    if not frozen["names"]:
        net.load_state_dict(stored["model"])
        return
    result = net.load_state_dict(stored["model"], strict=False)
    missing, expected = set(result.missing_keys), set(frozen["names"])
    if missing != expected or result.unexpected_keys:
        raise FrozenWeightsError(
            f"{where}: its weights do not fit this model (missing {sorted(missing - expected)[:5]},"
            f" unexpected {sorted(result.unexpected_keys)[:5]}, frozen in the checkpoint but not "
            f"here {sorted(expected - missing)[:5]})")
    now = checksum(net, frozen["names"])
    if not math.isclose(now, frozen["checksum"], rel_tol=1e-9, abs_tol=1e-9):
        raise FrozenWeightsError(
            f"{where} does not store its {len(expected)} frozen parameters, and the ones this "
            f"model was rebuilt with differ from the run's (checksum {now:.6g}, the run's "
            f"{frozen['checksum']:.6g}): the model's build or the initial-weights file "
            f"({frozen.get('source') or 'none'}) is not what the run started from")
