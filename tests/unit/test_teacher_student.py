"""Unit tests of lib/teacher_student.py (chapter copy-average).

The chapter uses seed 0, unit-orthonormal teachers in d = k + 1 and k = 3..8; these tests use
other seeds, other input dimensions, general (non-orthonormal) teachers and k = 5, 7, 9.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from lib import teacher_student as ts

SEED = 20231101


def general_problem(activation, k=5, n=3, d=7, seed=SEED):
    rng = np.random.default_rng(seed)
    teacher = ts.Teacher(rng.normal(size=k), rng.normal(size=(k, d)) / math.sqrt(d))
    problem = ts.Problem(teacher, n, activation)
    return problem, rng.normal(size=problem.n_params) * 0.8


# ----------------------------------------------------------------------------- closed forms vs Monte Carlo


@pytest.mark.parametrize("activation", ts.ACTIVATIONS)
def test_kernel_matches_monte_carlo_within_4_standard_errors(activation):
    rng = np.random.default_rng(SEED + 1)
    W, Z = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    G = ts.kernel(W, Z, activation)
    for i in range(3):
        mean, se = ts.monte_carlo_kernel(W[i], Z[i], activation, 200_000, rng)
        assert abs(G[i, i] - mean) < 4 * se, (activation, i, G[i, i], mean, se)


@pytest.mark.parametrize("activation", ts.ACTIVATIONS)
def test_loss_matches_monte_carlo_within_4_standard_errors(activation):
    problem, theta = general_problem(activation)
    mean, se = ts.monte_carlo_loss(problem, theta, 400_000, np.random.default_rng(SEED + 2))
    assert abs(problem.loss(theta) - mean) < 4 * se


def test_diagonal_kernels_have_their_closed_forms():
    w = np.array([[0.3, -1.2, 0.5]])
    r2 = float((w @ w.T)[0, 0])
    assert ts.kernel(w, w, "erf")[0, 0] == pytest.approx(2 / np.pi * np.arcsin(r2 / (1 + r2)), abs=1e-15)
    assert ts.kernel(w, w, "relu")[0, 0] == pytest.approx(r2 / 2, abs=1e-14)
    v = np.eye(4)[:1]
    assert ts.kernel(v, v, "erf")[0, 0] == pytest.approx(1 / 3, abs=1e-15)


def test_teacher_term_is_known_for_orthonormal_teachers():
    for k in (5, 9):
        t = ts.unit_orthonormal_teacher(k, d=k + 3)
        assert ts.Problem(t, 2, "erf").teacher_term == pytest.approx(k / 3, abs=1e-13)
        assert ts.Problem(t, 2, "relu").teacher_term == pytest.approx(k / 2 + k * (k - 1) / (2 * np.pi), abs=1e-12)


# ----------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("activation", ts.ACTIVATIONS)
def test_gradient_and_hessian_match_central_differences(activation):
    # error model: central differences with step h have truncation ~h^2 |L'''| / 6 and rounding
    # ~eps |L| / h; for h = 1e-5 and |L|, |L'''| = O(10) both are below 1e-8.
    problem, theta = general_problem(activation)
    g, H = problem.gradient_and_hessian(theta)
    h = 1e-5
    E = np.eye(theta.size) * h
    g_fd = np.array([(problem.loss(theta + e) - problem.loss(theta - e)) / (2 * h) for e in E])
    H_fd = np.array([(problem.gradient(theta + e) - problem.gradient(theta - e)) / (2 * h) for e in E])
    scale = max(1.0, abs(problem.loss(theta)))
    assert np.abs(g - g_fd).max() < 1e-7 * scale
    assert np.abs(H - H_fd).max() < 1e-6 * scale
    assert np.array_equal(H, H.T)


def torch_loss(problem: ts.Problem):
    """The population loss written independently in torch (no shared code with lib)."""
    V = torch.tensor(problem.teacher.V)
    b = torch.tensor(problem.teacher.a)
    n, d = problem.n, problem.d

    def g(X, Y, off=None):
        nx = (X * X).sum(-1)[:, None]
        ny = (Y * Y).sum(-1)[None, :]
        c = X @ Y.T
        if off is not None:  # keep the diagonal (equal vectors) away from singular derivatives
            c = torch.where(off, c, torch.zeros_like(c))
        if problem.activation == "erf":
            return 2 / math.pi * torch.asin(c / torch.sqrt((1 + nx) * (1 + ny)))
        r = torch.sqrt(nx * ny)
        u = c / r
        return r / (2 * math.pi) * (torch.sqrt(1 - u * u) + (math.pi - torch.acos(u)) * u)

    def self_g(X):
        a2 = (X * X).sum(-1)
        return 2 / math.pi * torch.asin(a2 / (1 + a2)) if problem.activation == "erf" else a2 / 2

    def loss(theta):
        a, W = theta[:n], theta[n:].reshape(n, d)
        off = ~torch.eye(n, dtype=torch.bool)
        G = g(W, W, off)
        G = torch.where(off, G, torch.diag(self_g(W)))
        return a @ G @ a - 2 * a @ g(W, V) @ b + problem.teacher_term

    return loss


@pytest.mark.parametrize("activation", ts.ACTIVATIONS)
def test_gradient_and_hessian_match_torch_autograd_float64(activation):
    problem, theta = general_problem(activation, k=4, n=3, d=6, seed=SEED + 3)
    f = torch_loss(problem)
    t = torch.tensor(theta, dtype=torch.float64)
    g_t = torch.func.grad(f)(t).numpy()
    H_t = torch.func.hessian(f)(t).numpy()
    g, H = problem.gradient_and_hessian(theta)
    assert float(f(t)) == pytest.approx(problem.loss(theta), rel=1e-13)
    assert np.abs(g - g_t).max() <= 1e-10 * np.abs(g_t).max()
    assert np.abs(H - H_t).max() <= 1e-10 * np.abs(H_t).max()


def test_relu_hessian_is_continuous_at_aligned_students():
    # two ReLU students on the same ray: the kernel is C^2 there; the aligned limit must agree
    # with the Hessian a small angle away (its error is of the order of the angle).
    teacher = ts.unit_orthonormal_teacher(3, d=5)
    problem = ts.Problem(teacher, 2, "relu")
    w = np.array([0.6, 0.3, -0.2, 0.1, 0.4])
    theta = problem.pack([0.7, -0.4], np.stack([w, 1.5 * w]))
    tilt = np.zeros(5)
    tilt[3] = 1e-6
    theta_near = problem.pack([0.7, -0.4], np.stack([w, 1.5 * w + tilt]))
    H, H_near = problem.hessian(theta), problem.hessian(theta_near)
    assert np.all(np.isfinite(H))
    assert np.abs(H - H_near).max() < 1e-4


# ----------------------------------------------------------------------------- copy-average points


def test_group_loss_table_and_two_dimensional_minimisation():
    table = {2: 0.0232216806, 3: 0.0405931773, 5: 0.0724526452, 9: 0.1337353170, 12: 0.1791752588}
    for m, val in table.items():
        assert ts.group_loss(m) == pytest.approx(val, abs=1e-10)
    assert ts.group_loss(1) == pytest.approx(0.0, abs=1e-16)
    m = 5  # a single student neuron on m orthonormal teachers: minimise over (a, r) numerically

    def f(x):
        a, r = x
        s = r / math.sqrt(m)  # overlap with each teacher is r / sqrt(m)
        return (a * a * 2 / np.pi * np.arcsin(r * r / (1 + r * r))
                - 2 * a * m * 2 / np.pi * np.arcsin(s / math.sqrt(2 * (1 + r * r))) + m / 3)

    res = minimize(f, [3.0, 0.5], method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-15})
    assert res.fun == pytest.approx(ts.group_loss(m), abs=1e-10)
    assert res.x == pytest.approx([m, 1 / math.sqrt(2 * m - 1)], abs=1e-5)


def test_group_loss_per_teacher_approaches_its_limit_from_below():
    m = np.arange(1, 200)
    ratio = ts.group_loss(m) / m
    assert np.all(ratio < ts.GROUP_LOSS_LIMIT)
    assert np.all(np.diff(ratio) > 0)
    big = 1000.0
    assert ts.group_loss(big) / big == pytest.approx(ts.GROUP_LOSS_LIMIT - 1 / (24 * np.pi * big**2), abs=1e-12)


@pytest.mark.parametrize("k", [5, 7])
def test_every_copy_average_point_is_critical_with_additive_loss(k):
    teacher = ts.unit_orthonormal_teacher(k, d=k + 2)
    for n in range(1, k):
        problem = ts.Problem(teacher, n)
        for part in ts.partitions(k, n):
            theta = ts.copy_average_point(teacher, part)
            assert problem.grad_norm(theta) < 1e-12, (k, n, part)
            assert abs(problem.loss(theta) - ts.ca_loss(part)) < 1e-12


def test_partitions_are_the_integer_partitions():
    counts = {(9, 3): 7, (9, 4): 6, (7, 2): 3, (8, 8 - 1): 1}
    for (k, n), c in counts.items():
        parts = ts.partitions(k, n)
        assert len(parts) == len(set(parts)) == c
        assert all(sum(p) == k and len(p) == n and list(p) == sorted(p, reverse=True) for p in parts)


@pytest.mark.parametrize("k", [5, 9])
def test_best_partition_is_one_average_and_copies(k):
    for n in range(1, k):
        losses = {p: ts.ca_loss(p) for p in ts.partitions(k, n)}
        best = min(losses, key=losses.get)
        assert best == ts.optimal_partition(k, n)
        others = [v for p, v in losses.items() if p != best]
        assert not others or min(others) - losses[best] > 1e-6


@pytest.mark.parametrize("activation", ts.ACTIVATIONS)
def test_single_neuron_closed_form_is_critical(activation):
    k = 5
    teacher = ts.unit_orthonormal_teacher(k, d=k + 3)
    problem = ts.Problem(teacher, 1, activation)
    theta = ts.single_neuron_point(teacher, activation)
    assert problem.grad_norm(theta) < 1e-12
    expected = ts.group_loss(k) if activation == "erf" else ts.relu_single_neuron_loss(k)
    assert problem.loss(theta) == pytest.approx(expected, abs=1e-12)
    if activation == "relu":  # only a |w| is fixed: any norm is critical with the same loss
        other = ts.single_neuron_point(teacher, "relu", norm=2.5)
        assert problem.grad_norm(other) < 1e-12
        assert problem.loss(other) == pytest.approx(expected, abs=1e-12)


def test_relu_single_neuron_values():
    for k, val in {2: 0.17702387, 4: 0.94283294, 8: 4.41900160}.items():
        assert ts.relu_single_neuron_loss(k) == pytest.approx(val, abs=1e-8)


def test_curvature_signs_of_copy_average_points():
    teacher = ts.unit_orthonormal_teacher(4)
    problem = ts.Problem(teacher, 2)
    lam_opt = np.linalg.eigvalsh(problem.hessian(ts.copy_average_point(teacher, (3, 1))))
    lam_22 = np.linalg.eigvalsh(problem.hessian(ts.copy_average_point(teacher, (2, 2))))
    assert lam_opt[0] > 1e-4
    assert np.sum(lam_22 < -1e-4) == 2


def test_classify_sees_through_permutations_and_sign_flips():
    k, n = 7, 3
    teacher = ts.unit_orthonormal_teacher(k, d=9)
    problem = ts.Problem(teacher, n)
    theta = ts.copy_average_point(teacher, (3, 2, 2))
    images = ts.symmetric_images(problem, theta)
    assert images.shape == (math.factorial(n) * 2**n, problem.n_params)
    for img in images[::5]:
        e = ts.classify(problem, img)
        assert e.kind == "ca" and e.partition == (3, 2, 2)
        assert e.loss == pytest.approx(ts.ca_loss((3, 2, 2)), abs=1e-13)
    assert ts.classify(problem, ts.copy_average_point(teacher, (5, 1, 1))).kind == "optimal-ca"
    rng = np.random.default_rng(SEED + 4)
    assert ts.classify(problem, theta + 1e-3 * rng.normal(size=theta.size)).kind == "other"


def test_gradient_flow_reaches_the_optimal_copy_average_point():
    k, n = 5, 2
    teacher = ts.unit_orthonormal_teacher(k, d=k + 2)
    problem = ts.Problem(teacher, n)
    res = ts.gradient_flow(problem, ts.glorot_init(problem, np.random.default_rng(SEED + 5)))
    assert res.flow_converged and res.grad_norm_end < 1e-12
    assert res.loss_end == pytest.approx(ts.group_loss(k - n + 1), abs=1e-12)
    assert ts.classify(problem, res.theta_end).kind == "optimal-ca"
    assert np.all(np.diff(res.loss) <= 1e-12)  # the loss never increases along the flow
    assert res.n_grad > 0 and res.n_hess > 0


def test_gradient_flow_without_hessian_and_explicit_agree_on_a_short_run():
    problem, theta = general_problem("erf", k=3, n=2, d=4, seed=SEED + 6)
    ends = [ts.gradient_flow(problem, theta, method=m, t_max=5.0, rtol=1e-10, atol=1e-12, polish_tol=None)
            for m in ("BDF", "Radau", "RK45")]
    for r in ends:
        assert r.t_end == pytest.approx(5.0)
    assert np.abs(ends[0].theta_end - ends[2].theta_end).max() < 1e-6
    assert np.abs(ends[1].theta_end - ends[2].theta_end).max() < 1e-6


# ----------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), act=st.sampled_from(ts.ACTIVATIONS))
def test_loss_is_invariant_under_the_symmetries_and_nonnegative(seed, n, act):
    rng = np.random.default_rng(seed)
    teacher = ts.Teacher(rng.normal(size=3), rng.normal(size=(3, 4)))
    problem = ts.Problem(teacher, n, act)
    theta = rng.normal(size=problem.n_params)
    losses = problem.loss(ts.symmetric_images(problem, theta))
    assert np.ptp(losses) <= 1e-12 * max(1.0, abs(losses[0]))
    assert losses[0] >= -1e-12


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), act=st.sampled_from(ts.ACTIVATIONS))
def test_a_student_equal_to_its_teacher_has_zero_loss_and_gradient(seed, act):
    rng = np.random.default_rng(seed)
    k, d = 3, 5
    teacher = ts.Teacher(rng.normal(size=k), rng.normal(size=(k, d)))
    problem = ts.Problem(teacher, k, act)
    theta = problem.pack(teacher.a, teacher.V)
    scale = 1.0 + np.abs(teacher.a).max() ** 2 * np.abs(teacher.V).max() ** 2
    assert abs(problem.loss(theta)) < 1e-12 * scale
    assert problem.grad_norm(theta) < 1e-11 * scale


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_batched_loss_equals_pointwise_loss(seed):
    problem, _ = general_problem("erf", seed=seed)
    thetas = np.random.default_rng(seed).normal(size=(4, problem.n_params))
    assert np.allclose(problem.loss(thetas), [problem.loss(t) for t in thetas], rtol=1e-13, atol=1e-14)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    teacher = ts.unit_orthonormal_teacher(4)
    with pytest.raises(ValueError, match="unknown activation"):
        ts.Problem(teacher, 2, "tanh")
    with pytest.raises(ValueError, match="n < k"):
        ts.partitions(4, 4)
    with pytest.raises(ValueError, match="n < k"):
        ts.copy_average_point(teacher, (1, 1, 1, 1))
    skew = ts.Teacher(np.ones(3), np.array([[1.0, 0, 0], [0.5, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="unit-orthonormal"):
        ts.copy_average_point(skew, (2, 1))
    with pytest.raises(ValueError, match="unit-orthonormal"):
        ts.single_neuron_point(ts.Teacher(2 * np.ones(2), np.eye(2)))
    problem = ts.Problem(teacher, 2)
    with pytest.raises(ValueError, match="length n"):
        problem.loss(np.zeros(problem.n_params + 1))
    with pytest.raises(ValueError, match="finite"):
        problem.gradient(np.full(problem.n_params, np.nan))
    with pytest.raises(ValueError, match="rows"):
        ts.Teacher(np.ones(3), np.eye(4))
    with pytest.raises(ValueError, match="unknown method"):
        ts.gradient_flow(problem, np.ones(problem.n_params), method="Euler")
    with pytest.raises(ValueError, match="positive"):
        ts.gradient_flow(problem, np.ones(problem.n_params), rtol=-1.0)
    with pytest.raises(ValueError, match="teachers"):
        ts.copy_average_point(teacher, (2, 1))
    with pytest.raises(ValueError, match="positive integer"):
        ts.Problem(teacher, 0)
    with pytest.raises(ValueError, match=">= 1"):
        ts.group_loss(0.5)
    with pytest.raises(ValueError, match="d >= k"):
        ts.unit_orthonormal_teacher(4, d=3)
    with pytest.raises(ValueError, match="erf"):
        ts.classify(ts.Problem(teacher, 2, "relu"), np.ones(12))
    with pytest.raises(ValueError, match="Generator"):
        ts.monte_carlo_loss(problem, np.ones(12), 100, rng=0)


# ----------------------------------------------------------------------------- bad input (issue 25)


def test_relu_derivatives_at_a_zero_weight_vector_raise():
    problem, theta = general_problem("relu", k=4, n=2, d=5, seed=SEED + 3)
    theta = theta.copy()
    theta[problem.n + problem.d:] = 0.0  # the second student's input weights
    assert np.isfinite(problem.loss(theta))
    for f in (problem.gradient, problem.hessian):
        with pytest.raises(ValueError, match=r"student\(s\) \[1\] have zero input weights"):
            f(theta)


@pytest.mark.parametrize("kw, match", [({"max_steps": -1}, "max_steps"),
                                       ({"max_steps": 0}, "max_steps"),
                                       ({"max_steps": 2.5}, "max_steps"),
                                       ({"polish_tol": -1e-13}, "polish_tol"),
                                       ({"polish_tol": float("nan")}, "polish_tol")])
def test_gradient_flow_rejects_bad_budgets(kw, match):
    problem, theta = general_problem("erf", k=3, n=2, d=4, seed=SEED + 4)
    with pytest.raises(ValueError, match=match):
        ts.gradient_flow(problem, theta, **kw)
