import math

import pytest
import torch

from gazefollow.backbones.resnet import ResNet
from gazefollow.engine.optimizer import optimizer_parameter_groups
from gazefollow.following.models.gaze_model import build_model
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
    ["model.unet_patch_size=1"],
    ["data.output_size=32", "model.unet_patch_size=4"],
    ["model.face_backbone=gazenet", "data.face_size=32"],  # GazeNet's MobileNetV2 face branch
    ["model.face_backbone=vit", "model.vit_size=tiny", "data.face_size=32"],  # a ViT's
])
def test_forward_shapes(tmp_path, overrides):
    config = tiny_config(tmp_path, *overrides)
    model = build_model(config)
    batch = _batch(config)
    size = config.data.output_size
    x_t = torch.randn(2, 1, size, size)
    cond = model.encode(batch)
    out = model.head.denoise(x_t, torch.tensor([0, 999]), cond)
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


def test_optimizer_groups_hold_each_trainable_parameter_once(tmp_path):
    config = tiny_config(tmp_path, "model.freeze_face=true", "optim.lr=1e-3",
                         "optim.gaze_lr=1e-4", "optim.weight_decay=0.01",
                         "optim.part_lr.scene=1e-5", "optim.part_weight_decay.inout_head=0.5")
    model = build_model(config)
    groups = optimizer_parameter_groups(model, config.optim)
    settings = {g["name"]: (g["lr"], g["weight_decay"]) for g in groups}
    assert settings == {"scene": (1e-5, 0.01), "conditioner": (1e-4, 0.01),
                        "head": (1e-3, 0.01), "inout_head": (1e-4, 0.5)}  # face: frozen
    grouped = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(set(grouped)) and set(grouped) == set(trainable)
    for name, part in (("scene", model.gaze.scene), ("head", model.head),
                       ("inout_head", model.inout_head), ("conditioner", model.gaze.direction)):
        group = next(g for g in groups if g["name"] == name)
        assert {id(p) for p in part.parameters()} <= {id(p) for p in group["params"]}
    torch.optim.AdamW(groups)  # the groups are valid AdamW groups


def test_optimizer_groups_refuse_a_parameter_in_two_parts(tmp_path):
    model = build_model(tiny_config(tmp_path, "model.head=regression"))
    model.head.shared = model.inout_head.net[0]  # the same layer reached from two parts
    with pytest.raises(AssertionError, match="in two groups.*inout_head.net.0.weight"):
        optimizer_parameter_groups(model, tiny_config(tmp_path).optim)


def test_every_group_follows_its_own_lr_through_warmup_and_cosine(tmp_path):
    from diffusers.optimization import get_scheduler
    config = tiny_config(tmp_path, "optim.lr=1e-3", "optim.part_lr.face=4e-4",
                         "optim.part_lr.scene=2e-5")
    groups = optimizer_parameter_groups(build_model(config), config.optim)
    base = {g["name"]: g["lr"] for g in groups}
    optimizer = torch.optim.AdamW(groups)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=3, num_training_steps=10)
    factors = []
    for _ in range(10):
        factor = optimizer.param_groups[0]["lr"] / base[optimizer.param_groups[0]["name"]]
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(base[group["name"]] * factor, rel=1e-12)
        factors.append(factor)
        optimizer.step()
        scheduler.step()
    assert factors[:4] == pytest.approx([0, 1 / 3, 2 / 3, 1])  # linear warm-up, then cosine
    assert factors[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 7)))


def test_direction_field_is_a_cone_around_the_direction():
    from gazefollow.following.encoders.resnet_pair import DirectionField
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


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_loss_reaches_every_part(tmp_path, prediction):
    from gazefollow.following.objective import training_losses
    config = tiny_config(tmp_path, f"diffusion.prediction={prediction}")
    model = build_model(config)
    size = config.data.output_size
    batch = {**_batch(config, batch=3), "heatmap": torch.rand(3, 1, size, size),
             "inout": torch.tensor([1.0, 0.0, 1.0]),
             "gaze_points": torch.tensor([[[0.7, 0.2]], [[-1.0, -1.0]], [[0.1, 0.9]]])}
    losses = training_losses(model, batch, config.loss,
                             generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(losses["loss"]) and {"direction_loss", "inout_bce"} <= set(losses)
    losses["loss"].backward()
    for part in (model.head, model.gaze.scene, model.gaze.face, model.inout_head,
                 model.gaze.direction):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_frozen_encoder_keeps_batchnorm_statistics(tmp_path):
    model = build_model(tiny_config(tmp_path, "model.freeze_scene=true"))
    model.train()
    assert not model.gaze.scene.training and model.gaze.face.training
    before = model.gaze.scene.bn1.running_mean.clone()
    model.encode(_batch(tiny_config(tmp_path)))
    assert torch.equal(model.gaze.scene.bn1.running_mean, before)
