"""Goodness-of-fit tests for point-process models and GLMs of spike trains.

Implements the procedures of Gerhard & Gerstner (2010), "Rescaling, thinning or complementing? On
goodness-of-fit procedures for point process models and Generalized Linear Models", NeurIPS 23,
pp. 703-711 (arXiv:1011.4188). The chapter ``chapters/gof-point-processes`` explains them
(``theory.md``) and measures the paper's claims (``reproduce.md``).

The module has five parts:

1. **Model.** A Bernoulli-logistic GLM of a binned spike train with a stimulus filter (boxcar-smoothed
   white noise of unit variance) and a spike-history filter (absolute and relative refractoriness),
   simulated for many repetitions at once (:func:`simulate`), and its Poisson-count analogue.
2. **Tests.** The naive discretised time rescaling (``"R0"``, :func:`rescale_naive`), the corrected
   rescaling through a surrogate point process (``"R"``, :func:`rescale_surrogate`,
   :func:`rescale_poisson_surrogate`), the thinning test (``"T"``, :func:`thin_discrete`) and the
   complementing test (``"C"``, :func:`complement_discrete`) in discrete time with the
   restricted-quantile bounds, plus simple continuous-time versions (:func:`rescale_continuous`,
   :func:`thin_continuous`, :func:`complement_continuous`).
3. **Kolmogorov-Smirnov machinery.** :func:`ks_test`, exact finite-n critical values
   (:func:`ks_critical`) and KS-plot bands (:func:`ks_band`).
4. **Applying the tests.** :func:`run_tests` applies the four tests to one spike train;
   :func:`pvalue_matrix` / :func:`rejection_matrix` to many; :func:`acceptance_region` gives the
   99 % binomial acceptance region of a test's size; :func:`pooled_values` and :func:`size_check`
   check a test's size more sharply from the values of all runs; :func:`paired_pvalue` compares
   two tests on the same runs; :func:`fit_bernoulli_glm` fits a GLM with statsmodels.

The chapter's presets, its size and power experiments and its KS-plot figure are its protocol,
:mod:`lib.protocols.gof_point_processes`.

Notation: bins ``k = 0..K-1`` of width ``dt`` (seconds); ``y[k]`` is 0/1 (Bernoulli) or a count
(Poisson); ``p[k]`` is the model's conditional spike probability in bin ``k`` given the past.
Arrays of many repetitions have shape ``(n_reps, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import special, stats

# ----------------------------------------------------------------------------------------------
# Named constants of the model (units in the names or comments)
# ----------------------------------------------------------------------------------------------

#: Default bin width (s).
DT_S = 1e-3
#: Stimulus weight of the true model (log-odds per unit of stimulus).
STIM_GAIN = 0.8
#: Width of the boxcar that smooths the white-noise stimulus (s): 20 bins at 1 ms.
STIM_SMOOTH_S = 0.020
#: Absolute refractory period (s) and its history weight (log-odds).
ABS_REFRACTORY_S = 0.002
ABS_REFRACTORY_WEIGHT = -8.0
#: Relative refractoriness: amplitude (log-odds) and time constant (s) of an exponential recovery
#: that starts at ``ABS_REFRACTORY_S + 1 ms``.
REL_REFRACTORY_AMP = -4.0
REL_REFRACTORY_TAU_S = 0.003
#: Length of the spike-history filter (s).
HISTORY_S = 0.010
#: Baseline log-odds per 1-ms bin: about 39 Hz and about 66 Hz with the history and stimulus above.
BIAS_39HZ = -3.0
BIAS_66HZ = -2.0
#: Significance level of every KS test.
ALPHA = 0.05
#: Default quantile of the restricted thinning / complementing bounds (p_B = p_C = median of p).
Q_DEFAULT = 0.5
#: Step (s) of the grid on which the continuous-time procedures check their bound between the
#: points they see: a violation shorter than this can escape the check.
BOUND_GRID_S = 1e-4

#: The four tests: short name -> label.
TESTS: dict[str, str] = {
    "R0": "naive rescaling",
    "R": "corrected rescaling",
    "T": "thinning",
    "C": "complementing",
}
#: The misspecified models of the power experiment (see :func:`misspecified`).
MISSPECIFICATIONS: dict[str, str] = {
    "gain-x0.5": "stimulus gain x0.5",
    "gain-x1.5": "stimulus gain x1.5 (bias - 0.15)",
    "no-relative-refractoriness": "absolute refractoriness only",
}

FAMILIES = ("bernoulli", "poisson")


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


def history_kernel(dt: float = DT_S) -> tuple[float, ...]:
    """The spike-history filter of the true model, sampled at lags ``dt, 2 dt, ..., 10 ms``.

    At ``dt = 1 ms`` it is ``[-8, -8, -4 e^{-j/3} (j = 0..7)]``: 2 ms of absolute refractoriness
    followed by an exponential recovery. Other bin widths sample the same function of time.

    Args:
        dt: bin width (s), at most ``HISTORY_S``.

    Returns:
        The weights ``h[j]`` applied to ``y[k - 1 - j]`` (log-odds).
    """
    if not (0 < dt <= HISTORY_S):
        raise ValueError(f"dt must be in (0, {HISTORY_S}] s, got {dt}")
    lags = dt * np.arange(1, int(round(HISTORY_S / dt)) + 1)
    h = np.where(
        lags <= ABS_REFRACTORY_S + 1e-12,
        ABS_REFRACTORY_WEIGHT,
        REL_REFRACTORY_AMP * np.exp(-(lags - ABS_REFRACTORY_S - 1e-3) / REL_REFRACTORY_TAU_S),
    )
    return tuple(float(x) for x in h)


@dataclass(frozen=True)
class GLM:
    """A GLM of a binned spike train: ``eta_k = bias + stim_gain * s_k + sum_j history[j] y_{k-1-j}``.

    ``family="bernoulli"``: ``p_k = expit(eta_k)`` and ``y_k ~ Bernoulli(p_k)``.
    ``family="poisson"``: ``mu_k = exp(eta_k)`` (expected count per bin) and ``y_k ~ Poisson(mu_k)``.

    Attributes:
        bias: baseline log-odds (Bernoulli) or log expected count (Poisson) per bin.
        stim_gain: weight of the stimulus.
        history: spike-history weights ``h[j]`` for lags ``j + 1`` bins.
        dt: bin width (s).
        smooth_bins: width of the boxcar that smooths the stimulus (bins).
        family: ``"bernoulli"`` or ``"poisson"``.
    """

    bias: float = BIAS_39HZ
    stim_gain: float = STIM_GAIN
    history: tuple[float, ...] = field(default_factory=history_kernel)
    dt: float = DT_S
    smooth_bins: int = int(round(STIM_SMOOTH_S / DT_S))
    family: str = "bernoulli"

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; expected one of {', '.join(FAMILIES)}")
        _check_positive(self.dt, "dt", "the bin width (s)")
        for name in ("bias", "stim_gain"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if not np.all(np.isfinite(np.asarray(self.history, dtype=float))):
            raise ValueError(f"history weights must be finite, got {self.history}")
        if not (isinstance(self.smooth_bins, (int, np.integer)) and self.smooth_bins >= 1):
            raise ValueError(f"smooth_bins must be an integer >= 1, got {self.smooth_bins}")


def glm_at(bias_1ms: float = BIAS_39HZ, dt: float = DT_S, family: str = "bernoulli") -> GLM:
    """The true model at bin width ``dt``: the same neuron described on a coarser grid.

    The bias is shifted by ``log(dt / 1 ms)`` (the odds of a spike per bin scale with the bin width),
    the history kernel is sampled at multiples of ``dt`` (:func:`history_kernel`) and the stimulus is
    smoothed over ``STIM_SMOOTH_S``.

    Args:
        bias_1ms: baseline log-odds per 1-ms bin (``BIAS_39HZ``, ``BIAS_66HZ``, ...).
        dt: bin width (s).
        family: ``"bernoulli"`` or ``"poisson"``.

    Returns:
        A :class:`GLM`.
    """
    return GLM(
        bias=float(bias_1ms + np.log(dt / 1e-3)),
        history=history_kernel(dt),
        dt=dt,
        smooth_bins=max(1, int(round(STIM_SMOOTH_S / dt))),
        family=family,
    )


def misspecified(model: GLM, kind: str) -> GLM:
    """A misspecified version of ``model`` (the alternatives of the power experiment).

    Args:
        model: the true model.
        kind: one of :data:`MISSPECIFICATIONS`: ``"gain-x0.5"`` (stimulus weight halved),
            ``"gain-x1.5"`` (weight x1.5, bias - 0.15 to keep the mean rate), or
            ``"no-relative-refractoriness"`` (history kept only within the absolute refractory period).

    Returns:
        A :class:`GLM`.
    """
    if kind == "gain-x0.5":
        return replace(model, stim_gain=0.5 * model.stim_gain)
    if kind == "gain-x1.5":
        return replace(model, stim_gain=1.5 * model.stim_gain, bias=model.bias - 0.15)
    if kind == "no-relative-refractoriness":
        n_abs = max(1, int(round(ABS_REFRACTORY_S / model.dt + 1e-9)))
        return replace(model, history=tuple(model.history[:n_abs]))
    raise ValueError(f"unknown misspecification {kind!r}; expected one of {', '.join(MISSPECIFICATIONS)}")


def stimulus(n_reps: int, n_bins: int, smooth_bins: int, rng: np.random.Generator) -> np.ndarray:
    """White noise smoothed by a boxcar of ``smooth_bins`` bins, scaled to unit variance.

    Args:
        n_reps: number of repetitions (independent stimuli).
        n_bins: bins per repetition.
        smooth_bins: boxcar width (bins).
        rng: the random generator.

    Returns:
        Array ``(n_reps, n_bins)``; every entry is N(0, 1) (neighbours are correlated).
    """
    if n_reps < 1 or n_bins < 1:
        raise ValueError(f"n_reps and n_bins must be >= 1, got {n_reps}, {n_bins}")
    if not (isinstance(smooth_bins, (int, np.integer)) and smooth_bins >= 1):
        raise ValueError(f"smooth_bins (the boxcar width) must be an integer >= 1, got {smooth_bins}")
    noise = rng.standard_normal((n_reps, n_bins + smooth_bins - 1))
    c = np.cumsum(noise, axis=1)
    c = np.concatenate([np.zeros((n_reps, 1)), c], axis=1)
    return (c[:, smooth_bins:] - c[:, :-smooth_bins]) / np.sqrt(smooth_bins)


@dataclass(frozen=True)
class Simulation:
    """Spike trains of a GLM.

    Attributes:
        y: spikes per bin, ``(n_reps, K)`` (int8 for Bernoulli, int32 counts for Poisson).
        p: the true conditional spike probability (Bernoulli) or expected count (Poisson) per bin.
        s: the stimulus, ``(n_reps, K)``.
        model: the model that generated them.
    """

    y: np.ndarray
    p: np.ndarray
    s: np.ndarray
    model: GLM

    @property
    def rate_hz(self) -> float:
        """Mean firing rate over all bins and repetitions (Hz)."""
        return float(self.y.mean() / self.model.dt)


def simulate(model: GLM, duration_s: float, n_reps: int, rng: np.random.Generator) -> Simulation:
    """Simulate ``n_reps`` independent trials of ``model``, all repetitions at once.

    The loop over time bins is sequential (the spike history feeds back), but every step is one
    numpy operation over all repetitions. The neuron is silent before ``t = 0`` (the history starts
    empty), so ``p`` is the exact conditional probability in every bin and
    :func:`model_probability` reproduces it.

    Args:
        model: the GLM.
        duration_s: length of each trial (s).
        n_reps: number of trials.
        rng: the random generator (stimulus first, then spikes).

    Returns:
        A :class:`Simulation`.
    """
    _check_positive(duration_s, "duration_s", "the length of a trial (s)")
    if not (isinstance(n_reps, (int, np.integer)) and n_reps >= 1):
        raise ValueError(f"n_reps must be an integer >= 1, got {n_reps!r}")
    n_bins = int(round(duration_s / model.dt))
    if n_bins < 1:
        raise ValueError(f"duration_s must cover at least one bin of {model.dt} s, got {duration_s}")
    s = stimulus(n_reps, n_bins, model.smooth_bins, rng)
    h = np.asarray(model.history, dtype=float)
    J = len(h)
    hrev = h[::-1].copy()
    drive = (model.bias + model.stim_gain * s).T.copy()  # (K, R), time-major: contiguous rows
    Y = np.zeros((n_bins + J, n_reps))  # J silent rows of history before t = 0
    P = np.empty((n_bins, n_reps))
    bernoulli = model.family == "bernoulli"
    if bernoulli:
        U = rng.random((n_bins, n_reps))
    for k in range(n_bins):
        eta = drive[k] + hrev @ Y[k:k + J] if J else drive[k]
        if bernoulli:
            special.expit(eta, out=P[k])
            np.less(U[k], P[k], out=Y[k + J], casting="unsafe")
        else:
            np.exp(eta, out=P[k])
            Y[k + J] = rng.poisson(P[k])
    dtype = np.int8 if bernoulli else np.int32
    return Simulation(
        y=np.ascontiguousarray(Y[J:].T).astype(dtype),
        p=np.ascontiguousarray(P.T),
        s=s,
        model=model,
    )


def history_drive(y: np.ndarray, history: Sequence[float]) -> np.ndarray:
    """``sum_j history[j] * y[..., k - 1 - j]``, with silence before the first bin.

    Args:
        y: spikes, ``(K,)`` or ``(n_reps, K)``.
        history: weights for lags 1, 2, ... bins.

    Returns:
        Array of the shape of ``y``.
    """
    y = np.asarray(y, dtype=float)
    out = np.zeros_like(y)
    K = y.shape[-1]
    for j, w in enumerate(history):
        if j + 1 < K:
            out[..., j + 1:] += w * y[..., : K - j - 1]
    return out


def model_probability(model: GLM, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The conditional spike probability (Bernoulli) or expected count (Poisson) of ``model``.

    Evaluates the model on observed spikes ``y`` and stimulus ``s`` (no simulation): this is how a
    (possibly misspecified) model is confronted with data.

    Args:
        model: the GLM.
        s: stimulus, same shape as ``y``.
        y: observed spikes, ``(K,)`` or ``(n_reps, K)``.

    Returns:
        Array of the shape of ``y``.
    """
    s, y = np.asarray(s, dtype=float), np.asarray(y)
    if s.shape != y.shape:
        raise ValueError(f"stimulus and spikes must have the same shape, got {s.shape} and {y.shape}")
    eta = model.bias + model.stim_gain * s + history_drive(y, model.history)
    return special.expit(eta) if model.family == "bernoulli" else np.exp(eta)


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def _check_positive(x, name: str, what: str) -> float:
    """``x`` as a float, or a ValueError unless it is finite and positive."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite positive number ({what}), got {x!r}") from None
    if not (np.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite positive number ({what}), got {x}")
    return x


def _check_binary(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of spikes per bin, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y must hold at least one bin; got an empty array")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must be binary (0 or 1 spike per bin) for the Bernoulli tests; "
                         "use rescale_poisson_surrogate for counts")
    return y.astype(bool)


def _check_counts(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of spike counts per bin, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y must hold at least one bin; got an empty array")
    if (not np.all(np.isfinite(y)) or np.any(y < 0) or np.any(y != np.round(y))):
        raise ValueError("y must hold non-negative integer spike counts")
    return y.astype(np.int64)


def _check_prob(p, n: int, name: str = "p") -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of probabilities per bin, got shape {p.shape}")
    if p.shape[0] != n:
        raise ValueError(f"{name} has length {p.shape[0]} but the spike array has length {n}; "
                         "they must have one entry per bin")
    if np.any(np.isnan(p)):
        raise ValueError(f"{name} contains NaN; probabilities must be in [0, 1]")
    if p.size == 0:
        raise ValueError(f"{name} must hold at least one bin; got an empty array")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"{name} must be probabilities in [0, 1], got values in [{p.min()}, {p.max()}]")
    return p


def _check_mean(mu, n: int) -> np.ndarray:
    mu = np.asarray(mu, dtype=float)
    if mu.ndim != 1 or mu.shape[0] != n:
        raise ValueError(f"mu must be a 1-D array of length {n} (one expected count per bin), got shape {mu.shape}")
    if not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError("mu (expected counts per bin) must be finite and non-negative")
    return mu


def _check_q(q: float) -> float:
    if not (isinstance(q, (int, float, np.floating)) and 0 < q < 1):
        raise ValueError(f"quantile level q must be in the open interval (0, 1), got {q!r}")
    return float(q)


def _check_spike_times(t, duration: float | None = None) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    if t.ndim != 1:
        raise ValueError(f"spike times must be a 1-D array, got shape {t.shape}")
    if t.size:
        if not np.all(np.isfinite(t)):
            raise ValueError("spike times must be finite")
        if t[0] < 0 or np.any(t < 0):
            raise ValueError("spike times must be non-negative (time starts at 0)")
        if np.any(np.diff(t) < 0):
            raise ValueError("spike times must be sorted in increasing order")
        if duration is not None and t[-1] > duration:
            raise ValueError(f"spike times must lie in [0, duration={duration}], got {t[-1]}")
    return t


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _eval_intensity(intensity, t: np.ndarray, name: str = "intensity") -> np.ndarray:
    lam = np.asarray(intensity(t) if callable(intensity) else intensity, dtype=float)
    if lam.shape != t.shape:
        raise ValueError(f"{name} has shape {lam.shape} but the spike array has shape {t.shape}; "
                         "give one value per spike (or a callable)")
    if not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return lam


# ----------------------------------------------------------------------------------------------
# Rescaling
# ----------------------------------------------------------------------------------------------


def _interval_sums(y: np.ndarray, w: np.ndarray, include_spike_bin: bool) -> np.ndarray:
    """Sum of ``w`` over the bins of each inter-spike interval (first one from bin 0).

    Interval ``i`` runs from the bin after spike ``i - 1`` to the bin of spike ``i`` (included or
    not); the censored stretch after the last spike is dropped.
    """
    n = int(y.sum())
    before = np.cumsum(y) - y  # number of spikes strictly before each bin = interval index
    mask = np.ones_like(y) if include_spike_bin else ~y
    return np.bincount(before[mask], weights=w[mask], minlength=n + 1)[:n]


def rescale_naive(y, p) -> np.ndarray:
    """Naive discretised time rescaling (test ``R0``): biased for binned data.

    ``tau_i = sum of p_k over the bins (j_{i-1}, j_i]`` and ``u_i = 1 - exp(-tau_i)``, as if the
    binned probabilities were a continuous intensity integrated over the interval.

    Args:
        y: binary spikes per bin, ``(K,)``.
        p: model spike probability per bin, ``(K,)``.

    Returns:
        ``u``, one value per spike; not uniform under the true model when ``p`` is not small.
    """
    y = _check_binary(y)
    p = _check_prob(p, y.shape[0])
    return -np.expm1(-_interval_sums(y, p, include_spike_bin=True))


def rescaled_intervals_surrogate(y, p, rng: np.random.Generator) -> np.ndarray:
    """Rescaled intervals ``tau_i`` of the Bernoulli surrogate point process.

    In bin ``k`` the surrogate has intensity ``q_k / dt`` with ``q_k = -log(1 - p_k)`` until its first
    event, so ``P(event in bin k) = p_k``; the event's position is truncated-exponential. In rescaled
    time ``tau_i = sum_{k in (j_{i-1}, j_i)} q_k + xi_i``, with
    ``xi_i = -log(1 - r_i (1 - exp(-q_{j_i})))`` and ``r_i ~ U(0, 1)``.

    Args:
        y: binary spikes per bin, ``(K,)``.
        p: model spike probability per bin, ``(K,)``.
        rng: draws the in-bin positions ``r_i``.

    Returns:
        ``tau``, one value per spike; Exp(1) under the true model.
    """
    y = _check_binary(y)
    p = _check_prob(p, y.shape[0])
    rng = _check_rng(rng)
    with np.errstate(divide="ignore"):
        q = -np.log1p(-p)  # inf where p == 1
    tau = _interval_sums(y, q, include_spike_bin=False)
    r = rng.random(tau.shape[0])
    # xi = -log(1 - r (1 - e^{-q})), with 1 - e^{-q} = p
    xi = -np.log1p(-r * p[y])
    return tau + xi


def rescale_surrogate(y, p, rng: np.random.Generator) -> np.ndarray:
    """Corrected time rescaling (test ``R``) through the Bernoulli surrogate point process.

    Args:
        y: binary spikes per bin, ``(K,)``.
        p: model spike probability per bin, ``(K,)``.
        rng: draws the in-bin positions.

    Returns:
        ``u = 1 - exp(-tau)`` in [0, 1], one per spike; exactly U(0, 1) under the true model.
    """
    return -np.expm1(-rescaled_intervals_surrogate(y, p, rng))


def surrogate_spike_times(y, p, rng: np.random.Generator, dt: float = DT_S) -> np.ndarray:
    """Spike times of the Bernoulli surrogate point process (for plots).

    Uses the same draws as :func:`rescale_surrogate` with the same generator state: the spike of bin
    ``j`` sits at ``(j + xi / q_j) dt``, where ``xi / q_j`` is its truncated-exponential position.

    Args:
        y: binary spikes per bin, ``(K,)``.
        p: model spike probability per bin, ``(K,)``.
        rng: draws the in-bin positions.
        dt: bin width (s).

    Returns:
        Spike times (s), one per spike.
    """
    y = _check_binary(y)
    p = _check_prob(p, y.shape[0])
    dt = _check_positive(dt, "dt", "the bin width (s)")
    r = _check_rng(rng).random(int(y.sum()))
    pj = p[y]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(pj > 0, np.log1p(-r * pj) / np.log1p(-pj), r)  # the limit p -> 0 is uniform
    # p == 1: infinite intensity, the spike comes at the start of the bin (frac = 0)
    return (np.flatnonzero(y) + np.clip(frac, 0.0, 1.0)) * dt


def rescale_poisson_surrogate(y, mu, rng: np.random.Generator) -> np.ndarray:
    """Corrected time rescaling of a Poisson-count GLM (uniform in-bin placement).

    The intensity is constant within a bin, so the ``y_k`` spikes of bin ``k`` are placed at i.i.d.
    uniform positions in the bin; the compensator ``Lambda`` is piecewise linear with slope ``mu_k``
    per bin, and the rescaled intervals are Exp(1) under the true model.

    Args:
        y: spike counts per bin, ``(K,)``.
        mu: model expected count per bin (``lambda_k * dt``), ``(K,)``.
        rng: draws the in-bin positions.

    Returns:
        ``u``, one value per spike.
    """
    y = _check_counts(y)
    mu = _check_mean(mu, y.shape[0])
    rng = _check_rng(rng)
    bins = np.repeat(np.arange(y.shape[0]), y)
    cum = np.concatenate([[0.0], np.cumsum(mu)])
    lam = np.sort(cum[bins] + mu[bins] * rng.random(bins.shape[0]))
    return -np.expm1(-np.diff(lam, prepend=0.0))


def rescale_continuous(spike_times, compensator: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Time rescaling of a continuous-time point process (Brown et al. 2002).

    Args:
        spike_times: sorted, non-negative spike times (s).
        compensator: ``Lambda(t) = integral_0^t lambda(s | H_s) ds``, vectorised over ``t``.

    Returns:
        ``u_i = 1 - exp(-(Lambda(t_i) - Lambda(t_{i-1})))`` with ``t_0 = 0``.
    """
    t = _check_spike_times(spike_times)
    lam = _eval_intensity(compensator, np.concatenate([[0.0], t]), name="compensator")
    tau = np.diff(lam)
    if np.any(tau < 0):
        raise ValueError("compensator must be non-decreasing in time")
    return -np.expm1(-tau)


