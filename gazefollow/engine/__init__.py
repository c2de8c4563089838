"""The shared engine: training loop, optimizer step, resume, checkpoints, runtime and the one
evaluation engine. It knows no task: a task reaches it as a ``Task`` (``task.py``)."""
