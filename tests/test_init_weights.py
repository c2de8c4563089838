"""run.init_weights: tiny files in the exact formats (ours, torchvision ImageNet, classic)."""
import json

import pytest
import torch

from gazefollow.backbones.init_weights import InitWeightsError, load_initial_weights
from gazefollow.config import to_dict
from gazefollow.following.models.gaze_model import build_model
from tests.conftest import tiny_config

CLASSIC_EXTRAS = ["layer5_scene.0.conv1.weight", "fc_inout.weight", "attn.weight"]


def _quiet(*_):
    pass


def _setup(tmp_path, content, *overrides):
    """(model, run config) with ``content`` saved as the init weights file."""
    path = tmp_path / "init.pt"
    torch.save(content, path)
    config = tiny_config(tmp_path, f"run.init_weights={path}", *overrides)
    torch.manual_seed(0)
    return build_model(config), config.run


def _encoder_state(model, part: str, stem_channels: int) -> dict:
    """Encoder ``part`` of ``model`` under torchvision names, random values, a stem conv with
    ``stem_channels`` inputs (3 in ImageNet files)."""
    prefix = f"gaze.{part}."
    state = {k[len(prefix):]: torch.randn_like(v) if v.is_floating_point() else v + 7
             for k, v in model.state_dict().items() if k.startswith(prefix)}
    out_channels, _, k, _ = state["conv1.weight"].shape
    state["conv1.weight"] = torch.randn(out_channels, stem_channels, k, k)
    return state


def _imagenet_file(model, part="scene") -> dict:
    state = _encoder_state(model, part, stem_channels=3)
    width = getattr(model.gaze, part).out_channels
    return {**state, "fc.weight": torch.randn(10, width), "fc.bias": torch.randn(10)}


def _classic_file(model) -> dict:
    """{"model": ...} with ``<name>_scene<rest>`` / ``<name>_face<rest>`` keys, a 4-channel
    scene stem (RGB + head) and layers that have no place in our model."""
    state = {}
    for part, stem in (("scene", 4), ("face", 3)):
        for key, value in _encoder_state(model, part, stem).items():
            name, _, rest = key.partition(".")
            state[f"{name}_{part}.{rest}"] = value
    state.update({key: torch.randn(2, 2) for key in CLASSIC_EXTRAS})
    return {"model": state}


def test_imagenet_file_initialises_both_encoders_and_zeroes_extra_stem_channels(tmp_path):
    reference = build_model(tiny_config(tmp_path, "model.face_layers=[1,1]"))
    file = _imagenet_file(reference)
    model, run = _setup(tmp_path, file, "model.face_layers=[1,1]")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_initial_weights(model, run, log=_quiet)
    assert report["format"] == "torchvision"
    assert report["dropped"] == ["fc.bias", "fc.weight"]
    assert report["missing"] == report["unexpected"] == report["mismatched"] == []
    for part in ("scene", "face"):
        encoder = getattr(model.gaze, part)
        assert torch.equal(encoder.layer2[0].conv1.weight, file["layer2.0.conv1.weight"])
        assert torch.equal(encoder.bn1.running_var, file["bn1.running_var"])
        assert torch.equal(encoder.conv1.weight[:, :3], file["conv1.weight"])
    assert torch.equal(model.gaze.scene.bn1.num_batches_tracked, file["bn1.num_batches_tracked"])
    stem = model.gaze.scene.conv1.weight
    assert stem.shape[1] == 6 and (stem[:, 3:] == 0).all()
    assert report["expanded"] == ["gaze.scene.conv1.weight (3 -> 6 input channels)"]
    for key, value in model.state_dict().items():
        if not key.startswith(("gaze.scene.", "gaze.face.")):
            assert torch.equal(value, before[key]), f"{key} is not in a targeted part"
    json.dumps(report)  # saved to the run directory as JSON


def test_imagenet_file_into_one_encoder_leaves_the_other(tmp_path):
    reference = build_model(tiny_config(tmp_path))
    file = _imagenet_file(reference, part="face")
    model, run = _setup(tmp_path, file, "run.init_resnet_parts=[face]")
    scene_before = {k: v.clone() for k, v in model.gaze.scene.state_dict().items()}
    report = load_initial_weights(model, run, log=_quiet)
    assert torch.equal(model.gaze.face.conv1.weight, file["conv1.weight"])
    assert report["expanded"] == [] and report["missing"] == []
    assert all(torch.equal(v, scene_before[k]) for k, v in model.gaze.scene.state_dict().items())


