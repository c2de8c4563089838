"""Gaze estimation: face image -> 3D gaze direction (``run.task: estimation``)."""
