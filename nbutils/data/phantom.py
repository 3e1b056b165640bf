"""A FLAIR + T1 lesion phantom generated from the MNI152 tissue maps (seeded, deterministic).

Each seed is a distinct "subject": a small elastic deformation of the tissue maps, intensity jitter,
lesions with smooth borders (bright on FLAIR, dark on T1), a dark skull and bright scalp around the
brain, a smooth multiplicative bias field (one coil: shared by both sequences) and Rician noise (drawn
per sequence).

The default subject has one glioma, matched to 31 real LGG FLAIR patients (``statistics.volume_stats``
at 128 pixels, notebook 01; real medians in brackets): its volume is 1-15 % of the brain, log-uniform
(3.8 %), its FLAIR contrast to white matter drawn in 1.45-2.2 (measured 1.76 on ten subjects; 1.73),
noise 0.05 of white matter (0.058), GM / WM 1.20 (1.25), a bias range of 0.04 (0.05). ``lesions="ms"``
gives several small white-matter lesions instead, as in multiple sclerosis.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from nbutils.data.mni152 import load_mni152, tissue_labels

# FLAIR contrast: CSF dark, GM brighter than WM, lesions bright (their level is drawn per subject,
# see ``lesion_contrast``); the scalp fat is bright and the skull dark, as in FLAIR that is not skull-stripped.
FLAIR_INTENSITY = {"csf": 0.08, "gm": 0.55, "wm": 0.42, "lesion": 0.74, "bone": 0.05, "scalp": 0.80}
LESIONS = ("glioma", "ms")
# T1 contrast: CSF dark, WM brighter than GM, lesions hypointense (between CSF and GM), scalp fat bright.
T1_INTENSITY = {"csf": 0.15, "gm": 0.50, "wm": 0.75, "lesion": 0.32, "bone": 0.08, "scalp": 0.90}


@dataclasses.dataclass(frozen=True)
class Phantom:
    """One phantom subject; arrays (X, Y, Z) in canonical RAS orientation."""

    image: np.ndarray  # float32 FLAIR-like intensities, about [0, 1]
    t1: np.ndarray  # float32 T1-like intensities of the same subject, about [0, 1]
    lesion: np.ndarray  # bool lesion mask
    tissue: np.ndarray  # uint8: 0 background, 1 CSF, 2 GM, 3 WM (tissue under the lesions)
    brain_mask: np.ndarray  # bool
    affine: np.ndarray  # (4, 4) voxel -> mm
    seed: int


def _smooth_field(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to max |value| = 1."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (np.abs(field).max() + 1e-12)


def _deform(maps: list[np.ndarray], rng: np.random.Generator, amplitude: float, sigma: float) -> list[np.ndarray]:
    """Warp every map by one smooth random displacement field of at most ``amplitude`` voxels."""
    shape = maps[0].shape
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    coords = [g + amplitude * _smooth_field(rng, shape, sigma) for g in grid]
    return [ndimage.map_coordinates(m, coords, order=1, mode="nearest").astype(np.float32) for m in maps]


def _blob(grid: np.ndarray, centre: np.ndarray, radii: np.ndarray, rng: np.random.Generator,
          border: float) -> tuple[tuple[slice, ...], np.ndarray]:
    """A soft irregular ellipsoid in [0, 1] around ``centre`` (voxels) with semi-axes ``radii``, randomly
    rotated, its surface wobbling by 25 %: (the bounding box, the values inside it)."""
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    shape = np.array(grid.shape[:3])
    lo = np.maximum((centre - 2 * radii.max()).astype(int), 0)
    hi = np.minimum((centre + 2 * radii.max()).astype(int) + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    local = (grid[box] - centre) @ rotation.astype(np.float32)
    distance = np.sqrt(((local / radii) ** 2).sum(-1))
    wobble = 0.25 * _smooth_field(rng, distance.shape, 1.5)
    return box, 1 / (1 + np.exp(-(1 + wobble - distance) / border))


def _lesions(wm: np.ndarray, brain: np.ndarray, rng: np.random.Generator, kind: str, load: tuple[float, float],
             n: tuple[int, int], radius: tuple[float, float]) -> np.ndarray:
    """Soft lesion map in [0, 1] inside ``brain``.

    ``glioma``: one irregular ellipsoid centred in deep white matter of the central 60 % of the brain's
    height, its volume a log-uniform share ``load`` of the brain (it may reach the cortex). ``ms``: ``n``
    (inclusive range) small ellipsoids of semi-axes ``radius`` (voxels) in deep white matter.
    """
    deep_wm = ndimage.binary_erosion(wm > 0.7, iterations=2)
    candidates = np.argwhere(deep_wm if deep_wm.any() else wm > 0.5)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in wm.shape], indexing="ij"), -1)
    soft = np.zeros(wm.shape, np.float32)
    if kind == "glioma":
        z = np.flatnonzero(brain.any((0, 1)))
        lo, hi = z[0] + 0.2 * (z[-1] - z[0]), z[0] + 0.8 * (z[-1] - z[0])
        central = candidates[(candidates[:, 2] >= lo) & (candidates[:, 2] <= hi)]
        centre = central[rng.integers(len(central))].astype(np.float32)
        share = np.exp(rng.uniform(*np.log(load)))
        shape = rng.uniform(0.7, 1.3, size=3).astype(np.float32)
        radii = shape * (share * brain.sum() / (4 / 3 * np.pi * shape.prod())) ** (1 / 3)
        box, blob = _blob(grid, centre, radii, rng, border=0.08)
        soft[box] = blob
    else:
        for _ in range(int(rng.integers(n[0], n[1] + 1))):
            centre = candidates[rng.integers(len(candidates))].astype(np.float32)
            box, blob = _blob(grid, centre, rng.uniform(*radius, size=3).astype(np.float32), rng, border=0.12)
            soft[box] = np.maximum(soft[box], blob)
    return soft * brain


def _bias_field(rng: np.random.Generator, shape, strength: float) -> np.ndarray:
    """Smooth multiplicative field exp(strength * quadratic polynomial), mean about 1."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    terms = [*axes, *(a * b for i, a in enumerate(axes) for b in axes[i:])]
    poly = sum(rng.uniform(-1, 1) * t for t in terms)
    poly = poly / (np.abs(poly).max() + 1e-12)
    return np.exp(strength * poly).astype(np.float32)


