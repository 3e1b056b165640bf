"""Run profiles: ``ci`` (small, fast, CPU) and ``full`` (the real settings, for a GPU).

The profile comes from ``NBUTILS_PROFILE``; with ``CI=true`` it is ``ci``; otherwise it is
``full`` on a CUDA GPU and ``ci`` elsewhere, so a first run on a laptop finishes in minutes.
Notebooks call :func:`load` once, in their config cell.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from nbutils.runtime import choose_device

PROFILES = {
    "ci": dict(image_size=128, n_subjects=3, slices_per_volume=8, epochs=3, pretrain_epochs=15, batch_size=8,
               acwe_epochs=30, cuts_epochs=10, cuts_points=2048,
               gmm_steps=100, gmm_epochs=20, unet_epochs=10),
    "full": dict(image_size=256, n_subjects=10, slices_per_volume=24, epochs=20, pretrain_epochs=100, batch_size=16,
                 acwe_epochs=100, cuts_epochs=50, cuts_points=4096,
                 gmm_steps=200, gmm_epochs=100, unet_epochs=50),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings shared by every notebook and the command line."""

    profile: str
    device: torch.device
    image_size: int  # pixels, square slices
    n_subjects: int  # phantom subjects
    slices_per_volume: int  # axial slices kept per volume
    epochs: int  # training rounds of a method (DCN: alternations of network and centre updates)
    pretrain_epochs: int  # autoencoder pretraining
    batch_size: int
    acwe_epochs: int  # ACWE network training (and again for fine-tuning)
    cuts_epochs: int  # CUTS stage-1 (contrastive encoder) training
    cuts_points: int  # CUTS stage 2: points are coarse-grained to at most this many
    gmm_steps: int  # deep GMM per-image mode: most steps per image (the paper's default 200)
    gmm_epochs: int  # deep GMM trained mode: epochs over the training slices
    unet_epochs: int  # supervised reference U-Net
    k: int = 4  # clusters
    seed: int = 0
    lgg_path: Path | None = None  # a kaggle_3m-layout folder, when the user gives one
    data_dir: Path = Path("data")  # cache lives in data_dir / "cache"
    build_dir: Path = Path("build")

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The checkout's root (the folder holding ``nbutils/`` and ``notebooks/``), else the cwd."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbutils").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def resolve_profile(profile: str | None = None) -> str:
    """The profile name: the argument, else ``NBUTILS_PROFILE``, else ``ci`` under CI or without CUDA."""
    name = profile or os.environ.get("NBUTILS_PROFILE")
    if not name:
        ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        name = "ci" if ci or not torch.cuda.is_available() else "full"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return name


def load(profile: str | None = None, device: str | None = None, verbose: bool = True, **overrides) -> Config:
    """Build the :class:`Config` for this run and print a one-line summary.

    ``NBUTILS_LGG`` names a ``kaggle_3m`` folder to use besides the embedded data;
    ``NBUTILS_DATA_DIR`` and ``NBUTILS_BUILD_DIR`` move the cache and build folders
    (default: ``data/`` and ``build/`` at the project root).
    """
    name = resolve_profile(profile)
    root = project_root()
    lgg = overrides.pop("lgg_path", None) or os.environ.get("NBUTILS_LGG") or None
    settings = dict(PROFILES[name])
    settings.update(overrides)
    cfg = Config(
        profile=name,
        device=choose_device(device or os.environ.get("NBUTILS_DEVICE", "auto")),
        lgg_path=Path(lgg) if lgg else None,
        data_dir=Path(os.environ.get("NBUTILS_DATA_DIR") or root / "data"),
        build_dir=Path(os.environ.get("NBUTILS_BUILD_DIR") or root / "build"),
        **settings,
    )
    if verbose:
        print(
            f"profile={cfg.profile} device={cfg.device} image_size={cfg.image_size} "
            f"subjects={cfg.n_subjects} slices/volume={cfg.slices_per_volume} epochs={cfg.epochs} "
            f"pretrain_epochs={cfg.pretrain_epochs} "
            f"k={cfg.k} seed={cfg.seed} lgg={cfg.lgg_path or '-'}"
        )
    return cfg
