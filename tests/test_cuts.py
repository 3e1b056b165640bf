import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from nbutils.train import load_checkpoint
from nbutils.data.datasets import SliceDataset, Volume
from nbutils.methods import cuts


def numpy_nt_xent(a, p, tau):
    """NT-Xent written out: for each image and anchor i, -log of exp(cos(a_i, p_i)/tau) over the sum
    of exp(cos(a_i, p_j)/tau) for all positives j of the same image."""
    total, count = 0.0, 0
    for ab, pb in zip(a, p):
        for i in range(len(ab)):
            sims = [ab[i] @ pb[j] / (np.linalg.norm(ab[i]) * np.linalg.norm(pb[j])) / tau for j in range(len(pb))]
            total += -sims[i] + np.log(np.sum(np.exp(sims)))
            count += 1
    return total / count


def test_nt_xent_matches_numpy():
    rng = np.random.default_rng(0)
    a, p = rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 4))
    out = cuts.nt_xent(torch.tensor(a), torch.tensor(p), tau=0.1)
    assert out.item() == pytest.approx(numpy_nt_xent(a, p, 0.1), rel=1e-5)
    aligned = cuts.nt_xent(torch.tensor(a), torch.tensor(a) * 3.0, tau=0.1)  # positives = anchors: low loss
    assert aligned.item() < out.item()


def test_ssim_equals_skimage_on_patches():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(4, 2, 5, 5)), rng.uniform(size=(4, 2, 5, 5))
    b[0] = a[0] * 0.9 + 0.05
    ours = cuts.ssim(torch.tensor(a), torch.tensor(b)).numpy()
    ref = [structural_similarity(x, y, win_size=5, data_range=1.0, channel_axis=0, use_sample_covariance=False)
           for x, y in zip(a, b)]
    assert np.allclose(ours, ref, atol=1e-5)


def test_patches_cut_the_image_around_each_centre():
    image = torch.arange(2 * 9 * 9, dtype=torch.float32).reshape(2, 9, 9)
    out = cuts.patches(image, torch.tensor([[4, 4], [0, 8]]), 5)
    assert torch.equal(out[0], image[:, 2:7, 2:7])
    assert torch.equal(out[1][:, 2:, :3], image[:, :3, 6:])  # the part inside the image at a corner


def test_sampled_positives_satisfy_the_ssim_rule():
    rng = np.random.default_rng(2)
    image = np.zeros((1, 40, 40), np.float32)
    image[:, :, 20:] = 0.8  # two flat halves: similar patches nearby, except across the edge
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    region = torch.zeros(40, 40, dtype=torch.bool)
    region[5:35, 5:35] = True
    img = torch.tensor(image.clip(0, 1))
    pairs = cuts.sample_pairs(img, 200, region=region, patch=5, generator=torch.Generator().manual_seed(0))
    anchors, positives = pairs.anchors.numpy(), pairs.positives.numpy()
    assert region.numpy()[anchors[:, 0], anchors[:, 1]].all()
    assert (np.abs(positives - anchors).max(1) <= 5).all() and (positives != anchors).any(1).all()
    padded = np.pad(image[0].clip(0, 1), 2, mode="reflect")
    patch = lambda rc: padded[rc[0] : rc[0] + 5, rc[1] : rc[1] + 5]
    for a, p, ok in zip(anchors, positives, pairs.similar.numpy()):
        score = structural_similarity(patch(a), patch(p), win_size=5, data_range=1.0, use_sample_covariance=False)
        if ok:
            assert score > 0.5
        else:
            assert abs(p - a).sum() == 1  # the adjacent pixel
    assert pairs.similar.float().mean() > 0.3


def test_sampler_draws_new_anchors_each_call_and_repeats_with_the_seed():
    img = torch.rand(1, 32, 32)
    g = torch.Generator().manual_seed(5)
    first, second = (cuts.sample_pairs(img, 16, generator=g).anchors for _ in range(2))
    assert not torch.equal(first, second)
    again = cuts.sample_pairs(img, 16, generator=torch.Generator().manual_seed(5)).anchors
    assert torch.equal(first, again)


