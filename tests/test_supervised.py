import numpy as np
import pytest

from nbutils.data.datasets import SliceDataset, Volume
from nbutils.errors import InputError
from nbutils import methods
from nbutils.methods import supervised
from nbutils.train import load_checkpoint


def test_patient_split_is_disjoint_seeded_and_never_empty():
    names = [f"p{i}" for i in range(10)]
    train, test = supervised.patient_split(names, 0.3, seed=1)
    assert len(test) == 3 and not set(train) & set(test) and set(train) | set(test) == set(names)
    assert supervised.patient_split(names, 0.3, seed=1) == (train, test)
    assert supervised.patient_split(names, 0.3, seed=2) != (train, test)
    assert supervised.patient_split(["a", "b"], 0.9)[0] and supervised.patient_split(["a", "b"], 0.01)[1]
    with pytest.raises(ValueError, match="at least 2 patients, got 1"):
        supervised.patient_split(["a", "a"])


def disc_volume(name, seed, n=6, size=32):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    target = np.stack([np.hypot(yy - rng.integers(10, 22), xx - rng.integers(10, 22)) < rng.integers(3, 7)
                       for _ in range(n)])
    image = (0.4 + 0.4 * target + rng.normal(0, 0.05, target.shape)).astype(np.float32)[:, None]
    return Volume(name, image, np.ones(target.shape, bool), 0, target)


def test_unet_learns_the_lesion_resumes_and_loads(tmp_path):
    ckpt = tmp_path / "unet.pt"
    data = SliceDataset([disc_volume("a", 0), disc_volume("b", 1)])
    first = supervised.fit(data, epochs=2, batch_size=4, lr=1e-2, checkpoint=ckpt, progress=False)
    result = supervised.fit(data, epochs=25, batch_size=4, lr=1e-2, checkpoint=ckpt, progress=False)
    assert result.history[:2] == first.history and result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    unseen = disc_volume("c", 7)
    state = load_checkpoint(ckpt, "unet")
    network = supervised.build_model(**state["config"])
    network.load_state_dict(state["model"])
    lesion = supervised.predict(supervised.UNetResult(network.eval(), []), unseen.image)
    dice = 2 * (lesion & unseen.target).sum() / (lesion.sum() + unseen.target.sum())
    assert lesion.shape == unseen.target.shape and dice > 0.8
    assert supervised.predict(result, unseen.image, largest_cc=True).sum() <= lesion.sum()


def test_unet_needs_masks_and_a_checkpoint(tmp_path):
    v = disc_volume("a", 0)
    with pytest.raises(ValueError, match="needs ground-truth masks"):
        supervised.fit(SliceDataset([Volume("a", v.image, v.brain, 0)]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="unet is supervised: train it first"):
        supervised.UNet().labels(v)
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="x.pt: not a readable nbutils checkpoint \\(not a PyTorch file, or a damaged one\\)$"):
        methods.load(tmp_path / "x.pt")
