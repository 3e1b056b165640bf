"""CNN segmentation with the active contour without edges (ACWE, Chan-Vese) loss.

Chen & Frey, "Medical image segmentation via unsupervised convolutional neural network",
MIDL 2020, arXiv:2001.10155. A network maps the image to y in [0, 1] per pixel (sigmoid) and is trained on

    c_in = sum(y x) / (sum y + eps),   c_out = sum((1 - y) x) / (sum(1 - y) + eps)
    L = sum y (x - c_in)^2 + sum (1 - y)(x - c_out)^2 + mu * sum |grad y| + nu * var(x) * area

with sums over the pixels of a region mask (the brain), per image. The area is that of the brighter region
(sum y where c_in >= c_out, else sum (1 - y)): Chan & Vese charge the area inside the contour, and the lesion we
want inside is hyperintense on FLAIR; which of y and 1 - y the network makes bright is its own choice. The area
is charged in units of the image's intensity variance inside the mask, var(x): the region terms grow with the
square of the intensity scale, so a bare nu meant about four times less on a contrasty image (the phantom) than on
a flat one (LGG FLAIR); with var(x) the trade-off between a region's size and its contrast is scale-free. A
departure from Chan & Vese's constant nu.
Four modes: (1) unsupervised; (2) ACWE pretraining, then fine-tuning on n labelled slices; (3) ACWE + a label
loss on n labelled slices from scratch; (4) the same with every slice labelled. For K > 2 classes, the robust fuzzy
c-means (RFCM) loss of Chen et al., Medical Physics 2021, doi:10.1002/mp.14903 (:func:`rfcm_loss`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from nbutils import metrics
from nbutils.data.datasets import SliceDataset
from nbutils.methods.base import (DeepModel, DeepOptions, TrainableMethod, check_checkpoint, option,
                                  training_state)
from nbutils.models import FullResCNN, UNetEncoder
from nbutils.precision import float32
from nbutils.runtime import batched
from nbutils.train import fit as train_fit

MODES = ("unsupervised", "finetune", "joint", "joint-all")  # the paper's modes 1-4
JOINT_MODES = MODES[2:]  # ACWE and the label loss together
ARCHITECTURES = ("resnet", "unet")
EPS = 1e-8
PRETRAIN = ".pretrain"  # suffix of the ACWE checkpoint of mode 2 before its fine-tuning
# area weight per pixel, in units of the image's intensity variance; at 0 two regions split dark CSF from the rest
DEFAULT_NU = 0.5


def _weights(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, 1, H, W) float pixel weights: the mask, or ones."""
    if mask is None:
        return torch.ones_like(x[:, :1])
    return mask.reshape(x.shape[0], 1, *x.shape[2:]).to(x.dtype)


