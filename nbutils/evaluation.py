"""Score segmentations per volume, timed, and summarise them in the one table format; patient folds
for cross-validation."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nbutils import metrics
from nbutils.data.datasets import Volume

Lesion = Callable[[np.ndarray, Volume, bool], np.ndarray]  # (labels, volume, largest_cc) -> lesion mask


def label_free(labels: np.ndarray, volume: Volume, largest_cc: bool = True) -> np.ndarray:
    """The label-free lesion of a volume's labels.

    Parameters
    ----------
    labels : (S, H, W) cluster ids.
    volume : the volume (its FLAIR and brain mask).
    largest_cc : one lesion (see :func:`nbutils.metrics.label_free_lesion`).

    Returns
    -------
    (S, H, W) bool.
    """
    return metrics.label_free_lesion(labels, volume.flair, volume.brain, largest_cc)


def score_volumes(labeller: Callable[[Volume], np.ndarray], volumes: list[Volume], name: str = "",
                  largest_cc: bool = True, *, lesion: Lesion = label_free, share: float = 0.0, split: str = "all",
                  callback: Callable | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per volume of ``labeller(volume)`` (labels (S, H, W), 0 outside the brain).

    Parameters
    ----------
    labeller : a function of a :class:`Volume` returning its labels.
    volumes : volumes with ground truth (``target``).
    name : the ``method`` column.
    largest_cc : one lesion per volume (see :func:`metrics.label_free_lesion`).
    lesion : names the lesion among the labels (default: the label-free rule).
    share : seconds added to each volume (its share of a training that served all of them).
    split : the ``split`` column ("all", or "test" for a supervised method's held-out volumes).
    callback : ``callback(name, volume, labels, lesion)`` sees every result.

    Returns
    -------
    DataFrame with ``method``, ``volume``, ``split``, ``slices`` (scored), ``seconds`` (per volume) and
    :func:`metrics.scores` (Dice label-free and oracle, HD95 in pixels, lesion kept).
    """
    rows = []
    for v in tqdm(volumes, desc=name, unit="volume", leave=False, disable=not progress):
        start = time.perf_counter()
        labels = labeller(v)
        seconds = time.perf_counter() - start + share
        found = lesion(labels, v, largest_cc)
        rows.append(dict(method=name, volume=v.name, split=split, slices=len(v.image), seconds=seconds,
                         **metrics.scores(labels, found, v.target, v.brain)))
        if callback:
            callback(name, v, labels, found)
    return pd.DataFrame(rows)


def table(scores: pd.DataFrame, device: str = "") -> pd.DataFrame:
    """The one summary of :func:`score_volumes` rows, per method in order of appearance.

    Parameters
    ----------
    scores : rows of :func:`score_volumes` (several methods concatenated).
    device : written in a ``device`` column.

    Returns
    -------
    pandas DataFrame indexed by method: Dice label-free and oracle mean and median, label-free HD95 mean
    (pixels, finite values), the lesion kept by the brain mask, seconds per volume, volumes, device. Rows of
    several runs (seeds) are pooled: the statistics are over every run, ``volumes`` counts distinct volumes.
    """
    grouped = scores.groupby("method", sort=False)
    out = pd.DataFrame({
        "Dice label-free mean": grouped["dice_label_free"].mean(),
        "Dice label-free median": grouped["dice_label_free"].median(),
        "Dice oracle mean": grouped["dice_oracle"].mean(),
        "Dice oracle median": grouped["dice_oracle"].median(),
        "HD95 label-free mean": grouped["hd95_label_free"].apply(lambda s: s[np.isfinite(s)].mean()),
        "lesion kept": grouped["lesion_kept"].mean(),
        "s/volume": grouped["seconds"].mean(),
        "volumes": grouped["volume"].nunique(),
    })
    out["device"] = device
    return out


def patient_folds(names: list[str], n_folds: int = 5, seed: int = 0) -> list[list[str]]:
    """Patients dealt into disjoint folds at random, for cross-validation.

    Parameters
    ----------
    names : patient names.
    n_folds : how many folds.
    seed : the shuffle.

    Returns
    -------
    list of ``n_folds`` sorted lists of names: choose a rule on the other folds, report it on the held-out one.
    """
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    return [sorted(names[i] for i in order[f::n_folds]) for f in range(n_folds)]


def cross_validate(table: dict, folds: list[list[str]]) -> tuple[dict[str, float], list]:
    """Nested choice of a candidate by cross-validation.

    Parameters
    ----------
    table : dict candidate (a rule, a setting) -> {patient: score}.
    folds : patient folds (:func:`patient_folds`).

    Returns
    -------
    (dict patient -> the score of the candidate with the best mean on the other folds, the candidate
    picked for each fold).
    """
    out, picks = {}, []
    for held in folds:
        train = [n for fold in folds if fold is not held for n in fold]
        best = max(table, key=lambda c: np.mean([table[c][n] for n in train]))
        picks.append(best)
        out.update({n: table[best][n] for n in held})
    return out, picks
