"""Loader for the LGG FLAIR data set in its Kaggle ``kaggle_3m`` layout.

Buda, Saha, Mazurowski, Computers in Biology and Medicine 2019 (TCGA-LGG, TCIA, CC BY 3.0).
Layout: ``<patient>/<patient>_<slice>.tif`` (H, W, 3 uint8: pre-contrast, FLAIR, post-contrast)
and optional ``<patient>/<patient>_<slice>_mask.tif`` (H, W, 0/255). Slice numbers are 1-based
and not zero-padded.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import tifffile

from nbutils.errors import InputError

CHANNELS = ("pre-contrast", "flair", "post-contrast")  # names that --channels picks by (substrings)
FLAIR_CHANNEL = 1
_SLICE = re.compile(r"^(?P<patient>.+)_(?P<index>\d+)(?P<mask>_mask)?\.tiff?$", re.IGNORECASE)


@dataclasses.dataclass
class LGGVolume:
    """One patient: slices stacked in numeric order."""

    patient: str
    slice_names: list[str]  # file stems, e.g. "TCGA_CS_4941_19960909_7"
    image: np.ndarray  # (S, H, W, C) uint8
    mask: np.ndarray | None  # (S, H, W) bool, None when the folder holds no masks
    folder: Path


def read_tif(path: Path) -> np.ndarray:
    """A TIFF as an array.

    Parameters
    ----------
    path : TIFF file.

    Returns
    -------
    its array; InputError naming the file when it cannot be read or holds no image data (tifffile's own
    log lines are silenced: the error says it).
    """
    log = logging.getLogger("tifffile")
    level, log.level = log.level, logging.CRITICAL
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several types for broken files
        raise InputError(path, f"not a readable TIFF file ({type(exc).__name__}: {exc})") from None
    finally:
        log.setLevel(level)
    if array.size == 0:
        raise InputError(path, "not a readable TIFF file (truncated: no image data)")
    return array


def is_lgg_patient(folder: Path) -> bool:
    """Whether a folder is one LGG patient.

    Parameters
    ----------
    folder : a folder.

    Returns
    -------
    True when it holds ``<name>_<number>.tif`` slices (their ``_mask.tif`` alone do not count).
    """
    return any(_SLICE.match(p.name) and not _SLICE.match(p.name)["mask"] for p in Path(folder).glob("*.tif*"))


def is_mask_only(folder: Path) -> bool:
    """Whether a folder holds LGG ground truth but no input.

    Parameters
    ----------
    folder : a folder.

    Returns
    -------
    True when it holds ``_mask.tif`` files but no slice images.
    """
    return not is_lgg_patient(folder) and any(
        (m := _SLICE.match(p.name)) and m["mask"] for p in Path(folder).glob("*.tif*"))


def channel_indices(where, channels: list[str]) -> list[int]:
    """The indices in :data:`CHANNELS` of the channels named like ``channels`` (substrings), in that order.

    Parameters
    ----------
    where : the folder named in errors.
    channels : e.g. ``["flair"]``.

    Returns
    -------
    list of indices; InputError naming ``where`` for a name none matches.
    """
    picked = []
    for want in channels:
        hits = [i for i, n in enumerate(CHANNELS) if want.lower() in n]
        if not want.strip() or not hits:
            raise InputError(where, f"has no channel named like {want!r} (LGG channels: {', '.join(CHANNELS)})")
        picked.append(hits[0])
    return picked


def select_channels(v: LGGVolume, channels: list[str]) -> tuple[np.ndarray, int | None]:
    """Some of a patient's channels, by name.

    Parameters
    ----------
    v : a patient.
    channels : substrings of :data:`CHANNELS` (pre-contrast, flair, post-contrast), e.g. ``["flair"]``.

    Returns
    -------
    (image (S, H, W, C') with those channels in that order, the new index of FLAIR or None when it is not
    picked); InputError naming the folder for an unknown name.
    """
    picked = channel_indices(v.folder, channels)
    flair = picked.index(FLAIR_CHANNEL) if FLAIR_CHANNEL in picked else None
    return v.image[..., picked], flair


def load_lgg_patient(folder: str | Path) -> LGGVolume:
    """Load one patient folder.

    Parameters
    ----------
    folder : ``<patient>_<n>.tif`` slices (H, W, 3) and optional ``<patient>_<n>_mask.tif``.

    Returns
    -------
    :class:`LGGVolume`, slices in numeric order. A mask without its image is skipped with a warning, an
    image without its mask counts as empty; a slice of another shape than the others is an InputError
    naming it.
    """
    folder = Path(folder)
    images, masks = {}, {}
    for path in folder.iterdir():
        match = _SLICE.match(path.name)
        if match:
            (masks if match["mask"] else images)[int(match["index"])] = path
    for index in sorted(set(masks) - set(images)):
        warnings.warn(f"{masks[index]}: mask has no image next to it; skipped", stacklevel=2)
    if not images:
        raise InputError(folder, "holds no LGG slice images (<patient>_<n>.tif)")
    order = sorted(images)
    slices = [read_tif(images[i]) for i in order]
    usual = collections.Counter(a.shape for a in slices).most_common(1)[0][0]  # the odd slice is the bad one
    for i, array in zip(order, slices):
        if array.shape != usual:
            raise InputError(images[i], f"has shape {array.shape}, the other slices have {usual}")
        if array.ndim != 3 or array.shape[-1] != len(CHANNELS):
            found = "1 channel" if array.ndim == 2 else f"shape {array.shape}"
            raise InputError(images[i], f"has {found}; LGG slices have {len(CHANNELS)} channels "
                                        f"(H, W, 3: {', '.join(CHANNELS)})")
    image = np.stack(slices)
    if image.min() == image.max():
        raise InputError(folder, f"every slice is constant ({image.flat[0]}): there is nothing to segment")
    mask = None
    if masks:
        mask = np.zeros(image.shape[:3], bool)
        for s, i in enumerate(order):
            if i not in masks:
                warnings.warn(f"{images[i]}: image has no mask next to it; treated as empty", stacklevel=2)
                continue
            m = read_tif(masks[i])
            m = m[..., 0] if m.ndim == 3 else m
            if m.shape != image.shape[1:3]:
                raise InputError(masks[i], f"has shape {m.shape}, its image has {image.shape[1:3]}")
            mask[s] = m > 0
    patient = _SLICE.match(images[order[0]].name)["patient"]
    return LGGVolume(patient, [images[i].name.rsplit(".", 1)[0] for i in order], image, mask, folder)


def lgg_patients(folder: str | Path, patients: int | None = None) -> list[Path]:
    """The patient folders of a ``kaggle_3m`` root.

    Parameters
    ----------
    folder : the root (one sub-folder per patient) or a single patient folder.
    patients : keep the first N in name order (None: all).

    Returns
    -------
    list of folders; InputError naming ``folder`` when it holds no slices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    if is_lgg_patient(folder):
        return [folder]
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and is_lgg_patient(p))
    if not subfolders:
        raise InputError(folder, "holds no LGG patient folders with <patient>_<n>.tif slices")
    return subfolders[:patients]


def load_lgg(folder: str | Path, patients: int | None = None) -> list[LGGVolume]:
    """Load a ``kaggle_3m`` root or a single patient folder.

    Parameters
    ----------
    folder : see :func:`lgg_patients`.
    patients : keep the first N patients in name order.

    Returns
    -------
    list of :class:`LGGVolume`.
    """
    return [load_lgg_patient(p) for p in lgg_patients(folder, patients)]
