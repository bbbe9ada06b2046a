"""The protocol of the chapter ``neulvm``: presets per scale, experiments, figures.

The chapter reproduces Wang, Schmutz, Bellec & Gerstner (2022), "Mesoscopic modeling of hidden
spiking neurons", NeurIPS 35 (arXiv:2205.13493), on its winner-take-all experiment (Fig. 4). The
science (the microscopic network, the mesoscopic model, its likelihood and the EM fit, the
measures of metastability) is :mod:`lib.mesoscopic`; this module holds what belongs to the
chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- the simulated ground truth :func:`ground_truth` (the 1,000-neuron network, 9 recorded
  neurons), registered as the spike data set ``"neulvm-winner-take-all"`` with :mod:`lib.data`,
  and :func:`pick_window` (a training window that contains a switch);
- the experiments: :func:`bias_runs` (the mesoscopic model with ground-truth parameters at two
  time steps), :func:`meso_errors` (rates and fluctuations against the ground truth),
  :func:`one_step_prediction` (the prediction of the true activity, authors' forward-Euler
  membrane step against the exact one, with and without the finite-size term),
  :func:`coupling_profile`, :func:`coupling_argmin`, :func:`fit_couplings`,
  :func:`latent_scores`, :func:`fit`, :func:`objective_table`, :func:`marginal_table` (the
  likelihood with the latent integrated out, by a particle filter), :func:`em_from_truth`,
  :func:`free_runs`, :func:`perturbation`, :func:`step_check` (the M-step given the true
  activity at several steps), :func:`switch_sensitivity` (switches against the couplings);
- the controls of the claims: :func:`mean_field_run` (the model without finite-size noise),
  :func:`scaled_couplings` (a wrong model for the E-step), and the likelihood without its
  finite-size term (``finite_size=False``);
- figures: :func:`plot_rates`, :func:`plot_latent`, :func:`plot_histograms`,
  :func:`plot_switch_probability`, :func:`plot_sensitivity`, and :func:`explore_meso`, the
  explorer of the theory page.

The paper's training data set is not distributed: every number comes from our simulation of the
ground-truth network, and every data label says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import pearsonr, spearmanr

from lib import data as _data
from lib import mesoscopic as ms
from lib import plotting, scales, seeds

#: Name of the registered spike data set.
DATASET = "neulvm-winner-take-all"
#: Streams of the random draws (labels of :func:`lib.seeds.rng` after the seed): micro runs,
#: meso runs, init, perturbation micro and meso runs.
STREAM_MICRO, STREAM_MESO, STREAM_INIT, STREAM_PERT_MICRO, STREAM_PERT_MESO, STREAM_PEM = range(6)


@dataclass(frozen=True)
class Preset:
    """The sizes of one scale.

    Attributes:
        dt_micro: step of the microscopic ground truth (s).
        dt: bin of the mesoscopic model and of the fit (s).
        dt_fine: the finer mesoscopic step of the discretisation check (s).
        n_ages: age bins of the table at ``dt``.
        n_ages_fine: age bins at ``dt_fine``.
        gt_trials: independent runs of the long ground-truth simulation.
        gt_s: length of each (s).
        history_s: history of a training window (s).
        estep_s: trial of the E-step check (s).
        estep_iter: iterations of that E-step.
        train_s: trial of the full EM fit (s).
        em_rounds: EM rounds.
        m_iter: L-BFGS-B iterations per M-step.
        e_iter: L-BFGS-B iterations per E-step.
        restarts: random initialisations of the EM; the one with the lowest objective on the
            training trial is kept (see :func:`fit`).
        restart_rounds: EM rounds of every restart before the choice (0: all ``em_rounds``);
            the chosen restart then runs the remaining rounds.
        e_first: every restart begins with an E-step under its initial parameters, before
            its first M-step (the authors begin with the M-step, on the smoothed spikes).
        trust: the first M-step of every restart stays within this factor of its initial
            parameters (0: the whole box, as the authors; see :func:`lib.mesoscopic.fit_em`).
        truth_rounds: EM rounds of :func:`em_from_truth` on the page (0: not run).
        step_check: ``(dt, leak)`` pairs of :func:`step_check` (the M-step given the true
            activity at each step and membrane step; empty: not run).
        sensitivity: coupling scales of :func:`switch_sensitivity` (empty: not run).
        particles: particles of :func:`marginal_table` (0: not run).
        pem_rounds: rounds of the particle EM that :func:`refine` runs after the MAP-EM (0:
            none, the fit is the MAP-EM's).
        pem_particles: particles of each of its filters.
        pem_paths: latent paths per round.
        pem_relax: its over-relaxation factor (see :func:`lib.mesoscopic.particle_em`).
        laplace: E- and M-steps on the Laplace-corrected objective (``True``, the book's
            deviation from the paper; see :func:`lib.mesoscopic.m_step` and
            :func:`lib.mesoscopic.e_step`) or on the joint likelihood (``False``, the
            authors' MAP-EM).
        profile: coupling scales of the likelihood profile.
        amplitudes: stimulus amplitudes of the perturbation (voltage units per second).
        pert_trials: trials per amplitude.
        pert_onset_s: stimulus onset (s); the stimulus lasts ``pert_len_s``.
        pert_len_s: stimulus length (s).
        pert_total_s: trial length (s).
        note: what the scale is.
    """

    dt_micro: float
    dt: float
    dt_fine: float
    n_ages: int
    n_ages_fine: int
    gt_trials: int
    gt_s: float
    history_s: float
    estep_s: float
    estep_iter: int
    train_s: float
    em_rounds: int
    m_iter: int
    e_iter: int
    restarts: int
    profile: tuple[float, ...]
    amplitudes: tuple[float, ...]
    pert_trials: int
    pert_onset_s: float = 0.7
    pert_len_s: float = 0.5
    pert_total_s: float = 2.0
    laplace: bool = True
    restart_rounds: int = 0
    e_first: bool = False
    trust: float = 0.0
    truth_rounds: int = 0
    step_check: tuple[tuple[float, str], ...] = ()
    sensitivity: tuple[float, ...] = ()
    particles: int = 0
    pem_rounds: int = 0
    pem_particles: int = 500
    pem_paths: int = 2
    pem_relax: float = 2.0
    note: str = ""

    @property
    def gt_total_s(self) -> float:
        """Simulated ground-truth time in all (s)."""
        return self.gt_trials * self.gt_s


_PROFILE = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5)

PRESETS = {
    "ci": Preset(dt_micro=5e-4, dt=0.004, dt_fine=0.001, n_ages=100, n_ages_fine=400,
                 gt_trials=2, gt_s=12.0, history_s=1.0, estep_s=4.0, estep_iter=100,
                 train_s=4.0, em_rounds=1, m_iter=5, e_iter=5, restarts=1, profile=_PROFILE,
                 amplitudes=(0.0, 10.0), pert_trials=4,
                 step_check=((0.004, "euler"), (0.004, "exp")), sensitivity=(0.97, 1.0, 1.03),
                 particles=100, pem_rounds=1, pem_particles=50, pem_paths=1,
                 note="2 x 12 s of ground truth; E-step (100 iterations) and one short EM round "
                      "on a 4-s window, one round of particle EM (50 particles); "
                      "a 2-amplitude perturbation without claims"),
    "book": Preset(dt_micro=5e-4, dt=0.004, dt_fine=0.001, n_ages=100, n_ages_fine=400,
                   gt_trials=4, gt_s=50.0, history_s=1.0, estep_s=4.0, estep_iter=200,
                   train_s=10.0, em_rounds=3, m_iter=40, e_iter=40, restarts=5,
                   trust=1.5, truth_rounds=2, profile=_PROFILE,
                   amplitudes=(0.0, 2.0, 4.0, 6.0, 10.0), pert_trials=32,
                   step_check=((0.004, "euler"), (0.004, "exp"), (0.002, "exp")),
                   sensitivity=(0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03), particles=1000,
                   pem_rounds=14, pem_particles=500, pem_paths=2, pem_relax=2.0,
                   note="4 x 50 s of ground truth (dt 0.5 ms); E-step check of 200 iterations; EM "
                        "on 10 s (5 restarts of 3 rounds of 40 + 40 iterations, the first "
                        "M-step within a factor 1.5 of the draw, the best by the "
                        "Laplace-corrected objective; 0.4-s age table, Laplace-corrected E- and "
                        "M-steps); 2 EM rounds from the truth "
                        "per first latent; then 14 rounds of particle EM (500 particles, 2 "
                        "paths, over-relaxed x 2); "
                        "the M-step given the true activity at 4 and 2 ms; "
                        "switches against coupling scale at 1 ms; the marginal likelihood by "
                        "1,000 particles; 5 amplitudes x 32 trials"),
    # The paper's settings: micro at 0.2 ms, 5 restarts, <= 20 EM rounds, M-step <= 200
    # iterations, 1-s age table (250 bins of 4 ms), 20 trials per amplitude, the authors'
    # MAP-EM objective (laplace=False). Documented, not run.
    "paper": Preset(dt_micro=2e-4, dt=0.004, dt_fine=0.001, n_ages=250, n_ages_fine=500,
                    gt_trials=4, gt_s=50.0, history_s=1.0, estep_s=4.0, estep_iter=200,
                    train_s=10.0, em_rounds=20, m_iter=200, e_iter=200, restarts=5,
                    profile=_PROFILE, amplitudes=(0.0, 2.0, 4.0, 6.0, 10.0), pert_trials=20,
                    laplace=False, pem_rounds=20, pem_particles=1000, pem_paths=4,
                    note="the paper's EM settings (5 restarts, <= 20 rounds, 200 iterations, "
                         "1-s age table, MAP-EM objective), micro at 0.2 ms; then the book's "
                         "particle EM (20 rounds, 1,000 particles, 4 paths)"),
}


def preset(scale: str) -> Preset:
    """The :class:`Preset` of ``scale`` (``"ci"``, ``"book"`` or ``"paper"``).

    Raises:
        ValueError: for an unknown scale.
    """
    return scales.pick(PRESETS, scale)


# ----------------------------------------------------------------------------------------------
# The simulated ground truth
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundTruth:
    """The long simulation of the ground-truth network.

    Attributes:
        net: the network (:func:`lib.mesoscopic.winner_take_all`).
        z: population activity per bin of ``dt`` ``(trials, bins, M)`` (fraction that spiked).
        y: recorded spikes per bin ``(trials, bins, 9)`` (from the registered data set).
        population: population of each recorded neuron.
        dt: the bin (s).
        spikes: the recorded spike trains (:class:`lib.data.SpikeTrains`).
        attempts: simulations run until one contained a usable switch.
    """

    net: ms.Network
    z: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    population: np.ndarray
    dt: float
    spikes: _data.SpikeTrains = field(repr=False)
    attempts: int = 1

    @property
    def rates(self) -> np.ndarray:
        """Population rates (Hz) ``(trials, bins, M)``."""
        return self.z / self.dt

    @property
    def description(self) -> str:
        """The data label of the claims."""
        return self.spikes.description


def _spike_trains(run: ms.MicroRun, description: str) -> _data.SpikeTrains:
    """The recorded neurons as spike times (the middle of their micro step)."""
    labels = tuple(f"{ms.POPULATIONS[p]}-{i % 3}" for i, p in enumerate(run.population))
    times = tuple(tuple((np.flatnonzero(run.spikes[b, :, i]) + 0.5) * run.dt
                        for i in range(run.spikes.shape[2])) for b in range(run.spikes.shape[0]))
    return _data.SpikeTrains(times, run.duration_s, DATASET, "simulated", description, labels)


def pick_window(z: np.ndarray, dt: float, history_s: float, trial_s: float,
                margin_s: float = 1.0):
    """The first window (history + trial, starting on a whole second) whose trial contains a
    switch of winner at least ``margin_s`` from its edges; ``None`` if there is none.

    Returns:
        ``(trial_index, first_bin)`` or ``None``.
    """
    H, L = int(round(history_s / dt)), int(round(trial_s / dt))
    mg = int(round(margin_s / dt))
    step = int(round(1.0 / dt))
    for b in range(z.shape[0]):
        sw = np.flatnonzero(np.diff(ms.winner_states(z[b] / dt, dt))) + 1
        for i0 in range(0, z.shape[1] - H - L + 1, step):
            lo, hi = i0 + H + mg, i0 + H + L - mg
            if np.any((sw >= lo) & (sw < hi)):
                return b, i0
    return None


_GT_CACHE: dict = {}


def ground_truth(P: Preset, seed: int) -> GroundTruth:
    """Simulate the 1,000-neuron network, register its 9 recorded neurons as a data set.

    Runs ``P.gt_trials`` independent runs of ``P.gt_s`` seconds; if none holds a window of
    ``history_s + train_s`` with a switch (a short ``ci`` run may not), simulates again from the
    next derived seed (up to 5 attempts, counted in :attr:`GroundTruth.attempts`). The result
    is cached per preset and seed.
    """
    if (P, seed) in _GT_CACHE:
        return _GT_CACHE[(P, seed)]
    net = ms.winner_take_all()
    trial_s = max(P.train_s, P.estep_s)
    for attempt in range(5):
        run = ms.simulate_micro(net, P.gt_s, seeds.rng(seed, STREAM_MICRO, attempt),
                                dt_s=P.dt_micro, n_trials=P.gt_trials, n_record=3)
        z, _ = ms.rebin(run, P.dt)
        if pick_window(z, P.dt, P.history_s, trial_s) is not None:
            break
    desc = (f"simulated ground-truth network (1,000 LIF neurons with escape noise, E1/E2/I = "
            f"400/400/200, dt {P.dt_micro * 1e3:g} ms, {P.gt_trials} x {P.gt_s:g} s, seed {seed}): "
            f"9 recorded neurons; the paper's data set is not distributed")
    trains = _spike_trains(run, desc)
    _data.register_spikes(DATASET, lambda: trains, "neuLVM: simulated winner-take-all network, "
                          "9 recorded neurons (the chapter's ground truth)")
    loaded = _data.load_spikes(DATASET)
    y = loaded.binned(P.dt)[:, :z.shape[1]] > 0
    out = GroundTruth(net, z, y, run.population, P.dt, loaded, attempt + 1)
    _GT_CACHE[(P, seed)] = out
    return out


def window_trial(gt: GroundTruth, P: Preset, trial_s: float):
    """The training window: a :class:`lib.mesoscopic.Trial` and the true latent of its trial.

    Returns:
        ``(trial, z_true, t0_s)``: ``t0_s`` is the start of the scored trial within its run.
    """
    picked = pick_window(gt.z, P.dt, P.history_s, trial_s)
    if picked is None:
        raise RuntimeError("no window with a switch in the ground truth")
    b, i0 = picked
    H, L = int(round(P.history_s / P.dt)), int(round(trial_s / P.dt))
    trial = ms.make_trial(gt.y[b, i0:i0 + H + L], gt.population, P.dt, H)
    return trial, gt.z[b, i0 + H:i0 + H + L], (i0 + H) * P.dt


def ground_truth_stats(rates: np.ndarray, dt: float) -> dict:
    """State rates, switches and dwell times over independent runs ``(trials, T, M)``."""
    rows, n_sw, dwells = [], 0, []
    for r in rates:
        st = ms.winner_states(r, dt)
        k, d = ms.dwell_times(st, dt)
        rows.append(ms.state_rates(r, st))
        n_sw += k
        dwells.extend(d)
    dw = np.asarray(dwells)
    return {"E_high": float(np.mean([r[0] for r in rows])),
            "E_low": float(np.mean([r[1] for r in rows])),
            "I": float(np.mean([r[2] for r in rows])), "switches": int(n_sw),
            "dwells": dw, "mean_dwell": float(dw.mean()) if dw.size else float("nan")}


# ----------------------------------------------------------------------------------------------
# Experiments
# ----------------------------------------------------------------------------------------------


def bias_runs(P: Preset, seed: int, net: ms.Network | None = None) -> dict:
    """The mesoscopic model with ground-truth parameters at ``dt`` and at ``dt_fine``.

    Each as ``gt_trials`` runs of ``gt_s`` seconds (the same simulated time as the ground truth).

    Returns:
        ``{dt: MesoRun}`` for the two steps.
    """
    net = ms.winner_take_all() if net is None else net
    out = {}
    for k, (dt, A) in enumerate(((P.dt, P.n_ages), (P.dt_fine, P.n_ages_fine))):
        out[dt] = ms.simulate_meso(net, P.gt_s, seeds.rng(seed, STREAM_MESO, k), dt_s=dt, n_ages=A,
                                   n_trials=P.gt_trials)
    return out


def bias_table(gt: GroundTruth, runs: dict, P: Preset) -> pd.DataFrame:
    """State rates and switches of the ground truth and of the mesoscopic runs."""
    rows = {"microscopic ground truth": ground_truth_stats(gt.rates, gt.dt)}
    for dt, run in runs.items():
        rows[f"mesoscopic, ground-truth parameters, dt {dt * 1e3:g} ms"] = \
            ground_truth_stats(run.rates, dt)
    df = pd.DataFrame(rows).T[["E_high", "E_low", "I", "switches", "mean_dwell"]]
    return df.rename(columns={"E_high": "E high (Hz)", "E_low": "E low (Hz)", "I": "I (Hz)",
                              "mean_dwell": "mean dwell (s)"})


def mean_field_run(P: Preset, seed: int, net: ms.Network | None = None) -> ms.MesoRun:
    """The control of the model checks: the deterministic mean-field model at ``dt_fine``.

    The mesoscopic step without its finite-size noise (``Z_t = Zbar_t``), one run of ``gt_s``
    seconds from the same initial rates (a deterministic run needs no more).
    """
    net = ms.winner_take_all() if net is None else net
    return ms.simulate_meso(net, P.gt_s, seeds.rng(seed, STREAM_MESO, 9), dt_s=P.dt_fine,
                            n_ages=P.n_ages_fine, n_trials=1, noise=False)


def state_fluctuations(rates: np.ndarray, dt: float, bin_s: float) -> np.ndarray:
    """Standard deviations (Hz) of the winning E, losing E and I rates in bins of ``bin_s``.

    ``rates`` ``(trials, T, M)`` are averaged over bins of ``bin_s`` (a multiple of ``dt``); the
    winner is that of :func:`lib.mesoscopic.winner_states` on the binned rates.
    """
    k = int(round(bin_s / dt))
    r = np.asarray(rates, float)
    r = r[:, :r.shape[1] // k * k].reshape(r.shape[0], -1, k, r.shape[2]).mean(2)
    hi, lo, inh = [], [], []
    for x in r:
        st = ms.winner_states(x, bin_s)
        hi.append(np.where(st == 0, x[:, 0], x[:, 1]))
        lo.append(np.where(st == 0, x[:, 1], x[:, 0]))
        inh.append(x[:, 2])
    return np.array([np.concatenate(v).std() for v in (hi, lo, inh)])


def meso_errors(gt: GroundTruth, rates: np.ndarray, dt: float, P: Preset) -> pd.Series:
    """Relative errors of a mesoscopic run against the ground truth.

    The mean state rates (``E high``, ``E low``, ``I``) and their fluctuations (``sd E high``,
    ``sd E low``, ``sd I``: standard deviations of the rates in bins of ``P.dt``, within the
    states; see :func:`state_fluctuations`).
    """
    keys = ("E_high", "E_low", "I")
    a, b = ground_truth_stats(gt.rates, gt.dt), ground_truth_stats(rates, dt)
    mean = np.array([b[k] / a[k] - 1 for k in keys])
    sd = state_fluctuations(rates, dt, P.dt) / state_fluctuations(gt.rates, gt.dt, P.dt) - 1
    names = ["E high", "E low", "I"] + [f"sd {n}" for n in ("E high", "E low", "I")]
    return pd.Series(np.concatenate([mean, sd]), index=names)


def scaled_couplings(net: ms.Network, s: float) -> np.ndarray:
    """The parameters of ``net`` with every coupling scaled by ``s``."""
    th = net.theta.copy()
    th[net.m:2 * net.m] *= s
    return th


def one_step_prediction(gt: GroundTruth, P: Preset) -> pd.DataFrame:
    """The one-step prediction ``Zbar`` of the true activity, four ways, on every run.

    For the authors' forward-Euler membrane step and the exact one (``leak``, see
    :class:`lib.mesoscopic.Network`), with and without the finite-size term ``Lambda (1 -
    sum_a m_a)``, given the true activity of each ground-truth run (its first ``history_s``
    as history) and the true parameters: the population part of the negative log-likelihood
    per scored bin, and the mean of the standardised residuals ``(Z - Zbar) / sqrt(Zbar / N
    + 0.1 dt / N)`` of each population (0 for an unbiased prediction; negative: ``Zbar`` too
    high), over all runs.

    Returns:
        One row per (membrane step, finite-size term): ``nll_z per bin``, ``resid E1``,
        ``resid E2``, ``resid I``.
    """
    H = int(round(P.history_s / P.dt))
    N = np.asarray(gt.net.n, float)
    rows = {}
    with torch.no_grad():
        for leak in ms.LEAKS:
            nl = replace(gt.net, leak=leak)
            for fs in (True, False):
                nll, res = 0.0, []
                for b in range(gt.z.shape[0]):
                    trial = ms.make_trial(gt.y[b], gt.population, P.dt, H,
                                          z_history=gt.z[b, :H])
                    z = gt.z[b, H:]
                    _, nz, zb = ms.neg_log_joint(nl, trial, z, P.n_ages, return_zbar=True,
                                                 finite_size=fs)
                    zb = zb.numpy()[H:]
                    nll += float(nz)
                    res.append((z - zb) / np.sqrt(zb / N + ms.VAR_FLOOR * P.dt / N))
                r = np.concatenate(res)
                row = {"nll_z per bin": nll / r.shape[0]}
                row.update({f"resid {n}": float(r[:, k].mean())
                            for k, n in enumerate(gt.net.names)})
                rows[(leak, "with" if fs else "without")] = row
    out = pd.DataFrame(rows).T
    out.index.names = ["membrane step", "finite-size term"]
    return out


def coupling_profile(net: ms.Network, trial: ms.Trial, z_true, P: Preset,
                     finite_size: bool = True) -> np.ndarray:
    """The negative log joint with every coupling scaled by ``s`` (``P.profile``), others fixed.

    ``finite_size=False``: the likelihood without the finite-size term (a control).
    """
    out = []
    with torch.no_grad():
        for s in P.profile:
            th = torch.as_tensor(scaled_couplings(net, s))
            ny, nz = ms.neg_log_joint(net, trial, z_true, P.n_ages, theta=th,
                                      finite_size=finite_size)
            out.append(float(ny + nz))
    return np.asarray(out)


def coupling_argmin(net: ms.Network, trial: ms.Trial, z, P: Preset,
                    finite_size: bool = True) -> float:
    """The coupling scale ``s`` in ``[0.4, 2]`` that minimises the negative log joint.

    Bounded Brent search to ``1e-4`` (the continuum limit of the profile grid).
    """
    def f(s):
        with torch.no_grad():
            th = torch.as_tensor(scaled_couplings(net, s))
            ny, nz = ms.neg_log_joint(net, trial, z, P.n_ages, theta=th, finite_size=finite_size)
        return float(ny + nz)

    res = minimize_scalar(f, bounds=(0.4, 2.0), method="bounded", options={"xatol": 1e-4})
    return float(res.x)


def fit_couplings(net: ms.Network, trial: ms.Trial, z, P: Preset, seed: int):
    """M-step over the three couplings and the three ``alpha_m``, given a latent ``z``.

    Both start from ``U[0.4, 2] x`` truth (the other parameters at the truth), 50 L-BFGS-B
    iterations. ``J`` and ``alpha_m`` are only weakly identified separately; the effective
    couplings ``J / alpha_m`` are.

    Returns:
        ``(fitted_j / true_j, fitted (J / alpha_m) / true (J / alpha_m), initial j / true j)``.
    """
    m = net.m
    u0 = seeds.rng(seed, STREAM_INIT, 99).uniform(0.4, 2.0, 2 * m)
    th = net.theta.copy()
    th[:2 * m] *= u0[np.r_[m:2 * m, 0:m]]  # couplings first draw, as before alpha_m was freed
    free = np.zeros(4 * m, bool)
    free[:2 * m] = True
    fitted, _ = ms.m_step(net.with_theta(th), trial, z, reference=net, n_ages=P.n_ages,
                          max_iter=50, free=free)
    return fitted.j / net.j, fitted.drive() / net.drive(), u0[:m]


def latent_scores(z, z_true, dt: float, sigma_s: float = 0.05, half_s: float = 0.5) -> dict:
    """Inferred against true population rates (Gaussian smoothing ``sigma_s`` of both).

    Returns:
        ``r`` and ``rmse`` (Hz): Pearson correlation and RMSE per population; ``rmse_e``: the
        RMSE of E1 and E2 together; ``rmse_switch``: the same within ``half_s`` of the first
        switch of the truth (the whole trial if it has none); ``switch_inferred`` and
        ``switch_true``: the time of the first switch of each (NaN if none).
    """
    a = ms.smooth(np.asarray(z) / dt, sigma_s, dt, axis=0)
    b = ms.smooth(np.asarray(z_true) / dt, sigma_s, dt, axis=0)
    r = np.array([pearsonr(a[:, k], b[:, k])[0] for k in range(a.shape[1])])
    err2 = (a - b) ** 2
    rmse = np.sqrt(err2.mean(0))

    def first_switch(x):
        sw = np.flatnonzero(np.diff(ms.winner_states(x / dt, dt)))
        return (sw[0] + 1) * dt if sw.size else float("nan")

    t_true = first_switch(np.asarray(z_true))
    near = slice(None)
    if np.isfinite(t_true):
        i, w = int(round(t_true / dt)), int(round(half_s / dt))
        near = slice(max(i - w, 0), i + w)
    return {"r": r, "rmse": rmse, "rmse_e": float(np.sqrt(err2[:, :2].mean())),
            "rmse_switch": float(np.sqrt(err2[near, :2].mean())),
            "switch_inferred": first_switch(np.asarray(z)), "switch_true": t_true}


@dataclass(frozen=True)
class Fit:
    """The full EM fit.

    Attributes:
        em: the best restart (:class:`lib.mesoscopic.EMFit`); after :func:`refine`, the
            particle EM's parameters and the latent of their E-step.
        init: the initial network of that restart.
        restarts: the :func:`selection_objective` of every restart (the final loss with one).
        seconds: wall time (s).
        particle: the particle EM of :func:`refine` (``None`` before it).
        map_em: the MAP-EM's end point that :func:`refine` started from (``None`` before it).
    """

    em: ms.EMFit
    init: ms.Network
    restarts: tuple[float, ...]
    seconds: float
    particle: ms.ParticleEMFit | None = None
    map_em: ms.EMFit | None = None


def selection_objective(em: ms.EMFit, trial: ms.Trial, n_ages: int, laplace: bool) -> float:
    """The objective that ranks the restarts of :func:`fit` (nats, on the training trial only).

    With ``laplace`` the Laplace-corrected objective of the end point (``nll_y`` plus the squared
    part, :func:`objective_parts`), the approximate ``-log p(y | theta)`` that the M-steps
    minimise; without it the authors' MAP-EM objective after the last E-step, which is lowest
    at a silent latent (the chapter shows it).
    """
    if not laplace:
        return float(em.losses[-1])
    return objective_parts(em.net, trial, em.z, n_ages)["Laplace-corrected"]


def fit(trial: ms.Trial, P: Preset, seed: int, rounds: int | None = None,
        laplace: bool | None = None) -> Fit:
    """The neuLVM fit: parameters from ``U[0.4, 2] x`` truth, latent from smoothed spikes, EM.

    Populations of the recorded neurons are given (as in the paper); the bounds of the M-step
    are ``[0.4, 2] x`` truth. ``laplace`` (default ``P.laplace``): the objective of both steps
    (see :func:`lib.mesoscopic.fit_em`). ``P.restarts`` random starts run ``P.restart_rounds``
    rounds each (all rounds if 0), after an E-step under their initial parameters if
    ``P.e_first``, their first M-step within a factor ``P.trust`` of their draw if it is set;
    the one with the lowest :func:`selection_objective` on the training trial (never the
    truth) is kept and runs the remaining rounds.
    """
    import time

    gt = ms.winner_take_all()
    t0 = time.perf_counter()
    lap = P.laplace if laplace is None else laplace
    n_rounds = rounds or P.em_rounds
    short = n_rounds if P.restarts == 1 or not P.restart_rounds else min(P.restart_rounds,
                                                                          n_rounds)
    z0 = ms.smoothed_latent(trial)
    best, best_init, scores = None, None, []
    for r in range(P.restarts):
        u = seeds.rng(seed, STREAM_INIT, r).uniform(0.4, 2.0, gt.theta.size)
        net0 = gt.with_theta(gt.theta * u)
        em = ms.fit_em(net0, trial, z0, reference=gt, n_ages=P.n_ages, n_iter=short,
                       m_iter=P.m_iter, e_iter=P.e_iter, laplace=lap, e_first=P.e_first,
                       trust=P.trust or None)
        scores.append(selection_objective(em, trial, P.n_ages, lap) if P.restarts > 1
                      else float(em.losses[-1]))
        if best is None or scores[-1] < min(scores[:-1]):
            best, best_init = em, net0
    if short < n_rounds and best.steps.count("M") == short:  # the chosen one did not stop
        more = ms.fit_em(best.net, trial, best.z, reference=gt, n_ages=P.n_ages,
                         n_iter=n_rounds - short, m_iter=P.m_iter, e_iter=P.e_iter, laplace=lap)
        best = ms.EMFit(more.net, more.z, best.losses + more.losses, best.steps + more.steps)
    return Fit(best, best_init, tuple(scores), time.perf_counter() - t0)


def refine(fit: Fit, trial: ms.Trial, P: Preset, seed: int) -> Fit:
    """The book's second stage: particle EM on ``p(y | theta)`` from the MAP-EM's end point.

    :func:`lib.mesoscopic.particle_em` runs ``P.pem_rounds`` rounds (``P.pem_particles``
    particles, ``P.pem_paths`` paths, M-steps of ``P.m_iter`` iterations on the joint with its
    normaliser, over-relaxed by ``P.pem_relax``, bounds ``[0.4, 2] x`` truth) and keeps the
    parameters of the highest estimated marginal likelihood (never chosen by the truth); an
    E-step of ``P.estep_iter`` iterations (the E-step check's, to convergence rather than
    the EM rounds' ``P.e_iter``) under them, from the MAP-EM's latent and with
    ``P.laplace``'s objective, gives the fit's latent. The MAP-EM's fit stays in
    :attr:`Fit.map_em`; :attr:`Fit.init` stays the initial draw of its chosen restart.

    Raises:
        ValueError: when the preset has no particle EM (``P.pem_rounds = 0``).
    """
    import time

    if P.pem_rounds < 1:
        raise ValueError("the preset has no particle EM (P.pem_rounds = 0)")
    t0 = time.perf_counter()
    pem = ms.particle_em(fit.em.net, trial, reference=ms.winner_take_all(), n_ages=P.n_ages,
                         n_rounds=P.pem_rounds, n_particles=P.pem_particles,
                         n_paths=P.pem_paths, m_iter=P.m_iter, relax=P.pem_relax,
                         rng=seeds.rng(seed, STREAM_PEM))
    z, res = ms.e_step(pem.net, trial, fit.em.z, n_ages=P.n_ages, max_iter=P.estep_iter,
                       laplace=P.laplace)
    em = ms.EMFit(pem.net, z, fit.em.losses + (res.loss,), fit.em.steps + ("E",))
    return Fit(em, fit.init, fit.restarts, fit.seconds + time.perf_counter() - t0,
               particle=pem, map_em=fit.em)


def particle_em_table(fit: Fit) -> pd.DataFrame:
    """The particle EM of :func:`refine`, one row per parameter set (round 0: the MAP-EM's end
    point): the filter's ``-log p(y | theta)`` (nats), the largest relative errors of the
    couplings and the drives, and which one was kept."""
    if fit.particle is None:
        raise ValueError("the fit has no particle EM (run refine first)")
    pem = fit.particle
    rows = [{"round": k, **_scored(net, ll), "kept": k == pem.best}
            for k, (net, ll) in enumerate(zip(pem.nets, pem.log_likelihoods, strict=True))]
    return pd.DataFrame(rows).set_index("round")


def _scored(net: ms.Network, log_likelihood: float) -> dict:
    """A row of :func:`marginal_table` and :func:`particle_em_table`: ``-log p(y | theta)``
    and the largest relative errors of the couplings and the drives."""
    je, de = parameter_errors(net)
    return {"-log p(y | theta) (nats)": -log_likelihood, "couplings |error|": je,
            "drives |error|": de}


def objective_parts(net: ms.Network, trial: ms.Trial, z, n_ages: int) -> dict:
    """The terms of the negative log joint of a latent ``z`` under ``net`` (nats).

    ``nll_y`` (the recorded neurons); the Gaussian transition density's normaliser, ``sum
    1/2 log(2 pi var)`` (``log-variance``, lower where the latent is quiet); its squared part,
    ``sum (Z - Zbar)^2 / (2 var)`` (about half a nat per bin and population for a latent with
    the model's own noise); their sum (``MAP-EM objective``); ``nll_y`` plus the squared part
    (``Laplace-corrected``, up to a constant, see :func:`lib.mesoscopic.m_step`); and the
    mean rate of each population (Hz).
    """
    with torch.no_grad():
        ny, _, zb = ms.neg_log_joint(net, trial, z, n_ages, return_zbar=True)
    zb = zb.numpy()[trial.start:]
    z = np.asarray(z, float)
    N = np.asarray(net.n, float)
    var = zb / N + ms.VAR_FLOOR * trial.dt / N
    logvar = float((0.5 * np.log(2 * np.pi * var)).sum())
    sq = float(((z - zb) ** 2 / (2 * var)).sum())
    out = {"nll_y": float(ny), "log-variance": logvar, "squared": sq,
           "MAP-EM objective": float(ny) + logvar + sq, "Laplace-corrected": float(ny) + sq}
    out.update({f"rate {p} (Hz)": float(r) for p, r in
                zip(net.names, z.mean(0) / trial.dt, strict=True)})
    return out


def objective_table(fit: Fit, trial: ms.Trial, z_true, z0, P: Preset) -> pd.DataFrame:
    """The terms of the objective (:func:`objective_parts`) at four points, one row each.

    ``truth``: the true activity ``z_true`` under the true parameters; ``fit``: the fit's end
    point; ``fit's latent, true parameters``; ``true parameters, their E-step's latent``: the
    latent that an E-step of ``P.estep_iter`` iterations from ``z0`` infers under the true
    parameters (with ``P.laplace``'s objective), the end point the fit competes with.
    """
    gt = ms.winner_take_all()
    z_gt, _ = ms.e_step(gt, trial, z0, n_ages=P.n_ages, max_iter=P.estep_iter,
                        laplace=P.laplace)
    points = {"truth": (gt, z_true), "fit": (fit.em.net, fit.em.z),
              "fit's latent, true parameters": (gt, fit.em.z),
              "true parameters, their E-step's latent": (gt, z_gt)}
    return pd.DataFrame({k: objective_parts(net, trial, z, P.n_ages)
                         for k, (net, z) in points.items()}).T


def marginal_table(fit: Fit, trial: ms.Trial, P: Preset, seed: int) -> pd.DataFrame:
    """``-log p(y | theta)`` of the training trial, the latent integrated out, at the truth and
    at the fit: :func:`lib.mesoscopic.particle_log_likelihood` with ``P.particles`` particles,
    both from the same random stream (common random numbers, so that the difference has less
    Monte Carlo error than either).

    Returns:
        One row per parameter set (``truth``, the ``MAP-EM fit`` where :func:`refine` ran,
        ``fit``): ``-log p(y | theta)`` (nats) and the
        largest relative errors of the couplings and the drives.
    """
    if P.particles < 1:
        raise ValueError("the preset has no particles (P.particles = 0)")
    gt = ms.winner_take_all()
    rows = {}
    nets = [("truth", gt)] + ([("MAP-EM fit", fit.map_em.net)] if fit.map_em else [])
    for name, net in nets + [("fit", fit.em.net)]:
        rows[name] = _scored(net, ms.particle_log_likelihood(
            net, trial, n_ages=P.n_ages, n_particles=P.particles,
            rng=seeds.rng(seed, STREAM_MESO, 12)))
    return pd.DataFrame(rows).T


def parameter_errors(net: ms.Network, each: bool = False):
    """The largest relative errors of the couplings ``J`` and of the drives ``J/alpha_m``
    (floats), or with ``each`` the absolute relative error of every population (two arrays)."""
    gt = ms.winner_take_all()
    if not isinstance(net, ms.Network) or net.m != gt.m:
        raise ValueError("net must be a Network with the populations of the ground truth")
    j = np.abs(net.j / gt.j - 1)
    d = np.abs(net.drive() / gt.drive() - 1)
    if each:
        return j, d
    return float(j.max()), float(d.max())


def em_from_truth(trial: ms.Trial, z0, P: Preset, rounds: int, *, e_iter: int | None = None,
                  m_only: bool = False, e_first: bool = False, n_ages: int | None = None,
                  laplace: bool | None = None) -> pd.DataFrame:
    """EM rounds started at the true parameters: which step walks away from them.

    Each round is an M-step (``P.m_iter`` iterations, bounds ``[0.4, 2] x`` truth) and, unless
    ``m_only``, an E-step of ``e_iter`` iterations (default ``P.e_iter``) from the latent of the
    round before; the first latent is ``z0`` (the true activity or the smoothed spikes), or with
    ``e_first`` the E-step's latent from ``z0`` under the true parameters.

    Returns:
        One row per round (round 0: the truth): the largest relative error of the couplings and
        of the drives ``J/alpha_m``, the Laplace-corrected objective and the authors' MAP-EM
        objective of the round's parameters and latent (:func:`objective_parts`, nats).
    """
    rounds = int(rounds)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    gt = ms.winner_take_all()
    lap = P.laplace if laplace is None else laplace
    A = P.n_ages if n_ages is None else n_ages
    e_iter = P.e_iter if e_iter is None else e_iter
    net, z = gt, np.asarray(z0, float)
    if e_first:
        z, _ = ms.e_step(net, trial, z, n_ages=A, max_iter=e_iter, laplace=lap)

    def row(k):
        parts = objective_parts(net, trial, z, A)
        je, de = parameter_errors(net)
        return {"round": k, "couplings |error|": je, "drives |error|": de,
                "corrected objective": parts["Laplace-corrected"],
                "MAP-EM objective": parts["MAP-EM objective"]}

    rows = [row(0)]
    for k in range(1, rounds + 1):
        net, _ = ms.m_step(net, trial, z, reference=gt, n_ages=A, max_iter=P.m_iter, laplace=lap)
        if not m_only:
            z, _ = ms.e_step(net, trial, z, n_ages=A, max_iter=e_iter, laplace=lap)
        rows.append(row(k))
    return pd.DataFrame(rows).set_index("round")


def step_check(P: Preset, seed: int) -> pd.DataFrame:
    """The M-step given the true activity, at each ``(dt, leak)`` of ``P.step_check``.

    For each time step and membrane step (``"euler"``, the authors'; ``"exp"``, exact), the
    training window of the ground truth binned at that step (:func:`window_trial`, age table
    ``P.n_ages * P.dt / dt`` bins: the same 0.4 s) and an M-step over all 12 parameters
    (``P.m_iter`` iterations, ``P.laplace``'s objective) started at the truth, given the true
    activity: the best the EM could do with a perfect E-step. What is left of the errors is
    the bias of the discretisation plus what the 10-s window does not pin down.

    Returns:
        One row per pair: the window's start (s), the largest relative errors of the couplings
        and of the drives ``J / alpha_m``, the fitted drives over the true ones, and the
        objective at the M-step's end minus that of the true parameters (nats; negative: the
        likelihood prefers parameters away from the truth).
    """
    rows = []
    for dt, leak in P.step_check:
        if not dt > 0:
            raise ValueError(f"step_check steps must be positive, got {dt}")
        k = P.dt / dt
        if abs(k - round(k)) > 1e-9 or round(k) < 1:
            raise ValueError(f"step_check steps must divide {P.dt} s, got {dt}")
        k = int(round(k))
        P2 = P if k == 1 else replace(P, dt=P.dt / k, n_ages=P.n_ages * k)
        trial, z_true, t0 = window_trial(ground_truth(P2, seed), P2, P2.train_s)
        net = replace(ms.winner_take_all(), leak=leak)
        fitted, res = ms.m_step(net, trial, z_true, reference=net, n_ages=P2.n_ages,
                                max_iter=P.m_iter, laplace=P.laplace)
        key = "Laplace-corrected" if P.laplace else "MAP-EM objective"
        truth = objective_parts(net, trial, z_true, P2.n_ages)[key]
        je, de = parameter_errors(fitted)
        rows.append({"step (ms)": dt * 1e3, "membrane step": leak, "window start (s)": t0,
                     "couplings |error|": je, "drives |error|": de,
                     **{f"drive {p} / truth": r for p, r in
                        zip(ms.POPULATIONS, fitted.drive() / net.drive(), strict=True)},
                     "objective minus truth's (nats)": res.loss - truth})
    return pd.DataFrame(rows)


def switch_sensitivity(P: Preset, seed: int, net: ms.Network | None = None) -> pd.DataFrame:
    """Switches of the mesoscopic model against a common scale of its couplings, at ``dt_fine``.

    Free runs (``gt_trials`` x ``gt_s`` s, the ground truth's length) of ``net`` (default the
    true network) with all couplings times each scale of ``P.sensitivity``, every run from the
    same random stream, so that only the couplings differ.

    Returns:
        One row per scale: the state rates (Hz), switches and mean complete dwell (s).
    """
    net = ms.winner_take_all() if net is None else net
    rows = []
    for s in P.sensitivity:
        run = ms.simulate_meso(net.with_theta(scaled_couplings(net, s)), P.gt_s,
                               seeds.rng(seed, STREAM_MESO, 11), dt_s=P.dt_fine,
                               n_ages=P.n_ages_fine, n_trials=P.gt_trials)
        st = ground_truth_stats(run.rates, P.dt_fine)
        rows.append({"coupling scale": s, "E high (Hz)": st["E_high"],
                     "E low (Hz)": st["E_low"], "switches": st["switches"],
                     "mean dwell (s)": st["mean_dwell"]})
    cols = ["coupling scale", "E high (Hz)", "E low (Hz)", "switches", "mean dwell (s)"]
    return pd.DataFrame(rows, columns=cols).set_index("coupling scale")


def parameter_table(fitted: ms.Network, init: ms.Network) -> pd.DataFrame:
    """Initial and fitted parameters relative to the truth, and the effective drives J/alpha_m."""
    gt = ms.winner_take_all()
    df = pd.DataFrame({"truth": gt.theta, "initial / truth": init.theta / gt.theta,
                       "fitted / truth": fitted.theta / gt.theta}, index=list(ms.THETA_NAMES))
    for k, name in enumerate(ms.POPULATIONS):
        df.loc[f"J/alpha_m_{name}"] = [gt.drive()[k], init.drive()[k] / gt.drive()[k],
                                       fitted.drive()[k] / gt.drive()[k]]
    return df


def free_runs(net: ms.Network, P: Preset, seed: int, stream: int = 7) -> ms.MesoRun:
    """Free runs of a mesoscopic model at ``dt``: ``gt_trials`` x ``gt_s`` seconds."""
    return ms.simulate_meso(net, P.gt_s, seeds.rng(seed, STREAM_MESO, stream), dt_s=P.dt,
                            n_ages=P.n_ages, n_trials=P.gt_trials)


def perturbation(P: Preset, seed: int, net: ms.Network | None = None, fine: bool = False) -> dict:
    """Switch probability under a step input to the losing population, at every amplitude.

    Trials start with E1 winning (initial rates 20, 5, 25 Hz); the stimulus drives E2 from
    ``pert_onset_s`` for ``pert_len_s``. With ``net`` given, the mesoscopic model at ``dt``;
    otherwise the microscopic ground truth. ``fine`` runs the mesoscopic model at ``dt_fine``.

    Returns:
        ``{"p": switch probability per amplitude, "n": valid trials per amplitude}``.
    """
    amps = np.repeat(np.asarray(P.amplitudes, float), P.pert_trials)
    pulse = ms.Pulse(1, amps, P.pert_onset_s, P.pert_onset_s + P.pert_len_s)
    if net is None:
        run = ms.simulate_micro(ms.winner_take_all(), P.pert_total_s,
                                seeds.rng(seed, STREAM_PERT_MICRO), dt_s=P.dt_micro,
                                n_trials=amps.size, n_record=1, pulse=pulse)
        z, _ = ms.rebin(run, P.dt)
        dt = P.dt
    else:
        dt, A = (P.dt_fine, P.n_ages_fine) if fine else (P.dt, P.n_ages)
        z = ms.simulate_meso(net, P.pert_total_s, seeds.rng(seed, STREAM_PERT_MESO, int(fine)),
                             dt_s=dt, n_ages=A, n_trials=amps.size, pulse=pulse).z
    valid, sw = ms.switch_probability(z / dt, dt, P.pert_onset_s)
    k = len(P.amplitudes)
    valid, sw = valid.reshape(k, -1), sw.reshape(k, -1)
    n = valid.sum(1)
    p = np.where(n > 0, (sw & valid).sum(1) / np.maximum(n, 1), np.nan)
    return {"p": p, "n": n}


def monotone_rho(p) -> float:
    """Spearman correlation of the switch probability with the amplitude (order of presets)."""
    p = np.asarray(p, float)
    if np.all(p == p[0]):
        return 0.0
    return float(spearmanr(np.arange(p.size), p)[0])


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def plot_from_truth(axes, runs: pd.DataFrame) -> None:
    """Largest relative errors of the couplings and drives over EM rounds from the truth.

    ``runs``: :func:`em_from_truth` tables concatenated with an outer index level per first
    latent (one line each); ``axes``: two axes (couplings, drives).
    """
    for ax, col in zip(axes, ["couplings |error|", "drives |error|"], strict=True):
        for k in runs.index.unique(0):
            ax.plot(runs.loc[k].index, runs.loc[k, col], "o-", label=k)
        ax.set(xlabel="EM round from the true parameters", title=col,
               xticks=runs.index.unique(1))
    axes[0].set(ylabel="largest relative error (1 = 100 %)")
    axes[0].legend(title="first latent")


def plot_rates(ax, rates: np.ndarray, dt: float, title: str = "", sigma_s: float = 0.05) -> None:
    """Population rates ``(T, M)`` of one run against time (smoothed)."""
    r = ms.smooth(rates, sigma_s, dt, axis=0)
    t = np.arange(r.shape[0]) * dt
    for k, name in enumerate(ms.POPULATIONS[:r.shape[1]]):
        ax.plot(t, r[:, k], color=plotting.color(k), lw=0.9, label=name)
    ax.set(xlabel="time (s)", ylabel="rate (Hz)", title=title)
    ax.legend(loc="upper right", ncol=3)


def plot_latent(axes, trial: ms.Trial, z, z_true, z_init, t0_s: float) -> None:
    """Inferred, true and initial population rates, and the rasters of the recorded neurons."""
    dt = trial.dt
    t = t0_s + np.arange(z.shape[0]) * dt
    for k in range(2):
        ax = axes[k]
        ax.plot(t, ms.smooth(z_true[:, k] / dt, 0.05, dt, axis=0), color="0.5", lw=1.4,
                label="truth (hidden)")
        ax.plot(t, ms.smooth(z[:, k] / dt, 0.05, dt, axis=0), color=plotting.color(k), lw=1.0,
                label="inferred")
        ax.plot(t, z_init[:, k] / dt, color="k", ls=":", lw=1.0, label="initial")
        ax.set(ylabel=f"{ms.POPULATIONS[k]} rate (Hz)")
        ax.legend(loc="upper right", ncol=3)
    ax = axes[2]
    y = trial.y[trial.start:]
    for i in range(y.shape[1]):
        ts = t[np.flatnonzero(y[:, i])]
        ax.scatter(ts, np.full(ts.size, i), marker="|", s=30, color=plotting.color(trial.population[i]))
    ax.set(xlabel="time (s)", ylabel="recorded neuron", yticks=range(y.shape[1]),
           yticklabels=[f"{ms.POPULATIONS[p]}" for p in trial.population])


def plot_histograms(ax, runs: dict, bins=None) -> None:
    """Histograms of the E1 rate (100-ms smoothing) of several runs: ``{label: (rates, dt)}``."""
    bins = np.linspace(0, 30, 61) if bins is None else bins
    for k, (label, (rates, dt)) in enumerate(runs.items()):
        e = ms.smooth(rates[..., 0], 0.1, dt, axis=-1).ravel()
        ax.hist(e, bins=bins, density=True, histtype="step", lw=1.4, color=plotting.color(k),
                label=label)
    ax.set(xlabel="E1 rate, 100-ms smoothing (Hz)", ylabel="density (1/Hz)")
    ax.legend()


def plot_switch_probability(ax, amplitudes, curves: dict) -> None:
    """Switch probability against amplitude: ``{label: {"p": ..., "n": ...}}``."""
    for k, (label, c) in enumerate(curves.items()):
        p, n = np.asarray(c["p"]), np.asarray(c["n"])
        se = np.sqrt(np.clip(p * (1 - p), 0, None) / np.maximum(n, 1))
        ax.errorbar(amplitudes, p, yerr=se, marker="o", capsize=3, color=plotting.color(k),
                    label=label)
    ax.set(xlabel="stimulus amplitude (2.5 mV per s)", ylabel="switch probability (dimensionless)",
           ylim=(-0.05, 1.05))
    ax.legend()


def plot_particle_em(axes, table: pd.DataFrame, truth_nll: float | None = None) -> None:
    """The particle EM round by round (:func:`particle_em_table`): ``-log p(y | theta)`` on
    ``axes[0]`` (with the truth's value, if given, as a line), the largest errors of the
    couplings and the drives on ``axes[1]`` with the claims' criterion 0.3; the kept round is
    circled."""
    k = table.index.to_numpy()
    kept = int(np.flatnonzero(table["kept"].to_numpy())[0])
    y = table["-log p(y | theta) (nats)"].to_numpy()
    axes[0].plot(k, y, "o-", ms=4, color=plotting.color(0), label="particle EM")
    axes[0].plot(k[kept], y[kept], "o", ms=11, mfc="none", mec="k", label="kept (the fit)")
    if truth_nll is not None:
        axes[0].axhline(truth_nll, color="k", ls="--", lw=1, label="true parameters")
    axes[0].set(xlabel="round (0: MAP-EM end point)", ylabel="-log p(y | θ) (nats)")
    axes[0].legend(frameon=False, fontsize=8)
    for i, col in enumerate(("couplings |error|", "drives |error|"), start=1):
        axes[1].plot(k, table[col].to_numpy(), "o-", ms=4, color=plotting.color(i), label=col)
    axes[1].axhline(0.3, color="k", ls=":", lw=1, label="criterion 0.3")
    axes[1].axvline(k[kept], color="k", lw=0.8, alpha=0.5)
    axes[1].set(xlabel="round (0: MAP-EM end point)", ylabel="largest relative error")
    axes[1].legend(frameon=False, fontsize=8)


def plot_sensitivity(ax, table: pd.DataFrame, n_gt: int) -> None:
    """Switches against the coupling scale (:func:`switch_sensitivity`), with the network's
    count ``n_gt`` and the band within a factor 3 of it (the free-run claims' criterion). The
    axis is logarithmic: a count of 0 is drawn at 0.5, and says so on the axis."""
    if not len(table):
        raise ValueError("the sensitivity table is empty")
    if not n_gt > 0:
        raise ValueError(f"n_gt (the network's switches) must be positive, got {n_gt!r}")
    x = table.index.to_numpy(float)
    ax.axhspan(n_gt / 3, 3 * n_gt, color="0.9", label="within a factor 3 of the network")
    ax.axhline(n_gt, color="0.4", lw=0.8, label="microscopic ground truth")
    ax.plot(x, np.maximum(table["switches"].to_numpy(float), 0.5), "o-", color=plotting.color(0),
            label="meso, true parameters, couplings x scale")
    ax.set(xlabel="coupling scale (dimensionless)", ylabel="switches in the runs (0 at 0.5)",
           yscale="log")
    ax.legend(fontsize="small")


def explore_meso(coupling: float = 1.0, dt_ms: int = 4, amplitude: float = 0.0,
                 duration_s: float = 20.0, seed: int = 0) -> None:
    """The explorer of the theory page: a free run of the mesoscopic winner-take-all model.

    Scales every coupling of the ground truth by ``coupling``, simulates ``duration_s`` seconds
    at ``dt_ms`` ms (age table 0.4 s) with a step input of ``amplitude`` to E2 from 5 to 5.5 s,
    and draws the three population rates.
    """
    import matplotlib.pyplot as plt

    gt = ms.winner_take_all()
    net = gt.with_theta(np.concatenate([gt.alpha_m, gt.j * coupling, gt.mu, gt.f_t]))
    dt = dt_ms * 1e-3
    pulse = ms.Pulse(1, [amplitude], 5.0, 5.5) if amplitude else None
    run = ms.simulate_meso(net, duration_s, seeds.rng(seed), dt_s=dt,
                           n_ages=int(round(0.4 / dt)), pulse=pulse)
    st = ms.winner_states(run.rates[0], dt)
    n_sw, _ = ms.dwell_times(st, dt)
    fig, ax = plt.subplots(figsize=(7, 3))
    plot_rates(ax, run.rates[0], dt, f"couplings x {coupling:g}, dt {dt_ms} ms: {n_sw} switches")
    if amplitude:
        ax.axvspan(5.0, 5.5, color="0.85", zorder=0)
    plt.show()
