"""Gaze estimation through main.py: 2 training steps and an evaluation on a generated folder
of each dataset in its released layout, --all_folds over 15 subjects, and the refusals."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gazefollow.config import ConfigError
from gazefollow.engine.run_records import read_step_log
from main import main
from tests.conftest import ROOT
from tests.test_estimation_data import (_labels, write_mpii_subject, write_unigaze_subject,
                                        write_xgaze_subject)

TINY_ESTIMATION = ROOT / "configs" / "estimation" / "tiny_test.yaml"
FACE = 24  # generated faces are this size; the tiny config resizes them to 32


def _estimate(tmp_path, *extra):
    return main(["--task", "estimation", "--experiment", str(TINY_ESTIMATION),
                 f"run.output_dir={tmp_path / 'out'}", "--max_steps", "2", *extra])


def _faces(n, rng):
    return rng.integers(0, 255, size=(n, FACE, FACE, 3), dtype=np.uint8)


def _check_run(tmp_path, run_name, results, subjects):
    run_dir = tmp_path / "out" / run_name / "tiny"
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored["model"]["angular_error"] == pytest.approx(results["model"]["angular_error"])
    assert 0 <= stored["model"]["angular_error"] <= 180
    assert stored["mean_gaze"]["angular_error"] >= 0
    assert sorted(stored["per_subject"]) == sorted(subjects)
    assert (run_dir / "predictions.csv").is_file() and (run_dir / "predictions_grid.png").is_file()
    return stored


def test_the_synthetic_face_world_trains_and_evaluates(tmp_path):
    results = _estimate(tmp_path, f"data.dataset_dir={tmp_path / 'faces'}",
                        "eval.evaluate_every=1")
    stored = _check_run(tmp_path, "synthetic_faces-resnet-fold00", results, ["p00"])
    assert stored["info"]["weights"] == "ema"
    curve = read_step_log(tmp_path / "out" / "synthetic_faces-resnet-fold00" / "tiny",
                          "val_log.jsonl")  # validation on p01 after each step
    assert [line["step"] for line in curve] == [1, 2] and curve[0]["angular_error"] > 0
    assert (tmp_path / "faces" / "p02.mat").is_file()


def write_pickle_subject(root, subject_id, faces_rgb, labels):
    """The GazeNet recipe's layout: <root>/<sid>/0000.png ... and labels.dict (a pickle)."""
    folder = root / subject_id
    folder.mkdir(parents=True)
    images = []
    for number, face in enumerate(faces_rgb):
        Image.fromarray(face).save(folder / f"{number:04d}.png")
        images.append(str(folder / f"{number:04d}.png"))
    with (folder / "labels.dict").open("wb") as handle:
        pickle.dump({"subject_id": subject_id, "images": images, "labels": list(labels)}, handle)