def test_encoder_shape_differences_are_listed_exactly_and_refused(tmp_path):
    # the tiny scene ResNet has two stages, the face ResNet one
    file = _imagenet_file(build_model(tiny_config(tmp_path)))
    file["bn1.bias"] = torch.zeros(5)
    model, run = _setup(tmp_path, file)
    with pytest.raises(InitWeightsError) as refused:
        load_initial_weights(model, run, log=_quiet)
    report = refused.value.report
    layer2 = sorted(k for k in file if k.startswith("layer2."))
    assert report["unexpected"] == [f"{k} -> gaze.face.{k}" for k in layer2]
    assert [(m["file_key"], m["model_key"]) for m in report["mismatched"]] == [
        ("bn1.bias", "gaze.scene.bn1.bias"), ("bn1.bias", "gaze.face.bn1.bias")]
    assert report["missing"] == []
    message = str(refused.value)
    for part in (str(run.init_weights), f"{len(layer2)} unexpected", "2 mismatched",
                 "run.init_partial=true", "layer2.0.bn1.bias -> gaze.face.layer2.0.bn1.bias"):
        assert part in message


def test_missing_keys_are_listed_and_a_partial_load_keeps_them(tmp_path):
    file = _imagenet_file(build_model(tiny_config(tmp_path)))
    del file["layer2.0.conv2.weight"], file["bn1.weight"]
    model, run = _setup(tmp_path, file, "run.init_resnet_parts=[scene]")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InitWeightsError, match="2 missing"):
        load_initial_weights(model, run, log=_quiet)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # refused
    run.init_partial = True
    logged = []
    report = load_initial_weights(model, run, log=logged.append)
    assert report["missing"] == ["gaze.scene.bn1.weight", "gaze.scene.layer2.0.conv2.weight"]
    assert torch.equal(model.gaze.scene.layer2[0].conv2.weight,
                       before["gaze.scene.layer2.0.conv2.weight"])
    assert torch.equal(model.gaze.scene.layer1[0].conv1.weight, file["layer1.0.conv1.weight"])
    assert "2 missing" in logged[0]
    assert any("gaze.scene.layer2.0.conv2.weight" in line for line in logged[1:])


def test_files_without_batchnorm_counters_load(tmp_path):
    # ImageNet files saved before PyTorch 0.4.1 have no num_batches_tracked
    file = {k: v for k, v in _imagenet_file(build_model(tiny_config(tmp_path))).items()
            if not k.endswith("num_batches_tracked")}
    model, run = _setup(tmp_path, file, "run.init_resnet_parts=[scene]")
    report = load_initial_weights(model, run, log=_quiet)
    assert report["missing"] == []
    assert "gaze.scene.bn1.num_batches_tracked" in report["defaulted"]


def test_classic_file_loads_both_branches_and_lists_its_other_layers(tmp_path):
    file = _classic_file(build_model(tiny_config(tmp_path)))
    state = file["model"]
    model, run = _setup(tmp_path, file)
    with pytest.raises(InitWeightsError) as refused:
        load_initial_weights(model, run, log=_quiet)
    assert "3 unexpected" in str(refused.value) and "fc_inout.weight" in str(refused.value)
    run.init_partial = True
    report = load_initial_weights(model, run, log=_quiet)
    assert report["format"] == "classic"
    assert report["unexpected"] == sorted([
        "attn.weight", "fc_inout.weight",
        "layer5_scene.0.conv1.weight -> gaze.scene.layer5.0.conv1.weight"])
    assert report["missing"] == report["mismatched"] == []
    assert torch.equal(model.gaze.scene.layer1[0].conv1.weight,
                       state["layer1_scene.0.conv1.weight"])
    assert torch.equal(model.gaze.face.bn1.running_mean, state["bn1_face.running_mean"])
    assert torch.equal(model.gaze.face.conv1.weight, state["conv1_face.weight"])
    stem = model.gaze.scene.conv1.weight  # RGB + head from the file, coordinates zero
    assert torch.equal(stem[:, :4], state["conv1_scene.weight"]) and (stem[:, 4:] == 0).all()


