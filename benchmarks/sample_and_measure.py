"""Speed of the spiking network of lib/sample_measure.py against the per-step loops a user writes.

Two computations of the chapter ``sample-and-measure``, each timed side by side in one run on
the same network and the same random numbers (float64, one thread), at two sizes (the default
20 trials, and the 400 trials of the chapter's evaluation):

- the free-running simulation without gradients (how the chapter samples its evaluation
  trials): :meth:`lib.sample_measure.RSNN.free_run` against the loop over time bins that a
  competent user writes, batched over trials and vectorised over units, once in numpy and once
  in torch (``numpy_free_run``, ``torch_free_run`` below). All three must give the same spikes;
- the teacher-forced likelihood: :meth:`lib.sample_measure.RSNN.teacher_forced` with
  :func:`lib.sample_measure.mle_loss` against the same loss written plainly in numpy (one
  product per delay over all trials and bins, ``numpy_teacher_forced``); the losses must agree
  to 1e-10.

The ratios are baseline time / library time (above 1: the library is faster). Scalar Python
loops (:func:`lib.sample_measure.simulate_reference`) are a correctness reference for the
tests, not a baseline. It is a side-by-side comparison, not a timed test.

Usage: ``python benchmarks/sample_and_measure.py [--trials 20 400] [--bins 60] [--visible 16]
[--hidden 16] [--repeat 30]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lib import sample_measure as sm  # noqa: E402


def numpy_free_run(W, W_in, b, stim, U):
    """Free run of one network, a plain numpy loop over bins (trials and units vectorised).

    ``W`` ``(N, N, D)``, ``W_in`` ``(N, K)``, ``b`` ``(N,)``, ``stim`` ``(T, K)``, ``U``
    ``(B, T, N)``; returns ``(p, z)``, each ``(B, T, N)``.
    """
    B, T, N = U.shape
    D = W.shape[2]
    drive = stim @ W_in.T + b
    Wd = [W[:, :, d].T.copy() for d in range(D)]
    p, z = np.zeros((B, T, N)), np.zeros((B, T, N))
    for t in range(T):
        v = drive[t] + sum(z[:, t - d] @ Wd[d - 1] for d in range(1, min(t, D) + 1))
        p[:, t] = 1.0 / (1.0 + np.exp(-v))
        z[:, t] = p[:, t] > U[:, t]
    return p, z


def torch_free_run(W, W_in, b, stim, U):
    """The same loop in torch (no gradients): the user's version on torch tensors."""
    B, T, N = U.shape
    D = W.shape[2]
    drive = stim @ W_in.T + b
    Wd = [W[:, :, d].T.contiguous() for d in range(D)]
    p, z = torch.zeros(B, T, N, dtype=W.dtype), torch.zeros(B, T, N, dtype=W.dtype)
    with torch.no_grad():
        for t in range(T):
            v = drive[t] + sum(z[:, t - d] @ Wd[d - 1] for d in range(1, min(t, D) + 1))
            p[:, t] = torch.sigmoid(v)
            z[:, t] = (p[:, t] > U[:, t]).to(W.dtype)
    return p, z


def numpy_teacher_forced(W, W_in, b, stim, s):
    """Mean cross-entropy of recorded spikes ``s`` ``(B, T, n)``, written plainly in numpy."""
    D = W.shape[2]
    v = np.broadcast_to(stim @ W_in.T + b, s.shape).copy()
    for d in range(1, D + 1):
        v[:, d:] += s[:, :-d] @ W[:, :, d - 1].T
    return float(np.mean(s * np.logaddexp(0.0, -v) + (1 - s) * np.logaddexp(0.0, v)))


def interleaved(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Best of ``repeat`` timings of each function, the functions run in turn in every round
    (so that a change of the machine's load hits all of them alike); and their last results."""
    best, out = {k: float("inf") for k in fns}, {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best, out


def run(B: int, T: int, nv: int, nh: int, repeat: int) -> bool:
    """Time and compare at one size; print the table; return whether all results agree."""
    rng = np.random.default_rng(1)
    stim = sm.stimulus(T, 4, rng)
    teacher = sm.make_teacher(nv, nh, 2.0, rng)
    net = teacher.network()
    U = rng.random((1, B, T, nv + nh))
    W, W_in, b = teacher.W, teacher.W_in, teacher.b
    st, Ut = torch.tensor(stim), torch.tensor(U)
    Wt, W_int, bt = (torch.tensor(a) for a in (W, W_in, b))

    def lib_free():
        with torch.no_grad():
            return net.free_run(st, B, uniforms=Ut)

    t, r = interleaved({"lib": lib_free,
                        "np": lambda: numpy_free_run(W, W_in, b, stim, U[0]),
                        "torch": lambda: torch_free_run(Wt, W_int, bt, st, Ut[0])}, repeat)
    t_lib, t_np, t_th = t["lib"], t["np"], t["torch"]
    sim, (p_np, z_np), (p_th, z_th) = r["lib"], r["np"], r["torch"]
    same = (np.array_equal(sim.z[0].numpy(), z_np) and np.array_equal(z_th.numpy(), z_np))
    dp = float(max(np.abs(sim.p[0].numpy() - p_np).max(), np.abs(p_th.numpy() - p_np).max()))

    vis = sm.make_teacher(nv, 0, 0.0, np.random.default_rng(2))
    vnet = vis.network()
    spikes = z_np[:, :, :nv]
    sp_t = torch.tensor(spikes)

    def lib_tf():
        with torch.no_grad():
            v, _ = vnet.teacher_forced(sp_t, st)
            return float(sm.mle_loss(v, sp_t[None])[0])

    t, r = interleaved({"lib": lib_tf, "np": lambda: numpy_teacher_forced(
        vis.W, vis.W_in, vis.b, stim, spikes)}, repeat)
    (t_lib_tf, l_lib), (t_np_tf, l_np) = (t["lib"], r["lib"]), (t["np"], r["np"])
    print(f"{B} trials x {T} bins, {nv} recorded + {nh} hidden units, 2 delays, float64:")
    print(f"  free run      RSNN.free_run     {1e3 * t_lib:8.2f} ms")
    print(f"                numpy step loop   {1e3 * t_np:8.2f} ms   ratio {t_np / t_lib:5.2f}x")
    print(f"                torch step loop   {1e3 * t_th:8.2f} ms   ratio {t_th / t_lib:5.2f}x"
          f"   (spikes identical: {same}, max |dp| = {dp:.1e})")
    print(f"  teacher-forced loss, library    {1e3 * t_lib_tf:8.2f} ms")
    print(f"                plain numpy       {1e3 * t_np_tf:8.2f} ms   ratio "
          f"{t_np_tf / t_lib_tf:5.2f}x   (|dL| = {abs(l_lib - l_np):.1e})")
    return same and dp < 1e-10 and abs(l_lib - l_np) < 1e-10


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[20, 400],
                    help="trial counts to run (default 20 400)")
    ap.add_argument("--bins", type=int, default=60, help="bins per trial (default 60)")
    ap.add_argument("--visible", type=int, default=16, help="recorded units (default 16)")
    ap.add_argument("--hidden", type=int, default=16, help="hidden units of the free run (default 16)")
    ap.add_argument("--repeat", type=int, default=30, help="timings per version (best kept)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ok = all([run(B, args.bins, args.visible, args.hidden, args.repeat) for B in args.trials])
    if not ok:
        raise SystemExit("the library and the plain loops disagree")


if __name__ == "__main__":
    main()
