"""Unit tests of lib/gradflow.py (sizes and seeds the chapter does not use)."""

import numpy as np
import pytest

from lib import gradflow as gf
from lib import teacher_student as ts


def _problem(act="softplus", bias=True, d=3, k=3, n=40, seed=11):
    rng = np.random.default_rng(seed)
    teacher = gf.MLP(d, 2, act, bias)
    x, y = gf.teacher_data(teacher, teacher.random(rng), n, rng)
    net = gf.MLP(d, k, act, bias)
    return gf.Objective(net, x, y, chunk=7), net.random(rng) * 0.7, rng


@pytest.mark.parametrize("act", gf.ACTIVATIONS)
def test_activation_derivatives_match_differences(act):
    z = np.linspace(-3, 3, 13) + 0.01  # avoid the relu kink
    h = 1e-6
    for order in (1, 2):
        fd = (gf.activation(act, z + h, order - 1) - gf.activation(act, z - h, order - 1)) / (2 * h)
        assert np.allclose(gf.activation(act, z, order), fd, atol=1e-6)


@pytest.mark.parametrize("act", ["softplus", "erf", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradient_and_hessian_match_torch(act, bias):
    obj, th, _ = _problem(act, bias)
    g_t, H_t = gf.torch_derivatives(obj.net, th, obj.x, obj.y, "functional")
    assert np.allclose(obj.gradient(th), g_t, rtol=0, atol=1e-12 * np.abs(g_t).max())
    H = obj.hessian(th)
    assert np.allclose(H, H_t, rtol=0, atol=1e-12 * np.abs(H_t).max())
    assert np.allclose(H, H.T)


def test_hessian_does_not_depend_on_chunking():
    obj, th, _ = _problem(n=53)
    other = gf.Objective(obj.net, obj.x, obj.y, chunk=1000)
    assert np.allclose(obj.hessian(th), other.hessian(th), rtol=1e-13, atol=1e-15)


def test_jacobian_and_pack_roundtrip():
    net = gf.MLP(2, 3)
    rng = np.random.default_rng(4)
    th = net.random(rng)
    a, W, b, c = net.unpack(th)
    assert np.array_equal(net.pack(a, W, b, c), th)
    x = rng.normal(size=(5, 2))
    J = net.jacobian(th, x)
    h = 1e-6
    fd = np.array([(net.predict(th + e, x) - net.predict(th - e, x)) / (2 * h)
                   for e in np.eye(net.n_params) * h]).T
    assert np.allclose(J, fd, atol=1e-7)
    assert net.n_params == 3 * 4 + 1 and gf.MLP(2, 3, bias=False).n_params == 9


def test_bias_free_layout_matches_teacher_student():
    rng = np.random.default_rng(8)
    teacher = ts.Teacher(rng.normal(size=2), rng.normal(size=(2, 2)))
    prob = ts.Problem(teacher, 3, "erf")
    th = rng.normal(size=prob.n_params)
    net, tnet = gf.MLP(2, 3, "erf", False), gf.MLP(2, 2, "erf", False)
    x, y = gf.teacher_data(tnet, tnet.pack(teacher.a, teacher.V), 400_000, rng)
    obj = gf.Objective(net, x, y)
    assert abs(obj.loss(th) - prob.loss(th)) < 0.02 * prob.loss(th) + 1e-3


def test_flow_decreases_the_loss_and_solvers_agree():
    obj, _, rng = _problem(n=60)
    th0 = obj.net.init(rng)
    a = gf.integrate_flow(obj, th0, method="Radau", t_max=5.0, rtol=1e-9, atol=1e-9)
    b = gf.integrate_flow(obj, th0, method="RK45", t_max=5.0, rtol=1e-9, atol=1e-9)
    loss = [obj.loss(t) for t in a.theta]
    assert np.all(np.diff(loss) <= 1e-12)
    assert np.abs(a.end - b.end).max() < 1e-5
    d_m, t_m = gf.trajectory_distance(b, a)
    assert d_m < 1e-9 and t_m == pytest.approx(5.0)


def test_small_step_descent_follows_the_flow_and_adam_does_not():
    obj, _, rng = _problem(n=60, seed=3)
    th0 = obj.net.init(rng)
    ref = gf.integrate_flow(obj, th0, method="Radau", t_max=2.0, rtol=1e-9, atol=1e-9)
    gd = gf.descent(obj, th0, lr=1e-3, n_steps=2000)
    adam = gf.descent(obj, th0, lr=1e-2, n_steps=200, adam=True)
    fine = gf.descent(obj, th0, lr=1e-4, n_steps=20_000, record_every=10)
    # Euler is first order: the squared distance shrinks like lr^2 (a factor 100 here)
    assert gf.trajectory_distance(fine, ref)[0] < gf.trajectory_distance(gd, ref)[0] / 30
    assert gf.trajectory_distance(adam, ref)[0] > gf.trajectory_distance(gd, ref)[0]
    assert gd.t[-1] == pytest.approx(2.0)


def test_newton_finds_a_critical_point_of_an_exact_fit():
    rng = np.random.default_rng(21)
    net = gf.MLP(2, 2)
    th_t = net.random(rng)
    x, y = gf.teacher_data(net, th_t, 200, rng)
    obj = gf.Objective(net, x, y)
    m = gf.minimise(obj, th_t + 1e-3 * rng.normal(size=net.n_params), method="trust-exact")
    assert m.loss < 1e-20 and m.grad_norm < 1e-11 and m.lambda_min > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown activation"):
        gf.MLP(2, 3, "sine")
    with pytest.raises(ValueError, match="positive integer"):
        gf.MLP(0, 3)
    net = gf.MLP(2, 3)
    with pytest.raises(ValueError, match="length P"):
        net.unpack(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        net.predict(np.full(net.n_params, np.nan), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        net.predict(np.zeros(net.n_params), np.zeros((2, 5)))
    obj, th, _ = _problem()
    with pytest.raises(ValueError, match="unknown method"):
        gf.integrate_flow(obj, th, method="Euler")
    with pytest.raises(ValueError, match="unknown minimiser"):
        gf.minimise(obj, th, method="CG")
    with pytest.raises(ValueError, match="lr"):
        gf.descent(obj, th, lr=-1.0, n_steps=3)
    with pytest.raises(ValueError, match="samples"):
        gf.Objective(obj.net, obj.x, obj.y[:-1])
    with pytest.raises(ValueError, match="Generator"):
        net.init(0)
    with pytest.raises(ValueError, match="order"):
        gf.activation("erf", np.zeros(2), order=3)
    with pytest.raises(ValueError, match="how"):
        gf.torch_derivatives(obj.net, th, obj.x, obj.y, how="jax")


def test_protocol_presets():
    from lib.protocols import gradient_flow as proto
    assert proto.preset("ci") != proto.preset("book")
    with pytest.raises(ValueError, match="expected one of"):
        proto.preset("huge")
    with pytest.raises(ValueError, match="log10_lr"):
        proto.draw_descent(log10_lr=5.0)
    assert [proto.lambda_class(v) for v in (-1, -1e-9, 0.0, 1e-9, 1)] == [0, 1, 2, 2, 3]


# ----------------------------------------------------------------------------- the independent reference


def _flow_problem(seed=23):
    rng = np.random.default_rng(seed)
    teacher = gf.MLP(2, 2, "softplus", True)
    x, y = gf.teacher_data(teacher, teacher.random(rng), 60, rng)
    net = gf.MLP(2, 2, "softplus", True)
    return gf.Objective(net, x, y), net.init(rng)


def test_flow_error_tells_a_scaled_gradient_that_trajectory_distance_cannot():
    obj, th0 = _flow_problem()
    ref, dense = gf.torch_flow(obj.net, th0, obj.x, obj.y, t_max=5.0, rtol=1e-10, atol=1e-12)
    assert np.allclose(dense(0.0), th0) and ref.t[-1] == pytest.approx(5.0)
    good = gf.integrate_flow(obj, th0, method="Radau", t_max=5.0, rtol=1e-8, atol=1e-10)
    assert gf.flow_error(good, dense) < 1e-6
    fast = gf.integrate_flow(gf.Scaled(obj, 2.0), th0, method="Radau", t_max=2.5, rtol=1e-8,
                             atol=1e-10)
    # the doubled gradient runs along the same path (tiny d_m) but at the wrong time
    assert gf.trajectory_distance(fast, ref)[0] < 1e-10
    assert gf.flow_error(fast, dense) > 1e-3


def test_scaled_objective_scales_every_derivative():
    obj, th0 = _flow_problem()
    sc = gf.Scaled(obj, 3.0)
    assert sc.loss(th0) == pytest.approx(3 * obj.loss(th0))
    assert np.allclose(sc.gradient(th0), 3 * obj.gradient(th0))
    assert np.allclose(sc.hessian(th0), 3 * obj.hessian(th0))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="factor"):
            gf.Scaled(obj, bad)
    with pytest.raises(ValueError, match="objective"):
        gf.Scaled(object(), 2.0)


def test_flow_error_and_torch_flow_reject_bad_input():
    obj, th0 = _flow_problem()
    _, dense = gf.torch_flow(obj.net, th0, obj.x, obj.y, t_max=1.0, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="Trajectory"):
        gf.flow_error(np.zeros((3, th0.size)), dense)
    with pytest.raises(ValueError, match="t_max"):
        gf.torch_flow(obj.net, th0, obj.x, obj.y, t_max=-1.0)
    with pytest.raises(ValueError, match="method"):
        gf.torch_flow(obj.net, th0, obj.x, obj.y, t_max=1.0, method="Euler")


def test_trajectory_distance_needs_a_reference_with_two_points():
    obj, th0 = _flow_problem()
    one = gf.Trajectory(np.zeros(1), th0[None], 0, 0, "start", "")
    with pytest.raises(ValueError, match="at least 2 points"):
        gf.trajectory_distance(one, one)


# ----------------------------------------------------------------------------- Levenberg-Marquardt


def test_residuals_give_the_mse_and_their_jacobian_the_gradient():
    obj, th, _ = _problem()
    r, J = obj.residuals(th), obj.residual_jacobian(th)
    assert r @ r == pytest.approx(obj.loss(th), rel=1e-13)
    assert np.allclose(2 * J.T @ r, obj.gradient(th), rtol=1e-12, atol=1e-15)
    # at an exact fit the residuals vanish and the Hessian is the Gauss-Newton 2 J^T J
    rng = np.random.default_rng(5)
    th_t = obj.net.random(rng)
    fit = gf.Objective(obj.net, obj.x, obj.net.predict(th_t, obj.x))
    J = fit.residual_jacobian(th_t)
    assert np.abs(fit.residuals(th_t)).max() < 1e-15
    assert np.allclose(2 * J.T @ J, fit.hessian(th_t), rtol=1e-12, atol=1e-14)


def test_levenberg_marquardt_converges_quadratically_on_an_isolated_exact_fit():
    # the same problem as test_newton_finds_a_critical_point_of_an_exact_fit: LM reaches
    # round-off in far fewer evaluations than a first-order method would need
    rng = np.random.default_rng(21)
    net = gf.MLP(2, 2)
    th_t = net.random(rng)
    x, y = gf.teacher_data(net, th_t, 200, rng)
    obj = gf.Objective(net, x, y)
    m = gf.minimise(obj, th_t + 1e-3 * rng.normal(size=net.n_params), method="lm",
                    max_iter=50)
    assert m.loss < 1e-25 and m.grad_norm < 1e-13 and m.n_iter <= 50
    assert m.method == "lm"


def test_levenberg_marquardt_needs_residuals():
    problem = ts.Problem(ts.Teacher(np.ones(2), np.eye(2)), 2, "erf")
    with pytest.raises(ValueError, match="residuals"):
        gf.minimise(problem, np.ones(problem.n_params), method="lm")
    obj, th, _ = _problem()
    with pytest.raises(ValueError, match="max_iter"):
        gf.minimise(obj, th, method="lm", max_iter=0)


def test_descent_stops_at_its_time_budget():
    obj, th, _ = _problem()
    full = gf.descent(obj, th, lr=1e-3, n_steps=50, adam=True)
    assert full.n_grad == 50
    cut = gf.descent(obj, th, lr=1e-3, n_steps=10**7, adam=True, max_seconds=0.05,
                     record_every=10**7)
    assert 0 < cut.n_grad < 10**7 and len(cut.theta) == 2
    assert cut.t[-1] == pytest.approx(cut.n_grad * 1e-3)
    with pytest.raises(ValueError, match="max_seconds"):
        gf.descent(obj, th, lr=1e-3, n_steps=3, max_seconds=-1.0)


def test_minima_verdicts_take_the_best_second_order_arm_per_seed():
    import pandas as pd

    from lib.protocols import gradient_flow as proto
    rows = []
    for s, (lm, te, bf, ode, ad, ae, aw) in enumerate([(1e-13, 1e-8, 1e-6, 1e-4, 1e-5, 1e-4, 2e-6),
                                                      (1e-9, 1e-12, 1e-6, 3e-4, 2e-5, 1e-4, 1e-6)]):
        for m, g in (("LM", lm), ("trust-exact", te), ("BFGS", bf), ("ODE (Radau)", ode),
                     ("Adam(0.001)", ad), ("Adam(0.001), equal evaluations", ae),
                     (proto.ADAM_WARM, aw)):
            rows.append({"seed": s, "method": m, "max |grad|": g})
    v = proto.minima_verdicts(pd.DataFrame(rows))
    assert v == {"second": 1e-12, "warm": 3e-4, "adam": 1e-5, "adam_warm": 2e-6,
                 "adam_evals": 1e-4}


def test_both_flows_run_the_one_solver_loop():
    # lib.gradflow.integrate_flow and lib.teacher_student.gradient_flow step the same loop
    # (teacher_student.flow_steps): on one Problem they take identical steps
    problem = ts.Problem(ts.Teacher(np.array([1.0, -0.5]), np.eye(2)), 2, "erf")
    th0 = ts.glorot_init(problem, np.random.default_rng(3))
    a = gf.integrate_flow(problem, th0, method="BDF", t_max=50.0, rtol=1e-8, atol=1e-10,
                          grad_tol=1e-9)
    b = ts.gradient_flow(problem, th0, method="BDF", t_max=50.0, polish_tol=None)
    assert np.array_equal(a.t, b.t) and np.array_equal(a.theta, b.theta)
    assert (a.n_grad, a.n_hess) == (b.n_grad, b.n_hess)
    c = gf.integrate_flow(problem, th0, method="BDF", t_max=50.0, max_steps=3)
    assert len(c.t) == 4 and c.message.startswith("step budget (3) spent")


def test_equal_cost_steps_weigh_each_evaluation_by_its_cost():
    from lib.protocols import gradient_flow as proto

    c = proto.EVAL_COST
    want = (10 * c["gradient"] + 2 * c["hessian"] + 3 * c["residuals"]
            + 4 * (c["jacobian"] + c["lm_iteration"]) + 5 * c["ode_step"])
    assert proto.equal_cost_steps(10, 2, 3, 4, 5) == int(np.ceil(want))
    assert proto.equal_cost_steps(0, 0, 0, 0) == 0
    with pytest.raises(ValueError, match="non-negative integers"):
        proto.equal_cost_steps(-1, 0, 0, 0)


def test_fused_softplus_is_accurate_over_all_of_float64():
    z = np.concatenate([np.linspace(-800, 800, 20001), np.random.default_rng(2).normal(size=999) * 5])
    s, s1 = gf._softplus(z.copy())
    ref, ref1 = np.logaddexp(0.0, z), 1.0 / (1.0 + np.exp(-z))
    ok = ref > 1e-300  # below: both underflow to (sub)normals
    assert np.all(np.abs(s - ref)[ok] <= 1e-15 * ref[ok])
    assert np.all(np.abs(s1 - ref1)[ref1 > 1e-300] <= 1e-15 * ref1[ref1 > 1e-300])
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(s1))


@pytest.mark.parametrize("act", ["softplus", "erf"])
def test_gradient_in_chunks_equals_one_pass(act, monkeypatch):
    obj, th, _ = _problem(act, k=5, n=301)
    one = obj.gradient(th)
    monkeypatch.setattr(gf, "GRAD_CHUNK_VALUES", 5 * 64)  # 64 samples a chunk: 5 chunks
    g_t, _ = gf.torch_derivatives(obj.net, th, obj.x, obj.y, "functional")
    assert np.allclose(obj.gradient(th), one, rtol=0, atol=1e-14 * np.abs(one).max())
    assert np.allclose(one, g_t, rtol=0, atol=1e-12 * np.abs(g_t).max())


def test_timed_and_eval_costs():
    from lib.protocols import gradient_flow as proto

    med, q25, q75 = proto.timed(lambda: sum(range(1000)), 3)
    assert 0 < q25 <= med <= q75
    with pytest.raises(ValueError, match="repeats"):
        proto.timed(lambda: None, 0)
    costs = proto.eval_costs(n=50, repeats=1, adam_steps=5)
    assert list(costs.index) == ["gradient", "hessian", "residuals", "jacobian", "Adam step",
                                 "ode_step", "lm_iteration"]
    assert costs.loc["gradient", "gradient units"] == 1.0
    assert list(costs["EVAL_COST"]) == [1.0, 6.0, 1.0, 2.0, 1.0, 12.0, 8.0]


def test_lm_decay_tells_a_power_law_from_quadratic_convergence():
    import pandas as pd

    from lib.protocols import gradient_flow as proto
    n = np.arange(10, 1001, 10)
    power = pd.DataFrame({"seed": 0, "evaluations": n, "max |grad|": 1e-3 * n ** -2.5})
    quad = 1e-3 ** (2.0 ** np.minimum(np.arange(len(n)), 3)) + 1e-17
    quick = pd.DataFrame({"seed": 1, "evaluations": n, "max |grad|": quad})
    d = proto.lm_decay(pd.concat([power, quick]))
    assert abs(d.loc[0, "slope over last decade"] + 2.5) < 1e-9
    assert not d.loc[0, "reached round-off"] and d.loc[1, "reached round-off"]
