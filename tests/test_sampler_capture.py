"""A sampling step a GPU can run without waiting on the host: the schedule's tables stay on
the device (no cast or copy of a table per step, no value read back), and with
``sampling.compile`` every denoiser call is one captured graph that gives the eager
sampler's heatmaps."""
import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gazefollow.following.models.gaze_model import build_model
from gazefollow.following.predict import GazePredictor
from tests.conftest import tiny_config


class OpLog(TorchDispatchMode):
    """Every aten operator called, with the shapes of its tensor arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        self.calls.append((str(func.overloadpacket), shapes))
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def tiny_head(tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("capture"), "eval.batch_size=4")
    torch.manual_seed(0)
    model = build_model(config).eval()
    size = config.data.input_size
    batch = {"image": torch.randn(3, 3, size, size), "head_channel": torch.rand(3, 1, size, size),
             "face": torch.randn(3, 3, config.data.face_size, config.data.face_size),
             "head_box": torch.tensor([[0.1, 0.1, 0.3, 0.3]] * 3)}
    with torch.no_grad():
        cond = model.encode(batch)
    return model, config, cond


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_a_sampling_step_copies_no_table_and_reads_nothing_back(tiny_head, sampler):
    model, config, cond = tiny_head
    sampling = replace(config.sampling, sampler=sampler)
    model.head.predict(cond, [0, 1, 2], 0, 4, sampling)  # the tables reach the device once
    with OpLog() as log:
        model.head.predict(cond, [0, 1, 2], 0, 4, sampling)
    steps = config.diffusion.train_time_steps
    table_moves = [c for c in log.calls if c[0] in ("aten._to_copy", "aten.copy_")
                   and (steps,) in c[1]]
    reads = [c for c in log.calls if c[0] == "aten._local_scalar_dense"]
    assert not table_moves and not reads
    denoiser_calls = [c for c in log.calls if c[0] == "aten.convolution"]
    assert denoiser_calls, "the spy saw the sampler's work"


def test_compiled_sampling_gives_the_eager_heatmaps(tiny_head):
    model, config, cond = tiny_head
    eager = model.head.predict(cond, [0, 1, 2], 5, 3, config.sampling)
    compiled_sampling = replace(config.sampling, compile="eager")
    compiled = model.head.predict(cond, [0, 1, 2], 5, 3, compiled_sampling)
    np.testing.assert_allclose(compiled, eager, atol=1e-6)
    assert len(model.head.compiled) == 1
    model.head.predict(cond, [0, 1, 2], 5, 1, compiled_sampling)  # reused, not built again
    assert len(model.head.compiled) == 1
    copied = copy.deepcopy(model.head)  # the EMA copies a model: its graphs are not shared
    assert copied.compiled == {} and len(model.head.compiled) == 1


def test_the_predictor_compiles_through_the_config(tiny_head):
    model, config, _ = tiny_head
    image = np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)
    boxes = [[(10, 10, 30, 30), (50, 20, 70, 40)]]
    eager = GazePredictor(model, config, "cpu").predict([image], boxes, steps=2)
    compiled_config = replace(config, sampling=replace(config.sampling, compile="eager"))
    compiled = GazePredictor(model, compiled_config, "cpu").predict([image], boxes, steps=2)
    for a, b in zip(eager[0], compiled[0]):
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-6)
        assert a.point == b.point


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_keyed_noise_samples_a_person_the_same_in_any_batch(tiny_head, sampler):
    model, config, cond = tiny_head
    sampling = replace(config.sampling, sampler=sampler, noise="keyed")
    together = model.head.predict(cond, [4, 7, 9], 1, 3, sampling)
    alone = model.head.predict({k: v[1:2] for k, v in cond.items()}, [7], 1, 3, sampling)
    np.testing.assert_allclose(together[1], alone[0], atol=1e-6)
    generator = model.head.predict(cond, [4, 7, 9], 1, 3, replace(sampling, noise="generator"))
    assert not np.allclose(together, generator)
