"""Speed of the event-driven α1 simulator of lib/ttfs/alpha1.py against the ReLU network's forward pass.

Both run, in one process and on the same threads, on 10,000 test images through the same
784-600-10 network (the authors' MNIST demo architecture), trained briefly on Fashion-MNIST (or the
dataset given), then folded, scaled and mapped:

- ANN: the folded float64 network's forward pass (``Network.logits``: one matrix product per layer);
- SNN: ``lib.ttfs.simulate``, which sorts each image's input spikes and integrates every hidden
  neuron's potential from event to event (ties grouped), then the readout.

It checks that the SNN's readout equals the logits (max relative error) and prints the times and
their ratio. The chapter's target is an SNN within 20x of the ANN; for scale, the authors'
TensorFlow notebook took 48 s on a CPU for 10,000 MNIST images. Not a timed test.

Usage: ``python benchmarks/ttfs_simulation.py [--data fashion-mnist] [--images 10000] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core unless the caller says otherwise

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lib import data, ttfs  # noqa: E402


def best_time(fn, repeat: int) -> tuple[float, object]:
    """The shortest of ``repeat`` wall-clock timings of ``fn()``, and its last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist", choices=data.DATASETS, help="dataset (default fashion-mnist)")
    ap.add_argument("--images", type=int, default=10_000, help="test images (default 10000)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs before mapping (default 1)")
    ap.add_argument("--repeat", type=int, default=2, help="timings per variant; the best is kept (default 2)")
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

    t_ann, logits = best_time(lambda: net.logits(x), args.repeat)
    t_snn, res = best_time(lambda: ttfs.simulate(snn, x), args.repeat)
    rel = np.max(np.abs(res.v_out - logits)) / np.max(np.abs(logits))
    active = np.mean(res.spike_times[0] < snn.layers[0].t_max)

    print(f"{len(x):,} images of {ds.description}")
    print(f"784-600-10 network, {args.epochs} epoch(s) of training; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; best of {args.repeat}")
    print(f"  ANN forward pass (float64):         {t_ann:8.3f} s")
    print(f"  SNN event-driven simulation:        {t_snn:8.3f} s  ({len(x) / t_snn:,.0f} images/s; "
          f"{active:.0%} of hidden neurons fire before t_max)")
    print(f"  ratio SNN / ANN:                    {t_snn / t_ann:8.1f}x  (target: within 20x)")
    print(f"  max |V_out - logits| / max |logits| = {rel:.1e}; "
          f"agreement {np.mean(res.predictions() == logits.argmax(1)):.4f}")


if __name__ == "__main__":
    main()
