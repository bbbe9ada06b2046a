"""The protocol of the chapter ``sample-and-measure``: presets per scale, experiments, figures.

The chapter reproduces Bellec, Wang, Modirshanechi, Brea & Gerstner (2021), "Fitting summary
statistics of neural data with a differentiable spiking network simulator", NeurIPS 34
(arXiv:2106.10064). The science (the spiking network, the losses, the training loop, the
measures) is :mod:`lib.sample_measure`; this module holds what belongs to the chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- :data:`VARIANTS`: the four fits compared (MLE, MLE+PSTH, MLE+PSTH+NC, SM-h with hidden units);
- the synthetic ground truth: :func:`condition_data` (a teacher network with hidden units, its
  stimulus, training and test trials), registered as the spike data set
  ``"sample-and-measure-teacher"`` with :mod:`lib.data`;
- the experiment :func:`run_experiment` (every variant, hidden-drive strength and seed, the
  networks of one kind trained together; and a second teacher, :data:`WEAK`, with a weak
  within-group noise correlation) and its :class:`Experiment`;
- the diagnostics :func:`ablation`, :func:`start_at_teacher`, :func:`loss_at_teacher` (the
  SM-h loss at the teacher's weights and at the fit) and :func:`nc_size` (pattern and size of
  the noise correlations on both teachers);
- the checks :func:`reference_statistics` (plain numpy loops of the paper's definitions) and
  :func:`closed_form_cross_entropy`; :func:`gof_pvalues` (the KS tests of :mod:`lib.gof` on the
  fitted models);
- figures: :func:`plot_rasters`, :func:`plot_nc_scatter`, :func:`plot_weights`,
  :func:`plot_weight_r`, :func:`plot_nc_size`.

The recorded V1 data of the paper are not public: every number here comes from a synthetic
teacher network, and every data label says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from lib import data as _data
from lib import gof, plotting, progress, scales, seeds, torchkit
from lib import sample_measure as sm

#: Streams of :func:`condition_data`: the teacher and stimulus, the training and test trials.
STREAM_TEACHER, STREAM_DATA, STREAM_INIT, STREAM_FIT, STREAM_EVAL = range(5)
#: Streams of the second teacher (:data:`WEAK`): its couplings and stimulus, its trials.
STREAM_WEAK_TEACHER, STREAM_WEAK_DATA = "weak-teacher", "weak-teacher-data"
#: The condition key of the second teacher (in place of a hidden strength): a teacher of its own
#: (couplings and stimulus from :data:`STREAM_WEAK_TEACHER`) whose hidden drive
#: ``Preset.weak_strength`` gives a weak within-group noise correlation.
WEAK = "weak"


@dataclass(frozen=True)
class Variant:
    """One way of fitting the recorded units.

    Attributes:
        name: the label.
        weights: the loss weights (:class:`lib.sample_measure.LossWeights`).
        hidden: whether the student has hidden units.
        draw: which draw of the teacher's trials it is fitted to (0: the trials of every
            variant; a control fits ``draw >= 1``, new trials of the same teacher).
    """

    name: str
    weights: sm.LossWeights
    hidden: bool
    draw: int = 0


#: The fits of the paper: maximum likelihood, plus the PSTH term, plus the noise-correlation term,
#: and the last with hidden units (and their rate regulariser). Weights are the authors' (0.4 MLE,
#: 0.1 PSTH, 50 NC, 0.001 rate).
VARIANTS: dict[str, Variant] = {
    "MLE": Variant("MLE", sm.PAPER_MLE, False),
    "MLE+PSTH": Variant("MLE+PSTH", sm.LossWeights(mle=0.4, psth=0.1), False),
    "MLE+PSTH+NC": Variant("MLE+PSTH+NC", sm.LossWeights(mle=0.4, psth=0.1, nc=50.0), False),
    "SM-h": Variant("SM-h", sm.PAPER_SM, True),
}

#: Negative controls fitted beside the variants (``Preset.controls`` says at which hidden
#: strength): the sample-and-measure terms with their sign flipped (``LossWeights.flip``), which
#: push the fit away from the data's PSTH and noise covariances (a claim that a term does not
#: worsen or move a fit must fail for them, or the term is inert where it is measured); and MLE
#: fitted to a second draw of the same teacher's trials (the noise of a comparison between fits).
CONTROLS: dict[str, Variant] = {
    "MLE-PSTH": Variant("MLE-PSTH", sm.LossWeights(mle=0.4, psth=0.1, flip=True), False),
    "MLE-PSTH-NC": Variant("MLE-PSTH-NC", sm.LossWeights(mle=0.4, psth=0.1, nc=50.0, flip=True),
                           False),
    "MLE (new trials)": Variant("MLE (new trials)", sm.PAPER_MLE, False, draw=1),
}

#: Prefix of the table rows of an untrained network (its initialisation, free-run evaluated).
UNTRAINED = "untrained "


@dataclass(frozen=True)
class Preset:
    """The sizes of one scale.

    Attributes:
        n_visible: recorded units of teacher and students.
        n_hidden: hidden units of the teacher and of the SM-h student.
        n_groups: groups of hidden units (each drives its own group of recorded units).
        n_delays: spike-history length D (bins).
        n_inputs: stimulus channels.
        n_bins: bins per trial T (40 ms each).
        n_train: training trials.
        n_test: held-out trials (evaluation).
        hidden_strengths: hidden-to-visible weights of the teachers (the last is the strongest).
        n_seeds: teachers and students per hidden strength.
        variants: names from :data:`VARIANTS`.
        iterations: Adam steps.
        batch_size: trials per minibatch.
        lr: Adam's learning rate, in logit units (the authors' 1e-3 on weights in units of
            ``u`` is ``1e-3 / thr = 2.5e-3`` here).
        clip: gradient-norm bound per tensor and network, in logit units (the authors'
            ``clipnorm=1`` in units of ``u`` is ``thr = 0.4`` here).
        n_val: validation trials drawn beside the training trials (model selection).
        select_every: iterations between two validation checks.
        teacher_start_iterations: training of :func:`start_at_teacher` (0: not run).
        mle_iterations: Adam steps of the likelihood-only fits (no free runs, cheap); default
            ``iterations``.
        n_eval: free-run trials per fitted network for the evaluation.
        theory_iterations: Adam steps of the small fits of the theory page.
        controls: ``(name, hidden strength)`` pairs of :data:`CONTROLS` fitted beside the variants
            (every seed index).
        weak_strength: hidden drive of the second teacher (:data:`WEAK`; 0: no second teacher).
        weak_variants: names from :data:`VARIANTS` fitted to the second teacher (every seed index).
        dtype: ``"float32"`` or ``"float64"``.
        note: what the scale is.
        device: ``"auto"`` (a GPU only with ``BOOK_DEVICE=cuda``), ``"cpu"`` or ``"cuda"``.
    """

    n_visible: int
    n_hidden: int
    n_groups: int
    n_delays: int
    n_inputs: int
    n_bins: int
    n_train: int
    n_test: int
    hidden_strengths: tuple[float, ...]
    n_seeds: int
    variants: tuple[str, ...]
    iterations: int
    batch_size: int
    lr: float
    clip: float
    n_eval: int
    n_val: int = 20
    select_every: int = 5
    teacher_start_iterations: int = 0
    mle_iterations: int | None = None
    theory_iterations: int = 300
    controls: tuple[tuple[str, float], ...] = ()
    weak_strength: float = 0.0
    weak_variants: tuple[str, ...] = ()
    nc_weights: tuple[float, ...] = ()
    dtype: str = "float32"
    note: str = ""
    device: str = "auto"

    @property
    def strongest(self) -> float:
        """The strongest hidden drive."""
        return max(self.hidden_strengths)

    @property
    def torch_dtype(self) -> torch.dtype:
        """:attr:`dtype` as a torch dtype."""
        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]


_ALL = tuple(VARIANTS)

PRESETS = {
    "ci": Preset(n_visible=8, n_hidden=16, n_groups=2, n_delays=2, n_inputs=4, n_bins=40,
                 n_train=120, n_test=120, hidden_strengths=(3.0,), n_seeds=1,
                 variants=("MLE", "SM-h"), iterations=300, batch_size=40, lr=1e-2, clip=0.4,
                 mle_iterations=600,
                 n_eval=200, theory_iterations=100, weak_strength=1.75, weak_variants=("MLE", "SM-h"),
                 note="mini fit: 8 + 16 units, 40 bins, 300 iterations (MLE 600), one seed, "
                      "the strongest hidden drive, MLE and SM-h"),
    "book": Preset(n_visible=16, n_hidden=16, n_groups=2, n_delays=2, n_inputs=4, n_bins=60,
                   n_train=160, n_test=200, hidden_strengths=(0.0, 1.5, 3.0), n_seeds=3,
                   variants=_ALL, iterations=500, batch_size=40, lr=1e-2, clip=0.4, n_eval=400,
                   controls=(("MLE-PSTH", 3.0), ("MLE-PSTH-NC", 0.0), ("MLE (new trials)", 0.0)),
                   teacher_start_iterations=300, weak_strength=1.75,
                   weak_variants=("MLE", "MLE+PSTH+NC", "SM-h"), nc_weights=(200.0, 600.0),
                   note="16 + 16 units, 60 bins, 500 iterations, 3 seeds, 3 hidden strengths"),
    # The paper's V1 network sizes and training (74 units, 9 delays, 741 bins, batch 20, Adam 1e-3,
    # clip 1 per tensor, in units of u: 2.5e-3 and 0.4 in logit units; 2000 iterations, model
    # selection at every iteration on 10 validation trials, 200 hidden units) on the synthetic
    # teacher: the V1 recordings are not public and the CNN front end is not implemented
    # (4 stimulus channels instead). For a GPU (BOOK_DEVICE=cuda); documented, not run in CI.
    "paper": Preset(n_visible=74, n_hidden=200, n_groups=2, n_delays=sm.PAPER_DELAYS, n_inputs=4,
                    n_bins=741, n_train=80, n_test=30, hidden_strengths=(0.0, 1.5, 3.0), n_seeds=3,
                    variants=_ALL, iterations=2000, batch_size=20, lr=1e-3 / sm.THRESHOLD,
                    clip=sm.THRESHOLD, n_eval=400, n_val=10, select_every=1,
                    teacher_start_iterations=2000,
                    note="the paper's V1 sizes and training on the synthetic teacher (GPU)"),
}


def preset(scale: str) -> Preset:
    """The :class:`Preset` of ``scale`` (``"ci"``, ``"book"`` or ``"paper"``).

    Raises:
        ValueError: for an unknown scale.
    """
    return scales.pick(PRESETS, scale)


def data_label(P: Preset) -> str:
    """The ``data=`` label of the claims: the synthetic teacher, its sizes and seeds."""
    return (f"synthetic teacher network ({P.n_visible} recorded + {P.n_hidden} hidden units, "
            f"{P.n_bins} bins of 40 ms, {P.n_train} training / {P.n_test} test trials), "
            f"{P.n_seeds} seed{'s' if P.n_seeds > 1 else ''}; the paper's V1 data are not public")


# ----------------------------------------------------------------------------------------------
# The synthetic ground truth
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionData:
    """A teacher and its trials.

    Attributes:
        teacher: the ground truth (:class:`lib.sample_measure.Teacher`).
        stim: ``(T, K)`` stimulus shared by all trials.
        train: recorded spikes ``(n_train, T, n_visible)``.
        test: held-out recorded spikes ``(n_test, T, n_visible)``.
        hidden_train: the teacher's hidden spikes of the training trials (never shown to a fit).
        val: validation trials ``(n_val, T, n_visible)`` (model selection).
    """

    teacher: sm.Teacher
    stim: np.ndarray
    train: np.ndarray = field(repr=False)
    test: np.ndarray = field(repr=False)
    hidden_train: np.ndarray = field(repr=False)
    val: np.ndarray = field(repr=False, default=None)


def condition_data(P: Preset, hidden_strength: float | str, k: int, seed: int,
                   draw: int = 0) -> ConditionData:
    """The teacher of seed index ``k`` at one hidden strength, with its trials.

    The teacher's couplings and stimulus depend on ``(seed, k)`` only, so that the teachers of
    different hidden strengths differ only in that strength; the trials depend on the strength
    too, and on ``draw`` (0: the trials of the chapter; 1, 2, ...: independent new trials of the
    same teacher). The validation trials are drawn after the test trials, so that the training
    and test trials do not depend on their number.

    ``hidden_strength = WEAK`` gives the second teacher: couplings, stimulus and trials from
    streams of its own (:data:`STREAM_WEAK_TEACHER`, :data:`STREAM_WEAK_DATA`), hidden drive
    ``P.weak_strength``.
    """
    weak = isinstance(hidden_strength, str)
    if weak and (hidden_strength != WEAK or not P.weak_strength):
        raise ValueError(f"hidden_strength must be a number or {WEAK!r} (with a preset whose "
                         f"weak_strength > 0), got {hidden_strength!r}")
    hs = P.weak_strength if weak else hidden_strength
    r = seeds.rng(seed, k, STREAM_WEAK_TEACHER if weak else STREAM_TEACHER)
    stim = sm.stimulus(P.n_bins, P.n_inputs, r)
    teacher = sm.make_teacher(P.n_visible, P.n_hidden, hs, r, n_delays=P.n_delays,
                              n_inputs=P.n_inputs, n_groups=P.n_groups)
    stream = ((STREAM_WEAK_DATA,) if weak else (STREAM_DATA, int(round(1000 * hs))))
    z = sm.sample_teacher(teacher, stim, P.n_train + P.n_test + P.n_val,
                          seeds.int_seed(seed, k, *stream, *([draw] if draw else [])))
    nv, a, b = P.n_visible, P.n_train, P.n_train + P.n_test
    return ConditionData(teacher, stim, z[:a, :, :nv], z[a:b, :, :nv], z[:a, :, nv:],
                         z[b:, :, :nv])


def teacher_spike_trains() -> _data.SpikeTrains:
    """The book preset's teacher at the strongest hidden drive (seed 0, k = 0), test trials."""
    P = preset("book")
    cd = condition_data(P, P.strongest, 0, 0)
    return _data.SpikeTrains.from_binned(
        cd.test.astype(np.int64), sm.DT_S, "sample-and-measure-teacher", "simulated",
        f"synthetic teacher network of the sample-and-measure chapter (hidden strength {P.strongest:g}, "
        f"seed 0): {P.n_test} trials of {P.n_visible} recorded units, 40-ms bins")


