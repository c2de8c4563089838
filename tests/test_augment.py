"""Augmentations: consistent on image, head box and gaze points; seeded; non-accumulating."""
import numpy as np
import pytest
import torch

from gazefollow.following.data.augment import AugmentSettings
from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.dataset import HeadDataset
from tests.conftest import tiny_config

ALL_ON = AugmentSettings(box_jitter=1.0, crop=1.0, flip=1.0, color=1.0)


def _train_dataset(tiny_world, augment, output_size=64):
    _, config = tiny_world
    instances = build_datasets(config, splits=("train",), log=lambda *_: None)["train"].instances
    return HeadDataset(config.data.dataset_dir, instances, input_size=64,
                       output_size=output_size, face_size=16, augment=augment)


@pytest.mark.parametrize("settings", [ALL_ON, AugmentSettings(),
                                      AugmentSettings(crop=1.0, flip=0.0)])
def test_heatmap_argmax_lies_on_the_transformed_gaze_point(tiny_world, settings):
    dataset = _train_dataset(tiny_world, settings)
    checked = 0
    for position in range(len(dataset)):
        for epoch in range(3):
            sample = dataset[(position, epoch)]
            if sample["inout"] == 0:
                assert sample["heatmap"].max() == 0 and (sample["gaze_points"] == -1).all()
                continue
            heatmap = sample["heatmap"][0]
            row, col = divmod(int(heatmap.argmax()), heatmap.shape[1])
            x, y = sample["gaze_points"][0].tolist()
            assert 0 <= x <= 1 and 0 <= y <= 1  # the crop kept the target
            assert abs(col - x * 64) <= 1 and abs(row - y * 64) <= 1
            x0, y0, x1, y1 = sample["head_box"].tolist()
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1  # the crop kept the head
            checked += 1
    assert checked > 20


def test_flip_mirrors_image_box_and_point(tiny_world):
    plain = _train_dataset(tiny_world, None)
    flipped = _train_dataset(tiny_world, AugmentSettings(box_jitter=0, crop=0, flip=1, color=0))
    position = next(k for k, i in enumerate(plain.instances) if i.inout == 1)
    a, b = plain[position], flipped[(position, 0)]
    assert torch.allclose(a["image"].flip(-1), b["image"], atol=1e-5)
    assert b["gaze_points"][0, 0] == pytest.approx(1 - a["gaze_points"][0, 0])
    x0, _, x1, _ = a["head_box"].tolist()
    assert b["head_box"][[0, 2]].tolist() == pytest.approx([1 - x1, 1 - x0], abs=1e-6)


def test_seeded_by_epoch_and_sample_and_never_accumulating(tiny_world):
    dataset = _train_dataset(tiny_world, ALL_ON)
    stored = [i.head_box.copy() for i in dataset.instances]
    first = dataset[(2, 7)]
    for epoch in range(30):  # many draws in between must not move the stored boxes
        dataset[(2, epoch)]
    again = dataset[(2, 7)]
    assert torch.equal(first["image"], again["image"])
    assert torch.equal(first["head_box"], again["head_box"])
    assert all(np.array_equal(a, i.head_box) for a, i in zip(stored, dataset.instances))
    assert not torch.equal(dataset[(2, 8)]["image"], first["image"])  # a new epoch, a new view


def test_validation_and_test_are_never_augmented(tiny_world, tmp_path):
    _, config = tiny_world
    config = tiny_config(tmp_path, f"data.dataset_dir={config.data.dataset_dir}",
                         "data.augment=true")
    datasets = build_datasets(config, log=lambda *_: None)
    assert datasets["train"].augment is not None
    assert datasets["val"].augment is None and datasets["test"].augment is None
