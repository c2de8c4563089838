"""A real 2-step training run on the tiny config, then evaluation of its checkpoint."""
import csv
import json
from pathlib import Path

import pytest
import torch

from gazefollow.config import ConfigError
from gazefollow.engine.checkpoint import load_checkpoint
from gazefollow.engine.run_records import read_step_log
from gazefollow.tasks import build_config
from main import main
from tests.conftest import TINY, run_script


def _argv(tmp_path, *extra):
    return ["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
            f"run.output_dir={tmp_path / 'out'}", *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    results = main(_argv(tmp, "--max_steps", "2"))
    run_dir = tmp / "out" / "synthetic-diffusion-x0" / "tiny"
    return tmp, run_dir, results


def test_training_writes_checkpoint_config_and_metrics(trained):
    _, run_dir, results = trained
    state = load_checkpoint(run_dir)
    assert state["step"] == 2
    assert {"model", "ema", "optimizer", "lr_scheduler", "config"} <= set(state)
    assert state["config"]["run"]["max_steps"] == 2  # the resolved config travels with it
    ema = state["ema"]  # rate and warm-up from the config, saved with the run
    assert (ema["decay"], ema["use_ema_warmup"], ema["power"]) == (0.999, True, 0.75)
    assert ema["optimization_step"] == 2
    assert state["total_steps"] == 2 and state["counters"] == {"nonfinite_steps": 0}
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "predictions_grid.png").stat().st_size > 10_000
    stored = json.loads((run_dir / "metrics.json").read_text())
    for part in ("model", "center_prior"):
        assert set(stored[part]) == {"auc", "avg_l2", "min_l2", "avg_angle", "min_angle",
                                     "heatmap_ap", "inout_ap"}
    assert stored["model"]["auc"] == pytest.approx(results["model"]["auc"])
    assert stored["info"]["weights"] == "ema"


@pytest.mark.parametrize("setting", [("eval.batch_size=1",), ("eval.batch_size=16",),
                                     ("eval.batch_size=3", "data.num_workers=1")])
def test_evaluation_only_reproduces_training_metrics(trained, tmp_path, setting):
    """Noise seeded by sample id: identical metrics and predictions whatever the batch size
    or the number of workers."""
    _, run_dir, results = trained
    again = main(["--eval_weights", str(run_dir), *setting])
    assert again["model"] == results["model"] and again["model_steps"] == results["model_steps"]
    # another batch size or worker count: its own folder, named by what differs
    assert again["info"]["output_dir"].startswith(str(run_dir / "eval-test-ddim1-ema-"))
    rows = list(csv.DictReader((Path(again["info"]["output_dir"]) / "predictions.csv").open()))
    first = list(csv.DictReader((run_dir / "predictions.csv").open()))
    for row, before in zip(rows, first, strict=True):
        score = float(row.pop("inout_score"))  # float32 matmuls: last bits follow the batch
        assert score == pytest.approx(float(before.pop("inout_score")), abs=1e-6)
        assert row == before  # ids, predicted points and per-sample metrics: identical


def test_predictions_file_and_pictures(trained):
    _, run_dir, results = trained
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    assert len(rows) == results["info"]["instances"]
    assert set(rows[0]) == {"id", "path", "pred_x", "pred_y", "inout_score", "inout", "auc",
                            "avg_l2", "min_l2", "avg_angle", "min_angle", "heatmap_ap"}
    aucs = [float(r["auc"]) for r in rows if r["auc"]]
    assert sum(aucs) / len(aucs) == pytest.approx(results["model"]["auc"], abs=1e-12)
    assert (run_dir / "predictions_grid.png").stat().st_size > 10_000


def test_the_best_and_worst_auc_samples_are_drawn_with_their_own_heatmaps(trained):
    """As the original's wandb pictures: the instances at both ends of the AUC ranking, kept
    during the pass and drawn, each with the point predictions.csv has for it."""
    from gazefollow.following.data.build import build_datasets
    from gazefollow.following.evaluate import run_split
    from gazefollow.tasks import load_for_eval
    _, run_dir, results = trained
    assert (run_dir / "best_auc.png").is_file() and (run_dir / "worst_auc.png").is_file()
    loaded = load_for_eval(run_dir)
    config = loaded["config"]
    test = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
    result = run_split(loaded["model"], test, [1], config.sampling, batch_size=3,
                       seed=config.run.seed, device="cpu", prior_inout=0.5, num_keep=4)
    ranked = sorted((r["auc"], position) for position, r in enumerate(result.records))
    ids = [result.records[position]["id"] for _, position in ranked]
    assert [s["index"] for s in result.extremes["worst_auc"]] == ids[:4]
    best = sorted(ranked, key=lambda x: (-x[0], x[1]))[:4]
    assert [s["index"] for s in result.extremes["best_auc"]] == [
        result.records[position]["id"] for _, position in best]
    by_id = {r["id"]: r for r in result.records}
    for sample in result.extremes["best_auc"] + result.extremes["worst_auc"]:
        record = by_id[sample["index"]]
        assert sample["pred"] == (record["pred_x"], record["pred_y"])



