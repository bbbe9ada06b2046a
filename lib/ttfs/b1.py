"""The B1 neuron: single-spike networks whose training trajectory is the ReLU network's.

Part of :mod:`lib.ttfs`. Implements Stanojevic, Woźniak, Bellec, Cherubini, Pantazi & Gerstner
(2024), "High-performance deep spiking neural networks with 0.3 spikes per neuron", *Nature
Communications* 15:6793 (arXiv:2306.08744), explained in the chapter ``ttfs-deep-training``. It
shares the time coding and the windows of :mod:`lib.ttfs.common` and the ReLU networks of
:mod:`lib.ttfs.relu` with the α1 model of :mod:`lib.ttfs.alpha1`.

**The neuron.** Layer ``n`` spikes in its window ``[t_min^(n), t_max^(n)]`` of width ``B_n``, with
``t_min^(n) = t_max^(n-1)``; a spike at ``t`` codes ``x = t_max^(n) - t``. A B1 neuron integrates
its input spikes while they arrive (``tau_c dV/dt = sum_j W_ij H(t - t_j)`` for
``t_min^(n-1) <= t < t_min^(n)``), then, once its window opens, its potential rises with the fixed
slope 1 (``tau_c dV/dt = 1``; the inputs no longer change the slope) and it fires when it reaches
``theta_i = B_n - D_i``, at most once. Hence the closed form

    ``t_i = t_min^(n) + theta_i + sum_j W_ij (t_j - t_min^(n))  =  t_max^(n) - (sum_j W_ij x_j + D_i)``,

which is ``ReLU(W x + D)`` in time, provided the neuron fires inside its window: a neuron whose
potential stays below threshold until ``t_max^(n)`` is silent (it codes 0 and need *not* spike:
an input at ``t_max^(n) = t_min^(n+1)`` would not move the next layer's potential anyway), and one
whose potential already exceeds threshold when the window opens fires at ``t_min^(n)``: it codes
``B_n`` instead of its larger ReLU value (clipped; flagged as *early*). The output layer does not
spike; its potential at ``t_min^(N)`` is ``D + W x``, the logits.

**The identity mapping.** The SNN's parameters are the ReLU network's parameters (``W`` and
``D = b``), and ``dt_i/dt_j = W_ij 1[x_i > 0]``: the Jacobian of the ReLU network with the sign of
time. So the SNN's gradients, computed in the time domain, are the ANN's, and gradient descent on
the same minibatches follows the same trajectory (up to rounding).

What this module offers:

- :func:`map_identity` builds a :class:`B1SNN` (plain float64 arrays) from a folded
  :class:`~lib.ttfs.relu.Network`; :func:`closed_form` gives its spike times and readout, with the
  run-time check of exactness (images with a clipped, early neuron are flagged, and raise with
  ``strict=True``); :func:`simulate` integrates the neuron's ODE clock-driven (forward Euler) as a
  check of the closed form.
- :class:`B1Net` is the same network as a torch module whose forward pass runs in the time domain
  (autograd through the spike times), with the parameters of a :class:`~lib.ttfs.relu.ReLUNet`
  (same names, same initialisation), window adaptation during training, spike-time noise and fake
  quantisation of spike times and weights (straight-through gradients).
- :class:`Alpha1Net` is the foil: the α1 model of the companion paper trained in the time domain
  on its own parameters ``(J, theta)``; :meth:`Alpha1Net.equivalent_relu` gives the ReLU network it
  computes.
- :func:`backward_gain` measures how an error at the top hidden layer is amplified or damped on
  its way to the first, :func:`backward_error` and :func:`signed_gain` its direction;
  :func:`naive_alpha1` draws an α1 network in its own parameters (the foil of the depth
  experiment).
- :func:`evaluate` (accuracy and spikes per neuron per layer) and :func:`fit_windows` (windows
  from a quantile of the values) act on a trained :class:`B1Net`; :func:`b1_potential` is one
  neuron's potential over time.

Units: time in units of ``TAU_C`` (= 1); potentials in units of the threshold's time scale
(slope 1 in the ramp phase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import seeds
from .alpha1 import SNN, _flag_early, _pool_times
from .common import INPUT_T_MAX, ZETA, _check_inputs, encode, windows
from .relu import Architecture, Network, ReLUNet, _check_mapping_args, fold

#: A wrapper of an iterable that shows progress (e.g. ``lambda it: lib.progress.bar(it, desc=...)``).
Progress = Callable[[Iterable], Iterable]

#: ``X_n`` of every hidden layer of a network trained from scratch (the authors' code): windows
#: ``B_n = (1 + zeta) X_n = 1500`` with ``zeta = 0.5``, far wider than any activation at first.
SCRATCH_X = 1000.0
#: Window adaptation: after a batch, ``B_n`` grows to at least this factor times the largest
#: activation of layer ``n`` in the batch (windows only grow).
ADAPT_FACTOR = 10.0


# ----------------------------------------------------------------------------------------------
# Plain arrays: the mapped network, its closed form and a clock-driven simulation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class B1SNN:
    """A single-spike network of B1 neurons with the parameters of a ReLU network.

    Attributes:
        net: the folded ReLU network whose weights ``W`` and biases ``D`` the SNN uses as they are
            (the identity mapping); its hidden layers are the spiking layers, its output layer the
            readout.
        windows: ``(t_min, t_max)`` of the input layer (``(0, 1)``) and of every hidden layer.
        x_max: the ``X_n`` the windows were built from (``B_n = (1 + zeta) X_n``).
        zeta: the window margin.
    """

    net: Network
    windows: tuple[tuple[float, float], ...]
    x_max: tuple[float, ...]
    zeta: float

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.net.input_shape

    @property
    def latency(self) -> float:
        """Time of the readout, ``t_min^(N) = 1 + sum_n B_n`` (units of TAU_C)."""
        return self.windows[-1][1]

    def thresholds(self, layer: int) -> np.ndarray:
        """``theta = B_n - D`` of hidden layer ``layer`` (0-based), one per neuron (per position)."""
        if not 0 <= layer < len(self.net.hidden):
            raise ValueError(f"layer must be in 0..{len(self.net.hidden) - 1}, got {layer}")
        t_min, t_max = self.windows[layer + 1]
        return (t_max - t_min) - self.net.layers[layer].bias


def map_identity(net: Network, x_max: Sequence[float], zeta: float = ZETA) -> B1SNN:
    """The identity mapping: B1 neurons with the ReLU network's own weights and biases.

    Args:
        net: a folded ReLU network (:func:`~lib.ttfs.relu.fold`); no weight scaling is needed (the
            B1 slope does not depend on the weights).
        x_max: ``X_n`` per hidden layer, e.g. :func:`~lib.ttfs.relu.layer_maxima` on training data;
            windows are ``(1 + zeta) X_n`` wide.
        zeta: window margin, > -1.

    Returns:
        The :class:`B1SNN`.
    """
    _check_mapping_args(net, x_max, "map_identity")
    wins = windows(x_max, zeta)
    return B1SNN(net, wins, tuple(float(v) for v in x_max), float(zeta))


@dataclass(frozen=True)
class B1Result:
    """Spike times and readout of a :class:`B1SNN` (from :func:`closed_form` or :func:`simulate`).

    Attributes:
        input_times: spike times of the input layer ``(n, d)``.
        spike_times: per hidden layer, ``(n, units)`` or ``(n, C, H, W)`` before pooling; a silent
            neuron is coded by ``t_max`` of its layer (it does not spike).
        fired: per hidden layer, True where the neuron spiked (``t < t_max``).
        v_out: the output potentials at the readout time, ``(n, n_classes)``: the logits.
        early: ``(n,)``: in image ``i`` some neuron's potential was already above threshold when its
            window opened, so it fired at ``t_min`` and codes ``B_n`` instead of its ReLU value
            (the identity mapping is exact only where this is False).
    """

    input_times: np.ndarray = field(repr=False)
    spike_times: tuple[np.ndarray, ...] = field(repr=False)
    fired: tuple[np.ndarray, ...] = field(repr=False)
    v_out: np.ndarray = field(repr=False)
    early: np.ndarray = field(repr=False)

    @property
    def n_early(self) -> int:
        """Number of images with a clipped (early) neuron."""
        return int(np.sum(self.early))

    def predictions(self) -> np.ndarray:
        """The predicted class of each image (argmax of the readout)."""
        return self.v_out.argmax(1)

    def spikes_per_layer(self) -> np.ndarray:
        """Per hidden layer, the mean number of spikes per neuron (the fraction that fired)."""
        return np.array([float(f.mean()) if f.size else 0.0 for f in self.fired])

    @property
    def spikes_per_neuron(self) -> float:
        """Spikes per hidden neuron over all layers and images (each neuron spikes at most once)."""
        total = sum(f.size for f in self.fired)
        return float(sum(int(f.sum()) for f in self.fired) / total) if total else 0.0


def _times_linear(layer, offsets: torch.Tensor) -> torch.Tensor:
    """``sum_j W_ij offsets_j`` for a dense or conv layer (zero padding: a padded input is 0)."""
    w = torch.from_numpy(layer.weight)
    if layer.kind == "conv":
        return F.conv2d(offsets, w, padding=layer.padding)
    return offsets.reshape(offsets.shape[0], -1) @ w.T


#: What :func:`_flag_early` says of an image in which a B1 neuron was clipped.
_EARLY = ("a hidden neuron's potential was already above threshold when its window opened (its ReLU value "
          "exceeds the window B_n); it fired at t_min and codes B_n, so there the spike times and the readout "
          "are not the ReLU network's values (widen the windows; B1Result.early flags the images)")


def layer_closed_form(snn: B1SNN, layer: int, t_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The closed form of one hidden layer, given the spike times it receives.

    Args:
        snn: the network.
        layer: the hidden layer, 0-based.
        t_in: the spike times arriving at that layer, ``(n,) + in_shape`` (after the previous
            layer's pool), e.g. a simulated layer's output: the comparison then isolates the error
            of integrating that one layer.

    Returns:
        ``(times, fired)``, each ``(n,) + out_shape`` (before pooling).
    """
    if not 0 <= layer < len(snn.net.hidden):
        raise ValueError(f"layer must be in 0..{len(snn.net.hidden) - 1}, got {layer}")
    L = snn.net.hidden[layer]
    t_in = np.asarray(t_in, dtype=np.float64)
    if t_in.shape[1:] != tuple(L.in_shape) and not (L.kind == "dense" and t_in.ndim >= 2
                                                    and int(np.prod(t_in.shape[1:])) == int(np.prod(L.in_shape))):
        raise ValueError(f"layer {layer} receives spike times (n,) + {tuple(L.in_shape)}, got {t_in.shape}")
    if not np.all(np.isfinite(t_in)):
        raise ValueError("spike times must be finite")
    t_min, t_max = snn.windows[layer + 1]
    t = torch.from_numpy(t_in)
    t_raw = t_min + torch.from_numpy((t_max - t_min) - L.bias) + _times_linear(L, t - t_min)
    on = t_raw < t_max
    out = torch.where(on, torch.clamp(t_raw, min=t_min), torch.full_like(t_raw, t_max))
    return out.numpy(), on.numpy()


