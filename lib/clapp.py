"""CLAPP: contrastive, local and predictive plasticity in a patch-grid encoder.

The science of the chapter ``clapp``: Illing, Ventura, Bellec & Gerstner, "Local plasticity rules
can learn deep representations using self-supervised contrastive predictions", *Advances in
Neural Information Processing Systems 34* (NeurIPS 2021), arXiv:2010.08262. The model follows
the authors' code (``EPFL-LCN/pub-illing2021-neurips``, ``vision/CLAPPVision``), scaled down to
28 x 28 images; where this module departs from it, the docstring says so.

**Patch grid.** An image is cut into overlapping square patches (:func:`patchify`; 8 x 8 with
stride 4 on 28 x 28 images gives a 6 x 6 grid); each patch is encoded independently, and the
grid's rows play the role of time (a sequence of fixations).

**Encoder.** :class:`Encoder` is a stack of *gradient-isolated* modules (:class:`Block`): 3 x 3
convolutions (padding 1) with ReLU, and 2 x 2 max-pooling where the layer list says ``"M"``.
Each module receives the previous module's output *detached*, so that no gradient crosses from
one module to the one below. The representation of module ``m`` at grid cell ``(r, g)`` is the
module's output averaged over the positions inside the patch, ``h_m`` of shape ``(B, C_m, G, G)``.

**CLAPP loss** (:func:`clapp_loss`). For prediction steps ``k = 1..K`` at row offset
``d = k + 1`` (the adjacent row overlaps and would leak pixels), context ``c = h[:, :, :-d]``,
future ``z = h[:, :, d:]`` and a ``C x C`` matrix ``W_k``, the score is ``u = c . (W_k z)`` per
image and cell. Each image is independently a *positive* ("no saccade": the true future) or a
*negative* ("saccade": the same cell of a partner image drawn with replacement) with probability
one half; the hinge losses are ``max(0, 1 - u)`` for positives and ``max(0, 1 + u)`` for
negatives, averaged over cells, then over the positive images and over the negative images, and
summed; the module loss averages over ``k``. As in the authors' ``ContrastiveLoss.forward``
(``--sample_negs_locally_same_everywhere``), the positive/negative choice is drawn once per
forward pass and holds for every ``k``, while a negative's partner image is redrawn for every
``k``. The loss is asymmetric: a *prediction* term
``L(z, sg(c); W_k)`` and a *retrodiction* term ``L(sg(z), c; W'_k)`` with its own matrices, its
own positive/negative choice and its own partners (``sg``: stop-gradient), so that no matrix is
used transposed (no weight transport).

**Variants.** ``"clapp-s"`` (:func:`clapp_s_loss`): one symmetric ``W_k`` without stop-gradient,
positives *and* ``n_negatives`` negatives at every step, each drawn from the future cells (rows
``d..G-1``, every column and image of the batch) as the authors' ``sample_negative_samples``
draws them from ``W_k z[:, :, k+skip:]``. ``"hinge-cpc"``: the authors' Hinge-loss CPC
(``scripts/vision_traineval_HingeLossCPC.sh``, "the end-to-end version of CLAPP"): the CLAPP loss
(asymmetric ``W``, a positive *or* a negative per image) at the last module only, trained end to
end (``--model_splits 1``, no detach). ``"clapp-s-e2e"``: the ``clapp-s`` loss at the last module,
end to end (a second end-to-end comparison, not the authors' Hinge-loss CPC).

**Local rule** (:func:`local_gradients`). The gradient of the CLAPP loss of a single-convolution
module is a three-factor rule: ``gamma = dloss/du`` (``-1`` or ``0`` for a positive, ``0`` or
``+1`` for a negative) is a scalar per sample shared by the whole layer; the weight change of
synapse ``i -> j`` is ``gamma`` times the dendritic prediction ``(W_k^T c)_j`` times the
postsynaptic factor ``rho'(a_j)`` times the presynaptic activity ``x_i``, plus the same for the
retrodiction term with ``(W'_k z)_j`` and the context's activities. It is computed here without
autograd and checked against it in the chapter and in the tests.

**Probe.** :func:`features` averages each module's representation over the grid;
:func:`linear_probe` standardises the features and fits a multinomial logistic regression
(scikit-learn) on a probe split, scored on a separate test split.

Models only: no presets, no plotting; numpy, torch, scikit-learn and :mod:`lib.torchkit`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lib import seeds, torchkit

#: The training methods of :class:`CLAPPNet`.
METHODS: dict[str, str] = {
    "clapp": "CLAPP (asymmetric W, per-image positive or negative)",
    "clapp-s": "CLAPP-s (symmetric W, positive and negatives every step)",
    "hinge-cpc": "hinge-loss CPC (the CLAPP loss at the last layer, end to end)",
    "clapp-s-e2e": "the CLAPP-s loss at the last layer, end to end",
}
#: The methods trained end to end (one loss at the last module, no gradient isolation).
END_TO_END: tuple[str, ...] = ("hinge-cpc", "clapp-s-e2e")
#: The methods with the CLAPP loss (asymmetric prediction and retrodiction matrices).
CLAPP_LOSS: tuple[str, ...] = ("clapp", "hinge-cpc")
#: A scaled architecture of three gradient-isolated modules for 28 x 28 images (16, 32, 64
#: channels): the default, the book's until issue 29 and benchmarks/clapp.py's; the book's
#: preset now trains 8, 16, 16 channels (lib.protocols.clapp).
LAYERS_WIDE: tuple[tuple, ...] = ((16,), (32, "M"), (64, "M"))
#: The paper's VGG-6 with six gradient-isolated modules (STL-10, 64 x 64 grey crops).
LAYERS_VGG6: tuple[tuple, ...] = ((128,), (256, "M"), (256,), (512, "M"), (1024, "M"), (1024, "M"))
#: Patch side and stride of the book's grid (pixels): 28 x 28 images give a 6 x 6 grid.
PATCH_BOOK, STRIDE_BOOK = 8, 4
#: Negatives per context of ``clapp-s`` and ``clapp-s-e2e`` (the original's 16).
N_NEGATIVES = 16
#: The hinge margin of the scores (dimensionless).
MARGIN = 1.0


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def _check_int(x, name: str, low: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < low:
        raise ValueError(f"{name} must be an int >= {low}, got {x!r}")
    return int(x)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return method


def _check_images(images, what: str = "images", min_n: int = 1) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{what} must be a torch tensor or numpy array, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{what} must have shape (n, channels, height, width), got {tuple(images.shape)}")
    if images.shape[0] < min_n:
        raise ValueError(f"{what} must hold at least {min_n} image{'s' * (min_n > 1)}, got "
                         f"{images.shape[0]}")
    if not images.is_floating_point():
        raise ValueError(f"{what} must be floating point, got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{what} contain NaN or infinite values")
    return images


def _check_h(h: torch.Tensor, K: int) -> None:
    if not isinstance(h, torch.Tensor) or h.ndim != 4:
        raise ValueError("h must be a tensor of shape (batch, channels, rows, columns), got "
                         f"{getattr(h, 'shape', type(h).__name__)}")
    if h.shape[2] < K + 2:
        raise ValueError(f"{h.shape[2]} grid rows are too few for K = {K} prediction steps "
                         f"(offsets 2..{K + 1} need at least {K + 2} rows)")
    if h.shape[0] < 2:
        raise ValueError(f"a batch of {h.shape[0]} image cannot hold negatives; use at least 2")


# ----------------------------------------------------------------------------------------------
# Patches and encoder
# ----------------------------------------------------------------------------------------------


def grid_size(size: int, patch: int, stride: int) -> int:
    """The number of patches along an image side of ``size`` pixels.

    Args:
        size: image side (pixels).
        patch: patch side (pixels), ``<= size``.
        stride: step between patches (pixels), ``>= 1``.

    Returns:
        ``(size - patch) // stride + 1``.
    """
    size, patch, stride = _check_int(size, "size"), _check_int(patch, "patch"), _check_int(stride, "stride")
    if patch > size:
        raise ValueError(f"patch {patch} is larger than the image side {size}")
    return (size - patch) // stride + 1


def patchify(images, patch: int = PATCH_BOOK, stride: int = STRIDE_BOOK) -> torch.Tensor:
    """Cut images into a grid of overlapping square patches.

    Args:
        images: ``(B, C, H, W)`` tensor or array with ``H == W``.
        patch: patch side (pixels).
        stride: step between patches (pixels).

    Returns:
        ``(B * G * G, C, patch, patch)``, the patches row by row (``G`` from :func:`grid_size`):
        patch ``(b, r, g)`` is row ``b * G * G + r * G + g``.
    """
    x = _check_images(images)
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"images must be square, got {x.shape[2]} x {x.shape[3]}")
    G = grid_size(x.shape[2], patch, stride)
    p = x.unfold(2, patch, stride).unfold(3, patch, stride)  # (B, C, G, G, patch, patch)
    p = p[:, :, :G, :G]
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1], patch, patch)


def _check_layers(layers) -> tuple[tuple, ...]:
    if not isinstance(layers, (tuple, list)) or not layers:
        raise ValueError(f"layers must be a non-empty sequence of modules, got {layers!r}")
    out = []
    for m in layers:
        if not isinstance(m, (tuple, list)) or not m or not isinstance(m[0], (int, np.integer)):
            raise ValueError(f"each module must be a sequence starting with a channel count, got {m!r}")
        for e in m:
            if e != "M" and (isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1):
                raise ValueError(f"module entries are positive channel counts or 'M', got {e!r} in {m!r}")
        out.append(tuple(m))
    return tuple(out)


class Block(torch.nn.Module):
    """One gradient-isolated module: 3 x 3 convolutions (padding 1) with ReLU, and max-pools.

    Args:
        in_channels: channels of the input.
        spec: e.g. ``(32, "M")``: a convolution to 32 channels with ReLU, then a 2 x 2 max-pool.
    """

    def __init__(self, in_channels: int, spec: Sequence):
        super().__init__()
        self.spec = tuple(spec)
        layers, c = [], in_channels
        for e in self.spec:
            if e == "M":
                layers.append(torch.nn.MaxPool2d(2))
            else:
                layers += [torch.nn.Conv2d(c, int(e), 3, padding=1), torch.nn.ReLU()]
                c = int(e)
        self.net = torch.nn.Sequential(*layers)
        self.out_channels = c

    @property
    def convs(self) -> list[torch.nn.Conv2d]:
        """The convolutions of the module."""
        return [m for m in self.net if isinstance(m, torch.nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output ``(N, C, h, w)`` for patches ``x`` of shape ``(N, C_in, h0, w0)``."""
        return self.net(x)


