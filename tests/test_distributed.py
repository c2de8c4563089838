"""Accelerate end to end: two real CPU processes (DDP over gloo), gradient accumulation, mixed
precision, channels_last and torch.compile."""
import json
import socket
import subprocess
import sys

import pytest

from gazefollow.engine.run_records import read_step_log
from main import main
from tests.conftest import ROOT, TINY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _argv(tmp_path, tag, *extra):
    return ["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
            f"run.output_dir={tmp_path / 'out'}", "--tag", tag, *extra]


def _run_dir(tmp_path, tag):
    return tmp_path / "out" / "synthetic-diffusion-x0" / tag


def _launch(launcher: list[str], argv: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", *launcher, str(ROOT / "main.py"), *argv],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The tiny configuration trained and evaluated by two CPU processes."""
    tmp = tmp_path_factory.mktemp("ddp")
    launcher = ["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port())]
    out = _launch(launcher, _argv(tmp, "ddp", "--max_steps", "3", "optim.warmup_steps=4"))
    return tmp, out


def test_two_processes_share_the_work_and_state_it(two_processes):
    tmp, out = two_processes
    assert "2 process(es) on cpu (MULTI_CPU DDP); batch 8 per process x 1 accumulation x 2 " \
           "process(es) = 16 global; mixed precision no" in out
    stats = json.loads((_run_dir(tmp, "ddp") / "train_stats.json").read_text())
    assert stats["processes"] == 2 and stats["global_batch"] == 16
    assert len(stats["peak_memory_mib_per_process"]) == 2
    # 36 train images / (8 x 2) = 2 steps per epoch: each process saw its own half
    assert "training 2 steps (2 per epoch)" in out


def test_two_process_run_resumes_bit_exactly(two_processes):
    """Each process restores its own RNG streams and its shard's position: halted after one
    step and resumed, the two-process run repeats the uninterrupted one's losses exactly."""
    tmp, _ = two_processes
    launcher = ["torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port())]
    argv = _argv(tmp, "ddp_halted", "--max_steps", "3", "optim.warmup_steps=4")
    _launch(launcher, [*argv, "run.halt_at_step=1"])
    state = _run_dir(tmp, "ddp_halted") / "checkpoints" / "step_0000001"
    assert sorted(f.name for f in state.iterdir()) == ["COMPLETE", "rng_0.pt", "rng_1.pt",
                                                       "state.pt"]
    launcher[-1] = str(_free_port())
    _launch(launcher, argv)
    assert read_step_log(_run_dir(tmp, "ddp_halted")) == read_step_log(_run_dir(tmp, "ddp"))


def test_warmup_does_not_depend_on_the_process_count(two_processes):
    tmp, _ = two_processes
    main(_argv(tmp, "one", "--max_steps", "2", "optim.warmup_steps=4"))
    two = read_step_log(_run_dir(tmp, "ddp"))
    one = read_step_log(_run_dir(tmp, "one"))
    assert [entry["lr/head"] for entry in two] == [entry["lr/head"] for entry in one]
    assert two[0]["lr/head"] == pytest.approx(1e-4 / 4)


def test_sharded_evaluation_matches_one_process(two_processes):
    """Each process scores every other instance; gathered, every instance counts once and the
    metrics equal a one-process evaluation of the same checkpoint, with either launcher."""
    tmp, _ = two_processes
    run_dir = _run_dir(tmp, "ddp")
    two = json.loads((run_dir / "metrics.json").read_text())
    assert two["info"]["processes"] == 2 and two["info"]["instances"] == 8
    one = main(["--eval_weights", str(run_dir)])
    assert one["info"]["processes"] == 1
    for key in ("model", "center_prior", "model_steps"):
        assert one[key] == two[key], key
    rows = (run_dir / "eval-test-ddim1-ema" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # no instance twice, none lost
    launcher = ["torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port())]
    _launch(launcher, ["--eval_weights", str(run_dir), "eval.batch_size=3"])
    # another batch size: its own folder, named by what differs from training
    (folder,) = run_dir.glob("eval-test-ddim1-ema-*")
    again = json.loads((folder / "metrics.json").read_text())
    assert again["info"]["processes"] == 2
    for key in ("model", "center_prior", "model_steps"):
        assert again[key] == one[key], key


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one state per process; a run with another precision needs a new one
    (a real run is one process, one state)."""
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


def test_gradient_accumulation_bf16_and_channels_last(tmp_path, capsys, fresh_accelerator_state):
    main(_argv(tmp_path, "accumulate", "--max_steps", "3", "data.batch_size=4",
               "optim.grad_accumulation=2", "optim.amp=bf16", "--channels_last"))
    out = capsys.readouterr().out
    assert "batch 4 per process x 2 accumulation x 1 process(es) = 8 global; mixed " \
           "precision bf16; channels_last on" in out
    assert "training 3 steps (4 per epoch)" in out  # 9 batches of 4 -> 4 whole steps
    log = read_step_log(_run_dir(tmp_path, "accumulate"))
    assert [entry["step"] for entry in log] == [1, 2, 3]


def test_compiled_model_trains_like_the_plain_one(tmp_path):
    """torch.compile captures the training graph (aot_eager: the graph without C++ code
    generation, seconds instead of minutes on a CPU) and gives the same losses."""
    main(_argv(tmp_path, "plain", "--max_steps", "2"))
    main(_argv(tmp_path, "compiled", "--max_steps", "2", "model.compile=true",
               "model.compile_backend=aot_eager"))
    plain = read_step_log(_run_dir(tmp_path, "plain"))
    compiled = read_step_log(_run_dir(tmp_path, "compiled"))
    for a, b in zip(plain, compiled, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)


def test_losses_stay_float32_under_bf16_autocast(tiny_world):
    """Mixed precision runs the model in bf16; the loss is computed in float32."""
    import torch

    from gazefollow.engine.samples import collate_samples
    from gazefollow.following.data.build import build_datasets
    from gazefollow.following.models.gaze_model import build_model
    from gazefollow.following.objective import training_losses

    _, config = tiny_world
    batch = collate_samples([build_datasets(config, splits=("train",))["train"][i]
                             for i in range(4)])
    batch.pop("bad_input")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = training_losses(build_model(config), batch, config.loss)
    assert losses["loss"].dtype == torch.float32 and losses["mse"].dtype == torch.float32
