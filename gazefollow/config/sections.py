"""The schema assembled from parts. The engine declares its own sections (``schema.py``);
each task and each of its components (an encoder, a head, a backbone) declares the section,
or the keys of a shared section, that it reads, in a small dataclass next to its code. A
registry lists ``(section, dataclass)`` pairs and ``assemble_schema`` turns them into one
``Config`` class with one typed class per section.

Besides its fields, a part may state (as plain class attributes):

- ``CHOICES``: {key: allowed values} of its string keys;
- ``RENAMED``: {earlier dotted key: its key here}, so stored configs, YAML files and
  overrides written with an earlier name keep working (``None`` as the key here: the earlier
  key set nothing and is dropped);
- ``STORED_DEFAULTS``: {key: value} a stored config that predates the key gets instead of
  today's default (what the runs of that version did).
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

Spec = tuple[tuple[str, type], ...]  # ((section name, part), ...) in order


class SchemaError(TypeError):
    """Parts that cannot form one schema (a key declared twice)."""


def _field_specs(section: str, parts: tuple[type, ...]) -> list[tuple]:
    specs, owner = [], {}
    for part in parts:
        hints = typing.get_type_hints(part)
        for item in dataclasses.fields(part):
            if item.name in owner:
                raise SchemaError(f"config key {section}.{item.name} is declared by both "
                                  f"{owner[item.name].__qualname__} and {part.__qualname__}")
            owner[item.name] = part
            default = ({"default_factory": item.default_factory}
                       if item.default_factory is not dataclasses.MISSING
                       else {"default": item.default})
            specs.append((item.name, hints[item.name], dataclasses.field(**default)))
    return specs


@functools.cache
def section_class(section: str, parts: tuple[type, ...]) -> type:
    """One section's class: a lone part is its own class; several are merged into one
    dataclass holding the keys of each, in order."""
    if len(parts) == 1:
        return parts[0]
    name = "".join(word.title() for word in section.split("_")) + "Config"
    cls = dataclasses.make_dataclass(name, _field_specs(section, parts),
                                     namespace={"__reduce__": _reduce_section})
    cls.__module__ = __name__
    cls.__doc__ = f"The {section} section: the keys of " + \
        ", ".join(part.__qualname__ for part in parts)
    cls.PARTS = parts
    return cls


def _reduce_section(self) -> tuple:
    """Pickle a merged section by its parts (the class itself is made at run time)."""
    values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
    return _rebuild_section, (_section_name(self), type(self).PARTS, values)


def _section_name(section_obj) -> str:
    return type(section_obj).SECTION


def _rebuild_section(section: str, parts: tuple[type, ...], values: dict):
    return section_class(section, parts)(**values)


def sections_of(spec: Spec) -> dict[str, tuple[type, ...]]:
    """{section: its parts} in the order sections first appear (a part listed twice, as a
    backbone every task names, counts once)."""
    grouped: dict[str, list[type]] = {}
    for section, part in spec:
        parts = grouped.setdefault(section, [])
        if part not in parts:
            parts.append(part)
    return {section: tuple(parts) for section, parts in grouped.items()}


@functools.cache
def assemble_schema(spec: Spec) -> type:
    """The ``Config`` class of these sections: one field per section, each a typed class."""
    classes = {}
    for section, parts in sections_of(spec).items():
        classes[section] = section_class(section, parts)
        classes[section].SECTION = section
    cls = dataclasses.make_dataclass(
        "Config", [(section, sub, dataclasses.field(default_factory=sub))
                   for section, sub in classes.items()],
        namespace={"__reduce__": _reduce_config})
    cls.__module__ = __name__
    cls.__doc__ = "The configuration: " + ", ".join(classes)
    cls.SPEC = spec
    return cls


def _reduce_config(self) -> tuple:
    values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
    return _rebuild_config, (type(self).SPEC, values)


def _rebuild_config(spec: Spec, values: dict):
    return assemble_schema(spec)(**values)


def _parts(schema: type) -> list[tuple[str, type]]:
    return [(section, part) for section, parts in sections_of(schema.SPEC).items()
            for part in parts]


def declared(schema: type, attribute: str) -> dict[str, Any]:
    """{section.key: value} of one declaration (CHOICES, STORED_DEFAULTS) over the parts."""
    return {f"{section}.{key}": value for section, part in _parts(schema)
            for key, value in getattr(part, attribute, {}).items()}


def renamed_keys(schema: type) -> dict[str, str | None]:
    """{earlier dotted key: today's dotted key, or None for a key that is dropped}."""
    return {old: (f"{section}.{new}" if new is not None else None)
            for section, part in _parts(schema)
            for old, new in getattr(part, "RENAMED", {}).items()}


def key_type(schema: type, dotted: str):
    """The type of a schema key (str, int, ...), None for an unknown key."""
    section, _, name = dotted.partition(".")
    sections = {item.name: item.type for item in dataclasses.fields(schema)}
    if section not in sections:
        return None
    return typing.get_type_hints(sections[section]).get(name)


def all_keys(schema: type) -> list[str]:
    """Every dotted key of the schema."""
    return [f"{item.name}.{key.name}" for item in dataclasses.fields(schema)
            for key in dataclasses.fields(item.type)]
