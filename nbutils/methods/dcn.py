"""Joint deep clustering (DCN) per pixel, on autoencoder features.

Yang, Fu, Sidiropoulos, Hong, "Towards K-means-friendly Spaces: Simultaneous Deep Learning and
Clustering", ICML 2017, adapted to pixels (DESIGN 4.1-4.2):

    L = MSE(x, g(f(x))) + lambda/2 * mean_i ||z_i - mu_{s_i}||^2,   s_i = nearest centre.

Alternate (I) network training on L with centres fixed and (II) the count-based centre update
mu_k <- (1 - 1/n_k) mu_k + z_i / n_k with counts that persist (starting at 100).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from nbutils import config
from nbutils.data.datasets import SliceDataset, Volume, at_size, square_volume
from nbutils.methods.torch_kmeans import kmeans, squared_distances
from nbutils.models import AutoEncoder
from nbutils.runtime import batched
from nbutils.train import fit as train_fit
from nbutils.train import load_checkpoint, save_checkpoint

INITIAL_COUNT = 100  # DCN's starting count per centre


def _pixels(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, D, H, W) features -> (M, D) of the pixels inside ``mask`` (N, H, W), or all pixels."""
    flat = z.permute(0, 2, 3, 1)
    return flat[mask.bool()] if mask is not None else flat.reshape(-1, z.shape[1])


def reconstruction_loss(model: AutoEncoder, batch: dict) -> dict:
    """MSE between the image and its reconstruction (the pretraining loss)."""
    _, x_hat = model(batch["image"])
    return {"loss": F.mse_loss(x_hat.float(), batch["image"].float())}


def dcn_loss(model: AutoEncoder, batch: dict, centres: torch.Tensor, lam: float) -> dict:
    """MSE reconstruction + lam/2 * mean squared distance of brain pixels to their nearest centre."""
    z, x_hat = model(batch["image"])
    recon = F.mse_loss(x_hat.float(), batch["image"].float())
    pix = _pixels(z.float(), batch.get("brain"))
    cluster = squared_distances(pix, centres).min(1).values.mean() if len(pix) else recon * 0
    return {"loss": recon + lam / 2 * cluster, "reconstruction": recon, "clustering": cluster}


