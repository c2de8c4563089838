"""Gaze-estimation readers on generated files in the released layouts, and the protocols."""
import json

import h5py
import numpy as np
import pytest

from gazefollow.engine.samples import BadInput
from gazefollow.estimation.data.mpiifacegaze import MPIIFaceGazeMat
from gazefollow.estimation.protocols import leave_one_subject_out, mpii_loso, mpii_unigaze_split


def write_mpii_subject(path, faces_bgr, labels):
    """A normalized MPIIFaceGaze pXX.mat as h5py sees the released MATLAB v7.3 files."""
    with h5py.File(path, "w") as mat:
        mat.create_dataset("Data/data", data=faces_bgr)
        mat.create_dataset("Data/label", data=labels)


def _labels(n, rng):
    labels = np.zeros((n, 16))
    labels[:, 0:2] = rng.uniform(-0.5, 0.5, size=(n, 2))
    labels[:, 2:4] = rng.uniform(-0.3, 0.3, size=(n, 2))
    labels[:, 4:16] = rng.uniform(0, 32, size=(n, 12))
    return labels


def test_mpiifacegaze_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, size=(3, 3, 32, 32), dtype=np.uint8)
    faces[0, 0] = 200  # the first face: blue channel (BGR) high
    faces[0, 1:] = 0
    labels = _labels(3, rng)
    write_mpii_subject(tmp_path / "p00.mat", faces, labels)
    write_mpii_subject(tmp_path / "p01.mat", faces[:2], labels[:2])
    reader = MPIIFaceGazeMat(tmp_path, ["p00", "p01"])
    assert len(reader) == 5 and reader.report.instances == 5
    sample = reader[0]
    assert sample["face"].shape == (32, 32, 3) and sample["face"].dtype == np.uint8
    assert sample["face"][0, 0].tolist() == [0, 0, 200]  # RGB: blue last
    assert sample["gaze"] == pytest.approx(-labels[0, 0:2])  # both angles flipped
    assert sample["head_pose"] == pytest.approx(-labels[0, 2:4])
    assert sample["landmarks"] == pytest.approx(labels[0, 4:16].reshape(6, 2))
    assert np.linalg.norm(sample["gaze_vector"]) == pytest.approx(1)
    assert reader[4]["subject"] == "p01" and reader[4]["index"] == 4
    assert np.array_equal(reader[4]["face"], faces[1][::-1].transpose(1, 2, 0))


def test_mpiifacegaze_bad_input_is_named_or_counted(tmp_path):
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 255, size=(3, 3, 16, 16), dtype=np.uint8)
    labels = _labels(3, rng)
    labels[1, 0] = np.nan
    write_mpii_subject(tmp_path / "p00.mat", faces, labels)
    with pytest.raises(BadInput, match=r"p00.mat, sample 1: NaN label"):
        MPIIFaceGazeMat(tmp_path, ["p00"])
    with h5py.File(tmp_path / "p01.mat", "w") as mat:
        mat.create_dataset("Data/data", data=faces)  # no labels
    write_mpii_subject(tmp_path / "p02.mat", faces, labels[:, :4])  # a 4-column label
    (tmp_path / "p03.mat").write_bytes(b"MATLAB 5.0 MAT-file")  # an old-format file
    with pytest.raises(BadInput, match="p01.mat: missing key: no Data/label"):
        MPIIFaceGazeMat(tmp_path, ["p01"])
    with pytest.raises(BadInput, match=r"p02.mat: wrong shape: Data/label is \(3, 4\)"):
        MPIIFaceGazeMat(tmp_path, ["p02"])
    with pytest.raises(BadInput, match="p03.mat: unreadable file"):
        MPIIFaceGazeMat(tmp_path, ["p03"])
    skipped = MPIIFaceGazeMat(tmp_path, ["p00", "p01", "p02", "p03", "p04"], policy="skip")
    assert len(skipped) == 2  # p00 without its NaN row
    assert dict(skipped.report.skipped) == {"NaN label": 1, "missing key": 1, "wrong shape": 1,
                                            "unreadable file": 1, "missing subject file": 1}