def test_mpiifacegaze_pickle_trains_and_evaluates(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(15):
        write_pickle_subject(tmp_path / "pickle", f"{k:02d}", _faces(2, rng), _labels(2, rng))
    results = _estimate(tmp_path, "data.source_dataset=mpiifacegaze_pickle",
                        f"data.dataset_dir={tmp_path / 'pickle'}", "eval.fold=3")
    _check_run(tmp_path, "mpiifacegaze_pickle-resnet-fold03", results, ["p03"])


def write_xgaze_folder(root, rng, subjects: int = 3, faces: int = 4) -> None:
    """An ETH-XGaze release folder: train_test_split.json and train/subjectXXXX.h5."""
    names = [f"subject{k:04d}.h5" for k in range(subjects)]
    (root / "train").mkdir(parents=True)
    (root / "train_test_split.json").write_text(json.dumps(
        {"train": names, "test": ["subject0100.h5"], "test_person_specific": []}))
    for name in names:
        write_xgaze_subject(root / "train" / name, _faces(faces, rng),
                            rng.uniform(-0.5, 0.5, (faces, 2)), rng.uniform(-0.5, 0.5, (faces, 2)))


def test_ethxgaze_trains_and_evaluates_on_held_out_train_subjects(tmp_path):
    write_xgaze_folder(tmp_path / "xgaze", np.random.default_rng(1))
    results = _estimate(tmp_path, "data.source_dataset=ethxgaze", "eval.split=val",
                        f"data.dataset_dir={tmp_path / 'xgaze'}")
    _check_run(tmp_path, "ethxgaze-resnet", results, ["subject0002"])


def write_gaze360_folder(root, rng) -> None:
    """train.txt / validation.txt / test.txt beside imgs/<rec>/head/<track>/<frame>.jpg."""
    for split, recording in (("train", "rec_001"), ("validation", "rec_002"), ("test", "rec_003")):
        folder = root / "imgs" / recording / "head" / "000000"
        folder.mkdir(parents=True)
        lines = []
        for frame, face in enumerate(_faces(4, rng)):
            Image.fromarray(face).save(folder / f"{frame:06d}.jpg")
            gaze = rng.normal(size=3) * [0.3, 0.3, 0.1] + [0, 0, -1]
            gaze /= np.linalg.norm(gaze)
            lines.append(f"{recording}/head/000000/{frame:06d}.jpg " + " ".join(map(str, gaze)))
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_gaze360_trains_and_evaluates_on_its_splits(tmp_path):
    root = tmp_path / "gaze360"
    write_gaze360_folder(root, np.random.default_rng(2))
    results = _estimate(tmp_path, "data.source_dataset=gaze360", f"data.dataset_dir={root}")
    _check_run(tmp_path, "gaze360-resnet", results, ["rec_003"])


def write_columbia_folder(root, rng) -> None:
    """Six subjects' photographs under the release's names, two each."""
    for subject in range(1, 7):
        (root / f"{subject:04d}").mkdir(parents=True)
        for face, (pose, vertical, horizontal) in zip(_faces(2, rng), [(0, 10, -5), (15, 0, 10)]):
            name = f"{subject:04d}_2m_{pose}P_{vertical}V_{horizontal}H.jpg"
            Image.fromarray(face).save(root / f"{subject:04d}" / name)


def test_columbia_trains_and_evaluates_a_cross_subject_fold(tmp_path):
    root = tmp_path / "columbia"
    write_columbia_folder(root, np.random.default_rng(3))
    results = _estimate(tmp_path, "data.source_dataset=columbia", f"data.dataset_dir={root}")
    # fold 0 of 5 tests every fifth subject from the first
    _check_run(tmp_path, "columbia-resnet-fold00", results, ["0001", "0006"])


def test_all_folds_runs_every_leave_one_subject_out_fold(tmp_path, capsys):
    rng = np.random.default_rng(4)
    (tmp_path / "mpii").mkdir()
    for k in range(15):
        faces = _faces(2, rng).transpose(0, 3, 1, 2)  # the .mat layout: N, 3, H, W
        write_mpii_subject(tmp_path / "mpii" / f"p{k:02d}.mat", faces, _labels(2, rng))
    summary = _estimate(tmp_path, "--all_folds", "data.source_dataset=mpiifacegaze",
                        f"data.dataset_dir={tmp_path / 'mpii'}", "optim.optimizer=sgd",
                        "optim.momentum=0.9", "optim.lr_schedule=multistep",
                        "eval.num_visualize=0", "run.save_every=100")  # 15 runs: no extras
    assert [row["fold"] for row in summary["folds"]] == list(range(15))
    assert [row["test"] for row in summary["folds"]] == [[f"p{k:02d}"] for k in range(15)]
    mean = np.mean([row["model"] for row in summary["folds"]])
    assert summary["mean"]["model"] == pytest.approx(mean)
    table = capsys.readouterr().out.split("\nfold ")[-1].splitlines()
    assert len(table) == 1 + 15 + 2  # header, folds, mean, the path
    written = tmp_path / "out" / "mpiifacegaze-resnet-all_folds" / "tiny" / "folds.json"
    assert json.loads(written.read_text()) == json.loads(json.dumps(summary))
    fold3 = tmp_path / "out" / "mpiifacegaze-resnet-fold03" / "tiny"
    with pytest.raises(ConfigError, match="eval.fold 3 -> 4: a model is tested on its own fold"):
        main(["--eval_weights", str(fold3), "eval.fold=4"])


@pytest.mark.parametrize("overrides, message", [
    (["data.source_dataset=synthetic"], "not a dataset of run.task=estimation"),
    (["estimation.estimator=gazenet"], "built for 112 px faces"),
    (["data.source_dataset=ethxgaze"], "ETH-XGaze's test labels are hidden"),
    (["optim.lr_milestones=[8, 4]"], "must be increasing"),
    (["data.source_dataset=columbia", "estimation.split_protocol=unigaze"], "ColumbiaGaze uses"),
])
def test_estimation_configs_are_refused_with_the_reason(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _estimate(tmp_path, *overrides)


def test_a_following_run_refuses_an_estimation_dataset(tmp_path):
    with pytest.raises(ConfigError, match="not a dataset of run.task=following"):
        main(["data.source_dataset=mpiifacegaze", f"run.output_dir={tmp_path}"])


def test_the_multistep_schedule_steps_down_by_epoch():
    from types import SimpleNamespace

    from gazefollow.engine.optimizer import lr_factor
    optim = SimpleNamespace(lr_schedule="multistep", lr_milestones=[2, 3], lr_gamma=0.1)
    factor = lr_factor(optim, total_steps=40, steps_per_epoch=10)
    assert [factor(s) for s in (0, 19, 20, 29, 30, 39)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])


def test_a_joint_run_mixes_datasets_and_reports_each_test_dataset(tmp_path, capsys):
    rng = np.random.default_rng(6)
    write_gaze360_folder(tmp_path / "gaze360", rng)
    write_columbia_folder(tmp_path / "columbia", rng)
    paths = tmp_path / "data_path.yaml"  # UniGaze's file of dataset folders
    paths.write_text(f"data:\n  gaze360: {tmp_path / 'gaze360'}\n")
    faces = tmp_path / "faces"
    results = _estimate(
        tmp_path, "data.source_dataset=joint", f"estimation.paths_file={paths}",
        f"estimation.joint=[{{name: synthetic_faces, root: {faces}, weight: 3}}, "
        "{name: gaze360}]",
        f"estimation.joint_test=[{{name: synthetic_faces, root: {faces}}}, {{name: gaze360}}, "
        f"{{name: columbia, root: {tmp_path / 'columbia'}}}]", "estimation.epoch_samples=8")
    assert list(results["per_dataset"]) == ["synthetic_faces", "gaze360", "columbia"]
    samples = [row["samples"] for row in results["per_dataset"].values()]
    assert samples == [8, 4, 4]  # Columbia: its fold 0
    assert "gaze360/rec_003" in results["per_subject"]
    table = capsys.readouterr().out
    assert "gaze360               within" in table and "columbia              cross" in table
    stored = json.loads((tmp_path / "out" / "joint-resnet" / "tiny" / "metrics.json").read_text())
    assert stored["per_dataset"] == json.loads(json.dumps(results["per_dataset"]))
    left_out = _estimate(
        tmp_path, "data.source_dataset=joint", f"estimation.paths_file={paths}", "--tag", "lodo",
        f"estimation.joint=[{{name: synthetic_faces, root: {faces}}}, {{name: gaze360}}]",
        "estimation.joint_leave_out=gaze360")
    assert list(left_out["per_dataset"]) == ["gaze360"]
    assert left_out["info"]["trained_on"] == ["synthetic_faces"]  # gaze360: cross-dataset
    with pytest.raises(ConfigError, match=r"estimation.joint\[0\] \(gaze360\): no root"):
        _estimate(tmp_path, "data.source_dataset=joint", "estimation.joint=[{name: gaze360}]")
    with pytest.raises(ConfigError, match=r"estimation.joint\[0\]: name must be one of"):
        _estimate(tmp_path, "data.source_dataset=joint", "estimation.joint=[{name: gazefollow}]")


def test_weighted_draws_follow_the_weights_and_the_epoch():
    from gazefollow.estimation.data.joint import WeightedDraws
    draws = WeightedDraws([0, 10, 110], [3.0, 1.0], count=4000, seed=1)
    first = list(draws)
    share = np.mean([position < 10 for position, _ in first])
    assert abs(share - 0.75) < 0.03  # by weight, not by size (the second set is 10x larger)
    assert {p for p, _ in first} <= set(range(110)) and len({p for p, _ in first}) > 100
    assert list(draws) == first  # the same epoch: the same draws (exact resume)
    draws.set_epoch(1)
    assert list(draws) != first and all(epoch == 1 for _, epoch in draws)


@pytest.mark.parametrize("source, files", [
    ("gazecapture", ["train/00002.h5", "train/00005.h5", "test/00003.h5"]),
    ("eyediap", ["person_1.h5", "person_2.h5", "person_9.h5"]),
])
def test_unigaze_folders_train_and_evaluate(tmp_path, source, files):
    rng = np.random.default_rng(7)
    for name in files:
        (tmp_path / source / name).parent.mkdir(parents=True, exist_ok=True)
        write_unigaze_subject(tmp_path / source / name, _faces(4, rng),
                              rng.uniform(-0.4, 0.4, (4, 2)))
    results = _estimate(tmp_path, f"data.source_dataset={source}",
                        f"data.dataset_dir={tmp_path / source}")
    _check_run(tmp_path, f"{source}-resnet", results, [Path(files[-1]).stem])


def test_a_label_budget_keeps_a_seeded_share_of_the_training_faces(tmp_path):
    from gazefollow.estimation.data.build import build_face_datasets
    from gazefollow.tasks import build_config
    layers = [ROOT / "configs" / "estimation" / "base.yaml", TINY_ESTIMATION]
    common = [f"data.dataset_dir={tmp_path / 'faces'}"]
    full = build_face_datasets(build_config(layers, common), log=lambda *_: None)
    half = build_face_datasets(build_config(layers, [*common, "estimation.label_fraction=0.5"]),
                               log=lambda *_: None)
    assert len(half["train"]) == len(full["train"]) // 2
    assert len(half["test"]) == len(full["test"])  # only training faces are budgeted
    assert "label budget: 4 of 8 faces" in half["train"].load_report.source
    again = build_face_datasets(build_config(layers, [*common, "estimation.label_fraction=0.5"]),
                                log=lambda *_: None)
    rows = [row[:2] for row in half["train"].reader.rows]  # (subject, row in its file)
    assert [row[:2] for row in again["train"].reader.rows] == rows  # seeded
