"""Segmentation metrics and the two ways of naming clusters (label-free and oracle).

Per-volume Dice: pass the stacked slices of one patient, not one slice at a time.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage import morphology
from sklearn.metrics import adjusted_rand_score

from nbutils.data.preprocessing import largest_component


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice overlap 2|A and B| / (|A| + |B|) of two boolean masks of the same shape.

    Parameters
    ----------
    pred, target : bool arrays of one shape, e.g. (S, H, W): the stacked slices of one volume
        (per-volume Dice), not one slice at a time.

    Returns
    -------
    float in [0, 1]: 1.0 when both are empty, 0.0 when only one is.

    References
    ----------
    Dice, "Measures of the amount of ecologic association between species", Ecology 26, 1945,
    doi:10.2307/1932409.
    """
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {target.shape}")
    total = pred.sum() + target.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, target).sum() / total)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, target: np.ndarray, percentile: float = 95.0, spacing=None) -> float:
    """Percentile of the symmetric surface distances between two masks.

    Parameters
    ----------
    pred, target : bool arrays of one shape (2D or 3D). Surfaces are the mask pixels with a background
        neighbour (face connectivity).
    percentile : 95 (HD95) by default; 100 is the Hausdorff distance.
    spacing : voxel size per axis (e.g. mm); None: pixels.

    Returns
    -------
    float: the distance in pixels (or ``spacing`` units); 0.0 when both are empty, ``inf`` when only one is.
    """
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float("inf")
    sp, st = _surface(pred), _surface(target)
    to_target = ndimage.distance_transform_edt(~st, sampling=spacing)[sp]
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)[st]
    return float(np.percentile(np.concatenate([to_target, to_pred]), percentile))


