"""Looking-At-Me on frames (LookingPredictor): faces tracked through a generated video, each
frame's window cut from its track with the ends repeated as in training, the answers in order
a half window late; a track that ends pads with its last face; exports load back; GazePose's
head-pose prior is refused by name."""
import numpy as np
import pytest
import torch
from PIL import Image

from gazefollow.engine.faces import make_subject, render_face
from gazefollow.engine.images import to_tensor
from gazefollow.social.predict import LookingPredictor
from main import main
from tests.conftest import ROOT

TINY_LAM = ROOT / "configs" / "lam" / "tiny_test.yaml"
SIZE = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("looking")
    main(["--task", "lam", "--config", str(TINY_LAM), f"run.output_dir={tmp / 'out'}",
          f"data.dataset_dir={tmp / 'lam_world'}", "--max_steps", "2"])
    return next((tmp / "out").glob("*/tiny")), tmp


def _video(frames: int, with_second: int):
    """Frames of 120 x 160 with a face turning at (10, 20) in every frame and a second face
    at (100, 60) in the first ``with_second`` frames; the boxes of each frame."""
    rng = np.random.default_rng(0)
    one, two = make_subject(rng), make_subject(rng)
    pictures, boxes, crops = [], [], {0: [], 1: []}
    for t in range(frames):
        picture = np.full((120, 160, 3), 90, np.uint8)
        face, _, _ = render_face(one, SIZE, (0.0, 0.15 * t - 0.4), (0.0, 0.0))
        picture[20:20 + SIZE, 10:10 + SIZE] = face
        crops[0].append(face)
        frame_boxes = [(10, 20, 10 + SIZE, 20 + SIZE)]
        if t < with_second:
            face, _, _ = render_face(two, SIZE, (0.2, 0.3), (0.0, 0.1 * t))
            picture[60:60 + SIZE, 100:100 + SIZE] = face
            crops[1].append(face)
            frame_boxes.append((100, 60, 100 + SIZE, 60 + SIZE))
        pictures.append(picture)
        boxes.append(frame_boxes)
    return pictures, boxes, crops


def _direct(predictor, crops: list, positions: list) -> float:
    window = torch.stack([to_tensor(Image.fromarray(crops[k])) for k in positions])[None]
    with torch.no_grad():
        logits = predictor.model({"faces": window, "landmarks": torch.zeros(1, 15),
                                  "head_pose": torch.full((1, 3), float("nan"))})
    return float(torch.softmax(logits.float(), dim=1)[0, 1])


def test_windows_follow_each_track_as_in_training(trained, tmp_path):
    run_dir, _ = trained
    predictor = LookingPredictor.from_pretrained(run_dir, device="cpu")
    pictures, boxes, crops = _video(6, with_second=2)
    streamed = list(predictor.stream(pictures, boxes))
    assert [index for index, _, _ in streamed] == list(range(6))
    people = [p for _, _, p in streamed]
    assert [len(p) for p in people] == [2, 2, 1, 1, 1, 1]
    assert {p.track for p in people[0]} == {0, 1} and people[5][0].track == 0
    # frame 0: t-3..t-1 repeat the track's first frame; frame 4: t+2, t+3 repeat its last
    for frame, positions in ((0, [0, 0, 0, 0, 1, 2, 3]), (4, [1, 2, 3, 4, 5, 5, 5])):
        expected = _direct(predictor, crops[0], positions)
        assert people[frame][0].probability == pytest.approx(expected, abs=1e-6)
    # the second person's track is two frames long
    assert people[1][1].probability == pytest.approx(
        _direct(predictor, crops[1], [0, 0, 0, 1, 1, 1, 1]), abs=1e-6)
    # the export gives the same
    export = predictor.save_pretrained(tmp_path / "export")
    again = LookingPredictor.from_pretrained(export, device="cpu").predict(pictures, boxes)
    assert [p.probability for p in again[3]] == pytest.approx([p.probability
                                                                for p in people[3]], abs=1e-6)


def test_a_gazepose_model_encodes_each_crop_once_and_predicts_as_on_windows(trained):
    """The predictor encodes every crop once and reuses it in each window it falls in; that
    equals GazePose run on the window of crops (the landmark prior is zero for given boxes)."""
    from dataclasses import replace

    from gazefollow.social.models.gazepose import GazePose
    run_dir, _ = trained
    config = LookingPredictor.from_pretrained(run_dir, device="cpu").config
    config = replace(config, lam=replace(config.lam, model="gazepose",
                                         gazepose_head_prior=False))
    torch.manual_seed(0)
    predictor = LookingPredictor(GazePose(config.model, config.lam), config, "cpu")
    calls = []
    predictor.model.base_model.register_forward_hook(lambda _m, args, _o: calls.append(
        len(args[0])))
    pictures, boxes, crops = _video(6, with_second=2)
    people = predictor.predict(pictures, boxes)
    assert sum(calls) == 8  # six crops of one face, two of the other: each once
    for frame, positions in ((0, [0, 0, 0, 0, 1, 2, 3]), (4, [1, 2, 3, 4, 5, 5, 5])):
        assert people[frame][0].probability == pytest.approx(
            _direct(predictor, crops[0], positions), abs=1e-6)


def test_a_gazepose_model_with_the_head_pose_prior_is_refused(trained):
    run_dir, _ = trained
    loaded = LookingPredictor.from_pretrained(run_dir, device="cpu")
    config = loaded.config
    object.__setattr__(config.lam, "model", "gazepose")
    with pytest.raises(ValueError, match="lam.gazepose_head_prior"):
        LookingPredictor(loaded.model, config, "cpu")


def test_the_demo_colours_faces_on_a_video_and_a_folder(trained, tmp_path):
    import json

    from gazefollow.engine.demo import check_entries
    from gazefollow.social.demo import SCHEMA
    from tests.conftest import run_script
    from tests.test_estimate_photos import _read_back, _write_video
    run_dir, _ = trained
    pictures, boxes, _ = _video(5, with_second=3)
    video = tmp_path / "clip.mp4"
    _write_video(video, pictures)
    (tmp_path / "boxes.json").write_text(json.dumps({str(i): b for i, b in enumerate(boxes)}))
    run_script("demo.py", "--weights", run_dir, "--input", video, "--boxes",
               tmp_path / "boxes.json", "--output", tmp_path / "out")
    assert _read_back(tmp_path / "out" / "clip_looking.mp4") == (5, 160, 120)
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    check_entries(entries, SCHEMA)
    assert [e["image"] for e in entries] == ["0", "1", "2", "3", "4"]
    assert [[p["id"] for p in e["people"]] for e in entries] == [[0, 1]] * 3 + [[0]] * 2
    assert all(0 <= p["probability"] <= 1 for e in entries for p in e["people"])
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(pictures[0]).save(folder / "0.png")
    (folder / "bad.png").write_bytes(b"")
    (tmp_path / "photo_boxes.json").write_text(json.dumps({"0.png": boxes[0]}))
    run_script("demo.py", "--weights", run_dir, "--input", folder, "--boxes",
               tmp_path / "photo_boxes.json", "--output", tmp_path / "photos_out")
    entries = json.loads((tmp_path / "photos_out" / "predictions.json").read_text())
    check_entries(entries, SCHEMA)
    assert len(entries) == 1 and len(entries[0]["people"]) == 2
    assert (tmp_path / "photos_out" / "0_looking.png").is_file()
