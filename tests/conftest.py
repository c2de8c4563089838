"""Shared fixtures: a tiny synthetic world in the exact GazeFollow format, made once per session."""
from pathlib import Path

import pytest

from gazefollow.config import build_config
from gazefollow.data.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "experiments" / "tiny_test.yaml"


def tiny_config(tmp: Path, *overrides: str):
    """The tiny test configuration with its data and outputs under ``tmp``."""
    return build_config(
        [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml", TINY],
        [f"data.dataset_dir={tmp / 'world'}", f"run.output_dir={tmp / 'outputs'}", *overrides],
    )


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """(root, config) of a generated tiny world shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("tiny")
    config = tiny_config(tmp)
    generate_world(config.synthetic, config.data.dataset_dir, log=lambda *_: None)
    return Path(config.data.dataset_dir), config
