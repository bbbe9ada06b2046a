"""Speed of the spiking network of lib/sample_measure.py: vectorised against a per-step loop.

Two computations of the chapter ``sample-and-measure``, each done both ways in one run on the same
network and the same random numbers (float64):

- the free-running simulation: :meth:`lib.sample_measure.RSNN.free_run` (a loop over time bins
  only, each step one batched product over trials and units) against
  :func:`lib.sample_measure.simulate_reference` (plain loops over trials, bins, units, delays);
- the teacher-forced likelihood: :meth:`lib.sample_measure.RSNN.teacher_forced` with
  :func:`lib.sample_measure.mle_loss` (no loop at all) against
  :func:`lib.sample_measure.teacher_forced_reference`.

It checks that the values agree (spikes identical, probabilities and losses to 1e-10) and prints
the speed ratios. It is a side-by-side comparison, not a timed test.

Usage: ``python benchmarks/sample_and_measure.py [--trials 20] [--bins 60] [--visible 16]
[--hidden 16]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)

from lib import sample_measure as sm  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials (default 20)")
    ap.add_argument("--bins", type=int, default=60, help="bins per trial (default 60)")
    ap.add_argument("--visible", type=int, default=16, help="recorded units (default 16)")
    ap.add_argument("--hidden", type=int, default=16, help="hidden units of the free run (default 16)")
    ap.add_argument("--repeat", type=int, default=3, help="timings of the vectorised version (best kept)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    B, T, nv, nh = args.trials, args.bins, args.visible, args.hidden
    stim = sm.stimulus(T, 4, rng)
    teacher = sm.make_teacher(nv, nh, 2.0, rng)
    net = teacher.network()
    U = rng.random((1, B, T, nv + nh))
    W, W_in, b = teacher.W, teacher.W_in, teacher.b

    def vec_free():
        with torch.no_grad():
            return net.free_run(torch.tensor(stim), B, uniforms=torch.tensor(U))

    t_vec, sim = best_time(vec_free, args.repeat)
    t_ref, (p_ref, z_ref) = best_time(lambda: sm.simulate_reference(W, W_in, b, stim, U[0]), 1)
    dp = float(np.abs(sim.p[0].numpy() - p_ref).max())
    same = bool(np.array_equal(sim.z[0].numpy(), z_ref))

    vis = sm.make_teacher(nv, 0, 0.0, np.random.default_rng(2))
    vnet = vis.network()
    spikes = z_ref[:, :, :nv]

    def vec_tf():
        with torch.no_grad():
            v, _ = vnet.teacher_forced(torch.tensor(spikes), torch.tensor(stim))
            return float(sm.mle_loss(v, torch.tensor(spikes)[None])[0])

    t_vec_tf, l_vec = best_time(vec_tf, args.repeat)
    t_ref_tf, l_ref = best_time(lambda: sm.teacher_forced_reference(vis.W, vis.W_in, vis.b, stim, spikes), 1)

    print(f"{B} trials x {T} bins, {nv} recorded + {nh} hidden units, 2 delays, float64:")
    print(f"  free run, vectorised:          {t_vec:8.4f} s")
    print(f"  free run, per-step loops:      {t_ref:8.4f} s   (spikes identical: {same}, "
          f"max |dp| = {dp:.1e})")
    print(f"  free-run speed ratio:          {t_ref / t_vec:8.1f}x")
    print(f"  teacher-forced loss, vectorised: {t_vec_tf:8.4f} s")
    print(f"  teacher-forced loss, loops:      {t_ref_tf:8.4f} s   (|dL| = {abs(l_vec - l_ref):.1e})")
    print(f"  teacher-forced speed ratio:      {t_ref_tf / t_vec_tf:8.1f}x")
    if not (same and dp < 1e-10 and abs(l_vec - l_ref) < 1e-10):
        raise SystemExit("the vectorised and the reference computations disagree")


if __name__ == "__main__":
    main()
