"""Configs of earlier versions in today's keys. Each section part states its own earlier key
names (``RENAMED``) and what a stored config that predates a key ran with
(``STORED_DEFAULTS``, see ``sections.py``); this module applies them to a YAML layer, an
override or a stored config (a checkpoint's), so all of those keep working."""
from __future__ import annotations

from gazefollow.config.sections import declared, renamed_keys

RENAMED_PARTS = {"denoiser": "head"}  # optimiser part names in optim.part_lr / part_weight_decay


def _renamed(tree: dict, renames: dict) -> dict:
    """A nested config dict with the keys of earlier versions (``renames``: {old dotted key:
    new dotted key, or None to drop it}; RENAMED_PARTS) under today's names."""
    tree = {section: dict(values) if isinstance(values, dict) else values
            for section, values in tree.items()}
    for old, new in renames.items():
        old_section, old_key = old.split(".")
        if not (isinstance(tree.get(old_section), dict) and old_key in tree[old_section]):
            continue
        value = tree[old_section].pop(old_key)
        if new is not None:
            new_section, new_key = new.split(".")
            tree.setdefault(new_section, {})[new_key] = value
    optim = tree.get("optim")
    for table in ("part_lr", "part_weight_decay"):
        if isinstance(optim, dict) and isinstance(optim.get(table), dict):
            optim[table] = {RENAMED_PARTS.get(k, k): v for k, v in optim[table].items()}
    return tree


def migrate_stored(stored: dict, schema: type) -> dict:
    """A config stored by an earlier version (or by a registry with more tasks) in the keys
    of ``schema``: earlier names renamed, keys it predates given the value its runs had, and
    keys ``schema`` does not have (other tasks' or components') left out."""
    predates = {}
    for dotted, value in declared(schema, "STORED_DEFAULTS").items():
        section, key = dotted.split(".")
        if isinstance(stored.get(section), dict) and key not in stored[section]:
            predates[dotted] = value
    stored = _renamed(stored, renamed_keys(schema))
    run = stored.get("run", {})
    if "keep_snapshots" in run:  # one-file checkpoints + snapshots/ became checkpoints/
        run["keep_last"] = 0 if run.pop("keep_snapshots") else 1
    for dotted, value in predates.items():
        section, key = dotted.split(".")
        stored[section][key] = value
    # What this schema has no key for was written by a registry with more tasks or
    # components (a gaze-following export read by GazePredictor alone): no code here reads it.
    known = {section: set(item.type.__dataclass_fields__)
             for section, item in schema.__dataclass_fields__.items()}
    return {section: ({key: value for key, value in values.items() if key in known[section]}
                      if isinstance(values, dict) else values)
            for section, values in stored.items() if section in known}


def _nest(pairs: list) -> dict:
    """[(dotted key, value)] as a nested config dict."""
    tree: dict = {}
    for dotted, value in pairs:
        section, key = dotted.split(".", 1)
        tree.setdefault(section, {})[key] = value
    return tree
