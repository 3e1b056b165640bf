import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from nbutils.train import load_checkpoint
from nbutils.methods import deepgmm


def random_case(seed=0, b=2, k=3, m=2, h=4, w=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, k, h, w))
    log_p = logits - logsumexp(logits, axis=1, keepdims=True)
    x = rng.uniform(size=(b, m, h, w))
    mask = rng.uniform(size=(b, h, w)) > 0.3
    return log_p, x, mask


def numpy_params(p, x, mask, eps):
    """Weighted means and variances with np.average, one image at a time."""
    pis, mus, vars_ = [], [], []
    for pb, xb, mb in zip(p, x, mask):
        weights = pb[:, mb]  # (K, N)
        values = xb[:, mb]  # (M, N)
        pis.append(weights.sum(1) / mb.sum())
        mus.append(np.array([[np.average(v, weights=wk) for v in values] for wk in weights]))
        vars_.append(np.array([[np.average((v - mu) ** 2, weights=wk) + eps for v, mu in zip(values, mk)]
                               for wk, mk in zip(weights, mus[-1])]))
    return np.array(pis), np.array(mus), np.array(vars_)


def test_m_step_matches_weighted_numpy_means():
    log_p, x, mask = random_case()
    pi, mu, var = deepgmm.m_step(torch.tensor(np.exp(log_p)), torch.tensor(x), torch.tensor(mask), eps=1e-6)
    e_pi, e_mu, e_var = numpy_params(np.exp(log_p), x, mask, 1e-6)
    assert np.allclose(pi.numpy(), e_pi) and np.allclose(mu.numpy(), e_mu) and np.allclose(var.numpy(), e_var)


@pytest.mark.parametrize("variant", deepgmm.VARIANTS)
def test_nll_matches_scipy(variant):
    log_p, x, mask = random_case(1)
    out, _ = deepgmm.nll(torch.tensor(log_p), torch.tensor(x), torch.tensor(mask), variant, eps=1e-6)
    pi, mu, var = numpy_params(np.exp(log_p), x, mask, 1e-6)
    per_image = []
    for b in range(len(x)):
        rows = []
        for i, j in zip(*np.nonzero(mask[b])):
            comps = [np.log(pi[b, k] if variant == "deepG" else np.exp(log_p[b, k, i, j]))
                     + sum(stats.norm.logpdf(x[b, m, i, j], mu[b, k, m], np.sqrt(var[b, k, m])) for m in range(x.shape[1]))
                     for k in range(log_p.shape[1])]
            rows.append(logsumexp(comps))
        per_image.append(-np.mean(rows))
    assert out.item() == pytest.approx(np.mean(per_image), rel=1e-9)


@pytest.mark.parametrize("variant", deepgmm.VARIANTS)
def test_gradients_stay_finite_for_one_pixel_and_empty_classes(variant):
    logits = torch.full((1, 3, 6, 6), -1000.0, dtype=torch.float64)  # exp(-1000) == 0: no mass at all
    logits[0, 0] = 0.0  # class 0 everywhere ...
    logits[0, 1, 2, 3] = 1000.0  # ... class 1 on one pixel, class 2 nowhere
    logits.requires_grad_(True)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    value, (pi, mu, var) = deepgmm.nll(torch.log_softmax(logits, 1), x, None, variant)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert torch.allclose(mu[0, 1], x[0, :, 2, 3]) and var[0, 2].eq(deepgmm.VAR_FLOOR).all()