class Encoder(torch.nn.Module):
    """A patch-grid encoder of gradient-isolated modules.

    Args:
        layers: one entry per module, e.g. :data:`LAYERS_WIDE` = ``((16,), (32, "M"), (64, "M"))``.
        in_channels: image channels.
        patch: patch side (pixels).
        stride: step between patches (pixels).
    """

    def __init__(self, layers=LAYERS_WIDE, in_channels: int = 1, patch: int = PATCH_BOOK,
                 stride: int = STRIDE_BOOK):
        super().__init__()
        self.layers = _check_layers(layers)
        self.patch, self.stride = _check_int(patch, "patch"), _check_int(stride, "stride")
        blocks, c = [], _check_int(in_channels, "in_channels")
        for spec in self.layers:
            blocks.append(Block(c, spec))
            c = blocks[-1].out_channels
        self.blocks = torch.nn.ModuleList(blocks)

    @property
    def channels(self) -> tuple[int, ...]:
        """The output channels of each module."""
        return tuple(b.out_channels for b in self.blocks)

    def forward(self, images: torch.Tensor, detach: bool = True, inputs: bool = False):
        """The representations of every module.

        Args:
            images: ``(B, C, H, W)``.
            detach: pass each module's output on detached (gradient isolation, CLAPP); False for
                end-to-end training.
            inputs: also return each module's input patches.

        Returns:
            A list of ``h_m`` of shape ``(B, C_m, G, G)``, the module outputs averaged over the
            positions of each patch; with ``inputs``, the pair (that list, the list of the inputs
            ``(B * G * G, C, h, w)`` each module received).
        """
        # channels-last memory: the CPU convolutions (oneDNN) run about twice as fast in it and
        # the max-pools about five times. Every module's input is converted: a 1-channel input
        # is channels-last and contiguous at once, so the first module's output comes back in
        # the contiguous format (issue 29: module 2 then ran its convolution and max-pool there)
        x = patchify(images, self.patch, self.stride)
        B, G = images.shape[0], grid_size(images.shape[2], self.patch, self.stride)
        hs, xs = [], []
        for block in self.blocks:
            x = x.contiguous(memory_format=torch.channels_last)
            xs.append(x)
            z = block(x)
            # the mean over in-patch positions, taken in the (N, h, w, C) view of channels-last
            # memory: its backward stays channels-last (z.mean((2, 3)) made the max-pool's
            # backward copy its gradient between formats, a fifth of the step)
            n, c = z.shape[0], z.shape[1]
            h = z.permute(0, 2, 3, 1).reshape(n, -1, c).mean(1)
            hs.append(h.reshape(B, G, G, c).permute(0, 3, 1, 2))
            x = z.detach() if detach else z
        return (hs, xs) if inputs else hs


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClappDraw:
    """The random choices of one CLAPP loss term (prediction or retrodiction) for one batch.

    As in the authors' ``ContrastiveLoss.forward``: the positive/negative choice
    (``which_update``) is drawn once per forward pass and holds for every prediction step; the
    partner (``sample_negative_samples_locally``, the same partner at every cell) is redrawn for
    every step ``k``.

    Attributes:
        positive: ``(B,)`` bool, True where the image is a positive ("no saccade") sample.
        partner: ``(K, B)`` int64, per step, the image whose future a negative sample sees
            (drawn with replacement, so occasionally the image itself).
    """

    positive: torch.Tensor
    partner: torch.Tensor


