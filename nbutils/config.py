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

PROFILES = {  # the data's settings; each method's own (epochs, ...) live with its options (methods.base)
    "ci": dict(image_size=128, n_subjects=3, slices_per_volume=8),
    "full": dict(image_size=256, n_subjects=10, slices_per_volume=24),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings shared by every notebook and the command line."""

    profile: str
    device: torch.device
    image_size: int  # pixels, square slices
    n_subjects: int  # phantom subjects
    slices_per_volume: int  # axial slices kept per volume
    k: int = 4  # clusters
    seed: int = 0
    lgg_path: Path | None = None  # a kaggle_3m-layout folder, when the user gives one
    data_dir: Path = Path("data")  # cache lives in data_dir / "cache"
    build_dir: Path = Path("build")

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def method(self, name: str, **options):
        """The registry's method ``name`` with this profile's options.

        Parameters
        ----------
        name : a method of :data:`nbutils.methods.METHODS`.
        **options : its options on top (this config's ``seed`` when it has one).

        Returns
        -------
        :class:`nbutils.methods.Method`.
        """
        from nbutils import methods

        return methods.get(name, self.profile, {"seed": self.seed}, **options)


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The checkout's root (the folder holding ``nbutils/`` and ``notebooks/``).

    Parameters
    ----------
    start : where to look from (default: the working directory).

    Returns
    -------
    Path; the working directory when no checkout is found above it.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbutils").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def resolve_profile(profile: str | None = None) -> str:
    """The profile's name.

    Parameters
    ----------
    profile : ``ci`` or ``full``; None: ``NBUTILS_PROFILE``, else ``ci`` under CI or without CUDA, else ``full``.

    Returns
    -------
    str; a ValueError for an unknown profile.
    """
    name = profile or os.environ.get("NBUTILS_PROFILE")
    if not name:
        ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        name = "ci" if ci or not torch.cuda.is_available() else "full"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return name


def load(profile: str | None = None, device: str | None = None, verbose: bool = True, **overrides) -> Config:
    """Build the run's :class:`Config` and print a one-line summary.

    Parameters
    ----------
    profile : see :func:`resolve_profile`.
    device : see :func:`nbutils.runtime.choose_device`; None: ``NBUTILS_DEVICE`` or auto.
    verbose : print the summary.
    **overrides : values of :class:`Config` fields (``lgg_path`` too).

    Returns
    -------
    :class:`Config`. ``NBUTILS_LGG`` names a ``kaggle_3m`` folder to use besides the embedded data;
    ``NBUTILS_DATA_DIR`` and ``NBUTILS_BUILD_DIR`` move the cache and build folders (default: ``data/``
    and ``build/`` at the project root).
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
            f"subjects={cfg.n_subjects} slices/volume={cfg.slices_per_volume} "
            f"k={cfg.k} seed={cfg.seed} lgg={cfg.lgg_path or '-'}"
        )
    return cfg