def update_centres(centres: torch.Tensor, counts: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """DCN's centre update for a batch of features ``z`` (M, D), in place; returns assignments.

    Each z_i goes to its nearest centre (centres as at the start of the batch); then for each,
    in turn, n_k += 1 and mu_k <- (1 - 1/n_k) mu_k + z_i / n_k. With eta = 1/n_k these sequential
    steps equal the running mean mu_k <- (n_k mu_k + sum_i z_i) / (n_k + m_k), computed at once.
    """
    labels = squared_distances(z, centres).argmin(1)
    m = torch.bincount(labels, minlength=len(centres))
    sums = torch.zeros_like(centres).index_add_(0, labels, z.to(centres.dtype))
    hit = m > 0
    total = counts + m
    centres[hit] = (counts[hit, None].to(centres.dtype) * centres[hit] + sums[hit]) / total[hit, None].to(centres.dtype)
    counts += m
    return labels


def reseed_empty(centres: torch.Tensor, counts: torch.Tensor, hits: torch.Tensor, z: torch.Tensor) -> int:
    """Move centres that received no point (``hits == 0``) to the worst-fit points of ``z``.

    Worst fit = largest squared distance to the nearest centre. Their counts restart at 1.
    Returns the number of re-seeded centres.
    """
    empty = torch.nonzero(hits == 0).flatten()
    if len(empty) == 0 or len(z) == 0:
        return 0
    worst = squared_distances(z, centres).min(1).values.topk(min(len(empty), len(z))).indices
    centres[empty[: len(worst)]] = z[worst].to(centres.dtype)
    counts[empty[: len(worst)]] = 1
    return len(worst)


@torch.no_grad()
def features(model: AutoEncoder, dataset, device, batch_size: int = 8, max_pixels: int | None = None,
             seed: int = 0) -> torch.Tensor:
    """Brain-pixel features (M, D) of a dataset, on ``device``; a random subsample when
    ``max_pixels`` is given."""
    model.eval()
    out = []
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
        z, _ = model(batch["image"].to(device))
        out.append(_pixels(z.float(), batch["brain"].to(device)))
    pix = torch.cat(out)
    if max_pixels is not None and len(pix) > max_pixels:
        g = torch.Generator().manual_seed(seed)
        pix = pix[torch.randperm(len(pix), generator=g)[:max_pixels].to(pix.device)]
    return pix


@dataclasses.dataclass
class DCNResult:
    model: AutoEncoder
    centres: torch.Tensor  # (K, D)
    counts: torch.Tensor  # (K,)
    history: list[dict]  # one row per epoch: phase, losses


def pretrain(dataset, in_channels: int, *, features: int = 64, widths=(8, 16, 32), epochs: int = 10,
             batch_size: int = 8, lr: float = 1e-3, device="cpu", checkpoint: str | os.PathLike | None = None,
             resume: bool = True, seed: int = 0, progress: bool = True) -> tuple[AutoEncoder, list[dict]]:
    """Train the autoencoder on reconstruction alone; resumable from ``checkpoint``."""
    torch.manual_seed(seed)
    model = AutoEncoder(in_channels, features, widths)
    history = train_fit(model, reconstruction_loss, dataset, epochs=epochs, batch_size=batch_size, lr=lr,
                        device=device, checkpoint=checkpoint, resume=resume, method="autoencoder", seed=seed,
                        progress=progress)
    return model, history


def fit(dataset, k: int, *, model: AutoEncoder | None = None, in_channels: int = 1, lam: float = 1.0,
        pretrain_epochs: int = 10, epochs: int = 5, inner_epochs: int = 1, batch_size: int = 8, lr: float = 1e-3,
        device="cpu", checkpoint: str | os.PathLike | None = None, resume: bool = True, seed: int = 0,
        max_init_pixels: int = 65536, progress: bool = True) -> DCNResult:
    """DCN on a dataset of ``{"image", "brain"}`` slices with K clusters fixed before training.

    Pretrains an autoencoder unless ``model`` is given; initialises centres by k-means++ on a
    subsample of brain-pixel features; then ``epochs`` rounds of (I) ``inner_epochs`` of network
    training on :func:`dcn_loss` and (II) one pass of :func:`update_centres`. With ``checkpoint``,
    the state after each round is saved atomically, and ``resume`` continues from it.
    """
    device = torch.device(device)
    history: list[dict] = []
    start = 0
    state = None
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, "dcn")
        model = _model_from(state)
        history, start = list(state["history"]), int(state["epoch"])
    if model is None:
        pre = None if checkpoint is None else Path(str(checkpoint) + ".pretrain")
        model, pre_history = pretrain(dataset, in_channels, epochs=pretrain_epochs, batch_size=batch_size, lr=lr,
                                      device=device, checkpoint=pre, resume=resume, seed=seed, progress=progress)
        history += [dict(phase="pretrain", **h) for h in pre_history]
    model.to(device)
    if state is not None:
        centres, counts = state["centres"].to(device), state["counts"].to(device)
    else:
        pix = features(model, dataset, device, batch_size, max_init_pixels, seed)
        centres, _, _ = kmeans(pix, k, seed=seed)
        counts = torch.full((k,), INITIAL_COUNT, dtype=torch.long, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if state is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    for epoch in tqdm(range(start, epochs), desc="dcn", disable=not progress, initial=start, total=epochs):
        fixed = centres.clone()
        rows = train_fit(model, lambda m, b: dcn_loss(m, b, fixed, lam), dataset, epochs=inner_epochs,
                         batch_size=batch_size, optimizer=optimizer, device=device, method="dcn",
                         seed=seed + 1000 * (epoch + 1), progress=False)
        hits = torch.zeros(k, dtype=torch.long, device=device)
        model.eval()
        with torch.no_grad():
            for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
                z, _ = model(batch["image"].to(device))
                pix = _pixels(z.float(), batch["brain"].to(device))
                hits += torch.bincount(update_centres(centres, counts, pix), minlength=k)
        reseeded = reseed_empty(centres, counts, hits, pix)
        history.append(dict(phase="dcn", **rows[-1], reseeded=float(reseeded)))
        if checkpoint is not None:
            save_checkpoint(checkpoint, dict(
                method="dcn", epoch=epoch + 1, history=history, config=model.config, model=model.state_dict(),
                optimizer=optimizer.state_dict(), centres=centres.cpu(), counts=counts.cpu()))
    model.eval()
    return DCNResult(model, centres, counts, history)


def _model_from(state: dict) -> AutoEncoder:
    """The autoencoder a DCN checkpoint describes, with its weights."""
    model = AutoEncoder(**state["config"])
    model.load_state_dict(state["model"])
    return model


def load(path: str | os.PathLike, device="cpu") -> DCNResult:
    """A trained DCN from its checkpoint (``weights_only`` loading; InputError if not a DCN one)."""
    state = load_checkpoint(path, "dcn")
    model = _model_from(state)
    return DCNResult(model.to(device).eval(), state["centres"].to(device), state["counts"].to(device),
                     list(state["history"]))


@torch.no_grad()
def predict(result: DCNResult, image: np.ndarray, brain: np.ndarray | None = None, batch_size: int = 8) -> np.ndarray:
    """Nearest-centre labels (S, H, W) int64 for slices (S, C, H, W): 1..K, 0 outside ``brain``."""
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
    """Features (S, D, H, W) and reconstructions (S, C, H, W) of slices (S, C, H, W), as NumPy."""
    zs, xs = [], []
    for z, x_hat in batched(model, image, batch_size):
        zs.append(z.float().cpu().numpy())
        xs.append(x_hat.float().cpu().numpy())
    return np.concatenate(zs), np.concatenate(xs)


@torch.no_grad()
def reconstruction_mse(model: AutoEncoder, dataset, device="cpu", batch_size: int = 8) -> float:
    """Mean squared reconstruction error over a dataset (model in eval mode: no input noise)."""
    model.eval().to(device)
    total, n = 0.0, 0
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
        x = batch["image"].to(device)
        total += float(F.mse_loss(model(x)[1], x, reduction="sum"))
        n += x.numel()
    return total / n


def train(volumes: list[Volume], k: int = 4, *, profile: str = "ci", device="cpu", lam: float = 1.0,
          checkpoint: str | os.PathLike | None = None, seed: int = 0, progress: bool = True) -> DCNResult:
    """Pretrain and train DCN on volumes at the profile's image size and epochs (resumable)."""
    settings = config.PROFILES[profile]
    dataset = SliceDataset([square_volume(v, settings["image_size"]) for v in volumes])
    return fit(dataset, k, in_channels=dataset.image.shape[1], lam=lam,
               pretrain_epochs=settings["pretrain_epochs"], epochs=settings["epochs"],
               batch_size=settings["batch_size"], device=device, checkpoint=checkpoint, seed=seed, progress=progress)


def segment(volume: Volume, k: int = 4, *, profile: str = "ci", device="cpu", checkpoint=None, seed: int = 0,
            progress: bool = True) -> np.ndarray:
    """Labels (S, H, W) for one volume: with a trained ``checkpoint``, or training DCN on the
    volume itself. The network runs at the profile's image size; labels are mapped back."""
    result = load(checkpoint, device) if checkpoint else train([volume], k, profile=profile, device=device,
                                                               seed=seed, progress=progress)
    return at_size(volume, config.PROFILES[profile]["image_size"], lambda v: predict(result, v.image, v.brain))
