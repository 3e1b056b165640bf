"""Benchmark: DCN training throughput and torch k-means against scikit-learn, in one run.

    python benchmarks/dcn.py [--device cpu|cuda] [--json results.json]

Prints two tables: slices/s of pretraining and DCN steps at 128^2 and 256^2 (on CUDA: fp32,
bf16 autocast, bf16 + channels_last), and k-means on 65,536 x 64 features (K = 4, 8): our torch
k-means, sklearn KMeans and MiniBatchKMeans, wall time and inertia (equal quality = equal inertia).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans

from nbutils.data.io import write_json
from nbutils.methods import dcn
from nbutils.methods.torch_kmeans import kmeans
from nbutils.models import AutoEncoder
from nbutils.runtime import synchronize


def throughput(size: int, device, phase: str, batch: int = 8, steps: int = 5, amp: bool = False,
               channels_last: bool = False) -> float:
    """Training slices per second of one optimiser step on random (batch, 1, size, size) images."""
    torch.manual_seed(0)
    model = AutoEncoder(1).to(device)
    x = torch.rand(batch, 1, size, size, device=device)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    data = {"image": x, "brain": torch.ones(batch, size, size, dtype=torch.bool, device=device)}
    centres = torch.randn(4, 64, device=device)
    opt = torch.optim.Adam(model.parameters())
    loss_fn = dcn.reconstruction_loss if phase == "pretrain" else (lambda m, b: dcn.dcn_loss(m, b, centres, 1.0))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext

    def step():
        with autocast():
            loss = loss_fn(model, data)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    synchronize(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch * steps / (time.perf_counter() - t)


def _full_inertia(x: np.ndarray, model) -> float:
    """Inertia over all points (MiniBatchKMeans reports it on its last batch only)."""
    return float(((x - model.cluster_centers_[model.predict(x)]) ** 2).sum())


def kmeans_rows(device, n: int = 65_536, d: int = 64, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (8, d))
    x = (centres[rng.integers(0, 8, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)
    rows = []
    for k in (4, 8):
        def ours():
            xt = torch.from_numpy(x).to(device)
            _, _, inertia = kmeans(xt, k, n_init=3, seed=seed)
            synchronize(device)
            return inertia
        for name, run in (
            (f"torch k-means ({device.type})", ours),
            ("sklearn KMeans", lambda: KMeans(k, n_init=3, random_state=seed).fit(x).inertia_),
            ("sklearn MiniBatchKMeans", lambda: _full_inertia(x, MiniBatchKMeans(k, n_init=3, random_state=seed).fit(x))),
        ):
            t = time.perf_counter()
            inertia = run()
            rows.append(dict(k=k, method=name, seconds=time.perf_counter() - t, inertia=float(inertia)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    variants = [("fp32", False, False)]
    if device.type == "cuda":
        variants += [("bf16", True, False), ("bf16+channels_last", True, True)]
    train = []
    for size in (128, 256):
        for phase in ("pretrain", "dcn"):
            for name, amp, cl in variants:
                train.append(dict(size=size, phase=phase, variant=name, device=device.type,
                                  slices_per_s=throughput(size, device, phase, amp=amp, channels_last=cl)))
    print(f"{'size':>5} {'phase':<9} {'variant':<20} {'slices/s':>9}")
    for r in train:
        print(f"{r['size']:>5} {r['phase']:<9} {r['variant']:<20} {r['slices_per_s']:>9.1f}")
    km = kmeans_rows(device)
    print(f"\n{'K':>2} {'method':<26} {'seconds':>8} {'inertia':>14} {'time vs ours':>13}")
    for r in km:
        ours = next(o for o in km if o["k"] == r["k"] and o["method"].startswith("torch"))
        print(f"{r['k']:>2} {r['method']:<26} {r['seconds']:>8.2f} {r['inertia']:>14.1f} {r['seconds'] / ours['seconds']:>12.2f}x")
    if args.json:
        write_json(args.json, dict(device=str(device), threads=torch.get_num_threads(), training=train, kmeans=km))


if __name__ == "__main__":
    main()
