"""The MNI152 2009 template with tissue maps, read from the ``nilearn`` wheel (no download).

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University (permissive licence, see the README). Cite Fonov et al.,
NeuroImage 2011 and 2009 (ICBM 2009c nonlinear asymmetric template).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

@dataclasses.dataclass(frozen=True)
class MNI152:
    """The template in canonical RAS orientation, all arrays (X, Y, Z)."""

    t1: np.ndarray  # float32, [0, 1]
    gm: np.ndarray  # float32 probability
    wm: np.ndarray  # float32 probability
    csf: np.ndarray  # float32 probability, clip(1 - GM - WM) inside the brain, 0 outside
    brain_mask: np.ndarray  # bool
    labels: np.ndarray  # uint8: 0 background, 1 CSF, 2 GM, 3 WM
    affine: np.ndarray  # (4, 4) voxel -> mm


def tissue_labels(csf: np.ndarray, gm: np.ndarray, wm: np.ndarray, brain_mask: np.ndarray) -> np.ndarray:
    """Hard tissue labels from probability maps.

    Parameters
    ----------
    csf, gm, wm : probability maps of one shape.
    brain_mask : bool of that shape.

    Returns
    -------
    uint8: ``argmax(CSF, GM, WM) + 1`` inside ``brain_mask`` (1 CSF, 2 GM, 3 WM), 0 outside.
    """
    labels = np.argmax(np.stack([csf, gm, wm]), axis=0).astype(np.uint8) + 1
    labels[~brain_mask] = 0
    return labels


@functools.lru_cache(maxsize=2)
def load_mni152(resolution: int = 2) -> MNI152:
    """The MNI152 2009 template with its tissue maps, from the nilearn wheel (no download).

    Parameters
    ----------
    resolution : 1 or 2 mm: shapes (197, 233, 189) or (99, 117, 95).

    Returns
    -------
    :class:`MNI152` (arrays shared between calls and read-only: copy before changing them); tissue labels
    are ``argmax(CSF, GM, WM)`` inside the brain mask with ``CSF = clip(1 - GM - WM, 0, 1)``.

    References
    ----------
    Fonov et al., NeuroImage 54, 2011, doi:10.1016/j.neuroimage.2010.07.033; Fonov et al., NeuroImage 47,
    2009, doi:10.1016/S1053-8119(09)70884-5.
    """
    if resolution not in (1, 2):
        raise ValueError(f"resolution must be 1 or 2 mm, got {resolution}")
    from nilearn import datasets, image

    t1_img = image.reorder_img(datasets.load_mni152_template(resolution=resolution), resample="nearest")
    maps = [
        image.reorder_img(loader(resolution=resolution), resample="nearest").get_fdata(dtype=np.float32)
        for loader in (
            datasets.load_mni152_gm_template,
            datasets.load_mni152_wm_template,
            datasets.load_mni152_brain_mask,
        )
    ]
    gm, wm, mask = maps
    brain = mask > 0.5
    t1 = t1_img.get_fdata(dtype=np.float32)
    t1 = np.clip(t1 / t1.max(), 0, 1)
    csf = np.where(brain, np.clip(1 - gm - wm, 0, 1), 0).astype(np.float32)
    out = MNI152(
        t1=t1,
        gm=gm,
        wm=wm,
        csf=csf,
        brain_mask=brain,
        labels=tissue_labels(csf, gm, wm, brain),
        affine=t1_img.affine.copy(),
    )
    for array in (out.t1, out.gm, out.wm, out.csf, out.brain_mask, out.labels):
        array.setflags(write=False)
    return out
