"""The supervised reference: Buda et al.'s LGG FLAIR U-Net, the upper bound of every comparison.

Buda, Saha, Mazurowski, "Association of genomic subtypes of lower-grade gliomas with shape features
automatically extracted by a deep learning algorithm", Computers in Biology and Medicine 2019
(DESIGN 4.6): a U-Net with widths 32-64-128-256-512 and batch norm on the three LGG channels (one
for the phantom), trained on the Dice loss; scored per volume, optionally keeping the largest
connected component. Trained on labels with patient-wise splits (:func:`patient_split`): never
a patient in both train and test. The unsupervised methods never see these labels.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from nbutils import config
from nbutils.data.datasets import SliceDataset, Volume, at_size, square_volume
from nbutils.data.preprocessing import largest_component
from nbutils.methods import acwe
from nbutils.models import UNetEncoder
from nbutils.train import fit as train_fit
from nbutils.train import load_checkpoint

WIDTHS = (32, 64, 128, 256, 512)
PRIOR = 0.01  # initial lesion probability of every pixel


def build_model(in_channels: int = 3, widths=WIDTHS) -> torch.nn.Module:
    """The reference U-Net (batch norm, ReLU), one logit per pixel. The output bias starts at
    logit(:data:`PRIOR`) (Lin et al. 2017's prior initialisation): lesions are rare, and starting
    at p = 0.5 everywhere spends the first hundreds of Dice-loss steps on suppressing background."""
    model = UNetEncoder(in_channels, 1, tuple(widths), noise=0.0, norm="batch")
    torch.nn.init.constant_(model.head.bias, float(np.log(PRIOR / (1 - PRIOR))))
    model.config = dict(in_channels=in_channels, widths=list(widths))
    return model


def patient_split(names: list[str], test_fraction: float = 0.3, seed: int = 0) -> tuple[list[str], list[str]]:
    """Volumes (patients) split into (train, test) names, seeded; at least one of each when there
    are two or more, and never a patient on both sides."""
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        raise ValueError(f"a patient-wise split needs at least 2 patients, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    n_test = min(max(1, round(test_fraction * len(names))), len(names) - 1)
    test = sorted(names[i] for i in order[:n_test])
    return [n for n in names if n not in test], test


@dataclasses.dataclass
class UNetResult:
    model: torch.nn.Module
    history: list[dict]


def fit(dataset: SliceDataset, *, epochs: int = 30, batch_size: int = 8, lr: float = 3e-3, device="cpu",
        checkpoint: str | os.PathLike | None = None, resume: bool = True, seed: int = 0,
        progress: bool = True) -> UNetResult:
    """Train the reference U-Net on the Dice loss over ``{"image", "target"}`` slices (resumable)."""
    if dataset.target is None:
        raise ValueError("the supervised U-Net needs ground-truth masks, and some volumes have none")
    torch.manual_seed(seed)
    model = build_model(dataset.image.shape[1])

    def step(m, batch):
        return {"loss": acwe.dice_loss(torch.sigmoid(m(batch["image"]).float())[:, 0], batch["target"])}

    rows = train_fit(model, step, dataset, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                     checkpoint=checkpoint, resume=resume, method="unet", seed=seed, progress=progress,
                     extra=dict(config=model.config))
    return UNetResult(model.eval(), rows)


def load(path: str | os.PathLike, device="cpu") -> UNetResult:
    """A trained reference U-Net from its checkpoint (``weights_only``; InputError if it is another method's)."""
    state = load_checkpoint(path, "unet")
    model = build_model(**state["config"])
    model.load_state_dict(state["model"])
    return UNetResult(model.to(device).eval(), list(state["history"]))


def predict(result: UNetResult, image: np.ndarray, largest_cc: bool = False) -> np.ndarray:
    """Lesion mask (S, H, W) bool of one volume's slices: probability > 0.5, optionally its largest
    3D connected component (the paper's post-processing)."""
    lesion = acwe.probabilities(result.model, image) > 0.5
    return largest_component(lesion) if largest_cc else lesion


def train(volumes: list[Volume], *, profile: str = "ci", device="cpu", checkpoint: str | os.PathLike | None = None,
          seed: int = 0, progress: bool = True) -> UNetResult:
    """Train on labelled volumes at the profile's image size, ``unet_epochs`` epochs (resumable)."""
    settings = config.PROFILES[profile]
    dataset = SliceDataset([square_volume(v, settings["image_size"]) for v in volumes])
    return fit(dataset, epochs=settings["unet_epochs"], batch_size=settings["batch_size"], device=device,
               checkpoint=checkpoint, seed=seed, progress=progress)


def segment(volume: Volume, *, profile: str = "ci", device="cpu", checkpoint=None) -> np.ndarray:
    """Labels (S, H, W) for one volume with a trained ``checkpoint``: 2 lesion, 1 other brain, 0 outside.

    Supervised: there is nothing to fit on the input itself, so a checkpoint is required."""
    if not checkpoint:
        raise ValueError("unet is supervised: train it first (python -m nbutils train unet INPUT CKPT) "
                         "and pass --checkpoint")
    return labels(load(checkpoint, device), volume, profile)


def labels(result: UNetResult, volume: Volume, profile: str = "ci") -> np.ndarray:
    """Labels (S, H, W) of one volume from a trained network, at the profile's image size, mapped
    back: 2 lesion, 1 other brain, 0 outside."""
    return at_size(volume, config.PROFILES[profile]["image_size"],
                   lambda v: np.where(predict(result, v.image), 2, 1) * v.brain)
