"""One shape for every method, the way scikit-learn estimators share one interface.

- :class:`Options`: a frozen dataclass per method, each field declared with :func:`option` (default,
  one line of help, valid range or choices, and whether it changes training). Defaults are the full
  settings; ``ci`` (a class attribute) holds the few the ``ci`` profile shrinks;
  :meth:`Options.for_profile` applies profile, then the user's overrides, in that one place.
- :class:`Method`: ``labels(volume)`` gives cluster ids (S, H, W) int, 0 outside the brain. Methods that
  learn (:class:`TrainableMethod`) also have ``fit(volumes) -> Model`` and ``load(path) -> Model``; without
  a model, ``labels`` fits on the volume itself. ``supervised`` methods learn from the lesion masks.
- :class:`Model`: a fitted method; ``labels(volume)``, ``save(path)``. Checkpoints hold the method's
  name, its options and a fingerprint of the training input, so that a re-run resumes only the same
  training (:func:`check_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import typing
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from nbutils import metrics
from nbutils.data.datasets import SliceDataset, Volume, at_size, square_volume
from nbutils.data.streaming import StreamingSlices, distinct_rows
from nbutils.errors import InputError
from nbutils.precision import AMP_MODES
from nbutils.train import load_checkpoint, remove_partials

MAX_CLUSTERS = 64  # the most clusters (k) any method takes: the work grows with k
MAX_SEED = 2**32 - 1  # the largest seed every library takes (NumPy, scikit-learn, torch)


def option(default, help: str, *, low=None, high=None, choices=None, train: bool = True, before=None):
    """A field of an :class:`Options` dataclass.

    Parameters
    ----------
    default : its default (the full profile's).
    help : one line, with the unit.
    low, high : the valid range (None: open).
    choices : the valid values.
    train : whether a checkpoint must have been trained with the same value to be resumed or applied
        (False for how a model labels, e.g. CUTS's stage 2, and for how long it trains: more epochs
        continue a checkpoint).
    before : for an option added after checkpoints were first written, a function of such a checkpoint's
        stored options that gives the value it trained with (None: checkpoints have always stored it).

    Returns
    -------
    dataclasses.Field.
    """
    return dataclasses.field(default=default, metadata=dict(help=help, low=low, high=high, choices=choices,
                                                            train=train, before=before))


@dataclasses.dataclass(frozen=True)
class Options:
    """The base of every method's options: subclasses declare their fields with :func:`option`."""

    ci: ClassVar[dict] = {}  # field -> value in the ci profile (small, fast, CPU)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value}")
            if meta.get("choices") and value not in meta["choices"]:
                raise ValueError(f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
            if meta.get("low") is not None and value < meta["low"]:
                raise ValueError(f"{f.name} must be at least {meta['low']}, got {value}")
            if meta.get("high") is not None and value > meta["high"]:
                raise ValueError(f"{f.name} must be at most {meta['high']}, got {value}")

    @classmethod
    def for_profile(cls, profile: str = "full", **overrides) -> "Options":
        """The options of a profile, then overrides.

        Parameters
        ----------
        profile : ``"full"`` (the defaults) or ``"ci"`` (with :attr:`ci` applied).
        **overrides : field values on top (None values are skipped).

        Returns
        -------
        the options; a ValueError names an unknown field, or a value out of its range.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in overrides if k not in names]
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; this method has {', '.join(names)}")
        values = dict(cls.ci) if profile == "ci" else {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def training(self) -> dict:
        """The options that change what training learns (a checkpoint must match them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("train", True)}

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def stored(cls, options: dict) -> dict:
        """A checkpoint's stored options, with what an older checkpoint trained with for the options added since.

        Parameters
        ----------
        options : the checkpoint's ``options``.

        Returns
        -------
        a new dict; an option it lacks and that declares no ``before`` stays missing.
        """
        before = {f.name: f.metadata["before"] for f in dataclasses.fields(cls) if f.metadata.get("before")}
        return {**{k: rule(options) for k, rule in before.items() if k not in options}, **options}

    @classmethod
    def describe(cls) -> list[dict]:
        """One row per option, for ``--help`` and ``python -m nbutils methods``.

        Returns
        -------
        list of dicts: name, type, default, ci value, help, choices.
        """
        hints = typing.get_type_hints(cls)
        return [dict(name=f.name, type=_type_name(hints[f.name]), default=f.default, ci=cls.ci.get(f.name, f.default),
                     help=f.metadata.get("help", ""), choices=f.metadata.get("choices"))
                for f in dataclasses.fields(cls)]


def _type_name(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0] if args else hint).__name__


@dataclasses.dataclass(frozen=True)
class DeepOptions(Options):
    """Options of the methods that train a network: they work on square slices of ``size`` pixels."""

    seed: int = option(0, "random seed (weights, batches, sampling)", low=0, high=MAX_SEED)
    size: int = option(256, "working image size (pixels, square); labels are mapped back to the input", low=16)
    batch_size: int = option(16, "slices per training batch", low=1)
    amp: str = option("auto", "mixed precision of the network on CUDA: bf16 where the GPU has it natively, else fp16 "
                      "with loss scaling (auto); statistics stay float32; off: float32 throughout", choices=AMP_MODES,
                      train=False)

    ci: ClassVar[dict] = dict(size=128, batch_size=8)


class Method:
    """A segmentation method: ``labels(volume)`` gives cluster ids (S, H, W), 0 outside the brain.

    Subclasses set ``name`` (the command line's), ``title`` (tables'), ``Options``, ``reference`` (the
    paper) and implement :meth:`labels`.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    reference: ClassVar[str] = ""
    supervised: ClassVar[bool] = False  # learns from lesion masks: segmenting needs a trained model
    trainable: ClassVar[bool] = False  # has a model to fit, save and load
    learns: ClassVar[bool] = False  # fit() learns one model that serves many volumes

    def __init__(self, options: Options | None = None, **overrides):
        if options is not None and overrides:
            options = dataclasses.replace(options, **overrides)
        self.options = options if options is not None else self.Options(**overrides)
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{self.name} takes {self.Options.__name__}, got {type(self.options).__name__}")

    @classmethod
    def for_profile(cls, profile: str = "full", **overrides) -> "Method":
        """The method with :meth:`Options.for_profile` options.

        Parameters
        ----------
        profile, **overrides : see :meth:`Options.for_profile`.

        Returns
        -------
        the method.
        """
        return cls(cls.Options.for_profile(profile, **overrides))

    def check(self, volumes) -> None:
        """Raise a ValueError naming the volume when the options cannot apply to it (before any work).

        Parameters
        ----------
        volumes : a list of :class:`Volume` or a :class:`~nbutils.data.streaming.StreamingSlices`.
        """
        k = getattr(self.options, "k", None)
        if k is None:
            return
        flair_only = getattr(self.options, "sequences", "all") == "flair"
        if isinstance(volumes, StreamingSlices):  # counted when the slices were cached, every channel
            counts = [(v["name"], v["brain_pixels"], v.get("distinct", k)) for v in volumes.volumes]
        else:
            counts = [(v.name, int(v.brain.sum()), distinct_rows(v.image[:, v.flair_channel][v.brain][:, None]
                                                                 if flair_only else np.moveaxis(v.image, 1, -1)[v.brain]))
                      for v in volumes]
        for name, pixels, distinct in counts:
            if pixels < k:
                raise ValueError(f"{name}: {pixels} brain pixel(s), fewer than k={k} clusters")
            if distinct < k:
                raise ValueError(f"{name}: {distinct} distinct intensit{'y' if distinct == 1 else 'ies'} inside the "
                                 f"brain, fewer than k={k} clusters; lower --k")

    def labels(self, volume: Volume, *, device="cpu", progress: bool = True) -> np.ndarray:
        """Cluster ids of one volume.

        Parameters
        ----------
        volume : the volume.
        device : where a learning method fits (on the volume itself).
        progress : progress bars.

        Returns
        -------
        (S, H, W) int64: 1..n inside ``volume.brain``, 0 outside.
        """
        raise NotImplementedError

    def lesion(self, labels: np.ndarray, volume: Volume, largest_cc: bool = True) -> np.ndarray:
        """The lesion among a volume's labels.

        Parameters
        ----------
        labels : (S, H, W) cluster ids.
        volume : the volume.
        largest_cc : one lesion (see :func:`nbutils.metrics.label_free_lesion`).

        Returns
        -------
        (S, H, W) bool: the label-free rule's (supervised methods: their own lesion class).
        """
        return metrics.label_free_lesion(labels, volume.flair, volume.brain, largest_cc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


class Model:
    """A fitted :class:`TrainableMethod`: ``labels(volume)`` and ``save(path)``.

    ``state`` is what the checkpoint stores (the network's ``config`` and weights ``model``, the
    ``history``, the method's own arrays, its ``options`` and ``fingerprint``); the network is built
    from it by the method's :meth:`~TrainableMethod.network` unless it is given.
    """

    def __init__(self, method: "TrainableMethod", state: dict, device="cpu", network: torch.nn.Module | None = None):
        self.method, self.state, self.device = method, state, torch.device(device)
        if network is None and "model" in state:
            network = method.network(state["config"])
            network.load_state_dict(state["model"])
        self.network = None if network is None else network.to(self.device).eval()

    @property
    def options(self) -> Options:
        return self.method.options

    @property
    def history(self) -> list[dict]:
        """One row of losses per epoch of training."""
        return list(self.state.get("history", []))

    def using(self, method: "TrainableMethod") -> "Model":
        """This model with another instance of its method whose training options are the same.

        Parameters
        ----------
        method : e.g. CUTS with another stage 2.

        Returns
        -------
        a model sharing this one's network; a ValueError names the training options that differ.
        """
        differ = _differences(self.options.training(), method.options.training())
        if type(method) is not type(self.method) or differ:
            raise ValueError(f"the model was trained with {differ or type(self.method).__name__}")
        return type(self)(method, self.state, self.device, self.network)

    def labels(self, volume: Volume) -> np.ndarray:
        """Cluster ids of one volume.

        Parameters
        ----------
        volume : the volume.

        Returns
        -------
        (S, H, W) int64, 0 outside its brain mask.
        """
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Write the checkpoint atomically: method, options, fingerprint and ``state``.

        Parameters
        ----------
        path : the ``.pt`` file.
        """
        from nbutils.train import save_checkpoint

        weights = {} if self.network is None else dict(model=self.network.state_dict())
        save_checkpoint(path, {**self.state, **weights, "method": self.method.name, "options": self.options.as_dict()})


class DeepModel(Model):
    """A model that labels square slices of ``options.size`` pixels: :meth:`labels` squares the volume,
    calls :meth:`square_labels` and maps the labels back to the volume's shape (nearest neighbour)."""

    def labels(self, volume: Volume) -> np.ndarray:
        return at_size(volume, self.options.size, self.square_labels)

    def square_labels(self, volume: Volume) -> np.ndarray:
        """Labels of a volume already squared to ``options.size``.

        Parameters
        ----------
        volume : (S, C, size, size) volume.

        Returns
        -------
        (S, size, size) int64.
        """
        raise NotImplementedError


class TrainableMethod(Method):
    """A method that learns: :meth:`fit` returns a :class:`Model`; :meth:`labels` without a model fits
    on the volume itself (unsupervised methods only)."""

    trainable: ClassVar[bool] = True
    learns: ClassVar[bool] = True
    Model: ClassVar[type[Model]] = Model
    training_defaults: ClassVar[dict] = {}  # options the train command sets unless the user does

    def network(self, config: dict) -> torch.nn.Module:
        """The untrained network a checkpoint's ``config`` describes.

        Parameters
        ----------
        config : the network's constructor arguments.

        Returns
        -------
        torch.nn.Module.
        """
        raise NotImplementedError

    def training_set(self, volumes) -> tuple[torch.utils.data.Dataset, str]:
        """The training data of :meth:`fit`, after :meth:`check`.

        Parameters
        ----------
        volumes : a list of :class:`Volume` (held in memory) or a
            :class:`~nbutils.data.streaming.StreamingSlices` (read from disk; its ``size`` must match).

        Returns
        -------
        (slices at the options' ``size``, the :func:`fingerprint` of the input).
        """
        self.check(volumes)
        if isinstance(volumes, StreamingSlices):
            if volumes.size != self.options.size:
                raise ValueError(f"{volumes.folder}: slices cached at {volumes.size} pixels, the method works at "
                                 f"{self.options.size}")
            return volumes, volumes.fingerprint
        dataset = SliceDataset([square_volume(v, self.options.size) for v in volumes])
        dataset.flair_channel = volumes[0].flair_channel if volumes else 0
        return dataset, fingerprint(volumes)

    def fit(self, volumes: list[Volume], *, device="cpu", checkpoint: str | os.PathLike | None = None,
            restart: bool = False, progress: bool = True) -> Model:
        """Train on volumes.

        Parameters
        ----------
        volumes : a list of :class:`Volume` or a :class:`~nbutils.data.streaming.StreamingSlices`.
        device : where it trains.
        checkpoint : written atomically every epoch and resumed when it holds the same training
            (:func:`check_checkpoint`).
        restart : discard an existing checkpoint and start over.
        progress : progress bars.

        Returns
        -------
        :class:`Model`.
        """
        raise NotImplementedError

    def labels(self, volume: Volume, *, device="cpu", progress: bool = True) -> np.ndarray:
        if self.supervised:
            raise ValueError(f"{self.name} is supervised: train it first (python -m nbutils train {self.name} "
                             "INPUT CKPT) and segment with --checkpoint")
        return self.fit([volume], device=device, progress=progress).labels(volume)

    def load(self, path: str | os.PathLike, device="cpu") -> Model:
        """The model of a checkpoint of this method.

        Parameters
        ----------
        path : the checkpoint.
        device : where the model runs.

        Returns
        -------
        :class:`Model`; InputError naming the file when it was trained with other training options.
        """
        state = load_checkpoint(path, self.name)
        if "options" not in state:
            raise InputError(path, "holds no training options (an older nbutils wrote it); train it again")
        differ = _differences(self.options.stored(state["options"]), self.options.training())
        if differ:
            raise InputError(path, f"was trained with {differ}; drop those options or use another checkpoint")
        return self.Model(self, state, device)


def _differences(stored: dict, wanted: dict) -> str:
    """'k=4 (asked 6), ...' for the keys of ``wanted`` whose stored value differs or is missing; '' when none."""
    return ", ".join(f"{k}={stored[k]!r} (asked {v!r})" if k in stored
                     else f"{k}=? (not stored: an older nbutils wrote it)"
                     for k, v in wanted.items() if k not in stored or stored[k] != v)


def fingerprint(volumes: list[Volume]) -> str:
    """A short hash of what a method trains on, so that a checkpoint knows its input.

    Parameters
    ----------
    volumes : the training volumes: every one's name, image, brain mask and lesion mask (when it has one).

    Returns
    -------
    16 hexadecimal characters.
    """
    digest = hashlib.sha256()
    for v in volumes:
        digest.update(v.name.encode())
        for array in (v.image, v.brain, v.target):
            if array is not None:
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def check_checkpoint(path: str | os.PathLike | None, method: TrainableMethod, print_: str,
                     restart: bool = False, sidecars: tuple[str, ...] = ()) -> bool:
    """Before any training: may ``path`` be written, and does it hold the same training?

    Parameters
    ----------
    path : the checkpoint (None: nothing to check).
    method : the method about to train.
    print_ : the :func:`fingerprint` of the training input.
    restart : remove the checkpoint and its sidecars and start over.
    sidecars : suffixes of the checkpoints of earlier phases (``path + suffix``, e.g. DCN's pretraining).

    Returns
    -------
    True when ``path`` exists and training resumes from it. A checkpoint of another method, other training
    options or other input is an InputError naming the difference; partial files of an interrupted write
    are removed.
    """
    if path is None:
        return False
    path = Path(path)
    files = [path, *(Path(str(path) + s) for s in sidecars)]
    folder = path.parent
    if path.is_dir():
        raise InputError(path, "is a folder, not a checkpoint file")
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is not a folder: the checkpoint cannot be saved there")
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(folder, "is not writable: the checkpoint cannot be saved there")
    remove_partials(*files)
    if restart:
        for f in files:
            f.unlink(missing_ok=True)
        return False
    if path.exists():
        load_checkpoint(path, method.name)
    for f in (f for f in files if f.exists()):
        state = load_checkpoint(f)
        differ = _differences(method.options.stored(state.get("options", {})), method.options.training())
        if differ:
            raise InputError(f, f"holds training with {differ}; pass --restart to start over, or use another "
                                "checkpoint")
        if state.get("fingerprint") != print_:
            raise InputError(f, "was trained on other input; pass --restart to start over, or use another checkpoint")
    return path.exists()


def training_state(method: TrainableMethod, print_: str) -> dict:
    """What every checkpoint a method writes carries besides weights.

    Parameters
    ----------
    method : the method.
    print_ : the input's fingerprint.

    Returns
    -------
    dict with ``options`` and ``fingerprint``.
    """
    return dict(options=method.options.as_dict(), fingerprint=print_)
