import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

LGG_SAMPLE = Path(os.environ.get("NBUTILS_LGG_SAMPLE") or Path(__file__).resolve().parents[2] / "shared" / "data" / "lgg_sample")


@pytest.fixture
def lgg_sample() -> Path:
    """The 6-patient real LGG sample beside the checkout; the test is skipped when it is absent."""
    if not LGG_SAMPLE.is_dir():
        pytest.skip(f"LGG sample not found at {LGG_SAMPLE}")
    return LGG_SAMPLE


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


@pytest.fixture
def head_volume() -> np.ndarray:
    """A (X, Y, Z) float volume: a bright sphere with a brighter blob, zeros around."""
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"), -1) - 12
    r = np.linalg.norm(grid, axis=-1)
    vol = np.where(r < 10, 0.5, 0.0)
    vol[np.linalg.norm(grid - [3, 2, 0], axis=-1) < 3] = 1.0
    return vol.astype(np.float32)
