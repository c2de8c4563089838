"""Social gaze over time: Ego4D Looking-At-Me (``run.task: lam``)."""
