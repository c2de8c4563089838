"""GazePredictor: the evaluation path's heatmaps for a dataset sample, batching, seeds, bad
input, and the export round trip (in this process and in a fresh one)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gazefollow.checkpoint import CheckpointError
from gazefollow.data.build import build_datasets
from gazefollow.data.instances import BadInput, fix_box, pixel_box
from gazefollow.predict import GazePredictor
from main import main
from tests.conftest import ROOT, TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    main(["--experiment", str(TINY), f"data.dataset_dir={tmp / 'world'}",
          f"run.output_dir={tmp / 'out'}", "--max_steps", "2"])
    return tmp, tmp / "out" / "synthetic-diffusion-x0" / "tiny"


def _test_people(predictor):
    """The test split's first heads as (image paths, pixel boxes, sample ids)."""
    test = build_datasets(predictor.config, splits=("test",), log=lambda *_: None)["test"]
    images, boxes, ids = [], [], []
    for instance in test.instances[:5]:
        file = test.root / instance.path
        with Image.open(file) as image:
            width, height = image.size
        images.append(file)
        boxes.append([fix_box(pixel_box(instance, width, height), width, height)])
        ids.append(instance.index)
    return test, images, boxes, ids


def test_a_dataset_sample_gives_the_evaluation_paths_heatmap(run):
    from gazefollow.evaluate import load_for_eval, run_split
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    test, images, boxes, ids = _test_people(predictor)
    loaded = load_for_eval(run_dir)
    config = loaded["config"]
    result = run_split(loaded["model"], test, [config.sampling.steps], config.sampling,
                       batch_size=2, seed=config.run.seed, device="cpu", prior_inout=0.5,
                       num_keep=5)
    people = predictor.predict(images, boxes, seed=config.run.seed, person_ids=ids)
    for person, kept in zip([p[0] for p in people], result.samples):
        assert np.abs(person.heatmap - kept["heatmap"]).max() < 1e-6
        assert person.point == kept["pred"]
        assert person.inout == pytest.approx(kept["inout_prob"], abs=1e-6)


def test_predictions_are_seeded_batched_and_carry_hypotheses(run):
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    _, images, boxes, _ = _test_people(predictor)
    array = np.asarray(Image.open(images[1]).convert("RGB"))[:, ::-1][:, ::-1]  # not contiguous
    two_people = [boxes[0][0], boxes[0][0] + np.array([5, 5, 5, 5])]
    first = predictor.predict([images[0], array], [two_people, boxes[1]], num_samples=3, seed=4)
    again = predictor.predict([images[0], array], [two_people, boxes[1]], num_samples=3, seed=4)
    assert [len(p) for p in first] == [2, 1]
    person = first[0][0]
    assert np.array_equal(person.heatmap, again[0][0].heatmap)
    assert len(person.samples) == 3 and len(person.sample_points) == 3
    assert np.allclose(person.heatmap, np.mean(person.samples, axis=0))
    width, height = Image.open(images[0]).size
    assert person.heatmap_at(width, height).shape == (height, width)
    assert person.point_px == pytest.approx((person.point[0] * width, person.point[1] * height))
    other_seed = predictor.predict([images[0]], [two_people[:1]], num_samples=3, seed=5)
    assert not np.array_equal(other_seed[0][0].samples[1], person.samples[1])
    fewer_steps = predictor.predict([images[0]], [two_people[:1]], steps=3)[0][0]
    assert fewer_steps.heatmap.shape == person.heatmap.shape


def test_bad_boxes_and_images_are_named(run, tmp_path):
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    _, images, _, _ = _test_people(predictor)
    width, height = Image.open(images[0]).size
    clamped = predictor.predict([images[0]], [[(-20, -20, 30, 30)]])[0][0]
    assert clamped.head_box[:2] == (0, 0)  # partly outside: clamped
    with pytest.raises(BadInput, match="person 0: head box .* is empty"):
        predictor.predict([images[0]], [[(width + 5, 0, width + 40, 30)]])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(BadInput, match="cannot read image .*broken.jpg"):
        predictor.predict([broken], [[(0, 0, 10, 10)]])


def test_export_round_trip_gives_identical_predictions_in_a_fresh_process(run, tmp_path):
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    _, images, boxes, _ = _test_people(predictor)
    export = tmp_path / "export"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), str(run_dir),
                           str(export)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in export.iterdir()} == {"model.safetensors", "config.json",
                                                  "README.md"}
    assert "auc" in (export / "README.md").read_text()
    reloaded = GazePredictor.from_pretrained(export, device="cpu")
    ours = {k: v for k, v in predictor.model.state_dict().items()}
    assert all(torch.equal(v, reloaded.model.state_dict()[k]) for k, v in ours.items())
    expected = predictor.predict(images, boxes, seed=1)
    script = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from gazefollow.predict import GazePredictor\n"
              f"p = GazePredictor.from_pretrained({str(export)!r}, device='cpu')\n"
              f"out = p.predict({[str(i) for i in images]!r}, "
              f"{[[list(map(float, b)) for b in bs] for bs in boxes]!r}, seed=1)\n"
              "print(json.dumps([[q.heatmap.tolist() for q in people] for people in out]))")
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    maps = json.loads(fresh.stdout.strip().splitlines()[-1])
    for people, got in zip(expected, maps):
        assert np.array_equal(people[0].heatmap, np.asarray(got[0], dtype=people[0].heatmap.dtype))
    with pytest.raises(FileExistsError, match="not empty"):
        predictor.save_pretrained(export)
    (export / "model.safetensors").write_bytes(b"")  # an incompatible or broken file
    stored = json.loads((export / "config.json").read_text())
    stored["format"] = "something else"
    (export / "config.json").write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match="not a gazefollow export"):
        GazePredictor.from_pretrained(export)
