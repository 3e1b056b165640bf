"""The one precision policy: networks may run under autocast, statistics never do.

- :func:`policy` turns ``--amp auto|bf16|fp16|off`` and a device into a :class:`Policy`: bfloat16 autocast
  where the GPU has it natively (compute capability 8.0 and newer: A100, L4, H100), float16 with a
  gradient scaler on older GPUs (the T4 of Colab, whose bfloat16 is emulated and skips cuDNN's tensor-core
  convolutions), float32 on the CPU and MPS. Asking for bf16 where it is not native, or for any autocast
  without CUDA, is a ValueError (one line on the command line), never a silent emulation.
- :func:`float32` marks the functions that compute statistics (mixture parameters, NLLs, distances, centre
  updates, region means, memberships, Dice): they run outside autocast with float32 inputs, because a
  bfloat16 sum of squares minus a squared mean loses the variance, and bfloat16 distances flip
  nearest-centre choices.

Micikevicius et al., "Mixed precision training", ICLR 2018, arXiv:1710.03740 (loss scaling for float16).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import torch

AMP_MODES = ("auto", "bf16", "fp16", "off")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device | str) -> bool:
    """Whether a device computes bfloat16 natively (CUDA compute capability 8.0 or newer).

    Parameters
    ----------
    device : a torch device.

    Returns
    -------
    bool; False on the CPU and MPS (autocast is not used there) and on older GPUs, where
    ``torch.cuda.is_bf16_supported()`` says True because bfloat16 is emulated.
    """
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


@dataclasses.dataclass(frozen=True)
class Policy:
    """How a network trains on one device: the autocast dtype (None: float32) and whether the loss is scaled."""

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "off")

    @property
    def scales_loss(self) -> bool:
        """Whether gradients need loss scaling: float16 alone (bfloat16 has float32's range)."""
        return self.dtype == torch.float16

    def autocast(self):
        """The context a network's forward pass runs in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self):
        """A gradient scaler, enabled when :attr:`scales_loss` (a pass-through otherwise)."""
        if hasattr(torch.amp, "GradScaler"):
            return torch.amp.GradScaler("cuda", enabled=self.scales_loss)
        return torch.cuda.amp.GradScaler(enabled=self.scales_loss)  # torch < 2.3


def policy(amp: str, device: torch.device | str) -> Policy:
    """The precision a network trains with.

    Parameters
    ----------
    amp : ``"auto"`` (bf16 where native, else fp16 on CUDA; float32 elsewhere), ``"bf16"``, ``"fp16"`` or
        ``"off"`` (float32 throughout).
    device : where it trains.

    Returns
    -------
    :class:`Policy`; a ValueError for bf16 without native support or autocast without CUDA.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    device = torch.device(device)
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return Policy(device.type)
    if device.type != "cuda":
        raise ValueError(f"--amp {amp} needs a CUDA GPU; on the {device.type} choose --amp off (or auto)")
    if amp == "auto":
        amp = "bf16" if native_bf16(device) else "fp16"
    if amp == "bf16" and not native_bf16(device):
        major, minor = torch.cuda.get_device_capability(device)
        raise ValueError(f"--amp bf16: {torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) "
                         "has no native bfloat16 (it would be emulated, without tensor cores); choose --amp fp16 "
                         "or auto")
    return Policy(device.type, DTYPES[amp])


def _to_float32(value):
    """A half-precision tensor as float32; anything else (float64 too) as it is."""
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value


def float32(fn):
    """Decorator: run ``fn`` outside autocast, its half-precision tensor arguments cast to float32.

    For the statistics a loss computes from a network's output (mixture parameters, NLLs, distances,
    region means, memberships, Dice): their gradients still reach the network through the cast.
    """
    @functools.wraps(fn)
    def outside_autocast(*args, **kwargs):
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        off = torch.autocast(device_type, enabled=False) if device_type in ("cpu", "cuda") else contextlib.nullcontext()
        with off:
            return fn(*map(_to_float32, args), **{k: _to_float32(v) for k, v in kwargs.items()})

    return outside_autocast
