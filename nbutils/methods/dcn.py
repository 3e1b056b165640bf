"""Joint deep clustering (DCN) per pixel, on autoencoder features.

Yang, Fu, Sidiropoulos, Hong, "Towards K-means-friendly Spaces: Simultaneous Deep Learning and
Clustering", ICML 2017, arXiv:1610.04794, adapted to pixels: a U-Net autoencoder f, g (pretrained
on reconstruction alone) gives features z_i = f(x)_i per pixel, trained jointly with K centres on

    L = MSE(x, g(f(x))) + lambda/2 * mean_i ||z_i - mu_{s_i}||^2,   s_i = nearest centre  (their eq. 5)

alternating (I) network training on L with centres fixed and (II) a pass over the data with the
network fixed, after which each centre becomes the mean of the features assigned to it (the exact
minimiser of L's clustering term for those assignments), or, as the paper's minibatch version does,
moves by the count rule mu_k <- (1 - 1/n_k) mu_k + z_i / n_k with counts that persist (starting at 100;
their eq. 8). With hundreds of thousands of pixels per pass the persistent counts freeze the centres
at the running mean of every past pass while the features move on. The centres start at the mean
features of the k-means classes of the pixels' intensities; the paper starts from k-means on the
pretrained features, from which the joint rounds lost the lesion more often on real FLAIR. The rounds
train at their own, smaller learning rate (fine-tuning the pretrained network; the paper names one rate):
at pretraining's rate they carried the features away from the start faster than the centres followed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from nbutils.data.datasets import SliceDataset
from nbutils.methods.base import (MAX_CLUSTERS, DeepModel, DeepOptions, TrainableMethod, check_checkpoint, option,
                                  training_state)
from nbutils.methods.torch_kmeans import intensity_start, kmeans, squared_distances
from nbutils.models import AutoEncoder
from nbutils.runtime import all_sum, batched, world
from nbutils.train import fit as train_fit
from nbutils.train import loader
from nbutils.train import load_checkpoint, save_checkpoint

INITIAL_COUNT = 100  # DCN's starting count per centre
INITS = ("intensity", "features")  # the start: the intensity classes' mean features, or k-means++ on the features
DEFAULT_INIT = "intensity"  # a departure from the paper, which starts from k-means on the pretrained features
CENTRE_RULES = ("mean", "counts")  # (II): the mean of this pass's points, or DCN's persistent count rule
DEFAULT_CENTRE_RULE = "mean"  # a departure from the paper's count rule, made for minibatches of samples
DEFAULT_LAM = 1e-3  # clustering weight; at 1 nearly every brain pixel of real FLAIR goes to one centre
DEFAULT_JOINT_LR = 1e-4  # the rounds fine-tune the pretrained network; at pretraining's 1e-3 they lost the lesion
MAX_INIT_PIXELS = 65536  # features subsampled for the k-means++ start and for re-seeding empty centres
PRETRAIN = ".pretrain"  # suffix of the autoencoder pretraining checkpoint beside DCN's own


def _pixels(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, D, H, W) features -> (M, D) of the pixels inside ``mask`` (N, H, W), or all pixels."""
    flat = z.permute(0, 2, 3, 1)
    return flat[mask.bool()] if mask is not None else flat.reshape(-1, z.shape[1])


def reconstruction_loss(model: AutoEncoder, batch: dict) -> dict:
    """The pretraining loss: MSE between the image and its reconstruction.

    Parameters
    ----------
    model : :class:`AutoEncoder`.
    batch : ``{"image": (N, C, H, W)}``.

    Returns
    -------
    ``{"loss": scalar}``.
    """
    _, x_hat = model(batch["image"])
    return {"loss": F.mse_loss(x_hat.float(), batch["image"].float())}


