"""The protocol of the chapter ``gradient-flow``: presets per scale, experiments, figures.

The chapter reproduces Brea, Martinelli, Şimşek & Gerstner (2023), "MLPGradientFlow: going with
the flow of multilayer perceptrons (and finding minima fast and accurately)", arXiv:2301.10638.
The science is :mod:`lib.gradflow` (finite data: an MLP with analytic gradient and Hessian,
solvers, descent, minimisers) and :mod:`lib.teacher_student` (the infinite-data limit under
Gaussian input). This module holds what belongs to the chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- checks: :func:`derivative_checks`, :func:`monte_carlo_check`;
- experiments: :func:`integrators`, :func:`minima`, :func:`infinite_vs_finite`,
  :func:`speed_table`;
- figures: :func:`plot_integrators`, :func:`plot_minima`, :func:`plot_infinite`,
  :func:`plot_speed`, and :func:`draw_descent`, the theory page's explorer.

Every random draw comes from ``lib.seeds.rng(seed, experiment, index)`` (the book's seeding rule,
``SeedSequence([seed, experiment, index])``), with the experiment numbers ``EXP_*`` below.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lib import gradflow as gf
from lib import plotting, progress, scales, seeds
from lib import teacher_student as ts

#: Experiment numbers, the first stream label of ``seeds.rng(seed, experiment, index)``.
EXP_CHECK, EXP_FLOW, EXP_MINIMA, EXP_INFINITE, EXP_SPEED = range(5)


@dataclass(frozen=True)
class Preset:
    """The sizes of one scale.

    Attributes:
        mc_samples: Gaussian inputs of the Monte-Carlo check of the infinite-data loss.
        check_n: samples of the derivative checks.
        flow_n: samples of the integrator comparison (33 parameters).
        flow_seeds: seeds of the integrator comparison.
        flow_t_max: flow time (MSE units) that the solvers integrate.
        flow_methods: the ``solve_ivp`` methods compared with the reference.
        rk_max_steps: step budget of the explicit solvers.
        descent: ``(name, lr, steps)`` of the gradient-descent and Adam arms.
        minima_seeds: seeds of the minima experiment.
        minima_n: its samples.
        minima_lm_evals: residual evaluations of its Levenberg-Marquardt arm.
        minima_max_iter: iteration budget of Newton and BFGS.
        inf_n: sample sizes of the finite- vs infinite-data comparison.
        inf_seeds: data sets per sample size.
        speed_p: parameter counts of the speed table (``P = 4 k + 1``).
        speed_n: batch sizes of the speed table.
        speed_repeats: timed repeats per cell (median reported).
        cost_repeats: timed samples of each constant of the cost model (:func:`eval_costs`).
    """

    mc_samples: int
    check_n: int
    flow_n: int
    flow_seeds: int
    flow_t_max: float
    flow_methods: tuple[str, ...]
    rk_max_steps: int
    descent: tuple[tuple[str, float, int], ...]
    minima_seeds: int
    minima_n: int
    minima_lm_evals: int
    minima_max_iter: int
    inf_n: tuple[int, ...]
    inf_seeds: int
    speed_p: tuple[int, ...]
    speed_n: tuple[int, ...]
    speed_repeats: int
    cost_repeats: int


PRESETS = {
    "ci": Preset(mc_samples=200_000, check_n=300, flow_n=1000, flow_seeds=1, flow_t_max=1e3,
                 flow_methods=("Radau", "BDF"), rk_max_steps=300,
                 descent=(("GD", 1e-2, 2000), ("Adam", 1e-3, 2000)),
                 minima_seeds=1, minima_n=500, minima_lm_evals=500, minima_max_iter=50,
                 inf_n=(1000, 10_000), inf_seeds=2, speed_p=(41,), speed_n=(100, 1000),
                 speed_repeats=3, cost_repeats=1),
    "book": Preset(mc_samples=1_000_000, check_n=1000, flow_n=1000, flow_seeds=2, flow_t_max=1e3,
                   flow_methods=("Radau", "BDF", "LSODA", "RK45"), rk_max_steps=600,
                   descent=(("GD", 1e-2, 5000), ("GD", 1e-3, 5000), ("Adam", 1e-3, 5000),
                            ("Adam", 1e-4, 5000)),
                   minima_seeds=5, minima_n=500, minima_lm_evals=3000,
                   minima_max_iter=200,
                   inf_n=(1000, 10_000, 100_000), inf_seeds=10, speed_p=(41, 201),
                   speed_n=(100, 1000), speed_repeats=5, cost_repeats=5),
    "paper": Preset(mc_samples=4_000_000, check_n=1000, flow_n=10_000, flow_seeds=10, flow_t_max=1e5,
                    flow_methods=("Radau", "BDF", "LSODA", "RK45", "DOP853"),
                    rk_max_steps=1_000_000,
                    descent=(("GD", 1e-2, 10**6), ("GD", 1e-3, 10**6), ("Adam", 1e-3, 10**6),
                             ("Adam", 1e-4, 10**6)),
                    minima_seeds=30, minima_n=10_000, minima_lm_evals=10**6,
                    minima_max_iter=100_000,
                    inf_n=(1000, 10_000, 100_000), inf_seeds=20, speed_p=(41, 201, 401),
                    speed_n=(10, 100, 1000, 10_000, 100_000), speed_repeats=10,
                    cost_repeats=10),
}


def preset(scale: str) -> Preset:
    """The :class:`Preset` of ``scale`` (``ci``, ``book`` or ``paper``)."""
    return scales.pick(PRESETS, scale)


# ----------------------------------------------------------------------------- problems


def softplus_problem(d: int, k_teacher: int, k_student: int, n: int,
                     rng: np.random.Generator) -> tuple[gf.Objective, np.ndarray]:
    """The paper's finite-data problem: a random softplus teacher (biases, weights N(0, 1)),
    ``n`` Gaussian inputs, a softplus student with biases and its Glorot initialisation.

    Returns:
        ``(objective, theta0)``.
    """
    teacher = gf.MLP(d, k_teacher, "softplus", bias=True)
    x, y = gf.teacher_data(teacher, teacher.random(rng), n, rng)
    net = gf.MLP(d, k_student, "softplus", bias=True)
    return gf.Objective(net, x, y), net.init(rng)


# ----------------------------------------------------------------------------- checks


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def derivative_checks(rng: np.random.Generator, n: int = 1000, k: int = 10) -> pd.DataFrame:
    """Analytic gradient and Hessian against central differences and torch (float64).

    One row per activation (softplus with biases, ``P = 4 k + 1``; erf without). Errors are
    relative to the largest entry of the reference. The columns ``Gauss-Newton ...`` are the
    control: the Hessian without its second-order term ``(2/N) sum_n e_n hess f_n``.
    """
    rows = []
    for act, bias in (("softplus", True), ("erf", False)):
        teacher = gf.MLP(2, 4, act, bias)
        x, y = gf.teacher_data(teacher, teacher.random(rng), n, rng)
        net = gf.MLP(2, k, act, bias)
        obj, th = gf.Objective(net, x, y), net.random(rng) * 0.5
        g, H = obj.gradient(th), obj.hessian(th)
        h = 1e-5
        eye = np.eye(net.n_params) * h
        g_fd = np.array([(obj.loss(th + e) - obj.loss(th - e)) / (2 * h) for e in eye])
        H_fd = np.array([(obj.gradient(th + e) - obj.gradient(th - e)) / (2 * h) for e in eye])
        g_t, H_t = gf.torch_derivatives(net, th, x, y, "func")
        J = net.jacobian(th, x)
        H_gn = (2.0 / n) * J.T @ J  # the control: the term sum_n e_n hess f_n removed
        rows.append({"activation": act, "P": net.n_params, "N": n,
                     "grad vs FD": _rel(g, g_fd), "Hessian vs FD": _rel(H, H_fd),
                     "grad vs torch": _rel(g, g_t), "Hessian vs torch": _rel(H, H_t),
                     "Gauss-Newton vs FD": _rel(H_gn, H_fd),
                     "Gauss-Newton vs torch": _rel(H_gn, H_t)})
    return pd.DataFrame(rows)


def erf_teacher(d: int, k: int, rng: np.random.Generator) -> ts.Teacher:
    """A random erf teacher without biases: ``a* ~ N(0, 1)``, ``V ~ N(0, 1/d)``."""
    return ts.Teacher(rng.normal(size=k), rng.normal(size=(k, d)) / np.sqrt(d))


def monte_carlo_check(n_samples: int, rng: np.random.Generator) -> pd.DataFrame:
    """The infinite-data loss and gradient (:mod:`lib.teacher_student`) against the finite-data
    MSE and gradient (:mod:`lib.gradflow`) on ``n_samples`` Gaussian inputs.

    A 4-neuron erf teacher in ``d = 3``, a 2-neuron student at a random point. Returns one row per
    quantity (loss, then each gradient component) with the z-score ``(MC - exact) / SE``, and
    the control's z-score ``z control``: the same Monte-Carlo means against the closed form of
    a ReLU network at the same point (a wrong kernel).
    """
    teacher = erf_teacher(3, 4, rng)
    problem = ts.Problem(teacher, 2, "erf")
    theta = rng.normal(size=problem.n_params)
    tnet, net = gf.MLP(3, 4, "erf", bias=False), gf.MLP(3, 2, "erf", bias=False)
    x, y = gf.teacher_data(tnet, tnet.pack(teacher.a, teacher.V), n_samples, rng)
    e = net.predict(theta, x) - y
    per = np.concatenate([(e * e)[:, None], 2 * e[:, None] * net.jacobian(theta, x)], axis=1)
    exact = np.concatenate([[problem.loss(theta)], problem.gradient(theta)])
    wrong = ts.Problem(teacher, 2, "relu")  # the control: the ReLU closed form, a wrong kernel
    control = np.concatenate([[wrong.loss(theta)], wrong.gradient(theta)])
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(n_samples)
    names = ["loss"] + [f"grad[{i}]" for i in range(problem.n_params)]
    return pd.DataFrame({"quantity": names, "exact": exact, "Monte Carlo": mean,
                         "SE": se, "z": (mean - exact) / se,
                         "z control": (mean - control) / se})


# ----------------------------------------------------------------------------- integrators


#: Tolerances of the independent reference flow (:func:`lib.gradflow.torch_flow`).
REF_RTOL, REF_ATOL = 1e-8, 1e-10

#: The largest distance at matched times that counts as following the flow
#: (``implicit-solver-follows-flow``); the solvers run at rtol = atol = 1e-6.
FLOW_ERROR_TOL = 1e-5

#: The control of the solver comparison: Radau on the loss scaled by this factor.
CONTROL_FACTOR = 2.0
CONTROL_NAME = f"Radau, gradient x{CONTROL_FACTOR:g} (control)"


def integrators(P: Preset, seed: int) -> pd.DataFrame:
    """The integrator comparison: solvers, gradient descent and Adam against the exact flow.

    For each seed: a 4-neuron softplus teacher in ``d = 2``, an 8-neuron student (33
    parameters), ``P.flow_n`` samples. The reference is independent of
    :class:`lib.gradflow.Objective`: the torch autograd gradient of the same loss integrated
    by Radau at rtol = 1e-8, atol = 1e-10 (:func:`lib.gradflow.torch_flow`) to
    ``P.flow_t_max``. Every other method starts at the same point; the control is Radau on the
    loss scaled by :data:`CONTROL_FACTOR` to ``P.flow_t_max / CONTROL_FACTOR`` (the same path
    as the reference, at the wrong speed). Columns: ``d_m`` (mean
    squared distance to the reference path, time ignored), ``t_m`` (progress along it),
    ``flow error`` (largest distance to the reference at the same times,
    :func:`lib.gradflow.flow_error`), the final MSE, gradient and Hessian evaluations, and the
    wall time (s).
    """
    rows = []
    for s in progress.bar(range(P.flow_seeds), desc="integrators"):
        obj, th0 = softplus_problem(2, 4, 8, P.flow_n, seeds.rng(seed, EXP_FLOW, s))
        ref, dense = gf.torch_flow(obj.net, th0, obj.x, obj.y, t_max=P.flow_t_max,
                                   rtol=REF_RTOL, atol=REF_ATOL)
        runs = []
        for m in P.flow_methods:
            steps = P.rk_max_steps if m not in gf.IMPLICIT_METHODS else 100_000
            runs.append(lambda m=m, steps=steps, obj=obj, th0=th0: gf.integrate_flow(
                obj, th0, method=m, t_max=P.flow_t_max, max_steps=steps))
        for name, lr, n in P.descent:
            runs.append(lambda lr=lr, n=n, name=name, obj=obj, th0=th0: gf.descent(
                obj, th0, lr=lr, n_steps=n, adam=name == "Adam", record_every=max(1, n // 500)))
        runs.append(lambda obj=obj, th0=th0: gf.integrate_flow(  # the same path as the flow
            gf.Scaled(obj, CONTROL_FACTOR), th0, method="Radau",
            t_max=P.flow_t_max / CONTROL_FACTOR))
        for i, run in enumerate(runs):
            t0 = time.perf_counter()
            tr = run()
            wall = time.perf_counter() - t0
            d_m, t_m = gf.trajectory_distance(tr, ref)
            name = CONTROL_NAME if i == len(runs) - 1 else tr.method
            rows.append({"seed": s, "method": name, "d_m": d_m, "t_m": t_m,
                         "flow error": gf.flow_error(tr, dense),
                         "final MSE": obj.loss(tr.end), "gradients": tr.n_grad,
                         "Hessians": tr.n_hess, "wall (s)": wall})
    return pd.DataFrame(rows)


def follows_flow(flows: pd.DataFrame, adam: str = "Adam(0.001)") -> tuple[bool, bool, str]:
    """The verdict of ``implicit-solver-follows-flow`` for the method and for its control.

    On every seed the better of Radau and BDF (by flow error) must be within
    :data:`FLOW_ERROR_TOL` of the reference at matched times, closer than ``adam``, and end at
    a lower MSE than ``adam``; the control (:data:`CONTROL_NAME`) is judged by the same rule.

    Returns:
        ``(ours, control, notes)``.
    """
    ours = control = True
    notes = []
    for s, g in flows.groupby("seed"):
        g = g.set_index("method")
        imp = g.loc[["Radau", "BDF"]].sort_values("flow error").iloc[0]
        ctl, ad = g.loc[CONTROL_NAME], g.loc[adam]

        def ok(r, ad=ad):
            return bool(r["flow error"] < FLOW_ERROR_TOL and r["flow error"] < ad["flow error"]
                        and r["final MSE"] < ad["final MSE"])

        ours &= ok(imp)
        control &= ok(ctl)
        notes.append(f"seed {s}: flow error {imp['flow error']:.1e} (control "
                     f"{ctl['flow error']:.1e}, Adam {ad['flow error']:.1e}), MSE "
                     f"{imp['final MSE']:.1e} (Adam {ad['final MSE']:.1e})")
    return ours, control, "; ".join(notes)


def plot_integrators(df: pd.DataFrame) -> None:
    """Progress and final loss against the distance to the exact flow, one marker per method."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, (m, g) in enumerate(df.groupby("method", sort=False)):
        kw = {"color": plotting.color(i), "label": m}
        axes[0].scatter(np.maximum(g["d_m"], 1e-20), g["t_m"], **kw)
        axes[1].scatter(np.maximum(g["d_m"], 1e-20), g["final MSE"], **kw)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"distance to the flow $d_m$ (squared, dimensionless)")
    axes[0].set_ylabel(r"progress $t_m$ (flow time, MSE units)")
    axes[1].set_ylabel("final MSE (dimensionless)")
    axes[1].legend(fontsize=8, loc="best")
    plt.show()


