"""Unit tests of lib/ttfs/b1.py (the B1 neuron of Stanojevic et al. 2024) and its protocol."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib import ttfs
from lib.protocols import ttfs_deep_training as proto
from lib.ttfs import b1

SEEDS = [1, 7, 23]  # not the chapter's seed 0


def dense_net(rng, widths, bias=0.1):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = rng.normal(0.0, np.sqrt(2.0 / a), (b, a))
        layers.append(ttfs.Layer("dense", w, rng.normal(0.0, bias, b), (a,), relu=i < len(widths) - 2))
    return ttfs.Network(tuple(layers))


def conv_relu(seed, bn=None):
    """A small CNN with pooling (and optionally batch norm after the ReLU), briefly trained."""
    arch = ttfs.Architecture((1, 8, 8), conv=(4, "P", 6), dense=(10,), bn=bn, bn_negative=0.5 if bn else 0.0)
    torch.manual_seed(seed)
    model = ttfs.ReLUNet(arch)
    if bn:
        rng = np.random.default_rng(seed)
        x = rng.random((64, 64))
        model.train()
        with torch.no_grad():  # give the batch norms non-trivial running statistics
            for _ in range(3):
                model(torch.from_numpy(x))
    return model.eval()


def images(rng, n, d, p_zero=0.3):
    x = np.round(rng.random((n, d)) * 255) / 255
    x[rng.random((n, d)) < p_zero] = 0.0
    return x


def identity(net, x, zeta=ttfs.ZETA):
    return b1.map_identity(net, ttfs.layer_maxima(net, x), zeta)


# ------------------------------------------------------------------------------------------------
# Closed form and the identity mapping
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("widths", [[12, 20, 3], [30, 25, 25, 25, 4]])
def test_closed_form_reproduces_relu_logits_dense(seed, widths):
    rng = np.random.default_rng(seed)
    net = dense_net(rng, widths)
    x = images(rng, 50, widths[0])
    snn = identity(net, x)
    res = b1.closed_form(snn, x, strict=True)
    lg = net.logits(x)
    # error model: absolute times up to the latency, summed with the weights (see claims.yml)
    assert np.abs(res.v_out - lg).max() <= 1e-12 * max(1.0, np.abs(lg).max())
    _, hidden = net.forward(x)
    for h, t, f, (t0, t1) in zip(hidden, res.spike_times, res.fired, snn.windows[1:], strict=True):
        np.testing.assert_array_equal(f, h > 0)
        np.testing.assert_allclose(t1 - t, h, atol=1e-12 * snn.latency)
        assert np.all((t >= t0) & (t <= t1))
    frac = sum(int((h > 0).sum()) for h in hidden) / sum(h.size for h in hidden)
    assert res.spikes_per_neuron == frac
    assert res.n_early == 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bn", [None, "after"])
def test_closed_form_reproduces_relu_logits_conv(seed, bn):
    model = conv_relu(seed, bn)
    net = ttfs.fold(model)
    rng = np.random.default_rng(seed)
    x = images(rng, 40, 64)
    snn = identity(net, x)
    res = b1.closed_form(snn, x, strict=True)
    lg = ttfs.logits(model, x)
    assert np.abs(res.v_out - lg).max() <= 1e-12 * max(1.0, np.abs(lg).max())
    if bn:  # the folded pool signs really are mixed: min-pools in the time domain are exercised
        assert np.any(net.layers[0].pool_sign < 0)


def test_clipped_neurons_are_flagged_and_strict_raises():
    rng = np.random.default_rng(3)
    net = dense_net(rng, [10, 30, 3])
    x = images(rng, 30, 10)
    short = identity(net, x, zeta=-0.6)
    with pytest.warns(ttfs.EarlySpikeWarning):
        res = b1.closed_form(short, x)
    assert res.n_early > 0
    t0, t1 = short.windows[1]
    _, hidden = net.forward(x)
    clipped = hidden[0] > t1 - t0
    assert np.array_equal(res.early, clipped.any(1))
    np.testing.assert_allclose(res.spike_times[0][clipped], t0)  # fires as the window opens
    with pytest.raises(ttfs.EarlySpikeError):
        b1.closed_form(short, x, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b1.closed_form(short, x, warn=False)


def test_thresholds_and_latency():
    rng = np.random.default_rng(5)
    net = dense_net(rng, [6, 8, 2])
    snn = b1.map_identity(net, [2.0], zeta=0.5)
    assert snn.windows == ((0.0, 1.0), (1.0, 4.0))
    assert snn.latency == 4.0
    np.testing.assert_allclose(snn.thresholds(0), 3.0 - net.layers[0].bias)


# ------------------------------------------------------------------------------------------------
# Clock-driven simulation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dt", [1e-2, 2e-3])
def test_simulation_error_within_its_error_model(seed, dt):
    rng = np.random.default_rng(seed)
    net = dense_net(rng, [15, 20, 20, 3])
    x = images(rng, 6, 15)
    snn = identity(net, x)
    ref = b1.closed_form(snn, x)
    sim = b1.simulate(snn, x, dt=dt, warn=False)
    for i, layer in enumerate(snn.net.hidden):
        t_loc, on = b1.layer_closed_form(snn, i, b1.input_times(snn, sim, i))
        both = on & sim.fired[i]
        bound = 0.5 * dt * np.abs(layer.weight).sum(1) + 1e-9  # |W_ij| h / 2 per input
        assert np.all(np.abs(t_loc - sim.spike_times[i])[both] <= np.broadcast_to(bound, t_loc.shape)[both])
    # the first layer gets exact inputs, so there the bound holds against the exact closed form
    both = ref.fired[0] & sim.fired[0]
    assert np.all(np.abs(ref.spike_times[0] - sim.spike_times[0])[both]
                  <= np.broadcast_to(0.5 * dt * np.abs(net.layers[0].weight).sum(1) + 1e-9,
                                     both.shape)[both])


def test_simulation_conv_and_convergence():
    model = conv_relu(11)
    net = ttfs.fold(model)
    x = images(np.random.default_rng(11), 3, 64)
    snn = identity(net, x)
    ref = b1.closed_form(snn, x)
    errs = []
    for dt in (2e-2, 2e-3):
        sim = b1.simulate(snn, x, dt=dt, warn=False)
        both = ref.fired[-1] & sim.fired[-1]
        errs.append(float(np.abs(ref.spike_times[-1] - sim.spike_times[-1])[both].max()))
    assert errs[1] < 0.3 * errs[0]  # first order: ten times smaller steps, errors about ten times smaller


def test_simulation_silent_neuron_is_silent_and_clipping_is_seen():
    w = np.array([[1.0, -0.5, 0.8], [-1.0, -1.0, -1.0]])
    net = ttfs.Network((ttfs.Layer("dense", w, np.array([0.3, 0.0]), (3,)),
                        ttfs.Layer("dense", np.ones((1, 2)), np.zeros(1), (2,), relu=False)))
    x = np.array([[0.9, 0.5, 0.2]])
    snn = b1.map_identity(net, [1.0])
    sim = b1.simulate(snn, x, dt=1e-3)
    assert sim.fired[0].tolist() == [[True, False]]
    assert abs(sim.spike_times[0][0, 0] - (snn.windows[1][1] - (w[0] @ x[0] + 0.3))) < 3e-3
    short = b1.map_identity(net, [0.2], zeta=0.0)  # the value 1.11 exceeds the window 0.2
    with pytest.warns(ttfs.EarlySpikeWarning):
        s2 = b1.simulate(short, x, dt=1e-3)
    assert s2.early[0] and s2.spike_times[0][0, 0] == short.windows[1][0]


# ------------------------------------------------------------------------------------------------
# Torch: B1Net against ReLUNet
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [
    ttfs.Architecture((1, 4, 5), dense=(16, 16, 16), n_classes=3),
    ttfs.Architecture((1, 8, 8), conv=(3, "P", 5), dense=(7,), n_classes=4),
])
@pytest.mark.parametrize("seed", SEEDS)
def test_b1net_forward_and_gradients_equal_relunet(arch, seed):
    torch.manual_seed(seed)
    ann = ttfs.he_init(ttfs.ReLUNet(arch), seed)
    snn = ttfs.B1Net.from_relu(ann)
    rng = np.random.default_rng(seed)
    d = int(np.prod(arch.input_shape))
    x = torch.from_numpy(images(rng, 24, d))
    y = torch.from_numpy(rng.integers(0, arch.n_classes, 24))
    grads = []
    for m in (ann, snn):
        m.train()
        m.zero_grad()
        out = m(x)
        F.cross_entropy(out, y).backward()
        grads.append((out.detach(), {k: p.grad.clone() for k, p in m.named_parameters()}))
    (o1, g1), (o2, g2) = grads
    assert float((o1 - o2).abs().max()) <= 1e-12 * max(1.0, float(o1.abs().max()))
    assert set(g1) == set(g2)
    for k in g1:
        assert float((g1[k] - g2[k]).abs().max()) <= 1e-11 * max(1.0, float(g1[k].abs().max())), k
    # the time-domain gradient is not the ANN graph relabelled: it flows through spike times
    assert snn.last.times[0].grad_fn is not None and snn.last.times[0].min() >= 1.0


def test_b1net_trajectory_equals_relunet_for_sgd_and_adam():
    arch = ttfs.Architecture((1, 4, 4), dense=(20, 20), n_classes=3)
    rng = np.random.default_rng(4)
    x, y = images(rng, 200, 16), rng.integers(0, 3, 200)
    from lib import torchkit
    for opt in ("sgd", "adam"):
        torch.manual_seed(4)
        ann = ttfs.he_init(ttfs.ReLUNet(arch), 4)
        snn = ttfs.B1Net.from_relu(ann)
        hs = [torchkit.fit(m, F.cross_entropy, (x, y), epochs=3, lr=0.05 if opt == "sgd" else 1e-3,
                           batch_size=16, seed=9, optimizer=opt, progress=False,
                           metrics={"accuracy": torchkit.accuracy}) for m in (ann, snn)]
        assert ttfs.max_param_diff(ann, snn) <= 1e-10
        assert list(hs[0].series("accuracy")) == list(hs[1].series("accuracy"))


def test_window_adaptation_grows_windows_and_keeps_the_function():
    arch = ttfs.Architecture((1, 4, 4), dense=(10, 10), n_classes=2)
    torch.manual_seed(2)
    ann = ttfs.he_init(ttfs.ReLUNet(arch), 2)
    snn = ttfs.B1Net.from_relu(ann, x_max=0.01)  # windows far too short
    x = torch.from_numpy(images(np.random.default_rng(2), 30, 16))
    snn.eval()
    snn(x)
    assert snn.last.n_clipped > 0
    snn.train()
    out = snn(x)
    values = [float(v.detach().max()) for v in snn.last.values]
    assert all(float(w) >= b1.ADAPT_FACTOR * v - 1e-12 for w, v in zip(snn.widths, values, strict=True))
    assert snn.last.n_clipped == 0
    with torch.no_grad():
        np.testing.assert_allclose(out.detach().numpy(), ann(x).numpy(), rtol=0, atol=1e-12)
    before = snn.widths.clone()
    snn.eval()
    snn(x * 0.5)
    assert torch.equal(before, snn.widths)  # no adaptation in evaluation mode


def test_to_snn_closed_form_matches_b1net():
    model = conv_relu(3)
    snn_t = ttfs.B1Net.from_relu(model, x_max=[4.0, 6.0, 8.0]).eval()
    x = images(np.random.default_rng(3), 20, 64)
    with torch.no_grad():
        out = snn_t(torch.from_numpy(x)).numpy()
    res = b1.closed_form(snn_t.to_snn(), x)
    np.testing.assert_allclose(res.v_out, out, rtol=0, atol=1e-12)
    assert snn_t.to_snn().windows == snn_t.windows()


def test_noise_and_quantisation():
    arch = ttfs.Architecture((1, 4, 4), dense=(12,), n_classes=3)
    torch.manual_seed(0)
    snn = ttfs.B1Net(arch, x_max=5.0).eval()
    x = torch.from_numpy(images(np.random.default_rng(0), 10, 16))
    with torch.no_grad():
        clean = snn(x)
        snn.set_noise(0.0, seed=1)
        assert torch.equal(snn(x), clean)
        snn.set_noise(0.1, seed=1)
        a = snn(x)
        snn.set_noise(0.1, seed=1)
        b = snn(x)
    assert torch.equal(a, b) and not torch.equal(a, clean)  # seeded, and it does something
    snn.set_noise(0.0)
    snn.set_quantisation(time_bits=2)
    with torch.no_grad():
        snn(x)
    snn.set_quantisation(weight_bits=2)  # [-1, 1] nudged to [-4/3, 2/3] so that 0 is a level
    levels = {-4 / 3, -2 / 3, 0.0, 2 / 3}
    got = np.unique(snn._weight(snn.blocks[0][0].weight).detach().numpy())
    assert all(min(abs(g - lv) for lv in levels) < 1e-15 for g in got)


def test_fake_quantise_levels_and_straight_through_gradient():
    v = torch.linspace(-0.5, 2.5, 301, requires_grad=True)
    q = b1.fake_quantise(v, 0.0, 2.0, 3)
    assert len(torch.unique(q.detach())) == 8
    assert float(q.min()) == 0.0 and float(q.max()) == 2.0
    q.sum().backward()
    assert torch.equal(v.grad, torch.ones_like(v))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_fake_quantise_keeps_zero_a_level_as_the_authors_tensorflow_quantiser(bits):
    # tf.quantization.fake_quant_with_min_max_args(x, -1, 1, bits): scale 2 / (2^b - 1), zero
    # point round(-min / scale) = 2^(b-1), levels (k - 2^(b-1)) * scale for k = 0 .. 2^b - 1
    assert float(b1.fake_quantise(torch.zeros(1), -1.0, 1.0, bits)) == 0.0
    n, z = 2 ** bits - 1, 2 ** (bits - 1)
    scale = 2.0 / n
    levels = (torch.arange(n + 1, dtype=torch.float64) - z) * scale
    v = torch.linspace(-1.5, 1.5, 1001, dtype=torch.float64)
    expected = levels[torch.clamp(torch.floor((v - levels[0]) / scale + 0.5), 0, n).long()]
    torch.testing.assert_close(b1.fake_quantise(v, -1.0, 1.0, bits), expected, rtol=0, atol=1e-15)
    # a small weight rounds to 0, not to +-scale/2
    assert float(b1.fake_quantise(torch.tensor([0.3 * scale]), -1.0, 1.0, bits)) == 0.0


# ------------------------------------------------------------------------------------------------
# The α1 foil and the backward gain
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha1net_mapped_computes_the_relu_net_and_inverts(seed):
    rng = np.random.default_rng(seed)
    net = ttfs.scale_weights(dense_net(rng, [10, 14, 14, 3]))
    x = images(rng, 40, 10)
    snn = ttfs.map_to_snn(net, ttfs.layer_maxima(net, x))
    foil = b1.Alpha1Net.from_snn(snn)
    with torch.no_grad():
        out = foil(torch.from_numpy(x)).numpy()
    lg = net.logits(x)
    assert np.abs(out - lg).max() <= 1e-12 * max(1.0, np.abs(lg).max())
    ref = ttfs.closed_form(snn, x)  # the α1 closed form of lib.ttfs.alpha1
    np.testing.assert_allclose(out, ref.v_out, rtol=0, atol=1e-10)
    for (w, b), layer in zip(foil.equivalent_relu(), net.layers, strict=True):
        np.testing.assert_allclose(w, layer.weight, atol=1e-12)
        np.testing.assert_allclose(b, layer.bias, atol=1e-10)



def test_he_init_variance_and_zero_biases():
    arch = ttfs.Architecture((1, 1, 400), dense=(300, 300))
    m = ttfs.he_init(ttfs.ReLUNet(arch), 3)
    w = m.blocks[1][0].weight.detach().numpy()
    assert abs(w.var() * 300 / 2.0 - 1.0) < 0.02 and abs(w.mean()) < 1e-3
    assert all(float(b.detach().abs().max()) == 0.0 for n, b in m.named_parameters() if n.endswith("bias"))
    again = ttfs.he_init(ttfs.ReLUNet(arch), 3)
    assert ttfs.max_param_diff(m, again) == 0.0  # the same seed, the same draws
    assert ttfs.max_param_diff(m, ttfs.he_init(ttfs.ReLUNet(arch), 4)) > 0.1
    with pytest.raises(ValueError, match="torch module"):
        ttfs.he_init(np.zeros(3), 0)


def test_relu_from_network_inverts_fold_and_params_flatten_in_order():
    rng = np.random.default_rng(5)
    net = dense_net(rng, [10, 14, 9, 3])
    arch = ttfs.Architecture((1, 1, 10), dense=(14, 9), n_classes=3)
    model = ttfs.relu_from_network(arch, net)
    x = images(rng, 30, 10)
    np.testing.assert_allclose(ttfs.logits(model, x), net.logits(x), rtol=0, atol=1e-12)
    params = ttfs.relu_params(model)
    for (w, b), layer in zip(params, net.layers, strict=True):
        np.testing.assert_array_equal(w, layer.weight)
        np.testing.assert_array_equal(b, layer.bias)
    flat = ttfs.flat_params(params)
    assert flat.size == sum(L.weight.size + L.bias.size for L in net.layers)
    np.testing.assert_array_equal(flat[: 14 * 10], net.layers[0].weight.ravel())
    bare = ttfs.without_biases(net)
    assert all(not L.bias.any() for L in bare.layers)
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(bare.layers, net.layers, strict=True))
    with pytest.raises(ValueError, match="dense architecture"):
        ttfs.relu_from_network(ttfs.Architecture((1, 1, 10), dense=(14,), n_classes=3), net)
    with pytest.raises(ValueError, match="dense ReLUNet"):
        ttfs.relu_params(ttfs.ReLUNet(ttfs.Architecture((1, 8, 8), conv=(2,), dense=(4,))))
    with pytest.raises(ValueError, match="different parameters"):
        ttfs.max_param_diff(model, ttfs.ReLUNet(ttfs.Architecture((1, 1, 10), dense=(14,), n_classes=3)))


def test_b1_potential_reaches_threshold_at_the_closed_form_time():
    w, t_in, t_min, B, bias = np.array([1.0, -0.5, 0.8]), np.array([0.1, 0.5, 0.8]), 1.0, 2.0, 0.3
    relu = float(w @ (1.0 - t_in) + bias)
    t_spike = t_min + B - relu  # the closed form: t = t_max - (W x + D)
    v = ttfs.b1_potential(np.array([t_min, t_spike]), t_in, w, 0.0, t_min)
    assert v[0] == pytest.approx(float(w @ (t_min - t_in)), abs=1e-12)  # integrated inputs only
    assert v[1] == pytest.approx(B - bias, abs=1e-12)  # reaches theta = B - D at the spike time

def test_alpha1_jacobian_is_J_over_slope():
    rng = np.random.default_rng(8)
    J = rng.normal(0.3, 0.2, (4, 6))
    theta = rng.uniform(2.5, 3.5, 4)
    foil = b1.Alpha1Net([J], [theta], np.zeros((1, 4)), np.zeros(1), [(0.0, 1.0), (1.0, 10.0)])
    x = torch.from_numpy(rng.random((1, 6))).requires_grad_(True)
    foil(x)
    t = foil.last.times[0]
    assert bool(foil.last.fired[0].all())
    for i in range(4):
        (g,) = torch.autograd.grad(t[0, i], x, retain_graph=True)
        # dt_i/dx_j = -dt_i/dt_j = -J_ij / s_i
        np.testing.assert_allclose(g[0].numpy(), -J[i] / (1.0 + J[i].sum()), rtol=1e-12)


def relu_gain_numpy(model, x, seed):
    """The backward gain from explicit Jacobian products (independent of autograd)."""
    linears = [blk[0] for blk in model.blocks]
    hs, h = [], x
    for lin in linears:
        h = np.maximum(h @ lin.weight.detach().numpy().T + lin.bias.detach().numpy(), 0.0)
        hs.append(h)
    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(hs[-1].shape, generator=gen, dtype=torch.float64).numpy()
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    g = e
    for n in range(len(linears) - 1, 0, -1):
        g = (g * (hs[n] > 0)) @ linears[n].weight.detach().numpy()
    return float(np.linalg.norm(g) / np.linalg.norm(e))


@pytest.mark.parametrize("seed", SEEDS)
def test_backward_gain_matches_jacobian_products_and_b1_equals_relu(seed):
    arch = ttfs.Architecture((1, 1, 32), dense=(32,) * 6)
    relu = ttfs.he_init(ttfs.ReLUNet(arch), seed).eval()
    x = np.random.default_rng(seed).random((16, 32))
    g = ttfs.backward_gain(relu, x, seed)
    assert g == pytest.approx(relu_gain_numpy(relu, x, seed), rel=1e-10)
    assert ttfs.backward_gain(ttfs.B1Net.from_relu(relu), x, seed) == pytest.approx(g, rel=1e-10)


@pytest.mark.parametrize("depth", [3, 6])
def test_backward_error_layer_by_layer_and_its_sign_flipped_control(depth):
    arch = ttfs.Architecture((1, 1, 24), dense=(24,) * depth)
    relu = ttfs.he_init(ttfs.ReLUNet(arch), 11).eval()
    x = np.random.default_rng(11).random((8, 24))
    e, g = ttfs.backward_error(relu, x, 11)
    assert float(g.norm() / e.norm()) == pytest.approx(ttfs.backward_gain(relu, x, 11), rel=1e-10)
    b1net = ttfs.B1Net.from_relu(relu)
    _, g_b1 = ttfs.backward_error(b1net, x, 11)
    torch.testing.assert_close(g_b1, g, rtol=1e-10, atol=1e-14)  # the sign changes of time cancel
    _, g_flip = ttfs.backward_error(b1net, x, 11, layer_sign=-1.0)
    torch.testing.assert_close(g_flip, (-1.0) ** (depth - 1) * g, rtol=1e-10, atol=1e-14)
    gain = ttfs.backward_gain(relu, x, 11)
    assert ttfs.signed_gain(b1net, relu, x, 11) == pytest.approx(gain, rel=1e-9)
    assert ttfs.signed_gain(b1net, relu, x, 11, layer_sign=-1.0) == pytest.approx(
        (-1.0) ** (depth - 1) * gain, rel=1e-9)
    with pytest.raises(ValueError):
        ttfs.backward_error(relu, x, 11, layer_sign=float("nan"))


def test_alpha1_explosions_count_runs_of_the_figure():
    P = replace(proto.preset("ci"), gain_width=32, gain_inputs=8, gain_seeds=4, gain_depths=(5,))
    zero = proto.gains(P, 3)["α1 zero-mean init"][0]
    limit = float(np.median(zero))
    assert proto.alpha1_explosions(P, 3, 5, 4, limit=limit) == int(np.sum(zero > limit))
    assert proto.alpha1_explosions(P, 3, 5, 4, limit=np.inf) == 0


def test_naive_alpha1_gains_explode_and_vanish():
    x = np.random.default_rng(0).random((16, 64))
    gen = torch.Generator().manual_seed(5)
    up = [ttfs.backward_gain(ttfs.naive_alpha1(64, 10, "zero-mean", x, gen), x, 5) for _ in range(3)]
    down = [ttfs.backward_gain(ttfs.naive_alpha1(64, 10, "positive-mean", x, gen), x, 5) for _ in range(3)]
    assert np.median(up) > 1e2 and np.median(down) < 0.1


def test_spike_counting_in_torch_matches_closed_form():
    arch = ttfs.Architecture((1, 4, 4), dense=(20, 20), n_classes=3)
    torch.manual_seed(6)
    snn = ttfs.B1Net(arch, x_max=10.0).eval()
    x = images(np.random.default_rng(6), 50, 16)
    acc, per_layer = ttfs.evaluate(snn, x, np.zeros(50, dtype=int))
    res = b1.closed_form(snn.to_snn(), x)
    np.testing.assert_allclose(per_layer, res.spikes_per_layer())


def test_fit_windows_sets_the_quantile_and_shortens_latency():
    arch = ttfs.Architecture((1, 4, 4), dense=(20, 20), n_classes=3)
    torch.manual_seed(1)
    snn = ttfs.he_init(ttfs.ReLUNet(arch), 1)
    net = ttfs.B1Net.from_relu(snn)
    x = images(np.random.default_rng(1), 100, 16)
    long = net.latency
    ttfs.fit_windows(net, x, quantile=1.0)
    maxima = ttfs.layer_maxima(ttfs.fold(net.to_relu()), x)
    np.testing.assert_allclose(net.widths.numpy(), maxima, rtol=1e-12)
    assert net.latency < long
    ttfs.fit_windows(net, x, quantile=0.5)
    net(torch.from_numpy(x))
    assert net.last.n_clipped > 0


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    rng = np.random.default_rng(0)
    net = dense_net(rng, [5, 6, 2])
    snn = b1.map_identity(net, [1.0])
    with pytest.raises(ValueError, match="one X_n per hidden layer"):
        b1.map_identity(net, [1.0, 2.0])
    with pytest.raises(TypeError):
        b1.map_identity("net", [1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        b1.closed_form(snn, np.full((2, 5), 1.5))
    with pytest.raises(ValueError, match="NaN"):
        b1.closed_form(snn, np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        b1.closed_form(snn, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="dt"):
        b1.simulate(snn, np.zeros((1, 5)), dt=0.0)
    with pytest.raises(ValueError, match="layer"):
        snn.thresholds(3)
    with pytest.raises(ValueError, match="receives spike times"):
        b1.layer_closed_form(snn, 0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="batch norm"):
        ttfs.B1Net(ttfs.Architecture((1, 2, 2), dense=(3,), bn="before"))
    arch = ttfs.Architecture((1, 2, 2), dense=(3,))
    m = ttfs.B1Net(arch)
    with pytest.raises(ValueError, match="window widths"):
        m.set_windows([-1.0])
    with pytest.raises(ValueError, match="sigma"):
        m.set_noise(-0.1)
    with pytest.raises(ValueError, match="time_bits"):
        m.set_quantisation(time_bits=0)
    with pytest.raises(ValueError, match=r"images \(n, 4\)"):
        m(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="bits"):
        b1.fake_quantise(torch.zeros(3), 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="low < high"):
        b1.fake_quantise(torch.zeros(3), 1.0, 1.0, 2)
    with pytest.raises(ValueError, match="one J and theta"):
        b1.Alpha1Net([np.ones((2, 3))], [], np.ones((1, 2)), np.zeros(1), [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="alpha"):
        b1.Alpha1Net([np.ones((2, 3))], [np.ones(2)], np.ones((1, 2)), np.zeros(1), [(0, 1), (1, 2)], alpha=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ttfs.backward_gain(ttfs.ReLUNet(arch), np.full((2, 4), 2.0), 0)
    with pytest.raises(ValueError, match="non-empty"):
        ttfs.backward_gain(ttfs.ReLUNet(arch), np.zeros((0, 4)), 0)
    with pytest.raises(ValueError, match="init"):
        ttfs.naive_alpha1(4, 2, "uniform", np.zeros((1, 4)), torch.Generator())
    with pytest.raises(ValueError, match="quantile"):
        ttfs.fit_windows(m, np.zeros((2, 4)), quantile=0.0)
    with pytest.raises(ValueError, match="scale"):
        proto.preset("huge")


def test_malformed_inputs_of_issue_23_raise_clear_errors():
    arch = ttfs.Architecture((1, 2, 2), dense=(5, 5), n_classes=3)
    with pytest.raises(ValueError, match="one value per hidden layer"):
        ttfs.B1Net(arch, x_max=[1.0, 2.0, 3.0])  # was accepted: latency 1 + 3 windows
    with pytest.raises(ValueError, match="one value per hidden layer"):
        ttfs.B1Net(arch, x_max=[1.0])
    with pytest.raises(ValueError, match="positive and finite"):
        ttfs.B1Net(arch, x_max=[1.0, float("nan")])
    net = ttfs.B1Net(arch, x_max=2.0).eval()
    for bad in (float("nan"), 2.0, -0.1):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            net(torch.full((2, 4), bad, dtype=torch.float64))
    with pytest.raises(TypeError, match="float64"):
        net(torch.full((2, 4), 0.5, dtype=torch.float32))
    with pytest.raises(ValueError, match="at least one image"):
        net(torch.zeros((0, 4), dtype=torch.float64))
    snn = net.to_snn()
    with pytest.raises(ValueError, match="at least one image"):
        b1.closed_form(snn, np.zeros((0, 4)))
    with pytest.raises(ValueError, match="at least one image"):
        b1.simulate(snn, np.zeros((0, 4)))
    J, th, w, a = [np.full((5, 4), 0.1), np.full((5, 5), 0.1)], [np.ones(5)] * 2, np.ones((3, 5)), np.zeros(3)
    ok = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0))
    a1 = b1.Alpha1Net(J, th, w, a, ok)
    for wins in (((0.0, 1.0), (2.0, 1.0), (2.0, 3.0)), ((0.0, 1.0), (1.0, float("nan")), (2.0, 3.0))):
        with pytest.raises(ValueError, match="t_min < t_max"):
            b1.Alpha1Net(J, th, w, a, wins)
    with pytest.raises(ValueError, match="before window"):
        b1.Alpha1Net(J, th, w, a, ((0.0, 1.0), (0.5, 2.0), (2.0, 3.0)))
    with pytest.raises(TypeError, match="float64"):
        a1(torch.full((2, 4), 0.5, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        a1(torch.full((2, 4), float("nan"), dtype=torch.float64))


@pytest.mark.parametrize("scale", ["ci", "book", "paper"])
def test_presets(scale):
    p = proto.preset(scale)
    assert 16 in p.gain_depths and p.gain_seeds >= 5
    assert 0 <= p.hw_pair < len(p.pairs)
    assert p.sparsity_lambdas[0] == 0.0
    assert p.pairs[0].arch.conv == () and p.alpha1_lrs[0] == p.pairs[0].lr
    # the sparsity claim is judged on a VGG-like net of at least 8 weight layers (convolutions,
    # hidden dense layers and the readout)
    weight_layers = len([c for c in p.sparsity.arch.conv if c != "P"]) + len(p.sparsity.arch.dense) + 1
    assert p.sparsity.arch.conv and weight_layers >= 8
    if scale != "ci":
        assert any(pair.arch.conv for pair in p.pairs)  # the CNN claim is measured
        assert p.sparsity in p.pairs  # its unpenalised SNN is the pair's (trained once)
    if scale == "paper":
        assert any(pair.name == "VGG16" and len([c for c in pair.arch.conv if c != "P"]) == 13
                   for pair in p.pairs)


def test_extra_pairs_report_missing_data_without_a_stand_in(monkeypatch):
    from dataclasses import replace

    from lib import data

    def missing(name):
        raise data.DataUnavailable(f"{name} is not on this machine")

    monkeypatch.setattr(data, "load", missing)
    P = replace(proto.preset("ci"), extra=(("cifar-10", proto.preset("paper").extra[1][1]),))
    rows = proto.extra_pairs(P, seed=3)
    assert rows == [dict(dataset="cifar-10", net="VGG15", data="not available: cifar-10 is not on this machine")]


def test_hardware_rows_and_latency_fall_with_the_window_quantile():
    from dataclasses import replace

    from lib import data
    ds = data.load("digits")
    P = replace(proto.preset("ci"), hw_sigmas=(0.0, 0.05), hw_time_bits=(2,), hw_weight_bits=(2,),
                hw_quantiles=(1.0, 0.8), hw_n_finetune=200, hw_n_eval=100, hw_trials=2)
    arch = proto.with_shape(ttfs.Architecture((1, 8, 8), dense=(16,)), ds)
    torch.manual_seed(5)
    snn = ttfs.B1Net.from_relu(ttfs.he_init(ttfs.ReLUNet(arch), 5))
    hw = proto.hardware(P, snn, ds, seed=5)
    assert [(r["effect"], r["level"]) for r in hw.rows] == [
        ("noise", 0.05), ("time bits", 2), ("weight bits", 2), ("latency", 1.0), ("latency", 0.8)]
    lat = [r["latency"] for r in hw.effect("latency")]
    assert lat[1] < lat[0]
    assert all(0.0 <= r[k] <= 1.0 for r in hw.rows for k in ("before", "after", "control"))
    assert hw.worst_gain == min(r["after"] - r["before"] for r in hw.rows)
    assert snn.sigma == 0.0 and snn.time_bits is None  # the base network is left as it was


# ------------------------------------------------------------------------------------------------
# The depth experiment
# ------------------------------------------------------------------------------------------------


def test_naive_alpha1_with_other_inputs_and_a_readout_keeps_the_old_draws():
    x = np.random.default_rng(0).random((20, 12))
    old = ttfs.naive_alpha1(12, 3, "zero-mean", x, torch.Generator().manual_seed(4))
    same = ttfs.naive_alpha1(12, 3, "zero-mean", x, torch.Generator().manual_seed(4), n_in=12)
    assert all(torch.equal(a, b) for a, b in zip(old.J, same.J, strict=True))
    assert float(old.w_out.detach().abs().max()) == 0.0
    xi = np.random.default_rng(1).random((20, 30))
    net = ttfs.naive_alpha1(12, 3, "positive-mean", xi, torch.Generator().manual_seed(4), n_in=30,
                            readout_gain=2.0)
    assert tuple(net.J[0].shape) == (12, 30) and tuple(net.J[1].shape) == (12, 12)
    assert float(net.J[0].detach().min()) >= 0.0 and float(net.J[0].detach().max()) <= 2 / np.sqrt(30)
    assert 0.0 < float(net.w_out.detach().abs().max())
    with torch.no_grad():
        assert net(torch.from_numpy(xi)).shape == (20, 10)
    with pytest.raises(ValueError, match="x must be"):
        ttfs.naive_alpha1(12, 3, "zero-mean", x, torch.Generator(), n_in=30)
    with pytest.raises(ValueError, match="readout_gain"):
        ttfs.naive_alpha1(12, 3, "zero-mean", x, torch.Generator(), readout_gain=-1.0)


def test_layer_gradient_norms_match_autograd_and_b1_equals_relu():
    arch = ttfs.Architecture((1, 1, 10), dense=(8, 8, 8), n_classes=3)
    relu = ttfs.he_init(ttfs.ReLUNet(arch), 2)
    b1net = ttfs.B1Net.from_relu(relu)
    rng = np.random.default_rng(2)
    x, y = rng.random((16, 10)), rng.integers(0, 3, 16)
    g = ttfs.layer_gradient_norms(relu, x, y)
    loss = F.cross_entropy(relu(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    ref = [float(b[0].weight.grad.norm()) for b in relu.blocks]
    np.testing.assert_allclose(g, ref, rtol=1e-12)
    np.testing.assert_allclose(ttfs.layer_gradient_norms(b1net, x, y), g, rtol=1e-9)
    assert len(ttfs.hidden_weights(b1net)) == 3
    with pytest.raises(ValueError, match="as many labels"):
        ttfs.layer_gradient_norms(relu, x, y[:3])
    with pytest.raises(TypeError, match="hidden_weights expects"):
        ttfs.hidden_weights(torch.nn.Linear(2, 2))


def test_depth_training_b1_follows_relu_epoch_by_epoch():
    from lib import data
    ds = data.load("digits")
    P = replace(proto.preset("ci"), depth=proto.Depth(6, 16, 0.01, 2, 32, 300, n_eval=100, n_probe=16))
    runs = proto.depth_training(P, ds, seed=3)
    assert tuple(runs) == proto.DEPTH_MODELS
    relu, b1d = runs["ReLU"], runs["B1 identity"]
    np.testing.assert_array_equal(relu.accuracy, b1d.accuracy)
    np.testing.assert_allclose(b1d.gain, relu.gain, rtol=1e-9)
    assert relu.grad_norms.shape == (3, 6) and np.isnan(relu.loss[0])
    for r in runs.values():  # every network measured before training and after each epoch
        assert r.accuracy.shape == r.gain.shape == r.loss.shape == (3,)
    with pytest.raises(ValueError, match="no depth experiment"):
        proto.depth_training(proto.preset("ci"), ds, seed=0)


# ------------------------------------------------------------------------------------------------
# Spikes per neuron of the deep network under activity and weight penalties
# ------------------------------------------------------------------------------------------------


def test_sparsity_sweep_counts_every_neuron_reuses_the_pair_and_penalties_lower_activity():
    from lib import data
    ds = data.load("digits")
    P0 = proto.preset("ci")
    pair = replace(P0.sparsity, epochs=2, n_train=300)
    P = replace(P0, sparsity=pair, sparsity_lambdas=(0.0, 3.0), sparsity_weight_decay=1e-2)
    base = proto.train_pair(pair, ds, seed=4)
    pts = proto.sparsity_sweep(P, ds, seed=4, base=base)
    assert [(p.lam, p.weight_decay) for p in pts] == [(0.0, 0.0), (3.0, 0.0), (0.0, 1e-2)]
    # the lambda = 0 point is the pair's SNN, and the same training repeated gives it again
    assert pts[0].accuracy == float(base.test_accuracy[1][-1])
    again = proto.sparsity_sweep(replace(P, sparsity_lambdas=(0.0,), sparsity_weight_decay=0.0), ds, seed=4)
    assert again[0].accuracy == pts[0].accuracy
    np.testing.assert_array_equal(again[0].spikes_per_layer, pts[0].spikes_per_layer)
    # every hidden neuron counted: a conv layer's neurons are channels x positions
    assert pts[0].layer_sizes.tolist() == [256, 256, 128, 128, 64, 16, 16]
    for p in pts:
        expect = (p.spikes_per_layer * p.layer_sizes).sum() / p.layer_sizes.sum()
        assert p.spikes_per_neuron == pytest.approx(expect, rel=1e-12)
        assert 0.0 <= p.spikes_per_neuron <= 1.0
    assert pts[1].spikes_per_neuron < pts[0].spikes_per_neuron  # the activity penalty bites
    # the L2 run is shown but never the grid's answer
    low = [replace(pts[2], spikes_per_neuron=0.0, accuracy=1.0)]
    assert proto.sparsest_within(low) is None
    assert proto.sparsest_within(pts[:1], spikes=1.01) is pts[0]
    with pytest.raises(ValueError, match="not as the sparsity pair"):
        proto.sparsity_sweep(P, ds, seed=4, base=replace(base, pair=replace(pair, lr=1.0)))
