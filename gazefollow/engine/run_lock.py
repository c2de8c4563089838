"""One training run per run directory: a lock file holding the host and PID of its owner.

Taken before anything is written to the run directory and released when the run ends. A lock
left by a process that no longer runs on this host (killed with SIGKILL, say) is reported and
taken over; one held by a live process, or by a process on another host whose state cannot be
checked from here, stops the new run with what to do.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "run.lock"


class RunLockError(RuntimeError):
    """The run directory is in use by another run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}  # torn by a kill between create and write: nobody holds it


def _create(lock: Path) -> bool:
    """Create the lock file atomically with our host and PID; False when it exists."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
    return True


def acquire(run_dir: Path, log=print) -> Path:
    """Take the run directory's lock (see the module docstring) -> the lock file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_FILE
    for _ in range(2):
        if _create(lock):
            return lock
        holder = _holder(lock)
        here = holder.get("host") == socket.gethostname()
        pid = holder.get("pid")
        if holder and not (here and isinstance(pid, int) and
                           (pid == os.getpid() or not _alive(pid))):
            where = "this host" if here else f"host {holder.get('host')}"
            advice = ("wait for it to end, or use another --tag" if here else
                      f"if that run has ended, delete {lock} and run again; else use another "
                      "--tag")
            raise RunLockError(f"{run_dir} is in use by another run (PID {pid} on {where}, "
                               f"started {holder.get('started')}): {advice}")
        log(f"{lock}: taking over a stale lock of PID {pid}, which no longer runs on this "
            "host (its run was killed; its checkpoints are resumed as usual)")
        lock.unlink(missing_ok=True)
    raise RunLockError(f"could not take {lock}: another run took it at the same moment")


def release(lock: Path) -> None:
    """Remove the lock if it is still ours."""
    if _holder(lock).get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


@contextmanager
def run_lock(run_dir: Path, enabled: bool = True, log=print):
    """Hold the run directory's lock for the block (``enabled`` False: a no-op, for the
    processes of a multi-process run other than the main one)."""
    lock = acquire(Path(run_dir), log) if enabled else None
    try:
        yield lock
    finally:
        if lock is not None:
            release(lock)