def _render(level: dict, csf, gm, wm, lesion_soft, depth_mm, field, noise: float, wm_reference: float,
            rng: np.random.Generator) -> np.ndarray:
    """One sequence: tissue mixture at ``level`` intensities, lesions, skull ring (where ``depth_mm``
    outside the brain is <= 10 mm), bias ``field`` and Rician noise of sigma ``noise`` scaled like WM."""
    image = csf * level["csf"] + gm * level["gm"] + wm * level["wm"]
    image = (1 - lesion_soft) * image + lesion_soft * level["lesion"]
    if depth_mm is not None:
        image = np.where((depth_mm > 0) & (depth_mm <= 4), level["bone"], image)
        image = np.where((depth_mm > 4) & (depth_mm <= 10), level["scalp"], image)
    image = image * field
    sigma = noise * level["wm"] / wm_reference
    image = np.sqrt((image + sigma * rng.standard_normal(image.shape)) ** 2 + (sigma * rng.standard_normal(image.shape)) ** 2)
    return image.astype(np.float32)


def flair_phantom(
    seed: int = 0,
    *,
    resolution: int = 2,
    lesions: str = "glioma",
    lesion_load: tuple[float, float] = (0.01, 0.15),
    lesion_contrast: tuple[float, float] = (1.45, 2.2),
    n_lesions: tuple[int, int] = (3, 8),
    lesion_radius_mm: tuple[float, float] = (2.0, 6.0),
    noise: float = 0.021,
    bias: float = 0.25,
    skull: bool = True,
    deformation_mm: float = 3.0,
    intensity_jitter: float = 0.03,
) -> Phantom:
    """Generate one lesion phantom subject: FLAIR and T1 of the same anatomy and lesions.

    Parameters
    ----------
    seed : the subject; the same seed gives the same subject.
    resolution : voxel size in mm of the underlying MNI152 maps (1 or 2).
    lesions : ``"glioma"`` (one lesion, the default) or ``"ms"`` (several small white-matter lesions).
    lesion_load : glioma volume as a share of the brain, drawn log-uniformly in this range.
    lesion_contrast : FLAIR lesion / white-matter intensity ratio, drawn uniformly in this range.
    n_lesions : ``ms``: inclusive range of the number of lesions.
    lesion_radius_mm : ``ms``: range of each ellipsoid semi-axis, in mm.
    noise : Rician noise sigma on the [0, 1] intensity scale (0.021 is 0.05 of white matter on FLAIR).
    bias : strength of the smooth multiplicative bias field (0 = none; 0.25 = about +-25 %).
    skull : add a dark skull and bright scalp ring outside the brain (FLAIR not skull-stripped).
    deformation_mm : largest elastic displacement of the tissue maps, in mm.
    intensity_jitter : standard deviation of the per-subject tissue intensity offsets.

    Returns
    -------
    Phantom with ``image`` (FLAIR, float32), ``t1`` (float32), ``lesion`` (bool), ``tissue`` (uint8), ``brain_mask``
    (bool), all of shape (99, 117, 95) at 2 mm.

    References
    ----------
    Fonov et al., "Unbiased average age-appropriate atlases for pediatric studies", NeuroImage 54, 2011,
    doi:10.1016/j.neuroimage.2010.07.033 (the MNI152 2009 maps the anatomy comes from).
    """
    if lesions not in LESIONS:
        raise ValueError(f"unknown lesions {lesions!r}; choose one of {', '.join(LESIONS)}")
    rng = np.random.default_rng(seed)
    mni = load_mni152(resolution)
    gm, wm, brain_p = _deform(
        [mni.gm, mni.wm, mni.brain_mask.astype(np.float32)], rng, deformation_mm / resolution, 12.0 / resolution
    )
    brain = brain_p > 0.5
    gm, wm = gm * brain, wm * brain
    csf = np.where(brain, np.clip(1 - gm - wm, 0, 1), 0).astype(np.float32)
    level = {k: v + intensity_jitter * rng.standard_normal() for k, v in FLAIR_INTENSITY.items()}
    level["lesion"] = level["wm"] * rng.uniform(*lesion_contrast)
    lesion_soft = _lesions(wm, brain, rng, lesions, lesion_load, n_lesions,
                           (lesion_radius_mm[0] / resolution, lesion_radius_mm[1] / resolution))
    depth_mm = ndimage.distance_transform_edt(~brain) * resolution if skull else None
    field = _bias_field(rng, brain.shape, bias)
    image = _render(level, csf, gm, wm, lesion_soft, depth_mm, field, noise, FLAIR_INTENSITY["wm"], rng)
    # T1 draws come after every FLAIR draw
    t1_level = {k: v + intensity_jitter * rng.standard_normal() for k, v in T1_INTENSITY.items()}
    t1 = _render(t1_level, csf, gm, wm, lesion_soft, depth_mm, field, noise, T1_INTENSITY["wm"], rng)
    return Phantom(
        image=image,
        t1=t1,
        lesion=(lesion_soft > 0.5) & brain,
        tissue=tissue_labels(csf, gm, wm, brain),
        brain_mask=brain,
        affine=mni.affine.copy(),
        seed=seed,
    )