def ari(labels: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Adjusted Rand index of two label maps: 1 for the same partition, about 0 for chance.

    Parameters
    ----------
    labels, target : integer arrays of one shape.
    mask : bool array of that shape; only its pixels count (None: all).

    Returns
    -------
    float (Hubert & Arabie, Journal of Classification 2, 1985, doi:10.1007/BF01908075; scikit-learn's).
    """
    labels, target = np.asarray(labels), np.asarray(target)
    if mask is not None:
        labels, target = labels[mask], target[mask]
    return float(adjusted_rand_score(target.ravel(), labels.ravel()))


def hungarian_match(labels: np.ndarray, target: np.ndarray) -> dict[int, int]:
    """ORACLE naming: the one-to-one map cluster -> class that maximises the overlap.

    Parameters
    ----------
    labels : integer array, cluster ids.
    target : integer array of the same shape, ground-truth classes.

    Returns
    -------
    dict cluster id -> class id (Hungarian algorithm on the contingency table; Kuhn, Naval Research
    Logistics Quarterly 2, 1955). Clusters left over when there are more clusters than classes are not in it.
    """
    clusters, classes = np.unique(labels), np.unique(target)
    table = np.zeros((len(clusters), len(classes)), np.int64)
    li = np.searchsorted(clusters, labels.ravel())
    ti = np.searchsorted(classes, target.ravel())
    np.add.at(table, (li, ti), 1)
    rows, cols = linear_sum_assignment(-table)
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}


def relabel(labels: np.ndarray, mapping: dict[int, int], fill: int = 0) -> np.ndarray:
    """Apply a cluster -> class map.

    Parameters
    ----------
    labels : integer array of cluster ids.
    mapping : dict cluster id -> class id (e.g. :func:`hungarian_match`'s).
    fill : the class of clusters not in ``mapping``.

    Returns
    -------
    int64 array of ``labels``' shape.
    """
    out = np.full(labels.shape, fill, dtype=np.int64)
    for cluster, cls in mapping.items():
        out[labels == cluster] = cls
    return out


def labels_by_brightness(assign: np.ndarray, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Label-free naming of clusters: renumber them by increasing mean intensity.

    Parameters
    ----------
    assign : (N,) int, the cluster of each pixel inside ``mask``.
    features : (N, C) the pixels' values; clusters are ordered by the mean of feature 0.
    mask : (S, H, W) bool, where the N pixels are.

    Returns
    -------
    (S, H, W) int64: 1..n (n clusters present, 1 the darkest), 0 outside ``mask``.
    """
    out = np.zeros(mask.shape, np.int64)
    if assign.size == 0:
        return out
    clusters = np.unique(assign)
    order = np.argsort([features[assign == c, 0].mean() for c in clusters])
    rank = np.empty(assign.max() + 1, np.int64)
    rank[clusters[order]] = np.arange(1, len(clusters) + 1)
    out[mask] = rank[assign]
    return out


def oracle_lesion(labels: np.ndarray, target: np.ndarray) -> np.ndarray:
    """ORACLE lesion: the cluster Hungarian-matched to the lesion (uses the ground truth).

    Parameters
    ----------
    labels : (S, H, W) int cluster ids.
    target : (S, H, W) bool lesion ground truth.

    Returns
    -------
    (S, H, W) bool.
    """
    mapping = hungarian_match(labels, np.asarray(target, bool).astype(np.int64))
    return relabel(labels, mapping) == 1


LESION_Z = 2.0  # clusters whose mean FLAIR is this many robust SDs above the brain's median join the lesion
OPENING = 0.02  # opening radius of the one-lesion rule, as a share of the brain's diameter (about 3 px at 256)


def robust_z(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Robust z-scores: (values - median) / (1.4826 MAD) of ``reference``.

    Parameters
    ----------
    values : array of any shape.
    reference : 1D array whose median and median absolute deviation (scaled by 1.4826, a normal's SD)
        set the scale.

    Returns
    -------
    float array of ``values``' shape.

    References
    ----------
    Hampel, "The influence curve and its role in robust estimation", JASA 69, 1974, doi:10.2307/2285666.
    """
    median = np.median(reference)
    mad = 1.4826 * np.median(np.abs(reference - median))
    return (np.asarray(values, float) - median) / max(mad, 1e-12)


def brain_diameter(brain: np.ndarray) -> float:
    """Equivalent diameter of the largest slice of a brain mask.

    Parameters
    ----------
    brain : (S, H, W) bool.

    Returns
    -------
    float: 2 sqrt(area / pi) of the slice with the most brain pixels, in pixels.
    """
    return float(2 * np.sqrt(brain.reshape(len(brain), -1).sum(1).max() / np.pi))


def compact_component(mask: np.ndarray, radius: int) -> np.ndarray:
    """The one compact blob of a mask.

    Each slice is opened with a disk of ``radius`` pixels (thin ribbons such as cortex go), the largest
    3D component of what is left is kept, and it gets back the ``mask`` pixels within ``radius`` of it
    (its own border).

    Parameters
    ----------
    mask : (S, H, W) bool.
    radius : opening radius in pixels (at least 1).

    Returns
    -------
    (S, H, W) bool; the largest 3D component of ``mask`` when nothing survives the opening.
    """
    disk = morphology.disk(max(int(radius), 1))[None]
    opened = ndimage.binary_opening(mask, disk)
    if not opened.any():
        return largest_component(mask)
    return mask & ndimage.binary_dilation(largest_component(opened), disk)


def lesion_clusters(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, z: float | None = LESION_Z) -> np.ndarray:
    """The clusters the label-free rule calls lesion.

    Parameters
    ----------
    labels, flair, brain : (S, H, W) arrays of one volume: cluster ids, FLAIR intensities, brain mask.
    z : clusters whose mean FLAIR is at least ``z`` robust SDs above the brain's median (:func:`robust_z`)
        join the brightest one; None: the brightest alone.

    Returns
    -------
    (n,) int: the lesion clusters' ids.
    """
    inside = labels[brain]
    clusters = np.unique(inside)
    values = flair[brain]
    means = np.array([values[inside == c].mean() for c in clusters])
    hyper = np.zeros(len(clusters), bool) if z is None else robust_z(means, values) >= z
    hyper[int(np.argmax(means))] = True
    return clusters[hyper]


def label_free_lesion(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, largest_cc: bool = True, *,
                      z: float | None = LESION_Z, opening: float = OPENING) -> np.ndarray:
    """LABEL-FREE lesion mask of a cluster map: no ground truth used.

    Parameters
    ----------
    labels, flair, brain : (S, H, W) arrays of one volume: cluster ids, the FLAIR channel (or the
        channel the rule reads) and the brain mask.
    largest_cc : one lesion (a glioma): keep the compact blob of the lesion clusters
        (:func:`compact_component`); False (many small lesions, as in MS): every lesion-cluster pixel.
    z : clusters this many robust SDs above the brain's median join the brightest (:func:`lesion_clusters`).
    opening : the opening radius of :func:`compact_component` as a share of the :func:`brain_diameter`
        (0: the plain largest connected component).

    Returns
    -------
    (S, H, W) bool: the pixels of :func:`lesion_clusters` inside ``brain``, reduced to one blob with
    ``largest_cc``. The defaults were chosen on 18 LGG patients and reported on 13 others
    (``benchmarks/frontend.py``).
    """
    labels, brain = np.asarray(labels), np.asarray(brain, bool)
    if not brain.any():
        return np.zeros(labels.shape, bool)
    lesion = brain & np.isin(labels, lesion_clusters(labels, np.asarray(flair), brain, z))
    if not largest_cc:
        return lesion
    if opening <= 0:
        return largest_component(lesion)
    return compact_component(lesion, round(opening * brain_diameter(brain)))


def summary(values) -> dict[str, float]:
    """Mean, median, standard deviation and count of per-volume scores.

    Parameters
    ----------
    values : iterable of floats; NaN and inf are left out of the statistics.

    Returns
    -------
    dict with ``mean``, ``median``, ``std`` and ``n`` (every value, finite or not).
    """
    values = np.asarray(list(values), float)
    finite = values[np.isfinite(values)]
    return dict(
        mean=float(finite.mean()) if finite.size else float("nan"),
        median=float(np.median(finite)) if finite.size else float("nan"),
        std=float(finite.std()) if finite.size else float("nan"),
        n=int(values.size),
    )


def ratio_interval(deep, twin, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of two methods' mean scores over the same volumes, with a paired bootstrap interval.

    Parameters
    ----------
    deep, twin : (N,) per-volume scores of two methods, the same volume at the same index.
    level : the interval's coverage.
    n_boot : bootstrap resamples of the N volumes (with replacement, pairs kept together).
    seed : the resampling.

    Returns
    -------
    (mean(deep) / mean(twin), lower, upper): the percentile interval of the resampled ratios; a resample
    whose twin mean is 0 counts as an infinite ratio (0 / 0 is left out). NaN for no volumes.

    References
    ----------
    Efron & Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall 1993, ch. 13 (percentile interval).
    """
    deep, twin = np.asarray(deep, float), np.asarray(twin, float)
    if deep.shape != twin.shape or deep.ndim != 1:
        raise ValueError(f"deep and twin must be paired 1-d scores, got shapes {deep.shape} and {twin.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if deep.size == 0:
        return (float("nan"),) * 3
    picks = np.random.default_rng(seed).integers(deep.size, size=(n_boot, deep.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = deep.mean() / twin.mean()
        resampled = deep[picks].mean(1) / twin[picks].mean(1)
    resampled = resampled[~np.isnan(resampled)]
    if resampled.size == 0:
        return float(ratio), float("nan"), float("nan")
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(ratio), float(low), float(high)


def lesion_kept(brain: np.ndarray | None, target: np.ndarray) -> float:
    """Share of the true lesion inside the brain mask.

    Parameters
    ----------
    brain : (S, H, W) bool, or None when no mask was recorded.
    target : (S, H, W) bool lesion ground truth.

    Returns
    -------
    float in [0, 1]: 1.0 for an empty lesion, NaN without a mask.
    """
    if brain is None:
        return float("nan")
    target = np.asarray(target, bool)
    return 1.0 if not target.any() else float((np.asarray(brain, bool) & target).sum() / target.sum())


def scores(labels: np.ndarray, lesion: np.ndarray, target: np.ndarray, brain: np.ndarray | None = None) -> dict:
    """Per-volume scores of one segmentation of one volume.

    Parameters
    ----------
    labels : (S, H, W) int cluster ids (0 outside the brain).
    lesion : (S, H, W) bool, the lesion named among ``labels`` (label-free, or a supervised method's own).
    target : (S, H, W) bool lesion ground truth.
    brain : (S, H, W) bool brain mask used, or None.

    Returns
    -------
    dict: ``dice_label_free`` and ``hd95_label_free`` (pixels) of ``lesion``; ``dice_oracle`` of the
    cluster Hungarian-matched to the lesion; ``lesion_kept`` by ``brain``.
    """
    return dict(
        dice_label_free=dice(lesion, target),
        hd95_label_free=hd95(lesion, target),
        dice_oracle=dice(oracle_lesion(labels, target), target),
        lesion_kept=lesion_kept(brain, target),
    )


def lesion_scores(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, target: np.ndarray,
                  largest_cc: bool = True) -> dict[str, float]:
    """:func:`scores` of a cluster map whose lesion is named by :func:`label_free_lesion`.

    Parameters
    ----------
    labels, flair, brain, target : (S, H, W) arrays of one volume.
    largest_cc : one lesion (see :func:`label_free_lesion`).

    Returns
    -------
    dict, see :func:`scores`.
    """
    return scores(labels, label_free_lesion(labels, flair, brain, largest_cc), target, brain)


def tissue_dice(labels: np.ndarray, tissue: np.ndarray, mask: np.ndarray, names: dict[int, str],
                oracle: bool = False) -> dict[str, float]:
    """Dice per tissue class inside a mask.

    Parameters
    ----------
    labels : int array, cluster ids; label-free, cluster ``c`` is class ``c`` (clusters numbered by
        intensity order must then follow the class order, e.g. CSF < GM < WM on T1).
    tissue : int array of the same shape, the reference classes.
    mask : bool array of the same shape: the pixels that count.
    names : dict class value -> name.
    oracle : Hungarian-match the clusters to the classes first.

    Returns
    -------
    dict name -> Dice.
    """
    pred, truth = labels[mask], tissue[mask]
    if oracle:
        pred = relabel(pred, hungarian_match(pred, truth), fill=-1)
    return {name: dice(pred == value, truth == value) for value, name in names.items()}
