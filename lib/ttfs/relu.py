"""ReLU networks for the TTFS mapping: definition, training, folding and weight scaling.

Part of :mod:`lib.ttfs` (Stanojevic, Woźniak, Bellec, Cherubini, Pantazi & Gerstner 2023, "An exact
mapping from ReLU networks to spiking neural networks", *Neural Networks*, arXiv:2212.12522;
chapter ``ttfs-exact-mapping``). Steps 1-3 of the mapping, before any neuron model:

1. **Train** a ReLU network in torch, float64 (:class:`Architecture`, :class:`ReLUNet`,
   :func:`train`, with :func:`lib.torchkit.fit`).
2. **Fold** batch normalisation into plain weights (:func:`fold`): a BN before the ReLU is folded
   into the same layer; a BN after the ReLU is folded into the *next* layer, which makes the biases
   of a 'same'-padded convolution depend on the position (the border pixels see fewer non-padded
   inputs) and turns a following max-pool into a min-pool for channels whose BN scale is negative.
3. **Scale** (:func:`scale_weights`): the summed input weight of every hidden neuron is brought into
   ``[SUM_W_MIN, SUM_W_MAX] = [-10, 0.99]`` by a positive factor; the next layer compensates, so
   the function is unchanged (ReLU is positively homogeneous). :func:`layer_maxima` gives the
   ``X_n`` that set the spike windows.

Also: He initialisation (:func:`he_init`), the inverse of :func:`fold` for dense nets
(:func:`relu_from_network`), a dense net's parameters as arrays (:func:`relu_params`,
:func:`flat_params`, :func:`max_param_diff`) and the bias-free control network
(:func:`without_biases`).

Arrays of many images have the image index first; dense layers are ``(n, units)``,
convolutional layers ``(n, channels, height, width)`` in torch's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import seeds, torchkit
from .common import PADDINGS, _check_inputs, _LayerShape

_MNIST_SHAPE = (1, 28, 28)

#: Bounds on the summed input weight of a hidden neuron after scaling. ``sum W < 1`` is required by the
#: mapping (the slope at threshold, ``alpha / (1 - sum W)``, must be positive); the lower bound keeps
#: that slope from becoming tiny, which would amplify rounding and noise.
SUM_W_MAX = 0.99
SUM_W_MIN = -10.0


@dataclass(frozen=True)
class Architecture:
    """A ReLU network: convolutions and max-pools, then dense layers, then the output.

    Attributes:
        input_shape: ``(channels, height, width)`` of one image; a dense-only net flattens it.
        conv: the convolutional part, e.g. ``(8, "P", 16, "P")``: an int is a convolution with that
            many channels (kernel ``kernel``) followed by a ReLU, ``"P"`` a 2x2 max-pool.
        dense: widths of the hidden dense layers, each followed by a ReLU.
        n_classes: width of the output layer (no ReLU: its values are the logits).
        kernel: side of the square convolution kernels.
        bn: ``None``, ``"before"`` (BN between the layer and its ReLU) or ``"after"`` (BN after the ReLU).
        dropout: dropout probability after each hidden ReLU (dropped at inference, so not mapped).
        padding: ``"same"`` or ``"valid"`` for every convolution, or one of them per convolution
            (LeNet-5 mixes them).
        input_range: ``(p, q)``: the network computes on ``z = p + (q - p) x`` for a pixel ``x`` in
            [0, 1], with zero padding in ``z`` (the authors' CIFAR nets see standardised pixels). The
            SNN codes ``x``; :func:`fold` folds the range into the first layer (an "imaginary BN").
        bn_negative: fraction of the channels of every batch norm whose scale starts at -1 instead
            of +1 (the first ones); with BN after the ReLU they make the following max-pool a min-pool.
    """

    input_shape: tuple[int, int, int]
    conv: tuple = ()
    dense: tuple[int, ...] = (600,)
    n_classes: int = 10
    kernel: int = 3
    bn: str | None = None
    dropout: float = 0.0
    padding: str | tuple[str, ...] = "same"
    input_range: tuple[float, float] = (0.0, 1.0)
    bn_negative: float = 0.0

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
        n_conv = sum(1 for c in self.conv if c != "P")
        pads = (self.padding,) * n_conv if isinstance(self.padding, str) else tuple(self.padding)
        if len(pads) != n_conv or any(m not in PADDINGS for m in pads):
            raise ValueError(f"padding must be 'same' or 'valid', or a tuple of them with one per convolution "
                             f"({n_conv} here), got {self.padding!r}")
        if "same" in pads and self.kernel % 2 != 1:
            raise ValueError(f"'same' padding needs an odd kernel, got {self.kernel}")
        if not (isinstance(self.kernel, int) and self.kernel >= 1):
            raise ValueError(f"kernel must be a positive int, got {self.kernel!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        p, q = (float(v) for v in self.input_range)
        if not (np.isfinite(p) and np.isfinite(q) and p < q):
            raise ValueError(f"input_range must be finite (p, q) with p < q, got {self.input_range!r}")
        if not 0.0 <= self.bn_negative <= 1.0:
            raise ValueError(f"bn_negative must be a fraction in [0, 1], got {self.bn_negative}")

    @property
    def paddings(self) -> tuple[str, ...]:
        """The padding mode of each convolution."""
        n_conv = sum(1 for c in self.conv if c != "P")
        return (self.padding,) * n_conv if isinstance(self.padding, str) else tuple(self.padding)


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


def _standardised(mean: float, sd: float) -> tuple[float, float]:
    """``input_range`` of pixels standardised with ``(v - mean) / sd`` for 8-bit values ``v``."""
    return (-mean / sd, (255.0 - mean) / sd)


#: The paper's networks (authors' code), for reference and for the ``paper`` scale (realistically
#: on a GPU). The CIFAR nets see standardised pixels (``input_range``, folded into the first layer).
VGG = {
    # MNIST / Fashion-MNIST "VGG16": BN after every ReLU.
    "mnist-vgg16": Architecture(
        _MNIST_SHAPE,
        conv=(64, 64, 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"),
        dense=(512, 512), bn="after"),
    # MNIST LeNet-5: c6 (5x5, same), pool, c16 (5x5, valid), pool, c120 (5x5, valid), d84, d10; BN
    # before every ReLU.
    "mnist-lenet5": Architecture(
        _MNIST_SHAPE, conv=(6, "P", 16, "P", 120), dense=(84,), kernel=5, bn="before",
        padding=("same", "valid", "valid")),
    # CIFAR-10 / CIFAR-100 "VGG15", trained 250 epochs with SGD 0.1 (Nesterov 0.9, halved every 20
    # epochs), weight decay 5e-4, dropout 0.3-0.5, augmentation; pixels standardised with the
    # authors' mean and sd (the authors then code [-3, 3] as the input window; we code the pixel).
    "cifar10-vgg15": Architecture(
        (3, 32, 32),
        conv=(64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"),
        dense=(512,), n_classes=10, bn="after", dropout=0.4, input_range=_standardised(120.707, 64.15)),
    "cifar100-vgg15": Architecture(
        (3, 32, 32),
        conv=(64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"),
        dense=(512,), n_classes=100, bn="after", dropout=0.4, input_range=_standardised(121.936, 68.389)),
}


class ReLUNet(nn.Module):
    """A float64 ReLU network built from an :class:`Architecture`.

    Takes flattened images ``(n, C*H*W)`` (as :mod:`lib.data` returns them) and returns logits.
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        c, h, w = arch.input_shape
        self.blocks = nn.ModuleList()
        pads = iter(arch.paddings)
        for item in arch.conv:
            if item == "P":
                self.blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
                continue
            pad = arch.kernel // 2 if next(pads) == "same" else 0
            conv = nn.Conv2d(c, item, arch.kernel, padding=pad)
            self.blocks.append(self._block(conv, nn.BatchNorm2d, item))
            c, h, w = item, h + 2 * pad - arch.kernel + 1, w + 2 * pad - arch.kernel + 1
            if h < 1 or w < 1:
                raise ValueError(f"the convolutions of {arch.conv} shrink the {arch.input_shape} input to nothing")
        n = c * h * w
        for width in arch.dense:
            self.blocks.append(self._block(nn.Linear(n, width), nn.BatchNorm1d, width))
            n = width
        self.out = nn.Linear(n, arch.n_classes)
        if arch.bn_negative > 0:
            with torch.no_grad():
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.weight[: int(round(arch.bn_negative * m.num_features))] = -1.0
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
        p, q = self.arch.input_range
        if (p, q) != (0.0, 1.0):
            x = p + (q - p) * x
        h = x.reshape(x.shape[0], *self.arch.input_shape) if self.arch.conv else x.reshape(x.shape[0], -1)
        for block in self.blocks:
            if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Linear):
                h = h.reshape(h.shape[0], -1)
            h = block(h)
        return self.out(h.reshape(h.shape[0], -1))


