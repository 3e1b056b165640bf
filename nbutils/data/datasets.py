"""Volumes in one shape for every source, and a torch ``Dataset`` of their slices.

A :class:`Volume` is what every method receives: slices (S, C, H, W) normalised to [0, 1],
the brain mask the label-free rule uses, and the ground truth when there is one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nbutils.data import lgg as lgg_io
from nbutils.data.brain import find_brain
from nbutils.data.phantom import Phantom, flair_phantom
from nbutils.data.preprocessing import cached, from_square, normalize, to_slices, to_square


@dataclasses.dataclass
class Volume:
    """One subject or patient, as slices."""

    name: str
    image: np.ndarray  # (S, C, H, W) float32 in [0, 1]
    brain: np.ndarray  # (S, H, W) bool, estimated from the image (never from labels)
    flair_channel: int = 0
    target: np.ndarray | None = None  # (S, H, W) bool lesion ground truth
    tissue: np.ndarray | None = None  # (S, H, W) uint8 tissue labels (0 bg, 1 CSF, 2 GM, 3 WM)
    brain_mode: str = "none"  # how ``brain`` was made: "skull-stripped", "extract", "none" or "template"
    brain_reason: str = ""  # why, in one line (see :func:`nbutils.data.brain.find_brain`)

    @property
    def flair(self) -> np.ndarray:
        """(S, H, W): the channel the label-free rule reads."""
        return self.image[:, self.flair_channel]


def square_volume(v: Volume, size: int) -> Volume:
    """A volume with its slices padded to squares and resized.

    Parameters
    ----------
    v : the volume.
    size : side of the output slices, pixels (images bilinear, masks and labels nearest).

    Returns
    -------
    :class:`Volume` with arrays (S, C, size, size) and (S, size, size).
    """
    def sq(a, order):
        return None if a is None else to_square(a, size, order)
    image = np.moveaxis(to_square(np.moveaxis(v.image, 1, -1), size, 1), -1, 1)
    return dataclasses.replace(v, image=image, brain=sq(v.brain, 0), target=sq(v.target, 0), tissue=sq(v.tissue, 0))


def at_size(volume: Volume, size: int, labeller) -> np.ndarray:
    """Labels of a volume computed at a working size and mapped back.

    Parameters
    ----------
    volume : the volume (any slice shape).
    size : the working size, pixels.
    labeller : a function of a :class:`Volume` (squared to ``size``) returning (S, size, size) labels.

    Returns
    -------
    (S, H, W) labels of ``volume``'s shape (nearest neighbour), 0 outside its brain mask.
    """
    labels = from_square(labeller(square_volume(volume, size)), volume.image.shape[2:], order=0)
    labels[~volume.brain] = 0
    return labels


def every_nth_slice(v: Volume, n: int) -> Volume:
    """A volume cut to every n-th of its slices that hold brain, from the first one.

    Parameters
    ----------
    v : the volume.
    n : the step, at least 1 (1: the volume as it is, slices without brain included).

    Returns
    -------
    :class:`Volume` with the kept slices of every array, in order.
    """
    if n < 1:
        raise ValueError(f"the slice step must be at least 1, got {n}")
    if n == 1:
        return v
    keep = np.flatnonzero(v.brain.reshape(len(v.brain), -1).any(1))[::n]
    def cut(a):
        return None if a is None else a[keep]
    return dataclasses.replace(v, image=v.image[keep], brain=v.brain[keep], target=cut(v.target), tissue=cut(v.tissue))


def central_slices(mask: np.ndarray, n: int | None, axis: int = 2, span=(0.2, 0.8)) -> np.ndarray:
    """Evenly spaced slice indices through the central part of a mask.

    Parameters
    ----------
    mask : bool volume, e.g. (X, Y, Z).
    n : how many slices; None: every slice that holds part of the mask.
    axis : the slicing axis.
    span : the central share of the mask's extent to sample, (start, end) in [0, 1].

    Returns
    -------
    sorted int array.
    """
    present = np.flatnonzero(np.moveaxis(mask, axis, 0).reshape(mask.shape[axis], -1).any(1))
    if n is None:
        return present
    lo, hi = present[0] + span[0] * (present[-1] - present[0]), present[0] + span[1] * (present[-1] - present[0])
    return np.unique(np.round(np.linspace(lo, hi, n)).astype(int))


PHANTOM_SEQUENCES = ("flair", "t1")


def stack_sequences(sequences: dict[str, np.ndarray]) -> np.ndarray:
    """Sequences of one subject as channels.

    Parameters
    ----------
    sequences : dict name -> (S, H, W) array, in channel order.

    Returns
    -------
    (S, M, H, W); a ValueError names two sequences of different shapes.
    """
    (first, reference), *rest = sequences.items()
    for name, array in rest:
        if array.shape != reference.shape:
            raise ValueError(f"sequence {name!r} has shape {array.shape}, but {first!r} has {reference.shape}")
    return np.stack(list(sequences.values()), 1)


def from_phantom(p: Phantom, slices_per_volume: int | None = None, size: int | None = None,
                 sequences: tuple[str, ...] = ("flair",), brain: str = "auto", device="cpu") -> Volume:
    """Axial slices of a phantom subject.

    Parameters
    ----------
    p : the phantom.
    slices_per_volume : a central subset of this many slices (None: all).
    size : resize the slices to ``size`` x ``size`` (None: keep).
    sequences : channels ``"flair"`` and/or ``"t1"``, in order, each normalised to [0, 1] on its own.
    brain, device : the brain mask, found on the whole 3D FLAIR as for any input
        (:func:`nbutils.data.brain.find_brain`), then cut like the image.

    Returns
    -------
    :class:`Volume` with the lesion (``target``) and tissue labels.
    """
    unknown = [s for s in sequences if s not in PHANTOM_SEQUENCES]
    if unknown or not sequences:
        raise ValueError(f"unknown phantom sequences {unknown}; choose from {', '.join(PHANTOM_SEQUENCES)}")
    name = f"phantom_{p.seed:03d}"
    found = find_brain(to_slices(p.image), brain, name=name, device=device)
    keep = central_slices(p.brain_mask, slices_per_volume)
    arrays = {"flair": p.image, "t1": p.t1}
    channels = [to_slices(arrays[s])[keep] for s in sequences]
    lesion, tissue = (to_slices(a)[keep] for a in (p.lesion, p.tissue))
    mask = found.mask[keep]
    if size is not None:
        channels = [to_square(c, size, order=1) for c in channels]
        lesion, tissue, mask = (to_square(a, size, order=0) for a in (lesion, tissue, mask))
    image = stack_sequences({s: normalize(c) for s, c in zip(sequences, channels)})
    flair_channel = sequences.index("flair") if "flair" in sequences else 0
    return Volume(name, image, mask, flair_channel, lesion, tissue, found.mode, found.reason)


def mni152_volume(slices_per_volume: int | None = None, size: int | None = None) -> Volume:
    """The MNI152 T1 template as a one-channel volume with its tissue labels.

    Parameters
    ----------
    slices_per_volume : a central subset of axial slices (None: all).
    size : resize to ``size`` x ``size``.

    Returns
    -------
    :class:`Volume` (1 CSF, 2 GM, 3 WM in ``tissue``; no lesion), skull-stripped by its own brain mask.
    """
    from nbutils.data.mni152 import load_mni152

    mni = load_mni152(2)
    keep = central_slices(mni.brain_mask, slices_per_volume)
    t1, brain, tissue = (to_slices(a)[keep] for a in (mni.t1, mni.brain_mask, mni.labels))
    if size is not None:
        t1, brain, tissue = to_square(t1, size, order=1), to_square(brain, size, order=0), to_square(tissue, size, order=0)
    t1 = normalize(np.where(brain, t1, 0))
    return Volume("mni152_t1", t1[:, None], brain.astype(bool), 0, None, tissue, "template",
                  "the template's own brain mask")


def from_lgg(v: lgg_io.LGGVolume, size: int | None = None, brain: str = "auto", device="cpu",
             channels: list[str] | None = None) -> Volume:
    """An LGG patient as a volume.

    Parameters
    ----------
    v : the patient.
    size : resize to ``size`` x ``size`` (None: keep 256).
    brain, device : the brain mask, found on the FLAIR slices at their own size
        (:func:`nbutils.data.brain.find_brain`), then resized.
    channels : names picking channels (see :func:`nbutils.data.lgg.select_channels`); None: all three
        (pre-contrast, FLAIR, post-contrast; FLAIR is channel 1).

    Returns
    -------
    :class:`Volume` normalised to [0, 1].
    """
    found = find_brain(v.image[..., lgg_io.FLAIR_CHANNEL], brain, name=str(v.folder), device=device)
    image, flair = (v.image, lgg_io.FLAIR_CHANNEL) if channels is None else lgg_io.select_channels(v, channels)
    image, mask, target = image.astype(np.float32), found.mask, v.mask
    if size is not None:
        image = to_square(image, size, order=1)
        mask = to_square(mask, size, order=0)
        target = None if target is None else to_square(target, size, order=0)
    image = normalize(np.moveaxis(image, -1, 1))
    return Volume(v.patient, image, mask, 0 if flair is None else flair, target, None, found.mode, found.reason)


def phantom_volumes(n_subjects: int, slices_per_volume: int | None, size: int | None,
                    seed: int = 0, cache_dir: str | Path | None = None,
                    sequences: tuple[str, ...] = ("flair",), brain: str = "auto", device="cpu") -> list[Volume]:
    """Phantom subjects as volumes, cached.

    Parameters
    ----------
    n_subjects : how many (seeds ``seed``, ``seed + 1``, ...).
    slices_per_volume, size, sequences, brain, device : see :func:`from_phantom`.
    seed : the first subject.
    cache_dir : keep them as ``.npz`` there, keyed by these parameters (None: no cache).

    Returns
    -------
    list of :class:`Volume`.
    """
    sequences = tuple(sequences)
    params = dict(kind="phantom", n=n_subjects, slices=slices_per_volume, size=size, seed=seed, brain=brain,
                  version=2)
    if sequences != ("flair",):
        params["sequences"] = list(sequences)

    def build() -> dict:
        vols = [from_phantom(flair_phantom(seed + i), slices_per_volume, size, sequences, brain, device)
                for i in tqdm(range(n_subjects), desc="phantom subjects", leave=False)]
        return _stack(vols)

    arrays = cached(cache_dir, "phantom", params, build) if cache_dir else build()
    return _unstack(arrays)


def lgg_volumes(folder: str | Path, size: int | None = None, patients: int | None = None,
                cache_dir: str | Path | None = None, brain: str = "auto", device="cpu") -> list[Volume]:
    """LGG patients as volumes, cached.

    Parameters
    ----------
    folder : a ``kaggle_3m`` root or one patient.
    size, brain, device : see :func:`from_lgg`.
    patients : the first N patients.
    cache_dir : keep them as ``.npz`` there, keyed by these parameters.

    Returns
    -------
    list of :class:`Volume`.
    """
    params = dict(kind="lgg", folder=str(Path(folder).resolve()), size=size, patients=patients, brain=brain,
                  version=2)

    def build() -> dict:
        return _stack([from_lgg(v, size, brain, device)
                       for v in tqdm(lgg_io.load_lgg(folder, patients), desc="LGG patients", leave=False)])

    arrays = cached(cache_dir, "lgg", params, build) if cache_dir else build()
    return _unstack(arrays)


HELD_OUT_SEED = 100  # held-out phantom subjects start at this seed offset: never trained on
HELD_OUT_SUBJECTS = 5


def default_volumes(cfg, sequences: tuple[str, ...] = ("flair",)) -> list[Volume]:
    """The notebooks' data.

    Parameters
    ----------
    cfg : the :class:`nbutils.config.Config`.
    sequences : the phantom's channels.

    Returns
    -------
    LGG patients resized to ``cfg.image_size`` when ``cfg.lgg_path`` is set, else ``cfg.n_subjects``
    phantom subjects (built once, then read from the cache).
    """
    if cfg.lgg_path is not None:
        return [square_volume(v, cfg.image_size) for v in lgg_volumes(cfg.lgg_path, cache_dir=cfg.cache_dir)]
    return phantom_volumes(cfg.n_subjects, cfg.slices_per_volume, cfg.image_size, seed=cfg.seed,
                           cache_dir=cfg.cache_dir, sequences=sequences)


def train_test_volumes(cfg, sequences: tuple[str, ...] = ("flair",)) -> tuple[list[Volume], list[Volume]]:
    """(train, test) volumes for the notebooks that learn.

    Parameters
    ----------
    cfg : the :class:`nbutils.config.Config`.
    sequences : the phantom's channels.

    Returns
    -------
    The phantom's :func:`default_volumes` and :data:`HELD_OUT_SUBJECTS` other subjects (seeds from
    ``cfg.seed + HELD_OUT_SEED``, never trained on); with LGG data, the first half of the patients in name
    order and the other half (the same single patient twice when there is only one).
    """
    if cfg.lgg_path is not None:
        volumes = default_volumes(cfg)
        half = max(1, len(volumes) // 2)
        return volumes[:half], volumes[half:] or volumes[:half]
    test = phantom_volumes(HELD_OUT_SUBJECTS, cfg.slices_per_volume, cfg.image_size, seed=cfg.seed + HELD_OUT_SEED,
                           cache_dir=cfg.cache_dir, sequences=sequences)
    return default_volumes(cfg, sequences), test


def photo_volumes(names: list[str], size: int) -> list[Volume]:
    """scikit-image's sample photos as one-slice RGB volumes.

    Parameters
    ----------
    names : e.g. "chelsea", "astronaut", "coffee".
    size : resize to ``size`` x ``size``.

    Returns
    -------
    list of :class:`Volume` (every pixel counts as foreground).
    """
    from skimage import data

    out = []
    for name in names:
        photo = getattr(data, name)()
        photo = photo[..., None] if photo.ndim == 2 else photo[..., :3]
        image = to_square(photo[None].astype(np.float32) / 255.0, size, order=1)
        out.append(Volume(name, np.moveaxis(image, -1, 1), np.ones((1, size, size), bool), 0,
                          brain_mode="none", brain_reason="a photo: every pixel"))
    return out


def _stack(volumes: list[Volume]) -> dict:
    """Volumes -> flat arrays for an .npz (slices concatenated, an index per slice)."""
    out = dict(
        names=np.array([v.name for v in volumes]),
        volume_index=np.concatenate([np.full(len(v.image), i) for i, v in enumerate(volumes)]),
        flair_channel=np.array([v.flair_channel for v in volumes]),
        brain_mode=np.array([v.brain_mode for v in volumes]),
        brain_reason=np.array([v.brain_reason for v in volumes]),
        image=np.concatenate([v.image for v in volumes]),
        brain=np.concatenate([v.brain for v in volumes]),
    )
    for key in ("target", "tissue"):
        if all(getattr(v, key) is not None for v in volumes):
            out[key] = np.concatenate([getattr(v, key) for v in volumes])
    return out


def _unstack(arrays: dict) -> list[Volume]:
    volumes = []
    for i, name in enumerate(arrays["names"]):
        rows = arrays["volume_index"] == i
        volumes.append(Volume(
            str(name), arrays["image"][rows], arrays["brain"][rows], int(arrays["flair_channel"][i]),
            arrays["target"][rows] if "target" in arrays else None,
            arrays["tissue"][rows] if "tissue" in arrays else None,
            str(arrays["brain_mode"][i]), str(arrays["brain_reason"][i]),
        ))
    return volumes


class SliceDataset(torch.utils.data.Dataset):
    """The slices of several volumes as ``{"image": (C, H, W), "brain": (H, W)[, "target"]}``."""

    def __init__(self, volumes: list[Volume]):
        channels = sorted({v.image.shape[1] for v in volumes})
        if len(channels) > 1:
            raise ValueError(f"volumes have different channel counts {channels}")
        for v in volumes:
            if v.target is not None and v.target.shape != v.brain.shape:
                raise ValueError(f"{v.name}: masks of shape {v.target.shape} do not match the images' "
                                 f"{v.brain.shape} (slices, height, width)")
        self.image = torch.from_numpy(np.concatenate([v.image for v in volumes]))
        self.brain = torch.from_numpy(np.concatenate([v.brain for v in volumes]))
        has_target = all(v.target is not None for v in volumes)
        self.target = torch.from_numpy(np.concatenate([v.target for v in volumes])) if has_target else None

    @property
    def channels(self) -> int:
        return self.image.shape[1]

    @property
    def has_target(self) -> bool:
        return self.target is not None

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.image[i], "brain": self.brain[i]}
        if self.target is not None:
            item["target"] = self.target[i]
        return item