def homogeneous_u(spike_times, rate: float) -> np.ndarray:
    """Rescaled intervals of a homogeneous Poisson process of ``rate`` (first from ``t = 0``).

    Args:
        spike_times: sorted, non-negative spike times (s).
        rate: the rate (Hz).

    Returns:
        ``u_i = 1 - exp(-rate (t_i - t_{i-1}))``.
    """
    t = _check_spike_times(spike_times)
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    return -np.expm1(-rate * np.diff(t, prepend=0.0))


# ----------------------------------------------------------------------------------------------
# Thinning and complementing in discrete time
# ----------------------------------------------------------------------------------------------


def geometric_cdf(n, p: float) -> np.ndarray:
    """``F(n) = P(N <= n) = 1 - (1 - p)^n`` of the number of Bernoulli(p) trials up to a success."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.expm1(n * np.log1p(-p))
    return np.where(n <= 0, 0.0, out)


def geometric_pit(n, p: float, rng: np.random.Generator) -> np.ndarray:
    """Randomised probability integral transform of geometric intervals.

    ``u = F(n - 1) + V (F(n) - F(n - 1))`` with ``V ~ U(0, 1)``: exactly U(0, 1) when ``n`` is
    geometric with success probability ``p`` (support 1, 2, ...).

    Args:
        n: intervals (number of trials up to and including the success), integers >= 1.
        p: success probability in (0, 1].
        rng: draws ``V``.

    Returns:
        ``u``, one per interval.
    """
    n = np.asarray(n)
    if n.size and (not np.all(np.isfinite(n)) or np.any(n != np.round(n)) or np.any(n < 1)):
        raise ValueError("geometric intervals must be integers >= 1 (numbers of trials up to and "
                         "including a success)")
    if not (0 < p <= 1):
        raise ValueError(f"p must be in (0, 1], got {p}")
    rng = _check_rng(rng)
    lo, hi = geometric_cdf(n - 1, p), geometric_cdf(n, p)
    return np.clip(lo + rng.random(n.shape) * (hi - lo), 0.0, 1.0)  # rounding stays in [0, 1]


def _event_intervals(z: np.ndarray) -> np.ndarray:
    """Intervals (in trials) between successes of a 0/1 sequence; the first counts from the start."""
    idx = np.flatnonzero(z)
    return np.diff(idx, prepend=-1)


def bernoulli_pit(z, pi, rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT of the intervals of independent trials with known success probabilities.

    Interval ``i`` runs from the trial after success ``i - 1`` (the first from trial 0) to success
    ``i``. With ``S`` the probability, under the null, of no success in the interval's trials before
    the success and ``pi_s`` the probability of the success trial, ``u = (1 - S) + V S pi_s`` with
    ``V ~ U(0, 1)``: exactly U(0, 1) and independent when the trials are independent with success
    probabilities ``pi``. With a constant ``pi`` this is :func:`geometric_pit` (same draws). The
    log-survival is a cumulative sum, whose rounding error (about ``1e-16`` times the number of
    expected successes) is far below the resolution of a KS test.

    Args:
        z: 0/1 outcome of each trial, ``(N,)``.
        pi: success probability of each trial under the null, ``(N,)``, in [0, 1].
        rng: draws ``V``.

    Returns:
        ``u``, one per success (the censored stretch after the last success is dropped).
    """
    z = np.asarray(z)
    if z.ndim != 1 or (z.size and not np.all((z == 0) | (z == 1))):
        raise ValueError(f"z must be a 1-D array of 0/1 trial outcomes, got shape {z.shape}")
    pi = np.asarray(pi, dtype=float)
    if pi.shape != z.shape:
        raise ValueError(f"pi has shape {pi.shape} but z has shape {z.shape}; "
                         "give one probability per trial")
    if np.any(np.isnan(pi)) or np.any((pi < 0) | (pi > 1)):
        raise ValueError("pi must hold success probabilities in [0, 1]")
    rng = _check_rng(rng)
    idx = np.flatnonzero(z)
    # log of the probability of failure per trial; a certain success (pi = 1) is a finite -800
    # (survival e^-800 = 0 in float64) so that differences of the cumulative sum stay finite
    with np.errstate(divide="ignore"):
        logf = np.maximum(np.log1p(-pi), -800.0)
    L = np.concatenate([[0.0], np.cumsum(logf)])  # L[k] = log survival through trial k - 1
    start = np.concatenate([[0], idx[:-1] + 1])    # first trial of each interval
    d = L[idx] - L[start]                          # log S before the success trial
    # clipped: rounding can put 1 - S + S pi_s one ulp above 1
    return np.clip(-np.expm1(d) + rng.random(idx.shape[0]) * np.exp(d) * pi[idx], 0.0, 1.0)


