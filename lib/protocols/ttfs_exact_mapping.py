"""The protocol of the chapter ``ttfs-exact-mapping``: presets per scale, experiments, figures.

The chapter reproduces Stanojevic, Woźniak, Bellec, Cherubini, Pantazi & Gerstner (2023), "An exact
mapping from ReLU networks to spiking neural networks", *Neural Networks* (arXiv:2212.12522). The
science (ReLU networks, the α1 mapping and simulator) is :mod:`lib.ttfs`; this module holds what
belongs to the chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- :func:`pipeline`: train, fold, scale, map and simulate one network on a whole test set;
- :func:`pool_ablation`: the same SNN with every pool taking the earliest spike (no min-pools);
- :func:`robustness`: the paper's three perturbation sweeps (window margin, spike-time jitter,
  α-noise) and :func:`degrades_monotonically`, how the chapter reads the jitter sweep;
- figures: :func:`pick_neurons`, :func:`plot_spike_wave`, :func:`plot_potentials`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from lib import plotting, progress, scales, torchkit
from lib.ttfs import (
    INPUT_T_MAX,
    SNN,
    VGG,
    ZETA,
    Architecture,
    Exactness,
    Layer,
    Network,
    ReLUNet,
    SNNResult,
    Training,
    exactness,
    fold,
    layer_maxima,
    logits,
    map_to_snn,
    noisy_relu_predictions,
    potential,
    scale_weights,
    simulate,
    threshold,
    train,
)

# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Net:
    """One more network of a scale: a name, the dataset it is trained on, its architecture and training."""

    name: str
    dataset: str
    arch: Architecture
    training: Training


@dataclass(frozen=True)
class Preset:
    """Sizes of one scale of the chapter ``ttfs-exact-mapping``.

    Attributes:
        fc_datasets: datasets (names for :func:`lib.data.load`) on which the fully connected net is
            trained, mapped and simulated on the whole test set; the first one is the main one.
        fc: the fully connected architecture (``input_shape`` is set from the data).
        fc_training: its training.
        cnn_dataset: dataset of the convolutional net.
        cnn: the convolutional architecture.
        cnn_training: its training.
        n_xmax: training images used to find the window sizes ``X_n`` (None: all).
        zetas: window margins of the ζ sweep (the paper's grid).
        sigmas: standard deviations of the spike-time jitter (in units of TAU_C).
        alpha_noises: standard deviations of the frozen per-neuron jitter of α.
        trials: noise trials per value (mean ± sd).
        n_robust: test images in each robustness run (the sweeps use the convolutional net, the
            closest analogue of the paper's CIFAR-10 VGG).
        n_control: test images on which the exactness claims' control
            (:func:`control_exactness`) is simulated (None: all).
        extra_cnns: further convolutional nets mapped and simulated on their whole test set and
            judged with the CNN (LeNet-5 with 'valid' padding, the CIFAR VGG with its input range).
    """

    fc_datasets: tuple[str, ...]
    fc: Architecture
    fc_training: Training
    cnn_dataset: str
    cnn: Architecture
    cnn_training: Training
    n_xmax: int | None
    zetas: tuple[float, ...]
    sigmas: tuple[float, ...]
    alpha_noises: tuple[float, ...]
    trials: int
    n_robust: int
    extra_cnns: tuple[Net, ...] = ()
    n_control: int | None = None


#: The paper's grids (authors' experiment flags): window margins, spike-time jitter, α-noise.
PAPER_ZETAS = (-0.7, -0.6, -0.5, -0.4, -0.3, 0.0, 0.5)
PAPER_SIGMAS = (5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.03, 0.05)
PAPER_ALPHA_NOISES = (5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3)

_MNIST_SHAPE = (1, 28, 28)
_DIGITS_SHAPE = (1, 8, 8)


PRESETS = {
    "ci": Preset(
        fc_datasets=("digits",),
        fc=Architecture(_DIGITS_SHAPE, dense=(100,)),
        fc_training=Training(epochs=20, batch_size=32, lr=2e-3),
        cnn_dataset="digits",
        cnn=Architecture(_DIGITS_SHAPE, conv=(6, "P", 12, "P"), dense=(32,), bn="after", bn_negative=0.25),
        cnn_training=Training(epochs=20, batch_size=32, lr=3e-3),
        n_xmax=None,
        zetas=(-0.5, 0.0, 0.5),
        sigmas=(1e-3, 0.03, 0.3),
        alpha_noises=(1e-4, 1e-2),
        trials=2,
        n_robust=200,
        # 'valid' padding and an input range, on the digits (the paper-scale nets use both)
        extra_cnns=(Net("valid-padding CNN", "digits",
                        Architecture(_DIGITS_SHAPE, conv=(6, "P", 12), dense=(32,), bn="before",
                                     padding=("same", "valid"), input_range=(-1.0, 1.0)),
                        Training(epochs=10, batch_size=32, lr=3e-3)),),
    ),
    "book": Preset(
        fc_datasets=("fashion-mnist", "mnist"),
        fc=Architecture(_MNIST_SHAPE, dense=(600,)),
        fc_training=Training(epochs=3, batch_size=128, lr=1e-3),
        cnn_dataset="fashion-mnist",
        cnn=Architecture(_MNIST_SHAPE, conv=(8, "P", 16, "P"), dense=(64,), bn="after", bn_negative=0.25),
        cnn_training=Training(epochs=2, batch_size=128, lr=2e-3),
        n_xmax=None,
        zetas=PAPER_ZETAS,
        sigmas=PAPER_SIGMAS,
        alpha_noises=PAPER_ALPHA_NOISES,
        trials=4,
        n_robust=500,
        n_control=1000,
    ),
    "paper": Preset(
        fc_datasets=("mnist", "fashion-mnist"),
        # The authors' MNIST FC2 demo: 784-600-10, dropout 0.08, Adam 5e-4 decayed by 0.9 every 5000 steps.
        fc=Architecture(_MNIST_SHAPE, dense=(600,), dropout=0.08),
        fc_training=Training(epochs=20, batch_size=128, lr=5e-4),
        cnn_dataset="fashion-mnist",
        cnn=VGG["mnist-vgg16"],
        cnn_training=Training(epochs=20, batch_size=128, lr=5e-4),
        n_xmax=None,
        zetas=PAPER_ZETAS,
        sigmas=PAPER_SIGMAS,
        alpha_noises=PAPER_ALPHA_NOISES,
        trials=16,
        n_robust=10000,
        n_control=1000,
        # LeNet-5 ('valid' padding, BN before the ReLUs) and the CIFAR-10 VGG15 (standardised
        # pixels: the input range folded into the first layer), trained with Adam, not with the
        # authors' SGD recipe and augmentation
        extra_cnns=(Net("LeNet-5", "mnist", VGG["mnist-lenet5"], Training(epochs=20, batch_size=128, lr=5e-4)),
                    Net("CIFAR-10 VGG15", "cifar-10", VGG["cifar10-vgg15"],
                        Training(epochs=60, batch_size=128, lr=5e-4))),
    ),
}


def preset(scale: str) -> Preset:
    """The chapter's sizes at ``scale`` (``"ci"``, ``"book"`` or ``"paper"``; else a ``ValueError``)."""
    return scales.pick(PRESETS, scale)


# ----------------------------------------------------------------------------------------------
# Experiments
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Robustness:
    """Accuracy of an SNN under narrower windows, spike-time jitter and α-noise.

    Attributes:
        acc_ann: the ReLU network's accuracy on the same images.
        zetas, acc_zeta, early_zeta: window margins, accuracy and fraction of hidden spikes that
            come before their window (clipped activations), deterministic.
        early_images_zeta: per margin, the fraction of images in which some neuron crossed
            threshold before its last input (``SNNResult.early``).
        disagree_zeta: per margin, the fraction of images whose predicted class differs from the
            ReLU network's.
        sigmas, acc_sigma: jitter std and accuracy ``(len(sigmas), trials)``.
        acc_sigma_relu: accuracy of the ReLU network with the equivalent noise on its activations
            (:func:`~lib.ttfs.relu.noisy_relu_predictions`), ``(len(sigmas), trials)``.
        alpha_noises, acc_alpha: α-noise std and accuracy ``(len(alpha_noises), trials)``.
    """

    acc_ann: float
    zetas: tuple[float, ...]
    acc_zeta: np.ndarray
    early_zeta: np.ndarray
    early_images_zeta: np.ndarray
    sigmas: tuple[float, ...]
    acc_sigma: np.ndarray
    acc_sigma_relu: np.ndarray
    alpha_noises: tuple[float, ...]
    acc_alpha: np.ndarray
    disagree_zeta: np.ndarray | None = None


def degrades_monotonically(acc_clean: float, acc_noisy: np.ndarray) -> bool:
    """Whether accuracy falls with the noise level: the trial mean never rises by more than one trial sd
    from one level to the next (starting from the noiseless accuracy), and it ends below the noiseless one.

    Args:
        acc_clean: accuracy without noise.
        acc_noisy: ``(levels, trials)`` accuracies, levels in increasing order of noise.
    """
    acc_noisy = np.asarray(acc_noisy, dtype=float)
    if acc_noisy.ndim != 2 or acc_noisy.shape[0] < 1:
        raise ValueError(f"acc_noisy must be (levels, trials), got shape {acc_noisy.shape}")
    mean = np.r_[acc_clean, acc_noisy.mean(1)]
    sd = np.r_[0.0, acc_noisy.std(1, ddof=1) if acc_noisy.shape[1] > 1 else np.zeros(len(acc_noisy))]
    steps_ok = np.all(np.diff(mean) <= np.maximum(sd[:-1], sd[1:]))
    return bool(steps_ok and mean[-1] < acc_clean)


def robustness(net: Network, x_max: Sequence[float], x: np.ndarray, y: np.ndarray, zetas: Sequence[float],
               sigmas: Sequence[float], alpha_noises: Sequence[float], trials: int,
               rng: np.random.Generator, zeta: float = ZETA) -> Robustness:
    """Accuracy under the three perturbations of the paper's robustness study.

    Args:
        net: the scaled ReLU network.
        x_max: its layer maxima on the training data.
        x, y: test images and labels.
        zetas: window margins to map with (no noise).
        sigmas: spike-time jitter std (every spike, inputs included), at margin ``zeta``.
        alpha_noises: std of the frozen per-neuron α-noise, at margin ``zeta``.
        trials: noise draws per value.
        rng: the generator every draw comes from.
        zeta: margin of the noise sweeps.

    Narrow windows and noise are meant to break the mapping: the early crossings they cause are
    counted (``early_zeta``, ``early_images_zeta``), not warned about.
    """
    pred_ann = net.logits(x).argmax(1)
    acc_ann = float(np.mean(pred_ann == y))
    acc_z, early_z, early_i, dis_z = [], [], [], []
    sim = partial(simulate, warn=False)
    for z in progress.bar(zetas, desc="zeta"):
        snn = map_to_snn(net, x_max, z)
        res = sim(snn, x)
        acc_z.append(float(np.mean(res.predictions() == y)))
        dis_z.append(float(np.mean(res.predictions() != pred_ann)))
        early_z.append(sum(int(np.sum(t < L.t_min)) for L, t in zip(snn.layers, res.spike_times, strict=True))
                       / sum(t.size for t in res.spike_times))
        early_i.append(float(np.mean(res.early)))
    base = map_to_snn(net, x_max, zeta)
    acc_s = np.array([[np.mean(sim(base, x, sigma=s, rng=rng).predictions() == y) for _ in range(trials)]
                      for s in progress.bar(sigmas, desc="sigma")])
    acc_r = np.array([[np.mean(noisy_relu_predictions(net, x, s, rng) == y) for _ in range(trials)] for s in sigmas])
    acc_a = np.array([[np.mean(sim(base.with_alpha_noise(a, rng), x).predictions() == y) for _ in range(trials)]
                      for a in progress.bar(alpha_noises, desc="alpha-noise")])
    return Robustness(acc_ann, tuple(zetas), np.array(acc_z), np.array(early_z), np.array(early_i), tuple(sigmas),
                      acc_s, acc_r, tuple(alpha_noises), acc_a, np.array(dis_z))


def pool_ablation(p: "Pipeline", x: np.ndarray, y: np.ndarray, ann_logits: np.ndarray) -> tuple[int, Exactness]:
    """The mapped SNN of ``p`` with every pool taking the earliest spike, whatever the folded BN scale.

    A channel whose batch norm (after the ReLU) has a negative scale must pool the *latest* spike
    (the smallest value, since the scale flips the order); pooling the earliest there is the
    mistake a plain max-pool makes. Returns the number of min-pooled channels of ``p.snn`` and the
    :func:`~lib.ttfs.alpha1.exactness` of the ablated SNN on ``x``.
    """
    n_min = sum(int(np.sum(L.pool_sign < 0)) for L in p.snn.layers if L.pool > 1)
    ablated = replace(p.snn, layers=tuple(replace(L, pool_sign=np.ones_like(L.pool_sign)) if L.pool > 1 else L
                                          for L in p.snn.layers))
    return n_min, exactness(ablated, p.scaled, x, y, ann_logits)


def broken_mapping(snn: SNN) -> SNN:
    """The control of the exactness claims: ``snn`` with the term ``B sum_j J_ij`` dropped from
    every hidden threshold (``theta = alpha (t_max - t_min_prev) - (alpha + sum_j J_ij) b``).

    That term is the inputs' share of the potential's rise during the window; without it every
    neuron fires ``B sum_j W_ij`` too early or too late, so the spike times no longer code the ReLU
    values. A mapping with one term of its threshold missing is the kind of mistake the exactness
    criteria must catch (readout error, agreement, accuracy, spikes in their window).
    """
    layers = []
    for L in snn.layers:
        sJ = L.J.reshape(L.J.shape[0], -1).sum(1).reshape((-1,) + (1,) * (L.theta.ndim - 1))
        layers.append(replace(L, theta=L.theta - (L.t_max - L.t_min) * sJ))
    return replace(snn, layers=tuple(layers))


def control_exactness(p: "Pipeline", x: np.ndarray, y: np.ndarray, n: int | None = None) -> Exactness:
    """:func:`~lib.ttfs.alpha1.exactness` of :func:`broken_mapping` of ``p.snn`` on the first ``n``
    images of ``x`` (None: all), against the same reference as ``p.exact`` (the scaled net's
    activations, the trained net's logits).

    A broken mapping crosses threshold early almost everywhere, which the simulator integrates
    event by event, so it is slow on large test sets; a failure on the first ``n`` images is a
    failure on the whole set for the maxima and minima of the claims (error ratio, agreement,
    spikes in their window).
    """
    k = len(x) if n is None else min(int(n), len(x))
    return exactness(broken_mapping(p.snn), p.scaled, x[:k], y[:k], p.ann_logits[:k])


@dataclass(frozen=True)
class Pipeline:
    """A trained ReLU network, its folded and scaled versions, the mapped SNN and their comparison.

    Attributes:
        model: the trained torch network.
        history: its training history.
        folded: BN folded into plain weights (:func:`~lib.ttfs.relu.fold`).
        scaled: summed input weights in [-10, 0.99] (:func:`~lib.ttfs.relu.scale_weights`).
        x_max: the layer maxima ``X_n`` on the training images.
        snn: the α1 network (:func:`~lib.ttfs.alpha1.map_to_snn`, margin ``ZETA``).
        ann_logits: the trained network's logits on the test set.
        acc_folded: test accuracy of the scaled network (the "scaled ReLU" of the authors' demo).
        exact: the comparison on the whole test set (:func:`~lib.ttfs.alpha1.exactness`).
        data: the dataset's description.
    """

    model: ReLUNet = field(repr=False)
    history: torchkit.History
    folded: Network = field(repr=False)
    scaled: Network = field(repr=False)
    x_max: tuple[float, ...]
    snn: SNN = field(repr=False)
    ann_logits: np.ndarray = field(repr=False)
    acc_folded: float
    exact: Exactness
    data: str


def pipeline(arch: Architecture, training: Training, ds, seed: int, n_xmax: int | None = None,
             name: str = "net") -> Pipeline:
    """Train, fold, scale, map and simulate on the whole test set (the chapter's main experiment).

    Args:
        arch: the architecture (its ``input_shape`` must match the data).
        training: how to train it.
        ds: a :class:`lib.data.Dataset`.
        seed: training seed.
        n_xmax: training images used for the windows (None: all).
        name: label of the progress bars.
    """
    model, history = train(arch, ds.x_train, ds.y_train, training, seed, desc=f"{name}: training")
    folded = fold(model)
    scaled = scale_weights(folded)
    x_train = ds.x_train if n_xmax is None else ds.x_train[:n_xmax]
    x_max = layer_maxima(scaled, x_train)
    snn = map_to_snn(scaled, x_max)
    ann = logits(model, ds.x_test)
    acc_folded = float(np.mean(scaled.logits(ds.x_test).argmax(1) == ds.y_test))
    exact = exactness(snn, scaled, ds.x_test, ds.y_test, ann,
                      progress=partial(progress.bar, desc=f"{name}: SNN"))
    return Pipeline(model, history, folded, scaled, x_max, snn, ann, acc_folded, exact, ds.description)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def pick_neurons(result: SNNResult, snn: SNN, image: int, per_layer: int, rng: np.random.Generator,
                 active_first: bool = True) -> list[np.ndarray]:
    """Flat indices of ``per_layer`` neurons per layer (input, hidden...) for one image.

    With ``active_first``, neurons that fire before their window's end are chosen first (at random),
    and silent ones fill up the rest; the paper's raster also shows a few neurons per layer.
    """
    layers = [(result.input_times[image].ravel(), INPUT_T_MAX)] + \
        [(t[image].ravel(), L.t_max) for L, t in zip(snn.layers, result.spike_times, strict=True)]
    out = []
    for t, t_max in layers:
        act, sil = np.flatnonzero(t < t_max), np.flatnonzero(t >= t_max)
        if not active_first:
            act, sil = np.arange(t.size), np.array([], dtype=int)
        k = min(per_layer, act.size)
        chosen = list(rng.choice(act, k, replace=False)) + list(rng.choice(sil, min(per_layer - k, sil.size),
                                                                           replace=False))
        out.append(np.sort(np.array(chosen, dtype=int)))
    return out


def plot_spike_wave(ax, snn: SNN, result: SNNResult, image: int, neurons: Sequence[np.ndarray],
                    cmap: str = "viridis", relative: bool = True):
    """Raster of the chosen neurons of every layer for one image, coloured by the value they encode.

    Args:
        ax: a matplotlib axes.
        snn, result: the network and a simulation.
        image: which image of ``result``.
        neurons: flat neuron indices per layer, input layer first (:func:`pick_neurons`).
        cmap: colour map of the encoded value ``t_max - t``.
        relative: colour by the value divided by the layer's largest training activation ``X_n``
            (1 for the input), so that layers of different ranges share one colour scale (0 to 1).

    Returns:
        The scatter artist (for a colour bar).
    """
    times = [result.input_times[image].ravel()] + [t[image].ravel() for t in result.spike_times]
    wins = snn.windows
    rows, ts, vals, ticks, labels = [], [], [], [], []
    y = 0
    for n, (t, idx) in enumerate(zip(times, neurons, strict=True)):
        t_min, t_max = wins[n]
        ax.axvspan(t_min, t_max, ymin=0, ymax=1, color=plt.get_cmap("Greys")(0.08 + 0.06 * (n % 2)), lw=0)
        rows.extend(y + np.arange(len(idx)))
        ts.extend(t[idx])
        vals.extend((t_max - t[idx]) / (1.0 if n == 0 or not relative else snn.x_max[n - 1]))
        ticks.append(y + (len(idx) - 1) / 2)
        labels.append("input" if n == 0 else f"layer {n}")
        y += len(idx) + 2
    sc = ax.scatter(ts, rows, c=vals, cmap=cmap, s=22, marker="|", linewidths=2.5, vmin=0,
                    vmax=1 if relative else None)
    ax.axvline(snn.readout.t_read, color="k", ls="--", lw=1)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel(r"time $t$ ($\tau_c$)")
    ax.set_xlim(0, snn.readout.t_read * 1.02)
    return sc


def plot_potentials(ax, snn: SNN, result: SNNResult, layer: int, image: int, neurons: Sequence[int],
                    normalise: bool = False, n_points: int = 600) -> None:
    """Membrane potentials of a few neurons of one layer with their thresholds, spikes and window lines.

    Args:
        ax: a matplotlib axes.
        snn, result: the network and a simulation.
        layer: hidden layer (0-based); ``len(snn.layers)`` draws the output potentials up to the
            readout time instead.
        image: which image of ``result``.
        neurons: flat indices of the neurons (classes for the output).
        normalise: divide each hidden potential by its threshold (thresholds differ by orders of
            magnitude between neurons, with the slope ``alpha / (1 - sum W)``); all cross at 1.
        n_points: time points of each curve.
    """
    out = layer == len(snn.layers)
    t0 = snn.readout.t_min_prev if out else snn.layers[layer].t_min_prev
    t_end = snn.readout.t_read if out else snn.layers[layer].t_max
    grid = np.linspace(max(t0 - 0.05 * (t_end - t0), 0.0), t_end + (0 if out else 0.05 * (t_end - t0)), n_points)
    neurons = list(neurons)
    cmap = plt.get_cmap("tab10") if len(neurons) > len(plotting.PALETTE) else None
    for j, i in enumerate(neurons):
        col = cmap(j % 10) if cmap is not None else plotting.color(j)
        v = potential(snn, result, layer, image, int(i), grid)
        if out:
            ax.plot(grid, v, color=col, label=f"class {i}")
            ax.plot([t_end], [v[-1]], "o", color=col, ms=4)
            continue
        th = threshold(snn, layer, int(i))
        scale = th if normalise else 1.0
        t_sp = result.spike_times[layer][image].ravel()[i]
        v = np.where(grid <= t_sp, v, np.nan)  # the neuron fires once; its potential is not shown afterwards
        ax.plot(grid, v / scale, color=col, label=f"neuron {i}" + (" (silent)" if t_sp >= t_end else ""))
        ax.axhline(th / scale, color=col, ls=":", lw=1)
        if t_sp < t_end:  # a threshold crossing
            ax.plot([t_sp], [th / scale], marker="*", color=col, ms=9)
        else:  # forced to fire at t_max, below threshold
            v_end = potential(snn, result, layer, image, int(i), np.array([t_end]))[0]
            ax.plot([t_end], [v_end / scale], marker="x", color=col, ms=7)
    lines = [(t0, r"$t_{\min}^{(n-1)}$")] + ([] if out else [(snn.layers[layer].t_min, r"$t_{\min}^{(n)}$")]) + \
        [(t_end, r"$t_{\min}^{(N)}$" if out else r"$t_{\max}^{(n)}$")]
    for t, lab in lines:
        ax.axvline(t, color="0.4", ls="--", lw=0.8)
        ax.annotate(lab, (t, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel(r"time $t$ ($\tau_c$)")
    if out:
        ax.set_ylabel(r"output potential $V_k$ ($\alpha\tau_c$)")
    else:
        ax.set_ylabel(r"potential $V/\vartheta$" if normalise else r"potential $V$ ($\alpha\tau_c$)")


__all__ = [
    "explore_neuron",
    "PAPER_ALPHA_NOISES", "PAPER_SIGMAS", "PAPER_ZETAS", "PRESETS", "Net", "Pipeline", "Preset", "Robustness",
    "broken_mapping", "control_exactness", "degrades_monotonically", "pick_neurons", "pipeline", "plot_potentials",
    "plot_spike_wave", "pool_ablation",
    "preset", "robustness",
]


def explore_neuron(w1: float = 1.0, w2: float = -5.0, w3: float = 3.0, b: float = 2.0,
                   zeta: float = ZETA) -> None:
    """The explorer of the theory notebook: one alpha1 neuron mapped from one ReLU unit.

    The unit has three inputs ``x = (1, 0.5, 0)`` with weights ``(w1, w2, w3)`` and bias ``b``;
    it is mapped with window margin ``zeta`` (:func:`~lib.ttfs.alpha1.map_to_snn`) and simulated
    (:func:`~lib.ttfs.alpha1.simulate`). The figure shows its potential divided by its threshold,
    and the title the ReLU value, the value its spike time decodes to, and whether it crossed
    threshold before its last input (where the mapping is no longer exact).
    """
    import warnings

    x = np.array([[1.0, 0.5, 0.0]])
    w = np.array([[w1, w2, w3]], dtype=float)
    net = Network((Layer("dense", w, np.array([b], dtype=float), (3,)),
                   Layer("dense", np.ones((1, 1)), np.zeros(1), (1,), relu=False)))
    net = scale_weights(net)  # the value below is that of the scaled unit (homogeneity)
    relu = float(layer_maxima(net, x)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snn = map_to_snn(net, [max(relu, 1e-3)], zeta=zeta)
        res = simulate(snn, x, warn=False)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    plot_potentials(ax, snn, res, 0, 0, [0], normalise=True)
    L = snn.layers[0]
    t = float(res.spike_times[0][0, 0])
    decoded = L.t_max - t
    early = bool(res.early[0]) if res.early is not None else False
    ax.set(xlabel="time (units of tau_c)", ylabel="potential / threshold (dimensionless)",
           title=f"ReLU value {relu:.3g} (scaled unit), decoded {decoded:.3g}"
           + (" -- early crossing" if early else ""))
    plt.show()
