"""The protocol of the chapter ``surprise-taxonomy``: presets per scale, runs over tasks, figures.

The chapter follows A. Modirshanechi, J. Brea and W. Gerstner, "A taxonomy of surprise
definitions", *Journal of Mathematical Psychology* 110:102712 (2022). The science (observation
models, beliefs, the 18 definitions, the filter and the analyses) is :mod:`lib.surprise`; this
module holds what belongs to the chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- runs: :func:`long_runs` and :func:`pool` (the long Gaussian runs, pooled across seeds) and
  :func:`task_sweep` (the headline statistics over the preset's tasks, each on a grid adapted to
  its sigma, with the grid's error measured against the exact run-length mixture);
- :func:`involves_change`: which definitions the framework predicts to become distinguishable
  in a volatile world;
- the controls of the claims (:func:`gamma_without_odds`, :func:`cross_variant_errors`,
  :func:`shuffled_pair_rho`, :func:`least_correlated`): the same metric on a broken formula or
  on a measure that lacks the property;
- figures: :func:`plot_measures_over_time` (Fig. A) and :func:`plot_correlations` (Fig. B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from scipy.cluster import hierarchy

from lib import plotting, scales
from lib.surprise import (
    CONCENTRATION,
    MEASURES,
    N_OUTCOMES,
    P_CHANGE,
    SIGMA_OBS,
    THETA_MAX,
    GridModel,
    Run,
    TaskData,
    applicable,
    bayesian,
    compute_all,
    postdictive,
    rank_correlation,
    run,
    run_length_filter,
    simulate_gaussian,
    task_summary,
    update,
)

# ---------------------------------------------------------------------------------------------
# Presets per scale
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Sizes of the chapter's runs at one scale.

    Attributes:
        sigma: observation noise of the Gaussian task (units of y).
        p_c: change probability per step.
        n_theta: points of the theta-grid on ``[-theta_max, theta_max]`` for the default task
            (spacing 0.02 at ci and book, 0.00667 at paper); reproduce.md prints its error
            bound (:meth:`lib.surprise.GridModel.discretisation_error`) and its measured error.
        theta_max: half-width of the grid (units of y; 8 prior sds, 9 at paper scale, where the
            long runs hold 5e5 observations and one beyond 6.3 (5.6 sds) becomes likely enough
            to matter; the sweep's grids widen further where a task's observations need it).
        t_show: steps of the time-series figure.
        t_long: steps of the long run (correlations, the BF-vs-Shannon prediction, detection).
        n_seeds: independent long runs, pooled.
        t_cat: steps of the categorical task.
        n_outcomes: outcomes of the categorical task.
        concentration: Dirichlet concentration of the categorical task.
        error_levels: centres of the ``|prediction error|`` bins of the BF-vs-Shannon prediction (units of y).
        tasks: (sigma, p_c) pairs of the robustness sweep.
        t_sweep: steps per task of the sweep.
        sweep_tol: bound on the discretisation error (nats, and of gamma) of each sweep task's
            grid, which adapts to the task's sigma and to the longest run length of its belief.
    """

    sigma: float = SIGMA_OBS
    p_c: float = P_CHANGE
    n_theta: int = 801
    theta_max: float = THETA_MAX
    t_show: int = 1000
    t_long: int = 40_000
    n_seeds: int = 1
    t_cat: int = 2000
    n_outcomes: int = N_OUTCOMES
    concentration: float = CONCENTRATION
    error_levels: tuple[float, ...] = (0.2, 0.5, 0.8, 1.0)
    tasks: tuple[tuple[float, float], ...] = ((0.5, 0.05), (1.0, 0.05), (0.5, 0.01), (1.0, 0.01))
    t_sweep: int = 10_000
    sweep_tol: float = 1e-6


PRESETS: dict[str, Preset] = {
    # ci: the book's grid (801 points; with 401, spacing 0.04, the bound on its error reaches
    # 2.8e-6 for the longest run length, 206, of the time-series run at seed 5, where
    # gamma-is-change-posterior measured 9.0e-11 against its 1e-10; with 801, 1.4e-15).
    "ci": Preset(t_show=300, t_long=4000, t_cat=400, tasks=((0.5, 0.05), (1.0, 0.01)), t_sweep=1500),
    "book": Preset(),
    "paper": Preset(
        n_theta=2701, theta_max=9.0, t_long=100_000, n_seeds=5, t_cat=20_000, t_sweep=100_000,
        tasks=tuple((s, p) for s in (0.1, 0.5, 1.0, 5.0) for p in (0.1, 0.05, 0.01, 0.001)),
    ),
}


