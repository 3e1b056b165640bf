"""The one training loop every method uses: progress bar, AMP on CUDA, atomic checkpoints every
epoch, ``resume=True`` to continue from the last checkpoint, and data parallelism under torchrun
(DistributedDataParallel: each process a shard of every batch, gradients averaged)."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from nbutils.data.io import atomic_path
from nbutils.errors import InputError
from nbutils.precision import policy
from nbutils.runtime import world

LossFn = Callable[[torch.nn.Module, dict], "torch.Tensor | dict[str, torch.Tensor]"]


def _to_device(batch, device: torch.device, channels_last: bool = False):
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        if channels_last and batch.ndim == 4:
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    return batch


def remove_partials(*paths: str | os.PathLike) -> int:
    """Remove the temporary files interrupted atomic writes left.

    Parameters
    ----------
    *paths : files whose ``.partial-*-<name>`` siblings (see :func:`nbutils.data.io.atomic_path`) go.

    Returns
    -------
    how many were removed.
    """
    removed = 0
    for path in map(Path, paths):
        folder = path.parent if path.parent.is_dir() else None
        for leftover in folder.glob(f".partial-*-{path.name}") if folder else ():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a checkpoint atomically (a crash never leaves a half file).

    Parameters
    ----------
    path : the ``.pt`` file.
    state : dict of tensors and plain values (loadable with ``weights_only=True``).

    Under torchrun only rank 0 writes, adding ``world_size``, and every process waits until it is written.
    """
    rank, size = world()
    if rank == 0:
        with atomic_path(path) as tmp:
            torch.save({**state, "world_size": size}, tmp)
    if size > 1:
        dist.barrier()


class Parallel(DistributedDataParallel):
    """DistributedDataParallel that lets a loss function reach its network's own attributes
    (``model.config``, ``model.reconstruct``) as on the bare network."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def loader(dataset, batch_size: int, seed: int, epoch: int, device: torch.device, shuffle: bool = True,
           workers: int = 0) -> torch.utils.data.DataLoader:
    """Batches of a dataset for one epoch.

    Parameters
    ----------
    dataset : a map-style dataset.
    batch_size : the global batch, slices.
    seed, epoch : the shuffle (``seed + epoch``).
    device : pinned memory on CUDA.
    shuffle : shuffle or keep the order.
    workers : DataLoader worker processes.

    Returns
    -------
    DataLoader; under torchrun each process gets its shard (DistributedSampler) of every global batch.
    """
    rank, size = world()
    common = dict(pin_memory=device.type == "cuda", num_workers=workers, persistent_workers=False)
    if size == 1:
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                           generator=torch.Generator().manual_seed(seed + epoch), **common)
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, size, rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return torch.utils.data.DataLoader(dataset, batch_size=max(1, batch_size // size), sampler=sampler, **common)


def load_checkpoint(path: str | os.PathLike, method: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``: no code runs).

    Parameters
    ----------
    path : the ``.pt`` file.
    method : the method it must belong to (its ``method`` entry); None: any.

    Returns
    -------
    the state dict; InputError naming the file when it is missing, unreadable, not an nbutils checkpoint
    or another method's.
    """
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols in its own words: ours says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "checkpoint not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a checkpoint file") from None
    except Exception:  # torch's messages run to several lines and advise unsafe loading: one line of ours
        raise InputError(path, "not a readable nbutils checkpoint (not a PyTorch file, or a damaged one)") from None
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
    amp: str = "auto",
    seed: int = 0,
    progress: bool = True,
    extra: dict | None = None,
    workers: int = 0,
    channels_last: bool = False,
    compile: bool = False,
) -> list[dict[str, float]]:
    """Train a network: the one loop every method uses.

    Parameters
    ----------
    model : the network.
    loss_fn : ``loss_fn(model, batch)`` returns the loss tensor, or a dict whose ``"loss"`` entry is
        optimised and whose other entries are logged.
    dataset : map-style dataset of dict items (``SliceDataset``, ``StreamingSlices``).
    epochs : the last epoch (a resumed run continues to it).
    batch_size : slices per step (under torchrun: the global batch, split among the processes).
    lr, optimizer : Adam at ``lr`` unless an optimizer is given.
    device : where it trains.
    checkpoint, resume : the model, optimiser, epoch and history (and ``extra``) are written atomically
        after every epoch; ``resume`` continues from the file when it exists.
    method : the name stored in (and checked on) the checkpoint.
    amp : the precision of the forward pass (:func:`nbutils.precision.policy`): ``"auto"`` (bfloat16
        autocast where the GPU has it natively, else float16 with a gradient scaler; float32 on the CPU),
        ``"bf16"``, ``"fp16"`` or ``"off"``. The loss's statistics run in float32 whatever it is.
    seed : each epoch shuffles with a generator seeded by ``seed + epoch`` and reseeds torch the same way,
        so a resumed run repeats an uninterrupted one.
    progress : a progress bar (rank 0 only).
    extra : entries (e.g. the network's configuration) stored in every checkpoint.
    workers : DataLoader worker processes.
    channels_last, compile : on CUDA, NHWC activations and ``torch.compile`` of the step.

    Returns
    -------
    the history: one dict of mean losses per epoch, summed on the device and read once per epoch. A NaN
    or infinite loss stops training with a FloatingPointError naming the epoch.

    Under torchrun the network is wrapped in DistributedDataParallel (SyncBatchNorm on CUDA; on the CPU,
    batch norm sees each process's shard), each process trains on its shard of every global batch,
    gradients are averaged, and only rank 0 shows progress and writes checkpoints (with ``world_size``).
    """
    device = torch.device(device)
    precision = policy(amp, device)
    scaler = precision.scaler()
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, method)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, start = list(state["history"]), int(state["epoch"])
    rank, size = world()
    net = model
    if size > 1:
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = Parallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    step = torch.compile(net) if compile else net
    bar = tqdm(range(start, epochs), desc=method, disable=not progress or rank > 0, initial=start, total=epochs)
    for epoch in bar:
        torch.manual_seed(seed + epoch)
        model.train()
        sums: dict[str, torch.Tensor] = {}  # summed on the device: one read per epoch, not a sync per step
        batches = 0
        for batch in loader(dataset, batch_size, seed, epoch, device, workers=workers):
            batch = _to_device(batch, device, channels_last and device.type == "cuda")
            with precision.autocast():
                out = loss_fn(step, batch)
            terms = out if isinstance(out, dict) else {"loss": out}
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0) + value.detach().float()
            batches += 1
        if size > 1:  # every process logs the mean over all of them
            for total in sums.values():
                dist.all_reduce(total)
            batches *= size
        history.append({name: float(total) / max(batches, 1) for name, total in sums.items()})
        if not math.isfinite(history[-1].get("loss", 0.0)):
            raise FloatingPointError(
                f"{method}: loss became {history[-1]['loss']} in epoch {epoch + 1}; "
                "likely causes: a learning rate too high, or NaN/inf in the input"
            )
        bar.set_postfix(loss=f"{history[-1].get('loss', math.nan):.4g}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "method": method, "epoch": epoch + 1, "history": history,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "amp": precision.name, **(extra or {}),
            })
    model.eval()
    return history
