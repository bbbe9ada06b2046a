"""Unit tests of lib/gateon.py (and the presets of lib/protocols/gateon.py).

Sizes and seeds differ from the chapter's: permuted scikit-learn digits (64 pixels), tiny
networks, seeds 3 to 11.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from lib import gateon as g
from lib.protocols import gateon as proto


@pytest.fixture(scope="module")
def digits_stream():
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return g.task_stream(x[:1400], y[:1400], x[1400:], y[1400:], n_tasks=3, seed=7,
                         n_train=1000, n_val=200, n_test=300)


def tiny_learner(meth, seed=5, hidden=(12, 10)):
    torch.manual_seed(seed)
    return g.Learner(8, 3, hidden, meth, lr=1e-2)


def tiny_batch(seed=4, n=16):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 8, generator=gen), torch.randint(3, (n,), generator=gen)


# ---------------------------------------------------------------------------- network and gates


def test_retanh_is_zero_below_zero_and_tanh_squared_above():
    x = torch.linspace(-2, 2, 41)
    r = g.retanh(x)
    assert torch.all(r[x <= 0] == 0)
    assert torch.allclose(r[x > 0], torch.tanh(x[x > 0]) ** 2)


def test_about_half_of_the_units_of_a_new_context_are_gated_off():
    torch.manual_seed(3)
    net = g.GateMLP(20, (400, 400), 4)
    off = [float((gate == 0).float().mean()) for c in range(5) for gate in net.gates(c)]
    assert 0.4 < np.mean(off) < 0.6
    gates = net.gates(0)[0].detach()
    assert float(gates.max()) < math.tanh(1 / math.sqrt(g.N_CONTEXTS)) ** 2 + 1e-7


def test_without_gating_every_gate_is_one_and_the_projection_is_not_trained():
    torch.manual_seed(3)
    net = g.GateMLP(6, (5,), 2, gating=False)
    assert all(torch.all(gt == 1) for gt in net.gates(7))
    assert not any(p.requires_grad for p in net.ctx.parameters())
    assert len(net.context_parameters(3)) == 1 and len(net.shared_parameters()) == 4


def test_hidden_outputs_have_unit_norm_and_keep_their_gradient():
    torch.manual_seed(4)
    net = g.GateMLP(8, (9, 7), 3)
    x, y = tiny_batch()
    g.loss_fn(net(x, 2, keep=True), y).backward()
    for h in net.hidden_out:
        norms = h.norm(dim=1)
        assert torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=1e-5)
        assert h.grad is not None and h.grad.shape == h.shape


def test_hidden_biases_are_dead_parameters_under_batch_norm():
    # issue 24: batch normalisation (no affine, batch statistics) subtracts each unit's batch
    # mean, which removes b * g: the output ignores the hidden biases and their gradient
    # vanishes up to rounding (kept as in the original; the chapter's theory page says so)
    torch.manual_seed(11)
    net = g.GateMLP(8, (9, 7), 3)
    x, y = tiny_batch(n=32)
    out = net(x, 1)
    g.loss_fn(out, y).backward()
    for layer in net.layers:
        assert float(layer.bias.grad.abs().max()) < 1e-6 * float(layer.weight.grad.abs().max())
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.add_(torch.randn(layer.bias.shape))
    assert torch.allclose(net(x, 1), out, atol=1e-5)


def test_restoring_the_availabilities_with_the_checkpoint_changes_only_them(digits_stream):
    # the original restores the availabilities with the best checkpoint; the book keeps the
    # value of the last step; both runs select the same parameters on task 1
    # (task 3's best checkpoint here is not its last step)
    kw = dict(hidden=(16,), steps=60, batch_size=32, lr=3e-3, seed=2, eval_every=10,
              eval_batch=100)
    a = g.train_sequence(digits_stream, g.method("gateon"), **kw)
    b = g.train_sequence(digits_stream, g.method("gateon"), restore_availability=True, **kw)
    assert a.acc[0, 0] == b.acc[0, 0]
    assert all(np.all((0 <= x) & (x <= 1)) for t in b.availability for x in t)
    assert any(not np.array_equal(x, y) for t in range(3)
               for x, y in zip(a.availability[t], b.availability[t], strict=True))


def test_softmax_ce_has_smaller_gradients_than_ce():
    torch.manual_seed(5)
    logits = (5 * torch.randn(32, 10)).requires_grad_()
    y = torch.randint(10, (32,))
    (ga,) = torch.autograd.grad(g.loss_fn(logits, y, "ce"), logits)
    (gb,) = torch.autograd.grad(g.loss_fn(logits, y, "softmax-ce"), logits)
    assert gb.norm() < ga.norm()


# ---------------------------------------------------------------------------- relevance, availability


def test_relevance_is_the_squared_gradient_times_activity_over_its_layer_mean():
    gen = torch.Generator().manual_seed(6)
    h, grad = torch.rand(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    raw = ((grad * h) ** 2).mean(0)
    r = g.relevance(h, grad)
    assert torch.allclose(r, raw / raw.mean())
    assert math.isclose(float(r.mean()), 1.0, rel_tol=1e-6)


def test_relevance_of_a_layer_without_gradient_is_zero_not_nan():
    r = g.relevance(torch.rand(3, 4), torch.zeros(3, 4))
    assert torch.all(r == 0)


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.floats(0, 1), min_size=1, max_size=8),
       rel=st.floats(0, 50), eps=st.floats(0, 3), eta=st.floats(1e-4, 1))
def test_availability_stays_in_the_unit_interval(a, rel, eps, eta):
    at = torch.tensor(a, dtype=torch.float64)
    new = g.update_availability(at, torch.full_like(at, rel), eta, eps)
    assert torch.all((new >= 0) & (new <= 1))


def test_the_unclipped_availability_rule_leaves_the_unit_interval():
    # the control of availability-in-unit-interval: the relevances of a real step, the rule
    # without its clip, leave [0, 1] (re-activation above 1, a large relevance below 0)
    lrn = tiny_learner(g.method("gateon", epsilon=1.0))
    out = lrn.model(*tiny_batch()[:1], 0, keep=True)
    g.loss_fn(out, tiny_batch()[1]).backward()
    h = lrn.model.hidden_out[0]
    rel = g.relevance(h, h.grad)
    assert rel.min() < 1 < rel.max()
    a = torch.ones_like(rel)
    unclipped = a - 0.01 * a * (rel - 1.0)
    assert unclipped.max() > 1
    big = torch.full_like(rel, 0.5) - 1.0 * 0.5 * (rel * 200 - 1.0)
    assert big.min() < 0
    clipped = g.update_availability(a, rel, 0.01, 1.0)
    assert torch.all((clipped >= 0) & (clipped <= 1))


def test_availability_follows_its_closed_form_under_constant_relevance():
    for rel, eps in [(1.0, 0.0), (2.5, 0.5), (0.3, 1.0)]:
        a = torch.tensor([0.7], dtype=torch.float64)
        trace = []
        for _ in range(300):
            a = g.update_availability(a, torch.tensor([rel], dtype=torch.float64), 0.01, eps)
            trace.append(float(a))
        closed = g.availability_after(np.arange(1, 301), rel, 0.01, eps, a0=0.7)
        assert np.allclose(trace, closed, rtol=1e-10)


def test_time_to_fall_below_a_thousandth_without_reactivation():
    # (1 - 0.01)^t = 1e-3  =>  t = ln(1e-3) / ln(0.99) = 687.3 steps at relevance 1
    assert g.availability_after(687, 1.0) > 1e-3 > g.availability_after(688, 1.0)


def test_a_unit_at_zero_never_recovers_but_a_small_one_does():
    zero = g.update_availability(torch.zeros(1), torch.zeros(1), 0.5, 1.0)
    assert float(zero) == 0.0
    a = torch.full((1,), 1e-6)
    for _ in range(200):
        a = g.update_availability(a, torch.zeros(1), 0.5, 1.0)
    assert float(a) == 1.0


# ---------------------------------------------------------------------------- obstruction


def test_update_masking_freezes_unavailable_units_and_scales_the_rest():
    meth = g.method("availability", mask="update")
    ref, lrn = tiny_learner(g.method("finetune")), tiny_learner(meth)
    a = torch.ones(12)
    a[:4], a[4:8] = 0.0, 0.5
    lrn.a_frozen[0] = a
    lrn.start_task(0)
    ref.start_task(0)
    w0 = lrn.model.layers[0].weight.detach().clone()
    x, y = tiny_batch()
    ref.step(x, y)
    lrn.step(x, y)
    dw = lrn.model.layers[0].weight.detach() - w0
    dref = ref.model.layers[0].weight.detach() - w0
    assert torch.all(dw[:4] == 0)
    assert torch.allclose(dw[4:8], 0.5 * dref[4:8], atol=1e-7)
    assert torch.allclose(dw[8:], dref[8:], atol=1e-7)
    assert lrn.max_obstructed_update == 0.0 and lrn.n_obstructed == 4


def test_gradient_masking_is_nearly_inert_under_adam():
    lrn = tiny_learner(g.method("availability", mask="gradient"))
    ref = tiny_learner(g.method("finetune"))
    lrn.a_frozen[0] = torch.full((12,), 1e-2)
    lrn.start_task(0)
    ref.start_task(0)
    w0 = lrn.model.layers[0].weight.detach().clone()
    for s in range(3):
        x, y = tiny_batch(seed=s)
        ref.step(x, y)
        lrn.step(x, y)
    dw = lrn.model.layers[0].weight.detach() - w0
    dref = ref.model.layers[0].weight.detach() - w0
    assert float(dw.norm() / dref.norm()) > 0.9  # a mask of 1e-2 on the gradient: ~no effect


def test_adam_cancels_a_constant_factor_on_the_gradient():
    gen = torch.Generator().manual_seed(8)
    grads = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    full, scaled = g.adam_update(grads), g.adam_update(1e-3 * grads)
    assert torch.allclose(full, scaled, rtol=1e-3)
    tiny = g.adam_update(1e-9 * grads)  # below Adam's eps the factor is felt
    assert float(tiny.norm()) < 0.2 * float(full.norm())


def test_penalty_gradient_matches_autograd_of_the_quadratic():
    torch.manual_seed(9)
    p = torch.randn(6, requires_grad=True)
    anchor, w = torch.randn(6), torch.rand(6)
    pen = g._Penalty([p])
    with torch.no_grad():
        p_now = p.detach().clone()
        p.copy_(anchor)
    pen.add([p], [w])
    with torch.no_grad():
        p.copy_(p_now)
    (auto,) = torch.autograd.grad(0.7 * (w * (p - anchor) ** 2).sum(), p)
    p.grad = torch.zeros(6)
    pen.add_grad([p], 0.7)
    assert torch.allclose(p.grad, auto, atol=1e-6)


# ---------------------------------------------------------------------------- tasks and the loop


def test_permutations_are_seeded_permutations():
    a, b = g.permutations(4, 30, 11), g.permutations(4, 30, 11)
    assert np.array_equal(a, b)
    assert all(np.array_equal(np.sort(r), np.arange(30)) for r in a)
    assert not np.array_equal(a[0], a[1])
    assert np.array_equal(g.permutations(2, 30, 11), a[:2])
    assert not np.array_equal(g.permutations(1, 30, 12)[0], a[0])


def test_task_stream_splits_train_and_validation_disjointly(digits_stream):
    s = digits_stream
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (1000, 200, 300)
    assert s.n_tasks == 3 and s.dim == 64
    tr = {r.tobytes() for r in s.x_train.numpy()}
    dup = sum(r.tobytes() in tr for r in s.x_val.numpy())
    assert dup < 10  # digits has a few identical images; the split itself is disjoint


def test_train_sequence_is_deterministic_and_shaped(digits_stream):
    kw = dict(hidden=(32, 32), steps=60, batch_size=32, lr=3e-3, seed=3, eval_every=10,
              eval_batch=100)
    r1 = g.train_sequence(digits_stream, g.method("gateon", epsilon=0.5), **kw)
    r2 = g.train_sequence(digits_stream, g.method("gateon", epsilon=0.5), **kw)
    assert np.array_equal(r1.acc, r2.acc, equal_nan=True)
    assert r1.acc.shape == (3, 3) and np.all(np.isnan(r1.acc[np.triu_indices(3, 1)]))
    assert np.all((r1.just_learned > 0.3) & (r1.just_learned <= 1))  # chance: 0.1
    lo, hi = r1.availability_range
    assert 0 <= lo <= hi <= 1 and lo < 1
    assert len(r1.availability) == 3 and r1.availability[0][0].shape == (32,)
    assert r1.mean_seen.shape == (3,) and math.isclose(r1.mean_seen[-1], r1.final_mean)


def test_gateon_protects_the_first_digits_task_better_than_finetuning(digits_stream):
    kw = dict(hidden=(48, 48), steps=150, batch_size=64, lr=3e-3, seed=4, eval_every=25,
              eval_batch=150)
    ft = g.train_sequence(digits_stream, g.method("finetune"), **kw)
    go = g.train_sequence(digits_stream, g.method("gateon", epsilon=0.0), **kw)
    assert go.final[0] > ft.final[0]


def test_ewc_and_si_run_and_record_no_availability(digits_stream):
    kw = dict(hidden=(16,), steps=20, batch_size=32, lr=3e-3, seed=10, eval_every=10,
              eval_batch=100)
    for name in ("ewc", "si"):
        r = g.train_sequence(digits_stream, g.method(name), **kw)
        assert not r.availability and math.isnan(r.availability_range[0])
        assert np.all(np.isfinite(r.final))


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda: g.method("replay"), "unknown method"),
    (lambda: g.method("gateon", mask="weights"), "unknown mask"),
    (lambda: g.Method("x", epsilon=-0.1), "epsilon must be >= 0"),
    (lambda: g.Method("x", epsilon=float("nan")), "epsilon must be a finite number"),
    (lambda: g.Method("x", eta_a=0.0), "eta_a must be > 0"),
    (lambda: g.Method("x", ewc_lambda=1.0, si_c=1.0), "choose EWC or SI"),
    (lambda: g.GateMLP(4, (), 2), "at least one hidden layer"),
    (lambda: g.GateMLP(4, (3,), 2).gates(200), "context must be an int"),
    (lambda: g.GateMLP(4, (3,), 2)(torch.zeros(5, 3)), "shape"),
    (lambda: g.GateMLP(4, (3,), 2)(torch.zeros(1, 4)), "at least 2 samples"),
    (lambda: g.loss_fn(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), "mse"),
     "unknown loss"),
    (lambda: g.update_availability(torch.ones(3), torch.ones(2)), "same shape"),
    (lambda: g.availability_after(-1, 1.0), "steps must be"),
    (lambda: g.relevance(torch.ones(2, 3), torch.ones(3, 2)), "same shape"),
    (lambda: g.permutations(0, 10, 1), "n_tasks must be"),
    (lambda: g.task_stream(np.zeros((10, 4)), np.zeros(10), np.zeros((5, 4)), np.zeros(5), 2,
                           0, 8, 4, 3), "exceeds"),
    (lambda: g.task_stream(np.full((10, 4), np.nan), np.zeros(10), np.zeros((5, 4)),
                           np.zeros(5), 2, 0, 4, 4, 3), "finite"),
    (lambda: g.train_sequence(None, g.method("finetune"), (4,), 1, 2, 1e-3, 0), "TaskStream"),
    # issue 24: inputs that let NaN through silently or ended in a raw torch error
    (lambda: g.GateMLP(4, (3,), 2)(torch.full((3, 4), float("nan"))), "x must be finite"),
    (lambda: g.GateMLP(4, (3,), 2)(torch.zeros(3, 4, dtype=torch.long)), "floating-point"),
    (lambda: g.retanh([1.0]), "floating-point torch tensor"),
    (lambda: g.loss_fn(torch.full((2, 2), float("nan")), torch.zeros(2, dtype=torch.long)),
     "logits must be finite"),
    (lambda: g.loss_fn(torch.zeros(2, 2), torch.tensor([0, 5])), r"labels must lie in \[0, 2\)"),
    (lambda: g.loss_fn(torch.zeros(2, 2), torch.tensor([0.0, 1.0])), "integer torch tensor"),
    (lambda: g.relevance(torch.full((2, 3), float("nan")), torch.ones(2, 3)), "h must be finite"),
    (lambda: g.update_availability(torch.ones(3), torch.full((3,), float("nan"))),
     "rel must be finite"),
    (lambda: g.update_availability(torch.full((3,), float("nan")), torch.ones(3)),
     "a must be finite"),
    (lambda: g.update_availability(torch.full((3,), 2.0), torch.ones(3)), r"lie in \[0, 1\]"),
    (lambda: g.update_availability(torch.ones(3), -torch.ones(3)), "rel must be >= 0"),
    (lambda: g.update_availability([1.0], [1.0]), "floating-point torch tensor"),
    (lambda: g.task_stream(np.zeros((10, 4)), np.full(10, np.nan), np.zeros((5, 4)),
                           np.zeros(5), 2, 0, 4, 4, 3), "class indices"),
    (lambda: g.task_stream(np.zeros((10, 4)), np.full(10, 0.5), np.zeros((5, 4)),
                           np.zeros(5), 2, 0, 4, 4, 3), "class indices"),
    (lambda: g.task_stream(np.zeros((10, 4)), -np.ones(10), np.zeros((5, 4)),
                           np.zeros(5), 2, 0, 4, 4, 3), "class indices"),
    (lambda: g.task_stream(np.zeros((10, 4)), np.zeros((10, 1)), np.zeros((5, 4)),
                           np.zeros(5), 2, 0, 4, 4, 3), "1-d"),
    (lambda: g.task_stream(np.full((10, 4), "a"), np.zeros(10), np.zeros((5, 4)),
                           np.zeros(5), 2, 0, 4, 4, 3), "real numbers"),
    (lambda: g.accuracy(g.GateMLP(4, (3,), 2), torch.zeros(6, 4),
                        torch.zeros(3, dtype=torch.long), torch.arange(4), 0), "6 labels"),
    (lambda: tiny_learner(g.method("gateon")).step(torch.zeros(6, 8),
                                                   torch.full((6,), 7)), "labels must lie"),
    (lambda: tiny_learner(g.method("gateon")).step(torch.full((6, 8), float("nan")),
                                                   torch.zeros(6, dtype=torch.long)),
     "x must be finite"),
    (lambda: tiny_learner(g.method("finetune")).step(torch.full((6, 8), float("inf")),
                                                     torch.zeros(6, dtype=torch.long)),
     "x must be finite"),
    (lambda: tiny_learner(g.method("gateon")).step(torch.zeros(6, 7),
                                                   torch.zeros(6, dtype=torch.long)), "shape"),
    (lambda: tiny_learner(g.method("gateon")).step(torch.zeros(1, 8),
                                                   torch.zeros(1, dtype=torch.long)), "batch >= 2"),
    (lambda: tiny_learner(g.method("ewc")).end_task(
        [(torch.full((6, 8), float("nan")), torch.zeros(6, dtype=torch.long))]),
     "x must be finite"),
])
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_too_few_contexts_for_the_tasks_is_refused(digits_stream):
    with pytest.raises(ValueError, match="n_contexts"):
        g.train_sequence(digits_stream, g.method("gateon"), (8,), 2, 8, 1e-3, 0, n_contexts=2)


def test_ewc_needs_fisher_batches():
    lrn = tiny_learner(g.method("ewc"))
    with pytest.raises(ValueError, match="fisher_batches"):
        lrn.end_task(())


# ---------------------------------------------------------------------------- presets


def test_presets_differ_by_scale_and_refuse_unknown_scales():
    ci, book, paper = (proto.preset(s) for s in ("ci", "book", "paper"))
    assert ci.n_tasks < book.n_tasks == 10 < paper.n_tasks == 100
    assert paper.hidden == (5000,) * 4 and paper.dataset == "mnist"
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        proto.preset("huge")


def test_the_gradient_masked_control_differs_only_in_its_mask():
    P = proto.preset("ci")
    a, b = proto.method_of("gateon", P), proto.method_of("gateon-gradmask", P)
    assert (a.mask, b.mask) == ("update", "gradient") and b.name == "gateon-gradmask"
    assert (a.gating, a.obstruct, a.epsilon) == (b.gating, b.obstruct, b.epsilon)


def test_claims_and_their_controls_on_digits(digits_stream):
    # the chapter's claim values on a tiny stream (below 10 tasks: the ci claims): the frozen
    # network's mean is below fine-tuning's, the gradient-masked control moves frozen units
    P = proto.Preset(dataset="digits", n_tasks=3, hidden=(32, 32), steps=120, batch_size=64,
                     lr=3e-3, n_train=1000, n_val=200, n_test=300, eval_every=30,
                     eval_batch=150)
    R = {m: proto.run(P, digits_stream, m, 3) for m in ("finetune", "gating", "gateon")}
    C = proto.run_controls(P, digits_stream, 3)
    assert C.eps0_other is None and C.frozen.shape == (3,)
    vals = {cid: (x, c) for cid, x, _, c, _ in proto.claim_values(P, digits_stream, R, C)}
    assert set(vals) == {"mean-above-finetune", "availability-in-unit-interval",
                         "unavailable-units-frozen"}
    x, c = vals["mean-above-finetune"]
    assert c < 0  # a network that stops learning after task 1
    x, c = vals["unavailable-units-frozen"]
    if not math.isnan(c):
        assert c > 0.1


def test_a_network_frozen_after_task_one_learns_only_task_one(digits_stream):
    P = proto.Preset(dataset="digits", n_tasks=3, hidden=(32,), steps=100, batch_size=64,
                     lr=3e-3, n_train=1000, n_val=200, n_test=300, eval_every=50,
                     eval_batch=150)
    acc = proto.frozen_after_first(P, digits_stream, 5)
    assert acc.shape == (3,) and acc[0] > 0.6 and acc[1:].max() < acc[0] - 0.2


def test_the_epsilon_zero_variant_differs_only_in_epsilon():
    P = proto.preset("book")
    a, b = proto.method_of("gateon", P), proto.method_of("gateon-eps0", P)
    assert a.epsilon == P.epsilon > 0 and b.epsilon == 0
    assert (a.gating, a.obstruct, a.mask) == (b.gating, b.obstruct, b.mask)


def test_the_gated_baselines_get_the_same_gates_as_gateon():
    # issue 24: EWC and SI on equal information (the task id through the same gates)
    P = proto.preset("book")
    assert {"gating", "gateon", "gateon-eps0", "ewc-gated", "si-gated"} <= set(P.methods)
    e, s, go = (proto.method_of(n, P) for n in ("ewc-gated", "si-gated", "gateon"))
    assert e.gating and s.gating and go.gating and not (e.obstruct or s.obstruct)
    assert (e.ewc_lambda, e.si_c) == (P.ewc_gated_lambda, 0.0)
    assert (s.si_c, s.ewc_lambda) == (P.si_gated_c, 0.0)
    ungated = proto.method_of("ewc", P)
    assert not ungated.gating and ungated.ewc_lambda == P.ewc_lambda


def test_a_gated_baseline_trains_its_gate_column_and_penalises_only_shared_weights():
    lrn = tiny_learner(g.method("ewc-gated", ewc_lambda=5.0))
    x, y = tiny_batch()
    col = [c.detach().clone() for c in lrn.model.context_parameters(0)]
    lrn.step(x, y)
    assert any(not torch.equal(a, b) for a, b in zip(col, lrn.model.context_parameters(0), strict=True))
    lrn.end_task([tiny_batch(seed=s) for s in range(3)])
    assert len(lrn.ewc.w) == len(lrn.model.shared_parameters())


def test_many_task_run_gives_three_runs_on_the_same_tasks_and_its_claim():
    from dataclasses import replace

    from lib.protocols import gateon as proto

    P = replace(proto.preset("ci"), eval_every=5,
                many=proto.Many(n_tasks=3, hidden=(8, 8), steps=5, n_train=300, n_eval=100))
    m = proto.many_tasks(P, 7919)
    assert set(m.results) == {"gateon", "gateon-eps0", "eps0-other"}
    assert all(r.acc.shape == (3, 3) for r in m.results.values())
    assert m.late == slice(2, 3)
    x, detail, c, c_detail = proto.many_claim(m)
    go, go0, oth = (m.results[k].just_learned[2] for k in ("gateon", "gateon-eps0", "eps0-other"))
    assert x == pytest.approx(go - go0) and c == pytest.approx(oth - go0)
    assert "tasks 3-3 of 3" in detail
    proto.plot_many_tasks(m)
    with pytest.raises(ValueError, match="no many-task run"):
        proto.many_tasks(proto.preset("ci"), 0)
