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
from nbutils.data.datasets import SliceDataset, Volume, at_size
from nbutils.methods.base import (DeepModel, DeepOptions, TrainableMethod, check_checkpoint, option,
                                  training_state)
from nbutils.models import UNetEncoder
from nbutils.runtime import all_sum, batched, world
from nbutils.train import fit as train_fit

LOG_2PI = math.log(2 * math.pi)
VARIANTS = ("deepG", "deepSVG")
MODES = ("per-image", "trained")
PATIENCE = 30  # steps over which the per-image NLL must improve by at least tol (plateaus last 20-30)
VAR_FLOOR = 1e-6  # added to every variance (intensities in [0, 1])


def m_step(p: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = VAR_FLOOR,
           reduce=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form mixture parameters of each image from soft assignments.

    ``p`` (B, K, H, W) class probabilities, ``x`` (B, M, H, W) sequences, ``mask`` (B, H, W) the
    region (None: every pixel). Returns pi (B, K), mu (B, K, M), var (B, K, M) (with ``eps`` added).
    A class with no mass gets mu = 0 and var = eps instead of a division by zero. ``reduce`` (e.g.
    :func:`nbutils.runtime.all_sum`) adds the sums of every process before dividing: the parameters
    of the pixels of all of them.
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
    """log prod_m N(x_im; mu_km, var_km): (B, K, H, W) for x (B, M, H, W), mu and var (B, K, M)."""
    d = x[:, None] - mu[..., None, None]  # (B, K, M, H, W)
    return (-0.5 * (LOG_2PI + torch.log(var))[..., None, None] - d * d / (2 * var[..., None, None])).sum(2)


def nll(log_p: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, variant: str = "deepG",
        eps: float = VAR_FLOOR, distributed: bool = False) -> tuple[torch.Tensor, tuple]:
    """Negative log-likelihood per pixel (mean over the mask's pixels, then over images) of the
    mixture whose parameters are the M-step of ``exp(log_p)``; returns (nll, (pi, mu, var)).

    ``log_p`` (B, K, H, W) are log-probabilities (``log_softmax`` of the network's logits).
    ``distributed`` (one pooled image per process, under torchrun): the M-step and the pixel count run
    over every process's pixels, and the value is scaled so that the gradients DistributedDataParallel
    averages are those of one process holding all the pixels.
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
    """||mu_data - mu||^2 summed over classes and sequences, averaged over images: mu (B, K, M)."""
    return (mu - mu_data.to(mu)).square().sum((1, 2)).mean()


def objective(logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, variant: str = "deepG",
              lam: float = 0.0, mu_data: torch.Tensor | None = None, distributed: bool = False) -> dict:
    """NLL of images x (B, M, H, W) under the M-step of ``softmax(logits)`` (B, K, H, W), plus
    lam * r(mu) when ``mu_data`` (K, M) is given: ``{"loss", "nll"[, "regulariser"]}``
    (``distributed``: see :func:`nll`)."""
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
    """:func:`objective` of a batch ``{"image", "brain"}``: one mixture over all the batch's slices
    (``pool``, the default: a class keeps one meaning across slices, also in slices without a
    lesion), or one per slice (the paper's per-image M-step). Under torchrun the pooled mixture is
    over the global batch: every process's slices."""
    x = batch["image"].float()
    logits, mask = model(x), batch.get("brain")
    if pool:
        logits, x = _one_image(logits), _one_image(x)
        mask = None if mask is None else _one_image(mask[:, None])[:, 0]
    return objective(logits, x, mask, variant, lam, mu_data, distributed=pool and world()[1] > 1)


def check_region(x: np.ndarray, mask: np.ndarray, k: int, name: str = "image") -> None:
    """ValueError when the region holds fewer pixels than classes; a warning for each constant
    sequence (its variance is the floor, so its Gaussians are spikes)."""
    n = int(mask.sum())
    if n < k:
        raise ValueError(f"{name}: the region mask holds {n} pixel(s), fewer than the {k} classes")
    values = np.moveaxis(x, 1, -1)[mask]  # (N, M)
    for m in np.flatnonzero(values.std(0) < 1e-6):
        warnings.warn(f"{name}: sequence {m} is constant inside the region; its variance is floored at {VAR_FLOOR:g}",
                      stacklevel=2)


def em_gmm(x: np.ndarray, k: int, means_init: np.ndarray | None = None, seed: int = 0,
           max_iter: int = 200, tol: float = 1e-3) -> tuple[np.ndarray, float, GaussianMixture]:
    """EM for a diagonal GMM on pixels ``x`` (N, M) (scikit-learn): (labels (N,), NLL per pixel, model).

    ``means_init`` (K, M), e.g. class means from labelled slices, fixes the start.
    """
    gmm = GaussianMixture(k, covariance_type="diag", means_init=means_init, random_state=seed, max_iter=max_iter,
                          tol=tol, reg_covar=VAR_FLOOR, n_init=1 if means_init is not None else 2).fit(x)
    return gmm.predict(x), float(-gmm.score(x)), gmm


def em_svgmm(x: np.ndarray, k: int, *, means_init: np.ndarray | None = None, max_iter: int = 200,
             tol: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """EM for the spatially variant GMM on pixels ``x`` (N, M): every pixel has its own weights.

    E-step: gamma_ik = w_ik N(x_i; mu_k, var_k) / sum_l w_il N(x_i; mu_l, var_l), then w_ik = gamma_ik;
    M-step: mu_k, var_k are the gamma-weighted means and variances (+ the variance floor).
    Starts from k-means++ centres (or ``means_init``) with uniform weights; stops when the NLL per
    pixel changes by less than ``tol``. Returns (gamma (N, K), mu (K, M), var (K, M), NLL history),
    the NLL never increasing.
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
    """mu_data (K, M): the mean of each sequence over the pixels of class 1..K in ``labels`` (S, H, W)
    of labelled slices ``image`` (S, M, H, W); the regulariser's target. A class with no pixel is
    a ValueError."""
    values = np.moveaxis(image, 1, -1)
    missing = [c for c in range(1, k + 1) if not (labels == c).any()]
    if missing:
        raise ValueError(f"the labelled slices hold no pixel of class(es) {missing}")
    return np.stack([values[labels == c].mean(0) for c in range(1, k + 1)]).astype(np.float32)


def build_model(in_channels: int, k: int, widths=(8, 16, 32)) -> torch.nn.Module:
    """The deep GMM network: a U-Net with InstanceNorm and LeakyReLU, K logits per pixel."""
    model = UNetEncoder(in_channels, k, tuple(widths), noise=0.0, norm="instance", activation="leaky")
    model.config = dict(in_channels=in_channels, k=k, widths=list(widths))
    return model


def fit_images(images: np.ndarray, masks: np.ndarray, k: int, variant: str = "deepG", *, tol: float = 1e-3,
               max_epochs: int = 200, lr: float = 1e-2, lam: float = 0.0, mu_data: np.ndarray | None = None,
               device="cpu", seed: int = 0, progress: bool = False) -> tuple[np.ndarray, list[float]]:
    """Per-image mode: a fresh network fitted to ``images`` (S, M, H, W) inside ``masks`` (S, H, W)
    until the NLL per pixel has improved by less than ``tol`` over the last :data:`PATIENCE` steps
    (Adam's steps are noisy: a change between two steps alone stops on the first plateau), or
    ``max_epochs`` steps.

    The S slices are one image (a volume): one mixture over all their mask pixels, one network
    step per pass over them. S = 1 is the paper's per-image mode on a 2D image. ``mu_data`` (K, M)
    with ``lam`` > 0 adds the regulariser. Returns the class probabilities (S, K, H, W) float32 and
    the NLL per step.
    """
    check_region(images, masks, k)
    torch.manual_seed(seed)
    device = torch.device(device)
    model = build_model(images.shape[1], k).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(np.ascontiguousarray(images)).float().to(device)
    batch = {"image": x, "brain": torch.from_numpy(masks).to(device)}
    target = None if mu_data is None else torch.as_tensor(mu_data, dtype=torch.float32, device=device)
    history: list[float] = []
    model.train()
    for _ in tqdm(range(max_epochs), desc=f"{variant} per image", disable=not progress, leave=False):
        terms = loss(model, batch, variant, lam, target)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        history.append(float(terms["nll"].detach()))
        if not math.isfinite(history[-1]):
            raise FloatingPointError(f"{variant}: the NLL became {history[-1]} at step {len(history)}")
        if len(history) > PATIENCE and history[-PATIENCE - 1] - min(history[-PATIENCE:]) < tol:
            break
    return probabilities(model, images), history


@torch.no_grad()
def probabilities(model: torch.nn.Module, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """softmax(model) (S, K, H, W) float32 of slices (S, M, H, W), the model in eval mode."""
    return torch.cat([torch.softmax(out.float(), 1).cpu() for out in batched(model, image, batch_size)]).numpy()


def volume_params(p: np.ndarray, image: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step of probabilities p (S, K, H, W) over all of a volume's ``brain`` pixels (S, H, W)
    of ``image`` (S, M, H, W): pi (K,), mu (K, M), var (K, M) as NumPy arrays."""
    batch = [_one_image(torch.from_numpy(a)) for a in (p, image, brain[:, None])]
    pi, mu, var = m_step(batch[0].float(), batch[1].float(), batch[2][:, 0])
    return pi[0].numpy(), mu[0].numpy(), var[0].numpy()


def hard_labels(p: np.ndarray, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Labels (S, H, W) from class probabilities (S, K, H, W): argmax inside ``brain``, renumbered
    1.. by increasing mean of channel 0 of ``image`` (S, M, H, W) (label-free naming), 0 outside."""
    return metrics.labels_by_brightness(p.argmax(1)[brain], np.moveaxis(image, 1, -1)[brain], brain)


METHOD_NAMES = ("deepG", "deepSVG", "EM-GMM", "EM-SVGMM")


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
               lam: float = 0.0, mu_data: np.ndarray | None = None, device="cpu", seed: int = 0,
               progress: bool = False) -> MixtureFit:
    """One of :data:`METHOD_NAMES` fitted to one volume's brain pixels, timed (deep methods: per-image
    mode on ``device``; EM on the CPU, ``mu_data`` as its start). The NLLs of deepG and EM-GMM are
    of the same model, and those of deepSVG and EM-SVGMM."""
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHOD_NAMES)}")
    start = time.perf_counter()
    if method in VARIANTS:
        p, history = fit_images(volume.image, volume.brain, k, method, tol=tol, max_epochs=max_epochs, lam=lam,
                                mu_data=mu_data, device=device, seed=seed, progress=progress)
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
        progress: bool = True, extra: dict | None = None) -> GMMResult:
    """Trained mode: one network trained on the slices of many volumes (one mixture per batch with
    ``pool``, else per slice; see :func:`loss`) through the shared loop (checkpoint every epoch,
    resumable); apply it to unseen slices with :func:`predict`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    torch.manual_seed(seed)
    model = build_model(dataset.channels, k)
    target = None if mu_data is None else torch.as_tensor(mu_data, dtype=torch.float32)
    rows = train_fit(model, lambda m, batch: loss(m, batch, variant, lam, target, pool), dataset, epochs=epochs,
                     batch_size=batch_size, lr=lr, device=device, checkpoint=checkpoint, resume=resume,
                     method="deepgmm", seed=seed, progress=progress,
                     extra=dict(config=model.config, variant=variant, **(extra or {})))
    return GMMResult(model.eval(), rows, variant)


def predict(result: GMMResult, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Class probabilities (S, K, H, W) float32 of slices (S, M, H, W) from a trained network."""
    return probabilities(result.model, image, batch_size)


def compare_fits(train: list[Volume], test: list[Volume], k: int, *, steps: int = 200, tol: float = 1e-3,
                 epochs: int = 100, batch_size: int = 8, per_image: int | None = None, largest_cc: bool = True,
                 device="cpu", seed: int = 0) -> tuple:
    """The deep GMMs and their EM twins on the same ``test`` volumes, scored per volume.

    deepG and deepSVG per image (a fresh network per volume, on the first ``per_image`` test volumes;
    None: all), the same two trained on ``train`` (``epochs``), and EM-GMM and EM-SVGMM per volume.
    Returns the :func:`nbutils.evaluation.score_volumes` rows of every method and the per-volume
    :class:`MixtureFit` of the per-image fits, keyed by (method, volume name), for figures.
    """
    import pandas as pd

    from nbutils.evaluation import score_volumes

    fits: dict[tuple[str, str], MixtureFit] = {}

    def fitted(name: str):
        def labeller(volume: Volume) -> np.ndarray:
            fits[name, volume.name] = fit_volume(volume, k, name, tol=tol, max_epochs=steps, device=device, seed=seed)
            return fits[name, volume.name].labels
        return labeller

    frames = [score_volumes(fitted(name), test[:per_image], f"{name} (per image)", largest_cc) for name in VARIANTS]
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
    k: int = option(4, "classes", low=2)
    steps: int = option(200, "per-image mode: most network steps per volume", low=1, train=False)
    tol: float = option(1e-3, f"per-image mode: stop when the NLL improved by less than this over {PATIENCE} steps",
                        low=0.0, train=False)
    epochs: int = option(100, "trained mode: epochs over the training slices", low=1, train=False)
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
            p, _ = fit_images(v.image, v.brain, o.k, o.variant, tol=o.tol, max_epochs=o.steps, lr=o.lr,
                              device=device, seed=o.seed, progress=progress)
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
                     checkpoint=checkpoint, seed=o.seed, progress=progress, extra=extra)
        state = dict(config=result.model.config, history=result.history, **extra)
        return DeepGMMModel(self, state, device, result.model)
