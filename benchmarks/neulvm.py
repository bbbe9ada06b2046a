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

Two more comparisons, about the EM of the chapter (issue 27, item 2):

- **Restarts in one tensor against a loop.** The book's MAP-EM runs ``--restarts`` (5) random
  starts. Their evaluations can share one tensor dimension: the ``B`` networks side by side as
  one network of ``3 B`` populations with a block-diagonal sign pattern (each restart's own
  parameters, recorded neurons and latent; its tables ``(3 B, A, T)``), which is how the
  restarts' populations would be batched. The script checks that the stacked value equals the sum
  of the ``B`` separate ones (relative difference below 1e-12) and the gradients each restart's
  own (below 1e-11: the stack sums in another order), and times value + gradient with respect to the latent (the E-step's) and to the 12 B
  parameters (the M-step's), one call on the stack against a loop of ``B`` calls.
- **An EM round, now against the chapter's code before issue 27** (``--previous``, default
  ``8506e20``, read with ``git show`` from this clone; skipped where git or the commit is
  missing): one round of ``fit_em`` (M-step of 40 then E-step of 40 L-BFGS-B iterations) from
  the same draw and smoothed latent. Now with the book's settings (Laplace-corrected objective,
  first M-step within a factor 1.5 of the draw), then with the authors' MAP objective of the
  previous code, then the previous code itself. The objectives differ, so the optimisers make
  different numbers of evaluations: it prints the time per round and per evaluation of the
  likelihood (counted), and the loss after the round (the previous code and the MAP objective
  now should print the same).

A ratio of the stack to the loop above 1 that falls towards 1 when glibc keeps its freed pages
(``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736``) says that the
stack's larger buffers cost page faults, not arithmetic.

It is a side-by-side comparison, not a timed test.

Usage: ``python benchmarks/neulvm.py [--trial-s 10] [--ages 100] [--repeat 5] [--restarts 5]
[--previous 8506e20]``
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.linalg import block_diag  # noqa: E402
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


def stacked(nets: list[ms.Network], trial: ms.Trial) -> tuple[ms.Network, ms.Trial]:
    """``B`` networks (of ``M`` populations each) fitted to one trial as one network of ``B M``
    populations with a block-diagonal sign pattern, and the trial repeated for each: the
    restarts batched along the population dimension of every tensor of the likelihood."""
    B, m = len(nets), nets[0].m
    net = ms.Network(n=sum((k.n for k in nets), ()),
                     **{a: np.concatenate([getattr(k, a) for k in nets])
                        for a in ("alpha_m", "j", "mu", "f_t", "tau_s")},
                     sign=block_diag(*[k.sign for k in nets]), t_ref=nets[0].t_ref,
                     names=tuple(f"{p}.{b}" for b in range(B) for p in nets[0].names),
                     leak=nets[0].leak)
    big = ms.make_trial(np.tile(trial.y, (1, B)),
                        np.concatenate([trial.population + m * b for b in range(B)]),
                        trial.dt, trial.start, m=m * B, z_history=np.tile(trial.z_history, (1, B)))
    return net, big


def restarts_section(net: ms.Network, trial: ms.Trial, z, ages: int, B: int, repeat: int) -> None:
    """Value + gradient of ``B`` restarts: one call on the stacked network against ``B`` calls."""
    u = np.random.default_rng(7).uniform(0.4, 2.0, (B, net.theta.size))
    nets = [net.with_theta(net.theta * ub) for ub in u]
    big, big_trial = stacked(nets, trial)
    zb = np.tile(z, (1, B))

    def grad_z(nt, tr, zz):
        x = torch.tensor(zz, requires_grad=True)
        loss = sum(ms.neg_log_joint(nt, tr, x, ages, laplace=True))
        loss.backward()
        return float(loss.detach()), x.grad.numpy()

    def grad_theta(nt, tr, zz):
        th = torch.tensor(nt.theta, requires_grad=True)
        loss = sum(ms.neg_log_joint(nt, tr, zz, ages, theta=th, laplace=True))
        loss.backward()
        return float(loss.detach()), th.grad.numpy()

    print(f"\n{B} restarts (random draws of U[0.4, 2] x truth), value + gradient of the "
          f"Laplace-corrected objective: one call on {B} networks side by side (3 x {B} "
          f"populations) against a loop of {B} calls")
    for name, f in (("latent (E-step)", grad_z), ("parameters (M-step)", grad_theta)):
        def loop(f=f):
            return [f(nt, trial, z) for nt in nets]

        def one(f=f):
            return f(big, big_trial, zb)

        loop(), one()  # warm the allocator
        t_loop = t_one = float("inf")
        for _ in range(repeat):  # interleaved, so that both see the same load
            t, parts = best_time(loop, 1)
            t_loop = min(t_loop, t)
            t, whole = best_time(one, 1)
            t_one = min(t_one, t)
        total = sum(v for v, _ in parts)
        rel = abs(whole[0] - total) / abs(total)
        # side by side: the latent's gradient is (T, 3 B), the parameters' 4 rows
        # [alpha, j, mu, f_t] of 3 B each
        def cols(g):
            return g if g.ndim == 2 else g.reshape(4, -1)

        g_loop = np.concatenate([cols(g) for _, g in parts], 1)
        g_one = cols(whole[1])
        g_rel = float(np.abs(g_one - g_loop).max() / np.abs(g_loop).max())
        print(f"  {name:20s} loop {t_loop:.3f} s, one tensor {t_one:.3f} s: the tensor takes "
              f"{t_one / t_loop:.2f}x the loop (value {rel:.1e}, gradient {g_rel:.1e} relative)")
        # the stack sums in another order (grouped convolution, sums over 3 B populations):
        # rounding of sums of ~1e4 terms, measured 0 (value) and <= 2e-13 (gradient)
        if rel > 1e-12 or g_rel > 1e-11:
            raise SystemExit(f"the stacked restarts disagree with the loop ({name})")


