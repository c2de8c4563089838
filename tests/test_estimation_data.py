"""Gaze-estimation readers on generated files in the released layouts, and the protocols."""
import h5py
import numpy as np
import pytest

from gazefollow.data.instances import BadInput
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
