"""NIfTI cases via nibabel: one file, or a case folder with one file per sequence.

Volumes are brought to canonical RAS orientation (``as_closest_canonical``); outputs are
written back in the input's own orientation, affine and shape.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from nbutils.data.io import atomic_path, check_volume
from nbutils.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
GROUND_TRUTH = re.compile(r"(^|[_\-. ])(seg|label|labels|mask|gt)([_\-. ]|$)", re.IGNORECASE)


def is_nifti(path: Path) -> bool:
    """Whether ``path`` is a ``.nii`` or ``.nii.gz`` file.

    Parameters
    ----------
    path : any path.

    Returns
    -------
    bool.
    """
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def stem(path: Path) -> str:
    """File name without ``.nii`` / ``.nii.gz``.

    Parameters
    ----------
    path : a NIfTI path.

    Returns
    -------
    str.
    """
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_ground_truth(path: Path) -> bool:
    """Whether a NIfTI file is ground truth by its name (never input).

    Parameters
    ----------
    path : a NIfTI path.

    Returns
    -------
    True when seg, label(s), mask or gt is a word of its stem.
    """
    return bool(GROUND_TRUTH.search(stem(path)))


@dataclasses.dataclass
class NiftiCase:
    """A case in canonical orientation: ``data`` (C, X, Y, Z) float32."""

    name: str
    data: np.ndarray
    channel_names: list[str]
    affine: np.ndarray  # canonical affine
    reference: nib.Nifti1Image  # the first input file as read: its orientation, affine, shape
    target: np.ndarray | None  # (X, Y, Z) bool lesion (seg > 0), canonical, when a seg file exists

    @property
    def has_flair(self) -> bool:
        """Whether a channel's name contains "flair"."""
        return any("flair" in n.lower() for n in self.channel_names)

    @property
    def flair_channel(self) -> int:
        """The channel whose name contains "flair", else the first."""
        return next((i for i, n in enumerate(self.channel_names) if "flair" in n.lower()), 0)

    def to_original(self, volume: np.ndarray, dtype=np.uint8) -> nib.Nifti1Image:
        """A canonical volume back in the input's orientation, affine and header.

        Parameters
        ----------
        volume : (X, Y, Z) array in canonical orientation.
        dtype : the output's data type (e.g. :func:`nbutils.data.cases.label_dtype`).

        Returns
        -------
        nibabel image.
        """
        ref = self.reference
        start = nib.orientations.io_orientation(self.affine)
        end = nib.orientations.io_orientation(ref.affine)
        array = nib.orientations.apply_orientation(volume, nib.orientations.ornt_transform(start, end))
        return nib.Nifti1Image(np.asarray(array, dtype=dtype), ref.affine, ref.header)


def read_nifti(path: Path) -> nib.Nifti1Image:
    """Read a NIfTI file fully.

    Parameters
    ----------
    path : ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    nibabel image holding a 3D array (4D with one volume is squeezed); InputError naming the file when it
    cannot be read or is not 3D.
    """
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel/gzip/zlib raise many types for broken files
        raise InputError(path, f"not a readable NIfTI file ({exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, f"is {data.ndim}D with shape {tuple(data.shape)}; a 3D volume is expected "
                               "(4D only with a single volume)")
    return nib.Nifti1Image(data, img.affine, img.header)


def write_nifti(path: Path, img: nib.Nifti1Image) -> None:
    """Write a nibabel image, atomically.

    Parameters
    ----------
    path : the file.
    img : the image.
    """
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def _channel_name(path: Path, case: str) -> str:
    name = stem(path)
    if name.lower().startswith(case.lower() + "_"):
        name = name[len(case) + 1 :]
    return name.lower()


def load_nifti_case(path: str | Path, channels: list[str] | None = None) -> NiftiCase:
    """Load one NIfTI file, or a case folder of sequences stacked as channels.

    Parameters
    ----------
    path : a file, or a folder of one file per sequence; files named like ground truth (seg, label, mask,
        gt) are the lesion mask, never input.
    channels : names (substrings) picking and ordering the sequences, e.g. ``["flair", "t1"]``; None:
        every sequence in name order.

    Returns
    -------
    :class:`NiftiCase` in canonical orientation; InputError naming the file for sequences of different
    shapes, an unknown channel name, or no input.
    """
    path = Path(path)
    if path.is_dir():
        case = path.name
        files = sorted(p for p in path.iterdir() if is_nifti(p))
        inputs = [p for p in files if not is_ground_truth(p)]
        truth = [p for p in files if is_ground_truth(p)]
        if not inputs:
            raise InputError(path, "holds no NIfTI input sequences (.nii or .nii.gz)")
    elif is_nifti(path):
        case, inputs, truth = stem(path), [path], []
    else:
        raise InputError(path, "is neither a NIfTI file nor a folder of NIfTI files")
    names = [_channel_name(p, case) for p in inputs]
    if channels:
        picked = []
        for want in channels:
            hits = [i for i, n in enumerate(names) if want.lower() in n]
            if not hits:
                raise InputError(path, f"has no sequence named like {want!r} (found {', '.join(names)})")
            picked.append(hits[0])
        inputs, names = [inputs[i] for i in picked], [names[i] for i in picked]
    reference = read_nifti(inputs[0])
    volumes, affine = [], None
    for p in inputs:
        canon = nib.as_closest_canonical(reference if p == inputs[0] else read_nifti(p))
        volume = check_volume(np.asanyarray(canon.dataobj), p, ndim=3)
        if volumes and volume.shape != volumes[0].shape:
            raise InputError(p, f"has shape {volume.shape}, but {inputs[0].name} has {volumes[0].shape}")
        volumes.append(volume)
        affine = canon.affine if affine is None else affine
    target = None
    if truth:
        seg = nib.as_closest_canonical(read_nifti(truth[0]))
        target = np.asanyarray(seg.dataobj) > 0
        if target.shape != volumes[0].shape:
            raise InputError(truth[0], f"has shape {target.shape}, the images have {volumes[0].shape}")
    return NiftiCase(case, np.stack(volumes), names, affine, reference, target)
