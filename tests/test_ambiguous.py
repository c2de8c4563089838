"""The ambiguous synthetic world: a share of people with two candidate targets on their line
of sight, annotators split between them as stated, marked in the GazeFollow layout; every
other scene is the plain world's, image for image."""
import math
from dataclasses import replace

import numpy as np

from gazefollow.following.config import SyntheticConfig
from gazefollow.following.data.gazefollow import read_annotations
from gazefollow.following.data.synthetic import generate_world

QUIET = dict(log=lambda *_: None)
SMALL = SyntheticConfig(num_train=24, num_test=16, width=128, height=96, annotators=10)


def _on_ray(instance, point, width, height) -> float:
    """Distance (pixels) of a normalised point from the ray through the head centre and eye."""
    x0, y0, x1, y1 = instance.head_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ex, ey = instance.eye[0] * width - cx, instance.eye[1] * height - cy
    px, py = point[0] * width - cx, point[1] * height - cy
    return abs(ex * py - ey * px) / math.hypot(ex, ey)


def test_annotators_split_between_candidates_on_the_line_of_sight(tmp_path):
    cfg = replace(SMALL, ambiguous_share=0.5, ambiguous_split=[0.6, 0.4])
    root = generate_world(cfg, tmp_path / "ambiguous", **QUIET)
    test, _ = read_annotations(root / "test_annotations_release.txt", "test")
    marked = [i for i in test if i.ambiguous]
    assert 3 <= len(marked) <= 13  # about half of 16
    for instance in marked:
        points = instance.gaze_points
        assert len(points) == 10
        near, far = points[:6], points[6:]  # nearest candidate first: 6 and 4 annotators
        assert np.linalg.norm(near.mean(0) - far.mean(0)) > 0.1
        for point in points:
            assert _on_ray(instance, point, 128, 96) < 6  # jitter aside, on the ray
    plain = [i for i in test if not i.ambiguous]
    assert all(np.ptp(i.gaze_points, axis=0).max() < 0.15 for i in plain)


def test_scenes_without_ambiguity_are_the_plain_worlds(tmp_path):
    plain = generate_world(SMALL, tmp_path / "plain", **QUIET)
    mixed = generate_world(replace(SMALL, ambiguous_share=0.5), tmp_path / "mixed", **QUIET)
    test, _ = read_annotations(mixed / "test_annotations_release.txt", "test")
    same = [i.path for i in test if not i.ambiguous]
    differ = [i.path for i in test if i.ambiguous]
    assert same and differ
    for path in same:
        assert (plain / path).read_bytes() == (mixed / path).read_bytes()
    for path in differ:  # a second candidate is drawn
        assert (plain / path).read_bytes() != (mixed / path).read_bytes()
    train_rows = (mixed / "train_annotations_release.txt").read_text().splitlines()
    assert len(train_rows) == 24 and all(row.endswith("gazeworld") for row in train_rows)


def test_the_ambiguous_experiment_is_the_default_model_and_recipe():
    from gazefollow.config import to_dict
    from gazefollow.tasks import build_config
    from tests.conftest import ROOT
    experiments = ROOT / "configs" / "experiments"
    base = [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml"]
    default = to_dict(build_config([*base, experiments / "synthetic_cpu.yaml"]))
    ambiguous = to_dict(build_config([*base, experiments / "ambiguous.yaml"]))
    for section in ("model", "optim", "diffusion", "sampling", "loss"):
        assert ambiguous[section] == default[section], section
    assert (ambiguous["eval"]["num_samples"], ambiguous["synthetic"]["ambiguous_share"]) == (8, 0.5)
