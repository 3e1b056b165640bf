"""Classical baselines on intensities: k-means, a Gaussian mixture (EM), Otsu, robust z-score,
and the two-region Chan-Vese active contours of scikit-image.

Each function takes a volume (S, C, H, W) in [0, 1] and its brain mask (S, H, W) and returns cluster
labels (S, H, W) int64: 0 outside the mask, 1..K inside, clusters sorted by mean intensity of
the first channel used (so label K is the brightest). The :class:`~nbutils.methods.base.Method`
classes at the end put them behind the one method interface.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage import filters, segmentation
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from nbutils import metrics
from nbutils.data.datasets import Volume
from nbutils.methods.base import MAX_CLUSTERS, MAX_SEED, Method, Options, option

MAX_FIT_POINTS = 200_000  # k-means and EM fit on at most this many random brain pixels, then label all
SEQUENCES = ("flair", "all")


def _features(image: np.ndarray, mask: np.ndarray, channels) -> np.ndarray:
    image = image if channels is None else image[:, list(channels)]
    return np.moveaxis(image, 1, -1)[mask]  # (N, C)


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.random.default_rng(seed).choice(n, max_points, replace=False)


def slice_segments(flair: np.ndarray, brain: np.ndarray, segment) -> np.ndarray:
    """Segments of each slice, numbered across the volume, then named by brightness.

    Parameters
    ----------
    flair : (S, H, W) in [0, 1].
    brain : (S, H, W) bool; slices without brain are skipped.
    segment : ``segment(x, m) -> (H, W) int`` segment ids of one slice ``x`` (float64) with its mask ``m``;
        only the ids inside ``m`` count.

    Returns
    -------
    (S, H, W) int64: 1..n by increasing mean FLAIR, 0 outside ``brain``.
    """
    ids = np.zeros(flair.shape, np.int64)
    offset = 0
    for i, (x, m) in enumerate(zip(flair, brain)):
        if m.any():
            inside = segment(x.astype(np.float64), m)[m]
            ids[i][m] = inside - inside.min() + offset
            offset = int(ids[i][m].max()) + 1
    return metrics.labels_by_brightness(ids[brain], flair[brain][:, None], brain)


def kmeans(image: np.ndarray, mask: np.ndarray, k: int = 4, channels=None, seed: int = 0,
           max_points: int = MAX_FIT_POINTS) -> np.ndarray:
    """k-means (k-means++ starts, scikit-learn) on the intensities inside a mask.

    Parameters
    ----------
    image : (S, C, H, W) volume in [0, 1].
    mask : (S, H, W) bool, the pixels to cluster (the brain).
    k : clusters.
    channels : the channels clustered (None: all).
    seed : starts and subsample.
    max_points : fitted on at most this many random pixels, then every pixel takes its nearest centre.

    Returns
    -------
    (S, H, W) int64: 1..k by increasing mean of the first channel used, 0 outside ``mask``.

    References
    ----------
    Lloyd, IEEE Trans. Inf. Theory 28, 1982, doi:10.1109/TIT.1982.1056489; Arthur & Vassilvitskii,
    "k-means++", SODA 2007.
    """
    x = _features(image, mask, channels)
    _check_k(x, k)
    model = KMeans(k, n_init=4, random_state=seed).fit(x[_subsample(len(x), max_points, seed)])
    return metrics.labels_by_brightness(model.predict(x), x, mask)


def gmm(image: np.ndarray, mask: np.ndarray, k: int = 4, channels=None, seed: int = 0,
        max_points: int = MAX_FIT_POINTS) -> np.ndarray:
    """Gaussian mixture (diagonal covariances, EM, scikit-learn) on the intensities inside a mask.

    Parameters
    ----------
    image : (S, C, H, W) volume in [0, 1].
    mask : (S, H, W) bool, the pixels to cluster (the brain).
    k : components.
    channels : the channels modelled (None: all).
    seed : starts and subsample.
    max_points : fitted on at most this many random pixels, then every pixel takes its likeliest component.

    Returns
    -------
    (S, H, W) int64: 1..k by increasing mean of the first channel used, 0 outside ``mask``.

    References
    ----------
    Dempster, Laird, Rubin, J. R. Stat. Soc. B 39, 1977, doi:10.1111/j.2517-6161.1977.tb01600.x.
    """
    x = _features(image, mask, channels)
    _check_k(x, k)
    model = GaussianMixture(k, covariance_type="diag", n_init=2, random_state=seed)
    model.fit(x[_subsample(len(x), max_points, seed)])
    return metrics.labels_by_brightness(model.predict(x), x, mask)


def otsu(image: np.ndarray, mask: np.ndarray, k: int = 2, channel: int = 0) -> np.ndarray:
    """(Multi-)Otsu thresholds of one channel inside a mask.

    Parameters
    ----------
    image : (S, C, H, W) volume in [0, 1].
    mask : (S, H, W) bool, the pixels to cluster (the brain).
    k : classes (k - 1 thresholds).
    channel : the channel thresholded.

    Returns
    -------
    (S, H, W) int64: 1..k from dark to bright, 0 outside ``mask``.

    References
    ----------
    Otsu, IEEE Trans. SMC 9, 1979, doi:10.1109/TSMC.1979.4310076; multi-level: Liao, Chen, Chung,
    J. Inf. Sci. Eng. 17, 2001 (``skimage.filters.threshold_multiotsu``).
    """
    values = image[:, channel][mask]
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    thresholds = [filters.threshold_otsu(values)] if k == 2 else filters.threshold_multiotsu(values, classes=k)
    out = np.zeros(mask.shape, np.int64)
    out[mask] = np.digitize(values, thresholds) + 1
    return out


def robust_zscore(image: np.ndarray, mask: np.ndarray, threshold: float = 3.0, channel: int = 0) -> np.ndarray:
    """Two classes: a channel above ``median + threshold * MAD`` inside a mask.

    Parameters
    ----------
    image : (S, C, H, W) volume in [0, 1].
    mask : (S, H, W) bool, the pixels to cluster (the brain).
    threshold : robust SDs; the MAD is scaled by 1.4826 (a normal's standard deviation).
    channel : the channel thresholded (FLAIR).

    Returns
    -------
    (S, H, W) int64: 2 above, 1 below, 0 outside ``mask``.
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
    """Two-region Chan-Vese (``skimage.segmentation.chan_vese``, level sets) per slice.

    Parameters
    ----------
    image : (S, C, H, W) volume in [0, 1].
    mask : (S, H, W) bool, the pixels to cluster (the brain).
    channel : the channel segmented.
    mu : weight of the contour length.
    max_num_iter, tol : level-set iterations and stopping tolerance.

    Returns
    -------
    (S, H, W) int64: 2 the brighter region of each slice, 1 the other, 0 outside ``mask``.

    References
    ----------
    Chan & Vese, "Active contours without edges", IEEE TIP 10, 2001, doi:10.1109/83.902291.
    """
    return _two_regions(image, mask, channel, lambda x: segmentation.chan_vese(
        x, mu=mu, max_num_iter=max_num_iter, tol=tol))


def morphological_chan_vese(image: np.ndarray, mask: np.ndarray, channel: int = 0, num_iter: int = 100,
                            smoothing: int = 1) -> np.ndarray:
    """Morphological ACWE (``skimage.segmentation.morphological_chan_vese``) per slice.

    Parameters
    ----------
    image : (S, C, H, W) volume in [0, 1].
    mask : (S, H, W) bool, the pixels to cluster (the brain).
    channel : the channel segmented.
    num_iter : iterations.
    smoothing : smoothing steps per iteration.

    Returns
    -------
    (S, H, W) int64: 2 the brighter region of each slice, 1 the other, 0 outside ``mask``.

    References
    ----------
    Marquez-Neila, Baumela, Alvarez, IEEE TPAMI 36, 2014, doi:10.1109/TPAMI.2013.106.
    """
    return _two_regions(image, mask, channel, lambda x: segmentation.morphological_chan_vese(
        x, num_iter, smoothing=smoothing))


def _check_k(x: np.ndarray, k: int) -> None:
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if len(x) < k:
        raise ValueError(f"only {len(x)} pixels inside the mask, fewer than k={k} clusters")


# ------------------------------------------------------------------ the method interface


def _channels(volume: Volume, sequences: str) -> list[int] | None:
    return [volume.flair_channel] if sequences == "flair" else None


@dataclasses.dataclass(frozen=True)
class ClusterOptions(Options):
    k: int = option(4, "clusters", low=2, high=MAX_CLUSTERS)
    seed: int = option(0, "random seed (starts, subsample)", low=0, high=MAX_SEED)
    sequences: str = option("flair", "cluster the FLAIR channel alone, or every channel", choices=SEQUENCES)


class KMeansMethod(Method):
    name, title, Options = "kmeans", "k-means", ClusterOptions
    reference = "Lloyd, IEEE Trans. Inf. Theory 1982, doi:10.1109/TIT.1982.1056489; k-means++: Arthur & Vassilvitskii, SODA 2007"

    def labels(self, volume, *, device="cpu", progress=True):
        o = self.options
        return kmeans(volume.image, volume.brain, o.k, _channels(volume, o.sequences), o.seed)


class GMMMethod(Method):
    name, title, Options = "gmm", "GMM", ClusterOptions
    reference = "Dempster, Laird, Rubin, J. R. Stat. Soc. B 1977 (EM), doi:10.1111/j.2517-6161.1977.tb01600.x"

    def labels(self, volume, *, device="cpu", progress=True):
        o = self.options
        return gmm(volume.image, volume.brain, o.k, _channels(volume, o.sequences), o.seed)


@dataclasses.dataclass(frozen=True)
class OtsuOptions(Options):
    k: int = option(4, "classes (k - 1 thresholds on FLAIR; the work grows as 256^(k-2): 5 at most)", low=2,
                   high=5)


class OtsuMethod(Method):
    name, title, Options = "otsu", "Otsu", OtsuOptions
    reference = "Otsu, IEEE Trans. SMC 1979, doi:10.1109/TSMC.1979.4310076; multi-level: Liao et al., J. Inf. Sci. Eng. 2001"

    def labels(self, volume, *, device="cpu", progress=True):
        return otsu(volume.image, volume.brain, self.options.k, volume.flair_channel)


@dataclasses.dataclass(frozen=True)
class ZScoreOptions(Options):
    threshold: float = option(3.0, "FLAIR above median + threshold * MAD (robust SDs) is lesion", low=0.0)


class ZScoreMethod(Method):
    name, title, Options = "zscore", "robust z-score", ZScoreOptions
    reference = "robust z-score of FLAIR inside the brain (median and MAD: Hampel, JASA 1974, doi:10.2307/2285666)"

    def labels(self, volume, *, device="cpu", progress=True):
        return robust_zscore(volume.image, volume.brain, self.options.threshold, volume.flair_channel)


@dataclasses.dataclass(frozen=True)
class ChanVeseOptions(Options):
    mu: float = option(0.25, "weight of the contour length", low=0.0)
    max_num_iter: int = option(200, "most level-set iterations per slice", low=1)
    tol: float = option(1e-3, "stop when the level set changes by less than this", low=0.0)


class ChanVeseMethod(Method):
    name, title, Options = "chan-vese", "Chan-Vese", ChanVeseOptions
    reference = "Chan & Vese, IEEE TIP 2001, doi:10.1109/83.902291 (skimage.segmentation.chan_vese)"

    def labels(self, volume, *, device="cpu", progress=True):
        o = self.options
        return chan_vese(volume.image, volume.brain, volume.flair_channel, o.mu, o.max_num_iter, o.tol)


@dataclasses.dataclass(frozen=True)
class MorphChanVeseOptions(Options):
    num_iter: int = option(100, "morphological ACWE iterations per slice", low=1)
    smoothing: int = option(1, "smoothing steps per iteration", low=0)


class MorphChanVeseMethod(Method):
    name, title, Options = "morph-chan-vese", "morph. Chan-Vese", MorphChanVeseOptions
    reference = "Marquez-Neila, Baumela, Alvarez, IEEE TPAMI 2014, doi:10.1109/TPAMI.2013.106"

    def labels(self, volume, *, device="cpu", progress=True):
        o = self.options
        return morphological_chan_vese(volume.image, volume.brain, volume.flair_channel, o.num_iter, o.smoothing)


class SVGMMMethod(Method):
    name, title, Options = "svgmm", "EM-SVGMM", ClusterOptions
    reference = ("Sanjay-Gopal & Hebert, IEEE TIP 1998, doi:10.1109/83.701161 (EM for the spatially variant "
                 "mixture)")

    def labels(self, volume, *, device="cpu", progress=True):
        from nbutils.methods.deepgmm import em_svgmm

        o = self.options
        x = _features(volume.image, volume.brain, _channels(volume, o.sequences))
        _check_k(x, o.k)
        gamma, _, _, _ = em_svgmm(x, o.k, seed=o.seed)
        return metrics.labels_by_brightness(gamma.argmax(1), x, volume.brain)
