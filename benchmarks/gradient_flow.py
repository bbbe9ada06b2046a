"""Analytic MLP gradient and Hessian (lib/gradflow.py) against torch, side by side in one run.

The paper's speed benchmark (Brea et al. 2023, scripts/efficiency.py of MLPGradientFlow.jl):
``d = 2``, one softplus hidden layer of ``k = (P - 1) / 4`` neurons with biases, scalar output
with bias, targets of a random 4-neuron softplus teacher, float64, one thread on both sides
(numpy BLAS through threadpoolctl, ``torch.set_num_threads(1)``). For each ``(P, N)`` the Hessians
are first checked against ``torch.func.hessian`` to 1e-10 (relative), then every function is
warmed up and timed ``--repeat`` times; the table prints median times and the ratios torch / ours
for

- the gradient: ``.backward()`` and ``torch.func.grad``;
- the Hessian: ``torch.autograd.functional.hessian`` (the paper's baseline, one backward pass per
  parameter) and ``torch.func.hessian`` (forward-over-reverse, vectorised).

It is a comparison in one run, not a timed test. The goal of the chapter's issue: Hessians at least
10x faster than both torch routes for P <= 201, gradients no slower than ``torch.func.grad``.

Usage: ``python benchmarks/gradient_flow.py [--p 41 201] [--n 100 1000] [--repeat 5] [--seed 0]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from lib.protocols import gradient_flow as proto  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, nargs="+", default=[41, 201])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = proto.speed_table(args.p, args.n, args.repeat, args.seed)
    cols = ["P", "N", "ours grad", "torch.func.grad", "ours Hessian", "torch.func.hessian",
            "autograd.functional.hessian", "ratio grad (func.grad)",
            "ratio Hessian (func.hessian)", "ratio Hessian (functional)"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    small = df[df["P"] <= 201]
    print(f"\nHessian speed-up for P <= 201: at least {small['ratio Hessian (functional)'].min():.1f}x "
          f"(autograd.functional.hessian), {small['ratio Hessian (func.hessian)'].min():.1f}x "
          f"(torch.func.hessian); gradient vs torch.func.grad at least "
          f"{small['ratio grad (func.grad)'].min():.2f}x")


if __name__ == "__main__":
    main()
