"""Benchmark: training throughput (slices/s) of the project's networks, one process or several (torchrun).

    python benchmarks/throughput.py [--sizes 128 256] [--batch 8] [--steps 5] [--device cpu|cuda] [--json F]
    python -m torch.distributed.run --standalone --nproc_per_node 2 benchmarks/throughput.py [...]

Each network trains on random slices through the one training loop's pieces (the method's own loss,
Adam, bf16 autocast on CUDA; DistributedDataParallel with gradient averaging under torchrun): the
autoencoder of DCN's pretraining (reconstruction), the ACWE CNN (ACWE loss), the CUTS encoder (NT-Xent +
patch reconstruction), the deep GMM U-Net (its NLL) and the supervised U-Net (Dice loss), under the
precision policy (``--amp``, default auto: bf16 where native, fp16 with a gradient scaler on older GPUs).
After two warm-up steps, ``steps`` steps are timed; slices/s counts every process's slices (``batch`` per
process). FLOPs per slice (forward + backward) come from ``torch.utils.flop_counter``; on CUDA the table
gives the achieved share of the GPU's dense peak in that precision.
"""

from __future__ import annotations

import argparse
import time

import torch

from nbutils.data.io import write_json
from nbutils.methods import acwe, cuts, dcn, deepgmm, supervised
from nbutils.models import AutoEncoder
from nbutils.precision import AMP_MODES, policy
from nbutils.runtime import init_distributed, synchronize, world
from nbutils.train import Parallel

# dense tensor-core FLOP/s in bf16 (fp16 the same on these; the T4 has no native bf16), from the vendors' data sheets
HALF_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "T4": 65e12}


def peak_flops(device_name: str) -> float | None:
    """The dense half-precision peak of a GPU by its name (None when unknown, or the CPU)."""
    return next((v for k, v in HALF_PEAK.items() if k in device_name), None)


def networks() -> dict:
    """name -> (network builder, loss of (network, batch))."""
    return {
        "autoencoder (DCN)": (lambda: AutoEncoder(1, 64), dcn.reconstruction_loss),
        "ACWE CNN": (lambda: acwe.build_model(1, 1),
                     lambda m, b: acwe.acwe_loss(torch.sigmoid(m(b["image"]).float()), b["image"].float(),
                                                 mask=b["brain"])),
        "CUTS encoder": (lambda: cuts.PixelCUTS(1), lambda m, b: cuts.cuts_loss(m, b)),
        "deep GMM U-Net": (lambda: deepgmm.build_model(1, 4), lambda m, b: deepgmm.loss(m, b)),
        "U-Net (supervised)": (lambda: supervised.build_model(1),
                               lambda m, b: acwe.dice_loss(torch.sigmoid(m(b["image"]).float())[:, 0], b["target"])),
    }


def batch_of(n: int, size: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(n, 1, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    brain = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2).expand(n, -1, -1)
    return {"image": image.to(device), "brain": brain.to(device), "target": (image[:, 0] > 0.8).to(device)}


def flops_per_slice(build, loss_fn, size: int, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = build().to(device)
    batch = batch_of(2, size, device)
    with FlopCounterMode(display=False) as counter:
        loss = loss_fn(model, batch)
        (loss["loss"] if isinstance(loss, dict) else loss).backward()
    return counter.get_total_flops() / 2


def measure(build, loss_fn, size: int, batch: int, steps: int, device, amp: str = "auto") -> float:
    """Slices per second of all processes together, under :func:`nbutils.precision.policy` ``amp``."""
    torch.manual_seed(0)
    model = build().to(device)
    rank, size_ = world()
    net = Parallel(model, device_ids=[device.index] if device.type == "cuda" else None) if size_ > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = batch_of(batch, size, device)
    precision = policy(amp, device)
    scaler = precision.scaler()
    for i in range(steps + 2):
        if i == 2:
            synchronize(device)
            start = time.perf_counter()
        with precision.autocast():
            out = loss_fn(net, data)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out["loss"] if isinstance(out, dict) else out).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(device)
    return steps * batch * size_ / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=8, help="slices per process and step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=AMP_MODES, default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = init_distributed(torch.device(args.device))
    rank, size = world()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_flops(name)
    rows = []
    for net_name, (build, loss_fn) in networks().items():
        for px in args.sizes:
            flops = flops_per_slice(build, loss_fn, px, device)
            rate = measure(build, loss_fn, px, args.batch, args.steps, device, args.amp)
            rows.append(dict(network=net_name, size=px, processes=size, device=name, slices_per_s=rate,
                             gflop_per_slice=flops / 1e9,
                             peak_fraction=None if peak is None else rate * flops / peak))
    if rank == 0:
        print(f"{size} process(es) on {name}, {torch.get_num_threads()} CPU threads each, batch {args.batch} per "
              f"process, {args.steps} timed steps, precision {policy(args.amp, device).name}")
        print(f"{'network':<20} {'size':>5} {'slices/s':>9} {'GFLOP/slice':>12} {'of peak':>8}")
        for r in rows:
            share = "-" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f} %"
            print(f"{r['network']:<20} {r['size']:>5} {r['slices_per_s']:>9.2f} {r['gflop_per_slice']:>12.2f} {share:>8}")
        if args.json:
            write_json(args.json, dict(rows=rows))
    if size > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
