"""The torch kit: device, seeding, float64 and one training loop for every torch chapter.

Part of the book's kit (see ``CONTRIBUTING.md``): the one kit module that science modules may
import. It knows nothing of chapters, scales or claims.

- :func:`device` picks where tensors live: the CPU unless a GPU is present *and* asked for with
  the environment variable ``BOOK_DEVICE=cuda`` (how the ``paper`` scale runs on a GPU).
- :func:`seed_all` seeds torch's global generator (initialisation, dropout) and numpy's legacy
  global one, and returns a fresh ``torch.Generator`` for explicit draws.
- :func:`float64` is a context manager (and :func:`set_float64` a switch) for the default dtype.
- :func:`fit` is the training loop: minibatches shuffled by a generator seeded from an explicit
  seed, an optimizer (Adam by default) with an optional per-step learning-rate schedule, a progress
  bar (:func:`lib.progress.bar`, silenced in the book by ``TQDM_DISABLE``), and a :class:`History`
  of the loss and metrics per epoch. On the CPU it is deterministic for a fixed seed and a fixed
  number of threads (``torch.set_num_threads``; the pipeline fixes it per notebook).

Example::

    from lib import torchkit
    gen = torchkit.seed_all(0)
    model = torch.nn.Linear(3, 1)
    hist = torchkit.fit(model, torch.nn.functional.mse_loss, (x, y), epochs=20, lr=1e-2,
                        batch_size=32, seed=0)
    hist.series("loss")
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from . import progress, seeds

#: Environment variable that asks for a GPU when :func:`device` is called with ``"auto"``.
DEVICE_ENV = "BOOK_DEVICE"
#: Optimizers :func:`fit` knows by name (any other is passed as a callable).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}

Array = torch.Tensor | np.ndarray
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float | torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Device, seeds, dtype
# ----------------------------------------------------------------------------------------------


def device(prefer: str = "auto") -> torch.device:
    """The device to compute on.

    Args:
        prefer: ``"cpu"``; ``"cuda"`` (an error where no GPU is present); or ``"auto"``: the GPU
            only where one is present and the environment variable ``BOOK_DEVICE`` is ``"cuda"``,
            else the CPU (with a warning where ``BOOK_DEVICE=cuda`` but no GPU is present).

    Returns:
        A ``torch.device``.

    Raises:
        ValueError: for an unknown ``prefer`` or ``BOOK_DEVICE`` value.
        RuntimeError: for ``"cuda"`` where torch sees no GPU.
    """
    choices = ("auto", "cpu", "cuda")
    if prefer not in choices:
        raise ValueError(f"unknown device {prefer!r}; expected one of {', '.join(choices)}")
    if prefer == "auto":
        asked = os.environ.get(DEVICE_ENV, "cpu").strip().lower() or "cpu"
        if asked not in ("cpu", "cuda"):
            raise ValueError(f"{DEVICE_ENV}={asked!r}; expected 'cpu' or 'cuda'")
        if asked == "cuda" and not torch.cuda.is_available():
            warnings.warn(f"{DEVICE_ENV}=cuda but torch sees no GPU; computing on the CPU", stacklevel=2)
            return torch.device("cpu")
        return torch.device(asked)
    if prefer == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no GPU (torch.cuda.is_available() "
                           f"is False; torch {torch.__version__}); use 'cpu' or 'auto'")
    return torch.device(prefer)


_pick_device = device  # for fit, whose argument ``device`` shadows the function


_check_seed = seeds.check_seed  # the book's one check (lib.seeds)


def seed_all(seed: int) -> torch.Generator:
    """Seed torch and numpy together, and return a torch generator of the same seed.

    Seeds torch's global generator (``torch.manual_seed``: the CPU and every GPU), which
    initialisation and dropout draw from, and numpy's legacy global generator (``np.random.seed``),
    which some libraries use. The book's own numpy draws come from explicit generators: use
    ``np.random.default_rng(seed)`` for those.

    Args:
        seed: a non-negative int.

    Returns:
        A new ``torch.Generator`` (CPU) seeded with ``seed``, for explicit draws such as
        ``torch.randperm(n, generator=gen)``.
    """
    seed = _check_seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- the legacy global generator, on purpose
    return seeds.torch_generator(seed)


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """Context manager: torch's default dtype is float64 inside, and restored afterwards.

    Example::

        with torchkit.float64():
            layer = torch.nn.Linear(3, 2)   # float64 weights
    """
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def set_float64(flag: bool = True) -> None:
    """Make torch's default dtype float64 (``flag`` true) or float32 (``flag`` false)."""
    torch.set_default_dtype(torch.float64 if flag else torch.float32)