def test_leave_one_subject_out_never_mixes_subjects():
    for fold in range(15):
        split = mpii_loso(fold)
        assert split.test == (f"p{fold:02d}",)
        assert len(split.train) == 13 and len(split.val) == 1
        assert not set(split.test) & (set(split.train) | set(split.val))
        assert not set(split.train) & set(split.val)
    assert len(mpii_loso(3, val_subjects=0).train) == 14
    assert mpii_loso(14).val == ("p00",)  # wraps
    with pytest.raises(ValueError, match="folds 0..14"):
        mpii_loso(15)
    with pytest.raises(ValueError, match="none to train on"):
        leave_one_subject_out(("a", "b"), 0, val_subjects=1)
    unigaze = mpii_unigaze_split()
    assert unigaze.train[-1] == "p09" and unigaze.test == tuple(f"p{k}" for k in range(10, 15))
    assert mpii_unigaze_split(1).val == ("p09",) and "p09" not in mpii_unigaze_split(1).train


def write_xgaze_subject(path, faces_bgr, gaze, pose):
    """An ETH-XGaze subjectXXXX.h5 with the keys of the release."""
    n = len(faces_bgr)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("face_patch", data=faces_bgr)
        h5.create_dataset("face_gaze", data=gaze.astype(np.float32))
        h5.create_dataset("face_head_pose", data=pose.astype(np.float32))
        h5.create_dataset("frame_index", data=np.arange(n).reshape(n, 1))
        h5.create_dataset("cam_index", data=np.zeros((n, 1), np.int64))


def test_ethxgaze_round_trip_and_validation_split(tmp_path):
    from gazefollow.estimation.data.ethxgaze import ETHXGaze, train_subjects
    from gazefollow.estimation.protocols import ethxgaze_validation
    rng = np.random.default_rng(2)
    (tmp_path / "train").mkdir()
    names = [f"subject{k:04d}.h5" for k in range(3)]
    (tmp_path / "train_test_split.json").write_text(json.dumps(
        {"train": names, "test": ["subject0100.h5"], "test_person_specific": []}))
    faces = rng.integers(0, 255, size=(4, 24, 24, 3), dtype=np.uint8)
    gaze, pose = rng.uniform(-0.5, 0.5, size=(4, 2)), rng.uniform(-0.5, 0.5, size=(4, 2))
    for name in names:
        write_xgaze_subject(tmp_path / "train" / name, faces, gaze, pose)
    assert train_subjects(tmp_path) == names
    split = ethxgaze_validation(names, val_subjects=1)
    assert split.val == ("subject0002.h5",) and split.test == ()
    reader = ETHXGaze(tmp_path, list(split.train))
    assert len(reader) == 8
    sample = reader[5]
    assert sample["subject"] == "subject0001" and sample["index"] == 5
    assert np.array_equal(sample["face"], faces[1][:, :, ::-1])  # BGR -> RGB
    assert sample["gaze"] == pytest.approx(gaze[1]) and sample["head_pose"] == pytest.approx(
        pose[1])
    gaze[2, 1] = np.inf
    write_xgaze_subject(tmp_path / "train" / names[0], faces, gaze, pose[:3])
    with pytest.raises(BadInput, match=r"subject0000.h5: wrong shape: face_gaze \(4, 2\) and "
                                       r"face_head_pose \(3, 2\)"):
        ETHXGaze(tmp_path, names[:1])
    write_xgaze_subject(tmp_path / "train" / names[0], faces, gaze, pose)
    skipped = ETHXGaze(tmp_path, names[:2], policy="skip")
    assert len(skipped) == 7 and dict(skipped.report.skipped) == {"NaN label": 1}


