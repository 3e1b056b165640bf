"""Preprocessing: normalisation, slicing, squaring, and an .npz cache.

This is the original DCN-segmentation code's preprocessing made explicit: per-volume max
normalisation to [0, 1] (optional percentile clipping first), 2D slices along one axis, crop/pad and
resize to a square size. The brain mask has its own module, :mod:`nbutils.data.brain`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage
from skimage import transform

from nbutils.data.io import save_npz


def normalize(volume: np.ndarray, clip_percentiles: tuple[float, float] | None = None, mask=None) -> np.ndarray:
    """Scale a volume to [0, 1] by its maximum (per volume, all channels together).

    Parameters
    ----------
    volume : array of any shape (e.g. (S, C, H, W) or (X, Y, Z)).
    clip_percentiles : (low, high) percentiles of the voxels inside ``mask`` (default: the non-zero
        voxels) to clip to first, which tames a few hot voxels; None: no clipping.
    mask : bool array of ``volume``'s shape for the percentiles.

    Returns
    -------
    float32 array of ``volume``'s shape in [0, 1]. A ValueError for NaN/inf or an all-zero volume.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume holds NaN or infinite values")
    if clip_percentiles is not None:
        inside = volume[mask] if mask is not None else volume[volume != 0]
        if inside.size:
            lo, hi = np.percentile(inside, clip_percentiles)
            volume = np.clip(volume, lo, hi) - min(lo, 0)
    volume = volume - min(float(volume.min()), 0.0)
    peak = float(volume.max())
    if peak <= 0:
        raise ValueError("volume is all zero: nothing to normalise")
    return volume / peak


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of a mask.

    Parameters
    ----------
    mask : bool array, any dimension (face connectivity).

    Returns
    -------
    bool array of ``mask``'s shape (``mask`` itself when it has at most one component).
    """
    mask = np.asarray(mask, bool)
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def to_slices(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    """Cut a canonical (X, Y, Z[, C]) volume into display-oriented 2D slices.

    Parameters
    ----------
    volume : (X, Y, Z[, C]) array in canonical (RAS) orientation.
    axis : the axis to slice along (2: axial).

    Returns
    -------
    (S, H, W[, C]): slices first, each rotated 90 degrees so that, for an axial cut of a RAS volume,
    anterior is up. Inverse: :func:`from_slices`.
    """
    moved = np.moveaxis(volume, axis, 0)
    return np.ascontiguousarray(np.rot90(moved, k=1, axes=(1, 2)))


def from_slices(slices: np.ndarray, axis: int = 2) -> np.ndarray:
    """Undo :func:`to_slices`.

    Parameters
    ----------
    slices : (S, H, W[, C]) display slices.
    axis : the axis they were cut along.

    Returns
    -------
    (X, Y, Z[, C]) volume.
    """
    return np.ascontiguousarray(np.moveaxis(np.rot90(slices, k=-1, axes=(1, 2)), 0, axis))


def to_square(slices: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    """Centre-pad slices to a square and resize them.

    Parameters
    ----------
    slices : (S, H, W[, C]) array.
    size : the side of the output, pixels.
    order : 1 (bilinear) for images, 0 (nearest) for label maps; the dtype is kept.

    Returns
    -------
    (S, size, size[, C]). Inverse: :func:`from_square`.
    """
    s, h, w = slices.shape[:3]
    side = max(h, w)
    pad = [(0, 0), ((side - h) // 2, side - h - (side - h) // 2), ((side - w) // 2, side - w - (side - w) // 2)]
    padded = np.pad(slices, pad + [(0, 0)] * (slices.ndim - 3))
    if side == size:
        return padded
    out = transform.resize(
        padded, (s, size, size) + slices.shape[3:], order=order, preserve_range=True,
        anti_aliasing=order > 0 and size < side,
    )
    return out.astype(slices.dtype)


def from_square(square: np.ndarray, shape: tuple[int, int], order: int = 0) -> np.ndarray:
    """Undo :func:`to_square`: resize back and crop to the original slice shape.

    Parameters
    ----------
    square : (S, side, side[, C]) array.
    shape : the original (H, W).
    order : interpolation order (0, nearest, for labels).

    Returns
    -------
    (S, H, W[, C]).
    """
    h, w = shape
    side = max(h, w)
    s = square.shape[0]
    if square.shape[1] != side:
        square = transform.resize(
            square, (s, side, side) + square.shape[3:], order=order, preserve_range=True, anti_aliasing=False
        ).astype(square.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    return square[:, top : top + h, left : left + w]


def cache_key(params: dict) -> str:
    """A short stable hash of parameters.

    Parameters
    ----------
    params : JSON-able dict (other values are turned into strings).

    Returns
    -------
    12 hexadecimal characters.
    """
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached(cache_dir: str | Path, name: str, params: dict, build: Callable[[], dict]) -> dict:
    """Arrays from an ``.npz`` cache, built when missing.

    Parameters
    ----------
    cache_dir : folder of the cache.
    name : file name prefix; the file is ``cache_dir/<name>_<cache_key(params)>.npz``.
    params : the parameters that make the arrays (stored inside the file as ``__params__``).
    build : called without arguments to make the arrays (a dict name -> array) when the file is missing;
        they are written atomically, so an interrupted build never leaves a broken cache.

    Returns
    -------
    dict name -> array.
    """
    path = Path(cache_dir) / f"{name}_{cache_key(params)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files if k != "__params__"}
    arrays = build()
    save_npz(path, __params__=np.array(json.dumps(params, sort_keys=True, default=str)), **arrays)
    return arrays
