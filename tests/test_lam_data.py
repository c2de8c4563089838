"""The Ego4D Looking-At-Me reader on folders written here in the released layout: labels
from the looking segments (ends included), track gaps interpolated and counted, bad rows
named or counted, windows padded at track ends, missing crops, GazePose's priors and its
Gaussian temporal dropout."""
import json

import numpy as np
import pytest
from PIL import Image

from gazefollow.engine.samples import BadInput
from gazefollow.social.data import priors
from gazefollow.social.data.dataset import LAMWindows, drop_blurred, mirror_landmarks, window
from gazefollow.social.data.ego4d_lam import read_challenge, read_split
from gazefollow.tasks import build_config
from main import CONFIGS

LAM_BASE = CONFIGS / "lam" / "base.yaml"

UID = "fc2b2014-9dc4-4a5d-8a1d-25a6911bff7c"  # a clip uid as Ego4D's split lists hold them


def track_rows(frames, person="2", size=20.0):
    return [{"clip_uid": UID, "frameNumber": f, "Person ID": person, "x": 10.0 + f,
             "y": 12.0, "height": size, "width": size} for f in frames]


def write_ego4d(root, rows=None, segments=None):
    """One clip with one track (frames 1-10 but 4: a gap) in Ego4D's LAM layout."""
    (root / "split").mkdir(parents=True)
    (root / "split" / "val.list").write_text(f"{UID}\n")
    (root / "json_original" / UID).mkdir(parents=True)
    rows = track_rows([f for f in range(1, 11) if f != 4]) if rows is None else rows
    (root / "json_original" / UID / "2.json").write_text(json.dumps(rows))
    (root / "result_LAM").mkdir()
    segments = [{"label": "2", "start_frame": 3, "end_frame": 5}] if segments is None else segments
    (root / "result_LAM" / f"{UID}.json").write_text(json.dumps(segments))
    rng = np.random.default_rng(0)
    for f in range(1, 11):
        face = root / "face_imgs" / UID / "2" / f"face_{f:05d}.jpg"
        face.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(face)
        frame = root / "video_imgs" / UID / f"img_{f:05d}.jpg"
        frame.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((60, 80, 3), f * 20, np.uint8)).save(frame)
    return root


def lam_config(*overrides):
    return build_config([LAM_BASE], ["data.face_size=16", *overrides])


def test_labels_gaps_and_the_track(tmp_path):
    [track], report = read_split(write_ego4d(tmp_path / "data"), "val")
    assert track.frames.tolist() == list(range(1, 11))
    assert track.labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]  # segment 3..5 inclusive
    assert not track.observed[3] and report.fixed["track gap (boxes interpolated)"] == 1
    assert track.boxes[3].tolist() == [14.0, 12.0, 34.0, 32.0]  # between frames 3 and 5
    assert track.boxes[0].tolist() == [11.0, 12.0, 31.0, 32.0]  # x, y, w, h -> x1 y1 x2 y2


@pytest.fixture
def folder(tmp_path):
    return write_ego4d(tmp_path / "data")


def test_bad_rows_are_named_or_counted(tmp_path):
    rows = track_rows(range(1, 6))
    rows[2]["width"] = 0
    rows[3]["frameNumber"] = "x"
    root = write_ego4d(tmp_path / "data", rows=rows)
    with pytest.raises(BadInput, match=r"2\.json, row 2: impossible box"):
        read_split(root, "val")
    [track], report = read_split(root, "val", policy="skip")
    assert report.skipped == {"impossible box": 1, "malformed row": 1}
    assert track.frames.tolist() == [1, 2, 3, 4, 5] and track.observed.tolist() == [
        True, True, False, False, True]


def test_impossible_segments_and_missing_lists(tmp_path):
    root = write_ego4d(tmp_path / "data", segments=[{"label": "2", "start_frame": 9,
                                                      "end_frame": 2}])
    with pytest.raises(BadInput, match="impossible segment"):
        read_split(root, "val")
    with pytest.raises(FileNotFoundError, match="train.list"):
        read_split(root, "train")


def test_windows_pad_at_track_ends():
    class Track:
        frames = np.arange(1, 6)
    positions, valid = window(Track, 0, 7)
    assert positions.tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert valid.tolist() == [False, False, False, True, True, True, True]
    positions, valid = window(Track, 4, 7)
    assert positions.tolist() == [1, 2, 3, 4, 4, 4, 4] and valid.sum() == 4


