"""Registries that find their members by what is in their package: a module of the package
that sets the registry's attribute (``ENCODER``, ``BACKBONE`` ...) is a member, so adding one
is adding one file, and nothing registers itself by being imported somewhere else."""
from __future__ import annotations

import importlib
import pkgutil


def members(package: str, path, attribute: str) -> list:
    """The ``attribute`` of each module of ``package`` (at ``path``, its ``__path__``) that
    sets it, in module-name order."""
    found = []
    for module_info in pkgutil.iter_modules(path):
        module = importlib.import_module(f"{package}.{module_info.name}")
        member = getattr(module, attribute, None)
        if member is not None:
            found.append(member)
    return found