def test_key_map_renames_file_keys_before_the_format_is_read(tmp_path):
    file = _classic_file(build_model(tiny_config(tmp_path)))
    wrapped = {"model": {f"module.{k}": v for k, v in file["model"].items()}}  # DataParallel
    key_map = {"module.attn.": None, "module.fc_inout.": None, "module.layer5_": None,
               "module.": ""}
    model, run = _setup(tmp_path, wrapped, ("run.init_key_map", key_map))
    report = load_initial_weights(model, run, log=_quiet)
    assert report["format"] == "classic"
    assert report["dropped"] == sorted(f"module.{k}" for k in CLASSIC_EXTRAS)
    assert report["unexpected"] == []
    assert torch.equal(model.gaze.face.conv1.weight, file["model"]["conv1_face.weight"])


def _checkpoint(tmp_path):
    config = tiny_config(tmp_path)
    torch.manual_seed(1)
    source = build_model(config)
    return source, {"model": source.state_dict(), "config": to_dict(config), "step": 0}


def test_own_checkpoint_initialises_the_whole_model(tmp_path):
    source, checkpoint = _checkpoint(tmp_path)
    model, run = _setup(tmp_path, checkpoint)
    report = load_initial_weights(model, run, log=_quiet)
    assert report["format"] == "gazefollow"
    assert report["missing"] == report["unexpected"] == report["dropped"] == []
    for key, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_run_folder_resolves_to_the_newest_complete_checkpoint(tmp_path):
    source, checkpoint = _checkpoint(tmp_path)
    stale = {**checkpoint, "model": build_model(tiny_config(tmp_path)).state_dict()}
    for step, content, complete in ((500, stale, True), (1000, checkpoint, True),
                                    (1500, stale, False)):  # 1500: a save cut short
        folder = tmp_path / "run" / "checkpoints" / f"step_{step:07d}"
        folder.mkdir(parents=True)
        torch.save(content, folder / "state.pt")
        if complete:
            (folder / "COMPLETE").touch()
    for given in ("run", "run/checkpoints/step_0001000"):
        model = build_model(tiny_config(tmp_path))
        run = tiny_config(tmp_path, f"run.init_weights={tmp_path / given}").run
        report = load_initial_weights(model, run, log=_quiet)
        assert report["file"] == str(tmp_path / "run/checkpoints/step_0001000/state.pt")
        assert torch.equal(model.inout_head.net[0].weight, source.inout_head.net[0].weight)
    for torn in (tmp_path, tmp_path / "run/checkpoints/step_0001500"):
        with pytest.raises(FileNotFoundError, match="run.init_weights: .*COMPLETE"):
            load_initial_weights(model, tiny_config(tmp_path, f"run.init_weights={torn}").run)


def test_unreadable_files_fail_with_their_name(tmp_path):
    model = build_model(tiny_config(tmp_path))
    absent = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match=f"run.init_weights: no file at {absent}"):
        load_initial_weights(model, tiny_config(tmp_path, f"run.init_weights={absent}").run)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=f"cannot read {corrupt}"):
        load_initial_weights(model, tiny_config(tmp_path, f"run.init_weights={corrupt}").run)
    model, run = _setup(tmp_path, [1, 2, 3])
    with pytest.raises(ValueError, match="holds no state dict"):
        load_initial_weights(model, run, log=_quiet)


