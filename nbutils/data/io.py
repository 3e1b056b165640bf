"""Atomic writing and the checks every loaded array goes through."""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from pathlib import Path

import numpy as np

from nbutils.errors import InputError

OUTPUT_KINDS = ("labels", "lesion", "brain")  # what segment writes per case (or LGG slice): <name>_<kind>.<ext>
_OUTPUT_NAME = re.compile(rf"^(?P<name>.+)_(?P<kind>{'|'.join(OUTPUT_KINDS)})(?P<ext>(\.[A-Za-z]+)+)$")


def own_outputs(files) -> set[Path]:
    """The files among ``files`` that ``segment`` wrote: a ``<name>_labels``, ``<name>_lesion`` and
    ``<name>_brain`` with the same name, folder and extension (all three: a lone ``T1_brain.nii.gz`` is input).

    Parameters
    ----------
    files : paths.

    Returns
    -------
    set of those paths, never read as input or ground truth.
    """
    groups: dict[tuple, list[Path]] = {}
    for path in map(Path, files):
        match = _OUTPUT_NAME.match(path.name)
        if match:
            groups.setdefault((path.parent, match["name"], match["ext"].lower()), []).append(path)
    return {p for group in groups.values() if len(group) == len(OUTPUT_KINDS) for p in group}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """A temporary path beside ``path`` that replaces it in one step on success.

    Parameters
    ----------
    path : the file to write (its folder is created).

    Yields
    ------
    Path ``<folder>/.partial-<random>-<name>`` (keeping the name's ending, so writers that infer the
    format still work); a crash or an exception leaves any earlier ``path`` untouched and removes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".partial-{uuid.uuid4().hex[:8]}-{path.name}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write a dict as indented JSON, atomically.

    Parameters
    ----------
    path : the JSON file.
    payload : JSON-able dict.
    """
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2) + "\n")


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """Write arrays to a compressed ``.npz``, atomically.

    Parameters
    ----------
    path : the file.
    **arrays : name -> array.

    Returns
    -------
    ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


def check_volume(array: np.ndarray, path, ndim: int | tuple[int, ...]) -> np.ndarray:
    """An array as float32 after checking it is usable image data.

    Parameters
    ----------
    array : the data read from ``path``.
    path : the file it came from, named in errors.
    ndim : the allowed number(s) of dimensions.

    Returns
    -------
    float32 array. Raises :class:`InputError` naming ``path`` for another dimensionality, NaN or inf
    values, values beyond float32's range, or a constant array (nothing to segment).
    """
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in dims:
        want = " or ".join(f"{d}D" for d in dims)
        raise InputError(path, f"is {array.ndim}D with shape {tuple(array.shape)}, expected {want}")
    array = np.asarray(array)
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(path, f"holds {bad} NaN or infinite values; fix or mask them before segmenting")
    top, limit = float(np.max(np.abs(array), initial=0)), float(np.finfo(np.float32).max)
    if top > limit:
        raise InputError(path, f"holds values up to {top:.3g}, beyond what float32 holds ({limit:.3g}); rescale "
                               "the intensities before segmenting")
    array = array.astype(np.float32)
    if array.size == 0 or array.min() == array.max():
        value = array.flat[0] if array.size else 0
        what = "all zero" if value == 0 else f"constant (every value {value:g})"
        raise InputError(path, f"is {what}: there is nothing to segment")
    return array
