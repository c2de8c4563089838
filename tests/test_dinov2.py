"""DINOv2 as a backbone: a Hugging Face folder written by transformers and DINOv2's torch.hub
layout (generated, tiny) load into the same model, and its features equal a slow reference
of DINOv2's forward written from its description (hub names, position grid resampled at
every forward as DINOv2's own code does)."""
import math

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from gazefollow.backbones.dinov2 import DINOV2_SIZES, DINOv2Features, dinov2_hf_config
from gazefollow.backbones.dinov2_weights import hub_to_hf, load_dinov2_weights
from gazefollow.engine.checkpoint import CheckpointError

RELEASED = 518  # the released weights' input size: a 37 x 37 position grid


def hf_folder(tmp_path, registers: int, seed: int = 0, size: str = "tiny"):
    """A Hugging Face folder (config.json + model.safetensors) as transformers saves a
    released DINOv2, with random weights (layer scales and tokens far from their init)."""
    from transformers import Dinov2Model, Dinov2WithRegistersModel
    torch.manual_seed(seed)
    config = dinov2_hf_config(size, registers, RELEASED)
    model = (Dinov2WithRegistersModel if registers else Dinov2Model)(config)
    with torch.no_grad():
        for name, value in model.named_parameters():
            if "lambda1" in name or "token" in name or "position" in name:
                value.normal_(0, 0.5)
    folder = tmp_path / f"dinov2-{size}-reg{registers}"
    model.save_pretrained(folder)
    return folder, load_file(str(folder / "model.safetensors"))  # the released names


def to_hub(state: dict) -> dict:
    """transformers' names -> DINOv2's hub names (query, key and value fused into qkv)."""
    renames = {"embeddings.cls_token": "cls_token", "embeddings.mask_token": "mask_token",
               "embeddings.register_tokens": "register_tokens",
               "embeddings.position_embeddings": "pos_embed",
               "embeddings.patch_embeddings.projection.": "patch_embed.proj.",
               "layernorm.": "norm.", "attention.output.dense.": "attn.proj.",
               "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
               "mlp.weights_in.": "mlp.w12.", "mlp.weights_out.": "mlp.w3."}  # giant's SwiGLU
    hub = {}
    for key, value in state.items():
        if ".attention.attention." in key:
            continue
        new = key.replace("encoder.layer.", "blocks.")
        for old, ours in renames.items():
            new = new.replace(old, ours)
        hub[new] = value
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")}
    for i in blocks:
        for kind in ("weight", "bias"):
            hub[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                [state[f"encoder.layer.{i}.attention.attention.{n}.{kind}"]
                 for n in ("query", "key", "value")])
    return hub


