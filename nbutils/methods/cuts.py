"""CUTS: contrastive pixel-patch embeddings (stage 1) cut into segmentations (stage 2).

Liu, Amodio, Shen et al., "CUTS: A Deep Learning and Topological Framework for Multigranular
Unsupervised Medical Image Segmentation", MICCAI 2024, arXiv:2209.11359.

Stage 1: a full-resolution encoder gives an embedding z_i per pixel. Per image, S anchor pixels;
each anchor's positive is a nearby pixel whose P x P patch is similar (SSIM > 0.5, a few tries,
else an adjacent pixel); the other anchors' positives are its negatives. Loss =
lambda * NT-Xent(tau) + (1 - lambda) * MSE(patch, MLP(z_anchor)).

Stage 2 (:func:`cluster`): the embeddings of the brain pixels, scaled and reduced by PCA, with their
FLAIR appended by default (:func:`points`; a departure from the paper), are cut by (a) k-means,
(b) spectral k-means (k-means on the PHATE diffusion potential) or (c) diffusion condensation
(:mod:`nbutils.methods.condensation`) at a label-free level.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn
from torch.nn import functional as F

from nbutils import metrics
from nbutils.data.datasets import Volume
from nbutils.methods import condensation
from nbutils.methods.base import (MAX_CLUSTERS, DeepModel, DeepOptions, TrainableMethod, check_checkpoint, option,
                                  training_state)
from nbutils.methods.torch_kmeans import intensity_start, kmeans
from nbutils.models import PixelEncoder
from nbutils.precision import float32
from nbutils.runtime import batched
from nbutils.train import fit as train_fit

STAGE2 = ("kmeans", "spectral", "condensation")
SCALINGS = ("standard", "l2")
LEVEL_RULES = ("persistence", "structures")
STARTS = ("intensity", "kmeans++")  # stage 2 k-means: from the FLAIR's k-means classes, or k-means++
DEFAULT_START = "intensity"  # a departure: the paper's stage 2 is plain k-means
DEFAULT_INTENSITY = 1.0  # stage 2: FLAIR weighs as much as the embedding (a departure; the paper's is 0)
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # SSIM constants for a data range of 1


class PixelCUTS(nn.Module):
    """The pixel encoder and the MLP that reconstructs an anchor's P x P patch from its embedding.

    ``forward`` gives embeddings (N, D, H, W); ``reconstruct`` maps embeddings (..., D) to
    flattened patches (..., C * P * P).
    """

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64, 128), kernel: int = 5, patch: int = 5,
                 hidden: int = 256):
        super().__init__()
        self.config = dict(in_channels=in_channels, widths=list(widths), kernel=kernel, patch=patch, hidden=hidden)
        self.encoder = PixelEncoder(in_channels, widths, kernel)
        self.head = nn.Sequential(nn.Linear(widths[-1], hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, in_channels * patch * patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)


def patches(image: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """Square patches of an image centred on some pixels.

    Parameters
    ----------
    image : (C, H, W); extended by reflection at the border.
    centres : (S, 2) pixels as (row, column).
    size : the patch side (odd), pixels.

    Returns
    -------
    (S, C, size, size).
    """
    r = size // 2
    padded = F.pad(image[None], (r, r, r, r), mode="reflect")[0]
    offsets = torch.arange(size, device=image.device)
    rows = (centres[:, 0, None] + offsets)[:, :, None]  # (S, size, 1) in padded coordinates
    cols = (centres[:, 1, None] + offsets)[:, None, :]  # (S, 1, size)
    return padded[:, rows, cols].permute(1, 0, 2, 3)


@float32
def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity of patch pairs.

    One window covering the patch, population statistics, averaged over channels; equal to
    ``skimage.metrics.structural_similarity`` with ``win_size=P`` on a P x P patch.

    Parameters
    ----------
    a, b : (S, C, P, P) with values in [0, 1].

    Returns
    -------
    (S,) in [-1, 1].

    References
    ----------
    Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 13, 2004, doi:10.1109/TIP.2003.819861.
    """
    a, b = a.flatten(2).float(), b.flatten(2).float()
    ma, mb = a.mean(2), b.mean(2)
    va, vb = a.var(2, unbiased=False), b.var(2, unbiased=False)
    cov = ((a - ma[..., None]) * (b - mb[..., None])).mean(2)
    value = (2 * ma * mb + SSIM_C1) * (2 * cov + SSIM_C2) / ((ma**2 + mb**2 + SSIM_C1) * (va + vb + SSIM_C2))
    return value.mean(1)


