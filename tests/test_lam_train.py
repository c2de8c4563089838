"""Looking-At-Me through main.py: 2 training steps and an evaluation of GazeLSTM and GazePose
on a generated LAM world in Ego4D's layout, Ego4D's CSVs and the submission JSON, and a
Gaze360-layout checkpoint starting GazeLSTM."""
import csv
import json

import pytest
import torch

from gazefollow.backbones.init_weights import load_initial_weights
from gazefollow.engine.samples import BadInput
from gazefollow.social.csv_files import score_csvs
from gazefollow.social.models.gazelstm import GazeLSTM
from gazefollow.tasks import build_config
from main import CONFIGS, main

LAM_BASE = CONFIGS / "lam" / "base.yaml"
from tests.conftest import ROOT

TINY_LAM = ROOT / "configs" / "lam" / "tiny_test.yaml"
GAZEPOSE = ROOT / "configs" / "lam" / "gazepose.yaml"


def _lam(tmp_path, *configs, extra=()):
    layers = [arg for c in configs for arg in ("--config", str(c))]
    return main(["--task", "lam", *layers, "--config", str(TINY_LAM),
                 f"run.output_dir={tmp_path / 'out'}",
                 f"data.dataset_dir={tmp_path / 'lam_world'}", "--max_steps", "2", *extra])


def _check_outputs(run_dir, results):
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored["model"]["map"] == pytest.approx(results["model"]["map"])
    assert 0 <= stored["model"]["map"] <= 1 and 0 <= stored["model"]["accuracy"] <= 1
    assert stored["all_positive"]["map"] == pytest.approx(0.5)
    windows = stored["info"]["windows"]
    gt = list(csv.reader((run_dir / "gt.csv").open()))
    pred = list(csv.reader((run_dir / "pred.csv").open()))
    assert len(gt) == len(pred) == windows  # no header row, as Ego4D writes them
    assert len(gt[0]) == 8 and gt[0][-1] in ("0", "1")
    assert pred[0][:7] == gt[0][:7] and pred[0][7] == "1" and 0 <= float(pred[0][8]) <= 1
    submission = json.loads((run_dir / "submission.json").read_text())
    assert submission["version"] == "1.0" and submission["challenge"] == "ego4d_looking_at_me"
    entry = submission["results"][0]
    assert sorted(entry) == ["label", "score", "track_id", "unique_id", "video_id"]
    assert entry["label"] == 1 and len(submission["results"]) == stored["info"][
        "challenge_windows"]


def test_gazelstm_and_gazepose_train_and_write_ego4d_files(tmp_path):
    results = _lam(tmp_path)
    run_dir = tmp_path / "out" / "synthetic_lam-gazelstm" / "tiny"
    _check_outputs(run_dir, results)
    # the CSVs read back score as the evaluation did; a label outside {0, 1} is named
    rescored = score_csvs(run_dir / "gt.csv", run_dir / "pred.csv")
    assert rescored["map"] == pytest.approx(results["model"]["map"], abs=1e-6)
    rows = (run_dir / "gt.csv").read_text().splitlines()
    (run_dir / "gt.csv").write_text("\n".join([rows[0][:-1] + "2", *rows[1:]]) + "\n")
    with pytest.raises(BadInput, match=r"gt\.csv, row 1: label 2 is not 0 or 1"):
        score_csvs(run_dir / "gt.csv", run_dir / "pred.csv")
    # GazePose with every prior and the temporal dropout (its config first, shrunk by tiny)
    results = _lam(tmp_path, GAZEPOSE)
    run_dir = tmp_path / "out" / "synthetic_lam-gazepose" / "tiny"
    _check_outputs(run_dir, results)
    assert results["info"]["model"] == "gazepose"


def test_gaze360_checkpoint_starts_gazelstm(tmp_path):
    config = build_config([LAM_BASE])  # ResNet-18, 256 features, 2 LSTM layers: Gaze360's
    donor = GazeLSTM(config.model, config.lam)
    state = {f"module.{k}": v.clone() for k, v in donor.state_dict().items()
             if not k.startswith("last_layer.")}
    state["module.last_layer.weight"] = torch.randn(3, 512)  # gaze + uncertainty
    state["module.last_layer.bias"] = torch.randn(3)
    path = tmp_path / "gaze360_model.pth"
    torch.save({"epoch": 80, "state_dict": state, "best_prec1": 0.0}, path)
    model = GazeLSTM(config.model, config.lam)
    config.run.init_weights = str(path)
    report = load_initial_weights(model, config.run, log=lambda *_: None)
    assert report["format"] == "gaze360" and not report["missing"]
    assert sorted(report["dropped"]) == ["module.last_layer.bias", "module.last_layer.weight"]
    own = model.state_dict()
    assert torch.equal(own["base_model.fc2.weight"], donor.state_dict()["base_model.fc2.weight"])
    assert torch.equal(own["lstm.weight_hh_l1_reverse"],
                       donor.state_dict()["lstm.weight_hh_l1_reverse"])
    assert own["last_layer.weight"].shape == (2, 512)  # a fresh 2-class head
