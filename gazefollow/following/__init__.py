"""Gaze following (``run.task: following``, the default): scene + head -> gaze heatmap and
the probability that the target is in the frame."""
