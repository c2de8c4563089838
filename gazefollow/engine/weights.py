"""A model's weights in a checkpoint: the trained ones only.

Frozen parameters (``requires_grad`` off: a frozen encoder part, frozen ViT blocks, a frozen
foundation backbone) never change during a run, so a checkpoint does not repeat them: they
come back from where the run got them (``run.init_weights``, a pretrained backbone, or the
seeded build of the model). The checkpoint keeps their names and a checksum, so a model
rebuilt with other frozen weights is refused instead of evaluated. Buffers are always saved.
"""
from __future__ import annotations

import math

import torch
from torch import nn


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


def trained_state(net: nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
    """(the state dict without the frozen parameters, {"names", "checksum"} of those)."""
    frozen = frozen_names(net)
    skipped = set(frozen)
    state = {key: value for key, value in net.state_dict().items() if key not in skipped}
    return state, {"names": frozen, "checksum": checksum(net, frozen)}


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
            f"{where} does not store its {len(expected)} frozen parameters (they come from "
            "where the run got them), and the ones this model was built with differ from the "
            f"run's (checksum {now:.6g}, the run's {frozen['checksum']:.6g}): set "
            "run.init_weights to the file the run started from")
