"""Diffusion condensation in torch, in bounded memory: the hierarchy that CUTS's stage 2 cuts.

Brugnone, Gao, Moon et al., "Coarse graining of data via inhomogeneous diffusion condensation",
IEEE Big Data 2019, arXiv:1907.04463; used by CUTS (Liu, Amodio et al., MICCAI 2024, arXiv:2209.11359). Points X (N, d) with
weights w (the sizes of the clusters they stand for):

    K_ij = w_j exp(-|x_i - x_j|^2 / eps^2),   P = D^-1 K,   X <- P X.

When no two points are closer than the merge threshold, eps *= scale and one step is taken;
points closer than the threshold merge (transitively) into their weighted mean with summed
weights, and the labels at that level are recorded, until one cluster remains.

Memory stays O(N): a step is softmax attention (``scaled_dot_product_attention``, never an N x N
matrix), merges are looked for among each point's k nearest neighbours (a tiled search, refreshed
every few steps and after each merge), and inputs larger than ``max_points`` are first
coarse-grained to weighted k-means centroids, as Multiscale PHATE does for large N.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from nbutils.methods.torch_kmeans import squared_distances
from nbutils.precision import float32

TILE_ELEMENTS = 2**24  # distances held at once by the tiled searches (64 MB in float32)


@float32
def diffusion_step(x: torch.Tensor, weights: torch.Tensor, eps: float) -> torch.Tensor:
    """One condensation step X <- P X in bounded memory.

    The row-normalised kernel is a softmax over j of (2 x_i.x_j - |x_j|^2) / eps^2 + log w_j (the |x_i|^2
    term cancels), computed as attention with queries [x_i 2/eps^2, 1] and keys
    [x_j, log w_j - |x_j|^2 / eps^2], the width padded to a multiple of 8 for the fused kernels; points are
    centred first (the step commutes with translation) to keep float32 exact.

    Parameters
    ----------
    x : (N, d) points.
    weights : (N,) input points per point.
    eps : the Gaussian kernel's bandwidth.

    Returns
    -------
    (N, d) the moved points.
    """
    centre = x.mean(0)
    x0 = (x - centre).float()
    n, d = x0.shape
    width = 8 * math.ceil((d + 1) / 8)
    q, k, v = (x0.new_zeros(n, width) for _ in range(3))
    q[:, :d], q[:, d] = x0 * (2 / eps**2), 1
    k[:, :d], k[:, d] = x0, torch.log(weights.float()) - (x0 * x0).sum(1) / eps**2
    v[:, :d] = x0
    with _memory_efficient_attention(x.device):
        out = F.scaled_dot_product_attention(q[None, None], k[None, None], v[None, None], scale=1.0)
    return out[0, 0, :, :d].to(x.dtype) + centre


def _memory_efficient_attention(device: torch.device):
    """On CUDA, allow only the tiled (memory-efficient) attention kernel: the plain one would
    build the N x N matrix. Elsewhere the default choice (CPU's is tiled) is kept."""
    if device.type != "cuda" or not hasattr(torch.nn, "attention"):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION])


