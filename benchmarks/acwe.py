"""Benchmark: per-slice inference time of the ACWE CNN against scikit-image's Chan-Vese, in one run.

    python benchmarks/acwe.py [--device cpu|cuda] [--size 256] [--slices 8] [--json results.json]

Phantom FLAIR slices at ``size`` x ``size``: the ACWE network (three residual blocks of 16, and
the U-Net option) predicts y for every slice in one batch (on CUDA also under bf16 autocast);
``chan_vese`` (200 iterations at most) and ``morphological_chan_vese`` (100 iterations) run
slice by slice inside the same brain masks, as in notebook 04. Times are seconds per slice;
the ratio is each method's time over the CNN's.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from nbutils.data.datasets import phantom_volumes
from nbutils.data.io import write_json
from nbutils.methods import acwe, classical
from nbutils.runtime import synchronize


def network_seconds(image, device, arch: str, amp: bool = False, repeats: int = 5) -> float:
    """Seconds per slice of the forward pass + sigmoid over a batch of slices (S, C, H, W)."""
    torch.manual_seed(0)
    model = acwe.build_model(image.shape[1], 1, arch).to(device).eval()
    x = torch.from_numpy(image).to(device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    with torch.no_grad():
        for i in range(repeats + 1):  # the first pass warms up
            if i == 1:
                synchronize(device)
                start = time.perf_counter()
            with autocast():
                torch.sigmoid(model(x)).float().cpu()
    synchronize(device)
    return (time.perf_counter() - start) / repeats / len(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    v = phantom_volumes(1, args.slices, args.size)[0]
    rows = [dict(method=f"ACWE-CNN resnet ({device.type}, fp32)", seconds=network_seconds(v.image, device, "resnet")),
            dict(method=f"ACWE-CNN unet ({device.type}, fp32)", seconds=network_seconds(v.image, device, "unet"))]
    if device.type == "cuda":
        rows.append(dict(method="ACWE-CNN resnet (cuda, bf16)", seconds=network_seconds(v.image, device, "resnet", True)))
    for name, run in (("skimage chan_vese (cpu)", classical.chan_vese),
                      ("skimage morphological_chan_vese (cpu)", classical.morphological_chan_vese)):
        start = time.perf_counter()
        run(v.image, v.brain)
        rows.append(dict(method=name, seconds=(time.perf_counter() - start) / len(v.image)))
    cnn = rows[0]["seconds"]
    print(f"{args.slices} phantom slices at {args.size}x{args.size}, {torch.get_num_threads()} CPU threads")
    print(f"{'method':<40} {'s/slice':>9} {'vs CNN':>8}")
    for r in rows:
        r["ratio_to_cnn"] = r["seconds"] / cnn
        print(f"{r['method']:<40} {r['seconds']:>9.4f} {r['ratio_to_cnn']:>7.1f}x")
    if args.json:
        write_json(args.json, dict(device=str(device), size=args.size, slices=args.slices,
                                   threads=torch.get_num_threads(), rows=rows))


if __name__ == "__main__":
    main()
