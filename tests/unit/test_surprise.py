"""Unit tests of lib.surprise: closed forms, the identities of the taxonomy, properties, bad inputs."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from lib import surprise as S

SIGMA = 0.5
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def grid():
    return S.GridModel.build(SIGMA, n_theta=321, theta_max=8.0)   # spacing 0.05


@pytest.fixture(scope="module")
def dirichlet():
    return S.DirichletModel(6)


def _random_grid_beliefs(model, rng, n):
    """Random smooth-ish beliefs: mixtures of two discretised Gaussians plus a little noise."""
    b = (model.gaussian_belief(rng.normal(0, 1.5, n), rng.uniform(0.1, 1.0, n))
         + 0.5 * model.gaussian_belief(rng.normal(0, 1.5, n), rng.uniform(0.1, 1.0, n)))
    b = b * (1 + 0.1 * rng.random(b.shape))
    return b / b.sum(-1, keepdims=True)


def _random_dirichlet_mixture(model, rng, n, r=3):
    a = rng.uniform(0.05, 5.0, (n, r, model.n_outcomes))
    w = rng.dirichlet(np.ones(r), n)
    return S.DirichletBelief(a, w)


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------


def test_grid_shannon_matches_the_gaussian_closed_form(grid):
    s, m = 0.3, 0.8
    b = grid.gaussian_belief(m, s)
    y = np.array([-1.0, 0.0, 0.8, 1.7, 3.0])
    v = s**2 + SIGMA**2
    expected = 0.5 * np.log(2 * np.pi * v) + (y - m) ** 2 / (2 * v)
    np.testing.assert_allclose(S.shannon(grid, b, y), expected, atol=1e-9)


def test_confidence_corrected_closed_form():
    """S_CC1 = log(sigma/s) + (s^2 + delta^2) / (2 sigma^2) - 1/2 for a Gaussian belief N(m, s^2)."""
    nm = S.NormalModel(SIGMA)
    s, m = 0.2, -0.4
    y = np.linspace(-2, 2, 9)
    cc = S.confidence_corrected(nm, S.NormalBelief(np.full(9, m), np.full(9, s**2)), y)
    expected = np.log(SIGMA / s) + (s**2 + (y - m) ** 2) / (2 * SIGMA**2) - 0.5
    np.testing.assert_allclose(cc, expected, atol=1e-12)


def test_normal_kl_matches_numerical_integration():
    nm = S.NormalModel(SIGMA)
    p, q = S.NormalBelief(np.asarray(0.3), np.asarray(0.5)), S.NormalBelief(np.asarray(-0.2), np.asarray(1.3))
    f = lambda x: stats.norm.pdf(x, 0.3, math.sqrt(0.5)) * (
        stats.norm.logpdf(x, 0.3, math.sqrt(0.5)) - stats.norm.logpdf(x, -0.2, math.sqrt(1.3)))
    assert nm.kl(p, q) == pytest.approx(integrate.quad(f, -20, 20)[0], abs=1e-9)


def test_dirichlet_kl_and_entropy_match_scipy_and_integration():
    dm = S.DirichletModel(2)
    a, b = np.array([2.5, 0.7]), np.array([1.2, 3.0])
    f = lambda x: stats.beta.pdf(x, *a) * (stats.beta.logpdf(x, *a) - stats.beta.logpdf(x, *b))
    kl = dm.kl(S.DirichletBelief.single(a), S.DirichletBelief.single(b))
    assert kl == pytest.approx(integrate.quad(f, 0, 1, limit=200)[0], abs=1e-7)
    d6 = S.DirichletModel(6)
    a6 = np.array([0.3, 1.0, 2.0, 4.0, 0.5, 1.5])
    assert d6.entropy(S.DirichletBelief.single(a6)) == pytest.approx(stats.dirichlet(a6).entropy(), abs=1e-12)


def test_categorical_postdictive_is_the_kl_between_predictive_probabilities(dirichlet):
    rng = np.random.default_rng(3)
    before = S.DirichletBelief.single(rng.uniform(0.2, 3, (5, 6)))
    y = rng.integers(0, 6, 5)
    after, _ = S.update(dirichlet, before, y, dirichlet.prior(), 0.0)
    po = S.postdictive(dirichlet, before, y, after)
    p, q = dirichlet.predictive_probs(before), dirichlet.predictive_probs(after)
    np.testing.assert_allclose(po, stats.entropy(p, q, axis=-1), atol=1e-12)


def test_grid_agrees_with_the_closed_form_model_for_every_measure(grid):
    """On a fine grid a discretised Gaussian belief gives the closed-form values of all 16 measures."""
    nm = S.NormalModel(SIGMA)
    deltas = np.linspace(-1.5, 1.5, 11)
    _, g = S.error_sweep(grid, grid.gaussian_belief(0.4, 0.35), deltas, grid.prior(), 0.0)
    _, c = S.error_sweep(nm, S.NormalBelief(np.asarray(0.4), np.asarray(0.35**2)), deltas, nm.prior(), 0.0)
    assert set(g) == set(c) == set(S.applicable(grid, 0.0))
    for name in g:
        np.testing.assert_allclose(g[name], c[name], rtol=1e-6, atol=1e-8, err_msg=name)


# --------------------------------------------------------------------------------------------
# The identities of the taxonomy, to 1e-10 in float64
# --------------------------------------------------------------------------------------------


def test_gamma_is_the_posterior_change_probability_on_the_grid(grid):
    rng = np.random.default_rng(0)
    b, y, p_c = _random_grid_beliefs(grid, rng, 20), rng.normal(0, 2, 20), 0.07
    lik = stats.norm.pdf(y[:, None], grid.theta, SIGMA)
    joint1 = p_c * (lik * grid.prior()).sum(1)          # P(C=1, y)
    joint0 = (1 - p_c) * (lik * b).sum(1)                # P(C=0, y)
    brute = joint1 / (joint0 + joint1)
    np.testing.assert_allclose(S.change_probability(grid, b, y, grid.prior(), p_c), brute, rtol=0, atol=1e-10)
    _, gamma = S.update(grid, b, y, grid.prior(), p_c)
    np.testing.assert_allclose(gamma, brute, rtol=0, atol=1e-10)


def test_gamma_is_the_posterior_change_probability_for_categories(dirichlet):
    rng = np.random.default_rng(1)
    b, y, p_c = _random_dirichlet_mixture(dirichlet, rng, 20), rng.integers(0, 6, 20), 0.2
    prior = dirichlet.prior(0.3)
    pb = np.sum(b.weight * b.alpha[np.arange(20), :, y] / b.alpha.sum(-1), -1)
    p0 = 1.0 / 6                                           # symmetric prior predictive
    brute = p_c * p0 / (p_c * p0 + (1 - p_c) * pb)
    np.testing.assert_allclose(S.change_probability(dirichlet, b, y, prior, p_c), brute, atol=1e-10)
    np.testing.assert_allclose(S.update(dirichlet, b, y, prior, p_c)[1], brute, atol=1e-10)


def test_liakoni_form_of_the_update_equals_bayes(grid):
    rng = np.random.default_rng(2)
    b, y = _random_grid_beliefs(grid, rng, 15), rng.normal(0, 2, 15)
    after, _ = S.update(grid, b, y, grid.prior(), 0.1)
    lik = stats.norm.pdf(y[:, None], grid.theta, SIGMA)
    bayes = lik * (0.9 * b + 0.1 * grid.prior())
    np.testing.assert_allclose(after, bayes / bayes.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(S.update_liakoni(grid, b, y, grid.prior(), 0.1), after, atol=1e-12)


def test_log_bayes_factor_is_a_difference_of_shannon_surprises(grid, dirichlet):
    rng = np.random.default_rng(4)
    # y within the range the grid represents (beyond it the grid refuses: see the edge test)
    b, y = _random_grid_beliefs(grid, rng, 20), rng.uniform(-5, 5, 20)
    diff = S.shannon(grid, b, y) - S.shannon(grid, b, y, prior=grid.prior(), variant="initial")
    np.testing.assert_allclose(np.log(S.bayes_factor(grid, b, y, prior=grid.prior())), diff, atol=1e-10)
    bd, yd = _random_dirichlet_mixture(dirichlet, rng, 20), rng.integers(0, 6, 20)
    diff = S.shannon(dirichlet, bd, yd) - S.shannon(dirichlet, bd, yd, prior=dirichlet.prior(), variant="initial")
    np.testing.assert_allclose(np.log(S.bayes_factor(dirichlet, bd, yd, prior=dirichlet.prior())), diff, atol=1e-10)


@pytest.mark.parametrize("variant", S.VARIANTS)
def test_state_prediction_error_is_one_minus_exp_minus_shannon(dirichlet, variant):
    rng = np.random.default_rng(5)
    b, y = _random_dirichlet_mixture(dirichlet, rng, 30), rng.integers(0, 6, 30)
    args = (dirichlet, b, y, None, dirichlet.prior(), 0.1)
    spe = S.state_prediction_error(*args, variant=variant)
    np.testing.assert_allclose(spe, 1 - np.exp(-S.shannon(*args, variant=variant)), atol=1e-10)
    np.testing.assert_allclose(S.absolute_error(*args, variant=variant), 2 * spe, atol=1e-10)


def test_gaussian_squared_error_is_an_affine_map_of_shannon():
    nm = S.NormalModel(SIGMA)
    rng = np.random.default_rng(6)
    b = S.NormalBelief(rng.normal(0, 1, 50), rng.uniform(0.01, 2, 50))
    y = rng.normal(0, 2, 50)
    v = nm.predictive_var(b)
    sh, sq = S.shannon(nm, b, y), S.squared_error(nm, b, y)
    np.testing.assert_allclose(sh, 0.5 * np.log(2 * np.pi * v) + sq / (2 * v), rtol=0, atol=1e-10)


def test_squared_error_is_absolute_error_squared_in_one_dimension(grid):
    rng = np.random.default_rng(7)
    b, y = _random_grid_beliefs(grid, rng, 20), rng.normal(0, 2, 20)
    for variant in S.VARIANTS:
        args = (grid, b, y, None, grid.prior(), 0.05)
        np.testing.assert_allclose(S.squared_error(*args, variant=variant),
                                   S.absolute_error(*args, variant=variant) ** 2, atol=1e-12)
    np.testing.assert_allclose(S.unsigned_rpe(grid, b, y), S.absolute_error(grid, b, y), atol=0)


def test_changeaware_shannon_is_a_function_of_shannon_and_bayes_factor(grid):
    rng = np.random.default_rng(8)
    b, y, p_c = _random_grid_beliefs(grid, rng, 20), rng.normal(0, 2, 20), 0.05
    pr = grid.prior()
    m = p_c / (1 - p_c)
    sh2 = S.shannon(grid, b, y, None, pr, p_c, variant="changeaware")
    rhs = S.shannon(grid, b, y) - np.log(1 - p_c) - np.log1p(m * S.bayes_factor(grid, b, y, None, pr))
    np.testing.assert_allclose(sh2, rhs, atol=1e-10)


@pytest.mark.parametrize("variant", S.VARIANTS)
def test_exact_free_energy_equals_shannon(grid, dirichlet, variant):
    rng = np.random.default_rng(9)
    b, y = _random_grid_beliefs(grid, rng, 10), rng.normal(0, 2, 10)
    after, _ = S.update(grid, b, y, grid.prior(), 0.1)
    args = (grid, b, y, after, grid.prior(), 0.1)
    np.testing.assert_allclose(S.free_energy(*args, variant=variant), S.shannon(*args, variant=variant), atol=1e-10)
    assert np.all(S.free_energy(*args, variant=variant, q="moment") >= S.shannon(*args, variant=variant) - 1e-12)
    bd = S.DirichletBelief.single(rng.uniform(0.1, 3, (10, 6)))
    yd = rng.integers(0, 6, 10)
    argd = (dirichlet, bd, yd, None, dirichlet.prior(), 0.0)
    np.testing.assert_allclose(S.free_energy(*argd, variant=variant), S.shannon(*argd, variant=variant), atol=1e-10)


def test_confidence_corrected_decomposition_in_every_model(grid, dirichlet):
    """S_CC1 = S_Sh1 + KL[pi || pi_posterior] - H[pi] + log A(y) (stationary world)."""
    rng = np.random.default_rng(10)
    cases = [
        (grid, _random_grid_beliefs(grid, rng, 10), rng.normal(0, 2, 10)),
        (dirichlet, S.DirichletBelief.single(rng.uniform(0.1, 3, (10, 6))), rng.integers(0, 6, 10)),
        (S.NormalModel(SIGMA), S.NormalBelief(rng.normal(0, 1, 10), rng.uniform(0.05, 1, 10)), rng.normal(0, 2, 10)),
    ]
    for model, b, y in cases:
        post = model.posterior(b, y)
        rhs = S.shannon(model, b, y) + model.kl(b, post) - model.entropy(b) + model.log_flat_normaliser(y)
        np.testing.assert_allclose(S.confidence_corrected(model, b, y), rhs, atol=1e-10)


def test_variants_coincide_in_a_stationary_world(grid):
    rng = np.random.default_rng(11)
    b, y = _random_grid_beliefs(grid, rng, 10), rng.normal(0, 2, 10)
    after, _ = S.update(grid, b, y, grid.prior(), 0.0)
    out = S.compute_all(grid, b, y, after, grid.prior(), 0.0)
    for one, two in [("Sh1", "Sh2"), ("Abs1", "Abs2"), ("Sq1", "Sq2"), ("Ba1", "Ba2"), ("Po1", "Po2"),
                     ("CC1", "CC2"), ("FE1", "FE2")]:
        np.testing.assert_array_equal(out[one], out[two])


# --------------------------------------------------------------------------------------------
# Distinguishability: monotonicity in the prediction error
# --------------------------------------------------------------------------------------------


def _alternating_errors(n=40):
    return np.linspace(0.02, 2.0, n) * np.where(np.arange(n) % 2, -1, 1)


def test_stationary_measures_are_increasing_in_the_error_except_bayes_factor(grid):
    d, meas = S.error_sweep(grid, grid.gaussian_belief(0.8, 0.3), _alternating_errors(), grid.prior(), 0.0)
    mono = {n: S.is_strictly_increasing(np.abs(d), v) for n, v in meas.items()}
    assert not mono.pop("BF")
    assert all(mono.values()), mono


def test_volatility_makes_measures_distinguishable(grid):
    d, meas = S.error_sweep(grid, grid.gaussian_belief(0.8, 0.3), _alternating_errors(), grid.prior(), 0.1)
    mono = {n: S.is_strictly_increasing(np.abs(d), v) for n, v in meas.items()}
    assert not mono["Sh2"] and not mono["Ba1"] and not mono["Po1"]
    assert mono["Sh1"] and mono["CC1"]  # these do not involve the change prior or the volatile posterior


def test_is_strictly_increasing():
    assert S.is_strictly_increasing([3, 1, 2], [30, 10, 20])
    assert not S.is_strictly_increasing([3, 1, 2], [30, 10, 10])
    with pytest.raises(ValueError, match="ties"):
        S.is_strictly_increasing([1, 1, 2], [1, 2, 3])


# --------------------------------------------------------------------------------------------
# Property-based tests
# --------------------------------------------------------------------------------------------


@PROPS
@given(seed=st.integers(0, 2**31 - 1), p_c=st.floats(0.0, 0.9))
def test_property_gamma_and_kl_signs_on_the_grid(seed, p_c):
    model = S.GridModel.build(SIGMA, n_theta=121)
    rng = np.random.default_rng(seed)
    b, y = _random_grid_beliefs(model, rng, 8), rng.uniform(-5, 5, 8)   # inside the grid's range
    pr = model.prior()
    after, gamma = S.update(model, b, y, pr, p_c)
    np.testing.assert_allclose(gamma, S.change_probability(model, b, y, pr, p_c), atol=1e-10)
    np.testing.assert_allclose(after.sum(-1), 1.0, atol=1e-12)
    assert np.all((gamma >= 0) & (gamma <= 1))
    out = S.compute_all(model, b, y, after, pr, p_c)
    for name in ("Ba1", "Ba2", "Po1", "Po2", "CC1", "CC2", "Abs1", "Sq1", "uRPE"):
        assert np.all(out[name] >= -1e-12), name
    assert np.all(out["BF"] > 0)
    assert all(np.all(np.isfinite(v)) for v in out.values())


@PROPS
@given(seed=st.integers(0, 2**31 - 1), p_c=st.floats(0.0, 0.9), k=st.integers(2, 12))
def test_property_discrete_identities(seed, p_c, k):
    model = S.DirichletModel(k)
    rng = np.random.default_rng(seed)
    b, y = _random_dirichlet_mixture(model, rng, 6), rng.integers(0, k, 6)
    pr = model.prior(rng.uniform(0.05, 3))
    after, gamma = S.update(model, b, y, pr, p_c)
    out = S.compute_all(model, b, y, after, pr, p_c, names=S.applicable(model, 0.5))  # mixtures: no Ba/CC/FE
    for v in ("1", "2"):
        np.testing.assert_allclose(out["SPE" + v], 1 - np.exp(-out["Sh" + v]), atol=1e-10)
        np.testing.assert_allclose(out["Abs" + v], 2 * out["SPE" + v], atol=1e-10)
        assert np.all((out["SPE" + v] >= 0) & (out["SPE" + v] <= 1))
    np.testing.assert_allclose(after.weight.sum(-1), 1.0, atol=1e-12)


@PROPS
@given(m=st.floats(-3, 3), s=st.floats(0.05, 2.0), sigma=st.floats(0.1, 3.0))
def test_property_stationary_gaussian_measures_are_monotone(m, s, sigma):
    """With a Gaussian belief and p_c = 0 all measures but S_BF are strictly increasing in |delta|."""
    nm = S.NormalModel(sigma)
    d, meas = S.error_sweep(nm, S.NormalBelief(np.asarray(m), np.asarray(s**2)), _alternating_errors(30) * sigma,
                            nm.prior(), 0.0)
    for name, v in meas.items():
        if name != "BF":
            assert S.is_strictly_increasing(np.abs(d), v), name


@PROPS
@given(s1=st.floats(0.02, 0.49), frac=st.floats(0.05, 0.95), delta=st.floats(-3.0, 3.0))
def test_property_cc_rises_with_confidence_where_shannon_need_not(s1, frac, delta):
    """At a fixed prediction error and beliefs narrower than the noise (s1 < s2 < sigma), S_CC is larger
    for the more confident belief; S_Sh is smaller for it whenever delta^2 < s1^2 + sigma^2."""
    nm = S.NormalModel(SIGMA)
    s2 = s1 + frac * (SIGMA - s1)
    b1, b2 = S.NormalBelief(np.asarray(0.0), np.asarray(s1**2)), S.NormalBelief(np.asarray(0.0), np.asarray(s2**2))
    assert S.confidence_corrected(nm, b1, delta) > S.confidence_corrected(nm, b2, delta)
    if delta**2 < s1**2 + SIGMA**2:
        assert S.shannon(nm, b1, delta) < S.shannon(nm, b2, delta)


# --------------------------------------------------------------------------------------------
# Runs and simulations
# --------------------------------------------------------------------------------------------


def test_simulations_are_reproducible_and_have_the_right_change_rate():
    a = S.simulate_gaussian(20000, 0.5, 0.05, np.random.default_rng(0))
    b = S.simulate_gaussian(20000, 0.5, 0.05, np.random.default_rng(0))
    np.testing.assert_array_equal(a.y, b.y)
    assert a.change[0] and abs(a.change[1:].mean() - 0.05) < 0.006
    seg_std = np.std(a.y - a.theta)
    assert seg_std == pytest.approx(0.5, rel=0.03)
    c = S.simulate_categorical(5000, 10, 0.1, 0.02, np.random.default_rng(1))
    assert c.y.min() >= 0 and c.y.max() < 10 and abs(c.change[1:].mean() - 0.02) < 0.006
    np.testing.assert_allclose(c.theta.sum(1), 1.0)


def test_run_smoke_and_chunk_invariance(grid):
    task = S.simulate_gaussian(300, 0.5, 0.05, np.random.default_rng(2))
    r = S.run(grid, task.y, grid.prior(), 0.05, chunk=64, keep_beliefs=True)
    assert set(r.measures) == set(S.applicable(grid, 0.05)) and len(r.measures) == 16
    assert all(v.shape == (300,) and np.all(np.isfinite(v)) for v in r.measures.values())
    assert np.all(r.measures["BF"] >= 0)
    naive = S.run_naive(grid, task.y[:40], grid.prior(), 0.05)
    for name, v in naive.measures.items():
        np.testing.assert_allclose(v, r.measures[name][:40], rtol=1e-12, atol=1e-12, err_msg=name)
    # the stored beliefs are the exact filter
    after, gamma = S.update(grid, r.beliefs[:-1], task.y, grid.prior(), 0.05)
    np.testing.assert_allclose(after, r.beliefs[1:], atol=1e-12)
    np.testing.assert_allclose(gamma, r.gamma, atol=1e-12)


def test_task_summary_of_a_run(grid):
    task = S.simulate_gaussian(1500, SIGMA, 0.05, np.random.default_rng(6))
    meas = S.run(grid, task.y, grid.prior(), 0.05).measures
    summ = S.task_summary(meas, task.change)
    assert summ["most_distinct"] in meas and summ["weakest_pair"] in {f"{a}/{b}" for a, b in S.VARIANT_PAIRS}
    assert 0.5 < summ["best_auc"] <= 1 and summ["best_detector"] in meas
    assert -1 <= summ["mean_rho_bf"] <= 1 and summ["weakest_rho"] <= 1
    none = S.task_summary(meas, np.zeros(1500, bool))
    assert none["best_detector"] is None and np.isnan(none["best_auc"])


def test_conjugate_beliefs_are_the_sequential_posteriors():
    nm = S.NormalModel(SIGMA)
    y = S.simulate_gaussian(30, SIGMA, 0.0, np.random.default_rng(5)).y
    nb = S.conjugate_beliefs(nm, y, nm.prior())
    b = nm.prior()
    for t in range(y.size):
        assert nb.mean[t] == pytest.approx(float(b.mean), abs=1e-12)
        assert nb.var[t] == pytest.approx(float(b.var), abs=1e-12)
        b = nm.posterior(b, y[t])


def test_categorical_run_equals_the_generic_update(dirichlet):
    task = S.simulate_categorical(25, 6, 0.3, 0.1, np.random.default_rng(3))
    pr = dirichlet.prior(0.3)
    r = S.run(dirichlet, task.y, pr, 0.1, prune=0.0, keep_beliefs=True)
    b = pr
    for t, yt in enumerate(task.y):
        np.testing.assert_allclose(dirichlet.predictive_probs(r.beliefs[t]), dirichlet.predictive_probs(b)[0],
                                   atol=1e-12)
        b, g = S.update(dirichlet, b, np.array([yt]), pr, 0.1)
        assert g[0] == pytest.approx(r.gamma[t], abs=1e-12)
    assert "Ba1" not in r.measures and "SPE1" in r.measures and "Po2" in r.measures
    stationary = S.run(dirichlet, task.y, pr, 0.0)
    assert len(stationary.measures) == 18 and stationary.n_components == 1


def test_analyses_helpers():
    rng = np.random.default_rng(4)
    x = rng.normal(size=500)
    meas = {"a": x, "b": 2 * x + 0.01 * rng.normal(size=500), "c": rng.normal(size=500)}
    names, rho = S.rank_correlation(meas)
    assert names == ["a", "b", "c"] and rho[0, 1] > 0.99 and abs(rho[0, 2]) < 0.2
    order, _ = S.cluster_order(rho)
    assert abs(list(order).index(0) - list(order).index(1)) == 1
    change = np.zeros(500, bool)
    change[::10] = True
    auc = S.detection_auc({"perfect": change.astype(float), "noise": rng.normal(size=500)}, change)
    assert auc["perfect"] == 1.0 and 0.35 < auc["noise"] < 0.65
    assert all(np.isnan(v) for v in S.detection_auc({"a": x}, np.zeros(500, bool)).values())
    yhat = np.array([1.0, 1.0, -1.0, -1.0])
    y = np.array([1.5, 0.5, -1.5, -0.5])   # signs +, -, +, -
    ms = S.bf_vs_shannon(yhat, y, np.array([1.0, 3.0, 1.0, 5.0]), np.ones(4), np.ones(4), [0.5])
    assert ms.n_plus[0] == 2 and ms.n_minus[0] == 2 and ms.bf_ratio[0] == pytest.approx(4.0)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def test_table_has_eighteen_definitions_in_three_groups_and_four_categories():
    assert len(S.MEASURES) == 18 and len(set(S.MEASURE_NAMES)) == 18
    assert {m.group for m in S.MEASURES} == set(S.GROUPS)
    assert {m.category for m in S.MEASURES} == set(S.CATEGORIES)
    assert [m.name for m in S.MEASURES if m.category == "change-point detection"] == ["BF"]
    df = S.measure_table()
    assert list(df.index) == list(S.MEASURE_NAMES) and {"group", "category", "formula"} <= set(df.columns)


def test_measure_objects_are_callable_with_the_uniform_signature(grid):
    b = grid.gaussian_belief(0.0, 0.5)
    after, _ = S.update(grid, b, 1.0, grid.prior(), 0.05)
    for m in S.MEASURES:
        if m.discrete_only:
            continue
        assert np.isfinite(m(grid, b, 1.0, after, grid.prior(), 0.05))


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p_c", [-0.1, 1.0, 1.5, float("nan"), "a", None])
def test_p_c_outside_unit_interval_is_an_error(grid, p_c):
    b = grid.prior()
    with pytest.raises(ValueError, match=r"p_c must be"):
        S.shannon(grid, b, 0.0, None, b, p_c, variant="changeaware")
    with pytest.raises(ValueError, match=r"p_c must be"):
        S.update(grid, b, 0.0, b, p_c)


def test_bad_grid_beliefs_are_errors(grid):
    b = grid.prior()
    with pytest.raises(ValueError, match="sum to 1"):
        S.shannon(grid, 2 * b * 0.5 + 1e-3, 0.0)
    with pytest.raises(ValueError, match="shape"):
        S.shannon(grid, b[:-1], 0.0)
    neg = b.copy()
    neg[0], neg[1] = -0.01, neg[1] + 0.01
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.shannon(grid, neg, 0.0)
    big = np.zeros_like(b)
    big[0], big[1] = 1.5, -0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.shannon(grid, big, 0.0)
    with pytest.raises(ValueError, match="finite"):
        S.shannon(grid, b, np.nan)
    with pytest.raises(ValueError, match="do not broadcast"):
        S.shannon(grid, np.tile(b, (3, 1)), np.zeros(4))


def test_bad_dirichlet_inputs_are_errors(dirichlet):
    b = dirichlet.prior()
    with pytest.raises(ValueError, match="0..5"):
        S.shannon(dirichlet, b, 6)
    with pytest.raises(ValueError, match="integer"):
        S.shannon(dirichlet, b, 1.5)
    with pytest.raises(ValueError, match="sum to 1"):
        S.shannon(dirichlet, S.DirichletBelief(np.ones((2, 6)), np.array([0.5, 0.6])), 1)
    with pytest.raises(ValueError, match="positive"):
        S.shannon(dirichlet, S.DirichletBelief.single(np.zeros(6)), 1)
    with pytest.raises(ValueError, match="shape"):
        S.shannon(dirichlet, S.DirichletBelief.single(np.ones(5)), 1)
    with pytest.raises(ValueError, match="DirichletBelief"):
        S.shannon(dirichlet, np.ones(6) / 6, 1)
    mix = S.DirichletBelief(np.ones((2, 6)), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="single-Dirichlet"):
        S.bayesian(dirichlet, mix, 1, mix)
    with pytest.raises(ValueError, match="n_outcomes"):
        S.DirichletModel(1)


def test_unknown_variants_and_names_are_errors(grid):
    b = grid.prior()
    after, _ = S.update(grid, b, 0.0, b, 0.0)
    with pytest.raises(ValueError, match="unknown variant 'Sh3'"):
        S.shannon(grid, b, 0.0, variant="Sh3")
    with pytest.raises(ValueError, match="unknown direction"):
        S.bayesian(grid, b, 0.0, after, direction="sideways")
    with pytest.raises(ValueError, match="unknown q"):
        S.free_energy(grid, b, 0.0, after, q="laplace")
    with pytest.raises(ValueError, match="unknown measure 'Sh9'; expected one of Sh1"):
        S.compute_all(grid, b, 0.0, after, b, 0.0, names=["Sh9"])


def test_missing_or_unsupported_arguments_are_errors(grid):
    b = grid.prior()
    with pytest.raises(ValueError, match="needs the belief after"):
        S.bayesian(grid, b, 0.0)
    with pytest.raises(ValueError, match="needs the prior"):
        S.bayes_factor(grid, b, 0.0)
    with pytest.raises(ValueError, match="discrete observations only"):
        S.state_prediction_error(grid, b, 0.0)
    nm = S.NormalModel(SIGMA)
    nb = nm.prior()
    with pytest.raises(ValueError, match="p_c = 0"):
        S.bayesian(nm, nb, 0.0, nb, nb, 0.1, variant="changeaware")
    with pytest.raises(ValueError, match="moment"):
        S.free_energy(S.DirichletModel(3), S.DirichletModel(3).prior(), 0, q="moment")
    with pytest.raises(ValueError, match="sigma"):
        S.GridModel.build(sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        S.NormalModel(-1.0)
    with pytest.raises(ValueError, match="rng"):
        S.simulate_gaussian(10)
    with pytest.raises(ValueError, match="positive integer"):
        S.simulate_gaussian(0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="one-dimensional"):
        S.run(grid, np.zeros((2, 2)), b, 0.0)


# --------------------------------------------------------------------------------------------
# Issue 9: independent routes, discretisation error, the postdictive reconstruction, bad input
# --------------------------------------------------------------------------------------------


def test_gamma_on_the_grid_matches_an_exact_run_length_mixture():
    """gamma from S_BF on the grid against P(change | y) of the exact Gaussian run-length mixture.

    Error model: the grid on +-8 prior sds cuts 2 Phi(-8) = 1.2e-15 of the prior, the spacing
    error of a belief of run length r is 4 exp(-2 pi^2 s_r^2 / h^2) (s_r = sigma / sqrt(r + 1 +
    sigma^2), here < 1e-30) and float64 rounding adds ~1e-15 per step: 1e-12 is a wide bound.
    """
    model = S.GridModel.build(0.7, n_theta=641, theta_max=8.0)
    task = S.simulate_gaussian(400, 0.7, 0.08, np.random.default_rng(21))
    r = S.run(model, task.y, model.prior(), 0.08, ["Sh1", "Sh2", "BF"], keep_beliefs=True)
    mix = S.run_length_filter(task.y, 0.7, 0.08)
    g_bf = S.change_probability(model, r.beliefs[:-1], task.y, model.prior(), 0.08)
    assert np.abs(g_bf - mix.gamma).max() < 1e-12
    for name in ("Sh1", "Sh2", "BF"):
        np.testing.assert_allclose(r.measures[name], mix.measures[name], rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(r.yhat, mix.yhat, atol=1e-12)


def test_run_length_filter_against_a_brute_force_two_step_posterior():
    """Two observations: P(C_2 = 1 | y_1, y_2) by direct integration of the joint."""
    sig, p_c, y = 0.6, 0.3, np.array([0.4, 2.1])
    mix = S.run_length_filter(y, sig, p_c)
    s2 = sig**2
    # y_2 | no change: N(post mean, post var + s2); post after y_1 from N(0, 1)
    k = 1 / (1 + s2)
    p_nc = stats.norm.pdf(y[1], k * y[0], math.sqrt(1 - k + s2))
    p_c0 = stats.norm.pdf(y[1], 0, math.sqrt(1 + s2))
    assert mix.gamma[1] == pytest.approx(p_c * p_c0 / (p_c * p_c0 + (1 - p_c) * p_nc), abs=1e-14)
    assert mix.gamma[0] == pytest.approx(p_c, abs=1e-14)   # the first step: S_BF = 1
    with pytest.raises(ValueError, match="sigma"):
        S.run_length_filter(y, -1.0, p_c)
    with pytest.raises(ValueError, match="at least one"):
        S.run_length_filter(np.array([]), sig, p_c)


def test_adapted_grid_bounds_the_discretisation_error_of_a_sharp_task():
    """sigma = 0.1, p_c = 0.001: the belief narrows to sigma / sqrt(r); a grid made for the run
    length keeps Shannon surprise and gamma within the stated bound of the exact mixture, where
    a grid of fixed spacing (0.006) is off by orders of magnitude more."""
    task = S.simulate_gaussian(1500, 0.1, 0.001, np.random.default_rng(22))
    mix = S.run_length_filter(task.y, 0.1, 0.001)
    longest = S.longest_run(task.change)
    model = S.GridModel.adapted(0.1, run_length=2 * longest, tol=1e-8)
    bound = model.discretisation_error(2 * longest)
    assert bound <= 1e-8
    r = S.run(model, task.y, model.prior(), 0.001, ["Sh1", "BF"])
    assert np.abs(r.measures["Sh1"] - mix.measures["Sh1"]).max() < bound
    assert np.abs(r.gamma - mix.gamma).max() < bound
    coarse = S.GridModel.build(0.1, n_theta=2001, theta_max=6.0)
    rc = S.run(coarse, task.y, coarse.prior(), 0.001, ["Sh1"])
    assert np.abs(rc.measures["Sh1"] - mix.measures["Sh1"]).max() > 1e3 * bound
    assert S.GridModel.adapted(5.0, 2 * longest).n < S.GridModel.adapted(0.1, 2 * longest).n


def test_observations_beyond_the_grid_are_errors_not_truncations():
    model = S.GridModel.build(0.5, n_theta=401, theta_max=6.0)
    b = model.gaussian_belief(0.0, 0.5)
    for y in (7.0, -10.0):
        with pytest.raises(ValueError, match="theta_max"):
            S.shannon(model, b, np.array([y]), None, model.prior(), 0.05, variant="changeaware")
        with pytest.raises(ValueError, match="theta_max"):
            S.update(model, b, np.array([y]), model.prior(), 0.05)
        with pytest.raises(ValueError, match="theta_max"):
            S.run(model, np.array([0.1, y]), model.prior(), 0.05)
    S.update(model, b, np.array([3.0]), model.prior(), 0.05)       # well inside: accepted
    # an adapted grid widens to cover the observations it is given
    wide = S.GridModel.adapted(1.0, 10, y=np.array([0.3, -6.8]))
    assert wide.theta[-1] > 8.0
    S.update(wide, wide.prior(), np.array([-6.8]), wide.prior(), 0.05)
    with pytest.raises(ValueError, match="theta_max"):
        S.update(S.GridModel.adapted(1.0, 10), S.GridModel.adapted(1.0, 10).prior(), np.array([-6.8]),
                 S.GridModel.adapted(1.0, 10).prior(), 0.05)


def test_confidence_corrected_uses_the_exact_flat_posterior_for_a_wide_likelihood():
    """sigma = 3 on a +-8 grid: the likelihood is cut by the grid; S_CC must still be the KL to
    N(y, sigma^2), the closed form of the NormalModel."""
    model = S.GridModel.build(3.0, n_theta=1601, theta_max=8.0)
    nm = S.NormalModel(3.0)
    y = np.array([-4.0, 0.5, 6.0])
    cc = S.confidence_corrected(model, model.gaussian_belief(np.zeros(3), 0.4), y)
    ref = S.confidence_corrected(nm, S.NormalBelief(np.zeros(3), np.full(3, 0.16)), y)
    np.testing.assert_allclose(cc, ref, atol=1e-9)


def test_postdictive_variant_two_compares_the_prediction_and_the_postdiction_of_y():
    """The book's reconstruction: S_Po2 = KL[P(.; hat pi^(t)) || P(.; pi^(t+1))], both the law of
    the same y_{t+1}. An observation that leaves the change-aware prior unchanged carries no
    information: S_Po2 = S_Ba2 = 0 then. The alternative (reading="prediction") compares with the
    change-aware prediction of the next observation and is not zero."""
    model = S.GridModel.build(0.5, n_theta=321, theta_max=8.0)
    prior, p_c = model.prior(), 0.1
    b = model.gaussian_belief(np.array([0.8, -0.3]), np.array([0.3, 0.6]))
    y = np.array([0.5, 0.1])
    hat = model.mix(b, prior, p_c)
    assert np.all(S.postdictive(model, b, y, hat, prior, p_c, variant="changeaware") == 0)
    assert np.all(S.bayesian(model, b, y, hat, prior, p_c, variant="changeaware") == 0)
    alt = S.postdictive(model, b, y, hat, prior, p_c, variant="changeaware", reading="prediction")
    np.testing.assert_allclose(alt, model.predictive_kl(hat, model.mix(hat, prior, p_c)), atol=1e-15)
    assert np.all(alt > 1e-4)
    # variant 1 is the same under both readings; the switch reaches compute_all and run
    after, _ = S.update(model, b, y, prior, p_c)
    one = [S.postdictive(model, b, y, after, prior, p_c, reading=a) for a in S.POSTDICTIVE_AFTER]
    np.testing.assert_array_equal(*one)
    out = S.compute_all(model, b, y, after, prior, p_c, ["Po2"], reading="prediction")
    np.testing.assert_allclose(out["Po2"], model.predictive_kl(hat, model.mix(after, prior, p_c)), atol=1e-15)
    with pytest.raises(ValueError, match="reading"):
        S.postdictive(model, b, y, after, prior, p_c, reading="next")


def test_order_violations_measure_how_far_from_monotone():
    assert S.order_violations([1, 2, 3], [1, 2, 3]) == 0.0
    assert S.order_violations([1, 2, 3], [3, 2, 1]) == 1.0
    assert S.order_violations([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 / 6)
    assert S.order_violations([1, 2, 3], [1, 1 - 1e-15, 2], rtol=1e-9) == 0.0   # rounding is not a violation
    with pytest.raises(ValueError, match="ties"):
        S.order_violations([1, 1, 2], [1, 2, 3])


def test_empty_and_degenerate_inputs_are_errors(grid):
    with pytest.raises(ValueError, match="at least"):
        S.task_summary({"Sh1": np.array([]), "BF": np.array([])}, np.array([], bool))
    with pytest.raises(ValueError, match="at least"):
        S.task_summary({}, np.zeros(5, bool))
    with pytest.raises(ValueError, match="length"):
        S.task_summary({"Sh1": np.arange(5.0), "BF": np.arange(5.0)}, np.zeros(4, bool))
    with pytest.raises(ValueError, match="at least one observation"):
        S.run(grid, np.array([]), grid.prior(), 0.05)
    with pytest.raises(ValueError, match="n_outcomes"):
        S.simulate_categorical(10, n_outcomes=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_outcomes"):
        S.simulate_categorical(10, n_outcomes=2.5, rng=np.random.default_rng(0))
    ones = np.ones(4)
    with pytest.raises(ValueError, match="finite"):
        S.bf_vs_shannon(ones, np.array([1.0, np.nan, 2.0, 0.5]), ones, ones, ones, [0.5])
    with pytest.raises(ValueError, match="same shape"):
        S.bf_vs_shannon(ones, ones[:3], ones, ones, ones, [0.5])
    with pytest.raises(ValueError, match="halfwidth"):
        S.bf_vs_shannon(ones, ones, ones, ones, ones, [0.5], halfwidth=-1.0)


# --------------------------------------------------------------------------------------------
# Controls of the chapter's claims (issue 28): the same metric fails on a broken formula
# --------------------------------------------------------------------------------------------


def test_gamma_without_the_odds_is_off_by_far_more_than_the_tolerance(grid):
    from lib.protocols import surprise_taxonomy as proto

    rng = np.random.default_rng(1)
    b, y, p_c = _random_grid_beliefs(grid, rng, 20), rng.normal(0, 2, 20), 0.05
    bf = S.bayes_factor(grid, b, y, None, grid.prior(), p_c)
    exact = S.change_probability(grid, b, y, grid.prior(), p_c)
    ctl = proto.gamma_without_odds(bf, p_c)
    # p_c S / (1 + p_c S) < m S / (1 + m S): off by gamma (1 - gamma) p_c / (1 - p_c) to first order
    assert np.all(ctl <= exact) and np.abs(ctl - exact).max() > 1e-3


def test_crossed_variants_break_the_discrete_identities(dirichlet):
    from lib.protocols import surprise_taxonomy as proto

    task = S.simulate_categorical(300, dirichlet.n_outcomes, 0.1, 0.05, np.random.default_rng(2))
    m = S.run(dirichlet, task.y, dirichlet.prior(0.1), 0.05).measures
    e_spe, e_abs = proto.cross_variant_errors(m)
    assert e_spe > 1e-3 and e_abs > 1e-3


def test_shuffled_pairs_and_the_least_correlated_measure():
    from lib.protocols import surprise_taxonomy as proto

    rng = np.random.default_rng(3)
    x = rng.normal(size=2000)
    m = {"a1": x, "a2": x + 0.01 * rng.normal(size=x.size), "b": rng.normal(size=x.size)}
    assert abs(proto.shuffled_pair_rho(m, [("a1", "a2")], rng)) < 0.1
    names, rho = S.rank_correlation(m)
    assert proto.least_correlated(names, rho) == "b"
