"""Fault cases of the gaze-estimation readers: faces checked before training and named by
file and row, labels that are not numbers, empty faces and files, malformed JSON."""
import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

from gazefollow.engine.samples import BadInput
from gazefollow.estimation.data.checks import check_faces
from gazefollow.estimation.data.dataset import FaceDataset
from gazefollow.estimation.data.mpiifacegaze import MPIIFaceGazeMat
from gazefollow.estimation.data.mpiifacegaze_pickle import MPIIFaceGazePickle
from tests.test_estimation_data import _labels, write_mpii_subject


def _compressed_subject(path, faces, labels):
    """A pXX.mat with one gzip chunk per face, as the synthetic world writes them."""
    with h5py.File(path, "w") as mat:
        mat.create_dataset("Data/data", data=faces, compression="gzip",
                           chunks=(1, *faces.shape[1:]))
        mat.create_dataset("Data/label", data=labels)


def _damage_chunk(path, row):
    with h5py.File(path, "r") as mat:
        info = mat["Data/data"].id.get_chunk_info(row)
    data = bytearray(path.read_bytes())
    data[info.byte_offset:info.byte_offset + info.size] = b"\x13" * info.size
    path.write_bytes(bytes(data))


def test_a_damaged_chunk_is_named_by_its_file_and_row(tmp_path):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, size=(4, 3, 16, 16), dtype=np.uint8)
    _compressed_subject(tmp_path / "p05.mat", faces, _labels(4, rng))
    _damage_chunk(tmp_path / "p05.mat", 2)
    reader = MPIIFaceGazeMat(tmp_path, ["p05"])  # labels read: the faces are not yet
    with pytest.raises(BadInput, match=r"p05\.mat, row 2: cannot read the face"):
        FaceDataset(reader, 16)[2]
    with pytest.raises(BadInput, match=r"p05\.mat, row 2: unreadable face"):
        check_faces(MPIIFaceGazeMat(tmp_path, ["p05"]), decode=True)  # data.verify_images
    skipping = MPIIFaceGazeMat(tmp_path, ["p05"], policy="skip")
    check_faces(skipping, decode=True)
    assert len(skipping) == 3 and skipping.report.skipped == {"unreadable face": 1}


def test_a_truncated_png_is_named_before_training(tmp_path):
    from main import main
    rng = np.random.default_rng(1)
    for subject in (f"p{k:02d}" for k in range(15)):  # leave-one-subject-out needs all 15
        (tmp_path / "data" / subject).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(
                tmp_path / "data" / subject / f"{k:04d}.png")
        content = {"images": [f"{k:04d}.png" for k in range(3)], "labels": list(_labels(3, rng))}
        (tmp_path / "data" / subject / "labels.dict").write_bytes(pickle.dumps(content))
    broken = tmp_path / "data" / "p01" / "0002.png"
    broken.write_bytes(broken.read_bytes()[:30])
    with pytest.raises(BadInput, match=r"p01/0002\.png: unreadable image"):
        main(["--task", "estimation", "--config", "configs/estimation/tiny_test.yaml",
              "data.source_dataset=mpiifacegaze_pickle", f"data.dataset_dir={tmp_path / 'data'}",
              f"run.output_dir={tmp_path / 'out'}", "estimation.val_subjects=0",
              "data.face_size=16", "--max_steps", "1"])
    assert not list(tmp_path.rglob("train_log.jsonl"))  # stopped before step 1


def test_labels_that_are_not_numbers_and_empty_faces_are_named(tmp_path):
    rng = np.random.default_rng(2)
    with h5py.File(tmp_path / "p00.mat", "w") as mat:
        mat.create_dataset("Data/data", data=np.zeros((2, 3, 8, 8), np.uint8))
        mat.create_dataset("Data/label", data=np.array([[b"left"] * 16] * 2))
    with pytest.raises(BadInput, match=r"p00\.mat: malformed label: Data/label holds"):
        MPIIFaceGazeMat(tmp_path, ["p00"])
    write_mpii_subject(tmp_path / "p01.mat", np.zeros((2, 3, 0, 0), np.uint8), _labels(2, rng))
    with pytest.raises(BadInput, match=r"p01\.mat: wrong shape"):
        MPIIFaceGazeMat(tmp_path, ["p01"])
    write_mpii_subject(tmp_path / "p02.mat", np.zeros((0, 3, 8, 8), np.uint8), _labels(0, rng))
    reader = MPIIFaceGazeMat(tmp_path, ["p00", "p01", "p02"], policy="skip")
    assert reader.report.skipped == {"malformed label": 1, "wrong shape": 1, "no faces": 1}
    (tmp_path / "p03").mkdir()
    (tmp_path / "p03" / "labels.dict").write_bytes(pickle.dumps(
        {"images": ["0000.png"], "labels": [["up"] * 16]}))
    (tmp_path / "p04").mkdir()
    (tmp_path / "p04" / "labels.dict").write_bytes(pickle.dumps({"images": [], "labels": []}))
    skipped = MPIIFaceGazePickle(tmp_path, ["p03", "p04"], policy="skip")
    assert skipped.report.skipped == {"malformed label": 1, "no faces": 1}


def test_a_malformed_eth_xgaze_split_file_is_one_named_error(tmp_path):
    from gazefollow.estimation.data.ethxgaze import train_subjects
    (tmp_path / "train_test_split.json").write_text("5")
    with pytest.raises(BadInput, match="train_test_split.json: expected a 'train' list"):
        train_subjects(tmp_path)
    (tmp_path / "train_test_split.json").write_text("{not json")
    with pytest.raises(BadInput, match="train_test_split.json: not valid JSON"):
        train_subjects(tmp_path)
