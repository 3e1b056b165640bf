import json

import nibabel as nib
import numpy as np
import pytest
import tifffile

from helpers import run, save_nifti
from nbutils.data.phantom import flair_phantom


def test_segment_lgg_writes_design_names_and_evaluate_scores_them(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")
    assert code == 0, stdout
    names = sorted(p.name for p in (out / "TCGA_XX_0001_20000101").iterdir())
    assert names == sorted(f"TCGA_XX_0001_20000101_{i}_{k}.tif" for i in (1, 2, 10) for k in ("labels", "lesion", "brain"))
    lesion = tifffile.imread(out / "TCGA_XX_0001_20000101" / "TCGA_XX_0001_20000101_1_lesion.tif")
    assert lesion.dtype == np.uint8 and set(np.unique(lesion)) <= {0, 255}
    report = tmp_path / "scores.json"
    code, stdout, _ = run(capsys, "evaluate", out, lgg_folder, "--json", report)
    assert code == 0 and "mean" in stdout
    scores = json.loads(report.read_text())
    assert len(scores["rows"]) == 2 and scores["summary"]["dice_label_free"]["mean"] > 0.8


def test_segment_writes_its_brain_mask_and_records_the_decision(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "segment", "kmeans", lgg_folder, out, "--k", "3")
    assert code == 0
    patient = "TCGA_XX_0001_20000101"
    image = tifffile.imread(lgg_folder / patient / f"{patient}_1.tif")[..., 1]
    brain = tifffile.imread(out / patient / f"{patient}_1_brain.tif")
    np.testing.assert_array_equal(brain == 255, image > 0)  # skull-stripped: the non-zero disc
    manifest = json.loads((out / "nbutils_run.json").read_text())
    assert manifest["run"]["brain"] == "auto" and manifest["cases"][patient]["brain"] == "skull-stripped"
    assert f"{patient}/{patient}_1_brain.tif" in manifest["cases"][patient]["files"]
    code, stdout, _ = run(capsys, "evaluate", out, lgg_folder)
    rows = [line.split() for line in stdout.splitlines()[1:3]]
    assert float(rows[0][1]) <= float(rows[1][1]) and float(rows[0][3]) == 1.0  # worst first; lesion kept
    assert run(capsys, "segment", "kmeans", lgg_folder, tmp_path / "none", "--k", "3", "--brain", "none")[0] == 0
    assert (tifffile.imread(tmp_path / "none" / patient / f"{patient}_1_brain.tif") == 255).all()


def test_rerun_same_run_resumes_and_other_run_is_refused(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_folder, out)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*.tif")}
    code, stdout, _ = run(capsys, "segment", "kmeans", lgg_folder, out)
    assert code == 0 and "2 already done" in stdout
    code, _, err = run(capsys, "segment", "gmm", lgg_folder, out)
    assert code == 2 and err.startswith(f"error: {out}: holds a different run") and err.count("\n") == 1
    assert {p: p.read_bytes() for p in out.rglob("*.tif")} == before  # nothing lost
    assert run(capsys, "segment", "gmm", lgg_folder, out, "--overwrite")[0] == 0


def test_output_with_foreign_files_is_refused(lgg_folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "segment", "kmeans", lgg_folder, out)
    assert code == 2 and "not an nbutils run" in err and (out / "notes.txt").read_text() == "mine"


def test_missing_image_next_to_mask_warns_and_goes_on(lgg_folder, tmp_path, capsys):
    (lgg_folder / "TCGA_XX_0002_20000101" / "TCGA_XX_0002_20000101_2.tif").unlink()
    with pytest.warns(UserWarning, match="TCGA_XX_0002_20000101_2_mask.tif: mask has no image"):
        code, _, _ = run(capsys, "segment", "otsu", lgg_folder, tmp_path / "out")
    assert code == 0
    assert len(list((tmp_path / "out" / "TCGA_XX_0002_20000101").iterdir())) == 3  # labels, lesion, brain


@pytest.mark.parametrize("argv, match", [
    (["segment", "nope", "{in}", "{out}"], "argument METHOD: invalid choice: 'nope'"),
    (["segment", "kmeans", "{in}", "{out}", "--k", "1"], "k must be at least 2, got 1"),
    (["segment", "kmeans", "{in}", "{out}", "--device", "tpu"], "unknown device 'tpu'"),
    (["segment", "kmeans", "{empty}", "{out}"], "holds no LGG slices"),
    (["segment", "kmeans", "{missing}", "{out}"], "does not exist"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, match, lgg_folder):
    (tmp_path / "empty").mkdir()
    paths = {"in": lgg_folder, "out": tmp_path / "out", "empty": tmp_path / "empty", "missing": tmp_path / "missing"}
    code, _, err = run(capsys, *[a.format(**paths) for a in argv])
    assert code == 2 and match in err and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("data, match", [
    (np.full((4, 4, 4), np.nan, np.float32), "NaN"),
    (np.zeros((4, 4, 4), np.float32), "all zero"),
    (np.ones((4, 4), np.float32), "is 2D"),
    (np.ones((4, 4, 4, 2), np.float32), "is 4D"),
])
def test_bad_nifti_exit_2(tmp_path, capsys, data, match):
    path = save_nifti(tmp_path / "case7_flair.nii.gz", data)
    code, _, err = run(capsys, "segment", "kmeans", path, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {path}: ") and match in err


def test_truncated_nifti_exit_2(tmp_path, capsys):
    good = save_nifti(tmp_path / "good.nii.gz", np.ones((8, 8, 8), np.float32))
    bad = tmp_path / "case7_flair.nii.gz"
    bad.write_bytes(good.read_bytes()[:60])
    code, _, err = run(capsys, "segment", "kmeans", bad, tmp_path / "out")
    assert code == 2 and "not a readable NIfTI file" in err and str(bad) in err


def test_segment_nifti_case_keeps_affine_and_shape(tmp_path, capsys):
    p = flair_phantom(1)  # a glioma of 13 % of the brain
    case = tmp_path / "cases" / "sub01"
    case.mkdir(parents=True)
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # not canonical on purpose
    save_nifti(case / "FLAIR.nii.gz", p.image[::-1], affine)
    save_nifti(case / "T1.nii.gz", p.image[::-1] * 0.5 + 0.1, affine)
    save_nifti(case / "sub01_seg.nii.gz", p.lesion[::-1].astype(np.uint8), affine)
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", tmp_path / "cases", out)[0] == 0
    lesion = nib.load(out / "sub01_lesion.nii.gz")
    assert lesion.shape == p.image.shape and np.allclose(lesion.affine, affine)
    code, stdout, _ = run(capsys, "evaluate", out, tmp_path / "cases")
    assert code == 0
    dice = float(stdout.splitlines()[1].split()[1])
    assert dice > 0.6  # the flipped orientation was restored, else the overlap would be near 0


def test_segment_image_folder(tmp_path, capsys):
    from PIL import Image
    rng = np.random.default_rng(0)
    images = tmp_path / "imgs"
    images.mkdir()
    img = np.full((32, 32, 3), 40, np.uint8)
    img[8:16, 8:16] = 220
    Image.fromarray((img + rng.integers(0, 10, img.shape)).astype(np.uint8)).save(images / "cat.png")
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", images, out, "--k", "2")[0] == 0
    lesion = np.asarray(Image.open(out / "cat_lesion.png"))
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == ["cat_brain.png", "cat_labels.png", "cat_lesion.png"]
    assert (lesion[8:16, 8:16] == 255).all() and lesion.sum() == 64 * 255


def test_lgg_sample_kmeans_label_free(lgg_sample, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "segment", "kmeans", lgg_sample, out)[0] == 0
    report = tmp_path / "s.json"
    assert run(capsys, "evaluate", out, lgg_sample, "--json", report)[0] == 0
    summary = json.loads(report.read_text())["summary"]
    assert summary["dice_label_free"]["mean"] > 0.5  # measured 0.74; crude skull strip gives about 0.3


def test_train_then_segment_dcn_with_checkpoint(lgg_folder, tmp_path, capsys):
    ckpt = tmp_path / "dcn.pt"
    code, stdout, _ = run(capsys, "train", "dcn", lgg_folder, ckpt, "--k", "3", "--profile", "ci", "--device", "cpu")
    assert code == 0 and ckpt.exists() and "dcn: trained on 2 case(s)" in stdout
    out = tmp_path / "out"
    code, _, _ = run(capsys, "segment", "dcn", lgg_folder, out, "--k", "3", "--checkpoint", ckpt, "--device", "cpu")
    assert code == 0
    labels = tifffile.imread(out / "TCGA_XX_0001_20000101" / "TCGA_XX_0001_20000101_1_labels.tif")
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1, 2, 3}


def test_segment_with_a_checkpoint_of_another_method_exits_2(lgg_folder, tmp_path, capsys):
    import torch
    bad = tmp_path / "other.pt"
    torch.save({"method": "acwe", "model": {}}, bad)
    code, _, err = run(capsys, "segment", "dcn", lgg_folder, tmp_path / "out", "--checkpoint", bad)
    assert code == 2 and err.startswith(f"error: {bad}: is a checkpoint of method 'acwe', not 'dcn'")
    code, _, err = run(capsys, "train", "kmeans", lgg_folder, tmp_path / "k.pt")
    assert code == 2 and "invalid choice: 'kmeans' (choose from 'dcn', 'acwe', 'cuts', 'deepgmm', 'unet')" in err


def test_train_acwe_with_labels_then_segment_with_checkpoint(lgg_folder, tmp_path, capsys):
    ckpt = tmp_path / "acwe.pt"
    code, stdout, _ = run(capsys, "train", "acwe", lgg_folder, ckpt, "--mode", "finetune", "--labels", "2",
                          "--profile", "ci", "--device", "cpu")
    assert code == 0 and ckpt.exists() and "acwe: trained on 2 case(s)" in stdout
    out = tmp_path / "out"
    code, _, _ = run(capsys, "segment", "acwe", lgg_folder, out, "--checkpoint", ckpt, "--device", "cpu")
    assert code == 0
    labels = tifffile.imread(out / "TCGA_XX_0001_20000101" / "TCGA_XX_0001_20000101_1_labels.tif")
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1, 2}


def test_segment_acwe_and_chan_vese_without_training(lgg_folder, tmp_path, capsys):
    for method in ("acwe", "chan-vese", "morph-chan-vese"):
        out = tmp_path / method
        code, stdout, _ = run(capsys, "segment", method, lgg_folder, out, "--device", "cpu", "--profile", "ci")
        assert code == 0, method
        lesion = tifffile.imread(out / "TCGA_XX_0002_20000101" / "TCGA_XX_0002_20000101_2_lesion.tif")
        assert lesion.dtype == np.uint8 and lesion.any(), method


def test_train_acwe_with_labels_but_no_masks_exits_2(lgg_folder, tmp_path, capsys):
    for mask in lgg_folder.rglob("*_mask.tif"):
        mask.unlink()
    code, _, err = run(capsys, "train", "acwe", lgg_folder, tmp_path / "a.pt", "--mode", "finetune", "--labels", "3",
                       "--device", "cpu")
    assert code == 2 and "acwe mode finetune learns from lesion masks, and some volumes have none" in err


def test_train_cuts_then_segment_with_each_stage2(lgg_folder, tmp_path, capsys):
    ckpt = tmp_path / "cuts.pt"
    code, stdout, _ = run(capsys, "train", "cuts", lgg_folder, ckpt, "--profile", "ci", "--device", "cpu")
    assert code == 0 and ckpt.exists() and "cuts: trained on 2 case(s)" in stdout and "nt_xent=" in stdout
    for stage2 in ("kmeans", "condensation"):
        out = tmp_path / stage2
        code, _, _ = run(capsys, "segment", "cuts", lgg_folder, out, "--checkpoint", ckpt, "--stage2", stage2,
                         "--device", "cpu", "--profile", "ci")
        assert code == 0, stage2
        labels = tifffile.imread(out / "TCGA_XX_0001_20000101" / "TCGA_XX_0001_20000101_1_labels.tif")
        assert labels.shape == (48, 48) and labels.max() >= 2, stage2
    code, _, err = run(capsys, "segment", "cuts", lgg_folder, tmp_path / "x", "--stage2", "dbscan")
    assert code == 2 and "invalid choice: 'dbscan'" in err and err.count("\n") == 1


def test_segment_deepgmm_per_image_and_trained(lgg_folder, tmp_path, capsys):
    code, _, _ = run(capsys, "segment", "deepgmm", lgg_folder, tmp_path / "per", "--k", "3", "--variant", "deepSVG",
                     "--device", "cpu", "--profile", "ci")
    assert code == 0
    labels = tifffile.imread(tmp_path / "per" / "TCGA_XX_0001_20000101" / "TCGA_XX_0001_20000101_1_labels.tif")
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1, 2, 3} and labels.max() >= 2
    manifest = json.loads((tmp_path / "per" / "nbutils_run.json").read_text())
    assert manifest["run"]["options"]["variant"] == "deepSVG" and manifest["run"]["options"]["mode"] == "per-image"
    ckpt = tmp_path / "gmm.pt"
    code, stdout, _ = run(capsys, "train", "deepgmm", lgg_folder, ckpt, "--k", "3", "--device", "cpu", "--profile", "ci")
    assert code == 0 and ckpt.exists() and "deepgmm: trained on 2 case(s)" in stdout and "nll=" in stdout
    code, _, _ = run(capsys, "segment", "deepgmm", lgg_folder, tmp_path / "tr", "--k", "3", "--mode", "trained",
                     "--checkpoint", ckpt, "--device", "cpu", "--profile", "ci")
    assert code == 0 and (tmp_path / "tr" / "TCGA_XX_0002_20000101" / "TCGA_XX_0002_20000101_2_lesion.tif").exists()
    code, _, err = run(capsys, "segment", "deepgmm", lgg_folder, tmp_path / "x", "--variant", "deepX")
    assert code == 2 and "invalid choice: 'deepX'" in err


def test_train_unet_then_segment_with_checkpoint(lgg_folder, tmp_path, capsys):
    ckpt = tmp_path / "unet.pt"
    code, stdout, _ = run(capsys, "train", "unet", lgg_folder, ckpt, "--device", "cpu", "--profile", "ci")
    assert code == 0 and ckpt.exists() and "unet: trained on 2 case(s)" in stdout
    code, _, _ = run(capsys, "segment", "unet", lgg_folder, tmp_path / "out", "--checkpoint", ckpt, "--device", "cpu",
                     "--profile", "ci")
    labels = tifffile.imread(tmp_path / "out" / "TCGA_XX_0001_20000101" / "TCGA_XX_0001_20000101_1_labels.tif")
    assert code == 0 and labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1, 2}
    code, _, err = run(capsys, "segment", "unet", lgg_folder, tmp_path / "none", "--device", "cpu")
    assert code == 2 and "unet learns from lesion masks: train it first" in err and not (tmp_path / "none").exists()


