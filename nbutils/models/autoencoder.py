"""Encoder + decoder pair: per-pixel features and the reconstruction from them."""

from __future__ import annotations

import torch
from torch import nn

from nbutils.models.decoders import ShallowDecoder
from nbutils.models.unet import UNetEncoder


class AutoEncoder(nn.Module):
    """``forward(x) -> (z, x_hat)``: z (N, D, H, W) features, x_hat (N, C, H, W) in [0, 1].

    ``standardize`` puts a batch norm without affine parameters on the features (each one zero mean,
    unit variance over the batch's pixels; running statistics in eval mode), as Kim & Kanezaki put one
    on the response map against the collapse of all pixels into one cluster ("Unsupervised learning of
    image segmentation based on differentiable feature clustering", IEEE TIP 29, 2020,
    doi:10.1109/TIP.2020.3011269).

    ``upsample`` is the encoder's (:func:`nbutils.models.unet.upsampler`). The default resize-convolution
    keeps the features free of a period-2 pattern: with transposed convolutions the features' (pretrained, then
    three DCN rounds) first principal component was a column parity that k-means split the brain on.
    """

    def __init__(self, in_channels: int = 1, features: int = 64, widths=(8, 16, 32), noise: float = 0.05,
                 standardize: bool = False, upsample: str = "resize"):
        super().__init__()
        self.config = dict(in_channels=in_channels, features=features, widths=list(widths), noise=noise,
                           standardize=standardize, upsample=upsample)
        self.encoder = UNetEncoder(in_channels, features, tuple(widths), noise, upsample=upsample)
        self.norm = nn.BatchNorm2d(features, affine=False) if standardize else nn.Identity()
        self.decoder = ShallowDecoder(features, in_channels)

    @classmethod
    def from_config(cls, config: dict) -> "AutoEncoder":
        """The network a checkpoint's ``config`` describes (those written before ``upsample`` existed used
        transposed convolutions)."""
        return cls(**{"upsample": "transposed", **config})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.norm(self.encoder(x))
        return z, self.decoder(z)
