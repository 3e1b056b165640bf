"""Every method of the registry on the same volumes, scored the same way: the one comparison table.

Unsupervised deep methods train once on all the input volumes (they use no labels, so they may fit
on what they segment), then segment each volume; their training time is shared equally among the
volumes. The supervised reference trains on a patient-wise split and is scored on the held-out
patients only (its ``volumes`` column says how many). Scores per volume: label-free and oracle
Dice, label-free HD95 in pixels (DESIGN 5).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nbutils import methods, metrics
from nbutils.data.datasets import Volume
from nbutils.data.preprocessing import largest_component
from nbutils.methods import supervised


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the table: a registry method with its options."""

    name: str
    method: str
    options: tuple = ()  # (field, value) pairs of SegmentOptions


ENTRIES = (
    Entry("k-means", "kmeans"), Entry("GMM", "gmm"), Entry("Otsu", "otsu"), Entry("robust z-score", "zscore"),
    Entry("Chan-Vese", "chan-vese"), Entry("morph. Chan-Vese", "morph-chan-vese"),
    Entry("DCN", "dcn"), Entry("ACWE", "acwe"),
    Entry("CUTS + k-means", "cuts", (("stage2", "kmeans"),)),
    Entry("CUTS + spectral", "cuts", (("stage2", "spectral"),)),
    Entry("CUTS + condensation", "cuts", (("stage2", "condensation"),)),
    Entry("deepG", "deepgmm", (("variant", "deepG"), ("mode", "trained"))),
    Entry("deepSVG", "deepgmm", (("variant", "deepSVG"), ("mode", "trained"))),
    Entry("U-Net (supervised)", "unet"),
)


def entries(names: list[str] | None = None) -> list[Entry]:
    """The entries whose name or method is in ``names`` (None: all); a ValueError lists the choices."""
    if not names:
        return list(ENTRIES)
    chosen = [e for e in ENTRIES if e.name in names or e.method in names]
    unknown = [n for n in names if not any(n in (e.name, e.method) for e in ENTRIES)]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted({e.method for e in ENTRIES}))}")
    return chosen


def _scores(labels: np.ndarray, lesion: np.ndarray, v: Volume) -> dict:
    """Per-volume scores: the ``lesion`` mask (label-free) and the oracle's pick among ``labels``."""
    return dict(dice_label_free=metrics.dice(lesion, v.target), hd95_label_free=metrics.hd95(lesion, v.target),
                dice_oracle=metrics.dice(metrics.oracle_lesion(labels, v.target), v.target))


def compare(volumes: list[Volume], chosen: list[Entry] | None = None, options: methods.SegmentOptions | None = None,
            *, largest_cc: bool = True, test_fraction: float = 0.3, progress: bool = True,
            callback: Callable | None = None) -> pd.DataFrame:
    """One row per (method, volume): ``method``, ``volume``, the three scores, ``seconds`` (that
    volume's segmentation plus its share of training) and ``split`` ("all" or "test").

    The lesion is the label-free rule's (largest component with ``largest_cc``), the supervised
    reference's own prediction for it. ``callback(name, volume, labels, lesion)`` sees every result
    (e.g. to keep one volume's masks for a figure)."""
    if any(v.target is None for v in volumes):
        raise ValueError("compare needs ground-truth lesion masks for every volume")
    options = options or methods.SegmentOptions()
    rows = []
    trained: dict[tuple, tuple[str, float]] = {}  # (method, options) -> (checkpoint, seconds)
    with tempfile.TemporaryDirectory(prefix="nbutils-compare-") as work:
        for entry in tqdm(chosen or ENTRIES, desc="compare", unit="method", disable=not progress):
            opts = dataclasses.replace(options, **dict(entry.options))
            if entry.method in methods.SUPERVISED:
                rows += _supervised_rows(entry, volumes, opts, Path(work), test_fraction, largest_cc, progress,
                                         callback)
                continue
            share = 0.0
            if entry.method in methods.TRAINERS:
                key = (entry.method, opts.variant if entry.method == "deepgmm" else None)
                if key not in trained:
                    ckpt = str(Path(work) / f"{entry.method}-{len(trained)}.pt")
                    start = time.perf_counter()
                    methods.TRAINERS[entry.method](volumes, opts, ckpt)
                    trained[key] = (ckpt, time.perf_counter() - start)
                opts = dataclasses.replace(opts, checkpoint=trained[key][0])
                share = trained[key][1] / len(volumes)
            segmenter = methods.get(entry.method)
            for v in tqdm(volumes, desc=entry.name, unit="volume", leave=False, disable=not progress):
                start = time.perf_counter()
                labels = segmenter(v, opts)
                seconds = time.perf_counter() - start + share
                lesion = metrics.label_free_lesion(labels, v.flair, v.brain, largest_cc)
                rows.append(dict(method=entry.name, volume=v.name, split="all", seconds=seconds,
                                 **_scores(labels, lesion, v)))
                if callback:
                    callback(entry.name, v, labels, lesion)
    return pd.DataFrame(rows)


def _supervised_rows(entry: Entry, volumes: list[Volume], opts, work: Path, test_fraction: float, largest_cc: bool,
                     progress: bool, callback: Callable | None) -> list[dict]:
    """Train the supervised reference on a patient-wise split and score it on the held-out volumes."""
    train_names, test_names = supervised.patient_split([v.name for v in volumes], test_fraction, opts.seed)
    start = time.perf_counter()
    result = supervised.train([v for v in volumes if v.name in train_names], profile=opts.profile,
                              device=opts.device, checkpoint=work / "unet.pt", seed=opts.seed, progress=progress)
    share = (time.perf_counter() - start) / len(test_names)
    rows = []
    for v in (v for v in volumes if v.name in test_names):
        start = time.perf_counter()
        labels = supervised.labels(result, v, opts.profile)
        lesion = largest_component(labels == 2) if largest_cc else labels == 2
        rows.append(dict(method=entry.name, volume=v.name, split="test", seconds=time.perf_counter() - start + share,
                         **_scores(labels, lesion, v)))
        if callback:
            callback(entry.name, v, labels, lesion)
    return rows


def table(scores: pd.DataFrame, device: str = "") -> pd.DataFrame:
    """Per method: Dice (label-free, oracle) mean and median, label-free HD95 mean, seconds per
    volume, the number of volumes scored and the device."""
    grouped = scores.groupby("method", sort=False)
    out = pd.DataFrame({
        "Dice label-free mean": grouped["dice_label_free"].mean(),
        "Dice label-free median": grouped["dice_label_free"].median(),
        "Dice oracle mean": grouped["dice_oracle"].mean(),
        "Dice oracle median": grouped["dice_oracle"].median(),
        "HD95 label-free mean": grouped["hd95_label_free"].apply(lambda s: s[np.isfinite(s)].mean()),
        "s/volume": grouped["seconds"].mean(),
        "volumes": grouped.size(),
    })
    out["device"] = device
    return out
