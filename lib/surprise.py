"""Surprise measures in one probabilistic framework.

After A. Modirshanechi, J. Brea and W. Gerstner, "A taxonomy of surprise definitions",
*Journal of Mathematical Psychology* 110:102712 (2022). Explained in the chapter
``surprise-taxonomy`` (``theory.md`` for the definitions and propositions, ``reproduce.md`` for the
comparison figures and the claims).

The world: a hidden parameter :math:`\\Theta_t` that, at every step and with probability ``p_c``
(the volatility), is redrawn from the prior :math:`\\pi^{(0)}`; otherwise it stays. Observations
:math:`y_t \\sim P(\\cdot \\mid \\Theta_t)`. The agent holds the exact Bayesian belief
:math:`\\pi^{(t)}` and, before the next observation, the change-aware prior
:math:`\\hat\\pi^{(t)} = (1 - p_c)\\,\\pi^{(t)} + p_c\\,\\pi^{(0)}`.

Three observation models ("models"), each with its own kind of belief:

- :class:`GridModel` -- Gaussian observations :math:`y \\sim N(\\theta, \\sigma^2)`, the belief is a
  vector of probability masses on a uniform :math:`\\theta`-grid. The volatile update is exact for
  the discretised world; against the continuous one its error is bounded by
  :meth:`GridModel.discretisation_error` (spacing) and :meth:`GridModel.truncation_error` (the
  grid's edges), and :func:`run_length_filter` (the exact run-length mixture, closed form for the
  probabilistic-mismatch measures) measures it.
- :class:`NormalModel` -- the same observations with a conjugate Gaussian belief
  :math:`N(m, v)` (closed forms; belief-mismatch measures need ``p_c = 0``).
- :class:`DirichletModel` -- a categorical observation out of ``K`` outcomes, the belief is a
  (mixture of) Dirichlet distribution(s) over the outcome probabilities. The volatile belief is a
  run-length mixture; KL-based measures between beliefs need a single Dirichlet.

Every surprise measure is a function ``f(model, before, y, after, prior, p_c, *, variant=...)`` of
the belief before the observation (:math:`\\pi^{(t)}`), the observation, the belief after it
(:math:`\\pi^{(t+1)}`), the prior :math:`\\pi^{(0)}` and the volatility, vectorised over a leading
batch (trial) axis. :data:`MEASURES` is the table of the 18 definitions (name, symbol, technical
group, conceptual category, formula); :func:`measure_table` renders it.

Caveat, stated in the chapter too: the split of the ten measures into the paper's 18 definitions
("1"/"2" variants) is our reconstruction, not read in the paper. We take variant 1 to use the
belief :math:`\\pi^{(t)}` and variant 2 the change-aware prior :math:`\\hat\\pi^{(t)}`: one
substitution, :math:`\\pi^{(t)} \\to \\hat\\pi^{(t)}`, wherever the belief before the observation
appears; the belief after it, :math:`\\pi^{(t+1)}`, is the exact volatile posterior in both. The
KL direction of the Bayesian and postdictive surprises is a separate switch (``direction``), and
so is the other reading of postdictive surprise 2 (``reading="prediction"``, see
:func:`postdictive`).

The chapter's presets and its loops over tasks are its protocol,
:mod:`lib.protocols.surprise_taxonomy`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import special, stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

__all__ = [
    "SIGMA_OBS", "P_CHANGE", "MU0", "SIGMA0", "THETA_MAX", "N_OUTCOMES", "CONCENTRATION",
    "GROUPS", "CATEGORIES", "VARIANTS", "DIRECTIONS",
    "EDGE_TOL", "GridModel", "NormalModel", "NormalBelief", "DirichletModel", "DirichletBelief",
    "shannon", "bayes_factor", "state_prediction_error", "absolute_error", "squared_error",
    "unsigned_rpe", "bayesian", "postdictive", "confidence_corrected", "free_energy",
    "change_probability", "update", "update_liakoni", "POSTDICTIVE_AFTER",
    "Measure", "MEASURES", "MEASURE_NAMES", "measure_table", "table_markdown", "applicable", "compute_all",
    "TaskData", "simulate_gaussian", "simulate_categorical", "Run", "run", "run_naive", "conjugate_beliefs",
    "RunLengthFilter", "run_length_filter", "longest_run", "order_violations",
    "error_sweep", "is_strictly_increasing", "rank_correlation", "cluster_order",
    "detection_auc", "VARIANT_PAIRS", "task_summary", "MatchedSplit", "bf_vs_shannon",
]

# ---------------------------------------------------------------------------------------------
# Named constants of the reference tasks (same-lab Gaussian and categorical change-point tasks)
# ---------------------------------------------------------------------------------------------

#: Observation noise of the Gaussian task (units of y).
SIGMA_OBS = 0.5
#: Probability of a change point per step (volatility), dimensionless.
P_CHANGE = 0.05
#: Mean and standard deviation of the prior over the Gaussian mean (units of y).
MU0, SIGMA0 = 0.0, 1.0
#: Half-width of the theta-grid (units of y): 8 prior standard deviations, so that the grid cuts
#: 2 Phi(-8) = 1.2e-15 of the prior (float64 rounding); at 6 it cut 2e-9, which reached gamma
#: at 5e-10.
THETA_MAX = 8.0
#: Number of outcomes of the categorical task.
N_OUTCOMES = 10
#: Concentration of the symmetric Dirichlet prior over outcome probabilities ("stochasticity").
CONCENTRATION = 0.1
#: Floor of every argument of a logarithm (pitfall: log 0).
LOG_FLOOR = 1e-300
#: Tolerance on "sums to one" of a belief.
SUM_TOL = 1e-8
#: Largest mass the posterior of the prior may put on an outermost grid point: beyond it an
#: observation lies too close to the grid's edge and the grid would truncate its posterior.
EDGE_TOL = 1e-12

GROUPS = ("probabilistic mismatch", "observation mismatch", "belief mismatch")
CATEGORIES = ("prediction", "change-point detection", "confidence-corrected", "information gain")
#: Which belief a measure treats as the prior of the step.
VARIANTS = ("belief", "changeaware")
#: KL direction of belief-mismatch measures.
DIRECTIONS = ("post||prior", "prior||post")


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _check_p_c(p_c) -> float:
    try:
        x = float(p_c)
    except (TypeError, ValueError) as err:
        raise ValueError(f"p_c must be a number in [0, 1), got {p_c!r}") from err
    if not (0.0 <= x < 1.0):
        raise ValueError(f"p_c must be in [0, 1) (a change probability; 1 would make learning impossible), got {p_c!r}")
    return x


def _check_choice(value, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(map(repr, allowed))}")
    return value


def _check_prob_array(a, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be finite")
    if np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"{what} are probabilities and must lie in [0, 1]; "
                         f"got values in [{a.min():.3g}, {a.max():.3g}]")
    return a


def _log(x):
    return np.log(np.maximum(x, LOG_FLOOR))


# A per-call memo used by compute_all: results of expensive array operations keyed by the ids of
# their inputs. The inputs are kept alive in the memo, so an id cannot be reused while it is active.
_MEMO: dict | None = None


def _memo(key: tuple, refs: tuple, fn: Callable):
    if _MEMO is None:
        return fn()
    k = key + tuple(id(r) for r in refs)
    if k not in _MEMO:
        _MEMO[k] = (fn(), refs)
    return _MEMO[k][0]


class _memoised:
    """Context in which repeated likelihoods, logs, mixtures and predictives are computed once."""

    def __enter__(self):
        global _MEMO
        self._outer = _MEMO
        if _MEMO is None:
            _MEMO = {}
        return self

    def __exit__(self, *exc):
        global _MEMO
        _MEMO = self._outer
        return False


def _batch(*shapes) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError as err:
        raise ValueError(f"batch shapes {', '.join(map(str, shapes))} of beliefs and observations "
                         "do not broadcast") from err


# ---------------------------------------------------------------------------------------------
# Gaussian observations, belief on a theta-grid
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GridModel:
    """Gaussian observations :math:`y \\sim N(\\theta, \\sigma^2)` and a belief on a uniform theta-grid.

    A belief is an array of probability masses of shape ``(..., n)`` (last axis: the grid). The
    predictive :math:`P(y; \\pi) = \\sum_i \\pi_i N(y; \\theta_i, \\sigma^2)` is a density in y.
    Entropies are differential entropies (``-sum p log p + log dtheta``), so that grid values
    approximate the continuous ones.

    Discretisation error. The exact belief is a mixture over run lengths r of Gaussians of width
    :math:`s_r = \\sigma / \\sqrt{r + \\sigma^2/\\sigma_0^2}`, and on the grid each component is
    that Gaussian sampled at the grid points (products of likelihoods are exact pointwise). By
    Poisson summation a sum over the grid of a Gaussian of width s has relative error
    :math:`\\le 2 e^{-2\\pi^2 s^2/h^2}` (h the spacing), so every predictive, weight and gamma is off
    by at most :meth:`discretisation_error` ``= 8 exp(-2 pi^2 s^2 / h^2)`` with s the width after the
    longest run length the belief holds; :meth:`adapted` chooses h from sigma to meet a
    tolerance. The grid's edges cut the prior's tails (:meth:`truncation_error`), and
    observations whose posterior would reach an edge are refused (:meth:`check_coverage`).

    Attributes:
        theta: the grid (units of y), uniform and increasing.
        sigma: observation noise (units of y).
        y_grid: uniform grid of y-values on which the postdictive KL between predictives is summed.
    """

    theta: np.ndarray
    sigma: float
    y_grid: np.ndarray
    discrete = False

    @classmethod
    def build(cls, sigma: float = SIGMA_OBS, n_theta: int = 801, theta_max: float = THETA_MAX,
              dy: float | None = None) -> "GridModel":
        """A grid model on ``[-theta_max, theta_max]`` with ``n_theta`` points.

        Args:
            sigma: observation noise (units of y), > 0.
            n_theta: number of grid points (>= 3).
            theta_max: half-width of the grid (units of y), > 0.
            dy: spacing of the y-grid of the postdictive surprise; default ``min(sigma / 5, 0.1)``.
                The y-grid covers ``theta_max + 6 sigma`` on both sides.

        Returns:
            The model.
        """
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        if int(n_theta) != n_theta or n_theta < 3:
            raise ValueError(f"n_theta must be an integer >= 3, got {n_theta!r}")
        if not (np.isfinite(theta_max) and theta_max > 0):
            raise ValueError(f"theta_max must be positive, got {theta_max!r}")
        dy = min(sigma / 5.0, 0.1) if dy is None else float(dy)
        if not dy > 0:
            raise ValueError(f"dy must be positive, got {dy!r}")
        theta = np.linspace(-theta_max, theta_max, int(n_theta))
        ymax = theta_max + 6.0 * sigma
        y_grid = np.linspace(-ymax, ymax, int(np.ceil(2 * ymax / dy)) + 1)
        model = cls(theta, float(sigma), y_grid)
        # Kernel of the predictive on the y-grid (masses per theta-point, each column sums to 1).
        k = stats.norm.pdf(y_grid[:, None], theta[None, :], sigma)
        object.__setattr__(model, "_kernel", np.ascontiguousarray((k / k.sum(0)).T))
        return model

    @classmethod
    def adapted(cls, sigma: float, run_length: int, tol: float = 1e-10, theta_max: float = THETA_MAX,
                sigma0: float = SIGMA0, dy: float | None = None, y=None) -> "GridModel":
        """A grid that adapts to sigma: spacing for :meth:`discretisation_error` below ``tol``, and
        a half-width that covers the observations ``y``.

        Args:
            sigma: observation noise (units of y), > 0.
            run_length: the longest run length (observations since a change) the belief will hold.
            tol: bound on the error of every log predictive (nats) and of gamma, in (0, 1).
            theta_max: the smallest half-width of the grid (units of y).
            sigma0: prior standard deviation of the mean (units of y; the prior mean is 0).
            dy: spacing of the y-grid (see :meth:`build`).
            y: observations to cover (optional): the half-width grows until the posterior of the
                prior given each of them lies 8 of its sds inside the edges (:meth:`check_coverage`).

        Returns:
            The model: spacing ``h = pi s sqrt(2 / log(8 / tol))``, ``s = sigma / sqrt(run_length + 1 +
            sigma^2 / sigma0^2)``, and an odd number of points.
        """
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        if int(run_length) != run_length or run_length < 0:
            raise ValueError(f"run_length must be a non-negative integer, got {run_length!r}")
        if not (0 < tol < 1):
            raise ValueError(f"tol must be in (0, 1), got {tol!r}")
        if not (np.isfinite(sigma0) and sigma0 > 0):
            raise ValueError(f"sigma0 must be positive, got {sigma0!r}")
        s = sigma / math.sqrt(run_length + 1 + (sigma / sigma0) ** 2)
        h = math.pi * s * math.sqrt(2.0 / math.log(8.0 / tol))
        if y is not None:
            y = np.asarray(y, float)
            if y.size and not np.all(np.isfinite(y)):
                raise ValueError("y must be finite")
            k0 = sigma0**2 / (sigma0**2 + sigma**2)
            reach = float(np.abs(y).max()) * k0 + 8.0 * math.sqrt(k0) * sigma if y.size else 0.0
            theta_max = max(float(theta_max), reach)
        n = 2 * int(math.ceil(theta_max / h)) + 1
        return cls.build(sigma, n, theta_max, dy)

    def discretisation_error(self, run_length: int, sigma0: float = SIGMA0) -> float:
        """Bound on the spacing error of any log predictive (nats) and of gamma.

        ``8 exp(-2 pi^2 s^2 / h^2)`` with ``s = sigma / sqrt(run_length + 1 + sigma^2 / sigma0^2)``, the
        width of the narrowest posterior a belief of this run length produces (class docstring).
        """
        if int(run_length) != run_length or run_length < 0:
            raise ValueError(f"run_length must be a non-negative integer, got {run_length!r}")
        s2 = self.sigma**2 / (run_length + 1 + (self.sigma / sigma0) ** 2)
        return 8.0 * math.exp(-2.0 * math.pi**2 * s2 / self.dtheta**2)

    def truncation_error(self, mu0: float = MU0, sigma0: float = SIGMA0) -> float:
        """Mass of the prior :math:`N(\\mu_0, \\sigma_0^2)` outside the grid (the relative error it causes)."""
        t = float(self.theta[-1])
        return float(stats.norm.sf((t - mu0) / sigma0) + stats.norm.cdf((-t - mu0) / sigma0))

    def check_coverage(self, prior, y) -> None:
        """Refuse observations whose posterior from the prior would reach the grid's edge.

        The posterior of the prior given ``y`` is the widest-reaching component of any belief
        (every component is a posterior of the prior). If it puts more than :data:`EDGE_TOL` of its
        mass on an outermost grid point, the grid truncates it and every measure that involves the
        prior is wrong (at sigma = 0.5 on +-6: 0.2 nats at y = 7, 12 nats at y = 10).

        Raises:
            ValueError: naming the observation and the grid's half-width.
        """
        y = np.asarray(y, float)
        if y.size == 0:
            return
        prior = np.asarray(prior, float)
        edge = np.stack([prior[..., 0], prior[..., -1]], -1)
        z = (y[..., None] - self.theta[[0, -1]]) * (1.0 / self.sigma)
        log_edge = _log(edge) - 0.5 * z * z - 0.5 * math.log(2 * math.pi * self.sigma**2)
        lp0 = self.log_predictive(prior, y)
        worst = (log_edge - lp0[..., None]).max(-1)
        k = int(np.argmax(worst))
        if worst.flat[k] > math.log(EDGE_TOL):
            raise ValueError(
                f"observation y = {y.flat[k]:.4g} lies too close to the edge of the theta-grid "
                f"[{self.theta[0]:g}, {self.theta[-1]:g}]: its posterior puts {math.exp(worst.flat[k]):.1e} "
                f"of its mass on the outermost grid point (tolerance {EDGE_TOL:g}), so the grid would "
                "truncate it; build the GridModel with a larger theta_max")

    @property
    def n(self) -> int:
        """Number of grid points."""
        return self.theta.size

    @property
    def dtheta(self) -> float:
        """Grid spacing (units of y)."""
        return float(self.theta[1] - self.theta[0])

    # -- beliefs -------------------------------------------------------------------------------
    def gaussian_belief(self, mean, sd) -> np.ndarray:
        """The discretised Gaussian :math:`N(\\text{mean}, \\text{sd}^2)` on the grid (masses, sum 1).

        Args:
            mean: mean(s), broadcastable (units of y).
            sd: standard deviation(s) > 0 (units of y).

        Returns:
            Array of shape ``broadcast(mean, sd).shape + (n,)``.
        """
        mean, sd = np.asarray(mean, float), np.asarray(sd, float)
        if np.any(~(sd > 0)):
            raise ValueError("sd must be positive")
        logp = -0.5 * ((self.theta - mean[..., None]) / sd[..., None]) ** 2
        p = np.exp(logp - logp.max(-1, keepdims=True))
        return p / p.sum(-1, keepdims=True)

    def prior(self, mu0: float = MU0, sigma0: float = SIGMA0) -> np.ndarray:
        """The prior :math:`\\pi^{(0)} = N(\\mu_0, \\sigma_0^2)` on the grid."""
        return self.gaussian_belief(mu0, sigma0)

    def check_belief(self, b, what: str = "belief") -> np.ndarray:
        b = np.asarray(b, dtype=float)
        if b.ndim < 1 or b.shape[-1] != self.n:
            raise ValueError(f"a {what} on this grid must have shape (..., {self.n}), got {b.shape}")
        b = _check_prob_array(b, f"{what} masses")
        dev = np.max(np.abs(b.sum(-1) - 1.0))
        if dev > SUM_TOL:
            raise ValueError(f"a {what} must sum to 1 over the grid; max deviation {dev:.3g}")
        return b

    def check_obs(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(y)):
            raise ValueError("observations must be finite numbers")
        return y

    @staticmethod
    def batch_shape(b) -> tuple[int, ...]:
        return np.shape(b)[:-1]

    # -- likelihood and predictive ---------------------------------------------------------------
    def log_likelihood(self, y) -> np.ndarray:
        """:math:`\\log N(y; \\theta_i, \\sigma^2)` for every grid point, shape ``y.shape + (n,)``."""
        def f():
            z = (np.asarray(y, float)[..., None] - self.theta) * (1.0 / self.sigma)
            return -0.5 * z * z - 0.5 * math.log(2 * math.pi * self.sigma**2)

        return _memo(("ll",), (y,), f)

    def _scaled_likelihood(self, y):
        """Likelihood divided by its maximum over the grid, and the log of that maximum."""
        def f():
            ll = self.log_likelihood(y)
            top = ll.max(-1)
            return np.exp(ll - top[..., None]), top

        return _memo(("sl",), (y,), f)

    @staticmethod
    def _logb(b):
        return _memo(("log",), (b,), lambda: _log(b))

    def log_predictive(self, b, y) -> np.ndarray:
        """:math:`\\log P(y; \\pi)`, the log predictive density of y (units: log 1/y)."""
        lik, top = self._scaled_likelihood(y)
        return _log(np.sum(b * lik, -1)) + top

    def predictive_mean(self, b) -> np.ndarray:
        """The point prediction :math:`\\hat y(\\pi) = E_\\pi[\\theta]`."""
        return b @ self.theta

    def predictive_var(self, b) -> np.ndarray:
        """Variance of the predictive: belief variance plus sigma^2."""
        m = b @ self.theta
        return b @ self.theta**2 - m**2 + self.sigma**2

    def obs_vector(self, y) -> np.ndarray:
        return np.asarray(y, float)

    def reward(self, y) -> np.ndarray:
        """In the Gaussian task the observation itself is the reward."""
        return np.asarray(y, float)

    def expected_reward(self, b) -> np.ndarray:
        return self.predictive_mean(b)

    # -- belief algebra -------------------------------------------------------------------------
    @staticmethod
    def mix(b, b2, w) -> np.ndarray:
        """The mixture :math:`(1 - w)\\, b + w\\, b_2` (w scalar or per trial)."""
        def f():
            wa = np.asarray(w, float)[..., None]
            return (1.0 - wa) * b + wa * b2

        return _memo(("mix", float(w) if np.ndim(w) == 0 else None), (b, b2) + (() if np.ndim(w) == 0 else (w,)), f)

    def posterior(self, b, y) -> np.ndarray:
        """Bayes' rule from belief ``b`` (no change): :math:`\\propto P(y \\mid \\theta)\\, b`."""
        def f():
            u = b * self._scaled_likelihood(y)[0]
            return u / u.sum(-1, keepdims=True)

        return _memo(("post",), (b, y), f)

    def update(self, before, y, prior, p_c):
        """Exact volatile update; returns ``(after, gamma)`` with gamma = P(change | y)."""
        lik, _ = self._scaled_likelihood(y)
        u0 = (1.0 - p_c) * before * lik
        u1 = p_c * prior * lik
        z0, z1 = u0.sum(-1), u1.sum(-1)
        z = z0 + z1
        return (u0 + u1) / z[..., None], z1 / z

    def kl(self, p, q) -> np.ndarray:
        """:math:`D_{KL}[p \\Vert q]` between grid beliefs (nats)."""
        return np.sum(p * (self._logb(p) - self._logb(q)), -1)

    def entropy(self, b) -> np.ndarray:
        """Differential entropy of a grid belief (nats)."""
        return -np.sum(b * self._logb(b), -1) + math.log(self.dtheta)

    def flat_posterior(self, y) -> np.ndarray:
        """The normalised likelihood :math:`\\pi_{flat}(\\theta \\mid y) = P(y \\mid \\theta) / A(y)` on the grid.

        Masses renormalised on the grid (for plotting); :meth:`kl_to_flat` uses the exact
        continuous flat posterior :math:`N(\\theta; y, \\sigma^2)` instead, which the grid may cut.
        """
        lik, _ = self._scaled_likelihood(y)
        return lik / lik.sum(-1, keepdims=True)

    def kl_to_flat(self, b, y) -> np.ndarray:
        """:math:`D_{KL}[b \\Vert \\pi_{flat}(\\cdot \\mid y)]` with the exact :math:`\\pi_{flat} = N(y, \\sigma^2)`.

        The grid belief is read as the density ``b / dtheta``; :math:`A(y) = 1` for a Gaussian
        location likelihood, so no renormalisation on the grid (which truncates a wide likelihood).
        """
        log_flat = self.log_likelihood(y) + math.log(self.dtheta)
        return np.sum(b * (self._logb(b) - log_flat), -1)

    def log_flat_normaliser(self, y) -> np.ndarray:
        """:math:`\\log A(y) = \\log \\int P(y \\mid \\theta)\\, d\\theta = 0` (Gaussian location likelihood, exact)."""
        return np.zeros(np.shape(y))

    def expected_loglik(self, q, y) -> np.ndarray:
        """:math:`E_q[\\log P(y \\mid \\Theta)]`."""
        return np.sum(q * self.log_likelihood(y), -1)

    def moment_gaussian(self, b) -> np.ndarray:
        """The discretised Gaussian with the mean and variance of ``b``."""
        m = b @ self.theta
        v = np.maximum(b @ self.theta**2 - m**2, (self.dtheta / 4) ** 2)
        return self.gaussian_belief(m, np.sqrt(v))

    def predictive_masses(self, b) -> np.ndarray:
        """The predictive of ``b`` as masses on :attr:`y_grid` (sum 1)."""
        return _memo(("pm",), (b,), lambda: b @ self._kernel)

    def predictive_kl(self, p, q) -> np.ndarray:
        """:math:`D_{KL}[P(\\cdot; p) \\Vert P(\\cdot; q)]` between predictives, summed on :attr:`y_grid`."""
        pp, pq = self.predictive_masses(p), self.predictive_masses(q)
        return np.sum(pp * (self._logb(pp) - self._logb(pq)), -1)