def input_times(snn: B1SNN, result: B1Result, layer: int) -> np.ndarray:
    """The spike times that hidden layer ``layer`` (0-based) receives in ``result`` (pooled)."""
    if not 0 <= layer < len(snn.net.hidden):
        raise ValueError(f"layer must be in 0..{len(snn.net.hidden) - 1}, got {layer}")
    if layer == 0:
        return result.input_times.reshape(-1, *snn.input_shape)
    return _pool_times(snn.net.hidden[layer - 1], result.spike_times[layer - 1])


def closed_form(snn: B1SNN, x: np.ndarray, batch: int = 2048, strict: bool = False, warn: bool = True) -> B1Result:
    """Spike times and readout of the B1 network from the closed form (float64).

    Per hidden layer, ``t_raw = t_min + theta + sum_j W_ij (t_j - t_min)``; the neuron fires at
    ``max(t_raw, t_min)`` if ``t_raw < t_max`` and is silent otherwise (coded ``t_max``); a pool
    passes on the earliest spike (the latest where the folded pool sign is -1). The readout is
    ``D + sum_j W_kj (t_read - t_j)`` with ``t_read = t_min^(N)``.

    Args:
        snn: the network.
        x: images ``(n, d)`` with pixels in [0, 1] (spike at ``1 - x``).
        batch: images per torch call.
        strict: raise :class:`~lib.ttfs.alpha1.EarlySpikeError` if any neuron is clipped (early).
        warn: otherwise warn (:class:`~lib.ttfs.alpha1.EarlySpikeWarning`) when one is.
    """
    if not isinstance(snn, B1SNN):
        raise TypeError(f"closed_form expects a B1SNN, got {type(snn).__name__}")
    x = _check_inputs(x, snn.input_shape)
    if len(x) == 0:
        raise ValueError("closed_form needs at least one image, got an empty array")
    t_in, spikes, fired, v_out, early = [], [[] for _ in snn.net.hidden], [[] for _ in snn.net.hidden], [], []
    for s in range(0, max(len(x), 1), batch):
        t = torch.from_numpy(encode(x[s: s + batch])).reshape(-1, *snn.input_shape)
        t_in.append(t.reshape(len(t), -1).numpy())
        flag = np.zeros(len(t), dtype=bool)
        for i, layer in enumerate(snn.net.hidden):
            t_min, t_max = snn.windows[i + 1]
            theta = torch.from_numpy((t_max - t_min) - layer.bias)
            t_raw = t_min + theta + _times_linear(layer, t - t_min)
            on = t_raw < t_max
            clipped = on & (t_raw < t_min)
            flag |= clipped.reshape(len(t), -1).any(1).numpy()
            t = torch.where(on, torch.clamp(t_raw, min=t_min), torch.full_like(t_raw, t_max))
            spikes[i].append(t.numpy())
            fired[i].append(on.numpy())
            t = torch.from_numpy(_pool_times(layer, t.numpy()))
        out = snn.net.layers[-1]
        v_out.append((_times_linear(out, snn.latency - t) + torch.from_numpy(out.bias)).numpy())
        early.append(flag)
    res = B1Result(np.concatenate(t_in)[: len(x)], tuple(np.concatenate(a)[: len(x)] for a in spikes),
                   tuple(np.concatenate(a)[: len(x)] for a in fired), np.concatenate(v_out)[: len(x)],
                   np.concatenate(early)[: len(x)])
    _flag_early(res.early, _EARLY, strict, warn, stacklevel=2)
    return res


