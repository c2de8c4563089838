"""Gaze-estimation networks: face image -> (pitch, yaw)."""
