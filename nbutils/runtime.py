"""Device choice, seeding, batched inference over NumPy slices."""

from __future__ import annotations

import random

import numpy as np
import torch


def choose_device(device: str = "auto") -> torch.device:
    """The torch device to run on: ``"auto"`` picks cuda, then mps, then cpu.

    An explicit ``"cuda"`` or ``"mps"`` that is not available raises a ValueError
    rather than silently falling back to the CPU.
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but MPS is not available")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batched(model: torch.nn.Module, image: np.ndarray, batch_size: int = 8):
    """``model(x)`` for consecutive batches of NumPy slices (S, C, H, W), on the model's device,
    with the model in eval mode (iterate under ``torch.no_grad()``). A model whose ``config``
    names ``in_channels`` is checked against C first: a ValueError names both counts."""
    expected = getattr(model, "config", {}).get("in_channels")
    if expected is not None and image.shape[1] != expected:
        raise ValueError(f"the model takes {expected} channel(s), the image has {image.shape[1]}")
    model.eval()
    device = next(model.parameters()).device
    return (model(torch.from_numpy(np.ascontiguousarray(image[i : i + batch_size])).float().to(device))
            for i in range(0, len(image), batch_size))


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (for wall-clock timings); nothing on other devices."""
    if device.type == "cuda":
        torch.cuda.synchronize()
