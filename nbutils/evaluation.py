"""Run a segmenter over volumes and score it per volume, timed: the rows of every comparison table."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from nbutils import metrics
from nbutils.data.datasets import Volume


def score_volumes(labeller: Callable[[Volume], np.ndarray], volumes: list[Volume], method: str = "",
                  largest_cc: bool = True) -> pd.DataFrame:
    """One row per volume: ``method``, ``volume``, the :func:`metrics.lesion_scores` (label-free and
    oracle Dice, HD95 in pixels) of ``labeller(volume)`` (labels (S, H, W), 0 outside the brain),
    and ``seconds_per_slice``, the labeller's wall time divided by the number of slices."""
    rows = []
    for v in volumes:
        start = time.perf_counter()
        labels = labeller(v)
        seconds = (time.perf_counter() - start) / len(v.image)
        rows.append(dict(method=method, volume=v.name, seconds_per_slice=seconds,
                         **metrics.lesion_scores(labels, v.flair, v.brain, v.target, largest_cc)))
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and median of each score per method (the table the notebooks print)."""
    columns = ["dice_label_free", "dice_oracle", "hd95_label_free", "seconds_per_slice"]
    return scores.groupby("method", sort=False)[columns].agg(["mean", "median"])