# ----------------------------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit` returns: one record per epoch.

    Attributes:
        records: per epoch, a dict with ``"loss"`` (the mean training loss over the epoch's
            minibatches, weighted by their sizes), one entry per training metric (same mean),
            ``"lr"`` (the learning rate at the end of the epoch) and, where ``eval_data`` was given,
            ``"eval_loss"`` and ``"eval_<metric>"`` on it (model in evaluation mode).
    """

    records: list[dict[str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def names(self) -> tuple[str, ...]:
        """The recorded quantities."""
        return tuple(self.records[0]) if self.records else ()

    def series(self, name: str) -> np.ndarray:
        """The values of ``name`` over the epochs, ``(epochs,)``.

        Raises:
            KeyError: for a name that was not recorded (the message lists the recorded ones).
        """
        if name not in self.names:
            raise KeyError(f"{name!r} was not recorded; recorded: {', '.join(self.names) or 'nothing'}")
        return np.array([r[name] for r in self.records], dtype=float)

    @property
    def last(self) -> dict[str, float]:
        """The record of the last epoch."""
        if not self.records:
            raise ValueError("the history is empty")
        return dict(self.records[-1])


class Loop:
    """The scaffold of every training loop in the book: device, seeding, progress bar, per-step
    log and an early-stop hook, so that each loop keeps only its own step.

    ``Loop(steps, seed=..., device=...)`` resolves the device once (:func:`device`: the preset's
    ``device`` reaches every computation, a GPU that is asked for and missing is an error, not a
    silent CPU run) and makes the run's generator, ``loop.gen``, from :mod:`lib.seeds`
    (``seeds.torch_generator(seed)``; with ``seed_globals``, :func:`seed_all` first, for loops
    whose models draw their initialisation from torch's global generator). Iterating over it
    yields the steps (an int ``n`` means ``range(n)``, or any iterable) behind a progress bar.
    :meth:`log` appends one record to ``loop.history`` (a :class:`History`) and shows it on the
    bar; :meth:`stop` (or ``early_stop(history)`` returning true after a log) ends the iteration
    after the current step, and ``loop.stopped`` says why.

    Example::

        loop = torchkit.Loop(P.steps, seed=seed, device=P.device, desc="GateON")
        model.to(loop.device)
        for step in loop:
            idx = torch.randint(n, (batch,), generator=loop.gen).to(loop.device)
            loss = train_step(model, x[idx], y[idx])
            loop.log(loss=loss)

    Args:
        steps: the number of steps (int >= 0) or an iterable of them.
        seed: the run's seed (a non-negative int).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``, a ``torch.device`` or None (``"auto"``).
        desc: the progress bar's label.
        progress: show a bar (True), none (False), or a callable that wraps an iterable.
        seed_globals: call :func:`seed_all` (torch's and numpy's global generators) as well.
        generator_on_device: put ``loop.gen`` on ``loop.device`` (for draws made on the device)
            rather than on the CPU.
        early_stop: optional ``fn(history) -> bool``, asked after every :meth:`log`.
    """

    def __init__(self, steps, *, seed: int, device: str | torch.device | None = "auto",
                 desc: str = "training", progress: bool | Callable = True, seed_globals: bool = False,
                 generator_on_device: bool = False,
                 early_stop: Callable[[History], bool] | None = None):
        if isinstance(steps, bool) or (isinstance(steps, (int, np.integer)) and steps < 0):
            raise ValueError(f"steps must be an int >= 0 or an iterable, got {steps!r}")
        if isinstance(steps, (int, np.integer)):
            steps = range(int(steps))
        elif not hasattr(steps, "__iter__"):
            raise ValueError(f"steps must be an int >= 0 or an iterable, got {steps!r}")
        if early_stop is not None and not callable(early_stop):
            raise ValueError(f"early_stop must be a callable fn(history) -> bool, got {early_stop!r}")
        self.seed = _check_seed(seed)
        self.device = device if isinstance(device, torch.device) else _pick_device(device or "auto")
        if seed_globals:
            gen = seed_all(self.seed)
            self.gen = gen if not generator_on_device else seeds.torch_generator(self.seed, device=self.device)
        else:
            self.gen = seeds.torch_generator(self.seed, device=self.device if generator_on_device else "cpu")
        self.history = History()
        self.stopped: str | None = None
        self._early_stop = early_stop
        if callable(progress):
            self._bar = progress(steps)
        else:
            self._bar = progress_bar(steps, desc, bool(progress))

    def generator(self, *stream, on_device: bool = False) -> torch.Generator:
        """Another generator of the run: the stream ``(seed, *stream)`` of :mod:`lib.seeds`."""
        return seeds.torch_generator(self.seed, *stream, device=self.device if on_device else "cpu")

    def __iter__(self):
        for step in self._bar:
            yield step
            if self.stopped is not None:
                break

    def log(self, **values) -> None:
        """Record one step's values (floats, or tensors/arrays kept as they are)."""
        self.history.records.append(values)
        if hasattr(self._bar, "set_postfix"):
            shown = {k: f"{v:.4g}" for k, v in values.items() if isinstance(v, (int, float))}
            if shown:
                self._bar.set_postfix(shown, refresh=False)
        if self._early_stop is not None and self.stopped is None and self._early_stop(self.history):
            self.stop("early_stop")

    def stop(self, reason: str = "stop") -> None:
        """End the iteration after the current step; ``reason`` is kept in ``loop.stopped``."""
        self.stopped = str(reason)


def _as_tensor(a: Array, what: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    raise ValueError(f"{what} must be a torch tensor or a numpy array, got {type(a).__name__}")


def _pair(data, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{what} must be a pair (x, y) of tensors or arrays")
    x, y = _as_tensor(data[0], f"{what} x"), _as_tensor(data[1], f"{what} y")
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"{what}: x and y must have the same length along the first axis, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) == 0:
        raise ValueError(f"{what} is empty")
    return x, y


def _optimizer(optimizer, params, lr: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)} "
                             "or a callable (params, lr) -> torch.optim.Optimizer")
        return OPTIMIZERS[optimizer](params, lr=lr)
    if callable(optimizer):
        return optimizer(params, lr)
    raise ValueError(f"optimizer must be a name or a callable, got {optimizer!r}")


def _evaluate(model, loss_fn: LossFn, metrics: Mapping[str, MetricFn], x, y, batch_size: int,
              dev: torch.device) -> dict[str, float]:
    model.eval()
    sums = dict.fromkeys(("loss", *metrics), 0.0)
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            xb, yb = x[s: s + batch_size].to(dev), y[s: s + batch_size].to(dev)
            out = model(xb)
            sums["loss"] += float(loss_fn(out, yb)) * len(xb)
            for name, fn in metrics.items():
                sums[name] += float(fn(out, yb)) * len(xb)
    return {f"eval_{k}": v / len(x) for k, v in sums.items()}


def fit(model: torch.nn.Module, loss_fn: LossFn, data, *, epochs: int, lr: float, batch_size: int,
        seed: int, optimizer: str | Callable = "adam", schedule: Callable[[int], float] | None = None,
        metrics: Mapping[str, MetricFn] | None = None, eval_data=None,
        device: str | torch.device | None = None, min_batch: int = 1, progress: bool = True,
        desc: str = "training") -> History:
    """Train ``model`` by minibatch gradient descent and return its :class:`History`.

    Every epoch: the model is put in training mode, the samples are shuffled with
    ``torch.randperm`` from a ``torch.Generator`` seeded with ``seed`` (one generator for the
    whole run, so epoch ``k`` has the same order in every run), and for each minibatch
    ``loss = loss_fn(model(xb), yb)``, ``zero_grad``, ``backward``, ``step`` of the optimizer,
    then a step of the schedule. At the end the model is in evaluation mode.

    Other randomness of the model (dropout) comes from torch's global generator: seed it, with
    :func:`seed_all`, before building the model. On the CPU two runs with the same seed, the same
    initial model and the same number of threads give identical weights and histories.

    Args:
        model: a torch module; moved to the device.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``, the mean loss of a minibatch
            (e.g. ``torch.nn.functional.cross_entropy``); ``outputs = model(xb)``.
        data: ``(x, y)``, tensors or numpy arrays with the samples along the first axis (numpy
            arrays keep their dtype: pass float64 inputs to a float64 model, int64 class labels).
        epochs: passes over the data, >= 1.
        lr: the learning rate, > 0.
        batch_size: samples per minibatch, >= 1 (the last minibatch of an epoch may be smaller).
        seed: seeds the minibatch order (a non-negative int).
        optimizer: ``"adam"`` or ``"sgd"`` (torch's defaults otherwise), or a callable
            ``(params, lr) -> torch.optim.Optimizer``.
        schedule: optional factor of the learning rate after ``step`` optimizer steps,
            ``lr * schedule(step)`` (``torch.optim.lr_scheduler.LambdaLR``, stepped per minibatch).
        metrics: name -> ``fn(outputs, targets)``, the mean of a metric over a minibatch (computed
            without gradients); recorded per epoch as the size-weighted mean.
        eval_data: optional ``(x, y)`` evaluated after every epoch (loss and metrics).
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device``; None: :func:`device`
            ``("auto")``.
        min_batch: minibatches smaller than this are skipped (2 for batch normalisation, which
            cannot normalise a single sample).
        progress: show a progress bar over epochs.
        desc: the bar's label.

    Returns:
        The :class:`History`, one record per epoch.

    Raises:
        ValueError: for bad sizes, an empty or mismatched ``data``, an unknown optimizer or a bad
            seed.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and np.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not isinstance(min_batch, (int, np.integer)) or min_batch < 1:
        raise ValueError(f"min_batch must be an int >= 1, got {min_batch!r}")
    seed = _check_seed(seed)
    x, y = _pair(data, "data")
    ev = None if eval_data is None else _pair(eval_data, "eval_data")
    metrics = dict(metrics or {})
    bad = [k for k in metrics if k in ("loss", "lr") or not callable(metrics[k])]
    if bad:
        raise ValueError(f"metrics must map names other than 'loss' and 'lr' to callables; bad: {bad}")
    loop = Loop(int(epochs), seed=seed, device=device, desc=desc, progress=progress)
    dev, gen = loop.device, loop.gen
    model.to(dev)
    x, y = x.to(dev), y.to(dev)
    opt = _optimizer(optimizer, model.parameters(), float(lr))
    sched = None if schedule is None else torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    n = len(x)
    for _ in loop:
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums, seen = dict.fromkeys(("loss", *metrics), 0.0), 0
        for s in range(0, n, int(batch_size)):
            idx = perm[s: s + batch_size].to(dev)
            if len(idx) < min_batch:
                continue
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            sums["loss"] += float(loss.detach()) * len(idx)
            with torch.no_grad():
                for name, fn in metrics.items():
                    sums[name] += float(fn(out, yb)) * len(idx)
            seen += len(idx)
        if seen == 0:
            raise ValueError(f"no minibatch of at least {min_batch} samples: {n} samples, batch_size {batch_size}")
        rec = {k: v / seen for k, v in sums.items()}
        rec["lr"] = float(opt.param_groups[0]["lr"])
        if ev is not None:
            rec.update(_evaluate(model, loss_fn, metrics, *ev, int(batch_size), dev))
        loop.log(**rec)
    model.eval()
    return loop.history


def progress_bar(iterable, desc: str, show: bool = True):
    """A :func:`lib.progress.bar` over ``iterable``, or the plain iterable where ``show`` is false.

    ``TQDM_DISABLE`` (set by the pipeline) silences the bar in either case.
    """
    return progress.bar(iterable, desc=desc) if show else iterable


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose largest logit is the label (a metric for :func:`fit`)."""
    return float((logits.argmax(1) == labels).double().mean())


__all__ = ["DEVICE_ENV", "OPTIMIZERS", "History", "Loop", "accuracy", "device", "fit", "float64", "progress_bar",
           "seed_all", "set_float64"]
