"""The shallow decoder: per-pixel features back to the image."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU; 3x3 convs, same width."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ShallowDecoder(nn.Module):
    """(N, D, H, W) features -> (N, C, H, W) image in [0, 1]: 3x3 conv, three residual blocks,
    1x1 conv, sigmoid."""

    def __init__(self, features: int = 64, out_channels: int = 1, width: int = 32, blocks: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(features, width, 3, padding=1), nn.ReLU(inplace=True),
            *[ResidualBlock(width) for _ in range(blocks)],
            nn.Conv2d(width, out_channels, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z))