# ---------------------------------------------------------------------------------------------
# Gaussian observations, conjugate Gaussian belief (closed forms)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalBelief:
    """A Gaussian belief :math:`N(\\text{mean}, \\text{var})` over theta (arrays broadcast over trials)."""

    mean: np.ndarray
    var: np.ndarray


@dataclass(frozen=True)
class NormalModel:
    """Gaussian observations with a conjugate Gaussian belief: every measure in closed form.

    Belief-mismatch measures need a Gaussian change-aware prior, i.e. ``p_c = 0``; probabilistic-
    and observation-mismatch measures work at any ``p_c`` (the predictive of the change-aware prior
    is a two-component mixture, computed exactly).

    Attributes:
        sigma: observation noise (units of y).
    """

    sigma: float = SIGMA_OBS
    discrete = False

    def __post_init__(self):
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma!r}")

    def prior(self, mu0: float = MU0, sigma0: float = SIGMA0) -> NormalBelief:
        return NormalBelief(np.asarray(float(mu0)), np.asarray(float(sigma0) ** 2))

    def check_belief(self, b, what: str = "belief") -> NormalBelief:
        if not isinstance(b, NormalBelief):
            raise ValueError(f"a {what} of a NormalModel must be a NormalBelief(mean, var), got {type(b).__name__}")
        m, v = np.asarray(b.mean, float), np.asarray(b.var, float)
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))) or np.any(v <= 0):
            raise ValueError(f"a {what} needs finite means and positive variances")
        _batch(m.shape, v.shape)
        return NormalBelief(m, v)

    check_obs = GridModel.check_obs

    @staticmethod
    def batch_shape(b) -> tuple[int, ...]:
        return np.broadcast_shapes(np.shape(b.mean), np.shape(b.var))

    def log_predictive(self, b, y):
        return stats.norm.logpdf(y, b.mean, np.sqrt(b.var + self.sigma**2))

    def predictive_mean(self, b):
        return np.asarray(b.mean, float) + 0.0 * b.var

    def predictive_var(self, b):
        return b.var + self.sigma**2

    obs_vector = GridModel.obs_vector
    reward = GridModel.reward

    def expected_reward(self, b):
        return self.predictive_mean(b)

    @staticmethod
    def mix(b, b2, w):
        if np.any(np.asarray(w) != 0):
            raise ValueError("a NormalModel belief cannot be mixed with the prior (the result is a Gaussian mixture); "
                             "use p_c = 0 or a GridModel")
        return b

    def posterior(self, b, y):
        prec = 1.0 / b.var + 1.0 / self.sigma**2
        return NormalBelief((b.mean / b.var + np.asarray(y, float) / self.sigma**2) / prec, 1.0 / prec)

    def update(self, before, y, prior, p_c):
        if p_c != 0:
            raise ValueError("NormalModel.update needs p_c = 0 (the volatile posterior is a mixture); use a GridModel")
        after = self.posterior(before, y)
        return after, np.zeros(np.broadcast_shapes(self.batch_shape(after), np.shape(y)))

    @staticmethod
    def kl(p, q):
        return 0.5 * (np.log(q.var / p.var) + (p.var + (p.mean - q.mean) ** 2) / q.var - 1.0)

    @staticmethod
    def entropy(b):
        return 0.5 * np.log(2 * math.pi * math.e * b.var)

    def flat_posterior(self, y) -> NormalBelief:
        y = np.asarray(y, float)
        return NormalBelief(y, np.full(y.shape, self.sigma**2))

    def kl_to_flat(self, b, y):
        return self.kl(b, self.flat_posterior(y))

    def log_flat_normaliser(self, y):
        return np.zeros(np.shape(y))

    def expected_loglik(self, q, y):
        return (-0.5 * math.log(2 * math.pi * self.sigma**2)
                - ((np.asarray(y) - q.mean) ** 2 + q.var) / (2 * self.sigma**2))

    def moment_gaussian(self, b):
        return b

    def predictive_kl(self, p, q):
        s2 = self.sigma**2
        return self.kl(NormalBelief(p.mean, p.var + s2), NormalBelief(q.mean, q.var + s2))


