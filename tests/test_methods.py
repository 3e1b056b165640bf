"""The one method interface: options, registry, fit / load / labels, checkpoints that know their training."""

import dataclasses

import numpy as np
import pytest
import torch

from nbutils import methods, metrics
from nbutils.cli import build_parser, main
from nbutils.data.datasets import SliceDataset, Volume
from nbutils.errors import InputError
from nbutils.methods import condensation, dcn
from nbutils.methods.base import Options, fingerprint, option
from nbutils.train import load_checkpoint, save_checkpoint


def blob_volume(name="v", seed=0, n=3, size=32):
    """A bright blob (the lesion) on two tissue levels, inside a round brain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = np.stack([np.hypot(yy - 16, xx - 16) < 14] * n)
    target = np.stack([np.hypot(yy - 12, xx - 13 - seed % 3) < 4] * n)
    image = np.where(xx < 16, 0.3, 0.45) * brain + 0.4 * target + rng.normal(0, 0.02, brain.shape)
    return Volume(name, image.clip(0, 1).astype(np.float32)[:, None], brain, 0, target)


def test_every_registered_method_has_the_interface():
    assert list(methods.METHODS)[:9] == ["kmeans", "gmm", "svgmm", "otsu", "zscore", "chan-vese",
                                         "morph-chan-vese", "felzenszwalb", "slic"]
    for name, cls in methods.METHODS.items():
        assert cls.name == name and cls.title and cls.reference and issubclass(cls.Options, Options)
        method = methods.get(name, "ci")
        assert isinstance(method.options, cls.Options)
        if cls.trainable:
            assert isinstance(method, methods.TrainableMethod)


@pytest.mark.parametrize("name", ["felzenszwalb", "slic", "kmeans", "otsu", "svgmm"])
def test_classical_methods_find_the_bright_blob(name):
    v = blob_volume()
    method = methods.get(name)
    labels = method.labels(v)
    assert labels.shape == v.brain.shape and (labels[~v.brain] == 0).all() and (labels[v.brain] > 0).all()
    assert metrics.dice(method.lesion(labels, v), v.target) > 0.8


def test_options_are_validated_with_one_line_and_profiles_apply_in_one_place():
    with pytest.raises(ValueError, match="^k must be at least 2, got 1$"):
        methods.get("kmeans", k=1)
    with pytest.raises(ValueError, match="^labels must be at least 1, got -5$"):
        methods.get("acwe", labels=-5)
    with pytest.raises(ValueError, match="^stage2 must be one of kmeans, spectral, condensation, got 'x'$"):
        methods.get("cuts", stage2="x")
    with pytest.raises(ValueError, match="unknown option\\(s\\) epoch; this method has"):
        methods.get("dcn", epoch=3)
    full, ci = methods.get("dcn").options, methods.get("dcn", "ci").options
    assert (full.size, full.epochs, ci.size, ci.epochs) == (256, 20, 128, 3)
    assert methods.get("dcn", "ci", epochs=7).options.epochs == 7  # a user's override on top of the profile


@pytest.mark.parametrize("name, value, match", [
    ("zscore", dict(threshold=float("nan")), "^threshold must be a finite number, got nan$"),
    ("chan-vese", dict(mu=float("inf")), "^mu must be a finite number, got inf$"),
    ("dcn", dict(lr=float("nan")), "^lr must be a finite number, got nan$"),
    ("kmeans", dict(k=65), "^k must be at most 64, got 65$"),
    ("otsu", dict(k=6), "^k must be at most 5, got 6$"),
    ("gmm", dict(seed=2**32), "^seed must be at most 4294967295, got 4294967296$"),
    ("acwe", dict(seed=-1), "^seed must be at least 0, got -1$"),
])
def test_options_refuse_non_finite_numbers_and_values_whose_work_has_no_end(name, value, match):
    with pytest.raises(ValueError, match=match):
        methods.get(name, **value)


def test_k_is_checked_against_the_distinct_intensities_in_memory_and_in_the_slice_cache(tmp_path):
    from nbutils.data.streaming import cache_slices

    v = blob_volume()
    v.image[:] = np.round(v.image * 2) / 2  # three levels: 0, 0.5, 1 (two inside the brain here)
    levels = len(np.unique(v.image[:, 0][v.brain]))
    with pytest.raises(ValueError, match=f"^v: {levels} distinct intensities inside the brain, fewer than k=4"):
        methods.get("kmeans", k=4).check([v])
    methods.get("kmeans", k=levels).check([v])
    cached = cache_slices([v], tmp_path / "cache", size=32)  # the working size of the volume: no resampling
    with pytest.raises(ValueError, match="distinct intensities inside the brain, fewer than k=4"):
        methods.get("dcn", k=4, size=32).check(cached)


def test_a_new_method_is_one_options_class_and_one_labels_function(monkeypatch, capsys):
    @dataclasses.dataclass(frozen=True)
    class HalfOptions(Options):
        column: int = option(16, "split column", low=0)

    class Half(methods.Method):
        name, title, Options, reference = "half", "half", HalfOptions, "none"

        def labels(self, volume, *, device="cpu", progress=True):
            cols = np.arange(volume.brain.shape[-1]) >= self.options.column
            return np.where(cols, 2, 1) * volume.brain

    v = blob_volume()
    assert set(np.unique(Half(column=8).labels(v))) == {0, 1, 2}
    assert Half.Options.describe()[0] == dict(name="column", type="int", default=16, ci=16, help="split column",
                                              choices=None)
    from nbutils import comparison

    monkeypatch.setitem(methods.METHODS, "half", Half)  # its registry line
    assert build_parser().parse_args(["segment", "half", "in", "out", "--column", "3"]).column == 3
    assert [e.method for e in comparison.entries(["half"])] == ["half"]
    names = [e.method for e in comparison.entries(None)]
    assert names.index("half") == names.index("dcn") - 1  # after the methods that do not learn


def test_cli_help_of_a_method_lists_exactly_its_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "zscore", "--help"])
    text = capsys.readouterr().out
    assert "--threshold" in text and "--k " not in text and "--epochs" not in text
    assert main(["methods"]) == 0
    listing = capsys.readouterr().out
    for name, cls in methods.METHODS.items():
        assert f"{name}  ({cls.title}" in listing
        assert all(f"--{row['name'].replace('_', '-')}" in listing for row in cls.Options.describe())
    assert "default None" not in listing and "default 20, ci 3" in listing  # DCN's rounds; nu's default is per mode


def test_fingerprint_changes_with_the_input_only():
    a, b = blob_volume("a", 0), blob_volume("a", 1)
    assert fingerprint([a]) == fingerprint([blob_volume("a", 0)]) != fingerprint([b])
    no_mask = Volume("a", a.image, a.brain, 0)
    assert fingerprint([a]) != fingerprint([no_mask])


def test_trained_model_saves_loads_and_refuses_other_training(tmp_path):
    vols = [blob_volume("a", 0), blob_volume("b", 1)]
    small = dict(size=32, batch_size=3, features=8, pretrain_epochs=2, epochs=1, k=3)
    ckpt = tmp_path / "dcn.pt"
    model = methods.get("dcn", **small).fit(vols, checkpoint=ckpt, progress=False)
    loaded = methods.load(ckpt, device="cpu")
    assert isinstance(loaded.method, methods.DCN) and loaded.options == model.options
    np.testing.assert_array_equal(loaded.labels(vols[0]), model.labels(vols[0]))
    with pytest.raises(InputError, match="dcn.pt: was trained with k=3 \\(asked 4\\)"):
        methods.load(ckpt, k=4)
    with pytest.raises(InputError, match="dcn.pt: holds training with k=3 \\(asked 5\\); pass --restart"):
        methods.get("dcn", **{**small, "k": 5}).fit(vols, checkpoint=ckpt, progress=False)
    with pytest.raises(InputError, match="dcn.pt: was trained on other input; pass --restart"):
        methods.get("dcn", **small).fit(vols[:1], checkpoint=ckpt, progress=False)
    assert (tmp_path / "dcn.pt.pretrain").exists()
    restarted = methods.get("dcn", **{**small, "k": 5}).fit(vols, checkpoint=ckpt, restart=True, progress=False)
    assert restarted.state["centres"].shape[0] == 5 and methods.load(ckpt).options.k == 5


def test_a_model_serves_another_instance_with_the_same_training_only():
    model = methods.get("cuts", size=32, batch_size=2, epochs=1, anchors=8, max_points=64).fit(
        [blob_volume()], progress=False)
    other = model.using(methods.get("cuts", size=32, batch_size=2, epochs=1, anchors=8, max_points=64, stage2="kmeans"))
    assert other.options.stage2 == "kmeans" and other.network is model.network
    with pytest.raises(ValueError, match="trained with lam=0.01 \\(asked 0.5\\)"):
        model.using(methods.get("cuts", size=32, batch_size=2, epochs=1, anchors=8, max_points=64, lam=0.5))


def test_condense_coarse_grains_with_its_seed_and_the_default_iterations():
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(600, 3)).astype(np.float32))
    for seed in (1, 5):
        tree = condensation.condense(x, max_points=50, seed=seed)
        _, weights, point_of = condensation.coarse_grain(x, 50, seed=seed)
        np.testing.assert_array_equal(tree.point_of, point_of.numpy())
        np.testing.assert_array_equal(tree.weights, weights.numpy())


def test_dcn_reseeds_an_empty_centre_from_the_whole_dataset_not_the_last_batch():
    vols = [blob_volume("a", 0, n=4)]
    last = vols[0].brain.copy()
    last[-1] = False  # the last batch (one slice) has no brain pixel
    v = Volume("a", vols[0].image, last, 0, vols[0].target)
    model = dcn.AutoEncoder(1, 4)
    far = torch.full((3, 4), 0.0)
    far[2] = 1e6  # no pixel is near this centre: it must be re-seeded
    result = dcn.fit(SliceDataset([v]), 3, model=model, epochs=1, batch_size=1, progress=False,
                     initial_centres=far)
    assert result.history[-1]["reseeded"] >= 1 and result.centres[2].abs().max() < 1e3


def test_standardized_autoencoder_features_have_zero_mean_and_unit_variance():
    torch.manual_seed(0)
    model = dcn.AutoEncoder(1, 6, standardize=True).train()
    z, x_hat = model(torch.rand(4, 1, 16, 16))
    np.testing.assert_allclose(z.mean((0, 2, 3)).detach().numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(z.var((0, 2, 3), unbiased=False).detach().numpy(), 1, atol=1e-3)
    assert model.config["standardize"] and not dcn.AutoEncoder(1, 6).config["standardize"]
    assert x_hat.shape == (4, 1, 16, 16)


def test_bool_options_become_on_off_flags(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "dcn", "--help"])
    assert "--standardize, --no-standardize" in capsys.readouterr().out
    args = build_parser().parse_args(["segment", "dcn", "in", "out", "--standardize"])
    assert args.standardize is True


def test_deep_gmm_restarts_keep_the_fit_with_the_lowest_final_nll(monkeypatch):
    from nbutils.methods import deepgmm

    seeds = []

    def fake_fit(images, masks, k, variant, *, seed, **kw):
        seeds.append(seed)
        p = np.zeros((images.shape[0], k) + images.shape[2:], np.float32)
        p[:, seed % k] = 1  # seed 1 puts every pixel in class 1
        return p, [5.0, {0: 3.0, 1: 1.0, 2: 2.0}[seed]]

    monkeypatch.setattr(deepgmm, "fit_images", fake_fit)
    captured = {}
    monkeypatch.setattr(deepgmm, "hard_labels", lambda p, image, brain: captured.setdefault("p", p).argmax(1))
    v = blob_volume()
    methods.get("deepgmm", "ci", k=3, mode="per-image", restarts=3).labels(v, progress=False)
    assert seeds == [0, 1, 2] and (captured["p"][:, 1] == 1).all()


def test_deep_gmm_starts_every_restart_from_the_k_means_classes_by_default(monkeypatch):
    from nbutils.methods import classical, deepgmm

    starts = []

    def fake_fit(images, masks, k, variant, *, init_labels, **kw):
        starts.append(init_labels)
        return np.ones((images.shape[0], k) + images.shape[2:], np.float32), [1.0]

    monkeypatch.setattr(deepgmm, "fit_images", fake_fit)
    v = blob_volume()
    methods.get("deepgmm", "ci", k=3, mode="per-image", restarts=2, size=32).labels(v, progress=False)  # default
    expected = classical.kmeans(v.image, v.brain, 3)
    assert len(starts) == 2 and all(np.array_equal(s, expected) for s in starts)
    starts.clear()
    methods.get("deepgmm", "ci", k=3, mode="per-image", init="random", size=32).labels(v, progress=False)
    assert starts == [None]


def splits_along(labels: np.ndarray, side: np.ndarray) -> bool:
    """Two clusters, one exactly the pixels of ``side``."""
    return (labels[side] == labels[side][0]).all() and (labels[~side] != labels[side][0]).all()


def test_cuts_intensity_weight_brings_back_the_brightness_the_embeddings_lost():
    from nbutils.methods import cuts

    rng = np.random.default_rng(0)
    mask = np.ones((1, 20, 20), bool)
    flair = np.where(np.arange(20)[None, None, :] < 5, 1.0, 0.2) * mask  # a bright stripe
    z = rng.normal(size=(1, 4, 20, 20)).astype(np.float32)  # embeddings that know nothing of it
    bright = flair[mask] > 0.5
    blind = cuts.cluster(z, mask, flair, "kmeans", 2, intensity=0.0)[mask]
    seeing = cuts.cluster(z, mask, flair, "kmeans", 2, intensity=10.0)[mask]
    assert splits_along(seeing, bright) and not splits_along(blind, bright)


def test_cuts_intensity_weight_is_relative_to_the_embeddings_spread():
    from nbutils.methods import cuts

    mask = np.ones((1, 20, 20), bool)
    rows = np.arange(20)[None, :, None] < 10  # the embeddings split top from bottom
    flair = np.broadcast_to(np.where(np.arange(20)[None, None, :] < 10, 1.0, 0.2), mask.shape)  # FLAIR left / right
    top = np.broadcast_to(rows, mask.shape)
    # four copies of one binary feature: standardised and reduced, one component of variance 4 (RMS length 2)
    z = np.repeat(np.broadcast_to(rows, mask.shape)[:, None].astype(np.float32), 4, 1)
    z = z * np.array([1.0, 3.0, 0.1, 100.0], np.float32)[None, :, None, None]  # per-feature scales do not matter
    left = flair[mask] > 0.5
    # from k-means++ (the intensity start would hold the FLAIR's split at any weight): the lower inertia wins
    weaker = cuts.cluster(z, mask, flair, "kmeans", 2, intensity=0.5, start="kmeans++")[mask]  # 0.25 x 4 < 4
    stronger = cuts.cluster(z, mask, flair, "kmeans", 2, intensity=1.5, start="kmeans++")[mask]  # 2.25 x 4 > 4
    assert splits_along(weaker, top[mask]) and splits_along(stronger, left)


def test_a_checkpoint_from_before_an_option_existed_loads_with_what_it_trained_with(tmp_path):
    vols = [blob_volume("a", 0), blob_volume("b", 1)]
    small = dict(size=32, batch_size=3, features=8, pretrain_epochs=2, epochs=1, k=3, lr=2e-3)
    ckpt, old = tmp_path / "dcn.pt", tmp_path / "old.pt"
    model = methods.get("dcn", **small).fit(vols, checkpoint=ckpt, progress=False)
    state = load_checkpoint(ckpt, "dcn")
    added = ("joint_lr", "init", "centres", "standardize")
    state["options"] = {k: v for k, v in state["options"].items() if k not in added}
    save_checkpoint(old, state)  # as the DCN of three changes ago wrote it: rounds at lr, the paper's start and rule
    loaded = methods.load(old)
    assert (loaded.options.joint_lr, loaded.options.init, loaded.options.centres) == (2e-3, "features", "counts")
    np.testing.assert_array_equal(loaded.labels(vols[0]), model.labels(vols[0]))
    with pytest.raises(InputError, match="old.pt: was trained with joint_lr=0.002 \\(asked 0.0001\\)"):
        methods.get("dcn", **small, init="features", centres="counts").load(old)
    state["options"].pop("k")  # no rule says what an older checkpoint trained with: named, not guessed
    save_checkpoint(old, state)
    with pytest.raises(InputError, match="old.pt: was trained with k=\\? \\(not stored: an older nbutils"):
        methods.get("dcn", **small).load(old)