def draw_clapp(batch: int, gen: torch.Generator, p_positive: float = 0.5, K: int = 1) -> ClappDraw:
    """Draw the per-image positive/negative choice and the per-step partners of one CLAPP term.

    Args:
        batch: images in the batch (>= 2).
        gen: the torch generator (CPU) the draws come from.
        p_positive: probability that an image is a positive sample, in [0, 1].
        K: prediction steps; each gets its own partners.

    Returns:
        A :class:`ClappDraw` on the CPU: the choice ``(batch,)`` first, then the partners
        ``(K, batch)``.
    """
    batch = _check_int(batch, "batch", 2)
    K = _check_int(K, "K")
    if not (isinstance(p_positive, (int, float)) and 0.0 <= p_positive <= 1.0):
        raise ValueError(f"p_positive must be a probability in [0, 1], got {p_positive!r}")
    pos = torch.rand(batch, generator=gen) < p_positive
    partner = torch.randint(batch, (K, batch), generator=gen)
    return ClappDraw(pos, partner)


def scores(c: torch.Tensor, W: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The bilinear scores ``u = c . (W z)`` per image and cell.

    Args:
        c: contexts ``(B, C, R, G)``.
        W: ``(C, C)``.
        z: futures ``(B, C, R, G)``.

    Returns:
        ``(B, R, G)``.
    """
    if c.ndim != 4 or z.shape != c.shape or W.shape != (c.shape[1], c.shape[1]):
        raise ValueError(f"scores needs contexts and futures of one shape (B, C, R, G) and W "
                         f"(C, C); got c {tuple(c.shape)}, W {tuple(W.shape)}, z {tuple(z.shape)}")
    return torch.einsum("bcrg,cd,bdrg->brg", c, W, z)


def _split_mean(per_image: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """mean over the positive images + mean over the negative images (an empty set adds 0)."""
    pos = positive.to(per_image.dtype)
    n_pos, n_neg = pos.sum(), (1 - pos).sum()
    return (per_image * pos).sum() / n_pos.clamp(min=1) + (per_image * (1 - pos)).sum() / n_neg.clamp(min=1)


def _clapp_term(c: torch.Tensor, z: torch.Tensor, W: torch.Tensor, draw: ClappDraw, k: int):
    dev = c.device
    pos, partner = draw.positive.to(dev), draw.partner[k].to(dev)
    shown = torch.where(pos[:, None, None, None], z, z[partner])
    u = scores(c, W, shown)
    sign = torch.where(pos, -1.0, 1.0).to(u.dtype)[:, None, None]
    per_image = F.relu(MARGIN + sign * u).mean((1, 2))
    return _split_mean(per_image, pos), u, pos


def clapp_loss(h: torch.Tensor, W_pred: torch.Tensor, W_retro: torch.Tensor,
               draws: Sequence[tuple[ClappDraw, ClappDraw]] | tuple[ClappDraw, ClappDraw]):
    """The CLAPP loss of one module: asymmetric prediction and retrodiction hinge terms.

    Args:
        h: the module's representation ``(B, C, G, G)``.
        W_pred: prediction matrices ``(K, C, C)``; step ``k`` (0-based) predicts row offset
            ``k + 2``.
        W_retro: retrodiction matrices ``(K, C, C)``.
        draws: the pair (prediction draw, retrodiction draw) of :func:`draw_clapp` with ``K``
            steps: the positive/negative choice holds for all ``K`` steps, the partners are
            those of each step (as the authors draw them).

    Returns:
        ``(loss, stats)``: the scalar loss ``(1/K) sum_k [L_pred,k + L_retro,k]`` and a dict with
        ``"u_pos"`` and ``"u_neg"``, the mean prediction score of the positive and the negative
        samples (floats, NaN where a set is empty).
    """
    K = _check_weights(W_pred, W_retro, h)
    d_pred, d_retro = _check_draws(draws, h.shape[0], K)
    loss = h.new_zeros(())
    up, un = [], []
    for k in range(K):
        d = k + 2
        c, z = h[:, :, :-d], h[:, :, d:]
        l_pred, u, pos = _clapp_term(c.detach(), z, W_pred[k], d_pred, k)
        l_retro, _, _ = _clapp_term(c, z.detach(), W_retro[k], d_retro, k)
        loss = loss + (l_pred + l_retro) / K
        up.append(u[pos].detach().flatten())
        un.append(u[~pos].detach().flatten())
    return loss, _stats(torch.cat(up), torch.cat(un))


def _stats(up: torch.Tensor, un: torch.Tensor) -> dict[str, float]:
    nan = float("nan")
    return {"u_pos": float(up.mean()) if up.numel() else nan, "u_neg": float(un.mean()) if un.numel() else nan}


def _check_weights(W_pred, W_retro, h) -> int:
    _check_h(h, 1)
    C = h.shape[1]
    for name, W in (("W_pred", W_pred), ("W_retro", W_retro)):
        if W is None:
            continue
        if not isinstance(W, torch.Tensor) or W.ndim != 3 or W.shape[1:] != (C, C):
            raise ValueError(f"{name} must have shape (K, {C}, {C}) for {C} channels, got "
                             f"{tuple(getattr(W, 'shape', ()))}")
    K = W_pred.shape[0]
    if W_retro is not None and W_retro.shape[0] != K:
        raise ValueError(f"W_pred and W_retro must have the same K, got {K} and {W_retro.shape[0]}")
    _check_h(h, K)
    return K


def _check_draws(draws, batch: int, K: int):
    if not (isinstance(draws, (tuple, list)) and len(draws) == 2
            and all(isinstance(d, ClappDraw) for d in draws)):
        raise ValueError("draws must be a pair (prediction, retrodiction) of ClappDraw")
    for d in draws:
        if d.positive.shape != (batch,) or d.partner.ndim != 2 or d.partner.shape[1] != batch:
            raise ValueError(f"draws are for a batch of {d.positive.shape[0]} (partners "
                             f"{tuple(d.partner.shape)}), the representation has {batch}")
        if d.partner.shape[0] != K:
            raise ValueError(f"draws hold partners for {d.partner.shape[0]} steps, the loss has "
                             f"K = {K}: draw them with draw_clapp(..., K={K})")
    return draws


def draw_negatives(h_shape: Sequence[int], K: int, gen: torch.Generator,
                   n_negatives: int = N_NEGATIVES) -> list[torch.Tensor]:
    """Negatives of ``clapp-s`` and ``clapp-s-e2e``: for each step, context and negative, a cell.

    As the authors' ``ContrastiveLoss.sample_negative_samples``: the negatives of step ``k``
    (row offset ``d = k + 2``) are drawn uniformly with replacement from the *future* cells of
    that step, rows ``d .. G-1`` of every column and every image of the batch (their index
    range ``y * x * b`` over ``W_k z[:, :, k+skip:]``), not from all ``G`` rows.

    Args:
        h_shape: the representation's shape ``(B, C, G, G)``.
        K: prediction steps.
        gen: the torch generator (CPU).
        n_negatives: negatives per context (>= 1).

    Returns:
        For each step ``k``, an int64 tensor ``(B, G - k - 2, G, n_negatives)`` of indices into the
        ``B * (G - k - 2) * G`` future cells ``h[:, :, k + 2:]`` of the batch, flattened in the
        order (image, row, column).
    """
    B, _, G, G2 = (int(s) for s in h_shape)
    n_negatives, K = _check_int(n_negatives, "n_negatives"), _check_int(K, "K")
    return [torch.randint(B * (G - k - 2) * G2, (B, G - k - 2, G2, n_negatives), generator=gen)
            for k in range(K)]


def clapp_s_loss(h: torch.Tensor, W: torch.Tensor, negatives: Sequence[torch.Tensor]):
    """The CLAPP-s loss: symmetric ``W``, positives and negatives (future cells) every step.

    Args:
        h: the representation ``(B, C, G, G)``.
        W: ``(K, C, C)``, used for prediction and (transposed, implicitly) retrodiction.
        negatives: the indices of :func:`draw_negatives`.

    Returns:
        ``(loss, stats)``: ``(1/K) sum_k [mean max(0, 1 - u+) + mean max(0, 1 + u-)]`` and the
        mean scores ``"u_pos"``, ``"u_neg"``.
    """
    K = _check_weights(W, None, h)
    if len(negatives) != K:
        raise ValueError(f"negatives must hold one index tensor per step (K = {K}), got {len(negatives)}")
    B, C, G, G2 = h.shape
    loss = h.new_zeros(())
    up, un = [], []
    for k in range(K):
        d = k + 2
        c, z = h[:, :, :-d], h[:, :, d:]
        idx = negatives[k].to(h.device)
        if idx.shape[:3] != (B, G - d, G2):
            raise ValueError(f"negatives[{k}] has shape {tuple(idx.shape)}, expected ({B}, {G - d}, {G2}, n)")
        # the scores of every context against every future cell are one (M, C) x (C, M)
        # product (M = B * (G - d) * G contexts and as many future cells); the negatives are
        # picked from it, cheaper than gathering (M, n, C) future vectors (issue 29)
        pool = z.permute(0, 2, 3, 1).reshape(-1, C)  # the future cells, (M, C)
        pred = torch.einsum("bcrg,cd->brgd", c, W[k])  # c^T W, (B, R, G, C)
        u_pos = (pred * z.permute(0, 2, 3, 1)).sum(-1)
        u_all = pred.reshape(-1, C) @ pool.T  # (M, M)
        u_neg = u_all.gather(1, idx.reshape(len(u_all), -1)).reshape(idx.shape)
        loss = loss + (F.relu(MARGIN - u_pos).mean() + F.relu(MARGIN + u_neg).mean()) / K
        up.append(u_pos.detach().flatten())
        un.append(u_neg.detach().flatten())
    return loss, _stats(torch.cat(up), torch.cat(un))


# ----------------------------------------------------------------------------------------------
# The explicit three-factor rule
# ----------------------------------------------------------------------------------------------


def _third_factor(c, z, W, draw, k):
    """gamma, the shown futures and the per-sample weights of one CLAPP term (no autograd)."""
    pos, partner = draw.positive.to(c.device), draw.partner[k].to(c.device)
    shown = torch.where(pos[:, None, None, None], z, z[partner])
    u = scores(c, W, shown)
    # dloss/du: -1 where a positive is inside the margin, +1 where a negative is
    gamma = torch.where(pos[:, None, None], -(u < MARGIN).to(u.dtype), (u > -MARGIN).to(u.dtype))
    n_pos = pos.sum().clamp(min=1)
    n_neg = (~pos).sum().clamp(min=1)
    n_set = torch.where(pos, n_pos, n_neg).to(u.dtype)
    weight = 1.0 / (n_set[:, None, None] * u.shape[1] * u.shape[2])
    return gamma * weight, shown, pos, partner


def local_gradients(block: Block, x: torch.Tensor, W_pred: torch.Tensor, W_retro: torch.Tensor,
                    draws: tuple[ClappDraw, ClappDraw], grid: int,
                    omit: str | None = None) -> dict[str, torch.Tensor]:
    """The gradient of the CLAPP loss of one module by the explicit local rule, without autograd.

    For the prediction term of step ``k`` and each sample (image ``b``, cell), the third factor
    ``gamma = dloss/du`` (times the averaging weight of the sample) is a scalar shared by the
    layer; the matrix change is ``gamma c z^T`` and the feedback to the shown future is
    ``gamma W_k^T c``, the dendritic prediction. For the retrodiction term the feedback to the
    context is ``gamma' W'_k z``. With ``G_j = dL/dh_j`` the sum of these feedbacks, the synapse
    ``i -> j`` of the convolution changes by ``sum G_j rho'(a_j) x_i`` over samples and
    in-patch positions (the pooled position's ``rho'`` where the module max-pools), divided by the
    number of positions the representation averages: postsynaptic factor times presynaptic
    activity times the broadcast error.

    Args:
        block: a module with a single convolution (and optionally max-pools after it).
        x: the module's input patches ``(B * grid * grid, C_in, h, w)``.
        W_pred, W_retro: ``(K, C, C)``.
        draws: the (prediction, retrodiction) :class:`ClappDraw` pair of :func:`clapp_loss`.
        grid: the grid side ``G``.
        omit: ``None`` (the rule), or a deliberately broken rule for the chapter's control:
            ``"partner"`` drops the feedback to a negative sample's partner image (the shown
            future of another image), ``"pool"`` ignores the max-pool's routing (every
            position gets its ``rho'``).

    Returns:
        ``{"W_pred", "W_retro", "weight", "bias"}``: the gradients of :func:`clapp_loss` with
        respect to the matrices and the convolution's weight and bias.
    """
    convs = block.convs
    c_out = block.out_channels
    if len(convs) != 1 or block.spec not in ((c_out,), (c_out, "M")):
        raise ValueError("the explicit rule is written for a module with a single convolution "
                         f"and at most one max-pool, (C,) or (C, 'M'), got {block.spec!r}")
    conv = convs[0]
    grid = _check_int(grid, "grid", 3)
    if omit not in (None, "partner", "pool"):
        raise ValueError(f"omit must be None, 'partner' or 'pool', got {omit!r}")
    if x.ndim != 4 or x.shape[0] % (grid * grid):
        raise ValueError(f"x must be (B * {grid}^2, channels, h, w), got {tuple(x.shape)}")
    with torch.no_grad():
        a = F.conv2d(x, conv.weight, conv.bias, padding=1)           # pre-activations
        y = F.relu(a)
        post = (a > 0).to(a.dtype)                                  # rho'(a)
        if len(block.spec) == 2:                                    # max-pool: route to argmax
            P = y.shape[-1]
            y, ind = F.max_pool2d(y, 2, return_indices=True)
            mask = torch.zeros(y.shape[0], y.shape[1], P * P, dtype=a.dtype, device=a.device)
            mask.scatter_(2, ind.flatten(2), 1.0)
            if omit != "pool":
                post = post * mask.reshape(post.shape)
        n_pos = y.shape[2] * y.shape[3]
        B, C = x.shape[0] // grid ** 2, conv.out_channels
        h = y.mean((2, 3)).reshape(B, grid, grid, C).permute(0, 3, 1, 2)
        K = _check_weights(W_pred, W_retro, h)
        d_pred, d_retro = _check_draws(draws, B, K)
        G = torch.zeros_like(h)
        gW_pred, gW_retro = torch.zeros_like(W_pred), torch.zeros_like(W_retro)
        for k in range(K):
            d = k + 2
            c, z = h[:, :, :-d], h[:, :, d:]
            # prediction: feedback W_k^T c to the shown future (the true or the partner's)
            g, shown, pos, partner = _third_factor(c, z, W_pred[k], d_pred, k)
            gW_pred[k] = torch.einsum("brg,bcrg,bdrg->cd", g, c, shown) / K
            fb = torch.einsum("brg,cd,bcrg->bdrg", g, W_pred[k], c) / K
            G[:, :, d:] += fb * pos[:, None, None, None]
            if omit != "partner":
                G[:, :, d:].index_add_(0, partner[~pos], fb[~pos])
            # retrodiction: feedback W'_k z to the context
            g, shown, _, _ = _third_factor(c, z, W_retro[k], d_retro, k)
            gW_retro[k] = torch.einsum("brg,bcrg,bdrg->cd", g, c, shown) / K
            G[:, :, :-d] += torch.einsum("brg,cd,bdrg->bcrg", g, W_retro[k], shown) / K
        # per patch: the broadcast error times rho'(a) (the postsynaptic factor), per position
        g_patch = G.permute(0, 2, 3, 1).reshape(-1, C)                 # (N, C)
        delta = post * g_patch[:, :, None, None] / n_pos             # (N, C, h, w)
        pre = F.unfold(x, 3, padding=1)                              # (N, C_in*9, h*w)
        gw = torch.einsum("njp,nip->ji", delta.flatten(2), pre).reshape(conv.weight.shape)
        gb = delta.sum((0, 2, 3))
    return {"W_pred": gW_pred, "W_retro": gW_retro, "weight": gw, "bias": gb}


# ----------------------------------------------------------------------------------------------
# The network and its training loop
# ----------------------------------------------------------------------------------------------


def _init_matrices(K: int, C: int) -> torch.nn.Parameter:
    """``(K, C, C)`` with PyTorch's default init of a 1 x 1 convolution: U(-1/sqrt(C), 1/sqrt(C))."""
    bound = 1.0 / np.sqrt(C)
    return torch.nn.Parameter(torch.empty(K, C, C).uniform_(-bound, bound))


