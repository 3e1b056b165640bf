import numpy as np
import pytest

from nbutils.data import brain, datasets, lgg, nifti
from nbutils.data.cases import load_cases
from nbutils.data.phantom import flair_phantom


def _disc_volume(slices=10, size=40, background=0.0, noise=0.0, seed=0):
    """A bright disc (radius 12) with a hole-free dark core ring, on a background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    disc = np.hypot(yy, xx) < 12
    vol = np.where(disc, 0.6, background).astype(np.float32)[None].repeat(slices, 0)
    vol[:, np.hypot(yy, xx) < 3] = 0.0  # a dark centre: a hole in "!= background" when background is 0
    return vol + noise * rng.random(vol.shape).astype(np.float32), disc


def test_background_is_the_most_frequent_value():
    vol = np.array([[0, 0, 0, 2], [5, 0, 2, 7]], np.float32)
    assert brain.background(vol) == (0.0, 4 / 8)
    zscored = np.full((4, 4), -1.3, np.float32)
    zscored[1:3, 1:3] = [[0.2, 1.1], [-0.4, 2.0]]
    assert brain.background(zscored) == pytest.approx((-1.3, 12 / 16))


def test_foreground_fills_holes_and_keeps_the_largest_part():
    vol, disc = _disc_volume()
    vol[:, 0, 0] = 0.9  # a stray voxel away from the disc
    mask = brain.foreground(vol)
    assert mask.shape == vol.shape and (mask == disc[None]).all()


def test_contrast_is_zero_for_noise_and_high_for_a_bright_region():
    rng = np.random.default_rng(0)
    noise = rng.random((20, 20)).astype(np.float32)
    assert abs(brain.contrast(noise, rng.random((20, 20)) > 0.5)) < 0.1
    vol, disc = _disc_volume(slices=1)
    # inside: median 0.6; outside: 0; spread: 1-99 percentile range = 0.6
    assert brain.contrast(vol[0], disc) == pytest.approx(1.0)
    assert brain.contrast(vol[0], np.zeros_like(disc)) == 0.0


def test_two_dimensional_images_are_never_extracted():
    vol, disc = _disc_volume(slices=1)
    stripped = brain.find_brain(vol, name="slice.png")
    assert stripped.mode == "skull-stripped" and (stripped.mask[0] == disc).all()
    photo = brain.find_brain(np.random.default_rng(0).random((1, 30, 30)).astype(np.float32), name="photo.png")
    assert photo.mode == "none" and photo.mask.all() and "too few to extract" in photo.reason
    with pytest.raises(ValueError, match="photo.png: brain extraction needs a volume of at least 8 slices"):
        brain.find_brain(vol, "extract", name="photo.png")


def test_explicit_modes_override_the_decision():
    vol, disc = _disc_volume()
    assert brain.find_brain(vol, "none").mask.all()
    noisy, _ = _disc_volume(noise=0.01)
    with pytest.warns(UserWarning, match="noisy: --brain skull-stripped, but only"):
        brain.find_brain(noisy, "skull-stripped", name="noisy")
    with pytest.raises(ValueError, match="unknown brain mode 'skull'"):
        brain.find_brain(vol, "skull")


def test_noise_has_no_brain_and_says_so():
    noise = np.random.default_rng(0).random((12, 48, 48)).astype(np.float32)
    with pytest.warns(UserWarning, match="noise.nii.gz: no brain found"):
        found = brain.find_brain(noise, name="noise.nii.gz")
    assert found.mode == "none" and found.mask.all() and "no brain found" in found.reason


def test_phantom_brain_is_extracted_without_the_scalp_and_keeps_the_lesions():
    vol = datasets.from_phantom(flair_phantom(1), slices_per_volume=10, size=96)
    outside = (vol.brain & (vol.tissue == 0)).sum() / vol.brain.sum()
    covered = (vol.brain & (vol.tissue > 0)).sum() / (vol.tissue > 0).sum()
    assert vol.brain_mode == "extract" and "full head" in vol.brain_reason
    assert (vol.brain & vol.target).sum() / vol.target.sum() > 0.99 and covered > 0.95 and outside < 0.05


@pytest.mark.lgg
def test_real_full_head_is_extracted_and_keeps_the_tumour(lgg_sample):
    v = datasets.from_lgg(lgg.load_lgg_patient(sorted(p for p in lgg_sample.iterdir() if p.is_dir())[0]))
    assert v.brain_mode == "extract"
    assert (v.brain & v.target).sum() / v.target.sum() > 0.95
    assert 0.1 < v.brain.mean() < 0.5  # the brain, not the head or nothing


def test_real_skull_stripped_case_is_recognised(brats_sample):
    case = load_cases(sorted(p for p in brats_sample.iterdir() if p.is_dir())[0])[0]
    v = case.volume
    assert v.brain_mode == "skull-stripped" and case.has_flair
    raw = nifti.load_nifti_case(sorted(p for p in brats_sample.iterdir() if p.is_dir())[0])
    nonzero = datasets.to_slices(raw.data[raw.flair_channel] != 0)
    # the brain is the non-zero region (holes filled), so it holds every non-zero voxel and the whole lesion
    assert (v.brain | ~nonzero).all() and (v.brain & v.target).sum() == v.target.sum()
