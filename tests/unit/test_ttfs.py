"""Unit tests of lib/ttfs/ (the exact ReLU -> α1 SNN mapping of Stanojevic et al. 2023)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from lib import ttfs
from lib.ttfs import alpha1

# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def random_dense_net(rng: np.random.Generator, widths: list[int], bias_scale: float = 0.1) -> ttfs.Network:
    """A He-initialised fully connected ReLU network with small random biases."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in))
        b = rng.normal(0.0, bias_scale, n_out)
        layers.append(ttfs.Layer("dense", w, b, (n_in,), relu=i < len(widths) - 2))
    return ttfs.Network(tuple(layers))


def random_images(rng: np.random.Generator, n: int, d: int, p_zero: float = 0.4) -> np.ndarray:
    """Images in [0, 1] with many exact zeros (ties at t = 1) and 8-bit quantised values (more ties)."""
    x = np.round(rng.random((n, d)) * 255) / 255
    x[rng.random((n, d)) < p_zero] = 0.0
    return x


def mapped(net: ttfs.Network, x: np.ndarray, zeta: float = ttfs.ZETA) -> tuple[ttfs.Network, ttfs.SNN]:
    scaled = ttfs.scale_weights(net)
    return scaled, ttfs.map_to_snn(scaled, ttfs.layer_maxima(scaled, x), zeta)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def randomise_bn(model: torch.nn.Module, rng: np.random.Generator, negative: bool = True) -> None:
    """Give every batch norm non-trivial running statistics and affine parameters (every second gamma < 0)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.from_numpy(rng.uniform(0.0, 0.5, n)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.3, 2.0, n)))
                sign = np.where(np.arange(n) % 2 == 1, -1.0, 1.0) if negative else np.ones(n)
                m.weight.copy_(torch.from_numpy(sign * rng.uniform(0.5, 1.5, n)))
                m.bias.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, n)))
    model.eval()


def one_neuron(J, t_in, theta, alpha=1.0, t_min_prev=0.0, t_max=10.0) -> ttfs.SNN:
    """An SNN with a single α1 neuron (and a trivial readout) for hand-computed cases."""
    J = np.asarray(J, dtype=float)[None, :]
    layer = ttfs.SpikingLayer("dense", J, np.array([theta], dtype=float), np.array([alpha], dtype=float),
                              t_min_prev, 1.0, t_max, (J.shape[1],))
    ro = ttfs.Readout(np.ones((1, 1)), np.zeros(1), 1.0, t_max, (1,))
    return ttfs.SNN((layer,), ro, ((0.0, 1.0), (1.0, t_max)), (t_max - 1.0,), 0.0, (J.shape[1],))


def neuron_spike(J, t_in, theta, **kw) -> float:
    snn = one_neuron(J, t_in, theta, **kw)
    x = 1.0 - np.asarray(t_in, dtype=float)[None, :]  # input spike times t_in <=> pixel values 1 - t_in
    return float(ttfs.simulate(snn, x, warn=False).spike_times[0][0, 0])


@pytest.fixture(scope="module")
def digits_fc():
    """A small fully connected net trained on 8x8 digits, mapped with the default window margin."""
    from lib import data

    ds = data.load("digits")
    arch = ttfs.Architecture((1, 8, 8), dense=(40,))
    model, _ = ttfs.train(arch, ds.x_train, ds.y_train, ttfs.Training(epochs=4, batch_size=64, lr=3e-3), seed=1)
    net = ttfs.scale_weights(ttfs.fold(model))
    snn = ttfs.map_to_snn(net, ttfs.layer_maxima(net, ds.x_train))
    return ds, model, net, snn


# ------------------------------------------------------------------------------------------------
# The α1 neuron, case by case
# ------------------------------------------------------------------------------------------------


def test_single_input_crossing_by_hand():
    # V = t until the input at 0.5 (V = 0.5), then slope 1 + 2 = 3: V = 2 at t = 0.5 + 1.5 / 3 = 1.0.
    assert neuron_spike([2.0], [0.5], theta=2.0) == pytest.approx(1.0, abs=1e-14)


def test_early_crossing_is_found_before_a_later_inhibitory_input():
    # Slope 6 after t = 0.1 reaches theta = 1 at 0.1 + 0.9 / 6 = 0.25, before the inhibition at 0.5.
    # The closed form (which assumes the crossing comes after the last input) gets this wrong.
    t = neuron_spike([5.0, -10.0], [0.1, 0.5], theta=1.0)
    assert t == pytest.approx(0.25, abs=1e-14)
    snn = one_neuron([5.0, -10.0], [0.1, 0.5], 1.0)
    assert ttfs.closed_form(snn, np.array([[0.9, 0.5]])).spike_times[0][0, 0] == 10.0


def test_silent_neuron_fires_at_t_max():
    # Net inhibition: the slope after the input is 1 - 3 < 0, V never reaches theta.
    assert neuron_spike([-3.0], [0.2], theta=5.0, t_max=7.5) == 7.5


def test_crossing_after_t_max_is_clamped_to_t_max():
    # Slope 1, theta 20: the crossing would be at t = 20 but the window ends at 7.5.
    assert neuron_spike([0.0], [0.2], theta=20.0, t_max=7.5) == 7.5


def test_non_positive_threshold_fires_when_integration_starts():
    assert neuron_spike([1.0], [0.5], theta=-0.1, t_min_prev=0.0) == 0.0


def test_ties_are_one_group_and_order_does_not_matter():
    # Three inputs at the same time: +4, -4, +4. Taken one by one with time passing in between, the
    # +4 would cross early; as one group (no time passes) the net change of slope is +4.
    J = [4.0, -4.0, 4.0, 0.5]
    t_in = [0.3, 0.3, 0.3, 0.6]
    t = neuron_spike(J, t_in, theta=2.0)
    # V(0.3) = 0.3, slope 5 afterwards: reaches 2 at 0.3 + 1.7 / 5 = 0.64, after the input at 0.6
    # (V(0.6) = 1.8, then slope 5.5): 0.6 + 0.2 / 5.5.
    assert t == pytest.approx(0.6 + 0.2 / 5.5, abs=1e-14)
    for perm in ([2, 1, 0, 3], [1, 0, 2, 3], [3, 2, 1, 0]):
        assert neuron_spike(np.take(J, perm), np.take(t_in, perm), theta=2.0) == pytest.approx(t, abs=1e-14)


def test_inputs_before_integration_start_count_from_their_arrival():
    # The drive switches on at 1.0, but an input at 0.4 (J = 1) already ramps V from 0.4 on:
    # V(1) = 0.6; afterwards slope 2: theta = 1.6 at t = 1.5.
    assert neuron_spike([1.0], [0.4], theta=1.6, t_min_prev=1.0) == pytest.approx(1.5, abs=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spike_times_agree_with_an_ode_solver(seed):
    """Integrate dV/dt = alpha H(t - t0) + sum_j J_j H(t - t_j) with scipy, piece by piece."""
    rng = np.random.default_rng(seed)
    n_in = 12
    J = rng.normal(0.0, 0.6, n_in)
    t_in = np.sort(rng.uniform(0.0, 1.0, n_in))
    theta = rng.uniform(0.2, 1.5)
    t_sim = neuron_spike(J, t_in, theta, t_max=5.0)

    def cross(t, v):
        return v[0] - theta

    cross.terminal, cross.direction = True, 1
    v, t_spike = 0.0, 5.0
    edges = np.r_[0.0, t_in, 5.0]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        slope = 1.0 + J[t_in <= a].sum()
        sol = solve_ivp(lambda t, y, s=slope: [s], (a, b), [v], events=cross, rtol=1e-12, atol=1e-12)
        if sol.t_events[0].size:
            t_spike = float(sol.t_events[0][0])
            break
        v = float(sol.y[0, -1])
    assert t_sim == pytest.approx(t_spike, abs=1e-8)


def test_readout_ignores_inputs_after_the_readout_time():
    ro = ttfs.Readout(np.array([[2.0, -1.0]]), np.array([0.5]), 0.0, 3.0, (2,))
    # inputs at 1.0 and 4.0 (after t_read = 3): V(3) = 0.5 * 3 + 2 * (3 - 1) + 0 = 5.5
    assert alpha1._readout(ro, np.array([[1.0, 4.0]]))[0, 0] == pytest.approx(5.5, abs=1e-14)


# ------------------------------------------------------------------------------------------------
# The mapping: closed form vs event-driven simulation vs the ReLU network
# ------------------------------------------------------------------------------------------------


def test_threshold_makes_spike_time_encode_the_relu_value():
    # One hidden neuron with W = (0.5, -0.25), b = 0.1; inputs x = (0.8, 0.4): ReLU = 0.4 - 0.1 + 0.1 = 0.4
    w = np.array([[0.5, -0.25]])
    net = ttfs.Network((ttfs.Layer("dense", w, np.array([0.1]), (2,)),
                        ttfs.Layer("dense", np.ones((1, 1)), np.zeros(1), (1,), relu=False)))
    snn = ttfs.map_to_snn(net, [1.0], zeta=0.5)
    layer = snn.layers[0]
    s = 1.0 / (1.0 - w.sum())
    np.testing.assert_allclose(layer.J, s * w, rtol=1e-15)
    # theta = alpha (t_max - t_min_prev) + B sum J - (alpha + sum J) b, window [1, 2.5]
    assert layer.theta[0] == pytest.approx(2.5 + 1.5 * (s - 1) - s * 0.1, rel=1e-15)
    res = ttfs.simulate(snn, np.array([[0.8, 0.4]]))
    assert layer.t_max - res.spike_times[0][0, 0] == pytest.approx(0.4, abs=1e-14)
    assert res.v_out[0, 0] == pytest.approx(0.4, abs=1e-14)


def test_inverse_map_recovers_w_from_j(digits_fc):
    _, _, net, snn = digits_fc
    for layer, L in zip(net.hidden, snn.layers, strict=True):
        slope = L.alpha[:, None] + L.J.sum(1, keepdims=True)
        np.testing.assert_allclose(L.J / slope, layer.weight, rtol=1e-12, atol=1e-15)


def test_trained_digits_net_is_mapped_exactly(digits_fc):
    ds, model, net, snn = digits_fc
    ref = ttfs.logits(model, ds.x_test)
    res = ttfs.simulate(snn, ds.x_test)
    assert rel_err(res.v_out, ref) <= 1e-10
    assert np.array_equal(res.predictions(), ref.argmax(1))
    ex = ttfs.exactness(snn, net, ds.x_test, ds.y_test, ref)
    assert ex.agreement == 1.0 and ex.acc_snn == ex.acc_ann and ex.in_window == 1.0 and ex.early == 0
    assert ex.max_time_error <= 1e-10
    assert 0.0 < ex.active < 1.0  # some neurons fire early, the silent ones fire at t_max


def test_simulation_equals_closed_form_on_trained_net(digits_fc):
    ds, _, _, snn = digits_fc
    sim, cf = ttfs.simulate(snn, ds.x_test), ttfs.closed_form(snn, ds.x_test)
    for a, b in zip(sim.spike_times, cf.spike_times, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    assert rel_err(sim.v_out, cf.v_out) <= 1e-10


def test_decode_returns_the_relu_values(digits_fc):
    ds, _, net, snn = digits_fc
    _, hidden = net.forward(ds.x_test[:50])
    for a, b in zip(ttfs.decode(snn, ttfs.simulate(snn, ds.x_test[:50])), hidden, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), depth=st.integers(1, 4), width=st.integers(2, 24),
       n_in=st.integers(1, 30), p_zero=st.floats(0.0, 0.9), bias=st.floats(0.0, 0.5))
def test_random_dense_nets_simulation_matches_closed_form_and_relu(seed, depth, width, n_in, p_zero, bias):
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [n_in] + [width] * depth + [3], bias_scale=bias)
    x = random_images(rng, 20, n_in, p_zero)
    scaled = ttfs.scale_weights(net)
    x_max = ttfs.layer_maxima(scaled, x)
    assume(min(x_max) > 1e-6)  # a layer (nearly) silent on every image has no usable window
    snn = ttfs.map_to_snn(scaled, x_max)
    sim, cf = ttfs.simulate(snn, x), ttfs.closed_form(snn, x)
    early = sum(int(np.sum(t < L.t_min)) for L, t in zip(snn.layers, sim.spike_times, strict=True))
    assume(early == 0)  # the closed form presumes crossings after the last input (checked separately)
    scale_t = snn.latency
    for a, b in zip(sim.spike_times, cf.spike_times, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * scale_t)
    ref = net.logits(x)
    assert rel_err(sim.v_out, ref) <= 1e-10
    assert rel_err(cf.v_out, ref) <= 1e-10


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_in=st.integers(1, 15), n_out=st.integers(1, 6),
       scale=st.floats(0.1, 5.0), zeta=st.floats(-0.8, 1.0))
def test_every_spike_is_the_first_threshold_crossing(seed, n_in, n_out, scale, zeta):
    """Whatever the weights and windows (early crossings included): V < theta at every event before
    the spike, and V = theta at the spike unless the neuron was forced to fire at t_max."""
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [n_in, n_out, 2], bias_scale=scale)
    net = ttfs.Network((replace(net.layers[0], weight=net.layers[0].weight * scale), net.layers[1]))
    x = random_images(rng, 4, n_in, 0.3)
    scaled = ttfs.scale_weights(net)
    x_max = ttfs.layer_maxima(scaled, x)
    assume(min(x_max) > 1e-6)
    snn = ttfs.map_to_snn(scaled, x_max, zeta)
    res = ttfs.simulate(snn, x, warn=False)
    L = snn.layers[0]
    for img in range(len(x)):
        events = np.sort(np.r_[res.input_times[img], L.t_min_prev])
        for i in range(n_out):
            t_i = res.spike_times[0][img, i]
            if L.theta[i] <= 0:  # V = 0 >= theta from the start: fires when integration starts
                assert t_i == min(events[0], L.t_max)
                continue
            v_before = ttfs.potential(snn, res, 0, img, i, events[events < t_i])
            assert np.all(v_before < L.theta[i] + 1e-9 * max(1.0, abs(L.theta[i])))
            if t_i < L.t_max:
                v_at = ttfs.potential(snn, res, 0, img, i, np.array([t_i]))[0]
                assert v_at == pytest.approx(L.theta[i], rel=1e-9, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_in=st.integers(2, 12), n_out=st.integers(1, 5))
def test_first_crossing_with_jittered_inputs(seed, n_in, n_out):
    """With jittered input times (the noise model), the hidden spikes are still first crossings."""
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [n_in, n_out, 2], bias_scale=0.5)
    x = random_images(rng, 3, n_in, 0.3)
    scaled = ttfs.scale_weights(net)
    x_max = ttfs.layer_maxima(scaled, x)
    assume(min(x_max) > 1e-6)
    snn = ttfs.map_to_snn(scaled, x_max)
    L = snn.layers[0]
    t_in = np.maximum(ttfs.encode(x) + rng.normal(0, 0.2, x.shape), 0.0)
    out, _ = alpha1._spiking_layer(L, t_in)
    res = ttfs.SNNResult(t_in, (out,), np.zeros((3, 2)))
    for img in range(3):
        for i in range(n_out):
            t_i = out[img, i]
            events = np.sort(np.r_[t_in[img], L.t_min_prev])
            v_before = ttfs.potential(snn, res, 0, img, i, events[events < t_i])
            assert np.all(v_before < L.theta[i] + 1e-9 * max(1.0, abs(L.theta[i])))
            if t_i < L.t_max:
                assert ttfs.potential(snn, res, 0, img, i, np.array([t_i]))[0] == pytest.approx(L.theta[i], rel=1e-9)


def test_narrow_windows_give_early_spikes_and_the_simulator_finds_them(digits_fc):
    ds, _, net, _ = digits_fc
    snn = ttfs.map_to_snn(net, ttfs.layer_maxima(net, ds.x_train), zeta=-0.7)
    with pytest.warns(ttfs.EarlySpikeWarning):
        res = ttfs.simulate(snn, ds.x_test)
    assert res.early.mean() > 0.5
    t = res.spike_times[0]
    assert np.sum(t < snn.layers[0].t_min) > 0
    # an early spike is where the potential first reaches threshold (the closed form misses them)
    img, i = np.argwhere(t < snn.layers[0].t_min)[0]
    v = ttfs.potential(snn, res, 0, img, i, np.array([t[img, i]]))[0]
    assert v == pytest.approx(snn.layers[0].theta[i], rel=1e-9)


# ------------------------------------------------------------------------------------------------
# Convolutions, folded batch norm, max-/min-pooling
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_cnn():
    """A small untrained CNN with BN after every ReLU (negative gammas included), mapped."""
    rng = np.random.default_rng(5)
    torch.manual_seed(5)
    arch = ttfs.Architecture((1, 8, 8), conv=(3, "P", 4, "P"), dense=(6,), bn="after")
    model = ttfs.ReLUNet(arch)
    randomise_bn(model, rng)
    x = random_images(rng, 60, 64, 0.4)
    net = ttfs.fold(model)
    scaled, snn = mapped(net, x)
    return model, net, scaled, snn, x


def test_cnn_fold_scale_and_snn_reproduce_the_logits(random_cnn):
    model, net, scaled, snn, x = random_cnn
    ref = ttfs.logits(model, x)
    assert rel_err(net.logits(x), ref) <= 1e-12
    assert rel_err(scaled.logits(x), ref) <= 1e-12
    res = ttfs.simulate(snn, x)
    assert rel_err(res.v_out, ref) <= 1e-10
    assert np.array_equal(res.predictions(), ref.argmax(1))
    cf = ttfs.closed_form(snn, x)
    for a, b, L in zip(res.spike_times, cf.spike_times, snn.layers, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * snn.latency)
        assert np.all((a >= L.t_min) & (a <= L.t_max))


def test_cnn_border_biases_and_min_pooling_are_exercised(random_cnn):
    model, net, _, _, _ = random_cnn
    conv2 = net.layers[1]
    # BN after the first ReLU folded into a 'same' 3x3 convolution: 9 bias values per channel
    # (interior, 4 edges, 4 corners).
    for c in range(conv2.bias.shape[0]):
        assert len(np.unique(np.round(conv2.bias[c], 12))) == 9
    # negative gammas turn the pool into a min-pool for those channels
    gammas = model.blocks[0][2].weight.detach().numpy()
    np.testing.assert_array_equal(net.layers[0].pool_sign, np.where(gammas < 0, -1.0, 1.0))
    assert np.any(gammas < 0) and np.any(gammas > 0)


def test_max_pool_is_the_earliest_spike_and_min_pool_the_latest():
    t = np.arange(16, dtype=float).reshape(1, 2, 2, 4)[:, :, :, :]  # (n, C, H, W) = (1, 2, 2, 4)
    layer = ttfs.SpikingLayer("conv", np.zeros((2, 1, 3, 3)), np.zeros((2, 2, 4)), np.ones(2), 0.0, 1.0, 2.0,
                              (1, 2, 4), pool=2, pool_sign=np.array([1.0, -1.0]))
    out = alpha1._pool_times(layer, t)
    np.testing.assert_array_equal(out[0, 0], [[0.0, 2.0]])   # earliest of each 2x2 block
    np.testing.assert_array_equal(out[0, 1], [[13.0, 15.0]])  # latest


def test_conv_padding_spikes_at_the_previous_window_end(random_cnn):
    _, _, _, snn, x = random_cnn
    L = snn.layers[0]
    rows = alpha1._patches(L, ttfs.encode(x[:1]).reshape(1, 1, 8, 8))
    # top-left corner: 5 of the 9 kernel positions are padding, which spikes at t_max^(0) = 1
    assert np.sum(rows[0] == L.t_min) >= 5


@pytest.mark.parametrize("bn", ["before", "after"])
@pytest.mark.parametrize("conv", [(), (3, "P")])
def test_batch_norm_folding_is_exact(bn, conv):
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    arch = ttfs.Architecture((1, 8, 8), conv=conv, dense=(7, 5), bn=bn)
    model = ttfs.ReLUNet(arch)
    randomise_bn(model, rng)
    x = random_images(rng, 40, 64)
    net = ttfs.fold(model)
    assert rel_err(net.logits(x), ttfs.logits(model, x)) <= 1e-12
    assert not any(isinstance(p, torch.nn.modules.batchnorm._BatchNorm) for p in net.layers)


def test_dropout_is_dropped_at_inference():
    torch.manual_seed(0)
    model = ttfs.ReLUNet(ttfs.Architecture((1, 4, 4), dense=(8,), dropout=0.5)).eval()
    x = random_images(np.random.default_rng(0), 10, 16)
    assert rel_err(ttfs.fold(model).logits(x), ttfs.logits(model, x)) <= 1e-12


# ------------------------------------------------------------------------------------------------
# Scaling
# ------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gain=st.floats(0.01, 30.0), shift=st.floats(-3.0, 3.0))
def test_scaling_bounds_sums_and_keeps_the_function(seed, gain, shift):
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [10, 8, 6, 3])
    layers = tuple(replace(L, weight=L.weight * gain + shift / L.weight.shape[1]) for L in net.layers)
    net = ttfs.Network(layers)
    scaled = ttfs.scale_weights(net)
    for L in scaled.hidden:
        c = L.weight_sums()
        assert np.all(c <= ttfs.SUM_W_MAX + 1e-12) and np.all(c >= ttfs.SUM_W_MIN - 1e-12)
    x = random_images(rng, 30, 10)
    assert rel_err(scaled.logits(x), net.logits(x)) <= 1e-12


def test_scaling_leaves_sums_inside_the_bounds_unchanged():
    rng = np.random.default_rng(0)
    net = random_dense_net(rng, [5, 4, 2])
    w = net.layers[0].weight
    w = w - w.sum(1, keepdims=True) / 5 + 0.3 / 5  # every row now sums to 0.3, inside [-10, 0.99]
    net = ttfs.Network((replace(net.layers[0], weight=w), net.layers[1]))
    np.testing.assert_allclose(ttfs.scale_weights(net).layers[0].weight, w, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------
# Noise, training, windows
# ------------------------------------------------------------------------------------------------


def test_jitter_and_alpha_noise_are_reproducible_and_zero_noise_is_exact(digits_fc):
    ds, _, _, snn = digits_fc
    x = ds.x_test[:30]
    a = ttfs.simulate(snn, x, sigma=0.05, rng=np.random.default_rng(7)).v_out
    b = ttfs.simulate(snn, x, sigma=0.05, rng=np.random.default_rng(7)).v_out
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - ttfs.simulate(snn, x).v_out)) > 0  # the jitter does something
    noisy = snn.with_alpha_noise(1e-3, np.random.default_rng(1))
    assert noisy.layers[0].alpha.shape == snn.layers[0].alpha.shape
    assert not np.array_equal(noisy.layers[0].alpha, snn.layers[0].alpha)
    same = snn.with_alpha_noise(0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(ttfs.simulate(same, x).v_out, ttfs.simulate(snn, x).v_out)


def test_training_is_deterministic_given_the_seed():
    rng = np.random.default_rng(0)
    x, y = random_images(rng, 64, 16), rng.integers(0, 3, 64)
    arch = ttfs.Architecture((1, 4, 4), dense=(6,), n_classes=3, dropout=0.1)
    tr = ttfs.Training(epochs=2, batch_size=16, lr=1e-2)
    m1, h1 = ttfs.train(arch, x, y, tr, seed=4)
    m2, h2 = ttfs.train(arch, x, y, tr, seed=4)
    assert h1 == h2 and len(h1) == 2 and h1.names[:2] == ("loss", "accuracy")
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert p1.dtype == torch.float64
        assert torch.equal(p1, p2)


def test_windows_chain_and_latency():
    w = ttfs.windows([2.0, 4.0], zeta=0.5)
    assert w == ((0.0, 1.0), (1.0, 4.0), (4.0, 10.0))


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_unscaled_weights_with_sum_at_least_one_are_refused():
    w = np.full((2, 3), 0.5)  # sum W = 1.5 >= 1
    net = ttfs.Network((ttfs.Layer("dense", w, np.zeros(2), (3,)),
                        ttfs.Layer("dense", np.ones((1, 2)), np.zeros(1), (2,), relu=False)))
    with pytest.raises(ValueError, match="scale_weights"):
        ttfs.map_to_snn(net, [1.0])
    ttfs.map_to_snn(ttfs.scale_weights(net), [1.0])  # after scaling it maps


@pytest.mark.parametrize("bad", [np.full((2, 64), 1.5), np.full((2, 64), -0.1), np.full((2, 64), np.nan)])
def test_inputs_outside_the_unit_interval_are_refused(digits_fc, bad):
    _, _, _, snn = digits_fc
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ttfs.simulate(snn, bad)


def test_mismatched_shapes_are_refused(digits_fc):
    ds, model, net, snn = digits_fc
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        ttfs.simulate(snn, np.zeros((3, 63)))
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        net.logits(np.zeros(64))
    with pytest.raises(ValueError, match="one X_n per hidden layer"):
        ttfs.map_to_snn(net, [1.0, 2.0])
    with pytest.raises(ValueError, match="labels"):
        ttfs.train(model.arch, ds.x_train[:10], ds.y_train[:9], ttfs.Training(epochs=1), seed=0)
    with pytest.raises(ValueError, match="ann_logits"):
        ttfs.exactness(snn, net, ds.x_test[:5], ds.y_test[:5], np.zeros((5, 3)))


@pytest.mark.parametrize("x_max, zeta", [([0.0], 0.5), ([-1.0], 0.5), ([np.inf], 0.5), ([1.0], -1.0), ([1e-300], 0.5)])
def test_bad_windows_are_refused(x_max, zeta):
    with pytest.raises(ValueError, match="X_n|zeta"):
        ttfs.windows(x_max, zeta)


def test_bad_noise_and_options_are_refused(digits_fc):
    _, _, net, snn = digits_fc
    with pytest.raises(ValueError, match="rng"):
        ttfs.simulate(snn, np.zeros((1, 64)), sigma=0.1)
    with pytest.raises(ValueError, match="sigma"):
        ttfs.simulate(snn, np.zeros((1, 64)), sigma=-0.1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha-noise"):
        snn.with_alpha_noise(-1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="low < 0 < high < 1"):
        ttfs.scale_weights(net, low=-1.0, high=1.5)
    with pytest.raises(ValueError, match="bn"):
        ttfs.Architecture((1, 8, 8), bn="middle")
    with pytest.raises(ValueError, match="conv"):
        ttfs.Architecture((1, 8, 8), conv=("P", 4))
    with pytest.raises(TypeError, match="ReLUNet"):
        ttfs.fold(net)


# ------------------------------------------------------------------------------------------------
# Early crossings: detected per image by simulate (issue 9)
# ------------------------------------------------------------------------------------------------


def early_net(seed: int = 1, n_in: int = 20, gain: float = 20.0, n_x: int = 50):
    """A large-norm random net whose windows come from a few images: some test images make a neuron
    cross threshold while its inputs are still arriving."""
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [n_in, 50, 50, 3], bias_scale=0.1)
    net = ttfs.Network(tuple(replace(L, weight=L.weight * gain) for L in net.layers))
    x = random_images(rng, 200, n_in, 0.5)
    scaled = ttfs.scale_weights(net)
    return net, scaled, ttfs.map_to_snn(scaled, ttfs.layer_maxima(scaled, x[:n_x])), x


def brute_force_early(snn: ttfs.SNN, res: ttfs.SNNResult) -> np.ndarray:
    """Per image: does some hidden neuron's potential reach threshold at an input event before its last one?"""
    out = np.zeros(len(res.v_out), dtype=bool)
    for n, L in enumerate(snn.layers):
        t_in = alpha1.layer_input_times(snn, res, n).reshape(len(res.v_out), -1)
        for img in range(len(out)):
            ev = np.unique(np.r_[t_in[img], L.t_min_prev])  # distinct event times, sorted
            V = L.alpha[:, None] * np.maximum(ev - L.t_min_prev, 0.0)[None, :] \
                + L.J @ np.maximum(ev[None, :] - t_in[img][:, None], 0.0)
            # reaching threshold at an earlier event is early; exactly at the last input it is not
            out[img] |= bool(np.any(V[:, :-1] >= L.theta[:, None])
                             or np.any(V[:, -1] > L.theta * (1 + 1e-9) + 1e-12))
    return out