def simulate(snn: B1SNN, x: np.ndarray, dt: float = 1e-2, progress: Progress | None = None,
             warn: bool = True) -> B1Result:
    """Clock-driven simulation of the B1 neurons' ODE, a check of :func:`closed_form`.

    Every hidden layer ``n`` is integrated from ``V = 0`` at ``t_min^(n-1)`` on a grid of step
    ``h <= dt`` chosen so that ``t_min^(n)`` is a grid point. Integration phase: ``V += h I(t_k + h/2)``
    with ``I(t) = sum_j W_ij H(t - t_j)`` sampled at the middle of the step (an input counts for the
    whole step if it arrived before the step's middle). Ramp phase, from ``t_min^(n)``: ``V += h``
    (slope 1); the neuron fires in the first step that takes ``V`` to ``theta`` or above, at the
    time interpolated within that step (exact for a linear ramp), at most once; one whose potential
    is already at or above ``theta`` when the window opens fires at ``t_min^(n)`` (clipped, early);
    one that has not fired by ``t_max^(n)`` is silent.

    Error model: sampling a step input at the step's middle puts each input's contribution to
    ``V(t_min)`` off by at most ``|W_ij| h / 2`` (with random signs), and the ramp adds no error,
    so a spike time is off by at most ``sum_j |W_ij| dt / 2`` plus the errors its inputs carried
    (the chapter measures the error in units of ``dt``).

    Args:
        snn: the network.
        x: images ``(n, d)`` in [0, 1]; small batches (the cost is one matrix product per step
            and layer, ``(B_{n-1} + B_n) / dt`` steps).
        dt: the largest time step (units of TAU_C), > 0.
        progress: optional wrapper of the layer loop (a progress bar).
        warn: warn when a neuron is clipped (fires as soon as its window opens).
    """
    if not isinstance(snn, B1SNN):
        raise TypeError(f"simulate expects a B1SNN, got {type(snn).__name__}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt!r}")
    x = _check_inputs(x, snn.input_shape)
    if len(x) == 0:
        raise ValueError("simulate needs at least one image, got an empty array")
    steps = max((snn.windows[i + 1][1] - snn.windows[i][0]) / dt for i in range(len(snn.net.hidden)))
    if steps > 5e6:
        raise ValueError(f"dt = {dt:g} needs {steps:.3g} steps for the widest layer; use a larger dt")
    t = torch.from_numpy(encode(x)).reshape(-1, *snn.input_shape)
    t_in, spikes, fired = t.reshape(len(t), -1).numpy(), [], []
    early = np.zeros(len(x), dtype=bool)
    layers = list(enumerate(snn.net.hidden))
    for i, layer in (progress(layers) if progress else layers):
        t_min_prev, t_min = snn.windows[i]
        t_max = snn.windows[i + 1][1]
        theta = torch.from_numpy((t_max - t_min) - layer.bias).expand((len(t),) + layer.out_shape)
        v = torch.zeros((len(t),) + layer.out_shape, dtype=torch.float64)
        k_int = max(1, int(math.ceil((t_min - t_min_prev) / dt)))
        h = (t_min - t_min_prev) / k_int
        for k in range(k_int):  # integration phase: the inputs arrive
            mid = t_min_prev + (k + 0.5) * h
            v = v + h * _times_linear(layer, (t <= mid).to(torch.float64))
        done = v >= theta  # already at threshold when the window opens: fires at t_min
        early |= done.reshape(len(t), -1).any(1).numpy()
        spike = torch.where(done, torch.full_like(v, t_min), torch.full_like(v, t_max))
        k_ramp = max(1, int(math.ceil((t_max - t_min) / dt)))
        h = (t_max - t_min) / k_ramp
        for k in range(k_ramp):  # ramp phase: slope 1 until threshold
            tk = t_min + k * h
            new = ~done & (v + h >= theta)
            spike = torch.where(new, tk + (theta - v), spike)
            done |= new
            v = v + h
        on = done & (spike < t_max)
        spike = torch.where(on, spike, torch.full_like(v, t_max))
        spikes.append(spike.numpy())
        fired.append(on.numpy())
        t = torch.from_numpy(_pool_times(layer, spike.numpy()))
    out = snn.net.layers[-1]
    v_out = (_times_linear(out, snn.latency - t) + torch.from_numpy(out.bias)).numpy()
    res = B1Result(t_in, tuple(spikes), tuple(fired), v_out, early)
    _flag_early(res.early, _EARLY, False, warn, stacklevel=2)
    return res


# ----------------------------------------------------------------------------------------------
# Torch: training in the time domain
# ----------------------------------------------------------------------------------------------