def reference_features(hub: dict, image: torch.Tensor, registers: int, heads: int):
    """DINOv2's forward from its description: x_norm_patchtokens [B, N, D]."""
    width = hub["cls_token"].shape[-1]
    x = F.conv2d(image, hub["patch_embed.proj.weight"], hub["patch_embed.proj.bias"], stride=14)
    batch, _, grid, _ = x.shape
    x = torch.cat([hub["cls_token"].expand(batch, -1, -1), x.flatten(2).transpose(1, 2)], 1)
    side = int(math.sqrt(hub["pos_embed"].shape[1] - 1))
    patches = hub["pos_embed"][:, 1:].reshape(1, side, side, width).permute(0, 3, 1, 2)
    if registers:  # interpolate_offset 0, interpolate_antialias True
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", antialias=True)
    else:  # interpolate_offset 0.1
        patches = F.interpolate(patches, scale_factor=((grid + 0.1) / side,) * 2,
                                mode="bicubic", antialias=False)
    x = x + torch.cat([hub["pos_embed"][:, :1], patches.flatten(2).transpose(1, 2)], 1)
    if registers:
        x = torch.cat([x[:, :1], hub["register_tokens"].expand(batch, -1, -1), x[:, 1:]], 1)
    count, blocks = x.shape[1], len({k.split(".")[1] for k in hub if k.startswith("blocks.")})
    for i in range(blocks):
        p = lambda name: hub[f"blocks.{i}.{name}"]  # noqa: E731
        h = F.layer_norm(x, (width,), p("norm1.weight"), p("norm1.bias"), eps=1e-6)
        qkv = F.linear(h, p("attn.qkv.weight"), p("attn.qkv.bias"))
        q, k, v = qkv.reshape(batch, count, 3, heads, -1).permute(2, 0, 3, 1, 4)
        attention = ((q @ k.transpose(-2, -1)) / math.sqrt(width // heads)).softmax(-1) @ v
        attended = F.linear(attention.transpose(1, 2).reshape(batch, count, width),
                            p("attn.proj.weight"), p("attn.proj.bias"))
        x = x + p("ls1.gamma") * attended
        h = F.layer_norm(x, (width,), p("norm2.weight"), p("norm2.bias"), eps=1e-6)
        if f"blocks.{i}.mlp.w12.weight" in hub:  # SwiGLU: silu(first half) * second half
            gate, up = F.linear(h, p("mlp.w12.weight"), p("mlp.w12.bias")).chunk(2, dim=-1)
            h = F.linear(F.silu(gate) * up, p("mlp.w3.weight"), p("mlp.w3.bias"))
        else:
            h = F.linear(F.gelu(F.linear(h, p("mlp.fc1.weight"), p("mlp.fc1.bias"))),
                         p("mlp.fc2.weight"), p("mlp.fc2.bias"))
        x = x + p("ls2.gamma") * h
    x = F.layer_norm(x, (width,), hub["norm.weight"], hub["norm.bias"], eps=1e-6)
    return x[:, 1 + registers:]


@pytest.mark.parametrize("registers", [0, 4])
def test_both_layouts_give_dinov2s_own_features(tmp_path, registers):
    folder, state = hf_folder(tmp_path, registers)
    hub = to_hub(state)
    torch.save(hub, tmp_path / "dinov2_vittiny14_pretrain.pth")
    image = torch.randn(2, 3, 56, 56)  # a 4 x 4 grid: the released 37 x 37 one resampled
    reference = reference_features(hub, image, registers, heads=DINOV2_SIZES["tiny"][2])
    maps = []
    for source in (folder, tmp_path / "dinov2_vittiny14_pretrain.pth"):
        features = DINOv2Features("tiny", registers, 56).eval()
        report = load_dinov2_weights(features, str(source), log=lambda *_: None)
        assert report["grid"] == [37, 4] and not report["new"]
        with torch.no_grad():
            maps.append(features(image))
    assert maps[0].shape == (2, 32, 4, 4)
    torch.testing.assert_close(maps[0], maps[1], atol=1e-5, rtol=0)  # the two layouts
    ours = maps[1].flatten(2).transpose(1, 2)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)  # DINOv2's forward


def test_giants_swiglu_mlp_loads_from_both_layouts(tmp_path, monkeypatch):
    """ViT-g/14's fused SwiGLU (hub ``mlp.w12`` / ``w3``, released ``weights_in`` /
    ``weights_out``) split into transformers' gate and up projections: DINOv2's features
    (giant's design at width 32, one block)."""
    monkeypatch.setitem(DINOV2_SIZES, "giant", (32, 1, 2))
    folder, state = hf_folder(tmp_path, 0, size="giant")
    hub = to_hub(state)
    assert "blocks.0.mlp.w12.weight" in hub and "blocks.0.mlp.w3.weight" in hub
    torch.save(hub, tmp_path / "dinov2_vitg14_pretrain.pth")
    image = torch.randn(2, 3, 42, 42)
    reference = reference_features(hub, image, 0, heads=2)
    for source in (folder, tmp_path / "dinov2_vitg14_pretrain.pth"):
        features = DINOv2Features("giant", 0, 42).eval()
        report = load_dinov2_weights(features, str(source), log=lambda *_: None)
        assert not report["new"]
        with torch.no_grad():
            ours = features(image).flatten(2).transpose(1, 2)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_the_hub_mapping_names_every_part_and_refuses_another_size(tmp_path):
    _, state = hf_folder(tmp_path, 0)
    hub = to_hub(state)
    hub["blocks.0.mlp.w12.weight"] = torch.zeros(1)  # giant's SwiGLU names
    hub["head.weight"] = torch.zeros(1)
    mapped, dropped = hub_to_hf(hub)
    assert "encoder.layer.0.mlp.weights_in.weight" in mapped and dropped == ["head.weight"]
    assert "encoder.layer.0.attention.attention.key.bias" in mapped
    assert mapped["encoder.layer.1.layer_scale2.lambda1"] is hub["blocks.1.ls2.gamma"]
    torch.save(to_hub(state), tmp_path / "tiny.pth")
    small = DINOv2Features("small", 0, 28)
    with pytest.raises(CheckpointError, match="does not fit DINOv2 'small' \\(384 wide"):
        load_dinov2_weights(small, str(tmp_path / "tiny.pth"), log=lambda *_: None)


def test_a_missing_folder_or_an_unknown_layout_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder or file at"):
        load_dinov2_weights(DINOv2Features("tiny", 0, 28), str(tmp_path / "nothing"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Hugging Face folder"):
        load_dinov2_weights(DINOv2Features("tiny", 0, 28), str(tmp_path / "folder"))


def test_a_frozen_dinov2_face_branch_trains_and_stays_out_of_the_checkpoint(tmp_path):
    """Its released weights load through model.backbone_weights when the model is built, so
    evaluation rebuilds it exactly; the checkpoint keeps only its names and checksum."""
    from gazefollow.engine.checkpoint import load_checkpoint
    from main import main
    from tests.conftest import TINY
    _, state = hf_folder(tmp_path, 0)
    torch.save(to_hub(state), tmp_path / "hub.pth")
    results = main(["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
                    f"run.output_dir={tmp_path / 'out'}", "--max_steps", "2",
                    "model.face_backbone=dinov2", "model.dinov2_size=tiny", "data.face_size=28",
                    f"model.backbone_weights={tmp_path / 'hub.pth'}"])
    assert 0 <= results["model"]["auc"] <= 1
    stored = load_checkpoint(tmp_path / "out" / "synthetic-diffusion-x0" / "tiny")
    assert not [key for key in stored["model"] if key.startswith("gaze.face.model.")]
    assert "gaze.face.model.embeddings.position_embeddings" in stored["frozen"]["names"]