def train(arch: Architecture, x: np.ndarray, y: np.ndarray, training: Training, seed: int,
          desc: str = "training", device: str | None = None) -> tuple[ReLUNet, torchkit.History]:
    """Train a float64 ReLU network with Adam and cross-entropy (:func:`lib.torchkit.fit`).

    The learning rate decays continuously, ``lr * decay ** (step / decay_steps)``, as Keras'
    ``ExponentialDecay`` in the authors' code. With batch normalisation, a last minibatch of one
    image is skipped (BN cannot normalise it).

    Args:
        arch: the architecture.
        x: training images ``(n, d)`` with pixels in [0, 1].
        y: integer labels ``(n,)``.
        training: epochs, batch size, learning rate and its decay.
        seed: seeds the initialisation and dropout (:func:`lib.torchkit.seed_all`) and the
            minibatch order.
        desc: label of the progress bar.
        device: where to train (see :func:`lib.torchkit.device`; None: ``"auto"``). The model is
            returned on the CPU.

    Returns:
        ``(model, history)``: the model in evaluation mode, and per epoch the mean training loss
        (cross-entropy, nats; ``history.series("loss")``) and accuracy (``"accuracy"``).
    """
    x, y = _check_images(x, arch), np.asarray(y)
    if y.shape != (len(x),):
        raise ValueError(f"labels must have shape ({len(x)},), got {y.shape}")
    if training.n_train is not None:
        x, y = x[: training.n_train], y[: training.n_train]
    torchkit.seed_all(seed)
    model = ReLUNet(arch)
    history = torchkit.fit(
        model, F.cross_entropy, (x, y.astype(np.int64)), epochs=training.epochs, lr=training.lr,
        batch_size=training.batch_size, seed=seed,
        schedule=lambda step: training.decay ** (step / training.decay_steps),
        metrics={"accuracy": torchkit.accuracy}, device=device,
        min_batch=1 if arch.bn is None else 2, desc=desc)
    return model.cpu(), history


