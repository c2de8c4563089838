"""Fault cases of what gazefollow writes for a user: an export or a demo never replaces a
folder that is not its own, an export that would not load back is never handed out, and a
damaged video is read to its end with every undecodable frame counted."""
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from gazefollow.engine.checkpoint import CheckpointError
from gazefollow.following.predict import GazePredictor
from tests.conftest import _run_dir, run_script


@pytest.fixture
def predictor(straight):
    return GazePredictor.from_pretrained(_run_dir(straight[0], "straight"), device="cpu")


def test_export_overwrite_replaces_only_an_export_of_ours(predictor, tmp_path):
    users = tmp_path / "my_folder"
    users.mkdir()
    (users / "config.json").write_text('{"learning_rate": 0.1}')  # a config of their own
    (users / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an export, so it is left as it is"):
        predictor.save_pretrained(users, overwrite=True)
    assert (users / "config.json").read_text() == '{"learning_rate": 0.1}'
    assert sorted(p.name for p in users.iterdir()) == ["config.json", "notes.txt"]
    export = predictor.save_pretrained(tmp_path / "export")
    predictor.save_pretrained(export, overwrite=True)  # an export of ours: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "my_folder"]  # no leftovers
    with pytest.raises(FileExistsError, match="is a file"):
        predictor.save_pretrained(users / "notes.txt")


def test_an_export_that_does_not_load_back_is_never_written(predictor, tmp_path, monkeypatch):
    from gazefollow.engine import export as export_module
    real = export_module.load_exported

    def loads_other_weights(directory, registry, overrides=()):
        model, config = real(directory, registry, overrides)
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        return model, config
    monkeypatch.setattr(export_module, "load_exported", loads_other_weights)
    with pytest.raises(CheckpointError, match="does not load back.*nothing was written"):
        predictor.save_pretrained(tmp_path / "export")
    assert list(tmp_path.iterdir()) == []


def test_a_run_of_a_task_without_a_predictor_is_refused_in_one_line(straight, tmp_path):
    """A SimCLR pretraining run predicts nothing by itself: export.py says so."""
    run_dir = tmp_path / "estimation_run"
    shutil.copytree(_run_dir(straight[0], "straight"), run_dir)
    newest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    state = torch.load(newest / "state.pt", weights_only=True)
    state["config"]["run"]["task"] = "simclr"
    torch.save(state, newest / "state.pt")
    with pytest.raises(SystemExit, match="error: .*'simclr' task, which predicts on nothing"):
        run_script("export.py", run_dir, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_demo_overwrite_replaces_only_a_demo_output(straight, tmp_path):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"photo.png": [[20.0, 5.0, 36.0, 21.0]]}))
    args = ["--weights", _run_dir(straight[0], "straight"), "--input", image, "--boxes", boxes]
    users = tmp_path / "results"
    users.mkdir()
    (users / "predictions.json").write_text('{"mine": true}')
    with pytest.raises(SystemExit, match="not a demo output, so it is left as it is"):
        run_script("demo.py", *args, "--output", users, "--overwrite")
    assert (users / "predictions.json").read_text() == '{"mine": true}'
    run_script("demo.py", *args, "--output", tmp_path / "demo")
    run_script("demo.py", *args, "--output", tmp_path / "demo", "--overwrite")
    assert json.loads((tmp_path / "demo" / "predictions.json").read_text())[0]["people"]
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        run_script("demo.py", *args, "--output", image)


def damaged_video(path, frames=60, broken=range(15, 28)):
    """An MJPEG AVI whose ``broken`` frames hold no JPEG data (their chunks zeroed)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(frames):
        frame = np.full((48, 64, 3), 4 * index, np.uint8)
        frame[10:20, index:index + 5] = 255
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == frames
    for index in broken:
        end = starts[index + 1] - 8 if index + 1 < frames else len(data)
        data[starts[index]:end] = bytes(end - starts[index])
    path.write_bytes(bytes(data))


def test_a_damaged_video_is_read_to_its_end_and_its_bad_frames_counted(straight, tmp_path,
                                                                      capsys):
    video = tmp_path / "clip.avi"
    damaged_video(video)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({str(i): [[20.0, 5.0, 36.0, 21.0]] for i in range(60)}))
    args = ["--weights", _run_dir(straight[0], "straight"), "--input", video, "--boxes", boxes]
    run_script("demo.py", *args, "--output", tmp_path / "out")
    printed = capsys.readouterr().out
    assert "13 video frame(s) could not be decoded" in printed
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [e["image"] for e in entries] == [str(i) for i in range(60)]
    skipped = [e["image"] for e in entries if "skipped" in e]
    assert skipped == [str(i) for i in range(15, 28)]
    assert sum(1 for e in entries if e["people"]) == 47
    written = cv2.VideoCapture(str(tmp_path / "out" / "clip_gaze.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 60  # timing kept
    with pytest.raises(SystemExit, match="clip.avi: frame 15 could not be decoded"):
        run_script("demo.py", *args, "--output", tmp_path / "strict", "--strict")
