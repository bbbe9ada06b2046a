"""Mesoscopic population model of hidden spiking neurons, and its fit by EM (neuLVM).

Science of the chapter ``neulvm``, which reproduces Wang, Schmutz, Bellec & Gerstner (2022),
"Mesoscopic modeling of hidden spiking neurons", NeurIPS 35 (arXiv:2205.13493). The equations
follow the authors' code (``realwsq/neuLVM``: ``LIFmesoCell.py``, ``fast_np.py``,
``LIFmicroPop.py``); the mesoscopic model is the renewal case of Schwalger, Deger & Gerstner
(2017).

What is here:

- :class:`Network`: a network of ``M`` homogeneous populations of leaky integrate-and-fire
  neurons with escape noise, all-to-all (mean-field) coupled through exponential synapses;
  :func:`winner_take_all` is the paper's ground truth (E1, E2, I with 400, 400, 200 neurons);
  its 12 free parameters are :attr:`Network.theta` (``alpha_m``, ``j``, ``mu``, ``f_t``, three each);
- :func:`simulate_micro`: the microscopic network, every neuron simulated (vectorised over
  neurons and independent trials); :func:`rebin` turns it into coarse bins;
- :func:`simulate_meso`: free runs of the mesoscopic model (the finite-size population
  equations, vectorised over trials);
- :func:`neg_log_joint`: the neuLVM likelihood of a trial (recorded spike trains and population
  activity), vectorised over time in torch float64; :func:`neg_log_joint_loop` is the same
  equations step by step, the reference against which it is checked;
- the EM fit: :func:`e_step` (MAP latent activity), :func:`m_step` (parameters),
  :func:`fit_em`, and the initialisation :func:`smoothed_latent`;
- measures of metastability: :func:`winner_states`, :func:`dwell_times`,
  :func:`state_rates`, :func:`switch_probability`, :func:`smooth`.

Units: time in seconds, rates in Hz, voltages in units of ``DELTA_U_MV`` (2.5 mV), so that the
escape hazard is ``exp(u - f_t)`` Hz; ``alpha_m = 1 / tau_m`` in 1/s; the input ``h`` in
voltage units per second.

The mesoscopic step, for each population and age bin ``a`` (neurons whose last spike was in the
bin ``a + 1`` steps ago), in this order (the authors' ``LIFmesoCell``):

1. ``I_syn <- e^{-dt/tau_s} I_syn + (1 - e^{-dt/tau_s}) Z_{t-1}/dt``; ``h = J^T I_syn + eps I_ext``;
2. ``V <- V + dt alpha_m (mu - V) + dt h`` (forward Euler; ``Network.leak = "exp"``: the exact
   step ``V <- d V + (1 - d)(mu + h / alpha_m)``, ``d = e^{-dt alpha_m}``); ``V = 0`` for ages
   below ``t_ref``;
3. ``lambda = exp(V - f_t)`` (``LAMBDA_REFRACTORY`` in refractory ages),
   ``P = 1 - exp(-lambda dt)``;
4. ``m_a = S_a Z_{t-1-a}`` (expected survivors), ``v_a = (1 - S_a) m_a`` (their variance);
5. ``Zbar_t = sum_a P_a m_a + Lambda_t (1 - sum_a m_a)``, ``Lambda_t = sum_a P_a v_a / sum_a v_a``;
6. ``Z_t ~ Normal(Zbar_t, Zbar_t / N)`` (the likelihood adds the floor ``0.1 dt / N`` to the
   variance);
7. shift the ages by one; ``log S <- log S - lambda dt``.

Choices where the two original implementations differ (documented in the chapter): ``P = 1 -
exp(-lambda dt)`` everywhere (the originals switch to ``lambda dt`` below 0.01), ``Lambda = 0``
where ``sum_a v_a = 0``, the refractory hazard ``1e-8`` Hz (the TensorFlow version).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import scipy.optimize
import scipy.special
import torch
from scipy.ndimage import gaussian_filter1d

#: Names of the populations of the winner-take-all network.
POPULATIONS: tuple[str, ...] = ("E1", "E2", "I")
#: Voltage unit in mV: potentials are in units of DELTA_U_MV.
DELTA_U_MV = 2.5
#: Hazard of a refractory neuron, Hz (the authors' TensorFlow cell uses 1e-8 where V = 0).
LAMBDA_REFRACTORY = 1e-8
#: Floor of the variance of Z, in units of dt / N (the authors' 0.1 dt / N).
VAR_FLOOR = 0.1
#: Bounds of the latent Z = n / N during the E-step (the authors clip to [1e-5, 1]).
Z_MIN, Z_MAX = 1e-5, 1.0
#: Integrations of the membrane in the mesoscopic step (see :class:`Network`).
LEAKS: tuple[str, ...] = ("euler", "exp")
#: Names of the 12 free parameters, in the order of :attr:`Network.theta`.
THETA_NAMES: tuple[str, ...] = tuple(
    f"{p}_{q}" for p in ("alpha_m", "J", "mu", "f_t") for q in POPULATIONS)


def _check_pos(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) \
            or not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
    return float(x)


def _check_int(x, name: str, low: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < low:
        raise ValueError(f"{name} must be an int >= {low}, got {x!r}")
    return int(x)


def _vec(x, m: int, name: str, positive: bool = False) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.shape != (m,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be {m} finite numbers, got {x!r}")
    if positive and np.any(a <= 0):
        raise ValueError(f"{name} must be positive, got {x!r}")
    return a


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Network:
    """Populations of LIF neurons with escape noise, coupled all-to-all.

    Attributes:
        n: neurons per population.
        alpha_m: inverse membrane time constants ``1 / tau_m`` (1/s).
        j: coupling strength of each presynaptic population; the coupling matrix is
            ``J = diag(j) @ sign`` (row: presynaptic population).
        mu: resting potentials (voltage units).
        f_t: thresholds of the hazard ``exp(u - f_t)`` Hz (voltage units).
        tau_s: synaptic time constants (s), fixed during fitting.
        sign: ``(M, M)`` sign pattern of the couplings (row: presynaptic population).
        t_ref: absolute refractory period (s).
        eps: gain of the external input.
        names: population names.
        leak: how the mesoscopic step integrates the membrane over a bin: ``"euler"`` (the
            authors' forward Euler, ``V <- V + dt alpha_m (mu - V) + dt h``) or ``"exp"`` (the
            exact step of a constant input, ``V <- d V + (1 - d) (mu + h / alpha_m)`` with
            ``d = exp(-dt alpha_m)``, the update of the microscopic network). The microscopic
            simulation always integrates exactly.
    """

    n: tuple[int, ...]
    alpha_m: np.ndarray
    j: np.ndarray
    mu: np.ndarray
    f_t: np.ndarray
    tau_s: np.ndarray
    sign: np.ndarray
    t_ref: float = 0.004
    eps: float = 1.0
    names: tuple[str, ...] = POPULATIONS
    leak: str = "euler"

    def __post_init__(self):
        if not self.n or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1
                             for k in self.n):
            raise ValueError(f"n must be positive ints, one per population, got {self.n!r}")
        m = len(self.n)
        object.__setattr__(self, "n", tuple(int(k) for k in self.n))
        object.__setattr__(self, "alpha_m", _vec(self.alpha_m, m, "alpha_m", positive=True))
        object.__setattr__(self, "j", _vec(self.j, m, "j"))
        object.__setattr__(self, "mu", _vec(self.mu, m, "mu"))
        object.__setattr__(self, "f_t", _vec(self.f_t, m, "f_t"))
        object.__setattr__(self, "tau_s", _vec(self.tau_s, m, "tau_s", positive=True))
        sign = np.asarray(self.sign, dtype=float)
        if sign.shape != (m, m) or not np.all(np.isfinite(sign)):
            raise ValueError(f"sign must be a finite ({m}, {m}) array, got shape {sign.shape}")
        object.__setattr__(self, "sign", sign)
        _check_pos(self.t_ref, "t_ref")
        if not math.isfinite(self.eps):
            raise ValueError(f"eps must be finite, got {self.eps!r}")
        if len(self.names) != m:
            raise ValueError(f"{len(self.names)} names for {m} populations")
        if self.leak not in LEAKS:
            raise ValueError(f"leak must be one of {LEAKS}, got {self.leak!r}")

    @property
    def m(self) -> int:
        """Number of populations."""
        return len(self.n)

    @property
    def J(self) -> np.ndarray:
        """The ``(M, M)`` coupling matrix, row = presynaptic population (voltage units)."""
        return self.j[:, None] * self.sign

    @property
    def theta(self) -> np.ndarray:
        """The free parameters ``[alpha_m, j, mu, f_t]`` (``4 M`` numbers)."""
        return np.concatenate([self.alpha_m, self.j, self.mu, self.f_t])

    def with_theta(self, theta) -> "Network":
        """The same network with the free parameters ``theta`` (see :attr:`theta`)."""
        th = np.asarray(theta, dtype=float)
        m = self.m
        if th.shape != (4 * m,) or not np.all(np.isfinite(th)):
            raise ValueError(f"theta must be {4 * m} finite numbers, got shape {th.shape}")
        return replace(self, alpha_m=th[:m], j=th[m:2 * m], mu=th[2 * m:3 * m], f_t=th[3 * m:])

    def drive(self) -> np.ndarray:
        """Effective coupling ``j / alpha_m`` of each presynaptic population onto itself.

        The stationary voltage shift per Hz of presynaptic rate is ``J / alpha_m``; the couplings
        and the membrane rates are only identified together, so fits are judged on this ratio.
        """
        return self.j / self.alpha_m


def winner_take_all(n: Sequence[int] = (400, 400, 200)) -> Network:
    """The ground-truth winner-take-all network of the paper's Fig. 4 (authors' code).

    Two excitatory populations E1, E2 excite themselves and the inhibitory population I, which
    inhibits all three: ``J = diag(j_E1, j_E2, j_I) @ [[1, 0, 1], [0, 1, 1], [-1, -1, -1]]`` with
    ``j = 9.984, 9.984, 19.968``; ``tau_m = 20`` ms, ``mu = 36 mV``, hazard ``10 Hz exp((V -
    15 mV) / 2.5 mV)``, ``tau_s = 3, 3, 6`` ms, ``t_ref = 4`` ms.

    Args:
        n: neurons per population (the paper's 400, 400, 200 by default).
    """
    if isinstance(n, (str, bytes)) or not hasattr(n, "__len__") or len(n) != 3:
        raise ValueError(f"n must be the sizes of the 3 populations E1, E2, I, got {n!r}")
    return Network(n=tuple(n), alpha_m=np.full(3, 50.0), j=np.array([9.984, 9.984, 19.968]),
                   mu=np.full(3, 36.0 / DELTA_U_MV),
                   f_t=np.full(3, 15.0 / DELTA_U_MV - math.log(10.0)),
                   tau_s=np.array([0.003, 0.003, 0.006]),
                   sign=np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]))


@dataclass(frozen=True)
class Pulse:
    """A step input to one population, of one amplitude per trial.

    Attributes:
        population: index of the stimulated population.
        amplitudes: one amplitude per trial (voltage units per second, added to ``h``).
        start_s: onset (s from the start of the run).
        stop_s: offset (s).
    """

    population: int
    amplitudes: np.ndarray
    start_s: float
    stop_s: float

    def __post_init__(self):
        amp = np.atleast_1d(np.asarray(self.amplitudes, dtype=float))
        if amp.ndim != 1 or not np.all(np.isfinite(amp)):
            raise ValueError("pulse amplitudes must be a 1-d array of finite numbers")
        object.__setattr__(self, "amplitudes", amp)
        if not (0 <= self.start_s < self.stop_s):
            raise ValueError(f"pulse needs 0 <= start_s < stop_s, got {self.start_s}, {self.stop_s}")

    def at(self, t_s: float, m: int) -> np.ndarray:
        """The input ``(trials, M)`` at time ``t_s``."""
        out = np.zeros((self.amplitudes.size, m))
        if self.start_s <= t_s < self.stop_s:
            out[:, self.population] = self.amplitudes
        return out


def _check_pulse(pulse, net: Network, n_trials: int) -> None:
    if pulse is None:
        return
    if not isinstance(pulse, Pulse):
        raise ValueError(f"pulse must be a Pulse or None, got {type(pulse).__name__}")
    if not 0 <= pulse.population < net.m:
        raise ValueError(f"pulse population must be in 0..{net.m - 1}, got {pulse.population}")
    if pulse.amplitudes.size != n_trials:
        raise ValueError(f"pulse has {pulse.amplitudes.size} amplitudes for {n_trials} trials")


def _initial_rates(a0, net: Network, n_trials: int) -> np.ndarray:
    a = np.asarray(a0, dtype=float)
    if a.shape == (net.m,):
        a = np.broadcast_to(a, (n_trials, net.m))
    if a.shape != (n_trials, net.m) or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"a0 must be {net.m} non-negative rates (Hz), or one row per trial; "
                         f"got shape {a.shape}")
    return np.array(a, dtype=float)


# ----------------------------------------------------------------------------------------------
# The microscopic network (every neuron)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MicroRun:
    """A simulation of the microscopic network.

    Attributes:
        dt: time step (s).
        rates: population activities ``(trials, steps, M)``: the fraction of neurons that spiked
            in each step divided by ``dt`` (Hz).
        spikes: spikes of the recorded neurons ``(trials, steps, n_recorded)`` (bool).
        population: population index of each recorded neuron.
    """

    dt: float
    rates: np.ndarray = field(repr=False)
    spikes: np.ndarray = field(repr=False)
    population: np.ndarray

    @property
    def duration_s(self) -> float:
        """Length of the run (s)."""
        return self.rates.shape[1] * self.dt


def simulate_micro(net: Network, duration_s: float, rng: np.random.Generator, *,
                   dt_s: float = 2e-4, n_trials: int = 1, n_record: int = 3,
                   a0=(20.0, 5.0, 25.0), pulse: Pulse | None = None) -> MicroRun:
    """Simulate every neuron of the network (vectorised over neurons and trials).

    Each neuron of population ``alpha`` has a potential ``u``, updated as ``u <- (1 -
    e^{-dt alpha_m}) mu + e^{-dt alpha_m} u + dt h_alpha`` (the authors' ``LIFmicroPop``), spikes
    with probability ``1 - exp(-exp(u - f_t) dt)``, is reset to 0 and held there for ``t_ref``.
    The input ``h_alpha = sum_beta J[beta, alpha] I_syn,beta + eps I_ext,alpha`` is the same for
    every neuron of a population; ``I_syn`` filters the empirical population rates.

    The initial ages are exponential with mean ``1 / a0`` (capped at 1 s) and the initial
    potentials those of a neuron of that age under the stationary input of the rates ``a0``.

    Args:
        net: the network.
        duration_s: length of the run (s).
        rng: the random generator.
        dt_s: time step (s); the authors use 0.2 ms.
        n_trials: independent trials simulated together.
        n_record: neurons recorded per population (the first of each population).
        a0: initial rates (Hz), ``(M,)`` or ``(n_trials, M)``.
        pulse: an optional step input (:class:`Pulse`, one amplitude per trial).

    Returns:
        A :class:`MicroRun`.
    """
    dt = _check_pos(dt_s, "dt_s")
    if dt > net.t_ref:
        raise ValueError(f"dt_s ({dt}) must be at most the refractory period t_ref "
                         f"({net.t_ref}): a neuron may spike at most once per step")
    duration = _check_pos(duration_s, "duration_s")
    n_trials = _check_int(n_trials, "n_trials")
    n_record = _check_int(n_record, "n_record")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    if n_record > min(net.n):
        raise ValueError(f"n_record must be at most {min(net.n)} (the smallest population)")
    _check_pulse(pulse, net, n_trials)
    a0 = _initial_rates(a0, net, n_trials)
    steps = int(round(duration / dt))
    m, n_tot = net.m, sum(net.n)
    pop = np.repeat(np.arange(m), net.n)
    first = np.concatenate([[0], np.cumsum(net.n)[:-1]])
    rec = (first[:, None] + np.arange(n_record)[None, :]).ravel()
    n_ref = int(round(net.t_ref / dt))
    decay = np.exp(-dt * net.alpha_m)[pop]
    rest = ((1 - np.exp(-dt * net.alpha_m)) * net.mu)[pop]
    ft = net.f_t[pop]
    r_s = np.exp(-dt / net.tau_s)
    J = net.J
    # initial state: ages and stationary potentials
    h0 = a0 @ J  # (trials, M)
    age = rng.exponential(1.0, (n_trials, n_tot)) / np.maximum(a0[:, pop], 1e-3)
    age = np.minimum(age, 1.0)
    u_inf = (net.mu + h0 / net.alpha_m)[:, pop]
    u = u_inf * (1 - np.exp(-net.alpha_m[pop] * np.maximum(age - net.t_ref, 0.0)))
    ref = np.maximum(np.ceil((net.t_ref - age) / dt), 0).astype(np.int64)
    isyn = a0.copy()
    a_prev = a0.copy()
    counts_scale = 1.0 / (np.asarray(net.n, float) * dt)
    rates = np.empty((n_trials, steps, m))
    spikes = np.empty((n_trials, steps, rec.size), dtype=bool)
    offs = (np.arange(n_trials) * m)[:, None] + pop[None, :]
    block = 256
    for t0 in range(0, steps, block):
        unif = rng.random((min(block, steps - t0), n_trials, n_tot))
        for k in range(unif.shape[0]):
            t = t0 + k
            isyn = r_s * isyn + (1 - r_s) * a_prev
            h = isyn @ J
            if pulse is not None:
                h = h + net.eps * pulse.at(t * dt, m)
            u = rest + decay * u + dt * h[:, pop]
            refr = ref > 0
            u[refr] = 0.0
            p = -np.expm1(-np.exp(u - ft) * dt)
            s = (unif[k] < p) & ~refr
            u[s] = 0.0
            ref -= 1
            ref[s] = n_ref
            cnt = np.bincount(offs[s], minlength=n_trials * m).reshape(n_trials, m)
            a_prev = cnt * counts_scale
            rates[:, t] = a_prev
            spikes[:, t] = s[:, rec]
    return MicroRun(dt, rates, spikes, pop[rec])


def rebin(run: MicroRun, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-bin a microscopic run to a coarser step (the authors' preprocessing).

    Args:
        run: a :class:`MicroRun`.
        dt_s: the new bin width (s), an integer multiple of ``run.dt``.

    Returns:
        ``(Z, y)``: ``Z`` the fraction of each population that spiked per bin ``(trials, bins,
        M)`` (rates averaged, times the bin width), ``y`` whether each recorded neuron spiked in
        the bin ``(trials, bins, n_recorded)`` (bool).
    """
    dt = _check_pos(dt_s, "dt_s")
    k = int(round(dt / run.dt))
    if k < 1 or abs(k * run.dt - dt) > 1e-9 * dt:
        raise ValueError(f"dt_s = {dt_s} must be an integer multiple of the run's step {run.dt}")
    b, t, m = run.rates.shape
    nb = t // k
    z = run.rates[:, :nb * k].reshape(b, nb, k, m).sum(2) * run.dt
    y = run.spikes[:, :nb * k].reshape(b, nb, k, -1).any(2)
    return z, y


# ----------------------------------------------------------------------------------------------
# The mesoscopic model: free runs
# ----------------------------------------------------------------------------------------------


def _n_ref(net: Network, dt: float) -> int:
    return max(int(round(net.t_ref / dt)), 1)


def _leak(net: Network, dt: float, alpha):
    """``(d, c)`` of the membrane step ``V <- d V + c (alpha_m mu + h)`` (numpy or torch)."""
    if net.leak == "exp":
        d = torch.exp(-dt * alpha) if isinstance(alpha, torch.Tensor) else np.exp(-dt * alpha)
        return d, (1 - d) / alpha
    return 1 - dt * alpha, dt + 0 * alpha


def _check_ages(n_ages, net: Network, dt: float) -> int:
    n_ages = _check_int(n_ages, "n_ages", 2)
    if n_ages <= _n_ref(net, dt):
        raise ValueError(f"n_ages must exceed the refractory bins ({_n_ref(net, dt)})")
    return n_ages


def stationary_table(net: Network, a0, dt_s: float, n_ages: int, i_ext=None):
    """The age table of a population that fired at the constant rates ``a0`` for ever.

    The discrete analogue of the authors' stationary initialiser: under the constant input
    ``h0 = a0 @ J``, a cohort's potential follows the step of the model (``V = 0`` in refractory
    ages), its log-survival sums ``-lambda dt``; every age bin holds ``a0 dt`` of the population.

    Args:
        net: the network.
        a0: rates ``(B, M)`` (Hz).
        dt_s: time step (s).
        n_ages: number of age bins.
        i_ext: constant external input ``(B, M)`` (default none).

    Returns:
        ``(V, log_S)``, each ``(B, M, n_ages)``: the table at the start of a step (before its
        voltage update).
    """
    a0 = np.asarray(a0, float)
    if a0.ndim != 2 or a0.shape[1] != net.m or not np.all(np.isfinite(a0)) or np.any(a0 < 0):
        raise ValueError(f"a0 must be (B, {net.m}) non-negative rates (Hz), got shape {a0.shape}")
    dt = _check_pos(dt_s, "dt_s")
    n_ages = _check_int(n_ages, "n_ages", 2)
    h = a0 @ net.J
    if i_ext is not None:
        h = h + net.eps * np.asarray(i_ext, float)
    d, c = _leak(net, dt, net.alpha_m)  # (M,)
    g = c * (net.alpha_m * net.mu + h)  # (B, M)
    nr = _n_ref(net, dt)
    k = np.arange(n_ages)
    # V(a) = g sum_{k=0}^{a - nr} d^k for a >= nr
    n_terms = np.maximum(k - nr + 1, 0)  # (A,)
    geo = np.where(n_terms[None, :] > 0,
                   (1 - d[:, None] ** n_terms[None, :]) / (1 - d[:, None]), 0.0)  # (M, A)
    V = g[:, :, None] * geo[None]
    lam = np.where(k[None, None, :] < nr, LAMBDA_REFRACTORY, np.exp(V - net.f_t[None, :, None]))
    logS = -dt * np.concatenate([np.zeros(V.shape[:2] + (1,)), np.cumsum(lam, -1)[..., :-1]], -1)
    # the table at the start of a step: the cohorts of the last step, one age bin older
    V = np.concatenate([np.zeros(V.shape[:2] + (1,)), V[..., :-1]], -1)
    return V, logS


@dataclass(frozen=True)
class MesoRun:
    """A free run of the mesoscopic model.

    Attributes:
        dt: time step (s).
        z: the fraction of each population that spiked per step ``(trials, steps, M)``.
        zbar: its expectation given the past ``(trials, steps, M)``.
    """

    dt: float
    z: np.ndarray = field(repr=False)
    zbar: np.ndarray = field(repr=False)

    @property
    def rates(self) -> np.ndarray:
        """Population activities ``z / dt`` (Hz)."""
        return self.z / self.dt


def _p_spike(lam: np.ndarray, dt: float) -> np.ndarray:
    return -np.expm1(-lam * dt)


def simulate_meso(net: Network, duration_s: float, rng: np.random.Generator, *,
                  dt_s: float = 0.004, n_ages: int = 100, n_trials: int = 1,
                  a0=(20.0, 5.0, 25.0), pulse: Pulse | None = None,
                  noise: bool = True) -> MesoRun:
    """Free runs of the mesoscopic model (vectorised over trials, a loop over time).

    The step is the one of the module docstring, with ``Z_t ~ Normal(Zbar_t, Zbar_t / N)``
    clipped to ``[0, 1]``. The run starts from :func:`stationary_table` at the rates ``a0``.

    Args:
        net: the network.
        duration_s: length (s).
        rng: the random generator.
        dt_s: time step (s); the authors use 4 ms.
        n_ages: age bins of the table (the authors' cutoff is 1 s, 250 bins of 4 ms).
        n_trials: independent trials.
        a0: initial rates (Hz), ``(M,)`` or ``(n_trials, M)``.
        pulse: an optional step input (:class:`Pulse`).
        noise: ``False`` runs the deterministic mean-field model ``Z_t = Zbar_t`` (no
            finite-size noise; a control of the chapter).

    Returns:
        A :class:`MesoRun`.
    """
    dt = _check_pos(dt_s, "dt_s")
    _check_euler(net, dt)
    duration = _check_pos(duration_s, "duration_s")
    n_trials = _check_int(n_trials, "n_trials")
    n_ages = _check_ages(n_ages, net, dt)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    _check_pulse(pulse, net, n_trials)
    a0 = _initial_rates(a0, net, n_trials)
    steps = int(round(duration / dt))
    if steps < 1:
        raise ValueError(f"duration_s ({duration}) must cover at least one step of {dt} s")
    m = net.m
    N = np.asarray(net.n, float)
    V, logS = stationary_table(net, a0, dt, n_ages)
    hist = np.repeat((a0 * dt)[:, :, None], n_ages, axis=2)  # Z_{t-1-a} at age a
    isyn = a0.copy()
    r_s = np.exp(-dt / net.tau_s)
    d, c = _leak(net, dt, net.alpha_m)
    g0 = c * net.alpha_m * net.mu
    nr = _n_ref(net, dt)
    J = net.J
    z_out = np.empty((n_trials, steps, m))
    zb_out = np.empty((n_trials, steps, m))
    xi = rng.standard_normal((steps, n_trials, m))
    for t in range(steps):
        isyn = r_s * isyn + (1 - r_s) * hist[:, :, 0] / dt
        h = isyn @ J
        if pulse is not None:
            h = h + net.eps * pulse.at(t * dt, m)
        V, lam, zbar = _table_step(V, logS, hist, g0 + c * h, d, net.f_t, nr, dt)
        z = np.clip(zbar + np.sqrt(zbar / N) * xi[t], 0.0, 1.0) if noise else zbar
        z_out[:, t], zb_out[:, t] = z, zbar
        _table_shift(V, logS, hist, lam, z, dt)
    return MesoRun(dt, z_out, zb_out)


def _table_step(V, logS, hist, drive, d, f_t, nr: int, dt: float):
    """One step of the age tables ``(..., M, A)`` (numpy): steps 2-5 of the module docstring.

    ``drive`` ``(..., M)`` is ``c (alpha_m mu + h)`` of the membrane step ``V <- d V + drive``.
    Returns the new potentials, the hazards ``(..., M, A)`` and ``Zbar`` ``(..., M)``.
    """
    V = d[:, None] * V + drive[..., None]
    V[..., :nr] = 0.0
    lam = np.exp(V - f_t[:, None])
    lam[..., :nr] = LAMBDA_REFRACTORY
    P = _p_spike(lam, dt)
    S = np.exp(logS)
    mm = S * hist
    v = (1 - S) * mm
    sv = v.sum(-1)
    Lam = np.divide((P * v).sum(-1), sv, out=np.zeros_like(sv), where=sv > 0)
    zbar = np.clip((P * mm).sum(-1) + Lam * (1 - mm.sum(-1)), 0.0, 1.0)
    return V, lam, zbar


def _table_shift(V, logS, hist, lam, z, dt: float) -> None:
    """Step 7 of the module docstring, in place: every cohort ages by one bin, the cohort born
    in this bin (activity ``z`` ``(..., M)``) enters at age 0."""
    logS[..., 1:] = logS[..., :-1] - lam[..., :-1] * dt
    logS[..., 0] = 0.0
    V[..., 1:] = V[..., :-1]
    V[..., 0] = 0.0
    hist[..., 1:] = hist[..., :-1]
    hist[..., 0] = z


# ----------------------------------------------------------------------------------------------
# The neuLVM likelihood of a trial
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """The data of one trial: recorded spike trains, and the history of the latent activity.

    The sequence has ``T`` bins; the first ``start`` bins are the history, whose latent activity
    is fixed (``z_history``); the likelihood scores bins ``start .. T - 1``.

    Attributes:
        y: spikes of the recorded neurons ``(T, n_recorded)`` (bool).
        population: population index of each recorded neuron.
        dt: bin width (s).
        start: number of history bins.
        z_history: latent activity of the history ``(start, M)``.
        isyn0: synaptic input at the start of the sequence (Hz), ``(M,)``.
        i_ext: external input ``(T, M)`` (voltage units per second), or ``None``.
    """

    y: np.ndarray = field(repr=False)
    population: np.ndarray
    dt: float
    start: int
    z_history: np.ndarray = field(repr=False)
    isyn0: np.ndarray
    i_ext: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_bins(self) -> int:
        """Bins of the sequence, history included."""
        return self.y.shape[0]

    @property
    def n_latent(self) -> int:
        """Bins of the latent activity that are inferred (``T - start``)."""
        return self.y.shape[0] - self.start

    def since_last_spike(self) -> np.ndarray:
        """Bins since each recorded neuron's last spike, minus one, at every bin ``(T, n)``.

        ``0`` means that the neuron spiked in the previous bin; a neuron that has not spiked
        yet gets a large value (capped later at the oldest age).
        """
        T, n = self.y.shape
        idx = np.where(self.y, np.arange(T)[:, None], -10 ** 9)
        last = np.maximum.accumulate(idx, axis=0)  # last spike at or before t
        prev = np.vstack([np.full((1, n), -10 ** 9), last[:-1]])  # strictly before t
        return np.minimum(np.arange(T)[:, None] - 1 - prev, 10 ** 9)


def make_trial(y, population, dt_s: float, start: int, m: int = 3, *, z_history=None,
               i_ext=None) -> Trial:
    """A :class:`Trial` from binned spikes; the history activity from the recorded neurons.

    Without ``z_history``, the history's latent activity is the constant ``A0 dt`` with ``A0``
    the mean rate of the recorded neurons of each population during the history (the authors'
    choice, a noisy estimate from few neurons).

    Args:
        y: spikes ``(T, n_recorded)`` (bool or 0/1).
        population: population of each recorded neuron (ints in ``0 .. m - 1``).
        dt_s: bin width (s).
        start: history bins (at least the age table's length when fitting).
        m: number of populations.
        z_history: optional ``(start, M)`` history activity.
        i_ext: optional external input ``(T, M)``.
    """
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] < 2 or not np.all((y == 0) | (y == 1)):
        raise ValueError(f"y must be a (bins, neurons) array of 0/1 spikes, got shape {y.shape}")
    y = y.astype(bool)
    pop = np.asarray(population)
    if pop.shape != (y.shape[1],) or not np.issubdtype(pop.dtype, np.integer) \
            or pop.min() < 0 or pop.max() >= m:
        raise ValueError(f"population must be {y.shape[1]} ints in 0..{m - 1}, got {population!r}")
    dt = _check_pos(dt_s, "dt_s")
    start = _check_int(start, "start")
    if start >= y.shape[0]:
        raise ValueError(f"start ({start}) must be smaller than the number of bins ({y.shape[0]})")
    if z_history is None:
        a0 = np.array([y[:start, pop == k].mean() / dt if np.any(pop == k) else 0.0
                       for k in range(m)])
        zh = np.tile(a0 * dt, (start, 1))
    else:
        zh = np.asarray(z_history, float)
        if zh.shape != (start, m) or not np.all(np.isfinite(zh)) or np.any(zh < 0):
            raise ValueError(f"z_history must be a ({start}, {m}) array of fractions >= 0")
        a0 = zh.mean(0) / dt
    if i_ext is not None:
        i_ext = np.asarray(i_ext, float)
        if i_ext.shape != (y.shape[0], m) or not np.all(np.isfinite(i_ext)):
            raise ValueError(f"i_ext must be a finite ({y.shape[0]}, {m}) array")
    return Trial(y, pop.astype(np.int64), dt, start, zh, a0, i_ext)


def _check_euler(net: Network, dt: float, alpha=None) -> None:
    a = net.alpha_m if alpha is None else alpha
    if net.leak == "euler" and np.any(dt * np.asarray(a) >= 1):
        raise ValueError(f"forward Euler needs dt * alpha_m < 1; got dt = {dt}, alpha_m = {a}")


def _params_torch(net: Network, theta):
    m = net.m
    if theta is None:
        theta = torch.as_tensor(net.theta, dtype=torch.float64)
    if not isinstance(theta, torch.Tensor) or theta.shape != (4 * m,):
        raise ValueError(f"theta must be a torch tensor of {4 * m} parameters")
    return theta[:m], theta[m:2 * m], theta[2 * m:3 * m], theta[3 * m:]


def _z_full(trial: Trial, z) -> torch.Tensor:
    zh = torch.as_tensor(trial.z_history, dtype=torch.float64)
    if not isinstance(z, torch.Tensor):
        z = torch.as_tensor(np.asarray(z, float))
    if z.shape != (trial.n_latent, zh.shape[1]):
        raise ValueError(f"z must be ({trial.n_latent}, {zh.shape[1]}), got {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()) or bool((z < 0).any()) or bool((z > 1).any()):
        raise ValueError("z must hold finite fractions in [0, 1] (the latent has NaN, inf, "
                         "< 0 or > 1)")
    return torch.cat([zh, z.to(torch.float64)], 0)


def _synaptic(net: Network, trial: Trial, zf: torch.Tensor) -> torch.Tensor:
    """I_syn_t (T, M): I_t = r I_{t-1} + (1 - r) Z_{t-1} / dt, I_{-1} = isyn0, Z_{-1} = 0."""
    dt = trial.dt
    T, m = zf.shape
    r = np.exp(-dt / net.tau_s)
    x = torch.cat([torch.zeros(1, m, dtype=zf.dtype), zf[:-1]], 0) / dt  # x_t = Z_{t-1}/dt
    k = int(min(T, max(2, math.ceil(math.log(1e-18) / math.log(r.max())))))
    w = torch.as_tensor(r[:, None] ** np.arange(k - 1, -1, -1)[None, :])  # (M, K)
    xp = torch.cat([torch.zeros(k - 1, m, dtype=zf.dtype), x], 0).T[None]  # (1, M, T+K-1)
    conv = torch.nn.functional.conv1d(xp, w[:, None, :], groups=m)[0].T  # (T, M)
    decay0 = torch.as_tensor(r[None, :] ** (np.arange(T)[:, None] + 1.0))
    return decay0 * torch.as_tensor(trial.isyn0) + (1 - torch.as_tensor(r)) * conv


def _lagged(x: torch.Tensor, K: int) -> torch.Tensor:
    """``L[c, k, t] = x[c, t - k]`` (zero before the start), ``(M, K, T)`` from ``x`` ``(M, T)``."""
    m, T = x.shape
    xp = torch.cat([torch.zeros(m, K, dtype=x.dtype), x], 1).contiguous()
    return torch.as_strided(xp, (m, K, T), (K + T, 1, 1), 1).flip(1)


def _to_birth(X: torch.Tensor) -> torch.Tensor:
    """``Xb[c, a, s] = X[c, a, s + 1 + a]`` (zero past the end): from the time index to the
    cohort (birth) index, as a strided view of the padded array (layout ``(M, A, T)``)."""
    m, A, T = X.shape
    Xp = torch.cat([X, torch.zeros(m, A, A + 1, dtype=X.dtype)], 2).contiguous()
    tp = T + A + 1
    return torch.as_strided(Xp, (m, A, T), (A * tp, tp + 1, 1), 1)


def _to_time(Xb: torch.Tensor) -> torch.Tensor:
    """``X[c, a, t] = Xb[c, a, t - 1 - a]`` (zero where ``t - 1 - a < 0``): the inverse map of
    :func:`_to_birth`, also a strided view."""
    m, A, T = Xb.shape
    Xp = torch.cat([torch.zeros(m, A, A + 1, dtype=Xb.dtype), Xb], 2).contiguous()
    tp = T + A + 1
    return torch.as_strided(Xp, (m, A, T), (A * tp, tp - 1, 1), A)


def _terms(net: Network, trial: Trial, z, theta, n_ages: int, return_zbar: bool = False,
           finite_size: bool = True, laplace: bool = False):
    alpha, j, mu, ft = _params_torch(net, theta)
    dt = trial.dt
    zf = _z_full(trial, z)
    T, m = zf.shape
    A = n_ages
    nr = _n_ref(net, dt)
    f64 = torch.float64
    sign = torch.as_tensor(net.sign)
    isyn = _synaptic(net, trial, zf)
    h = isyn @ (j[:, None] * sign)
    if trial.i_ext is not None:
        h = h + net.eps * torch.as_tensor(trial.i_ext)
    d, c = _leak(net, dt, alpha)
    g = (c * (alpha * mu + h)).T  # (M, T)
    # layout (M, A, T). V(a, t) = sum_{k=0}^{a-nr} d^k g_{t-k} for a >= nr; 0 (refractory) below
    k = torch.arange(A - nr, dtype=f64)
    w = _lagged(g, A - nr) * (d[:, None] ** k[None, :])[:, :, None]
    lam = torch.cat([torch.full((m, nr, T), LAMBDA_REFRACTORY, dtype=f64),
                     torch.exp(torch.cumsum(w, 1) - ft[:, None, None])], 1)
    P = -torch.expm1(-lam * dt)
    # log-survival along each cohort: an exclusive cumulative sum in the birth index
    lam_b = _to_birth(lam)
    S_b = torch.exp(-dt * (torch.cumsum(lam_b, 1) - lam_b))
    m_b = S_b * zf.T[:, None, :]  # expected survivors of the cohort born in bin s
    S, mm = _to_time(S_b), _to_time(m_b)  # S(a, t), m(a, t) = S(a, t) Z_{t-1-a}
    v = mm - S * mm  # their binomial variance
    sv = v.sum(1)
    spv = (P * v).sum(1)
    safe = sv > 0
    Lam = torch.where(safe, spv / torch.where(safe, sv, torch.ones_like(sv)), torch.zeros_like(sv))
    if not finite_size:  # the control: the infinite-N expectation, without the correction
        Lam = torch.zeros_like(Lam)
    zbar = torch.clamp((P * mm).sum(1) + Lam * (1 - mm.sum(1)), 0.0, 1.0).T  # (T, M)
    s0 = trial.start
    N = torch.as_tensor(np.asarray(net.n, float))
    var = zbar[s0:] / N + VAR_FLOOR * dt / N
    if laplace:  # without the Gaussian's normaliser, which the correction cancels (see m_step)
        nll_z = ((zf[s0:] - zbar[s0:]) ** 2 / (2 * var)).sum()
    else:
        nll_z = (0.5 * torch.log(2 * math.pi * var) + (zf[s0:] - zbar[s0:]) ** 2 / (2 * var)).sum()
    # the recorded neurons: the table entry of their own age
    age = np.minimum(trial.since_last_spike()[s0:], A - 1)  # (T - s0, n)
    tt = np.broadcast_to(np.arange(s0, T)[:, None], age.shape)
    pp = np.broadcast_to(trial.population, age.shape)
    lam_i = lam[torch.as_tensor(pp.copy()), torch.as_tensor(age), torch.as_tensor(tt.copy())]
    y = torch.as_tensor(trial.y[s0:])
    x = lam_i * dt
    logp = torch.where(y, torch.log(-torch.expm1(-x)), -x)
    nll_y = -logp.sum()
    if return_zbar:
        return nll_y, nll_z, zbar
    return nll_y, nll_z


def _check_trial_net(net: Network, trial: Trial, n_ages) -> int:
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network, got {type(net).__name__}")
    if not isinstance(trial, Trial):
        raise ValueError(f"trial must be a Trial, got {type(trial).__name__}")
    if trial.z_history.shape[1] != net.m:
        raise ValueError(f"the trial has {trial.z_history.shape[1]} populations, the network {net.m}")
    n_ages = _check_ages(n_ages, net, trial.dt)
    if trial.start < n_ages:
        raise ValueError(f"the history ({trial.start} bins) must cover the age table ({n_ages} bins)")
    _check_euler(net, trial.dt)
    return n_ages


def neg_log_joint(net: Network, trial: Trial, z, n_ages: int = 100, theta=None,
                  return_zbar: bool = False, finite_size: bool = True, laplace: bool = False):
    """The neuLVM negative log-likelihood of a trial, vectorised over time (torch, float64).

    ``-log p(y, Z | theta) = -sum_t log p(y_t | past) - sum_t log p(Z_t | past)`` over the
    scored bins (``trial.start`` onwards): the recorded neurons' Bernoulli terms, each neuron
    with the hazard of the table entry of its own age (bins since its last recorded spike,
    capped at ``n_ages - 1``), and the Gaussian transition density of the population activity
    (variance ``Zbar / N + 0.1 dt / N``).

    Given ``Z``, the table ``V(t, a)`` is a cumulative sum over a Hankel view of the input,
    and the log-survival a cumulative sum along each cohort (the diagonal ``t - a`` = const),
    so no loop over time is needed. The history bins run through the same equations from an
    empty table; with ``start >= n_ages`` every scored bin sees a full table.

    Args:
        net: the network (``tau_s``, ``sign``, ``n``, ``t_ref`` are used; the free parameters
            too unless ``theta`` is given).
        trial: the :class:`Trial`.
        z: latent activity of the scored bins ``(T - start, M)`` (array or tensor).
        n_ages: age bins of the table.
        theta: optional torch tensor of the free parameters (see :attr:`Network.theta`), for
            gradients with respect to them.
        return_zbar: also return ``Zbar`` for every bin.
        finite_size: ``False`` drops the finite-size correction ``Lambda (1 - sum_a m)`` of
            ``Zbar`` (the expectation of an infinite population; a control of the chapter).
        laplace: ``True`` leaves out the normaliser ``1/2 log(2 pi var)`` of the transition
            density: the Laplace-corrected objective of :func:`m_step`.

    Returns:
        ``(nll_y, nll_z)`` as 0-d tensors (and ``zbar`` ``(T, M)`` if asked).
    """
    n_ages = _check_trial_net(net, trial, n_ages)
    return _terms(net, trial, z, theta, n_ages, return_zbar, finite_size, laplace)


def neg_log_joint_loop(net: Network, trial: Trial, z, n_ages: int = 100, theta=None):
    """The same likelihood as :func:`neg_log_joint`, one time step after the other.

    A direct transcription of the step of the module docstring (torch, so that it can be
    differentiated too): the reference against which the vectorised version is checked.

    Returns:
        ``(nll_y, nll_z)`` as 0-d tensors.
    """
    n_ages = _check_trial_net(net, trial, n_ages)
    alpha, j, mu, ft = _params_torch(net, theta)
    dt = trial.dt
    zf = _z_full(trial, z)
    T, m = zf.shape
    A = n_ages
    nr = _n_ref(net, dt)
    d, c = _leak(net, dt, alpha)
    J = j[:, None] * torch.as_tensor(net.sign)
    r = torch.as_tensor(np.exp(-dt / net.tau_s))
    N = torch.as_tensor(np.asarray(net.n, float))
    V = torch.zeros(A, m, dtype=torch.float64)
    logS = torch.zeros(A, m, dtype=torch.float64)
    hist = torch.zeros(A, m, dtype=torch.float64)
    isyn = torch.as_tensor(trial.isyn0, dtype=torch.float64)
    z_prev = torch.zeros(m, dtype=torch.float64)
    refr = (torch.arange(A) < nr)[:, None]
    since = np.minimum(trial.since_last_spike(), A - 1)
    pop = torch.as_tensor(trial.population)
    nll_y = torch.zeros((), dtype=torch.float64)
    nll_z = torch.zeros((), dtype=torch.float64)
    for t in range(T):
        isyn = r * isyn + (1 - r) * z_prev / dt
        h = isyn @ J
        if trial.i_ext is not None:
            h = h + net.eps * torch.as_tensor(trial.i_ext[t])
        V = d * V + c * (alpha * mu + h)
        V = torch.where(refr, torch.zeros_like(V), V)
        lam = torch.where(refr, torch.full_like(V, LAMBDA_REFRACTORY), torch.exp(V - ft))
        P = -torch.expm1(-lam * dt)
        S = torch.exp(logS)
        mm = S * hist
        v = (1 - S) * mm
        sv = v.sum(0)
        Lam = torch.where(sv > 0, (P * v).sum(0) / torch.where(sv > 0, sv, torch.ones_like(sv)),
                          torch.zeros_like(sv))
        zbar = torch.clamp((P * mm).sum(0) + Lam * (1 - mm.sum(0)), 0.0, 1.0)
        if t >= trial.start:
            var = zbar / N + VAR_FLOOR * dt / N
            nll_z = nll_z + (0.5 * torch.log(2 * math.pi * var)
                             + (zf[t] - zbar) ** 2 / (2 * var)).sum()
            x = lam[torch.as_tensor(since[t]), pop] * dt
            yt = torch.as_tensor(trial.y[t])
            nll_y = nll_y - torch.where(yt, torch.log(-torch.expm1(-x)), -x).sum()
        logS = torch.cat([torch.zeros(1, m, dtype=torch.float64), logS[:-1] - lam[:-1] * dt], 0)
        V = torch.cat([torch.zeros(1, m, dtype=torch.float64), V[:-1]], 0)
        hist = torch.cat([zf[t][None], hist[:-1]], 0)
        z_prev = zf[t]
    return nll_y, nll_z


def _particle_filter(net: Network, trial: Trial, n_ages, n_particles, rng, n_paths: int = 0):
    """The bootstrap particle filter of :func:`particle_log_likelihood` and
    :func:`particle_paths`: ``(log p(y | theta), paths or None)``."""
    n_ages = _check_trial_net(net, trial, n_ages)
    K = _check_int(n_particles, "n_particles")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    n_paths = _check_int(n_paths, "n_paths", low=0)
    dt, A, m = trial.dt, n_ages, net.m
    nr = _n_ref(net, dt)
    d, c = _leak(net, dt, net.alpha_m)
    g0, J = c * net.alpha_m * net.mu, net.J
    r = np.exp(-dt / net.tau_s)
    N = np.asarray(net.n, float)
    since = np.minimum(trial.since_last_spike(), A - 1)
    pop = trial.population
    T = trial.start + trial.n_latent
    # the history bins are given, so every particle is the same until the first scored bin:
    # one copy runs them, and the K particles start from it
    V, logS, hist = (np.zeros((1, m, A)) for _ in range(3))  # layout of simulate_meso
    isyn = np.asarray(trial.isyn0, float)[None]
    z_prev = np.zeros((1, m))
    logw = np.full(K, -math.log(K))  # normalised log-weights
    ll = 0.0
    if n_paths:  # every particle's activity, and the parent of each after resampling
        Z = np.empty((trial.n_latent, K, m))
        parent = np.empty((trial.n_latent, K), dtype=np.intp)
    for t in range(T):
        if t == trial.start:
            V, logS, hist, isyn, z_prev = (np.repeat(x, K, 0) for x in (V, logS, hist, isyn, z_prev))
        isyn = r * isyn + (1 - r) * z_prev / dt
        h = isyn @ J
        if trial.i_ext is not None:
            h = h + net.eps * trial.i_ext[t]
        V, lam, zbar = _table_step(V, logS, hist, g0 + c * h, d, net.f_t, nr, dt)
        if t >= trial.start:
            x = lam[:, pop, since[t]] * dt  # (K, recorded neurons)
            obs = np.where(trial.y[t], np.log(-np.expm1(-x)), -x).sum(1)
            inc = scipy.special.logsumexp(logw + obs)
            ll += float(inc)
            logw = logw + obs - inc
            w = np.exp(logw)
            if 1.0 / np.sum(w * w) < K / 2:
                cdf = np.cumsum(w)
                idx = np.minimum(np.searchsorted(cdf, (rng.random() + np.arange(K)) / K), K - 1)
                V, logS, hist, isyn = V[idx], logS[idx], hist[idx], isyn[idx]
                lam, zbar = lam[idx], zbar[idx]
                logw = np.full(K, -math.log(K))
                if n_paths:
                    parent[t - trial.start] = idx
            elif n_paths:
                parent[t - trial.start] = np.arange(K)
            sd = np.sqrt(zbar / N + VAR_FLOOR * dt / N)
            z = np.clip(zbar + sd * rng.standard_normal((K, m)), 0.0, 1.0)
            if n_paths:
                Z[t - trial.start] = z
        else:
            z = trial.z_history[t][None]
        _table_shift(V, logS, hist, lam, z, dt)
        z_prev = z
    if not n_paths:
        return ll, None
    # n_paths lineages, their last particles drawn by the final weights, traced back
    w = np.exp(logw)
    k = rng.choice(K, n_paths, p=w / w.sum())
    paths = np.empty((n_paths, trial.n_latent, m))
    for i in range(trial.n_latent - 1, -1, -1):
        paths[:, i] = Z[i, k]
        k = parent[i, k]  # the particle of bin i - 1 that particle k of bin i descends from
    return ll, paths


def particle_log_likelihood(net: Network, trial: Trial, *, n_ages: int = 100,
                            n_particles: int = 1000, rng: np.random.Generator) -> float:
    """``log p(y | theta)`` of the recorded spikes, the population activity integrated out.

    A bootstrap particle filter over the mesoscopic model: ``n_particles`` copies of the
    age table run the step of :func:`simulate_meso` (the history bins of the trial are
    given, as in the likelihood); in every scored bin each particle is weighted by the
    probability of the recorded spikes under its own table (the Bernoulli terms of
    :func:`neg_log_joint`), the weights are resampled (systematic resampling) when their
    effective number falls below half, and the particle's activity is drawn from the
    transition density ``Normal(Zbar_t, Zbar_t / N + 0.1 dt / N)``, clipped to ``[0, 1]`` as in
    :func:`simulate_meso`. The estimate of ``p(y | theta)`` is unbiased; its logarithm is
    biased low by about half its variance, which falls as ``1 / n_particles``. It is what the
    EM's MAP latent and its Laplace correction approximate (see :func:`m_step`).

    Args:
        net: the network.
        trial: the :class:`Trial` (its ``z_history`` sets the history bins).
        n_ages: age bins of the table.
        n_particles: particles.
        rng: the random generator of the draws.

    Returns:
        The estimate of ``log p(y | theta)`` (nats), a float.
    """
    return _particle_filter(net, trial, n_ages, n_particles, rng)[0]


def particle_paths(net: Network, trial: Trial, *, n_ages: int = 100, n_particles: int = 1000,
                   n_paths: int = 4, rng: np.random.Generator):
    """Latent paths drawn from the particle filter's approximation of ``p(Z | y, theta)``.

    The filter of :func:`particle_log_likelihood` keeps every particle's activity and, at every
    resampling, the particle each one descends from. ``n_paths`` particles of the last bin are
    drawn by their final weights and their lineages are traced back to the first scored bin
    (ancestral paths, the smoother of the filter's genealogy). The paths are approximate draws
    from the posterior of the activity, with a bias that falls with ``n_particles``; lineages
    that share an ancestor share their path before it. They are what the particle EM averages
    its M-step over (:func:`m_step` with a stack of latents; :func:`particle_em`).

    Args:
        net: the network.
        trial: the :class:`Trial`.
        n_ages: age bins of the table.
        n_particles: particles.
        n_paths: paths to draw (at least 1).
        rng: the random generator of the draws.

    Returns:
        ``(log_likelihood, paths)``: the filter's estimate of ``log p(y | theta)`` (nats, the
        same as :func:`particle_log_likelihood` with the same ``rng`` state) and the paths
        ``(n_paths, T - start, M)``, fractions in ``[0, 1]``.
    """
    _check_int(n_paths, "n_paths")
    return _particle_filter(net, trial, n_ages, n_particles, rng, n_paths)


# ----------------------------------------------------------------------------------------------
# Inference: E-step, M-step, EM
# ----------------------------------------------------------------------------------------------


def smoothed_latent(trial: Trial, sigma_s: float = 0.4, m: int | None = None) -> np.ndarray:
    """The authors' initial latent: each population's recorded spikes averaged and smoothed.

    Args:
        trial: the :class:`Trial`.
        sigma_s: width of the Gaussian kernel (s); the authors use 400 ms.
        m: number of populations (default: that of ``trial.z_history``).

    Returns:
        ``Z`` for the scored bins ``(T - start, M)``, clipped to ``[Z_MIN, Z_MAX]``.
    """
    sigma = _check_pos(sigma_s, "sigma_s")
    m = trial.z_history.shape[1] if m is None else m
    out = np.empty((trial.n_bins, m))
    for k in range(m):
        sel = trial.population == k
        mean = trial.y[:, sel].mean(1) if np.any(sel) else np.zeros(trial.n_bins)
        out[:, k] = gaussian_filter1d(mean.astype(float), sigma / trial.dt, mode="nearest")
    return np.clip(out[trial.start:], Z_MIN, Z_MAX)


@dataclass(frozen=True)
class StepResult:
    """The outcome of an E-step or an M-step.

    Attributes:
        loss: the negative log joint (``nll_y + nll_z``) at the end.
        nll_y: its recorded-neuron part.
        nll_z: its population part.
        iterations: optimiser iterations used.
    """

    loss: float
    nll_y: float
    nll_z: float
    iterations: int


def _value_and_grad(f, x: np.ndarray):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ny, nz = f(xt)
    loss = ny + nz
    loss.backward()
    g = xt.grad.numpy().copy()
    if not np.all(np.isfinite(g)):
        g = np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
    return float(loss.detach()), g


def e_step(net: Network, trial: Trial, z0, *, n_ages: int = 100, max_iter: int = 40,
           laplace: bool = False):
    """E-step: the most probable latent activity given the recorded spikes (MAP).

    Minimises :func:`neg_log_joint` over ``log Z`` of the scored bins with L-BFGS-B (bounds
    ``[Z_MIN, Z_MAX]``, gradients by autograd); the authors use Adam on ``Z`` itself, which is
    slower to converge (see the chapter).

    ``laplace=True`` minimises the Laplace-corrected objective of :func:`m_step` instead (the
    recorded neurons' term plus the squared part of the transition density, without its
    normaliser ``1/2 log(2 pi var_t)``). The normaliser falls with ``var_t = Zbar_t / N + 0.1
    dt / N``, so the MAP latent leans towards quiet activity; an EM whose M-step drops the
    normaliser but whose E-step keeps it drifts, round after round, towards a quiet network
    (the chapter measures it). With ``laplace=True`` both steps descend one objective.

    Args:
        net: the network (parameters fixed).
        trial: the :class:`Trial`.
        z0: initial latent ``(T - start, M)``.
        n_ages: age bins of the table.
        max_iter: L-BFGS-B iterations.
        laplace: minimise the Laplace-corrected objective (above); :attr:`StepResult.loss` is
            then that objective too.

    Returns:
        ``(z, result)``: the latent ``(T - start, M)`` and a :class:`StepResult`.
    """
    n_ages = _check_trial_net(net, trial, n_ages)
    max_iter = _check_int(max_iter, "max_iter")
    z0 = np.asarray(z0, float)
    if z0.shape != (trial.n_latent, net.m) or not np.all(np.isfinite(z0)):
        raise ValueError(f"z0 must be a finite ({trial.n_latent}, {net.m}) array")
    x0 = np.log(np.clip(z0, Z_MIN, Z_MAX)).ravel()
    shape = z0.shape

    def f(x):
        return _terms(net, trial, torch.exp(x.reshape(shape)), None, n_ages, laplace=laplace)

    res = scipy.optimize.minimize(lambda x: _value_and_grad(f, x), x0, jac=True, method="L-BFGS-B",
                                  bounds=[(math.log(Z_MIN), math.log(Z_MAX))] * x0.size,
                                  options={"maxiter": max_iter})
    z = np.exp(res.x.reshape(shape))
    with torch.no_grad():
        ny, nz = _terms(net, trial, z, None, n_ages, laplace=laplace)
    return z, StepResult(float(ny + nz), float(ny), float(nz), int(res.nit))


def _bounds(bounds, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` as two arrays of ``n`` bounds (each given as a number or ``n`` numbers),
    checked: ``0 < low < high`` and finite."""
    try:
        lo, hi = (np.broadcast_to(np.asarray(b, float), (n,)) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (low, high), each a number or {n} numbers, "
                         f"got {bounds!r}") from None
    if not (np.all(0 < lo) and np.all(lo < hi) and np.all(np.isfinite(hi))):
        raise ValueError(f"bounds must be 0 < low < high (numbers or {n} each), got {bounds!r}")
    return lo, hi


def m_step(net: Network, trial: Trial, z, *, reference: Network | None = None,
           bounds=(0.4, 2.0), n_ages: int = 100, max_iter: int = 40, free=None,
           laplace: bool = False):
    """M-step: the parameters that maximise the joint likelihood given the latent activity.

    L-BFGS-B over the 12 free parameters in units of ``reference.theta`` (the authors bound
    every parameter to ``[0.4, 2]`` times the ground truth), with autograd gradients (the
    authors use finite differences).

    ``laplace=True`` replaces the joint likelihood at the MAP latent ``Z*`` by a Laplace
    approximation of the marginal one, ``-log p(y | theta) ~ -log p(y, Z* | theta) + 1/2 log
    det H``, with the Hessian ``H`` of ``-log p`` in ``Z`` reduced to its diagonal and, there,
    to the curvature of each bin's own transition term, ``1 / var_t``. Then ``1/2 log det H =
    -sum_t 1/2 log var_t`` cancels the normaliser ``1/2 log(2 pi var_t)`` of the Gaussian
    transition density (up to a constant) and the M-step minimises ``nll_y + sum_t (Z_t -
    Zbar_t)^2 / (2 var_t)``. Without it (the authors' MAP-EM), parameters under which the
    latent is quiet gain ``1/2 log`` of the variance ratio in every bin: the chapter shows that
    the plain objective is lower at a silent latent than at the truth.

    Args:
        net: the starting network.
        trial: the :class:`Trial`.
        z: latent activity ``(T - start, M)``, or a stack of latent paths ``(S, T - start,
            M)`` (e.g. :func:`particle_paths`): the M-step then minimises the mean of the
            objective over the paths, the Monte Carlo M-step of :func:`particle_em`.
        reference: the network whose parameters set the units and the bounds (default ``net``).
        bounds: ``(low, high)`` relative to ``reference.theta``: two numbers, or two arrays of
            one bound per parameter (e.g. a trust region, see :func:`fit_em`).
        n_ages: age bins of the table.
        max_iter: L-BFGS-B iterations.
        free: optional boolean mask of the parameters to fit (default all).
        laplace: minimise the Laplace-corrected objective (above) instead of the joint one;
            :attr:`StepResult.loss` is then that objective too.

    Returns:
        ``(net, result)``: the fitted :class:`Network` and a :class:`StepResult`.
    """
    n_ages = _check_trial_net(net, trial, n_ages)
    max_iter = _check_int(max_iter, "max_iter")
    ref = net if reference is None else reference
    lo, hi = _bounds(bounds, 4 * net.m)
    scale = ref.theta
    if np.any(scale == 0):
        raise ValueError("the reference parameters must be non-zero (they set the units)")
    mask = np.ones(4 * net.m, bool) if free is None else np.asarray(free, bool)
    if mask.shape != (4 * net.m,):
        raise ValueError(f"free must be a mask of {4 * net.m} booleans")
    if not mask.any():
        raise ValueError("free must select at least one parameter to fit")
    # forward Euler needs dt alpha_m < 1 on the whole box
    if net.leak == "euler" and np.any(trial.dt * np.abs(scale[:net.m]) * hi[:net.m] >= 1):  # pragma: no cover - guard
        raise ValueError("the upper bound of alpha_m breaks forward Euler (dt * alpha_m >= 1)")
    u0 = net.theta / scale
    box = list(zip(lo[mask], hi[mask], strict=True))
    z_t = torch.as_tensor(np.asarray(z, float))
    if z_t.ndim == 3 and z_t.shape[0] == 0:
        raise ValueError("z must hold at least one latent path")
    paths = list(z_t) if z_t.ndim == 3 else [z_t]  # _z_full checks each one's shape
    scale_t = torch.as_tensor(scale)
    u_fixed = torch.as_tensor(u0)
    mask_t = torch.as_tensor(mask)

    def terms(theta):
        parts = [_terms(net, trial, zp, theta, n_ages, laplace=laplace) for zp in paths]
        return (sum(p[0] for p in parts) / len(parts), sum(p[1] for p in parts) / len(parts))

    def f(u_free):
        u = u_fixed.clone()
        u[mask_t] = u_free
        return terms(u * scale_t)

    x0 = np.clip(u0[mask], [b[0] for b in box], [b[1] for b in box])
    res = scipy.optimize.minimize(lambda x: _value_and_grad(f, x), x0, jac=True, method="L-BFGS-B",
                                  bounds=box, options={"maxiter": max_iter})
    u = u0.copy()
    u[mask] = res.x
    fitted = net.with_theta(u * scale)
    with torch.no_grad():
        ny, nz = terms(torch.as_tensor(fitted.theta))
    return fitted, StepResult(float(ny + nz), float(ny), float(nz), int(res.nit))


@dataclass(frozen=True)
class EMFit:
    """The outcome of :func:`fit_em`.

    Attributes:
        net: the fitted network.
        z: the inferred latent activity ``(T - start, M)``.
        losses: the M-step's objective after each M-step (the negative log joint, or its
            Laplace correction with ``laplace=True``) and the negative log joint after each
            E-step, in order.
        steps: ``"M"`` or ``"E"`` for each entry of ``losses``.
    """

    net: Network
    z: np.ndarray = field(repr=False)
    losses: tuple[float, ...]
    steps: tuple[str, ...]


def fit_em(net0: Network, trial: Trial, z0, *, reference: Network | None = None,
           bounds=(0.4, 2.0), n_ages: int = 100, n_iter: int = 4, m_iter: int = 40,
           e_iter: int = 40, callback=None, laplace: bool = False,
           e_first: bool = False, trust: float | None = None) -> EMFit:
    """MAP-EM of the neuLVM (the authors' ``train_meso.py``): M-step first, then E-step, repeated.

    Stops after ``n_iter`` rounds or when a round's E-step no longer lowers the negative log
    joint. ``laplace=True`` runs every M-step and every E-step on the Laplace-corrected
    objective (see :func:`m_step` and :func:`e_step`), a deviation from the authors' MAP-EM;
    the stopping rule then compares that objective. ``e_first=True`` runs an E-step of
    ``e_iter`` iterations under ``net0`` before the first M-step, so that the first M-step sees
    a latent that a network can produce rather than ``z0`` itself (the authors start with the
    M-step); its loss is the first entry of :attr:`EMFit.losses`. ``trust`` keeps the first
    M-step within a factor ``trust`` of ``net0``'s parameters (``[theta0 / trust, theta0 *
    trust]``, inside the bounds): from a latent that no network produced (smoothed spikes), an
    unconfined first M-step can send every parameter to the bounds at once.

    Args:
        net0: the initial network.
        trial: the :class:`Trial`.
        z0: initial latent ``(T - start, M)`` (e.g. :func:`smoothed_latent`).
        reference: sets the units and bounds of the M-step (see :func:`m_step`).
        bounds: ``(low, high)`` relative to the reference.
        n_ages: age bins of the table.
        n_iter: EM rounds.
        m_iter: L-BFGS-B iterations per M-step.
        e_iter: L-BFGS-B iterations per E-step.
        callback: optional function called with ``(round, step, loss)`` after every step.
        laplace: the objective of both steps (see :func:`m_step`, :func:`e_step`).
        e_first: start with an E-step under ``net0`` (above).
        trust: the first M-step's trust factor, ``> 1`` (above; default: none).

    Returns:
        An :class:`EMFit`.
    """
    n_iter = _check_int(n_iter, "n_iter")
    first_bounds = bounds
    if trust is not None:
        trust = float(trust)
        if not (1.0 < trust < math.inf):
            raise ValueError(f"trust must be a finite number > 1, got {trust!r}")
        u0 = net0.theta / (net0 if reference is None else reference).theta
        lo, hi = _bounds(bounds, u0.size)
        first_bounds = (np.clip(u0 / trust, lo, hi), np.clip(u0 * trust, lo, hi))
        if np.any(first_bounds[0] >= first_bounds[1]):
            raise ValueError(f"net0 lies more than a factor trust = {trust:g} outside the bounds")
    net, z = net0, np.asarray(z0, float)
    losses, steps = [], []
    best = math.inf
    if e_first:
        z, re = e_step(net, trial, z, n_ages=n_ages, max_iter=e_iter, laplace=laplace)
        losses.append(re.loss)
        steps.append("E")
        if callback is not None:
            callback(-1, "E", re.loss)
    for it in range(n_iter):
        net, rm = m_step(net, trial, z, reference=reference,
                         bounds=first_bounds if it == 0 else bounds, n_ages=n_ages,
                         max_iter=m_iter, laplace=laplace)
        losses.append(rm.loss)
        steps.append("M")
        if callback is not None:
            callback(it, "M", rm.loss)
        z, re = e_step(net, trial, z, n_ages=n_ages, max_iter=e_iter, laplace=laplace)
        losses.append(re.loss)
        steps.append("E")
        if callback is not None:
            callback(it, "E", re.loss)
        if re.loss >= best - 1e-6 * abs(best):
            break
        best = re.loss
    return EMFit(net, z, tuple(losses), tuple(steps))


@dataclass(frozen=True)
class ParticleEMFit:
    """The outcome of :func:`particle_em`.

    Attributes:
        net: the parameters of the highest estimated ``log p(y | theta)`` among :attr:`nets`.
        nets: the parameters before the first round and after every round.
        log_likelihoods: the particle filter's estimate of ``log p(y | theta)`` (nats) at
            each of :attr:`nets`.
        best: the index of :attr:`net` in :attr:`nets`.
    """

    net: Network
    nets: tuple[Network, ...] = field(repr=False)
    log_likelihoods: tuple[float, ...]
    best: int


def particle_em(net0: Network, trial: Trial, *, reference: Network | None = None,
                bounds=(0.4, 2.0), n_ages: int = 100, n_rounds: int = 8,
                n_particles: int = 500, n_paths: int = 2, m_iter: int = 40,
                relax: float = 1.0, rng: np.random.Generator, callback=None) -> ParticleEMFit:
    """Monte Carlo EM on the marginal likelihood ``p(y | theta)``, the latent drawn, not
    maximised.

    Every round runs the particle filter under the current parameters
    (:func:`particle_paths`), which estimates ``log p(y | theta)`` and draws ``n_paths``
    latent paths from the posterior, and then an M-step of ``m_iter`` iterations on the mean
    of the negative log joint (with the transition density's normaliser) over those paths
    (:func:`m_step`). With exact posterior draws and many paths this is EM on ``p(y |
    theta)``, whose fixed points are its stationary points; the MAP-EM of :func:`fit_em`
    replaces the draws by the single most probable latent, which biases the parameters. The
    filter's estimate after the last round is computed too, and the parameters with the
    highest estimate are returned.

    ``relax > 1`` over-relaxes each step in the units of the M-step: ``u <- u + relax (M(u) -
    u)``, clipped to the bounds. EM's steps shrink by the fraction of missing information, which
    is large when a few recorded neurons stand for a population, and the over-relaxed step
    covers that ground in fewer rounds (at the cost of more Monte Carlo noise per step).

    Args:
        net0: the initial network (e.g. the end point of :func:`fit_em`).
        trial: the :class:`Trial`.
        reference: sets the units and bounds of the M-step (see :func:`m_step`).
        bounds: ``(low, high)`` relative to the reference (numbers or one per parameter, as
            in :func:`m_step`).
        n_ages: age bins of the table.
        n_rounds: rounds.
        n_particles: particles of each filter.
        n_paths: latent paths per round.
        m_iter: L-BFGS-B iterations per M-step.
        relax: over-relaxation factor, ``>= 1``.
        rng: the random generator of the filters.
        callback: optional function called with ``(round, net, log_likelihood)`` after each
            filter.

    Returns:
        A :class:`ParticleEMFit`.
    """
    n_rounds = _check_int(n_rounds, "n_rounds")
    _check_int(n_paths, "n_paths")
    relax = float(relax)
    if not (1.0 <= relax < math.inf):
        raise ValueError(f"relax must be a finite number >= 1, got {relax!r}")
    ref = net0 if reference is None else reference
    scale = ref.theta
    lo, hi = _bounds(bounds, scale.size)
    net, nets, lls = net0, [], []
    for k in range(n_rounds):
        ll, paths = particle_paths(net, trial, n_ages=n_ages, n_particles=n_particles,
                                   n_paths=n_paths, rng=rng)
        nets.append(net)
        lls.append(ll)
        if callback is not None:
            callback(k, net, ll)
        new, _ = m_step(net, trial, paths, reference=ref, bounds=bounds, n_ages=n_ages,
                        max_iter=m_iter)
        if relax != 1.0:
            u0, u1 = net.theta / scale, new.theta / scale
            new = net.with_theta(np.clip(u0 + relax * (u1 - u0), lo, hi) * scale)
        net = new
    ll = particle_log_likelihood(net, trial, n_ages=n_ages, n_particles=n_particles, rng=rng)
    nets.append(net)
    lls.append(ll)
    if callback is not None:
        callback(n_rounds, net, ll)
    best = int(np.argmax(lls))
    return ParticleEMFit(nets[best], tuple(nets), tuple(lls), best)


# ----------------------------------------------------------------------------------------------
# Measures of metastability
# ----------------------------------------------------------------------------------------------


def smooth(x, sigma_s: float, dt_s: float, axis: int = -2) -> np.ndarray:
    """Gaussian smoothing along time (``sigma_s`` seconds; default axis: the one before last)."""
    sigma = _check_pos(sigma_s, "sigma_s")
    dt = _check_pos(dt_s, "dt_s")
    x = np.asarray(x, float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    return gaussian_filter1d(x, sigma / dt, axis=axis, mode="nearest")


def winner_states(rates, dt_s: float, *, sigma_s: float = 0.1, threshold_hz: float = 5.0
                  ) -> np.ndarray:
    """Which excitatory population wins at each time, with hysteresis.

    The rates of populations 0 and 1 are smoothed (Gaussian, ``sigma_s``); the state becomes
    ``0`` (E1 wins) when E1 exceeds E2 by ``threshold_hz`` and ``1`` when E2 exceeds E1 by as much,
    and otherwise keeps its value (a Schmitt trigger, so that fluctuations near a tie are not
    counted as switches). Before the first crossing the state is that of the larger rate.

    Args:
        rates: ``(T, M)`` population rates (Hz), ``M >= 2``.
        dt_s: bin width (s).
        sigma_s: smoothing width (s).
        threshold_hz: hysteresis (Hz).

    Returns:
        ``(T,)`` int array of 0 / 1.
    """
    r = np.asarray(rates, float)
    if r.ndim != 2 or r.shape[1] < 2 or r.shape[0] < 2:
        raise ValueError(f"rates must be (T, M) with M >= 2, got shape {r.shape}")
    thr = _check_pos(threshold_hz, "threshold_hz")
    diff = smooth(r[:, 0] - r[:, 1], sigma_s, dt_s, axis=0)
    hi, lo = diff > thr, diff < -thr
    state = np.full(diff.size, -1)
    state[hi], state[lo] = 0, 1
    # carry the last decided state forward
    idx = np.where(state >= 0, np.arange(diff.size), -1)
    last = np.maximum.accumulate(idx)
    first = int(diff[0] < 0)
    return np.where(last >= 0, state[np.maximum(last, 0)], first).astype(int)


def dwell_times(states, dt_s: float) -> tuple[int, np.ndarray]:
    """Switches and complete dwell times of a state sequence.

    Args:
        states: ``(T,)`` ints (see :func:`winner_states`).
        dt_s: bin width (s).

    Returns:
        ``(n_switches, dwells)``: the number of state changes, and the durations (s) of the
        dwells between two switches (the first and last, cut by the run, are left out).
    """
    s = np.asarray(states)
    if s.ndim != 1 or s.size < 2:
        raise ValueError("states must be a 1-d sequence of at least 2 values")
    dt = _check_pos(dt_s, "dt_s")
    sw = np.flatnonzero(np.diff(s) != 0) + 1
    return int(sw.size), np.diff(sw) * dt


def state_rates(rates, states) -> np.ndarray:
    """Mean rates of the winning E, the losing E and the rest: ``[E_high, E_low, others...]``.

    Args:
        rates: ``(T, M)`` rates (Hz).
        states: ``(T,)`` winner (0: population 0, 1: population 1).
    """
    r = np.asarray(rates, float)
    s = np.asarray(states)
    if r.ndim != 2 or s.shape != (r.shape[0],) or r.shape[1] < 2:
        raise ValueError("rates must be (T, M >= 2) and states (T,)")
    win = np.where(s == 0, r[:, 0], r[:, 1])
    lose = np.where(s == 0, r[:, 1], r[:, 0])
    return np.concatenate([[win.mean(), lose.mean()], r[:, 2:].mean(0)])


def switch_probability(rates, dt_s: float, onset_s: float, window_s: float = 0.5,
                       loser: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Whether each stimulated trial switched winner.

    A trial counts if population ``1 - loser`` was winning (higher mean rate) in the
    ``window_s`` before ``onset_s``; it switched if ``loser`` has the higher mean rate in the
    last ``window_s`` of the trial.

    Args:
        rates: ``(trials, T, M)`` rates (Hz).
        dt_s: bin width (s).
        onset_s: stimulus onset (s).
        window_s: averaging window (s).
        loser: the population that loses before the stimulus (0 or 1).

    Returns:
        ``(valid, switched)``: boolean arrays ``(trials,)``.
    """
    r = np.asarray(rates, float)
    if r.ndim != 3 or r.shape[2] < 2:
        raise ValueError(f"rates must be (trials, T, M >= 2), got shape {r.shape}")
    if loser not in (0, 1):
        raise ValueError(f"loser must be 0 or 1, got {loser!r}")
    dt = _check_pos(dt_s, "dt_s")
    w = int(round(_check_pos(window_s, "window_s") / dt))
    on = int(round(onset_s / dt))
    if not (w <= on <= r.shape[1] - w):
        raise ValueError("onset_s must leave a window before it and after it")
    win = 1 - loser
    before = r[:, on - w:on, :2].mean(1)
    after = r[:, -w:, :2].mean(1)
    valid = before[:, win] > before[:, loser]
    return valid, after[:, loser] > after[:, win]
