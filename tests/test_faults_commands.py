"""Fault cases of the commands: every error one line (exit 1, --debug for the traceback),
Ctrl-C during an evaluation exits 130, the demo's boxes file named where it does not fit,
few VideoAttentionTarget shows, and the original's --attention_layout without a value."""
import json

import cv2
import numpy as np
import pytest

from gazefollow.cli import run_command
from gazefollow.engine.samples import BadInput
from tests.conftest import _run_dir, run_script, tiny_config


def test_ctrl_c_outside_training_exits_130_and_errors_are_one_line(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as stopped:
        run_command(interrupted, [])
    assert stopped.value.code == 130 and "aborted (Ctrl-C)" in capsys.readouterr().err

    def bad(argv):
        raise BadInput("photo.jpg: a head box is 4 finite pixel values")
    with pytest.raises(SystemExit, match=r"^error: photo.jpg: a head box .* \(--debug"):
        run_command(bad, [])
    with pytest.raises(BadInput):  # --debug: the traceback
        run_command(bad, ["--debug"])


@pytest.fixture
def photo(tmp_path):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    return image


@pytest.mark.parametrize("options, message", [
    (["--steps", "-1"], "--steps must be at least 1"),
    (["--num_samples", "0"], "--num_samples must be at least 1"),
    (["--boxes", "BOXES", "--boxes_text", "{not json"], "boxes.json: not valid JSON"),
    (["--boxes", "BOXES", "--boxes_text", '{"photo.png": 5}'],
     r"boxes.json, entry 'photo.png': expected a list of boxes"),
])
def test_demo_refuses_bad_options_in_one_line(straight, tmp_path, photo, options, message):
    boxes = tmp_path / "boxes.json"
    if "--boxes_text" in options:
        at = options.index("--boxes_text")
        boxes.write_text(options[at + 1])
        options = [str(boxes) if o == "BOXES" else o for o in options[:at]]
    with pytest.raises(SystemExit, match=f"error: .*{message}"):
        run_script("demo.py", "--weights", _run_dir(straight[0], "straight"), "--input", photo,
                   "--output", tmp_path / "out", *options)


def test_demo_names_boxes_outside_the_image_and_names_matching_nothing(straight, tmp_path,
                                                                        photo, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"photo.png": [[20, 5, 36, 21], [500, 500, 540, 540]],
                                 "other.png": [[1, 1, 9, 9]]}))
    run_script("demo.py", "--weights", _run_dir(straight[0], "straight"), "--input", photo,
               "--boxes", boxes, "--output", tmp_path / "out")
    printed = capsys.readouterr().out
    assert "1 given box(es) outside their image" in printed
    assert "SKIPPED photo.png" in printed and "person 1 of the boxes file" in printed
    assert "1 name(s) of the boxes file match no image or frame: other.png" in printed
    [entry] = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(entry["people"]) == 1  # the other person of the image is still predicted


def test_few_videoattentiontarget_shows_hold_one_out_or_say_why(tmp_path):
    from gazefollow.following.data.build import build_datasets
    from tests.test_vat import _track
    root = tmp_path / "vat"
    _track(root, "train", "showA", "clip1", [f"{i:08d}.jpg,30,30,60,60,100,20" for i in range(4)])
    _track(root, "test", "showC", "clip9", ["00000000.jpg,30,30,60,60,100,20"])
    overrides = ["data.source_dataset=videoattentiontarget", f"data.dataset_dir={root}",
                 "data.val_fraction=0.1"]
    with pytest.raises(BadInput, match="has 1 of its shows: validation holds out whole shows "
                                       r"\(data.val_fraction=0.1\), so at least two are needed"):
        build_datasets(tiny_config(tmp_path, *overrides), log=lambda *_: None)
    _track(root, "train", "showB", "clip1", [f"{i:08d}.jpg,30,30,60,60,100,20" for i in range(4)])
    datasets = build_datasets(tiny_config(tmp_path, *overrides), log=lambda *_: None)
    assert len(datasets["val"]) == 4 and len(datasets["train"]) == 4  # one show held out


def test_attention_layout_is_a_flag_without_a_value_as_in_the_original():
    from main import parse
    _, overrides, _ = parse(["--attention_layout", "optim.lr=0.5"])
    assert "optim.lr=0.5" in overrides
    _, overrides, _ = parse(["--attention_layout"])
    assert not [o for o in overrides if "attention_layout" in str(o)]
