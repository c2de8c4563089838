"""SimCLR: NT-Xent against a slow reference, gathered over 2 processes as one process holding
both halves, and a 2-step run through main.py whose backbone starts an estimator."""
import json
import math

import pytest
import torch
import torch.multiprocessing as mp

from gazefollow.estimation.simclr import nt_xent, top1_retrieval
from main import main
from tests.test_estimation_train import TINY_ESTIMATION


def slow_nt_xent(a: torch.Tensor, b: torch.Tensor, tau: float) -> float:
    """SimCLR's loss written out: views 2k and 2k+1 of face k are a positive pair; every
    other view of the batch is a negative; the mean over all 2N views."""
    views = []
    for x, y in zip(a, b):
        views += [x / x.norm(), y / y.norm()]
    total = 0.0
    for i, v in enumerate(views):
        partner = i + 1 if i % 2 == 0 else i - 1
        similarities = [float(v @ w) / tau for w in views]
        denominator = sum(math.exp(s) for j, s in enumerate(similarities) if j != i)
        total -= math.log(math.exp(similarities[partner]) / denominator)
    return total / len(views)


def test_nt_xent_matches_the_slow_reference():
    torch.manual_seed(0)
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    for tau in (0.5, 0.1):
        assert float(nt_xent(torch.cat([a, b]), tau)) == pytest.approx(
            slow_nt_xent(a, b, tau), rel=1e-5)
    assert top1_retrieval(torch.cat([a, a])) == 1.0  # identical views find each other


def _half_loss(rank: int, world: int, store: str, a, b, out) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    n = len(a) // world
    mine = slice(rank * n, (rank + 1) * n)
    z = torch.cat([a[mine], b[mine]]).clone().requires_grad_(True)
    loss = nt_xent(z, 0.5)
    loss.backward()
    out[rank] = (float(loss), z.grad.clone())
    dist.destroy_process_group()


def test_gathering_over_two_processes_equals_one_process_holding_both_halves(tmp_path):
    torch.manual_seed(1)
    a, b = torch.randn(8, 4), torch.randn(8, 4)
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_half_loss, args=(2, str(tmp_path / "store"), a, b, out), nprocs=2)
    whole = torch.cat([a, b]).requires_grad_(True)
    loss = nt_xent(whole, 0.5, gather=False)
    loss.backward()
    # DDP averages the processes' gradients: the mean of the two losses is the whole batch's
    assert (out[0][0] + out[1][0]) / 2 == pytest.approx(float(loss.detach()), rel=1e-5)
    # the gather passes gradients back (summed over the processes' losses): each process
    # gets d(L0 + L1)/d(its rows) = 2 dL/d(its rows), and DDP's mean over processes of the
    # parameters' gradients is then the whole batch's
    grad = whole.grad
    for rank, rows in ((0, [*range(0, 4), *range(8, 12)]), (1, [*range(4, 8), *range(12, 16)])):
        assert torch.allclose(out[rank][1], 2 * grad[rows], atol=1e-6)


def test_simclr_trains_and_its_backbone_starts_an_estimator(tmp_path):
    results = main(["--task", "simclr", "--experiment", str(TINY_ESTIMATION),
                    f"run.output_dir={tmp_path / 'out'}", f"data.dataset_dir={tmp_path / 'w'}",
                    "simclr.dim=16", "--max_steps", "2"])
    assert set(results["model"]) == {"nt_xent", "top1"} and results["model"]["nt_xent"] > 0
    run_dir = tmp_path / "out" / "synthetic_faces-simclr-resnet" / "tiny"
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored["chance"]["top1"] == pytest.approx(1 / 15)  # 8 test faces, 16 views
    main(["--task", "estimation", "--experiment", str(TINY_ESTIMATION),
          f"run.output_dir={tmp_path / 'out'}", f"data.dataset_dir={tmp_path / 'w'}",
          f"run.init_weights={run_dir}", "--max_steps", "1", "--tag", "from_simclr"])
    report = json.loads((tmp_path / "out" / "synthetic_faces-resnet-fold00" / "from_simclr" /
                         "init_weights_report.json").read_text())
    assert report["format"] == "estimation" and report["missing"] == []
    assert all(key.startswith("backbone.") for key in report["loaded"])
    assert {key.split(".")[0] for key in report["dropped"]} == {"projection"}
