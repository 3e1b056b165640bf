import pytest
import torch

from nbutils import config
from nbutils.runtime import choose_device


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("NBUTILS_PROFILE", "full")
    assert config.load(verbose=False).image_size == 256
    monkeypatch.delenv("NBUTILS_PROFILE")
    monkeypatch.setenv("CI", "true")
    assert config.load(verbose=False).profile == "ci"
    with pytest.raises(ValueError, match="unknown profile"):
        config.load("huge", verbose=False)


def test_load_prints_profile(capsys):
    config.load("ci", "cpu")
    assert "profile=ci device=cpu" in capsys.readouterr().out


def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert choose_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="no CUDA"):
            choose_device("cuda")
