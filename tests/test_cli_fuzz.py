"""A seeded fuzz of the command line: bad inputs, bad options and bad outputs, each of which must end in one
line (at most two with a warning), exit code 2, no traceback, and no file outside OUTPUT touched."""

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import random
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile

from helpers import make_lgg_patient, run, save_nifti
from nbutils import methods

PATIENT = "TCGA_XX_0001_20000101"
SEED = 0


class Evil:
    """A pickle that would run a command when loaded unsafely."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _nifti(folder: Path, name: str, data, affine=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return save_nifti(folder / name, data, affine)


def _zero_affine(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(np.float32)
    header["sform_code"], header["qform_code"] = 1, 0
    nib.save(nib.Nifti1Image(data, None, header), str(folder / "zero.nii.gz"))
    return folder / "zero.nii.gz"


def _lgg_with(root: Path, change) -> Path:
    make_lgg_patient(root, PATIENT, slices=(1, 2))
    change(root / PATIENT / f"{PATIENT}_1.tif")
    return root


def _output_with_manifest(out: Path, payload) -> Path:
    out.mkdir(parents=True)
    (out / "nbutils_run.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return out


def bad_inputs(base: Path, lgg: Path, rng: np.random.Generator) -> list[tuple[str, list]]:
    """(what, argv) of inputs, outputs and checkpoints that must be refused; files are made under ``base``."""
    noise = rng.random((10, 10, 4)).astype(np.float32)
    truncated = base / "trunc" / "t.nii.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(gzip.compress(b"\x00" * 400)[:30])
    (base / "empty").mkdir()
    junk_ckpt, raw_ckpt, evil_ckpt = base / "junk.pt", base / "raw.pt", base / "evil.pt"
    junk_ckpt.write_bytes(rng.bytes(300))
    raw_ckpt.write_bytes(pickle.dumps({"model": 1}))
    evil_ckpt.write_bytes(pickle.dumps(Evil()))
    a_file = base / "a_file.txt"
    a_file.write_text("not a folder")
    outside = base / "outside.txt"
    return [
        ("missing input", ["segment", "kmeans", base / "nope", "{out}"]),
        ("empty folder", ["segment", "kmeans", base / "empty", "{out}"]),
        ("truncated NIfTI", ["segment", "kmeans", truncated, "{out}"]),
        ("2D NIfTI", ["segment", "kmeans", _nifti(base / "2d", "x.nii.gz", noise[..., 0]), "{out}"]),
        ("NaN NIfTI", ["segment", "kmeans", _nifti(base / "nan", "x.nii.gz", np.where(noise > 0.5, np.nan, noise)),
                       "{out}"]),
        ("1e300 NIfTI", ["segment", "kmeans", _nifti(base / "huge", "x.nii.gz", noise.astype(np.float64) * 1e300),
                         "{out}"]),
        ("constant NIfTI", ["segment", "zscore", _nifti(base / "flat", "x.nii.gz", np.full((8, 8, 4), 3.0)), "{out}"]),
        ("zero affine", ["segment", "kmeans", _zero_affine(base / "zero"), "{out}"]),
        ("one-channel LGG", ["segment", "kmeans", _lgg_with(base / "lgg1", lambda p: tifffile.imwrite(
            p, tifffile.imread(p)[..., 1])), "{out}"]),
        ("four-channel LGG", ["segment", "kmeans", _lgg_with(base / "lgg4", lambda p: tifffile.imwrite(
            p, np.concatenate([tifffile.imread(p)] * 2, -1)[..., :4])), "{out}"]),
        ("random-bytes TIFF", ["segment", "kmeans", _lgg_with(base / "lggjunk", lambda p: p.write_bytes(
            rng.bytes(64))), "{out}"]),
        ("masks only", ["segment", "kmeans", _lgg_with(base / "masks", lambda p: [
            q.unlink() for q in p.parent.glob(f"{PATIENT}_[0-9].tif")]), "{out}"]),
        ("OUTPUT is INPUT", ["segment", "kmeans", lgg, lgg]),
        ("OUTPUT inside INPUT", ["segment", "kmeans", lgg, lgg / "out"]),
        ("OUTPUT is a file", ["segment", "kmeans", lgg, a_file]),
        ("OUTPUT under a file", ["segment", "kmeans", lgg, a_file / "out"]),
        ("foreign OUTPUT", ["segment", "kmeans", lgg, _output_with_manifest(base / "o_foreign", "{broken")]),
        ("manifest escapes OUTPUT", ["segment", "kmeans", lgg, _output_with_manifest(
            base / "o_escape", dict(run={}, cases={"p": dict(files=[f"../{outside.name}"])})), "--overwrite"]),
        ("manifest names an absolute path", ["segment", "kmeans", lgg, _output_with_manifest(
            base / "o_abs", dict(run={}, cases={"p": dict(files=[str(a_file)])})), "--overwrite"]),
        ("corrupt manifest", ["segment", "kmeans", lgg, _output_with_manifest(
            base / "o_corrupt", dict(run=[], cases=3)), "--overwrite"]),
        ("random-bytes checkpoint", ["segment", "dcn", lgg, "{out}", "--checkpoint", junk_ckpt]),
        ("raw pickle checkpoint", ["segment", "dcn", lgg, "{out}", "--checkpoint", raw_ckpt]),
        ("malicious pickle checkpoint", ["segment", "dcn", lgg, "{out}", "--checkpoint", evil_ckpt]),
        ("checkpoint of a classical method", ["segment", "kmeans", lgg, "{out}", "--checkpoint", junk_ckpt]),
        ("empty channel names", ["segment", "kmeans", lgg, "{out}", "--channels", ","]),
        ("unknown LGG channel", ["segment", "kmeans", lgg, "{out}", "--channels", "t2"]),
        ("channels on images", ["segment", "kmeans", _images(base / "img"), "{out}", "--channels", "flair"]),
        ("unknown device", ["segment", "kmeans", lgg, "{out}", "--device", "tpu"]),
        ("no subjects", ["compare", "phantom", "--subjects", "0"]),
        ("negative subjects", ["compare", "phantom", "--subjects", "-2"]),
        ("seed beyond every library", ["compare", "phantom", "--seed", "99999999999"]),
        ("every 0", ["compare", "phantom", "--every", "0"]),
        ("supervised without checkpoint", ["segment", "unet", lgg, "{out}"]),
        ("train without masks", ["train", "unet", _lgg_without_masks(base / "nomask"), base / "u.pt"]),
    ]


def _images(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), np.uint8)).save(folder / "a.png")
    return folder


def _lgg_without_masks(root: Path) -> Path:
    make_lgg_patient(root, PATIENT, slices=(1, 2), masks=False)
    return root


def bad_options(rng: random.Random, count: int) -> list[tuple[str, list]]:
    """(what, argv) of ``count`` option values drawn from every method's declared ranges, each invalid: not a
    finite number, below its lowest or above its highest value, or not among its choices."""
    pool = []
    for name, cls in methods.METHODS.items():
        rows = {r["name"]: r for r in cls.Options.describe()}
        for f in dataclasses.fields(cls.Options):
            meta, row = f.metadata, rows[f.name]
            flag = f"--{f.name.replace('_', '-')}"
            if row["type"] == "float":
                pool += [(name, flag, v) for v in ("nan", "inf", "-inf")]
            if row["type"] in ("int", "float") and meta.get("low") is not None:
                pool.append((name, flag, str(meta["low"] - (1 if row["type"] == "int" else 0.5))))
            if row["type"] in ("int", "float") and meta.get("high") is not None:
                pool.append((name, flag, str(meta["high"] + 1)))
            if row["type"] == "int":
                pool.append((name, flag, "1.5"))
            if meta.get("choices"):
                pool.append((name, flag, "no-such-choice"))
    return [(f"{name} {flag}={value}", ["segment", name, "{lgg}", "{out}", f"{flag}={value}"])
            for name, flag, value in rng.sample(pool, count)]


def _snapshot(root: Path, skip: Path) -> dict:
    """Every file under ``root`` but ``skip`` and those under it: its content hash."""
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*")
            if p.is_file() and skip not in p.parents and p != skip}


def test_fuzzed_bad_input_and_options_end_in_one_line_exit_2_and_touch_nothing_outside_output(tmp_path, capsys,
                                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(SEED)
    lgg = tmp_path / "kaggle_3m"
    make_lgg_patient(lgg, PATIENT, slices=(1, 2))
    cases = bad_inputs(tmp_path, lgg, rng) + bad_options(random.Random(SEED), 30)
    assert len(cases) >= 60
    failures = []
    for i, (what, argv) in enumerate(cases):
        out = tmp_path / f"out_{i}"
        given = [str(a).replace("{out}", str(out)).replace("{lgg}", str(lgg)) for a in argv]
        target = Path(given[3]) if given[0] in ("segment", "train") else out  # OUTPUT, or the checkpoint
        if target.resolve() in (lgg.resolve(), *lgg.resolve().parents):
            target = out  # OUTPUT given as INPUT: every input file must stay as it is
        before = _snapshot(tmp_path, target)
        with warnings.catch_warnings(record=True) as caught:  # a warning is a line the user reads too
            warnings.simplefilter("always")
            code, _, err = run(capsys, *given)
        lines = err.strip("\n").split("\n") + [str(w.message) for w in caught]
        touched = before != _snapshot(tmp_path, target)
        if (code != 2 or not 1 <= len(lines) <= 2 or not lines[-1].startswith("error: ") or "Traceback" in err
                or touched or (tmp_path / "PWNED").exists()):
            failures.append(f"{what}: exit {code}, {'files outside OUTPUT changed, ' if touched else ''}{err!r}")
    assert not failures, "\n".join(failures)
