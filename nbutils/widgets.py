"""Slider widgets for the notebooks. Each wraps a plain plotting function that also works
without widgets (call it once statically, then wrap it with ``interact``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from nbutils.viz import show_slice


def plot_scrubbed_slice(volume: np.ndarray, index: int, low: float = 0.0, high: float = 1.0,
                        masks: dict[str, np.ndarray] | None = None, title: str = ""):
    """Slice ``index`` of an (S, H, W) volume in the window [low, high], with its histogram."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.6), gridspec_kw=dict(width_ratios=[1, 1.2]))
    show_slice(volume[index], a, (low, max(high, low + 1e-3)), f"{title} slice {index}".strip(),
               {c: m[index] for c, m in (masks or {}).items()})
    b.hist(volume[index].ravel(), bins=100, range=(0, 1), color="0.4")
    b.axvspan(low, high, color="gold", alpha=0.3, label="window")
    b.set_yscale("log")
    b.set_xlabel("intensity")
    b.legend()
    fig.tight_layout()
    plt.show()


def slice_scrubber(volume: np.ndarray, masks: dict[str, np.ndarray] | None = None, title: str = ""):
    """Sliders for the slice index and the intensity window of an (S, H, W) volume in [0, 1]."""
    import ipywidgets as w

    return w.interact(
        plot_scrubbed_slice,
        volume=w.fixed(volume), masks=w.fixed(masks), title=w.fixed(title),
        index=w.IntSlider(len(volume) // 2, 0, len(volume) - 1, description="slice"),
        low=w.FloatSlider(0.0, min=0.0, max=1.0, step=0.01, description="window low"),
        high=w.FloatSlider(1.0, min=0.0, max=1.0, step=0.01, description="window high"),
    )
