"""Command line: ``python -m nbutils segment|evaluate ...`` (the code the notebooks call).

    python -m nbutils segment METHOD INPUT OUTPUT [--k K] [--profile ci|full] [--device auto|cpu|cuda]
                              [--seed N] [--checkpoint PATH] [--channels flair,t1] [--overwrite]
                              [--stage2 kmeans|spectral|condensation]   (cuts)
                              [--variant deepG|deepSVG] [--mode per-image|trained]   (deepgmm)
    python -m nbutils train METHOD INPUT CHECKPOINT [--k K] [--labels N] [--variant ...] [--profile ...] [--device ...]
                            [--seed N]
    python -m nbutils evaluate PRED GT [--json FILE]
    python -m nbutils compare INPUT|phantom [--methods kmeans,dcn,...] [--subjects N] [--json FILE] [--k K] [...]

A user's mistake prints one line ``error: <file>: <problem>`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nbutils import comparison, config, methods, metrics
from nbutils.data import cases as cases_io
from nbutils.data import images as image_io
from nbutils.data import lgg as lgg_io
from nbutils.data import nifti as nifti_io
from nbutils.data.datasets import phantom_volumes
from nbutils.data.io import write_json
from nbutils.methods import cuts, deepgmm
from nbutils.errors import InputError
from nbutils.train import load_checkpoint

MANIFEST = "nbutils_run.json"


def _claim_output(out: Path, run: dict, overwrite: bool) -> None:
    """Make sure OUTPUT is empty, ours from the same run, or explicitly overwritable."""
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        if not manifest.exists():
            raise InputError(out, "exists and holds files that are not an nbutils run; choose an empty folder or pass --overwrite")
        previous = json.loads(manifest.read_text())
        if previous != run:
            diff = ", ".join(f"{k} {previous.get(k)!r} there, {run[k]!r} now" for k in run if previous.get(k) != run[k])
            raise InputError(out, f"holds a different run's outputs ({diff}); choose another folder or pass --overwrite")
    write_json(manifest, run)


def cmd_segment(args) -> int:
    segmenter = methods.get(args.method)
    cfg = config.load(args.profile, args.device, verbose=False)
    channels = args.channels.split(",") if args.channels else None
    if args.checkpoint:
        load_checkpoint(args.checkpoint, args.method)  # a wrong checkpoint fails before anything is written
    elif args.method in methods.SUPERVISED:
        raise ValueError(f"{args.method} is supervised: train it first (python -m nbutils train {args.method} "
                         "INPUT CKPT) and pass --checkpoint")
    cases = cases_io.load_cases(args.input, channels)
    out = Path(args.output)
    run = dict(method=args.method, input=str(Path(args.input).resolve()), k=args.k, seed=args.seed,
               all_components=args.all_components, stage2=args.stage2 if args.method == "cuts" else None,
               variant=args.variant if args.method == "deepgmm" else None,
               mode=args.mode if args.method == "deepgmm" else None,
               profile=cfg.profile, channels=args.channels, checkpoint=args.checkpoint)
    _claim_output(out, run, args.overwrite)
    written = skipped = 0
    for case in tqdm(cases, desc=f"segment {args.method}", unit="case"):
        if not args.overwrite and all(p.exists() for p in case.outputs(out)):
            skipped += 1  # same run, already done: resume
            continue
        v = case.volume
        feature_channels = [v.flair_channel] if case.kind == "lgg" and not channels else None
        opts = methods.SegmentOptions(k=args.k, seed=args.seed, device=str(cfg.device), profile=cfg.profile,
                                      checkpoint=args.checkpoint, channels=feature_channels, stage2=args.stage2,
                                      variant=args.variant, mode=args.mode)
        labels = segmenter(v, opts)
        lesion = metrics.label_free_lesion(labels, v.flair, v.brain, largest_cc=not args.all_components)
        case.write(out, labels.astype(np.uint8), lesion)
        written += 1
    print(f"{args.method}: {written} case(s) written, {skipped} already done, in {out}")
    return 0


def cmd_train(args) -> int:
    if args.method not in methods.TRAINERS:
        raise ValueError(f"method {args.method!r} has nothing to train; trainable: {', '.join(sorted(methods.TRAINERS))}")
    cfg = config.load(args.profile, args.device, verbose=False)
    cases = cases_io.load_cases(args.input, args.channels.split(",") if args.channels else None)
    opts = methods.SegmentOptions(k=args.k, seed=args.seed, device=str(cfg.device), profile=cfg.profile,
                                  labels=args.labels, variant=args.variant)
    result = methods.TRAINERS[args.method]([c.volume for c in cases], opts, args.checkpoint)
    last = result.history[-1]
    print(f"{args.method}: trained on {len(cases)} case(s), last epoch " +
          ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float)) + f"; checkpoint {args.checkpoint}")
    return 0


def _pairs_lgg(pred: Path, gt: Path):
    for v in lgg_io.load_lgg(gt):
        if v.mask is None:
            raise InputError(v.folder, "holds no _mask.tif files to evaluate against")
        labels, lesion = [], []
        for name in v.slice_names:
            for kind, store in (("labels", labels), ("lesion", lesion)):
                path = pred / v.patient / f"{name}_{kind}.tif"
                if not path.exists():
                    raise InputError(path, "prediction missing")
                store.append(lgg_io.read_tif(path))
        yield v.patient, np.stack(labels), np.stack(lesion) > 0, v.mask


def _pairs_nifti(pred: Path, gt: Path):
    sources = [gt] if nifti_io.is_nifti(gt) or any(nifti_io.is_nifti(c) for c in gt.iterdir()) else sorted(
        c for c in gt.iterdir() if c.is_dir())
    for source in sources:
        files = [source] if source.is_file() else sorted(p for p in source.iterdir() if nifti_io.is_nifti(p))
        truth = [p for p in files if nifti_io.is_ground_truth(p)]
        if not truth:
            raise InputError(source, "holds no ground-truth file (seg, label, mask or gt in its name)")
        case = source.name if source.is_dir() else nifti_io.stem(source)
        target = np.asanyarray(nifti_io.read_nifti(truth[0]).dataobj) > 0
        arrays = []
        for kind in ("labels", "lesion"):
            path = pred / f"{case}_{kind}.nii.gz"
            if not path.exists():
                raise InputError(path, "prediction missing")
            arrays.append(np.asanyarray(nifti_io.read_nifti(path).dataobj))
            if arrays[-1].shape != target.shape:
                raise InputError(path, f"has shape {arrays[-1].shape}, the ground truth has {target.shape}")
        yield case, arrays[0], arrays[1] > 0, target


def _pairs_images(pred: Path, gt: Path):
    masks = {p.stem.removesuffix("_mask"): p for p in image_io.image_files(gt)}
    for name, mask_path in sorted(masks.items()):
        target = image_io.read_image(mask_path)[..., 0] > 0.5
        arrays = []
        for kind in ("labels", "lesion"):
            path = pred / f"{name}_{kind}.png"
            if not path.exists():
                raise InputError(path, "prediction missing")
            arrays.append(image_io.read_raw(path))
        yield name, arrays[0], arrays[1] > 0, target


def evaluate(pred: str | Path, gt: str | Path) -> dict:
    """Per-volume scores of a ``segment`` output folder against ground truth.

    Label-free Dice and HD95 (pixels) come from the ``_lesion`` files; oracle Dice from the
    ``_labels`` files, with the cluster Hungarian-matched to the lesion.
    """
    pred, gt = Path(pred), Path(gt)
    if not pred.is_dir():
        raise InputError(pred, "is not a folder of predictions")
    kind = cases_io.detect(gt)
    pairs = {"lgg": _pairs_lgg, "nifti": _pairs_nifti, "image": _pairs_images}[kind](pred, gt)
    rows = []
    for name, labels, lesion, target in pairs:
        rows.append(dict(
            case=name,
            dice_label_free=metrics.dice(lesion, target),
            hd95_label_free=metrics.hd95(lesion, target),
            dice_oracle=metrics.dice(metrics.oracle_lesion(labels, target), target),
        ))
    if not rows:
        raise InputError(gt, "holds no ground truth to evaluate against")
    keys = ("dice_label_free", "hd95_label_free", "dice_oracle")
    return dict(rows=rows, summary={k: metrics.summary(r[k] for r in rows) for k in keys})


def cmd_evaluate(args) -> int:
    result = evaluate(args.pred, args.gt)
    print(f"{'case':<32}{'Dice (label-free)':>19}{'HD95 px':>10}{'Dice (oracle)':>15}")
    for r in result["rows"]:
        print(f"{r['case']:<32}{r['dice_label_free']:>19.3f}{r['hd95_label_free']:>10.1f}{r['dice_oracle']:>15.3f}")
    for stat in ("mean", "median"):
        s = result["summary"]
        print(f"{stat:<32}{s['dice_label_free'][stat]:>19.3f}{s['hd95_label_free'][stat]:>10.1f}{s['dice_oracle'][stat]:>15.3f}")
    if args.json:
        write_json(Path(args.json), result)
    return 0


def cmd_compare(args) -> int:
    cfg = config.load(args.profile, args.device, verbose=False)
    chosen = comparison.entries(args.methods.split(",") if args.methods else None)
    start = time.perf_counter()
    if args.input == "phantom":
        volumes = phantom_volumes(args.subjects or cfg.n_subjects, cfg.slices_per_volume, cfg.image_size,
                                  seed=args.seed, cache_dir=cfg.cache_dir)
    else:
        volumes = [c.volume for c in cases_io.load_cases(args.input)]
        missing = [v.name for v in volumes if v.target is None]
        if missing:
            raise InputError(args.input, f"compare needs ground truth, and {len(missing)} case(s) have none "
                                         f"(e.g. {missing[0]})")
    opts = methods.SegmentOptions(k=args.k, seed=args.seed, device=str(cfg.device), profile=cfg.profile)
    scores = comparison.compare(volumes, chosen, opts, largest_cc=not (args.all_components or args.input == "phantom"))
    result = comparison.table(scores, str(cfg.device))
    seconds = time.perf_counter() - start
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.drop(columns="device").round(3).to_string())
    print(f"{len(volumes)} volume(s), profile {cfg.profile}, device {cfg.device}, wall time {seconds:.0f} s")
    if args.json:
        write_json(Path(args.json), dict(input=args.input, profile=cfg.profile, device=str(cfg.device), k=args.k,
                                         wall_seconds=seconds, table=result.reset_index().to_dict("records"),
                                         rows=scores.to_dict("records")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nbutils", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment INPUT with METHOD into OUTPUT")
    seg.add_argument("method", help=f"one of: {', '.join(sorted(methods.METHODS))}")
    seg.add_argument("input", help="LGG kaggle_3m folder, NIfTI file/case folder/folder of cases, or image folder")
    seg.add_argument("output", help="output folder (created; never silently overwritten)")
    seg.add_argument("--k", type=int, default=4, help="number of clusters (default 4)")
    seg.add_argument("--profile", choices=sorted(config.PROFILES), default=None)
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--checkpoint", default=None, help="trained weights (deep methods)")
    seg.add_argument("--channels", default=None, help="NIfTI sequences to use, by name, e.g. flair,t1")
    seg.add_argument("--all-components", action="store_true",
                     help="keep every connected piece of the lesion cluster (many lesions), not only the largest (one tumour)")
    seg.add_argument("--overwrite", action="store_true", help="replace the outputs of another run in OUTPUT")
    seg.add_argument("--stage2", choices=cuts.STAGE2, default="condensation",
                     help="cuts: how the pixel embeddings become clusters (default condensation)")
    seg.add_argument("--variant", choices=deepgmm.VARIANTS, default="deepG",
                     help="deepgmm: mixture weights per image (deepG) or per pixel (deepSVG)")
    seg.add_argument("--mode", choices=deepgmm.MODES, default="per-image",
                     help="deepgmm: a fresh network per case (per-image), or a trained one (--checkpoint, else trained on the case)")
    seg.set_defaults(func=cmd_segment)
    tr = sub.add_parser("train", help="train METHOD on INPUT and save (and resume from) CHECKPOINT")
    tr.add_argument("method", help="one of: " + ", ".join(sorted(methods.TRAINERS)))
    tr.add_argument("input")
    tr.add_argument("checkpoint", help="written atomically every epoch; an existing one is resumed")
    tr.add_argument("--k", type=int, default=4)
    tr.add_argument("--labels", type=int, default=0,
                    help="labelled slices to fine-tune on, drawn from INPUT's masks (acwe mode 2; default 0: unsupervised)")
    tr.add_argument("--variant", choices=deepgmm.VARIANTS, default="deepG", help="deepgmm: deepG or deepSVG")
    tr.add_argument("--profile", choices=sorted(config.PROFILES), default=None)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--channels", default=None)
    tr.set_defaults(func=cmd_train)
    cp = sub.add_parser("compare", help="every method on the same INPUT (with ground truth): one table")
    cp.add_argument("input", help="as for segment (with masks), or 'phantom' for the embedded phantom subjects")
    cp.add_argument("--methods", default=None, help="comma-separated methods (default: every one), e.g. kmeans,dcn,unet")
    cp.add_argument("--subjects", type=int, default=None, help="phantom subjects (default: the profile's)")
    cp.add_argument("--k", type=int, default=4)
    cp.add_argument("--profile", choices=sorted(config.PROFILES), default=None)
    cp.add_argument("--device", default="auto")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--all-components", action="store_true", help="keep every piece of the lesion (the phantom always does)")
    cp.add_argument("--json", default=None, help="also write the table and the per-volume rows to this JSON file")
    cp.set_defaults(func=cmd_compare)
    ev = sub.add_parser("evaluate", help="score a segment OUTPUT against ground truth")
    ev.add_argument("pred")
    ev.add_argument("gt")
    ev.add_argument("--json", default=None, help="also write the scores to this JSON file")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, category, *a, **k: f"warning: {msg}\n"
    try:
        return args.func(args)
    except (InputError, ValueError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
