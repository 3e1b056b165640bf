import numpy as np
import pandas as pd
import pytest

from nbutils import comparison, evaluation, methods
from nbutils.data.datasets import Volume


def blob_volumes(n=3, size=32):
    vols = []
    for i in range(n):
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[:size, :size]
        target = np.stack([np.hypot(yy - 12 - i, xx - 14) < 4] * 2)
        brain = np.stack([np.hypot(yy - 16, xx - 16) < 13] * 2)
        image = (0.2 * brain + 0.5 * target + rng.normal(0, 0.02, target.shape)).astype(np.float32)[:, None]
        vols.append(Volume(f"v{i}", image, brain, 0, target))
    return vols


def test_entries_select_by_name_or_method():
    assert [e.name for e in comparison.entries(["cuts"])] == ["CUTS + k-means", "CUTS + spectral",
                                                               "CUTS + condensation"]
    assert [e.name for e in comparison.entries(["k-means", "unet"])] == ["k-means", "U-Net (supervised)"]
    every = [e.name for e in comparison.entries(None)]
    assert len(every) == len(set(every)) and every[-1] == "U-Net (supervised)"
    assert {"Felzenszwalb", "SLIC"} <= set(every)  # from the registry alone
    assert {e.method for e in comparison.entries(None)} == set(methods.METHODS)
    with pytest.raises(ValueError, match="unknown method\\(s\\) nope"):
        comparison.entries(["nope"])


def test_a_trained_method_trains_once_for_all_its_entries_and_shares_the_time(monkeypatch):
    calls = []

    class FakeModel:
        def __init__(self, method):
            self.method = method

        def using(self, method):
            return FakeModel(method)

        def labels(self, v):
            return np.where(v.image[:, 0] > 0.5, 2, 1) * v.brain

    def fake_fit(self, volumes, **kwargs):
        calls.append((len(volumes), self.options.stage2))
        return FakeModel(self)

    monkeypatch.setattr(methods.CUTS, "fit", fake_fit)
    seen = []
    scores = comparison.compare(blob_volumes(), comparison.entries(["cuts"]), progress=False,
                                callback=lambda name, v, labels, lesion: seen.append((name, v.name, lesion.sum())))
    assert len(calls) == 1 and calls[0][0] == 3  # one training on all volumes for the three stage-2 entries
    assert len(scores) == 9 and len(seen) == 9 and (scores["dice_label_free"] > 0.95).all()
    assert (scores["dice_oracle"] > 0.95).all() and set(scores["split"]) == {"all"}
    table = evaluation.table(scores, "cpu")
    assert list(table.index) == ["CUTS + k-means", "CUTS + spectral", "CUTS + condensation"]
    assert (table["volumes"] == 3).all() and (table["device"] == "cpu").all()


def test_overrides_reach_only_the_methods_that_have_them():
    kmeans, otsu, otsu2, dcn = (comparison.method_of(e, "ci", k=5, seed=3)
                                for e in comparison.entries(["kmeans", "otsu", "dcn"]))
    assert kmeans.options.k == 5 and kmeans.options.seed == 3 and otsu.options.k == 5
    assert otsu2.options.k == 2  # the entry's own option wins
    assert dcn.options.k == 5 and dcn.options.epochs == 3  # the ci profile's, with the override on top
    assert comparison.method_of(comparison.entries(["zscore"])[0], "ci", k=6).options.threshold == 3.0
    with pytest.raises(ValueError, match="^Otsu: k must be at most 5, got 6; choose the methods with --methods$"):
        comparison.method_of(comparison.entries(["otsu"])[0], "ci", k=6)


def test_compare_needs_ground_truth():
    v = blob_volumes(1)[0]
    with pytest.raises(ValueError, match="needs ground-truth lesion masks"):
        comparison.compare([Volume("x", v.image, v.brain, 0)], comparison.entries(["kmeans"]), progress=False)


def test_a_method_without_a_size_segments_the_deep_methods_pixels():
    seen = {}
    vols = blob_volumes(1, size=32)
    scores = comparison.compare(vols, comparison.entries(["kmeans"]), progress=False, size=16, k=2,
                                callback=lambda name, v, labels, lesion: seen.update(labels=labels))
    labels = seen["labels"]
    assert labels.shape == (2, 32, 32) and (labels[~vols[0].brain] == 0).all()
    inside = vols[0].brain[:, ::2, ::2] & vols[0].brain[:, 1::2, 1::2]  # 2 x 2 blocks wholly in the brain
    assert (labels[:, ::2, ::2][inside] == labels[:, 1::2, 1::2][inside]).all()  # one label per 16-pixel cell
    native = methods.get("kmeans", "ci", k=2).labels(vols[0], progress=False)
    assert (native[:, ::2, ::2][inside] != native[:, 1::2, 1::2][inside]).any()  # not so at the native size
    assert scores["dice_label_free"].iloc[0] > 0.8
    with pytest.raises(ValueError, match="size must be at least 16"):
        comparison.compare(vols, comparison.entries(["kmeans"]), progress=False, size=8)


def test_against_twins_pairs_each_deep_method_with_its_twins_on_shared_volumes():
    rows = [("k-means", "a", 0.8), ("k-means", "b", 0.4), ("k-means", "c", 0.6),
            ("DCN", "a", 0.9), ("DCN", "b", 0.0), ("DCN", "c", 0.605),
            ("Otsu, 2 classes", "a", 0.5), ("ACWE", "a", 1.0), ("ACWE", "b", 0.2)]
    scores = pd.DataFrame(rows, columns=["method", "volume", "dice_label_free"])
    out = comparison.against_twins(scores).set_index("deep")
    assert list(out.index) == ["DCN", "ACWE"]  # no Chan-Vese, no CUTS: those pairs are left out
    dcn = out.loc["DCN"]
    assert dcn["twin"] == "k-means" and dcn["volumes"] == 3
    assert dcn["ratio"] == pytest.approx((0.9 + 0.0 + 0.605) / (0.8 + 0.4 + 0.6))
    assert dcn["ratio low"] <= dcn["ratio"] <= dcn["ratio high"]
    assert (dcn["deep higher"], dcn["twin higher"]) == (1, 1)  # c: within 0.01, a tie
    assert dcn["worst deep"] == "b (0.00)" and dcn["worst twin"] == "b (0.40)"
    acwe = out.loc["ACWE"]  # paired on the one volume both scored
    assert acwe["twin"] == "Otsu, 2 classes" and acwe["volumes"] == 1 and acwe["ratio"] == pytest.approx(2.0)
    # a second seed of DCN on volume b: b meets its twin at its mean over the seeds, (0.0 + 0.4) / 2
    again = comparison.against_twins(pd.concat([scores, pd.DataFrame([("DCN", "b", 0.4)], columns=scores.columns)]))
    assert again.set_index("deep").loc["DCN", "ratio"] == pytest.approx((0.9 + 0.2 + 0.605) / 1.8)
