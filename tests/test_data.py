import gzip

import numpy as np
import pytest

from helpers import make_lgg_patient, save_nifti
from nbutils.data import datasets, images, lgg, nifti
from nbutils.data.mni152 import load_mni152
from nbutils.data.phantom import flair_phantom
from nbutils.errors import InputError


def test_mni152_labels_are_argmax_inside_brain():
    mni = load_mni152(2)
    assert mni.t1.shape == (99, 117, 95) and mni.labels.shape == mni.t1.shape
    assert (mni.labels[~mni.brain_mask] == 0).all()
    inside = mni.brain_mask
    expected = np.argmax(np.stack([mni.csf, mni.gm, mni.wm]), 0)[inside] + 1
    np.testing.assert_array_equal(mni.labels[inside], expected)
    # on T1, CSF < GM < WM
    means = [mni.t1[mni.labels == k].mean() for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2]


def test_phantom_is_deterministic_and_subjects_differ():
    a, b, c = flair_phantom(3), flair_phantom(3), flair_phantom(4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.lesion, b.lesion)
    assert not np.array_equal(a.lesion, c.lesion)


def test_phantom_flair_contrast():
    p = flair_phantom(0, noise=0.0, bias=0.0)
    mean = {k: p.image[(p.tissue == v) & ~p.lesion].mean() for k, v in (("csf", 1), ("gm", 2), ("wm", 3))}
    assert mean["csf"] < mean["wm"] < mean["gm"] < p.image[p.lesion].mean()
    assert p.lesion.any() and not (p.lesion & ~p.brain_mask).any()
    no_skull = flair_phantom(0, skull=False, noise=0.0)
    assert no_skull.image[~no_skull.brain_mask].max() < 0.05


def test_phantom_t1_contrast_and_two_sequence_volumes():
    p = flair_phantom(0, noise=0.0, bias=0.0)
    mean = {k: p.t1[(p.tissue == v) & ~p.lesion].mean() for k, v in (("csf", 1), ("gm", 2), ("wm", 3))}
    # T1: CSF < lesion < GM < WM (lesions are hypointense), the opposite of FLAIR for the lesion
    assert mean["csf"] < p.t1[p.lesion].mean() < mean["gm"] < mean["wm"]
    one = datasets.from_phantom(p, 4, 64)
    both = datasets.from_phantom(p, 4, 64, ("t1", "flair"))
    assert both.image.shape == (4, 2, 64, 64) and both.flair_channel == 1
    np.testing.assert_array_equal(both.flair, one.flair)  # FLAIR and its brain mask do not change
    np.testing.assert_array_equal(both.brain, one.brain)
    assert np.isclose(both.image[:, 0].max(), 1.0)  # each sequence normalised on its own
    with pytest.raises(ValueError, match="unknown phantom sequences \\['t2'\\]"):
        datasets.from_phantom(p, 4, 64, ("flair", "t2"))


def test_sequences_of_different_shapes_are_named():
    with pytest.raises(ValueError, match="sequence 't1' has shape \\(2, 5, 5\\), but 'flair' has \\(2, 4, 4\\)"):
        datasets.stack_sequences({"flair": np.zeros((2, 4, 4)), "t1": np.zeros((2, 5, 5))})
    assert datasets.stack_sequences({"a": np.zeros((2, 4, 4)), "b": np.ones((2, 4, 4))}).shape == (2, 2, 4, 4)


def test_mni152_volume_has_tissue_labels_and_no_lesion():
    v = datasets.mni152_volume(6, 64)
    assert v.image.shape == (6, 1, 64, 64) and v.target is None and v.image.max() == 1.0
    assert set(np.unique(v.tissue[v.brain])) <= {0, 1, 2, 3} and (v.tissue[~v.brain] == 0).all()
    means = [v.image[:, 0][v.tissue == k].mean() for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2]


def test_lgg_loader_orders_slices_numerically(tmp_path):
    make_lgg_patient(tmp_path, slices=(10, 2, 1))
    [vol] = lgg.load_lgg(tmp_path)
    assert [n.rsplit("_", 1)[1] for n in vol.slice_names] == ["1", "2", "10"]
    assert vol.image.shape == (3, 48, 48, 3) and vol.mask.dtype == bool and vol.mask.any()


