import pytest
import torch

from gazefollow.models.gaze_model import build_model
from gazefollow.models.resnet import ResNet
from tests.conftest import tiny_config


def _batch(config, batch=2):
    d = config.data
    return {
        "image": torch.randn(batch, 3, d.input_size, d.input_size),
        "head_channel": torch.zeros(batch, 1, d.input_size, d.input_size),
        "face": torch.randn(batch, 3, d.face_size, d.face_size),
        "head_box": torch.tensor([[0.1, 0.2, 0.3, 0.4]] * batch),
    }


@pytest.mark.parametrize("overrides", [
    [],
    ["model.block=bottleneck", "model.scene_layers=[1,1,1]", "model.face_layers=[1,1]"],
    ["model.spatial_channels=0", "model.scene_coord_channels=false",
     "model.direction_field=false"],
    ["model.unet_attention_levels=[0,1]", "model.unet_layers_per_block=2",
     "model.unet_transformer_layers=2", "model.scene_stem_pool=false"],
    ["data.output_size=32", "model.unet_multipliers=[1,2,2]", "model.unet_attention_levels=[]"],
])
def test_forward_shapes(tmp_path, overrides):
    config = tiny_config(tmp_path, *overrides)
    model = build_model(config)
    batch = _batch(config)
    size = config.data.output_size
    x_t = torch.randn(2, 1, size, size)
    out, cond = model(batch, x_t, torch.tensor([0, 999]))
    assert out.shape == (2, 1, size, size)
    tokens = config.model.scene_token_grid ** 2 + 1
    assert cond["context"].shape == (2, tokens, config.model.context_dim)
    assert cond["inout_logit"].shape == (2,)
    assert ("spatial" in cond) == (config.model.spatial_channels > 0)


def test_resnet_uses_torchvision_parameter_names():
    net = ResNet([2, 2, 2, 2], inplanes=64, block="basic")
    names = set(net.state_dict())
    for name in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
                 "layer1.1.bn2.weight", "layer2.0.downsample.0.weight",
                 "layer2.0.downsample.1.running_var", "layer4.1.conv2.weight"]:
        assert name in names
    # ResNet-18 without its fc layer has exactly 11,176,512 parameters.
    assert sum(p.numel() for p in net.parameters()) == 11_176_512
    bottleneck = ResNet([3, 4, 6, 3], block="bottleneck")
    assert "layer1.0.conv3.weight" in bottleneck.state_dict()
    assert bottleneck.out_channels == 2048


def test_parameter_groups_split_parts_and_freeze(tmp_path):
    config = tiny_config(tmp_path, "model.freeze_face=true")
    model = build_model(config)
    groups = model.parameter_groups(lr=1e-3, gaze_lr=1e-4)
    assert [g["name"] for g in groups] == ["diffusion", "gaze"]
    assert groups[0]["lr"] == 1e-3 and groups[1]["lr"] == 1e-4
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) not in in_groups for p in model.gaze.face.parameters())
    assert all(id(p) in in_groups for p in model.denoiser.parameters())


def test_direction_field_is_a_cone_around_the_direction():
    from gazefollow.models.gaze_encoder import DirectionField
    field_net = DirectionField(face_channels=4, gammas=[1.0, 8.0])
    with torch.no_grad():
        field_net.proj.weight.zero_()
        field_net.proj.bias.copy_(torch.tensor([1.0, 0.0]))  # looking right (+x)
    head_box = torch.tensor([[0.25, 0.5, 0.25, 0.5]])  # centre (0.25, 0.5)
    direction, field = field_net(torch.zeros(1, 4), head_box, size=8)
    assert torch.allclose(direction, torch.tensor([[1.0, 0.0]]))
    assert field.shape == (1, 2, 8, 8)
    row = 4  # y = 0.5, the head's row
    assert torch.allclose(field[0, :, row, 6], torch.ones(2))  # straight ahead: 1
    assert (field[0, :, row, 0] == 0).all()  # behind the head: 0
    off_axis = field[0, :, 1, 6]  # ahead but above: inside the wide cone, outside the narrow one
    assert 0 < off_axis[1] < off_axis[0] < 1


def test_init_weights_load_torchvision_names_through_the_key_map(tmp_path):
    from gazefollow.checkpoint import load_init_weights
    config = tiny_config(tmp_path)
    model = build_model(config)
    face = ResNet(config.model.face_layers, config.model.face_inplanes)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in face.state_dict().items()}
    state["fc.weight"] = torch.zeros(10, 4)  # as in an ImageNet classifier file
    path = tmp_path / "resnet.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="unknown to the model"):
        load_init_weights(model, path, {"": "gaze.face."}, log=lambda *_: None)
    load_init_weights(model, path, {"fc.": None, "": "gaze.face."}, log=lambda *_: None)
    assert torch.equal(model.gaze.face.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_loss_reaches_every_part(tmp_path, prediction):
    from gazefollow.diffusion.gaussian import GaussianDiffusion
    from gazefollow.diffusion.losses import training_losses
    config = tiny_config(tmp_path, f"diffusion.prediction={prediction}")
    model = build_model(config)
    size = config.data.output_size
    batch = {**_batch(config, batch=3), "heatmap": torch.rand(3, 1, size, size),
             "inout": torch.tensor([1.0, 0.0, 1.0]),
             "gaze_points": torch.tensor([[[0.7, 0.2]], [[-1.0, -1.0]], [[0.1, 0.9]]])}
    losses = training_losses(model, GaussianDiffusion(config.diffusion), batch, config.loss,
                             generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(losses["loss"]) and {"direction_loss", "inout_bce"} <= set(losses)
    losses["loss"].backward()
    for part in (model.denoiser, model.gaze.scene, model.gaze.face, model.inout_head,
                 model.gaze.direction):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_frozen_encoder_keeps_batchnorm_statistics(tmp_path):
    model = build_model(tiny_config(tmp_path, "model.freeze_scene=true"))
    model.train()
    assert not model.gaze.scene.training and model.gaze.face.training
    before = model.gaze.scene.bn1.running_mean.clone()
    model.encode(_batch(tiny_config(tmp_path)))
    assert torch.equal(model.gaze.scene.bn1.running_mean, before)