_data.register_spikes("sample-and-measure-teacher", teacher_spike_trains,
                      "synthetic teacher network with hidden units (sample-and-measure chapter)")


# ----------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------


@dataclass
class Experiment:
    """Every fit of a preset and its evaluation.

    Attributes:
        preset: the :class:`Preset`.
        table: one row per (variant, teacher, hidden strength, seed index): ``psth_r``,
            ``nc_r``, ``nc_rmse``, ``nc_within``, ``nc_within_data``, ``w_r``, ``rate_model``,
            ``rate_data``, ``psth_rmse``, ``rate_hidden``; ``teacher`` is ``"chapter"`` or
            :data:`WEAK` (the second teacher); also the controls of ``Preset.controls`` and,
            named ``"untrained <variant>"``, every network at its initialisation.
        data: ``{(hidden_strength, k): ConditionData}`` (``hidden_strength = WEAK``: the second
            teacher), and ``{(hidden_strength, k, draw): ...}`` for the new trials of a control
            (``Variant.draw``).
        nets: ``{group: RSNN}`` the networks trained together, and ``index``
            ``{(variant, hidden_strength, k): (group, m)}`` where each one is.
        samples: ``{(variant, hidden_strength, k): free-run spikes (n_eval, T, n_visible), uint8}``.
        histories: ``{group: FitHistory}``.
    """

    preset: Preset
    table: pd.DataFrame
    data: dict
    nets: dict
    index: dict
    samples: dict
    histories: dict

    def net(self, variant: str, hidden_strength: float, k: int = 0) -> tuple[sm.RSNN, int]:
        """The ensemble holding a fit and its index in it."""
        g, m = self.index[(variant, hidden_strength, k)]
        return self.nets[g], m

    def value(self, variant: str, column: str, hidden_strength: float | str | None = None) -> np.ndarray:
        """A column of the table for one variant at one hidden strength (default the strongest;
        :data:`WEAK`: the second teacher), one value per seed."""
        hs = self.preset.strongest if hidden_strength is None else hidden_strength
        t = self.table
        return t[_rows(t, variant, hs)].sort_values("seed")[column].to_numpy()


