"""Command line: the code the notebooks call, on the user's own data.

    python -m nbutils segment METHOD INPUT OUTPUT [method options] [--checkpoint CKPT] [--profile ci|full]
                              [--device auto|cpu|cuda|mps] [--channels flair,t1] [--brain auto|...]
                              [--all-components] [--overwrite]
    python -m nbutils train METHOD INPUT CHECKPOINT [method options] [--restart] [...]
    python -m nbutils evaluate PRED GT [--json FILE]
    python -m nbutils compare INPUT|phantom [--methods kmeans,dcn,...] [--subjects N] [--k K] [--json FILE]
    python -m nbutils methods

Each method's options come from its options dataclass: ``python -m nbutils segment dcn --help`` lists
exactly DCN's. A user's mistake prints one line ``error: <file>: <problem>`` and exits with code 2;
nothing is written before every option, the checkpoint and the input have been checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm as std_tqdm
from tqdm.auto import tqdm

import torch

from nbutils import comparison, config, evaluation, methods, metrics, precision, runtime
from nbutils.data import brain
from nbutils.data import cases as cases_io
from nbutils.data import images as image_io
from nbutils.data import lgg as lgg_io
from nbutils.data import nifti as nifti_io
from nbutils.data import streaming
from nbutils.data.datasets import every_nth_slice, phantom_volumes
from nbutils.data.io import write_json
from nbutils.errors import InputError
from nbutils.methods.base import MAX_SEED

MANIFEST = "nbutils_run.json"


class UsageError(ValueError):
    """A command-line syntax error (argparse's), reported in one line like every other mistake."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _writable(path: Path, what: str) -> None:
    """InputError unless a file can be created at ``path`` (its nearest existing folder is writable)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(folder, f"is not a folder: the {what} cannot be written")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(folder, f"is not writable: the {what} cannot be written")


def _read_manifest(path: Path) -> dict:
    way_out = "delete it (and the outputs it lists) or choose another folder"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"is not a readable nbutils run manifest ({type(exc).__name__}); {way_out}") from None
    cases = manifest.get("cases", {}) if isinstance(manifest, dict) else None
    if (not isinstance(manifest, dict) or not isinstance(manifest.get("run", {}), dict) or not isinstance(cases, dict)
            or not all(isinstance(c, dict) and isinstance(c.get("files", []), list) for c in cases.values())):
        raise InputError(path, f"is not an nbutils run manifest (not a JSON object with a run and cases); {way_out}")
    return manifest


def _listed_files(out: Path, manifest: dict) -> list[Path]:
    """The files a previous run's manifest says it wrote, each checked to lie inside OUTPUT.

    Returns
    -------
    list of paths; InputError naming the manifest for any entry that is not a relative path inside ``out``
    (nothing has been deleted then).
    """
    root = out.resolve()
    files = []
    for entry in manifest.get("cases", {}).values():
        for name in entry.get("files", []):
            path = out / name if isinstance(name, str) else None
            if (path is None or Path(name).is_absolute() or path.resolve() == root / MANIFEST
                    or root not in path.resolve().parents):
                raise InputError(out / MANIFEST, f"lists {name!r}, which is not a file inside {out}; nothing was "
                                                 "deleted: delete the manifest or choose another folder")
            files.append(path)
    return files


def _remove_outputs(out: Path, files: list[Path]) -> None:
    """Delete a previous run's files, then the folders under ``out`` that held them and are left empty."""
    for path in files:
        path.unlink(missing_ok=True)
    root = out.resolve()
    for folder in sorted({p.parent.resolve() for p in files}, key=lambda f: len(f.parts), reverse=True):
        while folder != root and root in folder.parents and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _claim_output(out: Path, run: dict, overwrite: bool) -> dict:
    """Make sure OUTPUT is empty, ours from the same run, or explicitly overwritable, and return the
    manifest to keep up to date (``run``: the options; ``cases``: what was decided and written per case).
    ``overwrite`` first removes the files the previous run's manifest says it wrote (only those, and only
    inside OUTPUT) and the folders of ours they leave empty."""
    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    _writable(manifest, "output")
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise InputError(out, "is not writable")
    cases = {}
    if out.exists() and any(out.iterdir()):
        if not manifest.exists() and not overwrite:
            raise InputError(out, "exists and holds files that are not an nbutils run; choose an empty folder or "
                                  "pass --overwrite")
        previous = _read_manifest(manifest) if manifest.exists() else {}
        before = previous.get("run", {})
        if overwrite:
            _remove_outputs(out, _listed_files(out, previous))
        elif before != run:
            diff = ", ".join(f"{k} {before.get(k)!r} there, {run[k]!r} now" for k in run if before.get(k) != run[k])
            raise InputError(out, f"holds a different run's outputs ({diff}); choose another folder or pass --overwrite")
        else:
            cases = previous.get("cases", {})
    for leftover in out.rglob(".partial-*") if out.exists() else ():  # our own interrupted writes
        leftover.unlink(missing_ok=True)
    state = dict(run=run, cases=cases)
    write_json(manifest, state)
    return state


def _outside_input(out: Path, given: str) -> None:
    """InputError unless OUTPUT lies outside INPUT (else the next run reads our outputs as input)."""
    source, target = Path(given).resolve(), out.resolve()
    if target == source or source in target.parents:
        raise InputError(out, f"is {'INPUT itself' if target == source else 'inside INPUT'} ({given}); choose an "
                              "output folder outside the input, so that outputs are never read as input")


def _check_precision(method: methods.Method, device) -> None:
    """A ValueError when the method's ``amp`` cannot run on ``device`` (bf16 without native support, autocast
    without CUDA), before any input is read."""
    if hasattr(method.options, "amp"):
        precision.policy(method.options.amp, device)


def _channels(args) -> list[str] | None:
    """``--channels`` as a list of names; a ValueError for an empty name (it would match any sequence)."""
    if args.channels is None:
        return None
    names = [c.strip() for c in args.channels.split(",")]
    if not all(names):
        raise ValueError(f"--channels {args.channels!r} holds an empty name; give names like flair or flair,t1")
    return names


def _describe(case) -> str:
    """One line: what the input is and which brain mask it gets."""
    v = case.volume
    flair = "FLAIR present" if case.has_flair else f"no FLAIR: the lesion rule reads channel {v.flair_channel}"
    return f"{v.name}: brain {v.brain_mode} ({v.brain_reason}); {flair}"


def _options(args, cls) -> dict:
    """The method options the user set on the command line (the others are None)."""
    return {f: getattr(args, f) for f in cls.Options.__dataclass_fields__ if getattr(args, f, None) is not None}


def _check_channels(model: methods.Model | None, cases) -> None:
    """A trained network takes a fixed number of channels: name the first case that differs."""
    expected = None if model is None or model.network is None else model.state["config"].get("in_channels")
    for case in cases:
        got = case.volume.image.shape[1]
        if expected is not None and got != expected:
            raise InputError(case.volume.name, f"has {got} channel(s), the checkpoint's network takes {expected}; "
                                               "pick them with --channels")


def cmd_segment(args) -> int:
    """Segment INPUT with METHOD into OUTPUT (resumable; never silently overwrites).

    Parameters
    ----------
    args : the parsed command line (``python -m nbutils segment METHOD --help`` lists it).

    Returns
    -------
    the exit code (0); a user's mistake raises :class:`~nbutils.errors.InputError` or ValueError, which
    :func:`main` prints in one line with exit code 2.
    """
    cfg = config.load(args.profile, args.device, verbose=False)
    cls = methods.METHODS[args.method]
    user = _options(args, cls)
    if args.checkpoint:
        if not cls.trainable:
            raise ValueError(f"{args.method} learns nothing: --checkpoint applies to "
                             f"{', '.join(n for n, m in methods.METHODS.items() if m.trainable)}")
        model = methods.load(args.checkpoint, args.method, cfg.device, **user)
        method = model.method
    else:
        method, model = cls.for_profile(cfg.profile, **user), None
        if method.supervised:
            raise ValueError(f"{args.method} learns from lesion masks: train it first (python -m nbutils train "
                             f"{args.method} INPUT CKPT) and segment with --checkpoint")
    out = Path(args.output)
    channels = _channels(args)
    _check_precision(method, cfg.device)
    _outside_input(out, args.input)
    _writable(out / MANIFEST, "output")
    cases = cases_io.load_cases(args.input, channels, args.brain, cfg.device)
    _check_channels(model, cases)
    method.check([c.volume for c in cases])
    run = dict(method=args.method, input=str(Path(args.input).resolve()), options=method.options.as_dict(),
               profile=cfg.profile, channels=args.channels, checkpoint=args.checkpoint, brain=args.brain,
               all_components=args.all_components)
    manifest = _claim_output(out, run, args.overwrite)
    written = skipped = 0
    for case in tqdm(cases, desc=f"segment {args.method}", unit="case"):
        v = case.volume
        tqdm.write(_describe(case))
        if v.name in manifest["cases"] and all(p.exists() for p in case.outputs(out)):
            skipped += 1  # same run, already done: resume
            continue
        labels = model.labels(v) if model else method.labels(v, device=cfg.device)
        lesion = method.lesion(labels, v, not args.all_components)
        try:
            files = case.write(out, labels, lesion, v.brain)
            manifest["cases"][v.name] = dict(brain=v.brain_mode, brain_reason=v.brain_reason, flair=case.has_flair,
                                             files=[str(p.relative_to(out)) for p in files])
            write_json(out / MANIFEST, manifest)
        except OSError:  # a full disk, a permission: no case stays half written or written but not listed
            manifest["cases"].pop(v.name, None)
            for path in case.outputs(out):
                path.unlink(missing_ok=True)
            raise
        written += 1
    print(f"{args.method}: {written} case(s) written, {skipped} already done, in {out}")
    return 0


def cmd_train(args) -> int:
    """Train METHOD on INPUT into CHECKPOINT: slices cached on disk and streamed (bounded memory); under
    torchrun every process trains its shard, rank 0 builds the cache and writes the checkpoint.

    Parameters
    ----------
    args : the parsed command line (``python -m nbutils train METHOD --help`` lists it).

    Returns
    -------
    the exit code (0); a user's mistake raises :class:`~nbutils.errors.InputError` or ValueError, which
    :func:`main` prints in one line with exit code 2.
    """
    cfg = config.load(args.profile, args.device, verbose=False)
    cls = methods.METHODS[args.method]
    method = cls.for_profile(cfg.profile, **{**cls.training_defaults, **_options(args, cls)})
    if not method.learns:
        raise ValueError(f"{args.method} with these options fits each volume on its own: nothing to train")
    _writable(Path(args.checkpoint), "checkpoint")
    channels = _channels(args)
    _check_precision(method, cfg.device)
    device = runtime.init_distributed(cfg.device)
    rank, size = runtime.world()
    folder = cfg.cache_dir / f"slices_{cases_io.input_key(args.input, channels=channels, brain=args.brain, size=method.options.size)}"
    if rank == 0 and not (folder / "index.json").exists():
        total, cases = cases_io.iter_cases(args.input, channels, args.brain, device)

        def volumes():
            for case in tqdm(cases, total=total, desc="read", unit="case"):
                tqdm.write(_describe(case))
                yield case.volume

        streaming.cache_slices(volumes(), folder, method.options.size)
    elif rank > 0:
        streaming.wait_for_cache(folder)  # on the disk, not in a collective that times out
    data = streaming.StreamingSlices(folder)
    args.interrupted_hint = lambda: _resume_hint(args.checkpoint)
    model = method.fit(data, device=device, checkpoint=args.checkpoint, restart=args.restart)
    if rank == 0:
        last = model.history[-1]
        print(f"{args.method}: trained on {len(data.volumes)} case(s)"
              + (f" by {size} processes" if size > 1 else "") + ", last epoch "
              + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float))
              + f"; checkpoint {args.checkpoint}")
    if size > 1:
        torch.distributed.destroy_process_group()
    return 0


