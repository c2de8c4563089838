"""The original research code's compatibility layer: its flags and YAML files (``legacy.py``),
its checkpoints and their evaluation (``checkpoints.py``). Its model is the ``original``
gaze-following encoder (``following/encoders/original.py``), found like every encoder."""
