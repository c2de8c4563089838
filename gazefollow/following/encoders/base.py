"""The contract every gaze encoder follows.

An encoder is a ``GazeEncoder`` subclass with a ``name`` (``model.encoder: <name>``). It must:

- take ``(model_cfg, data_cfg)`` (the ``model`` and ``data`` config sections: its own
  keys, and the input, face and heatmap sizes);
- set ``self.widths`` (``ConditioningWidths``) in ``__init__``;
- map a batch (``image`` [B, 3, S, S], ``head_channel`` [B, 1, S, S], ``face`` [B, 3, F, F],
  ``head_box`` [B, 4] normalised xyxy) to a ``Conditioning``;
- declare the ``model`` keys it adds in ``CONFIG`` (a dataclass; they join the schema);
- name its parameter parts in ``PARTS`` (part -> attribute names of its submodules). Each
  part gets its own optimiser group (``optim.part_lr.<part>``); ``RESNET_PARTS`` lists the
  parts an ImageNet ResNet file may initialise (``run.init_resnet_parts``).
"""
from __future__ import annotations

import abc
from typing import ClassVar, Optional

from torch import nn

from gazefollow.following.models.conditioning import Conditioning, ConditioningWidths

# Parts of every model beside its encoder's: the heatmap head and the in/out head.
MODEL_OWN_PARTS = ("head", "inout_head", "temporal")  # temporal: with model.temporal

class GazeEncoder(nn.Module, abc.ABC):
    """Base class: batch -> Conditioning, with declared widths and parameter parts."""

    name: ClassVar[str] = ""  # model.encoder
    PARTS: ClassVar[dict[str, tuple[str, ...]]] = {}
    RESNET_PARTS: ClassVar[tuple[str, ...]] = ()
    # a dataclass of the model keys it adds to the config (None: it reads only shared ones)
    CONFIG: ClassVar[Optional[type]] = None
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


def model_parts(encoder: type[GazeEncoder]) -> tuple[str, ...]:
    """Every optimiser part of a model with this encoder, in group order."""
    return (*encoder.PARTS, *MODEL_OWN_PARTS)
