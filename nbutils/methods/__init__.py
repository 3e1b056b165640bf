"""The method registry: one line per method. Every method has the interface of
:mod:`nbutils.methods.base` (options, ``labels``, and for the methods that learn ``fit`` / ``load``)."""

from __future__ import annotations

import os

from nbutils.methods.acwe import ACWE
from nbutils.methods.base import Method, Model, TrainableMethod
from nbutils.methods.classical import (ChanVeseMethod, GMMMethod, KMeansMethod, MorphChanVeseMethod, OtsuMethod,
                                       SVGMMMethod, ZScoreMethod)
from nbutils.methods.cuts import CUTS
from nbutils.methods.dcn import DCN
from nbutils.methods.deepgmm import DeepGMM
from nbutils.methods.felzenszwalb import Felzenszwalb
from nbutils.methods.slic import SLIC
from nbutils.methods.supervised import UNet
from nbutils.train import load_checkpoint

METHODS: dict[str, type[Method]] = {m.name: m for m in (
    KMeansMethod,
    GMMMethod,
    SVGMMMethod,
    OtsuMethod,
    ZScoreMethod,
    ChanVeseMethod,
    MorphChanVeseMethod,
    Felzenszwalb,
    SLIC,
    DCN,
    ACWE,
    CUTS,
    DeepGMM,
    UNet,
)}


def get(name: str, profile: str = "full", common: dict | None = None, **options) -> Method:
    """The registry's method with the options of a profile.

    Parameters
    ----------
    name : a key of :data:`METHODS`.
    profile : ``"full"`` or ``"ci"``.
    common : options applied only to the methods that have them (e.g. ``{"k": 4, "seed": 0}`` for many
        methods at once).
    **options : the method's own options on top.

    Returns
    -------
    :class:`Method`; a ValueError lists the known names, or the method's options.
    """
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
    shared = {k: v for k, v in (common or {}).items() if k in cls.Options.__dataclass_fields__}
    return cls.for_profile(profile, **{**shared, **options})


def load(path: str | os.PathLike, name: str | None = None, device="cpu", **options) -> Model:
    """The model of a checkpoint, with the options it was trained with.

    Parameters
    ----------
    path : the checkpoint.
    name : the method it must be (None: any).
    device : where the model runs.
    **options : options on top (None values skipped); they must not change its training (InputError naming
        the file and the options that differ).

    Returns
    -------
    :class:`Model`.
    """
    state = load_checkpoint(path, name)
    method = METHODS.get(state.get("method"))
    if method is None or not issubclass(method, TrainableMethod):
        from nbutils.errors import InputError

        raise InputError(path, f"holds no model of a known method ({state.get('method')!r})")
    stored = {k: v for k, v in method.Options.stored(state.get("options", {})).items()
              if k in method.Options.__dataclass_fields__}
    return method(method.Options(**{**stored, **{k: v for k, v in options.items() if v is not None}})).load(path, device)


__all__ = ["METHODS", "Method", "Model", "TrainableMethod", "get", "load"]