def test_lgg_loader_without_masks(tmp_path):
    folder = make_lgg_patient(tmp_path, masks=False)
    [vol] = lgg.load_lgg(folder)  # a single patient folder works too
    assert vol.mask is None


def test_lgg_mask_without_image_warns_and_skips(tmp_path):
    folder = make_lgg_patient(tmp_path, slices=(1, 2, 3))
    (folder / "TCGA_XX_0001_20000101_2.tif").unlink()
    with pytest.warns(UserWarning, match=r"TCGA_XX_0001_20000101_2_mask.tif: mask has no image"):
        [vol] = lgg.load_lgg(tmp_path)
    assert len(vol.slice_names) == 2


def test_lgg_empty_folder_is_an_error(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path)):
        lgg.load_lgg(tmp_path)


def test_lgg_sample_real_data(lgg_sample):
    vols = lgg.load_lgg(lgg_sample)
    assert len(vols) == 6
    for v in vols:
        assert v.image.shape[1:] == (256, 256, 3) and v.mask.shape == v.image.shape[:3]


def test_nifti_canonical_and_back(tmp_path):
    data = np.random.default_rng(0).uniform(1, 2, (6, 7, 8)).astype(np.float32)
    flipped = np.diag([-2.0, 2.0, 2.0, 1.0])  # LAS: x runs right-to-left
    path = save_nifti(tmp_path / "case.nii.gz", data, flipped)
    case = nifti.load_nifti_case(path)
    np.testing.assert_allclose(case.data[0], data[::-1])  # canonical RAS flips x
    back = case.to_original(case.data[0], dtype=np.float32)
    np.testing.assert_allclose(back.get_fdata(), data)
    np.testing.assert_array_equal(back.affine, flipped)


def test_nifti_case_folder_stacks_sorted_and_excludes_ground_truth(tmp_path):
    folder = tmp_path / "BraTS_001"
    folder.mkdir()
    for i, name in enumerate(["t1", "flair", "t2"]):
        volume = np.full((4, 4, 4), i + 1.0, np.float32)
        volume[3, 3, 3] = 0  # not constant: a constant file is refused
        save_nifti(folder / f"BraTS_001_{name}.nii.gz", volume)
    seg = np.zeros((4, 4, 4), np.uint8)
    seg[1, 1, 1] = 2
    save_nifti(folder / "BraTS_001_seg.nii.gz", seg)
    case = nifti.load_nifti_case(folder)
    assert case.channel_names == ["flair", "t1", "t2"] and case.flair_channel == 0
    assert case.target.sum() == 1
    picked = nifti.load_nifti_case(folder, ["t2", "flair"])
    assert picked.channel_names == ["t2", "flair"] and picked.data[0, 0, 0, 0] == 3.0
    with pytest.raises(InputError, match="no sequence named like 't1ce'"):
        nifti.load_nifti_case(folder, ["t1ce"])


