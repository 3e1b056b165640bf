"""The command line's contract, case by case: no silent wrong results, one-line errors (exit code 2), no
stale files. Every input is a few tiny slices."""

import json
from pathlib import Path

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
    ckpt = tmp_path / "dcn.pt"
    code, _, err = run(capsys, "train", "dcn", lgg_folder, ckpt, *FAST_DCN)
    assert code == 130 and err.count("\n") == 1 and err.startswith("interrupted: no epoch finished"), err
    Path(f"{ckpt}.pretrain").write_bytes(b"pretraining")  # stopped during pretraining: only its sidecar exists
    code, _, err = run(capsys, "train", "dcn", lgg_folder, ckpt, *FAST_DCN)
    assert code == 130 and err == f"interrupted: {ckpt}.pretrain holds the last finished epoch; re-run to resume\n"


# 5. nothing is claimed or trained before every option fits the data
def test_a_failed_run_claims_nothing_and_k_is_checked_before_training(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "100000")[::2], "k must be at most 64")
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "60")[::2],
                   "TCGA_XX_0001_20000101: ", "distinct intensities inside the brain, fewer than k=60 clusters")
    assert not out.exists()
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    ckpt = tmp_path / "dcn.pt"
    one_line_error(*run(capsys, "train", "dcn", lgg_folder, ckpt, "--k", "100000", *FAST_DCN)[::2],
                   "k must be at most 64")
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


# 11. NIfTI outputs are label maps whatever the input's data type and scaling
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_nifti_label_maps_hold_exact_labels_whatever_the_inputs_type(tmp_path, dtype):
    import nibabel as nib

    from nbutils.data.cases import iter_cases

    rng = np.random.default_rng(0)
    data = rng.integers(1, 120, (20, 18, 16)).astype(dtype)
    affine = np.diag([-1.5, 1.2, 2.0, 1.0])  # LAS: the output goes back through the orientation
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(21.4, 3.0)  # the input's scaling must not reach the labels
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=4)
    path = tmp_path / "case.nii.gz"
    nib.save(img, str(path))
    case = next(iter_cases(path, brain="none")[1])
    labels = np.arange(case.volume.brain.size).reshape(case.volume.brain.shape) % 5000  # up to 4999: > 255
    lesion = labels % 2 == 1
    files = case.write(tmp_path / "out", labels, lesion, case.volume.brain)
    back = [nib.load(str(f)) for f in files]
    for out, expected in zip(back, (labels, lesion, case.volume.brain)):
        header = nib.Nifti1Header.from_fileobj(out.file_map["image"].get_prepare_fileobj("rb"))
        assert header.get_intent()[0] == "label" and (header["scl_slope"], header["scl_inter"]) == (1, 0)
        assert header["qform_code"] == 1 and header["sform_code"] == 4
        np.testing.assert_array_equal(out.affine, nib.load(str(path)).affine)
        assert out.shape == data.shape
    assert back[0].get_data_dtype() == np.uint16 and back[1].get_data_dtype() == np.uint8
    stored = np.asanyarray(back[0].dataobj)
    assert stored.dtype == np.uint16 and stored.max() == 4999
    # the stored map in canonical orientation is exactly the labels given (the input was LAS: x flips)
    from nbutils.data.preprocessing import to_slices

    np.testing.assert_array_equal(to_slices(stored[::-1]), labels)
    assert set(np.unique(np.asanyarray(back[1].dataobj))) == {0, 1}  # NIfTI masks hold 0/1


def test_segment_on_a_scaled_uint8_nifti_writes_integer_labels_above_255(tmp_path, capsys):
    import nibabel as nib

    rng = np.random.default_rng(1)
    img = nib.Nifti1Image(rng.integers(10, 250, (48, 48, 2)).astype(np.uint8), np.eye(4))
    img.header.set_slope_inter(21.4, 0.0)
    nib.save(img, str(tmp_path / "case.nii.gz"))
    out = tmp_path / "out"
    assert run(capsys, "segment", "slic", tmp_path / "case.nii.gz", out, "--n-segments", "400", "--brain", "none",
               "--compactness", "0.01")[0] == 0
    labels = nib.load(str(out / "case_labels.nii.gz"))
    values = np.asanyarray(labels.dataobj)
    assert labels.get_data_dtype() == np.uint16 and values.max() > 255
    assert np.array_equal(labels.get_fdata(), values)  # no scaling: the stored integers are the labels


# 12. --overwrite deletes only what the last run wrote, inside OUTPUT
@pytest.mark.parametrize("entry", ["../precious.txt", "/ABSOLUTE/precious.txt", "sub/../../precious.txt",
                                   "nbutils_run.json"])
