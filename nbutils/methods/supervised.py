"""The supervised reference: Buda et al.'s LGG FLAIR U-Net, the upper bound of every comparison.

Buda, Saha, Mazurowski, "Association of genomic subtypes of lower-grade gliomas with shape features
automatically extracted by a deep learning algorithm", Computers in Biology and Medicine 109, 2019,
doi:10.1016/j.compbiomed.2019.05.002: a U-Net with widths 32-64-128-256-512 and batch norm on the three LGG channels (one
for the phantom), trained on the Dice loss; scored per volume, optionally keeping the largest
connected component. Trained on labels with patient-wise splits (:func:`patient_split`): never
a patient in both train and test. The unsupervised methods never see these labels.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import numpy as np
import torch

from nbutils.data.datasets import SliceDataset
from nbutils.data.preprocessing import largest_component
from nbutils.methods import acwe
from nbutils.methods.base import (DeepModel, DeepOptions, TrainableMethod, check_checkpoint, option,
                                  training_state)
from nbutils.models import UNetEncoder
from nbutils.train import fit as train_fit

WIDTHS = (32, 64, 128, 256, 512)
PRIOR = 0.01  # initial lesion probability of every pixel


def build_model(in_channels: int = 3, widths=WIDTHS) -> torch.nn.Module:
    """The reference U-Net: batch norm, ReLU, one logit per pixel.

    Parameters
    ----------
    in_channels : C (3 for LGG).
    widths : channel widths (Buda et al.: 32-64-128-256-512).

    Returns
    -------
    network (N, C, H, W) -> (N, 1, H, W). Its output bias starts at logit(:data:`PRIOR`) (Lin et al.,
    ICCV 2017, arXiv:1708.02002): lesions are rare, and starting at p = 0.5 everywhere spends the first
    hundreds of Dice-loss steps on suppressing background.
    """
    model = UNetEncoder(in_channels, 1, tuple(widths), noise=0.0, norm="batch")
    torch.nn.init.constant_(model.head.bias, float(np.log(PRIOR / (1 - PRIOR))))
    model.config = dict(in_channels=in_channels, widths=list(widths))
    return model


def patient_split(names: list[str], test_fraction: float = 0.3, seed: int = 0) -> tuple[list[str], list[str]]:
    """Patients split into train and test, never a patient on both sides.

    Parameters
    ----------
    names : volume (patient) names; repeats count once.
    test_fraction : share of the patients held out.
    seed : the split.

    Returns
    -------
    (train names, test names), at least one of each when there are two or more patients; a ValueError
    with fewer.
    """
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
        progress: bool = True, extra: dict | None = None, amp: str = "auto") -> UNetResult:
    """Train the reference U-Net on the Dice loss (resumable).

    Parameters
    ----------
    dataset : ``{"image", "target"}`` slices.
    epochs, batch_size, lr, device, seed, progress, amp : see :func:`nbutils.train.fit`.
    checkpoint, resume, extra : written every epoch (with ``extra``), resumed.

    Returns
    -------
    :class:`UNetResult`; a ValueError without masks.

    References
    ----------
    Buda, Saha, Mazurowski, Computers in Biology and Medicine 109, 2019, doi:10.1016/j.compbiomed.2019.05.002.
    """
    if not dataset.has_target:
        raise ValueError("the supervised U-Net needs ground-truth masks, and some volumes have none")
    torch.manual_seed(seed)
    model = build_model(dataset.channels)

    def step(m, batch):
        return {"loss": acwe.dice_loss(torch.sigmoid(m(batch["image"]).float())[:, 0], batch["target"])}

    rows = train_fit(model, step, dataset, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                     checkpoint=checkpoint, resume=resume, method="unet", seed=seed, progress=progress,
                     extra=dict(config=model.config, **(extra or {})), amp=amp)
    return UNetResult(model.eval(), rows)


def predict(result: UNetResult, image: np.ndarray, largest_cc: bool = False) -> np.ndarray:
    """Lesion mask of one volume's slices.

    Parameters
    ----------
    result : the trained U-Net.
    image : (S, C, H, W).
    largest_cc : keep the largest 3D connected component (the paper's post-processing).

    Returns
    -------
    (S, H, W) bool: probability > 0.5.
    """
    lesion = acwe.probabilities(result.model, image) > 0.5
    return largest_component(lesion) if largest_cc else lesion


@dataclasses.dataclass(frozen=True)
class UNetOptions(DeepOptions):
    epochs: int = option(50, "training epochs", low=1, train=False)
    lr: float = option(3e-3, "Adam learning rate", low=0.0)

    ci: ClassVar[dict] = {**DeepOptions.ci, "epochs": 10}


class UNetModel(DeepModel):
    """The trained reference U-Net: 2 lesion (probability > 0.5), 1 other brain, 0 outside."""

    def square_labels(self, volume) -> np.ndarray:
        lesion = predict(UNetResult(self.network, self.history), volume.image)
        return np.where(lesion, 2, 1) * volume.brain


class UNet(TrainableMethod):
    name, title, Options, Model = "unet", "U-Net (supervised)", UNetOptions, UNetModel
    reference = "Buda, Saha, Mazurowski, Computers in Biology and Medicine 2019, doi:10.1016/j.compbiomed.2019.05.002"
    supervised = True

    def network(self, config: dict) -> torch.nn.Module:
        return build_model(**config)

    def lesion(self, labels: np.ndarray, volume, largest_cc: bool = True) -> np.ndarray:
        """Its own lesion class (2), not the label-free rule's; the largest 3D component with ``largest_cc``."""
        return largest_component(labels == 2) if largest_cc else labels == 2

    def fit(self, volumes, *, device="cpu", checkpoint=None, restart=False, progress=True) -> UNetModel:
        o = self.options
        dataset, print_ = self.training_set(volumes)
        if not dataset.has_target:
            raise ValueError("the supervised U-Net learns from lesion masks, and some volumes have none")
        check_checkpoint(checkpoint, self, print_, restart)
        extra = training_state(self, print_)
        result = fit(dataset, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, device=device,
                     checkpoint=checkpoint, seed=o.seed, progress=progress, extra=extra, amp=o.amp)
        return UNetModel(self, dict(config=result.model.config, history=result.history, **extra), device, result.model)