def test_mean_of_several_samples_is_reported_separately(trained, capsys):
    _, run_dir, results = trained
    out = main(["--eval_weights", str(run_dir), "eval.num_samples=3", "eval.extra_steps=[3]"])
    assert out["model"] == results["model"]  # N=1 stays the headline number
    mean = out["model_mean_of_samples"]["3"]
    assert set(mean) == set(out["model"]) and mean["auc"] != out["model"]["auc"]
    printed = capsys.readouterr().out
    assert "mean of 3 samples" in printed and "Gaze-LLE ViT-L 2025" in printed
    trajectories = Path(out["info"]["output_dir"]) / "denoising_trajectories.png"
    assert trajectories.stat().st_size > 10_000


def test_several_samples_are_scored_as_hypotheses(trained, tmp_path):
    """eval.num_samples=K: the K draws' points (diffusion) or K separated peaks (regression)
    scored as a set beside the single point; the best of K is never further than draw 0."""
    _, run_dir, _ = trained
    out = main(["--eval_weights", str(run_dir), "eval.num_samples=4"])
    block = out["hypotheses"]
    assert (block["k"], block["radius"]) == (4, 0.1) and block["heads"] == 8
    assert set(block["samples"]) == set(block["mean_point"]) == {"oracle_l2", "coverage",
                                                                 "energy"}
    assert block["samples"]["oracle_l2"] <= out["model"]["avg_l2"] + 1e-12
    saved = json.loads((Path(out["info"]["output_dir"]) / "metrics.json").read_text())
    assert saved["hypotheses"]["samples"] == pytest.approx(block["samples"])
    regression = main(_argv(tmp_path, "--max_steps", "2", "model.head=regression",
                            "eval.num_samples=3", "eval.hypothesis_radius=0.2"))
    peaks = regression["hypotheses"]
    assert (peaks["k"], peaks["radius"]) == (3, 0.2)
    assert peaks["samples"]["oracle_l2"] <= regression["model"]["avg_l2"] + 1e-12
    assert peaks["mean_point"]["oracle_l2"] == pytest.approx(regression["model"]["avg_l2"])


def test_visualize_script_draws_chosen_samples(trained, tmp_path):
    _, run_dir, _ = trained
    run_script("visualize.py", "--weights", run_dir, "--ids", "0", "2", "--steps", "3",
               "--out", tmp_path)
    for name in ("grid.png", "trajectories.png", "sample_0.png", "sample_2.png"):
        assert (tmp_path / name).stat().st_size > 5_000, name


def test_evaluation_with_raw_weights_and_more_steps(trained):
    _, run_dir, _ = trained
    out = main(["--eval_weights", str(run_dir / "checkpoints" / "step_0000002"),
                "optim.ema_on=false", "diffusion.sample_time_steps=3"])
    assert out["info"]["weights"] == "raw" and out["info"]["sample_steps"] == 3


def test_resume_continues_from_the_checkpoint(trained, capsys):
    tmp, run_dir, _ = trained
    before = load_checkpoint(run_dir)
    main(_argv(tmp, "--max_steps", "3"))
    printed = capsys.readouterr().out
    assert "at step 2" in printed and "step 3/3" in printed and "step 1/3" not in printed
    after = load_checkpoint(run_dir)
    assert after["step"] == 3
    moved = [not torch.equal(before["model"][k], after["model"][k]) for k in before["model"]
             if before["model"][k].is_floating_point()]
    assert any(moved)


def test_resume_with_another_optimiser_config_is_refused(trained):
    tmp, _, _ = trained
    with pytest.raises(ConfigError, match="optim.lr"):
        main(_argv(tmp, "--max_steps", "4", "optim.lr=0.5"))


def test_lr_warms_up_then_holds(tmp_path):
    from gazefollow.engine.loop import make_lr_scheduler
    config = build_config(overrides=["optim.lr=0.01", "optim.warmup_steps=4"])
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler = make_lr_scheduler(optimizer, config.optim, total_steps=10)
    lrs = []
    for _ in range(6):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01])


def test_legacy_command_line_parses_to_a_runnable_config():
    from main import parse
    layers, overrides, _ = parse(["--yaml_diffusion", "configs/diffusion.yaml", "--yaml_gaze",
                                  "configs/gaze.yaml", "--tag", "trial_gaze", "--max_steps", "2"])
    config = build_config(layers, overrides)
    assert config.run.tag == "trial_gaze" and config.data.input_size == 224


