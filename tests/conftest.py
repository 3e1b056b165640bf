import os
from pathlib import Path

import pytest

LGG_SAMPLE = Path(os.environ.get("NBUTILS_LGG_SAMPLE") or Path(__file__).resolve().parents[2] / "shared" / "data" / "lgg_sample")


@pytest.fixture
def lgg_sample() -> Path:
    """The 6-patient real LGG sample beside the checkout; the test is skipped when it is absent."""
    if not LGG_SAMPLE.is_dir():
        pytest.skip(f"LGG sample not found at {LGG_SAMPLE}")
    return LGG_SAMPLE

