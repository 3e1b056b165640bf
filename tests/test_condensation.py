import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import connected_components

from nbutils.methods import condensation
from nbutils.methods.condensation import Hierarchy


def canonical(labels) -> list:
    """Cluster ids renumbered by first appearance, to compare partitions."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return list(np.argsort(np.argsort(first))[inverse])


def numpy_condensation(x, eps, threshold, scale):
    """Diffusion condensation (Brugnone et al. 2019) with dense matrices in float64: all pairs checked, K_ij = w_j exp(-d_ij^2 / eps^2)."""
    x, w = x.astype(np.float64), np.ones(len(x))
    assign = np.arange(len(x))
    levels, eps_at = [assign.copy()], [eps]
    while len(x) > 1:
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        close = d < threshold
        np.fill_diagonal(close, False)
        if not close.any():
            eps *= scale
            k = w[None] * np.exp(-(d**2) / eps**2)
            x = (k / k.sum(1, keepdims=True)) @ x
            continue
        _, group = connected_components(close, directed=False)
        merged = np.bincount(group, weights=w)
        x = np.stack([np.bincount(group, weights=w * x[:, c]) for c in range(x.shape[1])], 1) / merged[:, None]
        w, assign = merged, group[assign]
        levels.append(assign.copy())
        eps_at.append(eps)
    return levels, eps_at


def test_diffusion_step_matches_dense_kernel():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(40, 3)) + 5.0, rng.integers(1, 5, 40).astype(float)  # off-centre on purpose
    eps = 0.8
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    k = w[None] * np.exp(-d2 / eps**2)
    expected = (k / k.sum(1, keepdims=True)) @ x
    out = condensation.diffusion_step(torch.tensor(x, dtype=torch.float32), torch.tensor(w), eps)
    assert np.allclose(out.numpy(), expected, atol=1e-4)


def test_nearest_neighbours_match_brute_force(monkeypatch):
    monkeypatch.setattr(condensation, "TILE_ELEMENTS", 64)  # several tiles
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    idx, d2 = condensation.nearest_neighbours(x, 3)
    full = torch.cdist(x, x).square().fill_diagonal_(float("inf"))
    values, expected = full.topk(3, largest=False)
    assert torch.equal(idx, expected) and torch.allclose(d2, values, atol=1e-4)


def test_merge_groups_are_transitive_by_hand():
    # 0-1 and 1-2 are closer than 1.0, 0-2 is not; 3 is far away
    x = torch.tensor([[0.0, 0.0], [0.8, 0.0], [1.6, 0.0], [9.0, 9.0]])
    candidates = torch.tensor([[1, 2, 3], [0, 2, 3], [1, 0, 3], [2, 1, 0]])
    assert condensation.merge_groups(x, candidates, 1.0).tolist() == [0, 0, 0, 3]
    assert condensation.merge_groups(x, candidates, 0.5) is None


def test_condense_matches_dense_numpy_reference():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(c, 0.2, (10, 2)) for c in ((0, 0), (3, 0), (0, 4))]).astype(np.float32)
    tree = condensation.condense(x, eps=0.05, threshold=0.01, k=len(x) - 1, refresh=1, max_points=None)
    levels, eps_at = numpy_condensation(x, 0.05, 0.01, 1.025)
    assert len(tree) == len(levels)
    assert [canonical(a) for a in tree.levels] == [canonical(b) for b in levels]
    assert np.allclose(tree.eps, eps_at, rtol=1e-6)
    assert tree.n_clusters()[0] == 30 and tree.n_clusters()[-1] == 1
    three = tree.labels(int(np.flatnonzero(tree.n_clusters() == 3)[0]))
    assert canonical(three) == [0] * 10 + [1] * 10 + [2] * 10  # the three blobs are a level


def test_levels_are_nested_and_end_in_one_cluster():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(3))
    tree = condensation.condense(x, max_points=None)
    for fine, coarse in zip(tree.levels[:-1], tree.levels[1:]):
        # every cluster of the finer level lies inside one cluster of the coarser level
        pairs = np.unique(np.stack([fine, coarse]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]
    assert len(np.unique(tree.levels[-1])) == 1 and np.all(np.diff(tree.n_clusters()) < 0)


def test_duplicates_merge_at_once_and_n_equal_1():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 0.0]], np.float32), [4, 3, 1], axis=0)
    tree = condensation.condense(x, max_points=None)
    assert tree.n_clusters()[:2].tolist() == [8, 3] and tree.eps[1] == tree.eps[0]  # merged before any step
    assert np.isfinite(tree.eps).all() and tree.n_clusters()[-1] == 1
    same = condensation.condense(np.ones((50, 3)), max_points=None)
    assert same.n_clusters().tolist() == [50, 1]
    one = condensation.condense(np.zeros((1, 4)))
    assert len(one) == 1 and one.labels(0).tolist() == [0] and one.labels(-1).tolist() == [0]


def test_bad_input_and_levels_beyond_the_hierarchy():
    x = np.zeros((5, 2))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        condensation.condense(x)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        condensation.condense(np.zeros((0, 3)))
    tree = condensation.condense(np.random.default_rng(0).normal(size=(20, 2)), max_points=None)
    with pytest.raises(IndexError, match=f"level {len(tree)} is beyond the hierarchy, which has levels 0..{len(tree) - 1}"):
        tree.labels(len(tree))


def test_coarse_grain_keeps_every_point_and_its_weight():
    x = torch.randn(5000, 3, generator=torch.Generator().manual_seed(4))
    centroids, weights, point_of = condensation.coarse_grain(x, 64)
    assert len(centroids) <= 64 and weights.sum() == 5000 and point_of.shape == (5000,)
    for c in (0, 17, len(centroids) - 1):  # each centroid is the mean of its points
        assert torch.allclose(centroids[c], x[point_of == c].mean(0), atol=1e-5)
    tree = condensation.condense(x, max_points=64)
    assert tree.labels(0).shape == (5000,) and tree.levels.shape[1] == len(centroids)
    assert tree.weights.sum() == 5000


def hand_hierarchy() -> Hierarchy:
    """Six condensed points: {0,1} and {2,3} form at level 1, 4 joins {2,3} at 2, 5 joins {0,1} at 3,
    all merge at 4. Weights (input points each) 40, 39, 9, 9, 2, 1."""
    levels = np.array([[0, 1, 2, 3, 4, 5], [0, 0, 2, 2, 4, 5], [0, 0, 2, 2, 2, 5], [0, 0, 2, 2, 2, 0],
                       [0, 0, 0, 0, 0, 0]], np.int32)
    eps = np.array([1.0, 1.0, 1.1, 1.5, 1.6])
    return Hierarchy(levels, eps, np.arange(6), np.array([40.0, 39.0, 9.0, 9.0, 2.0, 1.0]))


def test_lifetimes_and_persistent_structures_by_hand():
    tree = hand_hierarchy()
    life = tree.lifetimes()
    assert life[0].tolist() == [1, 1, 1, 1, 2, 3]
    assert life[1].tolist() == [2, 2, 1, 1, 2, 3]  # {0,1}: levels 1-2; {2,3}: level 1 only; {4}: 0-1; {5}: 0-2
    assert life[3].tolist() == [1, 1, 2, 2, 2, 1] and np.isinf(life[4]).all()
    # level 1: {0,1} (79 %) is a structure; {2,3} lasts one level, {4} and {5} are too small; {2,3,4}
    # becomes a structure at level 2 and 5 joins {0,1} at level 3
    assert canonical(tree.structure_labels(1, min_area=0.05)) == [0, 0, 1, 1, 1, 0]
    assert canonical(tree.structure_labels(0, min_area=0.05)) == [0, 0, 1, 1, 1, 0]
    assert canonical(tree.structure_labels(1, min_area=0.05, min_levels=3)) == [0] * 6
    assert tree.structures_level(min_area=0.05) == 2  # {0,1} and {2,3,4}


def test_persistent_level_is_the_widest_eps_range():
    tree = hand_hierarchy()  # 6, 4, 3, 2, 1 clusters at eps 1.0, 1.0, 1.1, 1.5, 1.6
    assert tree.persistent_level(min_clusters=2) == 2  # 3 clusters, from eps 1.1 to 1.5
    assert tree.persistent_level(min_clusters=4) == 1  # 4 clusters, from 1.0 to 1.1
    assert tree.persistent_level(min_clusters=7) == 0  # none allowed: the finest with <= 16
