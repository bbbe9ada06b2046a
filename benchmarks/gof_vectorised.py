"""Speed of the GLM simulator of lib/gof.py: vectorised across repetitions vs one repetition at a time.

The loop over time bins cannot be vectorised (the spike history feeds back), but each step of
``lib.gof.simulate`` is one numpy operation over all repetitions. This script simulates the same
number of repetitions both ways, in one run, checks that the per-repetition loop produces valid
trains of the same model (same firing rate within sampling error), and prints the speed ratio.
It is a side-by-side comparison, not a timed test.

Usage: ``python benchmarks/gof_vectorised.py [--reps 100] [--seconds 20]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lib import gof  # noqa: E402


def per_rep_loop(model: gof.GLM, seconds: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Simulate ``reps`` trials one after the other (a Python loop over repetitions)."""
    return np.concatenate([gof.simulate(model, seconds, 1, r).y for r in rng.spawn(reps)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100, help="repetitions (default 100)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each repetition in s (default 20)")
    ap.add_argument("--repeat", type=int, default=2, help="timings per variant; the best is kept (default 2)")
    args = ap.parse_args(argv)

    model = gof.glm_at(gof.BIAS_66HZ)
    best_vec, best_loop = np.inf, np.inf
    for i in range(args.repeat):
        t0 = time.perf_counter()
        vec = gof.simulate(model, args.seconds, args.reps, np.random.default_rng(i)).y
        best_vec = min(best_vec, time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop = per_rep_loop(model, args.seconds, args.reps, np.random.default_rng(i))
        best_loop = min(best_loop, time.perf_counter() - t0)

    rate_vec, rate_loop = vec.mean() / model.dt, loop.mean() / model.dt
    print(f"{args.reps} repetitions x {args.seconds:g} s of the 66-Hz GLM ({vec.shape[1]} bins each), "
          f"best of {args.repeat}:")
    print(f"  vectorised across repetitions: {best_vec:7.3f} s  ({rate_vec:.1f} Hz)")
    print(f"  one repetition at a time:      {best_loop:7.3f} s  ({rate_loop:.1f} Hz)")
    print(f"  speed ratio (loop / vectorised): {best_loop / best_vec:.1f}x")


if __name__ == "__main__":
    main()
