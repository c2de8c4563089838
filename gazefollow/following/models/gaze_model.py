"""The full model: a gaze encoder, a heatmap head and an in/out head, with one optimiser group
per part."""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.backbones.resnet import ResNet
from gazefollow.engine.images import normalise
from gazefollow.following.config import frozen_parts
from gazefollow.following.encoders import build_encoder
from gazefollow.following.models.conditioning import Conditioning
from gazefollow.following.models.heads import build_head
from gazefollow.following.models.temporal import TemporalFusion, clip_inputs

PICTURE_KEYS = ("image", "face", "clip_image", "clip_face")


def normalised_pictures(batch: dict) -> dict:
    """The batch with its 8-bit pictures (``PICTURE_KEYS``, as the datasets and the predictor
    give them) ImageNet-normalised where they are; float ones are used as given."""
    changed = {key: normalise(batch[key]) for key in PICTURE_KEYS
               if key in batch and batch[key].dtype == torch.uint8}
    return {**batch, **changed} if changed else batch


class InOutHead(nn.Module):
    """Pooled scene+face features [B, F] -> in-frame logit [B]. With ``dropout`` a dropout
    layer before the last linear one (Gaze-LLE's in/out head: its keys ``net.0`` and
    ``net.3``; without it they stay ``net.0`` and ``net.2``, as in earlier checkpoints)."""

    def __init__(self, in_features: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        layers = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)


class ConvInOutHead(nn.Module):
    """Feature maps [B, F, g, g] -> in-frame logit [B], as Chong et al. (CVPR 2020) and the
    original research code: 1x1 convolutions F -> hidden -> 1 with BatchNorm and ReLU, then
    one linear layer over the g² locations."""

    def __init__(self, in_channels: int, hidden: int, grid: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1, bias=False), nn.BatchNorm2d(1),
            nn.ReLU(inplace=True))
        self.fc = nn.Linear(grid * grid, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(features).flatten(1)).squeeze(1)


def build_inout_head(widths, model_cfg) -> nn.Module:
    if widths.inout_grid:
        return ConvInOutHead(widths.inout, model_cfg.inout_hidden, widths.inout_grid)
    return InOutHead(widths.inout, model_cfg.inout_hidden, model_cfg.inout_dropout)


class GazeModel(nn.Module):
    """``encode`` runs once per sample; the head's ``predict`` reuses its conditioning for
    every sampler step and draw. ``forward`` is the training entry (one call, so DDP sees
    every parameter that is used).

    Attributes (their names are the checkpoint's key prefixes): ``gaze`` (the encoder),
    ``inout_head``, ``head``. Encoder parts named in ``frozen`` get no gradient and stay in
    eval mode, so their BatchNorm statistics do not drift.
    """

    def __init__(self, config):
        super().__init__()
        self.gaze = build_encoder(config.model, config.data)
        self.inout_head = build_inout_head(self.gaze.widths, config.model)
        self.head = build_head(config, self.gaze.widths)
        # model.temporal: the clip's per-frame conditioning fused into the target frame's
        fuses = config.model.temporal not in ("none", "chong")
        self.temporal = TemporalFusion(config.model.temporal, self.gaze.widths,
                                       config.data.clip_length,
                                       config.model.temporal_heads) if fuses else None
        # model.temporal=chong: each track's ConvLSTM state (track -> state), carried from
        # frame to frame while streaming (None: the model has no state)
        self.streams = {} if config.model.temporal == "chong" else None
        self.frozen = [module for part in frozen_parts(config.model)
                       for module in self.gaze.part_modules(part).values()]
        for module in self.frozen:
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def encode(self, batch: dict) -> Conditioning:
        """The encoder's Conditioning with the in/out logit [B] added. A temporal model
        encodes each frame of the clip (``clip_*`` inputs) once, then fuses them over time.
        8-bit pictures are normalised here, on the model's device (``normalised_pictures``)."""
        batch = normalised_pictures(batch)
        if self.streams is not None:
            cond = self._encode_recurrent(batch)
        elif self.temporal is None:
            cond = self.gaze(batch)
        else:
            frames, b, t = clip_inputs(batch)
            cond = self.temporal(self.gaze(frames), b, t)
        cond["inout_logit"] = self.inout_head(cond["inout_features"])
        return cond

    def _encode_recurrent(self, batch: dict) -> Conditioning:
        """Chong et al.'s ConvLSTM (``model.temporal=chong``): over each clip from a zero state
        when the batch holds clips (training), else over the frames in batch order, each
        continuing its track's state (``batch["track"]``; a frame without one starts anew)."""
        if "clip_image" in batch:
            frames, b, t = clip_inputs(batch)
            cond = self.gaze(frames)
            recurrent = self.head.recur_clips(cond["spatial"], b, t)
            cond = {key: value.unflatten(0, (b, t))[:, -1] for key, value in cond.items()}
        else:
            cond = self.gaze(batch)
            tracks = batch.get("track") or [None] * len(cond["spatial"])
            recurrent = self.head.recur_stream(cond["spatial"], tracks, self.streams)
        return {**cond, "recurrent": recurrent}

    def keep_streams(self, tracks) -> None:
        """Forget the state of every track not in ``tracks`` (all of them when empty): a
        stream in track order calls it with each batch's tracks, so a finished track's state
        is let go."""
        if self.streams is not None:
            wanted = set(tracks)
            self.streams = {k: v for k, v in self.streams.items() if k in wanted}

    def forward(self, batch: dict, generator=None) -> tuple:
        """-> (per-sample heatmap loss [B], the head's logged terms, conditioning)."""
        cond = self.encode(batch)
        per_sample, terms = self.head.loss(cond, batch["heatmap"], generator)
        return per_sample, terms, cond

    def trainable_parts(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by part: the encoder's declared parts, then "head" and
        "inout_head" (``encoders.model_parts``); a frozen part's list is empty."""
        def trainable(modules):
            return [p for module in modules for p in module.parameters() if p.requires_grad]
        parts = {part: trainable(self.gaze.part_modules(part).values()) for part in self.gaze.PARTS}
        parts["head"] = trainable([self.head])
        parts["inout_head"] = trainable([self.inout_head])
        if self.temporal is not None:
            parts["temporal"] = trainable([self.temporal])
        # Chong et al.'s ConvLSTM is a part of the head (their decoder) and learns with it
        return parts

    def resnet_prefixes(self) -> dict[str, str]:
        """Key prefix of each ResNet part an ImageNet file can initialise, e.g. "gaze.scene."."""
        out = {}
        for part in self.gaze.RESNET_PARTS:
            modules = self.gaze.part_modules(part)  # a ResNet part is one module, or absent
            # (the face part is GazeNet's MobileNetV2 with model.face_backbone=gazenet)
            if modules and isinstance(next(iter(modules.values())), ResNet):
                (name,) = modules
                out[part] = f"gaze.{name}."
        return out

    def face_prefix(self) -> str | None:
        """Key prefix of the face branch (what a gaze-estimation run initialises), if any."""
        modules = self.gaze.part_modules("face") if "face" in self.gaze.PARTS else {}
        return f"gaze.{next(iter(modules))}." if modules else None


def build_model(config) -> GazeModel:
    """The full model for a Config: ``model.encoder`` and ``model.head`` from their registries."""
    return GazeModel(config)
