"""Typed configuration: dataclass schemas (``schema.py``) merged with OmegaConf.

``build_config`` merges YAML layers and overrides onto the schema (or onto a stored config),
renames this project's earlier keys (``migrate.py``) and validates (``validation.py``). It
knows no task and no file of the original research code: the task registry
(``gazefollow.tasks.build_config``) passes the original's YAML reader and each task's own
checks. The names other modules use are importable from ``gazefollow.config``.
"""
from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from gazefollow.config.migrate import RENAMED_PARTS, _renamed, migrate_stored
from gazefollow.config.schema import (ENGINE_SECTIONS, LAYER_STACK, Config, ConfigError, DataConfig,
                                      EvalConfig, LoggingConfig, ModelConfig, OptimConfig, Override,
                                      RunConfig, _suggest)
from gazefollow.config.sections import all_keys, assemble_schema, declared, key_type, renamed_keys
from gazefollow.config.validation import get_key, validate


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except ConfigKeyError as err:
        bad = f"{err.full_key}" if getattr(err, "full_key", None) else str(err)
        keys = all_keys(OmegaConf.get_type(base))
        raise ConfigError(f"{source}: unknown key '{bad}'.{_suggest(bad, keys)}") from None
    except ValidationError as err:
        raise ConfigError(f"{source}: {err.msg} (key '{err.full_key}')") from None


def read_yaml(path: str | Path) -> Any:
    """One YAML file as plain containers (a missing file is a ConfigError naming it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return OmegaConf.to_container(OmegaConf.load(path))


def load_yaml(path: str | Path, log=None) -> DictConfig:
    """Read one YAML layer of this project (``build_config`` renames earlier key names)."""
    return OmegaConf.create(read_yaml(path))


def _renamed_layer(node: Any, renames: dict) -> Any:
    """A layer with the keys of earlier versions under today's names."""
    tree = OmegaConf.to_container(node) if isinstance(node, DictConfig) else node
    return OmegaConf.create(_renamed(tree, renames)) if isinstance(tree, dict) else node


def _override_node(item: Override, schema: type, renames: dict) -> tuple[DictConfig, str]:
    if isinstance(item, tuple):
        key, value = item
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        # The schema types the value: "007" stays a string for a str key, becomes 7 for an int.
        return _renamed_layer(node, renames), f"{key}={value}"
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form section.key=value")
    key, raw = item.split("=", 1)
    if key_type(schema, renames.get(key) or key) is str:  # YAML reads "no", "off" as booleans
        return _override_node((key, raw.strip("'\"")), schema, renames)
    node = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
    return _renamed_layer(node, renames), item


def build_config(
    yaml_files: list[str | Path] = (),
    overrides: list[Override] = (),
    base: Optional[dict] = None,
    *,
    schema: type = Config,
    read_layer=load_yaml,
    checks: tuple = (),
    flag_names: Optional[dict] = None,
):
    """Merge YAML files (in order, each read by ``read_layer``) and overrides onto the
    ``schema`` (a registry's assembled sections; by default the engine's alone), or onto
    ``base``, a stored config dict such as a checkpoint's; then validate: the engine's
    checks, then each of ``checks`` (config -> None, raising ConfigError). Keys of earlier
    versions are renamed in every layer. ``flag_names``: {key: command-line flag} named
    beside a refused key."""
    renames = renamed_keys(schema)
    cfg = _schema(schema)
    if base is not None:
        cfg = _merge(cfg, OmegaConf.create(migrate_stored(base, schema)), "stored config")
    for path in yaml_files:
        cfg = _merge(cfg, _renamed_layer(read_layer(path), renames), str(path))
    for item in overrides:
        node, source = _override_node(item, schema, renames)
        cfg = _merge(cfg, node, f"override '{source}'")
    config = OmegaConf.to_object(cfg)
    validate(config, flag_names or {})
    for check in checks:
        check(config)
    return config


@functools.lru_cache(maxsize=None)
def _schema(schema: type) -> DictConfig:
    """A schema's typed node, built once: merges return new objects and never change it."""
    return OmegaConf.structured(schema)


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

    walk(to_dict(build_config(base=stored, schema=type(config))), to_dict(config), "")
    return changes


def to_yaml(config: Config) -> str:
    """The resolved config as YAML (written to every run directory)."""
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(config)))


def to_dict(config: Config) -> dict:
    """The resolved config as plain containers (stored in every checkpoint); the schema's
    fields are plain values, lists and dicts, so ``asdict`` gives what OmegaConf would."""
    return asdict(config)


__all__ = ["ConfigError", "LAYER_STACK", "RunConfig", "DataConfig", "ModelConfig",
           "OptimConfig", "EvalConfig", "LoggingConfig", "Config", "ENGINE_SECTIONS",
           "Override", "RENAMED_PARTS", "assemble_schema", "declared", "renamed_keys",
           "migrate_stored", "get_key", "validate", "build_config", "load_yaml", "read_yaml",
           "config_changes", "to_yaml", "to_dict"]
