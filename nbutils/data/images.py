"""Plain 2D images (png, jpg, tif) from a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nbutils.data.io import atomic_path, check_volume
from nbutils.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_raw(path: Path) -> np.ndarray:
    """An image file as its raw array (e.g. the integers of a ``_labels.png``)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except Exception as exc:
        raise InputError(path, f"not a readable image ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    """One image as (H, W, C) float32 in [0, 1] (grey images get C = 1; alpha is dropped)."""
    array = read_raw(path)
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3] if array.shape[-1] == 4 else array
    scale = 255.0 if array.dtype == np.uint8 else float(max(array.max(), 1))
    return check_volume(array / scale, path, ndim=3)


def load_image_folder(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """``(name, image)`` pairs for every image in ``folder``, images (H, W, C) float32 [0, 1]."""
    folder = Path(folder)
    files = image_files(folder) if folder.is_dir() else []
    if not files:
        raise InputError(folder, f"holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(p.stem, read_image(p)) for p in files]


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a (H, W) uint8 array as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, np.uint8)).save(tmp, format="PNG")