# ----------------------------------------------------------------------------- minima

#: Classes of the Hessian's smallest eigenvalue in the minima figure.
LAMBDA_CLASSES = (r"$\lambda_{min} < -10^{-8}$", r"$-10^{-8} \leq \lambda_{min} < 0$",
                  r"$0 \leq \lambda_{min} < 10^{-8}$", r"$\lambda_{min} \geq 10^{-8}$")


def lambda_class(lam: float) -> int:
    """The index in :data:`LAMBDA_CLASSES` of a smallest Hessian eigenvalue."""
    return int(np.searchsorted([-1e-8, 0.0, 1e-8], lam, side="right"))


#: The control of ``adam-stays-orders-above``: Adam(1e-3) from the warm start, in place of the
#: second-order optimisers, for the same cost.
ADAM_WARM = "Adam(0.001) from warm start (control)"

#: The cost of one evaluation or solver step in gradient evaluations (an Adam step counts as
#: one), for the equal-time comparison of :func:`minima`. Measured by :func:`eval_costs` on its
#: problem (33 parameters, 500 samples, one thread, ``time.process_time``; seeds 0 and 1, six
#: runs on a loaded 2-core machine): a Hessian 3.8-4.9 gradients, the residuals 0.6-0.75, their
#: Jacobian 1.3-1.7, an Adam step 1.0-1.4; besides the evaluations, MINPACK's own work per LM
#: iteration (its QR step) 5.8-7.5 and Radau's per step (its linear algebra) 3.3-11.3, without
#: which Adam got less than half the solvers' CPU time. Rounded up, and an Adam step counted as
#: one gradient, so that Adam's budget is if anything longer than the solvers' time. A fixed
#: cost model, not a clock, keeps Adam's step count, and so every printed number, the same from
#: run to run and machine to machine.
EVAL_COST = {"gradient": 1.0, "hessian": 6.0, "residuals": 1.0, "jacobian": 2.0,
             "lm_iteration": 8.0, "ode_step": 12.0}