def test_simulate_flags_images_with_early_crossings_and_warns():
    net, scaled, snn, x = early_net()
    with pytest.warns(ttfs.EarlySpikeWarning, match=r"of 200 images"):
        res = ttfs.simulate(snn, x)
    assert res.early.shape == (200,) and res.early.dtype == bool
    assert 0 < res.early.sum() < 200
    np.testing.assert_array_equal(res.early, brute_force_early(snn, res))
    # the flagged images are exactly the inexact ones: the others are exact to rounding
    err = np.max(np.abs(res.v_out - net.logits(x)), axis=1)
    bound = np.max(ttfs.rounding_bound(snn))
    assert np.all(err[~res.early] <= bound) and np.all(err[res.early] > bound)


def test_simulate_strict_raises_on_an_early_crossing():
    _, _, snn, x = early_net()
    with pytest.raises(ttfs.EarlySpikeError, match="before its last input"):
        ttfs.simulate(snn, x, strict=True)
    assert issubclass(ttfs.EarlySpikeError, ValueError)


def test_simulate_does_not_warn_when_exact(digits_fc):
    import warnings

    ds, _, _, snn = digits_fc
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ttfs.simulate(snn, ds.x_test, strict=True)
    assert not res.early.any() and res.n_early == 0


def test_exactness_counts_images_with_early_crossings():
    net, scaled, snn, x = early_net()
    y = net.logits(x).argmax(1)
    ex = ttfs.exactness(snn, scaled, x, y, net.logits(x), batch=64)
    assert ex.early_images == int(ttfs.simulate(snn, x, warn=False).early.sum()) > 0
    assert ex.error_ratio > 1.0


