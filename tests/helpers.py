"""Builders of small test inputs on disk."""

from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile


def make_lgg_patient(root: Path, patient: str = "TCGA_XX_0001_20000101", slices=(1, 2, 10), masks=True,
                     size: int = 48, seed: int = 0) -> Path:
    """A tiny kaggle_3m patient: a bright head disc with a dark skull ring and a brighter lesion."""
    rng = np.random.default_rng(seed)
    folder = root / patient
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size] - size / 2
    r = np.hypot(yy, xx)
    for i in slices:
        flair = np.where(r < 0.45 * size, 200, 0) * 1.0
        flair[(r > 0.33 * size) & (r < 0.38 * size)] = 20  # skull
        flair[r <= 0.33 * size] = 100  # brain
        lesion = np.hypot(yy - 3, xx + 4) < 4 + (i % 3)
        flair[lesion] = 230
        flair += rng.normal(0, 3, flair.shape)
        image = np.stack([flair * 0.5, flair, flair * 0.8], -1).clip(0, 255).astype(np.uint8)
        tifffile.imwrite(folder / f"{patient}_{i}.tif", image)
        if masks:
            tifffile.imwrite(folder / f"{patient}_{i}_mask.tif", (lesion * 255).astype(np.uint8))
    return folder


def save_nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path