# ---------------------------------------------------------------------------------------------
# Categorical observations, Dirichlet (mixture) belief
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirichletBelief:
    """A mixture of Dirichlet distributions over the K outcome probabilities.

    Attributes:
        alpha: concentrations, shape ``(..., R, K)``, all > 0.
        weight: mixture weights, shape ``(..., R)``, each row sums to 1. ``R = 1`` is a single
            Dirichlet; the exact belief of a volatile categorical world is a run-length mixture.
    """

    alpha: np.ndarray
    weight: np.ndarray

    @classmethod
    def single(cls, alpha) -> "DirichletBelief":
        """A single Dirichlet with concentrations ``alpha`` of shape ``(..., K)``."""
        alpha = np.asarray(alpha, float)
        return cls(alpha[..., None, :], np.ones(alpha.shape[:-1] + (1,)))

    def __getitem__(self, idx) -> "DirichletBelief":
        """Index the batch (trial) axes."""
        return DirichletBelief(self.alpha[idx], self.weight[idx])


@dataclass(frozen=True)
class DirichletModel:
    """K categorical outcomes with a Dirichlet belief over their probabilities.

    The observation vector of outcome k is the one-hot vector e_k; the point prediction is the
    predictive probability vector. Rewards (for the unsigned reward prediction error) are a fixed
    number per outcome.

    Attributes:
        n_outcomes: K >= 2.
        rewards: reward of each outcome, shape ``(K,)``; default ``linspace(0, 1, K)``.
    """

    n_outcomes: int = N_OUTCOMES
    rewards: tuple[float, ...] | None = None
    discrete = True

    def __post_init__(self):
        if int(self.n_outcomes) != self.n_outcomes or self.n_outcomes < 2:
            raise ValueError(f"n_outcomes must be an integer >= 2, got {self.n_outcomes!r}")
        r = np.linspace(0.0, 1.0, self.n_outcomes) if self.rewards is None else np.asarray(self.rewards, float)
        if r.shape != (self.n_outcomes,) or not np.all(np.isfinite(r)):
            raise ValueError(f"rewards must be {self.n_outcomes} finite numbers, got shape {r.shape}")
        object.__setattr__(self, "rewards", tuple(float(x) for x in r))

    def prior(self, concentration: float = CONCENTRATION) -> DirichletBelief:
        """The symmetric prior Dir(concentration, ..., concentration)."""
        if not concentration > 0:
            raise ValueError(f"concentration must be positive, got {concentration!r}")
        return DirichletBelief.single(np.full(self.n_outcomes, float(concentration)))

    def check_belief(self, b, what: str = "belief") -> DirichletBelief:
        if not isinstance(b, DirichletBelief):
            raise ValueError(f"a {what} of a DirichletModel must be a DirichletBelief, got {type(b).__name__}")
        a, w = np.asarray(b.alpha, float), np.asarray(b.weight, float)
        if a.ndim < 2 or a.shape[-1] != self.n_outcomes:
            raise ValueError(f"{what}.alpha must have shape (..., R, {self.n_outcomes}), got {a.shape}")
        if w.shape != a.shape[:-1]:
            raise ValueError(f"{what}.weight must have shape {a.shape[:-1]} (one weight per component), got {w.shape}")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"{what}.alpha must be finite and positive")
        w = _check_prob_array(w, f"{what} mixture weights")
        dev = np.max(np.abs(w.sum(-1) - 1.0))
        if dev > SUM_TOL:
            raise ValueError(f"{what} mixture weights must sum to 1; max deviation {dev:.3g}")
        return DirichletBelief(a, w)

    def check_obs(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
            raise ValueError("categorical observations must be integer outcome indices")
        y = y.astype(int)
        if np.any(y < 0) or np.any(y >= self.n_outcomes):
            raise ValueError(f"categorical observations must be in 0..{self.n_outcomes - 1}")
        return y

    @staticmethod
    def batch_shape(b) -> tuple[int, ...]:
        return np.shape(b.weight)[:-1]

    def predictive_probs(self, b) -> np.ndarray:
        """Predictive probabilities of the K outcomes, shape ``(..., K)``."""
        return np.sum(b.weight[..., None] * b.alpha / b.alpha.sum(-1, keepdims=True), -2)

    def log_predictive(self, b, y):
        p = self.predictive_probs(b)
        p, y = np.broadcast_arrays(p, np.asarray(y)[..., None])
        return _log(np.take_along_axis(p, y[..., :1], -1)[..., 0])

    def predictive_mean(self, b):
        return self.predictive_probs(b)

    def obs_vector(self, y):
        return np.eye(self.n_outcomes)[np.asarray(y)]

    def reward(self, y):
        return np.asarray(self.rewards)[np.asarray(y)]

    def expected_reward(self, b):
        return self.predictive_probs(b) @ np.asarray(self.rewards)

    @staticmethod
    def mix(b, b2, w) -> DirichletBelief:
        shape = np.broadcast_shapes(b.weight.shape[:-1], b2.weight.shape[:-1], np.shape(w))
        a1 = np.broadcast_to(b.alpha, shape + b.alpha.shape[-2:])
        a2 = np.broadcast_to(b2.alpha, shape + b2.alpha.shape[-2:])
        w = np.asarray(w, float)[..., None]
        w1 = np.broadcast_to((1.0 - w) * b.weight, shape + b.weight.shape[-1:])
        w2 = np.broadcast_to(w * b2.weight, shape + b2.weight.shape[-1:])
        return DirichletBelief(np.concatenate([a1, a2], -2), np.concatenate([w1, w2], -1))

    def posterior(self, b, y) -> DirichletBelief:
        onehot = self.obs_vector(y)[..., None, :]
        alpha = b.alpha + onehot
        shape = np.broadcast_shapes(b.weight.shape, alpha.shape[:-1])
        lik = np.sum(onehot * b.alpha, -1) / b.alpha.sum(-1)  # P(y | component)
        u = b.weight * lik
        return DirichletBelief(alpha, np.broadcast_to(u / u.sum(-1, keepdims=True), shape))

    def update(self, before, y, prior, p_c):
        """Exact volatile update; the last component of the result is the one that restarted from the prior."""
        hat = self.mix(before, prior, p_c)
        after = self.posterior(hat, y)
        gamma = after.weight[..., -prior.weight.shape[-1]:].sum(-1)
        return after, gamma

    @staticmethod
    def _single(b, what="belief") -> np.ndarray:
        k = np.argmax(b.weight, -1)
        top = np.take_along_axis(b.weight, k[..., None], -1)[..., 0]
        if np.any(top < 1.0 - 1e-12):
            raise ValueError(f"this measure needs a single-Dirichlet {what}, got a mixture (a volatile categorical "
                             "belief); KLs between Dirichlet mixtures have no closed form. Use p_c = 0.")
        return np.take_along_axis(b.alpha, k[..., None, None], -2)[..., 0, :]

    @staticmethod
    def _kl_dir(a, b):
        a0, b0 = a.sum(-1), b.sum(-1)
        return (special.gammaln(a0) - special.gammaln(a).sum(-1) - special.gammaln(b0) + special.gammaln(b).sum(-1)
                + np.sum((a - b) * (special.digamma(a) - special.digamma(a0)[..., None]), -1))

    def kl(self, p, q):
        return self._kl_dir(self._single(p), self._single(q))

    def entropy(self, b):
        a = self._single(b)
        a0, k = a.sum(-1), a.shape[-1]
        lnb = special.gammaln(a).sum(-1) - special.gammaln(a0)
        return lnb + (a0 - k) * special.digamma(a0) - np.sum((a - 1) * special.digamma(a), -1)

    def flat_posterior(self, y) -> DirichletBelief:
        """The normalised likelihood p_y / A: the Dirichlet Dir(1 + e_y)."""
        return DirichletBelief.single(1.0 + self.obs_vector(y))

    def kl_to_flat(self, b, y):
        return self._kl_dir(self._single(b), 1.0 + self.obs_vector(y))

    def log_flat_normaliser(self, y):
        """:math:`\\log \\int p_y\\, dp` over the simplex (Lebesgue measure) :math:`= -\\log K!`."""
        return np.full(np.shape(y), -special.gammaln(self.n_outcomes + 1.0))

    def expected_loglik(self, q, y):
        onehot = self.obs_vector(y)[..., None, :]
        e = np.sum(onehot * special.digamma(q.alpha), -1) - special.digamma(q.alpha.sum(-1))
        return np.sum(q.weight * e, -1)

    def moment_gaussian(self, b):
        raise ValueError("q='moment' (a moment-matched Gaussian) is defined for the Gaussian task only")

    def predictive_kl(self, p, q):
        pp, pq = self.predictive_probs(p), self.predictive_probs(q)
        return np.sum(pp * (_log(pp) - _log(pq)), -1)


# ---------------------------------------------------------------------------------------------
# The surprise measures
# ---------------------------------------------------------------------------------------------


def _prep(model, before, y, after, prior, p_c, *, need_after=False, need_prior=False, check=True):
    """Validate the common arguments once; returns (before, y, after, prior, p_c)."""
    p_c = _check_p_c(p_c)
    if not check:
        return before, y, after, prior, p_c
    before = model.check_belief(before, "belief before")
    y = model.check_obs(y)
    shapes = [model.batch_shape(before), np.shape(y)]
    if need_after:
        if after is None:
            raise ValueError("this measure needs the belief after the observation (`after`)")
        after = model.check_belief(after, "belief after")
        shapes.append(model.batch_shape(after))
    elif after is not None:
        after = model.check_belief(after, "belief after")
    if need_prior:
        if prior is None:
            raise ValueError("this measure needs the prior belief pi^(0) (`prior`)")
        prior = model.check_belief(prior, "prior")
    _batch(*shapes)
    if prior is not None and isinstance(model, GridModel):
        model.check_coverage(prior, y)
    return before, y, after, prior, p_c


def _log_pred(model, before, y, prior, p_c, variant):
    lp = model.log_predictive(before, y)
    if variant == "belief" or p_c == 0:
        return lp
    return np.logaddexp(math.log1p(-p_c) + lp, math.log(p_c) + model.log_predictive(prior, y))


def _point_prediction(model, before, prior, p_c, variant):
    m = model.predictive_mean(before)
    if variant == "belief" or p_c == 0:
        return m
    return (1.0 - p_c) * m + p_c * model.predictive_mean(prior)


def _step_prior(model, before, prior, p_c, variant):
    if variant == "belief" or p_c == 0:
        return before
    return model.mix(before, prior, p_c)


def shannon(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", check=True):
    """Shannon surprise :math:`S_{Sh} = -\\log P(y; \\pi)` (nats; a log density for continuous y).

    Args:
        model: a :class:`GridModel`, :class:`NormalModel` or :class:`DirichletModel`.
        before: the belief :math:`\\pi^{(t)}` before the observation (batch of trials).
        y: the observation(s) :math:`y_{t+1}`.
        after: unused (accepted for a uniform signature).
        prior: the prior :math:`\\pi^{(0)}` (needed unless ``variant="belief"``).
        p_c: change probability in [0, 1).
        variant: ``"belief"`` (:math:`S_{Sh1}`, predictive of :math:`\\pi^{(t)}`), ``"changeaware"``
            (:math:`S_{Sh2}`, predictive of :math:`\\hat\\pi^{(t)}`) or ``"initial"`` (predictive of
            :math:`\\pi^{(0)}`, used in :math:`\\log S_{BF} = S_{Sh}(\\pi^{(t)}) - S_{Sh}(\\pi^{(0)})`).
        check: validate the inputs (``compute_all`` validates once and passes False).

    Returns:
        Array of the batch shape.
    """
    _check_choice(variant, VARIANTS + ("initial",), "variant")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c,
                                         need_prior=variant != "belief", check=check)
    if variant == "initial":
        return -model.log_predictive(prior, y) + np.zeros(np.broadcast_shapes(model.batch_shape(before), np.shape(y)))
    return -_log_pred(model, before, y, prior, p_c, variant)


def bayes_factor(model, before, y, after=None, prior=None, p_c=0.0, *, check=True):
    """Bayes-factor surprise :math:`S_{BF} = P(y; \\pi^{(0)}) / P(y; \\pi^{(t)})` (dimensionless, > 0).

    Always uses the belief :math:`\\pi^{(t)}`, never the change-aware prior; ``p_c`` only enters
    the change probability :math:`\\gamma = m S_{BF} / (1 + m S_{BF})`, ``m = p_c / (1 - p_c)``.
    Arguments as in :func:`shannon`.
    """
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c, need_prior=True, check=check)
    return np.exp(model.log_predictive(prior, y) - model.log_predictive(before, y))


