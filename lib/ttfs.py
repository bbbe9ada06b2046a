"""Time-to-first-spike (TTFS) networks: the exact mapping from ReLU networks to single-spike SNNs.

Implements Stanojevic, Woźniak, Bellec, Cherubini, Pantazi & Gerstner (2023), "An exact mapping from
ReLU networks to spiking neural networks", *Neural Networks* (arXiv:2212.12522). The chapter
``chapters/ttfs-exact-mapping`` explains the model (``theory.md``) and measures the paper's claims
(``reproduce.md``). The companion chapter ``ttfs-deep-training`` (Stanojevic et al. 2024, the B1
neuron) will extend this module; everything below that is not specific to the α1 neuron (windows,
folding, scaling, the network containers) is meant to be shared.

Pipeline, in the order a chapter calls it:

1. **Train** a ReLU network in torch, float64 (:class:`Architecture`, :class:`ReLUNet`, :func:`train`).
2. **Fold** batch normalisation into plain weights (:func:`fold`): a BN before the ReLU is folded into
   the same layer; a BN after the ReLU is folded into the *next* layer, which makes the biases of a
   'same'-padded convolution depend on the position (the border pixels see fewer non-padded inputs)
   and turns a following max-pool into a min-pool for channels whose BN scale is negative.
3. **Scale** (:func:`scale_weights`): the summed input weight of every hidden neuron is brought into
   ``[SUM_W_MIN, SUM_W_MAX] = [-10, 0.99]`` by a positive factor; the next layer compensates, so the
   function is unchanged (ReLU is positively homogeneous).
4. **Windows** (:func:`layer_maxima`, :func:`map_to_snn`): layer ``n`` spikes in
   ``[t_min^(n), t_max^(n)]`` with ``t_min^(n) = t_max^(n-1)`` and ``t_max^(n) - t_min^(n) = (1 + zeta) X_n``,
   ``X_n`` the largest activation of layer ``n`` on the training data; the input layer spikes in [0, 1].
5. **Map** to α1 neurons (:func:`map_to_snn`): ``J = alpha W / (1 - sum W)`` and the thresholds of the
   paper, so that the spike time of every hidden neuron encodes its ReLU value,
   ``x = t_max - t``; the output neurons do not spike, their potential at ``t_min^(N)`` is the logit.
6. **Simulate** the SNN event by event (:func:`simulate`): each neuron integrates its sorted input
   spikes (ties grouped), fires at its first threshold crossing, or is forced to fire at ``t_max``.
   :func:`closed_form` gives the same spike times from the formula; it exists for the tests.

Units: time in units of the synaptic time constant ``TAU_C`` (= 1); potentials in units of
``alpha * TAU_C``. Arrays of many images have the image index first; dense layers are ``(n, units)``,
convolutional layers ``(n, channels, height, width)`` in torch's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import progress, scales

# ----------------------------------------------------------------------------------------------
# Named constants (time in units of TAU_C)
# ----------------------------------------------------------------------------------------------

#: Synaptic time constant; all times are in units of it.
TAU_C = 1.0
#: Constant drive of an α1 neuron from the start of its integration window (potential per TAU_C).
ALPHA = 1.0
#: Bounds on the summed input weight of a hidden neuron after scaling. ``sum W < 1`` is required by the
#: mapping (the slope at threshold, ``alpha / (1 - sum W)``, must be positive); the lower bound keeps
#: that slope from becoming tiny, which would amplify rounding and noise.
SUM_W_MAX = 0.99
SUM_W_MIN = -10.0
#: Default window margin: windows are ``(1 + ZETA) X_n`` wide.
ZETA = 0.5
#: Spike window of the input layer: a pixel of value ``x`` in [0, 1] spikes at ``t = 1 - x``.
INPUT_T_MIN, INPUT_T_MAX = 0.0, 1.0
#: Target number of float64 elements per array in the event loop (sets the chunk of rows).
_CHUNK_ELEMENTS = 1 << 16
#: Target number of input spike times per batch of images in :func:`simulate` (bounds memory).
_BATCH_ELEMENTS = 1 << 22


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """A ReLU network: 'same'-padded convolutions and max-pools, then dense layers, then the output.

    Attributes:
        input_shape: ``(channels, height, width)`` of one image; a dense-only net flattens it.
        conv: the convolutional part, e.g. ``(8, "P", 16, "P")``: an int is a convolution with that
            many channels (kernel ``kernel``, 'same' padding) followed by a ReLU, ``"P"`` a 2x2 max-pool.
        dense: widths of the hidden dense layers, each followed by a ReLU.
        n_classes: width of the output layer (no ReLU: its values are the logits).
        kernel: side of the square convolution kernels.
        bn: ``None``, ``"before"`` (BN between the layer and its ReLU) or ``"after"`` (BN after the ReLU).
        dropout: dropout probability after each hidden ReLU (dropped at inference, so not mapped).
    """

    input_shape: tuple[int, int, int]
    conv: tuple = ()
    dense: tuple[int, ...] = (600,)
    n_classes: int = 10
    kernel: int = 3
    bn: str | None = None
    dropout: float = 0.0

    def __post_init__(self):
        if self.bn not in (None, "before", "after"):
            raise ValueError(f"bn must be None, 'before' or 'after', got {self.bn!r}")
        for c in self.conv:
            if not (c == "P" or (isinstance(c, int) and c > 0)):
                raise ValueError(f"conv entries must be positive ints or 'P', got {c!r}")
        if self.conv and self.conv[0] == "P":
            raise ValueError("the convolutional part must start with a convolution, not a pool")
        if any(not isinstance(d, int) or d <= 0 for d in self.dense):
            raise ValueError(f"dense widths must be positive ints, got {self.dense!r}")
        if self.kernel % 2 != 1:
            raise ValueError(f"'same' padding needs an odd kernel, got {self.kernel}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class Training:
    """How a ReLU network is trained: Adam with an exponential learning-rate decay.

    Attributes:
        epochs: passes over the training set.
        batch_size: images per step.
        lr: initial learning rate.
        decay: factor of the learning rate per ``decay_steps`` steps (continuous, as Keras'
            ``ExponentialDecay`` in the authors' code: ``lr * decay ** (step / decay_steps)``).
        decay_steps: see ``decay``.
        n_train: use only the first ``n_train`` training images (None: all).
    """

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    decay: float = 0.9
    decay_steps: int = 5000
    n_train: int | None = None


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


#: The paper's grids (authors' experiment flags): window margins, spike-time jitter, α-noise.
PAPER_ZETAS = (-0.7, -0.6, -0.5, -0.4, -0.3, 0.0, 0.5)
PAPER_SIGMAS = (5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.03, 0.05)
PAPER_ALPHA_NOISES = (5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3)

_MNIST_SHAPE = (1, 28, 28)
_DIGITS_SHAPE = (1, 8, 8)

#: The paper's VGG-type networks (authors' code), for reference and for the ``paper`` scale. The CIFAR
#: nets need CIFAR data (not among :mod:`lib.data`'s datasets) and, realistically, a GPU.
VGG = {
    # MNIST / Fashion-MNIST "VGG16": BN after every ReLU.
    "mnist-vgg16": Architecture(
        _MNIST_SHAPE,
        conv=(64, 64, 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"),
        dense=(512, 512), bn="after"),
    # CIFAR-10 / CIFAR-100 "VGG15", trained 250 epochs with SGD 0.1 (Nesterov 0.9, halved every 20
    # epochs), weight decay 5e-4, dropout 0.3-0.5, augmentation, inputs standardised to [-3, 3].
    "cifar10-vgg15": Architecture(
        (3, 32, 32),
        conv=(64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"),
        dense=(512,), n_classes=10, bn="after", dropout=0.4),
    "cifar100-vgg15": Architecture(
        (3, 32, 32),
        conv=(64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"),
        dense=(512,), n_classes=100, bn="after", dropout=0.4),
}

PRESETS = {
    "ci": Preset(
        fc_datasets=("digits",),
        fc=Architecture(_DIGITS_SHAPE, dense=(100,)),
        fc_training=Training(epochs=20, batch_size=32, lr=2e-3),
        cnn_dataset="digits",
        cnn=Architecture(_DIGITS_SHAPE, conv=(6, "P", 12, "P"), dense=(32,), bn="after"),
        cnn_training=Training(epochs=20, batch_size=32, lr=3e-3),
        n_xmax=None,
        zetas=(-0.5, 0.0, 0.5),
        sigmas=(1e-3, 0.03, 0.3),
        alpha_noises=(1e-4, 1e-2),
        trials=2,
        n_robust=200,
    ),
    "book": Preset(
        fc_datasets=("fashion-mnist", "mnist"),
        fc=Architecture(_MNIST_SHAPE, dense=(600,)),
        fc_training=Training(epochs=3, batch_size=128, lr=1e-3),
        cnn_dataset="fashion-mnist",
        cnn=Architecture(_MNIST_SHAPE, conv=(8, "P", 16, "P"), dense=(64,), bn="after"),
        cnn_training=Training(epochs=2, batch_size=128, lr=2e-3),
        n_xmax=None,
        zetas=PAPER_ZETAS,
        sigmas=PAPER_SIGMAS,
        alpha_noises=PAPER_ALPHA_NOISES,
        trials=4,
        n_robust=500,
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
    ),
}


def preset(scale: str) -> Preset:
    """The chapter's sizes at ``scale`` (``"ci"``, ``"book"`` or ``"paper"``; else a ``ValueError``)."""
    return scales.pick(PRESETS, scale)


# ----------------------------------------------------------------------------------------------
# ReLU networks in torch: definition and training
# ----------------------------------------------------------------------------------------------


class ReLUNet(nn.Module):
    """A float64 ReLU network built from an :class:`Architecture`.

    Takes flattened images ``(n, C*H*W)`` (as :mod:`lib.data` returns them) and returns logits.
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        c, h, w = arch.input_shape
        self.blocks = nn.ModuleList()
        for item in arch.conv:
            if item == "P":
                self.blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
                continue
            self.blocks.append(self._block(nn.Conv2d(c, item, arch.kernel, padding=arch.kernel // 2), nn.BatchNorm2d, item))
            c = item
        n = c * h * w
        for width in arch.dense:
            self.blocks.append(self._block(nn.Linear(n, width), nn.BatchNorm1d, width))
            n = width
        self.out = nn.Linear(n, arch.n_classes)
        self.double()

    def _block(self, layer: nn.Module, bn: type, width: int) -> nn.Sequential:
        parts = [layer]
        if self.arch.bn == "before":
            parts.append(bn(width))
        parts.append(nn.ReLU())
        if self.arch.bn == "after":
            parts.append(bn(width))
        if self.arch.dropout > 0:
            parts.append(nn.Dropout(self.arch.dropout))
        return nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], *self.arch.input_shape) if self.arch.conv else x.reshape(x.shape[0], -1)
        for block in self.blocks:
            if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Linear):
                h = h.reshape(h.shape[0], -1)
            h = block(h)
        return self.out(h.reshape(h.shape[0], -1))


@dataclass(frozen=True)
class History:
    """Per-epoch mean training loss (cross-entropy, nats) and training accuracy."""

    loss: tuple[float, ...]
    accuracy: tuple[float, ...]


def train(arch: Architecture, x: np.ndarray, y: np.ndarray, training: Training, seed: int,
          desc: str = "training") -> tuple[ReLUNet, History]:
    """Train a float64 ReLU network with Adam and cross-entropy.

    Args:
        arch: the architecture.
        x: training images ``(n, d)`` with pixels in [0, 1].
        y: integer labels ``(n,)``.
        training: epochs, batch size, learning rate and its decay.
        seed: seeds the initialisation, the mini-batch order and dropout (``torch.manual_seed``).
        desc: label of the progress bar.

    Returns:
        ``(model, history)``; the model is in evaluation mode.
    """
    x, y = _check_images(x, arch), np.asarray(y)
    if y.shape != (len(x),):
        raise ValueError(f"labels must have shape ({len(x)},), got {y.shape}")
    if training.n_train is not None:
        x, y = x[: training.n_train], y[: training.n_train]
    torch.manual_seed(seed)
    model = ReLUNet(arch)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=training.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: training.decay ** (step / training.decay_steps))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    losses, accs = [], []
    for _ in progress.bar(range(training.epochs), desc=desc):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        tot_loss, tot_correct = 0.0, 0
        for s in range(0, len(xt), training.batch_size):
            idx = perm[s: s + training.batch_size]
            if len(idx) < 2 and arch.bn is not None:  # BN cannot normalise a batch of one
                continue
            out = model(xt[idx])
            loss = F.cross_entropy(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += float(loss.detach()) * len(idx)
            tot_correct += int((out.argmax(1) == yt[idx]).sum())
        losses.append(tot_loss / len(xt))
        accs.append(tot_correct / len(xt))
    model.eval()
    return model, History(tuple(losses), tuple(accs))


def logits(model: ReLUNet, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Logits of a trained :class:`ReLUNet` (evaluation mode, float64), ``(n, n_classes)``."""
    x = _check_images(x, model.arch)
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[s: s + batch])).numpy() for s in range(0, len(x), batch)]) \
            if len(x) else np.zeros((0, model.arch.n_classes))


