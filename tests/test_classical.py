import numpy as np
import pytest

from nbutils.methods import classical


def _three_level_image(seed=0):
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.array([1, 2, 3]), 300)
    values = np.array([0.1, 0.5, 0.9])[truth - 1] + rng.normal(0, 0.03, truth.size)
    return values.reshape(1, 1, 30, 30).astype(np.float32), truth.reshape(1, 30, 30)


@pytest.mark.parametrize("method", [classical.kmeans, classical.gmm])
def test_clustering_recovers_levels_numbered_by_brightness(method):
    image, truth = _three_level_image()
    labels = method(image, np.ones((1, 30, 30), bool), k=3)
    np.testing.assert_array_equal(labels, truth)


def test_outside_mask_is_zero():
    image, _ = _three_level_image()
    mask = np.zeros((1, 30, 30), bool)
    mask[0, :, :15] = True
    labels = classical.kmeans(image, mask, k=2)
    assert (labels[~mask] == 0).all() and set(np.unique(labels[mask])) == {1, 2}


def test_otsu_two_and_three_classes():
    image, truth = _three_level_image()
    mask = np.ones((1, 30, 30), bool)
    np.testing.assert_array_equal(classical.otsu(image, mask, k=3), truth)
    assert set(np.unique(classical.otsu(image, mask, k=2))) == {1, 2}


def test_robust_zscore_hand_worked():
    # values 1..9 and one 100: median 5.5, MAD = median |x - 5.5| = 2.5 -> 3.7065; threshold 3 -> 16.6
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 100], np.float32).reshape(1, 1, 1, 10)
    labels = classical.robust_zscore(values, np.ones((1, 1, 10), bool), threshold=3.0)
    np.testing.assert_array_equal(labels[0, 0], [1] * 9 + [2])


def test_bad_k():
    image, _ = _three_level_image()
    with pytest.raises(ValueError, match="at least 2"):
        classical.kmeans(image, np.ones((1, 30, 30), bool), k=1)
    two_pixels = np.zeros((1, 30, 30), bool)
    two_pixels[0, 0, :2] = True
    with pytest.raises(ValueError, match="fewer than k"):
        classical.kmeans(image, two_pixels, k=3)
