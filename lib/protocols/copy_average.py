"""The protocol of the chapter ``copy-average``: presets per scale, experiments, figures.

The chapter reproduces Şimşek, Bendjeddou, Gerstner & Brea (2023), "Should under-parameterized
student networks copy or average teacher weights?", NeurIPS 36 (arXiv:2311.01644). The science
(closed-form Gaussian losses, copy-average points, gradient flow, classification of end points)
is :mod:`lib.teacher_student`; this module holds what belongs to the chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- the checks of the closed forms: :func:`monte_carlo_checks`, :func:`finite_difference_errors`,
  :func:`autograd_errors` (torch, float64, CPU);
- the landscape: :func:`partition_table`, :func:`copy_average_checks`;
- gradient flow: :func:`flow`,
  :func:`phase_grid`, :func:`phase_summary`, :func:`single_neuron_runs`;
- figures: :func:`plot_trajectory`, :func:`plot_phase`, :func:`plot_group_loss`.

Every random draw of a run comes from ``lib.seeds.rng(seed, k, n, s, stream)`` (the book's seeding
rule, ``SeedSequence([seed, k, n, s, stream])``): a run is fixed by the notebook's seed, its teacher
and student widths and its seed index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib import plotting, progress, scales, seeds
from lib import teacher_student as ts

#: The last label of a run's stream ``seeds.rng(seed, k, n, s, stream)``: its initialisation and
#: its checks use different streams.
STREAM_INIT, STREAM_CHECK = 0, 1


@dataclass(frozen=True)
class Preset:
    """The sizes of one scale.

    Attributes:
        mc_samples: Gaussian inputs per Monte-Carlo check.
        check_k_max: copy-average points checked for every partition of every ``k <= check_k_max``.
        table_k: teacher widths of the partition table (curvature of every copy-average point).
        small_k, small_n, small_seeds: the small gradient-flow runs of the ci claim.
        phase_k: teacher widths of the phase grid (students ``n = 1..k-1``).
        phase_seeds: seeds per cell of the phase grid.
        relu_single_k: teacher widths of the ReLU single-neuron runs.
        relu_single_seeds: seeds per width of those runs.
        relu_pair_seeds: seeds of the ReLU ``k = 3, n = 2`` trajectories.
        group_m_max: largest group size of the ``L*(m)/m`` curve.
        method: the ``solve_ivp`` method of the flow.
        rtol, atol: its tolerances.
        grad_tol: the flow's stopping rule, ``max |grad L| < grad_tol``.
        polish_tol: the Newton polish's target.
        t_max: the longest flow (flow units).
        max_steps: most solver steps of one run (erf).
        relu_max_steps: most solver steps of one ReLU run (ReLU flows can be singular).
    """

    mc_samples: int
    check_k_max: int
    table_k: tuple[int, ...]
    small_k: int
    small_n: int
    small_seeds: int
    phase_k: tuple[int, ...]
    phase_seeds: int
    relu_single_k: tuple[int, ...]
    relu_single_seeds: int
    relu_pair_seeds: int
    group_m_max: int
    method: str = "BDF"
    rtol: float = 1e-8
    atol: float = 1e-10
    grad_tol: float = 1e-9
    polish_tol: float = 1e-13
    t_max: float = 1e8
    max_steps: int = 100_000
    relu_max_steps: int = 4_000


PRESETS: dict[str, Preset] = {
    "ci": Preset(mc_samples=200_000, check_k_max=6, table_k=(3, 4, 5), small_k=4, small_n=2,
                 small_seeds=6, phase_k=(3, 4), phase_seeds=2, relu_single_k=(3, 4),
                 relu_single_seeds=1, relu_pair_seeds=2, group_m_max=12),
    "book": Preset(mc_samples=1_000_000, check_k_max=8, table_k=(3, 4, 5, 6, 7, 8), small_k=4,
                   small_n=2, small_seeds=6, phase_k=(3, 4, 5, 6, 7, 8), phase_seeds=8,
                   relu_single_k=(3, 4, 5, 6, 7, 8), relu_single_seeds=2, relu_pair_seeds=4,
                   group_m_max=100),
    # The paper's solver settings (MLPGradientFlow.jl, scripts/phase_transition.jl): an implicit
    # solver at tolerances 1e-6, at most 1e5 steps; the paper's seed counts are not known.
    "paper": Preset(mc_samples=4_000_000, check_k_max=10, table_k=tuple(range(3, 11)), small_k=4,
                    small_n=2, small_seeds=10, phase_k=tuple(range(3, 11)), phase_seeds=50,
                    relu_single_k=tuple(range(3, 11)), relu_single_seeds=10, relu_pair_seeds=20,
                    group_m_max=1000, method="Radau", rtol=1e-6, atol=1e-6),
}


def preset(scale: str) -> Preset:
    """The :class:`Preset` of ``scale`` (``"ci"``, ``"book"`` or ``"paper"``; else ``ValueError``)."""
    return scales.pick(PRESETS, scale)


# ----------------------------------------------------------------------------- checks of the closed forms


#: The other activation: its closed form is the control of the closed-form checks.
_OTHER = {"erf": "relu", "relu": "erf"}

#: The control of the derivative checks: the analytic derivatives at a point moved by this
#: much in every coordinate (right formulas, wrong place).
DERIVATIVE_SHIFT = 1e-4


def _random_problem(rng: np.random.Generator, activation: str, k: int = 3, n: int = 2, d: int = 4):
    teacher = ts.Teacher(rng.normal(size=k), rng.normal(size=(k, d)) / math.sqrt(d))
    problem = ts.Problem(teacher, n, activation)
    return problem, 0.8 * rng.normal(size=problem.n_params)


def monte_carlo_checks(n_samples: int, rng: np.random.Generator) -> pd.DataFrame:
    """Closed forms against Monte Carlo: random kernel pairs and losses, erf and ReLU.

    Args:
        n_samples: Gaussian inputs per check.
        rng: the random generator.

    Returns:
        One row per check: what, activation, closed form, the control's closed form (that of
        the other activation: a wrong kernel), Monte-Carlo mean, its standard error, the z-score
        ``(closed - mc) / se`` and the control's z-score.
    """
    rows = []
    for act in ts.ACTIVATIONS:
        other = _OTHER[act]
        for _ in range(3):
            w, z = rng.normal(size=(2, 5))
            closed = float(ts.kernel(w[None], z[None], act)[0, 0])
            wrong = float(ts.kernel(w[None], z[None], other)[0, 0])
            mean, se = ts.monte_carlo_kernel(w, z, act, n_samples, rng)
            rows.append(("kernel g(w, z), random pair", act, closed, wrong, mean, se))
        problem, theta = _random_problem(rng, act)
        wrong = ts.Problem(problem.teacher, problem.n, other).loss(theta)
        mean, se = ts.monte_carlo_loss(problem, theta, n_samples, rng)
        rows.append(("loss, random teacher and student", act, problem.loss(theta), wrong, mean,
                     se))
    teacher = ts.unit_orthonormal_teacher(4)
    problem = ts.Problem(teacher, 2, "erf")
    theta = ts.copy_average_point(teacher, (3, 1))
    wrong = ts.Problem(teacher, 2, "relu").loss(theta)
    mean, se = ts.monte_carlo_loss(problem, theta, n_samples, rng)
    rows.append(("loss at the CA point (3, 1)", "erf", problem.loss(theta), wrong, mean, se))
    df = pd.DataFrame(rows, columns=["check", "activation", "closed form", "control closed form",
                                     "Monte Carlo", "SE"])
    df["z"] = (df["closed form"] - df["Monte Carlo"]) / df["SE"]
    df["z control"] = (df["control closed form"] - df["Monte Carlo"]) / df["SE"]
    return df


def finite_difference_errors(rng: np.random.Generator, h: float = 1e-5) -> pd.DataFrame:
    """Analytic gradient and Hessian against central differences, at random points.

    Error model: central differences with step ``h`` err by ``h^2 |L'''| / 6`` (truncation) plus
    ``eps |L| / h`` (rounding), both ``< 1e-9`` here for ``h = 1e-5``.

    Returns:
        One row per activation: the largest absolute errors of the gradient and the Hessian, and
        the control's (both derivatives at the point moved by :data:`DERIVATIVE_SHIFT`).
    """
    rows = []
    for act in ts.ACTIVATIONS:
        problem, theta = _random_problem(rng, act, k=4, n=3, d=5)
        g, H = problem.gradient_and_hessian(theta)
        g_c, H_c = problem.gradient_and_hessian(theta + DERIVATIVE_SHIFT)
        E = np.eye(theta.size) * h
        g_fd = np.array([(problem.loss(theta + e) - problem.loss(theta - e)) / (2 * h) for e in E])
        H_fd = np.array([(problem.gradient(theta + e) - problem.gradient(theta - e)) / (2 * h) for e in E])
        rows.append((act, theta.size, np.abs(g - g_fd).max(), np.abs(H - H_fd).max(),
                     max(np.abs(g_c - g_fd).max(), np.abs(H_c - H_fd).max())))
    return pd.DataFrame(rows, columns=["activation", "parameters", "gradient error", "Hessian error",
                                       "control error"])


def _torch_loss(problem: ts.Problem):
    """The population loss written again in torch, independently of lib.teacher_student."""
    import torch

    V = torch.tensor(problem.teacher.V, dtype=torch.float64)
    b = torch.tensor(problem.teacher.a, dtype=torch.float64)
    n, d, act = problem.n, problem.d, problem.activation

    def g(X, Y, off=None):
        nx, ny = (X * X).sum(-1)[:, None], (Y * Y).sum(-1)[None, :]
        c = X @ Y.T
        if off is not None:
            c = torch.where(off, c, torch.zeros_like(c))
        if act == "erf":
            return 2 / math.pi * torch.asin(c / torch.sqrt((1 + nx) * (1 + ny)))
        r = torch.sqrt(nx * ny)
        u = c / r
        return r / (2 * math.pi) * (torch.sqrt(1 - u * u) + (math.pi - torch.acos(u)) * u)

    def loss(theta):
        a, W = theta[:n], theta[n:].reshape(n, d)
        off = ~torch.eye(n, dtype=torch.bool)
        sq = (W * W).sum(-1)
        diag = 2 / math.pi * torch.asin(sq / (1 + sq)) if act == "erf" else sq / 2
        G = torch.where(off, g(W, W, off), torch.diag(diag))
        return a @ G @ a - 2 * a @ g(W, V) @ b + problem.teacher_term

    return loss


def autograd_errors(rng: np.random.Generator) -> pd.DataFrame:
    """Analytic gradient and Hessian against ``torch.func.grad`` / ``torch.func.hessian`` (float64, CPU).

    Returns:
        One row per activation: the largest errors relative to the largest torch entry, and the
        control's (both derivatives at the point moved by :data:`DERIVATIVE_SHIFT`).
    """
    import torch

    rows = []
    for act in ts.ACTIVATIONS:
        problem, theta = _random_problem(rng, act, k=4, n=3, d=5)
        f = _torch_loss(problem)
        t = torch.tensor(theta, dtype=torch.float64)
        g_t = torch.func.grad(f)(t).numpy()
        H_t = torch.func.hessian(f)(t).numpy()
        g, H = problem.gradient_and_hessian(theta)
        g_c, H_c = problem.gradient_and_hessian(theta + DERIVATIVE_SHIFT)
        rows.append((act, abs(float(f(t)) - problem.loss(theta)) / abs(problem.loss(theta)),
                     np.abs(g - g_t).max() / np.abs(g_t).max(), np.abs(H - H_t).max() / np.abs(H_t).max(),
                     max(np.abs(g_c - g_t).max() / np.abs(g_t).max(),
                         np.abs(H_c - H_t).max() / np.abs(H_t).max())))
    return pd.DataFrame(rows, columns=["activation", "loss rel. error", "gradient rel. error",
                                       "Hessian rel. error", "control rel. error"])


# ----------------------------------------------------------------------------- the landscape


def partition_table(ks, curvature: bool = True) -> pd.DataFrame:
    """Every copy-average point of the unit-orthonormal erf teacher (``d = k + 1``), ``n < k``.

    Args:
        ks: teacher widths.
        curvature: also compute the Hessian's spectrum (index, smallest eigenvalue).

    Returns:
        One row per ``(k, n, partition)``: loss, ``sum_i L*(m_i)``, ``max |grad|``, number of
        negative Hessian eigenvalues (below ``-1e-8``), smallest eigenvalue, and whether the
        partition is the paper's optimum and the arg-min over partitions.
    """
    rows = []
    for k in ks:
        teacher = ts.unit_orthonormal_teacher(k)
        for n in range(1, k):
            problem = ts.Problem(teacher, n)
            parts = ts.partitions(k, n)
            losses = []
            for part in parts:
                theta = ts.copy_average_point(teacher, part)
                g, H = problem.gradient_and_hessian(theta) if curvature else (problem.gradient(theta), None)
                lam = np.linalg.eigvalsh(H) if curvature else np.array([np.nan])
                losses.append(problem.loss(theta))
                rows.append(dict(k=k, n=n, partition=part, loss=losses[-1], ca_loss=ts.ca_loss(part),
                                 grad_norm=float(np.abs(g).max()), n_negative=int(np.sum(lam < -1e-8)),
                                 lambda_min=float(lam[0]), optimal=part == ts.optimal_partition(k, n)))
            best = parts[int(np.argmin(losses))]
            for r in rows[len(rows) - len(parts):]:
                r["argmin"] = r["partition"] == best
    return pd.DataFrame(rows)


def copy_average_checks(k_max: int) -> dict:
    """The ci claims on copy-average points: criticality, additivity and the best partition.

    Args:
        k_max: every partition of every ``k = 2..k_max`` into ``n < k`` groups is checked.

    Returns:
        A dict with the table (``"table"``), the largest gradient norm, the largest loss
        deviation from ``sum L*(m_i)``, whether the arg-min is ``(k-n+1, 1, ..., 1)`` in every
        cell and the smallest gap to the runner-up; the control's largest gradient norm and loss
        deviation (``control_max_grad``, ``control_max_dev``) at the points of
        :func:`mean_point`.
    """
    tab = partition_table(range(2, k_max + 1), curvature=False)
    gaps = []
    best_ok = True
    for (_, _), cell in tab.groupby(["k", "n"]):
        best_ok &= bool(cell.loc[cell["argmin"], "optimal"].all())
        if len(cell) > 1:
            srt = np.sort(cell["loss"].to_numpy())
            gaps.append(srt[1] - srt[0])
    ctl_grad = ctl_dev = 0.0
    for r in tab.itertuples():
        teacher = ts.unit_orthonormal_teacher(r.k)
        problem = ts.Problem(teacher, r.n)
        theta = mean_point(teacher, r.partition)
        ctl_grad = max(ctl_grad, problem.grad_norm(theta))
        ctl_dev = max(ctl_dev, abs(problem.loss(theta) - r.ca_loss))
    return {"table": tab, "max_grad": float(tab["grad_norm"].max()),
            "max_dev": float((tab["loss"] - tab["ca_loss"]).abs().max()), "best_ok": best_ok,
            "min_gap": float(min(gaps)), "cells": int(tab.groupby(["k", "n"]).ngroups), "points": len(tab),
            "control_max_grad": float(ctl_grad), "control_max_dev": float(ctl_dev)}


def mean_point(teacher: ts.Teacher, partition) -> np.ndarray:
    """The control of the copy-average checks: like
    :func:`lib.teacher_student.copy_average_point`, but each student's input weights are the
    plain mean of its group's teachers, ``w_i = sum_{j in S_i} v_j / m_i``, without the
    normalisation ``1 / sqrt(m_i (2 m_i - 1))`` (``a_i = m_i``). Copies (``m_i = 1``) are
    unchanged; every partition with ``n < k`` has an average, so the point is wrong there."""
    theta = ts.copy_average_point(teacher, partition)
    sizes = np.asarray(partition, dtype=float)
    n, d = len(sizes), teacher.d
    W = theta[n:].reshape(n, d) * (np.sqrt(sizes * (2 * sizes - 1)) / sizes)[:, None]
    return np.concatenate([theta[:n], W.ravel()])


# ----------------------------------------------------------------------------- gradient flow


def initial_point(k: int, n: int, s: int, seed: int,
                  activation: str = "erf") -> tuple[ts.Problem, np.ndarray]:
    """The problem (unit-orthonormal teacher, ``d = k + 1``) and the Glorot initialisation of
    run ``(k, n, s)``: the start of :func:`flow`, and the "initialisation only" control of the
    flow claims."""
    problem = ts.Problem(ts.unit_orthonormal_teacher(k), n, activation)
    return problem, ts.glorot_init(problem, seeds.rng(seed, k, n, s, STREAM_INIT))


def flow(P: Preset, k: int, n: int, s: int, seed: int, activation: str = "erf") -> tuple[ts.Problem, ts.FlowResult]:
    """One gradient-flow run from the Glorot initialisation of run ``(k, n, s)``.

    Returns:
        The problem (unit-orthonormal teacher, ``d = k + 1``) and the :class:`~lib.teacher_student.FlowResult`.
    """
    problem, theta0 = initial_point(k, n, s, seed, activation)
    steps = P.max_steps if activation == "erf" else P.relu_max_steps
    res = ts.gradient_flow(problem, theta0, method=P.method, t_max=P.t_max, rtol=P.rtol, atol=P.atol,
                           grad_tol=P.grad_tol, polish_tol=P.polish_tol, max_steps=steps)
    return problem, res


def phase_grid(P: Preset, seed: int, ks=None, show: bool = True) -> pd.DataFrame:
    """Gradient flow from ``P.phase_seeds`` initialisations in every cell ``(k, n)``, ``n < k``.

    Args:
        P: the preset.
        seed: the notebook's seed.
        ks: teacher widths (default ``P.phase_k``).
        show: show a progress bar.

    Returns:
        One row per run: k, n, s, kind of end point (:data:`lib.teacher_student.KINDS`), its loss,
        the optimal copy-average loss ``L*(k-n+1)``, gradient norm, smallest Hessian eigenvalue,
        the flow's end time, gradient evaluations and whether the flow converged; and for the
        "initialisation only" control, the kind, loss and ``|cos(w_1, sum_j v_j)|`` of the
        initial point.
    """
    ks = P.phase_k if ks is None else ks
    cells = [(k, n, s) for k in ks for n in range(1, k) for s in range(P.phase_seeds)]
    rows = []
    kw = {} if show else {"disable": True}
    for k, n, s in progress.bar(cells, desc="phase grid", **kw):
        problem, res = flow(P, k, n, s, seed)
        e = ts.classify(problem, res.theta_end)
        e0 = ts.classify(problem, res.theta[0])  # the control: the initialisation alone
        w = res.theta_end[n:].reshape(n, -1)
        cos_avg = float(np.abs(w[0] @ problem.teacher.V.sum(0)) / (np.linalg.norm(w[0]) * math.sqrt(k)))
        rows.append(dict(k=k, n=n, s=s, kind=e.kind, loss=res.loss_end, L_opt=ts.group_loss(k - n + 1),
                         grad_norm=res.grad_norm_end, lambda_min=e.lambda_min, t_end=res.t_end,
                         n_grad=res.n_grad, converged=res.flow_converged, cos_avg=cos_avg,
                         kind_init=e0.kind, loss_init=e0.loss,
                         cos_avg_init=_cos_avg(problem, res.theta[0])))
    return pd.DataFrame(rows)


def _cos_avg(problem: ts.Problem, theta) -> float:
    """``|cos(w_1, sum_j v_j)|`` of the first student."""
    w = np.asarray(theta)[problem.n:].reshape(problem.n, -1)[0]
    u = problem.teacher.V.sum(0)
    return float(abs(w @ u) / (np.linalg.norm(w) * np.linalg.norm(u)))


def phase_counts(grid: pd.DataFrame) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """The counts of the phase-grid claims, pooled over their cells, for the flow's end points
    and for the control (the initial points, classified by the same rule).

    Returns:
        ``{claim id: ((k, n), (k_control, n_control))}`` for ``phase-ca-below-diagonal``
        (cells ``n <= k - 2``, ending at the optimal CA point), ``phase-small-teachers-all-ca``
        (cells ``k <= 4``) and ``phase-approx-copy-at-diagonal`` (``n = k - 1``, ``k >= 7``:
        approximate copies below ``L*(2)``).
    """
    L2 = ts.group_loss(2)
    sel = {"phase-ca-below-diagonal": (grid["n"] <= grid["k"] - 2, "optimal-ca"),
           "phase-small-teachers-all-ca": (grid["k"] <= 4, "optimal-ca"),
           "phase-approx-copy-at-diagonal": ((grid["n"] == grid["k"] - 1) & (grid["k"] >= 7),
                                             "approx-copy")}
    out = {}
    for cid, (mask, kind) in sel.items():
        g = grid[mask]
        hit = g["kind"] == kind
        hit0 = g["kind_init"] == kind
        if kind == "approx-copy":
            hit, hit0 = hit & (g["loss"] < L2), hit0 & (g["loss_init"] < L2)
        out[cid] = ((int(hit.sum()), len(g)), (int(hit0.sum()), len(g)))
    return out


def phase_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """Per cell ``(k, n)``: the number of runs, the fraction ending at each kind of end point,
    the fraction of approximate copies below ``L*(2)``, and the smallest end loss."""
    out = []
    for (k, n), cell in grid.groupby(["k", "n"]):
        row = dict(k=k, n=n, runs=len(cell))
        for kind in ts.KINDS:
            row[kind] = float(np.mean(cell["kind"] == kind))
        row["approx-copy below L*(2)"] = float(np.mean((cell["kind"] == "approx-copy")
                                                       & (cell["loss"] < ts.group_loss(2))))
        row["min loss"] = float(cell["loss"].min())
        row["L*(k-n+1)"] = ts.group_loss(k - n + 1)
        out.append(row)
    return pd.DataFrame(out)


def single_neuron_runs(P: Preset, seed: int, activation: str, ks, seeds: int) -> pd.DataFrame:
    """Gradient flow of one student neuron against its closed-form critical point.

    Returns:
        One row per run: k, s, end loss, closed-form loss (``L*(k)`` for erf,
        :func:`lib.teacher_student.relu_single_neuron_loss` for ReLU), ``|cos(w, sum_j v_j)|``,
        the score ``max(|L - L_closed|, 1 - |cos|)``, gradient norm, the solver's message, and
        the control's score ``control_score`` (the same score at the initialisation).
    """
    rows = []
    for k in ks:
        for s in range(seeds):
            problem, res = flow(P, k, 1, s, seed, activation)
            w = res.theta_end[1:]
            u = problem.teacher.V.sum(0)
            cos = float(abs(w @ u) / (np.linalg.norm(w) * np.linalg.norm(u)))
            closed = ts.group_loss(k) if activation == "erf" else ts.relu_single_neuron_loss(k)
            cos0 = _cos_avg(problem, res.theta[0])
            rows.append(dict(k=k, s=s, loss=res.loss_end, closed=closed, cos=cos,
                             score=max(abs(res.loss_end - closed), 1.0 - cos),
                             grad_norm=res.grad_norm_end, message=res.message,
                             control_score=max(abs(res.loss[0] - closed), 1.0 - cos0)))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- figures


def _plane(k: int) -> np.ndarray:
    """An orthonormal basis (2 x k) of the plane orthogonal to ``(1, ..., 1)`` (k = 3: a ternary view)."""
    ang = 2 * np.pi * np.arange(k) / k + np.pi / 2
    B = np.stack([np.cos(ang), np.sin(ang)])
    return B / np.linalg.norm(B, axis=1, keepdims=True)


def plot_trajectory(ax_w, ax_loss, problem: ts.Problem, res: ts.FlowResult, label: str,
                    reference: float | None = None, color_offset: int = 0) -> None:
    """Fig. 1 of the paper: student weights projected on the teachers' plane, and loss against time.

    The left panel shows ``(v_1 . w_i, ..., v_k . w_i)`` projected on the plane orthogonal to
    ``(1, ..., 1)`` (the teachers sit at the corners, the average at the centre); the end points are
    circles of area proportional to ``|a_i|``. The right panel shows the loss against time.
    For erf, a student whose output weight ends negative is drawn as its sign-flipped image
    ``(-a_i, -w_i)`` (the same function), so that every end point shows with ``a_i > 0``.

    Args:
        ax_w, ax_loss: matplotlib axes.
        problem: the problem (its teacher gives the projection).
        res: the flow.
        label: the legend label of the loss curve.
        reference: a loss to draw as a dashed line (e.g. ``L*(k - n + 1)``).
        color_offset: first palette colour.
    """
    B = _plane(problem.k)
    n, d = problem.n, problem.d
    sign = np.where(res.theta_end[:n] < 0, -1.0, 1.0)  # (a, w) -> (-a, -w) for erf: a_end > 0
    if problem.activation != "erf":
        sign = np.ones(n)
    W = sign[:, None] * (res.theta[:, n:].reshape(-1, n, d) @ problem.teacher.V.T)
    corners = B.T
    ax_w.scatter(corners[:, 0], corners[:, 1], marker="*", s=120, color="0.2", zorder=3)
    for j, (x, y) in enumerate(corners):
        ax_w.annotate(f"$v_{j + 1}$", (x, y), textcoords="offset points", xytext=(6, 4))
    for i in range(n):
        xy = W[:, i] @ B.T
        c = plotting.color(color_offset + i)
        ax_w.plot(xy[:, 0], xy[:, 1], color=c, lw=1.2)
        ax_w.scatter(*xy[0], marker="x", color=c)
        ax_w.scatter(*xy[-1], s=40 * abs(res.theta_end[i]), facecolors="none", edgecolors=c, lw=1.5)
    ax_w.set(xlabel="projection 1 of $(v_j \\cdot w_i)_j$ (dimensionless)",
             ylabel="projection 2 (dimensionless)", aspect="equal")
    ax_loss.loglog(res.t[1:], res.loss[1:], color=plotting.color(color_offset), label=label)
    if reference is not None:
        ax_loss.axhline(reference, color="0.4", ls="--", lw=0.8)
    ax_loss.set(xlabel="time (flow units)", ylabel="loss (dimensionless)")


def plot_phase(ax, summary: pd.DataFrame, column: str = "optimal-ca"):
    """The phase diagram: per cell ``(k, n)`` the fraction of runs in ``column``, as colour and count.

    Args:
        ax: a matplotlib axis.
        summary: the output of :func:`phase_summary`.
        column: a fraction column of the summary (a kind of end point).

    Returns:
        The image (for a colour bar).
    """
    ks = sorted(int(k) for k in summary["k"].unique())
    n_max = max(ks) - 1
    M = np.full((n_max, len(ks)), np.nan)
    for _, r in summary.iterrows():
        M[int(r["n"]) - 1, ks.index(int(r["k"]))] = r[column]
    im = ax.imshow(M, origin="lower", cmap="viridis", vmin=0, vmax=1, aspect="auto",
                   extent=(ks[0] - 0.5, ks[-1] + 0.5, 0.5, n_max + 0.5))
    for _, r in summary.iterrows():
        ax.text(r["k"], r["n"], f"{round(r[column] * r['runs'])}/{int(r['runs'])}", ha="center",
                va="center", fontsize=7, color="w" if r[column] < 0.6 else "k")
    ax.set(xlabel="teacher width k (neurons)", ylabel="student width n (neurons)",
           xticks=ks, yticks=list(range(1, n_max + 1)))
    return im


def plot_group_loss(ax, m_max: int) -> None:
    """``L*(m) / m`` against ``m`` with its limit ``1/3 - 1/pi``."""
    m = np.arange(1, m_max + 1)
    ax.semilogx(m, ts.group_loss(m) / m, "o-", ms=3, label="$L^*(m)/m$")
    ax.axhline(ts.GROUP_LOSS_LIMIT, color="0.4", ls="--", label="$1/3 - 1/\\pi$")
    ax.set(xlabel="teachers averaged by one student, m (neurons)",
           ylabel="loss per teacher (dimensionless)")
    ax.legend()


def explore_flow(k: int = 4, n: int = 2, init_seed: int = 0, relu: int = 0) -> None:
    """The explorer of the theory notebook: one gradient flow from a Glorot initialisation.

    A student of ``n`` neurons learns a unit-orthonormal teacher of ``k`` neurons (erf, or ReLU
    with ``relu=1``); the left panel shows the students' weights on the teachers' plane, the
    right one the loss against time, with the loss of the optimal copy-average point for erf
    (:func:`lib.protocols.copy_average.plot_trajectory`). The end point is classified with
    :func:`lib.teacher_student.classify`.
    """
    import matplotlib.pyplot as plt

    k, n = int(k), int(n)
    if not 1 <= n < k:
        raise ValueError(f"need 1 <= n < k, got n = {n}, k = {k}")
    activation = "relu" if relu else "erf"
    problem = ts.Problem(ts.unit_orthonormal_teacher(k), n, activation)
    theta0 = ts.glorot_init(problem, seeds.rng(int(init_seed), k, n, 0, STREAM_INIT))
    res = ts.gradient_flow(problem, theta0)
    ref = ts.group_loss(k - n + 1) if activation == "erf" else None
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.4))
    plot_trajectory(ax[0], ax[1], problem, res, label=activation, reference=ref)
    end = ts.classify(problem, res.theta_end)
    ax[1].set_title(f"{activation}, k = {k}, n = {n}: ends {end.kind}")
    plt.show()
