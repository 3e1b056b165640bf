"""Intensity statistics of a FLAIR volume with its lesion mask: what the phantom is matched to.

Every ratio is to the white-matter intensity, estimated without tissue labels as the middle of three
k-means clusters of the healthy brain (FLAIR: CSF < WM < GM), so real scans and the phantom are
measured the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.cluster import KMeans

STATISTICS = ("lesion % of brain", "lesion / WM", "GM / WM", "CSF / WM", "noise / WM", "bias range")
# (median, 10 %, 90 %) of volume_stats over 31 real LGG patients (lgg_sample + lgg_dev) at 128 x 128
# pixels (the ci working size), deepbet brain masks; the phantom's defaults were set from them.
REAL_LGG = {
    "lesion % of brain": (3.81, 1.44, 9.58),
    "lesion / WM": (1.73, 1.43, 2.09),
    "GM / WM": (1.25, 1.21, 1.33),
    "CSF / WM": (0.52, 0.43, 0.61),
    "noise / WM": (0.058, 0.049, 0.083),
    "bias range": (0.054, 0.036, 0.075),
}


def volume_stats(flair: np.ndarray, brain: np.ndarray, lesion: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Statistics of one volume's FLAIR with its lesion mask.

    Parameters
    ----------
    flair : (S, H, W) FLAIR slices.
    brain : (S, H, W) bool brain mask.
    lesion : (S, H, W) bool lesion mask.
    seed : the k-means that estimates the tissue levels.

    Returns
    -------
    dict: ``lesion % of brain``; the medians of the lesion, GM and CSF over the white-matter intensity
    (``lesion / WM``, ``GM / WM``, ``CSF / WM``: the three k-means centres of the healthy brain);
    ``noise / WM``: the robust SD of differences of horizontal neighbours in the healthy brain over
    sqrt(2); ``bias range``: the 5-95 % range of the white-matter band (within 15 % of WM) smoothed by a
    Gaussian of 20 pixels in each slice, over WM.
    """
    flair, brain, lesion = np.asarray(flair, np.float32), np.asarray(brain, bool), np.asarray(lesion, bool)
    healthy = brain & ~lesion
    values = flair[healthy]
    sample = values[np.random.default_rng(seed).choice(len(values), min(len(values), 50_000), replace=False)]
    csf, wm, gm = np.sort(KMeans(3, n_init=3, random_state=seed).fit(sample[:, None]).cluster_centers_[:, 0])
    pairs = healthy[:, :, 1:] & healthy[:, :, :-1]
    diff = (flair[:, :, 1:] - flair[:, :, :-1])[pairs]
    noise = 1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2)
    band = healthy & (np.abs(flair - wm) < 0.15 * wm)
    smooth = ndimage.gaussian_filter(np.where(band, flair, 0), (0, 20, 20))
    weight = ndimage.gaussian_filter(band.astype(np.float32), (0, 20, 20))
    field = smooth[band] / np.maximum(weight[band], 1e-6) / wm
    return {
        "lesion % of brain": float(100 * lesion.sum() / brain.sum()),
        "lesion / WM": float(np.median(flair[lesion]) / wm) if lesion.any() else float("nan"),
        "GM / WM": float(gm / wm),
        "CSF / WM": float(csf / wm),
        "noise / WM": float(noise / wm),
        "bias range": float(np.percentile(field, 95) - np.percentile(field, 5)),
    }


def side_by_side(volumes, real: dict[str, tuple[float, float, float]] | None = None):
    """Statistics of some volumes next to the real patients'.

    Parameters
    ----------
    volumes : objects with ``flair``, ``brain`` and ``target`` (S, H, W).
    real : dict statistic -> (median, 10 %, 90 %); default :data:`REAL_LGG`.

    Returns
    -------
    pandas DataFrame, one row per statistic, "median [10 % - 90 %]" of :func:`volume_stats` over
    ``volumes`` and of the real patients.
    """
    import pandas as pd

    rows = pd.DataFrame([volume_stats(v.flair, v.brain, v.target) for v in volumes])

    def cell(median, low, high):
        return f"{median:.3g} [{low:.3g} - {high:.3g}]"

    measured = {k: cell(rows[k].median(), rows[k].quantile(0.1), rows[k].quantile(0.9)) for k in STATISTICS}
    reference = {k: cell(*v) for k, v in (real or REAL_LGG).items()}
    return pd.DataFrame({f"these {len(rows)} volumes": measured, "real LGG, 31 patients": reference})
