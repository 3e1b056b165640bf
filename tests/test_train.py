import pytest
import torch

from nbutils.errors import InputError
from nbutils.train import fit, load_checkpoint


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x + 0.05 * torch.randn_like(x))  # noise: the global RNG matters for resume


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.utils.data.TensorDataset(torch.rand(12, 1, 8, 8, generator=g))


def _mse(model, batch):
    (x,) = batch
    return torch.nn.functional.mse_loss(model(x), x)


def test_loss_decreases_and_history_per_epoch():
    history = fit(Tiny(), _mse, _data(), epochs=15, batch_size=4, lr=1e-2, progress=False)
    assert len(history) == 15 and history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_resume_repeats_an_uninterrupted_run(tmp_path):
    full = Tiny()
    fit(full, _mse, _data(), epochs=4, batch_size=4, progress=False)
    ckpt = tmp_path / "m.pt"
    part = Tiny()
    fit(part, _mse, _data(), epochs=2, batch_size=4, checkpoint=ckpt, progress=False)
    resumed = Tiny()
    history = fit(resumed, _mse, _data(), epochs=4, batch_size=4, checkpoint=ckpt, resume=True, progress=False)
    assert len(history) == 4
    for a, b in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)


def test_interrupted_run_keeps_last_checkpoint_and_resumes(tmp_path):
    ckpt = tmp_path / "m.pt"
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 7:  # 3 batches per epoch: dies inside epoch 3
            raise KeyboardInterrupt
        return _mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        fit(Tiny(), crashing, _data(), epochs=5, batch_size=4, checkpoint=ckpt, progress=False)
    assert load_checkpoint(ckpt, "model")["epoch"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]
    history = fit(Tiny(), _mse, _data(), epochs=5, batch_size=4, checkpoint=ckpt, resume=True, progress=False)
    assert len(history) == 5 and load_checkpoint(ckpt)["epoch"] == 5


def test_nan_loss_names_the_epoch():
    def nan_loss(model, batch):
        return _mse(model, batch) * float("nan")
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(Tiny(), nan_loss, _data(), epochs=2, progress=False)


def test_checkpoint_of_another_method_is_refused(tmp_path):
    ckpt = tmp_path / "m.pt"
    fit(Tiny(), _mse, _data(), epochs=1, checkpoint=ckpt, method="dcn", progress=False)
    with pytest.raises(InputError, match="checkpoint of method 'dcn', not 'acwe'"):
        load_checkpoint(ckpt, "acwe")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.pt: not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
