"""Shared fixtures: a tiny synthetic world in the exact GazeFollow format, made once per session."""
import os
from pathlib import Path

import pytest
import torch

from gazefollow.engine.checkpoint import load_checkpoint
from gazefollow.engine.run_records import read_step_log
from gazefollow.following.data.synthetic import generate_world
from gazefollow.tasks import build_config

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test workers on two cores: one thread each (and for the runs they start), so they do
    # not fight over the cores. Results compared bit for bit are always made with the same
    # thread count.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
TINY = ROOT / "configs" / "experiments" / "tiny_test.yaml"


def run_script(name: str, *args) -> None:
    """scripts/<name> run as a command in this process (no second start-up of torch, which
    costs seconds per process on these machines)."""
    import runpy
    import sys
    argv = sys.argv
    sys.argv = [name, *map(str, args)]
    try:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    finally:
        sys.argv = argv


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


# 36 train images / batch 8 = 4 steps per epoch; 3 epochs. Augmentations, random timesteps,
# noise and a cosine schedule all take part.
SETTING = ["optim.epochs=3", "optim.lr_schedule=cosine", "optim.warmup_steps=2",
           "data.augment=true", "run.save_every=100"]


def _train(tmp_path, tag, *extra):
    from main import main
    return main(["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
                 f"run.output_dir={tmp_path / 'out'}", "--tag", tag, *SETTING, *extra])


def _run_dir(tmp_path, tag):
    return tmp_path / "out" / "synthetic-diffusion-x0" / tag


@pytest.fixture(scope="session")
def straight(tmp_path_factory):
    """An uninterrupted 12-step run (losses and final state), shared by the resume and the
    fault-injection tests."""
    tmp = tmp_path_factory.mktemp("resume")
    _train(tmp, "straight")
    return tmp, read_step_log(_run_dir(tmp, "straight")), load_checkpoint(_run_dir(tmp, "straight"))


def first_test_heads(predictor, depth_suffix: str = ""):
    """The test split's first heads as (split, image paths, pixel boxes, sample ids, depth map
    paths)."""
    from PIL import Image

    from gazefollow.following.data.build import build_datasets
    from gazefollow.following.data.depth import depth_path
    from gazefollow.following.data.instances import fix_box, pixel_box
    test = build_datasets(predictor.config, splits=("test",), log=lambda *_: None)["test"]
    images, boxes, ids = [], [], []
    for instance in test.instances[:5]:
        file = test.root / instance.path
        with Image.open(file) as image:
            width, height = image.size
        images.append(file)
        boxes.append([fix_box(pixel_box(instance, width, height), width, height)])
        ids.append(instance.index)
    depths = [depth_path(f, depth_suffix) for f in images] if depth_suffix else None
    return test, images, boxes, ids, depths


def assert_predictor_matches_evaluation(run_dir) -> None:
    """GazePredictor on dataset samples gives the evaluation path's heatmaps (1e-6), points
    and in/out probabilities."""
    import numpy as np

    from gazefollow.following.evaluate import run_split
    from gazefollow.following.predict import GazePredictor
    from gazefollow.tasks import load_for_eval
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    suffix = predictor.config.data.depth_suffix
    test, images, boxes, ids, depths = first_test_heads(predictor, suffix)
    loaded = load_for_eval(run_dir)
    config = loaded["config"]
    result = run_split(loaded["model"], test, [config.sampling.steps], config.sampling,
                       batch_size=config.eval.batch_size, seed=config.run.seed, device="cpu",
                       prior_inout=0.5, num_keep=5)
    people = predictor.predict(images, boxes, seed=config.run.seed, person_ids=ids,
                               depths=depths)
    assert len(result.samples) == len(people) == len(images)
    for person, kept in zip([p[0] for p in people], result.samples):
        assert np.abs(person.heatmap - kept["heatmap"]).max() < 1e-6
        assert person.point == kept["pred"]
        assert abs(person.inout - kept["inout_prob"]) < 1e-6
