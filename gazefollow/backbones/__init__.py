"""The backbones every task shares (ResNet, MobileNetV2 and GazeNet's features, the ViT) and
their registry. A backbone registers by being in this package: a module here that sets
``BACKBONE`` (``base.Backbone``) is found on first use, so adding one is one file."""
from __future__ import annotations

import difflib
import functools

from gazefollow.backbones.base import Backbone
from gazefollow.engine.discovery import members


@functools.cache
def backbones() -> dict[str, Backbone]:
    """{name: backbone} of the modules of this package that set ``BACKBONE``."""
    return {backbone.name: backbone for backbone in members(__name__, __path__, "BACKBONE")}


def backbone_config_sections() -> tuple[tuple[str, type], ...]:
    """The config keys of every backbone (a task whose models build backbones lists these
    among its config sections)."""
    return tuple(("model", backbone.config) for backbone in backbones().values()
                 if backbone.config is not None)


def backbone_problem(name: str, model_cfg, image_size: int) -> str | None:
    """Why ``name`` cannot be built from this config (None: it can)."""
    known = backbones()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"no backbone named '{name}'; the backbones are {sorted(known)}.{hint}"
    return known[name].problem(model_cfg, image_size)


def build_backbone(name: str, model_cfg, image_size: int):
    problem = backbone_problem(name, model_cfg, image_size)
    if problem:
        raise ValueError(problem)
    return backbones()[name].build(model_cfg, image_size)
