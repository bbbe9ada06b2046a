"""Cost of training a B1 SNN with spike-time gradients against training the same ReLU network.

Both variants run in one process, on the same threads, interleaved: one epoch of Adam on the same
training images, with the same minibatches and the same initial parameters, for

- ANN: a :class:`lib.ttfs.ReLUNet` (affine layers and ReLU; autograd through activations);
- SNN: a :class:`lib.ttfs.B1Net` with a copy of its parameters (the identity mapping): the forward
  pass computes spike times with the B1 closed form (a matmul plus elementwise work per layer,
  window adaptation included), and autograd differentiates through the spike times.

It prints the time per epoch of each, their ratio (the chapter's goal: the SNN within 1.5x of the
ANN), and the largest parameter difference after the epoch (the trajectories are the same up to
rounding). Not a timed test.

Nets: ``fc`` 784-340-10; ``deep`` 8 hidden dense layers of 64; ``cnn`` a small CNN 16-P-32-P-64;
``vgg`` the chapter's deep network at ``book`` (the VGG-like net of the sparsity claim: 3x3
convolutions 8-P-16-16-P-32-32-P, dense 64-64, readout; 8 weight layers).

Usage: ``python benchmarks/ttfs_deep_training.py [--data fashion-mnist] [--images 20000]
[--net fc|deep|cnn|vgg|all] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core unless the caller says otherwise

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)

from lib import data, torchkit, ttfs  # noqa: E402
from lib.protocols import ttfs_deep_training as proto  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist", choices=data.DATASETS, help="dataset (default fashion-mnist)")
    ap.add_argument("--images", type=int, default=20_000, help="training images per epoch (default 20000)")
    ap.add_argument("--net", default="all", choices=("all", "fc", "deep", "cnn", "vgg"),
                    help="784-340-10 (fc), 8 hidden layers of 64 (deep), a small CNN (cnn), the book's "
                         "VGG-like net (vgg); all four (default; the two conv nets on a quarter of the images)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per variant; the best is kept (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ds = data.load(args.data)
    print(f"{ds.description}; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; best of {args.repeat}, interleaved")
    for net in (("fc", "deep", "cnn", "vgg") if args.net == "all" else (args.net,)):
        n = args.images // 4 if net in ("cnn", "vgg") and args.net == "all" else args.images
        run(ds, net, n, args.repeat, args.seed)


def run(ds: data.Dataset, net: str, images: int, repeat: int, seed: int) -> None:
    """Time one epoch of the ANN and of the SNN of ``net``, interleaved, and print the ratio."""
    x, y = ds.x_train[:images], ds.y_train[:images].astype(np.int64)
    if net == "fc":
        arch = ttfs.Architecture(ds.image_shape, dense=(340,))
    elif net == "deep":
        arch = ttfs.Architecture(ds.image_shape, dense=(64,) * 8)
    elif net == "cnn":
        arch = ttfs.Architecture(ds.image_shape, conv=(16, "P", 32, "P"), dense=(64,))
    else:  # the chapter's VGG-like pair at book
        arch = replace(proto.preset("book").sparsity.arch, input_shape=ds.image_shape)
    torchkit.seed_all(seed)
    init = ttfs.he_init(ttfs.ReLUNet(arch), seed)

    def epoch(make):
        model = make()
        torchkit.fit(model, F.cross_entropy, (x, y), epochs=1, lr=5e-4, batch_size=128, seed=seed,
                     progress=False)
        return model

    variants = {"ann": lambda: epoch(lambda: _copy(init, arch)),
                "snn": lambda: epoch(lambda: ttfs.B1Net.from_relu(init))}
    times, models = {k: np.inf for k in variants}, {}
    for _ in range(repeat):  # interleaved, so that a change of load hits both alike
        for name, fn in variants.items():
            t, models[name] = best_time(fn, 1)
            times[name] = min(times[name], t)
    diff = ttfs.max_param_diff(models["ann"], models["snn"])
    print(f"{net} net {arch.conv} + {arch.dense}: one epoch of Adam (batch 128) on {len(x):,} images")
    print(f"  ANN epoch:                 {times['ann']:8.3f} s")
    print(f"  SNN epoch (time domain):   {times['snn']:8.3f} s")
    print(f"  ratio SNN / ANN:           {times['snn'] / times['ann']:8.2f}x  (goal: at most 1.5x)")
    print(f"  max |theta_SNN - theta_ANN| after the epoch: {diff:.1e}")


def _copy(model: ttfs.ReLUNet, arch: ttfs.Architecture) -> ttfs.ReLUNet:
    out = ttfs.ReLUNet(arch)
    out.load_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()})
    return out


if __name__ == "__main__":
    main()
