import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist, directed_hausdorff
from sklearn.metrics import adjusted_rand_score

from nbutils import metrics


def test_dice_hand_worked():
    pred = np.array([1, 1, 0, 0], bool)
    target = np.array([1, 0, 1, 0], bool)
    assert metrics.dice(pred, target) == pytest.approx(2 * 1 / (2 + 2))
    assert metrics.dice(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
    assert metrics.dice(pred, np.zeros(4, bool)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.dice(pred, target[:3])


def _square(shift=0, size=20):
    m = np.zeros((size, size), bool)
    m[5:12, 5 + shift:12 + shift] = True
    return m


def test_hd95_shifted_squares_is_the_shift():
    # two 7x7 squares 3 px apart: every surface point of one is at most 3 px from the other
    assert metrics.hd95(_square(0), _square(3), percentile=100) == pytest.approx(3.0)


def test_hd95_matches_brute_force_surface_distances():
    rng = np.random.default_rng(1)
    a = np.zeros((30, 30), bool)
    b = np.zeros((30, 30), bool)
    a[5:20, 4:15] = True
    b[8:25, 6:22] = True
    b[rng.integers(0, 30, 5), rng.integers(0, 30, 5)] = True  # outliers
    def surface(m):
        from scipy import ndimage
        return np.argwhere(m & ~ndimage.binary_erosion(m, border_value=0))
    sa, sb = surface(a), surface(b)
    d = cdist(sa, sb)
    expected95 = np.percentile(np.concatenate([d.min(1), d.min(0)]), 95)
    assert metrics.hd95(a, b) == pytest.approx(expected95)
    hausdorff = max(directed_hausdorff(sa, sb)[0], directed_hausdorff(sb, sa)[0])
    assert metrics.hd95(a, b, percentile=100) == pytest.approx(hausdorff)


def test_hd95_empty_cases():
    empty = np.zeros((5, 5), bool)
    assert metrics.hd95(empty, empty) == 0.0
    assert metrics.hd95(_square(), np.zeros((20, 20), bool)) == float("inf")


def test_ari_matches_sklearn_and_ignores_label_names():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    assert metrics.ari(a, b) == pytest.approx(adjusted_rand_score(b, a))
    assert metrics.ari((a + 1) % 3 + 7, a) == pytest.approx(1.0)


def test_hungarian_match_hand_worked():
    labels = np.array([5, 5, 5, 7, 7, 9])
    target = np.array([0, 0, 1, 1, 1, 1])
    # contingency: 5->(0:2, 1:1), 7->(0:0, 1:2), 9->(0:0, 1:1); best one-to-one: 5->0, 7->1
    assert metrics.hungarian_match(labels, target) == {5: 0, 7: 1}
    np.testing.assert_array_equal(metrics.oracle_lesion(labels, target.astype(bool)), [0, 0, 0, 1, 1, 0])


def test_label_free_lesion_uses_brain_and_largest_component():
    flair = np.zeros((1, 8, 8))
    labels = np.ones((1, 8, 8), int)
    brain = np.zeros((1, 8, 8), bool)
    brain[0, 1:7, 1:7] = True
    labels[0, 0, :] = 3; flair[0, 0, :] = 1.0  # brightest, but outside the brain
    labels[0, 2:4, 2:4] = 2; flair[0, 2:4, 2:4] = 0.8  # big piece of the lesion cluster
    labels[0, 6, 6] = 2; flair[0, 6, 6] = 0.8  # small piece
    flair[labels == 1] = 0.3
    lesion = metrics.label_free_lesion(labels, flair, brain)
    assert lesion.sum() == 4 and lesion[0, 2:4, 2:4].all()
    assert metrics.label_free_lesion(labels, flair, brain, largest_cc=False).sum() == 5


def test_robust_z_hand_worked():
    reference = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, |x - 3| = 2 1 0 1 97 -> MAD 1
    np.testing.assert_allclose(metrics.robust_z([3.0, 4.4826, 0.0], reference), [0.0, 1.0, -3 / 1.4826])


def test_lesion_clusters_take_the_brightest_and_every_hyperintense_one():
    brain = np.ones((1, 1, 10), bool)
    labels = np.array([[[1, 1, 1, 1, 1, 1, 2, 2, 3, 4]]])
    flair = np.array([[[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 1.5, 1.5, 5.0, 6.0]]])
    # median 1.5, MAD 0.5 * 1.4826: means 1.333 (z -0.22), 1.5 (0), 5 (4.7), 6 (6.1)
    np.testing.assert_array_equal(metrics.lesion_clusters(labels, flair, brain), [3, 4])
    np.testing.assert_array_equal(metrics.lesion_clusters(labels, flair, brain, z=None), [4])
    np.testing.assert_array_equal(metrics.lesion_clusters(labels, flair, brain, z=10.0), [4])


def test_one_lesion_rule_prefers_a_compact_blob_to_a_larger_thin_ribbon():
    brain = np.ones((2, 60, 60), bool)
    labels = np.ones((2, 60, 60), int)
    labels[:, 5, 2:58] = 2  # a cortical ribbon: 2 x 56 = 112 pixels, one pixel thick
    labels[:, 20:27, 20:27] = 2  # a tumour: 2 x 49 = 98 pixels
    flair = np.where(labels == 2, 0.9, 0.3)
    tumour = np.zeros_like(brain)
    tumour[:, 20:27, 20:27] = True
    lesion = metrics.label_free_lesion(labels, flair, brain)  # opening radius round(0.02 * 67.7) = 1
    np.testing.assert_array_equal(lesion, tumour)
    plain = metrics.label_free_lesion(labels, flair, brain, opening=0)  # plain largest component: the ribbon
    assert plain.sum() == 112 and plain[:, 5, 2:58].all()
    assert metrics.label_free_lesion(labels, flair, brain, largest_cc=False).sum() == 210


def test_tissue_dice_oracle_undoes_a_permutation():
    tissue = np.array([1, 1, 2, 2, 3, 3])
    labels = np.array([3, 3, 1, 1, 2, 2])
    mask = np.ones(6, bool)
    assert metrics.tissue_dice(labels, tissue, mask, {1: "a", 2: "b", 3: "c"}) == {"a": 0, "b": 0, "c": 0}
    assert metrics.tissue_dice(labels, tissue, mask, {1: "a", 2: "b", 3: "c"}, oracle=True) == {"a": 1, "b": 1, "c": 1}


def test_summary_mean_median():
    s = metrics.summary([0.2, 0.4, 0.9])
    assert s["mean"] == pytest.approx(0.5) and s["median"] == pytest.approx(0.4) and s["n"] == 3


def test_ratio_interval_hand_worked():
    # a constant per-volume ratio survives every resample: the interval collapses onto it
    assert metrics.ratio_interval([0.2, 0.4, 0.8], [0.1, 0.2, 0.4]) == pytest.approx((2.0, 2.0, 2.0))
    # two volumes: a resample takes volume 0 twice (ratio 1), both (0.5) or volume 1 twice (0), each a
    # quarter, a half and a quarter of the time: the 95% interval spans both extremes
    ratio, low, high = metrics.ratio_interval([1.0, 0.0], [1.0, 1.0], n_boot=4000)
    assert (ratio, low, high) == (0.5, 0.0, 1.0)
    ratio, low, high = metrics.ratio_interval([1.0, 0.0], [1.0, 1.0], level=0.4, n_boot=4000)
    assert low == high == 0.5  # the middle 40% are all the mixed resamples
    assert metrics.ratio_interval([0.5, 0.5], [0.0, 0.0])[0] == np.inf
    assert all(np.isnan(metrics.ratio_interval([], [])))
    with pytest.raises(ValueError, match="paired 1-d scores"):
        metrics.ratio_interval([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        metrics.ratio_interval([0.1], [0.1], level=95)


def test_score_volumes_scores_each_volume():
    from nbutils.data.datasets import Volume
    from nbutils.evaluation import score_volumes, table

    target = np.zeros((2, 4, 4), bool)
    target[:, 1:3, 1:3] = True
    image = np.where(target, 0.9, 0.2).astype(np.float32)[:, None]
    v = Volume("a", image, np.ones_like(target), 0, target)
    perfect = score_volumes(lambda vol: 1 + vol.target.astype(np.int64), [v], "perfect", largest_cc=False)
    inverted = score_volumes(lambda vol: 2 - vol.target.astype(np.int64), [v], "inverted", largest_cc=False)
    assert perfect.dice_label_free.item() == 1.0 and perfect.dice_oracle.item() == 1.0
    # the label-free rule still picks the bright cluster, whatever its number
    assert inverted.dice_label_free.item() == 1.0
    summary = table(pd.concat([perfect, inverted]))
    assert list(summary.index) == ["perfect", "inverted"] and summary["s/volume"].ge(0).all()
    assert (summary["volumes"] == 1).all() and (summary["lesion kept"] == 1.0).all()