def _resume_hint(checkpoint: str) -> str:
    """What an interrupted ``train`` left: the checkpoint files that exist, and how to resume."""
    kept = [p for p in (Path(checkpoint), *Path(checkpoint).parent.glob(Path(checkpoint).name + ".*"))
            if p.is_file() and not p.name.startswith(".partial-")]
    if not kept:
        return f"no epoch finished, so no checkpoint was written ({checkpoint}); re-run to start again"
    verb = "holds" if len(kept) == 1 else "hold"
    return f"{' and '.join(map(str, kept))} {verb} the last finished epoch; re-run to resume"


def _read_optional(path: Path, reader):
    """``reader(path)``, or None when the file does not exist (runs from before brain masks were written)."""
    return reader(path) if path.exists() else None


def _check_shape(array: np.ndarray, path: Path, target: np.ndarray, truth: Path) -> np.ndarray:
    if array.shape != target.shape:
        raise InputError(path, f"has shape {array.shape}, the ground truth {truth} has {target.shape}")
    return array


def _pairs_lgg(pred: Path, gt: Path):
    for v in lgg_io.load_lgg(gt):
        if v.mask is None:
            raise InputError(v.folder, "holds no _mask.tif files to evaluate against")
        arrays = {kind: [] for kind in cases_io.OUTPUTS}
        for name, target in zip(v.slice_names, v.mask):
            for kind in cases_io.OUTPUTS:
                path = pred / v.patient / f"{name}_{kind}.tif"
                if kind != "brain" and not path.exists():
                    raise InputError(path, "prediction missing")
                array = _read_optional(path, lgg_io.read_tif)
                truth = v.folder / f"{name}_mask.tif"
                arrays[kind].append(None if array is None else _check_shape(array, path, target, truth))
        brain_ = None if any(b is None for b in arrays["brain"]) else np.stack(arrays["brain"]) > 0
        yield v.patient, np.stack(arrays["labels"]), np.stack(arrays["lesion"]) > 0, brain_, v.mask


