import os

import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars off in tests (read when tqdm is imported)
os.environ.setdefault("NBUTILS_DATA_DIR", tempfile.mkdtemp(prefix="nbutils-tests-"))  # caches out of the checkout
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LGG_SAMPLE = Path(os.environ.get("NBUTILS_LGG_SAMPLE") or SHARED_DATA / "lgg_sample")
BRATS_SAMPLE = Path(os.environ.get("NBUTILS_BRATS_SAMPLE") or SHARED_DATA / "brats_sample")


@pytest.fixture
def lgg_sample() -> Path:
    """The 6-patient real LGG sample beside the checkout; the test is skipped when it is absent."""
    if not LGG_SAMPLE.is_dir():
        pytest.skip(f"LGG sample not found at {LGG_SAMPLE}")
    return LGG_SAMPLE



@pytest.fixture
def brats_sample() -> Path:
    """The 3 real skull-stripped BraTS cases beside the checkout; the test is skipped when they are absent."""
    if not BRATS_SAMPLE.is_dir():
        pytest.skip(f"BraTS sample not found at {BRATS_SAMPLE}")
    return BRATS_SAMPLE


@pytest.fixture
def lgg_folder(tmp_path) -> Path:
    """A tiny kaggle_3m folder: two skull-stripped patients (3 and 2 slices) with masks."""
    from helpers import make_lgg_patient

    root = tmp_path / "kaggle_3m"
    make_lgg_patient(root, "TCGA_XX_0001_20000101", seed=0)
    make_lgg_patient(root, "TCGA_XX_0002_20000101", slices=(1, 2), seed=1)
    return root
