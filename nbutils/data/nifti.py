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

from nbutils.data.io import atomic_path, check_volume, own_outputs
from nbutils.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
GROUND_TRUTH = re.compile(r"(^|[_\-. ])(seg|label|labels|mask|gt)([_\-. ]|$)", re.IGNORECASE)
# the last word of a file name that makes it one sequence of a subject (BraTS 2018-2023, MyoPS, common names)
SEQUENCE = re.compile(r"^(flair|t2flair|t2f|t1|t1w|t1n|t1c|t1ce|t1gd|t1post|t1km|mprage|t2|t2w|t2star|pd|pdw|dwi|"
                      r"adc|swi|dir|c0|de|lge)$", re.IGNORECASE)
_WORD = re.compile(r"[_\-. ]")


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

    def to_original(self, volume: np.ndarray, dtype=np.uint8, intent: str = "label") -> nib.Nifti1Image:
        """A canonical volume back in the input's orientation, affine and shape, as a new image.

        The input's voxel size units and qform/sform codes are kept; its data type, scaling
        (``scl_slope``/``scl_inter``) and intent are not: the output stores ``volume`` exactly in ``dtype``.

        Parameters
        ----------
        volume : (X, Y, Z) array in canonical orientation.
        dtype : the output's data type (e.g. :func:`nbutils.data.cases.label_dtype`).
        intent : the NIfTI intent (``"label"``: a label map, as imaging tools read segmentations; ``"none"``).

        Returns
        -------
        nibabel image with slope 1 and intercept 0.
        """
        ref = self.reference
        start = nib.orientations.io_orientation(self.affine)
        end = nib.orientations.io_orientation(ref.affine)
        array = np.asarray(nib.orientations.apply_orientation(volume, nib.orientations.ornt_transform(start, end)))
        if np.issubdtype(np.dtype(dtype), np.integer) and array.size and (
                array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
            raise ValueError(f"values {array.min()}..{array.max()} do not fit {np.dtype(dtype).name}")
        img = nib.Nifti1Image(array.astype(dtype), ref.affine)
        header = ref.header
        img.set_qform(ref.affine, code=int(header["qform_code"]) if "qform_code" in header else 1)
        img.set_sform(ref.affine, code=int(header["sform_code"]) if "sform_code" in header else 1)
        img.header.set_xyzt_units(*header.get_xyzt_units())
        img.header.set_intent(intent)
        img.header.set_slope_inter(1, 0)
        img.set_data_dtype(dtype)
        return img


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
    rotation = np.asarray(img.affine, float)[:3, :3]
    if not np.isfinite(rotation).all() or np.linalg.matrix_rank(rotation) < 3:
        raise InputError(path, "has a zero or singular affine (its voxel-to-world matrix cannot be inverted, so its "
                               "orientation is unknown); fix the header's qform/sform first")
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


def _channel_name(path: Path, prefix: str) -> str:
    name = stem(path)
    if prefix and name.lower().startswith(prefix.lower()) and name[len(prefix):][:1] in ("_", "-", "."):
        name = name[len(prefix) + 1 :]
    return name.lower()


def _sequence(path: Path) -> tuple[str, str] | None:
    """(subject, sequence) when a file's name ends in a sequence word (``case7_flair`` -> ``case7``, ``flair``)."""
    name = stem(path)
    last = _WORD.split(name)[-1]
    if not SEQUENCE.match(last):
        return None
    return name[: len(name) - len(last)].rstrip("_-. ").lower(), last.lower()


def _one_subject(inputs: list[Path]) -> bool:
    """Whether loose files are the sequences of one subject: one file, or every name ``<subject>_<sequence>``
    with the same subject and different sequences."""
    named = [_sequence(p) for p in inputs]
    if len(inputs) == 1:
        return True
    return (all(named) and len({s for s, _ in named}) == 1 and len({q for _, q in named}) == len(named))


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one NIfTI case comes from, before anything is read."""

    name: str  # the case: outputs are <name>_labels.nii.gz, ...
    inputs: tuple[Path, ...]  # one file per sequence, stacked as channels in this order
    channel_names: tuple[str, ...]
    truth: Path | None  # its ground truth, if any

    def select(self, channels: list[str] | None) -> "Source":
        """The sequences named like ``channels`` (substrings), in that order; None: all.

        Returns
        -------
        a new source; InputError naming the case and the sequences it has for a name none matches.
        """
        if not channels:
            return self
        picked = []
        for want in channels:
            hits = [i for i, n in enumerate(self.channel_names) if want.lower() in n]
            if not hits:
                raise InputError(self.inputs[0].parent if len(self.inputs) > 1 else self.inputs[0],
                                 f"has no sequence named like {want!r} (it has {', '.join(self.channel_names)})")
            picked.append(hits[0])
        return dataclasses.replace(self, inputs=tuple(self.inputs[i] for i in picked),
                                   channel_names=tuple(self.channel_names[i] for i in picked))


def _files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(inputs, ground truth) among a folder's NIfTI files; ``segment``'s own outputs are neither."""
    files = sorted(p for p in folder.iterdir() if is_nifti(p))
    ours = own_outputs(files)
    files = [p for p in files if p not in ours]
    return [p for p in files if not is_ground_truth(p)], [p for p in files if is_ground_truth(p)]


def _case_folder(folder: Path, inputs: list[Path], truth: list[Path]) -> Source:
    """A folder that is one case: every input a sequence, the first ground-truth file its lesion."""
    subjects = {s for s, _ in filter(None, map(_sequence, inputs))}
    prefix = subjects.pop() if len(subjects) == 1 and all(map(_sequence, inputs)) else folder.name
    return Source(folder.name, tuple(inputs), tuple(_channel_name(p, prefix or folder.name) for p in inputs),
                  truth[0] if truth else None)


def _truth_of(path: Path, truth: list[Path]) -> Path | None:
    """The ground truth of a loose file: the one whose other words begin the file's words (``sub1_seg`` for
    ``sub1_flair``); the longest such match."""
    words = [w.lower() for w in _WORD.split(stem(path)) if w]
    best, best_len = None, 0
    for t in truth:
        rest = [w.lower() for w in _WORD.split(stem(t)) if w and not GROUND_TRUTH.search(w)]
        if rest and words[: len(rest)] == rest and len(rest) > best_len:
            best, best_len = t, len(rest)
    return best


def sources(path: str | Path) -> tuple[list[Source], str | None]:
    """The NIfTI cases of INPUT, from file names alone (nothing is read).

    Parameters
    ----------
    path : a NIfTI file (one case); a folder whose loose files are the sequences of one subject (``FLAIR.nii.gz``,
        ``T1.nii.gz``; ``<id>_flair.nii.gz``, ``<id>_t1.nii.gz``: one case named after the folder); a folder of
        loose files of several subjects (one case per file, its ground truth by name: ``sub1_seg`` for ``sub1``);
        and sub-folders, each one case. Ground truth (seg, label, mask, gt) and ``segment``'s own outputs
        are never input.

    Returns
    -------
    (the cases, a line saying how loose files were grouped or None when there was nothing to decide);
    InputError when there is no input.
    """
    path = Path(path)
    if is_nifti(path):
        return [Source(stem(path), (path,), (_channel_name(path, ""),), None)], None
    if not path.is_dir():
        raise InputError(path, "is neither a NIfTI file nor a folder of NIfTI files")
    inputs, truth = _files(path)
    if inputs and _one_subject(inputs):
        note = None if len(inputs) == 1 else (
            f"{path}: {len(inputs)} NIfTI files named as the sequences of one subject "
            f"({', '.join(q for _, q in map(_sequence, inputs))}): one case with {len(inputs)} channels")
        return [_case_folder(path, inputs, truth)], note
    found = [Source(stem(p), (p,), (_channel_name(p, (_sequence(p) or ("",))[0]),), _truth_of(p, truth))
             for p in inputs]
    for sub in sorted(c for c in path.iterdir() if c.is_dir()):
        sub_inputs, sub_truth = _files(sub)
        if sub_inputs:
            found.append(_case_folder(sub, sub_inputs, sub_truth))
    if not found:
        raise InputError(path, "holds no NIfTI input sequences (.nii or .nii.gz)")
    note = None if len(inputs) < 2 else (
        f"{path}: {len(inputs)} loose NIfTI files not named as the sequences of one subject (<subject>_flair, "
        "<subject>_t1, ...): one case per file")
    return found, note


def load_nifti_case(path: str | Path | Source, channels: list[str] | None = None) -> NiftiCase:
    """Load one NIfTI case: its sequences stacked as channels.

    Parameters
    ----------
    path : a :class:`Source` (from :func:`sources`), a file, or a case folder (every input file in it is one
        sequence; files named like ground truth are the lesion mask, never input).
    channels : names (substrings) picking and ordering the sequences, e.g. ``["flair", "t1"]``; None:
        every sequence in name order.

    Returns
    -------
    :class:`NiftiCase` in canonical orientation; InputError naming the file for sequences of different
    shapes, an unknown channel name, unreadable geometry, or no input.
    """
    if isinstance(path, Source):
        source = path
    elif is_nifti(Path(path)):
        source = sources(path)[0][0]
    elif Path(path).is_dir():
        inputs, truth = _files(Path(path))
        if not inputs:
            raise InputError(path, "holds no NIfTI input sequences (.nii or .nii.gz)")
        source = _case_folder(Path(path), inputs, truth)
    else:
        raise InputError(path, "is neither a NIfTI file nor a folder of NIfTI files")
    source = source.select(channels)
    inputs = source.inputs
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
    if source.truth is not None:
        seg = nib.as_closest_canonical(read_nifti(source.truth))
        target = np.asanyarray(seg.dataobj) > 0
        if target.shape != volumes[0].shape:
            raise InputError(source.truth, f"has shape {target.shape}, the images have {volumes[0].shape}")
    return NiftiCase(source.name, np.stack(volumes), list(source.channel_names), affine, reference, target)
