import numpy as np
import pytest

from nbutils.data import preprocessing as pp


def test_normalize_max_and_percentile_clip():
    vol = np.array([0.0, 1.0, 2.0, 4.0], np.float32)
    np.testing.assert_allclose(pp.normalize(vol), [0, 0.25, 0.5, 1.0])
    rng = np.random.default_rng(0)
    vol = rng.uniform(1, 2, 1000).astype(np.float32)
    vol[:3] = 50.0
    lo, hi = np.percentile(vol, (1, 99))
    np.testing.assert_allclose(pp.normalize(vol, clip_percentiles=(1, 99)), np.clip(vol, lo, hi) / hi, rtol=1e-6)


def test_normalize_rejects_zero_and_nan():
    with pytest.raises(ValueError, match="all zero"):
        pp.normalize(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        pp.normalize(np.array([1.0, np.nan]))


def test_slices_roundtrip_and_orientation():
    vol = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    s = pp.to_slices(vol, axis=2)
    assert s.shape == (4, 3, 2)
    # anterior (last y) is the top row; x increases to the right
    assert s[0, 0, 0] == vol[0, 2, 0] and s[0, 0, 1] == vol[1, 2, 0]
    np.testing.assert_array_equal(pp.from_slices(s, axis=2), vol)
    np.testing.assert_array_equal(pp.from_slices(pp.to_slices(vol, 0), 0), vol)


def test_square_roundtrip_restores_labels():
    labels = np.zeros((2, 30, 20), np.uint8)
    labels[:, 10:20, 5:15] = 3
    square = pp.to_square(labels, 64, order=0)
    assert square.shape == (2, 64, 64) and square.dtype == np.uint8
    back = pp.from_square(square, (30, 20), order=0)
    assert back.shape == labels.shape
    assert (back == labels).mean() > 0.97
    np.testing.assert_array_equal(pp.from_square(pp.to_square(labels, 30, 0), (30, 20)), labels)


def test_cache_builds_once_and_keys_by_params(tmp_path):
    calls = []
    def build():
        calls.append(1)
        return {"x": np.arange(3)}
    a = pp.cached(tmp_path, "thing", {"n": 3}, build)
    b = pp.cached(tmp_path, "thing", {"n": 3}, build)
    pp.cached(tmp_path, "thing", {"n": 4}, build)
    assert len(calls) == 2 and len(list(tmp_path.glob("thing_*.npz"))) == 2
    np.testing.assert_array_equal(a["x"], b["x"])


def test_cache_failed_build_leaves_nothing(tmp_path):
    def build():
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        pp.cached(tmp_path, "thing", {"n": 1}, build)
    assert not list(tmp_path.iterdir())
