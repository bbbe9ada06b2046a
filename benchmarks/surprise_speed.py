"""Speed of lib.surprise: a 40,000-step Gaussian change-point run with every definition computed.

Side by side, on one core:

- vectorised: ``lib.surprise.run`` -- the exact filter is a loop over steps (it is sequential),
  and all 16 definitions of the Gaussian task are computed for blocks of 1000 trials at once;
- naive: the same code called one trial at a time (``lib.surprise.run_naive``, ``chunk=1``),
  as a per-step implementation would do.

Both give the same numbers (checked below). The naive version is timed on the first
``--naive-steps`` steps and extrapolated linearly to the full run, unless ``--full`` is given.
The target of the chapter is under 5 s for the vectorised run. Not a timed test: run it with
``make bench`` or ``python benchmarks/surprise_speed.py``.
"""

import os

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_k] = "1"  # one core, before numpy is imported

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from lib import surprise as S  # noqa: E402
from lib.protocols import surprise_taxonomy as proto  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40_000, help="steps of the change-point run")
    ap.add_argument("--naive-steps", type=int, default=2_000, help="steps timed for the naive version")
    ap.add_argument("--full", action="store_true", help="time the naive version on all steps")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the vectorised run (best is reported)")
    args = ap.parse_args()

    P = proto.preset("book")
    model = S.GridModel.build(P.sigma, P.n_theta, P.theta_max)
    prior = model.prior()
    task = S.simulate_gaussian(args.steps, P.sigma, P.p_c, np.random.default_rng(0))

    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = S.run(model, task.y, prior, P.p_c)
        best = min(best, time.perf_counter() - t0)

    n_naive = args.steps if args.full else min(args.naive_steps, args.steps)
    t0 = time.perf_counter()
    naive = S.run_naive(model, task.y[:n_naive], prior, P.p_c)
    t_naive = (time.perf_counter() - t0) * args.steps / n_naive

    diff = max(np.abs(naive.measures[n] - fast.measures[n][:n_naive]).max() for n in naive.measures)
    print(f"grid {model.n} points, {len(fast.measures)} definitions, {args.steps} steps, one core")
    print(f"vectorised (blocks of 1000 trials): {best:7.2f} s  (best of {args.repeats}; target < 5 s: "
          f"{'met' if best < 5 else 'NOT met'})")
    how = "measured" if n_naive == args.steps else f"extrapolated from {n_naive} steps"
    print(f"naive (one trial at a time):        {t_naive:7.2f} s  ({how})")
    print(f"speed-up: x{t_naive / best:.1f}; largest difference between the two: {diff:.1e}")


if __name__ == "__main__":
    main()
