"""The protocol of the chapter ``gateon``: presets per scale, experiments, figures.

The chapter reproduces Barry, Bellec & Gerstner, "GateON: an unsupervised method for large
scale continual learning", arXiv:2306.01690 (2023), on permuted Fashion-MNIST. The science
(gated MLP, relevance, availability, obstruction, EWC and SI, the continual-learning loop) is
:mod:`lib.gateon`; this module holds what belongs to the chapter only:

- :class:`Preset` and :func:`preset`: the sizes of the ``ci``, ``book`` and ``paper`` scales;
- the experiment: :func:`load_stream` (permuted tasks from :func:`lib.data.load`),
  :func:`run_methods` (every method of the comparison on the same tasks) and
  :func:`summary` (one row per method);
- the figures: :func:`plot_accuracy_matrices`, :func:`plot_mean_seen`,
  :func:`plot_availability_histograms`, :func:`plot_available_fraction`.

Every random draw comes from the notebook's seed: the permutations and the data split from
``seed`` (:func:`lib.gateon.task_stream`), the initialisation and minibatches of every run from
``seed`` too, so that all methods see the same tasks, the same first weights of the shared
layers and the same minibatches.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from lib import data, gateon, plotting, progress, scales, torchkit


@dataclass(frozen=True)
class Preset:
    """The sizes of one scale.

    Attributes:
        dataset: the image set of :func:`lib.data.load` whose permutations are the tasks.
        n_tasks: number of permuted tasks.
        hidden: hidden layer sizes of the MLP.
        steps: optimiser steps per task.
        batch_size: images per step.
        lr: Adam's learning rate.
        n_train, n_val, n_test: training, validation and test images per task (the same images
            under each task's permutation).
        eval_every: steps between validation checks (model selection).
        eval_batch: evaluation batch size (batch statistics).
        epsilon: GateON's re-activation threshold; ``gateon-eps0`` is the same with 0.
        ewc_lambda: EWC's strength; si_c: SI's strength (chosen on validation data, see the
            chapter).
        methods: the methods of :func:`run_methods` (names of :func:`lib.gateon.method`, plus
            ``gateon-eps0``).
        theory_tasks, theory_steps, theory_hidden, theory_n_train: sizes of the small runs of
            the theory page; theory_epochs: epochs per task of its plain two-task run.
        device: ``"auto"`` (a GPU only with ``BOOK_DEVICE=cuda``) or ``"cpu"``.
    """

    dataset: str
    n_tasks: int
    hidden: tuple[int, ...]
    steps: int
    batch_size: int
    lr: float
    n_train: int
    n_val: int
    n_test: int
    eval_every: int
    eval_batch: int
    epsilon: float = 1.0
    ewc_lambda: float = 10.0
    si_c: float = 30.0
    methods: tuple[str, ...] = ("finetune", "gating", "availability", "gateon", "gateon-eps0",
                                "ewc", "si")
    theory_tasks: int = 5
    theory_steps: int = 100
    theory_hidden: tuple[int, ...] = (128, 128)
    theory_n_train: int = 10_000
    theory_epochs: int = 3
    device: str = "auto"


PRESETS: dict[str, Preset] = {
    # a few small tasks: every code path and the ci claims, well under a minute
    # (fine-tuning must forget at ci too: 150 steps of 256 images per task)
    "ci": Preset(dataset="fashion-mnist", n_tasks=5, hidden=(128, 128), steps=150,
                 batch_size=256, lr=1e-3, n_train=10_000, n_val=1_000, n_test=1_000,
                 eval_every=25, eval_batch=500,
                 methods=("finetune", "availability", "gateon", "gateon-eps0"),
                 theory_tasks=3, theory_steps=60, theory_n_train=5_000, theory_epochs=1),
    # 10 tasks, 7 runs on 2 CPU cores in about 4 minutes
    "book": Preset(dataset="fashion-mnist", n_tasks=10, hidden=(256, 256), steps=150,
                   batch_size=256, lr=1e-3, n_train=20_000, n_val=2_000, n_test=2_000,
                   eval_every=25, eval_batch=500),
    # the original's defaults (pkg/general_utils.py): 4 x 5000 units, Adam 5e-3, 1000 images
    # per step, 500 steps per task; 100 permuted MNIST tasks; a GPU (BOOK_DEVICE=cuda)
    "paper": Preset(dataset="mnist", n_tasks=100, hidden=(5000, 5000, 5000, 5000), steps=500,
                    batch_size=1000, lr=5e-3, n_train=50_000, n_val=10_000, n_test=10_000,
                    eval_every=10, eval_batch=1000, theory_tasks=5, theory_steps=500,
                    theory_hidden=(1000, 1000), theory_n_train=50_000),
}


def preset(scale: str) -> Preset:
    """The :class:`Preset` of ``scale`` (``"ci"``, ``"book"`` or ``"paper"``; else ``ValueError``)."""
    return scales.pick(PRESETS, scale)


#: Labels of the methods in tables and figures.
LABELS: dict[str, str] = {
    "finetune": "fine-tuning",
    "gating": "gating only",
    "availability": "availability only",
    "gateon": "GateON",
    "gateon-eps0": "GateON, epsilon = 0",
    "ewc": "EWC",
    "si": "SI",
}


def color_of(name: str) -> str:
    """The colour of method ``name`` in every figure of the chapter."""
    names = list(LABELS)
    return plotting.color(names.index(name) if name in names else len(names))


def method_of(name: str, P: Preset, mask: str = "update") -> gateon.Method:
    """The :class:`lib.gateon.Method` called ``name`` with the preset's settings."""
    if name == "gateon-eps0":
        m = gateon.method("gateon", epsilon=0.0, mask=mask)
        return gateon.Method(**{**m.__dict__, "name": "gateon-eps0"})
    return gateon.method(name, epsilon=P.epsilon, mask=mask, ewc_lambda=P.ewc_lambda,
                         si_c=P.si_c)


def load_stream(P: Preset, seed: int, n_tasks: int | None = None, n_train: int | None = None):
    """The permuted tasks of the preset, and the dataset they came from.

    Args:
        P: the preset.
        seed: seeds the split and the permutations.
        n_tasks, n_train: override the preset's (for the theory page's small runs).

    Where the dataset holds fewer images than asked for (the packaged MNIST sample on a machine
    without Fashion-MNIST), the counts are scaled down in proportion (:func:`lib.data.sizes`).

    Returns:
        ``(stream, sizes)``: a :class:`lib.gateon.TaskStream` and the :class:`lib.data.Sizes`
        used, whose ``description`` names the data and the counts actually used.
    """
    ds = data.load(P.dataset)
    n = data.sizes(ds, train={"train": n_train or P.n_train, "val": P.n_val}, test={"test": P.n_test})
    stream = gateon.task_stream(ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                                n_tasks or P.n_tasks, seed, n["train"], n["val"], n["test"])
    return stream, n


def permuted(stream, task: int, split: str = "train"):
    """``(x, y)`` of ``split`` (``"train"``, ``"val"`` or ``"test"``) under task ``task``'s permutation."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    x, y = getattr(stream, f"x_{split}"), getattr(stream, f"y_{split}")
    return x[:, stream.perms[task]], y


def plain_mlp(n_in: int, hidden, n_out: int = 10):
    """A plain ReLU MLP (``torch.nn.Sequential``) for the two-task demonstration."""
    layers, a = [], n_in
    for h in hidden:
        layers += [torch.nn.Linear(a, h), torch.nn.ReLU()]
        a = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(a, n_out))


def plain_accuracy(model, xy) -> float:
    """Accuracy of a plain model on ``(x, y)``."""
    with torch.no_grad():
        return torchkit.accuracy(model(xy[0]), xy[1])


def run(P: Preset, stream, name: str, seed: int, mask: str = "update", hidden=None,
        steps: int | None = None) -> gateon.SequenceResult:
    """One method on ``stream`` with the preset's sizes (``hidden``, ``steps`` override them)."""
    return gateon.train_sequence(stream, method_of(name, P, mask), hidden or P.hidden,
                                 steps or P.steps, P.batch_size, P.lr, seed,
                                 eval_every=P.eval_every, eval_batch=P.eval_batch,
                                 device=torchkit.device(P.device))


def run_methods(P: Preset, stream, seed: int, methods=None) -> dict[str, gateon.SequenceResult]:
    """Every method of ``P.methods`` (or ``methods``) on the same tasks, from the same seed."""
    names = tuple(methods or P.methods)
    return {name: run(P, stream, name, seed) for name in progress.bar(names, desc="methods")}


def summary(results: dict[str, gateon.SequenceResult]) -> pd.DataFrame:
    """One row per method: accuracies after the last task and right after learning each task."""
    rows = []
    for name, r in results.items():
        half = len(r.acc) // 2
        rows.append({
            "method": LABELS.get(name, name),
            "mean acc. at end": r.final_mean,
            "task 1 at end": r.final[0],
            "just learned (mean)": float(r.just_learned.mean()),
            "just learned (2nd half)": float(r.just_learned[half:].mean()),
            "val. mean at end": float(np.mean(r.val[-1])),
        })
    return pd.DataFrame(rows).set_index("method").round(3)


def available_fraction(r: gateon.SequenceResult, above: float = gateon.UNAVAILABLE_BELOW):
    """Fraction of hidden units (all layers) whose availability is at least ``above``, per task."""
    return np.array([np.mean(np.concatenate(a) >= above) for a in r.availability])


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def plot_accuracy_matrices(results: dict[str, gateon.SequenceResult], ncols: int = 4):
    """Heat maps of the test accuracy of every task (columns) after each task (rows)."""
    names = list(results)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.4 * nrows + 0.6),
                             squeeze=False, sharex=True, sharey=True)
    n = len(results[names[0]].acc)
    ticks = np.arange(0, n, max(1, n // 5))
    for ax, name in zip(axes.flat, names, strict=False):
        im = ax.imshow(results[name].acc, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(LABELS.get(name, name), fontsize=9)
        ax.set_xticks(ticks, [str(t + 1) for t in ticks])
        ax.set_yticks(ticks, [str(t + 1) for t in ticks])
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("task tested")
    for ax in axes[:, 0]:
        ax.set_ylabel("after learning task")
    fig.colorbar(im, ax=axes, shrink=0.8, label="test accuracy (fraction)")
    return fig


def plot_mean_seen(ax, results: dict[str, gateon.SequenceResult]):
    """Mean test accuracy over the tasks learned so far, against their number."""
    for name, r in results.items():
        t = np.arange(1, len(r.acc) + 1)
        ls = "--" if name == "gateon-eps0" else "-"
        ax.plot(t, r.mean_seen, ls, marker="o", ms=3, color=color_of(name),
                label=LABELS.get(name, name))
    ax.set_xlabel("number of tasks learned")
    ax.set_ylabel("mean test accuracy on them (fraction)")
    ax.legend(fontsize=8, ncols=2)


def plot_availability_histograms(ax, r: gateon.SequenceResult, tasks=None):
    """Histograms of the availabilities (all hidden units) at the end of some tasks."""
    n = len(r.availability)
    tasks = list(tasks) if tasks is not None else sorted({0, n // 3, 2 * n // 3, n - 1})
    bins = np.linspace(0, 1, 21)
    for i, t in enumerate(tasks):
        a = np.concatenate(r.availability[t])
        ax.hist(a, bins=bins, histtype="step", lw=1.5, color=plotting.color(i),
                label=f"after task {t + 1}")
    ax.set_xlabel("availability $\\tilde A$ (dimensionless)")
    ax.set_ylabel("hidden units")
    ax.legend(fontsize=8)


def plot_available_fraction(ax, results: dict[str, gateon.SequenceResult],
                            above: float = gateon.UNAVAILABLE_BELOW):
    """Fraction of units still available (``A >= above``) after each task, per method."""
    for name, r in results.items():
        if not r.availability:
            continue
        f = available_fraction(r, above)
        ax.plot(np.arange(1, len(f) + 1), f, marker="o", ms=3, color=color_of(name),
                ls="--" if name == "gateon-eps0" else "-", label=LABELS.get(name, name))
    ax.set_xlabel("number of tasks learned")
    ax.set_ylabel(f"fraction of units with $A \\geq {above:g}$")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)


def explore_availability(relevance: float = 2.0, epsilon: float = 0.5, eta: float = gateon.ETA_A,
                         a0: float = 1.0, steps: int = 600) -> None:
    """The explorer of the theory notebook: availability under a constant relevance.

    Plots :func:`lib.gateon.availability_after` for the chosen relevance (and, for comparison,
    for relevances 0 and 1), with the re-activation threshold ``epsilon`` and rate ``eta``.
    """
    t = np.arange(0, int(steps) + 1)
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, r in enumerate(sorted({0.0, 1.0, float(relevance)})):
        a = gateon.availability_after(t, r, eta=eta, epsilon=epsilon, a0=a0)
        ax.plot(t, a, color=plotting.color(i), lw=2.4 if r == relevance else 1.2,
                label=f"relevance {r:g}" + (" (chosen)" if r == relevance else ""))
    ax.set(xlabel="training steps", ylabel="availability (dimensionless)", ylim=(-0.03, 1.03),
           title=f"epsilon = {epsilon:g}, eta = {eta:g}")
    ax.legend(fontsize=8)
    plt.show()
