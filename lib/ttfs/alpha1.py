"""The α1 spiking network: the exact mapping from a ReLU network, and its event-driven simulation.

Part of :mod:`lib.ttfs`. Implements Stanojevic, Woźniak, Bellec, Cherubini, Pantazi & Gerstner
(2023), "An exact mapping from ReLU networks to spiking neural networks", *Neural Networks*
(arXiv:2212.12522), explained in the chapter ``ttfs-exact-mapping``. Steps 4-6 of the mapping,
after a ReLU network has been folded and scaled (:mod:`lib.ttfs.relu`):

4. **Windows** (:func:`lib.ttfs.common.windows`): layer ``n`` spikes in ``[t_min^(n), t_max^(n)]``
   of width ``(1 + zeta) X_n``, ``X_n`` the largest activation of layer ``n`` on the training data.
5. **Map** to α1 neurons (:func:`map_to_snn`): ``J = alpha W / (1 - sum W)`` and the thresholds
   of the paper, so that the spike time of every hidden neuron encodes its ReLU value,
   ``x = t_max - t``; the output neurons do not spike, their potential at ``t_min^(N)`` is the
   logit.
6. **Simulate** the SNN (:func:`simulate`): each neuron fires at the first threshold crossing of
   its potential, or is forced to fire at ``t_max``. Where a bound shows that a neuron cannot cross
   before its last input spike, its spike time is the closed form (exact); every other neuron is
   integrated event by event over its sorted input spikes (ties grouped). Images in which some
   neuron did cross before its last input are flagged (``SNNResult.early``): there the mapping
   is not exact. :func:`closed_form` gives the spike times from the formula alone; it exists for the
   tests. :func:`exactness` compares an SNN with its ReLU network on a test set, and
   :func:`rounding_bound` says how far float64 rounding alone can move the readout.

Units: time in units of the synaptic time constant ``TAU_C`` (= 1); potentials in units of
``alpha * TAU_C``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .common import ZETA, _check_inputs, _LayerShape, encode, windows
from .relu import Layer, Network, _check_mapping_args

#: A wrapper of an iterable that shows progress (e.g. ``lambda it: lib.progress.bar(it, desc=...)``).
Progress = Callable[[Iterable], Iterable]

#: Constant drive of an α1 neuron from the start of its integration window (potential per TAU_C).
ALPHA = 1.0


#: Target number of float64 elements per array in the event loop (sets the chunk of rows).
_CHUNK_ELEMENTS = 1 << 16
#: Target number of input spike times per batch of images in :func:`simulate` (bounds memory).
_BATCH_ELEMENTS = 1 << 22


#: Relative rounding allowed when a potential reaches threshold exactly at a row's last input time
#: (a crossing there is not early: the closed form gives that time). The potential is a sum of at
#: most ~1e4 rounded terms, so its relative error stays far below this.
_LAST_RTOL = 1e-9


class EarlySpikeWarning(UserWarning):
    """:func:`simulate` found images in which a hidden neuron crossed threshold before its last input
    (or :func:`lib.ttfs.b1.closed_form` found a B1 neuron above threshold when its window opened)."""


class EarlySpikeError(ValueError):
    """Raised with ``strict=True`` by :func:`simulate` when a neuron crossed threshold before its last input,
    and by :func:`lib.ttfs.b1.closed_form` when a B1 neuron's value did not fit its window."""


def _flag_early(early: np.ndarray, why: str, strict: bool, warn: bool, stacklevel: int) -> None:
    """Raise :class:`EarlySpikeError` (``strict``) or warn with :class:`EarlySpikeWarning` (``warn``)
    where any image of the per-image flags ``early`` breaks the exactness conditions.

    Shared by the α1 simulator and the B1 closed form (:mod:`lib.ttfs.b1`): the run-time check of
    the exactness conditions. ``why`` says what happened in a flagged image and what to do.
    """
    n_early = int(np.count_nonzero(early))
    if not n_early or not (strict or warn):
        return
    msg = f"in {n_early} of {len(early)} images (the first: image {int(np.argmax(early))}) {why}"
    if strict:
        raise EarlySpikeError(msg)
    warnings.warn(msg, EarlySpikeWarning, stacklevel=stacklevel + 1)


@dataclass(frozen=True)
class SpikingLayer(_LayerShape):
    """A layer of α1 neurons, each firing exactly one spike in ``[t_min, t_max]``.

    Attributes:
        kind: ``"dense"`` or ``"conv"``.
        J: synaptic weights, ``(n_out, n_in)`` or ``(C_out, C_in, k, k)``.
        theta: thresholds, ``(n_out,)`` or per position ``(C_out, H, W)``.
        alpha: constant drive per neuron (dense) or channel (conv), switched on at ``t_min_prev``.
        t_min_prev: start of the previous layer's window, when integration starts.
        t_min, t_max: this layer's window.
        in_shape, pool, pool_sign, padding_mode: as in :class:`Layer`.
    """

    kind: str
    J: np.ndarray = field(repr=False)
    theta: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    t_min_prev: float
    t_min: float
    t_max: float
    in_shape: tuple[int, ...]
    pool: int = 1
    pool_sign: np.ndarray | None = field(default=None, repr=False)
    padding_mode: str = "same"

    @property
    def _kernel(self) -> np.ndarray:
        return self.J


@dataclass(frozen=True)
class Readout:
    """The output layer: integrating neurons without threshold, read at ``t_read``.

    ``V_k(t) = alpha_k (t - t_min_prev) + sum_j W_kj (t - t_j)`` for ``t`` after every input, with the
    ReLU network's weights ``W`` and ``alpha = b / (t_read - t_min_prev)``, so that ``V_k(t_read)`` is
    the logit ``b_k + sum_j W_kj x_j``.
    """

    weight: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    t_min_prev: float
    t_read: float
    in_shape: tuple[int, ...]


