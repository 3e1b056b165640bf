import copy

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from nbutils import methods
from nbutils.data.datasets import SliceDataset, Volume
from nbutils import metrics
from nbutils.errors import InputError
from nbutils.methods import dcn
from nbutils.methods.torch_kmeans import intensity_start, kmeans
from nbutils.models import AutoEncoder, UNetEncoder
from nbutils.train import load_checkpoint, fit


def test_dcn_count_update_matches_hand_worked_case():
    centres = torch.tensor([[0.0], [10.0]])
    counts = torch.tensor([100, 100])
    dcn.update_centres(centres, counts, z=torch.tensor([[1.0], [9.0], [2.0]]))
    # z=1 -> centre 0 (count 101): 1/101;  z=9 -> centre 1: (1000 + 9)/101;
    # z=2 -> centre 0 (count 102): (1 + 2)/102
    assert torch.allclose(centres, torch.tensor([[3 / 102], [1009 / 101]]))
    assert counts.tolist() == [102, 101]


def test_count_update_equals_sequential_rule():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 2))
    counts = np.array([100, 5, 1])
    z = rng.normal(size=(40, 2))
    labels = np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), 1)
    expected, n = centres.copy(), counts.copy()
    for zi, k in zip(z, labels):  # the rule as written: one point at a time
        n[k] += 1
        expected[k] = (1 - 1 / n[k]) * expected[k] + zi / n[k]
    c, cnt = torch.tensor(centres), torch.tensor(counts)
    dcn.update_centres(c, cnt, torch.tensor(z))
    np.testing.assert_allclose(c.numpy(), expected, rtol=1e-10)
    np.testing.assert_array_equal(cnt.numpy(), n)


def test_reseed_empty_takes_worst_fit_point():
    centres = torch.tensor([[0.0], [100.0]])
    counts = torch.tensor([50, 50])
    z = torch.tensor([[0.1], [-0.2], [7.0]])
    assert dcn.reseed_empty(centres, counts, torch.tensor([3, 0]), z) == 1
    assert centres[1].item() == 7.0 and counts[1].item() == 1


def test_torch_kmeans_matches_sklearn_inertia():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 0.3, (200, 5)) for m in (0, 3, 6, 9)]).astype(np.float32)
    centres, labels, inertia = kmeans(torch.from_numpy(x), 4, seed=0)
    ref = KMeans(4, n_init=3, random_state=0).fit(x)
    assert inertia == pytest.approx(ref.inertia_, rel=1e-3)
    assert np.allclose(np.sort(centres[:, 0].numpy()), np.sort(ref.cluster_centers_[:, 0]), atol=1e-3)


def test_torch_kmeans_runs_lloyd_from_a_given_start():
    x = torch.tensor([[0.0, 0], [0, 1], [10, 0], [10, 1]])  # a wide rectangle's corners
    centres, labels, inertia = kmeans(x, 2, init=torch.tensor([[5.0, 0], [5, 1]]))
    # bottom / top is a fixed point of Lloyd's iterations (inertia 4 x 25); k-means++ finds left / right (4 x 0.25)
    torch.testing.assert_close(centres, torch.tensor([[5.0, 0], [5, 1]]))
    assert labels.tolist() == [0, 1, 0, 1] and inertia == pytest.approx(100.0)
    assert kmeans(x, 2)[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="init must hold 2 centres of 2 features, got shape \\(3, 2\\)"):
        kmeans(x, 2, init=torch.zeros(3, 2))


def test_torch_kmeans_bad_k():
    x = torch.tensor([[0.0], [0.0], [1.0]])
    with pytest.raises(ValueError, match="at least 2"):
        kmeans(x, 1)
    with pytest.raises(ValueError, match="exceeds the 2 distinct"):
        kmeans(x, 3)


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 3, 37, 50), (1, 1, 3, 3)])
def test_encoder_keeps_full_resolution_for_any_size(shape):
    enc = UNetEncoder(shape[1], features=16).eval()
    assert enc(torch.rand(shape)).shape == (shape[0], 16, *shape[2:])


@pytest.mark.parametrize("upsample", ["transposed", "resize"])
def test_only_the_resize_convolution_keeps_a_flat_image_flat(upsample):
    torch.manual_seed(0)
    enc = UNetEncoder(1, features=8, upsample=upsample).eval()
    z = enc(torch.full((1, 1, 64, 64), 0.5))[0, :, 24:40, 24:40]  # away from the border's padding
    spread = lambda a: (a - a.mean((1, 2), keepdim=True)).abs().max().item()  # noqa: E731
    if upsample == "resize":
        assert spread(z) < 1e-6  # measured 3e-8
    else:  # each pixel of a 2x2 block has its own weights: a pattern of period 2, flat on each sub-grid
        blocks = max(spread(z[:, r::2, c::2]) for r in (0, 1) for c in (0, 1))
        assert spread(z) > 1e-5 and blocks < spread(z) / 10  # measured 1.3e-4 and 5e-6


