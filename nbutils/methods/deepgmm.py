"""Deep Gaussian mixture models (deepG, deepSVG) and their EM baselines.

Schwab, Mayr, Haltmeier, "Deep Gaussian mixture model for unsupervised image segmentation", 2024,
arXiv:2404.12252. A U-Net maps the M-sequence image to class probabilities p_ik (softmax over K).
Inside the loss a closed-form M-step over the pixels of a region mask gives, per image,

    pi_k = mean_i p_ik,  mu_km = sum_i p_ik x_im / sum_i p_ik,
    var_km = sum_i p_ik (x_im - mu_km)^2 / sum_i p_ik + eps,

and the network minimises the negative log-likelihood of the image under the mixture:

    deepG:   NLL = -mean_i log sum_k pi_k prod_m N(x_im; mu_km, var_km)
    deepSVG: NLL = -mean_i log sum_k p_ik prod_m N(x_im; mu_km, var_km)   (spatially variant weights)

plus lambda * ||mu_data - mu(p)||^2 when class means from a few labelled slices are given.
Everything is computed in log space (logsumexp). Two modes: per image (:func:`fit_images`, a fresh
network fitted to one volume's slices, the mixture over all of the volume's brain pixels) and
trained on many images (:func:`fit`, one mixture per batch of slices), then applied to unseen ones
(:func:`predict`). The EM baselines fit the same two models to the same pixels: scikit-learn's
GaussianMixture (diagonal) and :func:`em_svgmm`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import ClassVar
import time
import warnings

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture
from torch.nn import functional as F
from tqdm.auto import tqdm

from nbutils import metrics
from nbutils.methods import classical
from nbutils.precision import float32, policy
from nbutils.data.datasets import SliceDataset, Volume, at_size
from nbutils.methods.base import (MAX_CLUSTERS, DeepModel, DeepOptions, TrainableMethod, check_checkpoint, option,
                                  training_state)
from nbutils.models import UNetEncoder
from nbutils.runtime import all_sum, batched, world
from nbutils.train import fit as train_fit

LOG_2PI = math.log(2 * math.pi)
VARIANTS = ("deepG", "deepSVG")
MODES = ("per-image", "trained")
PATIENCE = 30  # steps over which the per-image NLL must improve by at least tol (plateaus last 20-30)
WARM_STEPS = 30  # per-image init "kmeans": cross-entropy steps towards the k-means classes before the NLL
INITS = ("random", "kmeans")
DEFAULT_INIT = "kmeans"  # per-image fits start from the k-means classes (the paper starts from a random network)
VAR_FLOOR = 1e-6  # added to every variance (intensities in [0, 1])


@float32
def m_step(p: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = VAR_FLOOR,
           reduce=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form mixture parameters of each image from soft assignments.

    pi_k = mean_i p_ik, mu_km = sum_i p_ik x_im / sum_i p_ik,
    var_km = sum_i p_ik (x_im - mu_km)^2 / sum_i p_ik + eps (Schwab, Mayr, Haltmeier 2024, eq. 3).

    Parameters
    ----------
    p : (B, K, H, W) class probabilities.
    x : (B, M, H, W) sequences.
    mask : (B, H, W) the region (None: every pixel).
    eps : the variance floor.
    reduce : e.g. :func:`nbutils.runtime.all_sum`: adds the sums of every process before dividing (the
        parameters of the pixels of all of them); None: this process's.

    Returns
    -------
    (pi (B, K), mu (B, K, M), var (B, K, M)). A class with no mass gets mu = 0 and var = eps.
    """
    reduce = reduce or (lambda t: t)
    w = p if mask is None else p * mask[:, None].to(p.dtype)
    mass = reduce(w.sum((2, 3)))  # (B, K)
    pixels = mass.sum(1, keepdim=True)
    safe = mass.clamp_min(1e-12)[..., None]
    mu = reduce(torch.einsum("bkhw,bmhw->bkm", w, x)) / safe
    second = reduce(torch.einsum("bkhw,bmhw->bkm", w, x * x)) / safe
    var = (second - mu * mu).clamp_min(0) + eps
    return mass / pixels.clamp_min(1e-12), mu, var


