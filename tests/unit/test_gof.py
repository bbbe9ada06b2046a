"""Unit tests of lib/gof.py (goodness-of-fit tests of Gerhard & Gerstner 2010)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lib import gof

# ------------------------------------------------------------------------------------------------
# Shared simulations (module scope: simulated once)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_run():
    """One 200-s trial of the true model at 66 Hz (1-ms bins)."""
    return gof.simulate(gof.glm_at(gof.BIAS_66HZ), 200.0, 1, np.random.default_rng(2010))


@pytest.fixture(scope="module")
def many_runs():
    """60 trials of 20 s of the true model at 66 Hz."""
    return gof.simulate(gof.glm_at(gof.BIAS_66HZ), 20.0, 60, np.random.default_rng(11))


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def test_history_kernel_at_1ms_is_the_pilot_kernel():
    h = np.array(gof.history_kernel(1e-3))
    expected = np.r_[-8.0, -8.0, -4.0 * np.exp(-np.arange(8) / 3.0)]
    np.testing.assert_allclose(h, expected, rtol=1e-12)
    assert len(gof.history_kernel(5e-3)) == 2


def test_stimulus_has_unit_variance_and_boxcar_correlation():
    s = gof.stimulus(20, 20_000, 20, np.random.default_rng(0))
    assert abs(s.var() - 1) < 0.03
    # a boxcar of 20 bins: lag-10 correlation is 1 - 10/20 = 0.5, lag-20 correlation is 0
    c10 = np.mean(s[:, 10:] * s[:, :-10])
    c20 = np.mean(s[:, 20:] * s[:, :-20])
    assert abs(c10 - 0.5) < 0.05 and abs(c20) < 0.05


def test_simulated_probability_equals_model_probability(many_runs):
    """The vectorised loop and the convolution give the same conditional probabilities."""
    p = gof.model_probability(many_runs.model, many_runs.s, many_runs.y)
    np.testing.assert_allclose(p, many_runs.p, rtol=0, atol=1e-12)
    assert 55 < many_runs.rate_hz < 78  # about 66 Hz


def test_refractoriness_holds_in_simulation(many_runs):
    y = many_runs.y.astype(bool)
    # absolute refractoriness (-8 log-odds for 2 ms) makes spikes in consecutive bins very rare
    assert np.mean(y[:, 1:] & y[:, :-1]) < 1e-4


def test_repetitions_are_independent_and_seeded():
    a = gof.simulate(gof.glm_at(), 1.0, 5, np.random.default_rng(3))
    b = gof.simulate(gof.glm_at(), 1.0, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y[0], a.y[1])


def test_corrected_rescaling_passes_and_naive_fails_on_long_run(long_run):
    y, p = long_run.y[0], long_run.p[0]
    _, p_corr = gof.ks_test(gof.rescale_surrogate(y, p, np.random.default_rng(0)))
    _, p_naive = gof.ks_test(gof.rescale_naive(y, p))
    assert p_corr > 1e-3
    assert p_naive < 1e-3


def test_naive_over_rejects_at_high_rate_and_corrected_tests_keep_size(many_runs):
    rej = gof.rejection_matrix(many_runs.y, many_runs.p, np.random.default_rng(5))
    rate = dict(zip(gof.TESTS, rej.mean(axis=0), strict=True))
    assert rate["R0"] >= 0.5
    lo, hi = gof.acceptance_region(rej.shape[0])
    for t in ("R", "T", "C"):
        k = int(rej[:, list(gof.TESTS).index(t)].sum())
        assert lo <= k <= hi, f"{t}: {k} of {rej.shape[0]} rejected"


def test_poisson_glm_surrogate_is_uniform():
    sim = gof.simulate(gof.glm_at(gof.BIAS_66HZ, family="poisson"), 50.0, 1, np.random.default_rng(8))
    assert sim.y.max() >= 1
    u = gof.rescale_poisson_surrogate(sim.y[0], sim.p[0], np.random.default_rng(1))
    assert u.size == sim.y.sum()
    assert gof.ks_test(u)[1] > 1e-3


def test_continuous_rescaling_of_inhomogeneous_poisson():
    rng = np.random.default_rng(4)

    def rate(t):
        return 20.0 + 15.0 * np.sin(2 * np.pi * t)

    def comp(t):
        return 20.0 * t + 15.0 * (1 - np.cos(2 * np.pi * t)) / (2 * np.pi)

    t = gof.simulate_inhomogeneous_poisson(rate, 35.0, 100.0, rng)
    assert gof.ks_test(gof.rescale_continuous(t, comp))[1] > 1e-3
    kept = gof.thin_continuous(t, rate, 5.0, rng)
    assert gof.ks_test(gof.homogeneous_u(kept, 5.0))[1] > 1e-3
    union, added = gof.complement_continuous(t, rate, 35.0, 100.0, rng)
    assert union.size == t.size + added.size
    assert gof.ks_test(gof.homogeneous_u(union, 35.0))[1] > 1e-3


# ------------------------------------------------------------------------------------------------
# Thinning, complementing, PIT
# ------------------------------------------------------------------------------------------------


def _within_3se(z, p0):
    se = np.sqrt(p0 * (1 - p0) / z.size)
    return abs(z.mean() - p0) < 3 * se


def test_thinned_and_complemented_rates_equal_the_bounds(long_run):
    y, p = long_run.y[0], long_run.p[0]
    th = gof.thin_discrete(y, p, np.random.default_rng(1), q=0.5)
    co = gof.complement_discrete(y, p, np.random.default_rng(2), q=0.5)
    assert th.bound == pytest.approx(np.median(p))
    assert _within_3se(th.z, th.bound), (th.z.mean(), th.bound)
    assert _within_3se(co.z, co.bound), (co.z.mean(), co.bound)
    # the thinned process keeps only original spikes; the complemented one keeps all of them
    assert np.all(y[th.bins][th.z] == 1)
    assert np.all(co.z[y[co.bins].astype(bool)])


@pytest.mark.parametrize("p0", [0.02, 0.3, 0.9])
def test_randomised_pit_of_geometric_data_is_uniform(p0):
    rng = np.random.default_rng(7)
    n = rng.geometric(p0, size=5000)
    u = gof.geometric_pit(n, p0, rng)
    assert np.all((u >= 0) & (u <= 1))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # without randomisation the discreteness breaks the KS null
    if p0 >= 0.3:
        assert stats.kstest(gof.geometric_cdf(n, p0), "uniform").pvalue < 1e-3


def test_geometric_cdf_edge_cases():
    assert gof.geometric_cdf(0, 0.3) == 0.0
    assert gof.geometric_cdf(1, 1.0) == 1.0
    assert gof.geometric_cdf(3, 0.5) == pytest.approx(0.875)


def test_ks_helpers():
    assert gof.ks_critical(100) == pytest.approx(0.1340, abs=1e-4)
    assert gof.acceptance_region(100) == (0, 11)
    b = gof.ks_band(np.linspace(0.05, 0.95, 10))
    assert b.model[0] == pytest.approx(0.05)
    assert b.halfwidth == pytest.approx(gof.ks_critical(10) - 0.05)  # d - 1/(2n)


def test_fit_bernoulli_glm_recovers_parameters():
    model = gof.GLM(bias=-3.0, stim_gain=0.8, history=())
    sim = gof.simulate(model, 100.0, 1, np.random.default_rng(9))
    fit = gof.fit_bernoulli_glm(sim.y[0], sim.s[0])
    np.testing.assert_allclose(fit.params, [-3.0, 0.8], atol=0.08)
    p = gof.glm_predict(fit, sim.s[0], sim.y[0])
    assert p.shape == sim.p[0].shape
    X = gof.lagged_design([1, 0, 1, 1], 2)
    np.testing.assert_array_equal(X, [[0, 0], [1, 0], [0, 1], [1, 0]])


# ------------------------------------------------------------------------------------------------
# Property-based tests
# ------------------------------------------------------------------------------------------------

_bins = st.integers(min_value=1, max_value=300)


@st.composite
def binned_train(draw):
    n = draw(_bins)
    p = np.array(draw(st.lists(st.floats(0.0, 0.999, allow_nan=False), min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    seed = draw(st.integers(0, 2**32 - 1))
    return y, p, seed


@settings(max_examples=150, deadline=None)
@given(binned_train())
def test_surrogate_rescaling_is_bounded_and_consistent(data):
    y, p, seed = data
    tau = gof.rescaled_intervals_surrogate(y, p, np.random.default_rng(seed))
    u = gof.rescale_surrogate(y, p, np.random.default_rng(seed))
    assert tau.shape == u.shape == (int(y.sum()),)
    assert np.all((u >= 0) & (u <= 1))
    # the surrogate compensator of an interval lies between the sum of q over the empty bins
    # and that sum plus the spike bin's q (the spike sits somewhere inside its bin)
    q = -np.log1p(-p)
    spikes = np.flatnonzero(y)
    starts = np.r_[0, spikes + 1][: spikes.size]
    lower = np.array([q[a:b].sum() for a, b in zip(starts, spikes, strict=True)])
    upper = lower + q[spikes]
    assert np.all(tau >= lower - 1e-9) and np.all(tau <= upper + 1e-9)
    # the surrogate's spikes lie inside their bins, in the order of the data
    ts = gof.surrogate_spike_times(y, p, np.random.default_rng(seed), dt=1e-3)
    assert ts.shape == spikes.shape
    assert np.all(ts >= spikes * 1e-3 - 1e-12) and np.all(ts <= (spikes + 1) * 1e-3 + 1e-12)
    # the naive rescaling uses the inclusive sum of p instead
    naive = gof.rescale_naive(y, p)
    np.testing.assert_allclose(naive, -np.expm1(-np.array([p[a:b + 1].sum() for a, b in zip(starts, spikes, strict=True)])),
                               atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(binned_train(), st.floats(0.05, 0.95))
def test_thinning_removes_and_complementing_adds_only(data, q):
    y, p, seed = data
    rng = np.random.default_rng(seed)
    th = gof.thin_discrete(y, p, rng, q)
    co = gof.complement_discrete(y, p, rng, q)
    assert np.all(p[th.bins] >= th.bound) and np.all(p[co.bins] <= co.bound)
    assert np.all(y[th.bins][th.z] == 1)  # kept spikes are original spikes
    assert np.all(co.z[y[co.bins] == 1])  # original spikes stay
    for u in (th.u(rng), co.u(rng)):
        assert np.all((u >= 0) & (u <= 1))


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

_y = np.array([0, 1, 0, 1])
_p = np.array([0.1, 0.2, 0.3, 0.4])
_rng = np.random.default_rng(0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gof.rescale_naive(_y, [0.1, 0.2, 0.3]), "length 3 but the spike array has length 4"),
        (lambda: gof.rescale_surrogate(_y, [0.1, 1.2, 0.3, 0.4], _rng), r"in \[0, 1\]"),
        (lambda: gof.rescale_surrogate(_y, [0.1, -0.1, 0.3, 0.4], _rng), r"in \[0, 1\]"),
        (lambda: gof.rescale_naive(_y, [0.1, np.nan, 0.3, 0.4]), "NaN"),
        (lambda: gof.rescale_naive([0, 2, 0, 1], _p), "binary"),
        (lambda: gof.thin_discrete(_y, _p, _rng, q=1.0), r"open interval \(0, 1\)"),
        (lambda: gof.complement_discrete(_y, _p, _rng, q=0.0), r"open interval \(0, 1\)"),
        (lambda: gof.run_tests(_y, _p, _rng, tests=["R", "KS2"]), "unknown test name"),
        (lambda: gof.run_tests(_y, _p, _rng, q=-0.5), "open interval"),
        (lambda: gof.thin_continuous([0.1, 0.05, 0.3], [5.0, 5.0, 5.0], 1.0, _rng), "sorted"),
        (lambda: gof.thin_continuous([-0.1, 0.2], [5.0, 5.0], 1.0, _rng), "non-negative"),
        (lambda: gof.thin_continuous([0.1, 0.2], [5.0, 5.0], 1.0, _rng), "callable"),
        (lambda: gof.thin_continuous([0.1, 0.2], lambda t: 0 * t + 5, 1.0, _rng, 0.1), r"\[0, duration"),
        (lambda: gof.thin_continuous([0.1, 0.2], lambda t: np.ones((3,)), 1.0, _rng), "one value per spike"),
        (lambda: gof.thin_continuous([0.1, 0.2], lambda t: np.where(abs(t - 0.15) < 0.01, 0.5, 5.0), 1.0, _rng),
         "B <= lambda"),
        (lambda: gof.rescale_continuous([0.2, 0.1], lambda t: t), "sorted"),
        (lambda: gof.complement_continuous([0.1], lambda t: 50 + 0 * t, 10.0, 1.0, _rng), "C >= lambda"),
        (lambda: gof.rescale_poisson_surrogate([0, 1.5, 2], [0.1, 0.1, 0.1], _rng), "integer"),
        (lambda: gof.rescale_poisson_surrogate([0, 1, 2], [0.1, 0.1], _rng), "length 3"),
        (lambda: gof.geometric_pit([0, 2], 0.5, _rng), ">= 1"),
        (lambda: gof.misspecified(gof.glm_at(), "gain-x2"), "unknown misspecification"),
        (lambda: gof.GLM(family="gamma"), "unknown family"),
        (lambda: gof.pvalue_matrix(_y, _p, _rng), "2-D"),
        (lambda: gof.model_probability(gof.glm_at(), np.zeros(3), _y), "same shape"),
    ],
)
def test_bad_input_raises_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="Generator"):
        gof.rescale_surrogate(_y, _p, 0)


# ------------------------------------------------------------------------------------------------
# Issue 9: review against independent implementations
# ------------------------------------------------------------------------------------------------


def test_ks_band_is_left_exactly_when_the_ks_test_rejects():
    """D_n = max_i |u_(i) - (i - 1/2)/n| + 1/(2n): the band around the midpoints is d - 1/(2n)."""
    n = 50
    d = gof.ks_critical(n)
    mid = (np.arange(1, n + 1) - 0.5) / n
    # every value d - 1/(4n) above its midpoint (clipped at 1): inside a band of half-width d,
    # outside one of d - 1/(2n)
    u = np.clip(mid + d - 0.25 / n, 0.0, 1.0)
    D, pv = gof.ks_test(u)
    assert D == pytest.approx(d + 0.25 / n) and pv < gof.ALPHA
    b = gof.ks_band(u)
    assert b.halfwidth == pytest.approx(d - 0.5 / n)
    assert np.any(np.abs(b.empirical - b.model) > b.halfwidth)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=80))
def test_ks_band_agrees_with_ks_test(values):
    u = np.array(values)
    b = gof.ks_band(u)
    D, _ = gof.ks_test(u)
    crit = gof.ks_critical(u.size)
    if abs(D - crit) > 1e-9:  # away from the tie, leaving the band is rejecting
        assert np.any(np.abs(b.empirical - b.model) > b.halfwidth) == (D > crit)


def test_spike_free_train_is_rejected_against_a_high_rate_model():
    y = np.zeros(20_000, dtype=int)  # 20 s without a spike
    p = np.full(y.size, 0.05)        # a model that expects 1,000 spikes
    res = gof.run_tests(y, p, np.random.default_rng(0))
    assert set(res) == set(gof.TESTS)
    assert all(np.isfinite(v) and v < 1e-100 for v in res.values()), res
    # the p-value of an empty process is the model's probability of no event
    low = np.full(1000, 1e-5)
    res = gof.run_tests(np.zeros(1000, dtype=int), low, np.random.default_rng(0), tests=["R"])
    assert res["R"] == pytest.approx(np.prod(1 - low))
    rej = gof.rejection_matrix(np.zeros((3, 5000), dtype=int), np.full((3, 5000), 0.05),
                               np.random.default_rng(1))
    assert rej.all()


def test_bernoulli_pit_with_constant_probability_is_the_geometric_pit():
    rng = np.random.default_rng(3)
    z = rng.random(3000) < 0.2
    u = gof.bernoulli_pit(z, np.full(z.size, 0.2), np.random.default_rng(4))
    v = gof.geometric_pit(np.diff(np.flatnonzero(z), prepend=-1), 0.2, np.random.default_rng(4))
    np.testing.assert_allclose(u, v, rtol=0, atol=1e-12)


def test_bernoulli_pit_of_heterogeneous_trials_is_uniform():
    rng = np.random.default_rng(5)
    pi = np.repeat(rng.uniform(0.01, 0.6, 200), 100)  # 200 stretches of different p
    z = rng.random(pi.size) < pi
    u = gof.bernoulli_pit(z, pi, rng)
    assert u.size == z.sum() and np.all((u >= 0) & (u <= 1))
    assert gof.ks_test(u)[1] > 1e-3


@pytest.fixture(scope="module")
def size_runs():
    """100 runs of 10 s of the true model at 66 Hz (seed unused by the chapter)."""
    return gof.simulate(gof.glm_at(gof.BIAS_66HZ), 10.0, 100, np.random.default_rng(909))


@pytest.mark.parametrize("name", ["R", "T", "C"])
def test_pooled_values_of_the_true_model_are_uniform(size_runs, name):
    u = gof.pooled_values(name, size_runs.y, size_runs.p, np.random.default_rng(1))
    assert u.size > 20_000
    assert gof.ks_test(u)[1] > 1e-3


def test_pooled_rescaling_joins_the_runs_into_one_train(size_runs):
    y, p = size_runs.y[:3], size_runs.p[:3]
    u = gof.pooled_values("R", y, p, np.random.default_rng(2))
    v = gof.rescale_surrogate(y.ravel(), p.ravel(), np.random.default_rng(2))
    np.testing.assert_array_equal(u, v)


def test_size_check_catches_a_test_of_true_size_eight_percent(size_runs):
    """A model whose log-odds are 0.025 too low: 8.2 % of 1,000 such runs are rejected, which the
    count of 100 runs cannot tell from 5 %, but the pooled values of all runs can."""
    y = size_runs.y
    p = special_expit(special_logit(size_runs.p) - 0.025)
    pv = gof.pvalue_matrix(y, p, np.random.default_rng(3), tests=["R"])[:, 0]
    k = int((pv < gof.ALPHA).sum())
    lo, hi = gof.acceptance_region(pv.size)
    assert lo <= k <= hi  # the count passes ...
    chk = gof.size_check(pv, gof.pooled_values("R", y, p, np.random.default_rng(4)))
    assert chk.pooled_p < 1e-3 and not chk.passes()  # ... the pooled values do not
    exact = gof.pvalue_matrix(y, size_runs.p, np.random.default_rng(3), tests=["R"])[:, 0]
    good = gof.size_check(exact, gof.pooled_values("R", y, size_runs.p, np.random.default_rng(4)))
    assert good.passes(), good


def test_size_check_catches_a_test_that_never_rejects():
    rng = np.random.default_rng(6)
    never = rng.uniform(0.2, 1.0, 100)  # a conservative test: no p-value below 0.2
    chk = gof.size_check(never, rng.random(5000))
    assert chk.rejections == 0 and chk.binomial_p > 0.01  # the old size criterion passed
    assert chk.uniform_p < 1e-3 and not chk.passes()
    with pytest.raises(ValueError, match="NaN"):
        gof.size_check(np.r_[never, np.nan], rng.random(10))


def test_paired_pvalue_is_an_exact_one_sided_mcnemar_test():
    a = np.array([1, 1, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 0, 1], dtype=bool)
    assert gof.paired_pvalue(a, b) == pytest.approx(1 / 8)  # 3 discordant pairs, all for a
    assert gof.paired_pvalue(b, a) == pytest.approx(1.0)
    assert gof.paired_pvalue(a, a) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        gof.paired_pvalue(a, b[:3])


def _dead_time_intensity(spikes, rate=50.0, dead=0.002):
    """lambda(t | H_t): ``rate``, but 0 for ``dead`` seconds after each spike."""
    spikes = np.asarray(spikes)

    def lam(t):
        t = np.asarray(t, dtype=float)
        i = np.searchsorted(spikes, t, side="left") - 1  # last spike strictly before t
        since = np.where(i >= 0, t - spikes[np.maximum(i, 0)], np.inf)
        return np.where(since < dead, 0.0, rate)

    return lam


def test_continuous_thinning_checks_its_bound_between_the_spikes():
    t = np.cumsum(0.002 + np.random.default_rng(8).exponential(1 / 50, 500))
    lam = _dead_time_intensity(t)
    assert lam(t).min() == 50.0  # at the spikes the bound B = 10 looks valid
    with pytest.raises(ValueError, match="B <= lambda"):
        gof.thin_continuous(t, lam, 10.0, np.random.default_rng(0), duration=t[-1] + 0.01)
    with pytest.raises(ValueError, match="callable"):
        gof.thin_continuous(t, lam(t), 10.0, np.random.default_rng(0))


def test_continuous_complementing_checks_its_bound_between_the_points():
    def lam(t):  # 20 Hz with a 1-ms burst of 1,000 Hz every second
        return np.where(np.mod(t, 1.0) < 1e-3, 1000.0, 20.0)

    with pytest.raises(ValueError, match="C >= lambda"):
        gof.complement_continuous([], lam, 35.0, 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rate_max"):
        gof.simulate_inhomogeneous_poisson(lam, 35.0, 10.0, np.random.default_rng(0))


def special_expit(x):
    return 1 / (1 + np.exp(-x))


def special_logit(p):
    return np.log(p) - np.log1p(-p)


_e = np.array([])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gof.thin_discrete(_e, _e, _rng), "at least one bin"),
        (lambda: gof.complement_discrete(_e, _e, _rng), "at least one bin"),
        (lambda: gof.run_tests(_e, _e, _rng), "at least one bin"),
        (lambda: gof.rescale_naive(_e, _e), "at least one bin"),
        (lambda: gof.rescale_poisson_surrogate(_e, _e, _rng), "at least one bin"),
        (lambda: gof.pvalue_matrix(np.zeros((3, 0)), np.zeros((3, 0)), _rng), "at least one"),
        (lambda: gof.pvalue_matrix(np.zeros((0, 4)), np.zeros((0, 4)), _rng), "at least one"),
        (lambda: gof.fit_bernoulli_glm(_e, _e), "at least one bin"),
        (lambda: gof.ks_test([]), "at least one value"),
        (lambda: gof.GLM(dt=np.nan), "dt must be a finite"),
        (lambda: gof.GLM(dt=np.inf), "dt must be a finite"),
        (lambda: gof.GLM(bias=np.nan), "finite"),
        (lambda: gof.GLM(history=(1.0, np.nan)), "finite"),
        (lambda: gof.simulate(gof.glm_at(), np.nan, 2, _rng), "duration_s must be a finite"),
        (lambda: gof.simulate(gof.glm_at(), -1.0, 2, _rng), "duration_s must be a finite"),
        (lambda: gof.simulate_inhomogeneous_poisson(lambda t: 0 * t + 5, 10.0, -1.0, _rng),
         "duration must be a finite"),
        (lambda: gof.complement_continuous([], lambda t: 0 * t + 5, 10.0, -1.0, _rng),
         "duration must be a finite"),
        (lambda: gof.geometric_pit([1.5, 2], 0.5, _rng), "integers"),
        (lambda: gof.ks_test([0.5, 1.5]), r"\[0, 1\]"),
        (lambda: gof.ks_test([0.5, -0.1]), r"\[0, 1\]"),
        (lambda: gof.ks_test([0.5, np.nan]), "NaN"),
        (lambda: gof.surrogate_spike_times(_y, _p, _rng, dt=-1e-3), "dt must be a finite"),
        (lambda: gof.surrogate_spike_times(_y, _p, _rng, dt=np.nan), "dt must be a finite"),
        (lambda: gof.stimulus(2, 10, 0, _rng), "smooth_bins"),
        (lambda: gof.rescale_naive(_y, [0.1, np.inf, 0.3, 0.4]), r"in \[0, 1\]"),
        (lambda: gof.bernoulli_pit([1, 0], [0.5], _rng), "one probability per trial"),
        (lambda: gof.size_check([], [0.5]), "at least one"),
    ],
)
def test_bad_input_raises_clear_value_error_issue9(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gain_smoke_control_is_the_true_model_on_the_same_runs():
    """The gain claims' control: the same runs tested against the true model reject at about
    the nominal rate, and the paired comparison of two tests there is not significant."""
    from lib.protocols import gof_point_processes as proto

    true = gof.glm_at(gof.BIAS_39HZ)
    gs = proto.gain_smoke(true, 5.0, 60, np.random.default_rng(3))
    assert gs.wrong.shape == gs.right.shape == (60, 3) and gs.tests == ("R", "T", "C")
    for t in gs.tests:  # at most 11 of 60 (binomial tail < 1e-3 at 5 %)
        assert gs.count(t, control=True) <= 11
    assert gs.beats("C", "R", control=True) > 0.01
    assert gs.power("C") > gs.power("C", control=True)
    assert gs.margin("C", gs.tests) == max(gs.power("R"), gs.power("T")) - gs.power("C")
    again = proto.gain_smoke(true, 5.0, 60, np.random.default_rng(3))
    assert np.array_equal(again.wrong, gs.wrong) and np.array_equal(again.right, gs.right)
    with pytest.raises(ValueError, match="unknown alternative"):
        proto.gain_smoke(true, 5.0, 2, np.random.default_rng(0), alternative="nonsense")


def test_rise_pvalues_are_one_sided_fisher_tests_between_successive_cells():
    from lib.protocols import gof_point_processes as proto

    def cell(k):
        return proto.SizeCell(-3.0, gof.DT_S, 39.0, 200, 20.0, {"R0": k})

    p = proto.rise_pvalues([cell(14), cell(30), cell(137)], "R0")
    assert len(p) == 2 and max(p) < 0.01          # a clear rise at every step
    assert proto.rise_pvalues([cell(14), cell(10)], "R0")[0] > 0.5   # a fall is no rise
    flat = proto.rise_pvalues([cell(8), cell(13), cell(15)], "R0")   # 0.040, 0.065, 0.075
    assert max(flat) > 0.05 and min(flat) > 0.05
    with pytest.raises(ValueError, match="at least two cells"):
        proto.rise_pvalues([cell(1)], "R0")
