"""Unit tests of lib/sample_measure.py and the presets of the chapter sample-and-measure.

The chapter uses seed 0, 8 + 8 (ci) and 16 + 16 (book) units with two delays; these tests use
other seeds, three delays and other sizes.
"""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import sample_measure as sm
from lib.protocols import sample_and_measure as proto

SEED = 20210620


def small_net(n_visible=3, n_hidden=2, n_delays=3, n_inputs=2, seeds=(5,), hidden=None, dtype=torch.float64):
    return sm.RSNN(n_visible, n_hidden, n_delays, n_inputs, seeds=seeds, hidden=hidden, dtype=dtype)


# ----------------------------------------------------------------------------- pseudo-derivative


def test_pseudo_derivative_is_a_triangle_of_height_dampening():
    v = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], dtype=torch.float64)
    psi = sm.pseudo_derivative(v)
    assert psi[3] == pytest.approx(0.3)
    assert psi[2] == pytest.approx(0.15) and psi[4] == pytest.approx(0.15)
    assert torch.all(psi[[0, 1, 5, 6]] == 0)


def test_spike_function_samples_and_passes_the_pseudo_gradient():
    v = torch.tensor([-0.4, 0.2, 3.0], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([0.1, 0.9, 0.5], dtype=torch.float64)
    z = sm.spike_function(v, u, dampening=0.5)
    assert z.tolist() == [1.0, 0.0, 1.0]  # sigmoid(-0.4) = 0.40 > 0.1; sigmoid(0.2) = 0.55 < 0.9
    z.sum().backward()
    assert v.grad.tolist() == pytest.approx([0.5 * 0.6, 0.5 * 0.8, 0.0])


# ----------------------------------------------------------------------------- the network


def test_vectorised_free_run_equals_the_reference_loop():
    net = small_net()
    rng = np.random.default_rng(SEED)
    stim = rng.normal(size=(9, 2))
    U = rng.random((1, 4, 9, 5))
    with torch.no_grad():
        sim = net.free_run(torch.tensor(stim), 4, uniforms=torch.tensor(U))
    p_ref, z_ref = sm.simulate_reference(net.W[0].detach().numpy(), net.W_in[0].detach().numpy(), net.b[0].detach().numpy(), stim, U[0])
    assert np.abs(sim.p[0].numpy() - p_ref).max() < 1e-12
    assert np.array_equal(sim.z[0].numpy(), z_ref)


def test_vectorised_teacher_forcing_equals_the_reference_loop():
    net = small_net(n_visible=4, n_hidden=0)
    rng = np.random.default_rng(SEED + 1)
    stim = rng.normal(size=(7, 2))
    s = (rng.random((3, 7, 4)) < 0.4).astype(float)
    with torch.no_grad():
        v, ph = net.teacher_forced(torch.tensor(s), torch.tensor(stim))
        got = float(sm.mle_loss(v, torch.tensor(s)[None])[0])
    assert ph is None
    ref = sm.teacher_forced_reference(net.W[0].detach().numpy(), net.W_in[0].detach().numpy(), net.b[0].detach().numpy(), stim, s)
    assert got == pytest.approx(ref, abs=1e-12)


def test_teacher_forcing_with_hidden_units_equals_a_clamped_free_run():
    # visible units given the recorded spikes, hidden units sampled: the same as a loop over
    # time in which the visible spikes are overwritten by the data
    net = small_net(n_visible=3, n_hidden=2)
    rng = np.random.default_rng(SEED + 2)
    T, B = 6, 2
    stim = rng.normal(size=(T, 2))
    s = (rng.random((B, T, 3)) < 0.5).astype(float)
    U = rng.random((1, B, T, 2))
    with torch.no_grad():
        v, ph = net.teacher_forced(torch.tensor(s), torch.tensor(stim), uniforms=torch.tensor(U))
    W, W_in, b = net.W[0].detach().numpy(), net.W_in[0].detach().numpy(), net.b[0].detach().numpy()
    z = np.zeros((B, T, 5))
    v_ref = np.zeros((B, T, 5))
    for k in range(B):
        for t in range(T):
            for j in range(5):
                x = b[j] + W_in[j] @ stim[t]
                x += sum(W[j, :, d - 1] @ z[k, t - d] for d in range(1, 4) if t - d >= 0)
                v_ref[k, t, j] = x
            z[k, t, :3] = s[k, t]
            z[k, t, 3:] = 1 / (1 + np.exp(-v_ref[k, t, 3:])) > U[0, k, t]
    assert np.abs(v[0].numpy() - v_ref[..., :3]).max() < 1e-12
    assert np.abs(ph[0].numpy() - 1 / (1 + np.exp(-v_ref[..., 3:]))).max() < 1e-12


def test_networks_of_an_ensemble_are_independent_of_each_other():
    stim = torch.tensor(np.random.default_rng(SEED + 3).normal(size=(8, 2)))
    both = small_net(seeds=(1, 2))
    one = small_net(seeds=(2,))
    assert torch.equal(both.W[1], one.W[0])
    U = torch.rand(2, 3, 8, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        a = both.free_run(stim, 3, uniforms=U)
        b = one.free_run(stim, 3, uniforms=U[1:])
    assert torch.equal(a.z[1], b.z[0])


def test_inactive_hidden_units_stay_silent_and_untouched():
    net = small_net(seeds=(1, 2), hidden=(0, 2))
    with torch.no_grad():
        sim = net.free_run(torch.zeros(10, 2, dtype=torch.float64), 50,
                           torch.Generator().manual_seed(1))
    assert sim.z[0, :, :, 3:].sum() == 0
    assert sim.z[1, :, :, 3:].sum() > 0


def test_clipping_is_per_network():
    a = torch.nn.Parameter(torch.zeros(2, 3))
    a.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])
    norms = sm.clip_per_network([a], 1.0)
    assert norms.tolist() == pytest.approx([5.0, 0.5])
    assert a.grad[0].tolist() == pytest.approx([0.6, 0.8, 0.0], rel=1e-5)
    assert a.grad[1].tolist() == pytest.approx([0.3, 0.4, 0.0])


