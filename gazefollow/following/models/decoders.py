"""The one-pass heatmap decoders of published models, as heads (``model.head``): Gaze-LLE's
(``gazelle``) and Chong et al.'s (``chong``, CVPR 2020). Each keeps its authors' attribute
names, so their released files load by a prefix (``following/published``). The head API is
the one in ``heads.py``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gazefollow.following.models.conditioning import (PREDICTED_HEATMAP, Conditioning,
                                                      ConditioningWidths)
from gazefollow.following.models.temporal import StackedConvLSTM

CONVLSTM_LAYERS = 2  # Chong et al.'s VideoAttentionTarget training and evaluation scripts


class OnePassHead(nn.Module):
    """What a deterministic decoder shares: one step, no samples, the map at the heatmap size
    (``_resized``), logged as ``name``."""

    stochastic = False
    name = ""
    description = ""

    def __init__(self, output_size: int):
        super().__init__()
        self.output_size = output_size

    def _resized(self, maps: torch.Tensor, antialias: bool) -> torch.Tensor:
        if maps.shape[-1] == self.output_size:
            return maps
        return F.interpolate(maps, size=(self.output_size,) * 2, mode="bilinear",
                             align_corners=False, antialias=antialias)

    @classmethod
    def run_label(cls, config) -> str:
        return cls.name

    @staticmethod
    def step_counts(config) -> list[int]:
        return [1]

    @classmethod
    def describe(cls, sampling) -> str:
        return cls.description

    @classmethod
    def eval_label(cls, sampling) -> str:
        return cls.name


class GazelleHead(OnePassHead):
    """Gaze-LLE's decoder head: the encoder's token map [B, C, g, g] up-sampled 2x by a
    transposed convolution, a 1x1 convolution to one channel, a sigmoid; resized to the
    heatmap size (bilinear with antialiasing, as torchvision's resize of a tensor; at 448 px
    with patch 14 it is already 64 x 64). Trained by binary cross-entropy to the target
    heatmap (on the logits, which is the same loss, computed stably)."""

    name, description = "gazelle", "Gaze-LLE decoder (one pass)"

    def __init__(self, config, widths: ConditioningWidths):
        super().__init__(config.data.output_size)
        if not widths.spatial:
            raise ValueError("model.head=gazelle decodes the encoder's spatial map: this "
                             "encoder has none (resnet_pair: model.spatial_channels > 0)")
        channels = widths.spatial
        self.heatmap_head = nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, stride=2),
                                          nn.Conv2d(channels, 1, 1, bias=False))

    def loss(self, cond: Conditioning, heatmap: torch.Tensor, generator=None) -> tuple:
        logits = self._resized(self.heatmap_head(cond["spatial"]).float(), antialias=True)
        per_sample = F.binary_cross_entropy_with_logits(
            logits, heatmap.float(), reduction="none").mean(dim=(1, 2, 3))
        return per_sample, {"bce": per_sample.detach(), PREDICTED_HEATMAP: logits.sigmoid()}

    @torch.no_grad()
    def predict(self, cond: Conditioning, ids: list[int], seed: int, steps: int, sampling,
                draws: int = 1, first_draw: int = 0, trajectory: list | None = None) -> np.ndarray:
        # the sigmoid before the resize, as Gaze-LLE's forward
        logits = self.heatmap_head(cond["spatial"]).float()
        return self._resized(torch.sigmoid(logits), antialias=True)[:, 0].cpu().numpy()


class ChongHead(OnePassHead):
    """Chong et al.'s decoder (ModelSpatial): the attended scene and face maps [B, C, g, g]
    compressed by two 1x1 convolutions (C -> C/2 -> C/4, BatchNorm, ReLU), three transposed
    convolutions (3/2, 3/2, 4/2: a 7 x 7 map becomes 64 x 64), BatchNorm and ReLU after each,
    and a 1x1 convolution with bias. Unbounded, trained by MSE to the target heatmap (their
    loss x 10000 is ``loss.heatmap_weight``); resized (bilinear) only when the configured
    heatmap size is not the decoder's own.

    With ``model.temporal: chong`` (ModelSpatioTemporal) their ConvLSTM ``convlstm_scene``
    sits between the compression and the deconvolutions: the model runs it where the frames
    are (``recur_clips``, ``recur_stream``) and the head decodes its output
    (``cond["recurrent"]``). Their video model skips its deconvolutions' BatchNorms when a
    forward pass holds one frame; here they always apply (the running statistics they hold)."""

    name, description = "chong", "Chong et al. decoder (one pass)"

    def __init__(self, config, widths: ConditioningWidths):
        super().__init__(config.data.output_size)
        c = widths.spatial
        if not c or c % 16:
            raise ValueError("model.head=chong decodes the encoder's fused scene and face map "
                             "(model.encoder=chong): this encoder gives none of a width / 16")
        self.compress_conv1, self.compress_bn1 = nn.Conv2d(c, c // 2, 1, bias=False), \
            nn.BatchNorm2d(c // 2)
        self.compress_conv2, self.compress_bn2 = nn.Conv2d(c // 2, c // 4, 1, bias=False), \
            nn.BatchNorm2d(c // 4)
        self.deconv1, self.deconv_bn1 = nn.ConvTranspose2d(c // 4, c // 8, 3, stride=2), \
            nn.BatchNorm2d(c // 8)
        self.deconv2, self.deconv_bn2 = nn.ConvTranspose2d(c // 8, c // 16, 3, stride=2), \
            nn.BatchNorm2d(c // 16)
        self.deconv3, self.deconv_bn3 = nn.ConvTranspose2d(c // 16, 1, 4, stride=2), \
            nn.BatchNorm2d(1)
        self.conv4 = nn.Conv2d(1, 1, 1)
        self.convlstm_scene = StackedConvLSTM(c // 4, CONVLSTM_LAYERS) \
            if config.model.temporal == "chong" else None

    def compress(self, spatial: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.compress_bn1(self.compress_conv1(spatial)))
        return F.relu(self.compress_bn2(self.compress_conv2(x)))

    def recur_clips(self, spatial: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """B clips of T frames [B * T, C, g, g] -> the ConvLSTM's output after each clip's
        last frame [B, C/4, g, g], from a zero state."""
        frames, state = self.compress(spatial).unflatten(0, (b, t)), None
        for step in range(t):
            out, state = self.convlstm_scene.step(frames[:, step], state)
        return out

    def recur_stream(self, spatial: torch.Tensor, tracks: list, states: dict) -> torch.Tensor:
        """Frames in time order [N, C, g, g], each of its track (None: a track of its own) ->
        the ConvLSTM's output at each [N, C/4, g, g]; ``states`` (track -> state) carries a
        track's state to its next frame, in this call or a later one."""
        frames, outputs = self.compress(spatial), []
        for i, track in enumerate(tracks):
            out, state = self.convlstm_scene.step(frames[i:i + 1], states.get(track))
            if track is not None:
                states[track] = [(h.detach(), c.detach()) for h, c in state]
            outputs.append(out)
        return torch.cat(outputs)

    def heatmap(self, cond: Conditioning) -> torch.Tensor:
        """[B, 1, O, O] at the heatmap size."""
        x = cond["recurrent"] if self.convlstm_scene is not None else \
            self.compress(cond["spatial"])
        x = F.relu(self.deconv_bn1(self.deconv1(x)))
        x = F.relu(self.deconv_bn2(self.deconv2(x)))
        x = F.relu(self.deconv_bn3(self.deconv3(x)))
        return self._resized(self.conv4(x).float(), antialias=False)

    def loss(self, cond: Conditioning, heatmap: torch.Tensor, generator=None) -> tuple:
        prediction = self.heatmap(cond)
        per_sample = ((prediction - heatmap.float()) ** 2).mean(dim=(1, 2, 3))
        return per_sample, {"mse": per_sample.detach(), PREDICTED_HEATMAP: prediction}

    @torch.no_grad()
    def predict(self, cond: Conditioning, ids: list[int], seed: int, steps: int, sampling,
                draws: int = 1, first_draw: int = 0, trajectory: list | None = None) -> np.ndarray:
        return self.heatmap(cond)[:, 0].cpu().numpy()
