"""Analytic MLP gradient and Hessian (lib/gradflow.py) against torch, side by side in one run.

The paper's speed benchmark (Brea et al. 2023, scripts/efficiency.py of MLPGradientFlow.jl):
``d = 2``, one softplus hidden layer of ``k = (P - 1) / 4`` neurons with biases, scalar output
with bias, targets of a random 4-neuron softplus teacher, float64, one thread on both sides
(numpy BLAS through threadpoolctl, ``torch.set_num_threads(1)``). For each ``(P, N)`` the
derivatives are first checked against ``torch.func`` to 1e-10 (relative), then every function is
timed by ``lib.protocols.gradient_flow.timed``: ``time.process_time`` (CPU time, so other work on
a shared machine does not count), one warm-up call, ``--repeat`` samples of as many calls as take
about 2 ms; the table prints the median time per call, its spread (interquartile range over the
median) and the ratios torch / ours for

- the gradient: ``.backward()`` and ``torch.func.grad``;
- the Hessian: ``torch.autograd.functional.hessian`` (the paper's baseline, one backward pass per
  parameter) and ``torch.func.hessian`` (forward-over-reverse, vectorised); cells whose
  ``N x P x P`` intermediate would exceed 1e8 entries time gradients only.

Second, the cost model of the chapter's equal-time comparison of Adam
(``lib.protocols.gradient_flow.EVAL_COST``): the CPU time of a Hessian, of the residuals, of their
Jacobian and of an Adam step in gradient evaluations, measured on the minima problem (33
parameters, 500 samples).

It is a comparison in one run, not a timed test. The goals of issue 25: gradients at least 1x
``torch.func.grad`` at every N, Hessians at least 20x both torch routes for P <= 200.

Usage: ``python benchmarks/gradient_flow.py [--p 41 201] [--n 100 1000 10000] [--repeat 7]
[--seed 0]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from lib.protocols import gradient_flow as proto  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, nargs="+", default=[41, 201])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10_000])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = proto.speed_table(args.p, args.n, args.repeat, args.seed)
    pd.set_option("display.width", 200)
    names = ["ours grad", "torch.func.grad", "ours Hessian", "torch.func.hessian",
             "autograd.functional.hessian"]
    show = df[["P", "N"]].copy()
    for name in names:
        show[f"{name} (ms)"] = [f"{1e3 * t:.3g} ±{100 * s:.0f}%"
                                for t, s in zip(df[name], df[f"{name} spread"], strict=True)]
    print("median CPU time per call, ± interquartile range over median:")
    print(show.to_string(index=False))
    ratios = ["ratio grad (func.grad)", "ratio Hessian (func.hessian)", "ratio Hessian (functional)"]
    print("\nratios torch / ours (medians):")
    print(df[["P", "N"] + ratios].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    small = df[df["P"] <= 200]
    print(f"\ngradient vs torch.func.grad, every cell: at least {df[ratios[0]].min():.2f}x")
    if small[ratios[1]].notna().any():
        print(f"Hessian for P <= 200: at least {small[ratios[2]].min():.1f}x "
              f"(autograd.functional.hessian), {small[ratios[1]].min():.1f}x (torch.func.hessian)")
    big = df[df["P"] > 200]
    if big[ratios[1]].notna().any():
        print(f"Hessian for P > 200: at least {big[ratios[2]].min():.1f}x "
              f"(autograd.functional.hessian), {big[ratios[1]].min():.1f}x (torch.func.hessian)")
    print("\ncost model of the equal-time comparison (minima problem, 33 parameters, N = 500):")
    print(proto.eval_costs(repeats=args.repeat, seed=args.seed).to_string(
        float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
