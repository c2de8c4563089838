"""Fault cases of Looking-At-Me: its val and challenge crops are checked before step 1, a
failed challenge prediction keeps the val split's files, every skip is counted, and a split
of one class reports null with the reason."""
import json

import pytest

from gazefollow.engine.samples import BadInput
from gazefollow.social.data.ego4d_lam import read_split
from main import main
from tests.conftest import ROOT
from tests.test_lam_data import UID, write_ego4d

TINY_LAM = ROOT / "configs" / "lam" / "tiny_test.yaml"


def _lam(tmp_path, *extra):
    return main(["--task", "lam", "--config", str(TINY_LAM), f"run.output_dir={tmp_path / 'out'}",
                 f"data.dataset_dir={tmp_path / 'lam_world'}", "--max_steps", "2", *extra])


def _world(tmp_path):
    from gazefollow.social.data.synthetic_lam import ensure_lam_world
    from gazefollow.tasks import build_config
    config = build_config([ROOT / "configs" / "lam" / "base.yaml", TINY_LAM],
                          [f"data.dataset_dir={tmp_path / 'lam_world'}"])
    return ensure_lam_world(config.synthetic_lam, config.data.dataset_dir, log=lambda *_: None)


@pytest.mark.parametrize("where", ["face_imgs", "videos_challenge"])
def test_a_bad_val_or_challenge_crop_stops_the_run_before_step_1(tmp_path, where):
    root = _world(tmp_path)
    val_uid = (root / "split" / "val.list").read_text().split()[0]
    folder = root / where / (val_uid if where == "face_imgs" else "")
    crop = sorted(folder.rglob("*.jpg"))[3]
    crop.write_bytes(crop.read_bytes()[:40])  # truncated
    with pytest.raises(BadInput, match=f"{crop.name}: unreadable crop"):
        _lam(tmp_path, "data.verify_images=true")
    assert not list((tmp_path / "out").rglob("train_log.jsonl"))  # no step was taken


def test_skipped_challenge_windows_are_counted(tmp_path):
    root = _world(tmp_path)
    crop = sorted((root / "videos_challenge").rglob("*.jpg"))[0]
    crop.write_bytes(b"not a jpeg")
    results = _lam(tmp_path, "data.on_bad_input=skip")
    info = results["info"]
    assert info["loaded"]["challenge"]["skipped"]["unreadable crop"] == 1
    left_out = info["loaded"]["challenge"]["skipped"]["windows left out for a bad crop"]
    run_dir = tmp_path / "out" / "synthetic_lam-gazelstm" / "tiny"
    submission = json.loads((run_dir / "submission.json").read_text())
    assert left_out >= 1 and len(submission["results"]) == info["challenge_windows"]
    assert "train" in info["loaded"] and info["loaded"]["train"]["instances"] > 0


def test_a_failed_challenge_prediction_keeps_the_val_files(tmp_path, monkeypatch):
    from gazefollow.social import evaluate
    real = evaluate.predict_windows

    def fails_on_the_challenge(model, dataset, **kwargs):
        if kwargs.get("desc") == "challenge":
            raise BadInput("a challenge crop vanished during prediction")
        return real(model, dataset, **kwargs)
    monkeypatch.setattr(evaluate, "predict_windows", fails_on_the_challenge)
    results = _lam(tmp_path)
    run_dir = tmp_path / "out" / "synthetic_lam-gazelstm" / "tiny"
    assert {"metrics.json", "gt.csv", "pred.csv"} <= {p.name for p in run_dir.iterdir()}
    assert not (run_dir / "submission.json").exists()
    assert "vanished" in results["info"]["challenge_error"]


def test_a_split_of_one_class_reports_null_and_why(tmp_path):
    _lam(tmp_path, "synthetic_lam.looking_share=0.0")
    run_dir = tmp_path / "out" / "synthetic_lam-gazelstm" / "tiny"
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored["model"]["map"] is None and stored["model"]["ap_looking"] is None
    assert "one class only" in stored["info"]["unavailable"]["map"]


@pytest.mark.parametrize("content, reason", [([], "empty tracklet"), (5, "malformed file")])
def test_an_empty_or_malformed_tracklet_is_named_or_counted(tmp_path, content, reason):
    root = write_ego4d(tmp_path / "data")
    (root / "json_original" / UID / "3.json").write_text(json.dumps(content))
    with pytest.raises(BadInput, match=rf"3\.json: {reason}"):
        read_split(root, "val")
    tracks, report = read_split(root, "val", "skip")
    assert len(tracks) == 1 and report.skipped == {reason: 1}


def test_prior_files_of_the_wrong_shape_are_named_or_counted(tmp_path):
    from gazefollow.engine.samples import LoadReport
    from gazefollow.social.data import priors
    path = priors.prior_file(tmp_path, "val", "headpose")
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2]")
    with pytest.raises(BadInput, match=r"val_headpose.json: expected a JSON object"):
        priors.read_prior(tmp_path, "val", "headpose")
    report = LoadReport("priors")
    table = {priors.pose_key(UID, "2", 1): 5, priors.pose_key(UID, "2", 2): ["a", 1, 2]}
    for frame in (1, 2):  # a bare number and a string where the angles belong
        assert priors.head_pose_of(table, UID, "2", frame, report)[0] == priors.UNKNOWN_POSE
    marks = priors.landmarks_near({UID: 7}, UID, "2", 1, report)
    assert not marks.any() and sum(report.fixed.values()) == 3