def test_clipping_per_tensor_clips_each_tensor_of_each_network_alone():
    # Keras' clipnorm (the authors' optimiser): every gradient tensor on its own
    a = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(2, 1))
    a.grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    b.grad = torch.tensor([[12.0], [0.5]])
    norms = sm.clip_per_tensor([a, b], 1.0)
    assert norms.tolist() == pytest.approx([13.0, math.sqrt(0.5)])
    assert a.grad[0].tolist() == pytest.approx([0.6, 0.8], rel=1e-5)
    assert b.grad[0].tolist() == pytest.approx([1.0], rel=1e-5)
    assert a.grad[1].tolist() == pytest.approx([0.3, 0.4]) and b.grad[1].item() == 0.5


def test_no_gradient_free_run_equals_the_differentiable_one():
    # the fast paths (numpy on the CPU, one buffer) against the loop that carries gradients,
    # with an inactive hidden unit, in float64 and float32
    for dtype in (torch.float64, torch.float32):
        net = small_net(n_visible=3, n_hidden=2, seeds=(2, 3), hidden=(1, 2), dtype=dtype)
        stim = torch.tensor(np.random.default_rng(SEED + 30).normal(size=(12, 2)), dtype=dtype)
        fast_a = None
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                sim = net.free_run(stim, 7, torch.Generator().manual_seed(3))
            if not grad:
                fast_a = sim
        assert torch.equal(fast_a.z, sim.z.detach())
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        assert (fast_a.v - sim.v.detach()).abs().max() < tol
        assert (fast_a.p - sim.p.detach()).abs().max() < tol
        assert fast_a.z[0, :, :, 4].sum() == 0  # the inactive hidden unit


def test_initial_weights_have_the_authors_scale_in_logit_units():
    net = sm.RSNN(20, 20, 3, 9, seeds=(1,), dtype=torch.float64)
    sd_w = 2.5 / math.sqrt(3 * 40)  # 1 / sqrt(n D) in units of u, times 1 / thr
    # a normal truncated at 2 sd has a standard deviation of 0.880 sd
    assert float(net.W.detach().std()) == pytest.approx(0.880 * sd_w, rel=0.05)
    assert float(net.W.detach().abs().max()) <= 2 * sd_w
    assert float(net.W_in.detach().std()) == pytest.approx(0.880 * 2.5 / 3, rel=0.1)