def _pairs_nifti(pred: Path, gt: Path):
    for source in nifti_io.sources(gt)[0]:  # the cases as segment read them
        if source.truth is None:
            raise InputError(source.inputs[0] if len(source.inputs) == 1 else source.inputs[0].parent,
                             "has no ground-truth file (seg, label, mask or gt in its name) to evaluate against")
        target = np.asanyarray(nifti_io.read_nifti(source.truth).dataobj) > 0
        arrays = []
        for kind in cases_io.OUTPUTS:
            path = pred / f"{source.name}_{kind}.nii.gz"
            if kind != "brain" and not path.exists():
                raise InputError(path, "prediction missing")
            array = _read_optional(path, lambda p: np.asanyarray(nifti_io.read_nifti(p).dataobj))
            arrays.append(None if array is None else _check_shape(array, path, target, source.truth))
        labels, lesion, brain_ = arrays
        yield source.name, labels, lesion > 0, None if brain_ is None else brain_ > 0, target


def _pairs_images(pred: Path, gt: Path):
    masks = {p.stem.removesuffix("_mask"): p for p in image_io.image_files(gt, ground_truth=True)}
    for name, mask_path in sorted(masks.items()):
        target = image_io.read_image(mask_path)[..., 0] > 0.5
        arrays = []
        for kind in cases_io.OUTPUTS:
            path = pred / f"{name}_{kind}.png"
            if kind != "brain" and not path.exists():
                raise InputError(path, "prediction missing")
            array = _read_optional(path, image_io.read_raw)
            arrays.append(None if array is None else _check_shape(array, path, target, mask_path))
        labels, lesion, brain_ = arrays
        yield name, labels, lesion > 0, None if brain_ is None else brain_ > 0, target


