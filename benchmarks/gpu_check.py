"""GPU check: one command, on a CUDA machine, that tells whether the series runs right and in time there.

    python benchmarks/gpu_check.py [--notebooks 01 02 ...] [--skip-notebooks] [--json gpu_check.json]

1. The device: name, compute capability, memory, torch and CUDA versions, native bfloat16, and the precision
   the policy picks (``--amp auto``).
2. Every notebook in the profile a CUDA machine gets by default, executed headless (nbconvert), with its wall
   time and the device's peak memory in use (``nvidia-smi``, polled every 0.2 s while it runs).
3. CUDA against the CPU on the same seed and data (phantom subjects, the ci profile's sizes): the trained deep
   GMM (labels agreement, the mixture's means and variances on one volume) and DCN (labels agreement).
4. Training throughput of each network at 256 pixels under the policy, with its share of the device's dense
   half-precision peak (``benchmarks/throughput.py``).

Prints each table and writes everything to ``--json``. On a machine without CUDA it says so and stops (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def device_facts(device: torch.device) -> dict:
    from nbutils.precision import native_bf16, policy

    props = torch.cuda.get_device_properties(device)
    return dict(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30,
                torch=torch.__version__, cuda=torch.version.cuda, native_bf16=native_bf16(device),
                amp_auto=policy("auto", device).name, cpu_threads=torch.get_num_threads(), python=platform.python_version())


def _used_mib() -> float:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i",
                          os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[0])


def run_notebook(path: Path, out_dir: Path, timeout: int) -> dict:
    """Execute one notebook in the default CUDA profile; wall time and peak device memory in use."""
    peak, done = [0.0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], _used_mib())
            time.sleep(0.2)

    env = {k: v for k, v in os.environ.items() if k not in ("NBUTILS_PROFILE", "CI")}  # the CUDA default
    watcher = threading.Thread(target=poll, daemon=True)
    start = time.perf_counter()
    watcher.start()
    result = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                             f"--ExecutePreprocessor.timeout={timeout}", "--output-dir", str(out_dir), str(path)],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    done.set()
    watcher.join()
    return dict(notebook=path.name, ok=result.returncode == 0, seconds=time.perf_counter() - start,
                peak_mib=peak[0], error="" if result.returncode == 0 else result.stderr.strip().splitlines()[-1])


def cpu_against_cuda(device: torch.device) -> list[dict]:
    """The trained deep GMM and DCN on the CPU and on CUDA, same seed and data."""
    from nbutils import methods
    from nbutils.data.datasets import phantom_volumes
    from nbutils.methods import deepgmm

    volumes = phantom_volumes(3, 8, 128, seed=0, cache_dir=Path(tempfile.gettempdir()) / "nbutils-gpu-check")
    rows = []
    for name, options in (("deepgmm", dict(mode="trained", epochs=10)), ("dcn", dict(pretrain_epochs=5, epochs=2))):
        labels, params = [], []  # the CPU's, then the device's
        for where in ("cpu", device):
            method = methods.get(name, "ci", size=128, **options)
            model = method.fit(volumes, device=where, progress=False)
            labels.append(np.stack([model.labels(v) for v in volumes]))
            if name == "deepgmm":
                v = volumes[0]
                p = deepgmm.probabilities(model.network, v.image)
                params.append(deepgmm.volume_params(p, v.image, v.brain))
        row = dict(method=name, labels_agree=float((labels[0] == labels[1]).mean()))
        if params:
            (_, mu_c, var_c), (_, mu_g, var_g) = params
            row.update(mu_max_rel_diff=float(np.max(np.abs(mu_g - mu_c) / np.abs(mu_c).clip(1e-6))),
                       var_max_rel_diff=float(np.max(np.abs(var_g - var_c) / var_c)))
        rows.append(row)
    return rows


def throughput_rows(device: torch.device, steps: int = 10, batch: int = 16) -> list[dict]:
    import throughput

    name = torch.cuda.get_device_name(device)
    peak = throughput.peak_flops(name)
    rows = []
    for net, (build, loss_fn) in throughput.networks().items():
        flops = throughput.flops_per_slice(build, loss_fn, 256, device)
        rate = throughput.measure(build, loss_fn, 256, batch, steps, device, "auto")
        rows.append(dict(network=net, slices_per_s=rate, gflop_per_slice=flops / 1e9,
                         peak_share=None if peak is None else rate * flops / peak))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", nargs="*", default=None, help="numbers to run, e.g. 01 05 (default: all)")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per notebook cell")
    parser.add_argument("--json", default="gpu_check.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU here: the GPU check runs on a CUDA machine", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    report = dict(device=device_facts(device))
    print("device:", ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in report["device"].items()))
    if not args.skip_notebooks:
        paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
        if args.notebooks:
            paths = [p for p in paths if p.name[:2] in args.notebooks]
        with tempfile.TemporaryDirectory() as out:
            report["notebooks"] = [run_notebook(p, Path(out), args.timeout) for p in paths]
        print(f"\n{'notebook':<36} {'ok':>3} {'seconds':>8} {'peak MiB':>9}")
        for r in report["notebooks"]:
            print(f"{r['notebook']:<36} {'yes' if r['ok'] else 'NO':>3} {r['seconds']:>8.0f} {r['peak_mib']:>9.0f}"
                  + (f"  {r['error']}" if r["error"] else ""))
    report["cpu_vs_cuda"] = cpu_against_cuda(device)
    print("\nCUDA against the CPU, same seed and data:")
    for r in report["cpu_vs_cuda"]:
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    report["throughput"] = throughput_rows(device)
    print(f"\n{'network (256 px, batch 16)':<28} {'slices/s':>9} {'GFLOP/slice':>12} {'of peak':>8}")
    for r in report["throughput"]:
        share = "-" if r["peak_share"] is None else f"{100 * r['peak_share']:.1f} %"
        print(f"{r['network']:<28} {r['slices_per_s']:>9.1f} {r['gflop_per_slice']:>12.2f} {share:>8}")
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {args.json}")
    return 0 if all(r["ok"] for r in report.get("notebooks", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
