"""What a backbone is: a name, how to build it from the model config at an input size, and
why a configuration cannot build it. The module it builds maps an image [B, 3, S, S] to a
feature map [B, C, h, w] and says C as ``out_channels``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


def _no_problem(model_cfg, image_size: int) -> Optional[str]:
    return None


@dataclass(frozen=True)
class Backbone:
    name: str  # the value of model.face_backbone
    build: Callable  # (model_cfg, image_size) -> nn.Module with out_channels
    problem: Callable = _no_problem  # (model_cfg, image_size) -> a reason, or None
    config: Optional[type] = None  # a dataclass of the ``model`` keys it reads (its section)
