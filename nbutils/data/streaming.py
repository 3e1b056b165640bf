"""Slices that stream from a disk cache: training on many volumes in a bounded amount of memory.

:func:`cache_slices` writes each volume, squared to the working size, to its own uncompressed ``.npy``
files (image, brain mask, lesion mask) under one cache folder keyed like the other caches (the
parameters and a hash of the content); :class:`StreamingSlices` memory-maps them and reads one slice
per item, so a ``DataLoader`` (with workers) holds only the batches in flight. Volumes are processed
one at a time: only one is in memory while the cache is built.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from nbutils.data.datasets import Volume, square_volume
from nbutils.data.io import atomic_path, write_json

ARRAYS = ("image", "brain", "target")


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))


def distinct_rows(values: np.ndarray) -> int:
    """How many distinct rows an (N, C) array holds (distinct intensities of N pixels with C channels)."""
    values = np.ascontiguousarray(values)
    return len(np.unique(values.view(np.dtype((np.void, values.dtype.itemsize * values.shape[1])))))


def wait_for_cache(folder: str | Path, poll: float = 1.0) -> None:
    """Wait until another process has finished a :func:`cache_slices` folder (its index is written last).

    Under torchrun the processes other than rank 0 wait here, on the shared disk, rather than in a collective
    of the process group, whose timeout (10 to 30 minutes) a long cache would outlast; torchrun ends them all
    if rank 0 fails.

    Parameters
    ----------
    folder : the cache folder.
    poll : seconds between looks.
    """
    while not (Path(folder) / "index.json").exists():
        time.sleep(poll)


def cache_slices(volumes: Iterable[Volume], folder: str | Path, size: int) -> "StreamingSlices":
    """Write volumes to a slice cache, one at a time.

    Parameters
    ----------
    volumes : any iterable of :class:`Volume` (consumed one volume at a time: only one is in memory).
    folder : the cache folder (created).
    size : the working size, pixels: each volume is squared to it.

    Returns
    -------
    :class:`StreamingSlices` over them; its ``fingerprint`` hashes every volume's name, image and masks
    as :func:`nbutils.methods.base.fingerprint` does for volumes in memory.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest, entries = hashlib.sha256(), []
    for i, v in enumerate(volumes):
        digest.update(v.name.encode())
        for array in (v.image, v.brain, v.target):
            if array is not None:
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        squared = square_volume(v, size)
        for key in ARRAYS:
            if getattr(squared, key) is not None:
                _save_npy(folder / f"{i:05d}_{key}.npy", getattr(squared, key))
        entries.append(dict(name=v.name, slices=len(v.image), flair_channel=v.flair_channel,
                            brain_pixels=int(v.brain.sum()), target=v.target is not None,
                            distinct=distinct_rows(np.moveaxis(squared.image, 1, -1)[squared.brain])))
    write_json(folder / "index.json", dict(size=size, volumes=entries, fingerprint=digest.hexdigest()[:16]))
    return StreamingSlices(folder)


class StreamingSlices(torch.utils.data.Dataset):
    """The slices of a :func:`cache_slices` folder as ``{"image": (C, H, W), "brain": (H, W)[, "target"]}``
    items, read from memory-mapped ``.npy`` files: the same items, in the same order, as a
    :class:`nbutils.data.datasets.SliceDataset` of the same volumes at the same size."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text())
        self.size, self.volumes, self.fingerprint = index["size"], index["volumes"], index["fingerprint"]
        self.has_target = bool(self.volumes) and all(v["target"] for v in self.volumes)
        self.flair_channel = self.volumes[0]["flair_channel"] if self.volumes else 0
        self.where = [(i, s) for i, v in enumerate(self.volumes) for s in range(v["slices"])]
        self._maps: dict[tuple[int, str], np.ndarray] = {}
        first = self._array(0, "image") if self.volumes else None
        self.channels = None if first is None else first.shape[1]

    def _array(self, volume: int, key: str) -> np.ndarray:
        if (volume, key) not in self._maps:  # opened lazily in each DataLoader worker
            self._maps[volume, key] = np.load(self.folder / f"{volume:05d}_{key}.npy", mmap_mode="r")
        return self._maps[volume, key]

    def __len__(self) -> int:
        return len(self.where)

    def __getitem__(self, i: int) -> dict:
        volume, s = self.where[i]
        item = {"image": torch.from_numpy(np.array(self._array(volume, "image")[s])),
                "brain": torch.from_numpy(np.array(self._array(volume, "brain")[s]))}
        if self.has_target:
            item["target"] = torch.from_numpy(np.array(self._array(volume, "target")[s]))
        return item

    def __getstate__(self) -> dict:  # workers open their own maps
        return {**self.__dict__, "_maps": {}}