# ------------------------------------------------------------------------------------------------
# The fast path (closed form where a bound excludes an early crossing) against the full event sweep
# ------------------------------------------------------------------------------------------------


def test_fast_path_equals_the_full_event_sweep_on_a_trained_net(digits_fc):
    ds, _, _, snn = digits_fc
    fast, full = ttfs.simulate(snn, ds.x_test), ttfs.simulate(snn, ds.x_test, fast=False)
    for a, b in zip(fast.spike_times, full.spike_times, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * snn.latency)
    np.testing.assert_array_equal(fast.predictions(), full.predictions())
    np.testing.assert_array_equal(fast.early, full.early)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gain=st.floats(0.5, 30.0), zeta=st.floats(-0.7, 0.5),
       sigma=st.sampled_from([0.0, 0.05]))
def test_fast_path_equals_the_full_event_sweep_with_early_crossings_and_jitter(seed, gain, zeta, sigma):
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [12, 9, 7, 3], bias_scale=0.3)
    net = ttfs.Network(tuple(replace(L, weight=L.weight * gain) for L in net.layers))
    x = random_images(rng, 30, 12, 0.4)
    scaled = ttfs.scale_weights(net)
    x_max = ttfs.layer_maxima(scaled, x[:10])
    assume(min(x_max) > 1e-6)
    snn = ttfs.map_to_snn(scaled, x_max, zeta)
    kw = dict(sigma=sigma, warn=False)
    fast = ttfs.simulate(snn, x, rng=np.random.default_rng(1), **kw)
    full = ttfs.simulate(snn, x, rng=np.random.default_rng(1), fast=False, **kw)
    np.testing.assert_array_equal(fast.early, full.early)
    for a, b in zip(fast.spike_times, full.spike_times, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * snn.latency)
    np.testing.assert_allclose(fast.v_out, full.v_out, rtol=0, atol=1e-9 * max(1.0, np.abs(full.v_out).max()))


