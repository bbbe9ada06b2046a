"""One device policy (issue 26): the preset's ``device`` reaches every torch computation.

Every training entry point of the torch chapters is called with its ci preset's device set to
``"cuda"`` on a machine without a GPU. The policy says that this is an error (``torchkit.device``
refuses a missing GPU); an entry point that hard-codes ``"cpu"`` or ignores the preset would
instead start training silently on the CPU, and the test would fail. (The static half of the
check, no ``"cpu"`` literal in protocols and science, is in ``tests/test_layout.py``.)
"""
from dataclasses import replace

import pytest
import torch

from lib import data, torchkit

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")

NO_GPU = "sees no GPU"


def asks_for_the_gpu(fn, *args, **kwargs):
    with pytest.raises(RuntimeError, match=NO_GPU):
        fn(*args, **kwargs)


def test_the_kit_loop_and_fit_take_the_device():
    asks_for_the_gpu(torchkit.Loop, 3, seed=0, device="cuda")
    model = torch.nn.Linear(2, 2)
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    asks_for_the_gpu(torchkit.fit, model, torch.nn.functional.cross_entropy, (x, y), epochs=1,
                     lr=0.1, batch_size=2, seed=0, device="cuda", progress=False)


@pytest.fixture(scope="module")
def ttfs():
    from lib.protocols import ttfs_deep_training as proto

    P = proto.preset("ci")
    return proto, replace(P, device="cuda"), data.load(P.dataset)


def test_ttfs_deep_training_entry_points_take_the_presets_device(ttfs):
    from lib.ttfs import B1Net, ReLUNet, he_init

    proto, P, ds = ttfs
    pair = P.pairs[0]
    asks_for_the_gpu(proto.train_pair, pair, ds, 0, device=P.device)
    asks_for_the_gpu(proto.alpha1_foil, pair, ds, 0, P.alpha1_lrs, device=P.device)
    asks_for_the_gpu(proto.mapping_check, P, ds, 0)
    asks_for_the_gpu(proto.depth_training, replace(P, depth=proto.preset("book").depth), ds, 0)
    asks_for_the_gpu(proto.sparsity_sweep, P, ds, 0)
    base = B1Net.from_relu(he_init(ReLUNet(proto.with_shape(pair.arch, ds)), 0))
    asks_for_the_gpu(proto.hardware, P, base, ds, 0)


def test_gateon_entry_points_take_the_presets_device():
    from lib.protocols import gateon as proto

    P = replace(proto.preset("ci"), device="cuda")
    stream, _ = proto.load_stream(P, 0, n_tasks=2, n_train=200)
    asks_for_the_gpu(proto.run, P, stream, "gateon", 0)
    asks_for_the_gpu(proto.frozen_after_first, P, stream, 0)


def test_sample_and_measure_takes_the_presets_device():
    from lib.protocols import sample_and_measure as proto

    P = replace(proto.preset("ci"), device="cuda")
    asks_for_the_gpu(proto.run_experiment, P, 0)
