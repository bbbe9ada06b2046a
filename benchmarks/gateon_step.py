"""Cost of a GateON training step relative to a plain MLP step (lib/gateon.py); target <= 1.5x.

Four steps on the same minibatches, timed one after the other in one process, one thread:

- a plain MLP (``Linear``-``ReLU`` layers, cross-entropy on logits) of the book's size, trained
  with ``torch.optim.Adam`` as most people write it (the default, per-tensor loop), and the same
  MLP with Adam's fused kernel (``fused=True``, which :class:`lib.gateon.Learner` uses): the ratio
  to the first is what the chapter's target is stated against, the ratio to the second isolates
  what gating, batch statistics and availability cost on top of the same optimiser;
- the book's network without gating or availability (:class:`lib.gateon.GateMLP` with batch
  statistics and L2-normalised layers, i.e. the fine-tuning baseline);
- GateON (:meth:`lib.gateon.Learner.step`): gates, relevance from the hidden gradients,
  availability update, update masking, with some units frozen so that the watch of frozen units
  runs too.

It prints the CPU time per step of each (``time.process_time``; median and quartiles over
many short interleaved blocks) and the ratios of the medians to the plain MLP. A side-by-side comparison,
not a timed test.

Usage: ``python benchmarks/gateon_step.py [--hidden 256] [--batch 256] [--steps 200]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lib import gateon  # noqa: E402


def plain_mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-2], sizes[-1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256, help="units per hidden layer (default 256)")
    ap.add_argument("--layers", type=int, default=2, help="hidden layers (default 2)")
    ap.add_argument("--batch", type=int, default=256, help="images per step (default 256)")
    ap.add_argument("--steps", type=int, default=200, help="steps per timing (default 200)")
    ap.add_argument("--blocks", type=int, default=10, help="timed blocks per pass (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the blocks (default 3)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    hidden = (args.hidden,) * args.layers
    sizes = (784, *hidden, 10)
    gen = torch.Generator().manual_seed(0)
    xs = torch.rand(args.steps, args.batch, 784, generator=gen)
    ys = torch.randint(10, (args.steps, args.batch), generator=gen)

    def plain(fused: bool):
        torch.manual_seed(0)
        mlp = plain_mlp(sizes)
        opt = torch.optim.Adam(mlp.parameters(), lr=1e-3, fused=fused)

        def plain_step(x, y):
            opt.zero_grad()
            F.cross_entropy(mlp(x), y).backward()
            opt.step()
        return plain_step

    torch.manual_seed(0)
    ft = gateon.Learner(784, 10, hidden, gateon.method("finetune"))
    torch.manual_seed(0)
    go = gateon.Learner(784, 10, hidden, gateon.method("gateon", epsilon=1.0))
    go.a_frozen[0][: args.hidden // 4] = 1e-4  # some units frozen: the watch runs as well
    go.start_task(1)
    variants = {"plain MLP": plain(False), "plain MLP, fused Adam": plain(True), "GateMLP, no gating (fine-tuning)": ft.step,
                "GateON (gates + availability + update mask)": go.step}
    # short blocks, interleaved, CPU time (process_time) of each: robust to a busy machine
    times = {name: [] for name in variants}
    block = max(1, args.steps // args.blocks)
    for step in variants.values():
        step(xs[0], ys[0])  # warm-up
    for _ in range(args.repeat):
        for b in range(args.blocks):
            for name, step in variants.items():
                t0 = time.process_time()
                for i in range(b * block, (b + 1) * block):
                    step(xs[i], ys[i])
                times[name].append((time.process_time() - t0) / block)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"MLP {'-'.join(map(str, sizes))}, batch {args.batch}, {args.steps} steps, one thread, "
          f"CPU time per step over {args.repeat * args.blocks} interleaved blocks of {block} steps "
          "(median, quartiles):")
    for name, v in times.items():
        q1, _, q3 = statistics.quantiles(v, n=4)
        print(f"  {name:45s} {1e3 * med[name]:7.2f} ms/step [{1e3 * q1:.2f}, {1e3 * q3:.2f}]  "
              f"({med[name] / med['plain MLP']:.2f}x plain)")
    gate = med["GateON (gates + availability + update mask)"]
    print(f"  GateON step / plain MLP step: {gate / med['plain MLP']:.2f}x (target <= 1.5x); "
          f"/ plain MLP with the same fused Adam: {gate / med['plain MLP, fused Adam']:.2f}x; "
          f"/ the same network without gating: "
          f"{gate / med['GateMLP, no gating (fine-tuning)']:.2f}x")

if __name__ == "__main__":
    main()
