"""Files from elsewhere are data, never code.

A pickle can name any Python function to call while it loads, so a tampered weights file or
annotation pickle could run any command. Every file we did not write in this process loads
here: torch files with ``torch.load(..., weights_only=True)`` (tensors, numbers, strings,
plain containers and numpy arrays), dataset pickles through an unpickler that builds the same
kinds of data and nothing else. A file that needs other Python objects (an older checkpoint
holding an ``argparse.Namespace``, say) loads only when the user opts in with
``run.trust_pickle=true`` / ``--trust_pickle``, and then with a warning naming the file.
"""
from __future__ import annotations

import builtins
import codecs
import collections
import pickle
import re
from pathlib import Path

import numpy as np
import torch
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

TRUST_HINT = "run.trust_pickle=true (--trust_pickle)"
GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")
UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")

# What rebuilds a numpy array or scalar: data only (an object array's items are rebuilt by
# the same restricted unpickler, so they too are data).
NUMPY_DTYPE_CLASSES = sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGUSV"},
                             key=lambda cls: cls.__name__)
NUMPY_DATA_GLOBALS = [_multiarray._reconstruct, _multiarray.scalar, np.ndarray, np.dtype,
                      *NUMPY_DTYPE_CLASSES]

# (module, name) -> object, for dataset pickles; numpy 1.x pickles name ``numpy.core``.
_DATA_CLASSES = {(module, name): getattr(builtins, name)
                 for module in ("builtins", "__builtin__")  # Python 3's name, Python 2's
                 for name in ("set", "frozenset", "complex", "slice", "bytearray")}
_DATA_CLASSES[("collections", "OrderedDict")] = collections.OrderedDict
# protocol-2 pickles (Python 2's) store bytes, numpy's buffers included, as encoded text
_DATA_CLASSES[("_codecs", "encode")] = codecs.encode
_DATA_CLASSES[("numpy", "ndarray")], _DATA_CLASSES[("numpy", "dtype")] = np.ndarray, np.dtype
for _core in ("numpy.core", "numpy._core"):
    _DATA_CLASSES[(f"{_core}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _DATA_CLASSES[(f"{_core}.multiarray", "scalar")] = _multiarray.scalar
    _DATA_CLASSES[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer  # protocol 5
_DATA_CLASSES.update({("numpy.dtypes", cls.__name__): cls for cls in NUMPY_DTYPE_CLASSES})


class UntrustedFileError(ValueError):
    """A file that would need to run code from elsewhere to load."""


def _refusal(what: str, path: Path, needed: list[str]) -> UntrustedFileError:
    return UntrustedFileError(
        f"{what} {path} holds Python objects beyond tensors and plain data "
        f"({', '.join(needed)}); loading "
        f"them would let the file run code. If you trust where it came from, run again with "
        f"{TRUST_HINT}; otherwise ask its author for a safetensors file or a plain state dict")


def load_torch_file(path: str | Path, what: str, trust_pickle: bool = False, log=print):
    """``torch.load`` of a file from elsewhere: data only, unless the user trusts it.
    Other read errors (a truncated or foreign file) propagate for the caller to name."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(NUMPY_DATA_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch names each refused object "GLOBAL module.name"; any other failure of the
        # restricted reader is a damaged or foreign file, which the caller names
        needed = sorted(set(GLOBAL_NAME.findall(str(err))))
        if not needed:
            reason = UNPICKLER_REASON.search(str(err))
            raise pickle.UnpicklingError(
                f"not a torch file ({reason.group(1).strip() if reason else 'unreadable'})") \
                from None
    if not trust_pickle:
        raise _refusal(what, path, needed)
    log(f"warning: loading {what} {path} with its Python objects ({', '.join(needed)}) "
        f"because of {TRUST_HINT}: a tampered file could run code")
    return torch.load(path, map_location="cpu", weights_only=False)


class _DataUnpickler(pickle.Unpickler):
    """Builds containers, numbers, strings and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str):
        found = _DATA_CLASSES.get((module, name))
        if found is None:
            raise UntrustedFileError(f"{module}.{name}")
        return found


def load_data_pickle(path: str | Path, what: str):
    """A dataset's annotation pickle, as data. A pickle that names any other Python object
    is refused with that name (``UntrustedFileError``); read errors propagate."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            return _DataUnpickler(handle, encoding="latin1").load()
        except UntrustedFileError as err:
            raise UntrustedFileError(
                f"{what} {path} names the Python object {err}, which an annotation file "
                "never needs: refused, since loading it could run code") from None
