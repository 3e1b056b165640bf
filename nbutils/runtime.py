"""Device choice, the distributed (torchrun) process group, batched inference over NumPy slices,
CUDA synchronisation for timings."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def choose_device(device: str = "auto") -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    device : ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Returns
    -------
    torch.device; a ValueError for an unknown device or one that is not available (never a silent
    fallback to the CPU).
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda or mps") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; choose auto, cpu, cuda or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but MPS is not available")
    return dev


def batched(model: torch.nn.Module, image: np.ndarray, batch_size: int = 8):
    """``model(x)`` for consecutive batches of NumPy slices, without gradients expected.

    Parameters
    ----------
    model : a network; put in eval mode. When its ``config`` names ``in_channels``, C is checked against
        it first (a ValueError names both counts).
    image : (S, C, H, W) slices.
    batch_size : slices per forward pass.

    Yields
    ------
    the model's output for each batch, on the model's device (iterate under ``torch.no_grad()``).
    """
    expected = getattr(model, "config", {}).get("in_channels")
    if expected is not None and image.shape[1] != expected:
        raise ValueError(f"the model takes {expected} channel(s), the image has {image.shape[1]}")
    model.eval()
    device = next(model.parameters()).device
    return (model(torch.from_numpy(np.ascontiguousarray(image[i : i + batch_size])).float().to(device))
            for i in range(0, len(image), batch_size))


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (for wall-clock timings); nothing on other devices.

    Parameters
    ----------
    device : the device timed.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()


def world() -> tuple[int, int]:
    """This process's place in a torchrun job.

    Returns
    -------
    (rank, world size): (0, 1) outside a process group.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: torch.device) -> torch.device:
    """Join the torchrun process group when there is one.

    Parameters
    ----------
    device : the device asked for.

    Returns
    -------
    this process's device: ``cuda:LOCAL_RANK`` on CUDA under torchrun (nccl), ``device`` otherwise (gloo
    on the CPU; nothing to join when ``WORLD_SIZE`` is 1).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


class _AllSum(torch.autograd.Function):
    """y = sum over processes of x; dx = sum over processes of dy (every process's loss depends on y)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over every process, differentiable.

    Parameters
    ----------
    tensor : any tensor.

    Returns
    -------
    the sum (its gradient is the sum of the processes' gradients); ``tensor`` itself outside a process group.
    """
    return tensor if world()[1] == 1 else _AllSum.apply(tensor)
