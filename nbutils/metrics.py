"""Segmentation metrics and the two ways of naming clusters (label-free and oracle).

Per-volume Dice: pass the stacked slices of one patient, not one slice at a time.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from nbutils.data.preprocessing import largest_component


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice overlap 2|A and B| / (|A| + |B|) of two boolean masks of the same shape.

    Both empty counts as a perfect match (1.0), one empty as 0.0.
    """
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {target.shape}")
    total = pred.sum() + target.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, target).sum() / total)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, target: np.ndarray, percentile: float = 95.0, spacing=None) -> float:
    """95th percentile of the symmetric surface distances between two masks, in pixels.

    Surfaces are the mask pixels with a background neighbour (face connectivity); distances are
    Euclidean, scaled by ``spacing`` per axis when given. ``percentile=100`` is the Hausdorff
    distance. Both empty: 0.0; one empty: ``inf``.
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
    """Adjusted Rand index of two label maps (over ``mask`` when given); 1 = same partition."""
    labels, target = np.asarray(labels), np.asarray(target)
    if mask is not None:
        labels, target = labels[mask], target[mask]
    return float(adjusted_rand_score(target.ravel(), labels.ravel()))


def hungarian_match(labels: np.ndarray, target: np.ndarray) -> dict[int, int]:
    """ORACLE naming: the one-to-one map cluster -> class that maximises the overlap.

    Uses the ground truth (Hungarian algorithm on the contingency table). Clusters left over
    when there are more clusters than classes are not in the map.
    """
    clusters, classes = np.unique(labels), np.unique(target)
    table = np.zeros((len(clusters), len(classes)), np.int64)
    li = np.searchsorted(clusters, labels.ravel())
    ti = np.searchsorted(classes, target.ravel())
    np.add.at(table, (li, ti), 1)
    rows, cols = linear_sum_assignment(-table)
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}


def relabel(labels: np.ndarray, mapping: dict[int, int], fill: int = 0) -> np.ndarray:
    """Apply a cluster -> class map; clusters not in it get ``fill``."""
    out = np.full(labels.shape, fill, dtype=np.int64)
    for cluster, cls in mapping.items():
        out[labels == cluster] = cls
    return out


def labels_by_brightness(assign: np.ndarray, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Label-free naming of clusters: cluster ids ``assign`` (N,) of the pixels inside ``mask``
    (S, H, W), with their ``features`` (N, C), renumbered 1..n by increasing mean of feature 0;
    returns labels of ``mask``'s shape, 0 outside."""
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
    """ORACLE lesion mask: the cluster Hungarian-matched to the lesion class (target True)."""
    mapping = hungarian_match(labels, np.asarray(target, bool).astype(np.int64))
    return relabel(labels, mapping) == 1


def label_free_lesion(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray,
                      largest_cc: bool = True) -> np.ndarray:
    """LABEL-FREE lesion mask: the cluster with the highest mean FLAIR inside the brain mask.

    Uses no ground truth. ``labels``, ``flair`` and ``brain`` share one shape (a whole volume:
    (S, H, W)); the result is restricted to the brain and, with ``largest_cc``, to its largest
    3D connected component.
    """
    labels, brain = np.asarray(labels), np.asarray(brain, bool)
    inside = labels[brain]
    if inside.size == 0:
        return np.zeros(labels.shape, bool)
    clusters = np.unique(inside)
    means = [flair[brain & (labels == c)].mean() for c in clusters]
    lesion = brain & (labels == clusters[int(np.argmax(means))])
    return largest_component(lesion) if largest_cc else lesion


def summary(values) -> dict[str, float]:
    """Mean, median, standard deviation and count of a list of per-volume scores."""
    values = np.asarray(list(values), float)
    finite = values[np.isfinite(values)]
    return dict(
        mean=float(finite.mean()) if finite.size else float("nan"),
        median=float(np.median(finite)) if finite.size else float("nan"),
        std=float(finite.std()) if finite.size else float("nan"),
        n=int(values.size),
    )


def lesion_scores(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, target: np.ndarray,
                  largest_cc: bool = True) -> dict[str, float]:
    """Per-volume lesion scores of a cluster map in both modes.

    ``dice_label_free`` / ``hd95_label_free``: the label-free rule (brightest FLAIR cluster in
    the brain, its largest component with ``largest_cc``: right for one tumour, wrong for many
    small lesions); ``dice_oracle``: the cluster Hungarian-matched to the lesion.
    """
    lesion = label_free_lesion(labels, flair, brain, largest_cc)
    return dict(
        dice_label_free=dice(lesion, target),
        hd95_label_free=hd95(lesion, target),
        dice_oracle=dice(oracle_lesion(labels, target), target),
    )


def tissue_dice(labels: np.ndarray, tissue: np.ndarray, mask: np.ndarray, names: dict[int, str],
                oracle: bool = False) -> dict[str, float]:
    """Dice per tissue class inside ``mask``.

    Label-free (default): cluster ``c`` is class ``c`` (clusters numbered by intensity order, as
    the classical methods do, must then follow the class order, e.g. CSF < GM < WM on T1).
    ``oracle=True``: clusters are Hungarian-matched to the classes first.
    """
    pred, truth = labels[mask], tissue[mask]
    if oracle:
        pred = relabel(pred, hungarian_match(pred, truth), fill=-1)
    return {name: dice(pred == value, truth == value) for value, name in names.items()}