def log_gaussians(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log prod_m N(x_im; mu_km, var_km) of every pixel and class.

    Parameters
    ----------
    x : (B, M, H, W).
    mu, var : (B, K, M).

    Returns
    -------
    (B, K, H, W).
    """
    d = x[:, None] - mu[..., None, None]  # (B, K, M, H, W)
    return (-0.5 * (LOG_2PI + torch.log(var))[..., None, None] - d * d / (2 * var[..., None, None])).sum(2)


@float32
def nll(log_p: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, variant: str = "deepG",
        eps: float = VAR_FLOOR, distributed: bool = False) -> tuple[torch.Tensor, tuple]:
    """Negative log-likelihood per pixel of the mixture whose parameters are the M-step of exp(log_p).

    deepG: -mean_i log sum_k pi_k prod_m N(x_im; mu_km, var_km); deepSVG: the same with p_ik for pi_k
    (spatially variant weights), in log space (logsumexp).

    Parameters
    ----------
    log_p : (B, K, H, W) log-probabilities (``log_softmax`` of the network's logits).
    x : (B, M, H, W).
    mask : (B, H, W): the mean runs over its pixels, then over images (None: every pixel).
    variant : ``"deepG"`` or ``"deepSVG"``.
    eps : the variance floor.
    distributed : one pooled image per process under torchrun: the M-step and the pixel count run over
        every process's pixels, and the value is scaled so that the gradients DistributedDataParallel
        averages are those of one process holding all the pixels.

    Returns
    -------
    (scalar NLL, (pi, mu, var)).

    References
    ----------
    Schwab, Mayr, Haltmeier, "Deep Gaussian mixture model for unsupervised image segmentation", 2024,
    arXiv:2404.12252.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    reduce = all_sum if distributed else None
    params = m_step(log_p.exp(), x, mask, eps, reduce)
    pi, mu, var = params
    weights = torch.log(pi.clamp_min(1e-12))[..., None, None] if variant == "deepG" else log_p
    ll = torch.logsumexp(weights + log_gaussians(x, mu, var), dim=1)  # (B, H, W)
    m = torch.ones_like(ll) if mask is None else mask.to(ll.dtype)
    if distributed:
        return -(ll * m).sum() * world()[1] / all_sum(m.sum()).clamp_min(1), params
    return -((ll * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)).mean(), params


def mean_regulariser(mu: torch.Tensor, mu_data: torch.Tensor) -> torch.Tensor:
    """The class-means regulariser r(mu) = ||mu_data - mu||^2.

    Parameters
    ----------
    mu : (B, K, M) the mixture's means.
    mu_data : (K, M) class means measured on labelled slices.

    Returns
    -------
    scalar: summed over classes and sequences, averaged over images.
    """
    return (mu - mu_data.to(mu)).square().sum((1, 2)).mean()


@float32
def objective(logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, variant: str = "deepG",
              lam: float = 0.0, mu_data: torch.Tensor | None = None, distributed: bool = False) -> dict:
    """The deep GMM's loss from the network's logits.

    Parameters
    ----------
    logits : (B, K, H, W).
    x : (B, M, H, W).
    mask : (B, H, W) region.
    variant : ``"deepG"`` or ``"deepSVG"``.
    lam : weight of :func:`mean_regulariser` when ``mu_data`` (K, M) is given.
    mu_data : class means, or None.
    distributed : see :func:`nll`.

    Returns
    -------
    ``{"loss", "nll"[, "regulariser"]}`` scalars.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    value, (_, mu, _) = nll(log_p, x.float(), mask, variant, distributed=distributed)
    terms = {"nll": value}
    if mu_data is not None and lam > 0:
        terms["regulariser"] = mean_regulariser(mu, mu_data)
        value = value + lam * terms["regulariser"]
    return {"loss": value, **terms}


def _one_image(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (1, C, B*H, W): a stack of slices as one image, so the M-step pools them."""
    return t.transpose(0, 1).reshape(1, t.shape[1], -1, t.shape[-1])


def loss(model: torch.nn.Module, batch: dict, variant: str = "deepG", lam: float = 0.0,
         mu_data: torch.Tensor | None = None, pool: bool = True) -> dict:
    """:func:`objective` of a batch of slices.

    Parameters
    ----------
    model : the network.
    batch : ``{"image": (B, M, H, W), "brain": (B, H, W)}``.
    variant, lam, mu_data : see :func:`objective`.
    pool : one mixture over all the batch's slices (the default: a class keeps one meaning across slices,
        also in slices without a lesion), else one per slice (the paper's per-image M-step). Under torchrun
        the pooled mixture is over the global batch.

    Returns
    -------
    see :func:`objective`.
    """
    x = batch["image"].float()
    logits, mask = model(x), batch.get("brain")
    if pool:
        logits, x = _one_image(logits), _one_image(x)
        mask = None if mask is None else _one_image(mask[:, None])[:, 0]
    return objective(logits, x, mask, variant, lam, mu_data, distributed=pool and world()[1] > 1)


def check_region(x: np.ndarray, mask: np.ndarray, k: int, name: str = "image") -> None:
    """Check that a region can hold K classes.

    Parameters
    ----------
    x : (S, M, H, W).
    mask : (S, H, W) bool region.
    k : classes.
    name : named in the messages.

    A ValueError when the region holds fewer pixels than classes; a warning for each constant sequence (its
    variance is the floor, so its Gaussians are spikes).
    """
    n = int(mask.sum())
    if n < k:
        raise ValueError(f"{name}: the region mask holds {n} pixel(s), fewer than the {k} classes")
    values = np.moveaxis(x, 1, -1)[mask]  # (N, M)
    for m in np.flatnonzero(values.std(0) < 1e-6):
        warnings.warn(f"{name}: sequence {m} is constant inside the region; its variance is floored at {VAR_FLOOR:g}",
                      stacklevel=2)


def em_gmm(x: np.ndarray, k: int, means_init: np.ndarray | None = None, seed: int = 0,
           max_iter: int = 200, tol: float = 1e-3) -> tuple[np.ndarray, float, GaussianMixture]:
    """EM for a diagonal GMM on pixels (scikit-learn's GaussianMixture).

    Parameters
    ----------
    x : (N, M) pixels.
    k : components.
    means_init : (K, M) start (e.g. class means from labelled slices); None: two k-means starts.
    seed, max_iter, tol : EM's.

    Returns
    -------
    (labels (N,), NLL per pixel, the fitted model).

    References
    ----------
    Dempster, Laird, Rubin, J. R. Stat. Soc. B 39, 1977, doi:10.1111/j.2517-6161.1977.tb01600.x.
    """
    gmm = GaussianMixture(k, covariance_type="diag", means_init=means_init, random_state=seed, max_iter=max_iter,
                          tol=tol, reg_covar=VAR_FLOOR, n_init=1 if means_init is not None else 2).fit(x)
    return gmm.predict(x), float(-gmm.score(x)), gmm


def em_svgmm(x: np.ndarray, k: int, *, means_init: np.ndarray | None = None, max_iter: int = 200,
             tol: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """EM for the spatially variant GMM: every pixel has its own weights.

    E-step: gamma_ik = w_ik N(x_i; mu_k, var_k) / sum_l w_il N(x_i; mu_l, var_l), then w_ik = gamma_ik;
    M-step: mu_k, var_k are the gamma-weighted means and variances (+ the variance floor).

    Parameters
    ----------
    x : (N, M) pixels.
    k : components.
    means_init : (K, M) start; None: k-means++ centres. The weights start uniform.
    max_iter, tol : stop when the NLL per pixel changes by less than ``tol``.
    seed : k-means++'s.

    Returns
    -------
    (gamma (N, K), mu (K, M), var (K, M), NLL history); the NLL never increases.

    References
    ----------
    Sanjay-Gopal & Hebert, "Bayesian pixel classification using spatially variant finite mixtures and the
    generalized EM algorithm", IEEE TIP 7, 1998, doi:10.1109/83.701161.
    """
    from sklearn.cluster import kmeans_plusplus

    x = np.asarray(x, np.float64)
    n = len(x)
    mu = np.asarray(means_init, np.float64) if means_init is not None else kmeans_plusplus(x, k, random_state=seed)[0]
    var = np.tile(x.var(0) + VAR_FLOOR, (k, 1))
    log_w = np.full((n, k), -math.log(k))
    history: list[float] = []
    for _ in range(max_iter):
        log_n = -0.5 * (LOG_2PI + np.log(var)).sum(1) - (((x[:, None] - mu) ** 2) / (2 * var)).sum(2)  # (N, K)
        joint = log_w + log_n
        log_like = logsumexp(joint, axis=1)
        history.append(float(-log_like.mean()))
        log_w = joint - log_like[:, None]  # E-step: gamma, which is also the new weights
        gamma = np.exp(log_w)
        mass = gamma.sum(0).clip(1e-12)[:, None]
        mu = gamma.T @ x / mass
        var = np.maximum(gamma.T @ (x * x) / mass - mu * mu, 0) + VAR_FLOOR
        if len(history) > 1 and abs(history[-2] - history[-1]) < tol:
            break
    return np.exp(log_w), mu, var, history


def class_means(image: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Class means of labelled slices: the regulariser's mu_data.

    Parameters
    ----------
    image : (S, M, H, W) labelled slices.
    labels : (S, H, W) classes 1..K (0: unlabelled).
    k : classes.

    Returns
    -------
    (K, M) float32; a ValueError names a class with no pixel.
    """
    values = np.moveaxis(image, 1, -1)
    missing = [c for c in range(1, k + 1) if not (labels == c).any()]
    if missing:
        raise ValueError(f"the labelled slices hold no pixel of class(es) {missing}")
    return np.stack([values[labels == c].mean(0) for c in range(1, k + 1)]).astype(np.float32)


def build_model(in_channels: int, k: int, widths=(8, 16, 32)) -> torch.nn.Module:
    """The deep GMM network: a U-Net with InstanceNorm and LeakyReLU.

    Parameters
    ----------
    in_channels : M sequences.
    k : classes (logits per pixel).
    widths : channel widths.

    Returns
    -------
    network (N, M, H, W) -> (N, K, H, W).
    """
    model = UNetEncoder(in_channels, k, tuple(widths), noise=0.0, norm="instance", activation="leaky")
    model.config = dict(in_channels=in_channels, k=k, widths=list(widths))
    return model


def fit_images(images: np.ndarray, masks: np.ndarray, k: int, variant: str = "deepG", *, tol: float = 1e-3,
               max_epochs: int = 200, lr: float = 1e-2, lam: float = 0.0, mu_data: np.ndarray | None = None,
               init_labels: np.ndarray | None = None, device="cpu", seed: int = 0,
               progress: bool = False, amp: str = "auto") -> tuple[np.ndarray, list[float]]:
    """Per-image mode: a fresh network fitted to one volume.

    Parameters
    ----------
    images : (S, M, H, W): the S slices are one image (a volume), one mixture over all their mask pixels,
        one network step per pass over them; S = 1 is the paper's per-image mode on a 2D image.
    masks : (S, H, W) region.
    k : classes.
    variant : ``"deepG"`` or ``"deepSVG"``.
    tol, max_epochs : stop when the NLL per pixel improved by less than ``tol`` over the last
        :data:`PATIENCE` steps (Adam's steps are noisy: a change between two steps alone stops on the first
        plateau), or after ``max_epochs`` steps.
    lr, device, seed, progress : the optimisation.
    amp : the network's precision (:func:`nbutils.precision.policy`); the mixture and its NLL are float32.
    lam, mu_data : the regulariser (:func:`mean_regulariser`).
    init_labels : (S, H, W) classes 1..K inside ``masks`` (e.g. k-means'), or None. Given, the network
        first learns them (:data:`WARM_STEPS` cross-entropy steps over the mask's pixels), so the mixture
        starts where EM starts (scikit-learn's GaussianMixture initialises from k-means); None: a random
        network, as in the paper.

    Returns
    -------
    (class probabilities (S, K, H, W) float32, NLL per step).
    """
    check_region(images, masks, k)
    torch.manual_seed(seed)
    device = torch.device(device)
    precision = policy(amp, device)
    scaler = precision.scaler()
    model = build_model(images.shape[1], k).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(np.ascontiguousarray(images)).float().to(device)
    batch = {"image": x, "brain": torch.from_numpy(masks).to(device)}
    target = None if mu_data is None else torch.as_tensor(mu_data, dtype=torch.float32, device=device)
    history: list[float] = []
    model.train()
    if init_labels is not None:
        inside = batch["brain"].bool()
        target_classes = torch.from_numpy(np.asarray(init_labels, np.int64) - 1).to(device)[inside]
        for _ in range(WARM_STEPS):
            with precision.autocast():
                logits = model(x).permute(0, 2, 3, 1)[inside]  # (N, K) over the mask's pixels
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(F.cross_entropy(logits.float(), target_classes)).backward()
            scaler.step(optimizer)
            scaler.update()
    for _ in tqdm(range(max_epochs), desc=f"{variant} per image", disable=not progress, leave=False):
        with precision.autocast():
            terms = loss(model, batch, variant, lam, target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        history.append(float(terms["nll"].detach()))
        if not math.isfinite(history[-1]):
            raise FloatingPointError(f"{variant}: the NLL became {history[-1]} at step {len(history)}")
        if len(history) > PATIENCE and history[-PATIENCE - 1] - min(history[-PATIENCE:]) < tol:
            break
    return probabilities(model, images), history


@torch.no_grad()
def probabilities(model: torch.nn.Module, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """softmax(network) of slices, the network in eval mode.

    Parameters
    ----------
    model : the network.
    image : (S, M, H, W).
    batch_size : slices per forward pass.

    Returns
    -------
    (S, K, H, W) float32.
    """
    return torch.cat([torch.softmax(out.float(), 1).cpu() for out in batched(model, image, batch_size)]).numpy()


def volume_params(p: np.ndarray, image: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step of a volume's probabilities over all its brain pixels.

    Parameters
    ----------
    p : (S, K, H, W).
    image : (S, M, H, W).
    brain : (S, H, W) bool.

    Returns
    -------
    (pi (K,), mu (K, M), var (K, M)) NumPy arrays.
    """
    batch = [_one_image(torch.from_numpy(a)) for a in (p, image, brain[:, None])]
    pi, mu, var = m_step(batch[0].float(), batch[1].float(), batch[2][:, 0])
    return pi[0].numpy(), mu[0].numpy(), var[0].numpy()


def hard_labels(p: np.ndarray, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Labels from class probabilities, named by intensity.

    Parameters
    ----------
    p : (S, K, H, W).
    image : (S, M, H, W); classes are renumbered 1.. by increasing mean of channel 0 (label-free naming).
    brain : (S, H, W) bool.

    Returns
    -------
    (S, H, W) int64, 0 outside ``brain``.
    """
    return metrics.labels_by_brightness(p.argmax(1)[brain], np.moveaxis(image, 1, -1)[brain], brain)


METHOD_NAMES = ("deepG", "deepSVG", "EM-GMM", "EM-SVGMM")


def start_labels(image: np.ndarray, brain: np.ndarray, k: int, init: str = DEFAULT_INIT,
                 seed: int = 0) -> np.ndarray | None:
    """Where a per-image fit starts: None (a random network) or the k-means classes.

    Parameters
    ----------
    image : (S, M, H, W).
    brain : (S, H, W) bool.
    k : classes.
    init : one of :data:`INITS`.
    seed : k-means' starts.

    Returns
    -------
    None, or (S, H, W) int64 classes 1..K inside ``brain`` (:func:`nbutils.methods.classical.kmeans` on every
    sequence), for :func:`fit_images`'s ``init_labels``.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    return classical.kmeans(image, brain, k, seed=seed) if init == "kmeans" else None


@dataclasses.dataclass
class MixtureFit:
    """One method's mixture fitted to one volume."""

    labels: np.ndarray  # (S, H, W) 1..K by increasing mean of channel 0, 0 outside the brain
    pi: np.ndarray  # (K,) mixture weights (the spatially variant models: the mean weight per class)
    mu: np.ndarray  # (K, M)
    var: np.ndarray  # (K, M)
    history: list[float]  # NLL per pixel per step or iteration (EM-GMM: the final value only)
    steps: int  # network steps or EM iterations
    seconds: float


def fit_volume(volume: Volume, k: int, method: str = "deepG", *, tol: float = 1e-3, max_epochs: int = 200,
               lam: float = 0.0, mu_data: np.ndarray | None = None, init: str = DEFAULT_INIT, device="cpu",
               seed: int = 0, progress: bool = False) -> MixtureFit:
    """One of :data:`METHOD_NAMES` fitted to one volume's brain pixels, timed.

    Parameters
    ----------
    volume : the volume (its image and brain mask).
    k : classes.
    method : ``deepG``, ``deepSVG`` (per-image mode on ``device``), ``EM-GMM`` or ``EM-SVGMM`` (on the CPU).
    tol, max_epochs : stopping (steps, or EM iterations).
    lam, mu_data : the deep methods' regulariser; EM starts from ``mu_data``.
    init : where the deep methods start (:func:`start_labels`).
    device, seed, progress : the fit.

    Returns
    -------
    :class:`MixtureFit`. The NLLs of deepG and EM-GMM are of the same model, and those of deepSVG and
    EM-SVGMM.
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHOD_NAMES)}")
    start = time.perf_counter()
    if method in VARIANTS:
        p, history = fit_images(volume.image, volume.brain, k, method, tol=tol, max_epochs=max_epochs, lam=lam,
                                mu_data=mu_data, init_labels=start_labels(volume.image, volume.brain, k, init, seed),
                                device=device, seed=seed, progress=progress)
        labels = hard_labels(p, volume.image, volume.brain)
        pi, mu, var = volume_params(p, volume.image, volume.brain)
        return MixtureFit(labels, pi, mu, var, history, len(history), time.perf_counter() - start)
    check_region(volume.image, volume.brain, k, volume.name)
    x = np.moveaxis(volume.image, 1, -1)[volume.brain]
    if method == "EM-GMM":
        ids, value, gmm = em_gmm(x, k, mu_data, seed=seed, max_iter=max_epochs, tol=tol)
        pi, mu, var, history, steps = gmm.weights_, gmm.means_, gmm.covariances_, [value], gmm.n_iter_
    else:
        gamma, mu, var, history = em_svgmm(x, k, means_init=mu_data, max_iter=max_epochs, tol=tol, seed=seed)
        ids, pi, steps = gamma.argmax(1), gamma.mean(0), len(history)
    seconds = time.perf_counter() - start
    return MixtureFit(metrics.labels_by_brightness(ids, x, volume.brain), pi, mu, var, history, steps, seconds)


@dataclasses.dataclass
class GMMResult:
    model: torch.nn.Module
    history: list[dict]  # per epoch: loss, nll (and regulariser)
    variant: str


def fit(dataset: SliceDataset, k: int, variant: str = "deepG", *, lam: float = 0.0, mu_data: np.ndarray | None = None,
        pool: bool = True, epochs: int = 30, batch_size: int = 8, lr: float = 1e-2, device="cpu",
        checkpoint: str | os.PathLike | None = None, resume: bool = True, seed: int = 0,
        progress: bool = True, extra: dict | None = None, amp: str = "auto") -> GMMResult:
    """Trained mode: one network trained on the slices of many volumes through the shared loop.

    Parameters
    ----------
    dataset : ``{"image", "brain"}`` slices.
    k : classes.
    variant : ``"deepG"`` or ``"deepSVG"``.
    lam, mu_data : the regulariser.
    pool : one mixture per batch (see :func:`loss`).
    epochs, batch_size, lr, device, seed, progress, amp : see :func:`nbutils.train.fit`.
    checkpoint, resume, extra : written every epoch (with ``extra``), resumed.

    Returns
    -------
    :class:`GMMResult`; apply it to unseen slices with :func:`predict`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    torch.manual_seed(seed)
    model = build_model(dataset.channels, k)
    target = None if mu_data is None else torch.as_tensor(mu_data, dtype=torch.float32)
    rows = train_fit(model, lambda m, batch: loss(m, batch, variant, lam, target, pool), dataset, epochs=epochs,
                     batch_size=batch_size, lr=lr, device=device, checkpoint=checkpoint, resume=resume,
                     method="deepgmm", seed=seed, progress=progress, amp=amp,
                     extra=dict(config=model.config, variant=variant, **(extra or {})))
    return GMMResult(model.eval(), rows, variant)


def predict(result: GMMResult, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Class probabilities of slices from a trained network.

    Parameters
    ----------
    result : the trained network.
    image : (S, M, H, W).
    batch_size : slices per forward pass.

    Returns
    -------
    (S, K, H, W) float32.
    """
    return probabilities(result.model, image, batch_size)


def compare_fits(train: list[Volume], test: list[Volume], k: int, *, steps: int = 200, tol: float = 1e-3,
                 epochs: int = 100, batch_size: int = 8, per_image: int | None = None, largest_cc: bool = True,
                 inits: tuple[str, ...] = (DEFAULT_INIT,), device="cpu", seed: int = 0) -> tuple:
    """The deep GMMs and their EM twins on the same test volumes, scored per volume.

    Parameters
    ----------
    train : volumes the trained networks learn on.
    test : volumes scored.
    k : classes.
    steps, tol : per-image mode's stopping.
    epochs, batch_size : trained mode.
    per_image : deepG and deepSVG per image run on the first ``per_image`` test volumes (None: all).
    largest_cc : one lesion.
    inits : the per-image fits' starts (:data:`INITS`), a row each; "random" rows are named "..., random init".
    device, seed : the fits.

    Returns
    -------
    (the :func:`nbutils.evaluation.score_volumes` rows of deepG and deepSVG per image, the same two trained
    on ``train``, EM-GMM and EM-SVGMM per volume; the per-volume :class:`MixtureFit` of the per-image and
    EM fits, keyed by (method, volume name), for figures: the per-image ones of the first of ``inits``).
    """
    import pandas as pd

    from nbutils.evaluation import score_volumes

    fits: dict[tuple[str, str], MixtureFit] = {}

    def fitted(name: str, init: str = DEFAULT_INIT, keep: bool = True):
        def labeller(volume: Volume) -> np.ndarray:
            f = fit_volume(volume, k, name, tol=tol, max_epochs=steps, init=init, device=device, seed=seed)
            if keep:
                fits[name, volume.name] = f
            return f.labels
        return labeller

    frames = [score_volumes(fitted(name, init, keep=init == inits[0]), test[:per_image],
                            f"{name} (per image{', random init' if init == 'random' else ''})", largest_cc)
              for init in inits for name in VARIANTS]
    for variant in VARIANTS:
        result = fit(SliceDataset(train), k, variant, epochs=epochs, batch_size=batch_size, device=device, seed=seed,
                     progress=False)
        frames.append(score_volumes(lambda v, r=result: hard_labels(predict(r, v.image), v.image, v.brain), test,
                                    f"{variant} (trained)", largest_cc))
    frames += [score_volumes(fitted(name), test, name, largest_cc) for name in ("EM-GMM", "EM-SVGMM")]
    return pd.concat(frames, ignore_index=True), fits


@dataclasses.dataclass(frozen=True)
class DeepGMMOptions(DeepOptions):
    variant: str = option("deepG", "mixture weights per image (deepG) or per pixel (deepSVG)", choices=VARIANTS)
    mode: str = option("per-image", "a fresh network fitted to each volume (per-image), or one network "
                       "trained on many volumes (trained)", choices=MODES)
    k: int = option(4, "classes", low=2, high=MAX_CLUSTERS)
    steps: int = option(200, "per-image mode: most network steps per volume", low=1, train=False)
    tol: float = option(1e-3, f"per-image mode: stop when the NLL improved by less than this over {PATIENCE} steps",
                        low=0.0, train=False)
    epochs: int = option(100, "trained mode: epochs over the training slices", low=1, train=False)
    restarts: int = option(1, "per-image mode: fits from this many seeds, the lowest final NLL kept (as EM's n_init; "
                           "for deepSVG a lower NLL is not a better split)", low=1, train=False)
    init: str = option(DEFAULT_INIT, "per-image mode: a fresh network first taught the k-means classes (kmeans: "
                       "where EM starts; a departure from the paper), or a random one (the paper's)", choices=INITS,
                       train=False)
    lr: float = option(1e-2, "Adam learning rate", low=0.0)

    ci: ClassVar[dict] = {**DeepOptions.ci, "steps": 100, "epochs": 20}


class DeepGMMModel(DeepModel):
    """A deep GMM network trained on many volumes: argmax classes, numbered by intensity."""

    def square_labels(self, volume) -> np.ndarray:
        p = probabilities(self.network, volume.image, self.options.batch_size)
        return hard_labels(p, volume.image, volume.brain)


class DeepGMM(TrainableMethod):
    name, title, Options, Model = "deepgmm", "deep GMM", DeepGMMOptions, DeepGMMModel
    reference = "Schwab, Mayr, Haltmeier, arXiv:2404.12252, 2024"
    training_defaults = {"mode": "trained"}  # the train command trains one network for many volumes

    @property
    def learns(self) -> bool:
        """Only trained mode learns one network for many volumes."""
        return self.options.mode == "trained"

    def network(self, config: dict) -> torch.nn.Module:
        return build_model(**config)

    def labels(self, volume, *, device="cpu", progress=True) -> np.ndarray:
        o = self.options
        if o.mode == "trained":
            return super().labels(volume, device=device, progress=progress)

        def per_image(v: Volume) -> np.ndarray:
            start = start_labels(v.image, v.brain, o.k, o.init, o.seed)
            fits = (fit_images(v.image, v.brain, o.k, o.variant, tol=o.tol, max_epochs=o.steps, lr=o.lr,
                               init_labels=start, device=device, seed=o.seed + r, progress=progress, amp=o.amp)
                    for r in range(o.restarts))
            p, _ = min(fits, key=lambda fit: fit[1][-1])  # holds only the best fit so far
            return hard_labels(p, v.image, v.brain)

        self.check([volume])
        return at_size(volume, o.size, per_image)

    def fit(self, volumes, *, device="cpu", checkpoint=None, restart=False, progress=True) -> DeepGMMModel:
        o = self.options
        if o.mode != "trained":
            raise ValueError("deepgmm in per-image mode fits each volume on its own and has nothing to train; "
                             "use --mode trained")
        dataset, print_ = self.training_set(volumes)
        check_checkpoint(checkpoint, self, print_, restart)
        extra = training_state(self, print_)
        result = fit(dataset, o.k, o.variant, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, device=device,
                     checkpoint=checkpoint, seed=o.seed, progress=progress, extra=extra, amp=o.amp)
        state = dict(config=result.model.config, history=result.history, **extra)
        return DeepGMMModel(self, state, device, result.model)