def _rows(t: pd.DataFrame, variant: str, hs: float | str) -> pd.Series:
    """The rows of one variant at one hidden strength of the chapter's teachers, or of the
    second teacher (``hs = WEAK``)."""
    if hs == WEAK:
        return (t.variant == variant) & (t.teacher == WEAK)
    return (t.variant == variant) & (t.teacher == "chapter") & (t.hidden_strength == hs)


def _group(v: Variant) -> str:
    return "hidden" if v.hidden else ("samples" if v.weights.samples else "mle")


def _variant(name: str) -> Variant:
    return VARIANTS[name] if name in VARIANTS else CONTROLS[name]


def within_group_nc(z: np.ndarray, n_groups: int) -> float:
    """Mean zero-lag noise correlation over the pairs of recorded units of the same group.

    The teacher's hidden group ``g`` drives the ``g``-th block of ``n / n_groups`` recorded
    units; this is the size of the correlation it creates (the pattern is measured by
    :func:`lib.sample_measure.nc_agreement`).

    Args:
        z: spikes ``(B, T, n)``.
        n_groups: the teacher's groups (``n`` divisible by it).
    """
    z = np.asarray(z, dtype=float)
    n = z.shape[-1]
    if z.ndim != 3 or n_groups < 1 or n % n_groups:
        raise ValueError(f"z must be (B, T, n) with n divisible by n_groups = {n_groups}, got "
                         f"shape {z.shape}")
    g = np.arange(n) // (n // n_groups)
    same = (g[:, None] == g[None, :]) & ~np.eye(n, dtype=bool)
    return float(np.nanmean(sm.noise_correlation(z)[same]))


def within_group_coupling(W, n_visible: int, n_groups: int) -> float:
    """Mean recorded-to-recorded coupling (summed over delays) within a group minus between groups.

    The teacher's visible couplings do not depend on the groups (about 0); a fit that explains
    the shared hidden input by couplings among the recorded units makes it positive.

    Args:
        W: ``(N, N, D)`` weights (the first ``n_visible`` units recorded).
        n_visible: recorded units (divisible by ``n_groups``).
        n_groups: the teacher's groups.
    """
    w = np.asarray(W.detach().cpu() if isinstance(W, torch.Tensor) else W, dtype=float)
    if w.ndim != 3 or n_groups < 1 or n_visible % n_groups or w.shape[0] < n_visible:
        raise ValueError(f"W must be (N, N, D) with N >= n_visible = {n_visible}, divisible by "
                         f"n_groups = {n_groups}; got shape {w.shape}")
    w = w[:n_visible, :n_visible].sum(-1)
    g = np.arange(n_visible) // (n_visible // n_groups)
    same = (g[:, None] == g[None, :]) & ~np.eye(n_visible, dtype=bool)
    return float(w[same].mean() - w[g[:, None] != g[None, :]].mean())


def _evaluate(name: str, hs: float, k: int, zv: np.ndarray, cd: ConditionData, W: torch.Tensor,
              P: Preset, zh: np.ndarray | None) -> dict:
    """One row of :attr:`Experiment.table`: free-run spikes ``zv`` against the held-out trials."""
    nc_r, nc_rmse = sm.nc_agreement(zv, cd.test)
    weak = hs == WEAK
    return {"variant": name, "teacher": WEAK if weak else "chapter",
            "hidden_strength": P.weak_strength if weak else hs, "seed": k,
            "psth_r": sm.psth_correlation(zv, cd.test), "nc_r": nc_r, "nc_rmse": nc_rmse,
            "nc_within": within_group_nc(zv, P.n_groups),
            "nc_within_data": within_group_nc(cd.test, P.n_groups),
            "w_r": sm.weight_correlation(W, cd.teacher.W, P.n_visible),
            "rate_model": float(zv.mean()), "rate_data": float(cd.test.mean()),
            "psth_rmse": psth_rmse(zv, cd.test),
            "rate_hidden": float(zh.mean()) if zh is not None else np.nan}


def psth_rmse(model: np.ndarray, data: np.ndarray) -> float:
    """Root mean square difference of the PSTHs (spikes per bin) over bins and recorded units."""
    return float(np.sqrt(np.mean((model.mean(axis=0) - data.mean(axis=0)) ** 2)))


