"""The original research code's model as a configuration: its encoder, its UNet's key names,
its checkpoints and initial weights, its depth branch."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from gazefollow.following.encoders.original import feature_grid, sinusoidal_2d
from gazefollow.following.models.gaze_model import build_model
from gazefollow.following.predict import GazePredictor
from gazefollow.original.checkpoints import adm_unet_key_map, map_original_key
from gazefollow.tasks import build_config
from main import main
from tests.conftest import ROOT, assert_predictor_matches_evaluation, first_test_heads, run_script

ORIGINAL = ROOT / "configs" / "experiments" / "original.yaml"
STACK = [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml", ORIGINAL]
# The original model, shrunk: 32 px input (a 1 x 1 map), one block per stage, width 8 x 16.
TINY_ORIGINAL = ["data.input_size=32", "data.output_size=16", "data.face_size=32",
                 "model.scene_layers=[1,1,1,1,1]", "model.face_layers=[1,1,1,1,1]",
                 "model.depth_layers=[1,1,1,1,1]", "model.scene_inplanes=8",
                 "model.face_inplanes=8", "model.depth_inplanes=8", "model.context_dim=128",
                 "model.unet_multipliers=[1,2]", "model.unet_attention_levels=[1]",
                 "model.inout_hidden=16", "data.batch_size=4", "data.num_workers=0",
                 "sampling.steps=1", "eval.extra_steps=[]", "eval.batch_size=4",
                 "eval.num_visualize=2", "logging.wandb=disabled", "run.device=cpu",
                 "synthetic.num_train=24", "synthetic.num_test=4", "synthetic.width=96",
                 "synthetic.height=72", "synthetic.annotators=3"]


def tiny_original(*extra):
    return build_config(STACK, [*TINY_ORIGINAL, *extra])


def test_the_position_encoding_is_the_originals():
    # 6 channels -> 4 per axis: sin/cos at frequencies 1 and 1e-2; rows first, then columns
    table = sinusoidal_2d(2, 3, 6)
    expected = [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01), math.sin(2),
                math.cos(2)]
    assert table.shape == (2, 3, 6)
    assert table[1, 2].tolist() == pytest.approx(expected, abs=1e-6)
    assert table[0, 0].tolist() == pytest.approx([0, 1, 0, 1, 0, 1])


def test_the_encoder_gives_49_plus_49_tokens_of_width_1024_at_224_px():
    config = build_config(STACK, ["model.scene_layers=[1,1,1,1,1]",
                                  "model.face_layers=[1,1,1,1,1]",
                                  "model.adm_attention_module=true"])
    model = build_model(config).eval()
    assert feature_grid(224) == 7
    assert (model.gaze.attn.in_features, model.gaze.attn.out_features) == (784 + 1024, 49)
    batch = {"image": torch.randn(1, 3, 224, 224), "head_channel": torch.zeros(1, 1, 224, 224),
             "face": torch.randn(1, 3, 224, 224)}
    batch["head_channel"][..., 20:60, 30:70] = 1
    with torch.no_grad():
        cond = model.encode(batch)
    assert cond["context"].shape == (1, 98, 1024)
    assert cond["inout_features"].shape == (1, 2048, 7, 7) and cond["inout_logit"].shape == (1,)


def _adm_names(multipliers, per_level, attention_rates):
    """The original UNet's parameter names, enumerated as its constructor builds them (ADM's
    input / middle / output blocks), independently of gazefollow's key map."""
    res = ["in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3"]
    tf = ["norm", "proj_in", "proj_out"] + [f"transformer_blocks.0.{n}" for n in (
        "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
        "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2", "norm1", "norm2", "norm3")]
    names, blocks, ds = ["time_embed.0", "time_embed.2", "input_blocks.0.0"], 1, 1
    ch = multipliers[0]
    for level, mult in enumerate(multipliers):
        for _ in range(per_level):
            names += [f"input_blocks.{blocks}.0.{n}" for n in res]
            if ch != mult:
                names.append(f"input_blocks.{blocks}.0.skip_connection")
            ch = mult
            if ds in attention_rates:
                names += [f"input_blocks.{blocks}.1.{n}" for n in tf]
            blocks += 1
        if level != len(multipliers) - 1:
            names.append(f"input_blocks.{blocks}.0.op")
            blocks, ds = blocks + 1, ds * 2
    names += [f"middle_block.{i}.{n}" for i in (0, 2) for n in res]
    names += [f"middle_block.1.{n}" for n in tf]
    out = 0
    for level, mult in reversed(list(enumerate(multipliers))):
        for i in range(per_level + 1):
            # its input is the level's channels + a skip's: the 1x1 skip is always there
            names += [f"output_blocks.{out}.0.{n}" for n in res + ["skip_connection"]]
            position = 1
            if ds in attention_rates:
                names += [f"output_blocks.{out}.1.{n}" for n in tf]
                position = 2
            if level and i == per_level:
                names.append(f"output_blocks.{out}.{position}.conv")
                ds //= 2
            out += 1
    names += ["out.0", "out.2"]
    keys = []
    for name in names:
        keys.append(f"model.{name}.weight")
        if not name.split(".")[-1].startswith(("to_q", "to_k", "to_v")):
            keys.append(f"model.{name}.bias")
    return keys