def test_compare_writes_one_table_with_both_modes(lgg_folder, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    code, stdout, _ = run(capsys, "compare", lgg_folder, "--methods", "kmeans,otsu,unet", "--device", "cpu",
                          "--profile", "ci", "--json", out)
    assert code == 0 and "k-means" in stdout and "U-Net (supervised)" in stdout and "wall time" in stdout
    result = json.loads(out.read_text())
    table = {r["method"]: r for r in result["table"]}
    assert set(table) == {"k-means", "Otsu", "Otsu, 2 classes", "U-Net (supervised)"} and result["device"] == "cpu"
    assert table["k-means"]["volumes"] == 2 and table["U-Net (supervised)"]["volumes"] == 1  # patient-wise split
    assert {r["split"] for r in result["rows"] if r["method"] == "U-Net (supervised)"} == {"test"}
    assert all(0 <= r["dice_label_free"] <= 1 and 0 <= r["dice_oracle"] <= 1 for r in result["rows"])
    code, _, err = run(capsys, "compare", lgg_folder, "--methods", "kmeans,magic")
    assert code == 2 and "unknown method(s) magic" in err
    code, _, err = run(capsys, "compare", lgg_folder, "--methods", "kmeans", "--every", "0", "--json", out)
    assert code == 2 and "--every must be at least 1, got 0" in err and json.loads(out.read_text()) == result
    for mask in lgg_folder.rglob("*_mask.tif"):
        mask.unlink()
    code, _, err = run(capsys, "compare", lgg_folder, "--methods", "kmeans")
    assert code == 2 and "compare needs ground truth" in err


def test_compare_prints_and_writes_each_method_against_its_twin(lgg_folder, tmp_path, capsys, monkeypatch):
    from nbutils import comparison
    monkeypatch.setattr(comparison, "TWINS", {"Otsu, 2 classes": ("k-means",)})  # a pair without training
    out = tmp_path / "cmp.json"
    code, stdout, _ = run(capsys, "compare", lgg_folder, "--methods", "kmeans,otsu", "--profile", "ci", "--seed", "3",
                          "--seeds", "2", "--json", out)
    result = json.loads(out.read_text())
    twins = result["twins"]
    assert code == 0 and "against the classical twin" in stdout and "mean over 2 seeds" in stdout
    assert [(t["deep"], t["twin"], t["volumes"]) for t in twins] == [("Otsu, 2 classes", "k-means", 2)]
    assert twins[0]["ratio low"] <= twins[0]["ratio"] <= twins[0]["ratio high"]
    assert result["seeds"] == [3, 4] and sorted({r["seed"] for r in result["rows"]}) == [3, 4]
    assert len(result["rows"]) == 2 * 3 * 2  # 2 seeds x 3 entries (k-means, Otsu, 2-class Otsu) x 2 patients
    assert {r["method"]: r["volumes"] for r in result["table"]}["k-means"] == 2
    code, _, err = run(capsys, "compare", lgg_folder, "--methods", "kmeans", "--seeds", "0", "--json", out)
    assert code == 2 and "--seeds must be at least 1, got 0" in err and json.loads(out.read_text()) == result


def test_compare_every_nth_slice_scores_fewer_slices(lgg_folder, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    code, _, _ = run(capsys, "compare", lgg_folder, "--methods", "kmeans", "--profile", "ci", "--every", "2",
                     "--json", out)
    result = json.loads(out.read_text())
    assert code == 0 and result["every"] == 2
    # patient 1 has 3 slices with brain (keeps 1st and 3rd), patient 2 has 2 (keeps the 1st)
    assert sorted(r["slices"] for r in result["rows"]) == [1, 2]