SCORES = ("dice_label_free", "dice_oracle", "lesion_kept", "hd95_label_free")


def _predicted_cases(pred: Path) -> set[str]:
    """The cases a ``segment`` run wrote, from its manifest (empty without one)."""
    manifest = pred / MANIFEST
    return set(_read_manifest(manifest).get("cases", {})) if manifest.exists() else set()


def evaluate(pred: str | Path, gt: str | Path) -> dict:
    """Per-volume scores of a ``segment`` output folder against ground truth.

    Parameters
    ----------
    pred : the OUTPUT of ``segment``.
    gt : the INPUT with its ground truth (LGG masks, NIfTI seg files, ``*_mask`` images).

    Returns
    -------
    dict ``rows`` (one per case, worst label-free Dice first: ``dice_label_free`` and ``hd95_label_free``
    from the ``_lesion`` files, ``dice_oracle`` from the ``_labels`` files Hungarian-matched to the lesion,
    ``lesion_kept`` inside the ``_brain`` mask, NaN when the run wrote none) and ``summary`` (mean, median,
    std, n of each). Predicted cases without ground truth get a warning.
    """
    pred, gt = Path(pred), Path(gt)
    if not pred.is_dir():
        raise InputError(pred, "is not a folder of predictions")
    kind = cases_io.detect(gt)
    pairs = {"lgg": _pairs_lgg, "nifti": _pairs_nifti, "image": _pairs_images}[kind](pred, gt)
    rows = [dict(case=name, **metrics.scores(labels, lesion, target, brain_))
            for name, labels, lesion, brain_, target in pairs]
    if not rows:
        raise InputError(gt, "holds no ground truth to evaluate against")
    unscored = sorted(_predicted_cases(pred) - {r["case"] for r in rows})
    if unscored:
        warnings.warn(f"{pred}: {len(unscored)} predicted case(s) have no ground truth in {gt} and are not scored "
                      f"(e.g. {unscored[0]})", stacklevel=2)
    rows.sort(key=lambda r: r["dice_label_free"])
    return dict(rows=rows, summary={k: metrics.summary(r[k] for r in rows) for k in SCORES})