def test_a_checkpoint_from_before_the_upsampling_option_loads_as_transposed_convolutions():
    old = AutoEncoder(1, 4, upsample="transposed")
    config = {k: v for k, v in old.config.items() if k != "upsample"}
    AutoEncoder.from_config(config).load_state_dict(old.state_dict())  # raises on any other architecture
    assert AutoEncoder(1, 4).config["upsample"] == "resize"
    with pytest.raises(RuntimeError):
        AutoEncoder(**config).load_state_dict(old.state_dict())


def test_unknown_upsampling_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown upsampling 'bicubic'"):
        UNetEncoder(1, upsample="bicubic")


def test_autoencoder_output_in_unit_range_and_channels():
    z, x_hat = AutoEncoder(3, features=8).eval()(torch.rand(2, 3, 32, 32))
    assert z.shape == (2, 8, 32, 32) and x_hat.shape == (2, 3, 32, 32)
    assert x_hat.min() >= 0 and x_hat.max() <= 1


def _toy_volumes(n=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    vols = []
    for i in range(n):
        img = np.full((4, 1, size, size), 0.4, np.float32)
        img[:, :, 8:20, 8:20] = 0.9
        img += rng.normal(0, 0.02, img.shape).astype(np.float32)
        target = np.zeros((4, size, size), bool)
        target[:, 8:20, 8:20] = True
        vols.append(Volume(f"toy{i}", img.clip(0, 1), np.ones((4, size, size), bool), 0, target))
    return vols


def test_dcn_fit_separates_two_regions_and_resumes(tmp_path):
    ds = SliceDataset(_toy_volumes())
    ckpt = tmp_path / "dcn.pt"
    res = dcn.fit(ds, 2, pretrain_epochs=20, epochs=2, lam=0.1, batch_size=4, lr=3e-3, checkpoint=ckpt, progress=False)
    labels = dcn.predict(res, ds.image.numpy())
    assert metrics.ari(labels, ds.target.numpy()) > 0.7  # measured 0.89
    more = dcn.fit(ds, 2, epochs=3, lam=0.1, batch_size=4, checkpoint=ckpt, progress=False)
    assert [h["phase"] for h in more.history].count("dcn") == 3
    torch.testing.assert_close(load_checkpoint(ckpt, "dcn")["centres"], more.centres.cpu())


def test_checkpoint_of_another_shape_or_method_is_a_clear_error(tmp_path):
    ds = SliceDataset(_toy_volumes(1))
    pre = tmp_path / "pre.pt"
    fit(AutoEncoder(1, 8), dcn.reconstruction_loss, ds, epochs=1, checkpoint=pre, method="autoencoder", progress=False)
    with pytest.raises(InputError, match="checkpoint of method 'autoencoder', not 'dcn'"):
        methods.load(pre, "dcn")
    ckpt = tmp_path / "dcn.pt"
    res = dcn.fit(ds, 2, pretrain_epochs=1, epochs=1, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="takes 1 channel"):
        dcn.predict(res, np.zeros((1, 3, 32, 32), np.float32))


def test_feature_pca_shows_two_features_in_red_and_green():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nbutils import viz

    z = np.stack([np.tile(np.linspace(0, 1, 8), (8, 1)), np.tile(np.linspace(0, 1, 8)[:, None], (1, 8))])
    fig, ax = plt.subplots()
    rgb = viz.feature_pca(z.astype(np.float32), ax=ax).get_images()[0].get_array()
    plt.close(fig)
    assert rgb.shape == (8, 8, 3) and np.ptp(rgb[..., 0]) > 0.9 and np.ptp(rgb[..., 1]) > 0.9
    assert np.all(rgb[..., 2] == 0)


@pytest.mark.parametrize("rule", dcn.CENTRE_RULES)
def test_a_round_moves_each_centre_by_its_rule(rule):
    ds = SliceDataset(_toy_volumes(1))
    torch.manual_seed(0)
    model = AutoEncoder(1, features=4)
    start = dcn.features(model, ds, "cpu")[[0, 10 * 32 + 10]].clone()  # a pixel outside the square, one inside
    res = dcn.fit(ds, 2, model=model, epochs=1, joint_lr=0.0, batch_size=4, initial_centres=start, centre_rule=rule,
                  progress=False)
    z = dcn.features(res.model, ds, "cpu")  # the network of the pass (joint lr 0: only batch-norm statistics moved)
    labels, m, sums = dcn.assign(start, z)
    assert (m > 0).all()
    if rule == "mean":  # the exact minimiser of the clustering term for these assignments
        expected = sums / m[:, None]
        assert res.counts.tolist() == m.tolist()
    else:  # eq. 8 from counts of 100
        expected = (100 * start + sums) / (100 + m[:, None])
        assert res.counts.tolist() == (100 + m).tolist()
    torch.testing.assert_close(res.centres, expected, rtol=1e-5, atol=1e-6)


def test_joint_rounds_train_at_their_own_learning_rate(monkeypatch):
    ds = SliceDataset(_toy_volumes(1))
    torch.manual_seed(0)
    model = AutoEncoder(1, features=4)
    weights = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def moved(**rates):
        res = dcn.fit(ds, 2, model=copy.deepcopy(model), epochs=1, batch_size=4, progress=False, **rates)
        return max((res.model.state_dict()[k] - v).abs().max().item() for k, v in weights.items()
                   if "running" not in k)

    assert moved(lr=1.0, joint_lr=0.0) == 0  # pretraining's rate does not reach the rounds
    assert moved(lr=0.0) > 1e-5  # the rounds' own default rate
    assert moved(lr=0.0, joint_lr=1e-2) > moved(lr=0.0)
    captured = {}
    monkeypatch.setattr(dcn, "fit", lambda *a, **kw: captured.update(kw) or dcn.DCNResult(
        model, torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), []))
    methods.get("dcn", size=32, batch_size=2, k=2, joint_lr=0.25).fit(_toy_volumes(1), progress=False)
    assert captured["joint_lr"] == 0.25 and captured["lr"] == 1e-3
    assert dcn.DCNOptions().joint_lr == dcn.DEFAULT_JOINT_LR == 1e-4 and dcn.DCNOptions().lam == dcn.DEFAULT_LAM


