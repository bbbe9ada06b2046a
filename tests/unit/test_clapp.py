"""Unit tests of lib/clapp.py (CLAPP) and of the chapter's presets, on sizes the chapter does not use."""

import numpy as np
import pytest
import torch

from lib import clapp, torchkit
from lib.protocols import clapp as proto

torch.set_num_threads(1)


def _module_case(seed, spec=(4, "M"), batch=4, grid=4, size=4, K=1, c_in=2):
    with torchkit.float64():
        gen = torchkit.seed_all(seed)
        block = clapp.Block(c_in, spec)
        C = block.out_channels
        x = torch.randn(batch * grid * grid, c_in, size, size, generator=gen)
        Wp = torch.randn(K, C, C, generator=gen, requires_grad=True)
        Wr = torch.randn(K, C, C, generator=gen, requires_grad=True)
        draws = (clapp.draw_clapp(batch, gen, K=K), clapp.draw_clapp(batch, gen, K=K))
    return block, x, Wp, Wr, draws, grid


# ---------------------------------------------------------------------------- patches, encoder


def test_patchify_cuts_the_expected_patches():
    img = torch.arange(2 * 12 * 12, dtype=torch.float32).reshape(2, 1, 12, 12)
    p = clapp.patchify(img, patch=6, stride=3)
    G = clapp.grid_size(12, 6, 3)
    assert G == 3 and p.shape == (2 * 9, 1, 6, 6)
    # patch (b=1, r=2, g=1) is rows 6..11, columns 3..8 of image 1
    assert torch.equal(p[1 * 9 + 2 * 3 + 1, 0], img[1, 0, 6:12, 3:9])


def test_encoder_shapes_and_gradient_isolation():
    torchkit.seed_all(11)
    enc = clapp.Encoder(((3,), (5, "M")), patch=6, stride=3)
    x = torch.rand(3, 1, 12, 12)
    hs, xs = enc(x, inputs=True)
    assert [tuple(h.shape) for h in hs] == [(3, 3, 3, 3), (3, 5, 3, 3)]
    assert xs[1].shape == (27, 3, 6, 6) and not xs[1].requires_grad  # detached input
    hs[1].sum().backward()
    assert enc.blocks[0].convs[0].weight.grad is None  # no gradient crosses modules
    enc.zero_grad()
    enc(x, detach=False)[1].sum().backward()
    assert enc.blocks[0].convs[0].weight.grad.abs().sum() > 0  # end to end it does


# ---------------------------------------------------------------------------- losses


def test_clapp_loss_closed_form_at_zero_matrices():
    # with W = 0 every score is 0: each term contributes 1 (positives) + 1 (negatives)
    h = torch.rand(6, 3, 5, 4)
    gen = torch.Generator().manual_seed(5)
    draws = (clapp.draw_clapp(6, gen, K=2), clapp.draw_clapp(6, gen, K=2))
    Z = torch.zeros(2, 3, 3)
    loss, stats = clapp.clapp_loss(h, Z, Z, draws)
    both = [bool(d.positive.any() and (~d.positive).any()) for d in draws]
    assert float(loss) == pytest.approx(sum(2.0 if b else 1.0 for b in both))
    assert stats["u_pos"] == 0.0
    negs = clapp.draw_negatives(h.shape, 2, gen, n_negatives=3)
    assert float(clapp.clapp_s_loss(h, Z, negs)[0]) == pytest.approx(2.0)


def test_clapp_loss_is_zero_when_scores_clear_the_margin():
    # one channel, W = +10: positives score 10 c z > 1; a partner identical to the image is a
    # positive pair too, so use all-positive draws and check the hinge is inactive
    h = torch.full((4, 1, 5, 2), 1.0)
    draw = clapp.ClappDraw(torch.ones(4, dtype=torch.bool), torch.arange(4)[None])
    W = torch.full((1, 1, 1), 10.0)
    loss, stats = clapp.clapp_loss(h, W, W, (draw, draw))
    assert float(loss) == 0.0 and stats["u_pos"] == pytest.approx(10.0)
    assert np.isnan(stats["u_neg"])


def test_scores_are_the_bilinear_form():
    gen = torch.Generator().manual_seed(2)
    c, z, W = torch.randn(2, 3, 2, 2, generator=gen), torch.randn(2, 3, 2, 2, generator=gen), \
        torch.randn(3, 3, generator=gen)
    u = clapp.scores(c, W, z)
    assert float(u[1, 0, 1]) == pytest.approx(float(c[1, :, 0, 1] @ W @ z[1, :, 0, 1]), rel=1e-5)


