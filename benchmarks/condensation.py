"""Benchmark: our diffusion condensation against multiscale-phate's, on the same points, in one run.

    pip install -e ".[bench]"          # multiscale-phate, for this benchmark only
    python benchmarks/condensation.py [--peer-sizes 1024 2048 4096] [--sizes 16384 65536]
                                      [--peer-memory-gb 16] [--timeout 900] [--json results.json]

Part 1, peers: N points in 10 dimensions (8 Gaussian blobs, seed 0), condensed to one cluster by
``nbutils.methods.condensation.condense`` (exact: no coarse-graining) and by
``multiscale_phate.condense.condense`` with the same eps, merge threshold and scale 1.025.
Part 2, ours alone: 16,384 and 65,536 points, random blobs and the embeddings of a real
256 x 256 phantom FLAIR slice (every pixel, through an untrained CUTS encoder, scaled and
reduced to 10 PCA components as CUTS stage 2 does), on the CPU with the default coarse-graining
to 4,096 points, and on CUDA without coarse-graining when a GPU is present.

Every run is its own process, so peak memory is that process's own: peak resident memory
(``ru_maxrss``) and its rise above the resident memory after the imports; CUDA runs also give
peak GPU memory. The peer gets an address-space limit (``--peer-memory-gb``) so that running out
of memory is reported instead of taking the machine down.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def blobs(n: int, d: int = 10, centres: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` points (n, d) float32 around ``centres`` random centres (spread 0.5 around unit-variance centres)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 3, (centres, d))
    return (c[rng.integers(centres, size=n)] + rng.normal(0, 0.5, (n, d))).astype(np.float32)


def image_embeddings(size: int) -> np.ndarray:
    """CUTS stage-2 points (size * size, 10) of a phantom FLAIR slice at ``size`` x ``size``."""
    import torch

    from nbutils.data.datasets import phantom_volumes
    from nbutils.methods import cuts

    v = phantom_volumes(1, 1, size)[0]
    torch.manual_seed(0)
    z = cuts.embed(cuts.PixelCUTS(1).eval(), v.image)
    return cuts.points(z, np.ones(v.brain.shape, bool))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> dict:
    """One condensation in this process; returns the measurements."""
    x = blobs(args.n) if args.points == "blobs" else image_embeddings(int(round(args.n**0.5)))
    import torch

    from nbutils.methods import condensation

    # exact runs share eps and threshold with the peer; coarse-grained runs choose them on the centroids
    eps, threshold = condensation.default_scales(torch.from_numpy(x)) if args.max_points == 0 else (None, None)
    if args.impl == "multiscale-phate":
        from multiscale_phate import condense as peer

        resource.setrlimit(resource.RLIMIT_AS, (args.memory_gb << 30, args.memory_gb << 30))
        base = rss_mb()
        start = time.perf_counter()
        nxt = peer.condense(x.astype(np.float64), np.arange(len(x)), 1.025, eps, threshold, 1, random_state=0)[0]
        seconds, levels = time.perf_counter() - start, len(nxt)
        gpu = None
    else:
        device = torch.device(args.device)
        torch.set_num_threads(args.threads)
        max_points = None if args.max_points == 0 else args.max_points
        condensation.condense(x[:64], device=device)  # warm-up (kernels, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base = rss_mb()
        start = time.perf_counter()
        tree = condensation.condense(x, eps=eps, threshold=threshold, max_points=max_points, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds, levels = time.perf_counter() - start, len(tree)
        gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return dict(seconds=seconds, levels=levels, peak_rss_mb=rss_mb(), rise_mb=rss_mb() - base, gpu_peak_mb=gpu,
                eps=eps, threshold=threshold)


def run(impl: str, points: str, n: int, *, device="cpu", max_points: int = 0, timeout: float, memory_gb: int,
        threads: int) -> dict:
    """:func:`worker` in a fresh process; a failure (memory, time) becomes a row saying so."""
    cmd = [sys.executable, __file__, "--worker", impl, points, str(n), "--device", device, "--max-points",
           str(max_points), "--peer-memory-gb", str(memory_gb), "--threads", str(threads)]
    row = dict(impl=impl, points=points, n=n, device=device, coarse_grained_to=max_points or None)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(row, error=f"over {timeout:.0f} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return dict(row, error="out of memory" if "MemoryError" in done.stderr else last[:80])
    return dict(row, **json.loads(done.stdout.strip().splitlines()[-1]))


def table(rows: list[dict]) -> str:
    lines = ["| implementation | points | N | device | coarse-grained to | seconds | levels | peak RSS MB | "
             "rise MB | peak GPU MB |", "|" + " --- |" * 10]
    for r in rows:
        if "error" in r:
            cells = [r["error"], "", "", "", ""]
        else:
            gpu = f"{r['gpu_peak_mb']:.0f}" if r.get("gpu_peak_mb") is not None else ""
            cells = [f"{r['seconds']:.2f}", str(r["levels"]), f"{r['peak_rss_mb']:.0f}", f"{r['rise_mb']:.0f}", gpu]
        lines.append(f"| {r['impl']} | {r['points']} | {r['n']:,} | {r['device']} | {r['coarse_grained_to'] or '-'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> str:
    lines = []
    for n in sorted({r["n"] for r in rows if r["impl"] == "multiscale-phate"}):
        ours = next((r for r in rows if r["impl"] == "nbutils" and r["n"] == n and r["points"] == "blobs"), None)
        peer = next(r for r in rows if r["impl"] == "multiscale-phate" and r["n"] == n)
        if ours is None or "error" in ours:
            continue
        if "error" in peer:
            lines.append(f"N={n:,}: multiscale-phate failed ({peer['error']}); ours {ours['seconds']:.2f} s")
        else:
            lines.append(f"N={n:,}: ours is {peer['seconds'] / ours['seconds']:.1f}x faster, peak RSS "
                         f"{peer['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x lower, memory rise "
                         f"{peer['rise_mb'] / max(ours['rise_mb'], 1):.1f}x lower")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-sizes", type=int, nargs="*", default=[1024, 2048, 4096])
    parser.add_argument("--sizes", type=int, nargs="*", default=[16384, 65536])
    parser.add_argument("--peer-memory-gb", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for ours (2 = the CI machine)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "POINTS", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--max-points", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.impl, args.points, args.n = args.worker[0], args.worker[1], int(args.worker[2])
        args.memory_gb = args.peer_memory_gb
        print(json.dumps(worker(args)))
        return
    import torch

    common = dict(timeout=args.timeout, memory_gb=args.peer_memory_gb, threads=args.threads)
    rows = []
    for n in args.peer_sizes:
        rows.append(run("nbutils", "blobs", n, **common))
        rows.append(run("multiscale-phate", "blobs", n, **common))
        print(table(rows[-2:]), flush=True)
    for n in args.sizes:
        for points in ("blobs", "image"):
            rows.append(run("nbutils", points, n, max_points=4096, **common))
            if torch.cuda.is_available():
                rows.append(run("nbutils", points, n, device="cuda", **common))
    print(table(rows))
    print(ratios(rows))
    if args.json:
        from nbutils.data.io import write_json

        write_json(args.json, dict(rows=rows))


if __name__ == "__main__":
    main()
