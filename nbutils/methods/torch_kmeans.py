"""k-means (k-means++ seeding, Lloyd iterations) in torch, on whatever device the data is on."""

from __future__ import annotations

import math

import torch

from nbutils.precision import float32


@float32
def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances, via |x|^2 - 2 x.c + |c|^2 (clamped at 0).

    Parameters
    ----------
    x : (N, D).
    centres : (K, D).

    Returns
    -------
    (N, K).
    """
    return ((x * x).sum(1, keepdim=True) - 2 * x @ centres.T + (centres * centres).sum(1)).clamp_min_(0)


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (the variant scikit-learn uses).

    Each next centre is the best, by total squared distance, of 2 + log(k) candidates drawn with
    probability proportional to the squared distance to the nearest centre chosen so far.

    Parameters
    ----------
    x : (N, D) points.
    k : centres.
    generator : a CPU generator for the draws.

    Returns
    -------
    (k, D) centres.

    References
    ----------
    Arthur & Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.
    """
    n = len(x)
    trials = 2 + int(math.log(k))
    first = torch.randint(n, (1,), generator=generator).item()
    centres = [x[first]]
    nearest = squared_distances(x, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        probs = (nearest / nearest.sum()).float().cpu()
        candidates = torch.multinomial(probs, trials, replacement=True, generator=generator).to(x.device)
        options = torch.minimum(nearest[:, None], squared_distances(x, x[candidates]))  # (N, trials)
        best = int(options.sum(0).argmin())
        centres.append(x[candidates[best]])
        nearest = options[:, best]
    return torch.stack(centres)


def kmeans(x: torch.Tensor, k: int, *, n_init: int = 3, max_iter: int = 100, tol: float = 1e-4,
           seed: int = 0, init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """k-means (k-means++ seeding, Lloyd iterations) in torch, on the data's device.

    Parameters
    ----------
    x : (N, D) points.
    k : clusters (2 to the number of distinct points).
    n_init : starts; the lowest inertia (sum of squared distances) wins.
    max_iter, tol : Lloyd iterations and the relative inertia change that stops them.
    seed : the starts.
    init : (K, D) the one start to use instead of k-means++ (``n_init`` is then ignored).

    Returns
    -------
    (centres (K, D), labels (N,), inertia). A cluster that empties is re-seeded with the point farthest
    from its centre.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    distinct = len(torch.unique(x, dim=0)) if len(x) <= 1_000_000 else len(x)
    if k > distinct:
        raise ValueError(f"k={k} exceeds the {distinct} distinct feature vectors")
    if init is not None and tuple(init.shape) != (k, x.shape[1]):
        raise ValueError(f"init must hold {k} centres of {x.shape[1]} features, got shape {tuple(init.shape)}")
    generator = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(1 if init is not None else n_init):
        centres = kmeans_plusplus(x, k, generator) if init is None else init.to(x.device, x.dtype).clone()
        previous = float("inf")
        for _ in range(max_iter):
            d = squared_distances(x, centres)
            dist, labels = d.min(1)
            sums = torch.zeros_like(centres).index_add_(0, labels, x)
            counts = torch.bincount(labels, minlength=k)
            empty = counts == 0
            centres = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
            if empty.any():
                far = dist.topk(int(empty.sum())).indices
                centres[empty] = x[far]
            inertia = float(dist.sum())
            if previous - inertia <= tol * max(previous, 1e-12) and not empty.any():
                break
            previous = inertia
        dist, labels = squared_distances(x, centres).min(1)
        inertia = float(dist.sum())
        if best is None or inertia < best[2]:
            best = (centres, labels, inertia)
    return best


def intensity_start(z: torch.Tensor, x: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Starting centres from the intensity classes: the mean feature of each k-means class of the pixels'
    intensities, so that clustering in a learnt space begins where k-means on the intensities ends.

    Parameters
    ----------
    z : (M, D) features.
    x : (M, C) the same pixels' intensities.
    k : classes.
    seed : k-means' starts.

    Returns
    -------
    (K, D) centres, ordered by their class's mean first channel (the darkest first).
    """
    centres, labels, _ = kmeans(x, k, seed=seed)
    order = torch.argsort(centres[:, 0])
    return torch.stack([z[labels == j].mean(0) for j in order.tolist()])