def logits(model: ReLUNet, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Logits of a trained :class:`ReLUNet` (evaluation mode, float64), ``(n, n_classes)``."""
    x = _check_images(x, model.arch)
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[s: s + batch])).numpy() for s in range(0, len(x), batch)]) \
            if len(x) else np.zeros((0, model.arch.n_classes))


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
        pool_sign: per channel, +1 to pool the maximum of the values, -1 the minimum (None: all +1).
        padding_mode: ``"same"`` or ``"valid"`` for a convolution.

    Raises:
        ValueError: if the kind is unknown, the weights or biases do not fit ``in_shape`` or are
            not finite, or the pool does not fit the layer.
    """

    kind: str
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    in_shape: tuple[int, ...]
    relu: bool = True
    pool: int = 1
    pool_sign: np.ndarray | None = field(default=None, repr=False)
    padding_mode: str = "same"

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        object.__setattr__(self, "weight", np.asarray(self.weight, dtype=np.float64))
        object.__setattr__(self, "bias", np.asarray(self.bias, dtype=np.float64))
        _check_layer(self, self.weight, self.bias, "weight", "bias")
        if self.pool_sign is None and self.kind == "conv":
            object.__setattr__(self, "pool_sign", np.ones(self.weight.shape[0]))

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


def _check_layer(layer, weight: np.ndarray, bias: np.ndarray, w_name: str, b_name: str) -> None:
    """Shape checks shared by :class:`Layer` and :class:`~lib.ttfs.alpha1.SpikingLayer`."""
    if layer.kind not in ("dense", "conv"):
        raise ValueError(f"a layer's kind must be 'dense' or 'conv', got {layer.kind!r}")
    if layer.padding_mode not in PADDINGS:
        raise ValueError(f"padding_mode must be 'same' or 'valid', got {layer.padding_mode!r}")
    n_in = int(np.prod(layer.in_shape))
    if layer.kind == "dense":
        if weight.ndim != 2 or weight.shape[1] != n_in:
            raise ValueError(f"a dense layer on inputs of shape {layer.in_shape} needs {w_name} (n_out, {n_in}), "
                             f"got {weight.shape}")
    else:
        if len(layer.in_shape) != 3 or weight.ndim != 4 or weight.shape[1] != layer.in_shape[0] \
                or weight.shape[2] != weight.shape[3]:
            raise ValueError(f"a convolution on inputs of shape {layer.in_shape} (C, H, W) needs {w_name} "
                             f"(C_out, {layer.in_shape[0] if layer.in_shape else 'C'}, k, k), got {weight.shape}")
        if layer.padding_mode == "same" and weight.shape[-1] % 2 != 1:
            raise ValueError(f"'same' padding needs an odd kernel, got {weight.shape[-1]}")
        if min(layer.out_shape[1:]) < 1:
            raise ValueError(f"a {weight.shape[-1]}x{weight.shape[-1]} 'valid' convolution does not fit inputs "
                             f"of shape {layer.in_shape}")
    if bias.shape != ((weight.shape[0],) if layer.kind == "dense" else layer.out_shape):
        raise ValueError(f"{b_name} must have shape {(weight.shape[0],) if layer.kind == 'dense' else layer.out_shape}"
                         f" (one per neuron; per position for a convolution), got {bias.shape}")
    if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
        raise ValueError(f"{w_name} and {b_name} must be finite")
    if not (isinstance(layer.pool, (int, np.integer)) and layer.pool >= 1):
        raise ValueError(f"pool must be an int >= 1, got {layer.pool!r}")
    if layer.pool > 1 and layer.kind != "conv":
        raise ValueError("only a convolution can be followed by a pool")
    if layer.pool_sign is not None and (np.shape(layer.pool_sign) != (weight.shape[0],)
                                        or not np.all(np.abs(layer.pool_sign) == 1)):
        raise ValueError(f"pool_sign must hold +1 or -1 per output channel ({weight.shape[0]}), "
                         f"got shape {np.shape(layer.pool_sign)}")


def _check_chain(layers: tuple, what: str) -> None:
    """Consecutive layers must fit: each takes the (pooled) output of the one before."""
    for n in range(1, len(layers)):
        prev, cur = layers[n - 1], layers[n]
        pooled = prev.out_shape if prev.pool == 1 else (prev.out_shape[0],) + tuple(
            s // prev.pool for s in prev.out_shape[1:])
        fits = tuple(cur.in_shape) == tuple(pooled) if cur.kind == "conv" else \
            int(np.prod(cur.in_shape)) == int(np.prod(pooled))
        if not fits:
            raise ValueError(f"{what}: layer {n + 1} expects inputs of shape {tuple(cur.in_shape)}, but layer {n} "
                             f"gives {tuple(pooled)}")


@dataclass(frozen=True)
class Network:
    """A folded ReLU network: hidden layers with ReLU, then an output layer without.

    Raises:
        ValueError: if there is no layer, a hidden layer has ``relu=False``, the output layer has
            ``relu=True`` or is not dense, or consecutive layers do not fit.
    """

    layers: tuple[Layer, ...]

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a Network needs at least one layer (the output layer)")
        for n, layer in enumerate(self.layers[:-1]):
            if not layer.relu:
                raise ValueError(f"hidden layer {n + 1} has relu=False: every layer but the last must be followed "
                                 f"by a ReLU (the mapping codes ReLU values; merge a linear layer into the next)")
        out = self.layers[-1]
        if out.relu:
            raise ValueError("the output layer must have relu=False: its values are the logits, read from the "
                             "output potentials without a threshold")
        if out.kind != "dense" or out.pool != 1:
            raise ValueError("the output layer must be a dense layer without pool")
        _check_chain(self.layers, "Network")

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


def _check_mapping_args(net: Network, x_max, what: str) -> None:
    """Checks shared by the α1 and B1 mappings: a folded network and one ``X_n`` per hidden layer."""
    if not isinstance(net, Network):
        raise TypeError(f"{what} expects a lib.ttfs.Network, got {type(net).__name__}")
    if len(x_max) != len(net.hidden):
        raise ValueError(f"need one X_n per hidden layer ({len(net.hidden)}), got {len(x_max)}")


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
      kernel); a max-pool between them pools the minimum in channels where ``kappa < 0``;
    - the input range ``z = p + (q - p) x`` (``Architecture.input_range``) is folded into the
      first layer the same way, as a batch norm with ``kappa = q - p`` and shift ``p`` (the authors'
      "imaginary BN"): ``W' = (q - p) W``, ``b' = b + p sum W`` over the non-padded inputs.

    A 'valid' convolution keeps one bias per channel (no border). Dropout is dropped. Returns the
    folded network; it computes the same logits as ``model``.
    """
    if not isinstance(model, ReLUNet):
        raise TypeError(f"fold expects a ReLUNet, got {type(model).__name__}")
    arch = model.arch
    layers: list[dict] = []
    carry = None  # (kappa, shift) of a BN after the previous ReLU, to fold into the next layer
    p, q = arch.input_range
    if (p, q) != (0.0, 1.0):  # the input range: an affine map before the first layer
        carry = (np.full(arch.input_shape[0], q - p), np.full(arch.input_shape[0], float(p)))
    shape: tuple[int, ...] = arch.input_shape if arch.conv else (int(np.prod(arch.input_shape)),)
    pads = iter(arch.paddings)

    def absorb(w: np.ndarray, b: np.ndarray, kind: str, in_shape: tuple, pad: int = 0) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
        """Fold the pending affine map ``carry`` into a layer's weight and bias."""
        nonlocal carry
        if kind == "conv":
            out_hw = tuple(s + 2 * pad - w.shape[-1] + 1 for s in in_shape[1:])
            b = np.broadcast_to(b[:, None, None], (w.shape[0],) + out_hw).copy()
        if carry is None:
            return w, b
        kappa, shift = carry
        carry = None
        if kind == "conv":
            w2 = w * kappa[None, :, None, None]
            sh = torch.from_numpy(np.broadcast_to(shift[:, None, None], in_shape).copy())[None]
            b = b + F.conv2d(sh, torch.from_numpy(w), padding=pad)[0].numpy()
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
            mode = next(pads) if kind == "conv" else "same"
            w, b = absorb(w, b, kind, shape, w.shape[-1] // 2 if mode == "same" else 0)
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
                               pool_sign=np.ones(out_ch) if kind == "conv" else None, padding_mode=mode))
            shape = (out_ch,) + b.shape[1:] if kind == "conv" else (out_ch,)
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
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    h = torch.from_numpy(np.minimum(x - rng.normal(0.0, sigma, x.shape), 1.0)).reshape(-1, *net.input_shape)
    for layer in net.layers:
        h = _affine(layer, h)
        if not layer.relu:
            break
        h = torch.relu(h) - torch.from_numpy(rng.normal(0.0, sigma, tuple(h.shape)))
        h = _pool_values(layer, h)
    return h.numpy().argmax(1)


