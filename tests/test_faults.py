"""Fault injection: the faults a new user met, each shown fixed, end to end on the tiny
configuration (docs/reliability.md lists them with these tests)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gazefollow.engine.checkpoint import (CheckpointError, complete_checkpoints, load_checkpoint,
                                          resolve_checkpoint)
from gazefollow.engine.run_lock import LOCK_FILE, RunLockError
from gazefollow.engine.run_records import read_step_log
from gazefollow.engine.samples import BadInput
from gazefollow.engine.worlds import MANIFEST
from gazefollow.following.config import SyntheticConfig
from gazefollow.following.data.build import build_datasets
from gazefollow.following.data.synthetic import TEST_FILE, TRAIN_FILE, generate_world
from main import main
from tests.conftest import ROOT, SETTING, TINY, _run_dir, _train, tiny_config
from tests.test_resume import _assert_same_state


def _quiet(*_):
    return None


def _world_copy(tiny_world, tmp_path):
    root, _ = tiny_world
    world = tmp_path / "world"
    shutil.copytree(root, world)
    return world


def _argv(tmp_path, world, *extra):
    return ["--experiment", str(TINY), f"data.dataset_dir={world}", "--source_dataset",
            "gazefollow", f"run.output_dir={tmp_path / 'out'}", *extra]


def _edit_row(file, number, column, value):
    """Set one field of a 1-based row of a GazeFollow annotation file."""
    lines = file.read_text().splitlines()
    fields = lines[number - 1].split(",")
    fields[column] = value
    lines[number - 1] = ",".join(fields)
    file.write_text("\n".join(lines) + "\n")


# --- 1. data loss: make_synthetic on a folder that is not empty --------------------------------

def test_make_synthetic_never_deletes_a_users_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("months of work")
    script = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(folder),
              "synthetic.num_train=2", "synthetic.num_test=1"]
    done = subprocess.run(script + ["--overwrite"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "not a synthetic world" in done.stderr
    assert (folder / "thesis.tex").read_text() == "months of work"
    with pytest.raises(FileExistsError, match="not empty"):  # without --overwrite
        generate_world(SyntheticConfig(num_train=2, num_test=1), folder, log=_quiet)
    assert (folder / "thesis.tex").read_text() == "months of work"


def test_overwrite_replaces_only_a_world_it_wrote(tmp_path):
    small = SyntheticConfig(num_train=2, num_test=1, width=64, height=48)
    world = generate_world(small, tmp_path / "w", log=_quiet)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_world(small, world, log=_quiet)
    generate_world(SyntheticConfig(num_train=3, num_test=1, width=64, height=48), world,
                   log=_quiet, overwrite=True)
    assert json.loads((world / MANIFEST).read_text())["config"]["num_train"] == 3


# --- 2. gaze points outside [0, 1] ---------------------------------------------------------------

@pytest.mark.parametrize("split, value, reason", [
    ("train", "2.5", "in-frame gaze point outside"),  # pixels by mistake
    ("train", "-0.5", "in-frame gaze point outside"),
    ("test", "1.5", "gaze point above 1"),
])
def test_gaze_points_outside_the_image_are_named(tiny_world, tmp_path, split, value, reason):
    world = _world_copy(tiny_world, tmp_path)
    file = world / (TRAIN_FILE if split == "train" else TEST_FILE)
    rows = file.read_text().splitlines()
    number = next(i for i, row in enumerate(rows, 1) if split == "test" or row.endswith(
        ",1,synthetic,gazeworld"))  # an in-frame train row
    _edit_row(file, number, 8, value)
    config = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow")
    splits = ("train", "val") if split == "train" else ("test",)
    with pytest.raises(BadInput, match=rf"{file.name}, row {number}: {reason}.*{value}"):
        build_datasets(config, splits=splits, log=_quiet)
    skip = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow",
                       "data.on_bad_input=skip")
    lines = []
    build_datasets(skip, splits=splits, log=lines.append)
    assert f"SKIPPED 1 x {reason}" in "\n".join(lines)


# --- 3. two runs in one run directory ------------------------------------------------------------

def _lock_held_by(run_dir, pid, host=None):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_FILE).write_text(json.dumps(
        {"host": host or socket.gethostname(), "pid": pid, "started": "earlier"}))


def test_a_second_run_in_the_same_directory_is_refused(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    run_dir = tmp_path / "out" / "gazefollow-diffusion-x0" / "tiny"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_held_by(run_dir, sleeper.pid)
        with pytest.raises(RunLockError, match=f"in use by another run \\(PID {sleeper.pid}"):
            main(_argv(tmp_path, world, "--max_steps", "1"))
        assert not (run_dir / "checkpoints").exists() and not (run_dir / "config.yaml").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    _lock_held_by(run_dir, 4242, host="another-node")
    with pytest.raises(RunLockError, match="if that run has ended, delete"):
        main(_argv(tmp_path, world, "--max_steps", "1"))


def test_a_stale_lock_of_a_dead_process_is_taken_over(tiny_world, tmp_path, capsys):
    world = _world_copy(tiny_world, tmp_path)
    run_dir = tmp_path / "out" / "gazefollow-diffusion-x0" / "tiny"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_held_by(run_dir, dead.pid)
    main(_argv(tmp_path, world, "--max_steps", "1"))
    assert f"stale lock of PID {dead.pid}" in capsys.readouterr().out
    assert not (run_dir / LOCK_FILE).exists()  # released at the end of the run


# --- 4. strict mode checks every split before training -------------------------------------------

@pytest.mark.parametrize("fault", ["missing test image", "NaN test row", "corrupt val image"])
def test_test_and_val_problems_stop_the_run_before_training(tiny_world, tmp_path, fault):
    world = _world_copy(tiny_world, tmp_path)
    if fault == "missing test image":
        (world / "test" / "000003.jpg").unlink()
    elif fault == "NaN test row":
        _edit_row(world / TEST_FILE, 2, 8, "nan")
    else:
        (world / "train" / "000005.jpg").write_bytes(b"\xff\xd8 not an image")
    with pytest.raises(BadInput):
        main(_argv(tmp_path, world, "--max_steps", "2", "data.val_fraction=0.5"))
    run_dir = tmp_path / "out" / "gazefollow-diffusion-x0" / "tiny"
    assert not (run_dir / "train_log.jsonl").exists()  # not one training step ran


def test_verify_images_decodes_every_image(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    image = world / "test" / "000002.jpg"
    image.write_bytes(image.read_bytes()[:image.stat().st_size // 2])  # header fine, body cut
    config = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow")
    assert len(build_datasets(config, splits=("test",), log=_quiet)["test"]) == 8
    strict = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow",
                         "data.verify_images=true")
    with pytest.raises(BadInput, match="unreadable image.*000002.jpg"):
        build_datasets(strict, splits=("test",), log=_quiet)


# --- 5. Ctrl-C and SIGTERM save and say how to resume --------------------------------------------

def _wait_for_steps(process, log_file, steps, timeout=240):
    start = time.time()
    while time.time() - start < timeout and process.poll() is None:
        if log_file.is_file() and len(log_file.read_text().splitlines()) >= steps:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run did not reach step {steps}: {process.communicate()}")


def test_ctrl_c_saves_a_checkpoint_and_the_same_command_resumes_exactly(straight):
    tmp, losses, final = straight
    argv = ["--experiment", str(TINY), f"data.dataset_dir={tmp / 'world'}",
            f"run.output_dir={tmp / 'out'}", "--tag", "ctrl_c", *SETTING]
    run_dir = _run_dir(tmp, "ctrl_c")
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *argv], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_steps(process, run_dir / "train_log.jsonl", 3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "run the same command again to resume" in err
    stopped_at = load_checkpoint(run_dir)["step"]
    assert 3 <= stopped_at < 12 and f"stopped by SIGINT at step {stopped_at}" in err
    assert not (run_dir / LOCK_FILE).exists()
    main(argv)  # the same command
    assert read_step_log(run_dir) == losses  # every step's losses and LRs, exactly
    _assert_same_state(final, load_checkpoint(run_dir))


SIGTERM_DURING_SAVE = """
import os, signal, sys
sys.path.insert(0, {root!r})
import gazefollow.engine.checkpoint as checkpoint
real_save = checkpoint.torch.save

