"""Gaze-estimation losses and augmentations (the labels move with the face)."""
import math

import numpy as np
import pytest
import torch

from gazefollow.estimation.augment import (FaceAugmentSettings, augment_face, crop_sample,
                                           flip_sample)
from gazefollow.estimation.data.sample import face_sample
from gazefollow.estimation.metrics import angular_error, pitchyaw_to_vector
from gazefollow.estimation.objective import LOSSES, pitchyaw_to_vector_torch


def test_the_losses_match_the_metric_and_have_gradients():
    rng = np.random.default_rng(0)
    pred, true = rng.uniform(-0.6, 0.6, size=(16, 2)), rng.uniform(-0.6, 0.6, size=(16, 2))
    p = torch.tensor(pred, requires_grad=True)
    angular = LOSSES["angular"](p, torch.tensor(true))
    assert np.degrees(angular.detach().numpy()) == pytest.approx(angular_error(pred, true),
                                                                 abs=1e-6)
    assert LOSSES["l1"](p, torch.tensor(true)).detach().numpy() == pytest.approx(
        np.abs(pred - true).mean(axis=1))
    same = torch.zeros(1, 2, requires_grad=True)
    LOSSES["angular"](same, torch.zeros(1, 2)).sum().backward()
    assert torch.isfinite(same.grad).all()  # no NaN at zero error
    angular.sum().backward()
    assert torch.isfinite(p.grad).all()
    assert pitchyaw_to_vector_torch(torch.tensor(pred)).numpy() == pytest.approx(
        pitchyaw_to_vector(pred))


def test_a_flipped_samples_label_maps_back():
    face = np.zeros((8, 10, 3), np.uint8)
    face[:, 0] = 255  # the left column
    sample = face_sample(face, [0.2, 0.5], "p00", 3, head_pose=[0.1, -0.3],
                         landmarks=[[1.0, 2.0], [7.5, 3.0]])
    flipped = flip_sample(sample)
    assert flipped["face"][0, -1].tolist() == [255, 255, 255]  # now the right column
    assert flipped["gaze"] == pytest.approx([0.2, -0.5])
    assert flipped["head_pose"] == pytest.approx([0.1, 0.3])
    assert flipped["landmarks"][:, 0] == pytest.approx([9.0, 2.5])
    # the flipped direction is the mirror image (x negated) of the original
    assert flipped["gaze_vector"] == pytest.approx(pitchyaw_to_vector([flipped["gaze"]])[0],
                                                   abs=1e-6)
    back = flip_sample(flipped)
    for key in ("face", "gaze", "gaze_vector", "head_pose", "landmarks"):
        assert np.allclose(back[key], sample[key])
    assert math.isclose(float(angular_error([sample["gaze"]], [back["gaze"]])[0]), 0,
                        abs_tol=1e-4)


def test_a_crop_moves_the_landmarks_with_the_face_and_augmentation_is_seeded():
    face = np.zeros((40, 40, 3), np.uint8)
    face[20, 30] = 255  # one bright pixel, at a landmark
    sample = face_sample(face, [0.1, 0.2], "p00", 0, landmarks=[[30.5, 20.5]])
    cropped = crop_sample(sample, np.random.default_rng(3), 0.1)
    x, y = cropped["landmarks"][0]
    bright = np.unravel_index(np.argmax(cropped["face"][..., 0]), (40, 40))
    assert abs(bright[1] + 0.5 - x) < 1.0 and abs(bright[0] + 0.5 - y) < 1.0
    assert cropped["gaze"] == pytest.approx(sample["gaze"])
    settings = FaceAugmentSettings(flip=1.0, crop=1.0, color=1.0)
    one = augment_face(sample, np.random.default_rng(7), settings)
    two = augment_face(sample, np.random.default_rng(7), settings)
    assert np.array_equal(one["face"], two["face"]) and one["gaze"][1] == pytest.approx(-0.2)
