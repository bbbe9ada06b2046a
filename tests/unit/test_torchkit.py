"""Unit tests of lib/torchkit.py: device, seeding, float64, the training loop and its history."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib import torchkit


def linear_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.01 * rng.normal(size=(n, 1))
    return x, y


def train_linear(seed=0, epochs=5, **kw):
    torchkit.seed_all(seed)
    with torchkit.float64():
        model = torch.nn.Linear(3, 1)
    x, y = linear_data()
    hist = torchkit.fit(model, F.mse_loss, (x, y), epochs=epochs, lr=0.05, batch_size=16, seed=seed,
                        progress=False, **kw)
    return model, hist


def test_same_seed_gives_identical_history_and_weights():
    m1, h1 = train_linear(3)
    m2, h2 = train_linear(3)
    assert h1 == h2 and len(h1) == 5
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert p1.dtype == torch.float64 and torch.equal(p1, p2)


def test_different_seeds_differ():
    m1, h1 = train_linear(1)
    m2, h2 = train_linear(2)
    assert h1 != h2
    assert not torch.equal(m1.weight, m2.weight)


def test_loss_decreases_on_a_linear_regression_and_metrics_are_recorded():
    x, y = linear_data(seed=1)
    mae = {"mae": lambda out, t: (out - t).abs().mean()}
    _, hist = train_linear(0, epochs=30, metrics=mae, eval_data=(x, y))
    loss = hist.series("loss")
    assert loss[-1] < 0.01 * loss[0]
    assert hist.series("eval_loss")[-1] < 1e-3
    assert set(hist.names) == {"loss", "mae", "lr", "eval_loss", "eval_mae"}
    assert hist.last["loss"] == loss[-1]
    with pytest.raises(KeyError, match="recorded: loss"):
        hist.series("accuracy")


def test_schedule_sgd_min_batch_and_callable_optimizer():
    _, hist = train_linear(0, epochs=2, optimizer="sgd", schedule=lambda step: 0.5 ** step)
    assert hist.series("lr")[-1] == pytest.approx(0.05 * 0.5 ** 26)  # 2 epochs x 13 steps
    calls = []

    def make(params, lr):
        calls.append(lr)
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    train_linear(0, epochs=1, optimizer=make)
    assert calls == [0.05]
    # 200 samples in batches of 16: the last batch (8) is skipped with min_batch=9
    _, h = train_linear(0, epochs=1, min_batch=9)
    assert len(h) == 1


def test_classification_with_accuracy_metric():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    torchkit.seed_all(0)
    model = torch.nn.Linear(2, 2).double()
    hist = torchkit.fit(model, F.cross_entropy, (x, y), epochs=20, lr=0.05, batch_size=32, seed=0,
                        metrics={"accuracy": torchkit.accuracy}, progress=False)
    assert hist.series("accuracy")[-1] > 0.95
    assert not model.training


@pytest.mark.parametrize("kw, match", [
    (dict(epochs=0), "epochs"),
    (dict(epochs=1.5), "epochs"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1.0), "lr"),
    (dict(batch_size=0), "batch_size"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.0), "seed"),
    (dict(optimizer="rmsprop"), "unknown optimizer"),
    (dict(metrics={"loss": lambda o, t: 0.0}), "metrics"),
    (dict(min_batch=0), "min_batch"),
    (dict(min_batch=1000), "no minibatch"),
])
def test_bad_arguments_raise_clear_value_errors(kw, match):
    x, y = linear_data(20)
    args = dict(epochs=1, lr=0.1, batch_size=4, seed=0, progress=False) | kw
    with pytest.raises(ValueError, match=match):
        torchkit.fit(torch.nn.Linear(3, 1).double(), F.mse_loss, (x, y), **args)


@pytest.mark.parametrize("data, match", [
    ((np.zeros((0, 3)), np.zeros((0, 1))), "empty"),
    ((np.zeros((5, 3)), np.zeros((4, 1))), "same length"),
    (np.zeros((5, 3)), "pair"),
    (([1, 2], [1, 2]), "tensor or a numpy array"),
])
def test_bad_data_raises(data, match):
    with pytest.raises(ValueError, match=match):
        torchkit.fit(torch.nn.Linear(3, 1).double(), F.mse_loss, data, epochs=1, lr=0.1, batch_size=2,
                     seed=0, progress=False)


def test_device_selection(monkeypatch):
    assert torchkit.device("cpu") == torch.device("cpu")
    monkeypatch.delenv(torchkit.DEVICE_ENV, raising=False)
    assert torchkit.device() == torch.device("cpu")
    monkeypatch.setenv(torchkit.DEVICE_ENV, "cpu")
    assert torchkit.device("auto") == torch.device("cpu")
    monkeypatch.setenv(torchkit.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="BOOK_DEVICE"):
        torchkit.device()
    with pytest.raises(ValueError, match="unknown device"):
        torchkit.device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu(monkeypatch):
    with pytest.raises(RuntimeError, match="no GPU"):
        torchkit.device("cuda")
    monkeypatch.setenv(torchkit.DEVICE_ENV, "cuda")
    with pytest.warns(UserWarning, match="no GPU"):
        assert torchkit.device() == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_when_present_and_asked_for(monkeypatch):
    monkeypatch.setenv(torchkit.DEVICE_ENV, "cuda")
    assert torchkit.device().type == "cuda"
    _, hist = train_linear(0, epochs=3, device="auto")
    assert hist.series("loss")[-1] < hist.series("loss")[0]


def test_seed_all_validates_and_returns_a_seeded_generator():
    g1 = torchkit.seed_all(7)
    a = torch.rand(3)
    g2 = torchkit.seed_all(7)
    assert torch.equal(a, torch.rand(3))
    assert torch.equal(torch.randperm(10, generator=g1), torch.randperm(10, generator=g2))
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="non-negative int"):
            torchkit.seed_all(bad)


def test_float64_context_restores_the_default_dtype():
    before = torch.get_default_dtype()
    with torchkit.float64():
        assert torch.get_default_dtype() == torch.float64
        assert torch.zeros(1).dtype == torch.float64
    assert torch.get_default_dtype() == before
    with pytest.raises(RuntimeError), torchkit.float64():
        raise RuntimeError("inside")
    assert torch.get_default_dtype() == before
    try:
        torchkit.set_float64(True)
        assert torch.zeros(1).dtype == torch.float64
        torchkit.set_float64(False)
        assert torch.zeros(1).dtype == torch.float32
    finally:
        torch.set_default_dtype(before)


# ----------------------------------------------------------------------------------------------
# Loop: the one training scaffold
# ----------------------------------------------------------------------------------------------


def test_loop_yields_its_steps_and_logs_a_history():
    loop = torchkit.Loop(4, seed=3, device="cpu", progress=False)
    seen = []
    for step in loop:
        seen.append(step)
        loop.log(loss=float(step) ** 2)
    assert seen == [0, 1, 2, 3]
    assert loop.history.series("loss").tolist() == [0.0, 1.0, 4.0, 9.0]
    assert loop.stopped is None and loop.device == torch.device("cpu")


def test_loop_generator_is_the_seeds_stream():
    from lib import seeds

    loop = torchkit.Loop(1, seed=11, device="cpu", progress=False)
    assert torch.equal(torch.rand(5, generator=loop.gen),
                       torch.rand(5, generator=seeds.torch_generator(11)))
    assert torch.equal(torch.rand(5, generator=loop.generator("val", 2)),
                       torch.rand(5, generator=seeds.torch_generator(11, "val", 2)))


def test_loop_with_global_seeding_draws_as_seed_all():
    torchkit.Loop(1, seed=5, device="cpu", progress=False, seed_globals=True)
    a = torch.rand(3)
    torchkit.seed_all(5)
    assert torch.equal(a, torch.rand(3))


def test_loop_early_stop_and_stop_end_after_the_current_step():
    loop = torchkit.Loop(100, seed=0, device="cpu", progress=False,
                         early_stop=lambda h: h.last["loss"] < 0.5)
    steps = [s for s in loop if loop.log(loss=1.0 / (s + 1)) is None]
    assert steps == [0, 1, 2] and loop.stopped == "early_stop"
    loop = torchkit.Loop(range(10, 20), seed=0, device="cpu", progress=False)
    out = []
    for s in loop:
        out.append(s)
        if s == 12:
            loop.stop("converged")
    assert out == [10, 11, 12] and loop.stopped == "converged"


def test_loop_takes_a_progress_wrapper():
    wrapped = []

    def wrap(it):
        wrapped.append(True)
        return it

    assert list(torchkit.Loop(2, seed=0, device="cpu", progress=wrap)) == [0, 1] and wrapped


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a missing GPU")
def test_loop_refuses_a_missing_gpu_instead_of_running_on_the_cpu():
    with pytest.raises(RuntimeError, match="no GPU"):
        torchkit.Loop(1, seed=0, device="cuda")


@pytest.mark.parametrize("kw", [dict(steps=-1), dict(steps=True), dict(steps=2.5), dict(seed=-1),
                                dict(seed=1.0), dict(early_stop=3), dict(device="tpu")])
def test_loop_bad_input_raises(kw):
    args = dict(steps=2, seed=0, device="cpu", progress=False) | kw
    with pytest.raises(ValueError):
        torchkit.Loop(args.pop("steps"), **args)