def _tiled_distances(x: torch.Tensor, reference: torch.Tensor):
    """Yield (start, squared distances (rows, R)) from consecutive row tiles of ``x`` (N, d) to
    ``reference`` (R, d), each tile holding at most ``TILE_ELEMENTS`` distances."""
    tile = max(1, TILE_ELEMENTS // max(len(reference), 1))
    for start in range(0, len(x), tile):
        yield start, squared_distances(x[start : start + tile], reference)


def nearest_neighbours(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest other points of each point, in row tiles of bounded memory.

    Parameters
    ----------
    x : (N, d).
    k : neighbours (at most N - 1).

    Returns
    -------
    (indices (N, k), squared distances (N, k)).
    """
    k = min(k, len(x) - 1)
    idx, dist = [], []
    for start, d2 in _tiled_distances(x, x):
        rows = torch.arange(len(d2), device=x.device)
        d2[rows, rows + start] = math.inf
        values, columns = d2.topk(k, dim=1, largest=False)
        idx.append(columns)
        dist.append(values)
    return torch.cat(idx), torch.cat(dist)


def _group_means(x: torch.Tensor, group: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Weighted means of the points ``x`` (N, d) in each group (ids (N,), any integers):
    (means (G, d), summed weights (G,), each point's group renumbered 0..G-1 (N,))."""
    _, index = torch.unique(group, return_inverse=True)
    total = torch.zeros(int(index.max()) + 1, dtype=x.dtype, device=x.device).index_add_(0, index, weights)
    sums = torch.zeros(len(total), x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, index, x * weights[:, None])
    return sums / total[:, None], total, index


def merge_groups(x: torch.Tensor, candidates: torch.Tensor, threshold: float) -> torch.Tensor | None:
    """Groups of points closer than a threshold, among candidate pairs.

    Parameters
    ----------
    x : (N, d).
    candidates : (N, m) indices of each point's candidate partners (e.g. nearest neighbours).
    threshold : merge distance.

    Returns
    -------
    (N,) group id of each point (the connected components of the close pairs; the smallest index of each
    component), or None when no candidate pair is that close.
    """
    d2 = (x[:, None, :] - x[candidates]).square().sum(-1)
    close = d2 < threshold**2
    if not close.any():
        return None
    i = torch.arange(len(x), device=x.device)[:, None].expand_as(candidates)[close]
    j = candidates[close]
    group = torch.arange(len(x), device=x.device)
    while True:  # smallest index in each component: min-label propagation with pointer jumping
        new = group.scatter_reduce(0, i, group[j], "amin").scatter_reduce(0, j, group[i], "amin")
        new = new[new]
        if torch.equal(new, group):
            return group
        group = new


def coarse_grain(x: torch.Tensor, max_points: int, iterations: int = 10,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted k-means centroids standing for many points, as Multiscale PHATE does.

    Parameters
    ----------
    x : (N, d).
    max_points : M, at most this many centroids.
    iterations : Lloyd iterations from ``max_points`` random points (tiled nearest-centroid search).
    seed : the start.

    Returns
    -------
    (centroids (M', d), weights (M',) = points per centroid, point_of (N,) = each point's centroid), M' <= M
    (centroids that lose all their points are dropped).
    """
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(len(x), generator=g)[:max_points].to(x.device)]
    ones = torch.ones(len(x), dtype=x.dtype, device=x.device)
    for _ in range(iterations + 1):
        nearest = torch.cat([d2.argmin(1) for _, d2 in _tiled_distances(x, centres)])
        centres, weights, point_of = _group_means(x, nearest, ones)
    return centres, weights, point_of


@dataclasses.dataclass
class Hierarchy:
    """The output of :func:`condense`: a partition of the input points at every level.

    ``levels`` (L, M) int32: the cluster of each condensed point at each level (level 0: every
    point alone; level L-1: one cluster); ``eps`` (L,): the bandwidth at which each level formed;
    ``point_of`` (N,): the condensed point each input point belongs to; ``weights`` (M,):
    input points per condensed point.
    """

    levels: np.ndarray
    eps: np.ndarray
    point_of: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.levels)

    def _check(self, level: int) -> int:
        if not -len(self) <= level < len(self):
            raise IndexError(f"level {level} is beyond the hierarchy, which has levels 0..{len(self) - 1} "
                             "(0 = finest, the last = one cluster)")
        return level % len(self)

    def labels(self, level: int) -> np.ndarray:
        """Cluster ids of the input points at one level.

        Parameters
        ----------
        level : 0 (finest) .. len - 1 (one cluster); negative counts from the top.

        Returns
        -------
        (N,) ids 0..n-1.
        """
        _, ids = np.unique(self.levels[self._check(level)], return_inverse=True)
        return ids[self.point_of]

    def n_clusters(self) -> np.ndarray:
        """Clusters at each level (L,), decreasing to 1."""
        return np.array([len(np.unique(row)) for row in self.levels])

    def lifetimes(self) -> np.ndarray:
        """(L, M): how many levels the cluster of each condensed point at each level exists
        unchanged (same members), from the level where it formed to the one where it merges;
        the last level's single cluster lasts forever (inf)."""
        size = np.stack([np.bincount(row)[row] for row in self.levels])
        unchanged = size[1:] == size[:-1]  # nested partitions: same size = same cluster
        born = np.zeros(size.shape, int)
        for level in range(1, len(self)):
            born[level] = np.where(unchanged[level - 1], born[level - 1], level)
        dies = np.full(size.shape, np.inf)
        for level in range(len(self) - 2, -1, -1):
            dies[level] = np.where(unchanged[level], dies[level + 1], level + 1)
        return dies - born

    def structure_labels(self, level: int, min_area: float = 0.01, min_levels: int = 2) -> np.ndarray:
        """Labels made of persistent structures at one level.

        Persistent structures are clusters holding at least ``min_area`` of the input points and lasting at
        least ``min_levels`` levels. Points in no such cluster at ``level`` go, at the first coarser level
        where that is possible, to the heaviest structure their cluster has merged with, or to their cluster
        if it has become a persistent structure itself.

        Parameters
        ----------
        level : the level.
        min_area : share of the points.
        min_levels : lifetime in levels.

        Returns
        -------
        (N,) ids.
        """
        level = self._check(level)
        keep, m = self._persistent(min_area, min_levels), self.levels.shape[1]
        out = np.where(keep[level], level * m + self.levels[level], -1).astype(np.int64)  # unique over levels
        for coarser in range(level + 1, len(self)):
            pending = out < 0
            if not pending.any():
                break
            row, settled = self.levels[coarser], ~pending
            pairs, inverse = np.unique(np.stack([row[settled], out[settled]]), axis=1, return_inverse=True)
            mass = np.bincount(inverse.ravel(), weights=self.weights[settled])
            heaviest = {}
            for (cluster, structure), _ in sorted(zip(pairs.T.tolist(), mass), key=lambda t: t[1]):
                heaviest[cluster] = structure
            out[pending] = [heaviest.get(c, -1) for c in row[pending]]
            fresh = (out < 0) & keep[coarser]
            out[fresh] = coarser * m + row[fresh]
        _, ids = np.unique(out, return_inverse=True)
        return ids[self.point_of]

    def structures_level(self, min_area: float = 0.01, min_levels: int = 2) -> int:
        """The level with the most persistent structures (the finest of ties).

        Parameters
        ----------
        min_area, min_levels : see :meth:`structure_labels`.

        Returns
        -------
        int level; label-free, but blind to structures smaller than ``min_area``.
        """
        keep = self._persistent(min_area, min_levels)
        return int(np.argmax([len(np.unique(row[k])) for row, k in zip(self.levels, keep)]))

    def persistent_level(self, min_clusters: int = 3, max_clusters: int = 16) -> int:
        """The most persistent partition, label-free.

        Parameters
        ----------
        min_clusters, max_clusters : the levels considered.

        Returns
        -------
        int: among levels of ``min_clusters`` to ``max_clusters`` clusters, the one whose partition lasts the
        widest range of eps (largest eps ratio to the next level); otherwise the finest level with at most
        ``max_clusters``.
        """
        n = self.n_clusters()
        if len(self) == 1:
            return 0
        span = np.append(np.log(self.eps[1:] / self.eps[:-1]), -np.inf)
        allowed = (n >= min_clusters) & (n <= max_clusters)
        if not allowed.any():
            return int(np.flatnonzero(n <= max_clusters)[0])
        return int(np.argmax(np.where(allowed, span, -np.inf)))

    def _persistent(self, min_area: float, min_levels: int) -> np.ndarray:
        """(L, M) bool: is the cluster of each condensed point at each level a persistent structure."""
        area = np.stack([np.bincount(row, weights=self.weights, minlength=self.levels.shape[1])[row]
                         for row in self.levels]) / self.weights.sum()
        return (area >= min_area) & (self.lifetimes() >= min_levels)


def default_scales(x: torch.Tensor) -> tuple[float, float]:
    """Starting bandwidth and merge threshold of :func:`condense`.

    Parameters
    ----------
    x : (N, d) points.

    Returns
    -------
    (eps, threshold): eps a tenth of the median distance to the nearest other point (the kernel starts
    narrower than the gaps, so the finest levels are recorded), threshold 1e-3 of the points' spread (root
    mean variance per dimension), or 1e-6 when the points are all equal.
    """
    spread = float(x.var(0, unbiased=False).mean().sqrt()) if len(x) > 1 else 0.0
    threshold = 1e-3 * spread if spread > 0 else 1e-6
    if len(x) < 2:
        return 1.0, threshold
    _, d2 = nearest_neighbours(x, 1)
    return max(0.1 * float(d2.sqrt().median()), 10 * threshold), threshold


def condense(
    x: np.ndarray | torch.Tensor,
    *,
    eps: float | None = None,
    threshold: float | None = None,
    scale: float = 1.025,
    max_points: int | None = 4096,
    k: int = 8,
    refresh: int = 8,
    device: str | torch.device = "cpu",
    seed: int = 0,
    max_iterations: int = 100_000,
    progress: bool = False,
) -> Hierarchy:
    """Condense points to one cluster; return the :class:`Hierarchy` of every level.

    Parameters
    ----------
    x : (N, d) points.
    eps, threshold : starting bandwidth and merge threshold (default :func:`default_scales`).
    scale : eps is multiplied by it after each step without a merge.
    max_points : inputs of more points are coarse-grained first (:func:`coarse_grain`; None: never).
    k, refresh : merges are looked for among the ``k`` nearest neighbours, recomputed every ``refresh``
        steps and after every merge (with k >= N - 1 the check is exact).
    device : float32 there.
    seed : coarse-graining's.
    max_iterations : a RuntimeError beyond.
    progress : a progress bar.

    Returns
    -------
    :class:`Hierarchy`; a ValueError for an empty input or NaN / infinite values.

    References
    ----------
    Brugnone, Gigante, Krishnaswamy et al., "Coarse Graining of Data via Inhomogeneous Diffusion
    Condensation", IEEE Big Data 2019, arXiv:1907.04463.
    """
    x = torch.as_tensor(x).to(device, torch.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"condense needs points of shape (N, d) with N >= 1, got {tuple(x.shape)}")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"the points hold {bad} NaN or infinite values; condensation needs finite embeddings")
    n = len(x)
    if max_points is not None and n > max_points:
        x, weights, point_of = coarse_grain(x, max_points, seed=seed)
    else:
        weights, point_of = torch.ones(n, device=x.device), torch.arange(n, device=x.device)
    if eps is None or threshold is None:
        auto_eps, auto_threshold = default_scales(x)
        eps = auto_eps if eps is None else eps
        threshold = auto_threshold if threshold is None else threshold
    eps, threshold = float(eps), float(threshold)
    if threshold <= 0 or eps <= 0 or scale <= 1:
        raise ValueError(f"need eps > 0, threshold > 0 and scale > 1; got {eps}, {threshold}, {scale}")
    m = len(x)
    initial_weights = weights.cpu().numpy()
    assign = torch.arange(m, device=x.device)  # condensed point -> current cluster (row of x)
    levels, eps_at = [assign.cpu().numpy().astype(np.int32)], [eps]
    candidates = nearest_neighbours(x, k)[0] if m > 1 else None
    steps = 0
    bar = tqdm(total=m - 1, desc="condensation", disable=not progress)
    for _ in range(max_iterations):
        if len(x) == 1:
            break
        group = merge_groups(x, candidates, threshold)
        if group is None:
            eps *= scale
            x = diffusion_step(x, weights, eps)
            steps += 1
            if steps % refresh == 0:
                candidates = nearest_neighbours(x, k)[0]
            continue
        x, weights, index = _group_means(x, group, weights)
        assign = index[assign]
        levels.append(assign.cpu().numpy().astype(np.int32))
        eps_at.append(eps)
        bar.update(bar.total - len(x) + 1 - bar.n)
        if len(x) > 1:
            candidates = nearest_neighbours(x, k)[0]
    else:
        raise RuntimeError(f"condensation did not reach one cluster in {max_iterations} iterations")
    bar.close()
    return Hierarchy(np.stack(levels), np.asarray(eps_at), point_of.cpu().numpy(), initial_weights)
