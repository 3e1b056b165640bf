"""Builders of small test inputs on disk."""

from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile


def make_lgg_patient(root: Path, patient: str = "TCGA_XX_0001_20000101", slices=(1, 2, 10), masks=True,
                     size: int = 48, seed: int = 0) -> Path:
    """A tiny kaggle_3m patient, skull-stripped (too few slices for brain extraction): a brain disc on
    an exactly-zero background with a brighter lesion."""
    rng = np.random.default_rng(seed)
    folder = root / patient
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size] - size / 2
    brain = np.hypot(yy, xx) <= 0.33 * size
    for i in slices:
        lesion = np.hypot(yy - 3, xx + 4) < 4 + (i % 3)
        flair = np.where(lesion, 230.0, 100.0) + rng.normal(0, 3, brain.shape)
        flair = np.where(brain, flair, 0.0)
        image = np.stack([flair * 0.5, flair, flair * 0.8], -1).clip(1, 255) * brain[..., None]
        tifffile.imwrite(folder / f"{patient}_{i}.tif", image.astype(np.uint8))
        if masks:
            tifffile.imwrite(folder / f"{patient}_{i}_mask.tif", (lesion * 255).astype(np.uint8))
    return folder


def save_nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    """``python -m nbutils ARGV`` in process: (exit code, stdout, stderr)."""
    from nbutils.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err
