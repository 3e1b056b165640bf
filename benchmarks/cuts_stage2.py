"""Benchmark: CUTS stage 2 on one full-profile volume, each form, on the CPU (and on CUDA when present).

    python benchmarks/cuts_stage2.py [--slices 24] [--size 256] [--json results.json]

One phantom volume of ``slices`` slices at ``size`` pixels (the full profile: 24 x 256 x 256), embedded by an
untrained CUTS encoder (128 features per pixel: the timing does not depend on the weights); then
``cuts.cluster`` with each stage 2 (k-means, spectral k-means on PHATE, diffusion condensation; the latter two
coarse-grain the brain pixels to ``max_points`` = 4,096 weighted centroids first), on every device present.
Reported: brain pixels, seconds of each stage 2 (the PCA of the embeddings included), the device.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from nbutils.data.datasets import phantom_volumes
    from nbutils.data.io import write_json
    from nbutils.methods import cuts
    from nbutils.runtime import synchronize

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--max-points", type=int, default=4096)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    volume = phantom_volumes(1, args.slices, args.size, seed=0,
                             cache_dir=Path(tempfile.gettempdir()) / "nbutils-bench")[0]
    torch.manual_seed(0)
    encoder = cuts.PixelCUTS(volume.image.shape[1]).eval()
    z = cuts.embed(encoder, volume.image)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for stage2 in cuts.STAGE2:
            synchronize(device)
            start = time.perf_counter()
            labels = cuts.cluster(z, volume.brain, volume.flair, stage2, 4, max_points=args.max_points, device=device)
            synchronize(device)
            rows.append(dict(device=str(device), stage2=stage2, brain_pixels=int(volume.brain.sum()),
                             clusters=int(labels.max()), seconds=time.perf_counter() - start))
    print(f"one volume: {args.slices} slices at {args.size} px, {rows[0]['brain_pixels']} brain pixels, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'device':<7} {'stage 2':<13} {'clusters':>8} {'seconds':>8}")
    for r in rows:
        print(f"{r['device']:<7} {r['stage2']:<13} {r['clusters']:>8} {r['seconds']:>8.1f}")
    if args.json:
        write_json(args.json, dict(slices=args.slices, size=args.size, rows=rows))


if __name__ == "__main__":
    main()
