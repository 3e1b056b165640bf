"""Every method of the registry on the same volumes, scored the same way: the one comparison table.

Unsupervised methods that learn train once on all the input volumes (they use no labels, so they may
fit on what they segment), then segment each volume; their training time is shared equally among the
volumes. The supervised reference trains on a patient-wise split and is scored on the held-out
patients only (its ``volumes`` column says how many). Every method sees the same pixels: the deep
methods work on slices squared to their ``size``, and the others segment the volume squared to that
same size, their labels mapped back. Scores per volume, at each volume's own shape: label-free and
oracle Dice, label-free HD95 in pixels, the lesion kept inside the brain mask.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nbutils import methods, metrics
from nbutils.data.datasets import Volume, at_size
from nbutils.evaluation import score_volumes
from nbutils.methods.base import DeepOptions
from nbutils.methods.supervised import patient_split


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the table: a registry method with some of its options set."""

    name: str
    method: str
    options: tuple = ()  # (field, value) pairs of the method's options


ENTRIES = (  # methods with several rows, and the order of the table; any other method of the registry gets
    # one row with its defaults, after the methods that do not learn (see :func:`all_entries`)
    Entry("k-means", "kmeans"), Entry("GMM", "gmm"), Entry("EM-SVGMM", "svgmm"), Entry("Otsu", "otsu"),
    Entry("Otsu, 2 classes", "otsu", (("k", 2),)), Entry("robust z-score", "zscore"),
    Entry("Chan-Vese", "chan-vese"), Entry("morph. Chan-Vese", "morph-chan-vese"),
    Entry("DCN", "dcn"), Entry("ACWE", "acwe"),
    Entry("CUTS + k-means", "cuts", (("stage2", "kmeans"),)),
    Entry("CUTS + spectral", "cuts", (("stage2", "spectral"),)),
    Entry("CUTS + condensation", "cuts", (("stage2", "condensation"),)),
    Entry("deepG", "deepgmm", (("variant", "deepG"), ("mode", "trained"))),
    Entry("deepSVG", "deepgmm", (("variant", "deepSVG"), ("mode", "trained"))),
    Entry("deepG per image", "deepgmm", (("variant", "deepG"), ("mode", "per-image"))),
    Entry("deepSVG per image", "deepgmm", (("variant", "deepSVG"), ("mode", "per-image"))),
    Entry("U-Net (supervised)", "unet"),
)

TWINS = {  # each deep entry and its classical twins: the same pixels, K, channels and label-free rule
    "DCN": ("k-means",), "ACWE": ("Otsu, 2 classes", "Chan-Vese"),
    "CUTS + k-means": ("k-means",), "CUTS + spectral": ("k-means",), "CUTS + condensation": ("k-means",),
    "deepG": ("GMM",), "deepG per image": ("GMM",), "deepSVG": ("EM-SVGMM",), "deepSVG per image": ("EM-SVGMM",),
}


def all_entries() -> list[Entry]:
    """:data:`ENTRIES`, with one row (the method's title, its defaults) for every other registered method,
    placed after the methods that do not learn: a new method reaches ``compare`` from its registry line alone."""
    listed = {e.method for e in ENTRIES}
    extra = [Entry(cls.title, name) for name, cls in methods.METHODS.items() if name not in listed]
    first_learning = next(i for i, e in enumerate(ENTRIES) if methods.METHODS[e.method].trainable)
    return [*ENTRIES[:first_learning], *extra, *ENTRIES[first_learning:]]


def entries(names: list[str] | None = None) -> list[Entry]:
    """The comparison's rows by name or method.

    Parameters
    ----------
    names : entry names (e.g. "CUTS + k-means") or methods (e.g. "cuts"); None: every entry.

    Returns
    -------
    list of :class:`Entry`; a ValueError lists the choices for an unknown name.
    """
    every = all_entries()
    if not names:
        return every
    chosen = [e for e in every if e.name in names or e.method in names]
    unknown = [n for n in names if not any(n in (e.name, e.method) for e in every)]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(dict.fromkeys(e.method for e in every))}")
    return chosen


def method_of(entry: Entry, profile: str = "ci", **overrides) -> methods.Method:
    """The method of an entry.

    Parameters
    ----------
    entry : the entry.
    profile : the options' profile.
    **overrides : options for every method that has them (e.g. ``k``, ``seed``); the entry's own win.

    Returns
    -------
    :class:`nbutils.methods.Method`; a ValueError names the entry when an override is out of its range.
    """
    try:
        return methods.get(entry.method, profile, overrides, **dict(entry.options))
    except ValueError as exc:
        raise ValueError(f"{entry.name}: {exc}; choose the methods with --methods") from None