def blobs_volume(seed=0, size=32) -> Volume:
    """Two slices: a textured background disc with a bright square lesion."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = np.hypot(yy - size / 2, xx - size / 2) < size * 0.45
    lesion = (abs(yy - 12) < 4) & (abs(xx - 18) < 4)
    image = np.where(brain, 0.4, 0.0) + np.where(lesion, 0.5, 0.0) + rng.normal(0, 0.02, (2, size, size))
    stack = np.repeat(lesion[None], 2, 0)
    return Volume("blobs", image[:, None].clip(0, 1).astype(np.float32), np.repeat(brain[None], 2, 0), 0,
                  target=stack)


def test_training_lowers_the_loss_and_resumes(tmp_path):
    dataset = SliceDataset([blobs_volume()])
    ckpt = tmp_path / "cuts.pt"
    result = cuts.fit(dataset, widths=(8, 8), epochs=6, batch_size=2, n_anchors=32, lr=1e-2, checkpoint=ckpt,
                      progress=False)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert set(result.history[0]) == {"loss", "nt_xent", "reconstruction"}
    more = cuts.fit(dataset, widths=(8, 8), epochs=8, batch_size=2, n_anchors=32, lr=1e-2, checkpoint=ckpt,
                    progress=False)
    assert more.history[:6] == result.history and len(more.history) == 8
    state = load_checkpoint(ckpt, "cuts")
    loaded = cuts.PixelCUTS(**state["config"])
    loaded.load_state_dict(state["model"])
    z = cuts.embed(loaded.eval(), dataset.image.numpy())
    assert z.shape == (2, 8, 32, 32) and np.isfinite(z).all()


@pytest.mark.parametrize("stage2", cuts.STAGE2)
def test_each_stage2_keeps_two_separated_groups_apart(stage2):
    v = blobs_volume()
    group = np.broadcast_to(np.mgrid[:32, :32][1] < 16, v.brain.shape)  # left half of the brain
    rng = np.random.default_rng(0)
    z = np.zeros((2, 3, 32, 32), np.float32)  # embeddings: the two halves far apart, noise elsewhere
    z[:, 0] = np.where(group, 5.0, 0.0) + rng.normal(0, 0.05, (2, 32, 32))
    z[:, 1] = rng.normal(0, 0.05, (2, 32, 32))
    labels = cuts.cluster(z, v.brain, v.flair, stage2, k=2, max_points=256, intensity=0.0)  # the embeddings alone
    assert labels.shape == v.brain.shape and (labels[~v.brain] == 0).all()
    for c in np.unique(labels[v.brain]):  # every cluster lies in one half
        share = group[labels == c].mean()
        assert share < 0.01 or share > 0.99, (c, share)
    if stage2 != "condensation":  # exactly two clusters: the two halves
        assert len(np.unique(labels[v.brain])) == 2


@pytest.mark.parametrize("start", cuts.STARTS)
def test_stage2_kmeans_from_the_intensity_classes_keeps_their_split(start):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    brain = np.ones((2, 32, 32), bool)
    flair = np.broadcast_to(np.where(yy < 16, 0.8, 0.3), brain.shape)  # bright top half
    z = np.zeros((2, 4, 32, 32), np.float32)
    z[:, :3] = np.where(xx < 16, 1.0, -1.0) + rng.normal(0, 0.05, (2, 3, 32, 32))  # left / right: the deeper split
    z[:, 3] = np.where(yy < 16, 1.0, -1.0) + rng.normal(0, 1.0, (2, 32, 32))  # top / bottom, blurred by noise
    labels = cuts.cluster(z, brain, flair, "kmeans", k=2, intensity=0.0, start=start)  # the embeddings alone
    agree = {name: max(np.mean((labels == 1) == half), np.mean((labels == 2) == half))
             for name, half in (("top", yy < 16), ("left", xx < 16))}
    if start == "intensity":  # its start is a fixed point of Lloyd's iterations: the pixels follow z[3]'s sign
        assert agree["top"] > 0.75 and agree["left"] < 0.6, agree  # measured 0.82 and 0.53
    else:
        assert agree["left"] > 0.99, agree


def test_points_append_the_flair_scaled_to_the_embeddings_length():
    rng = np.random.default_rng(0)
    mask = rng.random((2, 16, 16)) > 0.3
    z = rng.normal(size=(2, 5, 16, 16)).astype(np.float32) * np.array([1, 2, 3, 4, 5], np.float32)[None, :, None, None]
    flair = rng.random((2, 16, 16))
    alone = cuts.points(z, mask)  # no FLAIR given: the embeddings alone
    x = cuts.points(z, mask, flair, intensity=2.0)
    assert alone.shape == (mask.sum(), 5) and x.shape == (mask.sum(), 6)
    np.testing.assert_allclose(x[:, :5], alone, atol=1e-5)
    rms = np.sqrt((alone.astype(np.float64) ** 2).sum(1).mean())  # sqrt(5): standardised, all components kept
    assert abs(rms - np.sqrt(5)) < 1e-4
    f = flair[mask]
    np.testing.assert_allclose(x[:, 5], 2.0 * rms * (f - f.mean()) / f.std(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(cuts.points(z, mask, flair, intensity=0.0), alone)


def test_stage2_bad_input():
    v = blobs_volume()
    z = np.zeros((2, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match="unknown stage 2 'dbscan'"):
        cuts.cluster(z, v.brain, v.flair, "dbscan")
    z[0, 1, 10, 10] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        cuts.cluster(z, v.brain, v.flair, "kmeans")
    with pytest.raises(ValueError, match="unknown start 'random'; choose one of intensity, kmeans\\+\\+"):
        cuts.cluster(z, v.brain, v.flair, "kmeans", start="random")
    with pytest.raises(ValueError, match="unknown scaling"):
        cuts.points(z, v.brain, scaling="minmax")