def cmd_evaluate(args) -> int:
    """Score a segment OUTPUT against ground truth, per case, worst first.

    Parameters
    ----------
    args : the parsed command line (``python -m nbutils evaluate --help`` lists it).

    Returns
    -------
    the exit code (0); a user's mistake raises :class:`~nbutils.errors.InputError` or ValueError, which
    :func:`main` prints in one line with exit code 2.
    """
    if args.json:
        _writable(Path(args.json), "JSON file")
    result = evaluate(args.pred, args.gt)
    print(f"{'case (worst first)':<32}{'Dice label-free':>16}{'Dice oracle':>12}{'lesion kept':>12}{'HD95 px':>9}")
    for r in result["rows"]:
        print(f"{r['case']:<32}{r['dice_label_free']:>16.3f}{r['dice_oracle']:>12.3f}{r['lesion_kept']:>12.3f}"
              f"{r['hd95_label_free']:>9.1f}")
    s = result["summary"]
    for stat in ("mean", "median"):
        print(f"{stat:<32}{s['dice_label_free'][stat]:>16.3f}{s['dice_oracle'][stat]:>12.3f}"
              f"{s['lesion_kept'][stat]:>12.3f}{s['hd95_label_free'][stat]:>9.1f}")
    if args.json:
        write_json(Path(args.json), result)
    return 0


def cmd_compare(args) -> int:
    """Every method on the same volumes: one table.

    Parameters
    ----------
    args : the parsed command line (``python -m nbutils compare --help`` lists it).

    Returns
    -------
    the exit code (0); a user's mistake raises :class:`~nbutils.errors.InputError` or ValueError, which
    :func:`main` prints in one line with exit code 2.
    """
    cfg = config.load(args.profile, args.device, verbose=False)
    chosen = comparison.entries(args.methods.split(",") if args.methods else None)
    overrides = dict(k=args.k, seed=args.seed, amp=args.amp)
    if args.every < 1:
        raise ValueError(f"--every must be at least 1, got {args.every}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.subjects is not None and args.subjects < 1:
        raise ValueError(f"--subjects must be at least 1, got {args.subjects}")
    if not 0 <= args.seed <= MAX_SEED - args.seeds + 1:
        raise ValueError(f"--seed must be between 0 and {MAX_SEED - args.seeds + 1}, got {args.seed}")
    channels = _channels(args)
    for entry in chosen:  # every option is checked before any work
        _check_precision(comparison.method_of(entry, cfg.profile, **overrides, size=args.size), cfg.device)
    if args.json:
        _writable(Path(args.json), "JSON file")
    start = time.perf_counter()
    if args.input == "phantom":
        if channels:
            raise ValueError("--channels applies to data on disk; the phantom's sequences are fixed")
        volumes = phantom_volumes(args.subjects or cfg.n_subjects, cfg.slices_per_volume, cfg.image_size,
                                  seed=args.seed, cache_dir=cfg.cache_dir, brain=args.brain, device=cfg.device)
    else:
        volumes = [c.volume for c in cases_io.load_cases(args.input, channels, args.brain, cfg.device)]
        missing = [v.name for v in volumes if v.target is None]
        if missing:
            raise InputError(args.input, f"compare needs ground truth, and {len(missing)} case(s) have none "
                                         f"(e.g. {missing[0]})")
    volumes = [every_nth_slice(v, args.every) for v in volumes]
    seeds = range(args.seed, args.seed + args.seeds)
    scores = pd.concat([comparison.compare(volumes, chosen, profile=cfg.profile, device=cfg.device, size=args.size,
                                           largest_cc=not args.all_components, **{**overrides, "seed": seed})
                        .assign(seed=seed) for seed in seeds], ignore_index=True)
    result = evaluation.table(scores, str(cfg.device))
    twins = comparison.against_twins(scores)
    seconds = time.perf_counter() - start
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.drop(columns="device").round(3).to_string())
        if len(twins):
            print("\nlabel-free Dice against the classical twin (ratio of means, 95% paired bootstrap interval"
                  + (f"; each volume's mean over {args.seeds} seeds" if args.seeds > 1 else "") + "):")
            print(twins.round(3).to_string(index=False))
    print(f"{len(volumes)} volume(s), seed(s) {', '.join(map(str, seeds))}, profile {cfg.profile}, device {cfg.device}, "
          f"wall time {seconds:.0f} s")
    if args.json:
        write_json(Path(args.json), dict(input=args.input, profile=cfg.profile, device=str(cfg.device), k=args.k,
                                         every=args.every, seeds=list(seeds), wall_seconds=seconds,
                                         table=result.reset_index().to_dict("records"),
                                         twins=twins.to_dict("records"), rows=scores.to_dict("records")))
    return 0