def state_prediction_error(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", check=True):
    """State prediction error :math:`S_{SPE} = 1 - P(y; \\pi)` (discrete observations only).

    Arguments as in :func:`shannon` (``variant`` in ``"belief"``, ``"changeaware"``).
    """
    _check_choice(variant, VARIANTS, "variant")
    if not model.discrete:
        raise ValueError("the state prediction error 1 - P(y) is defined for discrete observations only; "
                         "use a DirichletModel")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c,
                                         need_prior=variant != "belief", check=check)
    return 1.0 - np.exp(_log_pred(model, before, y, prior, p_c, variant))


def absolute_error(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", check=True):
    """Absolute error :math:`S_{Abs} = \\lVert y - \\hat y(\\pi) \\rVert_1` (units of y; one-hot y for categories).

    Arguments as in :func:`shannon` (``variant`` in ``"belief"``, ``"changeaware"``).
    """
    _check_choice(variant, VARIANTS, "variant")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c,
                                         need_prior=variant != "belief", check=check)
    d = model.obs_vector(y) - _point_prediction(model, before, prior, p_c, variant)
    return np.abs(d) if not model.discrete else np.sum(np.abs(d), -1)


def squared_error(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", check=True):
    """Squared error :math:`S_{Sq} = \\lVert y - \\hat y(\\pi) \\rVert_2^2` (units of y squared).

    Arguments as in :func:`shannon` (``variant`` in ``"belief"``, ``"changeaware"``).
    """
    _check_choice(variant, VARIANTS, "variant")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c,
                                         need_prior=variant != "belief", check=check)
    d = model.obs_vector(y) - _point_prediction(model, before, prior, p_c, variant)
    return d**2 if not model.discrete else np.sum(d**2, -1)


def unsigned_rpe(model, before, y, after=None, prior=None, p_c=0.0, *, check=True):
    """Unsigned reward prediction error :math:`S_{uRPE} = |r(y) - E_{\\pi^{(t)}}[R]|`.

    In the Gaussian task the observation is the reward (so :math:`S_{uRPE} = S_{Abs1}`); in the
    categorical task each outcome carries the reward ``model.rewards[k]``.
    """
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c, check=check)
    return np.abs(model.reward(y) - model.expected_reward(before))


def bayesian(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", direction="post||prior",
             check=True):
    """Bayesian surprise: the KL divergence between the belief after and the step's prior (nats).

    Args:
        variant: the step's prior: ``"belief"`` (:math:`\\pi^{(t)}`, :math:`S_{Ba1}`) or
            ``"changeaware"`` (:math:`\\hat\\pi^{(t)}`, :math:`S_{Ba2}`).
        direction: ``"post||prior"`` (Itti & Baldi: :math:`D_{KL}[\\pi^{(t+1)} \\Vert \\pi^{(t)}]`) or
            ``"prior||post"``.
        model, before, y, after, prior, p_c, check: as in :func:`shannon`; ``after`` is required.
    """
    _check_choice(variant, VARIANTS, "variant")
    _check_choice(direction, DIRECTIONS, "direction")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c, need_after=True,
                                         need_prior=variant != "belief", check=check)
    ref = _step_prior(model, before, prior, p_c, variant)
    return model.kl(after, ref) if direction == "post||prior" else model.kl(ref, after)