def run_experiment(P: Preset, seed: int = 0, device=None) -> Experiment:
    """Fit every variant to every teacher of the preset, then evaluate on held-out trials.

    Networks of one kind (maximum likelihood only; with samples; with hidden units) are trained
    together as one batch of independent networks (:class:`lib.sample_measure.RSNN`), each on its
    own teacher's trials. Each fit is evaluated on ``n_eval`` free-run trials against the
    teacher's ``n_test`` held-out trials.

    Args:
        P: the preset.
        seed: the notebook's seed (all streams derive from it).
        device: torch device (default: the preset's, :func:`lib.torchkit.device` of ``P.device``).

    Returns:
        An :class:`Experiment`.
    """
    dev = device or torchkit.device(P.device)
    dtype = P.torch_dtype
    torchkit.seed_all(seed)
    data = {(hs, k): condition_data(P, hs, k, seed)
            for hs in P.hidden_strengths for k in range(P.n_seeds)}
    jobs: dict[str, list] = {}
    todo = [(n, hs) for n in P.variants for hs in P.hidden_strengths] + list(P.controls)
    if P.weak_strength:
        data.update({(WEAK, k): condition_data(P, WEAK, k, seed) for k in range(P.n_seeds)})
        todo += [(n, WEAK) for n in P.weak_variants]
    for name, hs in todo:
        for k in range(P.n_seeds):
            jobs.setdefault(_group(_variant(name)), []).append((name, hs, k))
    nets, index, samples, hist, rows = {}, {}, {}, {}, []
    for g, (group, items) in enumerate(jobs.items()):
        hidden = group == "hidden"
        net = sm.RSNN(P.n_visible, P.n_hidden if hidden else 0, P.n_delays, P.n_inputs,
                      seeds=[seeds.int_seed(seed, k, STREAM_INIT, int(hidden)) for _, _, k in items],
                      dtype=dtype).to(dev)
        cds = []
        for name, hs, k in items:
            draw = _variant(name).draw
            if (hs, k, draw) not in data and draw:
                data[(hs, k, draw)] = condition_data(P, hs, k, seed, draw)
            cds.append(data[(hs, k, draw) if draw else (hs, k)])
        spikes = torch.as_tensor(np.stack([c.train for c in cds]), dtype=dtype, device=dev)
        val = (torch.as_tensor(np.stack([c.val for c in cds]), dtype=dtype, device=dev)
               if P.n_val else None)
        stim = torch.as_tensor(np.stack([c.stim for c in cds]), dtype=dtype, device=dev)
        weights = [_variant(n).weights for n, _, _ in items]
        init = copy.deepcopy(net)
        its = P.mle_iterations if group == "mle" and P.mle_iterations else P.iterations
        hist[group] = sm.fit(net, spikes, stim, weights, iterations=its, batch_size=P.batch_size,
                             seed=seeds.int_seed(seed, g, STREAM_FIT), lr=P.lr, clip=P.clip,
                             validation=val, select_every=P.select_every,
                             progress=lambda it, d=group: progress.bar(it, desc=f"fit {d}"))
        nets[group] = net
        # the trained networks and, as the untrained control, their initialisation, evaluated on
        # the same spike noise
        for prefix, model in (("", net), (UNTRAINED, init)):
            gen = seeds.torch_generator(seed, g, STREAM_EVAL, device=dev)
            with torch.no_grad():
                sim = model.free_run(stim, P.n_eval, gen)
            z = sim.z.cpu().numpy()
            for m, (name, hs, k) in enumerate(items):
                if not prefix:
                    index[(name, hs, k)] = (group, m)
                zv = z[m, :, :, :P.n_visible]
                if not prefix:
                    samples[(name, hs, k)] = zv.astype(np.uint8)
                rows.append(_evaluate(prefix + name, hs, k, zv, cds[m], model.W[m], P,
                                      z[m, :, :, P.n_visible:] if hidden else None))
    order = {n: i for i, n in enumerate(P.variants)}
    table = pd.DataFrame(rows).sort_values(["variant", "teacher", "hidden_strength", "seed"],
                                           key=lambda c: c.map(lambda n: order.get(n, len(order)))
                                           if c.name == "variant" else c, kind="stable")
    return Experiment(P, table.reset_index(drop=True), data, nets, index, samples, hist)


#: The rows of :func:`ablation`: label, variant, whether the hidden-to-recorded weights are cut.
ABLATION = (("MLE", "MLE", False), ("SM, no hidden units (MLE+PSTH+NC)", "MLE+PSTH+NC", False),
            ("SM-h", "SM-h", False), ("SM-h, hidden->recorded cut", "SM-h", True))


def ablation(exp: Experiment, seed: int) -> pd.DataFrame:
    """What the hidden units of SM-h do: its fits with the hidden-to-recorded weights cut.

    At the strongest hidden drive, each fit of :data:`ABLATION` is free-run (``n_eval`` trials,
    the same noise for every row of a seed) and compared with the held-out trials: the
    noise-correlation agreement (``nc_r``, ``nc_rmse``), the mean within-group noise
    correlation (:func:`within_group_nc`, and the data's), the coupling correlation ``w_r`` and
    the hidden units' rate. Cutting ``W[:nv, nv:]`` (every delay) leaves the recorded units only
    their own couplings: what is left of the noise correlations is made by them.

    Returns:
        One row per (label, seed index).
    """
    P, hs = exp.preset, exp.preset.strongest
    nv, rows = P.n_visible, []
    for k in range(P.n_seeds):
        cd = exp.data[(hs, k)]
        for label, name, cut in ABLATION:
            if name not in P.variants:
                continue
            net, m = exp.net(name, hs, k)
            one = sm.RSNN.from_weights(net.W[m:m + 1].detach().cpu(), net.W_in[m:m + 1].detach().cpu(),
                                       net.b[m:m + 1].detach().cpu(), nv, hidden=[net.hidden[m]])
            if cut:
                with torch.no_grad():
                    one.W[0, :nv, nv:] = 0.0
            gen = seeds.torch_generator(seed, k, STREAM_EVAL, 1)
            with torch.no_grad():
                z = one.free_run(cd.stim, P.n_eval, gen).z[0].numpy()
            r, rmse = sm.nc_agreement(z[..., :nv], cd.test)
            rows.append({"fit": label, "seed": k, "nc_r": r, "nc_rmse": rmse,
                         "nc_within": within_group_nc(z[..., :nv], P.n_groups),
                         "nc_within_data": within_group_nc(cd.test, P.n_groups),
                         "w_r": sm.weight_correlation(one.W[0], cd.teacher.W, nv),
                         "w_within": within_group_coupling(one.W[0], nv, P.n_groups),
                         "w_within_teacher": within_group_coupling(cd.teacher.W, nv, P.n_groups),
                         "rate_hidden": float(z[..., nv:].mean()) if z.shape[-1] > nv else np.nan})
    return pd.DataFrame(rows)


#: The arms of :func:`start_at_teacher`: the SM-h loss, and the same without its likelihood term.
TEACHER_START = {"SM-h": sm.PAPER_SM,
                 "SM-h without MLE term": sm.LossWeights(mle=0.0, psth=0.1, nc=50.0, rate=0.001)}