def save(obj, path, *args, **kwargs):
    if str(path).endswith(".tmp-step_0000004/state.pt"):
        os.kill(os.getpid(), signal.SIGTERM)  # the job scheduler's warning, mid-save
    real_save(obj, path, *args, **kwargs)

checkpoint.torch.save = save
from main import run_command_line
sys.argv = ["main.py", *{argv!r}]
run_command_line()
"""


def test_sigterm_during_a_save_finishes_it_and_stops(straight, tmp_path):
    tmp, losses, final = straight
    tag = "sigterm"
    argv = ["--experiment", str(TINY), f"data.dataset_dir={tmp / 'world'}",
            f"run.output_dir={tmp / 'out'}", "--tag", tag, *SETTING, "run.save_every=2"]
    script = textwrap.dedent(SIGTERM_DURING_SAVE).format(root=str(ROOT), argv=argv)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 143 and "stopped by SIGTERM at step 4" in done.stderr, done.stderr
    assert [d.name for d in complete_checkpoints(_run_dir(tmp, tag))][-1] == "step_0000004"
    _train(tmp, tag, "run.save_every=2")
    assert read_step_log(_run_dir(tmp, tag)) == losses
    _assert_same_state(final, load_checkpoint(_run_dir(tmp, tag)))


KILL_AT_RANDOM = """
import os, signal, sys
sys.path.insert(0, {root!r})
import gazefollow.engine.checkpoint as checkpoint
import gazefollow.engine.run_records as records
import gazefollow.engine.step as train_state
events = [0]

