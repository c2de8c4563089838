"""The gaze-encoder registry. An encoder registers by being in this package: a module here
that sets ``ENCODER`` (a ``GazeEncoder`` subclass with a ``name``) is found on first use, so
adding one is one file. An encoder defined elsewhere (a notebook, a test) registers with
``@register_encoder("name")``. The contract is in ``base.py``."""
from __future__ import annotations

import difflib
import functools

from gazefollow.engine.discovery import members
from gazefollow.following.encoders.base import (MODEL_OWN_PARTS, ConditioningWidths, GazeEncoder,
                                                model_parts)

_REGISTERED: dict[str, type[GazeEncoder]] = {}  # encoders from outside this package


def _check_encoder(name: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, GazeEncoder)):
        raise TypeError(f"encoder '{name}': {cls!r} is not a GazeEncoder")
    if set(cls.PARTS) & set(MODEL_OWN_PARTS) or not cls.PARTS:
        raise ValueError(f"{cls.__name__}.PARTS must name at least one part, none of "
                         f"{list(MODEL_OWN_PARTS)}")


@functools.cache
def _in_package() -> dict[str, type[GazeEncoder]]:
    """{name: encoder} of the modules of this package that set ``ENCODER``."""
    found = {cls.name: cls for cls in members(__name__, __path__, "ENCODER")}
    for name, cls in found.items():
        _check_encoder(name, cls)
    return found


def encoders() -> dict[str, type[GazeEncoder]]:
    return {**_in_package(), **_REGISTERED}


def register_encoder(name: str):
    """Class decorator for an encoder outside this package: ``model.encoder: <name>``."""
    def register(cls: type[GazeEncoder]) -> type[GazeEncoder]:
        _check_encoder(name, cls)
        known = encoders()
        if name in known and known[name] is not cls:
            raise ValueError(f"an encoder named '{name}' is already registered "
                             f"({known[name].__module__}.{known[name].__name__})")
        cls.name = name
        _REGISTERED[name] = cls
        return cls
    return register


def encoder_config_sections() -> tuple[tuple[str, type], ...]:
    """The ``model`` keys of every registered encoder, for the schema."""
    return tuple(("model", cls.CONFIG) for cls in encoders().values() if cls.CONFIG is not None)


def encoder_class(name: str) -> type[GazeEncoder]:
    known = encoders()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise KeyError(f"no encoder named '{name}'; registered: {sorted(known)}.{hint}")
    return known[name]


def build_encoder(model_cfg, data_cfg) -> GazeEncoder:
    encoder = encoder_class(model_cfg.encoder)(model_cfg, data_cfg)
    if not isinstance(getattr(encoder, "widths", None), ConditioningWidths):
        raise TypeError(f"encoder '{model_cfg.encoder}' must set self.widths "
                        "(a ConditioningWidths) in __init__")
    return encoder


__all__ = ["GazeEncoder", "MODEL_OWN_PARTS", "model_parts", "encoders", "register_encoder",
           "encoder_class", "build_encoder", "encoder_config_sections"]
