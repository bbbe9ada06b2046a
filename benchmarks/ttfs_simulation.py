"""Speed of the α1 simulator of lib/ttfs/alpha1.py against the ReLU network's forward pass.

All variants run, in one process and on the same threads, on 10,000 test images through the same
784-600-10 network (the authors' MNIST demo architecture), trained briefly on Fashion-MNIST (or the
dataset given), then folded, scaled and mapped:

- ANN: the folded float64 network's forward pass (``Network.logits``: one matrix product per layer);
- SNN: ``lib.ttfs.simulate``: a bound (one more matrix product) shows for almost every neuron that
  it cannot cross threshold before its last input, and there the closed-form spike time is exact;
  only the other neurons are integrated event by event;
- SNN, every neuron swept: ``simulate(..., fast=False)``, which sorts each image's input spikes and
  integrates every hidden neuron's potential from event to event (ties grouped): the reference.

It checks that both SNN variants give the ReLU network's predictions on every image, flag the same
images for early crossings, agree on the spike times to float64 rounding, and that the readout is
within the rounding bound (``lib.ttfs.rounding_bound``) of the logits. It prints the times and
their ratios. The chapter's target is an SNN within 4x of the ANN; for scale, the authors'
TensorFlow notebook took 48 s on a CPU for 10,000 MNIST images. Not a timed test.

Usage: ``python benchmarks/ttfs_simulation.py [--data fashion-mnist] [--images 10000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core unless the caller says otherwise

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)

from lib import data, ttfs  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist", choices=data.DATASETS, help="dataset (default fashion-mnist)")
    ap.add_argument("--images", type=int, default=10_000, help="test images (default 10000)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs before mapping (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per variant; the best is kept (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ds = data.load(args.data)
    x = ds.x_test[: args.images]
    if len(x) < args.images:  # a small fallback dataset: tile its test set to the requested size
        x = np.resize(ds.x_test, (args.images, ds.x_test.shape[1]))
    arch = ttfs.Architecture((1,) + tuple(ds.shape), dense=(600,))
    model, _ = ttfs.train(arch, ds.x_train, ds.y_train, ttfs.Training(epochs=args.epochs), seed=args.seed)
    net = ttfs.scale_weights(ttfs.fold(model))
    snn = ttfs.map_to_snn(net, ttfs.layer_maxima(net, ds.x_train))

    # interleave the variants so that a change of machine load hits all of them alike
    times: dict[str, float] = {"ann": np.inf, "snn": np.inf, "sweep": np.inf}
    for _ in range(args.repeat):
        for name, fn in (("ann", lambda: net.logits(x)), ("snn", lambda: ttfs.simulate(snn, x, warn=False)),
                         ("sweep", lambda: ttfs.simulate(snn, x, warn=False, fast=False))):
            t, out = best_time(fn, 1)
            times[name] = min(times[name], t)
            if name == "ann":
                logits = out
            elif name == "snn":
                res = out
            else:
                ref = out
    bound = ttfs.rounding_bound(snn)
    err = np.max(np.abs(res.v_out - logits), axis=0)
    dt = max(float(np.max(np.abs(a - b))) for a, b in zip(res.spike_times, ref.spike_times, strict=True))
    active = np.mean(res.spike_times[0] < snn.layers[0].t_max)
    same = np.array_equal(res.predictions(), logits.argmax(1)) and np.array_equal(ref.predictions(), logits.argmax(1))

    print(f"{len(x):,} images of {ds.description}")
    print(f"784-600-10 network, {args.epochs} epoch(s) of training; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; best of {args.repeat}, interleaved")
    print(f"  ANN forward pass (float64):             {times['ann']:8.3f} s")
    print(f"  SNN (closed form where the bound allows): {times['snn']:6.3f} s  ({len(x) / times['snn']:,.0f} "
          f"images/s; {active:.0%} of hidden neurons fire before t_max)")
    print(f"  SNN, every neuron swept event by event: {times['sweep']:8.3f} s")
    print(f"  ratio SNN / ANN:                        {times['snn'] / times['ann']:8.1f}x  (target: within 4x)")
    print(f"  ratio swept SNN / ANN:                  {times['sweep'] / times['ann']:8.1f}x")
    print(f"  predictions identical to the ANN's (both SNNs): {same}; early crossings in "
          f"{res.n_early} (fast) and {ref.n_early} (swept) images, the same images: "
          f"{np.array_equal(res.early, ref.early)}")
    print(f"  max |t_fast - t_swept| = {dt:.1e}; max |V_out - logits| / rounding bound = {np.max(err / bound):.1e} "
          f"(relative error {np.max(err) / np.max(np.abs(logits)):.1e})")


if __name__ == "__main__":
    main()