class CLAPPNet(torch.nn.Module):
    """An :class:`Encoder` with the loss heads of one training method.

    ``"clapp"`` and ``"clapp-s"`` put a loss on every module and detach between modules;
    ``"hinge-cpc"`` puts the CLAPP loss and ``"clapp-s-e2e"`` the ``clapp-s`` loss on the last
    module only and train end to end.
    Initialisation draws from torch's global generator: seed it first
    (:func:`lib.torchkit.seed_all`).

    Args:
        method: one of :data:`METHODS`.
        layers: the modules (see :class:`Encoder`).
        K: prediction steps (row offsets 2..K+1).
        in_channels, patch, stride: see :class:`Encoder`.
        n_negatives: negatives per context of ``clapp-s`` and ``clapp-s-e2e``.
    """

    def __init__(self, method: str = "clapp", layers=LAYERS_WIDE, K: int = 2, in_channels: int = 1,
                 patch: int = PATCH_BOOK, stride: int = STRIDE_BOOK, n_negatives: int = N_NEGATIVES):
        super().__init__()
        self.method = _check_method(method)
        self.K = _check_int(K, "K")
        self.n_negatives = _check_int(n_negatives, "n_negatives")
        self.encoder = Encoder(layers, in_channels, patch, stride)
        chans = self.encoder.channels
        self.heads = [m for m in range(len(chans))
                      if method not in END_TO_END or m == len(chans) - 1]
        self.W_pred = torch.nn.ParameterList([_init_matrices(self.K, chans[m]) for m in self.heads])
        self.W_retro = torch.nn.ParameterList(
            [_init_matrices(self.K, chans[m]) for m in self.heads] if method in CLAPP_LOSS else [])

    @property
    def detach(self) -> bool:
        """Whether modules are gradient-isolated (all methods but :data:`END_TO_END`)."""
        return self.method not in END_TO_END

    def module_parameters(self) -> list[list[torch.nn.Parameter]]:
        """The parameters of each gradient-isolated unit (one Adam each); a single unit end to end."""
        if not self.detach:
            return [list(self.parameters())]
        out = []
        for i, m in enumerate(self.heads):
            ps = list(self.encoder.blocks[m].parameters()) + [self.W_pred[i]]
            out.append(ps + ([self.W_retro[i]] if self.method in CLAPP_LOSS else []))
        return out

    def losses(self, images: torch.Tensor, gen: torch.Generator):
        """The loss of every head for one batch, with the random draws from ``gen``.

        Returns:
            ``(losses, stats)``: a list of scalar losses (one per head) and a list of dicts of
            the mean scores ``"u_pos"``, ``"u_neg"``.
        """
        hs = self.encoder(images, detach=self.detach)
        out, stats = [], []
        for i, m in enumerate(self.heads):
            h = hs[m]
            if self.method in CLAPP_LOSS:
                draws = (draw_clapp(h.shape[0], gen, K=self.K), draw_clapp(h.shape[0], gen, K=self.K))
                loss, s = clapp_loss(h, self.W_pred[i], self.W_retro[i], draws)
            else:
                negs = draw_negatives(h.shape, self.K, gen, self.n_negatives)
                loss, s = clapp_s_loss(h, self.W_pred[i], negs)
            out.append(loss)
            stats.append(s)
        return out, stats

    def step(self, images: torch.Tensor, gen: torch.Generator, opts) -> tuple[list, list]:
        """One update: the losses of :meth:`losses`, summed and backpropagated, then every optimiser.

        Each head's loss reaches only its own module (gradient isolation), so the sum trains every
        module on its own loss. Returns ``(losses, stats)`` as :meth:`losses` does.
        """
        losses, stats = self.losses(images, gen)
        for o in opts:
            o.zero_grad()
        torch.stack(losses).sum().backward()
        for o in opts:
            o.step()
        return losses, stats


