"""Speed of the neuLVM likelihood of lib/mesoscopic.py: vectorised over time against a step loop.

The chapter ``neulvm`` evaluates the negative log joint of a trial (9 recorded spike trains and
the activity of 3 populations) hundreds of times during a fit, with its gradient. This script
computes it both ways in one run, on the same simulated trial (float64):

- :func:`lib.mesoscopic.neg_log_joint`: no loop over time (cumulative sums over a Hankel view of
  the input and along the cohorts' diagonals);
- :func:`lib.mesoscopic.neg_log_joint_loop`: the same equations, one time step after the other.

It checks that the values agree (relative difference below 1e-9) and prints the speed ratio of
the value alone and of value plus gradient (with respect to the latent activity, as in the
E-step). It is a side-by-side comparison, not a timed test.

Usage: ``python benchmarks/neulvm.py [--trial-s 10] [--ages 100] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)

from lib import mesoscopic as ms  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trial-s", type=float, default=10.0, help="scored trial in s (default 10)")
    ap.add_argument("--ages", type=int, default=100, help="age bins of the table (default 100)")
    ap.add_argument("--repeat", type=int, default=3, help="timings of the vectorised version (best kept)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    dt, H = 0.004, 250
    net = ms.winner_take_all()
    run = ms.simulate_micro(net, 1.0 + args.trial_s, np.random.default_rng(11), dt_s=5e-4)
    z, y = ms.rebin(run, dt)
    trial = ms.make_trial(y[0], run.population, dt, H)
    zt = z[0, H:]

    def value(f):
        with torch.no_grad():
            return [float(x) for x in f(net, trial, zt, args.ages)]

    def value_grad(f):
        zz = torch.tensor(zt, requires_grad=True)
        ny, nz = f(net, trial, zz, args.ages)
        (ny + nz).backward()
        return zz.grad.numpy()

    t_vec, v_vec = best_time(lambda: value(ms.neg_log_joint), args.repeat)
    t_loop, v_loop = best_time(lambda: value(ms.neg_log_joint_loop), 1)
    tg_vec, g_vec = best_time(lambda: value_grad(ms.neg_log_joint), args.repeat)
    tg_loop, g_loop = best_time(lambda: value_grad(ms.neg_log_joint_loop), 1)
    rel = max(abs(a - b) / abs(b) for a, b in zip(v_vec, v_loop, strict=True))
    g_rel = float(np.abs(g_vec - g_loop).max() / np.abs(g_loop).max())
    print(f"trial {args.trial_s:g} s at 4 ms ({trial.n_bins} bins with the history), "
          f"{args.ages} ages, 9 recorded neurons, float64, one thread")
    print(f"values: vectorised {v_vec[0]:.9f} / {v_vec[1]:.9f}, loop {v_loop[0]:.9f} / "
          f"{v_loop[1]:.9f}; largest relative difference {rel:.1e} (target <= 1e-9)")
    print(f"gradients: largest difference {g_rel:.1e} of the largest component")
    print(f"value:            vectorised {t_vec:.3f} s, loop {t_loop:.3f} s: {t_loop / t_vec:.1f}x")
    print(f"value + gradient: vectorised {tg_vec:.3f} s, loop {tg_loop:.3f} s: "
          f"{tg_loop / tg_vec:.1f}x (target >= 5x)")
    if rel > 1e-9:
        raise SystemExit("the two implementations disagree")


if __name__ == "__main__":
    main()
