"""Plain 2D images (png, jpg, tif) from a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nbutils.data.io import atomic_path, check_volume, own_outputs
from nbutils.data.nifti import GROUND_TRUTH as _GROUND_TRUTH
from nbutils.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def is_ground_truth(path: Path) -> bool:
    """Whether an image is ground truth by its name.

    Parameters
    ----------
    path : image file.

    Returns
    -------
    True when mask, seg, label(s) or gt is a word of its stem (e.g. ``cat_mask.png``).
    """
    return bool(_GROUND_TRUTH.search(Path(path).stem))


def image_files(folder: Path, ground_truth: bool = False) -> list[Path]:
    """The images of a folder, sorted by name.

    Parameters
    ----------
    folder : folder of png/jpg/tif/bmp files.
    ground_truth : False: the inputs; True: the ground truth (:func:`is_ground_truth`).

    Returns
    -------
    list of paths; ``segment``'s own outputs (``<name>_labels``, ``_lesion``, ``_brain``) are neither.
    """
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    ours = own_outputs(files)
    return sorted(p for p in files if p not in ours and is_ground_truth(p) == ground_truth)


def read_raw(path: Path) -> np.ndarray:
    """An image file as its raw array (e.g. the integers of a ``_labels.png``).

    Parameters
    ----------
    path : image file.

    Returns
    -------
    (H, W[, C]) array; InputError naming the file when it cannot be read.
    """
    if path.suffix.lower() in (".tif", ".tiff"):
        from nbutils.data.lgg import read_tif

        return read_tif(path)  # tifffile reads what Pillow cannot (e.g. more than 4 channels, float)
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except Exception as exc:
        raise InputError(path, f"not a readable image ({exc})") from None


def read_image(path: Path) -> np.ndarray:
    """One image as float32 in [0, 1].

    Parameters
    ----------
    path : image file (grey, RGB or RGBA; alpha is dropped).

    Returns
    -------
    (H, W, C) float32 (C = 1 for grey images).
    """
    array = read_raw(path)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise InputError(path, f"has shape {array.shape}; grey (H, W), RGB or RGBA (H, W, 3 or 4) images are expected")
    array = array[..., :3] if array.shape[-1] == 4 else array
    scale = 255.0 if array.dtype == np.uint8 else float(max(array.max(), 1))
    return check_volume(array / scale, path, ndim=3)


def load_image_folder(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """Every input image of a folder.

    Parameters
    ----------
    folder : folder of images; files named like ground truth are left out.

    Returns
    -------
    list of (name, (H, W, C) float32 in [0, 1]); InputError when there is none (or only ground truth).
    """
    folder = Path(folder)
    files = image_files(folder) if folder.is_dir() else []
    if not files:
        masks = image_files(folder, ground_truth=True) if folder.is_dir() else []
        raise InputError(folder, "holds only ground-truth images (mask, seg, label or gt in their names): never input"
                         if masks else f"holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(p.stem, read_image(p)) for p in files]


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a label image as PNG, atomically.

    Parameters
    ----------
    path : the PNG file.
    array : (H, W) uint8 or uint16 (written as an 8- or 16-bit PNG).
    """
    array = np.asarray(array)
    with atomic_path(path) as tmp:
        Image.fromarray(array if array.dtype == np.uint16 else array.astype(np.uint8)).save(tmp, format="PNG")
