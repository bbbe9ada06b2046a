"""What every TTFS model shares: time units, the input coding, spike windows and layer shapes.

Part of :mod:`lib.ttfs` (Stanojevic et al. 2023, "An exact mapping from ReLU networks to spiking
neural networks", *Neural Networks*, arXiv:2212.12522; chapter ``ttfs-exact-mapping``). Shared by
the ReLU networks (:mod:`lib.ttfs.relu`), the α1 neuron model (:mod:`lib.ttfs.alpha1`) and the B1
neuron model of ``ttfs-deep-training`` (Stanojevic et al. 2024, :mod:`lib.ttfs.b1`).

Units: time in units of the synaptic time constant ``TAU_C`` (= 1). Layer ``n`` spikes in
``[t_min^(n), t_max^(n)]`` with ``t_min^(n) = t_max^(n-1)`` and
``t_max^(n) - t_min^(n) = (1 + zeta) X_n`` (:func:`windows`); the input layer spikes in [0, 1].
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: Synaptic time constant; all times are in units of it.
TAU_C = 1.0
#: Padding modes of a convolution: 'same' (output as large as the input) or 'valid' (no padding).
PADDINGS = ("same", "valid")
#: Default window margin: windows are ``(1 + ZETA) X_n`` wide.
ZETA = 0.5
#: Spike window of the input layer: a pixel of value ``x`` in [0, 1] spikes at ``t = 1 - x``.
INPUT_T_MIN, INPUT_T_MAX = 0.0, 1.0


class _LayerShape:
    """Shapes of a dense or convolutional layer, from its kind, its weights and its input shape.

    Shared by :class:`Layer` (weights ``weight``) and :class:`SpikingLayer` (weights ``J``).
    """

    kind: str
    in_shape: tuple[int, ...]
    padding_mode: str

    @property
    def _kernel(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def padding(self) -> int:
        """Zero padding on each side of a convolution: ``k // 2`` for 'same', 0 for 'valid' (and dense)."""
        return self._kernel.shape[-1] // 2 if self.kind == "conv" and self.padding_mode == "same" else 0

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of this layer's activations (or spike times) before pooling."""
        if self.kind == "dense":
            return (self._kernel.shape[0],)
        shrink = self._kernel.shape[-1] - 1 - 2 * self.padding
        return (self._kernel.shape[0],) + tuple(int(s) - shrink for s in self.in_shape[1:])


def windows(x_max: Sequence[float], zeta: float = ZETA) -> tuple[tuple[float, float], ...]:
    """Spike windows ``(t_min, t_max)``: ``[0, 1]`` for the input, then ``B_n = (1 + zeta) X_n`` each.

    Args:
        x_max: ``X_n`` of each hidden layer (must be > 0).
        zeta: window margin, > -1.

    Returns:
        ``((0, 1), (1, 1 + B_1), (1 + B_1, 1 + B_1 + B_2), ...)``.
    """
    if not zeta > -1.0:
        raise ValueError(f"zeta must be > -1 (windows (1 + zeta) X_n must be positive), got {zeta}")
    x_max = [float(v) for v in x_max]
    for n, v in enumerate(x_max):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"X_n of hidden layer {n + 1} must be positive and finite, got {v}: the layer is "
                             "silent on the data, so no window can be set")
    out = [(INPUT_T_MIN, INPUT_T_MAX)]
    for n, v in enumerate(x_max):
        t = out[-1][1]
        B = (1.0 + zeta) * v
        if not (t + B) - t > 1e-9 * max(1.0, t):
            raise ValueError(f"the window of hidden layer {n + 1} ((1 + zeta) X_n = {B:.3g}) is too short to be "
                             f"resolved in float64 at t = {t:.4g}; the layer is (nearly) silent on the data")
        out.append((t, t + B))
    return tuple(out)


def encode(x: np.ndarray) -> np.ndarray:
    """TTFS input coding: a pixel of value ``x`` in [0, 1] spikes at ``t = 1 - x`` (a zero pixel at t = 1)."""
    x = np.asarray(x, dtype=np.float64)
    _check_unit_interval(x)
    return INPUT_T_MAX - (INPUT_T_MAX - INPUT_T_MIN) * x


def _check_unit_interval(x: np.ndarray) -> None:
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError("inputs must lie in [0, 1] (TTFS coding maps x to the spike time 1 - x); got NaN or inf")
    if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError(f"inputs must lie in [0, 1] (TTFS coding maps x to the spike time 1 - x); "
                         f"got values in [{x.min():.4g}, {x.max():.4g}]")


def _check_inputs(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    d = int(np.prod(input_shape))
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"images must be an array (n, {d}) for inputs of shape {tuple(input_shape)}, got {x.shape}")
    _check_unit_interval(x)
    return np.ascontiguousarray(x)

