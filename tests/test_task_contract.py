"""The task contract: a task written in this file alone trains and evaluates through main();
every scalar its loss returns is logged; frozen parameters stay out of the EMA and the
checkpoint and come back from where the run got them."""
import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from gazefollow import tasks
from gazefollow.engine.checkpoint import load_checkpoint
from gazefollow.engine.evaluation import Evaluation, predict_split
from gazefollow.engine.run_records import read_step_log
from gazefollow.engine.task import Task
from tests.conftest import tiny_config


class Points(Dataset):
    """x [4] -> y = x . (1, 2, 3, 4), a fixed random split."""

    def __init__(self, size: int, seed: int):
        self.x = torch.randn(size, 4, generator=torch.Generator().manual_seed(seed))
        self.y = self.x @ torch.tensor([1.0, 2.0, 3.0, 4.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, item):
        position = item[0] if isinstance(item, tuple) else item  # (position, epoch) in training
        return {"x": self.x[position], "y": self.y[position], "position": position,
                "index": position}


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(x)[:, 0]

    def trainable_parts(self):
        return {"fc": list(self.fc.parameters())}

    def resnet_prefixes(self):
        return {}


def toy_losses(model, batch, loss_cfg, generator=None):
    error = model(batch["x"]) - batch["y"]
    return {"loss": (error ** 2).mean(), "abs_error": error.abs().mean().detach()}


def toy_predictions(model, dataset, config, device, shard=(0, 1)):
    return predict_split(model, dataset, lambda m, b: {"y": m(b["x"])},
                         lambda b, out: [{"position": int(p), "error": float(out["y"][i] - b["y"][i])}
                                         for i, p in enumerate(b["position"])],
                         batch_size=config.eval.batch_size, device=device, shard=shard)


def toy_evaluate(config, model, device, weights, shard, log):
    rows = toy_predictions(model, Points(16, 2), config, device, shard).rows
    mse = sum(r["error"] ** 2 for r in rows) / len(rows)
    return Evaluation({"model": {"mse": mse}}, {"split": "test", "points": len(rows)}, [],
                      f"toy mse {mse:.4f}")


TOY = Task(
    name="toy", summary="a linear map (the contract test's own task)", config_files=(),
    default_experiment=None, dataset_names=("toy_points",), validate=lambda config: None,
    run_label=lambda config: "linear",
    build_datasets=lambda config, splits=("train", "val", "test"), log=print: {
        split: Points(32 if split == "train" else 16, seed) for seed, split in enumerate(splits)},
    build_model=lambda config: Linear(), training_losses=toy_losses,
    validation_metrics=lambda net, dataset, config, acc: (
        {"mse": sum(r["error"] ** 2 for r in toy_predictions(net, dataset, config, acc.device)
                    .rows) / len(dataset)}, "one pass", []),
    evaluate=toy_evaluate, eval_label=lambda config, model: "toy")


@pytest.fixture
def toy_task():
    tasks.register(TOY)
    yield TOY
    tasks.TASKS.pop(TOY.name)


def test_a_task_of_a_few_lines_trains_and_evaluates_through_main(tmp_path, toy_task):
    from main import main
    results = main(["--task", "toy", "data.source_dataset=toy_points", "data.batch_size=8",
                    "run.max_steps=2", "eval.evaluate_every=1", "logging.wandb=disabled",
                    f"run.output_dir={tmp_path}", "run.print_every=1", "data.num_workers=0"])
    run_dir = tmp_path / "toy_points-linear" / "default"
    assert results["info"]["task"] == "toy" and results["info"]["points"] == 16
    assert json.loads((run_dir / "metrics.json").read_text())["model"]["mse"] == \
        results["model"]["mse"]
    assert load_checkpoint(run_dir)["step"] == 2
    logged = read_step_log(run_dir)
    assert [row["step"] for row in logged] == [1, 2]
    assert all("abs_error" in row for row in logged)  # every scalar of the loss is logged
    validated = (run_dir / "val_log.jsonl").read_text().splitlines()
    assert len(validated) == 2 and "mse" in json.loads(validated[0])


def test_an_unknown_task_or_a_foreign_dataset_is_refused(tmp_path, toy_task):
    from gazefollow.config import ConfigError
    with pytest.raises(ConfigError, match="run.task='nope' is not one of"):
        tasks.build_config([], ["run.task=nope"])
    with pytest.raises(ConfigError, match="not a dataset of run.task=toy"):
        tasks.build_config([], ["run.task=toy", "data.source_dataset=synthetic"])


def test_frozen_parameters_are_neither_averaged_nor_saved(tmp_path):
    from gazefollow.engine.optimizer import ema_parameters
    from gazefollow.following.models.gaze_model import build_model
    frozen_cfg = tiny_config(tmp_path, "model.freeze_face=true", "run.max_steps=2",
                             "run.tag=frozen")
    plain_cfg = tiny_config(tmp_path, "run.max_steps=2", "run.tag=plain")
    model = build_model(frozen_cfg)
    face = {id(p) for p in model.gaze.face.parameters()}
    assert face and not face & {id(p) for p in ema_parameters(model, frozen_cfg.optim)}
    for config in (frozen_cfg, plain_cfg):
        assert tasks.train(config).finished
    frozen_dir, plain_dir = tasks.run_dir_for(frozen_cfg), tasks.run_dir_for(plain_cfg)
    frozen, plain = load_checkpoint(frozen_dir), load_checkpoint(plain_dir)
    face_keys = {k for k in plain["model"] if k.startswith("gaze.face.")}
    face_params = {k for k, _ in build_model(plain_cfg).named_parameters()
                   if k.startswith("gaze.face.")}
    assert face_params and not face_params & set(frozen["model"])
    assert set(frozen["frozen"]["names"]) == face_params
    assert face_keys - face_params <= set(frozen["model"])  # BatchNorm buffers stay
    assert len(frozen["ema"]["shadow_params"]) == len(plain["ema"]["shadow_params"]) - \
        len(face_params)
    size = {name: next((d / "checkpoints").glob("step_*/state.pt")).stat().st_size
            for name, d in (("frozen", frozen_dir), ("plain", plain_dir))}
    face_bytes = sum(p.numel() * 4 for k, p in build_model(plain_cfg).named_parameters()
                     if k in face_params)
    # the frozen weights are saved neither as weights nor as averages
    assert size["plain"] - size["frozen"] > 1.9 * face_bytes
    # evaluation rebuilds them as training built them (checked by their checksum), and
    # takes the trained ones from the checkpoint
    loaded = tasks.load_for_eval(frozen_dir, ["optim.ema_on=false"])
    weights = loaded["model"].state_dict()
    assert all(torch.equal(weights[k], v) for k, v in frozen["model"].items())


def test_a_checkpoint_without_its_frozen_weights_refuses_other_ones(tmp_path):
    from gazefollow.engine.weights import FrozenWeightsError, load_trained_state, trained_state
    from gazefollow.following.models.gaze_model import build_model
    config = tiny_config(tmp_path, "model.freeze_face=true")
    torch.manual_seed(0)
    model = build_model(config)
    state, frozen = trained_state(model, None)
    load_trained_state(model, {"model": state, "frozen": frozen}, "ckpt")  # its own: fine
    torch.manual_seed(1)
    other = build_model(config)
    with pytest.raises(FrozenWeightsError, match="differ from the run's"):
        load_trained_state(other, {"model": state, "frozen": frozen}, "ckpt")


# The floors of the house, lowest first: a module imports only from its own floor or below,
# and a task never imports another task (imports inside functions count too).
FLOORS = [("config", "diffusion"), ("engine",), ("backbones",),
          ("following", "estimation", "social"), ("original",), ("tasks",)]
TASK_PACKAGES = {"following", "estimation", "social"}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "gazefollow" and len(parts) > 1 else None


def _imports(path) -> list[str]:
    import ast
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_imports_run_only_down_the_house_and_no_task_imports_another():
    from tests.conftest import ROOT
    floor = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
    climbs = []
    for path in (ROOT / "gazefollow").rglob("*.py"):
        own = path.relative_to(ROOT / "gazefollow").parts[0].removesuffix(".py")
        if own not in floor:
            continue
        for module in _imports(path):
            room = _room(module)
            if room is None or room == own:
                continue
            if floor[room] > floor[own] or (own in TASK_PACKAGES and room in TASK_PACKAGES):
                climbs.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not climbs, climbs


def test_only_their_own_packages_and_the_registry_name_the_tasks():
    import ast

    from tests.conftest import ROOT
    allowed = {ROOT / "gazefollow" / "tasks.py"}
    named = []
    files = [ROOT / "main.py", *(ROOT / "gazefollow").rglob("*.py")]
    for path in files:
        inside = path.relative_to(ROOT).parts[:2] in (("gazefollow", "social"),
                                                      ("gazefollow", "estimation"))
        if inside or path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("lam", "simclr"):
                named.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not named, named


def test_backbones_and_encoders_register_by_being_in_their_package(tmp_path):
    from gazefollow.backbones import backbones
    from gazefollow.config import ConfigError
    from gazefollow.following.encoders import encoders
    assert {"resnet", "gazenet", "vit"} <= set(backbones())
    assert {"resnet_pair", "original"} <= set(encoders())
    with pytest.raises(ConfigError, match="no backbone named 'resnt'.*Did you mean 'resnet'"):
        tiny_config(tmp_path, "model.face_backbone=resnt")


def test_frozen_weights_from_a_file_come_back_from_that_file(tmp_path):
    """A face branch frozen after an ImageNet-format start: the run halts, resumes and is
    evaluated with its frozen weights read again from the recorded file; its checkpoint
    cannot start another run alone; without the file it is one named error."""
    import shutil

    from gazefollow.engine.checkpoint import CheckpointError
    from gazefollow.engine.weights import FrozenWeightsError
    from gazefollow.following.models.gaze_model import build_model
    reference = build_model(tiny_config(tmp_path))
    face = {k[len("gaze.face."):]: torch.randn_like(v) if v.is_floating_point() else v
            for k, v in reference.state_dict().items() if k.startswith("gaze.face.")}
    file = tmp_path / "imagenet" / "resnet.pth"
    file.parent.mkdir()
    torch.save(face, file)
    argv = [f"data.dataset_dir={tmp_path / 'world'}", f"run.output_dir={tmp_path / 'out'}",
            "model.freeze_face=true", f"run.init_weights={file}", "run.init_resnet_parts=[face]",
            "run.max_steps=2", "run.tag=from_file"]
    config = tiny_config(tmp_path, *argv)
    assert tasks.train(tiny_config(tmp_path, *argv, "run.halt_at_step=1")).finished is False
    assert tasks.train(config).finished  # resumed: the frozen face read again from the file
    run_dir = tasks.run_dir_for(config)
    frozen = load_checkpoint(run_dir)["frozen"]
    assert frozen["source"] == str(file.resolve()) and frozen["names"]
    loaded = tasks.load_for_eval(run_dir)
    assert torch.equal(loaded["model"].state_dict()["gaze.face.conv1.weight"],
                       face["conv1.weight"])
    with pytest.raises(CheckpointError, match="does not store its .* frozen parameters"):
        tasks.train(tiny_config(tmp_path, f"run.init_weights={run_dir}", "run.tag=child",
                                "run.max_steps=1", f"run.output_dir={tmp_path / 'out'}"))
    shutil.move(file, tmp_path / "elsewhere.pth")
    with pytest.raises(FrozenWeightsError, match="which is not there"):
        tasks.load_for_eval(run_dir)


def test_rows_are_made_beside_the_next_prediction_in_order_and_errors_surface():
    """predict_split makes a batch's rows on a second thread while the next batch is
    predicted: the first batch's rows wait here until the second prediction has started
    (they would wait forever if the two ran one after the other), the rows still come in
    dataset order, and an error raised while making rows reaches the caller."""
    import threading

    second_started = threading.Event()
    calls = []

    def predict(model, batch):
        calls.append(int(batch["position"][0]))
        if len(calls) == 2:
            second_started.set()
        return {"y": model(batch["x"])}

    def rows(batch, outputs):
        if int(batch["position"][0]) == 0:
            assert second_started.wait(timeout=30), "rows were not made beside the next batch"
        return [{"position": int(p)} for p in batch["position"]]

    model, dataset = Linear(), Points(12, 0)
    predicted = predict_split(model, dataset, predict, rows, batch_size=4, device="cpu")
    assert [r["position"] for r in predicted.rows] == list(range(12)) and calls == [0, 4, 8]

    def failing(batch, outputs):
        raise ValueError(f"no rows for position {int(batch['position'][0])}")

    with pytest.raises(ValueError, match="no rows for position 4"):
        predict_split(model, dataset, predict, lambda b, o: failing(b, o) if int(
            b["position"][0]) == 4 else rows(b, o), batch_size=4, device="cpu")


def test_batches_are_pinned_for_a_gpu_only(tmp_path, monkeypatch):
    """A GPU run's loader pins its batches (copies to the device then run beside the host);
    a CPU run's does not."""
    from gazefollow.engine import loop

    config = tiny_config(tmp_path)
    assert not loop.train_loader(Points(8, 0), config).pin_memory  # this machine: a CPU run
    monkeypatch.setattr(loop, "runs_on_cpu", lambda config: False)
    assert loop.train_loader(Points(8, 0), config).pin_memory