@dataclass
class TrainLog:
    """What :func:`train` returns.

    Attributes:
        loss: ``(steps, heads)`` the loss of every head at every step.
        u_pos, u_neg: ``(steps, heads)`` the mean score of positive and negative samples.
        seconds: wall time of the loop (s).
        images_per_s: training throughput (images per second).
    """

    loss: np.ndarray
    u_pos: np.ndarray
    u_neg: np.ndarray
    seconds: float
    images_per_s: float


def flip(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability one half (draws from ``gen``)."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, channels, height, width), got "
                         f"{tuple(images.shape)}")
    mask = (torch.rand(images.shape[0], generator=gen) < 0.5).to(images.device)
    return torch.where(mask[:, None, None, None], images.flip(3), images)


def train(net: CLAPPNet, images, *, steps: int, batch_size: int, lr: float, seed: int,
          augment: bool = True, device=None, progress: bool = True, desc: str | None = None,
          checkpoints: Sequence[int] = (), on_checkpoint=None) -> TrainLog:
    """Train ``net`` with its method's layer-local (or end-to-end) loss: the paper's algorithm.

    Every step draws ``batch_size`` images uniformly (with replacement across steps, without
    within a step), flips them at random (``augment``), computes every head's loss on the same
    forward pass and steps one Adam per gradient-isolated module. Because module inputs are
    detached, the sum of the losses is back-propagated once and no gradient crosses modules.

    Args:
        net: a :class:`CLAPPNet` (trained in place).
        images: unlabeled images ``(n, C, H, W)`` (numpy or torch, float).
        steps: optimiser steps (>= 0; 0 leaves the network untouched).
        batch_size: images per step (>= 2, for negatives).
        lr: Adam's learning rate (> 0).
        seed: seeds the batches, flips and positive/negative draws.
        augment: random horizontal flips.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device`` (None: auto).
        progress: show a progress bar (:func:`lib.torchkit.progress_bar`).
        desc: the bar's label (default: the method).
        checkpoints: step counts (``1 .. steps``) after which ``on_checkpoint(count, net)`` is
            called (a learning curve; it draws nothing from the training's generator, so the
            training is the same with or without it).
        on_checkpoint: the callable of ``checkpoints``.

    Returns:
        The :class:`TrainLog`.
    """
    if not isinstance(net, CLAPPNet):
        raise ValueError(f"net must be a CLAPPNet, got {type(net).__name__}")
    x = _check_images(images)
    steps = _check_int(steps, "steps", 0)
    batch_size = _check_int(batch_size, "batch_size", 2)
    if batch_size > len(x):
        raise ValueError(f"batch_size {batch_size} exceeds the {len(x)} images")
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    checkpoints = sorted({_check_int(c, "a checkpoint") for c in checkpoints})
    if checkpoints and (checkpoints[-1] > steps or not callable(on_checkpoint)):
        raise ValueError(f"checkpoints must lie in 1..steps ({steps}) and come with a callable "
                         f"on_checkpoint, got {checkpoints} and {on_checkpoint!r}")
    # the scaffold: the device, and the run's generator (seeds.torch_generator(seed), a stream
    # of the protocol's seeds.int_seed)
    loop = torchkit.Loop(steps, seed=seed, device=device, desc=desc or net.method,
                         progress=progress)
    gen, dev = loop.gen, loop.device
    net.to(dev)
    x = x.to(dev, torch.get_default_dtype())
    opts = [torch.optim.Adam(ps, lr=float(lr)) for ps in net.module_parameters()]
    n_heads = len(net.heads)
    loss = np.full((steps, n_heads), np.nan)
    u_pos, u_neg = loss.copy(), loss.copy()
    net.train()
    t0 = time.perf_counter()
    for s in loop:
        idx = torch.randperm(len(x), generator=gen)[:batch_size].to(dev)
        xb = flip(x[idx], gen) if augment else x[idx]
        losses, stats = net.step(xb, gen, opts)
        loss[s] = [float(v.detach()) for v in losses]
        u_pos[s] = [st["u_pos"] for st in stats]
        u_neg[s] = [st["u_neg"] for st in stats]
        loop.log(loss=float(loss[s].mean()))
        if s + 1 in checkpoints:
            t1 = time.perf_counter()
            on_checkpoint(s + 1, net)
            net.train()
            t0 += time.perf_counter() - t1  # the log times the training only
    seconds = time.perf_counter() - t0
    net.eval()
    return TrainLog(loss, u_pos, u_neg, seconds, steps * batch_size / seconds if steps else float("nan"))