def test_draws_follow_their_probability():
    gen = torch.Generator().manual_seed(9)
    d = clapp.draw_clapp(20_000, gen, p_positive=0.3)
    assert abs(float(d.positive.double().mean()) - 0.3) < 0.02
    assert int(d.partner.min()) >= 0 and int(d.partner.max()) < 20_000
    assert bool(clapp.draw_clapp(50, gen, 1.0).positive.all())


def test_partners_are_redrawn_per_step_and_the_choice_is_not():
    # the authors' ContrastiveLoss.forward: which_update once per forward pass, the partner of
    # sample_negative_samples_locally once per prediction step k
    d = clapp.draw_clapp(1000, torch.Generator().manual_seed(3), K=3)
    assert d.positive.shape == (1000,) and d.partner.shape == (3, 1000)
    assert float((d.partner[0] == d.partner[1]).double().mean()) < 0.01
    # the loss of step k uses partner row k: changing either row changes the loss
    gen = torch.Generator().manual_seed(4)
    h, W = torch.randn(6, 3, 6, 2, generator=gen), torch.randn(2, 3, 3, generator=gen)
    neg, r = torch.zeros(6, dtype=torch.bool), torch.arange(6)
    losses = [float(clapp.clapp_loss(h, W, W, (clapp.ClappDraw(neg, torch.stack(p)),) * 2)[0])
              for p in ((r.roll(1), r.roll(2)), (r.roll(1), r.roll(3)), (r.roll(4), r.roll(2)))]
    assert losses[0] != losses[1] and losses[0] != losses[2]
    with pytest.raises(ValueError, match="K = 2"):
        clapp.clapp_loss(h, W, W, (clapp.draw_clapp(6, gen),) * 2)


# ---------------------------------------------------------------------------- the local rule


@pytest.mark.parametrize("spec", [(4,), (4, "M")])
@pytest.mark.parametrize("seed", [101, 202])
def test_local_rule_equals_autograd(spec, seed):
    block, x, Wp, Wr, draws, grid = _module_case(seed, spec, K=2, grid=5)
    with torchkit.float64():
        z = block(x)
        C = block.out_channels
        h = z.mean((2, 3)).reshape(-1, grid, grid, C).permute(0, 3, 1, 2)
        loss, _ = clapp.clapp_loss(h, Wp, Wr, draws)
        conv = block.convs[0]
        auto = torch.autograd.grad(loss, [Wp, Wr, conv.weight, conv.bias])
        rule = clapp.local_gradients(block, x, Wp, Wr, draws, grid)
    for a, name in zip(auto, ("W_pred", "W_retro", "weight", "bias"), strict=True):
        assert float((a - rule[name]).norm() / a.norm()) < 1e-12, name


def test_protocol_gradient_check_is_exact():
    err = proto.gradient_check(seed=77, batch=3, grid=4, channels=3, size=4, K=1)
    assert max(err.values()) < 1e-12


@pytest.mark.parametrize("omit", ["partner", "pool"])
def test_a_rule_with_a_term_dropped_fails_the_gradient_check(omit):
    # the control of local-rule-equals-autograd: each dropped term is far above 1e-10 (at a
    # seed whose draw holds a negative sample: with 4 images, all-positive draws happen)
    err = proto.gradient_check(seed=79, batch=4, grid=4, channels=3, size=4, K=1, omit=omit)
    assert err["weight"] > 1e-3
    with pytest.raises(ValueError, match="omit must be"):
        proto.gradient_check(seed=78, batch=4, grid=4, channels=3, size=4, K=1, omit="retro")


def test_held_out_loss_uses_the_same_draws_for_two_networks():
    torchkit.seed_all(5)
    net = clapp.CLAPPNet("clapp-s", ((2,), (3, "M")), K=1, patch=6, stride=3)
    x = torch.rand(10, 1, 12, 12)
    a, b = proto.held_out_loss(net, x, seed=3), proto.held_out_loss(net, x, seed=3)
    assert a.shape == (2,) and np.array_equal(a, b)


def test_permute_pixels_keeps_each_image_s_pixels_and_is_seeded():
    x = torch.rand(5, 1, 4, 4)
    a, b = proto.permute_pixels(x, 7), proto.permute_pixels(x, 7)
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    for i in range(5):  # the same multiset of pixels, per image
        assert torch.equal(a[i].flatten().sort().values, x[i].flatten().sort().values)
    assert not torch.equal(proto.permute_pixels(x, 8), a)
    same = proto.permute_pixels(x[:1].repeat(2, 1, 1, 1), 7)  # one permutation per image
    assert not torch.equal(same[0], same[1])
    with pytest.raises(ValueError, match="non-empty batch"):
        proto.permute_pixels(torch.rand(0, 1, 4, 4), 0)


# ---------------------------------------------------------------------------- training, probe