def test_gaze360_round_trip_and_bad_lines(tmp_path):
    from PIL import Image

    from gazefollow.estimation.data.gaze360 import Gaze360Frames
    folder = tmp_path / "imgs" / "rec_027" / "head" / "000001"
    folder.mkdir(parents=True)
    for frame in (13, 14):
        Image.new("RGB", (20, 20), (frame, 0, 0)).save(folder / f"{frame:06d}.jpg")
    lines = ["rec_027/head/000001/000013.jpg 0.6 0.0 -0.8 ",  # the release's trailing space
             "rec_027/head/000001/000014.jpg\t0.0\t0.6\t-0.8"]
    (tmp_path / "validation.txt").write_text("\n".join(lines) + "\n")
    reader = Gaze360Frames(tmp_path, "val")
    assert len(reader) == 2 and reader[0]["subject"] == "rec_027"
    assert reader[0]["gaze"] == pytest.approx([0, np.arctan2(0.6, 0.8)])  # Gaze360's yaw
    assert reader[1]["gaze"] == pytest.approx([np.arcsin(0.6), 0])  # and its pitch
    assert reader[1]["face"].shape == (20, 20, 3)
    bad = lines + ["rec_027/head/000001/000015.jpg 0.6 0.0 -0.8",
                   "rec_027/head/000001/000013.jpg 0 0 0", "rec_027/head/000001/000013.jpg x"]
    (tmp_path / "test.txt").write_text("\n".join(bad) + "\n")
    with pytest.raises(BadInput, match=r"test.txt, line 3: missing image: no imgs/rec_027"):
        Gaze360Frames(tmp_path, "test")
    skipped = Gaze360Frames(tmp_path, "test", policy="skip")
    assert len(skipped) == 2
    assert dict(skipped.report.skipped) == {"missing image": 1, "malformed line": 2}
    with pytest.raises(FileNotFoundError, match="no train.txt"):
        Gaze360Frames(tmp_path, "train")


def test_the_synthetic_face_world_is_read_by_the_mpiifacegaze_reader(tmp_path):
    from gazefollow.estimation.data.synthetic_faces import FaceWorldConfig, write_face_world
    from gazefollow.engine.faces import render_face, rotation
    from gazefollow.estimation.metrics import angular_error, pitchyaw_to_vector
    head, eyes = (0.2, -0.3), (-0.1, 0.25)
    # the rotation maps "at the camera" to the direction of (pitch, yaw)
    assert rotation(*head) @ [0, 0, -1] == pytest.approx(pitchyaw_to_vector([head])[0])
    cfg = FaceWorldConfig(subjects=2, per_subject=3, size=32, seed=5)
    write_face_world(cfg, tmp_path / "faces", log=lambda *_: None)
    reader = MPIIFaceGazeMat(tmp_path / "faces", ["p00", "p01"])
    assert len(reader) == 6 and reader[0]["face"].shape == (32, 32, 3)
    again = MPIIFaceGazeMat(tmp_path / "faces", ["p00"])[2]  # deterministic by seed
    assert np.array_equal(reader[2]["face"], again["face"])
    # a subject's gaze combines head and eyes: not the head pose alone
    gaze, pose = np.stack([reader[i]["gaze"] for i in range(6)]), np.stack(
        [reader[i]["head_pose"] for i in range(6)])
    assert angular_error(gaze, pose).max() > 5
    subject_rng = np.random.default_rng([5, 0])
    from gazefollow.engine.faces import make_subject
    face, label, landmarks = render_face(make_subject(subject_rng), 32, head, eyes)
    expected = rotation(*head) @ rotation(*eyes) @ np.array([0, 0, -1.0])
    assert angular_error([label], [expected])[0] < 1e-6
    assert landmarks.shape == (6, 2) and (landmarks > 0).all() and (landmarks < 32).all()
    with pytest.raises(FileExistsError, match="not empty"):
        write_face_world(cfg, tmp_path / "faces", log=lambda *_: None)


