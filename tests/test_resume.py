"""Exact resume and crash-safe checkpoints: a stopped or killed run continues as if it had
never stopped."""
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from gazefollow.engine.checkpoint import (complete_checkpoints, incomplete_checkpoints,
                                          load_checkpoint, rotate)
from gazefollow.engine.run_records import read_step_log
from tests.conftest import ROOT, SETTING, TINY, _run_dir, _train


def _assert_same_state(a: dict, b: dict):
    for part in ("model", "ema"):
        for key, value in a[part].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[part][key]), f"{part}.{key}"
    for key, value in a["ema"].items():
        if not isinstance(value, (torch.Tensor, list)):
            assert value == b["ema"][key], f"ema.{key}"
    for shadow_a, shadow_b in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"],
                                  strict=True):
        assert torch.equal(shadow_a, shadow_b)
    for slot_a, slot_b in zip(a["optimizer"]["state"].values(),
                              b["optimizer"]["state"].values(), strict=True):
        for key in slot_a:
            assert torch.equal(slot_a[key], slot_b[key]), f"optimizer {key}"
    assert a["lr_scheduler"] == b["lr_scheduler"]


@pytest.mark.parametrize("halt, workers", [(6, 0), (8, 0), (5, 2)],
                         ids=["mid-epoch", "epoch-boundary", "mid-epoch-2-workers"])
def test_stopped_and_resumed_run_is_bitwise_identical(straight, halt, workers, capsys):
    tmp, losses, final = straight
    assert [entry["step"] for entry in losses] == list(range(1, 13))
    tag = f"halt{halt}"
    loading = f"data.num_workers={workers}"
    assert _train(tmp, tag, f"run.halt_at_step={halt}", loading) == {}  # halted: no evaluation
    assert load_checkpoint(_run_dir(tmp, tag))["step"] == halt
    _train(tmp, tag, loading)  # the same command without the halt resumes
    assert f"at step {halt}" in capsys.readouterr().out
    assert read_step_log(_run_dir(tmp, tag)) == losses  # every step's losses and LRs, exactly
    _assert_same_state(final, load_checkpoint(_run_dir(tmp, tag)))


KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
import gazefollow.engine.checkpoint as checkpoint
real_save, real_rename = checkpoint.torch.save, checkpoint.os.rename

def save(obj, path, *args, **kwargs):
    real_save(obj, path, *args, **kwargs)
    if {where!r} == "state" and str(path).endswith(".tmp-step_0000004/state.pt"):
        with open(path, "r+b") as handle:  # half written, as a kill during the write leaves it
            handle.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

def rename(source, target):
    real_rename(source, target)
    if {where!r} == "marker" and str(target).endswith("step_0000004"):
        os.kill(os.getpid(), signal.SIGKILL)  # renamed into place, marker not yet written

checkpoint.torch.save, checkpoint.os.rename = save, rename
from main import main
main({argv!r})
"""


@pytest.mark.parametrize("where", ["state", "marker"])
def test_run_killed_while_saving_resumes_from_the_previous_checkpoint(straight, where, capsys):
    tmp, losses, final = straight
    tag = f"killed-{where}"
    argv = ["--experiment", str(TINY), f"data.dataset_dir={tmp / 'world'}",
            f"run.output_dir={tmp / 'out'}", "--tag", tag, *SETTING, "run.save_every=2"]
    script = textwrap.dedent(KILLER).format(root=str(ROOT), where=where, argv=argv)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == -9, done.stderr[-2000:]
    run_dir = _run_dir(tmp, tag)
    assert [d.name for d in complete_checkpoints(run_dir)] == ["step_0000002"]
    assert len(incomplete_checkpoints(run_dir)) == 1
    _train(tmp, tag, "run.save_every=2")
    printed = capsys.readouterr().out
    assert "its save was interrupted" in printed and "at step 2" in printed
    assert read_step_log(run_dir) == losses
    _assert_same_state(final, load_checkpoint(run_dir))
    assert incomplete_checkpoints(run_dir) == []  # the torn save was cleaned up


def test_rotation_keeps_the_newest_and_no_save_keeps_one(straight):
    tmp, _, _ = straight
    _train(tmp, "keep2", "run.save_every=1", "run.keep_last=2", "run.max_steps=5")
    assert [d.name for d in complete_checkpoints(_run_dir(tmp, "keep2"))] == [
        "step_0000004", "step_0000005"]
    _train(tmp, "keep1", "run.save_every=1", "--no_save", "run.max_steps=3")
    assert [d.name for d in complete_checkpoints(_run_dir(tmp, "keep1"))] == ["step_0000003"]


def test_rotation_never_deletes_the_newest_complete_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    for step, complete in ((1, True), (2, True), (3, False)):
        directory = root / f"step_{step:07d}"
        directory.mkdir(parents=True)
        (directory / "state.pt").write_bytes(b"x")
        if complete:
            (directory / "COMPLETE").write_text("{}")
    (root / ".tmp-step_0000004").mkdir()
    rotate(tmp_path, keep_last=1)
    names = sorted(d.name for d in root.iterdir())
    # the newest complete stays; interrupted saves newer than it are not touched (a running
    # save may own them), older ones would be removed
    assert names == [".tmp-step_0000004", "step_0000002", "step_0000003"]


def test_no_resume_starts_fresh(straight, capsys):
    tmp, losses, _ = straight
    _train(tmp, "fresh", "run.max_steps=2")
    _train(tmp, "fresh", "run.max_steps=2", "--no_resume")
    printed = capsys.readouterr().out
    assert "resumed from" not in printed
    assert read_step_log(_run_dir(tmp, "fresh")) == losses[:2]


def test_resumed_run_continues_the_same_wandb_run(tmp_path):
    """wandb offline (no account): the run id is stored in the checkpoint, so the resumed
    session (and the final evaluation) write into the same wandb run."""
    _train(tmp_path, "wandb", "run.max_steps=3", "run.halt_at_step=2", "logging.wandb=offline")
    run_id = load_checkpoint(_run_dir(tmp_path, "wandb"))["wandb_run_id"]
    _train(tmp_path, "wandb", "run.max_steps=3", "logging.wandb=offline")
    assert load_checkpoint(_run_dir(tmp_path, "wandb"))["wandb_run_id"] == run_id
    runs = sorted((_run_dir(tmp_path, "wandb") / "wandb").glob("offline-run-*"))
    assert len(runs) >= 3  # two training sessions and the evaluation
    # two sessions started within one second share a folder name: wandb then appends "-<n>"
    assert all(re.search(f"-{re.escape(run_id)}(-\\d+)?$", path.name) for path in runs), runs
