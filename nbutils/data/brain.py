"""Which voxels are brain: tell skull-stripped input from full heads, and extract the brain from full heads.

Every label-free result rests on this mask: the lesion rule looks for the brightest tissue inside it,
and in a full head the scalp fat and skull marrow are as bright on FLAIR as a lesion.

- **skull-stripped** input (BraTS, WMH, most public collections): the background is exactly one
  value (0, or a constant after z-scoring); the brain is everything else, holes filled.
- **full heads** (the LGG tif slices, raw scans): the brain is extracted by deepbet, a 3D network
  trained for T1 brain extraction whose weights ship inside its wheel (no download). Measured on 31
  real LGG patients it keeps at least 95 % of every glioma on FLAIR as on T1 input, in about 3 s a
  volume on 2 CPU cores (``benchmarks/frontend.py``).
- **none**: the whole volume (2D images without a constant background, or when no brain is found).

``auto`` decides per volume (:func:`find_brain`): a volume whose most frequent value covers at least
:data:`MIN_BACKGROUND` of it, and whose other voxels deepbet calls brain for at least
:data:`STRIPPED_OVERLAP` of them, is skull-stripped; any other volume is a full head. A deepbet mask
whose median intensity does not stand out from the rest (:data:`MIN_CONTRAST`, e.g. pure noise) or
that is empty means no brain was found: the whole volume is used and a warning names it.

References
----------
Fisch, Zumdick, Barkhau et al., "deepbet: Fast brain extraction of T1-weighted MRI using
Convolutional Neural Networks", Computers in Biology and Medicine 179, 2024; arXiv:2308.07003.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import torch
from scipy import ndimage

from nbutils.data.preprocessing import from_slices, largest_component, to_slices

MODES = ("auto", "skull-stripped", "extract", "none")
MIN_BACKGROUND = 0.05  # share of the volume the constant background must cover to be one
STRIPPED_OVERLAP = 0.8  # share of the non-background voxels that must be brain for "skull-stripped"
MIN_CONTRAST = 0.15  # (median inside - median outside) / intensity spread of a plausible brain mask
MIN_SLICES = 8  # deepbet works on 3D volumes: fewer slices (2D images) cannot be extracted


@dataclasses.dataclass(frozen=True)
class BrainMask:
    """A brain mask and how it was made.

    ``mask`` (S, H, W) bool; ``mode`` is ``"skull-stripped"``, ``"extract"`` or ``"none"`` (the mask
    that was used, after ``auto`` decided); ``reason`` says why, in one line, for logs and manifests.
    """

    mask: np.ndarray
    mode: str
    reason: str


def background(volume: np.ndarray) -> tuple[float, float]:
    """The most frequent value of a volume and its share.

    Parameters
    ----------
    volume : array of any shape.

    Returns
    -------
    (value, share of the voxels holding it exactly).
    """
    values, counts = np.unique(volume, return_counts=True)
    top = int(counts.argmax())
    return float(values[top]), float(counts[top] / volume.size)


def foreground(volume: np.ndarray) -> np.ndarray:
    """Skull-stripped brain: everything but the constant background.

    Parameters
    ----------
    volume : (S, H, W).

    Returns
    -------
    (S, H, W) bool: the voxels that differ from the most frequent value, holes filled slice by slice,
    the largest 3D component.
    """
    value, _ = background(volume)
    mask = np.stack([ndimage.binary_fill_holes(s) for s in volume != value])
    return largest_component(mask)


@functools.lru_cache(maxsize=2)
def _deepbet(gpu: bool):
    from deepbet import BrainExtraction  # loads two TorchScript networks from its wheel

    with warnings.catch_warnings():  # torch >= 2.10 calls its own torch.jit.load deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        return BrainExtraction(no_gpu=not gpu)


def extract(volume: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """deepbet's brain mask of a full-head volume.

    Parameters
    ----------
    volume : (S, H, W) display slices, any intensity scale (deepbet resamples to its own grid, so the
        voxel size does not matter).
    device : CUDA when it is a CUDA device, else the CPU.

    Returns
    -------
    (S, H, W) bool, empty when deepbet finds nothing.
    """
    bet = _deepbet(torch.device(device).type == "cuda")
    canonical = from_slices(np.asarray(volume, np.float32))  # (X, Y, Z) as deepbet expects
    try:
        probability = bet.run_model(canonical.copy())
        mask = bet.postprocess(probability > 0.5)
    except (ValueError, AssertionError):  # deepbet's own checks: no foreground, nothing kept
        return np.zeros(volume.shape, bool)
    return to_slices(np.asarray(mask, bool))


def contrast(volume: np.ndarray, mask: np.ndarray) -> float:
    """How much a mask's voxels stand out from the rest.

    Parameters
    ----------
    volume : array.
    mask : bool array of its shape.

    Returns
    -------
    (median inside - median outside) / spread, the spread the larger of the interquartile and the 1-99
    percentile range of the whole volume: about 0.3-0.6 for a brain in a real head, 0 for noise; 0 when
    either side is empty.
    """
    if not mask.any() or mask.all():
        return 0.0
    p1, q1, q3, p99 = np.percentile(volume, [1, 25, 75, 99])
    spread = max(q3 - q1, p99 - p1)
    return float((np.median(volume[mask]) - np.median(volume[~mask])) / spread) if spread > 0 else 0.0


def find_brain(volume: np.ndarray, mode: str = "auto", *, name: str = "volume",
               device: str | torch.device = "cpu") -> BrainMask:
    """The brain mask of one volume (S, H, W), the channel the lesion rule reads (FLAIR when present).

    Parameters
    ----------
    volume : (S, H, W) float array, display slices of one subject (any intensity scale).
    mode : ``"auto"`` (decide, see the module docstring), ``"skull-stripped"`` (everything but the
        constant background), ``"extract"`` (deepbet) or ``"none"`` (every voxel).
    name : the volume's name, for warnings.
    device : where deepbet runs.

    Returns
    -------
    BrainMask with the mask (S, H, W) bool, the mode used and a one-line reason. A mask that finds
    no brain (``auto`` or ``extract``) falls back to the whole volume with a warning naming ``name``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown brain mode {mode!r}; choose one of {', '.join(MODES)}")
    volume = np.asarray(volume, np.float32)
    whole = np.ones(volume.shape, bool)
    if mode == "none":
        return BrainMask(whole, "none", "--brain none: every voxel")
    value, share = background(volume)
    constant = f"{100 * share:.0f}% of the voxels are exactly {value:g}"
    if mode == "skull-stripped":
        if share < MIN_BACKGROUND:
            warnings.warn(f"{name}: --brain skull-stripped, but only {constant}: is it really skull-stripped?",
                          stacklevel=2)
        return BrainMask(foreground(volume), "skull-stripped", f"--brain skull-stripped ({constant})")
    if len(volume) < MIN_SLICES:
        if mode == "extract":
            raise ValueError(f"{name}: brain extraction needs a volume of at least {MIN_SLICES} slices, "
                             f"this one has {len(volume)}; use --brain skull-stripped or none")
        few = f"{len(volume)} slice(s), too few to extract"
        if share >= MIN_BACKGROUND:
            return BrainMask(foreground(volume), "skull-stripped", f"{few}; a constant background ({constant})")
        return BrainMask(whole, "none", f"{few}; no constant background ({constant}): every pixel")
    extracted = extract(volume, device)
    found = contrast(volume, extracted)
    if found < MIN_CONTRAST:
        warnings.warn(f"{name}: no brain found (deepbet's mask does not stand out: contrast {found:.2f}); "
                      "the whole volume is used as the brain", stacklevel=2)
        return BrainMask(whole, "none", f"no brain found (contrast {found:.2f}): every voxel")
    if mode == "extract":
        return BrainMask(extracted, "extract", "--brain extract: deepbet")
    if share >= MIN_BACKGROUND:
        rest = foreground(volume)
        overlap = float((rest & extracted).sum() / max(rest.sum(), 1))
        if overlap >= STRIPPED_OVERLAP:
            return BrainMask(rest, "skull-stripped",
                             f"skull-stripped: {constant} and deepbet calls {100 * overlap:.0f}% of the rest brain")
        return BrainMask(extracted, "extract",
                         f"full head: {constant}, but deepbet calls only {100 * overlap:.0f}% of the rest brain")
    return BrainMask(extracted, "extract", f"full head: no constant background ({constant}); deepbet")