def cmd_methods(args) -> int:
    """List every method with its options.

    Parameters
    ----------
    args : the parsed command line (``python -m nbutils methods --help`` lists it).

    Returns
    -------
    the exit code (0); a user's mistake raises :class:`~nbutils.errors.InputError` or ValueError, which
    :func:`main` prints in one line with exit code 2.
    """
    for name, cls in methods.METHODS.items():
        kind = "supervised" if cls.supervised else "learns" if cls.trainable else "classical"
        print(f"{name}  ({cls.title}; {kind})  {cls.reference}")
        for row in cls.Options.describe():
            choices = f" {{{','.join(map(str, row['choices']))}}}" if row["choices"] else ""
            print(f"    --{row['name'].replace('_', '-'):<16} {row['type']:<6} {_default(row, brackets=False)}{choices}: "
                  f"{row['help']}")
    return 0


def _default(row: dict, brackets: bool = True) -> str:
    """An option's default as the help shows it: "default 100 [ci 30]" (or ", ci 30"); "" for a default of None,
    which the option's own help describes (it depends on other options)."""
    if row["default"] is None:
        return ""
    if row["ci"] == row["default"]:
        return f"default {row['default']}"
    return f"default {row['default']}" + (f" [ci {row['ci']}]" if brackets else f", ci {row['ci']}")


