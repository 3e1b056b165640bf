"""Slider widgets for the notebooks. Each wraps a plain plotting function that also works
without widgets (call it once statically, then wrap it with ``interact``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from nbutils.methods.dcn import DEFAULT_LAM
from nbutils.methods.deepgmm import DEFAULT_INIT, INITS
from nbutils.viz import show_slice

# the ACWE explorer's area weights (in units of the intensity variance) besides the mode's default
NU_STEPS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def plot_scrubbed_slice(volume: np.ndarray, index: int, low: float = 0.0, high: float = 1.0,
                        masks: dict[str, np.ndarray] | None = None, title: str = ""):
    """One slice in an intensity window, with its histogram.

    Parameters
    ----------
    volume : (S, H, W) in [0, 1].
    index : the slice.
    low, high : the window.
    masks : colour -> (S, H, W) bool outlines.
    title : prefix of the title.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.6), gridspec_kw=dict(width_ratios=[1, 1.2]))
    show_slice(volume[index], a, (low, max(high, low + 1e-3)), f"{title} slice {index}".strip(),
               {c: m[index] for c, m in (masks or {}).items()})
    b.hist(volume[index].ravel(), bins=100, range=(0, 1), color="0.4")
    b.axvspan(low, high, color="gold", alpha=0.3, label="window")
    b.set_yscale("log")
    b.set_xlabel("intensity")
    b.legend()
    fig.tight_layout()
    plt.show()