def preset(scale: str) -> Preset:
    """The chapter's preset at ``scale`` (``"ci"``, ``"book"`` or ``"paper"``).

    Raises:
        ValueError: for an unknown scale (the message lists the valid ones).
    """
    return scales.pick(PRESETS, scale)


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def long_runs(P: Preset, model: GridModel, prior: np.ndarray,
              rng: np.random.Generator) -> list[tuple[TaskData, Run]]:
    """``P.n_seeds`` independent long runs of the Gaussian task, every definition computed.

    Args:
        P: the preset (``t_long`` steps, ``sigma``, ``p_c``).
        model: the grid model.
        prior: its prior belief.
        rng: the generator (spawned into one child per run).

    Returns:
        One ``(task, run)`` pair per seed.
    """
    out = []
    for r in rng.spawn(P.n_seeds):
        task = simulate_gaussian(P.t_long, P.sigma, P.p_c, r)
        out.append((task, run(model, task.y, prior, P.p_c)))
    return out


@dataclass(frozen=True)
class Pooled:
    """Long runs concatenated along the trial axis.

    Attributes:
        measures: definition name -> surprise per trial.
        y: observations; change: True where the parameter was redrawn before the observation.
        yhat: the point predictions; pred_var: the predictive variances (units of y squared).
    """

    measures: dict[str, np.ndarray]
    y: np.ndarray
    change: np.ndarray
    yhat: np.ndarray
    pred_var: np.ndarray


def pool(runs: Sequence[tuple[TaskData, Run]]) -> Pooled:
    """Concatenate the trials of :func:`long_runs` (in run order)."""
    if not runs:
        raise ValueError("pool needs at least one run")

    def cat(f):
        return np.concatenate([f(t, r) for t, r in runs])

    measures = {n: cat(lambda t, r, n=n: r.measures[n]) for n in runs[0][1].measures}
    return Pooled(measures, cat(lambda t, r: t.y), cat(lambda t, r: t.change),
                  cat(lambda t, r: r.yhat), cat(lambda t, r: r.pred_var))


def sweep_grid(P: Preset, sigma: float, run_length: int, y=None) -> GridModel:
    """The grid of one sweep task: spacing from sigma and the belief's longest run length.

    A belief that integrated r observations is as narrow as ``sigma / sqrt(r + 1)``; a fixed grid
    (2001 points on +-6 at sigma = 0.1, p_c = 0.001) is off by 0.03 nats there.
    :meth:`lib.surprise.GridModel.adapted` keeps the error below ``P.sweep_tol`` and widens the
    grid beyond ``P.theta_max`` where the task's observations ``y`` need it.
    """
    return GridModel.adapted(sigma, run_length, P.sweep_tol, P.theta_max, y=y)


