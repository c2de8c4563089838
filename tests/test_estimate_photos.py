"""Gaze estimation on pictures (GazeEstimator): faces of the built-in face world pasted into a
larger picture give what the trained model gives on the faces themselves; the data
normalisation recovers a known head pose and its rotation, undone, a known 3D direction; a
model that is flip-equivariant by construction gives the mirrored gaze on the mirrored
picture; exports load back; bad boxes are named."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gazefollow.engine.faces import make_subject, render_face
from gazefollow.engine.images import to_tensor
from gazefollow.engine.samples import BadInput
from gazefollow.estimation.metrics import pitchyaw_to_vector
from gazefollow.estimation.models import estimate
from gazefollow.estimation.normalise import (FACE_MODEL, VirtualCamera, default_camera, head_pose,
                                             normalise_face, warp_points)
from gazefollow.estimation.predict import GazeEstimator
from main import main
from tests.conftest import ROOT

TINY_ESTIMATION = ROOT / "configs" / "estimation" / "tiny_test.yaml"
SIZE = 32  # the tiny configuration's face size


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    import cv2
    return cv2.Rodrigues(np.array([pitch, yaw, roll]))[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("estimator")
    main(["--task", "estimation", "--experiment", str(TINY_ESTIMATION),
          f"run.output_dir={tmp / 'out'}", f"data.dataset_dir={tmp / 'faces'}",
          "--max_steps", "2"])
    run_dir = next((tmp / "out").glob("*/tiny"))
    return GazeEstimator.from_pretrained(run_dir, device="cpu"), tmp


def _picture_with_faces(rng, corners):
    """A 160 x 200 picture with a face of the world pasted at each top-left corner."""
    picture = rng.integers(0, 255, (160, 200, 3), dtype=np.uint8)
    faces = []
    for x, y in corners:
        face, _, _ = render_face(make_subject(rng), SIZE, (0.1, -0.2), (0.05, 0.3))
        picture[y:y + SIZE, x:x + SIZE] = face
        faces.append(face)
    return picture, faces


def test_given_boxes_read_the_faces_as_the_model_was_trained(trained, tmp_path):
    estimator, _ = trained
    assert estimator.normalisation == "crop"  # the face world is centred crops
    rng = np.random.default_rng(0)
    corners = [(10, 20), (120, 90)]
    picture, faces = _picture_with_faces(rng, corners)
    boxes = [(x, y, x + SIZE, y + SIZE) for x, y in corners]
    got = estimator.estimate([picture], [boxes], keep_faces=True)[0]
    with torch.no_grad():
        direct = estimate(estimator.model, {"face": torch.stack(
            [to_tensor(Image.fromarray(f)) for f in faces])}).numpy()
    for person, face, expected in zip(got, faces, direct):
        assert np.array_equal(person.face, face)  # the crop is the face itself
        np.testing.assert_allclose(person.pitchyaw, expected, atol=1e-6)
        # a crop keeps the camera's frame: the 3D direction is the angles' vector
        np.testing.assert_allclose(person.gaze, pitchyaw_to_vector(expected[None])[0], atol=1e-6)
        assert person.source == "given" and person.head_rotation is None
    # the export predicts the same
    export = estimator.save_pretrained(tmp_path / "export")
    again = GazeEstimator.from_pretrained(export, device="cpu").estimate([picture], [boxes])[0]
    np.testing.assert_allclose([p.pitchyaw for p in again], [p.pitchyaw for p in got], atol=1e-6)


def test_bad_boxes_and_pictures_are_named(trained, tmp_path):
    estimator, _ = trained
    picture = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(BadInput, match="image 0, face 1: the box .* is empty inside the 60x50"):
        estimator.estimate([picture], [[(0, 0, 20, 20), (70, 10, 90, 30)]])
    with pytest.raises(BadInput, match="face 0: a face box is 4 finite"):
        estimator.estimate([picture], [[(0, 0, float("nan"), 20)]])
    clamped = estimator.estimate([picture], [[(-10, -5, 20, 20)]])[0][0]
    assert clamped.box == (0.0, 0.0, 20.0, 20.0)  # clamped to the picture
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BadInput, match="cannot read image .*broken.jpg"):
        estimator.estimate([tmp_path / "broken.jpg"])


def test_the_normalisation_recovers_the_pose_and_undoes_its_rotation():
    """A head at a known pose in front of a known camera: the five landmarks projected, the
    pose found from them, the virtual camera's rotation as the paper builds it from the true
    pose; a gaze direction through the virtual camera and back is itself."""
    import cv2
    camera = default_camera(640, 480)
    rotation, translation = _rotation(0.2, -0.35, 0.1), np.array([60.0, -30.0, 650.0])
    landmarks = cv2.projectPoints(FACE_MODEL, cv2.Rodrigues(rotation)[0], translation, camera,
                                  np.zeros(4))[0].reshape(5, 2)
    found_rotation, found_translation = head_pose(landmarks, camera)
    np.testing.assert_allclose(found_rotation, rotation, atol=1e-6)
    np.testing.assert_allclose(found_translation, translation, atol=1e-4)
    rgb = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    virtual = VirtualCamera(960.0, 600.0, 224)
    face = normalise_face(rgb, landmarks, camera, virtual)
    centre = (FACE_MODEL @ rotation.T + translation)[[0, 1, 3, 4]].mean(axis=0)
    forward = centre / np.linalg.norm(centre)
    down = np.cross(forward, rotation[:, 0])
    down /= np.linalg.norm(down)
    expected = np.stack([np.cross(down, forward), down, forward])
    np.testing.assert_allclose(face.rotation, expected, atol=1e-6)
    # the face centre lands on the crop's centre; the head has no roll in the crop
    projected = cv2.projectPoints(centre[None], np.zeros(3), np.zeros(3), camera,
                                  np.zeros(4))[0].reshape(1, 2)
    np.testing.assert_allclose(warp_points(projected, face.warp)[0], [112, 112], atol=1e-6)
    assert abs((face.rotation @ rotation)[1, 0]) < 1e-9
    gaze = np.array([0.3, -0.2, -0.93])
    gaze /= np.linalg.norm(gaze)
    np.testing.assert_allclose(face.rotation.T @ (face.rotation @ gaze), gaze, atol=1e-12)
    estimator = GazeEstimator(_Constant(face.rotation @ gaze), _config(), "cpu",
                              normalisation=virtual)
    result = estimator.estimate([rgb], [[(0, 0, 640, 480)]], landmarks=[[landmarks]])[0][0]
    np.testing.assert_allclose(result.gaze, gaze, atol=1e-5)


class _Constant(nn.Module):
    """Always the pitch, yaw of one direction (in the virtual camera's frame)."""

    def __init__(self, direction):
        super().__init__()
        from gazefollow.estimation.metrics import vector_to_pitchyaw
        self.register_buffer("angles", torch.tensor(vector_to_pitchyaw(direction[None])[0],
                                                    dtype=torch.float64))

    def forward(self, face):
        return self.angles.expand(len(face), 2)


class _FlipEquivariant(nn.Module):
    """pitch(x) = p(x) + p(flip x), yaw(x) = q(x) - q(flip x): mirroring the face keeps the
    pitch and negates the yaw, whatever the random weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2), nn.ReLU(), nn.Flatten(),
                                 nn.LazyLinear(2))

    def forward(self, face):
        a, b = self.net(face), self.net(face.flip(-1))
        return torch.stack([a[:, 0] + b[:, 0], a[:, 1] - b[:, 1]], dim=1)


def _config():
    from gazefollow.tasks import REGISTRY
    return REGISTRY.build_config([TINY_ESTIMATION], ["run.task=estimation"])


def test_a_mirrored_picture_gives_the_mirrored_gaze():
    estimator = GazeEstimator(_FlipEquivariant(), _config(), "cpu", normalisation="crop")
    rng = np.random.default_rng(2)
    picture, _ = _picture_with_faces(rng, [(30, 40)])
    box = (30, 40, 30 + SIZE, 40 + SIZE)
    mirrored_box = (200 - box[2], box[1], 200 - box[0], box[3])
    one = estimator.estimate([picture], [[box]])[0][0]
    other = estimator.estimate([picture[:, ::-1]], [[mirrored_box]])[0][0]
    assert abs(one.pitchyaw[1]) > 1e-3  # the face is not looking straight ahead
    np.testing.assert_allclose(other.pitchyaw, [one.pitchyaw[0], -one.pitchyaw[1]], atol=1e-5)
    np.testing.assert_allclose(other.gaze, [-one.gaze[0], one.gaze[1], one.gaze[2]], atol=1e-5)


def _write_video(path, pictures, fps: int = 10) -> None:
    import cv2
    height, width = pictures[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for picture in pictures:
        writer.write(np.ascontiguousarray(picture[:, :, ::-1]))
    writer.release()


def _read_back(path) -> tuple[int, int, int]:
    import cv2
    video = cv2.VideoCapture(str(path))
    return (int(video.get(cv2.CAP_PROP_FRAME_COUNT)), int(video.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))


def test_the_demo_draws_3d_gaze_on_a_folder_and_a_video(trained, tmp_path, capsys):
    import json

    from gazefollow.engine.demo import check_entries
    from gazefollow.estimation.demo import SCHEMA
    from tests.conftest import run_script
    _, tmp = trained
    run_dir = next((tmp / "out").glob("*/tiny"))
    rng = np.random.default_rng(5)
    folder = tmp_path / "photos"
    folder.mkdir()
    corners = [(10, 20), (120, 90)]
    for name in ("a.png", "b.png"):
        Image.fromarray(_picture_with_faces(rng, corners)[0]).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    boxes = [[x, y, x + SIZE, y + SIZE] for x, y in corners]
    given = {"a.png": boxes, "b.png": [boxes[0], [500, 500, 520, 520]],
             **{str(i): boxes for i in range(4)}}
    (tmp_path / "boxes.json").write_text(json.dumps(given))
    run_script("demo.py", "--weights", run_dir, "--input", folder, "--boxes",
               tmp_path / "boxes.json", "--output", tmp_path / "out")
    printed = capsys.readouterr().out
    assert "1 unreadable" in printed and "1 given box(es) outside" in printed
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    check_entries(entries, SCHEMA)
    assert [len(e["people"]) for e in entries] == [2, 1]
    assert (tmp_path / "out" / "a_gaze3d.png").is_file()
    face = entries[0]["people"][0]
    assert face["box_source"] == "given"
    assert np.linalg.norm(face["gaze"]) == pytest.approx(1, abs=1e-4)
    video = tmp_path / "clip.mp4"
    _write_video(video, [_picture_with_faces(rng, corners)[0] for _ in range(4)])
    run_script("demo.py", "--weights", run_dir, "--input", video, "--boxes",
               tmp_path / "boxes.json", "--output", tmp_path / "video")
    assert _read_back(tmp_path / "video" / "clip_gaze3d.mp4") == (4, 200, 160)
    entries = json.loads((tmp_path / "video" / "predictions.json").read_text())
    check_entries(entries, SCHEMA)
    assert [[p["id"] for p in e["people"]] for e in entries] == [[0, 1]] * 4  # tracked
    rows = (tmp_path / "video" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and rows[0].startswith("image,person,box_source")


def test_the_gaze_following_demo_draws_each_face_s_3d_gaze_too(trained, straight, tmp_path,
                                                                 monkeypatch):
    """--with_estimator: one detector pass (a stand-in backend that finds the pasted faces
    with landmarks) gives the head boxes and the estimator's faces."""
    import json

    from gazefollow.engine import face_detector
    from tests.conftest import _run_dir, run_script
    _, tmp = trained
    corners = [(10, 20), (120, 90)]

    def found(rgb, confidence):
        return [((x, y, SIZE, SIZE), 0.9, np.array([[x + 10, y + 12], [x + 22, y + 12],
                                                     [x + 16, y + 18], [x + 11, y + 25],
                                                     [x + 21, y + 25]], np.float64))
                for x, y in corners]
    monkeypatch.setitem(face_detector.FACE_BACKENDS, "yuface", found)
    rng = np.random.default_rng(7)
    video = tmp_path / "clip.mp4"
    _write_video(video, [_picture_with_faces(rng, corners)[0] for _ in range(3)])
    run_script("demo.py", "--weights", _run_dir(straight[0], "straight"), "--with_estimator",
               next((tmp / "out").glob("*/tiny")), "--detector", "yuface", "--input", video,
               "--output", tmp_path / "out")
    assert _read_back(tmp_path / "out" / "clip_gaze.mp4") == (3, 200, 160)
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [len(e["people"]) for e in entries] == [2, 2, 2]
    assert [len(e["faces"]) for e in entries] == [2, 2, 2]
    face = entries[0]["faces"][1]
    assert face["box"] == [120.0, 90.0, 152.0, 122.0] and face["landmarks"][0] == [130.0, 102.0]
