"""The one rule for every folder gazefollow writes into on a user's behalf (a generated
world, an export, a demo output): a non-empty folder is replaced only when asked, and only
when it holds what this project wrote there; a user's folder is never touched."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def refuse_to_replace(folder: Path, overwrite: bool, is_ours: Callable[[Path], bool],
                      when_not_empty: str, when_not_ours: str) -> None:
    """FileExistsError when ``folder`` is non-empty and not to be replaced: without
    ``overwrite`` (``when_not_empty`` follows the folder's name in the message), or when
    ``is_ours(folder)`` is False (``when_not_ours``)."""
    folder = Path(folder)
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; {when_not_empty}")
    if not is_ours(folder):
        raise FileExistsError(f"{folder} {when_not_ours}")