def slice_scrubber(volume: np.ndarray, masks: dict[str, np.ndarray] | None = None, title: str = ""):
    """Sliders for the slice and the intensity window (wraps :func:`plot_scrubbed_slice`).

    Parameters
    ----------
    volume : (S, H, W) in [0, 1].
    masks : colour -> (S, H, W) bool outlines.
    title : prefix of the title.

    Returns
    -------
    the ipywidgets ``interact`` object.
    """
    import ipywidgets as w

    return w.interact(
        plot_scrubbed_slice,
        volume=w.fixed(volume), masks=w.fixed(masks), title=w.fixed(title),
        index=w.IntSlider(len(volume) // 2, 0, len(volume) - 1, description="slice"),
        low=w.FloatSlider(0.0, min=0.0, max=1.0, step=0.01, description="window low"),
        high=w.FloatSlider(1.0, min=0.0, max=1.0, step=0.01, description="window high"),
    )


def plot_reconstruction(images: np.ndarray, recon: np.ndarray, index: int):
    """Input, reconstruction and error of one slice.

    Parameters
    ----------
    images, recon : (S, C, H, W).
    index : the slice.
    """
    from nbutils.viz import reconstructions

    reconstructions(images, recon, [index])
    plt.show()


def reconstruction_viewer(images: np.ndarray, recon: np.ndarray):
    """A slider over the slices of an input/reconstruction pair (wraps :func:`plot_reconstruction`).

    Parameters
    ----------
    images, recon : (S, C, H, W).

    Returns
    -------
    the ipywidgets ``interact`` object.
    """
    import ipywidgets as w

    return w.interact(plot_reconstruction, images=w.fixed(images), recon=w.fixed(recon),
                      index=w.IntSlider(len(images) // 2, 0, len(images) - 1, description="slice"))


def _lesion_panel(ax, volume, lesion: np.ndarray, index: int) -> None:
    """Slice ``index`` with the label-free ``lesion`` (red) and the truth (green), the volume's Dice
    in the title when the truth is known."""
    from nbutils import metrics

    title = "label-free lesion (red) vs truth (green)"
    if volume.target is not None:
        title += f"\nvolume Dice {metrics.dice(lesion, volume.target):.3f}"
    show_slice(volume.flair[index], ax, title=title,
               contours={"red": lesion[index], "lime": None if volume.target is None else volume.target[index]})


def plot_dcn_trial(model, volume, k: int, lam: float, index: int, epochs: int = 1, seed: int = 0,
                   largest_cc: bool = True):
    """Train DCN briefly from a copy of a pretrained autoencoder on one volume and show one slice.

    Parameters
    ----------
    model : the pretrained :class:`nbutils.models.AutoEncoder` (copied, not changed).
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    k, lam : DCN's clusters and clustering weight.
    index : the slice shown: the clusters, and the label-free lesion against the truth.
    epochs, seed : the short training.
    largest_cc : one lesion.
    """
    import copy

    from nbutils import metrics
    from nbutils.data.datasets import SliceDataset
    from nbutils.methods import dcn

    result = dcn.fit(SliceDataset([volume]), k, model=copy.deepcopy(model), lam=lam, epochs=epochs, seed=seed,
                     device=next(model.parameters()).device, progress=False)
    labels = dcn.predict(result, volume.image, volume.brain)
    lesion = metrics.label_free_lesion(labels, volume.flair, volume.brain, largest_cc)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    show_slice(volume.flair[index], axes[0], title=f"DCN clusters, K={k}, lambda={lam:g}", labels=labels[index])
    _lesion_panel(axes[1], volume, lesion, index)
    fig.tight_layout()
    plt.show()


def dcn_explorer(model, volume, epochs: int = 1, largest_cc: bool = True):
    """Sliders for K, lambda (each move re-runs a short DCN training) and the slice.

    Parameters
    ----------
    model : the pretrained autoencoder.
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    epochs : DCN rounds per move.
    largest_cc : one lesion.

    Returns
    -------
    the ipywidgets ``interact`` object.
    """
    import ipywidgets as w

    return w.interact(
        plot_dcn_trial, model=w.fixed(model), volume=w.fixed(volume), epochs=w.fixed(epochs), seed=w.fixed(0),
        largest_cc=w.fixed(largest_cc),
        k=w.IntSlider(4, 2, 8, description="K", continuous_update=False),
        lam=w.FloatLogSlider(DEFAULT_LAM, base=10, min=-5, max=1, description="lambda", continuous_update=False),
        index=w.IntSlider(len(volume.image) // 2, 0, len(volume.image) - 1, description="slice",
                          continuous_update=False),
    )


def plot_acwe_trial(volume, mu: float, nu: float | None, n_labelled: int, index: int, epochs: int = 15, seed: int = 0,
                    largest_cc: bool = True, device="cpu"):
    """Train the ACWE network briefly on one volume and show one slice.

    Parameters
    ----------
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    mu, nu : length and area weights (nu None: the mode's default, :func:`nbutils.methods.acwe.area_weight`).
    n_labelled : 0: mode 1 (unsupervised); otherwise mode 3 (ACWE + Dice on that many labelled slices).
    index : the slice shown: y, and the label-free lesion against the truth.
    epochs, seed, device : the short training.
    largest_cc : one lesion.
    """
    from nbutils import metrics
    from nbutils.data.datasets import SliceDataset
    from nbutils.methods import acwe

    mode = "joint" if n_labelled else "unsupervised"
    nu = acwe.area_weight(nu, mode)
    result = acwe.fit(SliceDataset([volume]), mode=mode, n_labelled=n_labelled, mu=mu, nu=nu,
                      channel=volume.flair_channel, epochs=epochs, seed=seed, device=device, progress=False)
    y = acwe.probabilities(result.model, volume.image)
    lesion = metrics.label_free_lesion(acwe.regions(y, volume.brain), volume.flair, volume.brain, largest_cc)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(np.where(volume.brain[index], y[index], np.nan), cmap="viridis", vmin=0, vmax=1)
    axes[0].set_axis_off()
    axes[0].set_title(f"y, mode {mode}, mu={mu:g}, nu={nu:g}, n={n_labelled}", fontsize=9)
    _lesion_panel(axes[1], volume, lesion, index)
    fig.tight_layout()
    plt.show()


def acwe_explorer(volume, epochs: int = 15, largest_cc: bool = True, device="cpu"):
    """Sliders for mu, nu and the labelled slices (each move re-trains briefly) and the slice.

    nu starts at the mode's default (:func:`nbutils.methods.acwe.area_weight`: 0 once slices are labelled);
    the other stops are :data:`NU_STEPS`.

    Parameters
    ----------
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    epochs : per move.
    largest_cc : one lesion.
    device : where it trains.

    Returns
    -------
    the ipywidgets ``interact`` object.
    """
    import ipywidgets as w

    return w.interact(
        plot_acwe_trial, volume=w.fixed(volume), epochs=w.fixed(epochs), seed=w.fixed(0),
        largest_cc=w.fixed(largest_cc), device=w.fixed(device),
        mu=w.FloatSlider(0.0, min=0.0, max=0.5, step=0.05, description="mu", continuous_update=False),
        nu=w.SelectionSlider(options=[("mode's", None)] + [(f"{v:g}", v) for v in NU_STEPS], index=0,
                             description="nu", continuous_update=False),
        n_labelled=w.IntSlider(0, 0, len(volume.image), description="labelled", continuous_update=False),
        index=w.IntSlider(len(volume.image) // 2, 0, len(volume.image) - 1, description="slice",
                          continuous_update=False),
    )


def plot_hierarchy_level(volume, tree, level: int, index: int, largest_cc: bool = True):
    """One level of a condensation hierarchy on one slice.

    Parameters
    ----------
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    tree : the :class:`nbutils.methods.condensation.Hierarchy` of the volume's brain pixels.
    level : the level shown (clusters named by brightness).
    index : the slice.
    largest_cc : one lesion.
    """
    from nbutils import metrics

    labels = metrics.labels_by_brightness(tree.labels(level), volume.flair[volume.brain][:, None], volume.brain)
    lesion = metrics.label_free_lesion(labels, volume.flair, volume.brain, largest_cc)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    show_slice(volume.flair[index], axes[0], labels=labels[index],
               title=f"level {level} of {len(tree) - 1}: {labels.max()} clusters, eps {tree.eps[level]:.3g}")
    _lesion_panel(axes[1], volume, lesion, index)
    fig.tight_layout()
    plt.show()


def hierarchy_explorer(volume, tree, max_clusters: int = 32, largest_cc: bool = True):
    """Sliders that walk a condensation hierarchy coarse-to-fine, and the slice.

    Parameters
    ----------
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    tree : its :class:`nbutils.methods.condensation.Hierarchy`.
    max_clusters : the finest level offered has at most this many clusters.
    largest_cc : one lesion.

    Returns
    -------
    the ipywidgets ``interact`` object.
    """
    import ipywidgets as w

    top = len(tree) - 1
    finest = int(np.flatnonzero(tree.n_clusters() <= max_clusters)[0])

    def show(finer: int, index: int):
        plot_hierarchy_level(volume, tree, top - finer, index, largest_cc)

    return w.interact(
        show,
        finer=w.IntSlider(0, 0, top - finest, description="coarse-to-fine", continuous_update=False),
        index=w.IntSlider(len(volume.image) // 2, 0, len(volume.image) - 1, description="slice",
                          continuous_update=False),
    )


def plot_gmm_trial(volume, index: int, k: int, lam: float, tol: float, mu_data: np.ndarray | None = None,
                   variant: str = "deepG", max_epochs: int = 200, init: str = DEFAULT_INIT, device="cpu"):
    """Fit a fresh deep GMM to one slice (the paper's per-image mode) and show it.

    Parameters
    ----------
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    index : the slice fitted and shown.
    k : classes.
    lam, mu_data : the regulariser, used when ``mu_data`` (K, M) has ``k`` rows.
    tol, max_epochs : stopping.
    variant : ``deepG`` or ``deepSVG``.
    init : where the network starts (:func:`nbutils.methods.deepgmm.start_labels`).
    device : where it fits.

    Shows the classes, the NLL per step and the mixture fitted to FLAIR.
    """
    from nbutils.methods import deepgmm
    from nbutils.viz import mixture_over_histogram

    image, brain = volume.image[index : index + 1], volume.brain[index : index + 1]
    target = mu_data if mu_data is not None and len(mu_data) == k else None
    p, history = deepgmm.fit_images(image, brain, k, variant, tol=tol, max_epochs=max_epochs, lam=lam,
                                    mu_data=target, init_labels=deepgmm.start_labels(image, brain, k, init),
                                    device=device)
    labels = deepgmm.hard_labels(p, image, brain)[0]
    pi, mu, var = deepgmm.volume_params(p, image, brain)
    c = volume.flair_channel
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    show_slice(volume.flair[index], axes[0], labels=labels,
               title=f"{variant}, K={k}, lambda={lam:g}{'' if target is not None else ' (no mu_data)'}")
    axes[1].plot(history)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("NLL per pixel")
    axes[1].set_title(f"{len(history)} steps (tol {tol:g})", fontsize=9)
    mixture_over_histogram(image[0, c][brain[0]], pi, mu[:, c], var[:, c], axes[2], title="FLAIR: fitted Gaussians")
    fig.tight_layout()
    plt.show()


def gmm_explorer(volume, mu_data: np.ndarray | None = None, variant: str = "deepG", device="cpu"):
    """Sliders for K, lambda, tol and the start (each move fits a fresh network to one slice) and the slice.

    Parameters
    ----------
    volume : :class:`nbutils.data.datasets.Volume` (with ``target`` for the Dice in the title).
    mu_data : class means for the regulariser, or None.
    variant : ``deepG`` or ``deepSVG``.
    device : where it fits.

    Returns
    -------
    the ipywidgets ``interact`` object.
    """
    import ipywidgets as w

    return w.interact(
        plot_gmm_trial, volume=w.fixed(volume), mu_data=w.fixed(mu_data), variant=w.fixed(variant),
        max_epochs=w.fixed(200), device=w.fixed(device),
        k=w.IntSlider(4, 2, 8, description="K", continuous_update=False),
        lam=w.FloatLogSlider(1.0, base=10, min=-2, max=2, description="lambda", continuous_update=False),
        tol=w.FloatLogSlider(1e-3, base=10, min=-5, max=-1, description="tol", continuous_update=False),
        init=w.Dropdown(options=list(INITS), value=DEFAULT_INIT, description="start"),
        index=w.IntSlider(len(volume.image) // 2, 0, len(volume.image) - 1, description="slice",
                          continuous_update=False),
    )