@dataclass(frozen=True)
class Transformed:
    """A thinned or complemented discrete process.

    Attributes:
        z: spikes of the transformed process on the selected bins only, in order (bool).
        bins: indices of the selected bins.
        bound: ``p_B`` (thinning) or ``p_C`` (complementing).
        changed: bins where a spike was removed (thinning) or added (complementing).
    """

    z: np.ndarray
    bins: np.ndarray
    bound: float
    changed: np.ndarray

    def u(self, rng: np.random.Generator) -> np.ndarray:
        """Randomised PIT of the intervals of ``z`` (U(0, 1) under the true model)."""
        if self.bound <= 0:
            return np.empty(0)
        return geometric_pit(_event_intervals(self.z), self.bound, rng)


def thin_discrete(y, p, rng: np.random.Generator, q: float = Q_DEFAULT, bound: float | None = None) -> Transformed:
    """Thinning test ``T`` in discrete time, with the restricted-quantile bound.

    With ``p_B = quantile_q(p)`` only bins with ``p_k >= p_B`` are used; a spike in such a bin is kept
    with probability ``p_B / p_k``. Under the true model the kept spikes on the selected bins are
    i.i.d. Bernoulli(``p_B``). (A global ``p_B = min p`` is useless with refractoriness.)

    Args:
        y: binary spikes per bin, ``(K,)``.
        p: model spike probability per bin, ``(K,)``.
        rng: draws the keep decisions.
        q: quantile level of ``p_B`` in (0, 1).
        bound: a fixed ``p_B`` instead of the quantile (e.g. ``p.min()`` for the global version).

    Returns:
        A :class:`Transformed`.
    """
    y = _check_binary(y)
    p = _check_prob(p, y.shape[0])
    rng = _check_rng(rng)
    pB = float(np.quantile(p, _check_q(q))) if bound is None else float(bound)
    if not 0 <= pB <= 1:
        raise ValueError(f"bound must be a probability in [0, 1], got {pB}")
    sel = np.flatnonzero(p >= pB) if pB > 0 else np.empty(0, dtype=np.int64)
    ys, ps = y[sel], p[sel]
    keep = np.zeros(sel.shape[0], dtype=bool)
    spk = np.flatnonzero(ys)
    keep[spk] = rng.random(spk.shape[0]) * ps[spk] < pB
    return Transformed(z=keep, bins=sel, bound=pB, changed=sel[spk[~keep[spk]]])


