"""Typed configuration: dataclass schemas (``schema.py``) merged with OmegaConf.

``build_config`` merges YAML layers and overrides onto the schema (or onto a stored config),
renames this project's earlier keys (``migrate.py``) and validates (``validation.py``). It
knows no task and no file of the original research code: the task registry
(``gazefollow.tasks.build_config``) passes the original's YAML reader and each task's own
checks. The names other modules use are importable from ``gazefollow.config``.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from gazefollow.config.migrate import (RENAMED_KEYS, RENAMED_PARTS, RETIRED_KEYS, _renamed,
                                       migrate_stored)
from gazefollow.config.schema import (CHOICES, LAYER_STACK, NOT_YET_SUPPORTED, Config, ConfigError,
                                      DataConfig, DiffusionConfig, EvalConfig, LoggingConfig,
                                      LossConfig, ModelConfig, OptimConfig, Override, RunConfig,
                                      SamplingConfig, SyntheticConfig, _all_keys, _suggest)
from gazefollow.config.validation import frozen_parts, get_key, validate


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except ConfigKeyError as err:
        bad = f"{err.full_key}" if getattr(err, "full_key", None) else str(err)
        raise ConfigError(f"{source}: unknown key '{bad}'.{_suggest(bad, _all_keys())}") from None
    except ValidationError as err:
        raise ConfigError(f"{source}: {err.msg} (key '{err.full_key}')") from None


def read_yaml(path: str | Path) -> Any:
    """One YAML file as plain containers (a missing file is a ConfigError naming it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return OmegaConf.to_container(OmegaConf.load(path))


def load_yaml(path: str | Path, log=None) -> DictConfig:
    """Read one YAML layer in this project's keys (earlier names renamed)."""
    content = read_yaml(path)
    if not isinstance(content, dict):
        return OmegaConf.create(content)
    return OmegaConf.create(_renamed(content))


def _override_node(item: Override) -> tuple[DictConfig, str]:
    if isinstance(item, tuple):
        key, value = item
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        # The schema types the value: "007" stays a string for a str key, becomes 7 for an int.
        return OmegaConf.create(_renamed(node)), f"{key}={value}"
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form section.key=value")
    key, raw = item.split("=", 1)
    if _schema_type(key) == "str":  # YAML would read "no", "off" ... as booleans
        return _override_node((key, raw.strip("'\"")))
    node = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
    return OmegaConf.create(_renamed(node)), item


def _schema_type(dotted: str) -> str | None:
    """The annotation of a schema key ("str", "int" ...), None for an unknown key."""
    section, _, name = dotted.partition(".")
    schemas = {f.name: f.default_factory for f in fields(Config)}
    if section not in schemas or not callable(schemas[section]):
        return None
    types = {f.name: f.type for f in fields(schemas[section]())}
    return types.get(name)


def build_config(
    yaml_files: list[str | Path] = (),
    overrides: list[Override] = (),
    base: Optional[dict] = None,
    *,
    read_layer=load_yaml,
    checks: tuple = (),
    flag_names: Optional[dict] = None,
) -> Config:
    """Merge YAML files (in order, each read by ``read_layer``) and overrides onto the schema
    (or onto ``base``, a stored config dict such as a checkpoint's), then validate: the
    engine's checks, then each of ``checks`` (config -> None, raising ConfigError).
    ``flag_names``: {key: command-line flag} named beside a refused key."""
    cfg = _schema()
    if base is not None:
        cfg = _merge(cfg, OmegaConf.create(migrate_stored(base)), "stored config")
    for path in yaml_files:
        cfg = _merge(cfg, read_layer(path), str(path))
    for item in overrides:
        node, source = _override_node(item)
        cfg = _merge(cfg, node, f"override '{source}'")
    config = OmegaConf.to_object(cfg)
    validate(config, flag_names or {})
    for check in checks:
        check(config)
    return config


@functools.lru_cache(maxsize=1)
def _schema() -> DictConfig:
    """The typed schema, built once: merges return new objects and never change it."""
    return OmegaConf.structured(Config)


def config_changes(stored: dict, config: Config) -> dict[str, list]:
    """{dotted key: [stored value, ``config``'s value]} for every key where a config stored by
    a checkpoint (of any version: migrated, with defaults for the keys it predates) differs
    from ``config``; sorted by key."""
    changes: dict[str, list] = {}

    def walk(a: dict, b: dict, prefix: str) -> None:
        for key in sorted(set(a) | set(b)):
            old, new = a.get(key), b.get(key)
            if isinstance(old, dict) and isinstance(new, dict):
                walk(old, new, f"{prefix}{key}.")
            elif old != new:
                changes[prefix + key] = [old, new]

    walk(to_dict(build_config(base=stored)), to_dict(config), "")
    return changes


def to_yaml(config: Config) -> str:
    """The resolved config as YAML (written to every run directory)."""
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(config)))


def to_dict(config: Config) -> dict:
    """The resolved config as plain containers (stored in every checkpoint); the schema's
    fields are plain values, lists and dicts, so ``asdict`` gives what OmegaConf would."""
    return asdict(config)


__all__ = ["ConfigError", "LAYER_STACK", "RunConfig", "SyntheticConfig", "DataConfig",
           "ModelConfig", "DiffusionConfig", "SamplingConfig", "LossConfig", "OptimConfig",
           "EvalConfig", "LoggingConfig", "Config", "NOT_YET_SUPPORTED", "CHOICES", "Override",
           "RENAMED_KEYS", "RENAMED_PARTS", "RETIRED_KEYS", "migrate_stored", "get_key",
           "frozen_parts", "validate", "build_config", "load_yaml", "read_yaml",
           "config_changes", "to_yaml", "to_dict"]