def test_samples_crops_and_a_missing_crop(folder):
    tracks, report = read_split(folder, "val")
    dataset = LAMWindows(folder, tracks, report, "val", lam_config("lam.val_stride=3"), {})
    assert len(dataset) == 4  # key frames 1, 4, 7, 10
    sample = dataset[1]
    assert sample["faces"].shape == (7, 3, 16, 16) and sample["label"] == 1
    assert sample["frame"] == 4 and sample["uid"] == UID and sample["track_id"] == "2"
    # the gap frame 4 has its crop file here, but a gap takes the crop before it (frame 3)
    assert (sample["faces"][3] == sample["faces"][2]).all()
    frames = LAMWindows(folder, tracks, report, "val", lam_config("lam.val_stride=3",
                                                                "lam.crops=frames"), {})
    assert not (frames[1]["faces"][3] == frames[1]["faces"][2]).all()  # cut at the box
    (folder / "face_imgs" / UID / "2" / "face_00007.jpg").unlink()
    with pytest.raises(BadInput, match=r"face_00007\.jpg: missing face crop of track 2"):
        dataset[2]  # a crop removed after the check is still named when it is read
    # every crop is checked when the windows are made, before training
    with pytest.raises(BadInput, match=r"face_00007\.jpg: missing crop: no such file"):
        LAMWindows(folder, tracks, report, "val", lam_config("lam.val_stride=3"), {})
    tracks, skipped = read_split(folder, "val", "skip")
    skipping = LAMWindows(folder, tracks, skipped, "val",
                          lam_config("lam.val_stride=3", "data.on_bad_input=skip"), {})
    # frame 7 is in the windows of key frames 4, 7 and 10 (t-3 .. t+3)
    assert [int(skipping[0]["frame"])] == [1] and len(skipping) == 1
    assert skipped.skipped == {"missing crop": 1, "windows left out for a bad crop": 3}


def test_gazepose_priors_are_read_and_missing_ones_counted(folder):
    key = priors.pose_key(UID, "2", 1)
    points = [[0.5, 0.6, 0, 0.9], [0.4, 0.4, 0, 0.9], [0.6, 0.4, 0, 0.9], [0.45, 0.75, 0, 0.9],
              [0.55, 0.75, 0, 0.9]]
    priors.write_priors(folder, "val", {"headpose": {key: [-30.0, 10.0, 5.0, 0, 0, 0]},
                                        "landmarks": {UID: {"2": {"2": points}}}})
    tracks, report = read_split(folder, "val")
    loaded = {kind: priors.read_prior(folder, "val", kind) for kind in ("headpose", "landmarks")}
    dataset = LAMWindows(folder, tracks, report, "val", lam_config("lam.val_stride=5"), loaded)
    first, second = dataset[0], dataset[1]  # key frames 1 and 6
    assert first["head_pose"].tolist() == [-30.0, 10.0, 5.0]
    assert second["head_pose"].tolist() == [90.0, 90.0, 90.0]  # none: GazePose's 90 degrees
    # frame 1 has no landmarks; frame 2 (one after) does: x, y about the eyes' middle (0.5, 0.4)
    assert first["landmarks"].numpy() == pytest.approx(
        [0, -0.1, 0.1, -0.05, 0.05, 0.2, 0, 0, 0.35, 0.35, 0.9, 0.9, 0.9, 0.9, 0.9], abs=1e-6)
    assert second["landmarks"].abs().sum() == 0
    assert report.fixed["no head-pose prior (the 90-degree bins, as GazePose)"] == 1
    assert report.fixed["no landmarks within 3 frames (zeros, as GazePose)"] == 1
    mirrored = mirror_landmarks(first["landmarks"].numpy())
    assert mirrored[:5] == pytest.approx([0, -0.1, 0.1, -0.05, 0.05])  # eyes swap, x negated


def test_gaussian_temporal_dropout_keeps_the_key_frame_in_the_middle():
    positions = np.arange(10, 17)
    quality = np.array([0.9, 0.1, 0.9, 0.0, 0.05, 0.9, 0.9])  # evaluation drops p < 0.2
    # 11 and 14 go (not the key frame 13, whatever its p); each side closes up to the key
    # frame and repeats its outermost kept frame
    assert drop_blurred(positions, quality, None).tolist() == [10, 10, 12, 13, 15, 16, 16]
    rng = np.random.default_rng(0)
    kept = drop_blurred(positions, np.ones(7), rng)  # sharp frames are never dropped
    assert kept.tolist() == positions.tolist()
    assert priors.frame_quality({"c": {"t": {"1": 5.0}}}, 5.0, 2.0) == {"c": {"t": {"1": 0.5}}}


def test_challenge_crops_are_read_with_their_unique_ids(tmp_path):
    for frame, unique in ((3, "a1"), (1, "b2")):
        crop = tmp_path / "videos_challenge" / UID / "0" / f"{frame}_{unique}.jpg"
        crop.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(crop)
    [track], report = read_challenge(tmp_path / "videos_challenge")
    assert track.frames.tolist() == [1, 3] and track.rows == ["b2", "a1"]
    assert report.rows == 2 and report.instances == 1
    Image.new("RGB", (8, 8)).save(tmp_path / "videos_challenge" / UID / "0" / "bad.jpg")
    (tmp_path / "videos_challenge" / UID / "7").mkdir()  # a track folder without crops
    with pytest.raises(BadInput, match="bad.jpg: misnamed crop"):
        read_challenge(tmp_path / "videos_challenge")
    _, skipped = read_challenge(tmp_path / "videos_challenge", "skip")
    assert skipped.skipped == {"misnamed crop": 1, "empty track": 1}