@dataclasses.dataclass
class Pairs:
    """Anchor and positive pixels of one image: (S, 2) each, as (row, column); ``similar`` (S,)
    says whether the positive passed the SSIM test (else it is an adjacent pixel);
    ``anchor_patches`` (S, C, P, P) are the anchors' patches the test compared."""

    anchors: torch.Tensor
    positives: torch.Tensor
    similar: torch.Tensor
    anchor_patches: torch.Tensor


def sample_pairs(image: torch.Tensor, n_anchors: int, *, region: torch.Tensor | None = None, patch: int = 5,
                 tries: int = 5, min_ssim: float = 0.5, generator: torch.Generator | None = None) -> Pairs:
    """Anchors and their positives in one image.

    Parameters
    ----------
    image : (C, H, W).
    n_anchors : anchors drawn uniformly (with replacement) from the pixels of ``region`` when it has any,
        else from the whole image.
    region : (H, W) bool (the brain).
    patch : P; candidates are drawn at offsets in [-P, P]^2 (not 0, kept inside the image).
    tries : candidates per anchor; the first whose patch has SSIM > ``min_ssim`` with the anchor's patch is
        the positive, else the adjacent pixel to the right (left at the right border).
    min_ssim : the similarity test.
    generator : a CPU generator for the draws (None: torch's global one), so successive calls give new anchors.

    Returns
    -------
    :class:`Pairs`.
    """
    _, h, w = image.shape
    weights = region.flatten().float().cpu() if region is not None and region.any() else torch.ones(h * w)
    flat = torch.multinomial(weights, n_anchors, replacement=True, generator=generator)
    anchors = torch.stack([flat // w, flat % w], 1)
    offsets = torch.randint(-patch, patch + 1, (n_anchors, tries, 2), generator=generator)
    zero = (offsets == 0).all(-1)
    offsets[zero] = torch.tensor([0, 1])  # never the anchor itself
    limit = torch.tensor([h - 1, w - 1])
    candidates = (anchors[:, None] + offsets).clamp(torch.zeros(2, dtype=torch.long), limit)
    anchors, candidates = anchors.to(image.device), candidates.to(image.device)
    own = patches(image, anchors, patch)
    scores = ssim(own.repeat_interleave(tries, 0), patches(image, candidates.reshape(-1, 2), patch))
    ok = (scores.reshape(n_anchors, tries) > min_ssim) & (candidates != anchors[:, None]).any(-1)
    first = ok.float().argmax(1)
    similar = ok.any(1)
    right = anchors[:, 1] + torch.where(anchors[:, 1] + 1 < w, 1, -1)
    adjacent = torch.stack([anchors[:, 0], right], 1)
    positives = torch.where(similar[:, None], candidates[torch.arange(n_anchors), first], adjacent)
    return Pairs(anchors, positives, similar, own)


@float32
def nt_xent(anchors: torch.Tensor, positives: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """NT-Xent of anchor and positive embeddings, the other anchors' positives in the same image being
    the negatives.

    Parameters
    ----------
    anchors, positives : (B, S, D).
    tau : temperature.

    Returns
    -------
    scalar: mean over images b and anchors i of -log softmax_j(cos(a_i, p_j) / tau)[i].

    References
    ----------
    Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020, arXiv:2002.05709.
    """
    a, p = F.normalize(anchors.float(), dim=-1), F.normalize(positives.float(), dim=-1)
    logits = a @ p.transpose(1, 2) / tau  # (B, S, S)
    target = torch.arange(a.shape[1], device=a.device).expand(a.shape[0], -1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def _at(z: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Embeddings (S, D) of one image's z (D, H, W) at pixels (S, 2)."""
    return z[:, pixels[:, 0], pixels[:, 1]].T


def cuts_loss(model: PixelCUTS, batch: dict, *, n_anchors: int = 256, lam: float = 0.01, tau: float = 0.1,
              tries: int = 5) -> dict:
    """CUTS's stage-1 loss on a batch: lam * NT-Xent + (1 - lam) * patch-reconstruction MSE.

    Parameters
    ----------
    model : :class:`PixelCUTS`.
    batch : ``{"image": (N, C, H, W)[, "brain": (N, H, W)]}``; anchors are drawn inside each slice's brain.
    n_anchors : anchors per slice.
    lam : weight of NT-Xent.
    tau : NT-Xent temperature.
    tries : see :func:`sample_pairs`.

    Returns
    -------
    ``{"loss", "nt_xent", "reconstruction"}`` scalars. Anchors come from a generator seeded from torch's
    global one (which the training loop reseeds every epoch): new anchors every batch, reproducible runs.
    """
    x = batch["image"]
    patch = model.config["patch"]
    z = model(x)
    generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
    brains = batch.get("brain")
    za, zp, target = [], [], []
    for i in range(len(x)):
        pairs = sample_pairs(x[i].float(), n_anchors, region=None if brains is None else brains[i], patch=patch,
                             tries=tries, generator=generator)
        za.append(_at(z[i], pairs.anchors))
        zp.append(_at(z[i], pairs.positives))
        target.append(pairs.anchor_patches.flatten(1))
    za, zp, target = torch.stack(za), torch.stack(zp), torch.stack(target)
    contrast = nt_xent(za, zp, tau)
    recon = F.mse_loss(model.reconstruct(za).float(), target)
    return {"loss": lam * contrast + (1 - lam) * recon, "nt_xent": contrast, "reconstruction": recon}


@dataclasses.dataclass
class CUTSResult:
    model: PixelCUTS
    history: list[dict]  # one row per epoch: loss, nt_xent, reconstruction


def fit(dataset, *, in_channels: int = 1, widths=(16, 32, 64, 128), epochs: int = 10, batch_size: int = 8,
        lr: float = 1e-3, n_anchors: int = 256, lam: float = 0.01, tau: float = 0.1, device="cpu",
        checkpoint: str | os.PathLike | None = None, resume: bool = True, seed: int = 0,
        progress: bool = True, extra: dict | None = None, amp: str = "auto") -> CUTSResult:
    """Train CUTS's stage 1 on slices through the shared loop.

    Parameters
    ----------
    dataset : ``{"image", "brain"}`` slices.
    in_channels : C.
    widths : the encoder's channel widths (four 5 x 5 convolutions by default).
    epochs, batch_size, lr, device, seed, progress, amp : see :func:`nbutils.train.fit`.
    n_anchors, lam, tau : see :func:`cuts_loss`.
    checkpoint, resume, extra : written every epoch (with ``extra``), resumed.

    Returns
    -------
    :class:`CUTSResult`, the model in eval mode.
    """
    torch.manual_seed(seed)
    model = PixelCUTS(in_channels, widths)
    history = train_fit(model, lambda m, b: cuts_loss(m, b, n_anchors=n_anchors, lam=lam, tau=tau), dataset,
                        epochs=epochs, batch_size=batch_size, lr=lr, device=device, checkpoint=checkpoint,
                        resume=resume, method="cuts", seed=seed, progress=progress,
                        extra={"config": model.config, **(extra or {})}, amp=amp)
    return CUTSResult(model, history)


@torch.no_grad()
def embed(model: PixelCUTS, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Embeddings of slices.

    Parameters
    ----------
    model : :class:`PixelCUTS`.
    image : (S, C, H, W).
    batch_size : slices per forward pass.

    Returns
    -------
    (S, D, H, W) float32.
    """
    return np.concatenate([z.float().cpu().numpy() for z in batched(model, image, batch_size)])


def points(z: np.ndarray, mask: np.ndarray, flair: np.ndarray | None = None, *, intensity: float = DEFAULT_INTENSITY,
           n_components: int = 10, scaling: str = "standard", seed: int = 0) -> np.ndarray:
    """Stage 2's input: the embeddings of the pixels in a mask, scaled and reduced by PCA, and their FLAIR.

    Parameters
    ----------
    z : (S, D, H, W) embeddings.
    mask : (S, H, W) bool.
    flair : (S, H, W) or None (the embeddings alone).
    intensity : weight of the FLAIR column appended to the reduced embeddings: the FLAIR standardised and then
        scaled to ``intensity`` times the points' root-mean-square length (1: it spreads as much as the whole
        embedding; 0: the embeddings alone, as the paper). A departure from CUTS that keeps the cue the lesion is
        defined by.
    n_components : PCA components kept.
    scaling : ``"l2"`` L2-normalises each embedding (the CUTS paper's; it discards the norm, which carries
        much of the intensity); ``"standard"`` centres each feature and divides it by its standard deviation.
    seed : PCA's.

    Returns
    -------
    (N, n_components [+ 1]) float32; a ValueError for NaN or infinite embeddings.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    x = np.moveaxis(z, 1, -1)[mask].astype(np.float64)
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise ValueError(f"the embeddings hold {bad} NaN or infinite values")
    if scaling == "l2":
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    else:
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    n = min(n_components, x.shape[1], len(x))
    x = PCA(n, random_state=seed).fit_transform(x) if len(x) > 1 else x[:, :n]
    if flair is not None and intensity > 0:
        f = flair[mask].astype(np.float64)
        scale = intensity * np.sqrt(np.mean(np.sum(x**2, 1)))  # PCA's points are centred
        x = np.concatenate([x, (scale * (f - f.mean()) / max(float(f.std()), 1e-12))[:, None]], 1)
    return x.astype(np.float32)


def spectral_kmeans(x: np.ndarray, k: int, *, max_points: int = 2048, seed: int = 0, device="cpu") -> np.ndarray:
    """k-means on the PHATE diffusion potential (``phate.cluster.kmeans``).

    Parameters
    ----------
    x : (N, d) points.
    k : clusters.
    max_points : above this many, PHATE runs on weighted k-means centroids
        (:func:`condensation.coarse_grain`, on ``device``) and each point takes its centroid's cluster.
    seed : PHATE's and k-means'.
    device : where the coarse-graining runs (PHATE, on at most ``max_points`` centroids, on the CPU).

    Returns
    -------
    (N,) cluster ids.

    References
    ----------
    Moon et al., "Visualizing structure and transitions in high-dimensional biological data", Nature
    Biotechnology 37, 2019, doi:10.1038/s41587-019-0336-3.
    """
    import phate  # slow to import, needed here only

    xt = torch.from_numpy(x).to(device)
    centroids, _, point_of = (condensation.coarse_grain(xt, max_points, seed=seed) if len(x) > max_points
                              else (xt, None, torch.arange(len(x))))
    op = phate.PHATE(knn=min(5, len(centroids) - 2), n_landmark=None, random_state=seed, verbose=0, n_jobs=1)
    op.fit(centroids.cpu().numpy())
    return phate.cluster.kmeans(op, n_clusters=k, random_state=seed, n_init=4)[point_of.cpu().numpy()]


def cluster(z: np.ndarray, mask: np.ndarray, flair: np.ndarray, stage2: str = "condensation", k: int = 4, *,
            scaling: str = "standard", level_rule: str = "persistence", max_points: int = 2048,
            intensity: float = DEFAULT_INTENSITY, start: str = DEFAULT_START, device="cpu",
            seed: int = 0) -> np.ndarray:
    """Stage 2 on the embeddings of one volume: labels named for the label-free rule.

    Parameters
    ----------
    z : (S, D, H, W) embeddings.
    mask : (S, H, W) bool: the pixels clustered.
    flair : (S, H, W): clusters are numbered by increasing mean FLAIR.
    stage2 : ``kmeans`` and ``spectral`` give ``k`` clusters; ``condensation`` cuts its hierarchy without
        labels: ``level_rule="persistence"``, the partition lasting the widest eps range
        (:meth:`Hierarchy.persistent_level`), or ``"structures"`` (CUTS's rule), the persistent structures
        (area >= 1 %, >= 2 levels) at the level that has most of them, which dissolves clusters (lesions)
        under 1 %.
    k : clusters of kmeans and spectral.
    scaling : see :func:`points`.
    level_rule : see ``stage2``.
    max_points : condensation and spectral coarse-grain to at most this many points.
    intensity : weight of the FLAIR appended to the embeddings (see :func:`points`; 0: the paper's embeddings alone).
    start : stage 2 k-means' start: ``"intensity"``, each centre the mean point of a k-means class of the FLAIR
        (:func:`~nbutils.methods.torch_kmeans.intensity_start`, a departure from the paper: the clusters begin
        where k-means on the intensities ends, and Lloyd's iterations move them in the embedding), or
        ``"kmeans++"``.
    device : k-means, condensation and the coarse-graining before PHATE run there; PHATE on the CPU.
    seed : every random choice.

    Returns
    -------
    (S, H, W) int64: 1..n inside ``mask``, 0 outside.
    """
    if stage2 not in STAGE2:
        raise ValueError(f"unknown stage 2 {stage2!r}; choose one of {', '.join(STAGE2)}")
    if level_rule not in LEVEL_RULES:
        raise ValueError(f"unknown level rule {level_rule!r}; choose one of {', '.join(LEVEL_RULES)}")
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; choose one of {', '.join(STARTS)}")
    x = points(z, mask, flair, intensity=intensity, scaling=scaling, seed=seed)
    if stage2 == "kmeans":
        x = torch.from_numpy(x).to(device)
        init = (intensity_start(x, torch.from_numpy(flair[mask][:, None].astype(np.float32)).to(device), k, seed)
                if start == "intensity" else None)
        ids = kmeans(x, k, seed=seed, init=init)[1].cpu().numpy()
    elif stage2 == "spectral":
        ids = spectral_kmeans(x, k, max_points=max_points, seed=seed, device=device)
    else:
        tree = condensation.condense(x, max_points=max_points, device=device, seed=seed)
        ids = (tree.labels(tree.persistent_level()) if level_rule == "persistence"
               else tree.structure_labels(tree.structures_level()))
    return metrics.labels_by_brightness(ids, flair[mask][:, None], mask)


def level_rules(tree: condensation.Hierarchy, volume: Volume, largest_cc: bool = True,
                max_clusters: int = 64) -> list[dict]:
    """How the label-free level rules of a condensation tree score, against the best level in hindsight.

    Parameters
    ----------
    tree : the :class:`condensation.Hierarchy` of ``volume``'s brain pixels.
    volume : with ground truth.
    largest_cc : one lesion.
    max_clusters : the oracle searches the levels of at most this many clusters.

    Returns
    -------
    list of dict rows: ``persistence`` and ``structures`` (clusters and :func:`metrics.lesion_scores`), and
    ``oracle level``, the highest oracle Dice over the levels (uses the ground truth: an upper bound of
    any level rule).
    """
    def named(ids):
        return metrics.labels_by_brightness(ids, volume.flair[volume.brain][:, None], volume.brain)

    candidates = {"persistence": named(tree.labels(tree.persistent_level())),
                  "structures": named(tree.structure_labels(tree.structures_level()))}
    rows = [dict(rule=name, volume=volume.name, clusters=int(labels.max()),
                 **metrics.lesion_scores(labels, volume.flair, volume.brain, volume.target, largest_cc))
            for name, labels in candidates.items()]
    coarse = np.flatnonzero(tree.n_clusters() <= max_clusters)
    best = max(metrics.dice(metrics.oracle_lesion(named(tree.labels(level)), volume.target), volume.target)
               for level in coarse)
    return rows + [dict(rule="oracle level", volume=volume.name, dice_oracle=best)]


@dataclasses.dataclass(frozen=True)
class CUTSOptions(DeepOptions):
    stage2: str = option("condensation", "how the embeddings become clusters", choices=STAGE2, train=False)
    k: int = option(4, "clusters of stage 2 kmeans and spectral", low=2, high=MAX_CLUSTERS, train=False)
    epochs: int = option(50, "stage-1 training epochs", low=1, train=False)
    anchors: int = option(256, "anchor pixels per slice and batch", low=2)
    lam: float = option(0.01, "weight of NT-Xent (the rest: patch reconstruction)", low=0.0, high=1.0)
    tau: float = option(0.1, "NT-Xent temperature", low=1e-6)
    lr: float = option(1e-3, "Adam learning rate", low=0.0)
    max_points: int = option(4096, "stage 2 coarse-grains the brain pixels to at most this many", low=16,
                             train=False)
    scaling: str = option("standard", "embeddings scaled per feature (standard) or to unit length (l2, the "
                          "paper's)", choices=SCALINGS, train=False)
    level_rule: str = option("persistence", "condensation level: the most persistent partition, or the paper's "
                             "persistent structures", choices=LEVEL_RULES, train=False)
    intensity: float = option(DEFAULT_INTENSITY, "stage 2: weight of the FLAIR intensity appended to the embeddings, "
                              "relative to their spread (0: the paper's embeddings alone)", low=0.0, train=False)
    start: str = option(DEFAULT_START, "stage 2 k-means' start: the mean points of the FLAIR's k-means classes "
                        "(a departure from the paper), or k-means++", choices=STARTS, train=False)

    ci: ClassVar[dict] = {**DeepOptions.ci, "epochs": 10, "max_points": 2048}


class CUTSModel(DeepModel):
    """A trained CUTS stage 1; stage 2 runs per volume on its brain pixels' embeddings."""

    def square_labels(self, volume) -> np.ndarray:
        o = self.options
        z = embed(self.network, volume.image, o.batch_size)
        return cluster(z, volume.brain, volume.flair, o.stage2, o.k, scaling=o.scaling, level_rule=o.level_rule,
                       max_points=o.max_points, intensity=o.intensity, start=o.start, device=self.device,
                       seed=o.seed)


class CUTS(TrainableMethod):
    name, title, Options, Model = "cuts", "CUTS", CUTSOptions, CUTSModel
    reference = "Liu, Amodio, Shen et al., MICCAI 2024, arXiv:2209.11359"

    def network(self, config: dict) -> PixelCUTS:
        return PixelCUTS(**config)

    def fit(self, volumes, *, device="cpu", checkpoint=None, restart=False, progress=True) -> CUTSModel:
        o = self.options
        dataset, print_ = self.training_set(volumes)
        check_checkpoint(checkpoint, self, print_, restart)
        extra = training_state(self, print_)
        result = fit(dataset, in_channels=dataset.channels, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr,
                     n_anchors=o.anchors, lam=o.lam, tau=o.tau, device=device, checkpoint=checkpoint, seed=o.seed,
                     progress=progress, extra=extra, amp=o.amp)
        return CUTSModel(self, dict(config=result.model.config, history=result.history, **extra), device, result.model)