def counted(function):
    def wrapper(*args, **kwargs):
        events[0] += 1
        if events[0] == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return wrapper

checkpoint.torch.save = counted(checkpoint.torch.save)
checkpoint.os.rename = counted(checkpoint.os.rename)
checkpoint._fsync = counted(checkpoint._fsync)
records.StepLog.write = counted(records.StepLog.write)
train_state.OptimizerStep.__call__ = counted(train_state.OptimizerStep.__call__)
from main import main
main({argv!r})
"""


def test_sigkill_at_random_points_always_resumes_to_the_same_state(straight):
    """2 seeded trials: the run is killed at a random event (an optimizer step, a log line, a
    write, a flush or a rename of a save); the same command then ends bit for bit where the
    uninterrupted run ended."""
    tmp, losses, final = straight
    for trial, kill_at in enumerate(np.random.default_rng(12).integers(1, 60, size=2)):
        tag = f"sigkill{trial}"
        argv = ["--experiment", str(TINY), f"data.dataset_dir={tmp / 'world'}",
                f"run.output_dir={tmp / 'out'}", "--tag", tag, *SETTING, "run.save_every=2"]
        script = textwrap.dedent(KILL_AT_RANDOM).format(root=str(ROOT), argv=argv,
                                                        kill_at=int(kill_at))
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == -9, (kill_at, done.stderr[-2000:])
        _train(tmp, tag, "run.save_every=2")
        assert read_step_log(_run_dir(tmp, tag)) == losses, kill_at
        _assert_same_state(final, load_checkpoint(_run_dir(tmp, tag)))


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_what_failed(straight, monkeypatch):
    import gazefollow.engine.checkpoint as checkpoint
    tmp, _, _ = straight
    real_save = checkpoint.torch.save

    def full_disk(obj, path, *args, **kwargs):
        if ".tmp-step_0000004" in str(path):
            raise OSError(28, "No space left on device")
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="step 4.*No space left on device.*step_0000002"):
        _train(tmp, "full_disk", "run.save_every=2")
    run_dir = _run_dir(tmp, "full_disk")
    assert [d.name for d in complete_checkpoints(run_dir)] == ["step_0000002"]
    assert load_checkpoint(run_dir)["step"] == 2
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))


# --- 6. a byte-order mark ------------------------------------------------------------------------

def test_a_byte_order_mark_is_not_part_of_the_first_path(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    for name in (TRAIN_FILE, TEST_FILE):
        (world / name).write_bytes(b"\xef\xbb\xbf" + (world / name).read_bytes())
    config = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow")
    datasets = build_datasets(config, log=_quiet)
    paths = {i.path for d in datasets.values() for i in d.instances}
    assert "train/000000.jpg" in paths and "test/000000.jpg" in paths


# --- 7. / 8. what loading dropped is in metrics.json; strict JSON; empty and one-class splits ----

def test_load_time_drops_are_in_metrics_json(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    (world / "test" / "000004.jpg").unlink()
    main(_argv(tmp_path, world, "--max_steps", "1", "data.on_bad_input=skip"))
    text = (tmp_path / "out" / "gazefollow-diffusion-x0" / "tiny" / "metrics.json").read_text()
    info = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metrics.json"))
    loaded = info["info"]["loaded"]["test"]
    assert info["info"]["instances"] == 7 and loaded["skipped"] == {"missing image": 1}
    assert "000004.jpg" in loaded["skipped_examples"][0]


def test_an_empty_test_file_is_refused(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    (world / TEST_FILE).write_text("")
    with pytest.raises(BadInput, match="the test split is empty"):
        main(_argv(tmp_path, world, "--max_steps", "1"))


def test_a_one_class_split_reports_ap_as_unavailable_in_strict_json(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    rows = [row for row in (world / TRAIN_FILE).read_text().splitlines()
            if row.endswith(",1,synthetic,gazeworld")]  # in frame only: validation has one class
    (world / TRAIN_FILE).write_text("\n".join(rows) + "\n")
    results = main(_argv(tmp_path, world, "--max_steps", "1"))
    assert "one class" in results["info"]["unavailable"]["inout_ap"]
    text = (tmp_path / "out" / "gazefollow-diffusion-x0" / "tiny" / "metrics.json").read_text()
    stored = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert stored["model"]["inout_ap"] is None and stored["model"]["auc"] is not None


# --- 9. unreadable checkpoints and the command line's errors ------------------------------------

def test_an_unreadable_checkpoint_is_one_named_error(tmp_path, monkeypatch):
    junk = tmp_path / "state.pt"
    # fixed junk: random bytes that happen to start with a pickle opcode read differently
    junk.write_bytes(bytes(range(256))[::-1] * 16)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {junk}"):
        load_checkpoint(junk)
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--eval_weights", str(junk)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "error: cannot read checkpoint" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    from main import run_command_line  # the same entry point, in this process
    for argv, message in ((["--eval_weights", str(tmp_path / "nothing")], "error: no checkpoint"),
                          (["--batch_sise", "4"], "configuration error: unknown flag")):
        monkeypatch.setattr(sys, "argv", ["main.py", *argv])
        with pytest.raises(SystemExit) as stop:
            run_command_line()
        assert message in str(stop.value.code) and "\n" not in str(stop.value.code)
    monkeypatch.setattr(sys, "argv", ["main.py", "--eval_weights", str(junk), "--debug"])
    with pytest.raises(CheckpointError):  # --debug: the exception itself, with its traceback
        run_command_line()


# --- 10. the smaller ones ------------------------------------------------------------------------

def test_an_unmarked_checkpoint_warns(tmp_path):
    step = tmp_path / "run" / "checkpoints" / "step_0000003"
    step.mkdir(parents=True)
    (step / "state.pt").write_bytes(b"x")
    with pytest.warns(UserWarning, match="no COMPLETE marker"):
        resolve_checkpoint(step / "state.pt")


def test_clamped_boxes_are_counted(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    _edit_row(world / TRAIN_FILE, 1, 12, "5000")  # bbox_x_max far outside the 96 px image
    config = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow")
    lines = []
    datasets = build_datasets(config, splits=("train", "val"), log=lines.append)
    assert "fixed 1 x head box clamped to the image" in "\n".join(lines)
    assert datasets["train"].load_report.fixed["head box clamped to the image"] == 1


def test_a_sample_skipped_in_every_epoch_counts_once(tiny_world, tmp_path):
    world = _world_copy(tiny_world, tmp_path)
    config = tiny_config(tmp_path, f"data.dataset_dir={world}", "data.source_dataset=gazefollow")
    image = world / build_datasets(config, splits=("train",), log=_quiet)["train"].instances[0].path
    image.write_bytes(image.read_bytes()[:image.stat().st_size // 2])  # fails when decoded
    main(_argv(tmp_path, world, "data.on_bad_input=skip", "optim.epochs=3"))
    stats = json.loads(next((tmp_path / "out").rglob("train_stats.json")).read_text())
    assert stats["steps"] >= 12 and stats["skipped_unreadable"] == 1


def test_with_two_processes_a_signal_to_one_stops_both_after_the_same_step(tiny_world, tmp_path):
    import psutil

    from tests.test_distributed import _free_port
    world = _world_copy(tiny_world, tmp_path)
    argv = _argv(tmp_path, world, "--tag", "ddp", "optim.epochs=20", "--max_steps", "40")
    run_dir = tmp_path / "out" / "gazefollow-diffusion-x0" / "ddp"

    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run",
                                 "--nproc_per_node", "2", "--master_port", str(_free_port()),
                                 str(ROOT / "main.py"), *argv], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_steps(launcher, run_dir / "train_log.jsonl", 3)
    workers = sorted(psutil.Process(launcher.pid).children(recursive=True), key=lambda p: p.pid)
    workers[-1].send_signal(signal.SIGTERM)  # one process only: the other must follow
    _, err = launcher.communicate(timeout=300)
    stopped = load_checkpoint(run_dir)["step"]
    assert stopped < 40 and err.count(f"stopped by SIGTERM at step {stopped}") == 2, err[-3000:]
    newest = complete_checkpoints(run_dir)[-1]
    # both processes saved into it (their RNG streams), so it resumes as a halted two-process
    # run does (test_distributed.py::test_two_process_run_resumes_bit_exactly)
    assert {"rng_0.pt", "rng_1.pt"} <= {f.name for f in newest.iterdir()}
    assert newest.name == f"step_{stopped:07d}" and not (run_dir / LOCK_FILE).exists()


def test_the_first_signal_is_recorded_and_a_second_ctrl_c_aborts():
    from gazefollow.engine.stopping import StopRequest
    said, before = [], signal.getsignal(signal.SIGINT)
    with StopRequest(said.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == "SIGTERM" and "finishing the current step" in said[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_gaze_points_beyond_the_frame_or_basis_are_refused_for_vat_and_goo(tmp_path):
    import pickle

    from gazefollow.following.data.goo import read_goo
    from tests.test_goo import _entry
    from tests.test_vat import W, _track
    root = tmp_path / "vat"
    _track(root, "train", "showA", "clip1", [f"{i:08d}.jpg,10,10,30,30,40,40" for i in range(3)])
    _track(root, "test", "showB", "clip1", ["00000000.jpg,10,10,30,30,40,40",
                                            f"00000001.jpg,10,10,30,30,{W + 5},40"])
    config = tiny_config(tmp_path, "data.source_dataset=videoattentiontarget",
                         f"data.dataset_dir={root}")
    with pytest.raises(BadInput, match=rf"s00.txt:2.*gaze point outside the image.*{W + 5}"):
        build_datasets(config, splits=("test",), log=_quiet)
    goo = tmp_path / "goo.pickle"
    goo.write_bytes(pickle.dumps([_entry(0, "train"), {**_entry(1, "train"), "gaze_cx": 700.0}]))
    with pytest.raises(BadInput, match="entry 1: gaze point outside the 640x480 basis"):
        read_goo(goo)
    instances, report = read_goo(goo, policy="skip")
    assert len(instances) == 1 and report.skipped["gaze point outside the 640x480 basis"] == 1