#: The two readings of the distribution after the observation in postdictive surprise 2.
POSTDICTIVE_AFTER = ("postdiction", "prediction")


def postdictive(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", direction="prior||post",
                reading="postdiction", check=True):
    """Postdictive surprise: KL between the distributions of y before and after the observation (nats).

    The book's reconstruction of variant 2 (``reading="postdiction"``, the default):
    :math:`S_{Po2} = D_{KL}[P(\\cdot;\\hat\\pi^{(t)}) \\Vert P(\\cdot;\\pi^{(t+1)})]`, the exact prediction
    of :math:`y_{t+1}` against its exact postdiction: both are laws of the same observation, since
    no change can occur between :math:`\\Theta_{t+1}` and :math:`y_{t+1}`, and an observation that
    leaves :math:`\\hat\\pi^{(t)}` unchanged gives 0 (as :math:`S_{Ba2}` does). The other reading,
    ``reading="prediction"``, compares the change-aware predictions before and after, of :math:`y_{t+1}` and
    :math:`y_{t+2}`: :math:`D_{KL}[P(\\cdot;\\hat\\pi^{(t)}) \\Vert P(\\cdot;\\hat\\pi^{(t+1)})]`. Variant 1 is the
    same under both.

    Args:
        variant: the distribution before from :math:`\\pi^{(t)}` (``"belief"``) or
            :math:`\\hat\\pi^{(t)}` (``"changeaware"``).
        direction: ``"prior||post"`` (default, before first in the KL) or ``"post||prior"``.
        reading: ``"postdiction"`` or ``"prediction"`` (:data:`POSTDICTIVE_AFTER`): which
            distribution after the observation.
        model, before, y, after, prior, p_c, check: as in :func:`shannon`; ``after`` is required.
    """
    _check_choice(variant, VARIANTS, "variant")
    _check_choice(direction, DIRECTIONS, "direction")
    _check_choice(reading, POSTDICTIVE_AFTER, "reading of the distribution after")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c, need_after=True,
                                         need_prior=variant != "belief", check=check)
    ref = _step_prior(model, before, prior, p_c, variant)
    post = _step_prior(model, after, prior, p_c, variant) if reading == "prediction" else after
    return model.predictive_kl(ref, post) if direction == "prior||post" else model.predictive_kl(post, ref)


def confidence_corrected(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", check=True):
    """Confidence-corrected surprise :math:`S_{CC} = D_{KL}[\\pi \\Vert \\pi_{flat}(\\cdot \\mid y)]` (nats).

    :math:`\\pi_{flat}` is the normalised likelihood (the posterior of a flat prior). ``variant``
    chooses :math:`\\pi = \\pi^{(t)}` (:math:`S_{CC1}`) or :math:`\\hat\\pi^{(t)}` (:math:`S_{CC2}`).
    """
    _check_choice(variant, VARIANTS, "variant")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c,
                                         need_prior=variant != "belief", check=check)
    return model.kl_to_flat(_step_prior(model, before, prior, p_c, variant), y)


def free_energy(model, before, y, after=None, prior=None, p_c=0.0, *, variant="belief", q="exact", check=True):
    """Minimised variational free energy :math:`F = D_{KL}[q \\Vert \\pi] - E_q[\\log P(y \\mid \\Theta)]` (nats).

    Args:
        variant: the step's prior :math:`\\pi` (``"belief"`` or ``"changeaware"``).
        q: ``"exact"`` -- q is the exact posterior of that prior, the minimiser over all q, and
            :math:`F = S_{Sh}` of the same variant; ``"moment"`` (Gaussian task only) -- q is the
            discretised Gaussian with the posterior's mean and variance, an approximate posterior,
            so that :math:`F = S_{Sh} + D_{KL}[q \\Vert \\text{posterior}] \\ge S_{Sh}`.
        model, before, y, after, prior, p_c, check: as in :func:`shannon`.
    """
    _check_choice(variant, VARIANTS, "variant")
    _check_choice(q, ("exact", "moment"), "q")
    before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c,
                                         need_prior=variant != "belief", check=check)
    ref = _step_prior(model, before, prior, p_c, variant)
    qb = model.posterior(ref, y)
    if q == "moment":
        qb = model.moment_gaussian(qb)
    return model.kl(qb, ref) - model.expected_loglik(qb, y)


def change_probability(model, before, y, prior, p_c, *, check=True):
    """:math:`\\gamma = m S_{BF} / (1 + m S_{BF})` with :math:`m = p_c / (1 - p_c)`: the adaptation rate.

    Returns:
        Array of the batch shape; equals the posterior probability of a change (see :func:`update`).
    """
    p_c = _check_p_c(p_c)
    s = bayes_factor(model, before, y, None, prior, p_c, check=check)
    m = p_c / (1.0 - p_c)
    return m * s / (1.0 + m * s)


def update(model, before, y, prior, p_c, *, check=True):
    """The exact Bayesian update in a volatile world.

    Bayes' rule on the joint of the change indicator and the parameter:
    :math:`\\pi^{(t+1)}(\\theta) \\propto
    P(y \\mid \\theta)\\,[(1 - p_c)\\pi^{(t)}(\\theta) + p_c \\pi^{(0)}(\\theta)]`.

    Returns:
        ``(after, gamma)``: the belief :math:`\\pi^{(t+1)}` and the posterior probability of a
        change :math:`P(C_{t+1} = 1 \\mid y_{1:t+1})`, computed from the joint (not from S_BF).
    """
    before, y, _, prior, p_c = _prep(model, before, y, None, prior, p_c, need_prior=True, check=check)
    return model.update(before, y, prior, p_c)


def update_liakoni(model, before, y, prior, p_c, *, check=True):
    """The same update in the form of Liakoni et al. (2021): a gamma-weighted mixture.

    :math:`\\pi^{(t+1)} = (1 - \\gamma)\\,\\pi_{int} + \\gamma\\,\\pi_{reset}`, with
    :math:`\\pi_{int} \\propto P(y \\mid \\theta)\\pi^{(t)}`, :math:`\\pi_{reset} \\propto P(y \\mid \\theta)\\pi^{(0)}`
    and :math:`\\gamma` from the Bayes-factor surprise (:func:`change_probability`).
    """
    before, y, _, prior, p_c = _prep(model, before, y, None, prior, p_c, need_prior=True, check=check)
    gamma = change_probability(model, before, y, prior, p_c, check=False)
    return model.mix(model.posterior(before, y), model.posterior(prior, y), gamma)