def dcn_loss(model: AutoEncoder, batch: dict, centres: torch.Tensor, lam: float) -> dict:
    """DCN's joint loss (Yang et al. 2017, eq. 5, per pixel).

    L = MSE(x, g(f(x))) + lam / 2 * mean over brain pixels of the squared distance to the nearest centre.

    Parameters
    ----------
    model : :class:`AutoEncoder` (f, g).
    batch : ``{"image": (N, C, H, W), "brain": (N, H, W)}``.
    centres : (K, D), fixed during network training.
    lam : weight of the clustering term.

    Returns
    -------
    ``{"loss", "reconstruction", "clustering"}`` scalars.
    """
    z, x_hat = model(batch["image"])
    recon = F.mse_loss(x_hat.float(), batch["image"].float())
    pix = _pixels(z.float(), batch.get("brain"))
    cluster = squared_distances(pix, centres).min(1).values.mean() if len(pix) else recon * 0
    return {"loss": recon + lam / 2 * cluster, "reconstruction": recon, "clustering": cluster}


def assign(centres: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest centre of each feature.

    Parameters
    ----------
    centres : (K, D).
    z : (M, D) features.

    Returns
    -------
    (labels (M,), points per centre m (K,), their summed features (K, D)).
    """
    labels = squared_distances(z, centres).argmin(1)
    m = torch.bincount(labels, minlength=len(centres))
    sums = torch.zeros_like(centres).index_add_(0, labels, z.to(centres.dtype))
    return labels, m, sums


def move_centres(centres: torch.Tensor, counts: torch.Tensor, m: torch.Tensor, sums: torch.Tensor) -> None:
    """DCN's count rule for points already assigned, in place.

    Taking the points one at a time, n_k += 1 and mu_k <- (1 - 1/n_k) mu_k + z_i / n_k; these steps equal
    the running mean mu_k <- (n_k mu_k + sum_i z_i) / (n_k + m_k) (Yang et al. 2017, eq. 8).

    Parameters
    ----------
    centres : (K, D), updated.
    counts : (K,) int, the persistent counts n_k, updated.
    m : (K,) new points per centre.
    sums : (K, D) their summed features.
    """
    hit = m > 0
    total = (counts + m)[hit, None].to(centres.dtype)
    centres[hit] = (counts[hit, None].to(centres.dtype) * centres[hit] + sums[hit]) / total
    counts += m


def update_centres(centres: torch.Tensor, counts: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """DCN's centre update for one batch of features, in place.

    Parameters
    ----------
    centres : (K, D), updated.
    counts : (K,) int, updated.
    z : (M, D) features; each goes to its nearest centre (centres as at the start of the batch), then
        :func:`move_centres`.

    Returns
    -------
    (M,) the assignments.
    """
    labels, m, sums = assign(centres, z)
    move_centres(centres, counts, m, sums)
    return labels


def reseed_empty(centres: torch.Tensor, counts: torch.Tensor, hits: torch.Tensor, z: torch.Tensor) -> int:
    """Move the centres that received no point to the worst-fit points, in place.

    Parameters
    ----------
    centres : (K, D), updated.
    counts : (K,) int; the moved centres' counts restart at 1.
    hits : (K,) points each centre received.
    z : (M, D) candidate features; worst fit = largest squared distance to the nearest centre.

    Returns
    -------
    how many centres were moved.
    """
    empty = torch.nonzero(hits == 0).flatten()
    if len(empty) == 0 or len(z) == 0:
        return 0
    worst = squared_distances(z, centres).min(1).values.topk(min(len(empty), len(z))).indices
    centres[empty[: len(worst)]] = z[worst].to(centres.dtype)
    counts[empty[: len(worst)]] = 1
    return len(worst)


@torch.no_grad()
def brain_pixels(model: AutoEncoder, dataset, device, batch_size: int = 8, max_pixels: int | None = None,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and intensities of the brain pixels of a dataset, or of a random subsample of them.

    The subsample is drawn over every brain pixel of the dataset (counted first from the masks, on the CPU), and
    each batch gives the sampled pixels it holds: the device holds the sample and one batch, never the whole
    dataset's features (about 12 GB for the 110 LGG patients at 256 pixels and D = 64).

    Parameters
    ----------
    model : :class:`AutoEncoder`.
    dataset : ``{"image", "brain"}`` slices.
    device : where the network runs.
    batch_size : slices per forward pass.
    max_pixels : keep a random subsample of this many (None: all).
    seed : the subsample.

    Returns
    -------
    (features (M, D), intensities (M, C)) of the same pixels, on ``device``, in the subsample's random order.
    """
    model.eval()
    total = sum(int(dataset[i]["brain"].sum()) for i in range(len(dataset)))
    keep = where = None
    if max_pixels is not None and total > max_pixels:
        chosen = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:max_pixels]
        keep, where = chosen.sort()  # the sampled pixels in dataset order, and their places in the sample
    n = total if keep is None else len(keep)
    z_out = x_out = None
    first = 0  # the dataset-wide index of the batch's first brain pixel
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
        image, brain = batch["image"].to(device), batch["brain"].to(device)
        z, _ = model(image)
        z, x = _pixels(z.float(), brain), _pixels(image.float(), brain)
        if z_out is None:
            z_out, x_out = z.new_empty(n, z.shape[1]), x.new_empty(n, x.shape[1])
        if keep is None:
            z_out[first : first + len(z)], x_out[first : first + len(z)] = z, x
        else:
            lo, hi = torch.searchsorted(keep, torch.tensor([first, first + len(z)])).tolist()
            local, dest = (keep[lo:hi] - first).to(device), where[lo:hi].to(device)
            z_out[dest], x_out[dest] = z[local], x[local]
        first += len(z)
    return z_out, x_out


