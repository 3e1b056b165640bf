"""SLIC superpixels (scikit-image) of each FLAIR slice inside the brain, as a classical baseline.

Achanta, Shaji, Smith, Lucchi, Fua, Süsstrunk, "SLIC Superpixels Compared to State-of-the-Art Superpixel
Methods", IEEE TPAMI 34, 2012, doi:10.1109/TPAMI.2012.120: k-means in (intensity, position) space from a
regular grid of ``n_segments`` seeds, the position weighted by ``compactness``. The superpixels are
numbered by mean FLAIR, so the label-free rule takes the brightest and the hyperintense ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage import segmentation

from nbutils.methods.base import Method, Options, option
from nbutils.methods.classical import slice_segments


def slic(flair: np.ndarray, brain: np.ndarray, n_segments: int = 200, compactness: float = 0.1,
         sigma: float = 0.5) -> np.ndarray:
    """SLIC superpixels of each FLAIR slice inside the brain (``skimage.segmentation.slic`` with the
    slice's mask).

    Parameters
    ----------
    flair : (S, H, W) in [0, 1].
    brain : (S, H, W) bool.
    n_segments : about this many superpixels per slice.
    compactness : weight of position against intensity (intensities in [0, 1]).
    sigma : Gaussian smoothing before segmenting, pixels.

    Returns
    -------
    (S, H, W) int64: 1..n by increasing mean FLAIR, 0 outside ``brain``.
    """
    return slice_segments(flair, brain, lambda x, m: segmentation.slic(x, n_segments, compactness, sigma=sigma, mask=m,
                                                                       channel_axis=None, start_label=1))


@dataclasses.dataclass(frozen=True)
class SLICOptions(Options):
    n_segments: int = option(200, "superpixels per slice (about)", low=2)
    compactness: float = option(0.1, "weight of position against intensity (intensities in [0, 1])", low=0.0)
    sigma: float = option(0.5, "Gaussian smoothing before segmenting (pixels)", low=0.0)


class SLIC(Method):
    name, title, Options = "slic", "SLIC", SLICOptions
    reference = "Achanta et al., IEEE TPAMI 2012, doi:10.1109/TPAMI.2012.120"

    def labels(self, volume, *, device="cpu", progress=True):
        o = self.options
        return slic(volume.flair, volume.brain, o.n_segments, o.compactness, o.sigma)