def test_rate_term_is_measured_on_sampled_hidden_spikes():
    # one hidden unit: its rate term is (spike count / (B T) - target)^2 exactly
    net = sm.RSNN(3, 1, 2, 2, seeds=(4,), dtype=torch.float64)
    stim = np.random.default_rng(SEED + 31).normal(size=(10, 2))
    s = (np.random.default_rng(SEED + 32).random((6, 10, 3)) < 0.3).astype(float)
    w = sm.LossWeights(mle=0.4, psth=0.1, nc=50.0, rate=1.0, rate_target=0.17)
    out = sm.losses(net, s[None], stim, [w], torch.Generator().manual_seed(1), 2)
    count = (0.17 + np.array([-1, 1]) * math.sqrt(float(out["rate"][0]))) * 60
    assert np.min(np.abs(count - np.round(count))) < 1e-9
    out["rate"].sum().backward()
    assert float(net.W.grad[0, 3].abs().sum()) > 0  # the pseudo-derivative carries its gradient


def test_model_selection_keeps_the_lowest_validation_loss():
    rng = np.random.default_rng(SEED + 33)
    teacher = sm.make_teacher(4, 0, 0.0, rng, n_delays=2)
    stim = sm.stimulus(20, 4, rng)
    spikes = sm.sample_teacher(teacher, stim, 50, 3)
    train, val = spikes[:40], spikes[40:]
    net = sm.RSNN(4, 0, 2, 4, seeds=(1, 2), dtype=torch.float64)
    h = sm.fit(net, train, stim, [sm.PAPER_MLE] * 2, iterations=30, batch_size=10, seed=2,
               lr=0.2, validation=val, select_every=3)
    assert h.validation.shape == (10, 2) and h.best_iteration.shape == (2,)
    assert all(it % 3 == 0 for it in h.best_iteration)
    with torch.no_grad():  # the likelihood of visible-only networks is deterministic
        lv = sm.losses(net, val[None].repeat(2, 0), stim, [sm.PAPER_MLE] * 2, None, 2)["total"]
    assert lv.numpy() == pytest.approx(h.validation.min(axis=0), rel=1e-12)
    with pytest.raises(ValueError, match="validation"):
        sm.fit(net, train, stim, [sm.PAPER_MLE] * 2, iterations=2, batch_size=10, seed=2,
               validation=val[:1])


def test_within_group_noise_correlation():
    rng = np.random.default_rng(SEED + 34)
    shared = rng.random((300, 20, 2)) < 0.3
    z = np.concatenate([shared[..., :1] | (rng.random((300, 20, 2)) < 0.1),
                        shared[..., 1:] | (rng.random((300, 20, 2)) < 0.1)], axis=2)
    assert proto.within_group_nc(z.astype(float), 2) > 0.5
    assert abs(proto.within_group_nc(rng.random((300, 20, 4)) < 0.3, 2)) < 0.05
    with pytest.raises(ValueError, match="divisible"):
        proto.within_group_nc(z, 3)


def test_within_group_coupling():
    W = np.zeros((6, 6, 2))
    W[:2, :2] = 1.0  # excitation inside the first of two groups of 2 recorded units
    assert proto.within_group_coupling(W, 4, 2) == pytest.approx(2 * 2 / 4 - 0.0)
    assert proto.within_group_coupling(np.zeros((4, 4, 2)), 4, 2) == 0.0
    with pytest.raises(ValueError, match="divisible"):
        proto.within_group_coupling(W, 4, 3)


# ----------------------------------------------------------------------------- statistics


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 6), st.integers(4, 9), st.integers(2, 4), st.integers(1, 3), st.integers(0, 2**31))
def test_statistics_equal_the_plain_loops(B, T, n, L, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((B, T, n)) < 0.5).astype(float)
    x[0, 0] = 1  # no silent neuron
    x[-1, -1] = 0
    y = rng.random((B, T, n))
    ref = proto.reference_statistics(x, y, L)
    assert np.abs(sm.psth(x) - ref["psth"]).max() < 1e-12
    assert np.abs(sm.noise_covariance(x, y, L) - ref["cov"]).max() < 1e-12
    assert np.abs(sm.noise_correlation(x) - ref["rho"]).max() < 1e-12