def test_the_original_unet_keys_map_one_to_one_onto_the_diffusers_unet():
    config = tiny_original()
    model = build_model(config)
    unet = {k for k in model.state_dict() if k.startswith("head.denoiser.unet.")}
    blocks = adm_unet_key_map(config.model)
    original = _adm_names([1, 2], 1, [2])
    mapped = {key: map_original_key(key, blocks) for key in original}
    assert None not in mapped.values()
    assert len(set(mapped.values())) == len(original)  # one to one
    assert set(mapped.values()) == unet  # and onto
    # hand-checked against ADM's constructor
    assert mapped["model.input_blocks.2.0.op.weight"].endswith(
        "down_blocks.0.downsamplers.0.conv.weight")
    assert mapped["model.input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"].endswith(
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight")
    assert mapped["model.output_blocks.1.2.conv.bias"].endswith(
        "up_blocks.0.upsamplers.0.conv.bias")
    assert mapped["model.output_blocks.3.0.out_layers.3.weight"].endswith(
        "up_blocks.1.resnets.1.conv2.weight")
    assert mapped["model.input_blocks.3.0.emb_layers.1.weight"].endswith(
        "down_blocks.1.resnets.0.time_emb_proj.weight")


def _original_state(model, config, rng):
    """A state dict in the original's names and module order (gaze_model, model, sequential,
    fc_inout) with generated tensors, with the layer it always builds (``attn``) and its
    fixed position-encoding buffers."""
    own = model.state_dict()

    def generated(target):  # small weights, positive variances: finite predictions
        values = rng.normal(scale=0.05, size=tuple(target.shape))
        return torch.from_numpy(values).to(target.dtype)

    def moved(ours, theirs):  # the encoder and the in/out head move by a prefix
        return {theirs + k[len(ours):]: (torch.ones_like(v) if k.endswith("running_var")
                                         else generated(v))
                for k, v in own.items() if k.startswith(ours)}

    state = moved("gaze.", "gaze_model.")
    state["gaze_model.attn.weight"] = torch.zeros(1, 1)
    state["gaze_model.postional_embedding_1.penc.inv_freq"] = torch.ones(4)
    blocks = adm_unet_key_map(config.model)
    for key in _adm_names(config.model.unet_multipliers, 1, [2]):
        state[key] = generated(own[map_original_key(key, blocks)])
    return {**state, **moved("inout_head.conv.", "sequential."),
            **moved("inout_head.fc.", "fc_inout.")}


def test_an_original_checkpoint_evaluates_with_its_weights_mapped(tmp_path):
    from gazefollow.tasks import load_for_eval
    config = tiny_original(f"data.dataset_dir={tmp_path / 'world'}")
    rng = np.random.default_rng(0)
    model = build_model(config)
    raw, ema = _original_state(model, config, rng), _original_state(model, config, rng)
    file = tmp_path / "run" / "ckpt_last.pth"
    file.parent.mkdir()
    torch.save({"run_id": "abc", "epoch": 4, "model": raw, "ema_params": ema,
                "optimizer": {}, "mse_loss": None}, file)
    overrides = [*TINY_ORIGINAL, f"data.dataset_dir={tmp_path / 'world'}"]
    results = main(["--eval_weights", str(file), *overrides])
    assert 0 <= results["model"]["auc"] <= 1
    assert (tmp_path / "run" / "gazefollow-eval").is_dir()
    for use_ema, source in ((False, raw), (True, ema)):
        loaded = load_for_eval(file, [*overrides, f"optim.ema_on={use_ema}"], STACK)["model"]
        state = loaded.state_dict()
        # the UNet (and in/out head) from the EMA values with ema_on, the encoder always raw
        assert torch.equal(state["head.denoiser.unet.conv_in.weight"],
                           source["model.input_blocks.0.0.weight"])
        assert torch.equal(state["inout_head.fc.weight"], source["fc_inout.weight"])
        assert torch.equal(state["gaze.scene_backbone.conv1.weight"],
                           raw["gaze_model.scene_backbone.conv1.weight"])


def test_an_original_checkpoint_of_another_configuration_is_refused(tmp_path):
    from gazefollow.engine.checkpoint import CheckpointError
    from gazefollow.tasks import load_for_eval
    config = tiny_original()
    state = _original_state(build_model(config), config, np.random.default_rng(0))
    del state["model.out.2.weight"]
    file = tmp_path / "ckpt_epoch_3.pth"
    torch.save({"epoch": 3, "model": state}, file)
    with pytest.raises(CheckpointError, match="1 missing.*conv_out.weight"):
        load_for_eval(file, TINY_ORIGINAL, STACK)


def test_the_originals_init_weights_load_as_its_get_model_renamed_them(tmp_path):
    from gazefollow.backbones.init_weights import load_initial_weights
    config = tiny_original()
    model = build_model(config)
    backbones = {k[len("gaze."):]: torch.randn(v.shape) if v.is_floating_point() else v
                 for k, v in model.state_dict().items()
                 if k.startswith(("gaze.scene_backbone.", "gaze.face_backbone."))}
    file = tmp_path / "init_weights.pt"
    torch.save({"model": {**backbones, "attn.weight": torch.zeros(49, 10),
                          "deconv1.weight": torch.zeros(1)}}, file)
    report = load_initial_weights(model, tiny_original(f"run.init_weights={file}").run,
                                  log=lambda *_: None)
    assert report["format"] == "original" and len(report["loaded"]) == len(backbones)
    assert report["dropped"] == ["attn.weight", "deconv1.weight"] and not report["missing"]
    assert torch.equal(model.state_dict()["gaze.face_backbone.conv1.weight"],
                       backbones["face_backbone.conv1.weight"])


@pytest.mark.parametrize("extra", [
    ["--adm_attention_module", "--other_loss"],
    ["model.depth_branch=true", "synthetic.depth_maps=true", "data.depth_suffix=_depth.png",
     "--random_flag", "--ema_on", "--lr_schedular"],
], ids=["attention-point-loss", "depth-branch"])
def test_the_original_configuration_trains_and_evaluates(tmp_path, extra):
    results = main(["--experiment", str(ORIGINAL), *TINY_ORIGINAL, "--max_steps", "2",
                    f"data.dataset_dir={tmp_path / 'world'}", f"run.output_dir={tmp_path}",
                    *extra])
    assert 0 <= results["model"]["auc"] <= 1
    if "model.depth_branch=true" in extra:
        assert len(list((tmp_path / "world" / "train").glob("*_depth.png"))) == 24
        run_dir = next(tmp_path.glob("*/original"))
        assert_predictor_matches_evaluation(run_dir)  # depth maps given as files
        predictor = GazePredictor.from_pretrained(run_dir, device="cpu")
        _, images, boxes, _, depths = first_test_heads(predictor, "_depth.png")
        with pytest.raises(ValueError, match="give one depth map per image"):
            predictor.predict(images[:1], boxes[:1])
        grey = np.asarray(Image.open(depths[0]))  # the same map as a 16-bit array
        as_array = predictor.predict(images[:1], boxes[:1], depths=[grey])[0][0]
        as_file = predictor.predict(images[:1], boxes[:1], depths=depths[:1])[0][0]
        assert np.array_equal(as_array.heatmap, as_file.heatmap)
        folder = tmp_path / "photos"  # the demo reads each map beside its image
        folder.mkdir()
        for file in [images[0], depths[0]]:
            shutil.copy(file, folder / file.name)
        given = {images[0].name: [list(map(float, boxes[0][0]))]}
        (tmp_path / "boxes.json").write_text(json.dumps(given))
        run_script("demo.py", "--weights", run_dir, "--input", folder, "--boxes",
                   tmp_path / "boxes.json", "--output", tmp_path / "demo")
        entries = json.loads((tmp_path / "demo" / "predictions.json").read_text())
        assert [e["image"] for e in entries] == [images[0].name]
        assert entries[0]["people"][0]["point"] == pytest.approx(list(as_file.point))


def test_the_original_configuration_at_224_px_trains_2_steps(tmp_path):
    """The acceptance run: the full original model at 224 px, 2 steps, 1 DDIM step."""
    results = main(["--experiment", str(ORIGINAL), "--max_steps", "2", "data.batch_size=2",
                    "data.num_workers=0", "sampling.steps=1", "eval.extra_steps=[]",
                    "eval.batch_size=2", "eval.num_visualize=2", "logging.wandb=disabled",
                    "run.device=cpu", "synthetic.num_train=6", "synthetic.num_test=2",
                    "synthetic.width=96", "synthetic.height=72", "synthetic.annotators=2",
                    f"data.dataset_dir={tmp_path / 'world'}", f"run.output_dir={tmp_path}"])
    assert 0 <= results["model"]["auc"] <= 1
    assert results["info"]["sample_steps"] == 1
