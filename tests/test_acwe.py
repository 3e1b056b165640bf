import numpy as np
import pytest
import torch

from nbutils import methods
from nbutils.train import load_checkpoint
from nbutils.data.datasets import SliceDataset, Volume
from nbutils.errors import InputError
from nbutils.methods import acwe, classical
from nbutils.models import FullResCNN


def numpy_acwe(y, x, mask, mu, nu, eps=1e-8):
    """Chen & Frey's ACWE loss (MIDL 2020, eq. 2-3) written out with loops over channels, for one image (H, W)."""
    y, w = y.astype(np.float64), mask.astype(np.float64)
    total, brightness = 0.0, 0.0
    for xc in x:  # channels
        c_in = (y * w * xc).sum() / ((y * w).sum() + eps)
        c_out = ((1 - y) * w * xc).sum() / (((1 - y) * w).sum() + eps)
        total += (y * w * (xc - c_in) ** 2).sum() + ((1 - y) * w * (xc - c_out) ** 2).sum()
        brightness += c_in - c_out
    yw = y * w
    h, wd = yw.shape
    length = 0.0
    for i in range(h):
        for j in range(wd):
            dx = yw[i, j + 1] - yw[i, j] if j + 1 < wd else 0.0
            dy = yw[i + 1, j] - yw[i, j] if i + 1 < h else 0.0
            length += np.sqrt(dx * dx + dy * dy + eps)
    bright = yw if brightness >= 0 else (1 - y) * w  # the area is the brighter region's
    variance = sum(xc[mask].var() for xc in x)  # its unit: the intensity variance inside the mask
    return total + mu * length + nu * variance * bright.sum()


def test_acwe_loss_matches_numpy_formula():
    rng = np.random.default_rng(0)
    y, x = rng.uniform(size=(2, 1, 5, 6)), rng.uniform(size=(2, 2, 5, 6))
    mask = rng.uniform(size=(2, 5, 6)) > 0.3
    out = acwe.acwe_loss(torch.tensor(y), torch.tensor(x), mu=0.3, nu=0.2, mask=torch.tensor(mask), reduction="sum")
    expected = np.mean([numpy_acwe(y[n, 0], x[n], mask[n], 0.3, 0.2) for n in range(2)])
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10)
    mean = acwe.acwe_loss(torch.tensor(y), torch.tensor(x), mu=0.3, nu=0.2, mask=torch.tensor(mask))
    assert mean["loss"].item() == pytest.approx(expected / 30, rel=1e-10)


def test_acwe_region_means_hand_worked():
    y = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    x = torch.tensor([[[[2.0, 4.0, 10.0, 20.0]]]])
    c_in, c_out = acwe.region_means(y, x)
    assert c_in.item() == pytest.approx(3.0) and c_out.item() == pytest.approx(15.0)
    terms = acwe.acwe_terms(y, x)
    assert terms["region_in"].item() == pytest.approx(2.0)  # (2-3)^2 + (4-3)^2
    assert terms["region_out"].item() == pytest.approx(50.0)  # 25 + 25
    assert terms["area"].item() == pytest.approx(2.0)  # the brighter region is 1 - y: its area
    assert terms["length"].item() == pytest.approx(1.0, abs=1e-3)  # one unit step
    assert terms["variance"].item() == pytest.approx(49.0)  # mean 9: (49 + 25 + 1 + 121) / 4


def test_area_is_the_brighter_regions_whichever_y_is():
    x = torch.tensor([[[[0.1, 0.1, 0.1, 0.9]]]])
    bright_y = torch.tensor([[[[0.0, 0.0, 0.0, 1.0]]]])
    assert acwe.acwe_terms(bright_y, x)["area"].item() == pytest.approx(1.0)
    assert acwe.acwe_terms(1 - bright_y, x)["area"].item() == pytest.approx(1.0)  # same split, y the dark side
    loss = acwe.acwe_loss(bright_y, x, nu=0.1)["loss"].item()
    assert acwe.acwe_loss(1 - bright_y, x, nu=0.1)["loss"].item() == pytest.approx(loss)