def test_noise_correlation_of_a_shared_source():
    # two units copying one Bernoulli source: rho_01 = rho_00 = noise variance / total variance
    rng = np.random.default_rng(SEED + 5)
    src = (rng.random((200, 30, 1)) < 0.3).astype(float)
    rho = sm.noise_correlation(np.concatenate([src, src, rng.random((200, 30, 1)) < 0.3], axis=2))
    x = src[..., 0]
    ratio = ((x - x.mean(0)) ** 2).mean() / ((x - x.mean()) ** 2).mean()
    assert rho[0, 1] == pytest.approx(ratio, abs=1e-12) and rho[0, 0] == pytest.approx(ratio, abs=1e-12)
    assert 0.98 < ratio < 1
    assert abs(rho[0, 2]) < 0.05


def test_model_noise_covariance_is_unbiased_off_the_zero_lag_diagonal():
    # E[p_i(t) z_j(t-d)] = E[z_i(t) z_j(t-d)] for d >= 1, and lag 0 off the diagonal
    teacher = sm.make_teacher(4, 4, 2.0, np.random.default_rng(SEED + 6), n_delays=2)
    stim = sm.stimulus(20, 4, np.random.default_rng(SEED + 7))
    net = teacher.network()
    with torch.no_grad():
        sim = net.free_run(torch.tensor(stim), 6000, torch.Generator().manual_seed(3))
    p, z = sim.p[..., :4], sim.z[..., :4]
    cm = sm.model_noise_covariance(p, z, 3)[0]
    cz = sm.noise_covariance(z, None, 3)[0]
    mask = sm.nc_mask(4, 3)
    assert (cm - cz)[mask].abs().max() < 3e-3
    assert (cz - cm)[0].diagonal().min() > 0.05  # the Bernoulli variance, left out of the loss


def test_nc_loss_is_zero_for_identical_statistics_and_positive_otherwise():
    s = (torch.rand(1, 30, 12, 3, generator=torch.Generator().manual_seed(8)) < 0.3).double()
    assert float(sm.nc_loss(s, s, s, 2)[0]) == pytest.approx(0.0, abs=1e-15)
    other = (torch.rand(1, 30, 12, 3, generator=torch.Generator().manual_seed(9)) < 0.3).double()
    assert float(sm.nc_loss(other, other, s, 2)[0]) > 0


# ----------------------------------------------------------------------------- training


def test_fit_lowers_the_likelihood_loss_and_is_deterministic():
    rng = np.random.default_rng(SEED + 10)
    teacher = sm.make_teacher(6, 0, 0.0, rng, n_delays=3)
    stim = sm.stimulus(25, 4, rng)
    spikes = sm.sample_teacher(teacher, stim, 60, 1)
    runs = []
    for _ in range(2):
        net = sm.RSNN(6, 2, 3, 4, seeds=(3, 4), hidden=(0, 2), dtype=torch.float64)
        h = sm.fit(net, spikes, stim, [sm.PAPER_MLE, sm.PAPER_SM], iterations=60, batch_size=20,
                   seed=7, lr=2e-2)
        runs.append((h, net.W.detach().clone()))
    h = runs[0][0]
    assert h.terms["mle"][-10:, 0].mean() < h.terms["mle"][:5, 0].mean() - 0.05
    assert h.terms["total"].shape == (60, 2) and h.grad_norm.shape == (60, 2)
    assert torch.equal(runs[0][1], runs[1][1])
    assert np.array_equal(runs[0][0].terms["total"], runs[1][0].terms["total"])


def test_mle_fit_recovers_the_couplings_of_a_well_specified_teacher():
    rng = np.random.default_rng(SEED + 11)
    teacher = sm.make_teacher(6, 0, 0.0, rng, n_delays=2, density=0.5, coupling_sd=1.5)
    stim = sm.stimulus(50, 4, rng)
    spikes = sm.sample_teacher(teacher, stim, 300, 2)
    net = sm.RSNN(6, 0, 2, 4, seeds=(1,), dtype=torch.float64)
    sm.fit(net, spikes, stim, [sm.PAPER_MLE], iterations=400, batch_size=50, seed=1, lr=3e-2)
    assert sm.weight_correlation(net.W[0], teacher.W, 6) > 0.8