def test_unknown_centre_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown centre rule 'median'"):
        dcn.fit(SliceDataset(_toy_volumes(1)), 2, centre_rule="median", progress=False)


def test_intensity_start_is_each_intensity_class_mean_feature():
    x = torch.tensor([[0.1], [0.12], [0.9], [0.88], [0.5], [0.52]])  # three intensity classes, in pairs
    z = torch.tensor([[1.0, 0], [3, 0], [0, 5], [0, 7], [2, 2], [4, 4]])
    centres = intensity_start(z, x, 3)
    torch.testing.assert_close(centres, torch.tensor([[2.0, 0], [3, 3], [0, 6]]))  # darkest class first


@pytest.mark.parametrize("init", dcn.INITS)
def test_fit_starts_from_its_init(init):
    ds = SliceDataset(_toy_volumes(1))
    torch.manual_seed(0)
    model = AutoEncoder(1, features=4)
    z, x = dcn.brain_pixels(model, ds, "cpu", max_pixels=dcn.MAX_INIT_PIXELS)
    expected = intensity_start(z, x, 2) if init == "intensity" else kmeans(z, 2)[0]
    # joint lr 0 and the count rule from counts of 100: the pass moves the start by a known amount
    res = dcn.fit(ds, 2, model=model, epochs=1, joint_lr=0.0, batch_size=4, init=init, centre_rule="counts",
                  progress=False)
    after = dcn.features(res.model, ds, "cpu")  # joint lr 0: only batch-norm statistics moved
    labels, m, sums = dcn.assign(expected, after)
    torch.testing.assert_close(res.centres, (100 * expected + sums) / (100 + m[:, None]), rtol=1e-5, atol=1e-6)
    if init == "intensity":  # the brighter class, the bright square, is the second centre
        assert (labels.reshape(4, 32, 32)[:, 10, 10] == 1).all() and (labels.reshape(4, 32, 32)[:, 2, 2] == 0).all()


def test_unknown_init_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown init 'random'"):
        dcn.fit(SliceDataset(_toy_volumes(1)), 2, init="random", progress=False)


@pytest.mark.parametrize("max_pixels", [None, 300])
def test_brain_pixels_streams_the_same_subsample_as_gathering_every_pixel(max_pixels):
    rng = np.random.default_rng(0)
    image = rng.random((5, 1, 16, 16)).astype(np.float32)
    brain = rng.random((5, 16, 16)) > 0.4
    dataset = SliceDataset([Volume("v", image, brain, 0)])
    torch.manual_seed(0)
    model = AutoEncoder(1, 3).eval()
    with torch.no_grad():  # every brain pixel at once, then the subsample: what the bounded version replaces
        z_all = dcn._pixels(model(torch.from_numpy(image))[0], torch.from_numpy(brain))
    x_all = torch.from_numpy(np.moveaxis(image, 1, -1)[brain])
    if max_pixels is not None:
        keep = torch.randperm(len(z_all), generator=torch.Generator().manual_seed(7))[:max_pixels]
        z_all, x_all = z_all[keep], x_all[keep]
    z, x = dcn.brain_pixels(model, dataset, "cpu", batch_size=2, max_pixels=max_pixels, seed=7)
    assert len(z) == (max_pixels or int(brain.sum()))
    torch.testing.assert_close(z, z_all, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x, x_all, rtol=0, atol=0)