def start_at_teacher(exp: Experiment, seed: int, iterations: int) -> pd.DataFrame:
    """Train SM-h students that start *at the teacher's weights*: does the loss keep the truth?

    The student with hidden units contains the teacher (same sizes), so the teacher's weights
    are a candidate optimum. Each arm of :data:`TEACHER_START` starts every seed's student at
    its teacher (strongest hidden drive) and trains it with the preset's training (learning
    rate, clipping, validation) for ``iterations``; before and after, the students are
    evaluated as in :func:`ablation`, with the mean hidden-to-recorded weight at delay 1 onto
    the driven group (``w_hv``, the teacher's is the hidden strength).

    Returns:
        One row per (arm, seed index, ``"start"`` or ``"trained"``).
    """
    P, hs = exp.preset, exp.preset.strongest
    nv, dev = P.n_visible, exp.nets[next(iter(exp.nets))].W.device
    dtype = P.torch_dtype
    cds = [exp.data[(hs, k)] for k in range(P.n_seeds)]
    arms = list(TEACHER_START)
    items = [(a, k) for a in arms for k in range(P.n_seeds)]

    def stack(attr):
        return torch.as_tensor(np.stack([getattr(cds[k].teacher, attr) for _, k in items]),
                               dtype=dtype)

    net = sm.RSNN.from_weights(stack("W"), stack("W_in"), stack("b"), nv).to(dev)
    drive = cds[0].teacher.W[:nv, nv:, 0] != 0  # (post, pre) pairs the teacher drives
    spikes = torch.as_tensor(np.stack([cds[k].train for _, k in items]), dtype=dtype, device=dev)
    stim = torch.as_tensor(np.stack([cds[k].stim for _, k in items]), dtype=dtype, device=dev)
    val = torch.as_tensor(np.stack([cds[k].val for _, k in items]), dtype=dtype, device=dev)
    rows = []

    def evaluate(when):
        gen = seeds.torch_generator(seed, 0, STREAM_EVAL, 2, device=dev)
        with torch.no_grad():
            z = net.free_run(stim, P.n_eval, gen).z.cpu().numpy()
        for m, (arm, k) in enumerate(items):
            W = net.W[m].detach().cpu().numpy()
            rows.append({"arm": arm, "seed": k, "when": when,
                         "w_r": sm.weight_correlation(W, cds[k].teacher.W, nv),
                         "w_hv": float(W[:nv, nv:, 0][drive].mean()),
                         "w_within": within_group_coupling(W, nv, P.n_groups),
                         "nc_within": within_group_nc(z[m, ..., :nv], P.n_groups),
                         "nc_within_data": within_group_nc(cds[k].test, P.n_groups),
                         "rate_hidden": float(z[m, ..., nv:].mean())})

    evaluate("start")
    sm.fit(net, spikes, stim, [TEACHER_START[a] for a, _ in items], iterations=iterations,
           batch_size=P.batch_size, seed=seeds.int_seed(seed, 9, STREAM_FIT), lr=P.lr, clip=P.clip,
           validation=val, select_every=P.select_every)
    evaluate("trained")
    return pd.DataFrame(rows)


#: Stream of the spike noise of :func:`loss_at_teacher`.
STREAM_LOSS_AT_TEACHER = "loss-at-teacher"


def loss_at_teacher(exp: Experiment, seed: int, n_draws: int = 5) -> pd.DataFrame:
    """The SM-h loss at the teacher's weights and at the SM-h fit: which one does it prefer?

    The SM-h student has the teacher's sizes, so the teacher is a point of its parameter space,
    with the data's noise correlations. For every seed index, on the chapter's teacher at the
    strongest drive and on the second teacher (:data:`WEAK`), each term of the SM-h loss
    (:data:`lib.sample_measure.PAPER_SM`, times its weight) is computed on all training trials,
    for the teacher and for the fit, averaged over ``n_draws`` draws of the spike noise (the
    same draws for both). A fit whose total is lower than the teacher's is where the loss, not
    the optimiser, leads; the terms say which one pays for it.

    Returns:
        One row per (teacher, seed index, point): ``mle``, ``psth``, ``nc``, ``rate`` (weighted)
        and ``total``.
    """
    P = exp.preset
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    w = sm.PAPER_SM
    conds = [("chapter", P.strongest)] + ([(WEAK, WEAK)] if "SM-h" in P.weak_variants else [])
    rows = []
    for label, hs in conds:
        for k in range(P.n_seeds):
            cd = exp.data[(hs, k)]
            net, m = exp.net("SM-h", hs, k)
            dt = net.W.dtype
            pts = {"teacher": (torch.as_tensor(a, dtype=dt) for a in (cd.teacher.W, cd.teacher.W_in,
                                                                      cd.teacher.b)),
                   "SM-h fit": (x[m].detach().cpu() for x in (net.W, net.W_in, net.b))}
            W, W_in, b = (torch.stack(x) for x in zip(*pts.values(), strict=True))
            two = sm.RSNN.from_weights(W, W_in, b, P.n_visible)
            spikes = torch.as_tensor(cd.train, dtype=dt).expand(2, *cd.train.shape)
            stim = torch.as_tensor(cd.stim, dtype=dt)
            gen = seeds.torch_generator(seed, k, STREAM_LOSS_AT_TEACHER, int(label == WEAK))
            acc = {t: 0.0 for t in ("mle", "psth", "nc", "rate")}
            with torch.no_grad():
                for _ in range(n_draws):
                    out = sm.losses(two, spikes, stim, [w, w], gen, P.n_delays)
                    for t in acc:
                        acc[t] = acc[t] + out[t].numpy() / n_draws
            scale = {"mle": w.mle, "psth": w.psth, "nc": w.nc, "rate": w.rate}
            for i, point in enumerate(pts):
                r = {t: float(scale[t] * acc[t][i]) for t in acc}
                rows.append({"teacher": label, "seed": k, "point": point, **r,
                             "total": sum(r.values())})
    return pd.DataFrame(rows)


#: Stream of the initialisation, training and free runs of :func:`nc_weight_sweep`.
STREAM_NC_WEIGHT = "nc-weight"


def nc_weight_sweep(exp: Experiment, seed: int, weights: tuple[float, ...] | None = None
                    ) -> pd.DataFrame:
    """SM-h retrained with larger noise-correlation weights: does the weight recover the size?

    :func:`loss_at_teacher` says the authors' weight (50) is too small for the noise-correlation
    term to pay for what the teacher loses in the likelihood term. This tests that reading: SM-h
    students (the page's SM-h loss with only its ``nc`` weight changed) are
    trained as in :func:`run_experiment` (same data, training, validation; one batch, their own
    seed streams) on every seed index of the chapter's teacher at the strongest drive and of the
    second teacher (:data:`WEAK`), for each weight in ``weights`` (default ``P.nc_weights``), and
    evaluated as the page's fits.

    Returns:
        One row per (weight, teacher, seed index): ``size_ratio`` (within-group noise
        correlation, fit / data), ``nc_r`` (pattern), ``rate_ratio`` (free-run rate / data's) and
        ``w_r`` (coupling correlation with the teacher). Empty where there are no weights.
    """
    P = exp.preset
    weights = P.nc_weights if weights is None else tuple(weights)
    if any(not np.isfinite(w) or w <= 0 for w in weights):
        raise ValueError(f"weights must be finite and > 0, got {weights!r}")
    if not weights:
        return pd.DataFrame()
    conds = [("chapter", P.strongest)] + ([(WEAK, WEAK)] if P.weak_variants else [])
    items = [(w, label, hs, k) for w in weights for label, hs in conds for k in range(P.n_seeds)]
    dev = exp.nets[next(iter(exp.nets))].W.device
    dtype = P.torch_dtype
    net = sm.RSNN(P.n_visible, P.n_hidden, P.n_delays, P.n_inputs, dtype=dtype,
                  seeds=[seeds.int_seed(seed, k, STREAM_NC_WEIGHT, i)
                         for i, (_, _, _, k) in enumerate(items)]).to(dev)

    def stack(attr):
        return torch.as_tensor(np.stack([getattr(exp.data[(hs, k)], attr)
                                         for _, _, hs, k in items]), dtype=dtype, device=dev)

    lw = [replace(_variant("SM-h").weights, nc=float(w)) for w, _, _, _ in items]
    sm.fit(net, stack("train"), stack("stim"), lw, iterations=P.iterations,
           batch_size=P.batch_size, seed=seeds.int_seed(seed, STREAM_NC_WEIGHT, "fit"), lr=P.lr,
           clip=P.clip, validation=stack("val"), select_every=P.select_every)
    with torch.no_grad():
        z = net.free_run(stack("stim"), P.n_eval,
                         seeds.torch_generator(seed, STREAM_NC_WEIGHT, "eval", device=dev))
    z = z.z.cpu().numpy()
    rows = []
    for m, (w, label, hs, k) in enumerate(items):
        r = _evaluate("SM-h", hs, k, z[m, ..., :P.n_visible], exp.data[(hs, k)],
                      net.W[m].detach().cpu(), P, None)
        rows.append({"nc_weight": w, "teacher": label, "seed": k,
                     "size_ratio": r["nc_within"] / r["nc_within_data"], "nc_r": r["nc_r"],
                     "rate_ratio": r["rate_model"] / r["rate_data"], "w_r": r["w_r"]})
    return pd.DataFrame(rows)


