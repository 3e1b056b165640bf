"""The command line's contract, case by case: no silent wrong results, one-line errors (exit code 2), no
stale files. Every input is a few tiny slices."""

import json

import numpy as np
import pytest
import tifffile

from helpers import make_lgg_patient, run, save_nifti
from nbutils import methods
from nbutils.data.cases import load_cases

FAST_DCN = ["--size", "32", "--batch-size", "4", "--features", "4", "--pretrain-epochs", "1", "--epochs", "1"]
FAST_ACWE = ["--size", "32", "--batch-size", "4", "--epochs", "1"]


def one_line_error(code, err, *fragments):
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return True


PATIENT = "TCGA_XX_0001_20000101"


# 1. labels above 255 are written in a type that holds them
def test_more_than_255_clusters_are_written_without_wrapping(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "slic", lgg_folder, out, "--n-segments", "150")[0] == 0
    labels = tifffile.imread(out / PATIENT / f"{PATIENT}_1_labels.tif")
    brain = tifffile.imread(out / PATIENT / f"{PATIENT}_1_brain.tif") > 0
    assert labels.dtype == np.uint16 and labels.max() > 255 and (labels[brain] > 0).all()


# 2. train and segment respect what a checkpoint was trained with
def test_train_resumes_only_the_same_training_on_the_same_input(lgg_folder, tmp_path, capsys):
    ckpt = tmp_path / "dcn.pt"
    assert run(capsys, "train", "dcn", lgg_folder, ckpt, "--k", "3", *FAST_DCN)[0] == 0
    one_line_error(*run(capsys, "train", "dcn", lgg_folder, ckpt, "--k", "4", *FAST_DCN)[::2],
                   f"{ckpt}: holds training with k=3 (asked 4); pass --restart")
    one_line_error(*run(capsys, "train", "dcn", lgg_folder / PATIENT, ckpt, "--k", "3", *FAST_DCN)[::2],
                   "was trained on other input")
    code, _, err = run(capsys, "segment", "dcn", lgg_folder, tmp_path / "o", "--checkpoint", ckpt, "--k", "6")
    one_line_error(code, err, f"{ckpt}: was trained with k=3 (asked 6)")
    assert not (tmp_path / "o").exists()
    assert run(capsys, "segment", "dcn", lgg_folder, tmp_path / "o", "--checkpoint", ckpt)[0] == 0
    manifest = json.loads((tmp_path / "o" / "nbutils_run.json").read_text())
    assert manifest["run"]["options"]["k"] == 3  # the checkpoint's options, not the defaults
    assert run(capsys, "train", "dcn", lgg_folder, ckpt, "--k", "4", "--restart", *FAST_DCN)[0] == 0
    assert methods.load(ckpt).options.k == 4


def test_acwe_fine_tuning_is_not_skipped_on_an_unsupervised_checkpoint(lgg_folder, tmp_path, capsys):
    ckpt = tmp_path / "acwe.pt"
    assert run(capsys, "train", "acwe", lgg_folder, ckpt, *FAST_ACWE)[0] == 0
    code, _, err = run(capsys, "train", "acwe", lgg_folder, ckpt, "--mode", "finetune", "--labels", "2", *FAST_ACWE)
    one_line_error(code, err, "mode='unsupervised' (asked 'finetune')")


# 3. --overwrite removes the previous run's files (and only those)
def test_overwrite_clears_the_previous_runs_outputs_only(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "one"
    make_lgg_patient(other, "TCGA_YY_0009_20000101", slices=(1,), seed=2)
    assert run(capsys, "segment", "otsu", other, out, "--overwrite")[0] == 0
    assert not (out / PATIENT).exists() or not any((out / PATIENT).iterdir())
    assert (out / "notes.txt").read_text() == "mine" and (out / "TCGA_YY_0009_20000101").is_dir()
    code, stdout, err = run(capsys, "evaluate", out, other)
    assert code == 0 and "TCGA_YY_0009" in stdout and PATIENT not in stdout


# 4. one line, exit code 2, where a traceback used to be
def test_two_dimensional_ground_truth_is_one_line(tmp_path, capsys):
    case = tmp_path / "cases" / "c1"
    case.mkdir(parents=True)
    save_nifti(case / "c1_flair.nii.gz", np.random.default_rng(0).random((8, 8, 3)).astype(np.float32))
    save_nifti(case / "c1_seg.nii.gz", np.ones((8, 8), np.uint8))
    one_line_error(*run(capsys, "segment", "kmeans", tmp_path / "cases", tmp_path / "o", "--k", "2")[::2],
                   "c1_seg.nii.gz: is 2D with shape (8, 8)")


def test_paths_that_cannot_be_written_fail_before_any_work(lgg_folder, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, blocker / "out")[::2], "is not a folder")
    one_line_error(*run(capsys, "train", "dcn", lgg_folder, blocker / "dcn.pt", *FAST_DCN)[::2], "is not a folder")
    one_line_error(*run(capsys, "evaluate", lgg_folder, lgg_folder, "--json", blocker / "s.json")[::2], "is not a folder")
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "o", "--device", "tpu")[::2],
                   "unknown device 'tpu'")


def test_unreadable_input_folder_and_bad_manifest_are_one_line(lgg_folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "nbutils_run.json").write_text("[1, 2]")
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, out)[::2], "nbutils_run.json: is not an nbutils run manifest")
    (out / "nbutils_run.json").write_text("{not json")
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, out)[::2],
                   "nbutils_run.json: is not a readable nbutils run manifest (JSONDecodeError)")
    from pathlib import Path

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", denied)
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "o2")[::2], "cannot be read (permission denied)")


