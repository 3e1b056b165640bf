"""Encoder + decoder pair: per-pixel features and the reconstruction from them."""

from __future__ import annotations

import torch
from torch import nn

from nbutils.models.decoders import ShallowDecoder
from nbutils.models.unet import UNetEncoder


class AutoEncoder(nn.Module):
    """``forward(x) -> (z, x_hat)``: z (N, D, H, W) features, x_hat (N, C, H, W) in [0, 1]."""

    def __init__(self, in_channels: int = 1, features: int = 64, widths=(8, 16, 32), noise: float = 0.05):
        super().__init__()
        self.config = dict(in_channels=in_channels, features=features, widths=list(widths), noise=noise)
        self.encoder = UNetEncoder(in_channels, features, tuple(widths), noise)
        self.decoder = ShallowDecoder(features, in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)