def test_regulariser_and_loss_terms():
    model = torch.nn.Conv2d(2, 3, 1)
    batch = {"image": torch.rand(2, 2, 8, 8), "brain": torch.ones(2, 8, 8, dtype=torch.bool)}
    mu_data = torch.rand(3, 2)
    plain = deepgmm.loss(model, batch, "deepSVG", pool=False)
    reg = deepgmm.loss(model, batch, "deepSVG", lam=0.5, mu_data=mu_data, pool=False)
    assert reg["loss"].item() == pytest.approx(plain["loss"].item() + 0.5 * reg["regulariser"].item(), rel=1e-6)
    _, (_, mu, _) = deepgmm.nll(torch.log_softmax(model(batch["image"]), 1), batch["image"], batch["brain"])
    assert reg["regulariser"].item() == pytest.approx(((mu - mu_data) ** 2).sum((1, 2)).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown variant 'deepX'"):
        deepgmm.loss(model, batch, "deepX")


def test_em_svgmm_never_increases_the_nll_and_finds_the_classes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.05, (300, 2)) for c in (0.2, 0.5, 0.8)])
    gamma, mu, var, history = deepgmm.em_svgmm(x, 3, tol=1e-9, max_iter=50)
    assert np.all(np.diff(history) <= 1e-9) and len(history) > 2
    assert np.allclose(np.sort(mu[:, 0]), [0.2, 0.5, 0.8], atol=0.02)
    labels, value, _ = deepgmm.em_gmm(x, 3, means_init=np.array([[0.2, 0.2], [0.5, 0.5], [0.8, 0.8]]))
    assert value < 0 and len(np.unique(labels[:300])) == 1 and labels[0] != labels[-1]


def test_region_checks():
    x = np.random.default_rng(0).uniform(size=(1, 2, 5, 5))
    mask = np.zeros((1, 5, 5), bool)
    mask[0, 0, :2] = True
    with pytest.raises(ValueError, match="case7: the region mask holds 2 pixel\\(s\\), fewer than the 3 classes"):
        deepgmm.check_region(x, mask, 3, "case7")
    x[:, 1] = 0.4
    with pytest.warns(UserWarning, match="sequence 1 is constant"):
        deepgmm.check_region(x, np.ones((1, 5, 5), bool), 3, "case7")


def two_region_image(seed=0, size=24):
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), bool)
    truth[6:16, 4:14] = True
    image = np.stack([np.where(truth, 0.8, 0.3), np.where(truth, 0.2, 0.6)]) + rng.normal(0, 0.03, (2, size, size))
    return image.astype(np.float32), truth


@pytest.mark.parametrize("variant", deepgmm.VARIANTS)
def test_per_image_fit_lowers_the_nll_and_separates_two_regions(variant):
    image, truth = two_region_image()
    p, history = deepgmm.fit_images(image[None], np.ones((1, 24, 24), bool), 2, variant, max_epochs=60, tol=0)
    assert p.shape == (1, 2, 24, 24) and len(history) == 60 and history[-1] < history[0]
    labels = p[0].argmax(0)
    assert max((labels == truth).mean(), (labels != truth).mean()) > 0.95


def test_per_image_fit_starts_from_the_given_classes():
    image, truth = two_region_image()
    start = np.where(truth, 1, 2)[None]  # class 1 (index 0) is the bright square
    for seed in range(3):  # a random network names the classes by chance; the warm start fixes them
        p, history = deepgmm.fit_images(image[None], np.ones((1, 24, 24), bool), 2, max_epochs=1, tol=0,
                                        init_labels=start, seed=seed)
        assert len(history) == 1 and (p[0].argmax(0) == start[0] - 1).mean() > 0.95


def test_start_labels_are_none_or_the_k_means_classes():
    from nbutils.methods import classical

    image, truth = two_region_image()
    brain = np.ones((1, 24, 24), bool)
    assert deepgmm.start_labels(image[None], brain, 2, "random") is None
    start = deepgmm.start_labels(image[None], brain, 2)  # the default: k-means
    assert np.array_equal(start, classical.kmeans(image[None], brain, 2)) and set(np.unique(start)) == {1, 2}
    with pytest.raises(ValueError, match="unknown init 'em'"):
        deepgmm.start_labels(image[None], brain, 2, "em")