def test_debugging_maps_draw_validation_predictions(tmp_path):
    main(_argv(tmp_path, "--max_steps", "2", "eval.evaluate_every=1", "--Debugging_maps",
               "--tag", "debug"))
    maps = sorted((tmp_path / "out" / "synthetic-diffusion-x0" / "debug" / "debugging_maps")
                  .glob("*.png"))
    assert [m.name for m in maps] == ["step_0000001.png", "step_0000002.png"]


def _nan_at(monkeypatch, steps_with_nan):
    """The following task's training_losses, returning a NaN loss at the given (1-based)
    calls."""
    import dataclasses

    from gazefollow import tasks
    from gazefollow.following.objective import training_losses
    calls = []

    def patched(*args, **kwargs):
        calls.append(1)
        out = training_losses(*args, **kwargs)
        if len(calls) in steps_with_nan:
            out["loss"] = out["loss"] * float("nan")
        return out
    monkeypatch.setitem(tasks.TASKS, "following",
                        dataclasses.replace(tasks.TASKS["following"], training_losses=patched))


def test_a_nan_step_is_skipped_and_counted(tmp_path, monkeypatch):
    _nan_at(monkeypatch, {2})
    main(_argv(tmp_path, "--max_steps", "3", "--tag", "nan"))
    run_dir = tmp_path / "out" / "synthetic-diffusion-x0" / "nan"
    stats = json.loads((run_dir / "train_stats.json").read_text())
    assert stats["nonfinite_steps_skipped"] == 1
    state = load_checkpoint(run_dir)
    assert state["step"] == 3 and state["lr_scheduler"]["_step_count"] == 3  # 2 updates + init
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_too_many_nan_steps_stop_with_the_last_good_state(tmp_path, monkeypatch):
    _nan_at(monkeypatch, set(range(2, 100)))
    with pytest.raises(FloatingPointError, match="non-finite steps in a row"):
        main(_argv(tmp_path, "--max_steps", "6", "optim.max_nonfinite_steps=2", "--tag", "nan"))
    state = load_checkpoint(tmp_path / "out" / "synthetic-diffusion-x0" / "nan")
    assert state["step"] == 3  # step 1 updated; steps 2-3 skipped; step 4 stopped the run


def test_training_starts_from_initial_weights_and_reports_them(trained, tmp_path):
    """run.init_weights with a run directory: its newest checkpoint initialises the whole
    model; the report lands beside the new run."""
    _, run_dir, _ = trained
    main(_argv(tmp_path, "--max_steps", "1", "--tag", "from_init",
               f"run.init_weights={run_dir}"))
    new_dir = tmp_path / "out" / "synthetic-diffusion-x0" / "from_init"
    report = json.loads((new_dir / "init_weights_report.json").read_text())
    assert report["format"] == "gazefollow" and report["file"].endswith("state.pt")
    assert report["missing"] == report["unexpected"] == report["mismatched"] == []
    assert len(report["loaded"]) == len(load_checkpoint(run_dir)["model"])


def test_a_nan_last_step_still_ends_the_run_on_time(tmp_path, monkeypatch):
    _nan_at(monkeypatch, {3})
    main(_argv(tmp_path, "--max_steps", "3", "--tag", "nan_last"))
    run_dir = tmp_path / "out" / "synthetic-diffusion-x0" / "nan_last"
    assert load_checkpoint(run_dir)["step"] == 3
    assert [entry["step"] for entry in read_step_log(run_dir)] == [1, 2]


def test_resume_with_another_process_count_is_refused(tmp_path):
    main(_argv(tmp_path, "--max_steps", "1", "--tag", "procs"))
    run_dir = tmp_path / "out" / "synthetic-diffusion-x0" / "procs"
    state_file = run_dir / "checkpoints" / "step_0000001" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    torch.save({**state, "processes": 2}, state_file)
    with pytest.raises(ConfigError, match="trained with 2 process"):
        main(_argv(tmp_path, "--max_steps", "2", "--tag", "procs"))


def test_runs_of_the_one_file_layout_evaluate_but_do_not_resume(trained, tmp_path):
    """Earlier versions wrote <run dir>/checkpoint.pt with run.keep_snapshots in its config."""
    _, run_dir, _ = trained
    old_dir = tmp_path / "out" / "synthetic-diffusion-x0" / "tiny"
    old_dir.mkdir(parents=True)
    state = load_checkpoint(run_dir)
    state["config"]["run"].pop("keep_last")
    state["config"]["run"]["keep_snapshots"] = True
    torch.save(state, old_dir / "checkpoint.pt")
    out = main(["--eval_weights", str(old_dir)])
    assert out["model"] == main(["--eval_weights", str(run_dir)])["model"]
    with pytest.raises(ValueError, match="earlier gazefollow version"):
        main(_argv(tmp_path, "--max_steps", "3"))
