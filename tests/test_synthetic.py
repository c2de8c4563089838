import csv

import numpy as np
from PIL import Image

from gazefollow.following.config import SyntheticConfig
from gazefollow.following.data.gazefollow import read_annotations
from gazefollow.following.data.synthetic import TEST_FILE, TRAIN_FILE, ensure_world, generate_world


def _rows(path):
    with open(path, newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def test_files_parse_back_in_the_real_format(tiny_world):
    root, config = tiny_world
    syn = config.synthetic
    train = _rows(root / TRAIN_FILE)
    test = _rows(root / TEST_FILE)
    assert len(train) == syn.num_train and all(len(r) == 17 for r in train)
    assert len(test) == syn.num_test * syn.annotators and all(len(r) == 16 for r in test)
    for row in train + test:
        width, height = Image.open(root / row[0]).size
        assert (width, height) == (syn.width, syn.height)
        body_eye = np.array(row[2:8], dtype=float)
        assert ((body_eye >= 0) & (body_eye <= 1)).all(), row  # normalised
        x0, y0, x1, y1 = map(float, row[10:14])  # head box in pixels
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert x1 - x0 > 2, "a head box in pixels, not normalised"
    inouts = [int(r[14]) for r in train]
    assert set(inouts) <= {0, 1} and 1 in inouts
    for row in train:
        gaze = np.array(row[8:10], dtype=float)
        assert (gaze == -1).all() if row[14] == "0" else ((gaze >= 0) & (gaze <= 1)).all()


def test_test_rows_group_into_heads_with_several_annotators(tiny_world):
    root, config = tiny_world
    instances, report = read_annotations(root / TEST_FILE, "test")
    assert len(instances) == config.synthetic.num_test
    assert all(len(i.gaze_points) == config.synthetic.annotators for i in instances)
    assert report.rows == config.synthetic.num_test * config.synthetic.annotators


def test_generation_is_deterministic(tmp_path):
    cfg = SyntheticConfig(num_train=6, num_test=2, width=80, height=60)
    a = generate_world(cfg, tmp_path / "a", log=lambda *_: None)
    b = generate_world(cfg, tmp_path / "b", log=lambda *_: None)
    for name in (TRAIN_FILE, TEST_FILE, "train/000003.jpg", "test/000001.jpg"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    other = generate_world(SyntheticConfig(num_train=6, num_test=2, width=80, height=60, seed=1),
                           tmp_path / "c", log=lambda *_: None)
    assert (a / TRAIN_FILE).read_text() != (other / TRAIN_FILE).read_text()


def test_ensure_world_refuses_other_settings(tmp_path):
    cfg = SyntheticConfig(num_train=4, num_test=2, width=80, height=60)
    ensure_world(cfg, tmp_path / "w", log=lambda *_: None)
    ensure_world(cfg, tmp_path / "w", log=lambda *_: None)  # same settings: reused
    try:
        ensure_world(SyntheticConfig(num_train=5, num_test=2, width=80, height=60),
                     tmp_path / "w", log=lambda *_: None)
    except ValueError as err:
        assert "num_train" in str(err)
    else:
        raise AssertionError("a world with other settings was silently reused")