def test_area_weight_turns_dark_versus_rest_into_lesion_versus_rest():
    # FLAIR-like: 20 dark (CSF) pixels, 75 tissue, 5 bright (lesion); intensity variance 0.015775. Without the
    # area term the energy prefers dark | rest (0.42 < 0.99, worked by hand); charging the bright region's area at
    # nu = 1 variance per pixel makes the 5-pixel lesion alone the cheaper split (0.9868 + 5 * 0.015775 = 1.066
    # < 0.4219 + 80 * 0.015775 = 1.684), whichever region y is. The same image at 10x the intensity scale
    # makes the same choice: the area's unit scales with it.
    x = torch.tensor([0.05] * 20 + [0.3] * 75 + [0.6] * 5).reshape(1, 1, 1, 100).double()
    dark_rest, lesion_rest = (x > 0.2).double(), (x > 0.45).double()

    def energy(y, nu, gain=1.0):
        return acwe.acwe_loss(y, gain * x, nu=nu, reduction="sum")["loss"].item()

    for flip in (False, True):
        a, b = (1 - dark_rest, 1 - lesion_rest) if flip else (dark_rest, lesion_rest)
        assert energy(a, 0.0) == pytest.approx(0.4219, abs=1e-3) and energy(b, 0.0) == pytest.approx(0.9868, abs=1e-3)
        assert energy(a, 1.0) == pytest.approx(1.684, abs=1e-3) and energy(b, 1.0) == pytest.approx(1.066, abs=1e-3)
        assert energy(b, 1.0, gain=10.0) == pytest.approx(100 * energy(b, 1.0))
        assert energy(b, 1.0, gain=10.0) < energy(a, 1.0, gain=10.0)


def test_area_weight_defaults_by_mode():
    assert acwe.area_weight(None, "unsupervised") == acwe.area_weight(None, "finetune") == acwe.DEFAULT_NU > 0
    assert acwe.area_weight(None, "joint") == acwe.area_weight(None, "joint-all") == 0.0  # labels define the region
    assert acwe.area_weight(0.01, "joint") == 0.01 and acwe.area_weight(0.0, "unsupervised") == 0.0
    assert methods.get("acwe", "ci", {}).options.nu is None


def test_explorer_nu_slider_starts_at_each_modes_default(monkeypatch):
    from nbutils import widgets

    calls = []
    monkeypatch.setattr(widgets, "plot_acwe_trial", lambda **kw: calls.append(kw))
    v = Volume("flat", np.zeros((3, 1, 8, 8), np.float32), np.ones((3, 8, 8), bool), 0)
    widgets.acwe_explorer(v)
    assert calls[-1]["nu"] is None and calls[-1]["n_labelled"] == 0  # area_weight(None, mode) decides per mode


def test_acwe_loss_gradcheck():
    rng = np.random.default_rng(1)
    y = torch.tensor(rng.uniform(0.1, 0.9, (2, 1, 4, 5)), requires_grad=True)
    x = torch.tensor(rng.uniform(size=(2, 1, 4, 5)))
    mask = torch.tensor(rng.uniform(size=(2, 4, 5)) > 0.2)
    assert torch.autograd.gradcheck(lambda t: acwe.acwe_loss(t, x, mu=0.5, nu=0.1, mask=mask)["loss"], (y,))


def test_constant_slice_gives_finite_loss_and_gradient():
    y = torch.full((1, 1, 8, 8), 0.5, requires_grad=True)
    loss = acwe.acwe_loss(y, torch.zeros(1, 1, 8, 8), mu=1.0, nu=0.1)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(y.grad).all()
    empty = acwe.region_means(torch.zeros(1, 1, 3, 3), torch.ones(1, 1, 3, 3))  # no inside region at all
    assert torch.isfinite(empty[0]).all() and empty[1].item() == pytest.approx(1.0)


def test_label_losses_match_numpy():
    rng = np.random.default_rng(2)
    p, t = rng.uniform(0.01, 0.99, (3, 4, 4)), rng.uniform(size=(3, 4, 4)) > 0.5
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    bce = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    logits = np.log(p / (1 - p))
    assert acwe.dice_loss(torch.tensor(p), torch.tensor(t)).item() == pytest.approx(dice)
    assert acwe.bce_loss(torch.tensor(logits), torch.tensor(t)).item() == pytest.approx(bce)  # from the logits
    assert acwe.label_term("dice", torch.tensor(logits), torch.tensor(t)).item() == pytest.approx(dice)
    assert torch.autograd.gradcheck(lambda q: acwe.dice_loss(q, torch.tensor(t)),
                                    (torch.tensor(p, requires_grad=True),))
    assert torch.autograd.gradcheck(lambda q: acwe.bce_loss(q, torch.tensor(t)),
                                    (torch.tensor(logits, requires_grad=True),))
    huge = torch.tensor([80.0, -80.0])  # probabilities of exactly 1 and 0 in float32: still finite from logits
    assert acwe.bce_loss(huge, torch.tensor([0.0, 1.0])).item() == pytest.approx(80.0)