def complement_discrete(y, p, rng: np.random.Generator, q: float = Q_DEFAULT,
                        bound: float | None = None) -> Transformed:
    """Complementing test ``C`` in discrete time, with the restricted-quantile bound.

    With ``p_C = quantile_q(p)`` only bins with ``p_k <= p_C`` are used; in such a bin without a spike,
    one is added with probability ``(p_C - p_k) / (1 - p_k)``. Under the true model every selected bin
    then holds a spike with probability ``p_C``, i.i.d. Added spikes never feed back into ``p``.

    Args:
        y: binary spikes per bin, ``(K,)``.
        p: model spike probability per bin, ``(K,)``.
        rng: draws the added spikes.
        q: quantile level of ``p_C`` in (0, 1).
        bound: a fixed ``p_C`` instead of the quantile (e.g. ``p.max()`` for the global version).

    Returns:
        A :class:`Transformed`.
    """
    y = _check_binary(y)
    p = _check_prob(p, y.shape[0])
    rng = _check_rng(rng)
    pC = float(np.quantile(p, _check_q(q))) if bound is None else float(bound)
    if not 0 <= pC <= 1:
        raise ValueError(f"bound must be a probability in [0, 1], got {pC}")
    sel = np.flatnonzero(p <= pC)
    ys, ps = y[sel], p[sel]
    empty = np.flatnonzero(~ys)
    pe = ps[empty]
    with np.errstate(divide="ignore", invalid="ignore"):
        add_prob = np.where(pe < 1, (pC - pe) / (1 - pe), 1.0)
    added = rng.random(empty.shape[0]) < add_prob
    z = ys.copy()
    z[empty[added]] = True
    return Transformed(z=z, bins=sel, bound=pC, changed=sel[empty[added]])


