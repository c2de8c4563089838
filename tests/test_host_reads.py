"""Host reads per training step: a step that logs nothing reads one value back from the
device (the NaN guard's decision) in gazefollow's code; the logs of the steps between two
print steps are read back together; the fused optimizer (a GPU run's) reads none of its
step counters."""
import traceback

import pytest
import torch

import gazefollow.engine.loop as loop
from main import main
from tests.conftest import TINY

READS = ("item", "__float__", "__bool__", "tolist", "__int__")


@pytest.fixture
def counted(monkeypatch):
    """{"reads": [(step, where)]}: every read of a tensor's value made from gazefollow's code
    while an optimizer step or the log writing runs."""
    record = {"step": None, "reads": []}

    def counting(name):
        real = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            if record["step"] is not None:
                caller = traceback.extract_stack(limit=2)[0]
                if "/gazefollow/" in caller.filename:
                    record["reads"].append((record["step"], f"{caller.filename}:{caller.lineno}"))
            return real(self, *args, **kwargs)
        return read
    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    real_call, real_write = loop.OptimizerStep.__call__, loop.write_logs

    def step(self, batch):
        record["step"] = self.state.step + 1
        try:
            return real_call(self, batch)
        finally:
            record["step"] = None

    def write(*args, **kwargs):
        record["step"] = "logs"
        try:
            return real_write(*args, **kwargs)
        finally:
            record["step"] = None
    monkeypatch.setattr(loop.OptimizerStep, "__call__", step)
    monkeypatch.setattr(loop, "write_logs", write)
    return record


def test_a_step_that_logs_nothing_reads_back_once(counted, tmp_path):
    main(["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
          f"run.output_dir={tmp_path / 'out'}", "optim.epochs=3", "run.print_every=6",
          "run.save_every=100", "eval.evaluate_every=0", "--tag", "reads"])
    per_step = {}
    for step, where in counted["reads"]:
        per_step.setdefault(step, []).append(where)
    steps = [s for s in per_step if s != "logs"]
    assert sorted(steps) == list(range(1, 13))
    assert all(len(per_step[s]) == 1 and "step.py" in per_step[s][0] for s in steps)
    # the 12 steps' logs: read back at steps 6 and 12 (one read each) and written in full
    assert len(per_step["logs"]) == 2
    lines = (tmp_path / "out" / "synthetic-diffusion-x0" / "reads" / "train_log.jsonl")
    assert len(lines.read_text().splitlines()) == 12


def test_the_fused_optimizer_reads_no_step_counter():
    from gazefollow.engine.optimizer import make_optimizer
    from gazefollow.tasks import build_config
    config = build_config([TINY])
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    net.trainable_parts = lambda: {"head": list(net.parameters())}
    reads = []
    real = torch.Tensor.item
    for fused in (False, True):
        optimizer = make_optimizer(net, config.optim, fused=fused)
        net(torch.randn(2, 4)).sum().backward()
        torch.Tensor.item = lambda self: reads.append(fused) or real(self)
        try:
            optimizer.step()
        finally:
            torch.Tensor.item = real
    assert reads.count(False) > 0 and reads.count(True) == 0


def test_the_gpu_benchmark_refuses_a_machine_without_a_gpu(monkeypatch):
    from tests.conftest import run_script
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="bench_gpu.py measures a CUDA GPU and this machine "
                                         "has none"):
        run_script("bench_gpu.py")