def test_teacher_has_the_designed_structure():
    t = sm.make_teacher(4, 4, 2.5, np.random.default_rng(SEED + 12), n_delays=3)
    assert t.W.shape == (8, 8, 3) and t.n_hidden == 4
    assert np.all(t.W[np.arange(8), np.arange(8), 0] == -2.0)
    assert t.W[0, 4, 0] == 2.5 and t.W[0, 4, 1] == pytest.approx(1.5) and t.W[0, 6, 0] == 0
    assert np.all(t.W_in[4:] == 0)


# ----------------------------------------------------------------------------- measures


def test_measures_are_one_for_identical_inputs():
    rng = np.random.default_rng(SEED + 13)
    x = (rng.random((50, 20, 5)) < rng.random((1, 20, 5))).astype(float)
    assert sm.psth_correlation(x, x) == pytest.approx(1.0)
    r, rmse = sm.nc_agreement(x, x)
    assert r == pytest.approx(1.0) and rmse == pytest.approx(0.0, abs=1e-15)
    W = rng.normal(size=(7, 7, 2))
    assert sm.weight_correlation(W, W, 5) == pytest.approx(1.0)
    W2 = W.copy()
    W2[np.arange(5), np.arange(5)] += 100  # self-couplings do not count
    assert sm.weight_correlation(W2, W, 5) == pytest.approx(1.0)


def test_closed_form_cross_entropy_check_agrees():
    lib_ce, closed = proto.closed_form_cross_entropy()
    assert lib_ce == pytest.approx(closed, abs=1e-12)
    assert 0 < closed < math.log(2) * 2


def test_exact_checks_fail_on_their_controls():
    """The controls of the two exact claims (one spike flipped in the reference's input) show."""
    lib_ce, closed = proto.closed_form_cross_entropy(perturb=True)
    assert abs(lib_ce - closed) > 1e-3
    assert proto.statistics_error(np.random.default_rng(SEED), perturb=True) > 1e-3
    assert proto.statistics_error(np.random.default_rng(SEED), B=5, T=9, n=3, n_lags=2) < 1e-10


def test_flipped_terms_enter_the_total_with_a_minus_sign():
    net = small_net(seeds=(5, 5), hidden=(2, 2))
    s = (torch.rand(2, 6, 7, 3, generator=torch.Generator().manual_seed(3)) < 0.3).double()
    stim = torch.zeros(7, 2, dtype=torch.float64)
    w = sm.LossWeights(mle=0.4, psth=0.1, nc=50.0, rate=0.001)
    flipped = sm.LossWeights(mle=0.4, psth=0.1, nc=50.0, rate=0.001, flip=True)
    out = sm.losses(net, s, stim, [w, flipped], torch.Generator().manual_seed(1), 2)
    for m, sign in ((0, 1.0), (1, -1.0)):
        expect = (0.4 * out["mle"][m] + sign * (0.1 * out["psth"][m] + 50 * out["nc"][m])
                  + 0.001 * out["rate"][m])
        assert float(out["total"][m]) == pytest.approx(float(expect), rel=1e-12)
    with pytest.raises(ValueError, match="flip must be True or False"):
        sm.LossWeights(flip=1)


def test_a_new_draw_has_new_trials_of_the_same_teacher():
    P = proto.preset("ci")
    a, b = proto.condition_data(P, 0.0, 1, 11), proto.condition_data(P, 0.0, 1, 11, draw=1)
    assert np.array_equal(a.teacher.W, b.teacher.W) and np.array_equal(a.stim, b.stim)
    assert not np.array_equal(a.train, b.train)
    assert np.array_equal(a.train, proto.condition_data(P, 0.0, 1, 11, draw=0).train)