def compare(volumes: list[Volume], chosen: list[Entry] | None = None, *, profile: str = "ci", device="cpu",
            size: int | None = None, largest_cc: bool = True, test_fraction: float = 0.3, progress: bool = True,
            callback: Callable | None = None, **overrides) -> pd.DataFrame:
    """Every chosen method on the same volumes, scored the same way.

    Parameters
    ----------
    volumes : volumes with ground truth.
    chosen : entries (default: every one).
    profile, device : the methods' options profile and where they run.
    size : the working size of every method, pixels: the deep methods' ``size`` option, and the methods
        without one segment each volume squared to it (labels mapped back by nearest neighbour), so that a
        deep method and its classical twin see the same pixels; None: the deep methods' size in ``profile``.
    largest_cc : one lesion per volume.
    test_fraction : the supervised reference's held-out share of the patients.
    progress : progress bars.
    callback : ``callback(name, volume, labels, lesion)`` sees every result (e.g. to keep one volume's masks).
    **overrides : options for every method that has them (e.g. ``k=4``, ``seed=0``).

    Returns
    -------
    pandas DataFrame of :func:`nbutils.evaluation.score_volumes` rows: ``seconds`` is the volume's
    segmentation plus its share of training; ``split`` is "all", or "test" for the supervised reference.
    Methods that learn train once on all the volumes and share that training among their entries when
    their training options agree (CUTS's three stage 2s).
    """
    if any(v.target is None for v in volumes):
        raise ValueError("compare needs ground-truth lesion masks for every volume")
    size = DeepOptions.for_profile(profile, size=size).size  # checked; None: the profile's
    frames = []
    trained: dict[tuple, tuple[methods.Model, float]] = {}
    for entry in tqdm(chosen or ENTRIES, desc="compare", unit="method", disable=not progress):
        method = method_of(entry, profile, **overrides, size=size)
        common = dict(largest_cc=largest_cc, lesion=method.lesion, callback=callback, progress=progress)
        if method.supervised:
            train_names, test_names = patient_split([v.name for v in volumes], test_fraction, method.options.seed)
            start = time.perf_counter()
            model = method.fit([v for v in volumes if v.name in train_names], device=device, progress=progress)
            share = (time.perf_counter() - start) / len(test_names)
            test = [v for v in volumes if v.name in test_names]
            frames.append(score_volumes(model.labels, test, entry.name, share=share, split="test", **common))
        elif method.learns:
            key = (entry.method, tuple(sorted(method.options.training().items())))
            if key not in trained:
                start = time.perf_counter()
                trained[key] = (method.fit(volumes, device=device, progress=progress), time.perf_counter() - start)
            model, seconds = trained[key]
            frames.append(score_volumes(model.using(method).labels, volumes, entry.name,
                                        share=seconds / len(volumes), **common))
        else:
            labels = partial(method.labels, device=device, progress=False)
            if not hasattr(method.options, "size"):  # the deep methods' pixels
                labels = partial(at_size, size=size, labeller=labels)
            frames.append(score_volumes(labels, volumes, entry.name, **common))
    return pd.concat(frames, ignore_index=True)


def against_twins(scores: pd.DataFrame, twins: dict | None = None, *, level: float = 0.95, n_boot: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Each deep method's label-free Dice against its classical twin's, on the volumes both scored.

    Parameters
    ----------
    scores : rows of :func:`compare` (``method``, ``volume``, ``dice_label_free``); rows of several runs (seeds)
        of a method on one volume meet the twin at their mean.
    twins : deep entry name -> names of its twins (default :data:`TWINS`); pairs with a method missing
        from ``scores`` are left out.
    level, n_boot, seed : the paired bootstrap interval of the ratio (:func:`nbutils.metrics.ratio_interval`).

    Returns
    -------
    pandas DataFrame, a row per (deep method, twin): volumes, both means, the ratio of the means with its
    interval (``ratio low``, ``ratio high``), how many volumes each method scored higher on (ties, within
    0.01 Dice, go to neither), and each one's worst volume (``worst deep``, ``worst twin``: "name (Dice)").
    """
    dice = scores.pivot_table(index="volume", columns="method", values="dice_label_free", aggfunc="mean")
    rows = []
    for deep, names in (TWINS if twins is None else twins).items():
        for twin in names:
            if deep not in dice or twin not in dice:
                continue
            pair = dice[[deep, twin]].dropna()
            a, b = pair[deep].to_numpy(), pair[twin].to_numpy()
            ratio, low, high = metrics.ratio_interval(a, b, level=level, n_boot=n_boot, seed=seed)
            rows.append({"deep": deep, "twin": twin, "volumes": len(pair), "deep mean": a.mean() if a.size else np.nan,
                         "twin mean": b.mean() if b.size else np.nan, "ratio": ratio, "ratio low": low,
                         "ratio high": high, "deep higher": int((a > b + 0.01).sum()),
                         "twin higher": int((b > a + 0.01).sum()), "worst deep": _worst(pair[deep]),
                         "worst twin": _worst(pair[twin])})
    return pd.DataFrame(rows, columns=["deep", "twin", "volumes", "deep mean", "twin mean", "ratio", "ratio low",
                                       "ratio high", "deep higher", "twin higher", "worst deep", "worst twin"])


def _worst(dice: pd.Series) -> str:
    """ "volume (Dice)" of the lowest score of a series indexed by volume; "" when empty."""
    return f"{dice.idxmin()} ({dice.min():.2f})" if len(dice) else ""