def _add_method_options(parser: argparse.ArgumentParser, cls) -> None:
    group = parser.add_argument_group(f"{cls.name} options (default: full profile; ci in brackets)")
    for row in cls.Options.describe():
        text = _default(row)
        default = f" ({text})" if text else ""
        if row["type"] == "bool":
            group.add_argument(f"--{row['name'].replace('_', '-')}", dest=row["name"], default=None,
                               action=argparse.BooleanOptionalAction, help=f"{row['help']}{default}")
            continue
        kind = {"int": int, "float": float, "str": str}[row["type"]]
        group.add_argument(f"--{row['name'].replace('_', '-')}", dest=row["name"], type=kind, default=None,
                           choices=row["choices"], metavar=None if row["choices"] else row["type"].upper(),
                           help=f"{row['help']}{default}")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(config.PROFILES), default=None,
                        help="ci (small, CPU) or full (the real settings, GPU); default: from the environment")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--channels", default=None,
                        help="sequences to use, by name, e.g. flair,t1 (NIfTI) or flair (LGG: pre-contrast, flair, "
                             "post-contrast)")
    parser.add_argument("--brain", choices=brain.MODES, default="auto",
                        help="brain mask: decide per volume (auto), everything but the constant background "
                             "(skull-stripped), deepbet brain extraction (extract) or every voxel (none)")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: one sub-command per action, one sub-parser per method whose options
    come from its options dataclass.

    Returns
    -------
    argparse parser raising :class:`UsageError` on a syntax error.
    """
    parser = Parser(prog="python -m nbutils", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    seg = sub.add_parser("segment", help="segment INPUT with METHOD into OUTPUT")
    seg_methods = seg.add_subparsers(dest="method", required=True, metavar="METHOD", parser_class=Parser)
    for name, cls in methods.METHODS.items():
        p = seg_methods.add_parser(name, help=f"{cls.title}: {cls.reference}", description=f"{cls.title}: {cls.reference}")
        p.add_argument("input", help="LGG kaggle_3m folder, NIfTI file/case folder/folder of cases, or image folder")
        p.add_argument("output", help="output folder (created; never silently overwritten)")
        if cls.trainable:
            p.add_argument("--checkpoint", default=None, help="a model trained by `train` (its options are kept)")
        _add_common(p)
        p.add_argument("--all-components", action="store_true",
                       help="keep every piece of the lesion clusters (many small lesions), not one blob (one tumour)")
        p.add_argument("--overwrite", action="store_true", help="replace the outputs of another run in OUTPUT")
        _add_method_options(p, cls)
        p.set_defaults(func=cmd_segment, checkpoint=None)
    tr = sub.add_parser("train", help="train METHOD on INPUT and save (and resume from) CHECKPOINT")
    tr_methods = tr.add_subparsers(dest="method", required=True, metavar="METHOD", parser_class=Parser)
    for name, cls in methods.METHODS.items():
        if not cls.trainable:
            continue
        p = tr_methods.add_parser(name, help=f"{cls.title}: {cls.reference}", description=f"{cls.title}: {cls.reference}")
        p.add_argument("input")
        p.add_argument("checkpoint", help="written atomically every epoch; an existing one of the same training "
                                          "is resumed")
        p.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start over")
        _add_common(p)
        _add_method_options(p, cls)
        p.set_defaults(func=cmd_train)
    cp = sub.add_parser("compare", help="every method on the same INPUT (with ground truth): one table")
    cp.add_argument("input", help="as for segment (with masks), or 'phantom' for the embedded phantom subjects")
    cp.add_argument("--methods", default=None, help="comma-separated methods (default: every one), e.g. kmeans,dcn,unet")
    cp.add_argument("--subjects", type=int, default=None, help="phantom subjects (default: the profile's)")
    cp.add_argument("--k", type=int, default=None, help="clusters, for every method that has k (default: its own)")
    cp.add_argument("--seed", type=int, default=0, help="every method's seed (and the phantom subjects': 'phantom' "
                                                         "makes subjects SEED, SEED + 1, ...)")
    cp.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="run every method at N seeds, SEED to SEED + N - 1, on the same volumes (default 1): the "
                         "table pools every run, and each volume meets its twin at its mean over the seeds")
    cp.add_argument("--size", type=int, default=None,
                    help="working size of every method, pixels (square slices; default: the deep methods' size in "
                         "the profile); the methods without a size segment the volume resized to it, so that every "
                         "method sees the same pixels")
    cp.add_argument("--amp", choices=precision.AMP_MODES, default=None,
                    help="mixed precision of every deep method on CUDA (default: each one's, auto)")
    cp.add_argument("--every", type=int, default=1, metavar="N",
                    help="score every N-th slice that holds brain (default 1: every slice), to keep large volumes "
                         "to minutes")
    cp.add_argument("--all-components", action="store_true", help="keep every piece of the lesion (many small lesions)")
    cp.add_argument("--json", default=None, help="also write the table and the per-volume rows to this JSON file")
    _add_common(cp)
    cp.set_defaults(func=cmd_compare)
    ev = sub.add_parser("evaluate", help="score a segment OUTPUT against ground truth, per case, worst first")
    ev.add_argument("pred")
    ev.add_argument("gt")
    ev.add_argument("--json", default=None, help="also write the scores to this JSON file")
    ev.set_defaults(func=cmd_evaluate)
    ls = sub.add_parser("methods", help="list every method with its options")
    ls.set_defaults(func=cmd_methods)
    return parser


def _close_bars() -> None:
    for bar in list(getattr(std_tqdm, "_instances", ())):  # finish open progress bars before the last line
        bar.close()


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : the arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    exit code: 0, 2 after one line ``error: <file>: <problem>`` for a user's mistake, 130 after one line
    when interrupted (Ctrl-C).
    """
    warnings.formatwarning = lambda msg, category, *a, **k: f"warning: {msg}\n"
    args = None
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (InputError, ValueError, FloatingPointError) as exc:
        _close_bars()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's, not ours: a full disk, a permission, a vanished file
        _close_bars()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except torch.cuda.OutOfMemoryError:
        _close_bars()
        hint = getattr(args, "interrupted_hint", None)
        print("error: the GPU ran out of memory; lower --batch-size or --size (or --amp to fp16/bf16 if it is off)"
              + (f"; {hint()}" if hint else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_bars()
        hint = getattr(args, "interrupted_hint", lambda: "files written so far are complete; re-run the same command "
                                                          "to resume")
        print(f"interrupted: {hint()}", file=sys.stderr)
        return 130
    except Exception:
        _close_bars()
        print("error: an internal error in nbutils (a bug, not your input); please report it with the traceback "
              "below", file=sys.stderr)
        traceback.print_exc()
        return 1
