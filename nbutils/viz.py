"""Figures for the notebooks: slices with overlays, histograms, score tables as plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

TISSUE_COLORS = ListedColormap(["none", "tab:blue", "tab:gray", "wheat"])


def show_slice(image: np.ndarray, ax=None, window: tuple[float, float] = (0.0, 1.0), title: str | None = None,
               contours: dict[str, np.ndarray] | None = None, labels: np.ndarray | None = None, alpha: float = 0.35):
    """One slice in grey with optional labels and contours.

    Parameters
    ----------
    image : (H, W).
    ax : matplotlib axes (None: the current ones).
    window : intensities shown from black to white.
    title : axes title.
    contours : colour -> (H, W) bool mask drawn as an outline (None masks are skipped).
    labels : (H, W) int overlay (0 transparent).
    alpha : overlay opacity.

    Returns
    -------
    the axes.
    """
    ax = ax or plt.gca()
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    if labels is not None:
        ax.imshow(np.ma.masked_equal(labels, 0), cmap="tab10", alpha=alpha, interpolation="nearest",
                  vmin=0, vmax=9)
    for color, mask in (contours or {}).items():
        if np.any(mask):
            ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def orthogonal_views(volume: np.ndarray, title: str = "", labels: np.ndarray | None = None):
    """Axial, coronal and sagittal central slices of a volume.

    Parameters
    ----------
    volume : (X, Y, Z) canonical.
    title : prefix of each panel's title.
    labels : (X, Y, Z) int overlay.

    Returns
    -------
    matplotlib figure.
    """
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    centre = [s // 2 for s in volume.shape]
    cuts = [(np.rot90(volume[:, :, centre[2]]), "axial", 2), (np.rot90(volume[:, centre[1], :]), "coronal", 1),
            (np.rot90(volume[centre[0], :, :]), "sagittal", 0)]
    for ax, (cut, name, axis) in zip(axes, cuts):
        lab = None if labels is None else np.rot90(np.take(labels, centre[axis], axis=axis))
        show_slice(cut, ax, window=(0, float(volume.max())), title=f"{title} {name}".strip(), labels=lab)
    fig.tight_layout()
    return fig


def class_histograms(image: np.ndarray, labels: np.ndarray, names: dict[int, str], ax=None, bins: int = 80):
    """Histograms of intensities per class.

    Parameters
    ----------
    image : array of intensities in [0, 1].
    labels : int array of its shape.
    names : class value -> name.
    ax : matplotlib axes (None: the current ones).
    bins : histogram bins.

    Returns
    -------
    the axes.
    """
    ax = ax or plt.gca()
    for value, name in names.items():
        ax.hist(image[labels == value].ravel(), bins=bins, range=(0, 1), histtype="step", density=True, label=name)
    ax.set_xlabel("intensity")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def slice_gallery(image: np.ndarray, masks: dict[str, np.ndarray] | None = None, n: int = 6,
                  title: str = "", window=(0.0, 1.0)):
    """Evenly spaced slices of a volume with mask outlines.

    Parameters
    ----------
    image : (S, H, W).
    masks : colour -> (S, H, W) bool.
    n : slices shown.
    title : prefix of the titles.
    window : intensity window.

    Returns
    -------
    matplotlib figure.
    """
    idx = np.linspace(0, len(image) - 1, min(n, len(image))).round().astype(int)
    fig, axes = plt.subplots(1, len(idx), figsize=(2.2 * len(idx), 2.4), squeeze=False)
    for ax, i in zip(axes[0], idx):
        show_slice(image[i], ax, window, f"{title} slice {i}".strip(), {c: m[i] for c, m in (masks or {}).items()})
    fig.tight_layout()
    return fig


def brain_masks(volumes, n: int = 4, window=(0.0, 1.0)):
    """Brain masks over several volumes, one row each.

    Parameters
    ----------
    volumes : :class:`nbutils.data.datasets.Volume` objects.
    n : slices per row (evenly spaced through the lesion when it spans enough slices).
    window : intensity window.

    Returns
    -------
    matplotlib figure: FLAIR with the brain mask (yellow) and the true lesion (red); each row's title says
    how the mask was made and the share of the lesion it keeps.
    """
    from nbutils import metrics

    fig, axes = plt.subplots(len(volumes), n, figsize=(2.3 * n, 2.5 * len(volumes)), squeeze=False)
    for row, v in zip(axes, volumes):
        lesion_slices = np.flatnonzero(v.target.any((1, 2))) if v.target is not None else []
        span = lesion_slices if len(lesion_slices) >= n else np.arange(len(v.image))
        idx = span[np.linspace(0, len(span) - 1, n).round().astype(int)]
        kept = "" if v.target is None else f", keeps {100 * metrics.lesion_kept(v.brain, v.target):.1f}% of the lesion"
        for ax, i in zip(row, idx):
            show_slice(v.flair[i], ax, window, contours={"yellow": v.brain[i],
                                                         "red": None if v.target is None else v.target[i]})
        row[0].set_title(f"{v.name}: {v.brain_mode}{kept}", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def score_bars(scores: dict[str, list[float]], ylabel: str = "per-volume Dice", ax=None):
    """Per-volume points and a bar of the mean for each method or mode.

    Parameters
    ----------
    scores : name -> per-volume values in [0, 1].
    ylabel : y-axis label.
    ax : matplotlib axes (None: the current ones).

    Returns
    -------
    the axes.
    """
    ax = ax or plt.gca()
    for i, (name, values) in enumerate(scores.items()):
        ax.bar(i, np.mean(values), color="lightsteelblue")
        ax.plot(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, "k.")
    ax.set_xticks(range(len(scores)), list(scores), rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    return ax


def loss_curves(history: list[dict], keys=None, ax=None, log: bool = True):
    """Per-epoch losses from a training history, one line per key.

    Parameters
    ----------
    history : list of dicts (one per epoch).
    keys : the entries drawn (None: every float entry).
    ax : matplotlib axes (None: the current ones).
    log : logarithmic y axis.

    Returns
    -------
    the axes.
    """
    ax = ax or plt.gca()
    keys = keys or [k for k, v in history[0].items() if isinstance(v, float)]
    for key in keys:
        ax.plot([h.get(key, np.nan) for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_yscale("log" if log else "linear")
    ax.legend()
    return ax


def reconstructions(images: np.ndarray, recon: np.ndarray, indices, channel: int = 0):
    """Input, reconstruction and absolute error of some slices.

    Parameters
    ----------
    images, recon : (S, C, H, W).
    indices : the slices shown, one row each.
    channel : the channel shown.

    Returns
    -------
    matplotlib figure.
    """
    fig, axes = plt.subplots(len(indices), 3, figsize=(7.5, 2.5 * len(indices)), squeeze=False)
    for row, i in zip(axes, indices):
        show_slice(images[i, channel], row[0], title=f"input {i}")
        show_slice(recon[i, channel], row[1], title="reconstruction")
        row[2].imshow(np.abs(images[i, channel] - recon[i, channel]), cmap="magma", vmin=0, vmax=0.2)
        row[2].set_axis_off()
        row[2].set_title("|error| (0 to 0.2)", fontsize=9)
    fig.tight_layout()
    return fig


def feature_pca(z: np.ndarray, mask: np.ndarray | None = None, ax=None, title: str = "features: PCA 1-3 as RGB"):
    """The first three principal components of per-pixel features as RGB (fewer than three features: the
    missing colours stay black).

    Parameters
    ----------
    z : (D, H, W) features.
    mask : (H, W) bool; black outside (None: every pixel).
    ax : matplotlib axes (None: the current ones).
    title : axes title.

    Returns
    -------
    the axes.
    """
    from sklearn.decomposition import PCA

    ax = ax or plt.gca()
    d, h, w = z.shape
    flat = z.reshape(d, -1).T
    pcs = np.zeros((len(flat), 3))
    pcs[:, : min(3, d)] = PCA(min(3, d)).fit_transform(flat)
    lo, hi = np.percentile(pcs, [1, 99], axis=0)
    rgb = np.clip((pcs - lo) / (hi - lo + 1e-12), 0, 1).reshape(h, w, 3)
    if mask is not None:
        rgb[~mask] = 0
    ax.imshow(rgb)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return ax


def mixture_over_histogram(values: np.ndarray, pi: np.ndarray, mu: np.ndarray, var: np.ndarray, ax=None,
                           title: str = "", bins: int = 100):
    """A fitted 1D mixture over a histogram.

    Parameters
    ----------
    values : (N,) intensities.
    pi, mu, var : (K,) one sequence of the fitted model: components pi_k N(x; mu_k, var_k) and their sum are
        drawn as densities.
    ax : matplotlib axes (None: the current ones).
    title : axes title.
    bins : histogram bins.

    Returns
    -------
    the axes.
    """
    ax = ax or plt.gca()
    ax.hist(values, bins=bins, density=True, color="0.8")
    x = np.linspace(values.min(), values.max(), 400)[:, None]
    components = pi * np.exp(-((x - mu) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)  # (400, K)
    for k in np.argsort(mu):
        ax.plot(x[:, 0], components[:, k], lw=1.2, label=f"mu={mu[k]:.2f}")
    ax.plot(x[:, 0], components.sum(1), "k--", lw=1, label="mixture")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("intensity")
    ax.legend(fontsize=7)
    return ax
