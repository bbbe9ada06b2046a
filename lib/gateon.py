"""GateON for multi-layer perceptrons: context gating, availability and obstruction.

The science of the chapter ``gateon``: Barry, Bellec & Gerstner, "GateON: an unsupervised method
for large scale continual learning", arXiv:2306.01690 (2023); journal version "Context
selectivity with dynamic availability enables lifelong continual learning", *Neural Networks*
192:107728 (2025). The model follows the authors' code (``martinbarry59/GATEONMNIST``,
``pkg/nGateON.py``, neuron-wise n-GateON); where this module departs from it, the docstring says
so.

A hidden layer ``l`` of :class:`GateMLP` computes, for the one-hot context ``e_tau``::

    g_l = ReTanh(W_ctx_l e_tau),  ReTanh(x) = tanh(max(x, 0))^2
    h_l = normalise(ReLU(BN((W_l h_{l-1} + b_l) * g_l)))

with batch normalisation without affine parameters that always uses the statistics of the
current batch (as in the original, where the batch-norm modules are never put in evaluation
mode) and ``normalise`` the L2 normalisation over the units of the layer. A single linear output
layer (one head shared by all tasks) gives the logits.

Each hidden unit carries an *availability* ``A`` in [0, 1]. Every training step its relevance
``R_i = mean_batch (dL/dh_i * h_i)^2`` is normalised by the layer mean and the running
availability is updated as ``A~ <- clip(A~ - eta_A A~ (R^ - epsilon), 0, 1)``; the availability
``A`` that *obstructs* learning is frozen during a task and set to ``A~`` at each task switch.
Obstruction scales the change of the incoming weights and bias of unit ``i`` by ``A_i``:

- ``mask="update"`` (the book's default): ``theta <- theta_old + A * (theta_Adam - theta_old)``,
  the optimiser's *update* is masked;
- ``mask="gradient"`` (the original): the gradient is multiplied by ``A`` before the optimiser
  step. Under Adam a constant factor on a parameter's gradient cancels in ``m / sqrt(v)``, so this
  obstruction is nearly inert until ``A g`` reaches Adam's ``eps``.

With ``epsilon > 0`` units whose normalised relevance is below ``epsilon`` regain availability
(re-activation); a unit clipped to exactly 0 never recovers.

Baselines on the same network (without gating): fine-tuning, elastic weight consolidation (EWC,
diagonal Fisher) and synaptic intelligence (SI). :func:`train_sequence` is the continual-learning
loop: tasks one after the other with the task id given, a fresh Adam per task, model selection
per task on a *validation* split (the original selects on the test set), and the accuracy on the
test split of every task after each task.

Models only: no presets, no plotting; torch and :mod:`lib.torchkit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lib import seeds, torchkit

#: Contexts the gating projection has inputs for (the original's ``n_contexts``).
N_CONTEXTS = 110
#: Learning rate of the availabilities per step (the original's 0.01).
ETA_A = 0.01
#: Availability below which a unit counts as unavailable in the original's printout.
UNAVAILABLE_BELOW = 0.05
#: Added to the mean relevance of a layer before dividing (a layer without gradient gives 0/0).
RELEVANCE_EPS = 1e-12
#: Ways of applying the availability to learning.
MASKS: tuple[str, ...] = ("update", "gradient")
#: Losses: cross-entropy on the logits, or the original's cross-entropy on the softmax outputs.
LOSSES: tuple[str, ...] = ("ce", "softmax-ce")
#: The methods of :func:`method`, by name.
METHOD_NAMES: tuple[str, ...] = ("finetune", "gating", "availability", "gateon", "ewc", "si",
                                  "ewc-gated", "si-gated")


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def _int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _finite(value, name: str, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v!r}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v!r}")
    return v


def _tensor(t, name: str, ndim: int | None = None, finite: bool = True) -> torch.Tensor:
    """``t`` if it is a floating-point tensor (of ``ndim`` dimensions), finite where asked."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        kind = f"a {t.dtype} tensor" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a floating-point torch tensor, got {kind}")
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
    if finite and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return t


