"""Figures for the notebooks: slices with overlays, histograms, score tables as plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

TISSUE_COLORS = ListedColormap(["none", "tab:blue", "tab:gray", "wheat"])


def show_slice(image: np.ndarray, ax=None, window: tuple[float, float] = (0.0, 1.0), title: str | None = None,
               contours: dict[str, np.ndarray] | None = None, labels: np.ndarray | None = None, alpha: float = 0.35):
    """One (H, W) slice in grey within the intensity ``window``, optional label map and contours.

    ``contours`` maps a colour to a boolean (H, W) mask drawn as an outline.
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
    """Axial, coronal and sagittal central slices of a canonical (X, Y, Z) volume."""
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
    """Histograms of ``image`` values per label (one colour per class name)."""
    ax = ax or plt.gca()
    for value, name in names.items():
        ax.hist(image[labels == value].ravel(), bins=bins, range=(0, 1), histtype="step", density=True, label=name)
    ax.set_xlabel("intensity")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def slice_gallery(image: np.ndarray, masks: dict[str, np.ndarray] | None = None, n: int = 6,
                  title: str = "", window=(0.0, 1.0)):
    """``n`` evenly spaced slices of an (S, H, W) volume with mask outlines."""
    idx = np.linspace(0, len(image) - 1, min(n, len(image))).round().astype(int)
    fig, axes = plt.subplots(1, len(idx), figsize=(2.2 * len(idx), 2.4), squeeze=False)
    for ax, i in zip(axes[0], idx):
        show_slice(image[i], ax, window, f"{title} slice {i}".strip(), {c: m[i] for c, m in (masks or {}).items()})
    fig.tight_layout()
    return fig


def score_bars(scores: dict[str, list[float]], ylabel: str = "per-volume Dice", ax=None):
    """A strip of per-volume points and a bar of the mean for each method or mode."""
    ax = ax or plt.gca()
    for i, (name, values) in enumerate(scores.items()):
        ax.bar(i, np.mean(values), color="lightsteelblue")
        ax.plot(np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)), values, "k.")
    ax.set_xticks(range(len(scores)), list(scores), rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    return ax
