"""Speed of the neuLVM likelihood of lib/mesoscopic.py: vectorised over time against step loops.

The chapter ``neulvm`` evaluates the negative log joint of a trial (9 recorded spike trains and
the activity of 3 populations) hundreds of times during a fit, with its gradient. This script
computes it three ways in one run, on the same simulated trial (float64, one thread):

- :func:`lib.mesoscopic.neg_log_joint`: no loop over time (cumulative sums over a Hankel view of
  the input and along the cohorts' diagonals);
- :func:`neg_log_joint_numpy` (here): the baseline a user would write, plain numpy, one time
  step after the other, each step vectorised over ages and populations;
- :func:`lib.mesoscopic.neg_log_joint_loop`: the same equations step by step in torch (so that
  it can be differentiated), the library's reference.

It checks that both loops give the vectorised value (relative difference below 1e-9; it raises
otherwise) and prints the speed ratios of the value alone (vectorised against the numpy loop and
against the torch loop) and of value plus gradient (with respect to the latent activity, as in
the E-step), against the torch loop only: the numpy loop has no gradient. The vectorised value is
timed twice: first in a fresh process, where its large buffers are mapped afresh on every call
(page faults make it several times slower), then after one value + gradient call, as in a fit.
It is a side-by-side comparison, not a timed test.

Usage: ``python benchmarks/neulvm.py [--trial-s 10] [--ages 100] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import best_time  # noqa: E402  (benchmarks/timing.py)

from lib import mesoscopic as ms  # noqa: E402


def neg_log_joint_numpy(net: ms.Network, trial: ms.Trial, z, n_ages: int = 100) -> tuple[float, float]:
    """The negative log joint of :func:`lib.mesoscopic.neg_log_joint` in plain numpy (float64).

    The baseline a user would write: the step of the module docstring of ``lib/mesoscopic.py``,
    one time step after the other, each step vectorised over ages and populations (arrays
    ``(M, n_ages)``, no loop over ages). The history bins (before ``trial.start``) only advance
    the table; ``Zbar`` and the recorded neurons' hazard at their own age (capped at ``n_ages - 1``)
    are kept for the scored bins, and both terms are summed after the loop (they feed nothing
    back). No gradient: numpy cannot differentiate it.

    Returns:
        ``(nll_y, nll_z)`` as floats.
    """
    dt, s0, A = trial.dt, trial.start, n_ages
    zf = np.concatenate([trial.z_history, np.asarray(z, float)], 0)  # (T, M)
    T, m = zf.shape
    nr = ms._n_ref(net, dt)  # refractory age bins
    d, c = ms._leak(net, dt, net.alpha_m)  # V <- d V + c (alpha_m mu + h)
    c = np.broadcast_to(c, (m,))
    d, g0, c = d[:, None], (c * net.alpha_m * net.mu)[:, None], c[:, None]
    ft = net.f_t[:, None]
    J = net.j[:, None] * net.sign  # row: presynaptic population
    r = np.exp(-dt / net.tau_s)
    N = np.asarray(net.n, float)
    i_ext = None if trial.i_ext is None else net.eps * trial.i_ext
    V = np.zeros((m, A))  # potential of the cohort of age a
    logS = np.zeros((m, A))  # its log-survival
    hist = np.zeros((m, A))  # its size at birth, Z_{t-1-a}
    isyn = np.array(trial.isyn0, float)
    z_prev = np.zeros(m)
    since = np.minimum(trial.since_last_spike()[s0:], A - 1)  # recorded neurons' ages
    pop = trial.population
    zbar = np.empty((T - s0, m))
    x = np.empty(since.shape)  # lambda dt of the recorded neurons
    for t in range(T):
        isyn = r * isyn + (1 - r) * (z_prev / dt)
        h = isyn @ J
        if i_ext is not None:
            h = h + i_ext[t]
        V *= d
        V += g0 + c * h[:, None]
        V[:, :nr] = 0.0
        lam = np.exp(V - ft)
        lam[:, :nr] = ms.LAMBDA_REFRACTORY
        if t >= s0:
            k = t - s0
            P = -np.expm1(-dt * lam)
            S = np.exp(logS)
            mm = S * hist  # expected survivors
            v = mm - S * mm  # their variance
            sv = v.sum(1)
            Lam = np.divide((P * v).sum(1), sv, out=np.zeros(m), where=sv > 0)
            zbar[k] = np.clip((P * mm).sum(1) + Lam * (1 - mm.sum(1)), 0.0, 1.0)
            x[k] = lam[pop, since[k]] * dt
        # shift the ages; the cohort born in this bin enters at age 0
        logS[:, 1:] = logS[:, :-1] - dt * lam[:, :-1]
        logS[:, 0] = 0.0
        V[:, 1:] = V[:, :-1]
        V[:, 0] = 0.0
        hist[:, 1:] = hist[:, :-1]
        z_prev = hist[:, 0] = zf[t]
    var = zbar / N + ms.VAR_FLOOR * dt / N
    nll_z = (0.5 * np.log(2 * np.pi * var) + (zf[s0:] - zbar) ** 2 / (2 * var)).sum()
    nll_y = -np.where(trial.y[s0:], np.log(-np.expm1(-x)), -x).sum()
    return float(nll_y), float(nll_z)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trial-s", type=float, default=10.0, help="scored trial in s (default 10)")
    ap.add_argument("--ages", type=int, default=100, help="age bins of the table (default 100)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="timings of the vectorised version and of the numpy loop (best kept)")
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

    t_cold, _ = best_time(lambda: value(ms.neg_log_joint), args.repeat)
    # A fit alternates value and gradient: after one backward pass the allocator (glibc) keeps the
    # large buffers instead of mapping fresh pages on every call, which the first value-only calls do.
    value_grad(ms.neg_log_joint)
    t_vec, v_vec = best_time(lambda: value(ms.neg_log_joint), args.repeat)
    t_np, v_np = best_time(lambda: neg_log_joint_numpy(net, trial, zt, args.ages), args.repeat)
    t_loop, v_loop = best_time(lambda: value(ms.neg_log_joint_loop), 1)
    tg_vec, g_vec = best_time(lambda: value_grad(ms.neg_log_joint), args.repeat)
    tg_loop, g_loop = best_time(lambda: value_grad(ms.neg_log_joint_loop), 1)
    rel = max(abs(a - b) / abs(b) for a, b in zip(v_vec, v_loop, strict=True))
    rel_np = max(abs(a - b) / abs(b) for a, b in zip(v_np, v_vec, strict=True))
    g_rel = float(np.abs(g_vec - g_loop).max() / np.abs(g_loop).max())
    print(f"trial {args.trial_s:g} s at 4 ms ({trial.n_bins} bins with the history), "
          f"{args.ages} ages, 9 recorded neurons, float64, one thread")
    print(f"values (nll_y / nll_z): vectorised {v_vec[0]:.9f} / {v_vec[1]:.9f}, "
          f"numpy loop {v_np[0]:.9f} / {v_np[1]:.9f}, torch loop {v_loop[0]:.9f} / {v_loop[1]:.9f}")
    print(f"largest relative difference to the vectorised value: numpy loop {rel_np:.1e}, "
          f"torch loop {rel:.1e} (target <= 1e-9)")
    print(f"gradients: largest difference {g_rel:.1e} of the largest component")
    print(f"value:            vectorised {t_vec:.3f} s, numpy loop {t_np:.3f} s: {t_np / t_vec:.1f}x "
          f"(vectorised before any gradient call, fresh pages: {t_cold:.3f} s, {t_np / t_cold:.1f}x)")
    print(f"value:            vectorised {t_vec:.3f} s, torch loop {t_loop:.3f} s: {t_loop / t_vec:.1f}x")
    print(f"value + gradient: vectorised {tg_vec:.3f} s, torch loop {tg_loop:.3f} s: "
          f"{tg_loop / tg_vec:.1f}x (target >= 5x; the numpy loop has no gradient)")
    if rel_np > 1e-9:
        raise SystemExit("the numpy loop and the vectorised version disagree")
    if rel > 1e-9:
        raise SystemExit("the torch loop and the vectorised version disagree")


if __name__ == "__main__":
    main()