def task_sweep(P: Preset, rng: np.random.Generator) -> list[dict]:
    """:func:`lib.surprise.task_summary` of one run per ``(sigma, p_c)`` of ``P.tasks``.

    Each task first runs the exact run-length mixture (:func:`lib.surprise.run_length_filter`),
    which gives the longest run length its belief holds; the grid adapts to it
    (:func:`sweep_grid`), and the grid's Shannon surprise is compared with the mixture's.

    Args:
        P: the preset (``tasks``, ``t_sweep``, ``sweep_tol``, ``theta_max``).
        rng: the generator (spawned into one child per task, in task order).

    Returns:
        One dict per task: ``sigma``, ``p_c``, the number of ``changes``, the grid's points, its
        error bound and measured error (``Sh1 error``, nats), and the summary.
    """
    rows = []
    for (sig, pc), r in zip(P.tasks, rng.spawn(len(P.tasks)), strict=True):
        tk = simulate_gaussian(P.t_sweep, sig, pc, r)
        exact = run_length_filter(tk.y, sig, pc)
        m = sweep_grid(P, sig, exact.longest, tk.y)
        rr = run(m, tk.y, m.prior(), pc, chunk=max(1, min(1000, 4_000_000 // m.n)))
        err = float(np.abs(rr.measures["Sh1"] - exact.measures["Sh1"]).max())
        rows.append({"sigma": sig, "p_c": pc, "changes": int(tk.change[1:].sum()), "grid points": m.n,
                     "error bound": m.discretisation_error(exact.longest), "Sh1 error": err,
                     **task_summary(rr.measures, tk.change)})
    return rows


def involves_change(name: str) -> bool:
    """Whether a definition involves the possibility of a change, so that the framework predicts
    it to stop being a function of ``|y - yhat|`` at a fixed belief when ``p_c > 0``.

    True for the Bayes factor, every variant-2 definition (they use the change-aware prior,
    whose prior component is centred elsewhere) and the Bayesian and postdictive surprises (the
    volatile posterior holds a restarted component); False for the rest.
    """
    by_name = {m.name: m for m in MEASURES}
    if name not in by_name:
        raise ValueError(f"unknown measure {name!r}; expected one of {', '.join(by_name)}")
    m = by_name[name]
    return name == "BF" or dict(m.kwargs).get("variant") == "changeaware" or m.func in (bayesian, postdictive)


# ---------------------------------------------------------------------------------------------
# Controls of the claims: the same metric on a broken formula or a measure without the property
# ---------------------------------------------------------------------------------------------


def gamma_without_odds(bf, p_c: float) -> np.ndarray:
    """The control of ``gamma-is-change-posterior``: the adaptation rate with the prior odds
    ``m = p_c / (1 - p_c)`` replaced by ``p_c`` (the ``1 - p_c`` dropped), ``p_c S / (1 + p_c S)``.

    Args:
        bf: Bayes-factor surprises S_BF; p_c: the change probability.
    """
    x = p_c * np.asarray(bf, dtype=float)
    return x / (1.0 + x)


def cross_variant_errors(measures: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """The controls of ``spe-is-function-of-shannon`` and ``abs-is-twice-spe``: both identities
    with the two variants crossed (``S_SPE1`` against ``S_Sh2``, ``S_Abs1`` against ``2 S_SPE2``,
    and the other way round).

    Args:
        measures: the categorical run's measures (``Sh``, ``SPE``, ``Abs``, variants 1 and 2).

    Returns:
        ``(max |S_SPE - (1 - exp(-S_Sh))|, max |S_Abs - 2 S_SPE|)`` over both crossings.
    """
    c = measures
    other = {"1": "2", "2": "1"}
    e_spe = max(np.abs(c["SPE" + v] - (1 - np.exp(-c["Sh" + other[v]]))).max() for v in "12")
    e_abs = max(np.abs(c["Abs" + v] - 2 * c["SPE" + other[v]]).max() for v in "12")
    return float(e_spe), float(e_abs)


def shuffled_pair_rho(measures: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]],
                      rng: np.random.Generator) -> float:
    """The control of ``variant-pairs-correlated``: the smallest Spearman correlation within the
    pairs after the trials of each pair's second member are shuffled (one permutation per pair).
    """
    out = []
    for a, b in pairs:
        shuffled = {"a": measures[a], "b": rng.permutation(np.asarray(measures[b]))}
        out.append(float(rank_correlation(shuffled)[1][0, 1]))
    return min(out)


def least_correlated(names: Sequence[str], rho: np.ndarray) -> str:
    """The measure with the lowest mean Spearman correlation with the others (``rho`` from
    :func:`lib.surprise.rank_correlation`)."""
    rho = np.asarray(rho, dtype=float)
    mean = (rho.sum(axis=1) - 1.0) / (len(names) - 1)
    return list(names)[int(np.argmin(mean))]


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

#: The definitions of Fig. A, one panel per conceptual category.
FIG_A_GROUPS: dict[str, list[str]] = {
    "prediction": ["Sh1", "Sh2", "Abs1", "Sq1"],
    "change-point detection": ["BF"],
    "confidence-corrected": ["CC1", "CC2"],
    "information gain": ["Ba1", "Ba2", "Po1", "Po2"],
}


def plot_measures_over_time(task: TaskData, rs: Run, n_steps: int = 300,
                            groups: Mapping[str, Sequence[str]] = FIG_A_GROUPS):
    """Fig. A: observations, hidden mean and belief, then the definitions over time by category.

    Each measure is divided by its 99th percentile over the whole run; dotted lines mark the
    change points.

    Args:
        task: the simulated task; rs: its run (with the belief moments).
        n_steps: the first steps shown.
        groups: panel title -> definition names.

    Returns:
        The figure.
    """
    t = np.arange(min(n_steps, len(task.y)))
    fig, axs = plt.subplots(1 + len(groups), 1, figsize=(9, 9), sharex=True,
                            height_ratios=[1.4] + [1] * len(groups))
    axs[0].plot(t, task.y[t], ".", ms=2.5, color="0.6", label="$y_t$")
    axs[0].step(t, task.theta[t], where="post", color="k", lw=1, label=r"hidden mean $\Theta_t$")
    bm, bsd = rs.belief_mean[t], rs.belief_sd[t]
    axs[0].fill_between(t, bm - bsd, bm + bsd, color=plotting.color(0), alpha=0.35,
                        label="belief mean $\\pm$ sd")
    axs[0].set(ylabel="y (a.u.)")
    axs[0].legend(loc="upper right", ncol=3, fontsize=8)
    for ax, (cat, names) in zip(axs[1:], groups.items(), strict=True):
        for i, n in enumerate(names):
            ax.plot(t, rs.measures[n][t] / np.quantile(rs.measures[n], 0.99), lw=1,
                    color=plotting.color(i), label=n)
        ax.set(ylabel="S / q99", title=cat, yscale="log" if cat.startswith("change") else "linear")
        ax.legend(loc="upper right", ncol=4, fontsize=8)
    for ax in axs:
        for c in np.flatnonzero(task.change[t][1:]) + 1:
            ax.axvline(c, color="0.3", ls=":", lw=0.7)
    axs[-1].set_xlabel("step t")
    return fig


def plot_correlations(Z: np.ndarray, names: Sequence[str], R):
    """Fig. B: the dendrogram of the definitions above their rank-correlation matrix.

    Args:
        Z: the linkage matrix (:func:`lib.surprise.cluster_order`).
        names: the definitions in the order of the rows of the correlation matrix that ``Z``
            clusters.
        R: the correlation matrix as a ``pandas.DataFrame`` in leaf order.

    Returns:
        The figure.
    """
    ordered = list(R.index)
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(7, 8), height_ratios=[1, 4])
    hierarchy.dendrogram(Z, labels=list(names), ax=a0, color_threshold=0, above_threshold_color="0.3",
                         no_labels=True)
    a0.set(ylabel=r"distance $1 - \rho$", xlim=(0, 10 * len(ordered)))
    a0.spines["bottom"].set_visible(False)
    im = a1.imshow(R.values, vmin=-0.2, vmax=1, cmap="viridis", aspect="auto")
    a1.set_xticks(range(len(ordered)), ordered, rotation=90)
    a1.set_yticks(range(len(ordered)), ordered)
    for i in range(len(ordered)):
        for j in range(len(ordered)):
            a1.text(j, i, f"{R.values[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                    color="k" if R.values[i, j] > 0.6 else "w")
    fig.colorbar(im, ax=[a0, a1], shrink=0.6, label=r"Spearman $\rho$ across trials")
    return fig


__all__ = [
    "explore_measures",
    "FIG_A_GROUPS", "PRESETS", "Pooled", "Preset", "cross_variant_errors", "gamma_without_odds",
    "involves_change", "least_correlated", "long_runs", "plot_correlations", "shuffled_pair_rho",
    "plot_measures_over_time", "pool", "preset", "sweep_grid", "task_sweep",
]


def explore_measures(mean: float = 0.8, sd: float = 0.3, p_c: float = 0.05, sigma: float = 0.5) -> None:
    """The explorer of the theory notebook: five surprise measures against the observation.

    A Gaussian belief ``N(mean, sd^2)`` on a grid (:class:`lib.surprise.GridModel`, prior
    ``N(0, 1)``), observation noise ``sigma`` and volatility ``p_c``; Shannon, Bayes-factor,
    Bayesian, confidence-corrected surprise and the absolute error, for observations from -3 to 3
    (:func:`lib.surprise.compute_all`). Each curve is scaled to its own maximum, so that their
    shapes can be compared.
    """
    model = GridModel.build(sigma, 801, 8.0)
    prior = model.prior()
    ys = np.linspace(-3.0, 3.0, 121)
    b = np.broadcast_to(model.gaussian_belief(mean, sd), (ys.size, model.n))
    post, _ = update(model, b, ys, prior, p_c)
    names = [n for n in ("Sh1", "BF", "Ba1", "CC1", "Abs1") if n in applicable(model, p_c)]
    vals = compute_all(model, b, ys, post, prior, p_c, names=names)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for i, (name, v) in enumerate(vals.items()):
        v = np.asarray(v, dtype=float)
        ax.plot(ys, v / np.nanmax(np.abs(v)), color=plotting.color(i), label=name)
    ax.axvline(mean, color="0.5", lw=0.8, ls="--", label="belief mean")
    ax.axvline(0.0, color="0.8", lw=0.8, ls=":", label="prior mean")
    ax.set(xlabel="observation y (units of y)", ylabel="surprise / its maximum (dimensionless)",
           title=f"belief N({mean:g}, {sd:g}²), p_c = {p_c:g}, sigma = {sigma:g}")
    ax.legend(fontsize=8, ncol=2)
    plt.show()
