"""Sample-and-measure: fitting summary statistics of spike trains with a differentiable simulator.

Science of the chapter ``sample-and-measure``, which reproduces Bellec, Wang, Modirshanechi, Brea
& Gerstner (2021), "Fitting summary statistics of neural data with a differentiable spiking
network simulator", NeurIPS 34 (arXiv:2106.10064). The model and the losses follow the authors'
TensorFlow code (``EPFL-LCN/pub-bellec-wang-2021-sample-and-measure``), re-implemented in torch.

The model is a discrete-time recurrent spiking network with escape noise (a GLM / spike-response
model with a finite spike history). Unit ``j`` at time bin ``t`` has the logit

``v_j(t) = sum_i sum_{d=1..D} W[j, i, d-1] z_i(t-d) + sum_k W_in[j, k] c_k(t) + b_j``,

spikes with probability ``p_j(t) = sigmoid(v_j(t))`` and emits ``z_j(t) = 1[p_j(t) > U]`` with
``U ~ U(0, 1)``. (The paper writes ``v = (u - thr) / thr`` with ``thr = 0.4``; here the weights
are in units of ``v`` directly, which is the same model.) Units ``0..n_visible-1`` are recorded,
the others hidden.

What is here:

- :class:`RSNN`: a batch of ``M`` independent networks (one per seed or loss variant) simulated
  together; :meth:`RSNN.free_run` samples spike trains with the straight-through estimator
  (:func:`spike_function`, pseudo-derivative :func:`pseudo_derivative`), and
  :meth:`RSNN.teacher_forced` gives the one-step-ahead logits of the recorded units given the
  recorded spikes (vectorised over time; only hidden units need a loop);
- the summary statistics: :func:`psth`, :func:`noise_covariance` (delayed, non-circular lags),
  :func:`noise_correlation`;
- the losses: :func:`mle_loss`, :func:`psth_loss`, :func:`nc_loss` (which excludes the zero-lag
  diagonal, where data spikes carry a Bernoulli variance that model probabilities lack),
  :func:`rate_loss`, weighted by :class:`LossWeights`;
- the training loop :func:`fit` (Adam, per-network gradient clipping), part of the paper's
  method;
- the evaluation measures :func:`psth_correlation`, :func:`nc_agreement`,
  :func:`weight_correlation`;
- straightforward per-trial, per-step numpy loops of the same model, :func:`simulate_reference`
  and :func:`teacher_forced_reference`, against which the vectorised versions are checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from . import seeds as _seeds
from . import torchkit

#: Bin width of the paper (one movie frame), in seconds.
DT_S = 0.040
#: Dampening factor of the triangular pseudo-derivative (its peak value at ``v = 0``).
DAMPENING = 0.3
#: Threshold of the paper's parametrisation ``v = (u - thr) / thr`` (documentation only).
THRESHOLD = 0.4
#: Spike-history length of the paper's network, in bins (360 ms).
PAPER_DELAYS = 9
#: Initial bias (logit): the paper's ``u = 0`` gives ``v = -1``, a rate of 0.27 per bin.
INIT_BIAS = -1.0
#: Initial weight scale in logit units: the authors draw ``W ~ TruncNormal(0, 1/sqrt(n D))`` in
#: units of ``u``, and ``v = (u - thr) / thr`` multiplies a weight by ``1 / thr = 2.5``.
INIT_SCALE = 1.0 / THRESHOLD


def _check_int(x, name: str, low: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < low:
        raise ValueError(f"{name} must be an int >= {low}, got {x!r}")
    return int(x)


def _check_finite_nonneg(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)) \
            or not math.isfinite(x) or x < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {x!r}")
    return float(x)


# ----------------------------------------------------------------------------------------------
# Spikes and their pseudo-derivative
# ----------------------------------------------------------------------------------------------


def pseudo_derivative(v: torch.Tensor, dampening: float = DAMPENING) -> torch.Tensor:
    """The triangular pseudo-derivative ``dampening * max(0, 1 - abs(v))``.

    Args:
        v: logits (any shape).
        dampening: the peak value at ``v = 0`` (0.3 in the paper), >= 0.

    Returns:
        A tensor of the shape of ``v``.
    """
    _check_finite_nonneg(dampening, "dampening")
    return dampening * torch.clamp(1.0 - v.abs(), min=0.0)


class _Spike(torch.autograd.Function):
    """Hard spikes forward, the triangular pseudo-derivative backward (one graph node per step)."""

    @staticmethod
    def forward(ctx, v, u, dampening):
        ctx.save_for_backward(v)
        ctx.dampening = dampening
        return (torch.sigmoid(v) > u).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad * (ctx.dampening * torch.clamp(1.0 - v.abs(), min=0.0)), None, None


def spike_function(v: torch.Tensor, u: torch.Tensor, dampening: float = DAMPENING) -> torch.Tensor:
    """Sample spikes ``1[sigmoid(v) > u]`` with a straight-through pseudo-gradient.

    The value is the hard sample; the gradient with respect to ``v`` is
    :func:`pseudo_derivative` ``(v)``, as in the straight-through form
    ``z = sg(z_hard) + (v - sg(v)) * sg(psi(v))`` with sg the stop-gradient.

    Args:
        v: logits.
        u: uniform random numbers in [0, 1), the shape of ``v``.
        dampening: the pseudo-derivative's peak.

    Returns:
        Spikes (0. or 1.) of the shape and dtype of ``v``.
    """
    if u.shape != v.shape:
        raise ValueError(f"u must have the shape of v, got {tuple(u.shape)} and {tuple(v.shape)}")
    return _Spike.apply(v, u, float(_check_finite_nonneg(dampening, "dampening")))


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


def _lagged(z: torch.Tensor, n_delays: int) -> torch.Tensor:
    """``(M, B, T, n)`` -> ``(M, B, T, D * n)``: entry ``(d - 1) * n + i`` is ``z_i(t - d)`` (0 before t = 0)."""
    T = z.shape[2]
    pad = torch.nn.functional.pad(z, (0, 0, n_delays, 0))
    return torch.cat([pad[:, :, n_delays - d: n_delays - d + T] for d in range(1, n_delays + 1)], dim=-1)


def _flat(W: torch.Tensor) -> torch.Tensor:
    """``(M, post, pre, D)`` -> ``(M, D * pre, post)``, rows in the order of :func:`_lagged`."""
    return W.permute(0, 3, 2, 1).flatten(1, 2)


def _trunc_normal(shape, std: float, gen: torch.Generator, dtype) -> torch.Tensor:
    t = torch.empty(shape, dtype=dtype)
    torch.nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std, generator=gen)
    return t


def _free_run_numpy(drive: np.ndarray, U: np.ndarray, Wr: np.ndarray, D: int):
    """The no-gradient free run's loop in numpy, into preallocated arrays (see ``RSNN.free_run``).

    No allocation per bin: the product of the spike history (a view of one buffer) with the
    couplings, written into the logits; the drive added in place; the sigmoid computed in place
    in the probabilities; the comparison with the uniforms, written into the buffer. Logits and
    probabilities are stored time-major, so that each bin's slice is contiguous.

    Args:
        drive: ``(M, T, N)`` stimulus drive plus bias.
        U: ``(M, B, T, N)`` uniforms.
        Wr: ``(M, D * N, N)`` couplings, rows ordered ``z(t - D), ..., z(t - 1)``.
        D: delays.

    Returns:
        ``(v, p, z)``, each ``(M, B, T, N)`` (views of the time-major arrays and of the
        spike buffer).
    """
    M, T, N = drive.shape
    B = U.shape[1]
    Ut = U.transpose(0, 2, 1, 3)
    zbuf = np.zeros((M, B, D + T, N), dtype=drive.dtype)
    v = np.empty((M, T, B, N), dtype=drive.dtype)
    p = np.empty((M, T, B, N), dtype=drive.dtype)
    for t in range(T):
        vt, pt = v[:, t], p[:, t]
        np.matmul(zbuf[:, :, t:t + D].reshape(M, B, D * N), Wr, out=vt)
        vt += drive[:, t, None, :]
        np.negative(vt, out=pt)  # the sigmoid in place (scipy's expit is 3x slower)
        np.exp(pt, out=pt)
        pt += 1.0
        np.reciprocal(pt, out=pt)
        np.greater(pt, Ut[:, t], out=zbuf[:, :, t + D])
    return v.transpose(0, 2, 1, 3), p.transpose(0, 2, 1, 3), zbuf[:, :, D:]


@dataclass
class Simulation:
    """Spike trains sampled by :meth:`RSNN.free_run`.

    Attributes:
        v: logits ``(M, B, T, N)``.
        p: spike probabilities ``sigmoid(v)``.
        z: spikes (0./1.; carry the straight-through gradient), zero for inactive hidden units.
    """

    v: torch.Tensor
    p: torch.Tensor
    z: torch.Tensor


class RSNN(torch.nn.Module):
    """A batch of ``M`` independent recurrent spiking networks with escape noise.

    All ``M`` networks have ``N = n_visible + n_hidden`` units, of which network ``m`` uses the
    visible ones and its first ``hidden[m]`` hidden ones (the others are silent and
    disconnected). Simulating the networks together costs about as much as simulating one,
    because a step's work is a batched matrix product.

    Parameters: ``W`` ``(M, N, N, D)`` (``W[m, post, pre, d-1]``: delay ``d`` bins),
    ``W_in`` ``(M, N, K)`` and ``b`` ``(M, N)``.

    Args:
        n_visible: recorded units, >= 1.
        n_hidden: hidden units of the widest network, >= 0.
        n_delays: spike-history length D in bins, >= 1.
        n_inputs: stimulus channels K, >= 1.
        seeds: one seed per network (their number is M); network ``m`` is initialised from its
            own generator as the authors' code does, translated to logit units:
            ``W ~ TruncNormal(0, s/sqrt(D N))``, ``W_in ~ TruncNormal(0, s/sqrt(K))`` with
            ``s = INIT_SCALE = 1/thr = 2.5`` (truncated at two standard deviations), and
            ``b = INIT_BIAS``.
        hidden: hidden units used by each network (default: all ``n_hidden``).
        dtype: torch dtype (default: torch's default).
    """

    def __init__(self, n_visible: int, n_hidden: int = 0, n_delays: int = 2, n_inputs: int = 4,
                 seeds: Sequence[int] = (0,), hidden: Sequence[int] | None = None, dtype=None):
        super().__init__()
        self.n_visible = _check_int(n_visible, "n_visible")
        self.n_hidden = _check_int(n_hidden, "n_hidden", 0)
        self.n_delays = _check_int(n_delays, "n_delays")
        self.n_inputs = _check_int(n_inputs, "n_inputs")
        seeds = [_seeds.check_seed(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one network")
        M, N, D, K = len(seeds), self.n_units, self.n_delays, self.n_inputs
        hidden = [self.n_hidden] * M if hidden is None else [int(h) for h in hidden]
        if len(hidden) != M or any(h < 0 or h > self.n_hidden for h in hidden):
            raise ValueError(f"hidden must give, for each of the {M} networks, a count in "
                             f"0..{self.n_hidden}; got {hidden}")
        dtype = dtype or torch.get_default_dtype()
        Ws, Wins = [], []
        for s in seeds:
            g = _seeds.torch_generator(s)
            Ws.append(_trunc_normal((N, N, D), INIT_SCALE / math.sqrt(D * N), g, dtype))
            Wins.append(_trunc_normal((N, K), INIT_SCALE / math.sqrt(K), g, dtype))
        self.W = torch.nn.Parameter(torch.stack(Ws))
        self.W_in = torch.nn.Parameter(torch.stack(Wins))
        self.b = torch.nn.Parameter(torch.full((M, N), INIT_BIAS, dtype=dtype))
        active = torch.zeros(M, N, dtype=dtype)
        active[:, :self.n_visible] = 1
        for m, h in enumerate(hidden):
            active[m, self.n_visible:self.n_visible + h] = 1
        self.register_buffer("active", active)
        self.hidden = tuple(hidden)

    @classmethod
    def from_weights(cls, W, W_in, b, n_visible: int, hidden: Sequence[int] | None = None) -> "RSNN":
        """Networks with given weights (for example a ground-truth teacher).

        Args:
            W: ``(M, N, N, D)`` recurrent weights (numpy or torch).
            W_in: ``(M, N, K)`` input weights.
            b: ``(M, N)`` biases.
            n_visible: recorded units.
            hidden: hidden units used per network (default: all).

        Returns:
            An :class:`RSNN` in the dtype of ``W``.
        """
        W, W_in, b = (torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
                      for a in (W, W_in, b))
        if not W.is_floating_point():  # integer or boolean weights: float64
            W = W.to(torch.float64)
        if not all(bool(torch.isfinite(a.to(W.dtype)).all()) for a in (W, W_in, b)):
            raise ValueError("W, W_in and b must be finite (no NaN or inf)")
        if W.ndim != 4 or W.shape[1] != W.shape[2]:
            raise ValueError(f"W must be (M, N, N, D), got shape {tuple(W.shape)}")
        M, N, _, D = W.shape
        if W_in.ndim != 3 or W_in.shape[:2] != (M, N) or b.shape != (M, N):
            raise ValueError(f"W_in must be (M, N, K) and b (M, N) with M={M}, N={N}; got "
                             f"{tuple(W_in.shape)} and {tuple(b.shape)}")
        if not (0 < n_visible <= N):
            raise ValueError(f"n_visible must be in 1..{N}, got {n_visible}")
        net = cls(n_visible, N - n_visible, D, W_in.shape[2], seeds=list(range(M)), hidden=hidden,
                  dtype=W.dtype)
        with torch.no_grad():
            net.W.copy_(W)
            net.W_in.copy_(W_in)
            net.b.copy_(b)
        return net

    @property
    def n_units(self) -> int:
        """Units per network, visible and hidden."""
        return self.n_visible + self.n_hidden

    @property
    def n_models(self) -> int:
        """The number M of networks."""
        return self.W.shape[0]

    def _stim(self, stim) -> torch.Tensor:
        stim = torch.as_tensor(stim, dtype=self.W.dtype, device=self.W.device)
        if stim.ndim == 2:
            stim = stim.expand(self.n_models, *stim.shape)
        if stim.ndim != 3 or stim.shape[0] != self.n_models or stim.shape[2] != self.n_inputs:
            raise ValueError(f"stim must be (T, {self.n_inputs}) or ({self.n_models}, T, "
                             f"{self.n_inputs}), got shape {tuple(stim.shape)}")
        if stim.shape[1] == 0:
            raise ValueError("stim must have at least one bin, got 0")
        if not torch.isfinite(stim).all():
            raise ValueError("stim must be finite (no NaN or inf)")
        return stim

    def drive(self, stim) -> torch.Tensor:
        """Stimulus drive plus bias, ``(M, T, N)``: ``c(t) @ W_in.T + b``.

        Raises:
            ValueError: if a weight is NaN or infinite (the spikes would all be 0 silently).
        """
        stim = self._stim(stim)
        if not all(bool(torch.isfinite(p).all()) for p in (self.W, self.W_in, self.b)):
            raise ValueError("the network's weights must be finite (a NaN or inf weight would "
                             "give all-zero spike trains); was the training unstable?")
        return stim @ self.W_in.transpose(1, 2) + self.b[:, None, :]

    def _uniforms(self, shape, generator, uniforms) -> torch.Tensor:
        if uniforms is not None:
            u = torch.as_tensor(uniforms, dtype=self.W.dtype, device=self.W.device)
            if tuple(u.shape) != tuple(shape):
                raise ValueError(f"uniforms must have shape {tuple(shape)}, got {tuple(u.shape)}")
            lo, hi = torch.aminmax(u) if u.numel() else (u.new_zeros(()), u.new_zeros(()))
            if not (bool(lo >= 0) and bool(hi <= 1)):  # also False for NaN
                raise ValueError("uniforms must be numbers in [0, 1] (no NaN)")
            return u
        if generator is None:
            raise ValueError("give a torch.Generator (or the uniforms) for the spike noise")
        return torch.rand(shape, generator=generator, dtype=self.W.dtype,
                          device=generator.device).to(self.W.device)

    def free_run(self, stim, n_trials: int, generator: torch.Generator | None = None,
                 uniforms=None, dampening: float = DAMPENING) -> Simulation:
        """Sample ``n_trials`` trials of every network (no recorded spikes enter).

        Args:
            stim: ``(T, K)`` shared stimulus, or ``(M, T, K)`` one per network.
            n_trials: trials B per network, >= 1.
            generator: source of the spike noise (on the networks' device).
            uniforms: optional ``(M, B, T, N)`` uniform numbers used instead of the generator.
            dampening: the pseudo-derivative's peak.

        Returns:
            A :class:`Simulation` with ``(M, B, T, N)`` tensors.
        """
        n_trials = _check_int(n_trials, "n_trials")
        if not torch.is_grad_enabled() and self.W.device.type == "cpu":
            return self._free_run_cpu(stim, n_trials, generator, uniforms)
        drive = self.drive(stim)
        M, T, N = drive.shape
        D = self.n_delays
        U = self._uniforms((M, n_trials, T, N), generator, uniforms)
        if not torch.is_grad_enabled():
            return self._free_run_fast(drive, U)
        Wt = _flat(self.W)  # (M, D * N, N)
        act = self.active[:, None, :]
        zero = torch.zeros(M, n_trials, N, dtype=drive.dtype, device=drive.device)
        hist = [zero] * D  # hist[-d] = z(t - d)
        vs, zs = [], []
        for t in range(T):
            x = torch.cat(hist[::-1], dim=-1)  # (M, B, D * N): z(t - 1), ..., z(t - D)
            v = torch.baddbmm(drive[:, t, None, :], x, Wt)
            z = spike_function(v, U[:, :, t], dampening) * act
            vs.append(v)
            zs.append(z)
            hist = hist[1:] + [z]
        v = torch.stack(vs, dim=2)
        return Simulation(v, torch.sigmoid(v), torch.stack(zs, dim=2))

    def _free_run_fast(self, drive: torch.Tensor, U: torch.Tensor) -> Simulation:
        """:meth:`free_run` without gradients: one buffer for all spikes, no allocation per step.

        The spikes of all bins live in one ``(M, B, D + T, N)`` buffer (D leading zeros), so the
        history of bin ``t`` is the contiguous slice ``t .. t + D - 1``, a view; the couplings are
        flattened once with the delays in that (oldest-first) order. Inactive hidden units get
        uniforms above 1 and never spike. The same spikes as the differentiable loop, up to the
        order of a sum (round-off at the threshold). On the CPU, :meth:`_free_run_cpu` does the
        same in numpy.
        """
        M, T, N = drive.shape
        B, D = U.shape[1], self.n_delays
        Wr = _flat(self.W.flip(-1)).contiguous()  # rows: z(t - D), ..., z(t - 1)
        if not bool((self.active > 0).all()):
            U = torch.where(self.active[:, None, None, :] > 0, U, torch.full_like(U, 2.0))
        zbuf = torch.zeros(M, B, D + T, N, dtype=drive.dtype, device=drive.device)
        v = torch.empty(M, B, T, N, dtype=drive.dtype, device=drive.device)
        p = torch.empty(M, B, T, N, dtype=drive.dtype, device=drive.device)
        for t in range(T):
            vt = torch.baddbmm(drive[:, t, None, :], zbuf[:, :, t:t + D].flatten(2), Wr)
            v[:, :, t] = vt
            p[:, :, t] = vt.sigmoid_()
            zbuf[:, :, t + D] = vt > U[:, :, t]
        return Simulation(v, p, zbuf[:, :, D:])

    def _free_run_cpu(self, stim, n_trials: int, generator, uniforms) -> Simulation:
        """:meth:`_free_run_fast` on the CPU, in numpy from the checks to the loop.

        A torch call costs several times a numpy call at the sizes of a step here, so the
        checks, the drive and the loop (:func:`_free_run_numpy`) are numpy; the uniforms come
        from the same torch generator as on the other paths, so the spikes are the same.
        """
        W, W_in, b = (p.detach().numpy() for p in (self.W, self.W_in, self.b))
        stim = (stim.detach().cpu().numpy() if isinstance(stim, torch.Tensor)
                else np.asarray(stim)).astype(W.dtype, copy=False)
        M, K = W.shape[0], self.n_inputs
        if not ((stim.ndim == 2 and stim.shape[1] == K)
                or (stim.ndim == 3 and stim.shape[0] == M and stim.shape[2] == K)):
            raise ValueError(f"stim must be (T, {K}) or ({M}, T, {K}), got shape "
                             f"{tuple(stim.shape)}")
        stim = stim[None] if stim.ndim == 2 else stim
        if stim.shape[1] == 0:
            raise ValueError("stim must have at least one bin, got 0")
        if not np.isfinite(stim).all():
            raise ValueError("stim must be finite (no NaN or inf)")
        if not (np.isfinite(W).all() and np.isfinite(W_in).all() and np.isfinite(b).all()):
            raise ValueError("the network's weights must be finite (a NaN or inf weight would "
                             "give all-zero spike trains); was the training unstable?")
        T, N, D = stim.shape[1], self.n_units, self.n_delays
        if uniforms is None:
            U = self._uniforms((M, n_trials, T, N), generator, None).numpy()
        else:
            U = np.asarray(uniforms.detach().cpu() if isinstance(uniforms, torch.Tensor)
                           else uniforms, dtype=W.dtype)
            if U.shape != (M, n_trials, T, N):
                raise ValueError(f"uniforms must have shape {(M, n_trials, T, N)}, got {U.shape}")
            if not (U.min() >= 0 and U.max() <= 1):  # also False for NaN
                raise ValueError("uniforms must be numbers in [0, 1] (no NaN)")
        act = self.active.numpy()
        if not (act > 0).all():
            U = np.where(act[:, None, None, :] > 0, U, 2.0)
        drive = stim @ W_in.transpose(0, 2, 1) + b[:, None, :]
        Wr = np.ascontiguousarray(W[..., ::-1].transpose(0, 3, 2, 1)).reshape(M, D * N, N)
        v, p, z = (torch.from_numpy(a) for a in _free_run_numpy(drive, U, Wr, D))
        return Simulation(v, p, z)

    def _data(self, spikes) -> torch.Tensor:
        s = torch.as_tensor(spikes, dtype=self.W.dtype, device=self.W.device)
        if s.ndim == 3:
            s = s.expand(self.n_models, *s.shape)
        if s.ndim != 4 or s.shape[0] != self.n_models or s.shape[3] != self.n_visible:
            raise ValueError(f"recorded spikes must be (B, T, {self.n_visible}) or "
                             f"({self.n_models}, B, T, {self.n_visible}), got {tuple(s.shape)}")
        if s.shape[1] == 0 or s.shape[2] == 0:
            raise ValueError(f"recorded spikes must have at least one trial and one bin, got "
                             f"shape {tuple(s.shape)}")
        if not torch.all((s == 0) | (s == 1)):
            raise ValueError("recorded spikes must be binary (0 or 1 per bin)")
        return s

    def teacher_forced(self, spikes, stim, generator: torch.Generator | None = None,
                       uniforms=None, dampening: float = DAMPENING, return_spikes: bool = False):
        """One-step-ahead logits of the visible units given the recorded spikes.

        Visible units receive the recorded spikes; hidden units (where a network has any) keep
        their own samples, drawn step by step. Without hidden units the computation has no loop
        over time: one batched product of the lagged spikes with ``W``.

        Args:
            spikes: recorded spikes ``(B, T, n_visible)`` or ``(M, B, T, n_visible)``.
            stim: the stimulus, as in :meth:`free_run`.
            generator: noise of the hidden samples (needed only with hidden units).
            uniforms: optional ``(M, B, T, n_hidden)`` uniforms instead of the generator.
            dampening: the pseudo-derivative's peak.
            return_spikes: also return the hidden units' sampled spikes.

        Returns:
            ``(v_visible, p_hidden)``: logits ``(M, B, T, n_visible)`` and the hidden units'
            probabilities ``(M, B, T, n_hidden)`` (None without hidden units); with
            ``return_spikes``, ``(v_visible, p_hidden, z_hidden)``.
        """
        s = self._data(spikes)
        drive = self.drive(stim)
        M, B, T, nv = s.shape
        if drive.shape[1] != T:
            raise ValueError(f"stim has {drive.shape[1]} bins, the spikes {T}")
        D, N = self.n_delays, self.n_units
        pre = _lagged(s, D).flatten(1, 2) @ _flat(self.W[:, :, :nv])
        pre = pre.view(M, B, T, N) + drive[:, None]
        if self.n_hidden == 0 or not any(self.hidden):
            return (pre[..., :nv], None, None) if return_spikes else (pre[..., :nv], None)
        nh = self.n_hidden
        U = self._uniforms((M, B, T, nh), generator, uniforms)
        Wt_hh = _flat(self.W[:, nv:, nv:])  # (M, D * nh, nh)
        act = self.active[:, None, nv:]
        zero = torch.zeros(M, B, nh, dtype=pre.dtype, device=pre.device)
        hist = [zero] * D
        vs, zs = [], []
        for t in range(T):
            x = torch.cat(hist[::-1], dim=-1)
            v = torch.baddbmm(pre[:, :, t, nv:], x, Wt_hh)
            z = spike_function(v, U[:, :, t], dampening) * act
            vs.append(v)
            zs.append(z)
            hist = hist[1:] + [z]
        zh = torch.stack(zs, dim=2)
        v_vis = pre[..., :nv] + (_lagged(zh, D).flatten(1, 2) @ _flat(self.W[:, :nv, nv:])).view(M, B, T, nv)
        ph = torch.sigmoid(torch.stack(vs, dim=2))
        return (v_vis, ph, zh) if return_spikes else (v_vis, ph)


# ----------------------------------------------------------------------------------------------
# Summary statistics
# ----------------------------------------------------------------------------------------------


def _as_torch(x, name: str) -> tuple[torch.Tensor, bool]:
    was_np = not isinstance(x, torch.Tensor)
    t = torch.as_tensor(np.asarray(x, dtype=np.float64)) if was_np else x
    if t.ndim < 3:
        raise ValueError(f"{name} must be (..., trials, T, neurons), got shape {tuple(t.shape)}")
    if 0 in t.shape[-3:]:
        raise ValueError(f"{name} must have at least one trial, bin and neuron, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return t, was_np


def _out(t: torch.Tensor, was_np: bool):
    return t.detach().cpu().numpy() if was_np else t


def psth(x):
    """The trial-averaged activity (PSTH per bin): ``(..., B, T, n)`` -> ``(..., T, n)``.

    Numpy in, numpy out; torch in, torch out (differentiable).
    """
    t, was_np = _as_torch(x, "x")
    return _out(t.mean(dim=-3), was_np)


def noise_covariance(x, y=None, n_lags: int = 1):
    """Delayed noise covariances ``C[d, i, j]`` of ``x_i(t)`` with ``y_j(t - d)``, ``d = 0..L-1``.

    ``C[d, i, j] = 1 / (B (T - d)) sum_b sum_{t >= d} r_i(b, t) s_j(b, t - d)``, where ``r`` and ``s``
    are ``x`` and ``y`` minus their trial means (PSTH). Lags are not circular: only pairs of bins
    inside a trial count (the authors' code wrapped around).

    Args:
        x: ``(..., B, T, n)``.
        y: the lagged signal, the shape of ``x`` (default ``x``).
        n_lags: number of lags L, in 1..T-1.

    Returns:
        ``(..., L, n, n)`` (numpy for numpy input, torch otherwise).
    """
    xt, was_np = _as_torch(x, "x")
    yt = xt if y is None else _as_torch(y, "y")[0].to(xt.dtype)
    if yt.shape != xt.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(xt.shape)} and {tuple(yt.shape)}")
    T = xt.shape[-2]
    n_lags = _check_int(n_lags, "n_lags")
    if n_lags >= T:
        raise ValueError(f"n_lags must be below the number of bins T = {T}, got {n_lags}")
    return _out(_ncov(xt, yt, n_lags), was_np)


def _ncov(x: torch.Tensor, y: torch.Tensor, n_lags: int) -> torch.Tensor:
    """:func:`noise_covariance` without the checks (tensors of the same shape)."""
    T, B = x.shape[-2], x.shape[-3]
    r = x - x.mean(dim=-3, keepdim=True)
    s = r if y is x else y - y.mean(dim=-3, keepdim=True)
    out = [torch.einsum("...bti,...btj->...ij", r[..., d:, :], s[..., :T - d, :]) / (B * (T - d))
           for d in range(n_lags)]
    return torch.stack(out, dim=-3)


def noise_correlation(x):
    """Zero-lag noise-correlation coefficients of the paper's evaluation, ``(..., n, n)``.

    ``rho_ij = C_noise_ij / sqrt(C_tot_ii C_tot_jj)``: the noise covariance from residuals after
    subtracting the PSTH, normalised by the total variances (residuals after subtracting each
    neuron's overall mean), both over all trials and bins. A silent neuron gives NaN.

    Args:
        x: spikes ``(..., B, T, n)``.
    """
    t, was_np = _as_torch(x, "x")
    r = t - t.mean(dim=-3, keepdim=True)
    a = t - t.mean(dim=(-3, -2), keepdim=True)
    n_obs = t.shape[-3] * t.shape[-2]
    c = torch.einsum("...bti,...btj->...ij", r, r) / n_obs
    var = (a * a).sum(dim=(-3, -2)) / n_obs
    return _out(c / torch.sqrt(var[..., :, None] * var[..., None, :]), was_np)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

_EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms of the loss.

    Attributes:
        mle: teacher-forced cross-entropy (1 for the MLE-only fit, 0.4 in the paper's SM fits).
        psth: PSTH cross-entropy (0.1 in the paper).
        nc: noise-covariance mean squared error (50 in the paper).
        rate: hidden-rate regulariser (0.001 in the paper; used only with hidden units).
        rate_target: target spike probability per bin of hidden units (0.17 in the paper).
        flip: a negative control only: the PSTH and noise-covariance terms enter the total with
            a minus sign (their gradient sign-flipped), so that they push the fit *away* from the
            data's statistics. A claim that a term does not move (or improves) a fit must fail
            with the flipped term, or the term is inert where the claim is measured.
    """

    mle: float = 1.0
    psth: float = 0.0
    nc: float = 0.0
    rate: float = 0.0
    rate_target: float = 0.17
    flip: bool = False

    def __post_init__(self):
        for name in ("mle", "psth", "nc", "rate"):
            _check_finite_nonneg(getattr(self, name), name)
        if not 0 < self.rate_target < 1:
            raise ValueError(f"rate_target must be a probability in (0, 1), got {self.rate_target!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be True or False, got {self.flip!r}")

    @property
    def samples(self) -> bool:
        """Whether the loss needs free-run samples (a PSTH or noise-covariance term)."""
        return self.psth > 0 or self.nc > 0


#: The paper's weights: MLE only, and MLE + PSTH + NC (+ rate with hidden units).
PAPER_MLE = LossWeights(mle=1.0)
PAPER_SM = LossWeights(mle=0.4, psth=0.1, nc=50.0, rate=0.001, rate_target=0.17)


def mle_loss(v, spikes) -> torch.Tensor:
    """Mean binary cross-entropy of recorded spikes under logits ``v``, per network.

    Args:
        v: logits ``(M, B, T, n)``.
        spikes: binary ``(M, B, T, n)``.

    Returns:
        ``(M,)``: ``-mean[s log sigmoid(v) + (1 - s) log(1 - sigmoid(v))]``.
    """
    if v.shape != spikes.shape or v.ndim != 4:
        raise ValueError(f"v and spikes must both be (M, B, T, n), got {tuple(v.shape)} and "
                         f"{tuple(spikes.shape)}")
    ce = torch.nn.functional.binary_cross_entropy_with_logits(v, spikes.to(v.dtype), reduction="none")
    return ce.mean(dim=(1, 2, 3))


def psth_loss(p_model, spikes) -> torch.Tensor:
    """Cross-entropy of the data PSTH under the model PSTH, per network, ``(M,)``.

    ``mean_{t, j} CE(pi_data, pi_model)`` with ``pi`` the trial mean of data spikes and of model
    probabilities (free run).

    Args:
        p_model: model probabilities ``(M, B', T, n)``.
        spikes: data spikes ``(M, B, T, n)``.
    """
    pm = p_model.mean(dim=-3).clamp(_EPS, 1 - _EPS)
    pd = spikes.to(p_model.dtype).mean(dim=-3)
    ce = -(pd * torch.log(pm) + (1 - pd) * torch.log1p(-pm))
    return ce.mean(dim=(-2, -1))


def nc_mask(n: int, n_lags: int, device=None) -> torch.Tensor:
    """Boolean ``(L, n, n)``: every entry but the zero-lag diagonal (the variances)."""
    m = torch.ones(n_lags, n, n, dtype=torch.bool, device=device)
    m[0] = ~torch.eye(n, dtype=torch.bool, device=device)
    return m


def model_noise_covariance(p, z, n_lags: int) -> torch.Tensor:
    """The model's delayed noise covariances, an unbiased match of the data's off the diagonal.

    Lag 0 uses the probabilities of both units; lag ``d >= 1`` pairs the probability ``p_i(t)``
    with the *sampled* spike ``z_j(t - d)`` (straight-through), because given the past,
    ``E[z_i(t) z_j(t - d)] = E[p_i(t) z_j(t - d)]`` (and ``E[z_i z_j] = E[p_i p_j]`` for
    ``i != j`` at lag 0). Only the zero-lag diagonal differs (by the Bernoulli variance), which
    :func:`nc_loss` leaves out. (The authors' code used probabilities at every lag.)

    Args:
        p: model probabilities ``(M, B, T, n)``.
        z: model spikes, same shape.
        n_lags: L.

    Returns:
        ``(M, L, n, n)``.
    """
    c0 = _ncov(p, p, 1)
    if n_lags == 1:
        return c0
    c = _ncov(p, z, n_lags)
    return torch.cat([c0, c[..., 1:, :, :]], dim=-3)


def nc_loss(p_model, z_model, spikes, n_lags: int) -> torch.Tensor:
    """Mean squared error of the delayed noise covariances, without the zero-lag diagonal, ``(M,)``.

    Args:
        p_model: free-run probabilities ``(M, B', T, n)``.
        z_model: free-run spikes, same shape.
        spikes: data spikes ``(M, B, T, n)``.
        n_lags: lags ``0..L-1``.
    """
    cm = model_noise_covariance(p_model, z_model, n_lags)
    sd = spikes.to(p_model.dtype)
    cd = _ncov(sd, sd, n_lags)
    mask = nc_mask(spikes.shape[-1], n_lags, device=cm.device)
    return ((cm - cd) ** 2)[..., mask].mean(dim=-1)


def rate_loss(p_hidden, active, target) -> torch.Tensor:
    """``(mean hidden rate per bin - target)^2`` per active hidden unit, averaged, ``(M,)``.

    The authors apply it to the *sampled* spikes of the hidden units (their gradient passes
    through the pseudo-derivative); :func:`losses` does the same.

    Args:
        p_hidden: hidden spikes (or probabilities) ``(M, B, T, nh)``.
        active: ``(M, nh)`` 1 for hidden units a network uses.
        target: the target probability per bin (a number, or one per network ``(M,)``).
    """
    target = torch.as_tensor(target, dtype=p_hidden.dtype, device=p_hidden.device)
    if target.ndim == 1:
        target = target[:, None]
    rate = p_hidden.mean(dim=(1, 2))
    n = active.sum(dim=1).clamp(min=1)
    return (((rate - target) ** 2) * active).sum(dim=1) / n


def losses(net: RSNN, spikes, stim, weights: Sequence[LossWeights], generator: torch.Generator,
           n_lags: int, n_samples: int | None = None, _trusted: bool = False) -> dict[str, torch.Tensor]:
    """Every term of the loss for a minibatch of recorded trials, per network.

    Args:
        net: the networks.
        spikes: recorded trials ``(M, B, T, n_visible)``.
        stim: ``(T, K)`` or ``(M, T, K)``.
        weights: one :class:`LossWeights` per network.
        generator: the spike noise.
        n_lags: lags of the noise covariance.
        n_samples: free-run trials (default B).

    Returns:
        ``{"mle", "psth", "nc", "rate", "total"}``, each ``(M,)``; ``total`` is the weighted sum
        (the PSTH and NC terms with a minus sign for weights with ``flip``).
    """
    if len(weights) != net.n_models:
        raise ValueError(f"give one LossWeights per network: {net.n_models} networks, {len(weights)} weights")
    s = spikes if _trusted else net._data(spikes)
    dev, dt = net.W.device, net.W.dtype
    sign = [-1.0 if x.flip else 1.0 for x in weights]
    w = torch.tensor([[x.mle, s_ * x.psth, s_ * x.nc, x.rate] for x, s_ in zip(weights, sign, strict=True)],
                     dtype=dt, device=dev)
    target = torch.tensor([x.rate_target for x in weights], dtype=dt, device=dev)
    nv = net.n_visible
    v_vis, _, z_hid = net.teacher_forced(s, stim, generator, return_spikes=True)
    out = {"mle": mle_loss(v_vis, s)}
    zero = torch.zeros(net.n_models, dtype=dt, device=dev)
    rate_z = z_hid  # the authors' rate term: sampled hidden spikes (teacher-forced pass) ...
    if any(x.samples for x in weights):
        sim = net.free_run(stim, n_samples or s.shape[1], generator)
        out["psth"] = psth_loss(sim.p[..., :nv], s)
        out["nc"] = nc_loss(sim.p[..., :nv], sim.z[..., :nv], s, n_lags)
        if net.n_hidden:
            rate_z = sim.z[..., nv:]  # ... or, with the SM terms, of the free run
    else:
        out["psth"], out["nc"] = zero, zero
    out["rate"] = zero if rate_z is None else rate_loss(rate_z, net.active[:, nv:], target)
    out["total"] = (w * torch.stack([out["mle"], out["psth"], out["nc"], out["rate"]], dim=1)).sum(1)
    return out


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


@dataclass
class FitHistory:
    """What :func:`fit` returns: the loss terms per iteration and network.

    Attributes:
        terms: ``{"mle", "psth", "nc", "rate", "total"}`` -> array ``(iterations, M)``.
        grad_norm: the gradient norm of each network before clipping, ``(iterations, M)``.
        validation: the total loss on the validation trials at each checked iteration,
            ``(n_checks, M)`` (empty without validation data).
        best_iteration: per network, the iteration whose parameters were kept (the last one
            without validation data), ``(M,)``.
    """

    terms: dict[str, np.ndarray]
    grad_norm: np.ndarray
    validation: np.ndarray = None
    best_iteration: np.ndarray = None


def clip_per_network(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the gradient of each network (the leading axis) to norm ``max_norm``; return the norms.

    Independent networks trained together must not share one global norm (as
    ``torch.nn.utils.clip_grad_norm_`` would): each is clipped as if trained alone.
    """
    sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in params)
    norm = sq.sqrt()
    factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(factor.view(-1, *([1] * (p.grad.ndim - 1))))
    return norm


def clip_per_tensor(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each parameter tensor of each network to norm ``max_norm`` (Keras' ``clipnorm``).

    The authors' optimiser, ``Adam(clipnorm=1)``, clips every gradient tensor (``W``, ``W_in``,
    ``b``) on its own; here the leading axis holds independent networks, each clipped alone.

    Returns:
        The norm of each network's whole gradient before clipping, ``(M,)``.
    """
    sq = []
    for p in params:
        n = p.grad.pow(2).flatten(1).sum(1)
        sq.append(n)
        factor = (max_norm / (n.sqrt() + 1e-6)).clamp(max=1.0)
        p.grad.mul_(factor.view(-1, *([1] * (p.grad.ndim - 1))))
    return sum(sq).sqrt()


def fit(net: RSNN, spikes, stim, weights: Sequence[LossWeights], *, iterations: int, batch_size: int,
        seed: int, lr: float = 1e-3, clip: float = 1.0, n_lags: int | None = None,
        validation=None, select_every: int = 1, progress: Callable | None = None) -> FitHistory:
    """Fit the networks by Adam on minibatches of recorded trials (the paper's training loop).

    Every iteration each network draws its own minibatch of ``batch_size`` training trials,
    computes :func:`losses` (teacher-forced cross-entropy, and where its weights ask for them,
    free-run samples and their PSTH and noise-covariance mismatch), back-propagates through the
    samples, clips each of its gradient tensors to norm ``clip`` (:func:`clip_per_tensor`, as
    the authors' ``Adam(clipnorm=...)``) and takes an Adam step. Networks do not interact: each
    follows the trajectory it would follow alone with the same random numbers. The generic
    :func:`lib.torchkit.fit` does not apply: the loss needs fresh simulations, not a model
    output on fixed inputs.

    Model selection as in the authors' ``train.py``: with ``validation`` trials, every
    ``select_every`` iterations (before the step) the total loss of each network on all of them
    is computed (its own free-run samples, from a generator of its own), and each network ends
    with the parameters of its lowest validation loss.

    Args:
        net: the networks (trained in place).
        spikes: training trials ``(M, K, T, n_visible)`` (each network its own data) or
            ``(K, T, n_visible)`` shared.
        stim: ``(T, K_in)`` or ``(M, T, K_in)``.
        weights: one :class:`LossWeights` per network.
        iterations: Adam steps, >= 1.
        batch_size: trials per minibatch, in 2..K.
        seed: seeds minibatches and spike noise.
        lr: Adam's learning rate.
        clip: gradient-norm bound per tensor and network.
        n_lags: lags of the noise covariance (default the network's delays D).
        validation: optional held-out training-set trials ``(M, K_val, T, n_visible)`` or
            ``(K_val, T, n_visible)`` for model selection (at least 2 trials).
        select_every: iterations between two validation checks, >= 1.
        progress: optional wrapper of an iterable (e.g. ``lib.progress.bar``).

    Returns:
        A :class:`FitHistory`.
    """
    iterations = _check_int(iterations, "iterations")
    select_every = _check_int(select_every, "select_every")
    seed = _seeds.check_seed(seed)
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if isinstance(clip, bool) or not (isinstance(clip, (int, float)) and math.isfinite(clip)
                                      and clip > 0):
        raise ValueError(f"clip must be a positive finite number, got {clip!r}")
    data = net._data(spikes)
    M, K = data.shape[:2]
    batch_size = _check_int(batch_size, "batch_size", 2)
    if batch_size > K:
        raise ValueError(f"batch_size must be at most the {K} training trials, got {batch_size}")
    n_lags = net.n_delays if n_lags is None else _check_int(n_lags, "n_lags")
    if n_lags >= data.shape[2]:
        raise ValueError(f"n_lags must be below the number of bins T = {data.shape[2]}, got {n_lags}")
    if len(weights) != M:
        raise ValueError(f"give one LossWeights per network: {M} networks, {len(weights)} weights")
    val = None
    if validation is not None:
        val = net._data(validation)
        if val.shape[1] < 2 or val.shape[2] != data.shape[2]:
            raise ValueError(f"validation must have at least 2 trials of the {data.shape[2]} bins "
                             f"of the training trials, got shape {tuple(val.shape)}")
    loop = torchkit.Loop(iterations, seed=seed, device=net.W.device, desc="fit",
                         progress=False if progress is None else progress, generator_on_device=True)
    dev, gen = loop.device, loop.gen
    gen_val = loop.generator(1, on_device=True)
    opt = torch.optim.Adam(net.parameters(), lr=float(lr))
    params = list(net.parameters())
    best = [p.detach().clone() for p in params]
    best_loss = torch.full((M,), float("inf"), dtype=net.W.dtype, device=dev)
    best_it = np.full(M, iterations - 1)
    vals = []
    rows = torch.arange(M, device=dev)[:, None]
    for it in loop:
        if val is not None and it % select_every == 0:
            with torch.no_grad():
                lv = losses(net, val, stim, weights, gen_val, n_lags, _trusted=True)["total"]
            vals.append(lv.cpu().numpy())
            better = lv < best_loss
            if bool(better.any()):
                best_loss = torch.where(better, lv, best_loss)
                best_it[better.cpu().numpy()] = it
                for b_, p in zip(best, params, strict=True):
                    b_[better] = p.detach()[better]
        idx = torch.argsort(torch.rand(M, K, generator=gen, device=dev), dim=1)[:, :batch_size]
        batch = data[rows, idx]
        out = losses(net, batch, stim, weights, gen, n_lags, _trusted=True)
        opt.zero_grad()
        out["total"].sum().backward()
        norm = clip_per_tensor(params, float(clip)).detach().cpu().numpy()
        opt.step()
        loop.log(**{k: out[k].detach().cpu().numpy() for k in _FIT_TERMS}, norm=norm)
    if val is not None:
        with torch.no_grad():
            for b_, p in zip(best, params, strict=True):
                p.copy_(b_)
    h = loop.history
    return FitHistory({k: np.array([r[k] for r in h.records]) for k in _FIT_TERMS},
                      np.array([r["norm"] for r in h.records]), np.array(vals).reshape(-1, M), best_it)


#: The loss terms :func:`fit` records per iteration (and network).
_FIT_TERMS = ("mle", "psth", "nc", "rate", "total")


# ----------------------------------------------------------------------------------------------
# A ground-truth network with hidden units (synthetic data)
# ----------------------------------------------------------------------------------------------


def stimulus(n_bins: int, n_inputs: int, rng: np.random.Generator, smooth_bins: float = 3.0) -> np.ndarray:
    """Smooth stimulus channels ``(T, K)``: white noise convolved with a Gaussian, unit variance.

    Args:
        n_bins: T, >= 2.
        n_inputs: K, >= 1.
        rng: numpy generator.
        smooth_bins: standard deviation of the Gaussian kernel in bins, > 0.
    """
    n_bins, n_inputs = _check_int(n_bins, "n_bins", 2), _check_int(n_inputs, "n_inputs")
    if not (isinstance(smooth_bins, (int, float)) and smooth_bins > 0 and math.isfinite(smooth_bins)):
        raise ValueError(f"smooth_bins must be a positive number, got {smooth_bins!r}")
    half = int(math.ceil(3 * smooth_bins))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / smooth_bins) ** 2)
    x = rng.standard_normal((n_bins + 2 * half, n_inputs))
    y = np.stack([np.convolve(x[:, c], k, mode="valid") for c in range(n_inputs)], axis=1)
    return (y - y.mean(0)) / y.std(0)


@dataclass(frozen=True)
class Teacher:
    """A ground-truth network: recorded units driven by groups of hidden units.

    Attributes:
        W: ``(N, N, D)`` recurrent weights (visible first).
        W_in: ``(N, K)`` stimulus weights.
        b: ``(N,)`` biases.
        n_visible: recorded units.
        hidden_strength: the hidden-to-visible weight at delay 1 (0.6 of it at delay 2).
    """

    W: np.ndarray
    W_in: np.ndarray
    b: np.ndarray
    n_visible: int
    hidden_strength: float

    @property
    def n_hidden(self) -> int:
        """Hidden units."""
        return self.W.shape[0] - self.n_visible

    def network(self, dtype=torch.float64, device=None) -> RSNN:
        """The teacher as a one-network :class:`RSNN`."""
        net = RSNN.from_weights(torch.as_tensor(self.W[None], dtype=dtype),
                                torch.as_tensor(self.W_in[None], dtype=dtype),
                                torch.as_tensor(self.b[None], dtype=dtype), self.n_visible)
        return net.to(device) if device is not None else net


def make_teacher(n_visible: int, n_hidden: int, hidden_strength: float, rng: np.random.Generator, *,
                 n_delays: int = 2, n_inputs: int = 4, n_groups: int = 2, bias: float = -3.0,
                 self_weight: float = -2.0, density: float = 0.25, coupling_sd: float = 0.8,
                 hidden_recurrence: float = 0.35, input_sd: float = 1.0) -> Teacher:
    """The synthetic ground truth: sparse visible couplings plus group-wise hidden drive.

    Visible-to-visible couplings are present with probability ``density`` (per ordered pair,
    shared across delays) with ``N(0, coupling_sd^2)`` weights per delay. The hidden units form
    ``n_groups`` groups; the units of group ``g`` excite each other (``hidden_recurrence``,
    delay 1) and drive the ``g``-th group of visible units with ``hidden_strength`` (delay 1) and
    ``0.6 hidden_strength`` (delay 2). Every unit has bias ``bias`` and a self-coupling
    ``self_weight`` at delay 1 (refractoriness). Only visible units see the stimulus
    (``N(0, input_sd^2)`` weights), so hidden activity is shared noise.

    Args:
        n_visible: recorded units (divisible by ``n_groups``).
        n_hidden: hidden units (divisible by ``n_groups``; 0 for a well-specified teacher).
        hidden_strength: >= 0.
        rng: numpy generator.
        n_delays: D >= 2.

    Returns:
        A :class:`Teacher`.
    """
    nv, nh = _check_int(n_visible, "n_visible", 2), _check_int(n_hidden, "n_hidden", 0)
    n_groups = _check_int(n_groups, "n_groups")
    D, K = _check_int(n_delays, "n_delays", 2), _check_int(n_inputs, "n_inputs")
    hs = _check_finite_nonneg(hidden_strength, "hidden_strength")
    if not 0 <= density <= 1:
        raise ValueError(f"density must be a probability in [0, 1], got {density!r}")
    if nv % n_groups or nh % n_groups:
        raise ValueError(f"n_visible ({nv}) and n_hidden ({nh}) must be divisible by n_groups ({n_groups})")
    N = nv + nh
    W = np.zeros((N, N, D))
    mask = (rng.random((nv, nv)) < density) & ~np.eye(nv, dtype=bool)
    W[:nv, :nv] = mask[:, :, None] * rng.normal(0.0, coupling_sd, (nv, nv, D))
    if nh:
        gv, gh = nv // n_groups, nh // n_groups
        for g in range(n_groups):
            vis, hid = slice(g * gv, (g + 1) * gv), slice(nv + g * gh, nv + (g + 1) * gh)
            W[vis, hid, 0] = hs
            W[vis, hid, 1] = 0.6 * hs
            W[hid, hid, 0] = hidden_recurrence
    W[np.arange(N), np.arange(N), 0] = self_weight
    W_in = np.zeros((N, K))
    W_in[:nv] = rng.normal(0.0, input_sd, (nv, K))
    return Teacher(W, W_in, np.full(N, float(bias)), nv, hs)


def sample_teacher(teacher: Teacher, stim, n_trials: int, seed: int) -> np.ndarray:
    """Spike trains of every unit of the teacher, ``(n_trials, T, N)`` (float64 simulation).

    Args:
        teacher: the ground truth.
        stim: ``(T, K)``.
        n_trials: trials, >= 1.
        seed: seeds the spike noise.
    """
    gen = _seeds.torch_generator(seed)
    with torch.no_grad():
        sim = teacher.network().free_run(torch.as_tensor(stim, dtype=torch.float64), n_trials, gen)
    return sim.z[0].numpy()


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _spikes_np(x, name: str) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"{name} must be (trials, T, neurons), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{name} must have at least one trial, bin and neuron, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (no NaN)")
    return x


def psth_correlation(model, data) -> float:
    """Pearson correlation of the model's and the data's PSTHs over all bins and neurons.

    Args:
        model: model spikes or probabilities ``(B', T, n)``.
        data: data spikes ``(B, T, n)``.
    """
    m, d = _spikes_np(model, "model"), _spikes_np(data, "data")
    if m.shape[1:] != d.shape[1:]:
        raise ValueError(f"model and data must have the same (T, n), got {m.shape[1:]} and {d.shape[1:]}")
    return _pearson(m.mean(0), d.mean(0))


def nc_agreement(model, data) -> tuple[float, float]:
    """Agreement of zero-lag noise correlations, over the pairs ``i < j``.

    Args:
        model: model spikes ``(B', T, n)`` (free run).
        data: data spikes ``(B, T, n)``.

    Returns:
        ``(r, rmse)``: the Pearson correlation of model against data coefficients, and the root
        mean squared difference.
    """
    m, d = _spikes_np(model, "model"), _spikes_np(data, "data")
    if m.shape[2] != d.shape[2] or m.shape[2] < 3:
        raise ValueError(f"model and data must have the same number (>= 3) of neurons, got "
                         f"{m.shape[2]} and {d.shape[2]}")
    iu = np.triu_indices(m.shape[2], 1)
    rm, rd = noise_correlation(m)[iu], noise_correlation(d)[iu]
    ok = np.isfinite(rm) & np.isfinite(rd)
    return _pearson(rm, rd), float(np.sqrt(np.mean((rm[ok] - rd[ok]) ** 2)))


def weight_correlation(W_model, W_true, n_visible: int) -> float:
    """Pearson correlation of visible-to-visible couplings, self-couplings left out.

    Args:
        W_model: ``(N, N, D)`` fitted weights (a network of :attr:`RSNN.W`).
        W_true: ``(N', N', D)`` true weights (the first ``n_visible`` units are the recorded ones).
        n_visible: the recorded units.
    """
    a = np.asarray(W_model.detach().cpu() if isinstance(W_model, torch.Tensor) else W_model, float)
    b = np.asarray(W_true.detach().cpu() if isinstance(W_true, torch.Tensor) else W_true, float)
    if a.ndim != 3 or b.ndim != 3 or a.shape[2] != b.shape[2]:
        raise ValueError(f"W_model and W_true must be (N, N, D) with the same D, got {a.shape} and {b.shape}")
    if not (2 <= n_visible <= min(a.shape[0], b.shape[0])):
        raise ValueError(f"n_visible must be in 2..{min(a.shape[0], b.shape[0])}, got {n_visible}")
    off = ~np.eye(n_visible, dtype=bool)
    return _pearson(a[:n_visible, :n_visible][off], b[:n_visible, :n_visible][off])


# ----------------------------------------------------------------------------------------------
# Straightforward reference loops (for tests and the benchmark)
# ----------------------------------------------------------------------------------------------


def _check_ref(W, W_in, b, stim):
    W, W_in, b, stim = (np.asarray(a, float) for a in (W, W_in, b, stim))
    if W.ndim != 3 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be (N, N, D), got {W.shape}")
    N = W.shape[0]
    if W_in.shape[0] != N or b.shape != (N,) or stim.ndim != 2 or stim.shape[1] != W_in.shape[1]:
        raise ValueError("W_in must be (N, K), b (N,) and stim (T, K)")
    return W, W_in, b, stim


def simulate_reference(W, W_in, b, stim, uniforms) -> tuple[np.ndarray, np.ndarray]:
    """Free-run one network with plain loops over trials, bins, units, inputs and delays.

    Args:
        W: ``(N, N, D)``; W_in: ``(N, K)``; b: ``(N,)``; stim: ``(T, K)``.
        uniforms: ``(B, T, N)`` uniform numbers.

    Returns:
        ``(p, z)``, each ``(B, T, N)``.
    """
    W, W_in, b, stim = _check_ref(W, W_in, b, stim)
    U = np.asarray(uniforms, float)
    N, _, D = W.shape
    T = stim.shape[0]
    if U.ndim != 3 or U.shape[1:] != (T, N):
        raise ValueError(f"uniforms must be (B, {T}, {N}), got {U.shape}")
    p, z = np.zeros(U.shape), np.zeros(U.shape)
    for k in range(U.shape[0]):
        for t in range(T):
            for j in range(N):
                v = b[j] + sum(W_in[j, c] * stim[t, c] for c in range(stim.shape[1]))
                for d in range(1, D + 1):
                    if t - d >= 0:
                        v += sum(W[j, i, d - 1] * z[k, t - d, i] for i in range(N))
                p[k, t, j] = 1.0 / (1.0 + math.exp(-v))
                z[k, t, j] = float(p[k, t, j] > U[k, t, j])
    return p, z


def teacher_forced_reference(W, W_in, b, stim, spikes) -> float:
    """Mean cross-entropy of recorded spikes under one visible-only network, by plain loops.

    Args:
        W: ``(n, n, D)``; W_in: ``(n, K)``; b: ``(n,)``; stim: ``(T, K)``.
        spikes: binary ``(B, T, n)``.

    Returns:
        The mean over trials, bins and neurons of ``-[s log p + (1 - s) log(1 - p)]``.
    """
    W, W_in, b, stim = _check_ref(W, W_in, b, stim)
    s = np.asarray(spikes, float)
    N, _, D = W.shape
    if s.ndim != 3 or s.shape[1:] != (stim.shape[0], N):
        raise ValueError(f"spikes must be (B, {stim.shape[0]}, {N}), got {s.shape}")
    total = 0.0
    for k in range(s.shape[0]):
        for t in range(s.shape[1]):
            for j in range(N):
                v = b[j] + sum(W_in[j, c] * stim[t, c] for c in range(stim.shape[1]))
                for d in range(1, D + 1):
                    if t - d >= 0:
                        v += sum(W[j, i, d - 1] * s[k, t - d, i] for i in range(N))
                # log(1 + e^{-v}) and log(1 + e^{v}), computed stably
                total += s[k, t, j] * np.logaddexp(0.0, -v) + (1 - s[k, t, j]) * np.logaddexp(0.0, v)
    return total / s.size