# ----------------------------------------------------------------------------------------------
# Thinning and complementing in continuous time (simple versions)
# ----------------------------------------------------------------------------------------------


def _grid_extreme(intensity, duration: float, grid_dt: float, points: np.ndarray, lowest: bool,
                  name: str = "intensity") -> tuple[float, float]:
    """The smallest (or largest) value of ``intensity`` on a grid of ``[0, duration]`` and at ``points``.

    The grid has steps of at most ``grid_dt``; it is evaluated in chunks of a million points.

    Returns:
        ``(value, where)``: the extreme value and the time at which it was found.
    """
    grid_dt = _check_positive(grid_dt, "grid_dt", "the step of the bound check (s)")
    n = int(np.ceil(duration / grid_dt)) + 1
    best, where = (np.inf, np.nan) if lowest else (-np.inf, np.nan)
    chunks = [points] + [np.linspace(0.0, duration, n)[i:i + 1_000_000] for i in range(0, n, 1_000_000)]
    for c in chunks:
        if c.size == 0:
            continue
        lam = _eval_intensity(intensity, c, name=name)
        j = int(np.argmin(lam) if lowest else np.argmax(lam))
        if (lam[j] < best) if lowest else (lam[j] > best):
            best, where = float(lam[j]), float(c[j])
    return best, where


def thin_continuous(spike_times, intensity, bound: float, rng: np.random.Generator,
                    duration: float | None = None, grid_dt: float = BOUND_GRID_S) -> np.ndarray:
    """Thin a continuous-time point process to a homogeneous Poisson process of rate ``bound``.

    Spike ``t_i`` is kept with probability ``B / lambda(t_i | H)``; the kept spikes are Poisson(B)
    when ``B <= lambda(t | H_t)`` at *every* time, not only at the spikes (a refractory dip after
    each spike, where no spike ever falls, makes the kept process non-Poisson). The bound is
    therefore checked at the spikes and on a grid of step ``grid_dt`` over ``[0, duration]``.

    Args:
        spike_times: sorted, non-negative spike times (s).
        intensity: vectorised callable ``lambda(t | H_t)`` (Hz) given the spikes; values at the
            spikes alone cannot show that the bound holds, so an array is refused.
        bound: ``B`` (Hz), at most the intensity everywhere.
        rng: draws the keep decisions.
        duration: length of the observation (s); defaults to the last spike time.
        grid_dt: step (s) of the grid of the bound check (:data:`BOUND_GRID_S`).

    Returns:
        The kept spike times (test them with :func:`homogeneous_u` at rate ``bound``).
    """
    t = _check_spike_times(spike_times, duration)
    if not callable(intensity):
        raise ValueError("thinning needs B <= lambda(t | H_t) at every time, which values at the spikes "
                         "cannot show: pass the intensity as a vectorised callable of t")
    rng = _check_rng(rng)
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"bound B must be a finite positive rate (Hz), got {bound}")
    if duration is None:
        if t.size == 0:
            raise ValueError("without spikes, give the duration of the observation")
        duration = float(t[-1])
    elif not (np.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite non-negative length (s), got {duration}")
    low, where = _grid_extreme(intensity, duration, grid_dt, t, lowest=True)
    if low < bound:
        raise ValueError(f"thinning needs B <= lambda everywhere; lambda({where:.6g} s) = {low:.4g} < "
                         f"B = {bound}")
    lam = _eval_intensity(intensity, t)
    return t[rng.random(t.shape[0]) * lam < bound]


def complement_continuous(spike_times, intensity: Callable[[np.ndarray], np.ndarray], bound: float,
                          duration: float, rng: np.random.Generator,
                          grid_dt: float = BOUND_GRID_S) -> tuple[np.ndarray, np.ndarray]:
    """Complement a continuous-time point process to a homogeneous Poisson process of rate ``bound``.

    Adds points with intensity ``C - lambda(t | H_t)`` (by Lewis-Shedler thinning of a Poisson(C)
    process); ``lambda`` conditions on the original spikes only. The union is Poisson(C) when
    ``C >= lambda`` at every time: the bound is checked at the candidate points, at the spikes and
    on a grid of step ``grid_dt`` over ``[0, duration]``.

    Args:
        spike_times: sorted, non-negative spike times in ``[0, duration]`` (s).
        intensity: vectorised callable ``lambda(t | H_t)`` (Hz) given the original spikes.
        bound: ``C`` (Hz), at least the intensity.
        duration: observation length (s).
        rng: draws the added points.
        grid_dt: step (s) of the grid of the bound check (:data:`BOUND_GRID_S`).

    Returns:
        ``(union, added)``: sorted spike times of the complemented process, and the added ones.
    """
    duration = _check_positive(duration, "duration", "the observation length (s)")
    t = _check_spike_times(spike_times, duration)
    rng = _check_rng(rng)
    if not callable(intensity):
        raise ValueError("complementing needs the intensity as a vectorised callable of t")
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"bound C must be a finite positive rate (Hz), got {bound}")
    cand = np.sort(rng.uniform(0.0, duration, rng.poisson(bound * duration)))
    high, where = _grid_extreme(intensity, duration, grid_dt, np.concatenate([cand, t]), lowest=False)
    if high > bound:
        raise ValueError(f"complementing needs C >= lambda everywhere; lambda({where:.6g} s) = {high:.4g} > "
                         f"C = {bound}")
    lam = _eval_intensity(intensity, cand)
    added = cand[rng.random(cand.shape[0]) * bound < bound - lam]
    return np.sort(np.concatenate([t, added])), added