def test_fast_path_equals_the_full_event_sweep_on_a_cnn(random_cnn):
    _, _, _, snn, x = random_cnn
    fast, full = ttfs.simulate(snn, x), ttfs.simulate(snn, x, fast=False)
    for a, b in zip(fast.spike_times, full.spike_times, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * snn.latency)
    np.testing.assert_allclose(fast.v_out, full.v_out, rtol=0, atol=1e-12 * np.abs(full.v_out).max())


# ------------------------------------------------------------------------------------------------
# The float64 error model of the readout
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed, gain", [(0, 1.0), (1, 30.0), (2, 100.0), (4, 1000.0)])
def test_readout_error_lies_within_the_rounding_bound_at_long_latencies(seed, gain):
    rng = np.random.default_rng(seed)
    net = random_dense_net(rng, [30] + [40] * 8 + [3], bias_scale=0.5)
    net = ttfs.Network(tuple(replace(L, weight=L.weight * gain, bias=L.bias * gain) for L in net.layers))
    x = random_images(rng, 100, 30, 0.3)
    scaled, snn = mapped(net, x)
    res = ttfs.simulate(snn, x, warn=False)
    assert res.n_early <= 2  # (an early crossing inside the window: exercise ttfs-ex-early)
    err = np.max(np.abs(res.v_out - net.logits(x))[~res.early], axis=0)
    bound = ttfs.rounding_bound(snn)
    assert bound.shape == (3,) and np.all(err <= bound)
    # the bound grows with the latency (absolute spike times lose digits), a fixed 1e-15 does not hold
    assert np.max(bound) / np.max(np.abs(net.logits(x))) > 1e3 * np.finfo(float).eps * (gain > 10)