def fake_quantise(v: torch.Tensor, low: float, high: float, bits: int) -> torch.Tensor:
    """Round ``v`` to ``2**bits`` levels a step ``(high - low) / (2**bits - 1)`` apart (clipped).

    As the authors quantise (their ``tf.quantization.fake_quant_with_min_max_args``): where the
    range contains 0, it is shifted by less than a step so that 0 is a level (TensorFlow's
    "nudging"; for ``[-1, 1]`` and 3 bits the levels are ``k * 2/7`` for ``k = -4, ..., 3``, from
    -8/7 to 6/7), and a value halfway between two levels goes up. A range without 0 is used as
    given, levels from ``low`` to ``high``: the authors shift spike times by ``t_min_prev`` before
    quantising them on ``[t_min_prev, t_min]``, which TensorFlow nudges to ``[0, t_min -
    t_min_prev]``, the same levels. Differences that remain: the authors round in float32, this
    in the dtype of ``v``.

    The gradient is passed straight through (``d out / d v = 1``), as in quantisation-aware
    training.
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
        raise ValueError(f"bits must be an int >= 1, got {bits!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"need finite low < high, got [{low}, {high}]")
    n = 2 ** int(bits) - 1
    step = (high - low) / n
    if low <= 0.0 <= high:  # 0 a level: the zero point is a whole number of steps above the bottom
        zero = math.floor(-low / step + 0.5)
        lo, hi = -zero * step, (n - zero) * step
    else:
        zero, lo, hi = None, low, high
    k = torch.floor((torch.clamp(v, lo, hi) - lo) / step + 0.5)
    q = (k - zero) * step if zero is not None else lo + k * step
    return v + (q - v).detach()


@dataclass
class Activity:
    """What the last forward pass of a :class:`B1Net` or :class:`Alpha1Net` saw.

    Attributes:
        times: per hidden layer, the spike times (before pooling; in the autograd graph).
        t_max: per hidden layer, the end of its window.
        fired: per hidden layer, booleans: the neuron spiked before ``t_max``.
        clipped: per hidden layer, booleans: the neuron fired at ``t_min`` because its potential was
            already above threshold there (its value is clipped to ``B_n``).
    """

    times: list[torch.Tensor] = field(default_factory=list)
    t_max: list[float] = field(default_factory=list)
    fired: list[torch.Tensor] = field(default_factory=list)
    clipped: list[torch.Tensor] = field(default_factory=list)

    def add(self, t: torch.Tensor, t_max: float, fired: torch.Tensor, clipped: torch.Tensor) -> None:
        self.times.append(t)
        self.t_max.append(float(t_max))
        self.fired.append(fired.detach())
        self.clipped.append(clipped.detach())

    @property
    def values(self) -> list[torch.Tensor]:
        """Per hidden layer, the coded values ``t_max - t`` (>= 0; in the autograd graph), what an
        activity regulariser penalises."""
        return [tm - t for t, tm in zip(self.times, self.t_max, strict=True)]

    @property
    def n_clipped(self) -> int:
        """Neurons (over the batch and the layers) whose value was clipped to their window."""
        return int(sum(int(c.sum()) for c in self.clipped))

    def spikes_per_neuron(self) -> float:
        """Fraction of hidden neurons that spiked, over layers and images."""
        total = sum(f.numel() for f in self.fired)
        return float(sum(int(f.sum()) for f in self.fired) / total) if total else 0.0


def _check_batch(x: torch.Tensor, d: int, who: str) -> None:
    """A batch of images for a torch network of this module: float64 ``(n, d)``, ``n >= 1``,
    pixels in [0, 1] (the TTFS code; NaN is not a pixel)."""
    if not torch.is_tensor(x):
        raise TypeError(f"{who} expects a torch tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{who} expects images (n, {d}), got {tuple(x.shape)}")
    if x.dtype != torch.float64:
        raise TypeError(f"{who} computes in float64; got {x.dtype} images (convert them with x.double())")
    if len(x) == 0:
        raise ValueError(f"{who} needs at least one image, got an empty batch")
    if not bool(torch.all((x >= 0) & (x <= 1))):
        raise ValueError(f"{who}: pixels must lie in [0, 1] (spike at 1 - x); got values outside or NaN")


class _CopyWithoutActivity:
    """Copies and pickles of a network leave out the last forward pass (tensors of an autograd graph)."""

    def __getstate__(self):
        state = self.__dict__.copy()
        state["last"] = None
        return state


class B1Net(_CopyWithoutActivity, nn.Module):
    """A B1 network as a torch module: the forward pass runs in the time domain.

    The parameters are those of a :class:`~lib.ttfs.relu.ReLUNet` of the same architecture, with
    the same names (``blocks.0.0.weight``, ..., ``out.bias``) and, for the same torch seed, the same
    initial values: that is the identity mapping. ``forward`` codes the pixels as spike times,
    computes every layer's spike times with the closed form (:func:`closed_form`; max-pooling
    passes on the earliest spike) and reads the output potentials at ``t_min^(N)``; autograd
    differentiates through the spike times.

    Windows: ``B_n = (1 + zeta) x_max`` per hidden layer (a buffer ``widths``). In training mode with
    ``adapt`` on, every forward pass first widens each window to at least ``ADAPT_FACTOR`` times the
    layer's largest value in the batch (windows only grow; :meth:`set_windows` sets them).

    Hardware effects, all off by default: ``sigma`` (Gaussian jitter of every spike, inputs
    included and clipped at ``t >= 0``; drawn from the generator of :meth:`set_noise`),
    ``time_bits`` (every layer's input spike times rounded to ``2**bits`` levels of their window)
    and ``weight_bits`` (weights clipped to [-1, 1] and rounded to ``2**bits`` levels); the
    rounding has straight-through gradients, so a network can be fine-tuned under it.

    Args:
        arch: a ReLU architecture without batch normalisation and dropout (fold a trained net with
            BN into a :class:`~lib.ttfs.relu.Network` and use :func:`map_identity` instead).
        x_max: ``X_n``, one number for every hidden layer or one per layer.
        zeta: window margin.
        adapt: adapt the windows in training mode.
    """

    def __init__(self, arch: Architecture, x_max: float | Sequence[float] = SCRATCH_X, zeta: float = ZETA,
                 adapt: bool = True):
        super().__init__()
        if arch.bn is not None or arch.dropout > 0:
            raise ValueError("B1Net needs an architecture without batch norm and dropout (bn=None, dropout=0): "
                             "fold a trained net with lib.ttfs.fold and map it with map_identity instead")
        if tuple(arch.input_range) != (0.0, 1.0):
            raise ValueError(f"B1Net codes pixels in [0, 1]; got input_range {arch.input_range!r} (fold it first)")
        ann = ReLUNet(arch)
        self.arch = arch
        self.blocks, self.out = ann.blocks, ann.out
        n_hidden = sum(1 for b in self.blocks if isinstance(b, nn.Sequential))
        if np.ndim(x_max) > 1:
            raise ValueError(f"x_max must be one number or one per hidden layer, got shape {np.shape(x_max)}")
        xs = [float(x_max)] * n_hidden if np.ndim(x_max) == 0 else [float(v) for v in x_max]
        if len(xs) != n_hidden:
            raise ValueError(f"x_max needs one value per hidden layer ({n_hidden}), got {len(xs)}")
        if not all(math.isfinite(v) and v > 0 for v in xs):
            raise ValueError(f"x_max must be positive and finite, got {xs}")
        widths = [t1 - t0 for t0, t1 in windows(xs, zeta)[1:]]
        self.zeta = float(zeta)
        self.register_buffer("widths", torch.tensor(widths, dtype=torch.float64))
        self.adapt = bool(adapt)
        self.sigma = 0.0
        self.time_bits: int | None = None
        self.weight_bits: int | None = None
        self._noise = seeds.torch_generator(0)
        self.last: Activity | None = None
        self.double()

    @classmethod
    def from_relu(cls, model: ReLUNet, x_max: float | Sequence[float] = SCRATCH_X, zeta: float = ZETA,
                  adapt: bool = True) -> "B1Net":
        """The identity mapping of a ReLU network: a B1Net with a copy of its parameters."""
        if not isinstance(model, ReLUNet):
            raise TypeError(f"from_relu expects a ReLUNet, got {type(model).__name__}")
        net = cls(model.arch, x_max, zeta, adapt)
        net.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()}, strict=False)
        return net

    def to_relu(self) -> ReLUNet:
        """The ReLU network with this network's parameters (evaluation mode)."""
        ann = ReLUNet(self.arch)
        ann.load_state_dict({k: v.detach().clone() for k, v in self.state_dict().items() if k != "widths"})
        return ann.eval()

    def windows(self) -> tuple[tuple[float, float], ...]:
        """``(t_min, t_max)`` of the input layer and of every hidden layer."""
        out, t = [(0.0, INPUT_T_MAX)], INPUT_T_MAX
        for b in self.widths.tolist():
            out.append((t, t + b))
            t += b
        return tuple(out)

    @property
    def latency(self) -> float:
        """The readout time ``t_min^(N) = 1 + sum_n B_n``."""
        return float(INPUT_T_MAX + self.widths.sum())

    def set_windows(self, widths: Sequence[float]) -> None:
        """Set every hidden layer's window width ``B_n`` (> 0)."""
        w = torch.as_tensor([float(v) for v in widths], dtype=torch.float64)
        if w.shape != self.widths.shape or not bool(torch.all(torch.isfinite(w) & (w > 0))):
            raise ValueError(f"need {len(self.widths)} positive finite window widths, got {list(widths)}")
        self.widths.copy_(w)

    def set_noise(self, sigma: float, seed: int = 0) -> None:
        """Jitter every spike by ``N(0, sigma^2)`` (units of TAU_C), drawn from a generator seeded ``seed``."""
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.sigma = float(sigma)
        self._noise = seeds.torch_generator(seed)

    def set_quantisation(self, time_bits: int | None = None, weight_bits: int | None = None) -> None:
        """Fake-quantise spike times (``time_bits``) and weights (``weight_bits``); None: off."""
        for name, b in (("time_bits", time_bits), ("weight_bits", weight_bits)):
            if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1):
                raise ValueError(f"{name} must be None or an int >= 1, got {b!r}")
        self.time_bits, self.weight_bits = time_bits, weight_bits

    def _jitter(self, t: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(t.shape, generator=self._noise, dtype=torch.float64).to(t.device)
        return t + self.sigma * noise

    def _weight(self, w: torch.Tensor) -> torch.Tensor:
        return w if self.weight_bits is None else fake_quantise(w, -1.0, 1.0, self.weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, int(np.prod(self.arch.input_shape)), "B1Net")
        t = INPUT_T_MAX - x
        if self.sigma > 0:
            t = torch.clamp(self._jitter(t), min=0.0)
        t = t.reshape(t.shape[0], *self.arch.input_shape) if self.arch.conv else t
        act = Activity()
        t_min_prev, t_min, n = 0.0, INPUT_T_MAX, 0
        for block in self.blocks:
            if isinstance(block, nn.MaxPool2d):
                t = -F.max_pool2d(-t, 2)
                continue
            lin = block[0]
            if self.time_bits is not None:
                t = fake_quantise(t, t_min_prev, t_min, self.time_bits)
            w = self._weight(lin.weight)
            if isinstance(lin, nn.Linear):
                t = t.reshape(t.shape[0], -1)
                u = F.linear(t - t_min, w)
            else:
                u = F.conv2d(t - t_min, w, padding=lin.padding)
            bias = lin.bias if u.ndim == 2 else lin.bias[:, None, None]
            d = u - bias  # t_raw - t_max: minus the coded value
            if self.training and self.adapt:
                with torch.no_grad():
                    top = -float(d.min()) if d.numel() else 0.0
                    if ADAPT_FACTOR * top > self.widths[n]:
                        self.widths[n] = ADAPT_FACTOR * top
            t_max = t_min + float(self.widths[n])
            t_raw = t_max + d  # = t_min + theta + sum_j W_ij (t_j - t_min), theta = B_n - D
            on = t_raw < t_max
            t = torch.where(on, torch.clamp(t_raw, min=t_min), t_max)
            clipped = t_raw < t_min  # (and on: t_min < t_max)
            if self.sigma > 0:
                t = torch.where(on, self._jitter(t), t)  # a silent neuron has no spike to jitter
            act.add(t, t_max, on, clipped)
            t_min_prev, t_min, n = t_min, t_max, n + 1
        self.last = act
        if self.time_bits is not None:
            t = fake_quantise(t, t_min_prev, t_min, self.time_bits)
        t = t.reshape(t.shape[0], -1)
        return F.linear(t_min - t, self._weight(self.out.weight), self.out.bias)

    def to_snn(self) -> B1SNN:
        """The same network as a :class:`B1SNN` of plain arrays (for :func:`closed_form` and :func:`simulate`)."""
        wins = self.windows()
        x_max = [(t1 - t0) / (1.0 + self.zeta) for t0, t1 in wins[1:]]
        return B1SNN(fold(self.to_relu()), wins, tuple(x_max), self.zeta)


class Alpha1Net(_CopyWithoutActivity, nn.Module):
    """The α1 foil: a dense α1 network trained in the time domain on its own parameters.

    Hidden layer ``n`` has weights ``J`` (``(n_out, n_in)``), thresholds ``theta`` and a constant
    drive ``alpha`` switched on at ``t_min^(n-1)``; a neuron fires where its potential
    ``alpha (t - t_min^(n-1)) + sum_j J_ij (t - t_j)`` reaches ``theta``, i.e. (after its last input)
    at ``t = (theta + alpha t_min^(n-1) + sum_j J_ij t_j) / s`` with slope ``s = alpha + sum_j J_ij``,
    clipped to ``[t_min, t_max]``, and at ``t_max`` (coding 0) where it does not cross in its window
    (or ``s <= 0``). The backpropagated error is multiplied by ``J / s`` per layer. The readout is
    ``alpha_out (t_read - t_min^(N-1)) + sum_j W_kj (t_read - t_j)``. The windows are fixed.
    """

    def __init__(self, J: Sequence[np.ndarray], theta: Sequence[np.ndarray], w_out: np.ndarray,
                 alpha_out: np.ndarray, wins: Sequence[tuple[float, float]], alpha: float = 1.0):
        super().__init__()
        if len(J) != len(theta) or len(wins) != len(J) + 1:
            raise ValueError(f"need one J and theta per hidden layer and one window more (the input's); got "
                             f"{len(J)} J, {len(theta)} theta, {len(wins)} windows")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        for n, w in enumerate(wins):
            if len(w) != 2 or not all(math.isfinite(float(v)) for v in w) or not float(w[0]) < float(w[1]):
                raise ValueError(f"window {n} must be (t_min, t_max), finite with t_min < t_max; got {tuple(w)}")
            if n and float(w[0]) < float(wins[n - 1][1]):
                raise ValueError(f"window {n} opens at {float(w[0]):g}, before window {n - 1} closes at "
                                 f"{float(wins[n - 1][1]):g}: a layer's inputs must all arrive before its window")
        n_in = None
        for i, (j, th) in enumerate(zip(J, theta, strict=True)):
            j, th = np.asarray(j, dtype=np.float64), np.asarray(th, dtype=np.float64)
            if j.ndim != 2 or th.shape != (j.shape[0],) or (n_in is not None and j.shape[1] != n_in):
                raise ValueError(f"layer {i + 1}: J must be (n_out, n_in) fitting the layer before and theta "
                                 f"(n_out,); got {j.shape}, {th.shape}")
            if not (np.all(np.isfinite(j)) and np.all(np.isfinite(th))):
                raise ValueError(f"layer {i + 1}: J and theta must be finite")
            n_in = j.shape[0]
        w_out = np.asarray(w_out, dtype=np.float64)
        if w_out.ndim != 2 or w_out.shape[1] != n_in or np.shape(alpha_out) != (w_out.shape[0],):
            raise ValueError(f"the readout needs W (n_classes, {n_in}) and alpha_out (n_classes,); got "
                             f"{w_out.shape}, {np.shape(alpha_out)}")
        self.J = nn.ParameterList([nn.Parameter(torch.tensor(np.asarray(j, dtype=np.float64))) for j in J])
        self.theta = nn.ParameterList([nn.Parameter(torch.tensor(np.asarray(t, dtype=np.float64)))
                                       for t in theta])
        self.w_out = nn.Parameter(torch.tensor(w_out))
        self.alpha_out = nn.Parameter(torch.tensor(np.asarray(alpha_out, dtype=np.float64)))
        self.wins = tuple((float(a), float(b)) for a, b in wins)
        self.alpha = float(alpha)
        self.last: Activity | None = None

    @classmethod
    def from_snn(cls, snn: SNN) -> "Alpha1Net":
        """The α1 network of :func:`~lib.ttfs.alpha1.map_to_snn` (dense layers only), ready to train."""
        if not isinstance(snn, SNN):
            raise TypeError(f"from_snn expects a lib.ttfs.SNN, got {type(snn).__name__}")
        if any(layer.kind != "dense" for layer in snn.layers):
            raise ValueError("Alpha1Net supports dense layers only")
        alphas = {float(a) for layer in snn.layers for a in np.ravel(layer.alpha)}
        if len(alphas) != 1:
            raise ValueError(f"Alpha1Net needs one drive alpha for every neuron, got {sorted(alphas)[:3]}...")
        ro = snn.readout
        return cls([L.J for L in snn.layers], [L.theta for L in snn.layers], ro.weight, ro.alpha, snn.windows,
                   alphas.pop())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, self.J[0].shape[1], "Alpha1Net")
        t = INPUT_T_MAX - x
        act = Activity()
        for n, (j, th) in enumerate(zip(self.J, self.theta, strict=True)):
            t_min_prev = self.wins[n][0]
            t_min, t_max = self.wins[n + 1]
            s = self.alpha + j.sum(1)
            safe = torch.where(s > 0, s, torch.ones_like(s))
            t_raw = (th + self.alpha * t_min_prev + F.linear(t, j)) / safe
            on = (s > 0) & (t_raw < t_max)
            clipped = on & (t_raw < t_min)
            t = torch.where(on, torch.clamp(t_raw, min=t_min), t_max)
            act.add(t, t_max, on, clipped)
        self.last = act
        t_read, t_min_prev = self.wins[-1][1], self.wins[-1][0]
        return F.linear(t_read - t, self.w_out) + self.alpha_out * (t_read - t_min_prev)

    def equivalent_relu(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The ReLU network this α1 network computes, ``[(W, b), ...]`` per layer (readout last).

        Inverse of the mapping: ``W = J / s`` and ``b = (alpha (t_max - t_min_prev) + B sum J - theta) / s``
        with ``s = alpha + sum_j J_ij`` (where ``s <= 0`` the neuron never codes a value: W = b = 0).
        """
        out = []
        with torch.no_grad():
            for n, (j, th) in enumerate(zip(self.J, self.theta, strict=True)):
                t_min_prev = self.wins[n][0]
                t_min, t_max = self.wins[n + 1]
                j, th = j.numpy(), th.numpy()
                sj = j.sum(1)
                s = self.alpha + sj
                ok = s > 0
                safe = np.where(ok, s, 1.0)
                w = np.where(ok[:, None], j / safe[:, None], 0.0)
                b = np.where(ok, (self.alpha * (t_max - t_min_prev) + (t_max - t_min) * sj - th) / safe, 0.0)
                out.append((w, b))
            t_read, t_min_prev = self.wins[-1][1], self.wins[-1][0]
            out.append((self.w_out.numpy().copy(), self.alpha_out.numpy() * (t_read - t_min_prev)))
        return out


def _hidden(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The hidden outputs of a model, in the autograd graph: spike times of the SNNs, values of a ReLU net."""
    if isinstance(model, (B1Net, Alpha1Net)):
        model(x)
        return model.last.times
    if isinstance(model, ReLUNet):
        if model.arch.conv or model.arch.bn is not None:
            raise ValueError("backward_gain of a ReLUNet needs a dense net without batch norm")
        h, outs = x, []
        for block in model.blocks:
            h = block(h)
            outs.append(h)
        return outs
    raise TypeError(f"backward_gain expects a ReLUNet, B1Net or Alpha1Net, got {type(model).__name__}")


def _top_error(model: nn.Module, x, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The hidden layers' outputs on ``x`` (with their graph; call under ``torch.enable_grad``)
    and a random unit error per input at the top hidden layer, drawn from ``seed``."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x, dtype=torch.float64)
    if xt.ndim != 2 or len(xt) == 0:
        raise ValueError(f"x must be a non-empty array (n, d), got shape {tuple(xt.shape)}")
    if not bool(torch.all((xt >= 0) & (xt <= 1))):
        raise ValueError("inputs must lie in [0, 1] (TTFS coding); got values outside or NaN")
    was = model.training
    model.eval()
    try:
        hidden = _hidden(model, xt)
    finally:
        model.train(was)
    if not hidden:
        raise ValueError("the model has no hidden layer")
    gen = seeds.torch_generator(seed)
    e = torch.randn(hidden[-1].shape, generator=gen, dtype=torch.float64)
    return hidden, e / e.reshape(len(e), -1).norm(dim=1).reshape((-1,) + (1,) * (e.ndim - 1))


def backward_gain(model: nn.Module, x: np.ndarray | torch.Tensor, seed: int) -> float:
    """How much a random error at the top hidden layer grows on its way back to the first.

    A random unit vector ``e_s`` per input ``s`` (drawn from ``seed``) is the error
    ``dL/dh^(L)`` at the top hidden layer (spike times for the SNNs, values for the ReLU net);
    it is backpropagated by autograd to the first hidden layer. Returns
    ``||dL/dh^(1)|| / ||dL/dh^(L)||`` (Frobenius norms over the batch), the product of the
    backward gains of layers ``L, ..., 2``. For a ReLU net with He initialisation it stays near 1 at
    any depth; for the α1 model every layer also divides by its slope at threshold.

    Args:
        model: a dense :class:`~lib.ttfs.relu.ReLUNet` (no BN), :class:`B1Net` or :class:`Alpha1Net`
            with at least one hidden layer.
        x: inputs ``(n, d)`` in [0, 1].
        seed: seeds the error vectors.
    """
    with torch.enable_grad():
        hidden, e = _top_error(model, x, seed)
        top, first = hidden[-1], hidden[0]
        if first is top:
            return 1.0
        (g,) = torch.autograd.grad(top, first, grad_outputs=e, allow_unused=True)
    if g is None:
        return 0.0
    return float(g.norm() / e.norm())


def backward_error(model: nn.Module, x: np.ndarray | torch.Tensor, seed: int,
                   layer_sign: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random unit error at the top hidden layer and what reaches the first, layer by layer.

    The error ``e`` is drawn as in :func:`backward_gain` (same ``seed``, same vectors) and carried
    back one layer at a time by autograd (a vector-Jacobian product per layer), each product
    multiplied by ``layer_sign``. With ``layer_sign = 1`` this is the gradient of
    :func:`backward_gain`; ``layer_sign = -1`` is a gradient whose sign is flipped at every layer
    (a control: the same norms, the opposite direction after an odd number of layers).

    Returns:
        ``(e, g)``: the error at the top hidden layer and at the first (detached tensors, the
        shapes of those layers' outputs). For a :class:`B1Net` with the parameters of a
        :class:`~lib.ttfs.relu.ReLUNet`, ``g`` equals the ReLU net's for the same ``e``: with
        ``t = t_max - h`` in every layer, the two sign changes of time cancel.

    Raises:
        ValueError: as :func:`backward_gain`, and if ``layer_sign`` is not finite.
    """
    if not (isinstance(layer_sign, (int, float)) and math.isfinite(layer_sign)):
        raise ValueError(f"layer_sign must be a finite number, got {layer_sign!r}")
    with torch.enable_grad():
        hidden, e = _top_error(model, x, seed)
        g = e
        for k in range(len(hidden) - 1, 0, -1):
            (gk,) = torch.autograd.grad(hidden[k], hidden[k - 1], grad_outputs=g, retain_graph=True,
                                        allow_unused=True)
            g = layer_sign * (torch.zeros_like(hidden[k - 1]) if gk is None else gk)
    return e.detach(), g.detach()


def signed_gain(model: nn.Module, reference: nn.Module, x: np.ndarray | torch.Tensor, seed: int,
                layer_sign: float = 1.0) -> float:
    """The backward gain of ``model`` along the direction of ``reference``'s, with a sign.

    Both carry the same random unit error from the top hidden layer to the first
    (:func:`backward_error`); returns ``<g, g_ref> / (||g_ref|| ||e||)``. For the B1
    network with a ReLU net's parameters this is the ReLU net's backward gain (``g = g_ref``); a
    gradient of the right size but the wrong direction gives less, one sign-flipped at an odd
    number of layers (``layer_sign = -1`` at 16 hidden layers) minus the gain. A norm ratio alone
    (:func:`backward_gain`) cannot tell these apart.
    """
    e, g = backward_error(model, x, seed, layer_sign)
    _, g_ref = backward_error(reference, x, seed)
    return float((g * g_ref).sum() / (g_ref.norm() * e.norm()))


def naive_alpha1(width: int, depth: int, init: str, x: np.ndarray, gen: torch.Generator,
                 alpha: float = 1.0, zeta: float = ZETA, n_in: int | None = None,
                 readout_gain: float = 0.0) -> Alpha1Net:
    """An α1 network initialised directly in its own parameters (no mapping from a ReLU net).

    ``init="zero-mean"``: ``J ~ N(0, 2 / fan_in)`` (He); ``"positive-mean"``: ``J ~ U(0, 2 / sqrt(fan_in))``.
    Thresholds put the equivalent ReLU bias at 0, ``theta = alpha (t_max - t_min_prev) + B sum_j J_ij``,
    and the windows are ``(1 + zeta)`` times the largest value of each layer on ``x``, so that the
    only difference from a ReLU net is the parameterisation. A neuron whose slope
    ``alpha + sum J`` is not positive never codes a value. ``depth`` hidden layers of ``width``
    neurons, ``n_in`` inputs (None: ``width``; ``fan_in`` is ``n_in`` in the first layer), 10
    outputs; the weights are drawn from ``gen``. The readout is zero (``readout_gain = 0``) or
    ``W ~ N(0, readout_gain / width)`` drawn after the hidden layers (2: He, as a
    :func:`~lib.ttfs.relu.he_init` ReLU net's readout), with zero bias.
    """
    if init not in ("zero-mean", "positive-mean"):
        raise ValueError(f"init must be 'zero-mean' or 'positive-mean', got {init!r}")
    n_in = width if n_in is None else n_in
    if isinstance(n_in, bool) or not isinstance(n_in, (int, np.integer)) or n_in < 1:
        raise ValueError(f"n_in must be a positive int, got {n_in!r}")
    if not (math.isfinite(readout_gain) and readout_gain >= 0):
        raise ValueError(f"readout_gain must be finite and >= 0, got {readout_gain!r}")
    if np.ndim(x) != 2 or np.shape(x)[1] != n_in:
        raise ValueError(f"x must be (n, {n_in}) inputs, got shape {np.shape(x)}")
    Js = []
    for k in range(depth):
        fan_in = n_in if k == 0 else width
        if init == "zero-mean":
            Js.append(torch.randn((width, fan_in), generator=gen, dtype=torch.float64) * np.sqrt(2.0 / fan_in))
        else:
            Js.append(torch.rand((width, fan_in), generator=gen, dtype=torch.float64) * 2.0 / np.sqrt(fan_in))
    Js = [j.numpy() for j in Js]
    h, x_max = np.asarray(x, dtype=np.float64), []
    for j in Js:
        s = alpha + j.sum(1)
        w = np.where((s > 0)[:, None], j / np.where(s > 0, s, 1.0)[:, None], 0.0)
        h = np.maximum(h @ w.T, 0.0)
        x_max.append(float(h.max()) if h.max() > 0 else 1.0)
    wins = windows(x_max, zeta)
    thetas = [alpha * (wins[n + 1][1] - wins[n][0]) + (wins[n + 1][1] - wins[n + 1][0]) * j.sum(1)
              for n, j in enumerate(Js)]
    w_out = np.zeros((10, width))
    if readout_gain > 0:
        w_out = (torch.randn((10, width), generator=gen, dtype=torch.float64)
                 * np.sqrt(readout_gain / width)).numpy()
    return Alpha1Net(Js, thetas, w_out, np.zeros(10), wins, alpha)


def hidden_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight of every hidden layer of a dense :class:`~lib.ttfs.relu.ReLUNet`,
    :class:`B1Net` (``W``) or :class:`Alpha1Net` (``J``), first layer first (the parameters
    themselves, not copies)."""
    if isinstance(model, Alpha1Net):
        return list(model.J)
    if isinstance(model, (ReLUNet, B1Net)):
        if model.arch.conv:
            raise ValueError("hidden_weights needs a dense network")
        return [b[0].weight for b in model.blocks]
    raise TypeError(f"hidden_weights expects a ReLUNet, B1Net or Alpha1Net, got {type(model).__name__}")


def layer_gradient_norms(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``||dL/dW^(n)||`` (Frobenius) of every hidden layer's weight (:func:`hidden_weights`), first
    layer first, for the mean cross-entropy ``L`` of ``model`` on the images ``x`` with labels ``y``
    (evaluation mode: a :class:`B1Net`'s windows do not adapt). ``nan`` where the loss is not
    finite. The model's own ``.grad`` fields are left as they were."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need as many labels as images (at least one), got {len(x)} and {len(y)}")
    ws = hidden_weights(model)
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64)))
            if not torch.isfinite(loss):
                return np.full(len(ws), np.nan)
            grads = torch.autograd.grad(loss, ws, allow_unused=True)
    finally:
        model.train(was)
    return np.array([0.0 if g is None else float(g.norm()) for g in grads])


# ----------------------------------------------------------------------------------------------
# A trained B1Net: accuracy, spikes, windows; one neuron's potential
# ----------------------------------------------------------------------------------------------


def evaluate(model: B1Net, x: np.ndarray, y: np.ndarray, batch: int = 2000) -> tuple[float, np.ndarray]:
    """Test accuracy and spikes per neuron per hidden layer of a B1 network (evaluation mode).

    Every neuron counts, a silent one as 0 spikes; ``x`` are images ``(n, ...)`` in [0, 1] and
    ``y`` their labels.
    """
    model.eval()
    dev = model.widths.device
    correct, fired, total = 0, None, None
    with torch.no_grad():
        for s in range(0, len(x), batch):
            out = model(torch.from_numpy(x[s: s + batch]).to(dev))
            correct += int((out.argmax(1).cpu().numpy() == y[s: s + batch]).sum())
            f = np.array([float(a.sum()) for a in model.last.fired])
            n = np.array([float(a.numel()) for a in model.last.fired])
            fired, total = (f, n) if fired is None else (fired + f, total + n)
    return correct / len(x), fired / total


def fit_windows(model: B1Net, x: np.ndarray, quantile: float = 1.0, batch: int = 2000) -> None:
    """Set each window to the ``quantile`` of its layer's positive values on ``x`` (layer by layer).

    Layer ``n`` is fitted after layers ``1..n-1``, so a clipped value below is seen by the layers
    above. ``quantile = 1`` gives windows of the largest value (``zeta = 0``), the shortest that
    leave the network exact on ``x``.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    model.eval()
    dev = model.widths.device
    for n in range(len(model.widths)):
        vals = []
        with torch.no_grad():
            for s in range(0, len(x), batch):
                model(torch.from_numpy(x[s: s + batch]).to(dev))
                v = model.last.values[n].reshape(-1)
                vals.append(v[v > 0].cpu().numpy())
        v = np.concatenate(vals)
        w = model.widths.clone()
        w[n] = float(np.quantile(v, quantile)) if v.size else 1.0
        model.set_windows(w.tolist())


def b1_potential(t: np.ndarray, t_in: np.ndarray, w: np.ndarray, t_min_prev: float, t_min: float) -> np.ndarray:
    """Potential of one B1 neuron (bias-free part): integrate the inputs, then a ramp of slope 1.

    ``t``: the times at which to evaluate it; ``t_in``: its inputs' spike times, ``w`` their
    weights; ``t_min_prev``, ``t_min``: the openings of the previous layer's window and of its own.
    """
    t = np.asarray(t, dtype=np.float64)[:, None]
    integ = np.clip(np.minimum(t, t_min) - t_in[None, :], 0.0, None) @ w
    return integ + np.clip(t[:, 0] - t_min, 0.0, None) * (t[:, 0] >= t_min_prev)


__all__ = [
    "ADAPT_FACTOR", "SCRATCH_X", "Activity", "Alpha1Net", "B1Net", "B1Result", "B1SNN", "b1_potential",
    "backward_error", "backward_gain", "closed_form", "evaluate", "fake_quantise", "fit_windows",
    "hidden_weights", "input_times", "layer_closed_form", "layer_gradient_norms", "map_identity",
    "naive_alpha1", "signed_gain", "simulate",
]