def simulate_inhomogeneous_poisson(rate: Callable[[np.ndarray], np.ndarray], rate_max: float, duration: float,
                                   rng: np.random.Generator, grid_dt: float = BOUND_GRID_S) -> np.ndarray:
    """Inhomogeneous Poisson process on ``[0, duration]`` by Lewis-Shedler thinning.

    The bound ``rate <= rate_max`` is checked at the candidate points and on a grid of step
    ``grid_dt``.

    Args:
        rate: vectorised callable ``lambda(t)`` (Hz), at most ``rate_max``.
        rate_max: an upper bound of the rate (Hz).
        duration: length (s).
        rng: the random generator.
        grid_dt: step (s) of the grid of the bound check (:data:`BOUND_GRID_S`).

    Returns:
        Sorted spike times (s).
    """
    duration = _check_positive(duration, "duration", "the length of the process (s)")
    rate_max = _check_positive(rate_max, "rate_max", "an upper bound of the rate (Hz)")
    rng = _check_rng(rng)
    if not callable(rate):
        raise ValueError("rate must be a vectorised callable of t")
    cand = np.sort(rng.uniform(0.0, duration, rng.poisson(rate_max * duration)))
    high, where = _grid_extreme(rate, duration, grid_dt, cand, lowest=False, name="rate")
    if high > rate_max:
        raise ValueError(f"rate exceeds rate_max = {rate_max}: rate({where:.6g} s) = {high:.4g}")
    lam = _eval_intensity(rate, cand, name="rate")
    return cand[rng.random(cand.shape[0]) * rate_max < lam]


# ----------------------------------------------------------------------------------------------
# Kolmogorov-Smirnov machinery
# ----------------------------------------------------------------------------------------------


def _check_unit(u, what: str = "u") -> np.ndarray:
    u = np.asarray(u, dtype=float)
    if u.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of values in [0, 1], got shape {u.shape}")
    if u.size == 0:
        raise ValueError(f"{what} must hold at least one value; a test whose process has no event "
                         "cannot be KS-tested (run_tests gives it the model's probability of no event)")
    if np.any(np.isnan(u)):
        raise ValueError(f"{what} contains NaN; expected values in [0, 1]")
    if np.any((u < 0) | (u > 1)):
        raise ValueError(f"{what} must lie in [0, 1] (values to test against U(0, 1)), "
                         f"got values in [{u.min():.4g}, {u.max():.4g}]")
    return u


def ks_test(u) -> tuple[float, float]:
    """KS test of ``u`` against U(0, 1) (``scipy.stats.kstest``).

    Args:
        u: values that should be uniform: a non-empty 1-D array in [0, 1] (a ``ValueError``
            otherwise: a value outside [0, 1] is a bug upstream, not evidence against a model).

    Returns:
        ``(D, pvalue)``.
    """
    u = _check_unit(u)
    r = stats.kstest(u, "uniform")
    return float(r.statistic), float(r.pvalue)