def test_per_image_fit_stops_on_a_plateau():
    image, _ = two_region_image()
    _, history = deepgmm.fit_images(image[None], np.ones((1, 24, 24), bool), 2, max_epochs=100, tol=1e9)
    assert len(history) == deepgmm.PATIENCE + 1  # no improvement of 1e9 over PATIENCE steps


def test_pooled_loss_is_one_mixture_over_the_stacked_slices():
    torch.manual_seed(0)
    model = deepgmm.build_model(2, 3)
    x = torch.rand(3, 2, 8, 8)
    mask = torch.rand(3, 8, 8) > 0.2
    pooled = deepgmm.loss(model.eval(), {"image": x, "brain": mask}, "deepG", pool=True)["nll"]
    with torch.no_grad():
        logits = model(x)
    # the slices stacked along the height are one image: one M-step, mean over all mask pixels
    stacked = deepgmm.objective(torch.cat(list(logits), 1)[None], torch.cat(list(x), 1)[None],
                                torch.cat(list(mask), 0)[None])["nll"]
    per_slice = deepgmm.loss(model, {"image": x, "brain": mask}, "deepG", pool=False)["nll"]
    assert torch.allclose(pooled, stacked, atol=1e-5) and not torch.allclose(pooled, per_slice, atol=1e-3)


def test_class_means_from_labelled_slices():
    image = np.random.default_rng(0).uniform(size=(2, 3, 5, 5))
    labels = np.random.default_rng(1).integers(0, 3, (2, 5, 5))
    mu = deepgmm.class_means(image, labels, 2)
    expected = [[image[:, m][labels == c].mean() for m in range(3)] for c in (1, 2)]
    assert mu.shape == (2, 3) and np.allclose(mu, expected)
    with pytest.raises(ValueError, match="no pixel of class\\(es\\) \\[3\\]"):
        deepgmm.class_means(image, labels, 3)


def test_trained_mode_fits_resumes_and_predicts_unseen_images(tmp_path):
    from nbutils.data.datasets import Volume, SliceDataset

    images = [two_region_image(seed) for seed in range(4)]
    vol = Volume("v", np.stack([i for i, _ in images]), np.ones((4, 24, 24), bool), 0)
    ckpt = tmp_path / "gmm.pt"
    first = deepgmm.fit(SliceDataset([vol]), 2, epochs=2, batch_size=2, checkpoint=ckpt, progress=False)
    result = deepgmm.fit(SliceDataset([vol]), 2, epochs=30, batch_size=2, checkpoint=ckpt, progress=False)
    assert result.history[:2] == first.history and result.history[-1]["nll"] < result.history[0]["nll"]
    state = load_checkpoint(ckpt, "deepgmm")
    network = deepgmm.build_model(**state["config"])
    network.load_state_dict(state["model"])
    unseen, truth = two_region_image(seed=9)
    p = deepgmm.probabilities(network, unseen[None])
    labels = deepgmm.hard_labels(p, unseen[None], np.ones((1, 24, 24), bool))[0]
    assert p.shape == (1, 2, 24, 24) and set(np.unique(labels)) == {1, 2}
    assert ((labels == 2) == truth).mean() > 0.95  # label 2: the brighter class on channel 0, the square


def test_volume_params_pool_every_slice():
    log_p, x, mask = random_case(b=3)
    p = np.exp(log_p).astype(np.float32)
    pi, mu, var = deepgmm.volume_params(p, x.astype(np.float32), mask)
    flat = [np.concatenate(list(a), axis=-1)[None] for a in (p, x)]  # slices side by side: one image
    e_pi, e_mu, e_var = numpy_params(flat[0], flat[1], np.concatenate(list(mask), -1)[None], deepgmm.VAR_FLOOR)
    assert np.allclose(pi, e_pi[0], atol=1e-6) and np.allclose(mu, e_mu[0], atol=1e-5) and np.allclose(var, e_var[0], atol=1e-5)