def test_unknown_format_shows_the_file_and_its_keys(tmp_path):
    model, run = _setup(tmp_path, {"backbone.stem.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"cannot tell the format .*backbone\.stem\.weight"):
        load_initial_weights(model, run, log=_quiet)
    run.init_format = "torchvision"  # forced: nothing fits, refused even with a partial load
    run.init_partial = True
    with pytest.raises(InitWeightsError, match="no tensor fits"):
        load_initial_weights(model, run, log=_quiet)


def test_refused_load_still_writes_its_report(tmp_path):
    """The full lists are what fixes a key map: the report file is written before refusing."""
    model = build_model(tiny_config(tmp_path))
    content = {**model.state_dict(), "unknown_layer.weight": torch.zeros(2)}
    model, run = _setup(tmp_path, content, "run.init_format=gazefollow")
    with pytest.raises(InitWeightsError):
        load_initial_weights(model, run, _quiet, report_file=tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["unexpected"] == ["unknown_layer.weight"]


def _estimation_run(config) -> dict:
    """A checkpoint of a gaze-estimation run as training saves it (weights + its config)."""
    from gazefollow.estimation.models import build_estimator
    torch.manual_seed(1)
    estimator = build_estimator(config)
    return {"model": estimator.state_dict(), "step": 2,
            "config": {**to_dict(config), "run": {"task": "estimation"}}}


def test_an_estimation_run_initialises_the_face_branch(tmp_path):
    config = tiny_config(tmp_path, "estimation.estimator=resnet")
    run = _estimation_run(config)
    model, run_cfg = _setup(tmp_path, run)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_initial_weights(model, run_cfg, log=_quiet)
    assert report["format"] == "estimation" and report["missing"] == []
    face = {k: v for k, v in model.state_dict().items() if k.startswith("gaze.face.")}
    assert sorted(report["loaded"]) == sorted(face)
    for key, value in face.items():
        assert torch.equal(value, run["model"]["backbone." + key[len("gaze.face."):]])
    assert report["dropped"] == ["fc.bias", "fc.weight"]  # the regression head
    scene = "gaze.scene.conv1.weight"
    assert torch.equal(model.state_dict()[scene], before[scene])  # the rest as initialised
    # a face branch of another width: refused with the clash named
    model, run_cfg = _setup(tmp_path, run, "model.face_inplanes=16")
    with pytest.raises(InitWeightsError, match="mismatched"):
        load_initial_weights(model, run_cfg, log=_quiet)


def test_an_estimation_run_loads_whole_into_an_estimator(tmp_path):
    from gazefollow.estimation.models import build_estimator
    config = tiny_config(tmp_path, "estimation.estimator=resnet")
    run = _estimation_run(config)
    torch.save(run, tmp_path / "run.pt")
    estimator = build_estimator(config)
    run_cfg = tiny_config(tmp_path, f"run.init_weights={tmp_path / 'run.pt'}").run
    report = load_initial_weights(estimator, run_cfg, log=_quiet)
    assert report["format"] == "gazefollow" and len(report["loaded"]) == len(run["model"])


def test_a_gazenet_run_starts_a_gazenet_face_branch_and_nothing_else(tmp_path):
    from gazefollow.config import ConfigError
    gazenet = tiny_config(tmp_path, "estimation.estimator=gazenet")
    run = _estimation_run(gazenet)
    model, run_cfg = _setup(tmp_path, run, "model.face_backbone=gazenet", "data.face_size=32")
    report = load_initial_weights(model, run_cfg, log=_quiet)
    assert report["format"] == "estimation" and report["missing"] == []
    assert torch.equal(model.state_dict()["gaze.face.18.0.weight"],
                       run["model"]["backbone.18.0.weight"])  # the 320 -> 256 layer
    assert {key.split(".")[0] for key in report["dropped"]} == {
        "Conv1", "Conv2", "Conv3", "fc1", "fc2", "fc_final"}  # the recipe's head
    face = {"face": torch.rand(2, 3, 32, 32)}
    assert model.gaze.face(face["face"]).shape == (2, 256, 1, 1)
    model, run_cfg = _setup(tmp_path, run)  # a ResNet face branch: refused with the reason
    with pytest.raises(ConfigError, match="gazenet estimation run; this model's face branch "
                                          "is model.face_backbone=resnet"):
        load_initial_weights(model, run_cfg, log=_quiet)
    with pytest.raises(ConfigError, match="reduces a face 32x"):
        tiny_config(tmp_path, "model.face_backbone=gazenet")


def test_a_vit_run_starts_a_vit_face_branch(tmp_path):
    from gazefollow.estimation.models import ViTEstimator
    torch.manual_seed(2)
    vit = ViTEstimator("tiny", 32)
    run = {"model": vit.state_dict(), "config": {"run": {"task": "estimation"}}}
    model, run_cfg = _setup(tmp_path, run, "model.face_backbone=vit", "model.vit_size=tiny",
                            "data.face_size=32")
    report = load_initial_weights(model, run_cfg, log=_quiet)
    assert report["format"] == "estimation" and report["missing"] == []
    assert report["dropped"] == ["head.bias", "head.weight"]
    assert torch.equal(model.state_dict()["gaze.face.layers.1.attention.q_proj.weight"],
                       vit.state_dict()["backbone.layers.1.attention.q_proj.weight"])
