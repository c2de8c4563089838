"""The ViT estimator: an MAE-layout checkpoint loads with its key report and gives the same
tokens as a slow reference ViT on the MAE names; layer-wise decay, frozen blocks, OneCycle."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from gazefollow.backbones.init_weights import InitWeightsError, load_initial_weights
from gazefollow.backbones.mae_keys import resize_positions
from gazefollow.backbones.vit import VIT_SIZES
from gazefollow.estimation.models import ViTEstimator
from main import main
from tests.conftest import ROOT, tiny_config
from tests.test_estimation_train import TINY_ESTIMATION, write_xgaze_folder

PATCH, DIM, LAYERS, HEADS, MLP = VIT_SIZES["tiny"]


def mae_checkpoint(grid: int, seed: int = 0) -> dict:
    """A pre-training checkpoint as MAE's main_pretrain.py saves it, for the tiny ViT: the
    encoder in timm's names, the decoder, and the training state beside "model"."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    state = {"cls_token": rand(1, 1, DIM), "pos_embed": rand(1, 1 + grid * grid, DIM),
             "patch_embed.proj.weight": rand(DIM, 3, PATCH, PATCH),
             "patch_embed.proj.bias": rand(DIM), "norm.weight": 1 + rand(DIM),
             "norm.bias": rand(DIM), "mask_token": rand(1, 1, 16),
             "decoder_embed.weight": rand(16, DIM), "decoder_pred.weight": rand(768, 16),
             "decoder_blocks.0.norm1.weight": rand(16)}
    for i in range(LAYERS):
        block = {"norm1.weight": 1 + rand(DIM), "norm1.bias": rand(DIM),
                 "attn.qkv.weight": rand(3 * DIM, DIM), "attn.qkv.bias": rand(3 * DIM),
                 "attn.proj.weight": rand(DIM, DIM), "attn.proj.bias": rand(DIM),
                 "norm2.weight": 1 + rand(DIM), "norm2.bias": rand(DIM),
                 "mlp.fc1.weight": rand(MLP, DIM), "mlp.fc1.bias": rand(MLP),
                 "mlp.fc2.weight": rand(DIM, MLP), "mlp.fc2.bias": rand(DIM)}
        state.update({f"blocks.{i}.{key}": value for key, value in block.items()})
    return {"model": state, "optimizer": {}, "epoch": 299, "scaler": {}, "args": None}


