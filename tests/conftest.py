import os
from pathlib import Path

import numpy as np
import pytest

LGG_SAMPLE = Path(os.environ.get("NBUTILS_LGG_SAMPLE") or Path(__file__).resolve().parents[2] / "shared" / "data" / "lgg_sample")


@pytest.fixture
def lgg_sample() -> Path:
    """The 6-patient real LGG sample beside the checkout; the test is skipped when it is absent."""
    if not LGG_SAMPLE.is_dir():
        pytest.skip(f"LGG sample not found at {LGG_SAMPLE}")
    return LGG_SAMPLE


@pytest.fixture
def head_volume() -> np.ndarray:
    """A (X, Y, Z) float volume: a bright sphere with a brighter blob, zeros around."""
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"), -1) - 12
    r = np.linalg.norm(grid, axis=-1)
    vol = np.where(r < 10, 0.5, 0.0)
    vol[np.linalg.norm(grid - [3, 2, 0], axis=-1) < 3] = 1.0
    return vol.astype(np.float32)