def test_mpiifacegaze_pickle_round_trip_and_bad_input(tmp_path):
    import pickle

    from PIL import Image

    from gazefollow.estimation.data.mpiifacegaze_pickle import MPIIFaceGazePickle
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 255, size=(3, 8, 8, 3), dtype=np.uint8)
    labels = _labels(3, rng)
    for folder in ("00", "p01"):  # the recipe's "00" and a "p01" folder both serve
        (tmp_path / folder).mkdir()
        for k, face in enumerate(faces):
            Image.fromarray(face).save(tmp_path / folder / f"{k:04d}.png")
    # image paths as stored: absolute, relative to the subject folder, relative to the root
    images = [str(tmp_path / "00" / "0000.png"), "0001.png", "00/0002.png"]
    content = {"subject_id": "00", "images": images, "labels": list(labels)}
    (tmp_path / "00" / "labels.dict").write_bytes(pickle.dumps(content))
    reader = MPIIFaceGazePickle(tmp_path, ["p00"])
    assert len(reader) == 3 and reader.report.summary().endswith("3 rows -> 3 faces")
    sample = reader[1]
    assert np.array_equal(sample["face"], faces[1]) and sample["subject"] == "p00"
    assert sample["gaze"] == pytest.approx(-labels[1, 0:2])  # as the .mat file's labels
    assert sample["landmarks"] == pytest.approx(labels[1, 4:16].reshape(6, 2))
    assert reader.gaze_labels() == pytest.approx(-labels[:, 0:2])
    bad_labels = labels.copy()
    bad_labels[2, 1] = np.nan
    bad = {"images": ["0000.png", "9999.png", "0002.png"], "labels": list(bad_labels)}
    (tmp_path / "p01" / "labels.dict").write_bytes(pickle.dumps(bad))
    with pytest.raises(BadInput, match=r"p01/labels.dict, sample 1: missing image: no 9999.png"):
        MPIIFaceGazePickle(tmp_path, ["p01"])
    with pytest.raises(BadInput, match=r"p02/labels.dict: missing subject file"):
        MPIIFaceGazePickle(tmp_path, ["p02"])
    skipped = MPIIFaceGazePickle(tmp_path, ["p00", "p01", "p02"], policy="skip")
    assert len(skipped) == 4
    assert dict(skipped.report.skipped) == {"missing image": 1, "NaN label": 1,
                                            "missing subject file": 1}


def test_columbia_round_trip_folds_and_bad_names(tmp_path):
    from PIL import Image

    from gazefollow.estimation.data.columbia import (ColumbiaGaze, columbia_folds, parse_name,
                                                     subjects_under)
    assert parse_name("0001_2m_-15P_10V_-5H.jpg") == ("0001", -15, 10, -5)
    assert parse_name("0001_2m_-15P_10V.jpg") is None
    for subject in ("0001", "0002"):
        (tmp_path / subject).mkdir()
        Image.new("RGB", (6, 6), (int(subject), 0, 0)).save(
            tmp_path / subject / f"{subject}_2m_30P_-10V_15H.jpg")
    reader = ColumbiaGaze(tmp_path, ["0002"])
    assert len(reader) == 1 and reader[0]["subject"] == "0002"
    assert reader[0]["face"][0, 0].tolist()[0] in (1, 2, 3)  # JPEG: about (2, 0, 0)
    assert reader[0]["gaze"] == pytest.approx(np.radians([-10, 15]))
    assert reader[0]["head_pose"] == pytest.approx(np.radians([0, 30]))
    assert subjects_under(tmp_path) == ["0001", "0002"]
    subjects = [f"{k:04d}" for k in range(1, 57)]
    tests = [columbia_folds(subjects, k)[1] for k in range(5)]
    assert sorted(sum(tests, [])) == subjects  # every subject tested once
    for k in range(5):
        train, test = columbia_folds(subjects, k)
        assert not set(train) & set(test) and len(train) + len(test) == 56
    with pytest.raises(ValueError, match="folds 0..4"):
        columbia_folds(subjects, 5)
    Image.new("RGB", (6, 6)).save(tmp_path / "0001" / "0001_2m_30P.jpg")
    with pytest.raises(BadInput, match=r"0001_2m_30P.jpg: malformed file name"):
        ColumbiaGaze(tmp_path, ["0001"])
    skipped = ColumbiaGaze(tmp_path, ["0001", "0002"], policy="skip")
    assert len(skipped) == 2 and dict(skipped.report.skipped) == {"malformed file name": 1}


