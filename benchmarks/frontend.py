"""Benchmark: the label-free front end (brain mask + lesion rule) on real patients it was not tuned on.

    python benchmarks/frontend.py [--lgg-sample DIR] [--lgg-dev DIR] [--brats DIR] [--folds 5] [--json results.json]

1. Brain masks on every LGG patient (sample + dev): deepbet on FLAIR (what ``--brain auto`` does)
   and on the pre-contrast T1 channel; the share of each lesion kept inside the mask, seconds per
   volume. Nothing is tuned here.
2. Lesion rules compared by nested cross-validation over the LGG patients (``--folds``, seeded):
   clusters of k-means (K = 4 on FLAIR, ``segment kmeans``'s defaults) named by the brightest cluster,
   optionally joined by every cluster ``z`` robust SDs above the brain's median, reduced to one lesion
   by the plain largest component (``opening`` 0) or by the compact blob of
   ``metrics.compact_component`` (``opening`` a share of the brain's diameter). Each fold is scored
   with the rule chosen on the other folds: per-patient numbers on patients the rule was not chosen on.
3. The same out-of-fold scores for Otsu and the robust z-score, and the three skull-stripped BraTS
   cases (never used to choose anything) with the library's defaults.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from nbutils import methods, metrics
from nbutils.data import brain as brain_io
from nbutils.data import lgg as lgg_io
from nbutils.data.cases import load_cases
from nbutils.data.datasets import from_lgg
from nbutils.data.io import write_json
from nbutils.evaluation import cross_validate, patient_folds

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GRID = dict(z=(None, 2.0, 3.0), opening=(0.0, 0.01, 0.02, 0.03))
BASELINES = ("kmeans", "otsu", "zscore")


def brain_rows(patients: list[lgg_io.LGGVolume]) -> tuple[list[dict], dict]:
    """Lesion kept by deepbet on FLAIR (the pipeline, timed) and on T1, per patient; the volumes."""
    rows, volumes = [], {}
    for p in patients:
        start = time.perf_counter()
        v = from_lgg(p)
        seconds = time.perf_counter() - start
        t1 = brain_io.extract(p.image[..., 0])
        volumes[p.patient] = v
        rows.append(dict(patient=p.patient, mode=v.brain_mode, kept_flair=metrics.lesion_kept(v.brain, v.target),
                         kept_t1=metrics.lesion_kept(t1, v.target), seconds=seconds))
        print(f"  {p.patient:<26} {v.brain_mode:<15} kept FLAIR {rows[-1]['kept_flair']:.3f}  "
              f"T1 {rows[-1]['kept_t1']:.3f}  {seconds:.1f} s", flush=True)
    return rows, volumes


def rule_dice(labels, v, z, opening) -> float:
    return metrics.dice(metrics.label_free_lesion(labels, v.flair, v.brain, z=z, opening=opening), v.target)


def stats(values) -> str:
    values = np.asarray(list(values), float)
    return f"mean {values.mean():.3f}  median {np.median(values):.3f}  worst 3 {np.round(np.sort(values)[:3], 3)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lgg-sample", type=Path, default=SHARED / "lgg_sample")
    parser.add_argument("--lgg-dev", type=Path, default=SHARED / "lgg_dev")
    parser.add_argument("--brats", type=Path, default=SHARED / "brats_sample")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    patients = [p for folder in (args.lgg_sample, args.lgg_dev) if folder.is_dir() for p in lgg_io.load_lgg(folder)]
    if len(patients) < 2 * args.folds:
        raise SystemExit(f"{len(patients)} LGG patients found; this benchmark needs the LGG dev set")

    print(f"1. Brain masks (deepbet) on {len(patients)} LGG patients, lesion kept inside the mask")
    masks, volumes = brain_rows(patients)
    for key in ("kept_flair", "kept_t1"):
        kept = np.array([r[key] for r in masks])
        print(f"  {key:<10} mean {kept.mean():.3f}  >= 95 %: {np.mean(kept >= 0.95):.0%}  worst {kept.min():.3f}")
    print(f"  seconds per volume (FLAIR, read + decide + extract): {np.mean([r['seconds'] for r in masks]):.1f}")

    names = sorted(volumes)
    folds = patient_folds(names, args.folds)
    runs = {m: (m, 4) for m in BASELINES} | {"kmeans K=6": ("kmeans", 6)}  # z matters only with more clusters
    labels = {run: {n: methods.get(m, common=dict(k=k)).labels(volumes[n]) for n in names} for run, (m, k) in runs.items()}
    tables = {run: {(z, o): {n: rule_dice(labels[run][n], volumes[n], z, o) for n in names}
                    for z, o in itertools.product(GRID["z"], GRID["opening"])} for run in runs}
    print(f"\n2. Lesion rules for k-means (K=4, FLAIR): all {len(names)} patients, then nested {args.folds}-fold CV")
    for (z, o), dice in tables["kmeans"].items():
        print(f"  z={str(z):<5} opening={o:<5} {stats(dice.values())}")
    oof, picks = cross_validate(tables["kmeans"], folds)
    print(f"  picked per fold: {picks}; library defaults z={metrics.LESION_Z}, opening={metrics.OPENING}")
    oof6, picks6 = cross_validate(tables["kmeans K=6"], folds)
    print(f"  k-means K=6 (z decides more there): picked per fold {picks6}, out-of-fold {stats(oof6.values())}")

    print("\n3. Out-of-fold label-free Dice (each fold scored with the rule picked on the others)")
    rows = []
    for m in BASELINES:
        scored = {n: tables[m][pick][n] for pick, fold in zip(picks, folds) for n in fold}
        print(f"  LGG {m:<7} {stats(scored.values())}")
        rows += [dict(group="LGG", patient=n, method=m, dice_label_free=scored[n]) for n in names]
    print("  k-means per patient, worst first:")
    for n in sorted(names, key=oof.get):
        kept = next(r["kept_flair"] for r in masks if r["patient"] == n)
        print(f"    {n:<26} label-free {oof[n]:.3f}  kept {kept:.3f}")
    if args.brats.is_dir():
        for case in load_cases(args.brats):
            v = case.volume
            for m in BASELINES:
                result = metrics.lesion_scores(methods.get(m, common=dict(k=4)).labels(v), v.flair, v.brain, v.target)
                rows.append(dict(group="BraTS", patient=v.name, method=m, mode=v.brain_mode, **result))
        for m in BASELINES:
            part = [r for r in rows if r["group"] == "BraTS" and r["method"] == m]
            print(f"  BraTS {m:<7} {stats(r['dice_label_free'] for r in part)}; "
                  + ", ".join(f"{r['patient']} {r['mode']} {r['dice_label_free']:.3f} (kept {r['lesion_kept']:.3f})"
                              for r in part))
    if args.json:
        write_json(args.json, dict(folds=folds, brain=masks, picks=[list(p) for p in picks], rows=rows,
                                   rules=[dict(z=z, opening=o, dice=d) for (z, o), d in tables["kmeans"].items()]))


if __name__ == "__main__":
    main()
