"""The method registry: a name on the command line -> a function ``(volume, options) -> labels``.

A method returns cluster labels (S, H, W) int, 0 meaning "not clustered" (outside the mask).
A new method is one module plus one line here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from nbutils.data.datasets import Volume
from nbutils.methods import acwe, classical, cuts, dcn, deepgmm, supervised


@dataclasses.dataclass
class SegmentOptions:
    k: int = 4
    seed: int = 0
    device: str = "auto"
    profile: str = "ci"
    checkpoint: str | None = None
    channels: list[int] | None = None  # channels to cluster; None = all
    labels: int = 0  # labelled slices for training (ACWE mode 2); 0 = unsupervised
    stage2: str = "condensation"  # CUTS stage 2: kmeans, spectral or condensation
    variant: str = "deepG"  # deep GMM: deepG or deepSVG
    mode: str = "per-image"  # deep GMM: per-image or trained


Segmenter = Callable[[Volume, SegmentOptions], np.ndarray]

METHODS: dict[str, Segmenter] = {
    "kmeans": lambda v, o: classical.kmeans(v.image, v.brain, k=o.k, channels=o.channels, seed=o.seed),
    "gmm": lambda v, o: classical.gmm(v.image, v.brain, k=o.k, channels=o.channels, seed=o.seed),
    "otsu": lambda v, o: classical.otsu(v.image, v.brain, k=o.k, channel=v.flair_channel),
    "zscore": lambda v, o: classical.robust_zscore(v.image, v.brain, channel=v.flair_channel),
    "chan-vese": lambda v, o: classical.chan_vese(v.image, v.brain, channel=v.flair_channel),
    "morph-chan-vese": lambda v, o: classical.morphological_chan_vese(v.image, v.brain, channel=v.flair_channel),
    "dcn": lambda v, o: dcn.segment(v, o.k, profile=o.profile, device=o.device, checkpoint=o.checkpoint, seed=o.seed),
    "acwe": lambda v, o: acwe.segment(v, profile=o.profile, device=o.device, checkpoint=o.checkpoint, seed=o.seed),
    "cuts": lambda v, o: cuts.segment(v, o.k, stage2=o.stage2, profile=o.profile, device=o.device,
                                      checkpoint=o.checkpoint, seed=o.seed),
    "deepgmm": lambda v, o: deepgmm.segment(v, o.k, variant=o.variant, mode=o.mode, profile=o.profile,
                                            device=o.device, checkpoint=o.checkpoint, seed=o.seed),
    "unet": lambda v, o: supervised.segment(v, profile=o.profile, device=o.device, checkpoint=o.checkpoint),
}

SUPERVISED = {"unet"}  # trained on labels: segment needs a checkpoint

TRAINERS = {
    "dcn": lambda volumes, o, ckpt: dcn.train(volumes, o.k, profile=o.profile, device=o.device, checkpoint=ckpt,
                                            seed=o.seed),
    "acwe": lambda volumes, o, ckpt: acwe.train(volumes, n_labelled=o.labels, profile=o.profile, device=o.device,
                                              checkpoint=ckpt, seed=o.seed),
    "cuts": lambda volumes, o, ckpt: cuts.train(volumes, profile=o.profile, device=o.device, checkpoint=ckpt,
                                              seed=o.seed),
    "deepgmm": lambda volumes, o, ckpt: deepgmm.train(volumes, o.k, variant=o.variant, profile=o.profile,
                                                    device=o.device, checkpoint=ckpt, seed=o.seed),
    "unet": lambda volumes, o, ckpt: supervised.train(volumes, profile=o.profile, device=o.device, checkpoint=ckpt,
                                                      seed=o.seed),
}


def get(name: str) -> Segmenter:
    """The segmenter registered as ``name``; a ValueError lists the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}") from None
