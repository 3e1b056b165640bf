"""A small full-resolution residual CNN (no downsampling): one logit map per output channel."""

from __future__ import annotations

import torch
from torch import nn


class PReLUBlock(nn.Module):
    """x + BN(conv(PReLU(BN(conv(x))))), then PReLU; 3x3 convs, same width."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )
        self.act = nn.PReLU(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class FullResCNN(nn.Module):
    """(N, C, H, W) -> (N, out_channels, H, W) logits at full resolution.

    3x3 conv to ``width`` (16) filters, ``blocks`` (3) residual blocks with BN + PReLU, 1x1 conv.
    The ACWE network of Chen & Frey (MIDL 2020); apply a sigmoid (two regions) or a softmax
    (K classes) to the output.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 16, blocks: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width),
            *[PReLUBlock(width) for _ in range(blocks)],
            nn.Conv2d(width, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PixelEncoder(nn.Module):
    """(N, C, H, W) -> (N, widths[-1], H, W) embeddings, one per pixel, at full resolution.

    The CUTS stage-1 encoder (Liu, Amodio et al. 2024): ``len(widths)`` ``kernel`` x ``kernel``
    convolutions (default four 5x5: 16-32-64-128 channels), each with BN and LeakyReLU, no
    downsampling, so the receptive field is ``len(widths) * (kernel - 1) + 1`` pixels (17).
    """

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64, 128), kernel: int = 5):
        super().__init__()
        self.config = dict(in_channels=in_channels, widths=list(widths), kernel=kernel)
        layers, previous = [], in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width),
                       nn.LeakyReLU(0.2)]
            previous = width
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