def test_overwrite_refuses_a_manifest_that_names_files_outside_output(lgg_folder, tmp_path, capsys, entry):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    manifest = json.loads((out / "nbutils_run.json").read_text())
    manifest["cases"][PATIENT]["files"].append(entry.replace("/ABSOLUTE", str(tmp_path)))
    (out / "nbutils_run.json").write_text(json.dumps(manifest))
    before = sorted(p for p in out.rglob("*"))
    code, _, err = run(capsys, "segment", "otsu", lgg_folder, out, "--overwrite")
    one_line_error(code, err, "nbutils_run.json: lists", "nothing was deleted")
    assert precious.read_text() == "keep me" and sorted(p for p in out.rglob("*")) == before


def test_overwrite_removes_the_patient_folders_it_empties_and_names_a_corrupt_manifests_way_out(lgg_folder, tmp_path,
                                                                                               capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    (out / "TCGA_XX_0002_20000101" / "mine.txt").write_text("mine")
    other = tmp_path / "one"
    make_lgg_patient(other, "TCGA_YY_0009_20000101", slices=(1,), seed=2)
    assert run(capsys, "segment", "otsu", other, out, "--overwrite")[0] == 0
    assert not (out / PATIENT).exists()  # emptied by the overwrite: removed
    assert [p.name for p in (out / "TCGA_XX_0002_20000101").iterdir()] == ["mine.txt"]  # not ours: kept
    (out / "nbutils_run.json").write_text('{"run": {}, "cases": {"x": {"files": 3}}}')
    one_line_error(*run(capsys, "segment", "otsu", other, out, "--overwrite")[::2],
                   "is not an nbutils run manifest", "delete it (and the outputs it lists) or choose another folder")


# 13. OUTPUT is never INPUT, and our own outputs are never input or ground truth
def test_output_inside_input_is_refused_and_outputs_copied_into_input_are_not_read(tmp_path, capsys):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    yy, xx = np.mgrid[:32, :32]
    blob = (np.where(np.hypot(yy - 16, xx - 16) < 6, 200, 60) + np.random.default_rng(0).integers(0, 20, (32, 32)))
    Image.fromarray(blob.astype(np.uint8)).save(images / "cat.png")
    Image.fromarray((np.hypot(yy - 16, xx - 16) < 6).astype(np.uint8) * 255).save(images / "cat_mask.png")
    for out in (images, images / "out"):
        one_line_error(*run(capsys, "segment", "kmeans", images, out, "--k", "2")[::2], "INPUT")
    assert sorted(p.name for p in images.iterdir()) == ["cat.png", "cat_mask.png"]
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", images, out, "--k", "2")[0] == 0
    for written in out.glob("*.png"):  # a user copies the outputs next to the inputs
        written.rename(images / written.name)
    code, stdout, _ = run(capsys, "segment", "kmeans", images, tmp_path / "again", "--k", "2")
    assert code == 0 and "1 case(s) written" in stdout  # cat alone, not cat_brain or cat_lesion
    assert sorted(p.name for p in (tmp_path / "again").glob("*.png")) == ["cat_brain.png", "cat_labels.png",
                                                                          "cat_lesion.png"]


def test_a_folder_of_loose_nifti_files_is_one_case_per_subject_and_says_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    subjects = tmp_path / "subjects"
    subjects.mkdir()
    for name in ("anna", "bert"):
        save_nifti(subjects / f"{name}.nii.gz", rng.random((12, 12, 3), np.float32) + 0.1)
    seg = np.zeros((12, 12, 3), np.uint8)
    seg[2:5, 2:5] = 1
    save_nifti(subjects / "bert_seg.nii.gz", seg)
    code, stdout, _ = run(capsys, "segment", "kmeans", subjects, tmp_path / "o", "--k", "2", "--brain", "none")
    assert code == 0 and "2 loose NIfTI files not named as the sequences of one subject" in stdout
    assert sorted(p.name for p in (tmp_path / "o").glob("*_labels.nii.gz")) == ["anna_labels.nii.gz",
                                                                                 "bert_labels.nii.gz"]
    cases = load_cases(subjects)
    assert [c.volume.target is not None for c in cases] == [False, True]  # bert_seg is bert's, not anna's
    one = tmp_path / "one"
    one.mkdir()
    for sequence in ("FLAIR", "T1", "T2"):
        save_nifti(one / f"{sequence}.nii.gz", rng.random((12, 12, 3), np.float32) + 0.1)
    code, stdout, _ = run(capsys, "segment", "kmeans", one, tmp_path / "o1", "--k", "2", "--brain", "none")
    assert code == 0 and "3 NIfTI files named as the sequences of one subject (flair, t1, t2): one case" in stdout
    assert [p.name for p in (tmp_path / "o1").glob("*_labels.nii.gz")] == ["one_labels.nii.gz"]
    one_line_error(*run(capsys, "segment", "kmeans", one, tmp_path / "o2", "--channels", "dwi")[::2],
                   "has no sequence named like 'dwi' (it has flair, t1, t2)")
    assert not (tmp_path / "o2").exists()


# 14. every failure is one line; our own bugs a traceback after a line that says so
def test_unreadable_geometry_and_wrong_channel_counts_are_one_line(tmp_path, capsys):
    import nibabel as nib

    data = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    for name, affine in (("zero", np.zeros((4, 4))), ("singular", np.array(
            [[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))):
        header = nib.Nifti1Header()
        header.set_data_shape(data.shape)
        header.set_data_dtype(np.float32)
        header["sform_code"], header["qform_code"] = 1, 0
        header["srow_x"], header["srow_y"], header["srow_z"] = affine[:3]
        nib.save(nib.Nifti1Image(data, None, header), str(tmp_path / f"{name}.nii.gz"))
        one_line_error(*run(capsys, "segment", "kmeans", tmp_path / f"{name}.nii.gz", tmp_path / "o")[::2],
                       f"{name}.nii.gz: has a zero or singular affine")
    for channels in (1, 2, 4):
        root = tmp_path / f"lgg{channels}"
        make_lgg_patient(root, PATIENT, slices=(1, 2))
        first = root / PATIENT / f"{PATIENT}_1.tif"
        image = tifffile.imread(first)
        for path in (first, root / PATIENT / f"{PATIENT}_2.tif"):
            tifffile.imwrite(path, image[..., 1] if channels == 1 else np.concatenate([image] * 2, -1)[..., :channels])
        found = "1 channel" if channels == 1 else f"shape (48, 48, {channels})"
        one_line_error(*run(capsys, "segment", "kmeans", root, tmp_path / "o")[::2],
                       f"{first}: has {found}; LGG slices have 3 channels")
    five = tmp_path / "five"
    five.mkdir()
    tifffile.imwrite(five / "scan.tif", np.random.default_rng(0).integers(0, 255, (16, 16, 5)).astype(np.uint8))
    one_line_error(*run(capsys, "segment", "kmeans", five, tmp_path / "o")[::2],
                   "scan.tif: has shape (16, 16, 5); grey (H, W), RGB or RGBA")
    assert not (tmp_path / "o").exists()


def test_huge_and_constant_intensities_are_named_for_what_they_are(tmp_path, capsys):
    save_nifti(tmp_path / "huge.nii.gz", np.full((6, 6, 3), 1e300) * np.arange(1, 4))
    one_line_error(*run(capsys, "segment", "kmeans", tmp_path / "huge.nii.gz", tmp_path / "o")[::2],
                   "huge.nii.gz: holds values up to 3e+300, beyond what float32 holds")
    save_nifti(tmp_path / "flat.nii.gz", np.full((6, 6, 3), 7.0, np.float32))
    one_line_error(*run(capsys, "segment", "zscore", tmp_path / "flat.nii.gz", tmp_path / "o")[::2],
                   "flat.nii.gz: is constant (every value 7): there is nothing to segment")


def test_a_full_disk_leaves_no_half_case_and_a_consistent_manifest(lgg_folder, tmp_path, capsys, monkeypatch):
    import errno

    from nbutils.data import cases

    out = tmp_path / "out"
    real, calls = cases._write_tif, []

    def fills_up(path, array):
        calls.append(path)
        if len(calls) == 12:  # the second patient (after the first one's 9 files), half way through
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, array)

    monkeypatch.setattr(cases, "_write_tif", fills_up)
    code, _, err = run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")
    one_line_error(code, err, f"{calls[-1]}: No space left on device")
    manifest = json.loads((out / "nbutils_run.json").read_text())
    listed = {f for case in manifest["cases"].values() for f in case["files"]}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.tif")}
    assert listed == on_disk and len(on_disk) == 9  # the first patient whole, nothing of the second
    from nbutils import cli

    monkeypatch.setattr(cases, "_write_tif", real)
    real_json = cli.write_json

    def manifest_fails(path, payload):
        if len(payload["cases"]) == 2:  # the second patient's files are written, its manifest entry is not
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_json(path, payload)

    monkeypatch.setattr(cli, "write_json", manifest_fails)
    one_line_error(*run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[::2], "No space left on device")
    assert {str(p.relative_to(out)) for p in out.rglob("*.tif")} == on_disk  # no written-but-unlisted files
    monkeypatch.setattr(cli, "write_json", real_json)
    code, stdout, _ = run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")
    assert code == 0 and "1 case(s) written, 1 already done" in stdout  # the same command resumes


def test_a_permission_error_is_one_line_and_a_bug_shows_its_traceback(lgg_folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")[0] == 0
    real_unlink = Path.unlink

    def read_only(self, missing_ok=False):
        if self.suffix == ".tif":
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    one_line_error(*run(capsys, "segment", "otsu", lgg_folder, out, "--overwrite")[::2], ": Permission denied")
    monkeypatch.undo()

    def broken(self, volume, **kwargs):
        raise IndexError("index 3 is out of bounds")

    monkeypatch.setattr(methods.METHODS["kmeans"], "labels", broken)
    code, _, err = run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "o", "--k", "3")
    assert code == 1 and err.startswith("error: an internal error in nbutils (a bug, not your input)")
    assert "Traceback" in err and "IndexError: index 3 is out of bounds" in err