def test_the_second_teacher_has_streams_of_its_own():
    P = proto.preset("ci")
    a, w = proto.condition_data(P, P.weak_strength, 0, 11), proto.condition_data(P, proto.WEAK, 0, 11)
    assert w.teacher.hidden_strength == P.weak_strength > 0
    assert not np.array_equal(a.teacher.W, w.teacher.W) and not np.array_equal(a.stim, w.stim)
    assert np.array_equal(w.train, proto.condition_data(P, proto.WEAK, 0, 11).train)
    assert not np.array_equal(w.train, proto.condition_data(P, proto.WEAK, 0, 12).train)
    # its hidden groups correlate the recorded units of a group, more weakly than h = 3 does
    strong = proto.within_group_nc(proto.condition_data(P, 3.0, 0, 11).test, P.n_groups)
    assert 0.05 < proto.within_group_nc(w.test, P.n_groups) < strong
    with pytest.raises(ValueError, match="hidden_strength must be a number or 'weak'"):
        proto.condition_data(P, "strong", 0, 11)
    with pytest.raises(ValueError, match="weak_strength > 0"):
        proto.condition_data(replace(P, weak_strength=0.0), proto.WEAK, 0, 11)


def test_psth_rmse():
    rng = np.random.default_rng(SEED + 14)
    x = (rng.random((40, 10, 3)) < 0.3).astype(float)
    assert proto.psth_rmse(x, x) == 0.0
    assert proto.psth_rmse(np.zeros_like(x), np.ones_like(x)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_value_errors():
    net = small_net()
    stim = torch.zeros(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_visible must be an int >= 1"):
        sm.RSNN(0)
    with pytest.raises(ValueError, match="hidden must give"):
        sm.RSNN(3, 2, seeds=(1, 2), hidden=(3, 0))
    with pytest.raises(ValueError, match="stim must be"):
        net.free_run(torch.zeros(5, 3), 2, torch.Generator())
    with pytest.raises(ValueError, match="stim must be finite"):
        net.free_run(torch.full((5, 2), float("nan"), dtype=torch.float64), 2, torch.Generator())
    with pytest.raises(ValueError, match="binary"):
        net.teacher_forced(torch.full((2, 5, 3), 0.5), stim)
    with pytest.raises(ValueError, match="recorded spikes must be"):
        net.teacher_forced(torch.zeros(2, 5, 4), stim)
    with pytest.raises(ValueError, match="uniforms must have shape"):
        net.free_run(stim, 2, uniforms=torch.zeros(1, 2, 5, 4))
    with pytest.raises(ValueError, match="n_lags must be below"):
        sm.noise_covariance(np.zeros((2, 3, 2)), n_lags=3)
    with pytest.raises(ValueError, match="finite"):
        sm.psth(np.full((2, 3, 2), np.nan))
    with pytest.raises(ValueError, match="rate_target must be a probability"):
        sm.LossWeights(rate_target=1.5)
    with pytest.raises(ValueError, match="nc must be a finite number >= 0"):
        sm.LossWeights(nc=-1.0)
    with pytest.raises(ValueError, match="batch_size must be at most"):
        sm.fit(sm.RSNN(3, 0, 2, 2, dtype=torch.float64), np.zeros((4, 5, 3)), stim,
               [sm.PAPER_MLE], iterations=1, batch_size=10, seed=0)
    with pytest.raises(ValueError, match="one LossWeights per network"):
        sm.fit(sm.RSNN(3, 0, 2, 2, dtype=torch.float64), np.zeros((4, 5, 3)), stim,
               [sm.PAPER_MLE] * 2, iterations=1, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="lr must be"):
        sm.fit(sm.RSNN(3, 0, 2, 2, dtype=torch.float64), np.zeros((4, 5, 3)), stim,
               [sm.PAPER_MLE], iterations=1, batch_size=2, seed=0, lr=float("nan"))
    with pytest.raises(ValueError, match="divisible by n_groups"):
        sm.make_teacher(5, 4, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="density must be a probability"):
        sm.make_teacher(4, 4, 1.0, np.random.default_rng(0), density=1.5)
    with pytest.raises(ValueError, match="same number"):
        sm.nc_agreement(np.zeros((3, 4, 5)), np.zeros((3, 4, 6)))
    with pytest.raises(ValueError, match="n_visible must be in"):
        sm.weight_correlation(np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), 9)
    with pytest.raises(ValueError, match="u must have the shape of v"):
        sm.spike_function(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        sm.RSNN(3, seeds=(-1,))


def test_malformed_inputs_raise_clear_errors_not_silent_zeros():
    """Issue 22: NaN or out-of-range uniforms and NaN weights gave all-zero spike trains, n_lags
    beyond the trial NaN losses, empty inputs a torch stack error, integer weights
    NotImplementedError."""
    net = small_net()
    stim = torch.zeros(5, 2, dtype=torch.float64)
    for bad in (float("nan"), 1.5, -0.1):
        with pytest.raises(ValueError, match=r"uniforms must be numbers in \[0, 1\]"):
            net.free_run(stim, 2, uniforms=torch.full((1, 2, 5, 5), bad, dtype=torch.float64))
    W, W_in, b = np.zeros((1, 3, 3, 2)), np.zeros((1, 3, 2)), np.zeros((1, 3))
    W[0, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="W, W_in and b must be finite"):
        sm.RSNN.from_weights(W, W_in, b, 3)
    with torch.no_grad():
        net.W[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="weights must be finite"):
        net.free_run(stim, 2, torch.Generator())
    with pytest.raises(ValueError, match="weights must be finite"):
        net.teacher_forced(torch.zeros(2, 5, 3), stim, torch.Generator())
    spikes = (np.random.default_rng(SEED).random((6, 5, 3)) < 0.3).astype(float)
    with pytest.raises(ValueError, match="n_lags must be below the number of bins"):
        sm.fit(small_net(n_hidden=0), spikes, stim, [sm.PAPER_SM], iterations=1, batch_size=2,
               seed=0, n_lags=6)
    with pytest.raises(ValueError, match="stim must have at least one bin"):
        small_net().free_run(torch.zeros(0, 2), 2, torch.Generator())
    with pytest.raises(ValueError, match="at least one trial and one bin"):
        small_net().teacher_forced(torch.zeros(2, 0, 3), torch.zeros(0, 2), torch.Generator())
    with pytest.raises(ValueError, match="at least one trial and one bin"):
        small_net().teacher_forced(torch.zeros(0, 5, 3), stim, torch.Generator())
    for f in (sm.psth, sm.noise_correlation):
        with pytest.raises(ValueError, match="at least one trial, bin and neuron"):
            f(np.zeros((0, 5, 3)))
    with pytest.raises(ValueError, match="at least one trial, bin and neuron"):
        sm.psth_correlation(np.zeros((0, 5, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="at least one trial, bin and neuron"):
        sm.nc_agreement(np.zeros((4, 5, 3)), np.zeros((0, 5, 3)))
    ints = sm.RSNN.from_weights(np.ones((1, 3, 3, 2), dtype=np.int64), np.ones((1, 3, 2), dtype=int),
                                -np.ones((1, 3), dtype=int), 3)
    assert ints.W.dtype == torch.float64 and float(ints.W.detach().sum()) == 18.0
    assert ints.free_run(stim, 2, torch.Generator().manual_seed(0)).z.shape == (1, 2, 5, 3)


# ----------------------------------------------------------------------------- presets


def test_presets_and_unknown_scale():
    ci, book, paper = (proto.preset(s) for s in ("ci", "book", "paper"))
    assert ci.n_visible < book.n_visible < paper.n_visible
    assert paper.n_delays == sm.PAPER_DELAYS and paper.batch_size == 20
    # the authors' Adam(1e-3, clipnorm=1) on weights in units of u, in logit units
    assert paper.lr == pytest.approx(2.5e-3) and paper.clip == pytest.approx(0.4)
    assert paper.iterations == 2000 and paper.select_every == 1 and paper.n_val == 10
    assert book.n_seeds == 3 and book.strongest == max(book.hidden_strengths)
    assert set(book.variants) == set(proto.VARIANTS)
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        proto.preset("huge")


def test_nc_weight_sweep_is_empty_without_weights_and_refuses_bad_ones():
    exp = SimpleNamespace(preset=proto.preset("ci"))
    assert proto.preset("ci").nc_weights == () and proto.nc_weight_sweep(exp, 0).empty
    for bad in ((0.0,), (-50.0,), (float("nan"),), (200.0, float("inf"))):
        with pytest.raises(ValueError, match="weights must be finite and > 0"):
            proto.nc_weight_sweep(exp, 0, bad)
