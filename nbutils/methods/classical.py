"""Classical baselines on intensities: k-means, a Gaussian mixture (EM), Otsu, robust z-score,
and the two-region Chan-Vese active contours of scikit-image.

Each takes a volume (S, C, H, W) in [0, 1] and its brain mask (S, H, W) and returns cluster
labels (S, H, W) int64: 0 outside the mask, 1..K inside, clusters sorted by mean intensity of
the first channel used (so label K is the brightest).
"""

from __future__ import annotations

import numpy as np
from skimage import filters, segmentation
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from nbutils import metrics


def _features(image: np.ndarray, mask: np.ndarray, channels) -> np.ndarray:
    image = image if channels is None else image[:, list(channels)]
    return np.moveaxis(image, 1, -1)[mask]  # (N, C)


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.random.default_rng(seed).choice(n, max_points, replace=False)


def kmeans(image: np.ndarray, mask: np.ndarray, k: int = 4, channels=None, seed: int = 0,
           max_points: int = 200_000) -> np.ndarray:
    """k-means (k-means++, sklearn) on the intensities inside ``mask``.

    Fitted on at most ``max_points`` random pixels, then every pixel gets its nearest centre.
    """
    x = _features(image, mask, channels)
    _check_k(x, k)
    model = KMeans(k, n_init=4, random_state=seed).fit(x[_subsample(len(x), max_points, seed)])
    return metrics.labels_by_brightness(model.predict(x), x, mask)


def gmm(image: np.ndarray, mask: np.ndarray, k: int = 4, channels=None, seed: int = 0,
        max_points: int = 200_000) -> np.ndarray:
    """Gaussian mixture (diagonal covariances, EM, sklearn) on the intensities inside ``mask``."""
    x = _features(image, mask, channels)
    _check_k(x, k)
    model = GaussianMixture(k, covariance_type="diag", n_init=2, random_state=seed)
    model.fit(x[_subsample(len(x), max_points, seed)])
    return metrics.labels_by_brightness(model.predict(x), x, mask)


def otsu(image: np.ndarray, mask: np.ndarray, k: int = 2, channel: int = 0) -> np.ndarray:
    """(Multi-)Otsu thresholds of one channel inside ``mask``: K classes from K-1 thresholds."""
    values = image[:, channel][mask]
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    thresholds = [filters.threshold_otsu(values)] if k == 2 else filters.threshold_multiotsu(values, classes=k)
    out = np.zeros(mask.shape, np.int64)
    out[mask] = np.digitize(values, thresholds) + 1
    return out


def robust_zscore(image: np.ndarray, mask: np.ndarray, threshold: float = 3.0, channel: int = 0) -> np.ndarray:
    """Two classes: FLAIR above ``median + threshold * MAD`` inside ``mask`` is label 2.

    MAD is the median absolute deviation scaled by 1.4826 (a normal's standard deviation).
    """
    values = image[:, channel][mask]
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    out = np.zeros(mask.shape, np.int64)
    out[mask] = 1 + (values > median + threshold * mad)
    return out


def _two_regions(image: np.ndarray, mask: np.ndarray, channel: int, segment_slice) -> np.ndarray:
    """Run ``segment_slice`` ((H, W) float -> (H, W) bool) on each slice of one channel, with the
    pixels outside ``mask`` set to the slice's median inside it (so background and skull do not
    form a region of their own). Labels: 2 = the brighter region of the slice, 1 = the other,
    0 outside the mask; a slice without mask pixels or contrast stays 1 inside."""
    out = np.zeros(mask.shape, np.int64)
    for i, (x, m) in enumerate(zip(image[:, channel], mask)):
        if not m.any():
            continue
        out[i][m] = 1
        values = x[m]
        if np.ptp(values) == 0:
            continue
        filled = np.where(m, x, np.median(values)).astype(np.float64)
        seg = np.asarray(segment_slice(filled), bool)
        inside, outside = values[seg[m]], values[~seg[m]]
        if len(inside) == 0 or len(outside) == 0:
            continue
        bright = seg if inside.mean() > outside.mean() else ~seg
        out[i][m & bright] = 2
    return out


def chan_vese(image: np.ndarray, mask: np.ndarray, channel: int = 0, mu: float = 0.25,
              max_num_iter: int = 200, tol: float = 1e-3) -> np.ndarray:
    """Two-region Chan-Vese (``skimage.segmentation.chan_vese``, level sets) per slice, inside ``mask``.

    Chan & Vese, IEEE TIP 2001. ``mu`` weights the contour length. Labels as :func:`_two_regions`.
    """
    return _two_regions(image, mask, channel, lambda x: segmentation.chan_vese(
        x, mu=mu, max_num_iter=max_num_iter, tol=tol))


def morphological_chan_vese(image: np.ndarray, mask: np.ndarray, channel: int = 0, num_iter: int = 100,
                            smoothing: int = 1) -> np.ndarray:
    """Morphological ACWE (``skimage.segmentation.morphological_chan_vese``, Marquez-Neila et al.
    2014) per slice, inside ``mask``. Labels as :func:`_two_regions`."""
    return _two_regions(image, mask, channel, lambda x: segmentation.morphological_chan_vese(
        x, num_iter, smoothing=smoothing))


def _check_k(x: np.ndarray, k: int) -> None:
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if len(x) < k:
        raise ValueError(f"only {len(x)} pixels inside the mask, fewer than k={k} clusters")