def summary(exp: Experiment) -> pd.DataFrame:
    """Mean over seeds of every measure, per variant and hidden strength."""
    cols = ["psth_r", "nc_r", "nc_rmse", "nc_within", "nc_within_data", "w_r", "rate_model",
            "rate_data"]
    order = {n: i for i, n in enumerate(exp.preset.variants)}
    t = exp.table[exp.table.teacher == "chapter"]
    out = t[t.variant.isin(exp.preset.variants)].groupby(["variant", "hidden_strength"])[cols].mean().reset_index()
    out = out.sort_values(["variant", "hidden_strength"],
                          key=lambda c: c.map(order) if c.name == "variant" else c)
    return out.set_index(["variant", "hidden_strength"]).round(3)


def nc_size(exp: Experiment) -> pd.DataFrame:
    """The noise correlations on the two teachers (the chapter's at the strongest drive, and
    :data:`WEAK`): per teacher and fit (trained and untrained), the mean over seeds of the
    pattern (``nc_r``), the error (``nc_rmse``), the mean within-group noise correlation of the
    model and of the data (``nc_within``, ``nc_within_data``) and their ratio (``size_ratio``,
    per seed, then averaged)."""
    P, t = exp.preset, exp.table
    parts = []
    for label, hs, names in (("chapter", P.strongest, P.variants), (WEAK, WEAK, P.weak_variants)):
        for prefix in ("", UNTRAINED):
            for n in names:
                if prefix and n not in ("MLE+PSTH+NC", "SM-h"):
                    continue
                d = t[_rows(t, prefix + n, hs)]
                if len(d):
                    parts.append(d.assign(teacher_label=label,
                                          size_ratio=d.nc_within / d.nc_within_data))
    if not parts:
        return pd.DataFrame()
    d = pd.concat(parts)
    cols = ["nc_r", "nc_rmse", "nc_within", "nc_within_data", "size_ratio", "hidden_strength"]
    return d.groupby(["teacher_label", "variant"], sort=False)[cols].mean().round(3)


def plot_nc_size(ax, exp: Experiment) -> None:
    """Mean within-group noise correlation of each fit (dots: seeds) against the data's (black
    bars), on the chapter's teacher (strongest drive) and on the second teacher."""
    P, t = exp.preset, exp.table
    x, ticks = 0, []
    for label, hs, names in (("chapter's", P.strongest, P.variants), ("second", WEAK, P.weak_variants)):
        if not names:
            continue
        data = t[_rows(t, names[0], hs)].nc_within_data.to_numpy()
        ax.bar(x, data.mean(), color=COLORS["data"], alpha=0.7)
        ax.scatter(np.full(data.size, x), data, color="k", s=10)
        ticks.append((x, f"data\n({label})"))
        for n in names:
            x += 1
            v = t[_rows(t, n, hs)].nc_within.to_numpy()
            ax.bar(x, v.mean(), color=COLORS[n], alpha=0.6)
            ax.scatter(np.full(v.size, x), v, color="k", s=10)
            ticks.append((x, n))
        x += 1.5
    ax.set_xticks([a for a, _ in ticks], [b for _, b in ticks], rotation=40, ha="right")
    ax.set(ylabel="mean within-group noise corr. (dimensionless)")
    ax.axhline(0, color="0.5", lw=0.6)


def _vals(exp: Experiment, variant: str, column: str, hs: float | None = None) -> np.ndarray:
    """Per-seed values, or NaNs where the preset did not fit the variant (or hidden strength)."""
    hs = exp.preset.strongest if hs is None else hs
    t = exp.table
    if not _rows(t, variant, hs).any():
        return np.full(exp.preset.n_seeds, np.nan)
    return exp.value(variant, column, hs)


def _fmt(a: np.ndarray) -> str:
    return ", ".join(f"{x:.3f}" for x in a)


def claim_values(exp: Experiment) -> dict[str, dict]:
    """The measured value of every fit-based claim of ``claims.yml`` and of its control.

    Each claim's control is the same metric with the method replaced by a broken one: the
    untrained networks (their initialisation, free-run evaluated on the same noise) or the
    sample-and-measure terms with their sign flipped (:data:`CONTROLS`). Claims on variants or
    hidden strengths that the preset does not fit get NaN (they are not checked at that scale).

    Returns:
        ``{claim id: {"value", "detail", "control", "control_detail"}}``, the keyword arguments
        of :meth:`lib.claims.Scorecard.record`.
    """
    P, hs = exp.preset, exp.preset.strongest
    h0 = min(P.hidden_strengths)
    U = UNTRAINED
    out = {}

    def put(cid, value, detail, control, control_detail):
        out[cid] = {"value": float(value), "detail": detail, "control": float(control),
                    "control_detail": control_detail}

    def rmse_ratio(name):
        r = _vals(exp, name, "nc_rmse") / _vals(exp, "MLE", "nc_rmse")
        return r, f"NC RMSE of {name} / MLE's per seed: {_fmt(r)}"

    r, d = rmse_ratio("SM-h")
    rc, dc = rmse_ratio(U + "SM-h")
    put("sm-lower-nc-error", np.max(r), d, np.max(rc), dc)

    def psth_err(names):
        e = {n: _vals(exp, n, "psth_rmse") / _vals(exp, n, "rate_data") for n in names}
        return (max(np.max(x) for x in e.values()),
                "; ".join(f"{n} PSTH RMSE / data rate: {_fmt(x)}" for n, x in e.items()))

    put("rates-within-30pct", *psth_err(("MLE", "SM-h")), *psth_err((U + "MLE", U + "SM-h")))

    def psth_gain(name, ref="MLE"):
        d = _vals(exp, name, "psth_r") - _vals(exp, ref, "psth_r")
        return np.min(d), f"PSTH r({name}) - PSTH r({ref}) per seed: {_fmt(d)}"

    put("psth-sm-h-close-to-mle", *psth_gain("SM-h"), *psth_gain(U + "SM-h"))

    def nc_ratios(names):
        rs = {n: rmse_ratio(n)[0] for n in names}
        return (max(np.max(x) for x in rs.values()),
                "; ".join(f"NC RMSE {n} / MLE: {_fmt(x)}" for n, x in rs.items()))

    put("nc-sm-beats-mle", *nc_ratios(("MLE+PSTH+NC", "SM-h")),
        *nc_ratios((U + "MLE+PSTH+NC", U + "SM-h")))

    def weak_nc_ratios(names):
        rs = {n: _vals(exp, n, "nc_rmse", WEAK) / _vals(exp, "MLE", "nc_rmse", WEAK) for n in names}
        return (np.max(np.concatenate(list(rs.values()))),  # NaN where a fit is not in the preset
                "; ".join(f"second teacher, NC RMSE {n} / MLE: {_fmt(x)}" for n, x in rs.items()))

    put("nc-sm-beats-mle-weak-teacher", *weak_nc_ratios(("MLE+PSTH+NC", "SM-h")),
        *weak_nc_ratios((U + "MLE+PSTH+NC", U + "SM-h")))

    def size_err(names, h):
        e = {n: _vals(exp, n, "nc_within", h) / _vals(exp, n, "nc_within_data", h) for n in names}
        return (np.max(np.abs(np.concatenate(list(e.values())) - 1)),
                "; ".join(f"{n} within-group NC / data's per seed: {_fmt(x)}" for n, x in e.items()))

    for cid, h in (("nc-within-size", hs), ("nc-within-size-weak-teacher", WEAK)):
        put(cid, *size_err(("MLE+PSTH+NC", "SM-h"), h), *size_err(("MLE",), h))
    put("psth-term-not-worse", *psth_gain("MLE+PSTH"), *psth_gain("MLE-PSTH"))

    def w_gain(name, ref="MLE", h=hs, h_ref=hs, agg=np.min):
        a, b = _vals(exp, name, "w_r", h), _vals(exp, ref, "w_r", h_ref)
        return (agg(a - b), f"W r per seed: {name} (h = {h:g}) {_fmt(a)}; "
                f"{ref} (h = {h_ref:g}) {_fmt(b)}")

    put("connectivity-hidden-beats-mle", *w_gain("SM-h"), *w_gain(U + "SM-h"))
    if len(P.hidden_strengths) > 1:
        put("mle-connectivity-degrades", *w_gain("MLE", "MLE", h0, hs, np.mean),
            *w_gain("MLE", "MLE (new trials)", h0, h0, np.mean))
    else:
        put("mle-connectivity-degrades", np.nan, "one hidden strength only", np.nan, "")
    put("same-optimum-well-specified", *w_gain("MLE+PSTH+NC", "MLE", h0, h0, np.mean),
        *w_gain("MLE-PSTH-NC", "MLE", h0, h0, np.mean))
    return out


