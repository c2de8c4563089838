"""One way for every command to end on a project error: one line naming the file and the
reason, and exit code 1 (``--debug``: the traceback instead). ``main.py`` and the scripts
under ``scripts/`` run through ``run_command``."""
from __future__ import annotations

import sys
from typing import Callable


def project_errors() -> tuple[type[BaseException], ...]:
    """The errors that describe a user's input or files, not a bug in gazefollow."""
    from gazefollow.backbones.init_weights import InitWeightsError
    from gazefollow.config import ConfigError
    from gazefollow.engine.checkpoint import CheckpointError
    from gazefollow.engine.run_lock import RunLockError
    from gazefollow.engine.samples import BadInput
    from gazefollow.engine.untrusted import UntrustedFileError
    from gazefollow.engine.weights import FrozenWeightsError

    return (ConfigError, BadInput, FileNotFoundError, FileExistsError, CheckpointError,
            InitWeightsError, RunLockError, FrozenWeightsError, FloatingPointError,
            UntrustedFileError, ImportError)


def run_command(main: Callable, argv: list[str] | None = None):
    """``main(argv without --debug)``; a project error becomes one line on stderr."""
    from gazefollow.config import ConfigError
    from gazefollow.engine.stopping import TrainingInterrupted

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        return main([a for a in argv if a != "--debug"])
    except TrainingInterrupted as stopped:
        print(stopped, file=sys.stderr)
        sys.exit(stopped.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        print("aborted (Ctrl-C); complete checkpoints on disk are kept, and the same command "
              "resumes from the newest", file=sys.stderr)
        sys.exit(130)  # as for SIGINT during training: the shell's code for Ctrl-C
    except project_errors() as err:
        if debug:
            raise
        kind = "configuration error" if isinstance(err, ConfigError) else "error"
        sys.exit(f"{kind}: {err}  (--debug shows where)")
