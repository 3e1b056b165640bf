"""The one training loop every method uses: progress bar, AMP on CUDA, atomic checkpoints
every epoch, and ``resume=True`` to continue from the last checkpoint."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from nbutils.data.io import atomic_path
from nbutils.errors import InputError

LossFn = Callable[[torch.nn.Module, dict], "torch.Tensor | dict[str, torch.Tensor]"]


def _to_device(batch, device: torch.device):
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return batch


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, method: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``); check it belongs to ``method``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "checkpoint not found") from None
    except Exception as exc:
        raise InputError(path, f"not a readable nbutils checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(path, "not an nbutils checkpoint (no model weights inside)")
    if method is not None and state.get("method") != method:
        raise InputError(path, f"is a checkpoint of method {state.get('method')!r}, not {method!r}")
    return state


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    dataset: torch.utils.data.Dataset,
    *,
    epochs: int,
    batch_size: int = 8,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    method: str = "model",
    amp: bool = True,
    seed: int = 0,
    progress: bool = True,
    extra: dict | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` for ``epochs`` epochs; return the history, one dict of mean losses per epoch.

    ``loss_fn(model, batch)`` returns the loss tensor, or a dict whose ``"loss"`` entry is
    optimised and whose other entries are logged. Each epoch shuffles with a generator seeded by
    ``seed + epoch`` and reseeds torch the same way, so a resumed run repeats an uninterrupted one.
    With ``checkpoint``, the model, optimiser, epoch and history are written atomically after every
    epoch; ``resume=True`` continues from that file when it exists. On CUDA, ``amp`` runs the
    forward pass under bfloat16 autocast. A NaN or infinite loss stops training with a
    FloatingPointError naming the epoch. ``extra`` entries (e.g. the network's configuration)
    are stored in every checkpoint as well.
    """
    device = torch.device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, method)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
    use_amp = amp and device.type == "cuda"
    bar = tqdm(range(start, epochs), desc=method, disable=not progress, initial=start, total=epochs)
    for epoch in bar:
        torch.manual_seed(seed + epoch)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed + epoch),
            pin_memory=device.type == "cuda",
        )
        model.train()
        sums: dict[str, float] = {}
        batches = 0
        for batch in loader:
            batch = _to_device(batch, device)
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
            with autocast:
                out = loss_fn(model, batch)
            terms = out if isinstance(out, dict) else {"loss": out}
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{method}: loss became {loss.item()} at epoch {epoch + 1}; "
                    "likely causes: a learning rate too high, or NaN/inf in the input"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            batches += 1
        history.append({name: total / max(batches, 1) for name, total in sums.items()})
        bar.set_postfix(loss=f"{history[-1].get('loss', math.nan):.4g}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "method": method, "epoch": epoch + 1, "history": history,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), **(extra or {}),
            })
    model.eval()
    return history