# ----------------------------------------------------------------------------------------------
# Checks: numpy references and goodness of fit
# ----------------------------------------------------------------------------------------------


def reference_statistics(x: np.ndarray, y: np.ndarray, n_lags: int) -> dict[str, np.ndarray]:
    """The summary statistics by plain loops over trials, bins and neurons (the definitions).

    Args:
        x, y: ``(B, T, n)`` signals (``y`` is the lagged one of the cross-covariance).
        n_lags: lags of the noise covariance.

    Returns:
        ``{"psth": (T, n), "cov": (L, n, n)`` of ``x`` with ``y``, ``"rho": (n, n)`` of ``x``}.
    """
    B, T, n = x.shape
    ps = np.zeros((T, n))
    for t in range(T):
        for i in range(n):
            ps[t, i] = sum(x[b, t, i] for b in range(B)) / B
    py = y.mean(axis=0)
    cov = np.zeros((n_lags, n, n))
    for d in range(n_lags):
        for i in range(n):
            for j in range(n):
                s = 0.0
                for b in range(B):
                    for t in range(d, T):
                        s += (x[b, t, i] - ps[t, i]) * (y[b, t - d, j] - py[t - d, j])
                cov[d, i, j] = s / (B * (T - d))
    mean = x.mean(axis=(0, 1))
    rho = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            c = sum((x[b, t, i] - ps[t, i]) * (x[b, t, j] - ps[t, j]) for b in range(B) for t in range(T))
            vi = sum((x[b, t, i] - mean[i]) ** 2 for b in range(B) for t in range(T))
            vj = sum((x[b, t, j] - mean[j]) ** 2 for b in range(B) for t in range(T))
            rho[i, j] = c / np.sqrt(vi * vj)
    return {"psth": ps, "cov": cov, "rho": rho}