def score_gap(net: CLAPPNet, images, seed: int, batch_size: int = 64) -> np.ndarray:
    """Held-out separation of positive and negative scores, per head.

    Every image of a batch is scored against its true future (positive) and against the same
    cell of a partner image drawn with replacement among the *other* images (negative), with the
    prediction matrices ``W_pred``.

    Args:
        net: a trained :class:`CLAPPNet`.
        images: held-out images ``(n, C, H, W)``.
        seed: seeds the partners.
        batch_size: images per batch (>= 2).

    Returns:
        ``(heads,)``: mean ``u+`` minus mean ``u-`` over all images, cells and steps.
    """
    x = _check_images(images, min_n=2)  # a negative needs another image
    batch_size = _check_int(batch_size, "batch_size", 2)
    gen = seeds.torch_generator(seed)
    dev = next(net.parameters()).device
    sums, n = np.zeros((len(net.heads), 2)), 0
    net.eval()
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            xb = x[s: s + batch_size].to(dev, torch.get_default_dtype())
            B = len(xb)
            if B < 2:
                break
            n += B
            partner = (torch.arange(B) + torch.randint(1, B, (B,), generator=gen)) % B
            hs = net.encoder(xb)
            for i, m in enumerate(net.heads):
                h = hs[m]
                for k in range(net.K):
                    d = k + 2
                    c, z = h[:, :, :-d], h[:, :, d:]
                    sums[i, 0] += float(scores(c, net.W_pred[i][k], z).mean()) / net.K * B
                    sums[i, 1] += float(scores(c, net.W_pred[i][k], z[partner.to(dev)]).mean()) / net.K * B
    return (sums[:, 0] - sums[:, 1]) / n