def equal_cost_steps(n_grad: int, n_hess: int, n_res: int, n_jac: int,
                     n_ode_steps: int = 0) -> int:
    """Adam steps that cost as much as these evaluations and solver steps under
    :data:`EVAL_COST` (an LM iteration is one Jacobian evaluation)."""
    counts = {"gradient": n_grad, "hessian": n_hess, "residuals": n_res, "jacobian": n_jac,
              "lm_iteration": n_jac, "ode_step": n_ode_steps}
    if any(int(n) != n or n < 0 for n in counts.values()):
        raise ValueError(f"evaluation counts must be non-negative integers, got {counts}")
    return int(np.ceil(sum(EVAL_COST[k] * n for k, n in counts.items())))

#: The arms of :func:`minima` that use second-order information.
SECOND_ORDER = ("LM", "trust-exact", "BFGS")


class _Recorder:
    """An :class:`lib.gradflow.Objective` that records ``max |grad|`` at every Jacobian
    evaluation of Levenberg-Marquardt (one per accepted or tried step)."""

    def __init__(self, obj: gf.Objective):
        self.obj, self.trace, self.n_res = obj, [], 0
        self.loss, self.gradient, self.hessian = obj.loss, obj.gradient, obj.hessian

    def residuals(self, theta):
        self.n_res += 1
        return self.obj.residuals(theta)

    def residual_jacobian(self, theta):
        J = self.obj.residual_jacobian(theta)
        g = 2.0 * J.T @ self.obj.residuals(theta)
        self.trace.append((self.n_res, float(np.abs(g).max())))
        return J


