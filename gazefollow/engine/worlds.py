"""Generated (synthetic) datasets of any task: written atomically, marked complete by a
manifest of their settings, regenerated only when asked, never over a user's folder."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from gazefollow.engine.folders import refuse_to_replace
from gazefollow.engine.samples import BadInput

MANIFEST = "synthetic_world.json"  # written last: its presence marks a complete world


def refuse_to_overwrite(root: Path, overwrite: bool) -> None:
    """A non-empty folder is replaced only when asked, and only when it holds a world this
    project wrote (its manifest): a user's folder is never deleted."""
    refuse_to_replace(root, overwrite, lambda folder: (folder / MANIFEST).is_file(),
                      "choose another folder, or pass --overwrite to replace a synthetic "
                      "world written there",
                      f"is not a synthetic world written by gazefollow (no {MANIFEST}): it "
                      "is left as it is, even with --overwrite")


def write_manifest(root: Path, cfg, **facts) -> None:
    """The marker of a complete world written by this project (and its settings)."""
    (root / MANIFEST).write_text(json.dumps({"config": asdict(cfg), **facts}, indent=2))


def write_world_atomically(root: str | Path, overwrite: bool, write) -> Path:
    """Call ``write(folder)`` on a temporary folder beside ``root`` and rename it into place,
    so a world is complete or absent, never half written. An existing non-empty ``root`` is
    refused unless ``overwrite`` and it is a world we wrote (``refuse_to_overwrite``)."""
    root = Path(root)
    refuse_to_overwrite(root, overwrite)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def ensure_world(cfg, root: str | Path, generate, log=print) -> Path:
    """Generate the world on first use (``generate(cfg, root, log=log)``, the task's writer);
    refuse a folder generated with other settings (``cfg``, a dataclass)."""
    root = Path(root)
    manifest = root / MANIFEST
    if manifest.is_file():
        # settings added since a world was written have their defaults, its behaviour then
        stored = {**asdict(type(cfg)()), **json.loads(manifest.read_text())["config"]}
        if stored != asdict(cfg):
            diff = {k: (stored.get(k), v) for k, v in asdict(cfg).items() if stored.get(k) != v}
            raise BadInput(
                f"{root} holds a synthetic world generated with other settings "
                f"(stored vs requested: {diff}); delete it or set data.dataset_dir elsewhere."
            )
        return root
    if root.exists() and any(root.iterdir()):
        raise BadInput(f"{root} exists but has no {MANIFEST}: it is not a complete synthetic "
                         "world; delete it or set data.dataset_dir elsewhere.")
    return generate(cfg, root, log=log)
