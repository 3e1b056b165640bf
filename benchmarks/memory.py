"""Benchmark: peak memory (RSS) of training on many LGG patients, in memory against streamed from disk.

    python benchmarks/memory.py [--input DIR ...] [--size 256] [--json results.json]

Each way runs in a fresh process and trains the deep GMM (trained mode, one epoch: the data path is what
is measured) on every patient of the inputs (default: the LGG sample and dev sets, 31 patients) at
``size`` pixels: **in memory**, every volume read and held (``load_cases`` + ``SliceDataset``, how
training worked before streaming); **streaming**, volumes read one at a time into the slice cache, then
memory-mapped one slice per item (``iter_cases`` + ``cache_slices`` + ``StreamingSlices``, what
``python -m nbutils train`` does). Reported: peak RSS in MiB (``ru_maxrss``), slices and seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def run_one(way: str, inputs: list[str], size: int, cache: str) -> dict:
    from nbutils import methods
    from nbutils.data import cases as cases_io
    from nbutils.data.streaming import cache_slices

    start = time.perf_counter()
    if way == "memory":
        data = [c.volume for path in inputs for c in cases_io.load_cases(path)]  # fit makes the SliceDataset
    else:
        def stream():
            for path in inputs:
                yield from (c.volume for c in cases_io.iter_cases(path)[1])

        data = cache_slices(stream(), cache, size)
    method = methods.get("deepgmm", "ci", mode="trained", size=size, epochs=1, batch_size=8)
    method.fit(data, progress=False)
    slices = sum(len(v.image) for v in data) if way == "memory" else len(data)
    return dict(way=way, slices=slices, seconds=time.perf_counter() - start,
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", nargs="+", default=[str(SHARED / "lgg_sample"), str(SHARED / "lgg_dev")])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--json", default=None)
    parser.add_argument("--way", choices=["memory", "streaming"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        print(json.dumps(run_one(args.way, args.input, args.size, args.cache)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for way in ("memory", "streaming"):
            out = subprocess.run([sys.executable, __file__, "--way", way, "--cache", cache, "--size", str(args.size),
                                  "--input", *args.input], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'way':<10} {'slices':>7} {'seconds':>8} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['way']:<10} {r['slices']:>7} {r['seconds']:>8.1f} {r['peak_rss_mib']:>13.0f}")
    if args.json:
        from nbutils.data.io import write_json

        write_json(args.json, dict(size=args.size, inputs=args.input, rows=rows))


if __name__ == "__main__":
    main()
