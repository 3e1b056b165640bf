"""Deep Gaussian mixture models (deepG, deepSVG) and their EM baselines.

Schwab, Mayr, Haltmeier, "Deep Gaussian mixture model for unsupervised image segmentation", 2024
(DESIGN 4.5). A U-Net maps the M-sequence image to class probabilities p_ik (softmax over K).
Inside the loss a closed-form M-step over the pixels of a region mask gives, per image,

    pi_k = mean_i p_ik,  mu_km = sum_i p_ik x_im / sum_i p_ik,
    var_km = sum_i p_ik (x_im - mu_km)^2 / sum_i p_ik + eps,

and the network minimises the negative log-likelihood of the image under the mixture:

    deepG:   NLL = -mean_i log sum_k pi_k prod_m N(x_im; mu_km, var_km)
    deepSVG: NLL = -mean_i log sum_k p_ik prod_m N(x_im; mu_km, var_km)   (spatially variant weights)

plus lambda * ||mu_data - mu(p)||^2 when class means from a few labelled slices are given.
Everything is computed in log space (logsumexp). The EM baselines fit the same two models to the
same pixels: scikit-learn's GaussianMixture (diagonal) and :func:`em_svgmm`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)
VARIANTS = ("deepG", "deepSVG")
VAR_FLOOR = 1e-6  # added to every variance (intensities in [0, 1])


def m_step(p: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None,
           eps: float = VAR_FLOOR) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form mixture parameters of each image from soft assignments.

    ``p`` (B, K, H, W) class probabilities, ``x`` (B, M, H, W) sequences, ``mask`` (B, H, W) the
    region (None: every pixel). Returns pi (B, K), mu (B, K, M), var (B, K, M) (with ``eps`` added).
    A class with no mass gets mu = 0 and var = eps instead of a division by zero.
    """
    w = p if mask is None else p * mask[:, None].to(p.dtype)
    mass = w.sum((2, 3))  # (B, K)
    pixels = mass.sum(1, keepdim=True)
    safe = mass.clamp_min(1e-12)[..., None]
    mu = torch.einsum("bkhw,bmhw->bkm", w, x) / safe
    second = torch.einsum("bkhw,bmhw->bkm", w, x * x) / safe
    var = (second - mu * mu).clamp_min(0) + eps
    return mass / pixels.clamp_min(1e-12), mu, var


def log_gaussians(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log prod_m N(x_im; mu_km, var_km): (B, K, H, W) for x (B, M, H, W), mu and var (B, K, M)."""
    d = x[:, None] - mu[..., None, None]  # (B, K, M, H, W)
    return (-0.5 * (LOG_2PI + torch.log(var))[..., None, None] - d * d / (2 * var[..., None, None])).sum(2)


def nll(log_p: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, variant: str = "deepG",
        eps: float = VAR_FLOOR) -> tuple[torch.Tensor, tuple]:
    """Negative log-likelihood per pixel (mean over the mask's pixels, then over images) of the
    mixture whose parameters are the M-step of ``exp(log_p)``; returns (nll, (pi, mu, var)).

    ``log_p`` (B, K, H, W) are log-probabilities (``log_softmax`` of the network's logits).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    params = m_step(log_p.exp(), x, mask, eps)
    pi, mu, var = params
    weights = torch.log(pi.clamp_min(1e-12))[..., None, None] if variant == "deepG" else log_p
    ll = torch.logsumexp(weights + log_gaussians(x, mu, var), dim=1)  # (B, H, W)
    if mask is None:
        return -ll.mean(), params
    m = mask.to(ll.dtype)
    return -((ll * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)).mean(), params


def mean_regulariser(mu: torch.Tensor, mu_data: torch.Tensor) -> torch.Tensor:
    """||mu_data - mu||^2 summed over classes and sequences, averaged over images: mu (B, K, M)."""
    return (mu - mu_data.to(mu)).square().sum((1, 2)).mean()


def loss(model: torch.nn.Module, batch: dict, variant: str = "deepG", lam: float = 0.0,
         mu_data: torch.Tensor | None = None) -> dict:
    """NLL (+ lam * r(mu) when ``mu_data`` (K, M) is given) of a batch ``{"image", "brain"}``."""
    x = batch["image"].float()
    log_p = F.log_softmax(model(x).float(), dim=1)
    value, (_, mu, _) = nll(log_p, x, batch.get("brain"), variant)
    terms = {"nll": value}
    if mu_data is not None and lam > 0:
        terms["regulariser"] = mean_regulariser(mu, mu_data)
        value = value + lam * terms["regulariser"]
    return {"loss": value, **terms}


def check_region(x: np.ndarray, mask: np.ndarray, k: int, name: str = "image") -> None:
    """ValueError when the region holds fewer pixels than classes; a warning for each constant
    sequence (its variance is the floor, so its Gaussians are spikes)."""
    import warnings

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


def build_model(in_channels: int, k: int, widths=(16, 32, 64)) -> torch.nn.Module:
    """The deep GMM network: a U-Net with InstanceNorm and LeakyReLU, K logits per pixel."""
    from nbutils.models import UNetEncoder

    return UNetEncoder(in_channels, k, tuple(widths), noise=0.0, norm="instance", activation="leaky")


def fit_image(image: np.ndarray, mask: np.ndarray, k: int, variant: str = "deepG", *, tol: float = 1e-3,
              max_epochs: int = 200, lr: float = 1e-3, lam: float = 0.0, mu_data: np.ndarray | None = None,
              device="cpu", seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Per-image mode: a fresh network fitted to one image (C, H, W) inside ``mask`` (H, W) until the
    NLL changes by less than ``tol`` between steps or ``max_epochs`` steps have run.

    Returns the class probabilities (K, H, W) and the NLL per step.
    """
    check_region(image[None], mask[None], k)
    torch.manual_seed(seed)
    device = torch.device(device)
    model = build_model(image.shape[0], k).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batch = {"image": torch.from_numpy(image[None]).float().to(device), "brain": torch.from_numpy(mask[None]).to(device)}
    target = None if mu_data is None else torch.as_tensor(mu_data, dtype=torch.float32, device=device)
    history: list[float] = []
    model.train()
    for _ in range(max_epochs):
        terms = loss(model, batch, variant, lam, target)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        history.append(float(terms["nll"].detach()))
        if len(history) > 1 and abs(history[-2] - history[-1]) < tol:
            break
    with torch.no_grad():
        p = torch.softmax(model(batch["image"]).float(), 1)[0]
    return p.cpu().numpy(), history
