"""Training throughput of layer-local CLAPP against end-to-end hinge-loss CPC (lib/clapp.py).

The same encoder (the book's three modules, 16-32-64 channels, 8 x 8 patches on a 6 x 6 grid of
28 x 28 images), the same batches, one training step after the other in one process, one
thread:

- CLAPP: a loss on every module, modules detached from each other, so the backward pass of
  each module stops at its input (no gradient with respect to the input of modules 2 and 3);
- CLAPP-s: the same isolation, with a positive and 16 negatives per context;
- hinge-loss CPC: one loss at the last module, backpropagated through all modules (the gradient
  with respect to every module's input is needed).

It prints images per second of each (the fastest of many short interleaved blocks, robust to a
busy machine) and the ratio CLAPP / hinge CPC. The speed goal of the chapter: CLAPP is not
slower per step. A side-by-side comparison, not a timed test.

Usage: ``python benchmarks/clapp.py [--batch 32] [--steps 60] [--blocks 6] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from lib import clapp, torchkit  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    ap.add_argument("--steps", type=int, default=60, help="steps per pass (default 60)")
    ap.add_argument("--blocks", type=int, default=6, help="timed blocks per pass (default 6)")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the blocks (default 3)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    xs = torch.rand(args.steps, args.batch, 1, 28, 28, generator=gen)

    variants = {}
    for method in ("clapp", "clapp-s", "hinge-cpc"):
        torchkit.seed_all(0)  # the same initial encoder for every method
        net = clapp.CLAPPNet(method)
        opts = [torch.optim.Adam(ps, lr=1e-3) for ps in net.module_parameters()]
        draws = torch.Generator().manual_seed(1)

        variants[clapp.METHODS[method]] = lambda x, net=net, opts=opts, draws=draws: net.step(x, draws, opts)
    best = dict.fromkeys(variants, float("inf"))
    block = max(1, args.steps // args.blocks)
    for step in variants.values():
        step(xs[0])  # warm-up
    for _ in range(args.repeat):
        for b in range(args.blocks):
            for name, step in variants.items():
                t0 = time.perf_counter()
                for s in range(b * block, (b + 1) * block):
                    step(xs[s])
                best[name] = min(best[name], (time.perf_counter() - t0) / block)
    print(f"batch {args.batch}, one thread, fastest of {args.blocks * args.repeat} blocks of "
          f"{block} steps")
    for name, t in best.items():
        print(f"  {name:58s} {1e3 * t:7.1f} ms/step  {args.batch / t:7.0f} images/s")
    clapp_t, e2e_t = best[clapp.METHODS["clapp"]], best[clapp.METHODS["hinge-cpc"]]
    print(f"CLAPP throughput / hinge CPC throughput: {e2e_t / clapp_t:.2f}x "
          f"(goal: >= 1, CLAPP not slower per step)")


if __name__ == "__main__":
    main()