def test_training_lowers_the_loss_and_is_deterministic():
    x = torch.rand(64, 1, 12, 12)
    logs = []
    for _ in range(2):
        torchkit.seed_all(3)
        net = clapp.CLAPPNet("clapp-s", ((4,), (6, "M")), K=1, patch=6, stride=3, n_negatives=4)
        logs.append(clapp.train(net, x, steps=40, batch_size=8, lr=3e-3, seed=4, progress=False))
    assert np.array_equal(logs[0].loss, logs[1].loss)
    assert logs[0].loss.shape == (40, 2)
    assert logs[0].loss[-10:].mean() < logs[0].loss[:10].mean()


def test_methods_have_their_heads_and_parameter_groups():
    torchkit.seed_all(0)
    arch = dict(layers=((3,), (4, "M")), K=1, patch=6, stride=3)
    nets = {m: clapp.CLAPPNet(m, **arch) for m in clapp.METHODS}
    assert nets["clapp"].heads == [0, 1] and len(nets["clapp"].W_retro) == 2
    assert nets["clapp-s"].heads == [0, 1] and len(nets["clapp-s"].W_retro) == 0
    # the authors' Hinge-loss CPC: the CLAPP loss (with W_retro) at the last module, end to end
    assert nets["hinge-cpc"].heads == [1] and not nets["hinge-cpc"].detach
    assert len(nets["hinge-cpc"].W_retro) == 1
    assert nets["clapp-s-e2e"].heads == [1] and not nets["clapp-s-e2e"].detach
    assert len(nets["clapp-s-e2e"].W_retro) == 0
    assert len(nets["clapp"].module_parameters()) == 2
    assert len(nets["hinge-cpc"].module_parameters()) == 1


def test_checkpoints_do_not_change_the_training():
    x = torch.rand(40, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    seen, states = [], []
    for marks in ((), (2, 5)):
        torchkit.seed_all(6)
        net = clapp.CLAPPNet("clapp", ((3,), (4, "M")), K=1, patch=6, stride=3)
        clapp.train(net, x, steps=5, batch_size=8, lr=3e-3, seed=7, progress=False,
                    checkpoints=marks, on_checkpoint=lambda n, m: seen.append(n))
        states.append(net.state_dict())
    assert seen == [2, 5]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    with pytest.raises(ValueError, match="checkpoints must lie"):
        clapp.train(net, x, steps=5, batch_size=8, lr=3e-3, seed=7, progress=False,
                    checkpoints=(6,), on_checkpoint=print)


def test_clapp_s_negatives_come_from_the_future_cells():
    # as the authors' sample_negative_samples on W_k z[:, :, k+skip:]: rows d..G-1 only
    B, C, G, K = 3, 4, 6, 2
    negs = clapp.draw_negatives((B, C, G, G), K, torch.Generator().manual_seed(0), 50)
    for k, idx in enumerate(negs):
        d = k + 2
        assert idx.shape == (B, G - d, G, 50)
        assert int(idx.max()) < B * (G - d) * G and int(idx.min()) >= 0
        assert int(idx.max()) >= B * (G - d) * G - 5  # the whole range is used
    # an index pointing at each context's own future cell makes the negative equal the positive
    h = torch.rand(B, C, G, G, generator=torch.Generator().manual_seed(1))
    W = torch.rand(1, C, C, generator=torch.Generator().manual_seed(2))
    R = G - 2
    own = (torch.arange(B)[:, None, None] * R * G + torch.arange(R)[None, :, None] * G
           + torch.arange(G)[None, None, :])[..., None]
    _, st = clapp.clapp_s_loss(h, W, [own])
    assert abs(st["u_pos"] - st["u_neg"]) < 1e-6


def test_linear_probe_separates_separable_classes():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 300)
    f = rng.normal(size=(300, 4)) + 4 * np.eye(3, 4)[y]
    r = clapp.linear_probe(f[:200], y[:200], f[200:], y[200:])
    assert r.test_accuracy > 0.95 and r.n_train == 200 and r.n_test == 100
    noise = clapp.linear_probe(rng.normal(size=(200, 4)), y[:200], rng.normal(size=(100, 4)), y[200:])
    assert noise.test_accuracy < 0.55