def statistics_error(rng: np.random.Generator, B: int = 7, T: int = 11, n: int = 4, n_lags: int = 3,
                     perturb: bool = False) -> float:
    """Largest absolute difference between :mod:`lib.sample_measure`'s statistics and the loops.

    Random spikes ``x`` and probabilities ``y`` of the given sizes; compares
    :func:`lib.sample_measure.psth`, :func:`lib.sample_measure.noise_covariance` (``x`` with
    ``y``, lags ``0..n_lags-1``) and :func:`lib.sample_measure.noise_correlation` in float64.
    With ``perturb`` (the negative control) the loops see ``x`` with one spike flipped (the
    middle trial, bin and neuron), the library the original: one bin's difference must show.
    """
    x = (rng.random((B, T, n)) < 0.3).astype(float)
    y = rng.random((B, T, n))
    xr = x.copy()
    if perturb:
        xr[B // 2, T // 2, n // 2] = 1 - xr[B // 2, T // 2, n // 2]
    ref = reference_statistics(xr, y, n_lags)
    got = {"psth": sm.psth(x), "cov": sm.noise_covariance(x, y, n_lags), "rho": sm.noise_correlation(x)}
    return float(max(np.abs(got[k] - ref[k]).max() for k in ref))


def closed_form_cross_entropy(perturb: bool = False) -> tuple[float, float]:
    """The teacher-forced loss of a tiny network against its cross-entropy written out by hand.

    Two units, one delay, one stimulus channel, three bins, one trial:
    ``v_j(t) = b_j + w_in_j c(t) + sum_i W_ji s_i(t - 1)``, loss
    ``-(1/6) sum_{t, j} [s log sigmoid(v) + (1 - s) log(1 - sigmoid(v))]``. With ``perturb``
    (the negative control) the closed form sees one spike flipped (unit 0, bin 1), the library
    the original.

    Returns:
        ``(library value, closed form)`` in float64.
    """
    W = np.array([[-0.5, 1.2], [0.7, -2.0]])
    w_in, b, c = np.array([0.3, -0.8]), np.array([-1.0, 0.4]), np.array([1.0, -0.5, 2.0])
    s = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    sc = s.copy()
    if perturb:
        sc[1, 0] = 1 - sc[1, 0]
    total = 0.0
    for t in range(3):
        for j in range(2):
            v = b[j] + w_in[j] * c[t] + (W[j] @ sc[t - 1] if t > 0 else 0.0)
            p = 1 / (1 + np.exp(-v))
            total -= sc[t, j] * np.log(p) + (1 - sc[t, j]) * np.log(1 - p)
    closed = total / 6
    net = sm.RSNN.from_weights(torch.tensor(W[None, :, :, None]), torch.tensor(w_in[None, :, None]),
                               torch.tensor(b[None]), n_visible=2)
    with torch.no_grad():
        v, _ = net.teacher_forced(torch.tensor(s[None]), torch.tensor(c[:, None]))
        lib = float(sm.mle_loss(v, torch.tensor(s[None, None]))[0])
    return lib, float(closed)


def gof_pvalues(exp: Experiment, variant: str, hidden_strength: float, k: int, rng: np.random.Generator,
                test: str = "R") -> np.ndarray:
    """KS p-values of one goodness-of-fit test of :mod:`lib.gof` per recorded unit, on test trials.

    The model's one-step-ahead probability given the recorded past (teacher forcing) is the
    conditional intensity a point-process test needs; the held-out trials of each unit are
    concatenated. Only students without hidden units have such an intensity.

    Args:
        exp: the experiment.
        variant: a variant without hidden units.
        hidden_strength, k: the condition.
        rng: the tests' random generator.
        test: a name of :data:`lib.gof.TESTS`.
    """
    if VARIANTS[variant].hidden:
        raise ValueError(f"{variant} has hidden units: its teacher-forced probability is not a "
                         "conditional intensity given the recorded past")
    net, m = exp.net(variant, hidden_strength, k)
    cd = exp.data[(hidden_strength, k)]
    dt = net.W.dtype
    with torch.no_grad():
        v, _ = net.teacher_forced(torch.as_tensor(cd.test, dtype=dt, device=net.W.device)
                                  .expand(net.n_models, *cd.test.shape),
                                  torch.as_tensor(cd.stim, dtype=dt, device=net.W.device))
    p = torch.sigmoid(v[m].double()).cpu().numpy()
    y = cd.test.astype(np.int64)
    out = []
    for i, r in zip(range(y.shape[2]), rng.spawn(y.shape[2]), strict=True):
        out.append(gof.run_tests(y[:, :, i].ravel(), np.clip(p[:, :, i].ravel(), 1e-9, 1 - 1e-9), r,
                                 tests=(test,))[test])
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

COLORS = {"data": "0.15", "MLE": plotting.color(0), "MLE+PSTH": plotting.color(1),
          "MLE+PSTH+NC": plotting.color(2), "SM-h": plotting.color(3)}


def plot_rasters(axes, exp: Experiment, hidden_strength: float, k: int = 0, trial: int = 0) -> None:
    """One held-out data trial and one free-run trial of each variant, one raster per axis."""
    cd = exp.data[(hidden_strength, k)]
    panels = [("data (held out)", cd.test[trial])]
    panels += [(n, exp.samples[(n, hidden_strength, k)][trial]) for n in exp.preset.variants]
    for ax, (name, z) in zip(axes, panels, strict=True):
        t, i = np.nonzero(z)
        ax.scatter(t * sm.DT_S, i, s=4, marker="|", color=COLORS.get(name.split(" ")[0], "k"))
        ax.set(title=name, xlabel="time (s)", ylim=(-0.5, z.shape[1] - 0.5))
    axes[0].set_ylabel("recorded unit")


def plot_nc_scatter(axes, exp: Experiment, hidden_strength: float | str, k: int = 0,
                    variants: tuple[str, ...] | None = None) -> None:
    """Zero-lag noise correlations, model against held-out data, one axis per variant (default
    the preset's variants; ``hidden_strength = WEAK``: the second teacher)."""
    cd = exp.data[(hidden_strength, k)]
    iu = np.triu_indices(exp.preset.n_visible, 1)
    rd = sm.noise_correlation(cd.test.astype(float))[iu]
    for ax, name in zip(axes, variants or exp.preset.variants, strict=True):
        rm = sm.noise_correlation(exp.samples[(name, hidden_strength, k)].astype(float))[iu]
        ax.scatter(rd, rm, s=8, color=COLORS[name])
        lim = [min(rd.min(), rm.min()) - 0.02, max(rd.max(), rm.max()) + 0.02]
        ax.plot(lim, lim, color="0.5", lw=0.8)
        ax.set(title=name, xlabel="data noise correlation (dimensionless)")
    axes[0].set_ylabel("model noise correlation (dimensionless)")


def plot_weights(axes, exp: Experiment, hidden_strength: float, k: int = 0,
                 variants: tuple[str, ...] = ("MLE", "SM-h"), delay: int = 1):
    """Visible-to-visible couplings at one delay: the teacher's, then the fitted ones."""
    nv = exp.preset.n_visible
    mats = [("teacher", exp.data[(hidden_strength, k)].teacher.W[:nv, :nv, delay - 1])]
    for n in variants:
        net, m = exp.net(n, hidden_strength, k)
        mats.append((n, net.W[m, :nv, :nv, delay - 1].detach().cpu().numpy()))
    lim = max(np.abs(w).max() for _, w in mats)
    im = None
    for ax, (name, w) in zip(axes, mats, strict=True):
        im = ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ticks = np.arange(0, nv, max(1, nv // 4))
        ax.set(title=name, xlabel="presynaptic unit", ylabel="postsynaptic unit",
               xticks=ticks, yticks=ticks)
    return im


def plot_weight_r(ax, exp: Experiment) -> None:
    """Correlation of fitted with true visible couplings against the hidden drive, per variant."""
    t = exp.table[exp.table.teacher == "chapter"]
    for i, name in enumerate(exp.preset.variants):
        d = t[t.variant == name]
        off = (i - 1.5) * 0.04
        ax.scatter(d.hidden_strength + off, d.w_r, s=10, color=COLORS[name], alpha=0.6)
        mean = d.groupby("hidden_strength").w_r.mean()
        ax.plot(mean.index + off, mean.to_numpy(), "-o", color=COLORS[name], label=name)
    ax.set(xlabel="hidden-to-visible weight of the teacher (logit units)",
           ylabel="r(fitted, true couplings) (dimensionless)")
    ax.legend()


def explore_hidden_drive(hidden_strength: float = 3.0, n_hidden: int = 16, n_trials: int = 120,
                         seed: int = 0) -> None:
    """The explorer of the theory notebook: how hidden drive makes recorded units correlated.

    Draws a teacher with 8 recorded units and ``n_hidden`` hidden ones driving them with
    ``hidden_strength``, samples ``n_trials`` trials of 40 bins, and shows one trial's raster
    and the zero-lag noise correlations of the recorded units
    (:func:`lib.sample_measure.noise_correlation`).
    """
    import matplotlib.pyplot as plt

    rng = seeds.rng(seed)
    teacher = sm.make_teacher(8, int(n_hidden), float(hidden_strength), rng)
    stim = sm.stimulus(40, 4, rng)
    z = sm.sample_teacher(teacher, stim, int(n_trials), seed)
    rho = sm.noise_correlation(z[:, :, :8])
    fig, ax = plt.subplots(1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [1.6, 1]})
    t, i = np.nonzero(z[0])
    ax[0].scatter(t * sm.DT_S, i, marker="|", s=25, c=np.where(i < 8, plotting.color(0), "0.6"))
    ax[0].axhline(7.5, color="0.3", lw=0.6)
    ax[0].set(xlabel="time (s)", ylabel="unit (0-7 recorded)", title=f"hidden drive h = {hidden_strength:g}")
    off = rho[~np.eye(8, dtype=bool)]
    im = ax[1].imshow(np.where(np.eye(8, dtype=bool), np.nan, rho), vmin=-0.3, vmax=0.3, cmap="RdBu_r")
    ax[1].set(xlabel="recorded unit", ylabel="recorded unit",
              title=f"noise correlation (mean |rho| {np.nanmean(np.abs(off)):.2f})")
    fig.colorbar(im, ax=ax[1], label="rho (dimensionless)")
    plt.show()
