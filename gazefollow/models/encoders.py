"""Gaze encoders: a small registry and the contract every encoder follows.

To add one, write a ``GazeEncoder`` subclass anywhere, decorate it with
``@register_encoder("name")`` and set ``model.encoder: name``. It must:

- take ``(model_cfg, data_cfg)`` (the ``model`` and ``data`` config sections: its own
  keys, and the input, face and heatmap sizes);
- set ``self.widths`` (``ConditioningWidths``) in ``__init__``;
- map a batch (``image`` [B, 3, S, S], ``head_channel`` [B, 1, S, S], ``face`` [B, 3, F, F],
  ``head_box`` [B, 4] normalised xyxy) to a ``Conditioning``;
- name its parameter parts in ``PARTS`` (part -> attribute names of its submodules). Each
  part gets its own optimiser group (``optim.part_lr.<part>``); ``RESNET_PARTS`` lists the
  parts an ImageNet ResNet file may initialise (``run.init_resnet_parts``).
"""
from __future__ import annotations

import abc
import difflib
from typing import ClassVar

from torch import nn

from gazefollow.models.conditioning import Conditioning, ConditioningWidths

# Parts of every model beside its encoder's: the heatmap head and the in/out head.
MODEL_OWN_PARTS = ("head", "inout_head", "temporal")  # temporal: with model.temporal

_ENCODERS: dict[str, type[GazeEncoder]] = {}


class GazeEncoder(nn.Module, abc.ABC):
    """Base class: batch -> Conditioning, with declared widths and parameter parts."""

    PARTS: ClassVar[dict[str, tuple[str, ...]]] = {}
    RESNET_PARTS: ClassVar[tuple[str, ...]] = ()
    widths: ConditioningWidths

    @abc.abstractmethod
    def forward(self, batch: dict) -> Conditioning:
        """The batch's conditioning (see the module docstring for the batch keys)."""

    @classmethod
    def config_problem(cls, model_cfg, data_cfg) -> str | None:
        """Why this encoder cannot be built from these config sections (None: it can); the
        config is refused with that reason before anything runs."""
        for key in ("adm_attention_module", "depth_branch"):
            if getattr(model_cfg, key):
                return f"model.{key} is an option of the original encoder (model.encoder=original)"
        return None

    def part_modules(self, part: str) -> dict[str, nn.Module]:
        """{attribute name: submodule} of one part (attributes set to None are absent)."""
        modules = {name: getattr(self, name, None) for name in self.PARTS[part]}
        return {name: module for name, module in modules.items() if module is not None}


def register_encoder(name: str):
    """Class decorator: make an encoder available as ``model.encoder: <name>``."""
    def register(cls: type[GazeEncoder]) -> type[GazeEncoder]:
        if not (isinstance(cls, type) and issubclass(cls, GazeEncoder)):
            raise TypeError(f"register_encoder('{name}'): {cls!r} is not a GazeEncoder")
        if name in _ENCODERS and _ENCODERS[name] is not cls:
            raise ValueError(f"an encoder named '{name}' is already registered "
                             f"({_ENCODERS[name].__module__}.{_ENCODERS[name].__name__})")
        if set(cls.PARTS) & set(MODEL_OWN_PARTS) or not cls.PARTS:
            raise ValueError(f"{cls.__name__}.PARTS must name at least one part, none of "
                             f"{list(MODEL_OWN_PARTS)}")
        _ENCODERS[name] = cls
        return cls
    return register


def encoder_class(name: str) -> type[GazeEncoder]:
    if name not in _ENCODERS:
        close = difflib.get_close_matches(name, list(_ENCODERS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise KeyError(f"no encoder named '{name}'; registered: {sorted(_ENCODERS)}.{hint}")
    return _ENCODERS[name]


def model_parts(encoder: type[GazeEncoder]) -> tuple[str, ...]:
    """Every optimiser part of a model with this encoder, in group order."""
    return (*encoder.PARTS, *MODEL_OWN_PARTS)


def build_encoder(model_cfg, data_cfg) -> GazeEncoder:
    encoder = encoder_class(model_cfg.encoder)(model_cfg, data_cfg)
    if not isinstance(getattr(encoder, "widths", None), ConditioningWidths):
        raise TypeError(f"encoder '{model_cfg.encoder}' must set self.widths "
                        "(a ConditioningWidths) in __init__")
    return encoder


# The built-in encoders register themselves on import (after the names above exist).
from gazefollow.models import original, resnet_pair  # noqa: E402,F401
