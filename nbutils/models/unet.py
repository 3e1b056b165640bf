"""A small U-Net that gives D features per pixel at full resolution."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


NORMS = {"batch": nn.BatchNorm2d, "instance": lambda c: nn.InstanceNorm2d(c, affine=True)}
ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "leaky": lambda: nn.LeakyReLU(0.01, inplace=True)}
UPSAMPLING = ("transposed", "resize")


def upsampler(cin: int, cout: int, mode: str = "transposed") -> nn.Module:
    """Doubles the size: a 2x2 stride-2 transposed convolution, or a nearest resize then a 3x3 convolution.

    The transposed convolution gives each pixel of a 2x2 block its own weights, free to make a pattern of
    period 2 (the checkerboard of Odena, Dumoulin & Olah, "Deconvolution and checkerboard artifacts",
    Distill 2016, doi:10.23915/distill.00003); the resize-convolution treats every pixel alike.

    Parameters
    ----------
    cin, cout : input and output channels.
    mode : one of :data:`UPSAMPLING`.

    Returns
    -------
    nn.Module mapping (N, cin, H, W) to (N, cout, 2H, 2W).
    """
    if mode == "transposed":
        return nn.ConvTranspose2d(cin, cout, 2, stride=2)
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1))
    raise ValueError(f"unknown upsampling {mode!r}; choose one of {', '.join(UPSAMPLING)}")


def conv_block(cin: int, cout: int, stride: int = 1, norm: str = "batch", activation: str = "relu") -> nn.Sequential:
    """Two 3x3 convolutions, each followed by a norm and an activation.

    Parameters
    ----------
    cin, cout : input and output channels.
    stride : of the first convolution (2 halves the size).
    norm : ``"batch"`` or ``"instance"``.
    activation : ``"relu"`` or ``"leaky"`` (slope 0.01).

    Returns
    -------
    nn.Sequential mapping (N, cin, H, W) to (N, cout, H / stride, W / stride).
    """
    norm_layer, act = NORMS[norm], ACTIVATIONS[activation]
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), norm_layer(cout), act(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm_layer(cout), act(),
    )


class UNetEncoder(nn.Module):
    """U-Net encoder (N, C, H, W) -> per-pixel features (N, D, H, W).

    Stride-2 downsampling through ``widths`` (default 8-16-32 channels), upsampling (``upsample``, see
    :func:`upsampler`) with skip concatenation, a 1x1 conv to ``features`` channels. While training,
    Gaussian noise of std ``noise`` is added to the input (a denoising autoencoder). Any H, W
    works: inputs are padded (edge values) to a multiple of 2**(len(widths)-1) and the output
    cropped back. ``norm`` is ``"batch"`` or ``"instance"``, ``activation`` ``"relu"`` or
    ``"leaky"`` (LeakyReLU, slope 0.01).
    """

    def __init__(self, in_channels: int = 1, features: int = 64, widths=(8, 16, 32), noise: float = 0.05,
                 norm: str = "batch", activation: str = "relu", upsample: str = "transposed"):
        super().__init__()
        self.noise, self.features = noise, features
        self.factor = 2 ** (len(widths) - 1)
        block = lambda a, b, stride=1: conv_block(a, b, stride, norm, activation)  # noqa: E731
        self.stem = block(in_channels, widths[0])
        self.downs = nn.ModuleList(block(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.ups = nn.ModuleList(upsampler(b, a, upsample) for a, b in zip(widths[:-1], widths[1:]))
        self.merges = nn.ModuleList(block(2 * a, a) for a in widths[:-1])
        self.head = nn.Conv2d(widths[0], features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.factor, (-w) % self.factor
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, merge in zip(reversed(self.ups), reversed(self.merges)):
            y = merge(torch.cat([up(y), skips.pop()], dim=1))
        return self.head(y)[..., :h, :w]