def features(model: AutoEncoder, dataset, device, batch_size: int = 8, max_pixels: int | None = None,
             seed: int = 0) -> torch.Tensor:
    """(M, D) brain-pixel features of a dataset (see :func:`brain_pixels`)."""
    return brain_pixels(model, dataset, device, batch_size, max_pixels, seed)[0]


@dataclasses.dataclass
class DCNResult:
    model: AutoEncoder
    centres: torch.Tensor  # (K, D)
    counts: torch.Tensor  # (K,)
    history: list[dict]  # one row per epoch: phase, losses


def pretrain(dataset, in_channels: int, *, features: int = 64, widths=(8, 16, 32), epochs: int = 10,
             batch_size: int = 8, lr: float = 1e-3, device="cpu", checkpoint: str | os.PathLike | None = None,
             resume: bool = True, seed: int = 0, progress: bool = True, extra: dict | None = None,
             standardize: bool = False, amp: str = "auto") -> tuple[AutoEncoder, list[dict]]:
    """Train the autoencoder on reconstruction alone (a denoising autoencoder).

    Parameters
    ----------
    dataset : ``{"image"}`` slices.
    in_channels : C.
    features : D, features per pixel.
    widths : the U-Net's channel widths.
    epochs, batch_size, lr, device, seed, progress, amp : see :func:`nbutils.train.fit`.
    checkpoint, resume : written every epoch (with ``extra``), resumed when it exists.

    Returns
    -------
    (model, history).
    """
    torch.manual_seed(seed)
    model = AutoEncoder(in_channels, features, widths, standardize=standardize)
    history = train_fit(model, reconstruction_loss, dataset, epochs=epochs, batch_size=batch_size, lr=lr,
                        device=device, checkpoint=checkpoint, resume=resume, method="autoencoder", seed=seed,
                        progress=progress, extra=dict(config=model.config, **(extra or {})), amp=amp)
    return model, history


