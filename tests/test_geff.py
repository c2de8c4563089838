"""GEFF-style fusion: eye patches cropped at the landmarks (or the fixed boxes), the fused
and the concatenated models' shapes, the flip's eye swap, masks, and 2 training steps each."""
import numpy as np
import pytest
import torch

from gazefollow.estimation.augment import FaceAugmentSettings, augment_face, flip_sample
from gazefollow.estimation.data.sample import face_sample
from gazefollow.estimation.models.geff import EYE_SIZE, crop_eyes, eye_boxes
from main import main
from tests.conftest import tiny_config
from tests.test_estimation_train import TINY_ESTIMATION


def test_eye_patches_are_cut_at_the_landmarks_or_the_fixed_boxes():
    face = torch.zeros(2, 3, 64, 64)
    face[:, :, 20:28, 10:26] = 1.0  # a bright first eye around (18, 24) px
    landmarks = torch.tensor([[10, 24], [26, 24], [38, 24], [54, 24], [20, 50], [44, 50]],
                             dtype=torch.float32) / 64
    both = torch.stack([landmarks, torch.full((6, 2), float("nan"))])
    boxes = eye_boxes(both, 2, "cpu")
    assert boxes[0, 0].tolist() == pytest.approx([18 / 64, 24 / 64, 1.6 * 16 / 64,
                                                  0.6 * 1.6 * 16 / 64])
    assert torch.allclose(boxes[1], torch.tensor([[0.3, 0.4, 0.3, 0.18], [0.7, 0.4, 0.3, 0.18]]))
    patches = crop_eyes(face, boxes)
    assert patches.shape == (2, 2, 3, *EYE_SIZE)
    centre = patches[0, 0, 0, EYE_SIZE[0] // 2 - 2:EYE_SIZE[0] // 2 + 2,
                     EYE_SIZE[1] // 2 - 4:EYE_SIZE[1] // 2 + 4]
    assert centre.min() > 0.9  # the first patch is centred on the bright eye
    assert patches[0, 1].max() < 0.1  # the second eye's patch sees none of it


def test_the_fused_and_the_concatenated_models_take_faces_and_landmarks(tmp_path):
    from gazefollow.estimation.models import build_estimator, estimate
    for estimator in ("geff", "vanilla_fusion"):
        config = tiny_config(tmp_path, f"estimation.estimator={estimator}",
                             "estimation.geff_dim=16")
        model = build_estimator(config)
        batch = {"face": torch.randn(3, 3, 32, 32), "eye_landmarks": torch.rand(3, 6, 2)}
        assert estimate(model, batch).shape == (3, 2)
        assert set(model.trainable_parts()) == {"backbone", "head"}
    weights = build_estimator(
        tiny_config(tmp_path, "estimation.estimator=geff", "estimation.geff_eye=resnet")
    ).fusion_weights(torch.randn(2, 3, 32, 32))  # no landmarks: the fixed boxes
    assert weights.shape == (2, 3) and torch.allclose(weights.sum(dim=1), torch.ones(2))


def test_a_flip_swaps_the_eyes_and_a_mask_greys_a_region():
    landmarks = np.array([[4, 10], [8, 10], [12, 10], [16, 10], [6, 18], [14, 18]], np.float32)
    sample = face_sample(np.zeros((20, 20, 3), np.uint8), np.array([0.1, 0.2]), "p00", 0,
                         landmarks=landmarks)
    flipped = flip_sample(sample)
    # mirrored, the first eye is still the one on the image's left, corners outer to inner
    assert flipped["landmarks"].tolist() == [[4, 10], [8, 10], [12, 10], [16, 10], [6, 18],
                                             [14, 18]]
    assert flipped["gaze"].tolist() == pytest.approx([0.1, -0.2])
    assert np.allclose(flip_sample(flipped)["landmarks"], landmarks)
    masked = augment_face(sample, np.random.default_rng(0), FaceAugmentSettings(
        flip=0, crop=0, color=0, erase=1.0))
    assert (masked["face"] == 128).any() and (masked["face"] == 0).any()


@pytest.mark.parametrize("estimator", ["geff", "vanilla_fusion"])
def test_fusion_models_train_and_evaluate(tmp_path, estimator):
    from tests.conftest import ROOT
    config = ROOT / "configs" / "estimation" / f"{estimator}.yaml"
    results = main(["--task", "estimation", "--config", str(TINY_ESTIMATION), "--config",
                    str(config), f"run.output_dir={tmp_path / 'out'}",
                    f"data.dataset_dir={tmp_path / 'w'}", "estimation.geff_dim=16",
                    "--max_steps", "2"])
    assert (tmp_path / "out" / f"synthetic_faces-{estimator}-fold00" / estimator /
            "metrics.json").is_file()
    assert 0 <= results["model"]["angular_error"] <= 180
