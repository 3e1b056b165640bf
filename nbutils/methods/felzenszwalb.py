"""Felzenszwalb's graph-based segmentation (scikit-image) of each FLAIR slice, as a classical baseline.

Felzenszwalb & Huttenlocher, "Efficient Graph-Based Image Segmentation", IJCV 59, 2004,
doi:10.1023/B:VISI.0000022288.85170.0c: pixels are merged along the minimum spanning tree of intensity
differences while the difference between two components is below both their internal differences plus
``scale / size``. The segments (superpixels) inside the brain are numbered by mean FLAIR, so the
label-free rule takes the brightest and the hyperintense ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage import segmentation

from nbutils.methods.base import Method, Options, option
from nbutils.methods.classical import slice_segments


def felzenszwalb(flair: np.ndarray, brain: np.ndarray, scale: float = 1.0, sigma: float = 0.8,
                 min_size: int = 20) -> np.ndarray:
    """Felzenszwalb's segments of each FLAIR slice inside the brain.

    Parameters
    ----------
    flair : (S, H, W) in [0, 1].
    brain : (S, H, W) bool.
    scale : larger: larger segments (intensities in [0, 1]).
    sigma : Gaussian smoothing before segmenting, pixels.
    min_size : smallest segment, pixels.

    Returns
    -------
    (S, H, W) int64: 1..n by increasing mean FLAIR, 0 outside ``brain``.
    """
    return slice_segments(flair, brain, lambda x, m: segmentation.felzenszwalb(x, scale, sigma, min_size,
                                                                               channel_axis=None))


@dataclasses.dataclass(frozen=True)
class FelzenszwalbOptions(Options):
    scale: float = option(1.0, "larger: larger segments (intensities in [0, 1])", low=0.0)
    sigma: float = option(0.8, "Gaussian smoothing before segmenting (pixels)", low=0.0)
    min_size: int = option(20, "smallest segment (pixels)", low=1)


class Felzenszwalb(Method):
    name, title, Options = "felzenszwalb", "Felzenszwalb", FelzenszwalbOptions
    reference = "Felzenszwalb & Huttenlocher, IJCV 2004, doi:10.1023/B:VISI.0000022288.85170.0c"

    def labels(self, volume, *, device="cpu", progress=True):
        o = self.options
        return felzenszwalb(volume.flair, volume.brain, o.scale, o.sigma, o.min_size)
