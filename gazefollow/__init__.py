"""gazefollow: where people look. ``engine/`` is the shared machinery, ``following/``,
``estimation/`` and ``social/`` are the tasks, ``tasks.py`` is the registry (docs/architecture.md)."""