def _check_images(x: np.ndarray, arch: Architecture) -> np.ndarray:
    return _check_inputs(x, arch.input_shape)


# ----------------------------------------------------------------------------------------------
# Initialisation and parameters of a ReLUNet
# ----------------------------------------------------------------------------------------------


def he_init(model: nn.Module, seed: int) -> nn.Module:
    """He initialisation (the authors' choice for deep nets): ``W ~ N(0, 2 / fan_in)``, zero biases.

    torch's default for ``nn.Linear`` and ``nn.Conv2d`` has a third of this variance, under which
    the backward gain of a deep ReLU net shrinks geometrically with depth. Draws from a generator
    seeded ``seed``; every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` is reset in place, in
    the order of ``model.modules()``; returns ``model``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"he_init expects a torch module (e.g. a ReLUNet), got {type(model).__name__}")
    gen = seeds.torch_generator(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64)
                               * np.sqrt(2.0 / fan_in))
                m.bias.zero_()
    return model


def _dense_layers(model: ReLUNet) -> list[nn.Linear]:
    return [b[0] for b in model.blocks] + [model.out]


def relu_from_network(arch: Architecture, net: Network) -> ReLUNet:
    """A dense, bias-per-neuron :class:`ReLUNet` holding the parameters of ``net``.

    The inverse of :func:`fold` for dense networks without batch norm; ``arch`` must be dense and
    have as many layers (hidden and readout) as ``net``.
    """
    model = ReLUNet(arch)
    linears = _dense_layers(model)
    if arch.conv or len(linears) != len(net.layers):
        raise ValueError("relu_from_network needs a dense architecture with the network's layer count")
    with torch.no_grad():
        for lin, layer in zip(linears, net.layers, strict=True):
            lin.weight.copy_(torch.from_numpy(layer.weight))
            lin.bias.copy_(torch.from_numpy(layer.bias))
    return model.eval()


def relu_params(model: ReLUNet) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(W, b)`` of every layer of a dense :class:`ReLUNet`, readout last (copies, on the CPU).

    The same layout as :meth:`lib.ttfs.b1.Alpha1Net.equivalent_relu`, so the two can be compared
    with :func:`flat_params`.
    """
    if not isinstance(model, ReLUNet) or model.arch.conv:
        raise ValueError("relu_params needs a dense ReLUNet")
    return [(lin.weight.detach().cpu().numpy().copy(), lin.bias.detach().cpu().numpy().copy())
            for lin in _dense_layers(model)]


def flat_params(params: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``[(W, b), ...]`` (:func:`relu_params`) as one vector: every ``W`` then its ``b``, layer by layer."""
    return np.concatenate([np.concatenate([np.ravel(w), np.ravel(b)]) for w, b in params])


def max_param_diff(a: nn.Module, b: nn.Module) -> float:
    """Largest absolute difference between parameters of the same name in ``a`` and ``b``."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    if set(pa) != set(pb):
        raise ValueError(f"the models have different parameters: {sorted(set(pa) ^ set(pb))[:4]}")
    return max(float((pa[k].detach().cpu() - pb[k].detach().cpu()).abs().max()) for k in pa)


def without_biases(net: Network) -> Network:
    """``net`` with every bias set to zero (the control of the identity mapping: thresholds
    ``theta = B_n`` without the ReLU biases)."""
    return Network(tuple(replace(L, bias=np.zeros_like(L.bias)) for L in net.layers))