# ---------------------------------------------------------------------------------------------
# The table of the 18 definitions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One definition of surprise in the table.

    Attributes:
        name: short name (``"Sh1"``).
        symbol: LaTeX symbol.
        long_name: the name in words.
        group: technical group (one of :data:`GROUPS`).
        category: conceptual category (one of :data:`CATEGORIES`).
        formula: LaTeX formula in the chapter's notation.
        func: the function that computes it.
        kwargs: the variant switches passed to ``func``.
        discrete_only: defined for discrete observations only.
        source: original reference (text, as the paper attributes it; not a citation key).
        status: what we know of the definition. "attested": the measure is named, with the paper's
            equation or proposition number, in third-party code that cites the paper (we have not
            read it in the paper itself); "reconstructed": our reading, see the module docstring.
    """

    name: str
    symbol: str
    long_name: str
    group: str
    category: str
    formula: str
    func: Callable
    kwargs: tuple[tuple[str, str], ...] = ()
    discrete_only: bool = False
    source: str = ""
    status: str = ""

    def __call__(self, model, before, y, after=None, prior=None, p_c=0.0, **overrides):
        return self.func(model, before, y, after, prior, p_c, **{**dict(self.kwargs), **overrides})


_PM, _OM, _BM = GROUPS
_PRED, _CPD, _CC, _IG = CATEGORIES
_SPLIT = "measure attested; 1/2 split reconstructed"

MEASURES: tuple[Measure, ...] = (
    Measure("Sh1", r"S_{\mathrm{Sh}1}", "Shannon surprise 1", _PM, _PRED, r"-\log P(y;\pi^{(t)})", shannon,
            (("variant", "belief"),), source="Shannon (1948); Tribus (1961)", status=_SPLIT),
    Measure("Sh2", r"S_{\mathrm{Sh}2}", "Shannon surprise 2", _PM, _PRED, r"-\log P(y;\hat\pi^{(t)})", shannon,
            (("variant", "changeaware"),), source="Shannon (1948); as in Liakoni et al. (2021)", status=_SPLIT),
    Measure("BF", r"S_{\mathrm{BF}}", "Bayes-factor surprise", _PM, _CPD, r"P(y;\pi^{(0)})/P(y;\pi^{(t)})",
            bayes_factor, source="Liakoni et al. (2021)", status="measure attested"),
    Measure("SPE1", r"S_{\mathrm{SPE}1}", "state prediction error 1", _PM, _PRED, r"1-P(y;\pi^{(t)})",
            state_prediction_error, (("variant", "belief"),), True, "Gläscher et al. (2010)", _SPLIT),
    Measure("SPE2", r"S_{\mathrm{SPE}2}", "state prediction error 2", _PM, _PRED, r"1-P(y;\hat\pi^{(t)})",
            state_prediction_error, (("variant", "changeaware"),), True, "Gläscher et al. (2010)", _SPLIT),
    Measure("Abs1", r"S_{\mathrm{Abs}1}", "absolute error 1", _OM, _PRED, r"\lVert y-\hat y(\pi^{(t)})\rVert_1",
            absolute_error, (("variant", "belief"),), source="prediction-error models", status=_SPLIT),
    Measure("Abs2", r"S_{\mathrm{Abs}2}", "absolute error 2", _OM, _PRED, r"\lVert y-\hat y(\hat\pi^{(t)})\rVert_1",
            absolute_error, (("variant", "changeaware"),), source="prediction-error models", status=_SPLIT),
    Measure("Sq1", r"S_{\mathrm{Sq}1}", "squared error 1", _OM, _PRED, r"\lVert y-\hat y(\pi^{(t)})\rVert_2^2",
            squared_error, (("variant", "belief"),), source="prediction-error models", status=_SPLIT),
    Measure("Sq2", r"S_{\mathrm{Sq}2}", "squared error 2", _OM, _PRED, r"\lVert y-\hat y(\hat\pi^{(t)})\rVert_2^2",
            squared_error, (("variant", "changeaware"),), source="prediction-error models", status=_SPLIT),
    Measure("uRPE", r"S_{\mathrm{uRPE}}", "unsigned reward prediction error", _OM, _PRED,
            r"\lvert r(y)-\mathbb{E}_{\pi^{(t)}}[R]\rvert", unsigned_rpe,
            source="reinforcement learning (|r - Q(s,a)|)",
            status="measure attested"),
    Measure("Ba1", r"S_{\mathrm{Ba}1}", "Bayesian surprise 1", _BM, _IG, r"D_{KL}[\pi^{(t+1)}\Vert\pi^{(t)}]",
            bayesian, (("variant", "belief"), ("direction", "post||prior")), source="Itti & Baldi (2009)",
            status=_SPLIT + "; KL direction a switch"),
    Measure("Ba2", r"S_{\mathrm{Ba}2}", "Bayesian surprise 2", _BM, _IG, r"D_{KL}[\pi^{(t+1)}\Vert\hat\pi^{(t)}]",
            bayesian, (("variant", "changeaware"), ("direction", "post||prior")), source="Itti & Baldi (2009)",
            status=_SPLIT + "; KL direction a switch"),
    Measure("Po1", r"S_{\mathrm{Po}1}", "postdictive surprise 1", _BM, _IG,
            r"D_{KL}[P(\cdot;\pi^{(t)})\Vert P(\cdot;\pi^{(t+1)})]", postdictive,
            (("variant", "belief"), ("direction", "prior||post"), ("reading", "postdiction")),
            source="Kolossa et al. (2015)", status=_SPLIT),
    Measure("Po2", r"S_{\mathrm{Po}2}", "postdictive surprise 2", _BM, _IG,
            r"D_{KL}[P(\cdot;\hat\pi^{(t)})\Vert P(\cdot;\pi^{(t+1)})]", postdictive,
            (("variant", "changeaware"), ("direction", "prior||post"), ("reading", "postdiction")),
            source="Kolossa et al. (2015)", status=_SPLIT + "; its 'after' side is the book's reading"),
    Measure("CC1", r"S_{\mathrm{CC}1}", "confidence-corrected surprise 1", _BM, _CC,
            r"D_{KL}[\pi^{(t)}\Vert\pi_{flat}(\cdot\mid y)]", confidence_corrected, (("variant", "belief"),),
            source="Faraji et al. (2018)", status=_SPLIT),
    Measure("CC2", r"S_{\mathrm{CC}2}", "confidence-corrected surprise 2", _BM, _CC,
            r"D_{KL}[\hat\pi^{(t)}\Vert\pi_{flat}(\cdot\mid y)]", confidence_corrected, (("variant", "changeaware"),),
            source="Faraji et al. (2018)", status=_SPLIT),
    Measure("FE1", r"S_{\mathrm{FE}1}", "minimised free energy 1", _BM, _PRED,
            r"\min_q D_{KL}[q\Vert\pi^{(t)}]-\mathbb{E}_q\log P(y\mid\Theta)", free_energy,
            (("variant", "belief"), ("q", "exact")), source="free-energy principle (Friston)",
            status="low confidence: identity and category not verified"),
    Measure("FE2", r"S_{\mathrm{FE}2}", "minimised free energy 2", _BM, _PRED,
            r"\min_q D_{KL}[q\Vert\hat\pi^{(t)}]-\mathbb{E}_q\log P(y\mid\Theta)", free_energy,
            (("variant", "changeaware"), ("q", "exact")), source="free-energy principle (Friston)",
            status="low confidence: identity and category not verified"),
)

MEASURE_NAMES: tuple[str, ...] = tuple(m.name for m in MEASURES)
_BY_NAME: dict[str, Measure] = {m.name: m for m in MEASURES}


def measure_table():
    """The 18 definitions as a pandas DataFrame (name, symbol, group, category, formula, source, status)."""
    import pandas as pd

    return pd.DataFrame(
        [{"name": m.name, "definition": m.long_name, "symbol": f"${m.symbol}$", "formula": f"${m.formula}$",
          "group": m.group, "category": m.category, "source": m.source, "status": m.status} for m in MEASURES]
    ).set_index("name")


def table_markdown(columns: Sequence[str] = ("definition", "symbol", "formula", "group", "category", "status")) -> str:
    """The table of :data:`MEASURES` as a Markdown (MyST) table with inline math, for the chapter."""
    rows = measure_table()[list(columns)]
    head = "| name | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1) + "\n"
    body = "\n".join(f"| {name} | " + " | ".join(str(v) for v in r) + " |"
                     for name, r in zip(rows.index, rows.values, strict=True))
    if "|" in "".join(f"{m.symbol}{m.formula}" for m in MEASURES):
        raise AssertionError("a formula contains '|', which breaks a Markdown table")  # pragma: no cover
    return head + body


def _get(name: str) -> Measure:
    if name not in _BY_NAME:
        raise ValueError(f"unknown measure {name!r}; expected one of {', '.join(MEASURE_NAMES)}")
    return _BY_NAME[name]


def applicable(model, p_c: float = 0.0) -> tuple[str, ...]:
    """Names of the measures this model can compute at this volatility.

    The state prediction error needs discrete observations; with a :class:`NormalModel` or a
    :class:`DirichletModel` and ``p_c > 0`` the belief-mismatch measures that need a KL between
    mixtures (Ba, CC, FE, and Po for the NormalModel) are left out.
    """
    p_c = _check_p_c(p_c)
    out = []
    for m in MEASURES:
        if m.discrete_only and not model.discrete:
            continue
        if p_c > 0 and m.group == _BM and not isinstance(model, GridModel):
            if not (isinstance(model, DirichletModel) and m.func is postdictive):
                continue
        out.append(m.name)
    return tuple(out)


def compute_all(model, before, y, after, prior, p_c, names: Sequence[str] | None = None,
                **overrides) -> dict[str, np.ndarray]:
    """Every requested measure for a batch of trials.

    Args:
        model, before, y, after, prior, p_c: as in :func:`shannon` (all needed).
        names: measures to compute (default: :func:`applicable`).
        **overrides: variant switches applied to every measure that accepts them (e.g. ``direction``).

    Returns:
        Dict name -> array of the batch shape, in the order of ``names``.
    """
    names = applicable(model, p_c) if names is None else tuple(names)
    specs = [_get(n) for n in names]
    out = {}
    with _memoised():   # the checks' likelihoods are reused by the measures
        before, y, after, prior, p_c = _prep(model, before, y, after, prior, p_c, need_after=True, need_prior=True)
        for m in specs:
            kw = {**dict(m.kwargs), **{k: v for k, v in overrides.items() if k in dict(m.kwargs)}}
            out[m.name] = m.func(model, before, y, after, prior, p_c, check=False, **kw)
    return out


# ---------------------------------------------------------------------------------------------
# Tasks and runs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskData:
    """A simulated change-point task.

    Attributes:
        y: observations, shape ``(T,)`` (floats for the Gaussian task, outcome indices for the categorical one).
        theta: the hidden parameter at every step: the mean (``(T,)``) or the outcome probabilities (``(T, K)``).
        change: ``change[t]`` is True when the parameter was redrawn just before ``y[t]`` (``change[0]`` is True).
    """

    y: np.ndarray
    theta: np.ndarray
    change: np.ndarray


def _check_T(T) -> int:
    if int(T) != T or T < 1:
        raise ValueError(f"the number of steps T must be a positive integer, got {T!r}")
    return int(T)


def _segments(T, p_c, rng):
    change = rng.random(T) < p_c
    change[0] = True
    return change, np.cumsum(change) - 1


def simulate_gaussian(T: int, sigma: float = SIGMA_OBS, p_c: float = P_CHANGE, rng: np.random.Generator | None = None,
                      mu0: float = MU0, sigma0: float = SIGMA0) -> TaskData:
    """The Gaussian change-point task: with probability ``p_c`` the mean is redrawn from N(mu0, sigma0^2).

    Args:
        T: number of steps.
        sigma: observation noise (units of y).
        p_c: change probability per step in [0, 1).
        rng: random generator (required).
        mu0, sigma0: prior of the mean (units of y).

    Returns:
        :class:`TaskData` with ``theta`` the mean at every step.
    """
    T, p_c = _check_T(T), _check_p_c(p_c)
    if rng is None:
        raise ValueError("pass an explicit rng (numpy.random.Generator)")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    change, seg = _segments(T, p_c, rng)
    means = mu0 + sigma0 * rng.standard_normal(seg[-1] + 1)
    theta = means[seg]
    return TaskData(theta + sigma * rng.standard_normal(T), theta, change)


def simulate_categorical(T: int, n_outcomes: int = N_OUTCOMES, concentration: float = CONCENTRATION,
                         p_c: float = P_CHANGE, rng: np.random.Generator | None = None) -> TaskData:
    """The categorical change-point task: outcome probabilities redrawn from a symmetric Dirichlet.

    Returns:
        :class:`TaskData` with ``theta`` the outcome probabilities at every step, shape ``(T, K)``.
    """
    T, p_c = _check_T(T), _check_p_c(p_c)
    if rng is None:
        raise ValueError("pass an explicit rng (numpy.random.Generator)")
    if int(n_outcomes) != n_outcomes or n_outcomes < 2:
        raise ValueError(f"n_outcomes must be an integer >= 2 (one outcome carries no surprise), got {n_outcomes!r}")
    n_outcomes = int(n_outcomes)
    if not concentration > 0:
        raise ValueError(f"concentration must be positive, got {concentration!r}")
    change, seg = _segments(T, p_c, rng)
    probs = rng.dirichlet(np.full(n_outcomes, float(concentration)), seg[-1] + 1)
    theta = probs[seg]
    u = rng.random(T)
    y = np.minimum((np.cumsum(theta, 1) < u[:, None]).sum(1), n_outcomes - 1)
    return TaskData(y, theta, change)


@dataclass
class Run:
    """The result of filtering a task and computing the measures.

    Attributes:
        measures: name -> array ``(T,)``.
        gamma: posterior change probability at every step ``(T,)``.
        yhat: point prediction of the belief before each observation, ``(T,)`` or ``(T, K)``.
        pred_var: predictive variance before each observation (Gaussian task), ``(T,)``.
        belief_mean, belief_sd: mean and sd of the belief before each observation (Gaussian task).
        beliefs: the beliefs ``pi^(0..T)`` when asked for (``keep_beliefs=True``), else None.
        seconds: wall time of the filter and the measures.
    """

    measures: dict[str, np.ndarray]
    gamma: np.ndarray
    yhat: np.ndarray
    pred_var: np.ndarray | None = None
    belief_mean: np.ndarray | None = None
    belief_sd: np.ndarray | None = None
    beliefs: object = None
    seconds: float = 0.0
    n_components: int = 1


def _filter_grid(model: GridModel, y, prior, p_c, start):
    """Sequential exact filter on the grid; returns beliefs (len(y)+1, n) and gamma (len(y),)."""
    n = len(y)
    lik, _ = model._scaled_likelihood(y)            # (n, N), vectorised
    z1 = p_c * (lik @ prior)                        # evidence of a change, up to the same scale
    c = p_c * prior
    B = np.empty((n + 1, model.n))
    B[0] = start
    gamma = np.empty(n)
    a = 1.0 - p_c
    for t in range(n):                              # the recursion itself is sequential
        u = (a * B[t] + c) * lik[t]
        z = u.sum()
        B[t + 1] = u / z
        gamma[t] = z1[t] / z
    return B, gamma


def _filter_dirichlet(model: DirichletModel, y, prior: DirichletBelief, p_c, prune):
    """Run-length mixture filter with pruning; returns a padded DirichletBelief (T+1, R_max, K) and gamma."""
    a0, w0 = prior.alpha.reshape(-1, model.n_outcomes), prior.weight.reshape(-1)
    alphas, weights, gamma = [a0], [w0], np.empty(len(y))
    a, w = a0, w0
    for t, yt in enumerate(y):
        lik = a[:, yt] / a.sum(1)
        lik0 = a0[:, yt] / a0.sum(1)
        u = np.concatenate([(1.0 - p_c) * w * lik, p_c * w0 * lik0])
        a = np.concatenate([a, a0])
        a[:, yt] += 1.0
        z = u.sum()
        gamma[t] = u[-len(w0):].sum() / z
        w = u / z
        keep = w > prune * w.max()
        a, w = a[keep], w[keep] / w[keep].sum()
        alphas.append(a)
        weights.append(w)
    r = max(len(w) for w in weights)
    A = np.ones((len(weights), r, model.n_outcomes))
    W = np.zeros((len(weights), r))
    for t, (at, wt) in enumerate(zip(alphas, weights, strict=True)):
        A[t, : len(wt)] = at
        W[t, : len(wt)] = wt
    return DirichletBelief(A, W), gamma


def run(model, y, prior, p_c, names: Sequence[str] | None = None, *, chunk: int = 1000, keep_beliefs: bool = False,
        prune: float = 1e-12, start=None, overrides: Mapping[str, str] | None = None) -> Run:
    """Filter a sequence of observations with the exact volatile Bayesian belief and compute the measures.

    Args:
        model: a :class:`GridModel` or a :class:`DirichletModel`.
        y: observations ``(T,)``.
        prior: the prior :math:`\\pi^{(0)}` (also the initial belief unless ``start`` is given).
        p_c: change probability in [0, 1).
        names: measures to compute (default: :func:`applicable`).
        chunk: trials per vectorised block (grid model); ``chunk=1`` is the naive per-step computation.
        keep_beliefs: also return all beliefs (memory ``T x n``).
        prune: run-length components below ``prune`` times the largest weight are dropped (categorical).
        start: initial belief (default: ``prior``).
        overrides: variant switches passed to :func:`compute_all` (e.g. ``{"direction": "prior||post"}``).

    Returns:
        :class:`Run`.
    """
    t0 = time.perf_counter()
    p_c = _check_p_c(p_c)
    prior = model.check_belief(prior, "prior")
    y = model.check_obs(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional (T,), got shape {y.shape}")
    if y.size == 0:
        raise ValueError("run needs at least one observation, got an empty sequence")
    names = applicable(model, p_c) if names is None else tuple(names)
    for n in names:
        _get(n)
    overrides = dict(overrides or {})
    if isinstance(model, DirichletModel):
        B, gamma = _filter_dirichlet(model, y, prior, p_c, prune)
        before, after = B[:-1], B[1:]
        meas = compute_all(model, before, y, after, prior, p_c, names, **overrides)
        return Run(meas, gamma, model.predictive_probs(before), beliefs=B if keep_beliefs else None,
                   seconds=time.perf_counter() - t0, n_components=B.weight.shape[-1])
    if not isinstance(model, GridModel):
        raise ValueError(f"run needs a GridModel or a DirichletModel, got {type(model).__name__}")
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    T = len(y)
    b = prior if start is None else model.check_belief(start, "start belief")
    meas = {n: np.empty(T) for n in names}
    gamma, bm, bsd = np.empty(T), np.empty(T + 1), np.empty(T + 1)
    keep = np.empty((T + 1, model.n)) if keep_beliefs else None
    for s in range(0, T, int(chunk)):
        e = min(T, s + int(chunk))
        yc = y[s:e]
        with _memoised():   # one likelihood per block, shared by the check, the filter and the measures
            model.check_coverage(prior, yc)
            B, gamma[s:e] = _filter_grid(model, yc, prior, p_c, b)
            out = compute_all(model, B[:-1], yc, B[1:], prior, p_c, names, **overrides)
        for n in names:
            meas[n][s:e] = out[n]
        m = B @ model.theta
        bm[s:e + 1], bsd[s:e + 1] = m, np.sqrt(np.maximum(B @ model.theta**2 - m**2, 0.0))
        if keep is not None:
            keep[s:e + 1] = B
        b = B[-1]
    return Run(meas, gamma, bm[:-1], bsd[:-1] ** 2 + model.sigma**2, bm, bsd, keep, time.perf_counter() - t0)


def conjugate_beliefs(model: NormalModel, y, prior: NormalBelief) -> NormalBelief:
    """Beliefs of the stationary conjugate Gaussian learner before each observation (closed form).

    After n observations the precision is ``1/v0 + n/sigma^2`` and the mean is the precision-weighted
    average of the prior mean and the observations.

    Returns:
        :class:`NormalBelief` with arrays of shape ``(T,)``: the belief before ``y[t]``.
    """
    y = model.check_obs(y)
    prior = model.check_belief(prior, "prior")
    n = np.arange(y.size)
    s = np.concatenate([[0.0], np.cumsum(y)[:-1]])
    prec = 1.0 / prior.var + n / model.sigma**2
    return NormalBelief((prior.mean / prior.var + s / model.sigma**2) / prec, 1.0 / prec)


def run_naive(model: GridModel, y, prior, p_c, names: Sequence[str] | None = None) -> Run:
    """The same as :func:`run` for a grid model, one trial at a time (the speed baseline)."""
    return run(model, y, prior, p_c, names, chunk=1)


@dataclass(frozen=True)
class RunLengthFilter:
    """The exact belief of the Gaussian task as a mixture over run lengths (no grid).

    Attributes:
        measures: ``"Sh1"``, ``"Sh2"``, ``"BF"`` per trial, from the mixture's closed-form predictives.
        gamma: the posterior probability of a change just before each observation (the weight of
            the component that restarted from the prior), ``(T,)``.
        yhat: point prediction of the belief before each observation, ``(T,)``.
        pred_var: its predictive variance, ``(T,)``.
        n_components: the largest number of run-length components held.
        longest: the longest run length with weight above the pruning threshold.
    """

    measures: dict[str, np.ndarray]
    gamma: np.ndarray
    yhat: np.ndarray
    pred_var: np.ndarray
    n_components: int
    longest: int


def run_length_filter(y, sigma: float = SIGMA_OBS, p_c: float = P_CHANGE, mu0: float = MU0,
                      sigma0: float = SIGMA0, prune: float = 1e-16) -> RunLengthFilter:
    """The exact Bayesian filter of the Gaussian change-point task as a run-length mixture.

    After Adams & MacKay (2007): the belief is :math:`\\sum_r w_r N(m_r, v_r)` over the run length
    r (observations since the last change), every component a conjugate posterior of the prior.
    Independent of the grid (closed forms in log space); components below ``prune`` times the
    largest weight are dropped (each drop changes the belief by at most that fraction).

    Args:
        y: observations ``(T,)``, T >= 1.
        sigma: observation noise (units of y), > 0.
        p_c: change probability in [0, 1).
        mu0, sigma0: the prior of the mean (units of y).
        prune: relative weight below which a component is dropped, in [0, 1).

    Returns:
        :class:`RunLengthFilter`.
    """
    y = np.asarray(y, float)
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)):
        raise ValueError(f"y must be a 1-D sequence of at least one finite observation, got shape {y.shape}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if not (np.isfinite(sigma0) and sigma0 > 0) or not np.isfinite(mu0):
        raise ValueError(f"the prior needs a finite mu0 and sigma0 > 0, got {mu0!r}, {sigma0!r}")
    p_c = _check_p_c(p_c)
    if not (0 <= prune < 1):
        raise ValueError(f"prune must be in [0, 1), got {prune!r}")
    s2, v0 = float(sigma) ** 2, float(sigma0) ** 2
    l1 = math.log1p(-p_c)
    lpc = math.log(p_c) if p_c > 0 else -np.inf
    lcut = math.log(prune) if prune > 0 else -np.inf
    T = y.size
    sh1, sh2, lbf, gamma, yhat, pvar = (np.empty(T) for _ in range(6))
    m, v, lw, r = np.array([mu0]), np.array([v0]), np.array([0.0]), np.array([0])
    n_comp = longest = 0
    lp0_all = -0.5 * np.log(2 * np.pi * (v0 + s2)) - 0.5 * (y - mu0) ** 2 / (v0 + s2)
    for t in range(T):                              # the recursion is sequential
        w = np.exp(lw)
        yhat[t] = w @ m
        pvar[t] = w @ (v + m * m) - yhat[t] ** 2 + s2
        lpr = -0.5 * np.log(2 * np.pi * (v + s2)) - 0.5 * (y[t] - m) ** 2 / (v + s2)
        lp = special.logsumexp(lw + lpr)
        lp0 = lp0_all[t]
        lph = np.logaddexp(l1 + lp, lpc + lp0)
        sh1[t], sh2[t], lbf[t] = -lp, -lph, lp0 - lp
        lg = lpc + lp0 - lph
        gamma[t] = math.exp(lg)
        k = v / (v + s2)
        k0 = v0 / (v0 + s2)
        m = np.append(m + k * (y[t] - m), mu0 + k0 * (y[t] - mu0))
        v = np.append(v * (1 - k), v0 * (1 - k0))
        lw = np.append(l1 + lw + lpr - lph, lg)
        r = np.append(r + 1, 1)
        keep = lw > lw.max() + lcut
        m, v, lw, r = m[keep], v[keep], lw[keep], r[keep]
        lw = lw - special.logsumexp(lw)
        n_comp, longest = max(n_comp, m.size), max(longest, int(r.max()))
    return RunLengthFilter({"Sh1": sh1, "Sh2": sh2, "BF": np.exp(lbf)}, gamma, yhat, pvar, n_comp, longest)


def longest_run(change) -> int:
    """The longest stretch of steps without a change (``change[t]`` True where the parameter was redrawn)."""
    change = np.asarray(change, bool)
    if change.ndim != 1 or change.size == 0:
        raise ValueError(f"change must be a non-empty 1-D boolean array, got shape {change.shape}")
    starts = np.flatnonzero(np.concatenate([[True], change[1:]]))
    return int(np.diff(np.append(starts, change.size)).max())


# ---------------------------------------------------------------------------------------------
# Analyses used by the chapter
# ---------------------------------------------------------------------------------------------


def error_sweep(model, belief, deltas, prior, p_c, names: Sequence[str] | None = None, **overrides):
    """All measures for one fixed belief and observations ``y = yhat + delta``.

    Args:
        model: :class:`GridModel` or :class:`NormalModel`.
        belief: a single belief (no batch axis).
        deltas: signed prediction errors (units of y), shape ``(n,)``.
        prior, p_c: the prior and the volatility.
        names: measures (default: :func:`applicable`).

    Returns:
        ``(delta, measures)``: the signed errors relative to :math:`\\hat y(\\pi^{(t)})` and a dict name -> ``(n,)``.
    """
    deltas = np.asarray(deltas, float)
    yhat = model.predictive_mean(belief)
    y = yhat + deltas
    if isinstance(model, GridModel):
        before = np.broadcast_to(belief, deltas.shape + belief.shape)
    else:
        before = NormalBelief(np.broadcast_to(belief.mean, deltas.shape), np.broadcast_to(belief.var, deltas.shape))
    after, _ = update(model, before, y, prior, p_c)
    return deltas, compute_all(model, before, y, after, prior, p_c, names, **overrides)


def is_strictly_increasing(x, s) -> bool:
    """Whether ``s`` is strictly increasing in ``x`` (ties in ``x`` are an error)."""
    x, s = np.asarray(x, float), np.asarray(s, float)
    if x.shape != s.shape or x.ndim != 1:
        raise ValueError(f"x and s must be 1-D of the same length, got {x.shape} and {s.shape}")
    order = np.argsort(x)
    if np.any(np.diff(x[order]) <= 0):
        raise ValueError("x has ties; strict monotonicity in x is undefined")
    return bool(np.all(np.diff(s[order]) > 0))


def order_violations(x, s, rtol: float = 1e-9) -> float:
    """Fraction of pairs of observations that ``s`` orders against ``x`` (0 for strictly increasing).

    A pair ``x_i < x_j`` is a violation when ``s_j < s_i - rtol * range(s)`` (a real drop) or
    ``s_j == s_i`` (an exact tie: not strictly increasing); a drop smaller than
    ``rtol * range(s)`` is rounding, not a reversal. Use ``rtol=0`` to count every drop.

    Args:
        x: the variable (distinct values), 1-D.
        s: the measure, same shape.
        rtol: relative tolerance of a drop (fraction of the range of ``s``), >= 0.

    Returns:
        The fraction in [0, 1].
    """
    x, s = np.asarray(x, float), np.asarray(s, float)
    if x.shape != s.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and s must be 1-D of the same length >= 2, got {x.shape} and {s.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(s))):
        raise ValueError("x and s must be finite")
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    order = np.argsort(x)
    if np.any(np.diff(x[order]) <= 0):
        raise ValueError("x has ties; the order of s along x is undefined")
    so = s[order]
    scale = float(np.ptp(so))
    i, j = np.triu_indices(so.size, 1)
    d = so[j] - so[i]                               # pairs with x_i < x_j
    bad = (d < -rtol * scale) | (d == 0)            # a real drop, or an exact tie
    return float(bad.mean())


def rank_correlation(measures: Mapping[str, np.ndarray], names: Sequence[str] | None = None):
    """Spearman rank correlations between measures across trials.

    Returns:
        ``(names, rho)`` with ``rho`` of shape ``(n, n)``.
    """
    names = list(measures) if names is None else list(names)
    X = np.column_stack([np.asarray(measures[n], float) for n in names])
    if not np.all(np.isfinite(X)):
        raise ValueError("measures must be finite to be rank-correlated")
    rho = np.atleast_2d(stats.spearmanr(X).statistic)
    if X.shape[1] == 2:  # spearmanr returns a scalar for two variables
        rho = np.array([[1.0, rho[0, 0]], [rho[0, 0], 1.0]])
    return names, rho


def cluster_order(rho, method: str = "average"):
    """Hierarchical clustering of measures with distance ``1 - rho``.

    Returns:
        ``(order, linkage)``: the leaf order and the scipy linkage matrix.
    """
    rho = np.asarray(rho, float)
    d = np.clip(1.0 - (rho + rho.T) / 2.0, 0.0, None)
    np.fill_diagonal(d, 0.0)
    Z = hierarchy.linkage(squareform(d, checks=False), method=method)
    return hierarchy.leaves_list(Z), Z


def detection_auc(measures: Mapping[str, np.ndarray], change, skip_first: bool = True) -> dict[str, float]:
    """Area under the ROC curve of each measure as a detector of a change just before the observation.

    Args:
        measures: name -> surprise per trial.
        change: True where the parameter was redrawn just before the observation.
        skip_first: leave out trial 0 (a "change" by convention).

    Returns:
        name -> AUC (NaN for every measure when the trials hold no change or only changes).
    """
    from sklearn.metrics import roc_auc_score

    change = np.asarray(change, bool)
    sl = slice(1, None) if skip_first else slice(None)
    if change[sl].all() or not change[sl].any():
        return {n: float("nan") for n in measures}
    return {n: float(roc_auc_score(change[sl], np.asarray(v)[sl])) for n, v in measures.items()}


#: The variant pairs (belief vs change-aware prior) of the Gaussian task.
VARIANT_PAIRS: tuple[tuple[str, str], ...] = tuple((a + "1", a + "2") for a in ("Sh", "Abs", "Sq", "Ba", "Po", "CC"))


def task_summary(measures: Mapping[str, np.ndarray], change, exclude: Sequence[str] = ("uRPE",)) -> dict:
    """The headline statistics of one run: most distinct measure, weakest variant pair, best detector.

    Returns:
        Dict with ``most_distinct`` (lowest mean Spearman rho with the others), ``mean_rho_bf``,
        ``weakest_pair`` and its ``weakest_rho``, ``best_detector`` and its ``best_auc`` (None / NaN when
        the run holds no change point).
    """
    names = [n for n in measures if n not in exclude]
    if len(names) < 2:
        raise ValueError(f"task_summary needs at least two measures besides {tuple(exclude)}, got {names}")
    change = np.asarray(change, bool)
    lengths = {np.shape(measures[n]) for n in names}
    if len(lengths) != 1 or lengths.pop() != change.shape or change.ndim != 1:
        raise ValueError("the measures and `change` must be 1-D of the same length, got shapes "
                         f"{sorted({np.shape(measures[n]) for n in names})} and {change.shape}")
    if change.size < 3:
        raise ValueError(f"task_summary needs at least 3 trials to rank-correlate, got {change.size}")
    names, rho = rank_correlation(measures, names)
    mean = (rho.sum(1) - 1.0) / (len(names) - 1)
    idx = {n: i for i, n in enumerate(names)}
    pairs = [(rho[idx[a], idx[b]], f"{a}/{b}") for a, b in VARIANT_PAIRS if a in idx and b in idx]
    weakest = min(pairs) if pairs else (float("nan"), None)
    auc = detection_auc(measures, change)
    best = max(auc, key=lambda k: -np.inf if np.isnan(auc[k]) else auc[k])
    return {"most_distinct": names[int(np.argmin(mean))],
            "mean_rho_bf": float(mean[idx["BF"]]) if "BF" in idx else None,
            "weakest_pair": weakest[1], "weakest_rho": float(weakest[0]),
            "best_detector": None if np.isnan(auc[best]) else best, "best_auc": auc[best]}


@dataclass(frozen=True)
class MatchedSplit:
    """The Bayes-factor vs Shannon experimental prediction (after Liakoni et al.'s analysis).

    Trials with matched :math:`|\\hat y|` and :math:`|\\delta|` are split by
    :math:`s = \\mathrm{sign}(\\delta\\,\\hat y)`: ``+1`` observations move away from the prior mean,
    ``-1`` towards it.

    Attributes:
        levels: centres of the ``|delta|`` bins (units of y).
        n_plus, n_minus: trials per bin and sign.
        bf_plus, bf_minus: mean S_BF per bin and sign.
        sh_plus, sh_minus: mean S_Sh1 per bin and sign (nats).
        var_plus, var_minus: mean predictive variance per bin and sign (units of y squared).
    """

    levels: np.ndarray
    n_plus: np.ndarray
    n_minus: np.ndarray
    bf_plus: np.ndarray
    bf_minus: np.ndarray
    sh_plus: np.ndarray
    sh_minus: np.ndarray
    var_plus: np.ndarray
    var_minus: np.ndarray

    @property
    def bf_ratio(self) -> np.ndarray:
        """Mean S_BF towards the prior mean over mean S_BF away from it."""
        return self.bf_minus / self.bf_plus

    @property
    def sh_diff(self) -> np.ndarray:
        """Mean S_Sh1 towards minus away (nats)."""
        return self.sh_minus - self.sh_plus


def bf_vs_shannon(yhat, y, bf, sh, pred_var, levels, center: float = 1.0, halfwidth: float = 0.3,
                  dwidth: float = 0.05, var_band: tuple[float, float] | None = None) -> MatchedSplit:
    """Split trials into matched bins and average S_BF and S_Sh1 per sign (see :class:`MatchedSplit`).

    Args:
        yhat: point predictions ``(T,)``; y: observations ``(T,)``; bf, sh: the measures; pred_var: predictive variance.
        levels: centres of the ``|delta|`` bins (units of y).
        center, halfwidth: the ``|yhat|`` band (units of y).
        dwidth: half-width of each ``|delta|`` bin (units of y).
        var_band: optional (low, high) band of the predictive variance, to match it too.
    """
    yhat, y, bf, sh, pv = (np.asarray(a, float) for a in (yhat, y, bf, sh, pred_var))
    if len({a.shape for a in (yhat, y, bf, sh, pv)}) != 1 or yhat.ndim != 1:
        raise ValueError("yhat, y, bf, sh and pred_var must be 1-D arrays of the same shape, got "
                         + ", ".join(str(a.shape) for a in (yhat, y, bf, sh, pv)))
    if not all(np.all(np.isfinite(a)) for a in (yhat, y, bf, sh, pv)):
        raise ValueError("yhat, y, bf, sh and pred_var must be finite (a NaN would silently leave a bin empty)")
    levels = np.asarray(levels, float)
    if levels.ndim != 1 or levels.size == 0 or not np.all(np.isfinite(levels)) or np.any(levels < 0):
        raise ValueError(f"levels must be a non-empty 1-D array of |delta| >= 0, got {levels!r}")
    for name, val in (("center", center), ("halfwidth", halfwidth), ("dwidth", dwidth)):
        if not (np.isfinite(val) and val >= 0) or (name != "center" and val == 0):
            raise ValueError(f"{name} must be a finite number {'>= 0' if name == 'center' else '> 0'}, got {val!r}")
    delta = y - yhat
    sel = np.abs(np.abs(yhat) - center) <= halfwidth
    if var_band is not None:
        sel &= (pv >= var_band[0]) & (pv <= var_band[1])
    s = np.sign(delta * yhat)
    cols = {k: [] for k in ("n_plus", "n_minus", "bf_plus", "bf_minus", "sh_plus", "sh_minus", "var_plus", "var_minus")}
    for c in levels:
        m = sel & (np.abs(np.abs(delta) - c) <= dwidth)
        for sign, tag in ((1, "plus"), (-1, "minus")):
            k = m & (s == sign)
            cols[f"n_{tag}"].append(int(k.sum()))
            for name, arr in (("bf", bf), ("sh", sh), ("var", pv)):
                cols[f"{name}_{tag}"].append(float(arr[k].mean()) if k.any() else np.nan)
    return MatchedSplit(np.asarray(levels, float), **{k: np.asarray(v) for k, v in cols.items()})
