"""Gaze-estimation networks: shapes, torchvision's MobileNetV2 names, the GazeNet recipe."""
import pytest
import torch

from gazefollow.backbones.mobilenet import MobileNetV2
from gazefollow.estimation.models.gazenet import GazeNet, load_imagenet_backbone


def test_mobilenet_v2_has_torchvisions_names_and_size():
    net = MobileNetV2()
    keys = net.state_dict().keys()
    assert sum(p.numel() for p in net.parameters()) == 3_504_872  # torchvision's mobilenet_v2
    for key in ("features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
                "features.2.conv.0.0.weight", "features.2.conv.1.0.weight",
                "features.2.conv.2.weight", "features.2.conv.3.running_var",
                "features.17.conv.3.bias", "features.18.1.running_mean", "classifier.1.weight"):
        assert key in keys
    assert net.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_gazenet_shapes_init_and_imagenet_loading():
    torch.manual_seed(0)
    model = GazeNet().eval()
    assert model(torch.randn(2, 3, 112, 112)).shape == (2, 2)
    assert torch.all(model.Conv3.bias == 1) and torch.all(model.Conv1.bias == 0.1)
    assert model.Conv3.weight.std().item() == pytest.approx(0.001, rel=0.3)
    assert model.backbone[18][0].weight.shape == (256, 320, 1, 1)
    imagenet = MobileNetV2().state_dict()  # a file in torchvision's layout
    report = load_imagenet_backbone(model, imagenet)
    assert not report["missing"] and report["new"][0] == "backbone.18.0.weight"
    assert sorted(k.split(".")[0] + "." + k.split(".")[1] for k in report["dropped"]
                  if k.startswith("features"))[0] == "features.18"
    assert "classifier.1.weight" in report["dropped"]
    assert torch.equal(model.backbone[3].conv[1][0].weight, imagenet["features.3.conv.1.0.weight"])
    with pytest.raises(KeyError, match="fit no layer"):
        load_imagenet_backbone(model, {"features.99.weight": torch.zeros(1)})


def test_resnet_baselines_shapes_and_sizes():
    from gazefollow.estimation.models.resnet_gaze import ResNetGaze
    r18, r50 = ResNetGaze.named("resnet18"), ResNetGaze.named("resnet50")
    # torchvision's ResNet-18 / -50 without their 1000-way classifiers
    assert sum(p.numel() for p in r18.backbone.parameters()) == 11_689_512 - 513_000
    assert sum(p.numel() for p in r50.backbone.parameters()) == 25_557_032 - 2_049_000
    tiny = ResNetGaze([1, 1], inplanes=8).eval()
    assert tiny(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    with pytest.raises(ValueError, match="unknown ResNet 'resnet7'"):
        ResNetGaze.named("resnet7")