def fit(dataset, k: int, *, model: AutoEncoder | None = None, in_channels: int = 1, lam: float = DEFAULT_LAM,
        features_per_pixel: int = 64, pretrain_epochs: int = 10, epochs: int = 5, inner_epochs: int = 1,
        batch_size: int = 8, lr: float = 1e-3, device="cpu", checkpoint: str | os.PathLike | None = None,
        resume: bool = True, seed: int = 0, max_init_pixels: int = MAX_INIT_PIXELS, progress: bool = True,
        extra: dict | None = None, initial_centres: torch.Tensor | None = None,
        standardize: bool = False, centre_rule: str = DEFAULT_CENTRE_RULE, init: str = DEFAULT_INIT,
        joint_lr: float = DEFAULT_JOINT_LR, amp: str = "auto") -> DCNResult:
    """DCN on a dataset of ``{"image", "brain"}`` slices with K clusters fixed before training.

    Pretrains an autoencoder unless ``model`` is given; initialises the centres from a subsample of
    brain pixels (``init``; or ``initial_centres``); then ``epochs`` rounds of (I)
    ``inner_epochs`` of network training on :func:`dcn_loss` and (II) one pass over the data with the
    centres fixed, whose points then move them (``centre_rule``; under torchrun the counts and sums of
    every process are added first, so the centres are those of one process on all the data), after which
    a centre no pixel chose is moved to the worst fit of ``max_init_pixels`` pixels of the whole dataset.

    Parameters
    ----------
    dataset : slices.
    k : clusters.
    model : a pretrained :class:`AutoEncoder` (None: pretrain one with ``features_per_pixel``,
        ``pretrain_epochs``).
    in_channels : C, for pretraining.
    lam : weight of the clustering term.
    epochs, inner_epochs : rounds, and network epochs per round.
    batch_size, lr, device, seed, progress, amp : as :func:`nbutils.train.fit` (``lr``: pretraining's).
    joint_lr : the Adam learning rate of the rounds, which fine-tune the pretrained network.
    checkpoint, resume, extra : the state after each round is saved atomically (with ``extra``) and
        resumed; pretraining has its own checkpoint ``checkpoint + ".pretrain"``.
    max_init_pixels : the features subsampled for k-means++ and for re-seeding.
    initial_centres : (K, D) to start from instead of ``init``.
    init : ``"intensity"``: the mean features of the k-means classes of the pixels' intensities
        (:func:`intensity_start`; a departure from the paper, which starts from k-means on the pretrained
        features); ``"features"``: k-means (k-means++ starts) on the features, as the paper.
    centre_rule : ``"mean"``: each centre becomes the mean of the features assigned to it in the pass
        (its count restarts at that pass's points); ``"counts"``: :func:`move_centres` with the counts
        of every earlier pass (Yang et al.'s eq. 8, made for minibatches).

    Returns
    -------
    :class:`DCNResult`.

    References
    ----------
    Yang, Fu, Sidiropoulos, Hong, "Towards K-means-friendly Spaces", ICML 2017, arXiv:1610.04794.
    """
    if centre_rule not in CENTRE_RULES:
        raise ValueError(f"unknown centre rule {centre_rule!r}; choose one of {', '.join(CENTRE_RULES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    device = torch.device(device)
    history: list[dict] = []
    start = 0
    state = None
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, "dcn")
        model = AutoEncoder.from_config(state["config"])
        model.load_state_dict(state["model"])
        history, start = list(state["history"]), int(state["epoch"])
    if model is None:
        pre = None if checkpoint is None else Path(str(checkpoint) + PRETRAIN)
        model, pre_history = pretrain(dataset, in_channels, features=features_per_pixel, epochs=pretrain_epochs,
                                      batch_size=batch_size, lr=lr, device=device, checkpoint=pre, resume=resume,
                                      seed=seed, progress=progress, extra=extra, standardize=standardize, amp=amp)
        history += [dict(phase="pretrain", **h) for h in pre_history]
    model.to(device)
    if state is not None:
        centres, counts = state["centres"].to(device), state["counts"].to(device)
    elif initial_centres is not None:
        centres = initial_centres.to(device, torch.float32).clone()
        counts = torch.full((k,), INITIAL_COUNT, dtype=torch.long, device=device)
    else:
        z, x = brain_pixels(model, dataset, device, batch_size, max_init_pixels, seed)
        centres = intensity_start(z, x, k, seed) if init == "intensity" else kmeans(z, k, seed=seed)[0]
        counts = torch.full((k,), INITIAL_COUNT, dtype=torch.long, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=joint_lr)
    if state is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    for epoch in tqdm(range(start, epochs), desc="dcn", disable=not progress or world()[0] > 0, initial=start,
                      total=epochs):
        fixed = centres.clone()
        rows = train_fit(model, lambda m, b: dcn_loss(m, b, fixed, lam), dataset, epochs=inner_epochs,
                         batch_size=batch_size, optimizer=optimizer, device=device, method="dcn",
                         seed=seed + 1000 * (epoch + 1), progress=False, amp=amp)
        hits = torch.zeros(k, dtype=torch.long, device=device)
        sums = torch.zeros_like(centres)
        model.eval()
        with torch.no_grad():  # (II) one pass, centres fixed; under torchrun each process its shard
            for batch in loader(dataset, batch_size, seed, epoch, device, shuffle=False):
                z, _ = model(batch["image"].to(device))
                _, m, s = assign(centres, _pixels(z.float(), batch["brain"].to(device)))
                hits += m
                sums += s
            hits, sums = all_sum(hits), all_sum(sums)
            if centre_rule == "mean":
                counts.zero_()
            move_centres(centres, counts, hits, sums)
        reseeded = 0
        if (hits == 0).any():
            pool = features(model, dataset, device, batch_size, max_init_pixels, seed + epoch + 1)
            reseeded = reseed_empty(centres, counts, hits, pool)
        history.append(dict(phase="dcn", **rows[-1], reseeded=float(reseeded)))
        if checkpoint is not None:
            save_checkpoint(checkpoint, dict(
                method="dcn", epoch=epoch + 1, history=history, config=model.config, model=model.state_dict(),
                optimizer=optimizer.state_dict(), centres=centres.cpu(), counts=counts.cpu(), **(extra or {})))
    model.eval()
    return DCNResult(model, centres, counts, history)