@float32
def region_means(y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None,
                 eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft region means of the ACWE loss.

    c_in = sum(y x) / (sum y + eps), c_out = sum((1 - y) x) / (sum(1 - y) + eps), over the mask's pixels.

    Parameters
    ----------
    y : (N, 1, H, W) in [0, 1], the network's soft region.
    x : (N, C, H, W) images (channels add up, as in vector-valued Chan-Vese).
    mask : (N, H, W) region (None: every pixel).
    eps : keeps an empty region finite (its mean is then 0, never NaN).

    Returns
    -------
    (c_in (N, C), c_out (N, C)).
    """
    w = _weights(x, mask)
    inside, outside = y * w, (1 - y) * w
    c_in = (inside * x).sum((2, 3)) / (inside.sum((2, 3)) + eps)
    c_out = (outside * x).sum((2, 3)) / (outside.sum((2, 3)) + eps)
    return c_in, c_out


def total_variation(y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Sum over pixels of |grad y| = sqrt(dx^2 + dy^2 + eps), forward differences.

    Parameters
    ----------
    y : (N, 1, H, W).
    eps : smooths the square root at 0.

    Returns
    -------
    (N,). The last row and column have no forward neighbour: their difference is 0 (Neumann border).
    """
    dx = F.pad(y[..., :, 1:] - y[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(y[..., 1:, :] - y[..., :-1, :], (0, 0, 0, 1))
    return torch.sqrt(dx**2 + dy**2 + eps).sum((1, 2, 3))


@float32
def acwe_terms(y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None,
               eps: float = EPS) -> dict[str, torch.Tensor]:
    """The ACWE terms per image, as sums over pixels.

    Parameters
    ----------
    y : (N, 1, H, W) in [0, 1], the network's soft region.
    x : (N, C, H, W) images (channels add up, as in vector-valued Chan-Vese).
    mask : (N, H, W) restricts the region terms and the area to the mask, and the length to the contour of
        y * mask (None: every pixel).
    eps : see :func:`region_means`.

    Returns
    -------
    dict of (N,) tensors: ``region_in`` = sum y (x - c_in)^2, ``region_out`` = sum (1 - y)(x - c_out)^2,
    ``length`` (:func:`total_variation`), ``area`` = the brighter region's area (sum y where c_in >= c_out,
    summed over channels, else sum (1 - y)), so that the area weight shrinks the bright region whichever side
    y is, and ``variance`` (:func:`intensity_variance`), the area's unit.

    References
    ----------
    Chen & Frey, MIDL 2020, arXiv:2001.10155, eq. 2-3; Chan & Vese, IEEE TIP 2001, doi:10.1109/83.902291.
    """
    w = _weights(x, mask)
    c_in, c_out = region_means(y, x, mask, eps)
    region_in = (y * w * (x - c_in[..., None, None]) ** 2).sum((1, 2, 3))
    region_out = ((1 - y) * w * (x - c_out[..., None, None]) ** 2).sum((1, 2, 3))
    brighter = c_in.sum(1) >= c_out.sum(1)  # (N,): is y the bright region?
    area = torch.where(brighter, (y * w).sum((1, 2, 3)), ((1 - y) * w).sum((1, 2, 3)))
    return dict(region_in=region_in, region_out=region_out, length=total_variation(y * w, eps), area=area,
                variance=intensity_variance(x, mask, eps))


@float32
def intensity_variance(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = EPS) -> torch.Tensor:
    """Each image's intensity variance inside the mask, summed over channels: the unit of the ACWE area term.

    Parameters
    ----------
    x : (N, C, H, W) images.
    mask : (N, H, W) region (None: every pixel).
    eps : keeps an empty mask finite.

    Returns
    -------
    (N,) sum_c mean((x_c - mean(x_c))^2) over the mask's pixels, with no gradient.
    """
    w = _weights(x, mask)
    mean, _ = region_means(w, x, mask, eps)  # every pixel of the mask inside: its mean
    return ((w * (x - mean[..., None, None]) ** 2).sum((1, 2, 3)) / (w.sum((1, 2, 3)) + eps)).detach()


@float32
def acwe_loss(y: torch.Tensor, x: torch.Tensor, mu: float = 0.0, nu: float = 0.0,
              mask: torch.Tensor | None = None, eps: float = EPS, reduction: str = "mean") -> dict[str, torch.Tensor]:
    """The ACWE loss L = region_in + region_out + mu * length + nu * variance * area, averaged over the batch.

    Parameters
    ----------
    y : (N, 1, H, W) in [0, 1], the network's soft region.
    x : (N, C, H, W) images (channels add up, as in vector-valued Chan-Vese).
    mu, nu : weights of the contour length and of the area, the latter in units of the image's intensity variance
        inside the mask (see :func:`acwe_terms`).
    mask : (N, H, W) region (None: every pixel).
    eps : see :func:`region_means`.
    reduction : ``"sum"``: the formula's sums over pixels; ``"mean"``: each term divided by H * W, so that
        ``mu`` and ``nu`` do not change meaning with the image size.

    Returns
    -------
    dict of scalars: ``loss`` and each weighted term.
    """
    terms = acwe_terms(y, x, mask, eps)
    terms["area"] = terms["area"] * terms.pop("variance")
    scale = 1.0 if reduction == "sum" else 1.0 / (y.shape[-1] * y.shape[-2])
    out = {name: value.mean() * scale for name, value in terms.items()}
    out["length"], out["area"] = mu * out["length"], nu * out["area"]
    out["loss"] = out["region_in"] + out["region_out"] + out["length"] + out["area"]
    return out


@float32
def dice_loss(p: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the whole batch.

    Parameters
    ----------
    p : probabilities of any shape.
    target : 0/1 of the same number of elements.
    smooth : added to numerator and denominator.

    Returns
    -------
    scalar 1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth).
    """
    p, t = p.reshape(-1), target.reshape(-1).to(p.dtype)
    return 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


@float32
def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against a 0/1 target, from the logits (stable for any logit,
    and allowed under autocast, where the cross-entropy of probabilities is not).

    Parameters
    ----------
    logits : any shape.
    target : 0/1 of the same number of elements.

    Returns
    -------
    scalar.
    """
    logits = logits.reshape(-1)
    return F.binary_cross_entropy_with_logits(logits, target.reshape(-1).to(logits.dtype))


def label_term(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A label loss of the network's logits: soft Dice of sigmoid(logits) (``"dice"``) or :func:`bce_loss`
    (``"bce"``).

    Parameters
    ----------
    name : one of :data:`LABEL_LOSSES`.
    logits : (N, H, W).
    target : (N, H, W) 0/1.

    Returns
    -------
    scalar.
    """
    if name not in LABEL_LOSSES:
        raise ValueError(f"unknown label loss {name!r}; choose one of {', '.join(LABEL_LOSSES)}")
    return dice_loss(torch.sigmoid(logits.float()), target) if name == "dice" else bce_loss(logits, target)


LABEL_LOSSES = ("dice", "bce")


def joint_loss(logits: torch.Tensor, x: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor, *,
               mu: float = 0.0, nu: float = 0.0, alpha: float = 1.0, label_loss: str = "dice",
               mask: torch.Tensor | None = None, acwe_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """ACWE over every image plus a label loss over the labelled ones (the paper's modes 3 and 4).

    Parameters
    ----------
    logits : (N, 1, H, W) the network's output; its sigmoid y is the soft region.
    x : (N, C, H, W) images (channels add up, as in vector-valued Chan-Vese).
    target : (N, H, W) bool lesion masks.
    labelled : (N,) bool, which images' masks may be used.
    mu, nu, mask : as :func:`acwe_loss`.
    alpha : weight of the label loss.
    label_loss : ``"dice"`` or ``"bce"``.
    acwe_weight : weight of the ACWE loss (0: the label loss alone).

    Returns
    -------
    dict of scalars: ``loss``, the ACWE terms and ``label`` (0 for a batch without labelled images).
    """
    y = torch.sigmoid(logits.float())
    out = acwe_loss(y, x, mu, nu, mask) if acwe_weight else {"loss": y.sum() * 0}
    chosen = labelled.bool()
    label = label_term(label_loss, logits[chosen, 0], target[chosen]) if chosen.any() else y.sum() * 0
    out = {**out, "label": label}
    out["loss"] = acwe_weight * out["loss"] + alpha * label
    return out


def _neighbour_sum(a: torch.Tensor) -> torch.Tensor:
    """Sum over the 8-neighbourhood (zero outside the image) of each channel of (N, K, H, W)."""
    k = a.shape[1]
    kernel = torch.ones(k, 1, 3, 3, dtype=a.dtype, device=a.device)
    kernel[:, :, 1, 1] = 0
    return F.conv2d(a, kernel, padding=1, groups=k)


@float32
def rfcm_loss(u: torch.Tensor, x: torch.Tensor, beta: float = 0.0, q: float = 2.0,
              mask: torch.Tensor | None = None, eps: float = EPS) -> dict[str, torch.Tensor]:
    """Robust fuzzy c-means loss for K-class memberships (softmax).

    v_k = sum_i u_ik^q x_i / sum_i u_ik^q (per image and channel);
    J = mean_i sum_k u_ik^q ||x_i - v_k||^2 + beta * mean_i sum_k u_ik^q sum_{j in N(i)} sum_{l != k} u_jl^q,
    N(i) the 8 neighbours of pixel i.

    Parameters
    ----------
    u : (N, K, H, W) memberships.
    x : (N, C, H, W) images.
    beta : weight of the spatial term.
    q : fuzziness exponent.
    mask : (N, H, W): means over its pixels, neighbours outside it do not count (None: every pixel).
    eps : keeps empty classes finite.

    Returns
    -------
    dict of scalars: ``loss``, ``fidelity`` and the weighted ``spatial`` term, averaged over the batch.

    References
    ----------
    Chen, Li, Luna, Chung, Rowe, Du, Solnes, Frey, "Learning fuzzy clustering for SPECT/CT segmentation
    via convolutional neural networks", Medical Physics 48, 2021, doi:10.1002/mp.14903.
    """
    w = _weights(x, mask)
    uq = u.clamp_min(0) ** q
    wuq = uq * w
    v = torch.einsum("nkhw,nchw->nkc", wuq, x) / (wuq.sum((2, 3))[..., None] + eps)  # (N, K, C)
    dist = ((x[:, None] - v[..., None, None]) ** 2).sum(2)  # (N, K, H, W)
    pixels = w.sum((1, 2, 3)) + eps
    fidelity = (wuq * dist).sum((1, 2, 3)) / pixels
    uq_in = uq * w  # neighbours outside the mask do not count
    others = _neighbour_sum(uq_in.sum(1, keepdim=True).expand_as(uq_in).contiguous()) - _neighbour_sum(uq_in)
    spatial = (wuq * others).sum((1, 2, 3)) / pixels
    return dict(loss=(fidelity + beta * spatial).mean(), fidelity=fidelity.mean(), spatial=beta * spatial.mean())


# ---------------------------------------------------------------- networks and training


def build_model(in_channels: int = 1, out_channels: int = 1, arch: str = "resnet") -> torch.nn.Module:
    """The ACWE network.

    Parameters
    ----------
    in_channels : C.
    out_channels : 1 (two regions) or K (RFCM).
    arch : ``"resnet"`` (:class:`FullResCNN`, the paper's: three residual blocks of 16) or ``"unet"``
        (:class:`UNetEncoder`, no input noise).

    Returns
    -------
    network returning logits (N, out_channels, H, W).
    """
    if arch == "resnet":
        model = FullResCNN(in_channels, out_channels)
    elif arch == "unet":
        model = UNetEncoder(in_channels, out_channels, noise=0.0)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose resnet or unet")
    model.config = dict(in_channels=in_channels, out_channels=out_channels, arch=arch)
    return model


@dataclasses.dataclass
class ACWEResult:
    model: torch.nn.Module
    history: list[dict]  # one row per epoch: phase and loss terms
    labelled: list[int]  # indices of the dataset's slices whose labels were used


class LabelledSlices(torch.utils.data.Dataset):
    """A :class:`SliceDataset` whose items carry ``labelled`` (True for the chosen indices)."""

    def __init__(self, dataset: SliceDataset, labelled: list[int]):
        self.dataset, self.chosen = dataset, set(labelled)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "labelled": torch.tensor(i in self.chosen)}


def choose_labelled(dataset: SliceDataset, n: int | None, seed: int = 0) -> list[int]:
    """Slices to be labelled, drawn at random.

    Parameters
    ----------
    dataset : slices with masks.
    n : how many; None: every slice (more than exist: a warning, and all of them).
    seed : the draw.

    Returns
    -------
    sorted list of slice indices.
    """
    if not dataset.has_target:
        raise ValueError("labelled training needs ground-truth masks, and some volumes have none")
    total = len(dataset)
    if n is None or n >= total:
        if n is not None and n > total:
            warnings.warn(f"asked for {n} labelled slices, only {total} exist; using all {total}", stacklevel=2)
        return list(range(total))
    return sorted(np.random.default_rng(seed).choice(total, n, replace=False).tolist())


def _check_slices(dataset: SliceDataset) -> None:
    """Warn about constant slices: ACWE has nothing to separate there (the loss stays finite)."""
    constant = sum(int(item["image"].max() == item["image"].min()) for item in dataset)
    if constant:
        warnings.warn(f"{constant} of {len(dataset)} slices are constant; ACWE has nothing to separate there",
                      stacklevel=3)


def area_weight(nu: float | None, mode: str) -> float:
    """The area weight a mode trains with.

    Parameters
    ----------
    nu : the weight asked for (None: the default).
    mode : one of :data:`MODES`.

    Returns
    -------
    ``nu``; by default :data:`DEFAULT_NU` where the ACWE energy alone decides the regions (unsupervised, and the
    ACWE pretraining of finetune) and 0 in the joint modes, where labels train y to be the lesion (on held-out
    phantom subjects mode 4's oracle Dice fell from 0.45-0.67 to 0.08-0.12 with the area weight, 3 seeds).
    """
    if nu is not None:
        return nu
    return 0.0 if mode in JOINT_MODES else DEFAULT_NU


def fit(dataset: SliceDataset, *, mode: str = "unsupervised", n_labelled: int | None = 10, mu: float = 0.0,
        nu: float | None = None, alpha: float = 1.0, label_loss: str = "dice", channel: int = 0, arch: str = "resnet",
        epochs: int = 30, finetune_epochs: int | None = None, batch_size: int = 8, lr: float = 1e-2,
        use_mask: bool = True, device="cpu", checkpoint: str | os.PathLike | None = None, resume: bool = True,
        seed: int = 0, progress: bool = True, extra: dict | None = None, amp: str = "auto") -> ACWEResult:
    """Train the ACWE network in one of the paper's four modes.

    Parameters
    ----------
    dataset : ``{"image", "brain"[, "target"]}`` slices.
    mode : ``unsupervised`` (1), ``finetune`` (2: ACWE for ``epochs``, then the label loss on the
        labelled slices for ``finetune_epochs``, default ``epochs``), ``joint`` (3: ACWE + label loss on
        ``n_labelled`` slices) or ``joint-all`` (4: every slice labelled).
    n_labelled : labelled slices (:func:`choose_labelled`).
    mu : length weight.
    nu : area weight, in units of the image's intensity variance (None: :func:`area_weight`'s default for the mode).
    alpha, label_loss : the label term (see :func:`joint_loss`).
    channel : the channel the ACWE terms read (the network sees them all).
    arch : see :func:`build_model`.
    epochs, finetune_epochs, batch_size, lr, device, seed, progress, amp : training (see :func:`nbutils.train.fit`).
    use_mask : restrict the ACWE terms to the brain mask.
    checkpoint, resume, extra : written atomically every epoch (with ``extra``) and resumed.

    Returns
    -------
    :class:`ACWEResult`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown ACWE mode {mode!r}; choose one of {', '.join(MODES)}")
    nu = area_weight(nu, mode)
    _check_slices(dataset)
    torch.manual_seed(seed)
    model = build_model(dataset.channels, 1, arch)
    extra = dict(config=model.config, **(extra or {}))
    labelled: list[int] = []
    if mode != "unsupervised":
        labelled = choose_labelled(dataset, None if mode == "joint-all" else n_labelled, seed)

    def outputs(m, batch):
        """The logits (N, 1, H, W), the ACWE channel (N, 1, H, W) and the region mask of a batch."""
        x = batch["image"]
        return m(x), x[:, channel : channel + 1].float(), batch["brain"] if use_mask else None

    def acwe_step(m, batch):
        logits, x, mask = outputs(m, batch)
        return acwe_loss(torch.sigmoid(logits.float()), x, mu, nu, mask)

    def joint_step(m, batch):
        logits, x, mask = outputs(m, batch)
        return joint_loss(logits, x, batch["target"], batch["labelled"], mu=mu, nu=nu, alpha=alpha,
                          label_loss=label_loss, mask=mask)

    def label_step(m, batch):
        return {"loss": label_term(label_loss, m(batch["image"])[:, 0], batch["target"])}

    common = dict(batch_size=batch_size, lr=lr, device=device, resume=resume, seed=seed, progress=progress, extra=extra,
                  amp=amp)
    history: list[dict] = []
    if mode == "unsupervised":
        rows = train_fit(model, acwe_step, dataset, epochs=epochs, checkpoint=checkpoint, method="acwe", **common)
        history = [dict(phase="acwe", **r) for r in rows]
    elif mode == "finetune":
        pre = None if checkpoint is None else Path(str(checkpoint) + PRETRAIN)
        rows = train_fit(model, acwe_step, dataset, epochs=epochs, checkpoint=pre, method="acwe-pretrain", **common)
        history = [dict(phase="acwe", **r) for r in rows]
        repeats = -(-len(dataset) // len(labelled))  # an epoch of as many slices as an ACWE epoch
        subset = torch.utils.data.Subset(dataset, (labelled * repeats)[: max(len(dataset), len(labelled))])
        rows = train_fit(model, label_step, subset, epochs=finetune_epochs or epochs, checkpoint=checkpoint,
                         method="acwe", **common)
        history += [dict(phase="finetune", **r) for r in rows]
    else:
        rows = train_fit(model, joint_step, LabelledSlices(dataset, labelled), epochs=epochs, checkpoint=checkpoint,
                         method="acwe", **common)
        history = [dict(phase=mode, **r) for r in rows]
    return ACWEResult(model.eval(), history, labelled)


def fit_rfcm(dataset: SliceDataset, k: int = 3, *, beta: float = 0.001, q: float = 2.0, arch: str = "resnet",
             epochs: int = 30, batch_size: int = 8, lr: float = 1e-2, device="cpu",
             checkpoint: str | os.PathLike | None = None, resume: bool = True, seed: int = 0,
             progress: bool = True, amp: str = "auto") -> ACWEResult:
    """Train a K-class network on the RFCM loss over every channel, inside the brain mask.

    Parameters
    ----------
    dataset : ``{"image", "brain"}`` slices.
    k : classes.
    beta, q : see :func:`rfcm_loss`.
    arch, epochs, batch_size, lr, device, checkpoint, resume, seed, progress, amp : as :func:`fit`.

    Returns
    -------
    :class:`ACWEResult`.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    _check_slices(dataset)
    torch.manual_seed(seed)
    model = build_model(dataset.channels, k, arch)

    def step(m, batch):
        x = batch["image"]
        return rfcm_loss(torch.softmax(m(x).float(), 1), x.float(), beta, q, batch["brain"])

    rows = train_fit(model, step, dataset, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                     checkpoint=checkpoint, resume=resume, method="rfcm", seed=seed, progress=progress,
                     extra=dict(config=model.config), amp=amp)
    return ACWEResult(model.eval(), [dict(phase="rfcm", **r) for r in rows], [])


@torch.no_grad()
def rfcm_labels(model: torch.nn.Module, image: np.ndarray, brain: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Hard labels from a K-class network.

    Parameters
    ----------
    model : the network.
    image : (S, C, H, W).
    brain : (S, H, W) bool.
    batch_size : slices per forward pass.

    Returns
    -------
    (S, H, W) int64: argmax, renumbered 1..K by increasing mean of channel 0 inside ``brain``
    (label-free naming, as the classical methods), 0 outside.
    """
    assign = torch.cat([out.argmax(1).cpu() for out in batched(model, image, batch_size)]).numpy()
    return metrics.labels_by_brightness(assign[brain], np.moveaxis(image, 1, -1)[brain], brain)


@torch.no_grad()
def probabilities(model: torch.nn.Module, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """y = sigmoid(network) of slices.

    Parameters
    ----------
    model : the network.
    image : (S, C, H, W).
    batch_size : slices per forward pass.

    Returns
    -------
    (S, H, W) float32 in [0, 1].
    """
    return torch.cat([torch.sigmoid(out.float())[:, 0].cpu() for out in batched(model, image, batch_size)]).numpy()


def regions(y: np.ndarray, brain: np.ndarray | None = None) -> np.ndarray:
    """Two regions from y.

    Parameters
    ----------
    y : (S, H, W) in [0, 1].
    brain : (S, H, W) bool (None: every pixel).

    Returns
    -------
    (S, H, W) int64: 2 where y > 0.5, 1 elsewhere, 0 outside ``brain``; which region is the lesion is
    decided afterwards (label-free or by the oracle).
    """
    labels = np.where(y > 0.5, 2, 1).astype(np.int64)
    if brain is not None:
        labels[~brain] = 0
    return labels


def predict(result: ACWEResult, image: np.ndarray, brain: np.ndarray | None = None, batch_size: int = 8) -> np.ndarray:
    """Two-region labels of slices from a trained network (see :func:`regions`).

    Parameters
    ----------
    result : the trained network.
    image : (S, C, H, W).
    brain : (S, H, W) bool.
    batch_size : slices per forward pass.

    Returns
    -------
    (S, H, W) int64.
    """
    return regions(probabilities(result.model, image, batch_size), brain)


@dataclasses.dataclass(frozen=True)
class ACWEOptions(DeepOptions):
    mode: str = option("unsupervised", "unsupervised (the paper's mode 1), finetune (2: then the label loss on "
                       "--labels slices), joint (3: ACWE + label loss), joint-all (4: every slice labelled)",
                       choices=MODES)
    labels: int = option(10, "labelled slices drawn from the masks (modes finetune and joint)", low=1)
    mu: float = option(0.0, "weight of the contour length", low=0.0)
    nu: float | None = option(None, f"weight of the bright region's area per pixel, in units of the image's "
                              f"intensity variance (default {DEFAULT_NU} in modes unsupervised and finetune, 0 in the "
                              "joint modes, whose labels define the region)", low=0.0)
    epochs: int = option(100, "training epochs (and again for fine-tuning)", low=1, train=False)
    lr: float = option(1e-2, "Adam learning rate", low=0.0)
    arch: str = option("resnet", "network: the paper's full-resolution residual CNN, or a U-Net", choices=ARCHITECTURES)

    ci: ClassVar[dict] = {**DeepOptions.ci, "epochs": 30}


class ACWEModel(DeepModel):
    """A trained ACWE network: two regions, y > 0.5 and the rest."""

    def square_labels(self, volume) -> np.ndarray:
        return regions(probabilities(self.network, volume.image, self.options.batch_size), volume.brain)


class ACWE(TrainableMethod):
    name, title, Options, Model = "acwe", "ACWE", ACWEOptions, ACWEModel
    reference = "Chen & Frey, MIDL 2020, arXiv:2001.10155; Chan & Vese, IEEE TIP 2001, doi:10.1109/83.902291"

    @property
    def supervised(self) -> bool:
        """Modes 2-4 learn from lesion masks."""
        return self.options.mode != "unsupervised"

    def network(self, config: dict) -> torch.nn.Module:
        return build_model(**config)

    def fit(self, volumes, *, device="cpu", checkpoint=None, restart=False, progress=True) -> ACWEModel:
        o = self.options
        dataset, print_ = self.training_set(volumes)
        if self.supervised and not dataset.has_target:
            raise ValueError(f"acwe mode {o.mode} learns from lesion masks, and some volumes have none")
        check_checkpoint(checkpoint, self, print_, restart, sidecars=(PRETRAIN,))
        extra = training_state(self, print_)
        result = fit(dataset, mode=o.mode, n_labelled=o.labels, mu=o.mu, nu=o.nu, channel=dataset.flair_channel,
                     arch=o.arch, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, device=device,
                     checkpoint=checkpoint, seed=o.seed, progress=progress, extra=extra, amp=o.amp)
        state = dict(config=result.model.config, history=result.history, labelled=result.labelled, **extra)
        return ACWEModel(self, state, device, result.model)
