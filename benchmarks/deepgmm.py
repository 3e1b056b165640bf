"""Benchmark: time and final NLL of deepG / deepSVG (per-image mode) against both EMs, same images.

    python benchmarks/deepgmm.py [--device cpu|cuda] [--subjects 3] [--size 128] [--slices 8] [--k 4]
                                 [--steps 200] [--json results.json]

Phantom subjects with T1 + FLAIR: each method fits one mixture to one volume's brain pixels:
deepG and deepSVG a fresh U-Net per volume (tol 1e-3 over 30 steps, at most ``steps`` steps, on
``device``), EM-GMM scikit-learn's diagonal ``GaussianMixture`` and EM-SVGMM our spatially variant
EM (both on the CPU, tol 1e-3, at most ``steps`` iterations). Reported per volume (mean over the
subjects): seconds, steps or iterations, the final NLL per pixel (deepG against EM-GMM, deepSVG
against EM-SVGMM: the same model fitted two ways; lower is better) and the lesion Dice of the
brightest-FLAIR class (label-free, every component).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from nbutils import metrics
from nbutils.data.datasets import phantom_volumes
from nbutils.data.io import write_json
from nbutils.methods import deepgmm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    volumes = phantom_volumes(args.subjects, args.slices, args.size, seed=100, sequences=("flair", "t1"))
    names = {"deepG": f"deepG ({device.type})", "deepSVG": f"deepSVG ({device.type})",
             "EM-GMM": "EM-GMM sklearn (cpu)", "EM-SVGMM": "EM-SVGMM ours (cpu)"}
    rows = []
    for method, name in names.items():
        fits = [deepgmm.fit_volume(v, args.k, method, max_epochs=args.steps, device=device) for v in volumes]
        dice = [metrics.dice(metrics.label_free_lesion(f.labels, v.flair, v.brain, largest_cc=False), v.target)
                for f, v in zip(fits, volumes)]
        rows.append(dict(method=name, seconds=float(np.mean([f.seconds for f in fits])),
                         steps=float(np.mean([f.steps for f in fits])),
                         nll=float(np.mean([f.history[-1] for f in fits])), dice_label_free=float(np.mean(dice))))
    print(f"{args.subjects} phantom subjects (T1 + FLAIR), {args.slices} slices at {args.size}x{args.size}, "
          f"K={args.k}, {torch.get_num_threads()} CPU threads; means per volume")
    print(f"{'method':<26} {'s/volume':>9} {'steps':>7} {'NLL/pixel':>10} {'lesion Dice':>12}")
    for r in rows:
        print(f"{r['method']:<26} {r['seconds']:>9.2f} {r['steps']:>7.0f} {r['nll']:>10.3f} {r['dice_label_free']:>12.3f}")
    if args.json:
        write_json(args.json, dict(device=str(device), subjects=args.subjects, size=args.size, slices=args.slices,
                                   k=args.k, threads=torch.get_num_threads(), rows=rows))


if __name__ == "__main__":
    main()