def test_rounding_bound_grows_with_the_latency():
    rng = np.random.default_rng(0)
    net = random_dense_net(rng, [10, 8, 3])
    x = random_images(rng, 20, 10)
    _, snn = mapped(net, x)
    wide = ttfs.map_to_snn(ttfs.scale_weights(net), ttfs.layer_maxima(ttfs.scale_weights(net), x), zeta=20.0)
    assert np.all(ttfs.rounding_bound(wide) > ttfs.rounding_bound(snn))


# ------------------------------------------------------------------------------------------------
# Misuse of Network, Layer and the noise options is refused with a clear message
# ------------------------------------------------------------------------------------------------


def test_a_hidden_layer_without_relu_is_refused():
    rng = np.random.default_rng(0)
    net = random_dense_net(rng, [5, 4, 3, 2])
    with pytest.raises(ValueError, match="hidden layer 2 .*relu=False"):
        ttfs.Network((net.layers[0], replace(net.layers[1], relu=False), net.layers[2]))


def test_an_output_layer_with_relu_is_refused():
    rng = np.random.default_rng(0)
    net = random_dense_net(rng, [5, 4, 2])
    with pytest.raises(ValueError, match="output layer .*relu"):
        ttfs.Network((net.layers[0], replace(net.layers[1], relu=True)))