def minima(P: Preset, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Finding minima: a 2-neuron softplus teacher, an 8-neuron student (33 parameters).

    Per seed: gradient flow (Radau, to t = 1e3) from a Glorot start, then from its end
    Levenberg-Marquardt on the residuals (``LM``, ``P.minima_lm_evals`` evaluations), Newton
    trust region (``trust-exact``) and BFGS (``P.minima_max_iter`` iterations). Adam(1e-3)
    from the same Glorot start runs for as many steps as the flow's and LM's evaluations cost
    under :data:`EVAL_COST` (``Adam(0.001)``: the paper's comparison at equal time, with a
    fixed cost model instead of a clock) and for as many derivative evaluations as they used
    (gradients, Hessians and Jacobians counted one each: ``Adam(0.001), equal evaluations``);
    the control :data:`ADAM_WARM` is Adam(1e-3) from the flow's end for the same cost.

    Returns:
        ``(table, trace)``: one row per seed and method (MSE, ``max |grad|``, ``lambda_min``,
        its class, iterations, CPU seconds); and LM's ``max |grad|`` against residual
        evaluations, per seed.
    """
    rows, traces = [], []
    for s in progress.bar(range(P.minima_seeds), desc="minima"):
        obj, th0 = softplus_problem(2, 2, 8, P.minima_n, seeds.rng(seed, EXP_MINIMA, s))
        t0 = time.process_time()
        ode = gf.integrate_flow(obj, th0, method="Radau", t_max=1e3)
        t_ode = time.process_time() - t0
        found = [(gf.describe(obj, ode.end, len(ode.t) - 1, "ODE (Radau)"), t_ode)]
        rec = _Recorder(obj)
        t0 = time.process_time()
        lm = gf.minimise(rec, ode.end, method="lm", max_iter=P.minima_lm_evals)
        t_lm = time.process_time() - t0
        found.append((_renamed(lm, "LM"), t_ode + t_lm))
        traces += [{"seed": s, "evaluations": n, "max |grad|": g} for n, g in rec.trace]
        for m in ("trust-exact", "BFGS"):
            t0 = time.process_time()
            r = gf.minimise(obj, ode.end, method=m, max_iter=P.minima_max_iter)
            found.append((r, t_ode + time.process_time() - t0))
        n_eval = ode.n_grad + ode.n_hess + len(rec.trace) + rec.n_res
        n_cost = equal_cost_steps(ode.n_grad, ode.n_hess, rec.n_res, len(rec.trace),
                                  len(ode.t) - 1)
        arms = [("Adam(0.001)", th0, n_cost),
                ("Adam(0.001), equal evaluations", th0, n_eval),
                (ADAM_WARM, ode.end, n_cost)]
        for name, start, n in arms:
            t0 = time.process_time()
            tr = gf.descent(obj, start, lr=1e-3, n_steps=n, adam=True, record_every=10**8)
            wall = time.process_time() - t0 + (t_ode if start is ode.end else 0.0)
            found.append((gf.describe(obj, tr.end, tr.n_grad, name), wall))
        for r, cpu in found:
            lam = np.abs(np.linalg.eigvalsh(obj.hessian(r.theta)))
            rows.append({"seed": s, "method": r.method, "MSE": r.loss, "max |grad|": r.grad_norm,
                         "lambda_min": r.lambda_min, "class": lambda_class(r.lambda_min),
                         f"|lambda| < {FLAT:g}": int(np.sum(lam < FLAT)),
                         "iterations": r.n_iter, "CPU (s)": cpu})
    return pd.DataFrame(rows), pd.DataFrame(traces)


#: Hessian eigenvalues below this (in absolute value) count as flat directions in :func:`minima`.
FLAT = 1e-10


def lm_decay(trace: pd.DataFrame, floor: float = 1e-15) -> pd.DataFrame:
    """How LM's ``max |grad|`` falls in each run of :func:`minima`: the end value, the
    least-squares slope of ``log10 max|grad|`` against ``log10`` evaluations over the last
    decade of evaluations, and whether it reached round-off (below ``floor``).

    Quadratic convergence squares the gradient norm at each step and reaches round-off in a few
    steps (the slope over a decade is then unbounded); a power law ``g ~ n^b`` keeps a finite
    slope ``b``.
    """
    rows = []
    for s, g in trace.groupby("seed"):
        n, v = g["evaluations"].to_numpy(float), g["max |grad|"].to_numpy(float)
        last = (n >= n.max() / 10) & (v > 0)
        slope = float(np.polyfit(np.log10(n[last]), np.log10(v[last]), 1)[0])
        rows.append({"seed": s, "LM end max |grad|": float(v[-1]),
                     "slope over last decade": slope,
                     "reached round-off": bool(v.min() < floor)})
    return pd.DataFrame(rows).set_index("seed")


def _renamed(m: gf.Minimum, method: str) -> gf.Minimum:
    return gf.Minimum(m.theta, m.loss, m.grad_norm, m.lambda_min, m.n_iter, method)


def minima_verdicts(mins: pd.DataFrame) -> dict:
    """The values of ``second-order-reach-machine-precision`` and ``adam-stays-orders-above``.

    ``second``: the largest over seeds of the best ``max |grad|`` among :data:`SECOND_ORDER`;
    ``warm``: the same for the warm start alone (its control); ``adam``: the smallest over
    seeds of Adam's ``max |grad|`` at equal cost; ``adam_warm``: the largest of the control
    :data:`ADAM_WARM`; ``adam_evals``: the smallest of Adam at equal evaluations.
    """
    g = mins.pivot(index="seed", columns="method", values="max |grad|")
    return {"second": float(g[list(SECOND_ORDER)].min(axis=1).max()),
            "warm": float(g["ODE (Radau)"].max()), "adam": float(g["Adam(0.001)"].min()),
            "adam_warm": float(g[ADAM_WARM].max()),
            "adam_evals": float(g["Adam(0.001), equal evaluations"].min())}


def plot_lm_trace(trace: pd.DataFrame) -> None:
    """LM's ``max |grad|`` against residual evaluations, one line per seed, log-log."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (s, g) in enumerate(trace.groupby("seed")):
        ax.plot(g["evaluations"], g["max |grad|"], color=plotting.color(i), label=f"run {s}")
    ax.axhline(1e-12, color="k", lw=0.8, ls="--", label="criterion $10^{-12}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("residual evaluations of Levenberg-Marquardt")
    ax.set_ylabel(r"$\max|\nabla \mathrm{MSE}|$ (dimensionless)")
    ax.legend(fontsize=7)
    plt.show()


def plot_minima(df: pd.DataFrame) -> None:
    """``max |grad|`` against MSE, marker per method, colour per class of ``lambda_min``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = dict(zip(df["method"].unique(), "osD^vPX*", strict=False))
    for m, g in df.groupby("method", sort=False):
        ax.scatter(np.maximum(g["MSE"], 1e-34), np.maximum(g["max |grad|"], 1e-34),
                   c=[plotting.color(c) for c in g["class"]], marker=markers[m], label=m,
                   edgecolors="k", linewidths=0.3)
    for c, text in enumerate(LAMBDA_CLASSES):
        ax.scatter([], [], color=plotting.color(c), label=text)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MSE (dimensionless)")
    ax.set_ylabel(r"$\max|\nabla \mathrm{MSE}|$ (dimensionless)")
    ax.legend(fontsize=7, loc="upper left")
    plt.show()


# ----------------------------------------------------------------------------- infinite data


def infinite_vs_finite(P: Preset, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Distance between finite-data minima and the infinite-data minimum.

    An 8-neuron erf teacher in ``d = 9`` without biases, a 3-neuron student (27 parameters).
    ``theta_inf`` comes from the infinite-data flow (:func:`lib.teacher_student.gradient_flow`,
    BDF, then Newton); for each ``N`` and data set, Newton trust region on the finite-data MSE
    from ``theta_inf`` gives ``theta_N``.

    Returns:
        ``(table, theta_inf)``; the table has one row per ``(N, data set)`` with
        ``|theta_N - theta_inf|^2`` and the gradient norms.
    """
    rng = seeds.rng(seed, EXP_INFINITE, 0)
    teacher = erf_teacher(9, 8, rng)
    problem = ts.Problem(teacher, 3, "erf")
    flow = ts.gradient_flow(problem, ts.glorot_init(problem, rng), method="BDF")
    th_inf = flow.theta_end
    tnet, net = gf.MLP(9, 8, "erf", bias=False), gf.MLP(9, 3, "erf", bias=False)
    th_t = tnet.pack(teacher.a, teacher.V)
    rows = []
    for i, n in enumerate(progress.bar(P.inf_n, desc="infinite data")):
        for s in range(P.inf_seeds):
            x, y = gf.teacher_data(tnet, th_t, n, seeds.rng(seed, EXP_INFINITE, 1 + 1000 * i + s))
            res = gf.minimise(gf.Objective(net, x, y), th_inf, method="trust-exact")
            rows.append({"N": n, "data set": s, "distance^2": float(np.sum((res.theta - th_inf) ** 2)),
                         "max |grad| finite": res.grad_norm,
                         "max |grad| infinite": problem.grad_norm(th_inf)})
    return pd.DataFrame(rows), th_inf


def slope(df: pd.DataFrame) -> float:
    """Least-squares slope of ``log10`` mean squared distance against ``log10 N``."""
    m = df.groupby("N")["distance^2"].mean()
    return float(np.polyfit(np.log10(m.index.to_numpy(float)), np.log10(m.to_numpy()), 1)[0])


def shuffled_slope(df: pd.DataFrame, rng: np.random.Generator) -> float:
    """The control of ``finite-data-distance-slope``: :func:`slope` after the sample sizes
    ``N`` are shuffled across the data sets (so a distance no longer belongs to its ``N``)."""
    return slope(df.assign(N=rng.permutation(df["N"].to_numpy())))


def plot_infinite(df: pd.DataFrame) -> None:
    """Squared distance against ``N``, every data set and the mean, with the fitted line."""
    m = df.groupby("N")["distance^2"].mean()
    fig, ax = plt.subplots()
    ax.scatter(df["N"], df["distance^2"], s=12, alpha=0.5, label="one data set")
    ax.plot(m.index, m.to_numpy(), "o", color=plotting.color(1), label="mean")
    b, a = np.polyfit(np.log10(m.index.to_numpy(float)), np.log10(m.to_numpy()), 1)
    nn = np.array([m.index.min(), m.index.max()], float)
    ax.plot(nn, 10 ** a * nn ** b, "--", color=plotting.color(1), label=f"fit, slope {b:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of samples N")
    ax.set_ylabel(r"$|\theta_N - \theta_\infty|^2$ (dimensionless)")
    ax.legend()
    plt.show()


# ----------------------------------------------------------------------------- speed


def timed(f, repeats: int, min_sample: float = 2e-3,
          warm_up: bool = True) -> tuple[float, float, float]:
    """CPU time of one call of ``f()``: ``(median, lower quartile, upper quartile)`` in seconds.

    ``time.process_time`` (the process's CPU time, so time the machine spends on other work
    does not count) over ``repeats`` samples after one warm-up call (``warm_up=False``: the
    caller has warmed it up); a sample times as many calls as take about ``min_sample``
    seconds (measured on a second call; none if ``min_sample`` is 0), so that short calls are
    not lost in the clock's resolution.
    """
    repeats = int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if warm_up:
        f()
    inner = 1
    if min_sample > 0:
        t0 = time.process_time()
        f()
        inner = max(1, int(np.ceil(min_sample / max(time.process_time() - t0, 1e-7))))
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(inner):
            f()
        samples.append((time.process_time() - t0) / inner)
    q25, med, q75 = np.percentile(samples, [25, 50, 75])
    return float(med), float(q25), float(q75)


def speed_table(p_values, n_values, repeats: int, seed: int) -> pd.DataFrame:
    """Gradient and Hessian times, ours against torch, one thread each.

    Each time is the median CPU time of one call over ``repeats`` warmed-up samples
    (:func:`timed`), with its spread (interquartile range over median) in the column
    ``<name> spread``.

    The paper's set-up: ``d = 2``, a softplus student of ``k = (P - 1) / 4`` neurons with biases,
    targets of a random 4-neuron softplus teacher, float64. Before timing, the Hessians must
    agree with ``torch.func.hessian`` to 1e-10 (relative). Columns ``ratio ...`` are torch time
    over ours.
    """
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with threadpool_limits(1):
            for p in p_values:
                for n in n_values:
                    rows.append(_speed_cell(p, n, repeats, seeds.rng(seed, EXP_SPEED, p * 10**6 + n)))
    finally:
        torch.set_num_threads(old)
    return pd.DataFrame(rows)


#: Above this many entries of torch.func.hessian's ``N x P x P`` intermediate a cell of
#: :func:`speed_table` times gradients only (the Hessian columns are NaN).
HESSIAN_MAX_ENTRIES = 10**8


def _speed_cell(p: int, n: int, repeats: int, rng) -> dict:
    import torch

    if (p - 1) % 4:
        raise ValueError(f"P must be 4 k + 1, got {p}")
    obj, _ = softplus_problem(2, 4, (p - 1) // 4, n, rng)
    net, th = obj.net, obj.net.random(rng) * 0.5
    mse = gf.torch_mse(net)
    tt = torch.as_tensor(th)
    xt, yt = torch.as_tensor(obj.x), torch.as_tensor(obj.y)
    f_grad, f_hess = torch.func.grad(mse), torch.func.hessian(mse)
    hessians = n * p * p <= HESSIAN_MAX_ENTRIES
    err_g = _rel(obj.gradient(th), f_grad(tt, xt, yt).numpy())
    err = _rel(obj.hessian(th), f_hess(tt, xt, yt).numpy()) if hessians else float("nan")
    if err_g > 1e-10 or err > 1e-10:
        raise RuntimeError(f"derivatives differ from torch by {err_g:.2e} (gradient), {err:.2e} "
                           f"(Hessian) at P = {p}, N = {n}; not timing")

    def backward():
        v = tt.clone().requires_grad_(True)
        mse(v, xt, yt).backward()

    times = {
        "ours grad": lambda: obj.gradient(th),
        "torch .backward()": backward,
        "torch.func.grad": lambda: f_grad(tt, xt, yt),
    }
    if hessians:
        times |= {
            "ours Hessian": lambda: obj.hessian(th),
            "torch.func.hessian": lambda: f_hess(tt, xt, yt),
            "autograd.functional.hessian": lambda: torch.autograd.functional.hessian(
                lambda v: mse(v, xt, yt), tt),
        }
    row = {"P": p, "N": n, "Hessian rel. error": err}
    for name in ("ours grad", "torch .backward()", "torch.func.grad", "ours Hessian",
                 "torch.func.hessian", "autograd.functional.hessian"):
        med, q25, q75 = timed(times[name], repeats) if name in times else (np.nan,) * 3
        row[name] = med
        row[f"{name} spread"] = (q75 - q25) / med  # interquartile range over the median
    row["ratio grad (func.grad)"] = row["torch.func.grad"] / row["ours grad"]
    row["ratio Hessian (func.hessian)"] = row["torch.func.hessian"] / row["ours Hessian"]
    row["ratio Hessian (functional)"] = row["autograd.functional.hessian"] / row["ours Hessian"]
    return row


def eval_costs(n: int = 500, repeats: int = 7, seed: int = 0, adam_steps: int = 200) -> pd.DataFrame:
    """The measured cost of one evaluation on the minima problem, in gradient evaluations.

    The problem of :func:`minima` (2-neuron softplus teacher, 8-neuron student, 33 parameters,
    ``d = 2``, ``n`` samples), one thread; CPU times by :func:`timed`. Rows: the gradient, the
    Hessian, the residuals, their Jacobian and one Adam step (:func:`lib.gradflow.descent`,
    ``adam_steps`` steps per call). Columns: median CPU time per call (microseconds), spread
    (interquartile range over median), the median in gradient units, and the rounded value of
    :data:`EVAL_COST` that :func:`minima` uses (an Adam step counts as one gradient). Two more
    rows give the solvers' own work besides evaluations: per LM iteration and per Radau step
    (``_solver_overheads``).
    """
    from threadpoolctl import threadpool_limits

    obj, th = softplus_problem(2, 2, 8, n, seeds.rng(seed, EXP_MINIMA, 0))
    calls = {
        "gradient": (lambda: obj.gradient(th), 1),
        "hessian": (lambda: obj.hessian(th), 1),
        "residuals": (lambda: obj.residuals(th), 1),
        "jacobian": (lambda: obj.residual_jacobian(th), 1),
        "Adam step": (lambda: gf.descent(obj, th, lr=1e-3, n_steps=adam_steps, adam=True,
                                         record_every=10**8), adam_steps),
    }
    rows = []
    with threadpool_limits(1):
        for name, (f, per) in calls.items():
            med, q25, q75 = timed(f, repeats)
            rows.append({"evaluation": name, "CPU per call (us)": 1e6 * med / per,
                         "spread": (q75 - q25) / med})
        per = {r["evaluation"]: 1e-6 * r["CPU per call (us)"] for r in rows}
        rows += _solver_overheads(obj, th, per, repeats)
    df = pd.DataFrame(rows).set_index("evaluation")
    df["gradient units"] = df["CPU per call (us)"] / df.loc["gradient", "CPU per call (us)"]
    df["EVAL_COST"] = [EVAL_COST.get(e, 1.0) for e in df.index]
    return df


def _solver_overheads(obj, th, per: dict, repeats: int) -> list[dict]:
    """The solvers' own work besides evaluations: per LM iteration (``lm_iteration``: 300
    residual evaluations of :func:`lib.gradflow.minimise` ``"lm"`` from the warm start, with the
    recorder of :func:`minima`) and per Radau step (``ode_step``: the warm start, the flow to
    ``t = 1000``), their CPU time less that of the evaluations
    they made, at the per-call costs ``per`` (seconds)."""
    ode = gf.integrate_flow(obj, th, method="Radau", t_max=1e3)
    steps = len(ode.t) - 1
    evals = ode.n_grad * per["gradient"] + ode.n_hess * per["hessian"]
    rec = _Recorder(obj)
    gf.minimise(rec, ode.end, method="lm", max_iter=300)
    n_res, n_jac = rec.n_res, len(rec.trace)
    # the recorder evaluates the residuals once more per Jacobian (for its trace)
    lm_evals = (n_res + n_jac) * per["residuals"] + n_jac * per["jacobian"]
    out = []
    for name, f, n, ev in (
            ("ode_step", lambda: gf.integrate_flow(obj, th, method="Radau", t_max=1e3),
             steps, evals),
            ("lm_iteration", lambda: gf.minimise(_Recorder(obj), ode.end, method="lm",
                                                 max_iter=300), n_jac, lm_evals)):
        med, q25, q75 = timed(f, repeats, min_sample=0.0, warm_up=False)  # warmed up above
        out.append({"evaluation": name, "CPU per call (us)": 1e6 * (med - ev) / n,
                    "spread": (q75 - q25) / (med - ev)})
    return out


def plot_speed(df: pd.DataFrame) -> None:
    """Torch time over ours against batch size, one line per ``P`` and baseline."""
    fig, ax = plt.subplots()
    cols = [("ratio Hessian (functional)", "-o"), ("ratio Hessian (func.hessian)", "--s"),
            ("ratio grad (func.grad)", ":^")]
    for i, (p, g) in enumerate(df.groupby("P")):
        for col, style in cols:
            ax.plot(g["N"], g[col], style, color=plotting.color(i),
                    label=f"P = {p}, {col.replace('ratio ', '')}")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size N")
    ax.set_ylabel("torch time / our time (dimensionless)")
    ax.legend(fontsize=7)
    plt.show()


# ----------------------------------------------------------------------------- explorer


def draw_descent(log10_lr: float = -1.0, steps: int = 300) -> None:
    """The explorer of the theory page: gradient descent and Adam against the gradient flow.

    A 2-neuron softplus student of a 2-neuron teacher in ``d = 1`` (200 samples, seed 0). The
    flow (Radau) and descent with learning rate ``10**log10_lr`` for ``steps`` steps; the loss
    against flow time (``t = steps * lr``) and the distance to the flow.
    """
    if not (-4.0 <= log10_lr <= 1.0):
        raise ValueError(f"log10_lr must lie in [-4, 1], got {log10_lr!r}")
    lr = 10.0 ** log10_lr
    obj, th0 = softplus_problem(1, 2, 2, 200, seeds.rng(0))
    n = int(steps)
    gd = gf.descent(obj, th0, lr=lr, n_steps=n)
    ad = gf.descent(obj, th0, lr=lr, n_steps=n, adam=True)
    flow = gf.integrate_flow(obj, th0, method="Radau", t_max=n * lr, rtol=1e-8, atol=1e-10)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(flow.t, [obj.loss(t) for t in flow.theta], "k", label="gradient flow (Radau)")
    for i, tr in enumerate((gd, ad)):
        loss = np.array([obj.loss(t) for t in tr.theta])
        ax.plot(tr.t, np.minimum(loss, 1e3), color=plotting.color(i), label=tr.method)
    ax.set_yscale("log")
    ax.set_xlabel("flow time t = steps x learning rate (MSE units)")
    ax.set_ylabel("MSE (dimensionless)")
    ax.legend()
    plt.show()
