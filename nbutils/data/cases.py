"""What the command line reads and writes: any INPUT as a list of cases, and their outputs.

INPUT may be an LGG ``kaggle_3m`` folder (root or one patient), a NIfTI file, a NIfTI case
folder, a folder of NIfTI cases, or a folder of plain images. Output names follow DESIGN
section 6.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from nbutils.data import images as image_io
from nbutils.data import lgg as lgg_io
from nbutils.data import nifti as nifti_io
from nbutils.data.datasets import Volume, from_lgg
from nbutils.data.io import atomic_path
from nbutils.data.preprocessing import brain_mask, from_slices, normalize, to_slices
from nbutils.errors import InputError


@dataclasses.dataclass
class Case:
    """One unit of input: a volume to segment and how to write its outputs."""

    kind: str  # "lgg", "nifti" or "image"
    volume: Volume
    write: Callable[[Path, np.ndarray, np.ndarray], list[Path]]  # (out_dir, labels, lesion) -> files
    outputs: Callable[[Path], list[Path]]  # out_dir -> the files write() will create


def _write_tif(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(array, np.uint8))


def _lgg_case(v: lgg_io.LGGVolume) -> Case:
    def outputs(out: Path) -> list[Path]:
        return [out / v.patient / f"{n}_{kind}.tif" for n in v.slice_names for kind in ("labels", "lesion")]

    def write(out: Path, labels: np.ndarray, lesion: np.ndarray) -> list[Path]:
        paths = outputs(out)
        for i, _ in enumerate(v.slice_names):
            _write_tif(paths[2 * i], labels[i])
            _write_tif(paths[2 * i + 1], lesion[i].astype(np.uint8) * 255)
        return paths

    return Case("lgg", from_lgg(v), write, outputs)


def _nifti_case(c: nifti_io.NiftiCase) -> Case:
    image = normalize(np.stack([to_slices(ch) for ch in c.data], axis=1))  # (S, C, H, W)
    flair = image[:, c.flair_channel]
    target = None if c.target is None else to_slices(c.target)
    volume = Volume(c.name, image, brain_mask(flair), c.flair_channel, target)

    def outputs(out: Path) -> list[Path]:
        return [out / f"{c.name}_labels.nii.gz", out / f"{c.name}_lesion.nii.gz"]

    def write(out: Path, labels: np.ndarray, lesion: np.ndarray) -> list[Path]:
        paths = outputs(out)
        nifti_io.write_nifti(paths[0], c.to_original(from_slices(labels)))
        nifti_io.write_nifti(paths[1], c.to_original(from_slices(lesion)))
        return paths

    return Case("nifti", volume, write, outputs)


def _image_case(name: str, array: np.ndarray) -> Case:
    image = np.moveaxis(array, -1, 0)[None]  # (1, C, H, W)
    volume = Volume(name, image, np.ones(image.shape[:1] + image.shape[2:], bool), 0)

    def outputs(out: Path) -> list[Path]:
        return [out / f"{name}_labels.png", out / f"{name}_lesion.png"]

    def write(out: Path, labels: np.ndarray, lesion: np.ndarray) -> list[Path]:
        paths = outputs(out)
        image_io.write_png(paths[0], labels[0])
        image_io.write_png(paths[1], lesion[0].astype(np.uint8) * 255)
        return paths

    return Case("image", volume, write, outputs)


def detect(path: Path) -> str:
    """The kind of INPUT: "lgg", "nifti" or "image"; InputError when it is none of them."""
    if not path.exists():
        raise InputError(path, "does not exist")
    if nifti_io.is_nifti(path):
        return "nifti"
    if not path.is_dir():
        raise InputError(path, "is not a folder, a .nii or a .nii.gz file")
    children = list(path.iterdir())
    if lgg_io.is_lgg_patient(path) or any(c.is_dir() and lgg_io.is_lgg_patient(c) for c in children):
        return "lgg"
    if any(nifti_io.is_nifti(c) for c in children) or any(
        c.is_dir() and any(nifti_io.is_nifti(g) for g in c.iterdir()) for c in children
    ):
        return "nifti"
    if image_io.image_files(path):
        return "image"
    raise InputError(path, "holds no LGG slices, NIfTI files or images")


def load_cases(path: str | Path, channels: list[str] | None = None) -> list[Case]:
    """Every case in INPUT, ready to segment (see the module docstring for what INPUT may be)."""
    path = Path(path)
    kind = detect(path)
    if kind == "lgg":
        return [_lgg_case(v) for v in lgg_io.load_lgg(path)]
    if kind == "image":
        return [_image_case(name, array) for name, array in image_io.load_image_folder(path)]
    if path.is_file() or any(nifti_io.is_nifti(c) and not nifti_io.is_ground_truth(c) for c in path.iterdir()):
        sources = [path]  # one file, or one case folder
    else:  # a folder of cases: sub-folders and loose files
        sources = sorted(c for c in path.iterdir() if c.is_dir() or (nifti_io.is_nifti(c) and not nifti_io.is_ground_truth(c)))
    return [_nifti_case(nifti_io.load_nifti_case(s, channels)) for s in sources]