def test_an_empty_network_is_refused():
    with pytest.raises(ValueError, match="at least one layer"):
        ttfs.Network(())


def test_mismatched_layer_sizes_are_refused():
    rng = np.random.default_rng(0)
    a = ttfs.Layer("dense", rng.normal(size=(4, 5)), np.zeros(4), (5,))
    b = ttfs.Layer("dense", rng.normal(size=(2, 3)), np.zeros(2), (3,), relu=False)
    with pytest.raises(ValueError, match="layer 2 expects inputs of shape \\(3,\\).*layer 1 gives \\(4,\\)"):
        ttfs.Network((a, b))
    with pytest.raises(ValueError, match=r"needs weight \(n_out, 6\), got \(4, 5\)"):
        ttfs.Layer("dense", rng.normal(size=(4, 5)), np.zeros(4), (6,))
    with pytest.raises(ValueError, match="bias"):
        ttfs.Layer("dense", rng.normal(size=(4, 5)), np.zeros(3), (5,))
    with pytest.raises(ValueError, match="kind"):
        ttfs.Layer("pool", rng.normal(size=(4, 5)), np.zeros(4), (5,))
    with pytest.raises(ValueError, match="finite"):
        ttfs.Layer("dense", np.full((4, 5), np.nan), np.zeros(4), (5,))