@torch.no_grad()
def predict(result: DCNResult, image: np.ndarray, brain: np.ndarray | None = None, batch_size: int = 8) -> np.ndarray:
    """Nearest-centre labels of slices.

    Parameters
    ----------
    result : a trained DCN.
    image : (S, C, H, W).
    brain : (S, H, W) bool; labels outside it are 0 (None: every pixel labelled).
    batch_size : slices per forward pass.

    Returns
    -------
    (S, H, W) int64: 1..K.
    """
    model, centres = result.model, result.centres
    out = []
    for z, _ in batched(model, image, batch_size):
        flat = z.float().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        out.append((squared_distances(flat, centres).argmin(1) + 1).reshape(z.shape[0], *z.shape[2:]).cpu())
    labels = torch.cat(out).numpy().astype(np.int64)
    if brain is not None:
        labels[~brain] = 0
    return labels


@torch.no_grad()
def encode(model: AutoEncoder, image: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Features and reconstructions of slices.

    Parameters
    ----------
    model : :class:`AutoEncoder`.
    image : (S, C, H, W).
    batch_size : slices per forward pass.

    Returns
    -------
    (features (S, D, H, W), reconstructions (S, C, H, W)) as NumPy float32.
    """
    zs, xs = [], []
    for z, x_hat in batched(model, image, batch_size):
        zs.append(z.float().cpu().numpy())
        xs.append(x_hat.float().cpu().numpy())
    return np.concatenate(zs), np.concatenate(xs)


@torch.no_grad()
def reconstruction_mse(model: AutoEncoder, dataset, device="cpu", batch_size: int = 8) -> float:
    """Mean squared reconstruction error over a dataset (eval mode: no input noise).

    Parameters
    ----------
    model : :class:`AutoEncoder`.
    dataset : ``{"image"}`` slices.
    device : where it runs.
    batch_size : slices per forward pass.

    Returns
    -------
    float, per pixel and channel.
    """
    model.eval().to(device)
    total, n = 0.0, 0
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
        x = batch["image"].to(device)
        total += float(F.mse_loss(model(x)[1], x, reduction="sum"))
        n += x.numel()
    return total / n


def pretrained_autoencoder(dataset: SliceDataset, options: "DCNOptions", cache_dir: str | os.PathLike, device="cpu",
                           progress: bool = True) -> tuple[AutoEncoder, list[dict]]:
    """The autoencoder of some DCN options pretrained on a dataset, its checkpoint kept in a cache.

    Parameters
    ----------
    dataset : :class:`SliceDataset`.
    options : :class:`DCNOptions` (features, pretrain_epochs, batch_size, lr, seed).
    cache_dir : where the checkpoint lives, named by a hash of the options and the data, so that notebooks
        share one pretraining and a re-run reuses or resumes it.
    device, progress : as :func:`pretrain`.

    Returns
    -------
    (model, history).
    """
    from nbutils.data.preprocessing import cache_key

    o = options
    network = AutoEncoder(dataset.channels, o.features, standardize=o.standardize).config  # the architecture too
    key = cache_key(dict(network=network, epochs=o.pretrain_epochs, batch=o.batch_size, lr=o.lr, seed=o.seed,
                         data=hashlib.sha256(dataset.image.numpy().tobytes()).hexdigest()[:16]))
    checkpoint = Path(cache_dir) / f"autoencoder_{key}.pt"
    return pretrain(dataset, dataset.channels, features=o.features, epochs=o.pretrain_epochs,
                    batch_size=o.batch_size, lr=o.lr, device=device, checkpoint=checkpoint, seed=o.seed,
                    progress=progress, standardize=o.standardize, amp=o.amp)


@dataclasses.dataclass(frozen=True)
class DCNOptions(DeepOptions):
    k: int = option(4, "clusters, fixed before training", low=2, high=MAX_CLUSTERS)
    lam: float = option(DEFAULT_LAM, "weight of the clustering term (lambda; the larger, the more brain pixels "
                        "share one centre)", low=0.0)
    features: int = option(64, "features per pixel (D)", low=1)
    pretrain_epochs: int = option(100, "autoencoder pretraining epochs (reconstruction alone)", low=0,
                                  train=False)
    epochs: int = option(20, "rounds of (I) network training and (II) centre update", low=1, train=False)
    lr: float = option(1e-3, "Adam learning rate of the pretraining", low=0.0)
    joint_lr: float = option(DEFAULT_JOINT_LR, "Adam learning rate of the joint rounds, which fine-tune the pretrained "
                             "network (a departure: the paper names one rate)", low=0.0,
                             before=lambda stored: stored.get("lr"))
    standardize: bool = option(False, "batch norm (no affine) on the features, against their collapse "
                               "(Kim & Kanezaki 2020)", before=lambda stored: False)
    init: str = option(DEFAULT_INIT, "the centres' start: the mean features of the intensities' k-means classes "
                       "(a departure from the paper), or k-means on the pretrained features (the paper's)",
                       choices=INITS, before=lambda stored: "features")
    centres: str = option(DEFAULT_CENTRE_RULE, "centre update after each pass: the mean of its points in that pass, "
                          "or DCN's count rule with counts that persist over the passes (the paper's)",
                          choices=CENTRE_RULES, before=lambda stored: "counts")

    ci: ClassVar[dict] = {**DeepOptions.ci, "pretrain_epochs": 15, "epochs": 3}


class DCNModel(DeepModel):
    """A trained DCN: nearest-centre labels of the autoencoder's features."""

    def result(self) -> DCNResult:
        s = self.state
        return DCNResult(self.network, s["centres"].to(self.device), s["counts"].to(self.device), self.history)

    def square_labels(self, volume) -> np.ndarray:
        return predict(self.result(), volume.image, volume.brain, self.options.batch_size)


class DCN(TrainableMethod):
    name, title, Options, Model = "dcn", "DCN", DCNOptions, DCNModel
    reference = "Yang, Fu, Sidiropoulos, Hong, ICML 2017, arXiv:1610.04794"

    def network(self, config: dict) -> AutoEncoder:
        return AutoEncoder.from_config(config)

    def fit(self, volumes, *, device="cpu", checkpoint=None, restart=False, progress=True) -> DCNModel:
        o = self.options
        dataset, print_ = self.training_set(volumes)
        check_checkpoint(checkpoint, self, print_, restart, sidecars=(PRETRAIN,))
        extra = training_state(self, print_)
        result = fit(dataset, o.k, in_channels=dataset.channels, lam=o.lam, features_per_pixel=o.features,
                     pretrain_epochs=o.pretrain_epochs, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr,
                     joint_lr=o.joint_lr, device=device, checkpoint=checkpoint, seed=o.seed, progress=progress,
                     extra=extra, standardize=o.standardize, centre_rule=o.centres, init=o.init, amp=o.amp)
        state = dict(config=result.model.config, centres=result.centres.cpu(), counts=result.counts.cpu(),
                     history=result.history, **extra)
        return DCNModel(self, state, device, result.model)