def ks_critical(n: int, alpha: float = ALPHA) -> float:
    """Exact finite-n critical value of the KS statistic (``scipy.stats.kstwo``).

    Args:
        n: number of values (>= 1).
        alpha: significance level.

    Returns:
        ``d`` with ``P(D_n > d) = alpha`` under the null (0.134 at n = 100, alpha = 0.05).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(stats.kstwo.ppf(1 - alpha, n))


@dataclass(frozen=True)
class KSBand:
    """The data of a KS plot: sorted ``u`` against model quantiles, with a confidence band.

    Attributes:
        model: model quantiles ``(i - 1/2) / n``.
        empirical: sorted ``u``.
        halfwidth: half-width of the band around ``model``: the KS critical value ``d`` (exact
            ``kstwo`` or asymptotic ``1.36 / sqrt(n)``) minus ``1 / (2n)``. Since
            ``D_n = max_i |u_(i) - (i - 1/2) / n| + 1 / (2n)``, the curve leaves the band exactly
            when the KS test rejects.
    """

    model: np.ndarray
    empirical: np.ndarray
    halfwidth: float


def ks_band(u, alpha: float = ALPHA, exact: bool = True) -> KSBand:
    """KS-plot data for ``u`` (Brown et al. 2002).

    The band is drawn around the model quantiles ``(i - 1/2) / n``, so its half-width is the
    critical value less ``1 / (2n)`` (see :class:`KSBand`); the customary ``1.36 / sqrt(n)`` band
    around that curve is ``1 / (2n)`` too wide.

    Args:
        u: rescaled values.
        alpha: level of the band.
        exact: use the finite-n critical value (else the asymptotic ``kstwobign``).

    Returns:
        A :class:`KSBand`.
    """
    u = np.sort(_check_unit(u, "a KS plot's values"))
    n = u.size
    d = ks_critical(n, alpha) if exact else float(stats.kstwobign.ppf(1 - alpha) / np.sqrt(n))
    return KSBand(model=(np.arange(1, n + 1) - 0.5) / n, empirical=u, halfwidth=d - 0.5 / n)


# ----------------------------------------------------------------------------------------------
# Running the tests
# ----------------------------------------------------------------------------------------------


def _check_tests(tests: Iterable[str]) -> tuple[str, ...]:
    tests = tuple(tests)
    bad = [t for t in tests if t not in TESTS]
    if bad or not tests:
        raise ValueError(f"unknown test name(s) {bad}; expected a non-empty selection of {', '.join(TESTS)}")
    return tests


def test_u(name: str, y, p, rng: np.random.Generator, q: float = Q_DEFAULT) -> np.ndarray:
    """The values ``u`` of one test, U(0, 1) under the true model (except for ``"R0"``).

    Args:
        name: ``"R0"``, ``"R"``, ``"T"`` or ``"C"``.
        y: binary spikes per bin.
        p: model spike probability per bin.
        rng: the random generator of the randomised tests.
        q: quantile level of the thinning / complementing bounds.

    Returns:
        ``u`` (one value per spike or per interval of the transformed process).
    """
    (name,) = _check_tests([name])
    if name == "R0":
        return rescale_naive(y, p)
    if name == "R":
        return rescale_surrogate(y, p, rng)
    if name == "T":
        return thin_discrete(y, p, rng, q).u(rng)
    return complement_discrete(y, p, rng, q).u(rng)


test_u.__test__ = False  # not a pytest test


def no_event_probability(name: str, p, q: float = Q_DEFAULT) -> float:
    """The model's probability that the process of test ``name`` has no event at all.

    ``R``: ``prod_k (1 - p_k)``, the probability of a spike-free train. ``R0``: ``exp(-sum_k p_k)``,
    the naive test's own compensator. ``T`` / ``C``: ``(1 - b)^m`` with ``b`` the bound and ``m`` the
    number of selected bins (the transformed process is Bernoulli(``b``) on them). This is the
    exact one-sided p-value of "no event" under the model, which :func:`run_tests` reports when the
    KS test has nothing to test.

    Args:
        name: ``"R0"``, ``"R"``, ``"T"`` or ``"C"``.
        p: model spike probability per bin, ``(K,)``.
        q: quantile level of the thinning / complementing bounds.

    Returns:
        A probability in [0, 1].
    """
    (name,) = _check_tests([name])
    p = np.asarray(p, dtype=float)
    p = _check_prob(p, p.shape[0] if p.ndim else 0)
    if name == "R0":
        return float(np.exp(-p.sum()))
    if name == "R":
        with np.errstate(divide="ignore"):
            return float(np.exp(np.log1p(-p).sum()))
    b = float(np.quantile(p, _check_q(q)))
    if name == "T":
        m = int(np.sum(p >= b)) if b > 0 else 0
    else:
        m = int(np.sum(p <= b))
    with np.errstate(divide="ignore"):
        return float(np.exp(m * np.log1p(-b))) if m else 1.0


def run_tests(y, p, rng: np.random.Generator, tests: Iterable[str] = tuple(TESTS), q: float = Q_DEFAULT) -> dict:
    """Apply goodness-of-fit tests to one binned spike train.

    Args:
        y: binary spikes per bin, ``(K,)``, at least one bin.
        p: model spike probability per bin, ``(K,)``.
        rng: the random generator of the randomised tests (used in the order of ``tests``).
        tests: names from :data:`TESTS`.
        q: quantile level of the thinning / complementing bounds.

    Returns:
        ``{name: p-value}``: the KS p-value of the test's values ``u``; where the test's process
        has no event (a spike-free train, say), the model's probability of that
        (:func:`no_event_probability`), so that a spike-free train is rejected against a model
        that expects spikes and never counts as a pass by default.
    """
    tests = _check_tests(tests)
    y = _check_binary(y)
    p = _check_prob(p, y.shape[0])
    _check_q(q)
    out = {}
    for t in tests:
        u = test_u(t, y, p, rng, q)
        out[t] = ks_test(u)[1] if u.size else no_event_probability(t, p, q)
    return out


def pvalue_matrix(y, p, rng: np.random.Generator, tests: Iterable[str] = tuple(TESTS), q: float = Q_DEFAULT,
                  progress: Callable | None = None) -> np.ndarray:
    """KS p-values of several tests on many repetitions.

    Each repetition gets its own child generator (``rng.spawn``), so a repetition's result does not
    depend on the others or on their order.

    Args:
        y: binary spikes, ``(n_reps, K)``.
        p: model probabilities, ``(n_reps, K)``.
        rng: the parent random generator.
        tests: names from :data:`TESTS`.
        q: quantile level of the thinning / complementing bounds.
        progress: optional wrapper of an iterable (e.g. ``lib.progress.bar``).

    Returns:
        Array ``(n_reps, len(tests))``.
    """
    tests = _check_tests(tests)
    y, p = _check_runs(y, p)
    rngs = _check_rng(rng).spawn(y.shape[0])
    it = range(y.shape[0]) if progress is None else progress(range(y.shape[0]))
    out = np.empty((y.shape[0], len(tests)))
    for r in it:
        res = run_tests(y[r], p[r], rngs[r], tests, q)
        out[r] = [res[t] for t in tests]
    return out


def rejection_matrix(y, p, rng: np.random.Generator, tests: Iterable[str] = tuple(TESTS), alpha: float = ALPHA,
                     q: float = Q_DEFAULT, progress: Callable | None = None) -> np.ndarray:
    """Whether each test rejects each repetition at level ``alpha``.

    Args:
        y, p, rng, tests, q, progress: as in :func:`pvalue_matrix`.
        alpha: significance level.

    Returns:
        Boolean array ``(n_reps, len(tests))``; a test without events rejects when the model's
        probability of no event is below ``alpha`` (see :func:`run_tests`).
    """
    return pvalue_matrix(y, p, rng, tests, q, progress) < alpha


def _check_runs(y, p) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y), np.asarray(p)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"y and p must be 2-D arrays of the same shape (n_reps, K), got {y.shape} and {p.shape}")
    if y.shape[0] < 1 or y.shape[1] < 1:
        raise ValueError(f"y and p must hold at least one run and one bin, got shape {y.shape}")
    return y, p


def pooled_values(name: str, y, p, rng: np.random.Generator, q: float = Q_DEFAULT) -> np.ndarray:
    """The values ``u`` of one test on many independent runs, joined into one process.

    ``R0`` and ``R``: the test of the runs concatenated into one train. The runs are independent,
    so each run's ``p`` is also the conditional probability given the runs before it, and the
    censored end of one run with the start of the next forms one complete interval. ``T`` and
    ``C``: each run is thinned (complemented) with its own bound, exactly as in :func:`run_tests`;
    the transformed runs are joined into one sequence of independent trials whose success
    probability is their run's bound, and :func:`bernoulli_pit` gives ``u``.

    Under the true model the values are U(0, 1), with only the stretch after the last event of
    all runs censored (pooling the per-run values instead would drop one interval per run and bias
    the pooled distribution by up to ``1 / (e m)`` for ``m`` events per run). A test whose size is
    off because its values are biased shows it here with the data of all runs at once.

    Args:
        name: ``"R0"``, ``"R"``, ``"T"`` or ``"C"``.
        y: binary spikes, ``(n_reps, K)``.
        p: model probabilities, ``(n_reps, K)``.
        rng: the random generator.
        q: quantile level of the thinning / complementing bounds.

    Returns:
        ``u`` of all runs (test them with :func:`ks_test`).
    """
    (name,) = _check_tests([name])
    y, p = _check_runs(y, p)
    rng = _check_rng(rng)
    if name in ("R0", "R"):
        return test_u(name, y.ravel(), p.ravel(), rng, q)
    transform = thin_discrete if name == "T" else complement_discrete
    parts = [transform(y[r], p[r], rng, q) for r in range(y.shape[0])]
    z = np.concatenate([tr.z for tr in parts])
    pi = np.concatenate([np.full(tr.z.shape[0], tr.bound) for tr in parts])
    return bernoulli_pit(z, pi, rng)


@dataclass(frozen=True)
class SizeCheck:
    """Evidence that a test has its nominal size, from its p-values on runs of the true model.

    Attributes:
        n_runs: number of runs.
        rejections: runs rejected at ``alpha``.
        binomial_p: exact two-sided binomial p-value of ``rejections`` against ``alpha``
            (:func:`size_pvalue`); it cannot catch a test that never rejects from 100 runs
            (0 of 100 has ``binomial_p`` = 0.0102) nor one of true size 8 %.
        n_pooled: number of pooled values.
        pooled_p: KS p-value of the pooled values of all runs (:func:`pooled_values`).
        uniform_p: KS p-value of the per-run p-values against U(0, 1) (a test that never rejects,
            whose p-values avoid small values, fails it).
    """

    n_runs: int
    rejections: int
    binomial_p: float
    n_pooled: int
    pooled_p: float
    uniform_p: float

    @property
    def uniformity_p(self) -> float:
        """The smaller of ``pooled_p`` and ``uniform_p``, Bonferroni-adjusted for the two checks."""
        return min(1.0, 2 * min(self.pooled_p, self.uniform_p))

    def passes(self, level: float = 0.01) -> bool:
        """Whether the count and the two uniformity checks are all consistent with an exact test."""
        return self.binomial_p > level and self.uniformity_p > level


def size_check(pvalues, pooled_u, alpha: float = ALPHA) -> SizeCheck:
    """Check the size of a test from its per-run p-values and its pooled values.

    Args:
        pvalues: the test's p-values on runs of the true model, ``(n_runs,)``.
        pooled_u: the test's values on all runs joined (:func:`pooled_values`).
        alpha: the nominal size.

    Returns:
        A :class:`SizeCheck`.
    """
    pv = np.asarray(pvalues, dtype=float)
    if pv.ndim != 1 or pv.size == 0:
        raise ValueError(f"pvalues must be a 1-D array with at least one p-value, got shape {pv.shape}")
    if np.any(np.isnan(pv)):
        raise ValueError("pvalues contain NaN: a run without a p-value is neither a pass nor a failure")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    u = _check_unit(pooled_u, "pooled_u")
    k = int(np.sum(pv < alpha))
    return SizeCheck(n_runs=int(pv.size), rejections=k, binomial_p=size_pvalue(k, pv.size, alpha),
                     n_pooled=int(u.size), pooled_p=ks_test(u)[1], uniform_p=ks_test(_check_unit(pv, "pvalues"))[1])


def paired_pvalue(a, b) -> float:
    """One-sided exact McNemar p-value that test ``a`` rejects more often than test ``b``.

    Both tests were applied to the same runs; only the runs where they disagree carry information:
    with ``n_a`` runs rejected by ``a`` alone and ``n_b`` by ``b`` alone, the p-value is
    ``P(X >= n_a)`` for ``X ~ Binomial(n_a + n_b, 1/2)`` (1 when they never disagree).

    Args:
        a, b: boolean rejections of the two tests on the same runs, same shape.

    Returns:
        The p-value.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"a and b must be non-empty boolean arrays of the same shape, got {a.shape} and {b.shape}")
    a, b = a.astype(bool), b.astype(bool)
    na, nb = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if na + nb == 0:
        return 1.0
    return float(stats.binom.sf(na - 1, na + nb, 0.5))