def write_unigaze_subject(path, faces, gaze, pose=None):
    """A subject file of UniGaze's normalised folders: face_patch, face_gaze (and, where the
    conversion wrote it, face_head_pose), compressed as its writer does (lzf, chunked)."""
    with h5py.File(path, "w") as h5:
        h5.create_dataset("face_patch", data=faces, compression="lzf",
                          chunks=(1, *faces.shape[1:]))
        h5.create_dataset("face_gaze", data=gaze.astype(np.float32))
        if pose is not None:
            h5.create_dataset("face_head_pose", data=pose.astype(np.float32))


def test_unigaze_gazecapture_and_eyediap_folders_round_trip(tmp_path):
    from gazefollow.estimation.data.unigaze_folders import (EyediapH5, GazeCaptureH5, eyediap_split,
                                                            gazecapture_split)
    rng = np.random.default_rng(4)
    faces = rng.integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
    gaze = rng.uniform(-0.5, 0.5, size=(3, 2))
    for folder in ("train", "test"):
        (tmp_path / "gc" / folder).mkdir(parents=True)
    for name in ("00002", "00010", "00100"):
        write_unigaze_subject(tmp_path / "gc" / "train" / f"{name}.h5", faces, gaze)
    write_unigaze_subject(tmp_path / "gc" / "test" / "00003.h5", faces, gaze)
    split = gazecapture_split(tmp_path / "gc", val_subjects=1)
    assert split.train == ("train/00002.h5", "train/00010.h5") and split.val == (
        "train/00100.h5",) and split.test == ("test/00003.h5",)
    reader = GazeCaptureH5(tmp_path / "gc", list(split.train))
    assert len(reader) == 6 and reader[4]["subject"] == "00010"
    assert np.array_equal(reader[4]["face"], faces[1])  # GazeCapture's files are RGB
    assert reader[4]["gaze"] == pytest.approx(gaze[1]) and np.isnan(reader[4]["head_pose"]).all()
    (tmp_path / "ed").mkdir()
    for person in (1, 2, 9, 14):
        write_unigaze_subject(tmp_path / "ed" / f"person_{person}.h5", faces, gaze, pose=gaze)
    split = eyediap_split(tmp_path / "ed", val_subjects=1)
    assert split.train == ("person_1.h5",) and split.val == ("person_2.h5",)
    assert split.test == ("person_9.h5", "person_14.h5")
    sample = EyediapH5(tmp_path / "ed", ["person_9.h5"])[2]
    assert np.array_equal(sample["face"], faces[2][:, :, ::-1])  # EYEDIAP's are BGR
    assert sample["head_pose"] == pytest.approx(gaze[2])
    with h5py.File(tmp_path / "ed" / "person_3.h5", "w") as h5:
        h5.create_dataset("face_patch", data=faces)
    with pytest.raises(BadInput, match="person_3.h5: missing key: no face_gaze"):
        EyediapH5(tmp_path / "ed", ["person_3.h5"])
    skipped = EyediapH5(tmp_path / "ed", ["person_1.h5", "person_3.h5"], policy="skip")
    assert len(skipped) == 3 and dict(skipped.report.skipped) == {"missing key": 1}
