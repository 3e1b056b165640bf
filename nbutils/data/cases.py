"""What the command line reads and writes: any INPUT as a list of cases, and their outputs.

INPUT may be an LGG ``kaggle_3m`` folder (root or one patient), a NIfTI file, a NIfTI case
folder, a folder of NIfTI cases, or a folder of plain images. Outputs per case:
``<name>_labels``, ``<name>_lesion`` and ``<name>_brain`` (see the README).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import tifffile
from tqdm.auto import tqdm

from nbutils.data import images as image_io
from nbutils.data import lgg as lgg_io
from nbutils.data import nifti as nifti_io
from nbutils.data.datasets import Volume, from_lgg
from nbutils.data.io import OUTPUT_KINDS, atomic_path
from nbutils.data.brain import find_brain
from nbutils.data.preprocessing import from_slices, normalize, to_slices
from nbutils.errors import InputError


@dataclasses.dataclass
class Case:
    """One unit of input: a volume to segment and how to write its outputs."""

    kind: str  # "lgg", "nifti" or "image"
    volume: Volume
    write: Callable[[Path, np.ndarray, np.ndarray, np.ndarray], list[Path]]  # (out_dir, labels, lesion, brain) -> files
    outputs: Callable[[Path], list[Path]]  # out_dir -> the files write() will create
    has_flair: bool = True  # False when no channel is FLAIR (the lesion rule then reads the first)


def label_dtype(labels: np.ndarray) -> type:
    """The smallest unsigned integer type that holds every label.

    Parameters
    ----------
    labels : int array.

    Returns
    -------
    numpy type: uint8 up to 255, uint16 up to 65535, else uint32.
    """
    top = int(np.max(labels, initial=0))
    return np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.uint32


def _write_tif(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(array, label_dtype(array)))


OUTPUTS = OUTPUT_KINDS  # the files written per case (or per LGG slice)


def _lgg_case(v: lgg_io.LGGVolume, brain: str, device, channels: list[str] | None) -> Case:
    def outputs(out: Path) -> list[Path]:
        return [out / v.patient / f"{n}_{kind}.tif" for n in v.slice_names for kind in OUTPUTS]

    def write(out: Path, labels: np.ndarray, lesion: np.ndarray, mask: np.ndarray) -> list[Path]:
        paths = outputs(out)
        for i, _ in enumerate(v.slice_names):
            _write_tif(paths[3 * i], labels[i])
            _write_tif(paths[3 * i + 1], lesion[i].astype(np.uint8) * 255)
            _write_tif(paths[3 * i + 2], mask[i].astype(np.uint8) * 255)
        return paths

    volume = from_lgg(v, brain=brain, device=device, channels=channels)
    has_flair = channels is None or any(c.lower() in lgg_io.CHANNELS[lgg_io.FLAIR_CHANNEL] for c in channels)
    return Case("lgg", volume, write, outputs, has_flair)


def _nifti_case(c: nifti_io.NiftiCase, brain: str, device) -> Case:
    image = normalize(np.stack([to_slices(ch) for ch in c.data], axis=1))  # (S, C, H, W)
    found = find_brain(image[:, c.flair_channel], brain, name=c.name, device=device)
    target = None if c.target is None else to_slices(c.target)
    volume = Volume(c.name, image, found.mask, c.flair_channel, target, None, found.mode, found.reason)

    def outputs(out: Path) -> list[Path]:
        return [out / f"{c.name}_{kind}.nii.gz" for kind in OUTPUTS]

    def write(out: Path, labels: np.ndarray, lesion: np.ndarray, mask: np.ndarray) -> list[Path]:
        paths = outputs(out)
        for path, array in zip(paths, (labels, lesion, mask)):
            nifti_io.write_nifti(path, c.to_original(from_slices(array), label_dtype(array)))
        return paths

    return Case("nifti", volume, write, outputs, c.has_flair)


def _image_case(name: str, array: np.ndarray, brain: str) -> Case:
    image = np.moveaxis(array, -1, 0)[None]  # (1, C, H, W)
    found = find_brain(image.mean(1), brain, name=name)
    volume = Volume(name, image, found.mask, 0, None, None, found.mode, found.reason)

    def outputs(out: Path) -> list[Path]:
        return [out / f"{name}_{kind}.png" for kind in OUTPUTS]

    def write(out: Path, labels: np.ndarray, lesion: np.ndarray, mask: np.ndarray) -> list[Path]:
        paths = outputs(out)
        image_io.write_png(paths[0], labels[0].astype(label_dtype(labels)))
        image_io.write_png(paths[1], lesion[0].astype(np.uint8) * 255)
        image_io.write_png(paths[2], mask[0].astype(np.uint8) * 255)
        return paths

    return Case("image", volume, write, outputs, False)


def detect(path: Path) -> str:
    """The kind of INPUT.

    Parameters
    ----------
    path : what the user gave.

    Returns
    -------
    "lgg", "nifti" or "image"; InputError when it is none of them, unreadable, or ground truth only.
    """
    if not path.exists():
        raise InputError(path, "does not exist")
    if nifti_io.is_nifti(path):
        return "nifti"
    if not path.is_dir():
        raise InputError(path, "is not a folder, a .nii or a .nii.gz file")
    try:
        children = list(path.iterdir())
        if lgg_io.is_lgg_patient(path) or any(c.is_dir() and lgg_io.is_lgg_patient(c) for c in children):
            return "lgg"
        if lgg_io.is_mask_only(path) or any(c.is_dir() and lgg_io.is_mask_only(c) for c in children):
            raise InputError(path, "holds LGG masks (_mask.tif) but no slice images: ground truth is never input")
    except PermissionError:
        raise InputError(path, "cannot be read (permission denied)") from None
    if any(nifti_io.is_nifti(c) for c in children) or any(
        c.is_dir() and any(nifti_io.is_nifti(g) for g in c.iterdir()) for c in children
    ):
        return "nifti"
    if image_io.image_files(path) or image_io.image_files(path, ground_truth=True):
        return "image"
    raise InputError(path, "holds no LGG slices, NIfTI files or images")


def iter_cases(path: str | Path, channels: list[str] | None = None, brain: str = "auto",
               device="cpu") -> tuple[int, Iterator[Case]]:
    """The cases of INPUT, one at a time.

    Parameters
    ----------
    path, channels, brain, device : see :func:`load_cases`.

    Returns
    -------
    (how many, an iterator of :class:`Case`): each case is read and gets its brain mask only when
    reached, so that a long INPUT never sits in memory whole.
    """
    path = Path(path)
    kind = detect(path)
    if kind == "lgg":
        folders = lgg_io.lgg_patients(path)
        if channels:
            lgg_io.channel_indices(path, channels)  # names checked before any file is read
        return len(folders), (_lgg_case(lgg_io.load_lgg_patient(f), brain, device, channels) for f in folders)
    if kind == "image":
        if channels:
            raise InputError(path, "holds plain images, whose channels have no names: drop --channels")
        pairs = image_io.load_image_folder(path)
        return len(pairs), (_image_case(name, array, brain) for name, array in pairs)
    sources, note = nifti_io.sources(path)
    sources = [s.select(channels) for s in sources]  # every name checked before any file is read
    if note:
        tqdm.write(note)
    return len(sources), (_nifti_case(nifti_io.load_nifti_case(s), brain, device) for s in sources)


def load_cases(path: str | Path, channels: list[str] | None = None, brain: str = "auto",
               device="cpu") -> list[Case]:
    """Every case in INPUT, ready to segment.

    Parameters
    ----------
    path : an LGG folder, a NIfTI file, case folder or folder of cases, or an image folder.
    channels : sequences to keep, by name (NIfTI: their file names; LGG: pre-contrast, flair,
        post-contrast); None: all.
    brain : ``auto``, ``skull-stripped``, ``extract`` or ``none`` (:func:`nbutils.data.brain.find_brain`).
    device : where brain extraction runs.

    Returns
    -------
    list of :class:`Case`.
    """
    total, cases = iter_cases(path, channels, brain, device)
    return list(tqdm(cases, total=total, desc="read", unit="case"))


def input_key(path: str | Path, **params) -> str:
    """A short hash of INPUT's files and some parameters: the key of what is derived from it.

    Parameters
    ----------
    path : a file or folder.
    **params : JSON-able values (channels, brain mode, size, ...).

    Returns
    -------
    12 hexadecimal characters; any file's name, size or modification time changes it.
    """
    from nbutils.data.preprocessing import cache_key

    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    listing = [(str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return cache_key(dict(input=str(path), files=listing, **params))