@pytest.mark.parametrize("sigma", [np.nan, np.inf])
def test_non_finite_jitter_is_refused(digits_fc, sigma):
    _, _, net, snn = digits_fc
    with pytest.raises(ValueError, match="sigma"):
        ttfs.simulate(snn, np.zeros((1, 64)), sigma=sigma, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="sigma"):
        ttfs.noisy_relu_predictions(net, np.zeros((1, 64)), sigma, np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha-noise"):
        snn.with_alpha_noise(sigma, np.random.default_rng(0))


# ------------------------------------------------------------------------------------------------
# 'valid' padding (LeNet-5), input-range folding (CIFAR), negative BN scales (min-pooling)
# ------------------------------------------------------------------------------------------------


def test_valid_padding_is_folded_and_mapped_exactly():
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    arch = ttfs.Architecture((1, 16, 16), conv=(3, "P", 4, "P", 5), dense=(6,), kernel=3, bn="before",
                             padding=("same", "valid", "valid"))
    model = ttfs.ReLUNet(arch)
    randomise_bn(model, rng, negative=False)
    x = random_images(rng, 30, 256)
    net = ttfs.fold(model)
    assert [L.out_shape for L in net.hidden[:3]] == [(3, 16, 16), (4, 6, 6), (5, 1, 1)]
    ref = ttfs.logits(model, x)
    assert rel_err(net.logits(x), ref) <= 1e-12
    scaled, snn = mapped(net, x)
    res = ttfs.simulate(snn, x, strict=True)
    assert np.max(np.abs(res.v_out - ref)) <= np.max(ttfs.rounding_bound(snn))
    cf = ttfs.closed_form(snn, x)
    for a, b in zip(res.spike_times, cf.spike_times, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * snn.latency)


def test_lenet5_preset_has_the_papers_shapes():
    arch = ttfs.VGG["mnist-lenet5"]
    model = ttfs.ReLUNet(arch)
    net = ttfs.fold(model.eval())
    assert [L.out_shape for L in net.hidden[:3]] == [(6, 28, 28), (16, 10, 10), (120, 1, 1)]
    x = random_images(np.random.default_rng(0), 3, 784)
    assert rel_err(net.logits(x), ttfs.logits(model, x)) <= 1e-12


@pytest.mark.parametrize("conv", [(), (3, "P")])
def test_input_range_is_folded_into_the_first_layer(conv):
    rng = np.random.default_rng(8)
    torch.manual_seed(8)
    arch = ttfs.Architecture((1, 8, 8), conv=conv, dense=(7,), bn="after", input_range=(-3.0, 3.0))
    model = ttfs.ReLUNet(arch)
    randomise_bn(model, rng)
    x = random_images(rng, 40, 64)
    ref = ttfs.logits(model, x)
    # the net computes on z = -3 + 6 x, so it is not the net of the same weights on x
    plain = ttfs.ReLUNet(replace(arch, input_range=(0.0, 1.0)))
    plain.load_state_dict(model.state_dict())
    assert rel_err(ttfs.logits(plain.eval(), x), ref) > 1e-3
    net = ttfs.fold(model)
    assert rel_err(net.logits(x), ref) <= 1e-12
    if conv:  # zero padding of z is x = 1/2, not x = 0: the first convolution gets border biases
        assert len(np.unique(np.round(net.layers[0].bias[0], 12))) == 9
    scaled, snn = mapped(net, x)
    res = ttfs.simulate(snn, x, strict=True)
    assert np.max(np.abs(res.v_out - ref)) <= np.max(ttfs.rounding_bound(snn))


def test_cifar_presets_fold_the_input_range():
    for name in ("cifar10-vgg15", "cifar100-vgg15"):
        p, q = ttfs.VGG[name].input_range
        assert p < 0 < q and q - p == pytest.approx(255 / 64.15, rel=0.1)


def test_negative_bn_scales_at_initialisation_give_min_pools():
    torch.manual_seed(0)
    arch = ttfs.Architecture((1, 8, 8), conv=(4, "P"), dense=(5,), bn="after", bn_negative=0.5)
    model = ttfs.ReLUNet(arch).eval()
    np.testing.assert_array_equal(np.sign(model.blocks[0][2].weight.detach().numpy()), [-1, -1, 1, 1])
    np.testing.assert_array_equal(ttfs.fold(model).layers[0].pool_sign, [-1, -1, 1, 1])


@pytest.mark.parametrize("kw", [dict(padding="full"), dict(padding=("same",)), dict(input_range=(1.0, 0.0)),
                                dict(input_range=(0.0, np.inf)), dict(bn_negative=1.5), dict(kernel=4)])
def test_bad_architectures_are_refused(kw):
    with pytest.raises(ValueError):
        ttfs.Architecture((1, 8, 8), conv=(3, "P", 4), **kw)


def test_broken_mapping_control_drops_the_input_term_and_fails_exactness():
    from lib.protocols import ttfs_exact_mapping as proto

    rng = np.random.default_rng(23)
    net = ttfs.scale_weights(random_dense_net(rng, [12, 16, 16, 4]))
    x = random_images(rng, 40, 12)
    net, snn = mapped(net, x)
    broken = proto.broken_mapping(snn)
    for L, B in zip(snn.layers, broken.layers, strict=True):
        np.testing.assert_allclose(L.theta - B.theta, (L.t_max - L.t_min) * L.J.sum(1), rtol=1e-12)
        assert np.array_equal(L.J, B.J) and (L.t_min, L.t_max) == (B.t_min, B.t_max)
    ann = net.logits(x)
    good = ttfs.exactness(snn, net, x, np.zeros(len(x), dtype=int), ann)
    bad = ttfs.exactness(broken, net, x, np.zeros(len(x), dtype=int), ann)
    assert good.error_ratio <= 1.0 < bad.error_ratio
    assert good.in_window == 1.0 and bad.max_time_error > 1e-3
