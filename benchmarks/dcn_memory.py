"""Benchmark: peak memory of DCN's centre initialisation on 6 and on 31 LGG patients, gathered against streamed.

    python benchmarks/dcn_memory.py [--size 256] [--json results.json]

DCN starts its centres from a subsample of the brain pixels' features (65,536 of them). **gathered** (what
``dcn.brain_pixels`` did before): the features of every brain pixel of the training set are computed and
held on the device, then subsampled; **streamed** (now): the subsample's pixels are chosen first, from the
masks, and each batch gives the ones it holds, so the device holds the sample and one batch. Both give the
same pixels in the same order (a test checks it). Each way runs in a fresh process on the slice cache that
``python -m nbutils train`` builds (built first, in a process of its own; an untrained autoencoder, D = 64:
memory does not depend on the weights). Reported: the step's peak anonymous memory above the process's before
it (MiB, ``RssAnon`` sampled every 5 ms: on a GPU this memory would be the device's; the memory-mapped slices
are file pages, which the kernel can drop, and are left out), the brain pixels, seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {6: ["lgg_sample"], 31: ["lgg_sample", "lgg_dev"]}


def gathered(model, dataset, device, batch_size: int, max_pixels: int, seed: int):
    """The way before: every brain pixel's features, then the subsample."""
    import torch

    from nbutils.methods.dcn import _pixels

    zs, xs = [], []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
            image, brain = batch["image"].to(device), batch["brain"].to(device)
            zs.append(_pixels(model(image)[0].float(), brain))
            xs.append(_pixels(image.float(), brain))
    z, x = torch.cat(zs), torch.cat(xs)
    keep = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:max_pixels].to(z.device)
    return z[keep], x[keep]


def anonymous_mib() -> float:
    """This process's resident anonymous memory (not file pages such as memory-mapped slices), MiB."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("RssAnon:")).split()[1]) / 1024


def run_one(way: str, patients: int, size: int, cache: str) -> dict:
    import torch

    from nbutils.data import cases as cases_io
    from nbutils.data.streaming import StreamingSlices, cache_slices
    from nbutils.methods import dcn
    from nbutils.models import AutoEncoder

    folder = Path(cache) / f"slices_{patients}_{size}"
    if way == "cache":
        cache_slices((c.volume for name in SETS[patients] for c in cases_io.iter_cases(SHARED / name)[1]), folder,
                     size)
        return {}
    data = StreamingSlices(folder)
    torch.manual_seed(0)
    model = AutoEncoder(data.channels, 64).eval()
    before, peak, done = anonymous_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anonymous_mib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    step = dcn.brain_pixels if way == "streamed" else gathered
    z, _ = step(model, data, torch.device("cpu"), 8, dcn.MAX_INIT_PIXELS, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return dict(way=way, patients=patients, slices=len(data), brain_pixels=sum(v["brain_pixels"] for v in data.volumes),
                kept=len(z), seconds=seconds, peak_above_mib=max(peak[0], anonymous_mib()) - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--json", default=None)
    parser.add_argument("--way", choices=["cache", "gathered", "streamed"], help=argparse.SUPPRESS)
    parser.add_argument("--patients", type=int, choices=sorted(SETS), help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        print(json.dumps(run_one(args.way, args.patients, args.size, args.cache)))
        return
    from nbutils.data.io import write_json

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for patients in SETS:
            subprocess.run([sys.executable, __file__, "--way", "cache", "--patients", str(patients), "--size",
                            str(args.size), "--cache", cache], check=True, capture_output=True)
            for way in ("gathered", "streamed"):
                out = subprocess.run([sys.executable, __file__, "--way", way, "--patients", str(patients),
                                      "--size", str(args.size), "--cache", cache],
                                     check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'patients':>8} {'way':>9} {'slices':>6} {'brain px':>10} {'kept':>6} {'s':>6} {'peak MiB':>9}")
    for r in rows:
        print(f"{r['patients']:>8} {r['way']:>9} {r['slices']:>6} {r['brain_pixels']:>10} {r['kept']:>6} "
              f"{r['seconds']:>6.0f} {r['peak_above_mib']:>9.0f}")
    for patients in SETS:
        g, s = (next(r for r in rows if r["patients"] == patients and r["way"] == w) for w in ("gathered", "streamed"))
        print(f"{patients} patients: streamed / gathered peak = {s['peak_above_mib'] / g['peak_above_mib']:.3f}")
    if args.json:
        write_json(args.json, dict(size=args.size, rows=rows))


if __name__ == "__main__":
    main()