@dataclass(frozen=True)
class SNN:
    """A single-spike α1 network mapped from a ReLU network.

    Attributes:
        layers: the hidden (spiking) layers.
        readout: the output layer.
        windows: ``(t_min, t_max)`` of the input layer and of each hidden layer.
        x_max: the layer maxima ``X_n`` the windows were built from.
        zeta: the window margin.
        input_shape: shape of one input image.
    """

    layers: tuple[SpikingLayer, ...]
    readout: Readout
    windows: tuple[tuple[float, float], ...]
    x_max: tuple[float, ...]
    zeta: float
    input_shape: tuple[int, ...]

    @property
    def latency(self) -> float:
        """Time of the readout, ``t_min^(N) = 1 + sum_n B_n`` (units of TAU_C)."""
        return self.readout.t_read

    def with_alpha_noise(self, std: float, rng: np.random.Generator) -> "SNN":
        """A copy whose hidden neurons have ``alpha + N(0, std^2)``, drawn once per neuron (frozen).

        As in the authors' code, one value per dense neuron or per convolutional channel; the
        readout's ``alpha`` (which carries the bias) is not perturbed.
        """
        if not (np.isfinite(std) and std >= 0):
            raise ValueError(f"alpha-noise std must be a finite number >= 0, got {std}")
        return replace(self, layers=tuple(replace(L, alpha=L.alpha + rng.normal(0.0, std, L.alpha.shape))
                                          for L in self.layers))


def map_to_snn(net: Network, x_max: Sequence[float], zeta: float = ZETA, alpha: float = ALPHA) -> SNN:
    """Map a scaled ReLU network to α1 neurons (the paper's exact mapping).

    For hidden layer ``n`` with window ``[t_min, t_max]`` of width ``B = t_max - t_min`` and previous
    window start ``t_min_prev``:

    - ``J_ij = alpha W_ij / (1 - sum_k W_ik)`` (the slope at threshold is ``alpha / (1 - sum W) > 0``);
    - ``theta_i = alpha (t_max - t_min_prev) + B sum_j J_ij - (alpha + sum_j J_ij) b_i``;

    then ``t_max - t_i = ReLU(sum_j W_ij x_j + b_i)`` whenever the crossing falls inside the window.
    The output layer keeps ``W`` and gets ``alpha_k = b_k / (t_read - t_min_prev)``.

    Args:
        net: a folded and scaled network (every hidden ``sum W < 1``; see :func:`~lib.ttfs.relu.scale_weights`).
        x_max: ``X_n`` per hidden layer (:func:`~lib.ttfs.relu.layer_maxima` on training data).
        zeta: window margin.
        alpha: the constant drive.

    Returns:
        The :class:`SNN`.
    """
    _check_mapping_args(net, x_max, "map_to_snn")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    wins = windows(x_max, zeta)
    layers = []
    for n, layer in enumerate(net.hidden):
        c = layer.weight_sums()
        if np.any(c >= 1.0):
            i = int(np.argmax(c))
            raise ValueError(f"hidden layer {n + 1}: neuron {i} has summed input weight {c[i]:.4g} >= 1, which the "
                             f"α1 mapping cannot represent (the slope at threshold would be <= 0); "
                             f"call ttfs.scale_weights(net) first")
        (t_min_prev, _), (t_min, t_max) = wins[n], wins[n + 1]
        B = t_max - t_min
        shape_w = (-1,) + (1,) * (layer.weight.ndim - 1)
        shape_b = (-1,) + (1,) * (layer.bias.ndim - 1)
        J = alpha * layer.weight / (1.0 - c).reshape(shape_w)
        sJ = J.reshape(J.shape[0], -1).sum(1).reshape(shape_b)
        theta = alpha * (t_max - t_min_prev) + B * sJ - (alpha + sJ) * layer.bias
        layers.append(SpikingLayer(layer.kind, J, theta, np.full(J.shape[0], float(alpha)), t_min_prev, t_min, t_max,
                                   layer.in_shape, layer.pool, layer.pool_sign, layer.padding_mode))
    out = net.layers[-1]
    t_min_prev, t_read = wins[-1]
    readout = Readout(out.weight.copy(), out.bias / (t_read - t_min_prev), t_min_prev, t_read, out.in_shape)
    return SNN(tuple(layers), readout, wins, tuple(float(v) for v in x_max), float(zeta), net.input_shape)


@dataclass(frozen=True)
class SNNResult:
    """What :func:`simulate` returns.

    Attributes:
        input_times: spike times of the input layer ``(n, d)``.
        spike_times: per hidden layer, the spike time of every neuron, ``(n, units)`` or
            ``(n, C, H, W)`` (before pooling: these are the neurons that fire).
        v_out: the output potentials at the readout time, ``(n, n_classes)``: the SNN's logits.
        early: ``(n,)`` booleans: in image ``i`` some hidden neuron's potential reached threshold
            before its last input spike arrived. The mapping is exact only where this is False;
            elsewhere the spike times and the readout are not the ReLU network's values.
    """

    input_times: np.ndarray = field(repr=False)
    spike_times: tuple[np.ndarray, ...] = field(repr=False)
    v_out: np.ndarray = field(repr=False)
    early: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.early is None:
            object.__setattr__(self, "early", np.zeros(len(self.v_out), dtype=bool))

    @property
    def n_early(self) -> int:
        """Number of images with an early threshold crossing."""
        return int(np.sum(self.early))

    def predictions(self) -> np.ndarray:
        """The predicted class of each image (argmax of the readout)."""
        return self.v_out.argmax(1)