def test_joint_loss_counts_labels_only_on_labelled_images():
    rng = np.random.default_rng(3)
    logits, x = torch.tensor(rng.normal(size=(2, 1, 4, 4))), torch.tensor(rng.uniform(size=(2, 1, 4, 4)))
    y = torch.sigmoid(logits)
    target = torch.tensor(rng.uniform(size=(2, 4, 4)) > 0.5)
    out = acwe.joint_loss(logits, x, target, torch.tensor([True, False]), mu=0.1, alpha=2.0)
    expected = acwe.acwe_loss(y, x, mu=0.1)["loss"] + 2.0 * acwe.dice_loss(y[:1, 0], target[:1])
    assert out["loss"].item() == pytest.approx(expected.item())
    none = acwe.joint_loss(logits, x, target, torch.tensor([False, False]))
    assert none["label"].item() == 0.0


def numpy_rfcm(u, x, mask, beta, q=2.0, eps=1e-8):
    """RFCM for one image: u (K, H, W), x (C, H, W), with explicit neighbour loops."""
    k, h, w = u.shape
    uq = u**q
    m = mask.astype(float)
    v = [(uq[j] * m * x).sum((1, 2)) / ((uq[j] * m).sum() + eps) for j in range(k)]
    fid = sum((uq[j] * m * ((x - v[j][:, None, None]) ** 2).sum(0)).sum() for j in range(k))
    spatial = 0.0
    for i in range(h):
        for jj in range(w):
            if not mask[i, jj]:
                continue
            for c in range(k):
                s = 0.0
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        a, b = i + di, jj + dj
                        if (di or dj) and 0 <= a < h and 0 <= b < w and mask[a, b]:
                            s += sum(uq[l, a, b] for l in range(k) if l != c)
                spatial += uq[c, i, jj] * s
    return (fid + beta * spatial) / (m.sum() + eps)


def test_rfcm_loss_matches_numpy():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 5, 4))
    u = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    x = rng.uniform(size=(2, 1, 5, 4))
    mask = rng.uniform(size=(2, 5, 4)) > 0.25
    out = acwe.rfcm_loss(torch.tensor(u), torch.tensor(x), beta=0.7, mask=torch.tensor(mask))
    expected = np.mean([numpy_rfcm(u[n], x[n], mask[n], 0.7) for n in range(2)])
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10)
    assert torch.autograd.gradcheck(
        lambda t: acwe.rfcm_loss(torch.softmax(t, 1), torch.tensor(x), beta=0.7, mask=torch.tensor(mask))["loss"],
        (torch.tensor(logits, requires_grad=True),))