def _labels(y, n: int, n_classes: int, name: str = "labels") -> torch.Tensor:
    """``y`` if it is a 1-d integer tensor of ``n`` class indices in ``[0, n_classes)``."""
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32,
                                                          torch.int16, torch.uint8):
        kind = f"a {y.dtype} tensor" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer torch tensor of class indices, got {kind}")
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must have shape ({n},) (one per sample), got {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got [{int(y.min())}, "
                         f"{int(y.max())}]")
    return y.long()


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


def retanh(x: torch.Tensor) -> torch.Tensor:
    """The gate nonlinearity of GateON, ``tanh(max(x, 0))**2``: exactly 0 for ``x <= 0``."""
    _tensor(x, "x", finite=False)
    return torch.tanh(torch.clamp(x, min=0.0)) ** 2


class GateMLP(torch.nn.Module):
    """An MLP whose hidden units are gated by a learned projection of the task context.

    Args:
        n_in: input dimension.
        hidden: sizes of the hidden layers (at least one).
        n_out: number of classes (one shared output head).
        n_contexts: number of context ids the gating projections accept.
        gating: multiply each hidden layer's pre-activation by its gate ``ReTanh(W_ctx e_tau)``;
            without gating the network is the same MLP with every gate equal to 1.

    The context projections ``W_ctx`` have no bias and torch's default initialisation of a
    ``Linear(n_contexts, units)`` (uniform in ``+-1/sqrt(n_contexts)``), so about half of the units
    of a new context are gated off. They are stored column by column (:meth:`context_parameters`).
    Initialisation draws from torch's global generator: seed it with
    :func:`lib.torchkit.seed_all` first.

    Attributes:
        hidden_out: after a forward pass with ``keep=True``, the hidden outputs ``h_l`` (their
            ``.grad`` holds ``dL/dh_l`` after ``backward``).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int,
                 n_contexts: int = N_CONTEXTS, gating: bool = True):
        super().__init__()
        n_in, n_out = _int(n_in, "n_in"), _int(n_out, "n_out", 2)
        hidden = tuple(hidden) if not isinstance(hidden, (int, np.integer)) else (hidden,)
        if not hidden:
            raise ValueError("hidden must list at least one hidden layer size")
        hidden = tuple(_int(h, "every hidden layer size") for h in hidden)
        self.n_contexts = _int(n_contexts, "n_contexts")
        self.gating = bool(gating)
        self.sizes = (n_in, *hidden, n_out)
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(self.sizes[:-2], self.sizes[1:-1], strict=True))
        self.out = torch.nn.Linear(hidden[-1], n_out)
        # W_ctx of each layer, stored by column: ctx[l][c] is the gate input of context c (only
        # the current context's column has a gradient, so only it needs an optimiser)
        self.ctx = torch.nn.ModuleList()
        for h in hidden:
            w = torch.nn.Linear(self.n_contexts, h, bias=False).weight.detach()
            self.ctx.append(torch.nn.ParameterList(
                torch.nn.Parameter(w[:, c].clone(), requires_grad=self.gating)
                for c in range(self.n_contexts)))
        self.hidden_out: list[torch.Tensor] = []

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """The sizes of the hidden layers."""
        return self.sizes[1:-1]

    def gates(self, context: int) -> list[torch.Tensor]:
        """The gates ``g_l`` of each hidden layer for ``context`` (ones without gating)."""
        context = self._check_context(context)
        if not self.gating:
            return [torch.ones(h, device=self.out.weight.device) for h in self.hidden_sizes]
        return [retanh(cols[context]) for cols in self.ctx]

    def context_parameters(self, context: int) -> list[torch.nn.Parameter]:
        """The columns of ``W_ctx`` of ``context``, one per hidden layer (what its task trains)."""
        context = self._check_context(context)
        return [cols[context] for cols in self.ctx]

    def shared_parameters(self) -> list[torch.nn.Parameter]:
        """Every parameter but the gating projections: hidden and output layers."""
        return [*self.layers.parameters(), *self.out.parameters()]

    def _check_context(self, context) -> int:
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) \
                or not 0 <= context < self.n_contexts:
            raise ValueError(f"context must be an int in [0, {self.n_contexts}), got {context!r}")
        return int(context)

    def forward(self, x: torch.Tensor, context: int = 0, keep: bool = False) -> torch.Tensor:
        """Logits for a batch ``x`` of shape ``(batch, n_in)`` seen in ``context``.

        Args:
            x: finite floating-point inputs; a batch of at least 2 samples (batch
                normalisation uses the batch's statistics, also at test time).
            context: the task's context id.
            keep: keep the hidden outputs (with ``retain_grad``) in :attr:`hidden_out`.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.sizes[0]:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (batch, {self.sizes[0]}), got {shape}")
        if x.shape[0] < 2:
            raise ValueError("a batch needs at least 2 samples (batch statistics)")
        _tensor(x, "x")  # floating point and finite: a NaN would spread through the batch norm
        return self._forward(x, self._check_context(context), keep)

    def _forward(self, x: torch.Tensor, context: int, keep: bool) -> torch.Tensor:
        """:meth:`forward` without the checks of its inputs (for :meth:`Learner.step`)."""
        gates = [retanh(cols[context]) for cols in self.ctx] if self.gating else None
        self.hidden_out = []
        h = x
        for li, layer in enumerate(self.layers):
            z = layer(h)
            if gates is not None:
                z = z * gates[li]
            z = F.batch_norm(z, None, None, training=True)
            h = F.normalize(F.relu(z), dim=1)
            if keep:
                h.retain_grad()
                self.hidden_out.append(h)
        return self.out(h)


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """The training loss: ``"ce"`` (cross-entropy on logits) or ``"softmax-ce"`` (the original's).

    The original code applies ``torch.nn.CrossEntropyLoss`` to the *softmax outputs*, i.e. a
    second softmax; its gradient is bounded and much smaller near a confident output.

    ``logits`` must be a finite ``(batch, classes)`` tensor and ``labels`` integer class indices
    in ``[0, classes)``, one per row (else ``ValueError``).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    _tensor(logits, "logits", 2)
    return _loss(logits, _labels(labels, logits.shape[0], logits.shape[1]), loss)


def _loss(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    return F.cross_entropy(logits.softmax(dim=1) if loss == "softmax-ce" else logits, labels)


def hidden_parameters(model: GateMLP) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, bias)`` of every hidden layer: the parameters that availability obstructs."""
    return [(layer.weight, layer.bias) for layer in model.layers]


# ----------------------------------------------------------------------------------------------
# Relevance and availability
# ----------------------------------------------------------------------------------------------


def relevance(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Normalised relevance of each unit: ``mean_batch (grad * h)**2`` over its layer mean.

    Args:
        h: hidden outputs, ``(batch, units)``.
        grad: ``dL/dh`` of the same shape.

    Returns:
        ``R^`` of shape ``(units,)``, mean 1 over the layer (all zero where the layer has no
        gradient at all).
    """
    if not isinstance(h, torch.Tensor) or not isinstance(grad, torch.Tensor) \
            or h.ndim != 2 or h.shape != grad.shape:
        raise ValueError("h and grad must be tensors of the same shape (batch, units)")
    _tensor(h, "h")
    _tensor(grad, "grad")
    return _relevance(h, grad)


def _relevance(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    r = ((grad * h) ** 2).mean(dim=0)
    return r / (r.mean() + RELEVANCE_EPS)


def update_availability(a: torch.Tensor, rel: torch.Tensor, eta: float = ETA_A,
                        epsilon: float = 0.0) -> torch.Tensor:
    """One step of the availability rule, ``clip(a - eta a (rel - epsilon), 0, 1)``.

    Args:
        a: availabilities in [0, 1] (a tensor).
        rel: normalised relevances, finite and >= 0 (a tensor of the same shape).
        eta: learning rate of the availabilities, in (0, 1].
        epsilon: re-activation threshold (>= 0): units with ``rel < epsilon`` regain
            availability at the relative rate ``eta (epsilon - rel)``.

    Returns:
        The new availabilities (a new tensor).
    """
    eta = _finite(eta, "eta", 0.0, 1.0, low_open=True)
    epsilon = _finite(epsilon, "epsilon", 0.0)
    _tensor(a, "a")
    _tensor(rel, "rel")
    if a.shape != rel.shape:
        raise ValueError(f"a and rel must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(rel.shape)}")
    if a.numel() and (float(a.min()) < 0.0 or float(a.max()) > 1.0):
        raise ValueError("availabilities a must lie in [0, 1]")
    if rel.numel() and float(rel.min()) < 0.0:
        raise ValueError("relevances rel must be >= 0 (squares over their layer mean)")
    return _update_availability(a, rel, eta, epsilon)


def _update_availability(a: torch.Tensor, rel: torch.Tensor, eta: float, epsilon: float) -> torch.Tensor:
    return torch.clamp(a - eta * a * (rel - epsilon), 0.0, 1.0)


def availability_after(steps, rel: float, eta: float = ETA_A, epsilon: float = 0.0,
                       a0: float = 1.0) -> np.ndarray:
    """Closed form of the availability under a constant relevance ``rel``, after ``steps`` steps.

    ``A_t = clip(a0 (1 - eta (rel - epsilon))^t)``, clipped to [0, 1] at every step (so a unit
    that reaches 1 stays there while ``rel < epsilon``).
    """
    eta = _finite(eta, "eta", 0.0, 1.0, low_open=True)
    epsilon = _finite(epsilon, "epsilon", 0.0)
    rel = _finite(rel, "rel", 0.0)
    a0 = _finite(a0, "a0", 0.0, 1.0)
    t = np.asarray(steps, dtype=float)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("steps must be finite and >= 0")
    factor = 1.0 - eta * (rel - epsilon)
    if factor <= 0:
        return np.where(t == 0, a0, 0.0)
    return np.clip(a0 * factor ** t, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """What a continual learner does besides plain training.

    Attributes:
        name: a label.
        gating: context gating of hidden units.
        obstruct: availability obstructs learning of relevant units.
        mask: ``"update"`` (mask the optimiser's update) or ``"gradient"`` (the original).
        epsilon: re-activation threshold of the availability rule (0: none).
        eta_a: learning rate of the availabilities.
        ewc_lambda: strength of the EWC penalty (0: none).
        ewc_batches: minibatches of the diagonal Fisher estimate after each task.
        si_c: strength of the SI penalty (0: none).
        si_xi: damping of the SI importance.
    """

    name: str
    gating: bool = False
    obstruct: bool = False
    mask: str = "update"
    epsilon: float = 0.0
    eta_a: float = ETA_A
    ewc_lambda: float = 0.0
    ewc_batches: int = 20
    si_c: float = 0.0
    si_xi: float = 0.1

    def __post_init__(self):
        if self.mask not in MASKS:
            raise ValueError(f"unknown mask {self.mask!r}; expected one of {', '.join(MASKS)}")
        _finite(self.epsilon, "epsilon", 0.0)
        _finite(self.eta_a, "eta_a", 0.0, 1.0, low_open=True)
        _finite(self.ewc_lambda, "ewc_lambda", 0.0)
        _finite(self.si_c, "si_c", 0.0)
        _finite(self.si_xi, "si_xi", 0.0, low_open=True)
        _int(self.ewc_batches, "ewc_batches")
        if self.ewc_lambda > 0 and self.si_c > 0:
            raise ValueError("choose EWC or SI, not both (ewc_lambda and si_c are both > 0)")


def method(name: str, epsilon: float = 1.0, mask: str = "update", ewc_lambda: float = 100.0,
           si_c: float = 0.1) -> Method:
    """One of the chapter's methods by name (:data:`METHOD_NAMES`).

    ``finetune`` (plain training), ``gating`` (gates only), ``availability`` (obstruction only),
    ``gateon`` (both), ``ewc`` and ``si`` (penalties on the ungated network), ``ewc-gated`` and
    ``si-gated`` (the same penalties on the gated network: the baselines given the task id
    through the same gates as GateON, so that they compare on equal information). ``epsilon``
    and ``mask`` apply to the availability methods, ``ewc_lambda`` and ``si_c`` to the
    baselines.
    """
    table = {
        "finetune": Method("finetune"),
        "gating": Method("gating", gating=True),
        "availability": Method("availability", obstruct=True, mask=mask, epsilon=epsilon),
        "gateon": Method("gateon", gating=True, obstruct=True, mask=mask, epsilon=epsilon),
        "ewc": Method("ewc", ewc_lambda=ewc_lambda),
        "si": Method("si", si_c=si_c),
        "ewc-gated": Method("ewc-gated", gating=True, ewc_lambda=ewc_lambda),
        "si-gated": Method("si-gated", gating=True, si_c=si_c),
    }
    if name not in table:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}")
    return table[name]


# ----------------------------------------------------------------------------------------------
# Tasks
# ----------------------------------------------------------------------------------------------


def permutations(n_tasks: int, dim: int, seed: int) -> np.ndarray:
    """``n_tasks`` pixel permutations of ``dim`` inputs, task ``k`` drawn from seed ``[seed, k]``.

    Returns:
        int64 array ``(n_tasks, dim)``; row ``k`` depends only on ``seed`` and ``k``.
    """
    n_tasks, dim = _int(n_tasks, "n_tasks"), _int(dim, "dim", 2)
    seed = _int(seed, "seed", 0)
    return np.stack([seeds.rng(seed, k).permutation(dim) for k in range(n_tasks)])


@dataclass(frozen=True)
class TaskStream:
    """Permuted tasks on shared base images (the pixels of task ``k`` are ``x[:, perms[k]]``).

    Attributes:
        x_train, y_train: training images ``(n, d)`` float32 and labels int64 (tensors).
        x_val, y_val: validation images (held out of the training images) for model selection.
        x_test, y_test: test images, used only to report accuracy.
        perms: ``(n_tasks, d)`` permutations (a tensor of int64).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    perms: torch.Tensor

    @property
    def n_tasks(self) -> int:
        """The number of tasks."""
        return int(self.perms.shape[0])

    @property
    def dim(self) -> int:
        """The input dimension."""
        return int(self.x_train.shape[1])

    def to(self, dev: torch.device) -> "TaskStream":
        """The same stream on device ``dev``."""
        return TaskStream(*(getattr(self, f).to(dev) for f in
                            ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "perms")))


def task_stream(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                n_tasks: int, seed: int, n_train: int, n_val: int, n_test: int) -> TaskStream:
    """Permuted tasks from an image classification set.

    The training images are split once (seeded) into ``n_train`` for training and ``n_val`` for
    validation; ``n_test`` test images are drawn from the test split. Every task uses the same
    images with its own pixel permutation from :func:`permutations` (``seed``).

    Args:
        x_train, y_train, x_test, y_test: flattened images ``(n, d)`` and integer labels.
        n_tasks: number of tasks.
        seed: seeds the split, the test subset and the permutations.
        n_train, n_val, n_test: sizes (``n_train + n_val`` at most the training set).

    Returns:
        A :class:`TaskStream` (float32 images on the CPU).
    """
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError("x_train and x_test must be 2-d arrays (n, d) with the same d")
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if y_train.ndim != 1 or y_test.ndim != 1:
        raise ValueError("labels must be 1-d arrays (one class index per image)")
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise ValueError("labels and images must have the same length")
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) \
                or np.any(y < 0) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold class indices (integers >= 0)")
    if not (np.all(np.isfinite(x_train)) and np.all(np.isfinite(x_test))):
        raise ValueError("images must be finite (no NaN or inf)")
    n_train, n_val, n_test = (_int(n_train, "n_train", 2), _int(n_val, "n_val", 2),
                              _int(n_test, "n_test", 2))
    if n_train + n_val > len(x_train):
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the {len(x_train)} "
                         "training images")
    if n_test > len(x_test):
        raise ValueError(f"n_test = {n_test} exceeds the {len(x_test)} test images")
    rng = seeds.rng(_int(seed, "seed", 0), 10**6)
    idx = rng.permutation(len(x_train))
    tr, va = idx[:n_train], idx[n_train: n_train + n_val]
    te = rng.permutation(len(x_test))[:n_test]

    def t(a, dtype):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    return TaskStream(t(x_train[tr], torch.float32), t(y_train[tr], torch.int64),
                      t(x_train[va], torch.float32), t(y_train[va], torch.int64),
                      t(x_test[te], torch.float32), t(y_test[te], torch.int64),
                      t(permutations(n_tasks, x_train.shape[1], seed), torch.int64))


@torch.no_grad()
def accuracy(model: GateMLP, x: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, context: int,
             batch: int = 500) -> float:
    """Accuracy of ``model`` on images ``x[:, perm]`` in ``context``, in batches of ``batch``.

    Batch normalisation uses each batch's statistics, so the accuracy depends (weakly) on
    ``batch``; a last batch smaller than 2 samples is merged into the previous one.
    """
    batch = _int(batch, "batch", 2)
    n = len(x)
    if n < 2:
        raise ValueError("accuracy needs at least 2 samples")
    if not isinstance(y, torch.Tensor) or y.shape != (n,):
        raise ValueError(f"y must be a tensor of {n} labels, one per image of x")
    starts = list(range(0, n, batch))
    if n - starts[-1] < 2 and len(starts) > 1:
        starts.pop()
    correct = 0
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else n
        out = model(x[s:e][:, perm], context)
        correct += int((out.argmax(1) == y[s:e]).sum())
    return correct / n


# ----------------------------------------------------------------------------------------------
# The continual-learning loop
# ----------------------------------------------------------------------------------------------


@dataclass
class SequenceResult:
    """What :func:`train_sequence` returns.

    Attributes:
        method: the :class:`Method`.
        acc: ``(n_tasks, n_tasks)`` test accuracy; ``acc[t, j]`` on task ``j`` after task ``t``
            (NaN for ``j > t``).
        val: the same on the validation split (for choosing hyper-parameters).
        val_best: best validation accuracy of each task while it was trained.
        availability: per task, the running availabilities ``A~`` of each hidden layer at the
            end of the task (numpy arrays), for the obstructing methods (else empty).
        max_obstructed_update: the largest ``|change|`` of any incoming weight or bias of a unit
            whose frozen availability ``A`` was below ``frozen_below`` (NaN where there was none).
        n_obstructed: the number of (unit, task) pairs with ``A < frozen_below``.
        frozen_below: the threshold of the fields above.
        availability_range: ``(min, max)`` of every running availability at any step (NaN for
            methods without availability).
        steps: optimiser steps per task.
    """

    method: Method
    acc: np.ndarray
    val: np.ndarray
    val_best: np.ndarray
    availability: list[list[np.ndarray]] = field(default_factory=list)
    max_obstructed_update: float = float("nan")
    n_obstructed: int = 0
    frozen_below: float = 1e-3
    availability_range: tuple[float, float] = (float("nan"), float("nan"))
    steps: int = 0

    @property
    def final(self) -> np.ndarray:
        """Test accuracy on every task after the last task."""
        return self.acc[-1]

    @property
    def final_mean(self) -> float:
        """Mean test accuracy over all tasks after the last one."""
        return float(np.mean(self.acc[-1]))

    @property
    def just_learned(self) -> np.ndarray:
        """Test accuracy of each task right after it was learned (the diagonal)."""
        return np.diag(self.acc).copy()

    @property
    def mean_seen(self) -> np.ndarray:
        """Mean test accuracy over the tasks seen so far, after each task."""
        return np.array([np.mean(self.acc[t, : t + 1]) for t in range(len(self.acc))])


class _Penalty:
    """A quadratic penalty ``sum_k w_k (theta - anchor_k)^2``, kept as ``W theta^2 - 2 theta B``."""

    def __init__(self, params: list[torch.Tensor]):
        self.w = [torch.zeros_like(p) for p in params]
        self.b = [torch.zeros_like(p) for p in params]

    def add(self, params, weights):
        """Add ``sum w (theta - theta_now)^2`` (EWC: one anchor per task)."""
        for i, (p, w) in enumerate(zip(params, weights, strict=True)):
            self.w[i] += w
            self.b[i] += w * p.detach()

    def reset(self, params, weights):
        """Replace the penalty by ``sum w (theta - theta_now)^2`` (SI: the latest anchor)."""
        self.w = [w.clone() for w in weights]
        self.b = [w * p.detach() for p, w in zip(params, weights, strict=True)]

    def add_grad(self, params, strength: float):
        """Add the penalty's gradient ``2 s (W theta - B)`` to each ``p.grad``."""
        for p, w, b in zip(params, self.w, self.b, strict=True):
            p.grad.add_(w * p.detach() - b, alpha=2.0 * strength)


def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """torch's Adam with its fused kernel (CPU, CUDA, MPS and the other devices torch lists).

    The fused kernel computes the same update as the default loop in one pass over each parameter
    (they differ in rounding only); on a CPU it takes about a fifth off a GateON step
    (``benchmarks/gateon_step.py``).
    """
    return torch.optim.Adam(params, lr=lr, fused=True)


class Learner:
    """A :class:`GateMLP` with its optimiser, availabilities and penalties: one continual learner.

    Use :meth:`start_task`, then :meth:`step` for each minibatch of the task, then
    :meth:`end_task`; :func:`train_sequence` does this for a stream of tasks.

    Args:
        n_in, n_out: input dimension and number of classes.
        hidden: hidden layer sizes.
        meth: the :class:`Method`.
        lr: Adam's learning rate (a fresh Adam per task, as in the original).
        n_contexts: inputs of the gating projections.
        loss: ``"ce"`` or ``"softmax-ce"`` (:func:`loss_fn`).
        frozen_below: availability below which a unit's updates are recorded (they must vanish).
        device: where the model lives.
        watch: record the largest change of the units with ``A < frozen_below`` (a check that
            costs a little time per step; :attr:`max_obstructed_update`).

    Attributes:
        model: the network.
        a_run: running availabilities ``A~`` per hidden layer (updated every step).
        a_frozen: availabilities ``A`` that obstruct learning (set to ``A~`` at task ends).
        max_obstructed_update: the largest ``|change|`` of an incoming weight or bias of a unit
            with ``A < frozen_below`` so far (NaN before there was one).
        n_obstructed: (unit, task) pairs with ``A < frozen_below`` so far.
        a_range: ``[min, max]`` of the running availabilities over every step so far.
    """

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int], meth: Method,
                 lr: float = 1e-3, n_contexts: int = N_CONTEXTS, loss: str = "ce",
                 frozen_below: float = 1e-3, device: str | torch.device = "auto",
                 watch: bool = True):
        if not isinstance(meth, Method):
            raise ValueError("meth must be a Method (see method())")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
        self.meth, self.loss, self.watch = meth, loss, bool(watch)
        self.lr = _finite(lr, "lr", 0.0, low_open=True)
        self.frozen_below = _finite(frozen_below, "frozen_below", 0.0, 1.0, low_open=True)
        dev = device if isinstance(device, torch.device) else torchkit.device(device)
        self.model = GateMLP(n_in, hidden, n_out, n_contexts, gating=meth.gating).to(dev)
        self.hid = hidden_parameters(self.model)
        self.params = self.model.shared_parameters()
        self.a_run = [torch.ones(h, device=dev) for h in self.model.hidden_sizes]
        self.a_frozen = [a.clone() for a in self.a_run]
        self.ewc = _Penalty(self.params) if meth.ewc_lambda > 0 else None
        self.si = _Penalty(self.params) if meth.si_c > 0 else None
        self.max_obstructed_update = float("nan")
        self.n_obstructed = 0
        self.a_range = [1.0, 1.0]
        self.start_task(0)

    def start_task(self, task: int) -> None:
        """Begin ``task``: a fresh Adam, the units to watch, SI's path integral from zero."""
        self.task = self.model._check_context(task)
        gates = self.model.context_parameters(task) if self.meth.gating else []
        self.opt = _adam([*self.params, *gates], self.lr)
        self._rows = [torch.nonzero(a < self.frozen_below).flatten() for a in self.a_frozen]
        self._watch = self.watch and self.meth.obstruct and any(len(r) for r in self._rows)
        if self.meth.obstruct:
            self.n_obstructed += sum(len(r) for r in self._rows)
        if self.si is not None:
            self._start = [p.detach().clone() for p in self.params]
            self._omega = [torch.zeros_like(p) for p in self.params]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step on the minibatch ``(x, y)`` of the current task; returns the loss."""
        meth, hid = self.meth, self.hid
        # Shapes and labels are checked here; finiteness through the loss (a NaN or inf in x
        # makes it non-finite), which saves a pass over the batch in every step.
        n_in = self.model.sizes[0]
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2 \
                or x.shape[1] != n_in or x.shape[0] < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a floating-point tensor of shape (batch >= 2, {n_in}), "
                             f"got {shape}")
        y = _labels(y, x.shape[0], self.model.sizes[-1])
        out = self.model._forward(x, self.task, meth.obstruct)
        self.opt.zero_grad()
        loss = _loss(out, y, self.loss)
        if not bool(torch.isfinite(loss)):
            raise ValueError("the loss is not finite: x must be finite (no NaN or inf)")
        loss.backward()
        with torch.no_grad():
            if meth.obstruct:
                for li, h in enumerate(self.model.hidden_out):
                    self.a_run[li] = _update_availability(self.a_run[li], _relevance(h, h.grad),
                                                          meth.eta_a, meth.epsilon)
                lo, hi = torch.aminmax(torch.cat(self.a_run))
                self.a_range[0] = min(self.a_range[0], float(lo))
                self.a_range[1] = max(self.a_range[1], float(hi))
                if meth.mask == "gradient":
                    for (w, b), a in zip(hid, self.a_frozen, strict=True):
                        w.grad.mul_(a[:, None])
                        b.grad.mul_(a)
            if self.si is not None:
                g_task = [p.grad.clone() for p in self.params]
                self.si.add_grad(self.params, meth.si_c)
                old = [p.detach().clone() for p in self.params]
            if self.ewc is not None:
                self.ewc.add_grad(self.params, 0.5 * meth.ewc_lambda)
            masked = meth.obstruct and meth.mask == "update"
            old_hid = ([(w.detach().clone(), b.detach().clone()) for w, b in hid]
                       if masked else None)
            watched = ([(w[r], b[r]) for (w, b), r in zip(hid, self._rows, strict=True)]
                       if self._watch else None)  # advanced indexing copies
            self.opt.step()
            if masked:  # theta <- theta_old + A (theta_Adam - theta_old), row by row, in place
                for (w, b), (w0, b0), a in zip(hid, old_hid, self.a_frozen, strict=True):
                    torch.lerp(w0, w, a[:, None], out=w)
                    torch.lerp(b0, b, a, out=b)
            if self._watch:
                self._record(watched)
            if self.si is not None:
                for o, g, p, p0 in zip(self._omega, g_task, self.params, old, strict=True):
                    o -= g * (p - p0)
        return float(loss.detach())

    def _record(self, watched) -> None:
        """The largest change of the watched (unavailable) units' incoming weights and biases."""
        for (w, b), (w0, b0), r in zip(self.hid, watched, self._rows, strict=True):
            if len(r):
                d = max(float((w[r] - w0).abs().max()), float((b[r] - b0).abs().max()))
                self.max_obstructed_update = d if math.isnan(self.max_obstructed_update) else \
                    max(self.max_obstructed_update, d)

    def end_task(self, fisher_batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> None:
        """Finish the current task: ``A <- A~``; EWC adds the task's Fisher, SI its importance.

        Args:
            fisher_batches: minibatches ``(x, y)`` of the task for EWC's diagonal Fisher (needed
                only for EWC). Per-sample gradients are not defined with batch statistics, so
                the Fisher is ``batch size * mean over minibatches of (minibatch gradient)^2``,
                whose expectation is the per-sample ``E[g^2]`` where the mean gradient vanishes.
        """
        if self.meth.obstruct:
            self.a_frozen = [a.clone() for a in self.a_run]
        if self.ewc is not None:
            if not fisher_batches:
                raise ValueError("EWC needs fisher_batches at the end of a task")
            fisher = [torch.zeros_like(p) for p in self.params]
            for xb, yb in fisher_batches:
                self.model.zero_grad()
                loss_fn(self.model(xb, self.task), yb, self.loss).backward()
                for f, p in zip(fisher, self.params, strict=True):
                    f += p.grad.detach() ** 2
            scale = len(fisher_batches[0][0]) / len(fisher_batches)
            self.ewc.add(self.params, [f * scale for f in fisher])
        if self.si is not None:
            imp = [o / ((p.detach() - p0) ** 2 + self.meth.si_xi)
                   for o, p, p0 in zip(self._omega, self.params, self._start, strict=True)]
            self.si.reset(self.params, [w + i for w, i in zip(self.si.w, imp, strict=True)])


def train_sequence(stream: TaskStream, meth: Method, hidden: Sequence[int], steps: int,
                   batch_size: int, lr: float, seed: int, eval_every: int = 25,
                   eval_batch: int = 500, loss: str = "ce", n_contexts: int = N_CONTEXTS,
                   frozen_below: float = 1e-3, device: str | torch.device = "auto",
                   progress: bool = False, desc: str | None = None,
                   restore_availability: bool = False) -> SequenceResult:
    """Learn the tasks of ``stream`` one after the other with ``meth``; test after each task.

    Per task ``t`` (context id ``t``, given): a fresh Adam; ``steps`` minibatches of
    ``batch_size`` random training images of the task; after every step of an obstructing
    method the running availabilities ``A~`` are updated from the relevances; every
    ``eval_every`` steps the validation accuracy of the task is measured and the best parameters
    are kept. At the end of the task the best parameters are restored (the availabilities are
    not: they keep their last value, so every step the task trained counts, unless
    ``restore_availability``, the original's choice), the frozen availability becomes ``A <- A~`` (obstruction
    of task ``t``'s units starts at task ``t+1``), EWC adds the task's Fisher and SI its
    path-integral importance (:meth:`Learner.end_task`), and every task seen so far is tested.

    Args:
        stream: the tasks (:func:`task_stream`).
        meth: the :class:`Method` (see :func:`method`).
        hidden: hidden layer sizes.
        steps: optimiser steps per task.
        batch_size: images per step (>= 2).
        lr: Adam's learning rate.
        seed: seeds the initialisation and the minibatches.
        eval_every: steps between validation checks (model selection).
        eval_batch: batch size of evaluation (batch statistics).
        loss: ``"ce"`` or ``"softmax-ce"`` (:func:`loss_fn`).
        n_contexts: inputs of the gating projection (>= number of tasks).
        frozen_below: availability below which a unit must not change (recorded).
        device: where to compute (:func:`lib.torchkit.device`).
        progress: show a progress bar over tasks.
        desc: the bar's label.
        restore_availability: restore the running availabilities with the best parameters, as
            the original does (it deep-copies the model, availabilities included, at its best
            test error); by default they keep the value of the task's last step.

    Returns:
        A :class:`SequenceResult`.
    """
    if not isinstance(stream, TaskStream):
        raise ValueError("stream must be a TaskStream (see task_stream)")
    steps, batch_size = _int(steps, "steps"), _int(batch_size, "batch_size", 2)
    eval_every, eval_batch = _int(eval_every, "eval_every"), _int(eval_batch, "eval_batch", 2)
    n_tasks = stream.n_tasks
    if _int(n_contexts, "n_contexts") < n_tasks:
        raise ValueError(f"n_contexts = {n_contexts} is smaller than the {n_tasks} tasks")
    loop = torchkit.Loop(n_tasks, seed=seed, device=device, desc=desc or meth.name,
                         progress=progress, seed_globals=True)
    dev, gen = loop.device, loop.gen
    stream = stream.to(dev)
    lrn = Learner(stream.dim, int(stream.y_train.max()) + 1, hidden, meth, lr, n_contexts, loss,
                  frozen_below, dev)
    acc = np.full((n_tasks, n_tasks), np.nan)
    val = np.full((n_tasks, n_tasks), np.nan)
    val_best = np.zeros(n_tasks)
    avail: list[list[np.ndarray]] = []
    n = len(stream.x_train)

    def batch(perm):
        idx = torch.randint(n, (batch_size,), generator=gen).to(dev)
        return stream.x_train[idx][:, perm], stream.y_train[idx]

    for task in loop:
        perm = stream.perms[task]
        lrn.start_task(task)
        best, best_state = -1.0, None
        for step in range(1, steps + 1):
            lrn.step(*batch(perm))
            if step % eval_every == 0 or step == steps:
                v = accuracy(lrn.model, stream.x_val, stream.y_val, perm, task, eval_batch)
                if v > best:
                    best = v
                    best_state = {k: t.detach().clone() for k, t in lrn.model.state_dict().items()}
                    best_a = [a.clone() for a in lrn.a_run] if restore_availability else None
        lrn.model.load_state_dict(best_state)
        if restore_availability:
            lrn.a_run = best_a
        val_best[task] = best
        fisher = [batch(perm) for _ in range(meth.ewc_batches)] if meth.ewc_lambda > 0 else ()
        lrn.end_task(fisher)
        if meth.obstruct:
            avail.append([a.cpu().numpy().copy() for a in lrn.a_run])
        for j in range(task + 1):
            args = (lrn.model, stream.perms[j], j, eval_batch)
            acc[task, j] = accuracy(args[0], stream.x_test, stream.y_test, *args[1:])
            val[task, j] = accuracy(args[0], stream.x_val, stream.y_val, *args[1:])
        loop.log(task=task, val_best=best, test_mean=float(acc[task, : task + 1].mean()))
    rng_a = tuple(lrn.a_range) if meth.obstruct else (float("nan"), float("nan"))
    return SequenceResult(meth, acc, val, val_best, avail, lrn.max_obstructed_update,
                          lrn.n_obstructed, lrn.frozen_below, rng_a, steps)


def adam_update(grads: torch.Tensor, lr: float = 1e-3, betas=(0.9, 0.999),
                eps: float = 1e-8) -> torch.Tensor:
    """The parameter changes of Adam for a sequence of gradients of one parameter vector.

    Args:
        grads: ``(steps, n)`` gradients, one row per step.
        lr, betas, eps: Adam's settings (torch's defaults).

    Returns:
        ``(steps, n)`` changes ``theta_t - theta_{t-1}`` computed by ``torch.optim.Adam``.
    """
    if not isinstance(grads, torch.Tensor) or grads.ndim != 2 or not torch.isfinite(grads).all():
        raise ValueError("grads must be a finite tensor of shape (steps, n)")
    p = torch.zeros(grads.shape[1], dtype=grads.dtype, requires_grad=True)
    opt = torch.optim.Adam([p], lr=_finite(lr, "lr", 0.0, low_open=True), betas=betas, eps=eps)
    out = []
    for g in grads:
        old = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        out.append(p.detach() - old)
    return torch.stack(out)


__all__ = ["ETA_A", "LOSSES", "MASKS", "METHOD_NAMES", "N_CONTEXTS", "UNAVAILABLE_BELOW",
           "GateMLP", "Learner", "Method", "SequenceResult", "TaskStream", "accuracy", "adam_update",
           "availability_after", "hidden_parameters", "loss_fn", "method", "permutations",
           "relevance", "retanh", "task_stream", "train_sequence",
           "update_availability"]