def simulate(snn: SNN, x: np.ndarray, sigma: float = 0.0, rng: np.random.Generator | None = None,
             batch: int | None = None, progress: Progress | None = None, strict: bool = False,
             warn: bool = True, fast: bool = True) -> SNNResult:
    """Simulate the α1 network on images ``x``, exactly: first threshold crossings of every neuron.

    Every hidden neuron integrates ``tau_c dV/dt = alpha H(t - t_min_prev) + sum_j J_ij H(t - t_j)``
    from ``V = 0`` and fires at its first threshold crossing, or is forced to fire at ``t_max`` if
    it has not crossed by then (a silent ReLU). The output neurons integrate the same way and are
    read at ``t_read``; an input spike that arrives after ``t_read`` (possible only with jitter)
    does not count. (The authors' code reads ``alpha (t_read - t_min_prev) + sum_j W_kj (t_read -
    t_j)`` without that cut, so under jitter the two readouts differ slightly; without jitter they
    are identical.)

    How (``fast=True``): with ``T`` the image's last input time, the potential before ``T`` is at most
    ``U = alpha (T - t_min_prev) + sum_j max(J_ij, 0) (T - t_j)`` (one more matrix product; for a
    mapped layer without jitter, ``U < theta`` reads ``sum_j max(W_ij, 0) x_j + b_i < B_n``). Where
    ``U`` stays below threshold, the neuron cannot cross before its last input and its spike time is
    the closed form ``T + (theta - V(T)) / (alpha + sum_j J_ij)``, capped at ``t_max``. The other
    neurons are integrated event by event over their sorted input spikes (ties grouped), and that
    sweep finds any crossing that comes before the last input: the image is then flagged in
    ``SNNResult.early``. ``fast=False`` sweeps the events of every neuron (the reference the fast
    path is tested against; 5-20 times slower).

    Args:
        snn: the network.
        x: images ``(n, d)`` with values in [0, 1].
        sigma: standard deviation of a Gaussian jitter added to every spike (input spikes included,
            then clipped at 0), in units of TAU_C. Needs ``rng`` when > 0.
        rng: random generator for the jitter.
        batch: images per batch (None: chosen from the layer sizes to bound memory).
        progress: optional wrapper of the iterable over batches, e.g. a progress bar.
        strict: raise :class:`EarlySpikeError` if any image has an early crossing.
        warn: otherwise, issue an :class:`EarlySpikeWarning` naming how many images have one.
        fast: use the closed form where the bound allows it.

    Returns:
        :class:`SNNResult`, with the per-image flag ``early``.

    Raises:
        ValueError: for images outside [0, 1] or of the wrong shape, or a negative or non-finite
            ``sigma``; :class:`EarlySpikeError` (a ValueError) with ``strict`` as above.
    """
    x = _check_inputs(x, snn.input_shape)
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if sigma > 0 and rng is None:
        raise ValueError("spike-time jitter (sigma > 0) needs an rng")
    n = len(x)
    if batch is None:  # bound the input-time rows of the largest layer to about _BATCH_ELEMENTS values
        rows = max([int(np.prod(L.out_shape[1:])) * (L.J[0].size + 1) for L in snn.layers] + [1])
        batch = int(max(1, min(max(n, 1), _BATCH_ELEMENTS // rows)))
    starts = range(0, n, batch)
    if progress is not None:
        starts = progress(starts)
    t_in, spikes, v_out, early = [], [[] for _ in snn.layers], [], []
    for s in starts:
        t = encode(x[s: s + batch]).reshape(-1, *snn.input_shape)
        if sigma > 0:
            t = np.maximum(t + rng.normal(0.0, sigma, t.shape), 0.0)
        t_in.append(t.reshape(len(t), -1))
        flag = np.zeros(len(t), dtype=bool)
        for i, layer in enumerate(snn.layers):
            t, e = _spiking_layer(layer, t, fast)
            flag |= e
            if sigma > 0:
                t = t + rng.normal(0.0, sigma, t.shape)
            spikes[i].append(t)
            t = _pool_times(layer, t)
        flat = t.reshape(len(t), -1)
        v_out.append(_readout(snn.readout, flat) if fast else _readout_sweep(snn.readout, flat))
        early.append(flag)
    if n == 0:
        return SNNResult(np.zeros((0, int(np.prod(snn.input_shape)))),
                         tuple(np.zeros((0,) + L.out_shape) for L in snn.layers),
                         np.zeros((0, snn.readout.weight.shape[0])), np.zeros(0, dtype=bool))
    res = SNNResult(np.concatenate(t_in), tuple(np.concatenate(a) for a in spikes), np.concatenate(v_out),
                    np.concatenate(early))
    _flag_early(res.early, "a hidden neuron crossed threshold before its last input spike arrived; there "
                "the spike times and the readout are not the ReLU network's values (the mapping is exact "
                "only when every crossing follows the neuron's last input; SNNResult.early flags the "
                "images)", strict, warn, stacklevel=2)
    return res


def alpha1_spike_times(t_in: np.ndarray, J: np.ndarray, theta: np.ndarray, alpha: float | np.ndarray = ALPHA,
                       t_on: float = 0.0, t_max: float = math.inf) -> np.ndarray:
    """Spike times of a group of α1 neurons that receive the same input spikes (event-driven).

    The single-layer core of :func:`simulate`, for exploring one neuron at a time.

    Args:
        t_in: input spike times ``(m, n_in)`` (``m`` independent trials, e.g. images).
        J: weights ``(n_out, n_in)``.
        theta: thresholds ``(n_out,)``.
        alpha: drive, switched on at ``t_on`` (scalar or per neuron).
        t_on: start of integration, ``t_min^(n-1)``.
        t_max: latest spike time (a neuron that has not crossed fires then).

    Returns:
        ``(m, n_out)`` spike times.
    """
    t_in, J = np.atleast_2d(np.asarray(t_in, dtype=np.float64)), np.atleast_2d(np.asarray(J, dtype=np.float64))
    theta = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    if J.shape[1] != t_in.shape[1] or theta.shape != (J.shape[0],):
        raise ValueError(f"need t_in (m, n_in), J (n_out, n_in), theta (n_out,); got {t_in.shape}, {J.shape}, "
                         f"{theta.shape}")
    if not np.all(np.isfinite(t_in)):
        raise ValueError("input spike times must be finite")
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (J.shape[0],))
    return _event_sweep(t_in, np.ascontiguousarray(J.T), alpha, float(t_on), theta[None, :],
                        np.zeros(len(t_in), dtype=np.int64), t_max=t_max)[0]


def _pool_times(layer: SpikingLayer | Layer, t: np.ndarray) -> np.ndarray:
    """Pooling in time: the earliest spike (max of values) or, where pool_sign < 0, the latest."""
    if layer.pool == 1:
        return t
    s = torch.from_numpy(layer.pool_sign)[None, :, None, None]
    return (-s * F.max_pool2d(-s * torch.from_numpy(t), layer.pool)).numpy()


def _patches(layer: SpikingLayer, t: np.ndarray) -> np.ndarray:
    """Input spike times of every convolution position, ``(n * H * W, C_in * k * k)``.

    Padded positions get the previous layer's ``t_max`` (= this layer's ``t_min``): a value of 0.
    """
    k, p = layer.J.shape[-1], layer.padding
    tt = torch.from_numpy(t)
    if p:
        tt = F.pad(tt, (p, p, p, p), value=layer.t_min)
    cols = F.unfold(tt, k)  # (n, C_in*k*k, H*W)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy()


def _spiking_layer(layer: SpikingLayer, t: np.ndarray, fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Spike times of one α1 layer given its input spike times (image-first arrays).

    Returns ``(spike times, early)``, ``early`` per image: some neuron crossed before its last input.
    """
    n = len(t)
    if layer.kind == "conv":
        c, h, wd = layer.out_shape
        hw = h * wd
        out = np.empty((n, c, hw))
        theta = layer.theta.reshape(c, -1).T  # (H*W, C_out)
        w = layer.J.reshape(c, -1).T
    else:
        out, theta, w = None, layer.theta[None, :], layer.J.T
    if fast:
        t_cf, unsafe = _closed_form_layer(layer, t)  # (n, C, H*W) or (n, units)
        if layer.kind == "conv":
            out[:] = t_cf
            img, pos = np.nonzero(unsafe.any(1))  # positions where some channel is unsafe
        else:
            out = t_cf
            img = np.flatnonzero(unsafe.any(1))
            pos = np.zeros(len(img), dtype=np.int64)
        if len(img) == 0:
            return _shaped(layer, out, n), np.zeros(n, dtype=bool)
        cols = np.flatnonzero(unsafe[img, :, pos].any(0) if layer.kind == "conv" else unsafe[img].any(0))
    else:
        if layer.kind == "conv":
            img, pos = np.repeat(np.arange(n), hw), np.tile(np.arange(hw), n)
        else:
            img, pos, out = np.arange(n), np.zeros(n, dtype=np.int64), np.empty((n, w.shape[1]))
        cols = np.arange(w.shape[1])
    # the event sweep, for the rows (image, position) and neurons the bound did not clear
    if layer.kind == "conv":
        imgs, local = np.unique(img, return_inverse=True)
        rows = _patches(layer, t[imgs])[local * hw + pos]
    else:
        rows = t.reshape(n, -1)[img]
    swept, early_rows = _event_sweep(rows, w[:, cols], layer.alpha[cols], layer.t_min_prev, theta[:, cols], pos,
                                     t_max=layer.t_max)
    if layer.kind == "conv":
        out[img[:, None], cols[None, :], pos[:, None]] = swept
    else:
        out[img[:, None], cols[None, :]] = swept
    early = np.zeros(n, dtype=bool)
    early[img[early_rows]] = True
    return _shaped(layer, out, n), early


def _shaped(layer: SpikingLayer, out: np.ndarray, n: int) -> np.ndarray:
    return out.reshape((n,) + layer.out_shape) if layer.kind == "conv" else out


def _closed_form_layer(layer: SpikingLayer, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form spike times of one layer and the neurons whose bound does not exclude an early crossing.

    With ``T`` the last input time of the image (padding and the drive's onset included) and
    ``d_j = T - t_j >= 0``: ``V(T) = alpha (T - t_on) + sum_j J_ij d_j`` once every input has
    arrived, and the potential at any time up to ``T`` is at most
    ``U = max(alpha, 0) (T - t_on) + sum_j max(J_ij, 0) d_j``. A neuron with ``U < theta`` cannot
    cross before ``T``, so its spike is ``T + (theta - V(T)) / (alpha + sum_j J_ij)`` (capped at
    ``t_max``). ``U`` is a sum of non-negative terms, so it is computed in float32 and compared with a
    margin larger than its worst-case rounding error, ``2 gamma_(m+3)`` in float32 for fan-in ``m``;
    closer calls go to the event sweep.

    Returns ``(times, unsafe)``, both ``(n, units)`` or ``(n, C, H*W)``.
    """
    n, k, t_on = len(t), layer.J.shape[0], layer.t_min_prev
    J = layer.J.reshape(k, -1)
    a = np.asarray(layer.alpha, dtype=np.float64)
    tt = torch.from_numpy(np.ascontiguousarray(t)).reshape(n, *layer.in_shape)
    if layer.kind == "conv" and layer.padding:  # padding spikes at t_min (a value of 0), as in the sweep
        tt = F.pad(tt, (layer.padding,) * 4, value=layer.t_min)
    flat = tt.reshape(n, -1)
    T = torch.clamp(flat.amax(1), min=t_on) if flat.shape[1] else torch.full((n,), float(t_on), dtype=torch.float64)
    u32 = 2.0 ** -24
    margin = 2.0 * (J.shape[1] + 3) * u32 / (1.0 - (J.shape[1] + 3) * u32)
    if layer.kind == "conv":
        d = T[:, None, None, None] - tt
        v_T = F.conv2d(d, torch.from_numpy(layer.J)).reshape(n, k, -1)
        U = F.conv2d(d.float(), torch.from_numpy(np.maximum(layer.J, 0.0)).float()).reshape(n, k, -1)
        shape_a = (1, k, 1)
    else:
        d = T[:, None] - flat
        v_T = d @ torch.from_numpy(J.T)
        U = d.float() @ torch.from_numpy(np.maximum(J, 0.0).T).float()
        shape_a = (1, k)
    dT = (T - t_on).reshape((n,) + (1,) * (v_T.ndim - 1))
    v_T.add_(torch.from_numpy(a.reshape(shape_a)) * dT)
    U.add_(torch.from_numpy(np.maximum(a, 0.0).reshape(shape_a)).float() * dT.float()).mul_(1.0 + margin)
    theta = torch.from_numpy(np.ascontiguousarray(layer.theta.reshape((1, k, -1) if layer.kind == "conv" else (1, k))))
    # float32 thresholds rounded down, so that "U < theta" in float32 implies it in exact arithmetic
    th32 = theta.float()
    th32 = torch.where(th32.double() > theta, torch.nextafter(th32, torch.tensor(-math.inf)), th32)
    unsafe = ~(U < th32)
    slope = torch.from_numpy((a + J.sum(1)).reshape(shape_a))
    t_sp = v_T.neg_().add_(theta)  # theta - V(T), in place
    if bool((slope > 0).all()):
        t_sp.div_(slope)
    else:
        t_sp = torch.where(slope > 0, t_sp / torch.where(slope > 0, slope, 1.0), math.inf)
    t_sp.add_(T.reshape((n,) + (1,) * (t_sp.ndim - 1))).clamp_(max=layer.t_max)
    return t_sp.numpy(), unsafe.numpy()


def _readout(readout: Readout, t: np.ndarray) -> np.ndarray:
    """Output potentials at ``t_read`` (inputs after ``t_read`` do not count): no threshold, so in closed form."""
    d = torch.from_numpy(np.maximum(readout.t_read - t, 0.0))
    drive = readout.alpha * (readout.t_read - readout.t_min_prev)
    return (d @ torch.from_numpy(readout.weight).T).numpy() + drive


def _readout_sweep(readout: Readout, t: np.ndarray) -> np.ndarray:
    """The same potentials, integrated event by event (the reference for :func:`_readout`)."""
    rows = np.minimum(t, readout.t_read)
    return _event_sweep(rows, readout.weight.T, readout.alpha, readout.t_min_prev, None,
                        np.zeros(len(t), dtype=np.int64), t_read=readout.t_read)[0]


def _event_sweep(t: np.ndarray, w: np.ndarray, alpha: np.ndarray, t_on: float, theta: np.ndarray | None,
                 pos: np.ndarray, t_max: float = math.inf, t_read: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The event-driven core, for many rows (images, or image positions of a convolution) at once.

    Each row ``r`` holds the input spike times ``t[r]`` of a group of neurons that share them (a dense
    layer, or all channels at one position). The drive ``alpha`` is one more input, of weight
    ``alpha_i`` at time ``t_on``. Events are sorted per row and processed in that order; between
    events the potential of neuron ``i`` grows linearly with slope ``C_i`` (the summed weight of the
    inputs received so far), and at each event time it is compared with the threshold. The inputs
    that share the row's last time (zero pixels, silent neurons, padding) form one tie group that is
    added at once.

    Args:
        t: ``(m, n_in)`` input spike times.
        w: ``(n_in, n_out)`` weights (pre x post).
        alpha: ``(n_out,)`` drive of each neuron.
        t_on: time the drive switches on.
        theta: thresholds ``(P, n_out)``, the row ``pos[r]`` applying to row ``r``; None for the readout.
        pos: ``(m,)`` index into ``theta`` per row.
        t_max: end of the window; neurons that have not crossed fire then.
        t_read: for the readout, the time at which the potential is read.

    Returns:
        ``(out, early)``: ``(m, n_out)`` spike times, or potentials at ``t_read`` when ``theta`` is
        None; ``(m,)`` booleans, True for a row in which some neuron reached threshold at or before
        the row's last event (a crossing before the last input).
    """
    m, n_in = t.shape
    n_out = w.shape[1]
    events = torch.from_numpy(np.concatenate([t, np.full((m, 1), float(t_on))], axis=1))
    weights = torch.from_numpy(np.ascontiguousarray(np.concatenate([w, np.asarray(alpha, dtype=np.float64)[None, :]])))
    c_total = weights.sum(0)
    th = None if theta is None else torch.from_numpy(np.ascontiguousarray(theta))
    tau, order = torch.sort(events, dim=1, stable=True)
    last = tau[:, -1:]
    n_lead = (tau < last).sum(1)  # events before the row's final tie group
    rows_by_len = torch.argsort(n_lead, stable=True)
    out = torch.empty((m, n_out), dtype=torch.float64)
    early_all = torch.zeros(m, dtype=torch.bool)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_out, 1))
    for s in range(0, m, chunk):
        r = rows_by_len[s: s + chunk]
        k_lead = int(n_lead[r].max()) if len(r) else 0
        tau_r = tau[r]
        idx = order[r, :k_lead].T.contiguous()  # (K, c)
        times = tau_r[:, :k_lead].T.contiguous()
        th_r = None if th is None else th[torch.from_numpy(pos)[r]]
        if th_r is None:
            out[r] = _sweep_readout(times, idx, tau_r[:, -1], weights, c_total, t_read)
            continue
        t_sp, early = _sweep_fast(times, idx, tau_r[:, -1], weights, c_total, th_r, n_lead[r])
        early_all[r] = early
        if bool(early.any()):
            rr = early.nonzero().flatten()
            k2 = int(n_lead[r[rr]].max())
            t_sp[rr] = _sweep_tracked(times[:k2, rr].contiguous(), idx[:k2, rr].contiguous(), tau_r[rr, -1],
                                      weights, c_total, th_r[rr])
        out[r] = torch.clamp(t_sp, max=t_max)
    return out.numpy(), early_all.numpy()


def _sweep_fast(times, idx, t_last, weights, c_total, theta, n_lead):
    """One pass over the events that only records the largest potential reached at any event time.

    ``n_lead`` (ascending, as the rows are ordered) is the number of events of each row before its
    final tie group; a row with fewer than ``K`` takes its remaining steps at ``t_last`` (padding),
    which do not count as earlier events. Returns the spike times assuming the first crossing comes
    after the last event, and a per-row flag of rows in which some neuron reached threshold at an
    earlier event time (those are redone by :func:`_sweep_tracked`).
    """
    K, c = idx.shape
    n_out = weights.shape[1]
    C = torch.zeros((c, n_out), dtype=torch.float64)
    V = torch.zeros_like(C)
    vmax = torch.full_like(C, -math.inf)
    G = torch.empty_like(C)
    prev = times[0] if K else t_last
    first = torch.searchsorted(n_lead.contiguous(), torch.arange(K, dtype=n_lead.dtype), right=True).tolist()
    for k in range(K):
        V.addcmul_(C, (times[k] - prev)[:, None])  # advance to the k-th event
        p = first[k]  # rows p: have a real event at step k
        torch.maximum(vmax[p:], V[p:], out=vmax[p:])
        torch.index_select(weights, 0, idx[k], out=G)  # then the event changes the slope
        C.add_(G)
        prev = times[k]
    V.addcmul_(C, (t_last - prev)[:, None])  # advance to the final tie group
    # a crossing at an earlier event is early; reaching threshold at the last input itself is not
    # (the closed form gives t_last): allow rounding there (_LAST_RTOL)
    early = (vmax >= theta).any(1) | (V > theta + _LAST_RTOL * (theta.abs() + V.abs())).any(1)
    t_sp = torch.where(c_total > 0, t_last[:, None] + (theta - V) / c_total, math.inf)
    return t_sp, early


def _sweep_tracked(times, idx, t_last, weights, c_total, theta):
    """Like :func:`_sweep_fast`, but records the first threshold crossing of every neuron."""
    K, c = idx.shape
    n_out = weights.shape[1]
    C = torch.zeros((c, n_out), dtype=torch.float64)
    V = torch.zeros_like(C)
    t_sp = torch.full_like(C, math.inf)
    alive = torch.ones((c, n_out), dtype=torch.bool)
    prev = times[0] if K else t_last

    def check(t_now):
        hit = (V >= theta) & alive
        if bool(hit.any()):
            # the crossing lies on the segment that ends now, with slope C (before this event)
            back = torch.where(C > 0, (V - theta) / torch.where(C > 0, C, 1.0), 0.0)
            t_sp[hit] = (t_now[:, None] - back)[hit]
            alive[hit] = False

    for k in range(K):
        V.addcmul_(C, (times[k] - prev)[:, None])
        check(times[k])
        C.add_(weights[idx[k]])
        prev = times[k]
    V.addcmul_(C, (t_last - prev)[:, None])
    check(t_last)
    final = torch.where(c_total > 0, t_last[:, None] + (theta - V) / c_total, math.inf)
    return torch.where(alive, final, t_sp)


def _sweep_readout(times, idx, t_last, weights, c_total, t_read):
    """Potential at ``t_read`` (all events are at or before it)."""
    K, c = idx.shape
    C = torch.zeros((c, weights.shape[1]), dtype=torch.float64)
    V = torch.zeros_like(C)
    G = torch.empty_like(C)
    prev = times[0] if K else t_last
    for k in range(K):
        V.addcmul_(C, (times[k] - prev)[:, None])
        torch.index_select(weights, 0, idx[k], out=G)
        C.add_(G)
        prev = times[k]
    V.addcmul_(C, (t_last - prev)[:, None])
    return V + c_total * (t_read - t_last)[:, None]


def closed_form(snn: SNN, x: np.ndarray) -> SNNResult:
    """The spike times the mapping predicts, from the formula rather than by integration.

    Assumes that every neuron crosses threshold after its last input:
    ``t_i = (sum_j J_ij t_j + alpha t_min_prev + theta_i) / (sum_j J_ij + alpha)``, capped at ``t_max``;
    the readout is ``alpha_k (t_read - t_min_prev) + sum_j W_kj (t_read - t_j)``. Used by the tests as
    an independent reference for :func:`simulate`.
    """
    x = _check_inputs(x, snn.input_shape)
    t = encode(x).reshape(-1, *snn.input_shape)
    t_in, spikes = t.reshape(len(t), -1), []
    for layer in snn.layers:
        tt = torch.from_numpy(t)
        if layer.kind == "conv":
            num = F.conv2d(F.pad(tt, (layer.padding,) * 4, value=layer.t_min), torch.from_numpy(layer.J))
            sJ = layer.J.reshape(layer.J.shape[0], -1).sum(1)[:, None, None]
            a = layer.alpha[:, None, None]
        else:
            num = tt.reshape(len(tt), -1) @ torch.from_numpy(layer.J).T
            sJ, a = layer.J.sum(1), layer.alpha
        num = num.numpy() + a * layer.t_min_prev + layer.theta
        slope = sJ + a
        with np.errstate(divide="ignore", invalid="ignore"):
            ti = np.where(slope > 0, num / slope, np.inf)
        t = np.minimum(ti, layer.t_max)
        spikes.append(t)
        t = _pool_times(layer, t)
    ro = snn.readout
    v = (ro.t_read - t.reshape(len(t), -1)) @ ro.weight.T + ro.alpha * (ro.t_read - ro.t_min_prev)
    return SNNResult(t_in, tuple(spikes), v)


def decode(snn: SNN, result: SNNResult) -> list[np.ndarray]:
    """The values the spikes encode, ``x = t_max - t`` per hidden layer (before pooling)."""
    return [layer.t_max - t for layer, t in zip(snn.layers, result.spike_times, strict=True)]


def layer_input_times(snn: SNN, result: SNNResult, layer: int) -> np.ndarray:
    """Spike times that hidden layer ``layer`` (0-based; ``len(snn.layers)`` = the readout) receives."""
    if not 0 <= layer <= len(snn.layers):
        raise ValueError(f"layer must be in 0..{len(snn.layers)}, got {layer}")
    if layer == 0:
        return result.input_times.reshape(-1, *snn.input_shape)
    return _pool_times(snn.layers[layer - 1], result.spike_times[layer - 1])


def potential(snn: SNN, result: SNNResult, layer: int, image: int, neuron: int, times: np.ndarray) -> np.ndarray:
    """Membrane potential of one neuron over ``times``, from the input spikes of one image.

    ``V(t) = alpha (t - t_min_prev)_+ + sum_j J_j (t - t_j)_+``, i.e. without the reset of a spike
    (the neuron fires once, where ``V`` first reaches ``theta``). ``layer == len(snn.layers)`` is the
    readout (``neuron`` = class).

    Args:
        snn, result: the network and a simulation.
        layer: hidden layer index (0-based) or ``len(snn.layers)`` for the output.
        image: image index in ``result``.
        neuron: flat index of the neuron in its layer (``c * H * W + h * W + w`` for a convolution).
        times: where to evaluate.

    Returns:
        ``V(times)``.
    """
    times = np.asarray(times, dtype=np.float64)
    t_in = layer_input_times(snn, result, layer)[image]
    if layer == len(snn.layers):
        w, a, t0, tj = snn.readout.weight[neuron], snn.readout.alpha[neuron], snn.readout.t_min_prev, t_in.ravel()
    else:
        L = snn.layers[layer]
        t0 = L.t_min_prev
        if L.kind == "dense":
            w, a, tj = L.J[neuron], L.alpha[neuron], t_in.ravel()
        else:
            c, h, wd = L.out_shape
            ch, rest = divmod(neuron, h * wd)
            patch = _patches(L, t_in[None])[rest]
            w, a, tj = L.J[ch].ravel(), L.alpha[ch], patch
    return a * np.maximum(times - t0, 0.0) + np.maximum(times[:, None] - tj[None, :], 0.0) @ w


def threshold(snn: SNN, layer: int, neuron: int) -> float:
    """Threshold of one hidden neuron (flat index)."""
    return float(snn.layers[layer].theta.ravel()[neuron])


def rounding_bound(snn: SNN) -> np.ndarray:
    """How far float64 rounding alone can move each output potential from the logit: the error model.

    Spike times are absolute times, so each carries a rounding error of order ``u t`` (``u = 2**-53``)
    however small the value ``x = t_max - t`` it codes: the error grows with the latency, not with
    the values. To first order in ``u``, hidden neuron ``i`` of layer ``n`` (fan-in ``m``) adds at
    most ``rho_i = gamma (2 t_max + |theta_i| / s_i + sum_j |W_ij| t_max)`` to its spike time,
    ``gamma = (2 m + 8) u / (1 - (2 m + 8) u)`` (the worst-case bound of a sum of ``2 m + 8``
    rounded terms: the closed form, or the event sweep's ``m + 1`` steps of two operations), with
    ``W = J / s`` and ``s = alpha + sum_j J_ij``. Errors of the inputs pass on with the weights:
    ``delta_i = rho_i + sum_j |W_ij| delta_j`` (pooling passes one input on), from ``delta = u``
    for the input times. The readout adds ``gamma (|b_k| + sum_j |W_kj| t_read)`` to
    ``sum_j |W_kj| delta_j``. The result is doubled to cover the reference's own rounding (the ReLU
    network's forward pass, folding and scaling apply the same weights to values no larger than
    the spike times).

    It is a worst-case bound: measured errors are typically far smaller (random rounding errors
    partly cancel). A neuron that crosses threshold before its last input gives an error of the size
    of the values themselves, far above it.

    Returns:
        ``(n_classes,)``: the bound on ``|V_out,k - logit_k|`` for any input image.
    """
    u = np.finfo(np.float64).eps / 2

    def gamma(m: int) -> float:
        return m * u / (1.0 - m * u)

    delta = np.full(int(np.prod(snn.input_shape)), u)  # per input (dense) or per channel (conv)
    if len(snn.input_shape) == 3 and snn.layers and snn.layers[0].kind == "conv":
        delta = np.full(snn.input_shape[0], u)
    for L in snn.layers:
        k = L.J.shape[0]
        J = L.J.reshape(k, -1)
        s = L.alpha + J.sum(1)
        W = np.abs(J / s[:, None])
        theta = np.abs(L.theta.reshape(k, -1)).max(1)
        if L.kind == "conv":
            prop = np.abs(L.J / s[:, None, None, None]).sum((2, 3)) @ delta
        else:
            d_in = delta if len(delta) == J.shape[1] else np.repeat(delta, J.shape[1] // len(delta))
            prop = W @ d_in
        delta = gamma(2 * J.shape[1] + 8) * (2 * L.t_max + theta / s + W.sum(1) * L.t_max) + prop
    ro = snn.readout
    Wo = np.abs(ro.weight)
    d_in = delta if len(delta) == Wo.shape[1] else np.repeat(delta, Wo.shape[1] // len(delta))
    b = np.abs(ro.alpha) * (ro.t_read - ro.t_min_prev)
    return 2.0 * (gamma(Wo.shape[1] + 4) * (b + Wo.sum(1) * ro.t_read) + Wo @ d_in)


@dataclass(frozen=True)
class Exactness:
    """How exactly an SNN reproduces its ReLU network on a test set.

    Attributes:
        rel_error: ``max |V_out - logits| / max |logits|`` (logits of the original trained network).
        agreement: fraction of images where argmax of the SNN readout equals the ReLU net's.
        acc_ann, acc_snn: test accuracies.
        in_window: fraction of (image, hidden neuron) pairs whose single spike lies in its window.
        early: number of hidden spikes before their window (crossings during the input period).
        active: fraction of hidden neurons that fire before ``t_max`` (a positive ReLU value).
        max_time_error: ``max |t_SNN - (t_max - ReLU)|`` over hidden neurons.
        n_images: test images.
        n_neurons: hidden neurons per image.
        early_images: images in which some hidden neuron crossed threshold before its last input
            (``SNNResult.early``): the images where the mapping is not exact.
        abs_error: ``max |V_out - logits|``.
        error_ratio: ``max_k max |V_out,k - logit_k| / bound_k``, with ``bound`` of
            :func:`rounding_bound`: at most 1 if the readout equals the logits up to float64 rounding.
        rel_bound: ``max_k bound_k / max |logits|``, the rounding bound in the units of ``rel_error``.
    """

    rel_error: float
    agreement: float
    acc_ann: float
    acc_snn: float
    in_window: float
    early: int
    active: float
    max_time_error: float
    n_images: int
    n_neurons: int
    early_images: int = 0
    abs_error: float = 0.0
    error_ratio: float = 0.0
    rel_bound: float = 0.0


def exactness(snn: SNN, net: Network, x: np.ndarray, y: np.ndarray, ann_logits: np.ndarray,
              batch: int = 1000, progress: Progress | None = None) -> Exactness:
    """Simulate ``snn`` on images ``x`` and compare it with the ReLU network it was mapped from.

    The images are simulated in batches and only the statistics are kept, so that large test sets
    of convolutional nets fit in memory. Early crossings do not warn here: they are counted in
    ``Exactness.early_images``.

    Args:
        snn: the SNN.
        net: the scaled network it was mapped from (its hidden activations are the reference for
            the spike times).
        x, y: test images and labels.
        ann_logits: logits of the *original* trained network on ``x`` (the reference of the readout).
        batch: images per batch.
        progress: optional wrapper of the iterable over batches, e.g. a progress bar.
    """
    x = _check_inputs(x, snn.input_shape)
    ann_logits, y = np.asarray(ann_logits), np.asarray(y)
    if ann_logits.shape != (len(x), snn.readout.weight.shape[0]) or y.shape != (len(x),):
        raise ValueError(f"need ann_logits ({len(x)}, {snn.readout.weight.shape[0]}) and labels ({len(x)},), "
                         f"got {ann_logits.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError("exactness needs at least one image")
    err, inside, early, active, n_spk, terr, pred = 0.0, 0, 0, 0, 0, 0.0, []
    err_k, n_early = np.zeros(snn.readout.weight.shape[0]), 0
    starts = range(0, len(x), batch)
    for s in (starts if progress is None else progress(starts)):
        res = simulate(snn, x[s: s + batch], warn=False)
        _, hidden = net.forward(x[s: s + batch], batch=batch)
        err_k = np.maximum(err_k, np.max(np.abs(res.v_out - ann_logits[s: s + batch]), axis=0))
        n_early += res.n_early
        pred.append(res.predictions())
        for layer, t, h in zip(snn.layers, res.spike_times, hidden, strict=True):
            inside += int(np.sum((t >= layer.t_min) & (t <= layer.t_max)))
            early += int(np.sum(t < layer.t_min))
            active += int(np.sum(t < layer.t_max))
            n_spk += t.size
            terr = max(terr, float(np.max(np.abs(t - (layer.t_max - h)))))
    pred_snn, pred_ann = np.concatenate(pred), ann_logits.argmax(1)
    err, bound, scale = float(err_k.max()), rounding_bound(snn), float(np.max(np.abs(ann_logits)))
    return Exactness(err / scale, float(np.mean(pred_snn == pred_ann)),
                     float(np.mean(pred_ann == y)), float(np.mean(pred_snn == y)), inside / n_spk, early,
                     active / n_spk, terr, len(y), n_spk // len(y), n_early, err,
                     float(np.max(err_k / bound)), float(bound.max() / scale))

