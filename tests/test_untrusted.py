"""Files from elsewhere are data: a pickle whose loading would run a command is refused on
every load path (named, with the opt-in), and the opt-in loads a genuinely older file."""
import argparse
import os
import pickle
import random
import shutil

import numpy as np
import pytest
import torch

from gazefollow.engine.checkpoint import load_rng_state
from gazefollow.engine.samples import BadInput
from gazefollow.engine.untrusted import UntrustedFileError, load_data_pickle
from tests.conftest import TINY, _run_dir, tiny_config


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _run_copy(straight, tmp_path):
    """A private copy of the shared 12-step run, to tamper with."""
    run_dir = tmp_path / "run"
    shutil.copytree(_run_dir(straight[0], "straight"), run_dir)
    return run_dir, sorted((run_dir / "checkpoints").glob("step_*"))[-1]


def _refused(load, marker, *names):
    with pytest.raises((UntrustedFileError, BadInput), match="|".join(names)) as caught:
        load()
    assert not marker.exists(), "the payload ran"
    return str(caught.value)


def test_our_checkpoints_are_plain_data(straight):
    """torch's own restricted reader, with nothing allowed beyond its defaults."""
    newest = sorted((_run_dir(straight[0], "straight") / "checkpoints").glob("step_*"))[-1]
    for file in newest.glob("*.pt"):
        torch.load(file, weights_only=True)


@pytest.mark.parametrize("file", ["state.pt", "rng_0.pt"])
def test_a_payload_in_a_run_directory_never_runs(straight, tmp_path, file):
    from gazefollow.following.predict import GazePredictor
    from main import main
    run_dir, newest = _run_copy(straight, tmp_path)
    marker = tmp_path / "ran"
    stored = torch.load(newest / file, weights_only=True)
    torch.save({**stored, "payload": Payload(marker)}, newest / file)
    if file == "state.pt":
        message = _refused(lambda: GazePredictor.from_pretrained(run_dir), marker, "state.pt")
        assert "posix.system" in message and "run.trust_pickle=true" in message
        _refused(lambda: main(["--eval_weights", str(run_dir)]), marker, "state.pt")
    else:
        _refused(lambda: load_rng_state(newest, 0, torch.device("cpu")), marker, "rng_0.pt")


def test_a_payload_in_an_export_never_runs(straight, tmp_path):
    from gazefollow.engine.checkpoint import CheckpointError
    from gazefollow.following.predict import GazePredictor
    predictor = GazePredictor.from_pretrained(_run_dir(straight[0], "straight"), device="cpu")
    export = predictor.save_pretrained(tmp_path / "export")
    marker = tmp_path / "ran"
    (export / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    # safetensors reads tensors, never a pickle: one named error
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        GazePredictor.from_pretrained(export)
    assert not marker.exists()


def test_a_payload_in_initial_weights_never_runs(tmp_path):
    from gazefollow.backbones.init_weights import load_initial_weights
    from gazefollow.following.models.gaze_model import build_model
    marker, file = tmp_path / "ran", tmp_path / "weights.pt"
    torch.save({"model": {"conv.weight": torch.zeros(1)}, "args": Payload(marker)}, file)
    config = tiny_config(tmp_path, f"run.init_weights={file}")
    message = _refused(lambda: load_initial_weights(build_model(config), config.run), marker,
                       "run.init_weights")
    assert str(file) in message


def test_a_payload_in_an_original_checkpoint_never_runs_and_trust_opts_in(tmp_path, capsys):
    from gazefollow.original.checkpoints import read_original_checkpoint
    from main import main
    marker, file = tmp_path / "ran", tmp_path / "ckpt_last.pth"
    torch.save({"epoch": 1, "model": {"gaze_model.x": torch.zeros(1)},
                "args": Payload(marker)}, file)
    _refused(lambda: main(["--eval_weights", str(file), "--experiment", str(TINY)]), marker,
             "ckpt_last.pth")
    # an older checkpoint that genuinely holds an argparse Namespace: one opt-in loads it
    older = tmp_path / "ckpt_epoch_3.pth"
    torch.save({"epoch": 3, "model": {"gaze_model.x": torch.ones(1)},
                "args": argparse.Namespace(lr=1e-4)}, older)
    with pytest.raises(UntrustedFileError, match=r"argparse.Namespace.*--trust_pickle"):
        read_original_checkpoint(older)
    content = read_original_checkpoint(older, trust_pickle=True)
    assert content["args"].lr == 1e-4
    assert "warning: loading the original's checkpoint" in capsys.readouterr().out


def test_payloads_in_annotation_pickles_never_run(tmp_path):
    from gazefollow.estimation.data.mpiifacegaze_pickle import MPIIFaceGazePickle
    from gazefollow.following.data.goo import read_goo
    marker = tmp_path / "ran"
    goo = tmp_path / "testpickle120.pickle"
    goo.write_bytes(pickle.dumps([{"filename": "a.png", "payload": Payload(marker)}]))
    _refused(lambda: read_goo(goo, policy="skip"), marker, "testpickle120.pickle")
    (tmp_path / "p00").mkdir()
    labels = tmp_path / "p00" / "labels.dict"
    labels.write_bytes(pickle.dumps({"images": [Payload(marker)], "labels": []}))
    # refused even in skip mode: a planted file is not a bad row to count
    _refused(lambda: MPIIFaceGazePickle(tmp_path, ["p00"], policy="skip"), marker,
             "p00/labels.dict")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_annotation_pickles_of_plain_data_load_as_they_were_written(tmp_path, protocol):
    """Python 2's protocol and numpy arrays and scalars included, as released files hold."""
    content = [{"filename": "1person\\a.png", "gaze_cx": np.float64(0.25), "ann": [1, 2.5],
                "box": np.arange(4, dtype=np.float32).reshape(2, 2), "seg": None,
                "names": np.array(["a", "b"]), "flags": {True, False}}]
    file = tmp_path / "annotations.pickle"
    file.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = load_data_pickle(file, "annotations")
    assert loaded[0].keys() == content[0].keys()
    assert np.array_equal(loaded[0]["box"], content[0]["box"])
    assert loaded[0]["box"].dtype == np.float32 and loaded[0]["gaze_cx"] == 0.25


def test_rng_files_of_the_earlier_format_still_restore(tmp_path):
    """Earlier versions stored numpy's state as its own tuple (an ndarray inside)."""
    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    earlier = {"python": random.getstate(), "numpy": np.random.get_state(),
               "torch": torch.get_rng_state()}
    torch.save(earlier, tmp_path / "rng_0.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(0)
    np.random.seed(0)
    assert load_rng_state(tmp_path, 0, torch.device("cpu"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_checkpoint_written_today_restores_every_stream(tmp_path):
    from gazefollow.engine.checkpoint import rng_state
    np.random.seed(11)
    np.random.randn()  # a cached Gaussian is part of numpy's state
    torch.save(rng_state(torch.device("cpu")), tmp_path / "rng_0.pt")
    expected = (random.random(), np.random.randn(), torch.rand(1).item())
    np.random.seed(0)
    load_rng_state(tmp_path, 0, torch.device("cpu"))
    assert (random.random(), np.random.randn(), torch.rand(1).item()) == expected