def previous_module(rev: str):
    """``lib/mesoscopic.py`` at git revision ``rev`` of this clone as a module (``None`` and the
    reason where git or the revision is missing)."""
    root = Path(__file__).resolve().parents[1]
    try:
        src = subprocess.run(["git", "show", f"{rev}:lib/mesoscopic.py"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"git show {rev}:lib/mesoscopic.py failed ({e})"
    spec = importlib.util.spec_from_loader(f"mesoscopic_{rev}", loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    exec(compile(src, f"{rev}:lib/mesoscopic.py", "exec"), mod.__dict__)
    return mod, ""


@contextlib.contextmanager
def counted(mod):
    """Count the calls of ``mod._terms`` (the likelihood of every E- and M-step evaluation)
    while the block runs; yields the one-element list of the count."""
    calls, inner = [0], mod._terms

    def wrapper(*a, **k):
        calls[0] += 1
        return inner(*a, **k)

    mod._terms = wrapper
    try:
        yield calls
    finally:
        mod._terms = inner


def em_round_section(run: ms.MicroRun, y, dt: float, H: int, ages: int, rev: str) -> None:
    """One EM round (M-step then E-step, 40 L-BFGS-B iterations each) now and at ``rev``."""
    old, why = previous_module(rev) if rev else (None, "--previous is empty")
    print("\none EM round (M-step of 40, then E-step of 40 L-BFGS-B iterations) from one draw "
          "of U[0.4, 2] x truth and the smoothed spikes")
    rows = [("now, book settings (Laplace, trust 1.5)", ms, {"laplace": True, "trust": 1.5}),
            ("now, MAP objective (as before)", ms, {})]
    if old is None:
        print(f"  the previous code is skipped: {why}")
    else:
        rows.append((f"{rev} (before issue 27)", old, {}))
    u = np.random.default_rng(3).uniform(0.4, 2.0, 12)
    for label, mod, kw in rows:
        gt = mod.winner_take_all()
        trial = mod.make_trial(y, run.population, dt, H)
        z0 = mod.smoothed_latent(trial)
        net0 = gt.with_theta(gt.theta * u)
        with counted(mod) as calls:
            t = time.perf_counter()
            em = mod.fit_em(net0, trial, z0, reference=gt, n_ages=ages, n_iter=1, m_iter=40,
                            e_iter=40, **kw)
            t = time.perf_counter() - t
        print(f"  {label:42s} {t:6.2f} s, {calls[0]:3d} evaluations, "
              f"{t / calls[0] * 1e3:5.1f} ms each (loss after the E-step {em.losses[-1]:.1f})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trial-s", type=float, default=10.0, help="scored trial in s (default 10)")
    ap.add_argument("--ages", type=int, default=100, help="age bins of the table (default 100)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="timings of the vectorised version and of the numpy loop (best kept)")
    ap.add_argument("--restarts", type=int, default=5,
                    help="restarts batched in one tensor against a loop (default 5, the book's)")
    ap.add_argument("--previous", default="8506e20",
                    help="git revision of the chapter's code before issue 27 (default 8506e20; "
                         "empty: skip the EM round comparison)")
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
    restarts_section(net, trial, zt, args.ages, args.restarts, args.repeat)
    em_round_section(run, y[0], dt, H, args.ages, args.previous)


if __name__ == "__main__":
    main()
