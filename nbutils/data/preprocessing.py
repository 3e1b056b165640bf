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

    ``clip_percentiles=(lo, hi)`` first clips to those percentiles of the voxels inside ``mask``
    (default: the non-zero voxels), which tames a few hot voxels. Returns float32.
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
    """The largest connected component (face connectivity, any dimension) of a boolean mask."""
    mask = np.asarray(mask, bool)
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def to_slices(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    """Cut a canonical (X, Y, Z[, C]) volume into display-oriented 2D slices.

    Slices along ``axis`` come first; each is rotated 90 degrees so that, for an axial cut of a
    RAS volume, anterior is up. Returns (S, H, W[, C]). Inverse: :func:`from_slices`.
    """
    moved = np.moveaxis(volume, axis, 0)
    return np.ascontiguousarray(np.rot90(moved, k=1, axes=(1, 2)))


def from_slices(slices: np.ndarray, axis: int = 2) -> np.ndarray:
    """Undo :func:`to_slices`: (S, H, W[, C]) back to the (X, Y, Z[, C]) volume."""
    return np.ascontiguousarray(np.moveaxis(np.rot90(slices, k=-1, axes=(1, 2)), 0, axis))


def to_square(slices: np.ndarray, size: int, order: int = 1) -> np.ndarray:
    """Centre-pad (S, H, W[, C]) slices to a square and resize to ``size`` x ``size``.

    ``order=1`` (bilinear) for images, ``order=0`` (nearest) for label maps; the dtype is kept.
    Inverse: :func:`from_square`.
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
    """Undo :func:`to_square`: resize back and crop to the original (H, W) ``shape``."""
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
    """A short stable hash of JSON-able parameters."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached(cache_dir: str | Path, name: str, params: dict, build: Callable[[], dict]) -> dict:
    """Arrays from ``cache_dir/<name>_<hash(params)>.npz``, built by ``build()`` when missing.

    The parameters are stored inside the file (``__params__``) next to the arrays and the
    file is written atomically, so an interrupted build never leaves a broken cache.
    """
    path = Path(cache_dir) / f"{name}_{cache_key(params)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files if k != "__params__"}
    arrays = build()
    save_npz(path, __params__=np.array(json.dumps(params, sort_keys=True, default=str)), **arrays)
    return arrays