# ----------------------------------------------------------------------------------------------
# Linear probe
# ----------------------------------------------------------------------------------------------


def features(encoder: Encoder, images, batch_size: int = 32) -> list[np.ndarray]:
    """The representation of every module averaged over the patch grid.

    Args:
        encoder: an :class:`Encoder` (its device is used).
        images: ``(n, C, H, W)``.
        batch_size: images per forward pass (small batches keep the patches in the cache: 32
            images run about twice as fast as 500 on a CPU).

    Returns:
        One float64 array ``(n, C_m)`` per module.
    """
    x = _check_images(images)
    batch_size = _check_int(batch_size, "batch_size")
    dev = next(encoder.parameters()).device
    out = [[] for _ in encoder.blocks]
    encoder.eval()
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            hs = encoder(x[s: s + batch_size].to(dev, torch.get_default_dtype()))
            for m, h in enumerate(hs):
                out[m].append(h.mean((2, 3)).double().cpu().numpy())
    return [np.concatenate(o) for o in out]


@dataclass(frozen=True)
class ProbeResult:
    """A linear probe's accuracies.

    Attributes:
        train_accuracy: on the probe's training split.
        test_accuracy: on the separate test split.
        n_train, n_test: sizes of the splits.
    """

    train_accuracy: float
    test_accuracy: float
    n_train: int
    n_test: int