def test_rfcm_minimum_at_true_partition():
    x = torch.tensor([[[[0.0, 0.0, 1.0, 1.0]]]])
    crisp = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0]]]])
    fuzzy = torch.full_like(crisp, 0.5)
    assert acwe.rfcm_loss(crisp, x)["loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert acwe.rfcm_loss(fuzzy, x)["loss"].item() > 0.1


def test_fullres_cnn_keeps_size():
    out = FullResCNN(3, 1)(torch.zeros(2, 3, 17, 23))
    assert out.shape == (2, 1, 17, 23)


def _two_region_volume(n=6, size=32, seed=0):
    """Bright discs on a dark background with noise: ACWE's easy case."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    target = np.stack([(yy - 16 - rng.integers(-4, 5)) ** 2 + (xx - 16) ** 2 < rng.integers(30, 60) for _ in range(n)])
    image = np.where(target, 0.8, 0.2) + rng.normal(0, 0.05, target.shape)
    image = np.clip(image, 0, 1).astype(np.float32)[:, None]
    return Volume("discs", image, np.ones_like(target), 0, target)


def test_unsupervised_acwe_finds_the_bright_region_and_resumes(tmp_path):
    v = _two_region_volume()
    ckpt = tmp_path / "acwe.pt"
    result = acwe.fit(SliceDataset([v]), epochs=25, batch_size=3, lr=1e-2, checkpoint=ckpt, progress=False)
    labels = acwe.predict(result, v.image, v.brain)
    from nbutils import metrics
    assert metrics.dice(metrics.label_free_lesion(labels, v.flair, v.brain, largest_cc=False), v.target) > 0.9
    state = load_checkpoint(ckpt, "acwe")
    loaded = acwe.build_model(**state["config"])
    loaded.load_state_dict(state["model"])
    assert np.allclose(acwe.probabilities(loaded, v.image), acwe.probabilities(result.model, v.image), atol=1e-6)
    again = acwe.fit(SliceDataset([v]), epochs=25, batch_size=3, lr=1e-2, checkpoint=ckpt, progress=False)
    assert again.history == result.history  # resumed at the end: nothing retrained


def _disc_and_ribbons(size=32):
    """A compact bright disc (a glioma) and thin, slightly less bright ribbons (cortex) on a dark background."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 < 25
    ribbons = (yy % 4 == 0) & ~disc
    return np.where(disc, 0.9, np.where(ribbons, 0.75, 0.3)).astype(np.float32), disc, ribbons


def test_length_term_prefers_the_compact_blob_over_the_thin_ribbons():
    x, disc, ribbons = _disc_and_ribbons()

    def energy(y, mu):
        return acwe.acwe_loss(torch.tensor(y, dtype=torch.float32)[None, None], torch.tensor(x)[None, None],
                              mu=mu)["loss"].item()
    assert energy(disc | ribbons, 0.0) < energy(disc, 0.0)  # without it, the dominant contrast wins
    assert energy(disc, 0.25) < energy(disc | ribbons, 0.25)  # with Chan-Vese's weight, the blob wins


@pytest.mark.parametrize("mode", ["finetune", "joint", "joint-all"])
def test_labelled_modes_learn_the_target(mode):
    v = _two_region_volume(n=8)
    v.target = v.target.copy()
    result = acwe.fit(SliceDataset([v]), mode=mode, n_labelled=3, epochs=20, batch_size=4, lr=1e-2, progress=False)
    from nbutils import metrics
    y = acwe.probabilities(result.model, v.image)
    assert metrics.dice(y > 0.5, v.target) > 0.85
    assert len(result.labelled) == (8 if mode == "joint-all" else 3)
    assert result.history[-1]["phase"] == {"finetune": "finetune"}.get(mode, mode)


def test_too_many_labelled_slices_warns_and_uses_all():
    ds = SliceDataset([_two_region_volume(n=4)])
    with pytest.warns(UserWarning, match="only 4 exist"):
        assert acwe.choose_labelled(ds, 10) == [0, 1, 2, 3]


def test_labelled_mode_without_masks_is_a_clear_error():
    v = _two_region_volume(n=3)
    v.target = None
    with pytest.raises(ValueError, match="ground-truth masks"):
        acwe.fit(SliceDataset([v]), mode="joint", epochs=1, progress=False)


def test_constant_slices_warn_and_train_without_nan():
    v = _two_region_volume(n=3)
    v.image[1] = 0.5
    with pytest.warns(UserWarning, match="1 of 3 slices are constant"):
        result = acwe.fit(SliceDataset([v]), epochs=2, batch_size=3, mu=0.1, progress=False)
    assert np.isfinite(result.history[-1]["loss"])


def test_mask_shape_mismatch_is_a_clear_error():
    v = _two_region_volume(n=3)
    v.target = v.target[:, :-1]
    with pytest.raises(ValueError, match="masks of shape"):
        SliceDataset([v])


def test_load_rejects_other_checkpoints(tmp_path):
    torch.save({"method": "dcn", "model": {}}, tmp_path / "dcn.pt")
    with pytest.raises(InputError, match="not 'acwe'"):
        methods.load(tmp_path / "dcn.pt", "acwe")


def test_chan_vese_baselines_find_bright_discs():
    v = _two_region_volume()
    from nbutils import metrics
    for method in (classical.chan_vese, classical.morphological_chan_vese):
        labels = method(v.image, v.brain, channel=0)
        lesion = metrics.label_free_lesion(labels, v.flair, v.brain, largest_cc=False)
        assert metrics.dice(lesion, v.target) > 0.9, method.__name__


def test_rfcm_network_separates_three_intensity_classes():
    rng = np.random.default_rng(5)
    truth = np.repeat(np.repeat(rng.integers(1, 4, (4, 4, 4)), 6, 1), 6, 2)  # (4, 24, 24) blocks of 1..3
    image = (truth / 4 + rng.normal(0, 0.03, truth.shape)).astype(np.float32)[:, None]
    v = Volume("blocks", image, np.ones(truth.shape, bool), 0)
    result = acwe.fit_rfcm(SliceDataset([v]), k=3, beta=0.001, epochs=60, batch_size=4, progress=False)
    labels = acwe.rfcm_labels(result.model, v.image, v.brain)
    assert (labels == truth).mean() > 0.95  # labels ordered by intensity = the classes


def test_volumes_with_different_channel_counts_are_a_clear_error():
    one, three = _two_region_volume(n=2), _two_region_volume(n=2)
    three.image = np.repeat(three.image, 3, axis=1)
    with pytest.raises(ValueError, match=r"different channel counts \[1, 3\]"):
        SliceDataset([one, three])