# ----------------------------------------------------------------------------------------------
# Plain-array networks: folding and scaling
# ----------------------------------------------------------------------------------------------


class _LayerShape:
    """Shapes of a dense or convolutional layer, from its kind, its weights and its input shape.

    Shared by :class:`Layer` (weights ``weight``) and :class:`SpikingLayer` (weights ``J``).
    """

    kind: str
    in_shape: tuple[int, ...]

    @property
    def _kernel(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def padding(self) -> int:
        """The 'same' padding of a convolution (0 for a dense layer)."""
        return self._kernel.shape[-1] // 2 if self.kind == "conv" else 0

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of this layer's activations (or spike times) before pooling."""
        if self.kind == "dense":
            return (self._kernel.shape[0],)
        return (self._kernel.shape[0],) + tuple(self.in_shape[1:])


@dataclass(frozen=True)
class Layer(_LayerShape):
    """One layer of a folded ReLU network (plain float64 arrays).

    Attributes:
        kind: ``"dense"`` or ``"conv"``.
        weight: ``(n_out, n_in)`` or ``(C_out, C_in, k, k)``.
        bias: ``(n_out,)``, or for a convolution a per-position map ``(C_out, H, W)``.
        in_shape: shape of one input, ``(n_in,)`` or ``(C_in, H, W)``.
        relu: False for the output layer.
        pool: side of the max-pool after the ReLU (1: none).
        pool_sign: per channel, +1 to pool the maximum of the values, -1 the minimum.
    """

    kind: str
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    in_shape: tuple[int, ...]
    relu: bool = True
    pool: int = 1
    pool_sign: np.ndarray | None = field(default=None, repr=False)

    @property
    def _kernel(self) -> np.ndarray:
        return self.weight

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        """Shape after the pool (what the next layer receives)."""
        if self.kind == "dense" or self.pool == 1:
            return self.out_shape
        c, h, w = self.out_shape
        return (c, h // self.pool, w // self.pool)

    def weight_sums(self) -> np.ndarray:
        """Summed input weight of each neuron (dense) or channel (conv), ``sum_j W_ij``."""
        return self.weight.reshape(self.weight.shape[0], -1).sum(1)


@dataclass(frozen=True)
class Network:
    """A folded ReLU network: hidden layers with ReLU, then an output layer without."""

    layers: tuple[Layer, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layers[0].in_shape

    @property
    def hidden(self) -> tuple[Layer, ...]:
        return self.layers[:-1]

    def forward(self, x: np.ndarray, batch: int = 2048, hidden: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run the network.

        Args:
            x: images ``(n, d)`` with values in [0, 1].
            batch: images per torch call.
            hidden: also return the hidden activations (False saves their memory).

        Returns:
            ``(logits, hidden)``: the logits ``(n, n_classes)`` and, per hidden layer, its ReLU
            activations *before* pooling, ``(n, units)`` or ``(n, C, H, W)`` (empty if not asked for).
        """
        x = _check_inputs(x, self.input_shape)
        outs, hid = [], [[] for _ in self.hidden]
        for s in range(0, max(len(x), 1), batch):
            h = torch.from_numpy(x[s: s + batch]).reshape(-1, *self.input_shape)
            for i, layer in enumerate(self.layers):
                h = _affine(layer, h)
                if not layer.relu:
                    break
                h = torch.relu(h)
                if hidden:
                    hid[i].append(h.numpy())
                h = _pool_values(layer, h)
            outs.append(h.numpy())
        return np.concatenate(outs)[: len(x)], [np.concatenate(a)[: len(x)] for a in hid] if hidden else []

    def logits(self, x: np.ndarray, batch: int = 2048) -> np.ndarray:
        """The logits ``(n, n_classes)``."""
        return self.forward(x, batch, hidden=False)[0]


def _affine(layer: Layer, h: torch.Tensor) -> torch.Tensor:
    if layer.kind == "conv":
        return F.conv2d(h, torch.from_numpy(layer.weight), padding=layer.padding) + torch.from_numpy(layer.bias)
    return h.reshape(h.shape[0], -1) @ torch.from_numpy(layer.weight).T + torch.from_numpy(layer.bias)


def _pool_values(layer: Layer, h: torch.Tensor) -> torch.Tensor:
    """Max-pool (sign +1) or min-pool (sign -1) of values, per channel."""
    if layer.pool == 1:
        return h
    s = torch.from_numpy(layer.pool_sign)[None, :, None, None]
    return F.max_pool2d(s * h, layer.pool) * s


def fold(model: ReLUNet) -> Network:
    """Fold a trained :class:`ReLUNet` (evaluation mode) into a plain :class:`Network`.

    Batch normalisation ``y = kappa (x - mu) + beta`` with ``kappa = gamma / sqrt(var + eps)``:

    - before the ReLU it is folded into its own layer: ``W' = kappa W``, ``b' = kappa (b - mu) + beta``;
    - after the ReLU it is folded into the next layer: ``W'_next = W_next kappa`` (per input channel)
      and ``b'_next = b_next + W_next (beta - kappa mu)``, where for a 'same'-padded convolution the
      shift is convolved with zero padding, so the bias differs at the borders (9 values for a 3x3
      kernel); a max-pool between them pools the minimum in channels where ``kappa < 0``.

    Dropout is dropped. Returns the folded network; it computes the same logits as ``model``.
    """
    if not isinstance(model, ReLUNet):
        raise TypeError(f"fold expects a ReLUNet, got {type(model).__name__}")
    arch = model.arch
    layers: list[dict] = []
    carry = None  # (kappa, shift) of a BN after the previous ReLU, to fold into the next layer
    shape: tuple[int, ...] = arch.input_shape if arch.conv else (int(np.prod(arch.input_shape)),)

    def absorb(w: np.ndarray, b: np.ndarray, kind: str, in_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Fold the pending BN-after-ReLU ``carry`` into a layer's weight and bias."""
        nonlocal carry
        if kind == "conv":
            b = np.broadcast_to(b[:, None, None], (w.shape[0],) + in_shape[1:]).copy()
        if carry is None:
            return w, b
        kappa, shift = carry
        carry = None
        if kind == "conv":
            w2 = w * kappa[None, :, None, None]
            sh = torch.from_numpy(np.broadcast_to(shift[:, None, None], in_shape).copy())[None]
            b = b + F.conv2d(sh, torch.from_numpy(w), padding=w.shape[-1] // 2)[0].numpy()
            return w2, b
        # dense after dense, or after a flattened convolution (channel-major, as torch flattens)
        reps = w.shape[1] // len(kappa)
        k_full, s_full = np.repeat(kappa, reps), np.repeat(shift, reps)
        return w * k_full[None, :], b + w @ s_full

    with torch.no_grad():
        for block in model.blocks:
            if isinstance(block, nn.MaxPool2d):
                if not layers or layers[-1]["kind"] != "conv" or layers[-1]["pool"] != 1:
                    raise ValueError("a max-pool must follow a convolution")
                layers[-1]["pool"] = 2
                if carry is not None:  # BN after ReLU, then the pool: pool sign follows kappa
                    layers[-1]["pool_sign"] = np.where(carry[0] < 0, -1.0, 1.0)
                shape = (shape[0], shape[1] // 2, shape[2] // 2)
                continue
            lin = block[0]
            kind = "conv" if isinstance(lin, nn.Conv2d) else "dense"
            if kind == "dense":
                shape = (int(np.prod(shape)),)
            w = lin.weight.detach().numpy().copy()
            b = lin.bias.detach().numpy().copy()
            w, b = absorb(w, b, kind, shape)
            bns = [m for m in block if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if bns:
                kappa, shift = _bn_affine(bns[0])
                if arch.bn == "before":
                    w = w * kappa.reshape((-1,) + (1,) * (w.ndim - 1))
                    b = b * kappa.reshape((-1,) + (1,) * (b.ndim - 1)) + shift.reshape((-1,) + (1,) * (b.ndim - 1))
                else:
                    carry = (kappa, shift)
            out_ch = w.shape[0]
            layers.append(dict(kind=kind, weight=w, bias=b, in_shape=shape, relu=True, pool=1,
                               pool_sign=np.ones(out_ch) if kind == "conv" else None))
            shape = (out_ch,) + shape[1:] if kind == "conv" else (out_ch,)
        shape = (int(np.prod(shape)),)
        w, b = absorb(model.out.weight.detach().numpy().copy(), model.out.bias.detach().numpy().copy(), "dense", shape)
        layers.append(dict(kind="dense", weight=w, bias=b, in_shape=shape, relu=False, pool=1, pool_sign=None))
    return Network(tuple(Layer(**d) for d in layers))


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """``(kappa, beta - kappa mu)`` of a batch norm in evaluation mode."""
    kappa = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    return kappa, bn.bias.detach().numpy() - kappa * bn.running_mean.detach().numpy()


def scale_weights(net: Network, low: float = SUM_W_MIN, high: float = SUM_W_MAX) -> Network:
    """Bring every hidden neuron's summed input weight into ``[low, high]`` without changing the function.

    A neuron (or channel) with ``c = sum_j W_ij > high`` has its input weights and bias multiplied by
    ``high / c``, one with ``c < low`` by ``low / c``; its outgoing weights in the next layer are
    divided by the same positive factor. Layers are processed from the input up, since the division
    changes the next layer's sums.

    Args:
        net: a folded network.
        low, high: the bounds, ``low < 0 < high < 1``.

    Returns:
        The scaled network.
    """
    if not (low < 0.0 < high < 1.0):
        raise ValueError(f"need low < 0 < high < 1, got low={low}, high={high}")
    layers = list(net.layers)
    for n in range(len(layers) - 1):
        layer, nxt = layers[n], layers[n + 1]
        c = layer.weight_sums()
        f = np.ones_like(c)
        f[c > high] = high / c[c > high]
        f[c < low] = low / c[c < low]
        shape_w = (-1,) + (1,) * (layer.weight.ndim - 1)
        shape_b = (-1,) + (1,) * (layer.bias.ndim - 1)
        layers[n] = replace(layer, weight=layer.weight * f.reshape(shape_w), bias=layer.bias * f.reshape(shape_b))
        if nxt.kind == "conv":
            w_next = nxt.weight / f[None, :, None, None]
        else:
            w_next = nxt.weight / np.repeat(f, nxt.weight.shape[1] // len(f))[None, :]
        layers[n + 1] = replace(nxt, weight=w_next)
    return Network(tuple(layers))


def layer_maxima(net: Network, x: np.ndarray, batch: int = 1000) -> tuple[float, ...]:
    """``X_n``: the largest activation of each hidden layer (before pooling) over the images ``x``.

    Args:
        net: the (scaled) network whose windows are wanted.
        x: images, usually the training set (or a sample of it).
        batch: images per forward pass (only the running maxima are kept).
    """
    x = _check_inputs(x, net.input_shape)
    if len(x) == 0:
        raise ValueError("layer_maxima needs at least one image")
    best = np.zeros(len(net.hidden))
    for s in range(0, len(x), batch):
        _, hidden = net.forward(x[s: s + batch], batch=batch)
        best = np.maximum(best, [float(h.max()) for h in hidden])
    return tuple(float(v) for v in best)


# ----------------------------------------------------------------------------------------------
# The α1 SNN: mapping
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpikingLayer(_LayerShape):
    """A layer of α1 neurons, each firing exactly one spike in ``[t_min, t_max]``.

    Attributes:
        kind: ``"dense"`` or ``"conv"``.
        J: synaptic weights, ``(n_out, n_in)`` or ``(C_out, C_in, k, k)``.
        theta: thresholds, ``(n_out,)`` or per position ``(C_out, H, W)``.
        alpha: constant drive per neuron (dense) or channel (conv), switched on at ``t_min_prev``.
        t_min_prev: start of the previous layer's window, when integration starts.
        t_min, t_max: this layer's window.
        in_shape, pool, pool_sign: as in :class:`Layer`.
    """

    kind: str
    J: np.ndarray = field(repr=False)
    theta: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    t_min_prev: float
    t_min: float
    t_max: float
    in_shape: tuple[int, ...]
    pool: int = 1
    pool_sign: np.ndarray | None = field(default=None, repr=False)

    @property
    def _kernel(self) -> np.ndarray:
        return self.J


@dataclass(frozen=True)
class Readout:
    """The output layer: integrating neurons without threshold, read at ``t_read``.

    ``V_k(t) = alpha_k (t - t_min_prev) + sum_j W_kj (t - t_j)`` for ``t`` after every input, with the
    ReLU network's weights ``W`` and ``alpha = b / (t_read - t_min_prev)``, so that ``V_k(t_read)`` is
    the logit ``b_k + sum_j W_kj x_j``.
    """

    weight: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    t_min_prev: float
    t_read: float
    in_shape: tuple[int, ...]


@dataclass(frozen=True)
class SNN:
    """A single-spike α1 network mapped from a ReLU network.

    Attributes:
        layers: the hidden (spiking) layers.
        readout: the output layer.
        windows: ``(t_min, t_max)`` of the input layer and of each hidden layer.
        x_max: the layer maxima ``X_n`` the windows were built from.
        zeta: the window margin.
        input_shape: shape of one input image.
    """

    layers: tuple[SpikingLayer, ...]
    readout: Readout
    windows: tuple[tuple[float, float], ...]
    x_max: tuple[float, ...]
    zeta: float
    input_shape: tuple[int, ...]

    @property
    def latency(self) -> float:
        """Time of the readout, ``t_min^(N) = 1 + sum_n B_n`` (units of TAU_C)."""
        return self.readout.t_read

    def with_alpha_noise(self, std: float, rng: np.random.Generator) -> "SNN":
        """A copy whose hidden neurons have ``alpha + N(0, std^2)``, drawn once per neuron (frozen).

        As in the authors' code, one value per dense neuron or per convolutional channel; the
        readout's ``alpha`` (which carries the bias) is not perturbed.
        """
        if std < 0:
            raise ValueError(f"alpha-noise std must be >= 0, got {std}")
        return replace(self, layers=tuple(replace(L, alpha=L.alpha + rng.normal(0.0, std, L.alpha.shape))
                                          for L in self.layers))


def windows(x_max: Sequence[float], zeta: float = ZETA) -> tuple[tuple[float, float], ...]:
    """Spike windows ``(t_min, t_max)``: ``[0, 1]`` for the input, then ``B_n = (1 + zeta) X_n`` each.

    Args:
        x_max: ``X_n`` of each hidden layer (must be > 0).
        zeta: window margin, > -1.

    Returns:
        ``((0, 1), (1, 1 + B_1), (1 + B_1, 1 + B_1 + B_2), ...)``.
    """
    if not zeta > -1.0:
        raise ValueError(f"zeta must be > -1 (windows (1 + zeta) X_n must be positive), got {zeta}")
    x_max = [float(v) for v in x_max]
    for n, v in enumerate(x_max):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"X_n of hidden layer {n + 1} must be positive and finite, got {v}: the layer is "
                             "silent on the data, so no window can be set")
    out = [(INPUT_T_MIN, INPUT_T_MAX)]
    for n, v in enumerate(x_max):
        t = out[-1][1]
        B = (1.0 + zeta) * v
        if not (t + B) - t > 1e-9 * max(1.0, t):
            raise ValueError(f"the window of hidden layer {n + 1} ((1 + zeta) X_n = {B:.3g}) is too short to be "
                             f"resolved in float64 at t = {t:.4g}; the layer is (nearly) silent on the data")
        out.append((t, t + B))
    return tuple(out)


def map_to_snn(net: Network, x_max: Sequence[float], zeta: float = ZETA, alpha: float = ALPHA) -> SNN:
    """Map a scaled ReLU network to α1 neurons (the paper's exact mapping).

    For hidden layer ``n`` with window ``[t_min, t_max]`` of width ``B = t_max - t_min`` and previous
    window start ``t_min_prev``:

    - ``J_ij = alpha W_ij / (1 - sum_k W_ik)`` (the slope at threshold is ``alpha / (1 - sum W) > 0``);
    - ``theta_i = alpha (t_max - t_min_prev) + B sum_j J_ij - (alpha + sum_j J_ij) b_i``;

    then ``t_max - t_i = ReLU(sum_j W_ij x_j + b_i)`` whenever the crossing falls inside the window.
    The output layer keeps ``W`` and gets ``alpha_k = b_k / (t_read - t_min_prev)``.

    Args:
        net: a folded and scaled network (every hidden ``sum W < 1``; see :func:`scale_weights`).
        x_max: ``X_n`` per hidden layer (:func:`layer_maxima` on training data).
        zeta: window margin.
        alpha: the constant drive.

    Returns:
        The :class:`SNN`.
    """
    if len(x_max) != len(net.hidden):
        raise ValueError(f"need one X_n per hidden layer ({len(net.hidden)}), got {len(x_max)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    wins = windows(x_max, zeta)
    layers = []
    for n, layer in enumerate(net.hidden):
        c = layer.weight_sums()
        if np.any(c >= 1.0):
            i = int(np.argmax(c))
            raise ValueError(f"hidden layer {n + 1}: neuron {i} has summed input weight {c[i]:.4g} >= 1, which the "
                             f"α1 mapping cannot represent (the slope at threshold would be <= 0); "
                             f"call ttfs.scale_weights(net) first")
        (t_min_prev, _), (t_min, t_max) = wins[n], wins[n + 1]
        B = t_max - t_min
        shape_w = (-1,) + (1,) * (layer.weight.ndim - 1)
        shape_b = (-1,) + (1,) * (layer.bias.ndim - 1)
        J = alpha * layer.weight / (1.0 - c).reshape(shape_w)
        sJ = J.reshape(J.shape[0], -1).sum(1).reshape(shape_b)
        theta = alpha * (t_max - t_min_prev) + B * sJ - (alpha + sJ) * layer.bias
        layers.append(SpikingLayer(layer.kind, J, theta, np.full(J.shape[0], float(alpha)), t_min_prev, t_min, t_max,
                                   layer.in_shape, layer.pool, layer.pool_sign))
    out = net.layers[-1]
    t_min_prev, t_read = wins[-1]
    readout = Readout(out.weight.copy(), out.bias / (t_read - t_min_prev), t_min_prev, t_read, out.in_shape)
    return SNN(tuple(layers), readout, wins, tuple(float(v) for v in x_max), float(zeta), net.input_shape)


# ----------------------------------------------------------------------------------------------
# The α1 SNN: event-driven simulation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SNNResult:
    """What :func:`simulate` returns.

    Attributes:
        input_times: spike times of the input layer ``(n, d)``.
        spike_times: per hidden layer, the spike time of every neuron, ``(n, units)`` or
            ``(n, C, H, W)`` (before pooling: these are the neurons that fire).
        v_out: the output potentials at the readout time, ``(n, n_classes)``: the SNN's logits.
    """

    input_times: np.ndarray = field(repr=False)
    spike_times: tuple[np.ndarray, ...] = field(repr=False)
    v_out: np.ndarray = field(repr=False)

    def predictions(self) -> np.ndarray:
        """The predicted class of each image (argmax of the readout)."""
        return self.v_out.argmax(1)


def encode(x: np.ndarray) -> np.ndarray:
    """TTFS input coding: a pixel of value ``x`` in [0, 1] spikes at ``t = 1 - x`` (a zero pixel at t = 1)."""
    x = np.asarray(x, dtype=np.float64)
    _check_unit_interval(x)
    return INPUT_T_MAX - (INPUT_T_MAX - INPUT_T_MIN) * x


def simulate(snn: SNN, x: np.ndarray, sigma: float = 0.0, rng: np.random.Generator | None = None,
             batch: int | None = None, desc: str | None = None) -> SNNResult:
    """Simulate the α1 network event by event on images ``x``.

    Every hidden neuron integrates ``tau_c dV/dt = alpha H(t - t_min_prev) + sum_j J_ij H(t - t_j)``
    from ``V = 0``: its input spikes are sorted, spikes at equal times are processed as one group,
    and the potential is advanced from event to event; the neuron fires at its first threshold
    crossing, or is forced to fire at ``t_max`` if it has not crossed by then (a silent ReLU). The
    output neurons integrate the same way and are read at ``t_read``; an input spike that arrives
    after ``t_read`` (possible only with jitter) does not count. (The authors' code reads
    ``alpha (t_read - t_min_prev) + sum_j W_kj (t_read - t_j)`` without that cut, so under jitter
    the two readouts differ slightly; without jitter they are identical.)

    Args:
        snn: the network.
        x: images ``(n, d)`` with values in [0, 1].
        sigma: standard deviation of a Gaussian jitter added to every spike (input spikes included,
            then clipped at 0), in units of TAU_C. Needs ``rng`` when > 0.
        rng: random generator for the jitter.
        batch: images per batch (None: chosen from the layer sizes to bound memory).
        desc: a progress-bar label over batches (None: no bar).

    Returns:
        :class:`SNNResult`.
    """
    x = _check_inputs(x, snn.input_shape)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma > 0 and rng is None:
        raise ValueError("spike-time jitter (sigma > 0) needs an rng")
    n = len(x)
    if batch is None:  # bound the input-time rows of the largest layer to about _BATCH_ELEMENTS values
        rows = max([int(np.prod(L.out_shape[1:])) * (L.J[0].size + 1) for L in snn.layers] + [1])
        batch = int(max(1, min(max(n, 1), _BATCH_ELEMENTS // rows)))
    starts = range(0, n, batch)
    if desc is not None:
        starts = progress.bar(starts, desc=desc, total=math.ceil(n / batch))
    t_in, spikes, v_out = [], [[] for _ in snn.layers], []
    for s in starts:
        t = encode(x[s: s + batch]).reshape(-1, *snn.input_shape)
        if sigma > 0:
            t = np.maximum(t + rng.normal(0.0, sigma, t.shape), 0.0)
        t_in.append(t.reshape(len(t), -1))
        for i, layer in enumerate(snn.layers):
            t = _spiking_layer(layer, t)
            if sigma > 0:
                t = t + rng.normal(0.0, sigma, t.shape)
            spikes[i].append(t)
            t = _pool_times(layer, t)
        v_out.append(_readout(snn.readout, t.reshape(len(t), -1)))
    if n == 0:
        return SNNResult(np.zeros((0, int(np.prod(snn.input_shape)))),
                         tuple(np.zeros((0,) + L.out_shape) for L in snn.layers),
                         np.zeros((0, snn.readout.weight.shape[0])))
    return SNNResult(np.concatenate(t_in), tuple(np.concatenate(a) for a in spikes), np.concatenate(v_out))


def alpha1_spike_times(t_in: np.ndarray, J: np.ndarray, theta: np.ndarray, alpha: float | np.ndarray = ALPHA,
                       t_on: float = 0.0, t_max: float = math.inf) -> np.ndarray:
    """Spike times of a group of α1 neurons that receive the same input spikes (event-driven).

    The single-layer core of :func:`simulate`, for exploring one neuron at a time.

    Args:
        t_in: input spike times ``(m, n_in)`` (``m`` independent trials, e.g. images).
        J: weights ``(n_out, n_in)``.
        theta: thresholds ``(n_out,)``.
        alpha: drive, switched on at ``t_on`` (scalar or per neuron).
        t_on: start of integration, ``t_min^(n-1)``.
        t_max: latest spike time (a neuron that has not crossed fires then).

    Returns:
        ``(m, n_out)`` spike times.
    """
    t_in, J = np.atleast_2d(np.asarray(t_in, dtype=np.float64)), np.atleast_2d(np.asarray(J, dtype=np.float64))
    theta = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    if J.shape[1] != t_in.shape[1] or theta.shape != (J.shape[0],):
        raise ValueError(f"need t_in (m, n_in), J (n_out, n_in), theta (n_out,); got {t_in.shape}, {J.shape}, "
                         f"{theta.shape}")
    if not np.all(np.isfinite(t_in)):
        raise ValueError("input spike times must be finite")
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (J.shape[0],))
    return _event_sweep(t_in, np.ascontiguousarray(J.T), alpha, float(t_on), theta[None, :],
                        np.zeros(len(t_in), dtype=np.int64), t_max=t_max)


def _pool_times(layer: SpikingLayer | Layer, t: np.ndarray) -> np.ndarray:
    """Pooling in time: the earliest spike (max of values) or, where pool_sign < 0, the latest."""
    if layer.pool == 1:
        return t
    s = torch.from_numpy(layer.pool_sign)[None, :, None, None]
    return (-s * F.max_pool2d(-s * torch.from_numpy(t), layer.pool)).numpy()


def _patches(layer: SpikingLayer, t: np.ndarray) -> np.ndarray:
    """Input spike times of every convolution position, ``(n * H * W, C_in * k * k)``.

    Padded positions get the previous layer's ``t_max`` (= this layer's ``t_min``): a value of 0.
    """
    k, p = layer.J.shape[-1], layer.padding
    tt = torch.from_numpy(t)
    if p:
        tt = F.pad(tt, (p, p, p, p), value=layer.t_min)
    cols = F.unfold(tt, k)  # (n, C_in*k*k, H*W)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy()


def _spiking_layer(layer: SpikingLayer, t: np.ndarray) -> np.ndarray:
    """Spike times of one α1 layer given its input spike times (image-first arrays)."""
    n = len(t)
    if layer.kind == "conv":
        rows = _patches(layer, t)
        w = layer.J.reshape(layer.J.shape[0], -1).T
        hw = int(np.prod(layer.in_shape[1:]))
        theta = layer.theta.reshape(layer.theta.shape[0], -1).T  # (H*W, C_out)
        pos = np.tile(np.arange(hw), n)
    else:
        rows, w = t.reshape(n, -1), layer.J.T
        theta, pos = layer.theta[None, :], np.zeros(n, dtype=np.int64)
    out = _event_sweep(rows, w, layer.alpha, layer.t_min_prev, theta, pos, t_max=layer.t_max)
    if layer.kind == "conv":
        c, h, wd = layer.out_shape
        return out.reshape(n, h, wd, c).transpose(0, 3, 1, 2).copy()
    return out


def _readout(readout: Readout, t: np.ndarray) -> np.ndarray:
    """Output potentials at ``t_read``, integrated event by event (inputs after ``t_read`` do not count)."""
    rows = np.minimum(t, readout.t_read)
    return _event_sweep(rows, readout.weight.T, readout.alpha, readout.t_min_prev, None,
                        np.zeros(len(t), dtype=np.int64), t_read=readout.t_read)


def _event_sweep(t: np.ndarray, w: np.ndarray, alpha: np.ndarray, t_on: float, theta: np.ndarray | None,
                 pos: np.ndarray, t_max: float = math.inf, t_read: float | None = None) -> np.ndarray:
    """The event-driven core, for many rows (images, or image positions of a convolution) at once.

    Each row ``r`` holds the input spike times ``t[r]`` of a group of neurons that share them (a dense
    layer, or all channels at one position). The drive ``alpha`` is one more input, of weight
    ``alpha_i`` at time ``t_on``. Events are sorted per row and processed in that order; between
    events the potential of neuron ``i`` grows linearly with slope ``C_i`` (the summed weight of the
    inputs received so far), and at each event time it is compared with the threshold. The inputs
    that share the row's last time (zero pixels, silent neurons, padding) form one tie group that is
    added at once.

    Args:
        t: ``(m, n_in)`` input spike times.
        w: ``(n_in, n_out)`` weights (pre x post).
        alpha: ``(n_out,)`` drive of each neuron.
        t_on: time the drive switches on.
        theta: thresholds ``(P, n_out)``, the row ``pos[r]`` applying to row ``r``; None for the readout.
        pos: ``(m,)`` index into ``theta`` per row.
        t_max: end of the window; neurons that have not crossed fire then.
        t_read: for the readout, the time at which the potential is read.

    Returns:
        ``(m, n_out)``: spike times, or potentials at ``t_read`` when ``theta`` is None.
    """
    m, n_in = t.shape
    n_out = w.shape[1]
    events = torch.from_numpy(np.concatenate([t, np.full((m, 1), float(t_on))], axis=1))
    weights = torch.from_numpy(np.ascontiguousarray(np.concatenate([w, np.asarray(alpha, dtype=np.float64)[None, :]])))
    c_total = weights.sum(0)
    th = None if theta is None else torch.from_numpy(np.ascontiguousarray(theta))
    tau, order = torch.sort(events, dim=1, stable=True)
    last = tau[:, -1:]
    n_lead = (tau < last).sum(1)  # events before the row's final tie group
    rows_by_len = torch.argsort(n_lead, stable=True)
    out = torch.empty((m, n_out), dtype=torch.float64)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_out, 1))
    for s in range(0, m, chunk):
        r = rows_by_len[s: s + chunk]
        k_lead = int(n_lead[r].max()) if len(r) else 0
        tau_r = tau[r]
        idx = order[r, :k_lead].T.contiguous()  # (K, c)
        times = tau_r[:, :k_lead].T.contiguous()
        th_r = None if th is None else th[torch.from_numpy(pos)[r]]
        if th_r is None:
            out[r] = _sweep_readout(times, idx, tau_r[:, -1], weights, c_total, t_read)
            continue
        t_sp, early = _sweep_fast(times, idx, tau_r[:, -1], weights, c_total, th_r)
        if bool(early.any()):
            rr = early.nonzero().flatten()
            k2 = int(n_lead[r[rr]].max())
            t_sp[rr] = _sweep_tracked(times[:k2, rr].contiguous(), idx[:k2, rr].contiguous(), tau_r[rr, -1],
                                      weights, c_total, th_r[rr])
        out[r] = torch.clamp(t_sp, max=t_max)
    return out.numpy()


def _sweep_fast(times, idx, t_last, weights, c_total, theta):
    """One pass over the events that only records the largest potential reached at any event time.

    Returns the spike times assuming the first crossing comes after the last event, and a per-row
    flag of rows in which some neuron reached threshold at an event time (those are redone by
    :func:`_sweep_tracked`).
    """
    K, c = idx.shape
    n_out = weights.shape[1]
    C = torch.zeros((c, n_out), dtype=torch.float64)
    V = torch.zeros_like(C)
    vmax = torch.full_like(C, -math.inf)
    G = torch.empty_like(C)
    prev = times[0] if K else t_last
    for k in range(K):
        V.addcmul_(C, (times[k] - prev)[:, None])  # advance to the k-th event
        torch.maximum(vmax, V, out=vmax)
        torch.index_select(weights, 0, idx[k], out=G)  # then the event changes the slope
        C.add_(G)
        prev = times[k]
    V.addcmul_(C, (t_last - prev)[:, None])  # advance to the final tie group
    torch.maximum(vmax, V, out=vmax)
    early = (vmax >= theta).any(1)
    t_sp = torch.where(c_total > 0, t_last[:, None] + (theta - V) / c_total, math.inf)
    return t_sp, early


def _sweep_tracked(times, idx, t_last, weights, c_total, theta):
    """Like :func:`_sweep_fast`, but records the first threshold crossing of every neuron."""
    K, c = idx.shape
    n_out = weights.shape[1]
    C = torch.zeros((c, n_out), dtype=torch.float64)
    V = torch.zeros_like(C)
    t_sp = torch.full_like(C, math.inf)
    alive = torch.ones((c, n_out), dtype=torch.bool)
    prev = times[0] if K else t_last

    def check(t_now):
        hit = (V >= theta) & alive
        if bool(hit.any()):
            # the crossing lies on the segment that ends now, with slope C (before this event)
            back = torch.where(C > 0, (V - theta) / torch.where(C > 0, C, 1.0), 0.0)
            t_sp[hit] = (t_now[:, None] - back)[hit]
            alive[hit] = False

    for k in range(K):
        V.addcmul_(C, (times[k] - prev)[:, None])
        check(times[k])
        C.add_(weights[idx[k]])
        prev = times[k]
    V.addcmul_(C, (t_last - prev)[:, None])
    check(t_last)
    final = torch.where(c_total > 0, t_last[:, None] + (theta - V) / c_total, math.inf)
    return torch.where(alive, final, t_sp)


def _sweep_readout(times, idx, t_last, weights, c_total, t_read):
    """Potential at ``t_read`` (all events are at or before it)."""
    K, c = idx.shape
    C = torch.zeros((c, weights.shape[1]), dtype=torch.float64)
    V = torch.zeros_like(C)
    G = torch.empty_like(C)
    prev = times[0] if K else t_last
    for k in range(K):
        V.addcmul_(C, (times[k] - prev)[:, None])
        torch.index_select(weights, 0, idx[k], out=G)
        C.add_(G)
        prev = times[k]
    V.addcmul_(C, (t_last - prev)[:, None])
    return V + c_total * (t_read - t_last)[:, None]


# ----------------------------------------------------------------------------------------------
# Closed form (for the tests), decoding, potentials
# ----------------------------------------------------------------------------------------------


def closed_form(snn: SNN, x: np.ndarray) -> SNNResult:
    """The spike times the mapping predicts, from the formula rather than by integration.

    Assumes that every neuron crosses threshold after its last input:
    ``t_i = (sum_j J_ij t_j + alpha t_min_prev + theta_i) / (sum_j J_ij + alpha)``, capped at ``t_max``;
    the readout is ``alpha_k (t_read - t_min_prev) + sum_j W_kj (t_read - t_j)``. Used by the tests as
    an independent reference for :func:`simulate`.
    """
    x = _check_inputs(x, snn.input_shape)
    t = encode(x).reshape(-1, *snn.input_shape)
    t_in, spikes = t.reshape(len(t), -1), []
    for layer in snn.layers:
        tt = torch.from_numpy(t)
        if layer.kind == "conv":
            num = F.conv2d(F.pad(tt, (layer.padding,) * 4, value=layer.t_min), torch.from_numpy(layer.J))
            sJ = layer.J.reshape(layer.J.shape[0], -1).sum(1)[:, None, None]
            a = layer.alpha[:, None, None]
        else:
            num = tt.reshape(len(tt), -1) @ torch.from_numpy(layer.J).T
            sJ, a = layer.J.sum(1), layer.alpha
        num = num.numpy() + a * layer.t_min_prev + layer.theta
        slope = sJ + a
        with np.errstate(divide="ignore", invalid="ignore"):
            ti = np.where(slope > 0, num / slope, np.inf)
        t = np.minimum(ti, layer.t_max)
        spikes.append(t)
        t = _pool_times(layer, t)
    ro = snn.readout
    v = (ro.t_read - t.reshape(len(t), -1)) @ ro.weight.T + ro.alpha * (ro.t_read - ro.t_min_prev)
    return SNNResult(t_in, tuple(spikes), v)


def decode(snn: SNN, result: SNNResult) -> list[np.ndarray]:
    """The values the spikes encode, ``x = t_max - t`` per hidden layer (before pooling)."""
    return [layer.t_max - t for layer, t in zip(snn.layers, result.spike_times, strict=True)]


def layer_input_times(snn: SNN, result: SNNResult, layer: int) -> np.ndarray:
    """Spike times that hidden layer ``layer`` (0-based; ``len(snn.layers)`` = the readout) receives."""
    if not 0 <= layer <= len(snn.layers):
        raise ValueError(f"layer must be in 0..{len(snn.layers)}, got {layer}")
    if layer == 0:
        return result.input_times.reshape(-1, *snn.input_shape)
    return _pool_times(snn.layers[layer - 1], result.spike_times[layer - 1])


def potential(snn: SNN, result: SNNResult, layer: int, image: int, neuron: int, times: np.ndarray) -> np.ndarray:
    """Membrane potential of one neuron over ``times``, from the input spikes of one image.

    ``V(t) = alpha (t - t_min_prev)_+ + sum_j J_j (t - t_j)_+``, i.e. without the reset of a spike
    (the neuron fires once, where ``V`` first reaches ``theta``). ``layer == len(snn.layers)`` is the
    readout (``neuron`` = class).

    Args:
        snn, result: the network and a simulation.
        layer: hidden layer index (0-based) or ``len(snn.layers)`` for the output.
        image: image index in ``result``.
        neuron: flat index of the neuron in its layer (``c * H * W + h * W + w`` for a convolution).
        times: where to evaluate.

    Returns:
        ``V(times)``.
    """
    times = np.asarray(times, dtype=np.float64)
    t_in = layer_input_times(snn, result, layer)[image]
    if layer == len(snn.layers):
        w, a, t0, tj = snn.readout.weight[neuron], snn.readout.alpha[neuron], snn.readout.t_min_prev, t_in.ravel()
    else:
        L = snn.layers[layer]
        t0 = L.t_min_prev
        if L.kind == "dense":
            w, a, tj = L.J[neuron], L.alpha[neuron], t_in.ravel()
        else:
            c, h, wd = L.out_shape
            ch, rest = divmod(neuron, h * wd)
            patch = _patches(L, t_in[None])[rest]
            w, a, tj = L.J[ch].ravel(), L.alpha[ch], patch
    return a * np.maximum(times - t0, 0.0) + np.maximum(times[:, None] - tj[None, :], 0.0) @ w


def threshold(snn: SNN, layer: int, neuron: int) -> float:
    """Threshold of one hidden neuron (flat index)."""
    return float(snn.layers[layer].theta.ravel()[neuron])


# ----------------------------------------------------------------------------------------------
# Measurements used by the chapter
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exactness:
    """How exactly an SNN reproduces its ReLU network on a test set.

    Attributes:
        rel_error: ``max |V_out - logits| / max |logits|`` (logits of the original trained network).
        agreement: fraction of images where argmax of the SNN readout equals the ReLU net's.
        acc_ann, acc_snn: test accuracies.
        in_window: fraction of (image, hidden neuron) pairs whose single spike lies in its window.
        early: number of hidden spikes before their window (crossings during the input period).
        active: fraction of hidden neurons that fire before ``t_max`` (a positive ReLU value).
        max_time_error: ``max |t_SNN - (t_max - ReLU)|`` over hidden neurons.
        n_images: test images.
        n_neurons: hidden neurons per image.
    """

    rel_error: float
    agreement: float
    acc_ann: float
    acc_snn: float
    in_window: float
    early: int
    active: float
    max_time_error: float
    n_images: int
    n_neurons: int


def exactness(snn: SNN, net: Network, x: np.ndarray, y: np.ndarray, ann_logits: np.ndarray,
              batch: int = 1000, desc: str | None = None) -> Exactness:
    """Simulate ``snn`` on images ``x`` and compare it with the ReLU network it was mapped from.

    The images are simulated in batches and only the statistics are kept, so that large test sets
    of convolutional nets fit in memory.

    Args:
        snn: the SNN.
        net: the scaled network it was mapped from (its hidden activations are the reference for
            the spike times).
        x, y: test images and labels.
        ann_logits: logits of the *original* trained network on ``x`` (the reference of the readout).
        batch: images per batch.
        desc: a progress-bar label over batches (None: no bar).
    """
    x = _check_inputs(x, snn.input_shape)
    ann_logits, y = np.asarray(ann_logits), np.asarray(y)
    if ann_logits.shape != (len(x), snn.readout.weight.shape[0]) or y.shape != (len(x),):
        raise ValueError(f"need ann_logits ({len(x)}, {snn.readout.weight.shape[0]}) and labels ({len(x)},), "
                         f"got {ann_logits.shape} and {y.shape}")
    err, inside, early, active, n_spk, terr, pred = 0.0, 0, 0, 0, 0, 0.0, []
    starts = range(0, len(x), batch)
    for s in (starts if desc is None else progress.bar(starts, desc=desc)):
        res = simulate(snn, x[s: s + batch])
        _, hidden = net.forward(x[s: s + batch], batch=batch)
        err = max(err, float(np.max(np.abs(res.v_out - ann_logits[s: s + batch]))))
        pred.append(res.predictions())
        for layer, t, h in zip(snn.layers, res.spike_times, hidden, strict=True):
            inside += int(np.sum((t >= layer.t_min) & (t <= layer.t_max)))
            early += int(np.sum(t < layer.t_min))
            active += int(np.sum(t < layer.t_max))
            n_spk += t.size
            terr = max(terr, float(np.max(np.abs(t - (layer.t_max - h)))))
    pred_snn, pred_ann = np.concatenate(pred), ann_logits.argmax(1)
    return Exactness(err / float(np.max(np.abs(ann_logits))), float(np.mean(pred_snn == pred_ann)),
                     float(np.mean(pred_ann == y)), float(np.mean(pred_snn == y)), inside / n_spk, early,
                     active / n_spk, terr, len(y), n_spk // len(y))


@dataclass(frozen=True)
class Robustness:
    """Accuracy of an SNN under narrower windows, spike-time jitter and α-noise.

    Attributes:
        acc_ann: the ReLU network's accuracy on the same images.
        zetas, acc_zeta, early_zeta: window margins, accuracy and fraction of hidden spikes that
            come before their window (clipped activations), deterministic.
        sigmas, acc_sigma: jitter std and accuracy ``(len(sigmas), trials)``.
        acc_sigma_relu: accuracy of the ReLU network with the equivalent noise on its activations
            (:func:`noisy_relu_predictions`), ``(len(sigmas), trials)``.
        alpha_noises, acc_alpha: α-noise std and accuracy ``(len(alpha_noises), trials)``.
    """

    acc_ann: float
    zetas: tuple[float, ...]
    acc_zeta: np.ndarray
    early_zeta: np.ndarray
    sigmas: tuple[float, ...]
    acc_sigma: np.ndarray
    acc_sigma_relu: np.ndarray
    alpha_noises: tuple[float, ...]
    acc_alpha: np.ndarray


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
    """
    acc_ann = float(np.mean(net.logits(x).argmax(1) == y))
    acc_z, early_z = [], []
    for z in progress.bar(zetas, desc="zeta"):
        snn = map_to_snn(net, x_max, z)
        res = simulate(snn, x)
        acc_z.append(float(np.mean(res.predictions() == y)))
        early_z.append(sum(int(np.sum(t < L.t_min)) for L, t in zip(snn.layers, res.spike_times, strict=True))
                       / sum(t.size for t in res.spike_times))
    base = map_to_snn(net, x_max, zeta)
    acc_s = np.array([[np.mean(simulate(base, x, sigma=s, rng=rng).predictions() == y) for _ in range(trials)]
                      for s in progress.bar(sigmas, desc="sigma")])
    acc_r = np.array([[np.mean(noisy_relu_predictions(net, x, s, rng) == y) for _ in range(trials)] for s in sigmas])
    acc_a = np.array([[np.mean(simulate(base.with_alpha_noise(a, rng), x).predictions() == y) for _ in range(trials)]
                      for a in progress.bar(alpha_noises, desc="alpha-noise")])
    return Robustness(acc_ann, tuple(zetas), np.array(acc_z), np.array(early_z), tuple(sigmas), acc_s, acc_r,
                      tuple(alpha_noises), acc_a)


def noisy_relu_predictions(net: Network, x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Predictions of the ReLU network with the noise that spike-time jitter amounts to.

    A spike delayed by ``delta`` encodes ``x - delta``. So jitter of sd ``sigma`` on every spike is
    nearly the same as subtracting Gaussian noise from every activation of the ReLU network -- silent
    neurons (value 0) included, before pooling -- and from the inputs (clipped at 1, as the input times
    are clipped at 0). "Nearly": it is exact only while every neuron crosses threshold after its last
    input, and a spike of the last hidden layer that arrives after the readout time does not count in
    the SNN (here it counts as a negative value; the authors' code reads the output the same way).
    """
    x = _check_inputs(x, net.input_shape)
    h = torch.from_numpy(np.minimum(x - rng.normal(0.0, sigma, x.shape), 1.0)).reshape(-1, *net.input_shape)
    for layer in net.layers:
        h = _affine(layer, h)
        if not layer.relu:
            break
        h = torch.relu(h) - torch.from_numpy(rng.normal(0.0, sigma, tuple(h.shape)))
        h = _pool_values(layer, h)
    return h.numpy().argmax(1)


@dataclass(frozen=True)
class Pipeline:
    """A trained ReLU network, its folded and scaled versions, the mapped SNN and their comparison.

    Attributes:
        model: the trained torch network.
        history: its training history.
        folded: BN folded into plain weights (:func:`fold`).
        scaled: summed input weights in [-10, 0.99] (:func:`scale_weights`).
        x_max: the layer maxima ``X_n`` on the training images.
        snn: the α1 network (:func:`map_to_snn`, margin ``ZETA``).
        ann_logits: the trained network's logits on the test set.
        acc_folded: test accuracy of the scaled network (the "scaled ReLU" of the authors' demo).
        exact: the comparison on the whole test set (:func:`exactness`).
        data: the dataset's description.
    """

    model: ReLUNet = field(repr=False)
    history: History
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
    exact = exactness(snn, scaled, ds.x_test, ds.y_test, ann, desc=f"{name}: SNN")
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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

    from . import plotting

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


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def _check_unit_interval(x: np.ndarray) -> None:
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError("inputs must lie in [0, 1] (TTFS coding maps x to the spike time 1 - x); got NaN or inf")
    if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError(f"inputs must lie in [0, 1] (TTFS coding maps x to the spike time 1 - x); "
                         f"got values in [{x.min():.4g}, {x.max():.4g}]")


def _check_inputs(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    d = int(np.prod(input_shape))
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"images must be an array (n, {d}) for inputs of shape {tuple(input_shape)}, got {x.shape}")
    _check_unit_interval(x)
    return np.ascontiguousarray(x)


def _check_images(x: np.ndarray, arch: Architecture) -> np.ndarray:
    return _check_inputs(x, arch.input_shape)


__all__ = [
    "ALPHA", "Architecture", "alpha1_spike_times", "Exactness", "History", "Layer", "Network", "PAPER_ALPHA_NOISES", "PAPER_SIGMAS",
    "PAPER_ZETAS", "PRESETS", "Pipeline", "Preset", "ReLUNet", "Readout", "Robustness", "SNN", "SNNResult",
    "SUM_W_MAX", "SUM_W_MIN", "SpikingLayer", "TAU_C", "Training", "VGG", "ZETA", "closed_form", "decode",
    "degrades_monotonically", "encode", "exactness", "fold", "layer_input_times", "layer_maxima", "logits",
    "map_to_snn", "noisy_relu_predictions", "pick_neurons", "pipeline", "plot_potentials", "plot_spike_wave",
    "potential", "preset", "robustness", "scale_weights", "simulate", "threshold", "train", "windows",
]
