"""The model contract: an encoder registered in this file alone trains and evaluates through
main.py; the diffusion package stands alone; one preprocessing function; the code's size."""
import ast
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gazefollow.config import ConfigError
from gazefollow.engine.checkpoint import load_checkpoint
from gazefollow.engine.run_records import read_step_log
from gazefollow.following.encoders import GazeEncoder, register_encoder
from gazefollow.following.models.conditioning import ConditioningWidths
from gazefollow.tasks import build_config
from main import main
from tests.conftest import ROOT, TINY


@dataclass
class ToyConfig:
    toy_channels: int = 8  # width of the toy's convolutions
    CHOICES = {"toy_channels": (4, 6, 8)}


@register_encoder("toy_convs")
class ToyConvEncoder(GazeEncoder):
    """A few convolutions over the scene and the face crop: tokens and in/out features only,
    no spatial map, no direction. Its one key joins the model section: model.toy_channels."""

    PARTS = {"convs": ("scene_convs", "face_convs"), "tokens": ("to_tokens",)}
    CONFIG = ToyConfig

    def __init__(self, model_cfg, data_cfg):
        super().__init__()
        width = model_cfg.toy_channels
        self.scene_convs = nn.Sequential(nn.Conv2d(4, width, 3, stride=2, padding=1), nn.ReLU(),
                                         nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.face_convs = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.to_tokens = nn.Linear(width, model_cfg.context_dim)
        self.widths = ConditioningWidths(context=model_cfg.context_dim, inout=2 * width)

    def forward(self, batch: dict) -> dict:
        scene = self.scene_convs(torch.cat([batch["image"], batch["head_channel"]], dim=1))
        face = self.face_convs(batch["face"]).mean(dim=(2, 3))  # [B, 8]
        tokens = self.to_tokens(scene.flatten(2).transpose(1, 2))  # [B, h*w, D]
        return {"context": tokens, "inout_features": torch.cat([scene.mean(dim=(2, 3)), face], 1)}


def _argv(tmp_path, *extra):
    return ["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
            f"run.output_dir={tmp_path / 'out'}", *extra]


@pytest.mark.parametrize("head", ["diffusion", "regression"])
def test_a_registered_toy_encoder_trains_and_evaluates(tmp_path, head):
    results = main(_argv(tmp_path, "--max_steps", "2", "model.encoder=toy_convs",
                         "model.toy_channels=6", f"model.head={head}", "optim.part_lr.tokens=3e-4", "--tag", "toy"))
    label = "diffusion-x0" if head == "diffusion" else "regression"
    run_dir = tmp_path / "out" / f"synthetic-{label}" / "toy"
    assert 0 <= results["model"]["auc"] <= 1 and (run_dir / "metrics.json").is_file()
    logged = read_step_log(run_dir)
    assert [entry["step"] for entry in logged] == [1, 2]
    assert logged[0]["lr/tokens"] == pytest.approx(3e-4)  # after the 1 warm-up step
    assert {"lr/convs", "lr/head", "lr/inout_head"} <= set(logged[0])
    assert "direction_loss" not in logged[0]  # the toy predicts no direction
    state = load_checkpoint(run_dir)
    assert state["model"]["gaze.to_tokens.weight"].shape[1] == 6  # the toy's own key


def test_unknown_encoder_and_parts_are_refused_with_suggestions():
    with pytest.raises(ConfigError, match="Did you mean 'resnet_pair'"):
        build_config(overrides=["model.encoder=resnet_pairs"])
    with pytest.raises(ConfigError, match=r"the parts are \['convs', 'tokens', 'head'"):
        build_config(overrides=["model.encoder=toy_convs", "optim.part_lr.scene=1e-5"])
    with pytest.raises(ConfigError, match="has no part 'scene'"):
        build_config(overrides=["model.encoder=toy_convs", "model.freeze_scene=true"])
    with pytest.raises(ConfigError, match="toy_channels"):
        build_config(overrides=["model.encoder=toy_convs", "model.toy_channels=5"])


def test_research_yaml_files_restate_the_schema_defaults():
    from gazefollow.config import to_dict
    restated = build_config([ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml"])
    assert to_dict(restated) == to_dict(build_config())


def test_stored_configs_migrate(tmp_path):
    """A config of today's format stays as it is; one of an earlier version gets today's keys."""
    from gazefollow.config import migrate_stored, to_dict
    config = build_config(overrides=["sampling.steps=4", "loss.inout_weight=0.3"])
    today = to_dict(config)
    assert migrate_stored(today, type(config)) == today
    assert to_dict(build_config(base=today)) == today
    old = json.loads(json.dumps(today))
    old["diffusion"].update(sample_time_steps=4, fix_snr=False, random_flag=True)
    old["loss"].update(x_loss=True, x_loss_weight=0.3)
    old["model"]["decoder"] = old["model"].pop("head")
    old["optim"]["part_lr"] = {"denoiser": 2e-4}
    del old["model"]["unet_patch_size"]  # its UNets ran at the heatmap resolution
    for key in ("inout_bce", "inout_weight"):
        old["loss"].pop(key)
    del old["sampling"]
    migrated = build_config(base=old)
    assert migrated.sampling.steps == 4 and migrated.loss.inout_weight == 0.3
    assert migrated.diffusion.random_sigma and migrated.optim.part_lr == {"head": 2e-4}
    assert migrated.model.unet_patch_size == 1 and build_config().model.unet_patch_size == 2


def test_a_checkpoint_of_the_earlier_layout_evaluates_the_same(tmp_path):
    """Earlier versions kept the heatmap head in a "denoiser" attribute, named the optimiser
    part "denoiser", and stored the sampling keys under "diffusion"."""
    main(_argv(tmp_path, "--max_steps", "1", "--tag", "now"))
    run_dir = tmp_path / "out" / "synthetic-diffusion-x0" / "now"
    state = torch.load(run_dir / "checkpoints" / "step_0000001" / "state.pt", weights_only=True)
    state["model"] = {k.replace("head.denoiser.", "denoiser."): v
                      for k, v in state["model"].items()}
    state["optimizer"]["param_groups"][3]["name"] = "denoiser"
    config = state["config"]
    config["model"]["decoder"] = config["model"].pop("head")
    config["diffusion"]["sample_time_steps"] = config["sampling"].pop("steps")
    old_dir = tmp_path / "old"
    (old_dir / "checkpoints" / "step_0000001").mkdir(parents=True)
    torch.save(state, old_dir / "checkpoints" / "step_0000001" / "state.pt")
    (old_dir / "checkpoints" / "step_0000001" / "COMPLETE").write_text("{}\n")
    migrated = load_checkpoint(old_dir)
    assert migrated["optimizer"]["param_groups"][3]["name"] == "head"
    assert main(["--eval_weights", str(old_dir)])["model"] == \
        main(["--eval_weights", str(run_dir)])["model"]


def test_the_dataset_builds_its_inputs_with_the_shared_function(tiny_world):
    from gazefollow.following.data.build import build_datasets
    from gazefollow.following.data.instances import fix_box
    from gazefollow.following.data.preprocess import model_inputs
    root, config = tiny_world
    dataset = build_datasets(config, splits=("test",), log=lambda *_: None)["test"]
    sample, instance = dataset[1], dataset.instances[1]
    with Image.open(root / instance.path) as image:
        image = image.convert("RGB")
    box = fix_box(np.asarray(instance.head_box, dtype=np.float64), *image.size)
    inputs = model_inputs(image, box, config.data.input_size, config.data.face_size,
                          config.data.head_enlarge)
    for key in ("image", "head_channel", "face", "head_box"):
        assert torch.equal(inputs[key], sample[key]), key


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_the_diffusion_package_stands_alone():
    for path in (ROOT / "gazefollow" / "diffusion").glob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] in ("__future__", "dataclasses", "enum", "math", "numpy",
                                          "torch", "diffusers") or name.startswith(
                "gazefollow.diffusion"), f"{path.name} imports {name}"


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in (ROOT / "gazefollow").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, long


def test_the_project_points_at_nothing_outside_its_repository():
    outside = ["DESIGN" + ".md", "SEED_" + "INTERFACE", "../" + "shared"]
    files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".yaml")
             and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
             and "outputs" not in p.parts and "datasets" not in p.parts]
    hits = [f"{p.relative_to(ROOT)}: {name}" for p in files for name in outside
            if name in p.read_text(errors="replace")]
    assert not hits, hits
