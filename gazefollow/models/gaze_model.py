"""The full model: gaze part (encoders, conditioner, in/out head) + diffusion part (UNet)."""
from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from gazefollow.config import MODEL_PARTS
from gazefollow.models.denoiser import HeatmapDenoiser, conditioning_channels, conditioning_maps
from gazefollow.models.gaze_encoder import GazeEncoder


class InOutHead(nn.Module):
    """Pooled scene+face features [B, F] -> in-frame logit [B]."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)


class GazeDiffusionModel(nn.Module):
    """``encode`` runs once per sample; ``denoise`` runs once per diffusion step.

    The parts are separate attributes so the optimiser can give each its own learning rate and
    weight decay (``optimizer_parameter_groups``) and either encoder can be frozen.
    """

    def __init__(self, model_cfg, output_size: int, out_channels: int = 1,
                 decoder: nn.Module | None = None):
        super().__init__()
        self.gaze = GazeEncoder(model_cfg, output_size)
        self.inout_head = InOutHead(self.gaze.conditioner.inout_dim, model_cfg.inout_hidden)
        # "denoiser" names the heatmap part (its own parameter group) whatever decodes it
        self.denoiser = decoder or HeatmapDenoiser(model_cfg, output_size, out_channels)
        self.frozen = [enc for enc, frozen in ((self.gaze.scene, model_cfg.freeze_scene),
                                               (self.gaze.face, model_cfg.freeze_face)) if frozen]
        for encoder in self.frozen:
            encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        """Frozen encoders stay in eval mode, so their BatchNorm statistics do not drift."""
        super().train(mode)
        for encoder in self.frozen:
            encoder.eval()
        return self

    def encode(self, batch: dict) -> dict:
        """-> {"context" [B, N, D], "spatial" [B, C, h, w], "inout_logit" [B], ...}"""
        cond = self.gaze(batch)
        cond["inout_logit"] = self.inout_head(cond["inout_features"])
        return cond

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """One denoiser call: x_t [B, 1, O, O], t [B] -> model output [B, 1, O, O]."""
        return self.denoiser(x_t, t, cond)

    def forward(self, batch: dict, x_t: torch.Tensor, t: torch.Tensor) -> tuple:
        """Training entry (one call, so DDP sees every used parameter): (model output, cond)."""
        cond = self.encode(batch)
        return self.denoise(x_t, t, cond), cond

    def trainable_parts(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by part (MODEL_PARTS); a frozen encoder's list is empty.
        "conditioner" is everything in the gaze part but the two encoders."""
        def trainable(params):
            return [p for p in params if p.requires_grad]
        encoders = {id(p) for enc in (self.gaze.scene, self.gaze.face) for p in enc.parameters()}
        parts = {
            "scene": trainable(self.gaze.scene.parameters()),
            "face": trainable(self.gaze.face.parameters()),
            "conditioner": trainable(p for p in self.gaze.parameters() if id(p) not in encoders),
            "denoiser": trainable(self.denoiser.parameters()),
            "inout_head": trainable(self.inout_head.parameters()),
        }
        assert tuple(parts) == MODEL_PARTS, "config.MODEL_PARTS names the parts for validation"
        return parts


def optimizer_parameter_groups(model: GazeDiffusionModel, optim_cfg) -> list[dict]:
    """AdamW groups, one per model part with trainable parameters (frozen encoders have none):
    {"name", "params", "lr", "weight_decay"}. lr: optim.part_lr[part], else optim.gaze_lr for
    every part but the denoiser, else optim.lr; weight decay: optim.part_weight_decay[part],
    else optim.weight_decay. LR schedulers scale every group's lr by the same factor."""
    groups = []
    for name, params in model.trainable_parts().items():
        if not params:
            continue
        lr = optim_cfg.lr
        if optim_cfg.gaze_lr is not None and name != "denoiser":
            lr = optim_cfg.gaze_lr
        groups.append({
            "name": name, "params": params, "lr": optim_cfg.part_lr.get(name, lr),
            "weight_decay": optim_cfg.part_weight_decay.get(name, optim_cfg.weight_decay),
        })
    _check_each_parameter_once(model, groups)
    return groups


def _check_each_parameter_once(model: nn.Module, groups: list[dict]) -> None:
    """A parameter in no group would silently never train; one in two would step twice."""
    counts = Counter(id(p) for group in groups for p in group["params"])
    names = {id(p): name for name, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    twice = sorted(names[i] for i, n in counts.items() if n > 1)
    left_out = sorted(names[i] for i in trainable - counts.keys())
    frozen = sorted(names[i] for i in counts.keys() - trainable)
    if twice or left_out or frozen:
        raise AssertionError(f"optimiser groups must hold each trainable parameter once: in "
                             f"two groups {twice}, in none {left_out}, frozen {frozen}")


class RegressionDecoder(nn.Module):
    """The classic gaze-following head: a small convolutional decoder that predicts the heatmap
    directly from the same conditioning the UNet gets (spatial scene+face features, coordinate
    maps, direction field) plus the mean context token, broadcast over the map."""

    def __init__(self, model_cfg, output_size: int):
        super().__init__()
        cfg = model_cfg
        self.spatial_channels = cfg.spatial_channels
        token_channels = 16
        channels = token_channels + conditioning_channels(cfg)
        width = cfg.unet_inplanes
        self.token = nn.Linear(cfg.context_dim, token_channels)
        layers = []
        for k in range(3):
            layers += [nn.Conv2d(channels if k == 0 else width, width, 3, padding=1),
                       nn.GroupNorm(min(cfg.unet_norm_groups, width), width), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))
        self.output_size = output_size

    def forward(self, cond: dict) -> torch.Tensor:
        """cond -> heatmap [B, 1, O, O] (unbounded; trained towards [0, 1] targets)."""
        size = self.output_size
        token = self.token(cond["context"].mean(dim=1))
        token_map = token[:, :, None, None].expand(-1, -1, size, size)
        inputs = [token_map, *conditioning_maps(cond, token_map, self.spatial_channels)]
        return self.net(torch.cat(inputs, dim=1))


class GazeRegressionModel(GazeDiffusionModel):
    """Same encoders, conditioning and in/out head as the diffusion model; the heatmap comes
    from ``RegressionDecoder`` in one pass (``model.decoder: regression``)."""

    def __init__(self, model_cfg, output_size: int):
        super().__init__(model_cfg, output_size, decoder=RegressionDecoder(model_cfg, output_size))

    def decode(self, cond: dict) -> torch.Tensor:
        return self.denoiser(cond)

    def forward(self, batch: dict, x_t=None, t=None) -> tuple:
        """Training entry: (predicted heatmap [B, 1, O, O], cond)."""
        cond = self.encode(batch)
        return self.decode(cond), cond


def build_model(config) -> GazeDiffusionModel:
    """The full model for a Config (heatmap size from data.output_size): the diffusion model,
    whose UNet outputs twice the channels with learned sigmas, or the regression baseline."""
    if config.model.decoder == "regression":
        return GazeRegressionModel(config.model, config.data.output_size)
    channels = config.model.unet_inout_channels * (2 if config.diffusion.learn_sigma else 1)
    return GazeDiffusionModel(config.model, config.data.output_size, out_channels=channels)
