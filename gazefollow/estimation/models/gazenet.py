"""GazeNet, the MobileNetV2 recipe for normalized MPIIFaceGaze (112 px faces -> pitch, yaw).

MobileNetV2's features with the last layer (320 -> 1280) replaced by a 1x1 conv-BN-ReLU6 to
256 channels (4 x 4 at 112 px); a spatial-weights branch of three 1x1 convolutions
(256 -> 256 -> 256 -> 1, each followed by ReLU; weights N(0, 0.01), N(0, 0.01), N(0, 0.001),
biases 0.1, 0.1, 1) whose map multiplies the features; then dropout 0.5 and fully connected
layers 4096 -> 512 -> 512 -> 2 with ReLU and dropout 0.5. Module names are the recipe's
(``backbone``, ``Conv1``..``Conv3``, ``fc1``, ``fc2``, ``fc_final``), so its checkpoints load.

One deliberate difference: the recipe's dropout after the spatial weighting is
``F.dropout(x, 0.5)``, which stays on at evaluation too; here it is a module, off in eval().
"""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.backbones.mobilenet import GAZENET_CHANNELS, GazeNetFeatures

INPUT_SIZE = 112
FEATURE_CHANNELS, FEATURE_GRID = GAZENET_CHANNELS, 4


def _spatial_conv(std: float, bias: float, out: int = FEATURE_CHANNELS) -> nn.Conv2d:
    conv = nn.Conv2d(FEATURE_CHANNELS, out, 1)
    nn.init.normal_(conv.weight, 0.0, std)
    nn.init.constant_(conv.bias, bias)
    return conv


def _fc(inp: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, out), nn.ReLU(inplace=True), nn.Dropout(0.5))


class GazeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = GazeNetFeatures()
        self.Conv1 = _spatial_conv(0.01, 0.1)
        self.Conv2 = _spatial_conv(0.01, 0.1)
        self.Conv3 = _spatial_conv(0.001, 1.0, out=1)
        self.dropout = nn.Dropout(0.5)
        self.fc1 = _fc(FEATURE_CHANNELS * FEATURE_GRID ** 2, 512)
        self.fc2 = _fc(512, 512)
        self.fc_final = nn.Linear(512, 2)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        """face [B, 3, 112, 112] (ImageNet-normalised RGB) -> [B, 2] pitch, yaw."""
        x = self.backbone(face)
        weights = torch.relu(self.Conv3(torch.relu(self.Conv2(torch.relu(self.Conv1(x))))))
        x = self.dropout(torch.relu(x * weights)).flatten(1)
        return self.fc_final(self.fc2(self.fc1(x)))


def load_imagenet_backbone(model: GazeNet, state: dict) -> dict:
    """An ImageNet ``mobilenet_v2`` state dict (torchvision names) into ``model.backbone``:
    ``features.N`` -> ``backbone.N`` for every layer but the replaced last one. Returns the
    report {"loaded", "dropped", "new" (the replaced layer, left as initialised), "missing"}
    (key lists)."""
    last = f"features.{len(model.backbone) - 1}."
    mapped = {"backbone." + k[len("features."):]: v for k, v in state.items()
              if k.startswith("features.") and not k.startswith(last)}
    dropped = sorted(k for k in state if "backbone." + k[len("features."):] not in mapped)
    result = model.load_state_dict(mapped, strict=False)
    if result.unexpected_keys:
        raise KeyError(f"keys that fit no layer of GazeNet's backbone: {result.unexpected_keys}")
    replaced = "backbone" + last[len("features"):]
    backbone = [k for k in result.missing_keys if k.startswith("backbone.")]
    return {"loaded": sorted(mapped), "dropped": dropped,
            "new": [k for k in backbone if k.startswith(replaced)],
            "missing": [k for k in backbone if not k.startswith(replaced)]}