def reference_class_token(state: dict, x: torch.Tensor) -> torch.Tensor:
    """A slow ViT read straight from the MAE names (timm's Block: pre-norm attention with a
    fused qkv, pre-norm MLP with exact GELU, LayerNorm eps 1e-6)."""
    tokens = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"],
                      stride=PATCH).flatten(2).transpose(1, 2)
    tokens = torch.cat([state["cls_token"].expand(len(x), -1, -1), tokens], 1)
    tokens = tokens + state["pos_embed"]
    batch, length, _ = tokens.shape
    for i in range(LAYERS):
        p = {k[len(f"blocks.{i}."):]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(tokens, (DIM,), p["norm1.weight"], p["norm1.bias"], 1e-6)
        qkv = F.linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"])
        q, k, v = qkv.reshape(batch, length, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(DIM // HEADS), dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(batch, length, DIM)
        tokens = tokens + F.linear(mixed, p["attn.proj.weight"], p["attn.proj.bias"])
        h = F.layer_norm(tokens, (DIM,), p["norm2.weight"], p["norm2.bias"], 1e-6)
        h = F.linear(F.gelu(F.linear(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"])),
                     p["mlp.fc2.weight"], p["mlp.fc2.bias"])
        tokens = tokens + h
    return F.layer_norm(tokens, (DIM,), state["norm.weight"], state["norm.bias"], 1e-6)[:, 0]


def _load(tmp_path, checkpoint, face_size=32, *overrides):
    torch.save(checkpoint, tmp_path / "mae.pth")
    run = tiny_config(tmp_path, f"run.init_weights={tmp_path / 'mae.pth'}", *overrides).run
    model = ViTEstimator("tiny", face_size)
    return model, load_initial_weights(model, run, log=lambda *_: None)


def test_an_mae_checkpoint_loads_with_no_missing_keys_and_the_reference_output(tmp_path):
    checkpoint = mae_checkpoint(grid=2)  # 32 px faces: a 2 x 2 patch grid
    model, report = _load(tmp_path, checkpoint)
    assert report["format"] == "mae" and report["missing"] == []
    assert report["unexpected"] == [] and report["mismatched"] == []
    assert sorted(report["dropped"]) == ["decoder_blocks.0.norm1.weight", "decoder_embed.weight",
                                         "decoder_pred.weight", "mask_token"]
    assert len(report["loaded"]) == len(model.backbone.state_dict())  # every backbone key
    qkv = checkpoint["model"]["blocks.1.attn.qkv.weight"]
    assert torch.equal(model.state_dict()["backbone.layers.1.attention.k_proj.weight"],
                       qkv[DIM:2 * DIM])
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        ours = model.backbone(pixel_values=x).last_hidden_state[:, 0]
    assert torch.allclose(ours, reference_class_token(checkpoint["model"], x), atol=1e-5)


def test_the_position_table_is_resized_to_another_face_size(tmp_path):
    checkpoint = mae_checkpoint(grid=4)  # pretrained at 64 px; the model runs at 32 px
    model, report = _load(tmp_path, checkpoint)
    assert report["missing"] == [] and report["mismatched"] == []
    table = model.backbone.embeddings.position_embeddings
    assert table.shape == (1, 1 + 2 * 2, DIM)
    assert torch.equal(table[:, 0], checkpoint["model"]["pos_embed"][:, 0])  # class row kept
    flat = torch.ones(1, 1 + 16, 3)
    assert torch.allclose(resize_positions(flat, 1 + 4), torch.ones(1, 5, 3))
    del checkpoint["model"]["blocks.1.mlp.fc2.weight"]
    with pytest.raises(InitWeightsError, match="1 missing"):
        _load(tmp_path, checkpoint)


def test_layer_wise_decay_and_frozen_blocks_shape_the_optimizer_groups(tmp_path):
    from gazefollow.engine.optimizer import optimizer_parameter_groups
    config = tiny_config(tmp_path, "optim.lr=0.1", "optim.weight_decay=0")
    optim = config.optim
    model = ViTEstimator("tiny", 32)
    groups = optimizer_parameter_groups(model, type(optim)(**{**vars(optim), "layer_decay": 0.5}))
    by_id = {id(p): group["lr"] for group in groups for p in group["params"]}
    named = dict(model.named_parameters())
    top = LAYERS + 1
    assert by_id[id(named["head.weight"])] == pytest.approx(0.1)
    assert by_id[id(named["backbone.layernorm.weight"])] == pytest.approx(0.1)
    assert by_id[id(named["backbone.layers.1.mlp.fc1.weight"])] == pytest.approx(0.1 * 0.5)
    assert by_id[id(named["backbone.layers.0.mlp.fc1.weight"])] == pytest.approx(0.1 * 0.25)
    assert by_id[id(named["backbone.embeddings.cls_token"])] == pytest.approx(0.1 * 0.5 ** top)
    frozen = ViTEstimator("tiny", 32, freeze_blocks=1)
    trainable = {name for name, p in frozen.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("backbone.embeddings.", "backbone.layers.0.")) for n in trainable)
    assert "backbone.layers.1.attention.q_proj.weight" in trainable
    held = {id(p) for group in optimizer_parameter_groups(frozen, optim) for p in group["params"]}
    assert held == {id(p) for p in frozen.parameters() if p.requires_grad}


def test_onecycle_is_torchs_one_cycle_schedule():
    from types import SimpleNamespace

    from gazefollow.engine.optimizer import lr_factor
    total = 40
    optim = SimpleNamespace(lr_schedule="onecycle", onecycle_pct_start=0.3, onecycle_div=25.0,
                            onecycle_final_div=1e4)
    factor = lr_factor(optim, total_steps=total, steps_per_epoch=10)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=2.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2.0, total_steps=total)
    for step in range(total):
        assert 2.0 * factor(step) == pytest.approx(optimizer.param_groups[0]["lr"]), step
        optimizer.step()
        schedule.step()


def test_the_vit_estimator_trains_and_evaluates_and_bad_settings_are_refused(tmp_path):
    from gazefollow.config import ConfigError
    results = main(["--task", "estimation", "--experiment", str(TINY_ESTIMATION),
                    f"run.output_dir={tmp_path / 'out'}", f"data.dataset_dir={tmp_path / 'w'}",
                    "--max_steps", "2", "estimation.estimator=vit", "model.vit_size=tiny",
                    "optim.layer_decay=0.75", "estimation.vit_freeze_blocks=1",
                    "optim.lr_schedule=onecycle"])
    assert 0 <= results["model"]["angular_error"] <= 180
    assert (tmp_path / "out" / "synthetic_faces-vit-fold00" / "tiny" / "metrics.json").is_file()
    for overrides, message in ((["data.face_size=40"], "not a multiple of 16"),
                               (["estimation.vit_freeze_blocks=3"], "must be in 0..2"),
                               (["estimation.estimator=resnet", "optim.layer_decay=0.5"],
                                "scales a ViT's layers")):
        with pytest.raises(ConfigError, match=message):
            main(["--task", "estimation", "--experiment", str(TINY_ESTIMATION),
                  "estimation.estimator=vit", "model.vit_size=tiny", *overrides])


def test_the_unigaze_recipe_shrunk_to_a_tiny_vit_trains_on_eth_xgaze(tmp_path):
    import numpy as np
    write_xgaze_folder(tmp_path / "xgaze", np.random.default_rng(5), faces=6)
    torch.save(mae_checkpoint(grid=14), tmp_path / "mae.pth")  # pretrained at 224 px
    configs = ROOT / "configs" / "estimation"
    results = main(["--task", "estimation", "--config", str(configs / "unigaze_b16.yaml"),
                    "--config", str(configs / "data" / "ethxgaze.yaml"), "model.vit_size=tiny",
                    "data.face_size=32", "data.batch_size=4", "estimation.val_subjects=1",
                    f"data.dataset_dir={tmp_path / 'xgaze'}", f"run.output_dir={tmp_path}",
                    f"run.init_weights={tmp_path / 'mae.pth'}", "--max_steps", "2"])
    run_dir = tmp_path / "ethxgaze-vit" / "unigaze_b16"
    report = json.loads((run_dir / "init_weights_report.json").read_text())
    assert report["format"] == "mae" and report["missing"] == []
    assert results["info"]["weights"] == "raw" and results["info"]["subjects"] == ["subject0002"]


def test_two_processes_train_the_tiny_vit(tmp_path):
    """UniGaze trains across GPUs: the same recipe runs on 2 CPU processes (DDP over gloo)
    through the project's Accelerate path, each process with half of the global batch."""
    from tests.test_distributed import _free_port, _launch
    launcher = ["torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port())]
    out = _launch(launcher, ["--task", "estimation", "--experiment", str(TINY_ESTIMATION),
                             f"run.output_dir={tmp_path / 'out'}",
                             f"data.dataset_dir={tmp_path / 'w'}", "estimation.estimator=vit",
                             "model.vit_size=tiny", "optim.layer_decay=0.75",
                             "optim.lr_schedule=onecycle", "data.batch_size=2",
                             "--max_steps", "2"])
    assert "2 process(es) on cpu (MULTI_CPU DDP); batch 2 per process x 1 accumulation x 2 " \
           "process(es) = 4 global" in out
    stored = json.loads((tmp_path / "out" / "synthetic_faces-vit-fold00" / "tiny" /
                         "metrics.json").read_text())
    assert stored["info"]["processes"] == 2 and stored["info"]["instances"] == 8