def test_features_average_the_grid():
    torchkit.seed_all(1)
    enc = clapp.Encoder(((3,),), patch=6, stride=3)
    x = torch.rand(5, 1, 12, 12)
    f = clapp.features(enc, x, batch_size=2)
    assert f[0].shape == (5, 3)
    with torch.no_grad():
        assert np.allclose(f[0], enc(x)[0].mean((2, 3)).numpy(), atol=1e-6)


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown method"):
        clapp.CLAPPNet("backprop")
    with pytest.raises(ValueError, match="shape \\(n, channels, height, width\\)"):
        clapp.patchify(torch.rand(28, 28))
    with pytest.raises(ValueError, match="NaN"):
        clapp.patchify(torch.full((1, 1, 12, 12), float("nan")))
    with pytest.raises(ValueError, match="larger than the image side"):
        clapp.grid_size(6, 8, 4)
    with pytest.raises(ValueError, match="probability"):
        clapp.draw_clapp(4, torch.Generator(), p_positive=1.5)
    with pytest.raises(ValueError, match="too few"):
        clapp.clapp_loss(torch.rand(4, 2, 3, 3), torch.zeros(2, 2, 2), torch.zeros(2, 2, 2),
                         (clapp.draw_clapp(4, torch.Generator(), K=2),) * 2)
    with pytest.raises(ValueError, match="must have shape"):
        clapp.clapp_loss(torch.rand(4, 2, 5, 5), torch.zeros(1, 3, 3), torch.zeros(1, 3, 3),
                         (clapp.draw_clapp(4, torch.Generator()),) * 2)
    with pytest.raises(ValueError, match="module entries"):
        clapp.Encoder(((4, "X"),))
    with pytest.raises(ValueError, match="single convolution"):
        clapp.local_gradients(clapp.Block(1, (2, 2)), torch.rand(16, 1, 4, 4),
                              torch.zeros(1, 2, 2), torch.zeros(1, 2, 2),
                              (clapp.draw_clapp(1 + 1, torch.Generator()),) * 2, 4)
    with pytest.raises(ValueError, match="lr must be"):
        clapp.train(clapp.CLAPPNet("clapp", ((2,),), K=1, patch=6, stride=3), torch.rand(4, 1, 12, 12),
                    steps=1, batch_size=2, lr=-1.0, seed=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        clapp.train(clapp.CLAPPNet("clapp", ((2,),), K=1, patch=6, stride=3), torch.rand(4, 1, 12, 12),
                    steps=1, batch_size=1, lr=1e-3, seed=0, progress=False)
    with pytest.raises(ValueError, match="fewer than two classes"):
        clapp.linear_probe(np.ones((4, 2)), np.zeros(4), np.ones((2, 2)), np.zeros(2))
    net = clapp.CLAPPNet("clapp", ((2,),), K=1, patch=6, stride=3)
    with pytest.raises(ValueError, match="at least 2 images, got 1"):  # was a silent NaN
        clapp.score_gap(net, torch.rand(1, 1, 12, 12), seed=0)
    with pytest.raises(ValueError, match="at least 1 image, got 0"):  # was numpy's concatenate
        clapp.features(net.encoder, torch.rand(0, 1, 12, 12))
    with pytest.raises(ValueError, match=r"shape \(n, channels, height, width\)"):  # IndexError
        clapp.flip(torch.rand(3, 12, 12), torch.Generator())
    with pytest.raises(ValueError, match="one shape"):  # was einsum's broadcast error
        clapp.scores(torch.rand(2, 3, 4, 4), torch.rand(3, 3), torch.rand(2, 4, 4, 4))


# ---------------------------------------------------------------------------- presets


def test_presets_and_unknown_scale():
    ci, book, paper = (proto.preset(s) for s in ("ci", "book", "paper"))
    assert ci != book and paper.dataset == "stl-10" and paper.K == 5 and paper.lr == 2e-4
    assert book.n_seeds["clapp"] == 3 and book.n_seeds["hinge-cpc"] == 3
    with pytest.raises(ValueError, match="expected one of ci, book, paper"):
        proto.preset("laptop")


def test_runs_of_different_seeds_share_no_encoder():
    # with seed + i, seed 0's run 1 was seed 1's run 0 (issue 26): every (seed, run) differs now
    P = proto.preset("ci")
    first = {}
    for seed in range(4):
        for run in range(3):
            w = proto.initial_net(P, "clapp", seed, run).encoder.blocks[0].convs[0].weight
            first[(seed, run)] = w.detach().flatten()[:8]
        ctl = proto.initial_net(P, "clapp", seed, 0, init="control-init")
        first[(seed, "control")] = ctl.encoder.blocks[0].convs[0].weight.detach().flatten()[:8]
    keys = list(first)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not torch.equal(first[a], first[b]), (a, b)
    # the same run of two methods starts from the same encoder (paired comparisons)
    a = proto.initial_net(P, "clapp", 5, 1).encoder.state_dict()
    b = proto.initial_net(P, "clapp-s", 5, 1).encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_paper_scale_without_stl10_says_what_is_missing():
    from lib import data

    with pytest.raises(data.DataUnavailable, match="STL-10"):
        proto.load_split(proto.preset("paper"), seed=0)