def acceptance_region(n: int, p0: float = ALPHA, level: float = 0.99) -> tuple[int, int]:
    """Numbers of rejections out of ``n`` consistent with a true rejection rate ``p0``.

    The region is the set of ``k`` whose exact two-sided binomial test (``scipy.stats.binomtest``)
    has a p-value above ``1 - level``: ``[0, 11]`` of 100 and ``[3, 18]`` of 200 at 5 %, 99 %.

    Args:
        n: number of repetitions.
        p0: nominal size.
        level: confidence level of the region.

    Returns:
        ``(lo, hi)``, inclusive.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = np.arange(n + 1)
    inside = np.array([stats.binomtest(int(k), n, p0).pvalue > 1 - level for k in ks])
    return int(ks[inside].min()), int(ks[inside].max())


def size_pvalue(k: int, n: int, p0: float = ALPHA) -> float:
    """Two-sided exact binomial p-value of ``k`` rejections out of ``n`` against the nominal size ``p0``."""
    return float(stats.binomtest(int(k), int(n), p0).pvalue)


# ----------------------------------------------------------------------------------------------
# GLM fitting (statsmodels)
# ----------------------------------------------------------------------------------------------


def lagged_design(y, n_lags: int) -> np.ndarray:
    """Spike-history design matrix: column ``j`` is ``y`` delayed by ``j + 1`` bins (zeros before 0).

    Args:
        y: spikes per bin, ``(K,)``.
        n_lags: number of lags.

    Returns:
        Array ``(K, n_lags)``.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if n_lags < 0:
        raise ValueError(f"n_lags must be >= 0, got {n_lags}")
    X = np.zeros((y.shape[0], n_lags))
    for j in range(n_lags):
        X[j + 1:, j] = y[: y.shape[0] - j - 1]
    return X


def _design(covariates, y, n_lags: int) -> np.ndarray:
    c = np.asarray(covariates, dtype=float)
    c = c[:, None] if c.ndim == 1 else c
    if c.shape[0] != np.shape(y)[0]:
        raise ValueError(f"covariates have {c.shape[0]} rows but y has {np.shape(y)[0]} bins")
    return np.column_stack([np.ones(c.shape[0]), c, lagged_design(y, n_lags)])


@dataclass(frozen=True)
class GLMFit:
    """A fitted Bernoulli-logistic GLM: ``params = [intercept, covariate weights..., history weights...]``."""

    params: np.ndarray
    n_lags: int


def fit_bernoulli_glm(y, covariates, n_lags: int = 0) -> GLMFit:
    """Fit a logistic GLM with statsmodels (Binomial family, logit link).

    The first ``n_lags`` bins, whose history is incomplete, are left out of the fit.

    Args:
        y: binary spikes per bin, ``(K,)``.
        covariates: stimulus covariates, ``(K,)`` or ``(K, m)``.
        n_lags: number of spike-history lags (bins).

    Returns:
        A :class:`GLMFit`.
    """
    import statsmodels.api as sm

    y = _check_binary(y).astype(float)
    if n_lags >= y.shape[0]:
        raise ValueError(f"n_lags ({n_lags}) must be smaller than the number of bins ({y.shape[0]})")
    X = _design(covariates, y, n_lags)
    res = sm.GLM(y[n_lags:], X[n_lags:], family=sm.families.Binomial()).fit()
    return GLMFit(params=np.asarray(res.params), n_lags=n_lags)


def glm_predict(fit: GLMFit, covariates, y) -> np.ndarray:
    """Spike probability per bin of a fitted GLM on (new) data ``y`` with ``covariates``.

    Args:
        fit: from :func:`fit_bernoulli_glm`.
        covariates: ``(K,)`` or ``(K, m)``.
        y: spikes per bin (for the history terms), ``(K,)``.

    Returns:
        ``p``, ``(K,)``.
    """
    X = _design(covariates, y, fit.n_lags)
    if X.shape[1] != fit.params.shape[0]:
        raise ValueError(f"design has {X.shape[1]} columns but the fit has {fit.params.shape[0]} parameters")
    return special.expit(X @ fit.params)