@pytest.mark.parametrize("problem, make, match", [
    ("truncated", lambda p: p.write_bytes(gzip.compress(b"\x00" * 400)[:30]), "not a readable NIfTI"),
    ("2d", lambda p: save_nifti(p, np.ones((5, 5), np.float32)), "is 2D"),
    ("nan", lambda p: save_nifti(p, np.full((3, 3, 3), np.nan, np.float32)), "NaN"),
    ("zero", lambda p: save_nifti(p, np.zeros((3, 3, 3), np.float32)), "all zero"),
])
def test_nifti_bad_input_names_the_file(tmp_path, problem, make, match):
    path = tmp_path / f"{problem}.nii.gz"
    make(path)
    with pytest.raises(InputError, match=match) as err:
        nifti.load_nifti_case(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_nifti_sequences_of_different_shapes(tmp_path):
    rng = np.random.default_rng(0)
    save_nifti(tmp_path / "a_flair.nii.gz", rng.random((4, 4, 4), np.float32))
    save_nifti(tmp_path / "a_t1.nii.gz", rng.random((4, 4, 5), np.float32))
    with pytest.raises(InputError, match="a_t1.nii.gz: has shape"):
        nifti.load_nifti_case(tmp_path)


def test_image_folder(tmp_path):
    from PIL import Image
    Image.fromarray(np.pad(np.full((5, 5, 3), 255, np.uint8), ((0, 0), (0, 1), (0, 0)))).save(tmp_path / "b.png")
    Image.fromarray(np.pad(np.full((5, 5), 128, np.uint8), ((0, 0), (1, 0)))).save(tmp_path / "a.png")
    loaded = images.load_image_folder(tmp_path)
    assert [n for n, _ in loaded] == ["a", "b"]
    assert loaded[0][1].shape == (5, 6, 1) and loaded[1][1].max() == 1.0
    (tmp_path / "c.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="c.png: not a readable image"):
        images.load_image_folder(tmp_path)


def test_phantom_volumes_cache_and_dataset(tmp_path):
    vols = datasets.phantom_volumes(2, 4, 64, cache_dir=tmp_path)
    again = datasets.phantom_volumes(2, 4, 64, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    for a, b in zip(vols, again):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.name == b.name and a.image.shape == (4, 1, 64, 64)
    ds = datasets.SliceDataset(vols)
    assert len(ds) == 8 and ds[0]["image"].shape == (1, 64, 64) and ds[0]["target"].dtype.is_floating_point is False


def test_phantom_has_one_glioma_by_default_and_several_small_lesions_for_ms():
    from scipy import ndimage

    glioma = flair_phantom(5)
    share = glioma.lesion.sum() / glioma.brain_mask.sum()
    assert ndimage.label(glioma.lesion)[1] == 1 and 0.01 <= share <= 0.15
    ms = flair_phantom(5, lesions="ms")
    assert ndimage.label(ms.lesion)[1] >= 2 and ms.lesion.sum() / ms.brain_mask.sum() < share
    with pytest.raises(ValueError, match="unknown lesions 'tumour'"):
        flair_phantom(0, lesions="tumour")


def test_phantom_brain_mask_has_no_bright_rim():
    v = datasets.from_phantom(flair_phantom(3), 8, 128)
    rim = v.brain & (v.tissue == 0)  # mask pixels outside the true brain
    assert rim.sum() < 0.05 * v.brain.sum() and v.flair[rim].mean() < np.median(v.flair[v.brain])


def test_volume_stats_on_a_hand_made_volume():
    from nbutils.data.statistics import volume_stats

    rng = np.random.default_rng(0)
    flair = np.zeros((4, 40, 40), np.float32)
    flair[:, :, :10], flair[:, :, 10:25], flair[:, :, 25:] = 0.2, 0.4, 0.5  # CSF, WM, GM bands
    lesion = np.zeros(flair.shape, bool)
    lesion[:, 15:20, 15:20] = True
    flair[lesion] = 0.8
    noisy = flair + rng.normal(0, 0.01, flair.shape).astype(np.float32)
    stats = volume_stats(noisy, np.ones_like(lesion), lesion)
    assert stats["lesion % of brain"] == pytest.approx(100 * 25 / 1600)
    assert stats["lesion / WM"] == pytest.approx(2.0, rel=0.02) and stats["GM / WM"] == pytest.approx(1.25, rel=0.02)
    assert stats["CSF / WM"] == pytest.approx(0.5, rel=0.02) and stats["noise / WM"] == pytest.approx(0.025, rel=0.15)


def test_every_nth_slice_keeps_every_nth_slice_with_brain():
    brain = np.zeros((7, 4, 4), bool)
    brain[1:6, 1:3, 1:3] = True  # slices 1-5 hold brain
    image = np.arange(7, dtype=np.float32)[:, None, None, None] * np.ones((7, 1, 4, 4), np.float32)
    v = datasets.Volume("v", image, brain, target=brain.copy())
    cut = datasets.every_nth_slice(v, 2)
    assert cut.image[:, 0, 0, 0].tolist() == [1, 3, 5] and cut.brain.shape == (3, 4, 4) and cut.target.sum() == 12
    assert cut.tissue is None and datasets.every_nth_slice(v, 1) is v  # every slice, those without brain too
    with pytest.raises(ValueError, match="at least 1"):
        datasets.every_nth_slice(v, 0)