def test_ctrl_c_exits_130_with_one_line_about_the_checkpoint(lgg_folder, tmp_path, capsys, monkeypatch):
    def interrupted(self, volumes, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(methods.DCN, "fit", interrupted)
    code, _, err = run(capsys, "train", "dcn", lgg_folder, tmp_path / "dcn.pt", *FAST_DCN)
    assert code == 130 and err.count("\n") == 1 and err.startswith("interrupted: the checkpoint")


# 5. nothing is claimed or trained before every option fits the data
def test_a_failed_run_claims_nothing_and_k_is_checked_before_training(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "100000")[::2], "fewer than k=100000")
    assert not out.exists()
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    ckpt = tmp_path / "dcn.pt"
    one_line_error(*run(capsys, "train", "dcn", lgg_folder, ckpt, "--k", "100000", *FAST_DCN)[::2], "fewer than k=100000")
    assert not ckpt.exists() and not (tmp_path / "dcn.pt.pretrain").exists()


# 6. messages name the right file and say the right thing
def test_truncated_tiff_and_a_bad_first_slice_are_named(lgg_folder, tmp_path, capsys):
    first = lgg_folder / PATIENT / f"{PATIENT}_1.tif"
    good = first.read_bytes()
    first.write_bytes(good[:8])
    code, _, err = run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "o")
    one_line_error(code, err, f"{first}: not a readable TIFF file (truncated: no image data)")
    tifffile.imwrite(first, np.zeros((20, 20, 3), np.uint8) + 50)  # the first slice has the odd shape
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "o")[::2],
                   f"{first}: has shape (20, 20, 3), the other slices have (48, 48, 3)")


def test_evaluate_shape_error_names_both_files(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    bad = out / PATIENT / f"{PATIENT}_2_lesion.tif"
    tifffile.imwrite(bad, np.zeros((10, 10), np.uint8))
    one_line_error(*run(capsys, "evaluate", out, lgg_folder)[::2], f"{bad}: has shape (10, 10), the ground truth",
                   f"{PATIENT}_2_mask.tif")


def test_random_bytes_checkpoint_and_negative_labels_are_one_plain_line(lgg_folder, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(500))
    code, _, err = run(capsys, "segment", "dcn", lgg_folder, tmp_path / "o", "--checkpoint", junk)
    one_line_error(code, err, "junk.pt: not a readable nbutils checkpoint")
    assert "weights_only" not in err
    one_line_error(*run(capsys, "train", "acwe", lgg_folder, tmp_path / "a.pt", "--labels", "-5")[::2],
                   "labels must be at least 1, got -5")


# 7. ground truth by name is never input
def test_mask_files_are_never_segmented(lgg_folder, tmp_path, capsys):
    for image in (lgg_folder / PATIENT).glob("*_[0-9].tif"):
        image.unlink()
    for image in (lgg_folder / PATIENT).glob("*_10.tif"):
        image.unlink()
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder / PATIENT, tmp_path / "o")[::2],
                   "holds LGG masks (_mask.tif) but no slice images")
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    yy, xx = np.mgrid[:32, :32]
    noise = np.random.default_rng(0).integers(0, 20, (32, 32))
    Image.fromarray((np.where(np.hypot(yy - 16, xx - 16) < 6, 200, 60) + noise).astype(np.uint8)).save(images / "cat.png")
    Image.fromarray((np.hypot(yy - 16, xx - 16) < 6).astype(np.uint8) * 255).save(images / "cat_mask.png")
    out = tmp_path / "img_out"
    assert run(capsys, "segment", "kmeans", images, out, "--k", "2")[0] == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["cat_brain.png", "cat_labels.png", "cat_lesion.png"]
    code, stdout, _ = run(capsys, "evaluate", out, images)
    assert code == 0 and float(stdout.splitlines()[1].split()[1]) == 1.0
    only_masks = tmp_path / "masks"
    only_masks.mkdir()
    (images / "cat_mask.png").rename(only_masks / "cat_mask.png")
    one_line_error(*run(capsys, "segment", "kmeans", only_masks, tmp_path / "m")[::2], "holds only ground-truth images")


# 8. --channels applies to LGG input too
def test_channels_pick_lgg_sequences(lgg_folder, tmp_path, capsys):
    case = load_cases(lgg_folder, ["flair"])[0]
    assert case.volume.image.shape[1] == 1 and case.volume.flair_channel == 0 and case.has_flair
    both = load_cases(lgg_folder, ["post", "flair"])[0].volume
    assert both.image.shape[1] == 2 and both.flair_channel == 1
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "o", "--channels", "t2")[::2],
                   "has no channel named like 't2'")


# 9. our own interrupted writes do not stay
def test_partial_files_are_cleaned_on_the_next_start(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    stale = out / PATIENT / f".partial-deadbeef-{PATIENT}_1_labels.tif"
    stale.write_bytes(b"half")
    ckpt = tmp_path / "dcn.pt"
    stale_ckpt = tmp_path / ".partial-deadbeef-dcn.pt"
    stale_ckpt.write_bytes(b"half")
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0  # the same run: resumes
    assert run(capsys, "train", "dcn", lgg_folder, ckpt, *FAST_DCN)[0] == 0
    assert not stale.exists() and not stale_ckpt.exists()


# 10. evaluate says which predictions it could not score
def test_evaluate_warns_about_predictions_without_ground_truth(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    truth = tmp_path / "truth"
    make_lgg_patient(truth, PATIENT, seed=0)
    with pytest.warns(UserWarning, match="1 predicted case\\(s\\) have no ground truth in .* TCGA_XX_0002"):
        assert run(capsys, "evaluate", out, truth)[0] == 0