def linear_probe(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                 C: float = 1.0, max_iter: int = 2000) -> ProbeResult:
    """Standardise the features and fit a multinomial logistic regression (scikit-learn).

    The scaler and the classifier are fitted on the training split only and scored on the test
    split (L-BFGS, full batch, deterministic).

    Args:
        f_train, f_test: features ``(n, d)``.
        y_train, y_test: integer labels ``(n,)``.
        C: inverse L2 regularisation strength (> 0).
        max_iter: L-BFGS iterations.

    Returns:
        The :class:`ProbeResult`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f_train, f_test = np.asarray(f_train, float), np.asarray(f_test, float)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for name, f, y in (("train", f_train, y_train), ("test", f_test, y_test)):
        if f.ndim != 2 or y.ndim != 1 or len(f) != len(y):
            raise ValueError(f"{name} features must be (n, d) with n labels, got {f.shape} and {y.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"{name} features contain NaN or infinite values")
    if f_train.shape[1] != f_test.shape[1]:
        raise ValueError(f"train and test features differ in width: {f_train.shape[1]} vs {f_test.shape[1]}")
    if len(np.unique(y_train)) < 2:
        raise ValueError("the probe's training labels hold fewer than two classes")
    if not (isinstance(C, (int, float)) and np.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=float(C), max_iter=int(max_iter)))
    clf.fit(f_train, y_train)
    return ProbeResult(float(clf.score(f_train, y_train)), float(clf.score(f_test, y_test)),
                       len(y_train), len(y_test))


__all__ = ["CLAPP_LOSS", "END_TO_END", "LAYERS_WIDE", "LAYERS_VGG6", "MARGIN", "METHODS",
           "N_NEGATIVES", "PATCH_BOOK", "STRIDE_BOOK", "Block", "CLAPPNet", "ClappDraw", "Encoder",
           "ProbeResult", "TrainLog", "clapp_loss",
           "clapp_s_loss", "draw_clapp", "draw_negatives", "features", "flip", "grid_size",
           "linear_probe", "local_gradients", "patchify", "score_gap", "train"]
