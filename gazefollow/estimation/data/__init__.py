"""Gaze-estimation readers, one per file; each returns ``sample.face_sample`` dicts."""
