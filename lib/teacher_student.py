"""Two-layer teacher-student networks under standard Gaussian input, in closed form.

The science of the chapter ``copy-average`` (Şimşek, Bendjeddou, Gerstner & Brea, "Should
under-parameterized student networks copy or average teacher weights?", NeurIPS 36, 2023,
arXiv:2311.01644), and the infinite-data loss of the chapter ``gradient-flow`` (Brea, Martinelli,
Şimşek & Gerstner 2023).

A teacher ``f*(x) = sum_j a*_j sigma(v_j . x)`` with ``k`` hidden neurons and a student
``f(x) = sum_i a_i sigma(w_i . x)`` with ``n`` hidden neurons, both without biases, see inputs
``x ~ N(0, I_d)``. The population loss (no factor 1/2, the MLPGradientFlow.jl convention)

    L = E_x[(f(x) - f*(x))^2]
      = sum_ii' a_i a_i' g(w_i, w_i') - 2 sum_ij a_i a*_j g(w_i, v_j) + sum_jj' a*_j a*_j' g(v_j, v_j')

is a sum of pair kernels ``g(w, z) = E[sigma(w . x) sigma(z . x)]``, known in closed form:

- ``erf`` (``sigma(z) = erf(z / sqrt 2)``): the arcsin kernel
  ``g = (2/pi) arcsin(w.z / sqrt((1 + |w|^2)(1 + |z|^2)))``;
- ``relu``: the first-order arc-cosine kernel
  ``g = (|w||z| / 2 pi) (sqrt(1 - u^2) + (pi - arccos u) u)``, ``u = cos(w, z)``.

This module gives the loss, its gradient and its Hessian in closed form (vectorised over neuron
pairs), Monte-Carlo estimates to check them, the copy-average (CA) critical points of an
unit-orthonormal erf teacher, the closed-form critical point of a single student neuron, gradient
flow through a stiff ``scipy.integrate.solve_ivp`` solver with the analytic Hessian as Jacobian
(a gradient-norm stopping rule, then a Newton polish), and a classification of end points up to
the permutation and sign symmetries.

Parameters are flattened as ``theta = [a_1..a_n, w_1 (d values), ..., w_n]`` (see
:meth:`Problem.pack`). Everything is float64. Models only: no presets, no plotting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import permutations
from typing import Sequence

import numpy as np
from scipy import integrate
from scipy.special import erf

#: The activations with closed-form Gaussian kernels.
ACTIVATIONS: tuple[str, ...] = ("erf", "relu")

#: ``solve_ivp`` methods accepted by :func:`gradient_flow`; the implicit ones get the Hessian.
METHODS: tuple[str, ...] = ("BDF", "Radau", "LSODA", "RK45", "RK23", "DOP853")
IMPLICIT_METHODS: tuple[str, ...] = ("BDF", "Radau", "LSODA")

#: Limit of ``L*(m) / m`` for an erf student neuron averaging m orthonormal teachers, m -> oo.
GROUP_LOSS_LIMIT: float = 1.0 / 3.0 - 1.0 / math.pi

#: Orthonormality tolerance of a teacher where the closed forms require it (``|V V^T - I|``, ``a* - 1``).
ORTHONORMAL_ATOL: float = 1e-12

#: Below this value of sin^2 of the angle, two ReLU weight vectors count as aligned (the
#: second derivatives of the arc-cosine kernel are then taken at their aligned limit).
_RELU_ALIGNED = 1e-14


# ----------------------------------------------------------------------------- checks


def check_activation(activation: str) -> str:
    """Return ``activation`` if it has a closed form, else raise a ``ValueError``.

    Args:
        activation: ``"erf"`` or ``"relu"``.

    Returns:
        The same string.
    """
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    return activation


def _finite(x: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _as_float(x, name: str, ndim: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers") from err
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return _finite(arr, name)


def _positive_int(x, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x!r}")
    return int(x)


# ----------------------------------------------------------------------------- teachers


@dataclass(frozen=True)
class Teacher:
    """A teacher network ``f*(x) = sum_j a[j] sigma(V[j] . x)``.

    Args:
        a: output weights, shape ``(k,)``.
        V: input weights, shape ``(k, d)`` (one row per hidden neuron).
    """

    a: np.ndarray
    V: np.ndarray

    def __post_init__(self):
        a = _as_float(self.a, "teacher output weights a", ndim=1)
        V = _as_float(self.V, "teacher input weights V", ndim=2)
        if a.shape[0] != V.shape[0]:
            raise ValueError(f"teacher a has {a.shape[0]} entries but V has {V.shape[0]} rows; expected equal")
        if V.shape[0] < 1 or V.shape[1] < 1:
            raise ValueError(f"teacher V must have at least one row and column, got shape {V.shape}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "V", V)

    @property
    def k(self) -> int:
        """Number of hidden neurons."""
        return self.V.shape[0]

    @property
    def d(self) -> int:
        """Input dimension."""
        return self.V.shape[1]

    @property
    def is_unit_orthonormal(self) -> bool:
        """Whether ``a == 1`` and the rows of ``V`` are orthonormal (to :data:`ORTHONORMAL_ATOL`)."""
        gram = self.V @ self.V.T
        return bool(np.abs(gram - np.eye(self.k)).max() <= ORTHONORMAL_ATOL
                    and np.abs(self.a - 1.0).max() <= ORTHONORMAL_ATOL)

    def require_unit_orthonormal(self, what: str) -> None:
        """Raise a ``ValueError`` unless the teacher is unit-orthonormal (``what`` needs it)."""
        if not self.is_unit_orthonormal:
            raise ValueError(f"{what} needs a unit-orthonormal teacher (a* = 1, orthonormal rows of V)")


def unit_orthonormal_teacher(k: int, d: int | None = None) -> Teacher:
    """The paper's teacher: ``a* = 1`` and ``V = [I_k 0]`` in ``d = k + 1`` dimensions.

    Args:
        k: number of teacher neurons.
        d: input dimension (default ``k + 1``, as in the paper); at least ``k``.

    Returns:
        The teacher.
    """
    k = _positive_int(k, "teacher width k")
    d = k + 1 if d is None else _positive_int(d, "input dimension d")
    if d < k:
        raise ValueError(f"input dimension d = {d} < k = {k}: k orthonormal vectors need d >= k")
    return Teacher(np.ones(k), np.eye(k, d))


# ----------------------------------------------------------------------------- kernels


def activation_function(activation: str):
    """The activation as a numpy function: ``erf(z / sqrt 2)`` or ``max(z, 0)``."""
    if check_activation(activation) == "erf":
        return lambda z: erf(z / math.sqrt(2.0))
    return lambda z: np.maximum(z, 0.0)


def _gram_det(W, Z, alpha, c):
    """``D = |w|^2 |z|^2 - (w.z)^2`` for all pairs, as ``|w|^2 |z_perp|^2`` (no cancellation:
    the naive difference loses half the digits for nearly aligned vectors)."""
    safe = np.where(alpha > 0, alpha, 1.0)
    perp = Z[..., None, :, :] - (c / safe)[..., None] * W[..., :, None, :]
    return alpha * np.sum(perp * perp, axis=-1)


def _phi(alpha, beta, c, activation: str, order: int, D=None) -> dict:
    """The kernel ``g = phi(alpha, beta, c)`` of ``alpha = |w|^2``, ``beta = |z|^2``, ``c = w.z``,
    with its partial derivatives up to ``order`` (0, 1 or 2), for distinct vectors. ``D`` is
    ``alpha beta - c^2`` computed accurately (ReLU only)."""
    out = {}
    if activation == "erf":
        A, B = 1.0 + alpha, 1.0 + beta
        rab = np.sqrt(A * B)
        s = np.clip(c / rab, -1.0, 1.0)
        out["phi"] = (2.0 / np.pi) * np.arcsin(s)
        if order == 0:
            return out
        t = 1.0 / np.sqrt(1.0 - s * s)
        s_c, s_a, s_b = 1.0 / rab, -s / (2.0 * A), -s / (2.0 * B)
        k2 = 2.0 / np.pi
        out.update(phi_a=k2 * t * s_a, phi_b=k2 * t * s_b, phi_c=k2 * t * s_c)
        if order == 1:
            return out
        t3s = t**3 * s
        s_aa, s_ab = 3.0 * s / (4.0 * A * A), s / (4.0 * A * B)
        s_ac, s_bc = -s_c / (2.0 * A), -s_c / (2.0 * B)
        out.update(
            phi_aa=k2 * (t * s_aa + t3s * s_a * s_a),
            phi_ab=k2 * (t * s_ab + t3s * s_a * s_b),
            phi_ac=k2 * (t * s_ac + t3s * s_a * s_c),
            phi_bc=k2 * (t * s_bc + t3s * s_b * s_c),
            phi_cc=k2 * (t3s * s_c * s_c),
        )
        return out
    # relu: phi = (sqrt(D) + c (pi - arccos u)) / (2 pi), D = alpha beta - c^2
    ab = alpha * beta
    D = np.maximum(ab - c * c if D is None else D, 0.0)
    sqD = np.sqrt(D)
    ang = np.pi - np.arctan2(sqD, c)  # pi - angle(w, z), accurate also for aligned vectors
    out["phi"] = (sqD + c * ang) / (2.0 * np.pi)
    if order == 0:
        return out
    out.update(phi_a=sqD / (4.0 * np.pi * alpha), phi_b=sqD / (4.0 * np.pi * beta), phi_c=ang / (2.0 * np.pi))
    if order == 1:
        return out
    aligned = D <= _RELU_ALIGNED * ab  # aligned limit: g = c/2 (u = 1) or 0 (u = -1) + O(angle^3)
    inv = np.where(aligned, 0.0, 1.0 / np.where(aligned, 1.0, sqD))
    out.update(
        phi_aa=(2.0 * c * c - ab) * inv / (8.0 * np.pi * alpha**2),
        phi_ab=inv / (8.0 * np.pi),
        phi_ac=-c * inv / (4.0 * np.pi * alpha),
        phi_bc=-c * inv / (4.0 * np.pi * beta),
        phi_cc=inv / (2.0 * np.pi),
    )
    return out


def _self(alpha, activation: str, order: int) -> dict:
    """``h(alpha) = g(w, w)`` of ``alpha = |w|^2`` with ``h'`` and ``h''``."""
    if activation == "erf":
        out = {"h": (2.0 / np.pi) * np.arcsin(alpha / (1.0 + alpha))}
        if order >= 1:
            q = np.sqrt(1.0 + 2.0 * alpha)
            out["h1"] = (2.0 / np.pi) / ((1.0 + alpha) * q)
            out["h2"] = -(2.0 / np.pi) * (1.0 / ((1.0 + alpha) ** 2 * q) + 1.0 / ((1.0 + alpha) * q**3))
        return out
    out = {"h": alpha / 2.0}
    if order >= 1:
        out["h1"] = np.full_like(alpha, 0.5)
        out["h2"] = np.zeros_like(alpha)
    return out


def kernel(W, Z, activation: str = "erf") -> np.ndarray:
    """The Gaussian kernel matrix ``G[..., i, j] = E_x[sigma(W[..., i] . x) sigma(Z[..., j] . x)]``.

    Args:
        W: weight vectors, shape ``(..., n, d)``.
        Z: weight vectors, shape ``(..., m, d)`` (leading dimensions broadcast with ``W``).
        activation: ``"erf"`` or ``"relu"``.

    Returns:
        The kernel, shape ``(..., n, m)``. Entries with equal vectors use the diagonal closed form
        (exact for ``erf``; ``|w|^2 / 2`` for ``relu``).
    """
    check_activation(activation)
    W = _as_float(W, "W")
    Z = _as_float(Z, "Z")
    if W.ndim < 2 or Z.ndim < 2 or W.shape[-1] != Z.shape[-1]:
        raise ValueError(f"W and Z must be (..., n, d) and (..., m, d) with the same d, got {W.shape}, {Z.shape}")
    alpha = np.sum(W * W, axis=-1)[..., :, None]
    beta = np.sum(Z * Z, axis=-1)[..., None, :]
    c = np.einsum("...id,...jd->...ij", W, Z)
    if activation == "erf":
        return _phi(alpha, beta, c, activation, 0)["phi"]
    ab = alpha * beta  # relu: a zero vector gives zero
    D = _gram_det(W, Z, alpha, c)
    val = _phi(np.where(ab > 0, alpha, 1.0), np.where(ab > 0, beta, 1.0), np.where(ab > 0, c, 0.0),
               activation, 0, D=np.where(ab > 0, D, 1.0))["phi"]
    return np.where(ab > 0, val, 0.0)


def monte_carlo_kernel(w, z, activation: str, n_samples: int, rng: np.random.Generator,
                       chunk: int = 100_000) -> tuple[float, float]:
    """Monte-Carlo estimate of ``g(w, z) = E[sigma(w . x) sigma(z . x)]``, ``x ~ N(0, I_d)``.

    Args:
        w, z: vectors of length ``d``.
        activation: ``"erf"`` or ``"relu"``.
        n_samples: number of Gaussian inputs.
        rng: the random generator.
        chunk: samples drawn at a time.

    Returns:
        ``(mean, standard_error)``.
    """
    w = _as_float(w, "w", ndim=1)
    z = _as_float(z, "z", ndim=1)
    if w.shape != z.shape:
        raise ValueError(f"w and z must have the same length, got {w.shape} and {z.shape}")
    sigma = activation_function(activation)
    return _mc_mean(lambda x: sigma(x @ w) * sigma(x @ z), w.size, n_samples, rng, chunk)


def _mc_mean(f, d: int, n_samples: int, rng: np.random.Generator, chunk: int) -> tuple[float, float]:
    n_samples = _positive_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError("n_samples must be at least 2 to estimate a standard error")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    s1 = s2 = 0.0
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        y = f(rng.standard_normal((m, d)))
        s1 += y.sum()
        s2 += (y * y).sum()
        done += m
    mean = s1 / n_samples
    var = max(s2 / n_samples - mean * mean, 0.0) * n_samples / (n_samples - 1)
    return float(mean), float(math.sqrt(var / n_samples))


# ----------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class Problem:
    """A student of width ``n`` learning ``teacher`` under standard Gaussian input.

    ``loss``, ``gradient`` and ``hessian`` take the flat parameter vector ``theta`` of length
    ``n (d + 1)`` (see :meth:`pack`) and are written so that they can be handed to
    ``scipy.optimize.minimize`` (``fun``, ``jac``, ``hess``) or ``solve_ivp``.

    Args:
        teacher: the teacher network.
        n: number of student hidden neurons (any positive width: the ``gradient-flow`` chapter
            also uses over-parameterised students).
        activation: ``"erf"`` or ``"relu"`` (student and teacher share it).
    """

    teacher: Teacher
    n: int
    activation: str = "erf"
    teacher_term: float = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.teacher, Teacher):
            raise ValueError(f"teacher must be a Teacher, got {type(self.teacher).__name__}")
        _positive_int(self.n, "student width n")
        check_activation(self.activation)
        V, b = self.teacher.V, self.teacher.a
        object.__setattr__(self, "teacher_term", float(b @ self._gram(V, V, 0)["G"] @ b))

    # -- parameters
    @property
    def d(self) -> int:
        """Input dimension."""
        return self.teacher.d

    @property
    def k(self) -> int:
        """Teacher width."""
        return self.teacher.k

    @property
    def n_params(self) -> int:
        """Length of ``theta``: ``n (d + 1)``."""
        return self.n * (self.d + 1)

    def pack(self, a, W) -> np.ndarray:
        """Flatten output weights ``a`` (shape ``(n,)``) and input weights ``W`` (``(n, d)``)."""
        a = _as_float(a, "student output weights a", ndim=1)
        W = _as_float(W, "student input weights W", ndim=2)
        if a.shape != (self.n,) or W.shape != (self.n, self.d):
            raise ValueError(f"expected a of shape ({self.n},) and W of shape ({self.n}, {self.d}), "
                             f"got {a.shape} and {W.shape}")
        return np.concatenate([a, W.ravel()])

    def unpack(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """Split ``theta`` into ``(a, W)`` (views; leading batch dimensions are kept)."""
        theta = _as_float(theta, "theta")
        if theta.ndim < 1 or theta.shape[-1] != self.n_params:
            raise ValueError(f"theta must have length n (d + 1) = {self.n_params} in its last axis, "
                             f"got shape {theta.shape}")
        lead = theta.shape[:-1]
        return theta[..., : self.n], theta[..., self.n:].reshape(*lead, self.n, self.d)

    # -- kernels
    def _gram(self, W, Z, order: int, same: bool = False) -> dict:
        alpha = np.sum(W * W, axis=-1)[:, None]
        beta = np.sum(Z * Z, axis=-1)[None, :]
        c = W @ Z.T
        D = _gram_det(W, Z, alpha, c) if self.activation == "relu" else None
        if same:  # student-student: distinct pairs through phi, the diagonal through h
            off = ~np.eye(W.shape[0], dtype=bool)
            if D is not None:
                D = np.where(off, D, alpha * beta)
            p = _phi(alpha, beta, np.where(off, c, 0.0), self.activation, order, D=D)
            p = {key: np.where(off, val, 0.0) for key, val in p.items()}
            h = _self(alpha[:, 0], self.activation, order)
            p["G"] = p["phi"] + np.diag(h["h"])
            p["self"] = h
            return p
        p = _phi(alpha, beta, c, self.activation, order, D=D)
        p["G"] = p["phi"]
        if W is Z or (W.shape == Z.shape and np.array_equal(W, Z)):  # teacher-teacher term
            h = _self(alpha[:, 0], self.activation, 0)["h"]
            p["G"] = p["phi"] - np.diag(np.diag(p["phi"])) + np.diag(h)
        return p

    # -- loss, gradient, Hessian
    def loss(self, theta) -> float | np.ndarray:
        """Population loss ``E_x[(f(x) - f*(x))^2]``; ``theta`` may carry leading batch axes."""
        a, W = self.unpack(theta)
        G = kernel(W, W, self.activation)
        alpha = np.sum(W * W, axis=-1)
        diag = _self(alpha, self.activation, 0)["h"]
        eye = np.eye(self.n, dtype=bool)
        G = np.where(eye, diag[..., :, None], G)
        K = kernel(W, self.teacher.V, self.activation)
        val = (np.einsum("...i,...ij,...j->...", a, G, a) - 2.0 * np.einsum("...i,...ij,j->...", a, K, self.teacher.a)
               + self.teacher_term)
        return float(val) if np.ndim(val) == 0 else val

    def gradient(self, theta) -> np.ndarray:
        """Gradient of :meth:`loss` with respect to ``theta`` (shape ``(n (d + 1),)``).

        A ReLU student with zero input weights raises ``ValueError``: the loss is not
        differentiable there (the same holds for :meth:`hessian`)."""
        return self._grad_hess(theta, hessian=False)[0]

    def hessian(self, theta) -> np.ndarray:
        """Hessian of :meth:`loss` (shape ``(P, P)``, ``P = n (d + 1)``), symmetric."""
        return self._grad_hess(theta, hessian=True)[1]

    def gradient_and_hessian(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """Both at once (shares the kernel evaluations)."""
        return self._grad_hess(theta, hessian=True)

    def _grad_hess(self, theta, hessian: bool):
        theta = _as_float(theta, "theta", ndim=1)
        a, W = self.unpack(theta)
        if self.activation == "relu":
            zero = np.flatnonzero(np.sum(W * W, axis=1) == 0.0)
            if zero.size:
                raise ValueError(
                    f"student(s) {zero.tolist()} have zero input weights: the ReLU loss is not "
                    "differentiable at w_i = 0 (its kernel is |w_i| times a function of the "
                    "direction of w_i), so the gradient and Hessian are undefined there")
        V, b = self.teacher.V, self.teacher.a
        n, d = self.n, self.d
        order = 2 if hessian else 1
        S = self._gram(W, W, order, same=True)
        T = self._gram(W, V, order)
        # first derivatives of g(w_i, z) in w_i: 2 phi_a w_i + phi_c z
        N_S = 2.0 * S["phi_a"][..., None] * W[:, None, :] + S["phi_c"][..., None] * W[None, :, :]
        N_T = 2.0 * T["phi_a"][..., None] * W[:, None, :] + T["phi_c"][..., None] * V[None, :, :]
        h = S["self"]
        grad_self = 2.0 * h["h1"][:, None] * W  # gradient of g(w, w)
        sum_S = np.einsum("l,ild->id", a, N_S)  # sum over other students, weighted by a
        sum_T = np.einsum("j,ijd->id", b, N_T)
        ga = 2.0 * S["G"] @ a - 2.0 * T["G"] @ b
        gW = 2.0 * a[:, None] * sum_S + (a * a)[:, None] * grad_self - 2.0 * a[:, None] * sum_T
        g = np.concatenate([ga, gW.ravel()])
        if not hessian:
            return g, None
        eye = np.eye(d)
        H = np.empty((n + n * d, n + n * d))
        H[:n, :n] = 2.0 * S["G"]
        # d(ga_i)/d(w_l): 2 a_l dg(w_l, w_i)/dw_l for l != i; the diagonal from the gradient
        Haw = 2.0 * a[None, :, None] * np.swapaxes(N_S, 0, 1)  # [i, l, :]
        diag = 2.0 * sum_S + 2.0 * a[:, None] * grad_self - 2.0 * sum_T
        Haw[np.arange(n), np.arange(n)] = diag
        H[:n, n:] = Haw.reshape(n, n * d)
        H[n:, :n] = H[:n, n:].T
        # second derivatives of the pair kernels
        M11_S = _hess11(S, W[:, None, :], W[None, :, :], eye)
        M12_S = _hess12(S, W[:, None, :], W[None, :, :], eye)
        M11_T = _hess11(T, W[:, None, :], V[None, :, :], eye)
        hess_self = 2.0 * h["h1"][:, None, None] * eye + 4.0 * h["h2"][:, None, None] * (
            W[:, :, None] * W[:, None, :])
        Hww = 2.0 * (a[:, None] * a[None, :])[..., None, None] * M12_S  # [i, l, d, d]
        diag_ww = (2.0 * a[:, None, None] * np.einsum("l,ilpq->ipq", a, M11_S)
                   + (a * a)[:, None, None] * hess_self
                   - 2.0 * a[:, None, None] * np.einsum("j,ijpq->ipq", b, M11_T))
        Hww[np.arange(n), np.arange(n)] = diag_ww
        H[n:, n:] = Hww.transpose(0, 2, 1, 3).reshape(n * d, n * d)
        H = 0.5 * (H + H.T)
        return g, H

    # -- helpers on parameters
    def overlaps(self, theta) -> np.ndarray:
        """Cosines ``cos(w_i, v_j)``, shape ``(n, k)``."""
        _, W = self.unpack(_as_float(theta, "theta", ndim=1))
        V = self.teacher.V
        return (W @ V.T) / np.outer(np.linalg.norm(W, axis=1), np.linalg.norm(V, axis=1))

    def grad_norm(self, theta) -> float:
        """``max |dL/dtheta|`` (the infinity norm of the gradient)."""
        return float(np.abs(self.gradient(theta)).max())


def _hess11(p: dict, w, z, eye) -> np.ndarray:
    """``d^2 g(w, z) / dw dw`` for arrays of pairs: w (n, 1, d), z (1 or n, m, d)."""
    ww = w[..., :, None] * w[..., None, :]
    zz = z[..., :, None] * z[..., None, :]
    wz = w[..., :, None] * z[..., None, :]
    return (2.0 * p["phi_a"][..., None, None] * eye + 4.0 * p["phi_aa"][..., None, None] * ww
            + 2.0 * p["phi_ac"][..., None, None] * (wz + np.swapaxes(wz, -1, -2))
            + p["phi_cc"][..., None, None] * zz)


def _hess12(p: dict, w, z, eye) -> np.ndarray:
    """``d^2 g(w, z) / dw dz`` (rows index w) for arrays of pairs."""
    ww = w[..., :, None] * w[..., None, :]
    zz = z[..., :, None] * z[..., None, :]
    wz = w[..., :, None] * z[..., None, :]
    return (p["phi_c"][..., None, None] * eye + 4.0 * p["phi_ab"][..., None, None] * wz
            + 2.0 * p["phi_ac"][..., None, None] * ww + 2.0 * p["phi_bc"][..., None, None] * zz
            + p["phi_cc"][..., None, None] * np.swapaxes(wz, -1, -2))


def monte_carlo_loss(problem: Problem, theta, n_samples: int, rng: np.random.Generator,
                     chunk: int = 50_000) -> tuple[float, float]:
    """Monte-Carlo estimate of the population loss from ``n_samples`` Gaussian inputs.

    Args:
        problem: the teacher-student problem.
        theta: student parameters.
        n_samples: number of inputs ``x ~ N(0, I_d)``.
        rng: the random generator.
        chunk: inputs drawn at a time.

    Returns:
        ``(mean, standard_error)`` of the squared error.
    """
    a, W = problem.unpack(_as_float(theta, "theta", ndim=1))
    sigma = activation_function(problem.activation)
    V, b = problem.teacher.V, problem.teacher.a

    def sq_err(x):
        return (sigma(x @ W.T) @ a - sigma(x @ V.T) @ b) ** 2

    return _mc_mean(sq_err, problem.d, n_samples, rng, chunk)


# ----------------------------------------------------------------------------- copy-average points


def group_loss(m) -> float | np.ndarray:
    """``L*(m)``: loss of one erf student neuron averaging ``m`` unit-orthonormal teachers alone.

    ``L*(m) = m/3 - (2 m^2 / pi) arcsin(1 / (2m))``, at ``a = m``, ``|w| = 1 / sqrt(2m - 1)``;
    ``L*(1) = 0`` (a copy).

    Args:
        m: group size(s), positive integers (or reals >= 1 for the continuous curve).
    """
    m = np.asarray(m, dtype=np.float64)
    if not np.all(np.isfinite(m)) or np.any(m < 1):
        raise ValueError("group sizes m must be finite and >= 1")
    val = m / 3.0 - (2.0 * m * m / np.pi) * np.arcsin(1.0 / (2.0 * m))
    return float(val) if val.ndim == 0 else val


def _check_kn(k, n) -> tuple[int, int]:
    k = _positive_int(k, "teacher width k")
    n = _positive_int(n, "student width n")
    if n >= k:
        raise ValueError(f"copy-average points need an under-parameterised student, n < k; got n = {n}, k = {k}")
    return k, n


def partitions(k: int, n: int) -> list[tuple[int, ...]]:
    """All ways to split ``k`` teachers into ``n`` non-empty groups, as group sizes.

    Up to the permutation symmetry of teacher and student neurons a copy-average point is fixed
    by its group sizes, so these are the integer partitions of ``k`` into ``n`` parts, each in
    decreasing order, listed in decreasing lexicographic order.

    Args:
        k: teacher width.
        n: student width, ``1 <= n < k``.

    Returns:
        The partitions, e.g. ``partitions(4, 2) == [(3, 1), (2, 2)]``.
    """
    k, n = _check_kn(k, n)

    def rec(total, parts, largest):
        if parts == 0:
            return [()] if total == 0 else []
        out = []
        for m in range(min(largest, total - parts + 1), 0, -1):
            if m * parts < total:
                break
            out += [(m, *rest) for rest in rec(total - m, parts - 1, m)]
        return out

    return rec(k, n, k)


def optimal_partition(k: int, n: int) -> tuple[int, ...]:
    """The paper's optimal copy-average partition: ``n - 1`` copies and one average of ``k - n + 1``."""
    k, n = _check_kn(k, n)
    return (k - n + 1,) + (1,) * (n - 1)


def ca_loss(partition: Sequence[int]) -> float:
    """Loss of a copy-average point of an erf unit-orthonormal teacher: ``sum_i L*(m_i)``."""
    sizes = _check_partition(partition)
    return float(np.sum(group_loss(np.array(sizes))))


def _check_partition(partition) -> tuple[int, ...]:
    try:
        sizes = tuple(int(m) for m in partition)
    except (TypeError, ValueError) as err:
        raise ValueError(f"a partition is a sequence of positive group sizes, got {partition!r}") from err
    if not sizes or any(m < 1 for m in sizes) or any(m != x for m, x in zip(sizes, partition, strict=True)):
        raise ValueError(f"a partition is a non-empty sequence of positive integer group sizes, got {partition!r}")
    return sizes


def copy_average_point(teacher: Teacher, partition: Sequence[int], n: int | None = None) -> np.ndarray:
    """The copy-average critical point of an erf student for a partition of the teachers.

    Student ``i`` averages the teachers of group ``S_i`` (consecutive teachers, in the order of
    ``partition``): ``a_i = m_i`` and ``w_i = sum_{j in S_i} v_j / sqrt(m_i (2 m_i - 1))``.

    Args:
        teacher: a unit-orthonormal teacher.
        partition: group sizes ``m_1..m_n`` summing to ``k``, with ``n < k``.
        n: optional check of the student width.

    Returns:
        ``theta`` of a ``Problem(teacher, len(partition), "erf")``.
    """
    teacher.require_unit_orthonormal("a copy-average point")
    sizes = _check_partition(partition)
    if sum(sizes) != teacher.k:
        raise ValueError(f"the partition {sizes} has {sum(sizes)} teachers; the teacher has k = {teacher.k}")
    _check_kn(teacher.k, len(sizes))
    if n is not None and n != len(sizes):
        raise ValueError(f"the partition has {len(sizes)} groups, expected n = {n}")
    ends = np.cumsum(sizes)
    W = np.stack([teacher.V[e - m:e].sum(axis=0) / math.sqrt(m * (2 * m - 1))
                  for m, e in zip(sizes, ends, strict=True)])
    return np.concatenate([np.array(sizes, dtype=np.float64), W.ravel()])


def relu_single_neuron_loss(k) -> float:
    """Loss of the closed-form critical point of one ReLU student and ``k`` unit-orthonormal teachers.

    ``L = k/2 + k (k - 1) / (2 pi) - 2 k^2 h(1/sqrt k)^2``,
    ``h(u) = (sqrt(1 - u^2) + (pi - arccos u) u) / (2 pi)``.
    """
    k = _positive_int(k, "teacher width k")
    u = 1.0 / math.sqrt(k)
    hu = (math.sqrt(1.0 - u * u) + (math.pi - math.acos(u)) * u) / (2.0 * math.pi)
    return k / 2.0 + k * (k - 1) / (2.0 * math.pi) - 2.0 * k * k * hu * hu


def single_neuron_point(teacher: Teacher, activation: str = "erf", norm: float | None = None) -> np.ndarray:
    """The non-trivial critical point of a single student neuron (``n = 1``), in closed form.

    The direction is the teacher average ``sum_j v_j / sqrt(k)`` (all overlaps ``1/sqrt k``),
    the solution of the equivalent problem "maximise ``sum_j g(w, v_j)`` on the sphere
    ``sum_j u_j^2 <= 1``". For erf ``a = k`` and ``|w| = 1/sqrt(2k - 1)``; for ReLU only the
    product ``a |w| = 2 k h(1/sqrt k)`` is fixed (positive homogeneity), and ``norm`` picks
    ``|w|`` (default: ``a = |w|``).

    Args:
        teacher: a unit-orthonormal teacher.
        activation: ``"erf"`` or ``"relu"``.
        norm: ``|w|`` for ReLU (ignored for erf).

    Returns:
        ``theta = [a, w]`` of a ``Problem(teacher, 1, activation)``.
    """
    check_activation(activation)
    teacher.require_unit_orthonormal("the single-neuron closed form")
    k = teacher.k
    direction = teacher.V.sum(axis=0) / math.sqrt(k)
    if activation == "erf":
        return np.concatenate([[float(k)], direction / math.sqrt(2 * k - 1)])
    u = 1.0 / math.sqrt(k)
    prod = 2.0 * k * (math.sqrt(1.0 - u * u) + (math.pi - math.acos(u)) * u) / (2.0 * math.pi)
    r = math.sqrt(prod) if norm is None else float(norm)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"norm must be a positive number, got {norm!r}")
    return np.concatenate([[prod / r], r * direction])


# ----------------------------------------------------------------------------- gradient flow


def glorot_init(problem: Problem, rng: np.random.Generator) -> np.ndarray:
    """Glorot-normal initialisation of MLPGradientFlow.jl: ``W ~ N(0, 2/(d+n))``, then ``a ~ N(0, 2/(n+1))``.

    Args:
        problem: gives ``n`` and ``d``.
        rng: the random generator (``W`` is drawn before ``a``).

    Returns:
        ``theta``.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    n, d = problem.n, problem.d
    W = rng.normal(0.0, math.sqrt(2.0 / (d + n)), size=(n, d))
    a = rng.normal(0.0, math.sqrt(2.0 / (n + 1)), size=n)
    return problem.pack(a, W)


@dataclass(frozen=True)
class FlowResult:
    """The outcome of :func:`gradient_flow`.

    Attributes:
        t: times of the solver's steps (flow units), shape ``(T,)``.
        theta: parameters at those times, shape ``(T, P)``.
        loss: loss at those times.
        theta_end: end point after the Newton polish.
        loss_end: its loss.
        grad_norm_end: its ``max |grad|``.
        grad_norm_flow: ``max |grad|`` where the flow stopped (before the polish).
        t_end: time where the flow stopped.
        flow_converged: whether the flow reached ``grad_tol`` before ``t_max``.
        n_grad: gradient evaluations (right-hand side and stopping rule).
        n_hess: Hessian evaluations (Jacobians and Newton steps).
        n_newton: accepted Newton steps.
        method: the ``solve_ivp`` method.
        message: "converged", or why the flow stopped before the stopping rule held (a solver
            failure: ReLU students whose input weights pass through zero make the flow singular).
    """

    t: np.ndarray
    theta: np.ndarray
    loss: np.ndarray
    theta_end: np.ndarray
    loss_end: float
    grad_norm_end: float
    grad_norm_flow: float
    t_end: float
    flow_converged: bool
    n_grad: int
    n_hess: int
    n_newton: int
    method: str
    message: str


def newton_polish(problem: Problem, theta, tol: float = 1e-13, max_iter: int = 20,
                  max_step: float = 1e-2, rcond: float = 1e-10) -> tuple[np.ndarray, int, int]:
    """Newton steps ``theta <- theta - H^+ grad`` (least squares: Hessians may be singular).

    A step is kept only if it shortens the gradient and is smaller than ``max_step`` (infinity
    norm), so the polish never leaves the neighbourhood that the flow reached.

    Args:
        problem: the teacher-student problem.
        theta: a point near a critical point.
        tol: stop once ``max |grad| < tol``.
        max_iter: at most this many steps.
        max_step: largest step accepted.
        rcond: relative cut-off of small singular values of the Hessian (zero modes such as
            the scale symmetry of ReLU neurons are left alone).

    Returns:
        ``(theta, accepted_steps, hessian_evaluations)``.
    """
    theta = _as_float(theta, "theta", ndim=1).copy()
    g = problem.gradient(theta)
    steps = n_hess = 0
    for _ in range(max_iter):
        if np.abs(g).max() < tol:
            break
        H = problem.hessian(theta)
        n_hess += 1
        step = np.linalg.lstsq(H, g, rcond=rcond)[0]
        if np.abs(step).max() > max_step:
            break
        cand = theta - step
        g_new = problem.gradient(cand)
        if np.abs(g_new).max() >= np.abs(g).max():
            break
        theta, g = cand, g_new
        steps += 1
    return theta, steps, n_hess


@dataclass(frozen=True)
class FlowSteps:
    """What :func:`flow_steps` returns: the accepted steps of one solver run.

    Attributes:
        t: times of the steps (the first is 0), shape ``(T,)``.
        theta: the points, shape ``(T, P)``.
        converged: whether ``max |grad| < grad_tol`` held at the last point.
        status: the solver's status at the end (``"running"`` if stopped by the step budget).
        failure: the solver's message if it failed, else ``""``.
        grad_end: the gradient at the last point.
        n_grad: gradient evaluations.
        n_hess: Hessian evaluations (the implicit solvers' Jacobians).
    """

    t: np.ndarray
    theta: np.ndarray
    converged: bool
    status: str
    failure: str
    grad_end: np.ndarray
    n_grad: int
    n_hess: int


def flow_steps(gradient, hessian, theta0, *, method: str, t_max: float, rtol: float,
               atol: float, grad_tol: float, max_steps: int,
               use_hessian: bool = True) -> FlowSteps:
    """The solver loop of the library: ``d theta/dt = -gradient(theta)`` one step at a time.

    A ``scipy.integrate`` solver (one of :data:`METHODS`) is stepped until ``t_max``, until
    ``max |gradient| < grad_tol`` at a step point (checked also at ``theta0``), until it fails,
    or after ``max_steps`` steps. The implicit methods get ``-hessian`` as their Jacobian
    (unless ``use_hessian`` is False: finite differences). The gradient of the last point
    evaluated is cached, so the stopping rule costs no extra evaluation. Both
    :func:`gradient_flow` (infinite data) and :func:`lib.gradflow.integrate_flow` (finite data)
    run this loop; the callers check their arguments.
    """
    count = {"grad": 0, "hess": 0}
    cache: dict = {}

    def grad(y):
        key = y.tobytes()
        if key not in cache:
            count["grad"] += 1
            cache.clear()
            cache[key] = gradient(y)
        return cache[key]

    def rhs(t, y):
        return -grad(y)

    def jac(t, y):
        count["hess"] += 1
        return -hessian(y)

    kw = {"jac": jac} if (method in IMPLICIT_METHODS and use_hessian) else {}
    theta0 = np.array(theta0, dtype=float)
    solver = getattr(integrate, method)(rhs, 0.0, theta0.copy(), float(t_max), rtol=rtol,
                                        atol=atol, **kw)
    ts_, ys = [0.0], [theta0.copy()]
    failure = ""
    converged = float(np.abs(grad(theta0)).max()) < grad_tol
    while not converged and solver.status == "running" and len(ts_) <= max_steps:
        msg = solver.step()
        if solver.status == "failed":
            failure = str(msg)
            break
        ts_.append(solver.t)
        ys.append(solver.y.copy())
        converged = float(np.abs(grad(solver.y)).max()) < grad_tol
    thetas = np.array(ys)
    return FlowSteps(np.array(ts_), thetas, bool(converged), solver.status, failure,
                     grad(thetas[-1]), count["grad"], count["hess"])


def gradient_flow(problem: Problem, theta0, *, method: str = "BDF", t_max: float = 1e8,
                  rtol: float = 1e-8, atol: float = 1e-10, grad_tol: float = 1e-9,
                  polish_tol: float | None = 1e-13, use_hessian: bool = True,
                  max_steps: int = 1_000_000) -> FlowResult:
    """Integrate the gradient flow ``d theta / dt = -grad L(theta)`` until ``max |grad| < grad_tol``.

    The solvers are those of ``scipy.integrate.solve_ivp`` (``scipy.integrate.BDF``, ``Radau``,
    ...), stepped one step at a time so that the stopping rule is checked on every accepted step
    point (``solve_ivp``'s event root-finding is unreliable on a gradient norm near round-off).
    The implicit methods (BDF, Radau, LSODA) get ``-hessian`` as their Jacobian. Where the flow
    converged, Newton steps (:func:`newton_polish`) polish the end point to ``polish_tol``.

    Args:
        problem: the teacher-student problem.
        theta0: the initial point.
        method: one of :data:`METHODS`.
        t_max: the longest time to integrate (flow units).
        rtol, atol: the solver's tolerances.
        grad_tol: the stopping rule.
        polish_tol: the Newton polish's target (None: no polish).
        use_hessian: give the implicit solvers the analytic Jacobian (else finite differences).
        max_steps: the most solver steps.

    Returns:
        A :class:`FlowResult`.

    Raises:
        ValueError: for a tolerance or ``t_max`` that is not a positive finite number, a
            ``polish_tol`` that is neither that nor None, or a ``max_steps`` that is not a
            positive integer.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    tols = [("t_max", t_max), ("rtol", rtol), ("atol", atol), ("grad_tol", grad_tol)]
    if polish_tol is not None:
        tols.append(("polish_tol (or None: no polish)", polish_tol))
    for name, val in tols:
        if isinstance(val, bool) or not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be a positive finite number, got {val!r}")
    max_steps = _positive_int(max_steps, "max_steps")
    theta0 = _as_float(theta0, "theta0", ndim=1)
    problem.unpack(theta0)
    run = flow_steps(problem.gradient, problem.hessian, theta0, method=method, t_max=t_max,
                     rtol=rtol, atol=atol, grad_tol=grad_tol, max_steps=max_steps,
                     use_hessian=use_hessian)
    ts_, thetas, converged = run.t, run.theta, run.converged
    if run.failure:
        message = f"the {method} solver failed at t = {ts_[-1]:.4g}: {run.failure}"
    elif converged:
        message = "converged"
    else:
        message = (f"stopped at t = {ts_[-1]:.4g} ({run.status}, {len(ts_) - 1} steps) "
                   f"before max |grad| < {grad_tol:g}")
    end = thetas[-1]
    gn_flow = float(np.abs(run.grad_end).max())
    steps = nh = 0
    if converged and polish_tol is not None:
        end, steps, nh = newton_polish(problem, end, tol=polish_tol)
    return FlowResult(
        t=ts_, theta=thetas, loss=problem.loss(thetas), theta_end=end,
        loss_end=problem.loss(end), grad_norm_end=problem.grad_norm(end),
        grad_norm_flow=gn_flow, t_end=float(ts_[-1]), flow_converged=converged,
        n_grad=run.n_grad, n_hess=run.n_hess + nh, n_newton=steps, method=method,
        message=message,
    )


# ----------------------------------------------------------------------------- end points

#: The kinds of end point that :func:`classify` tells apart.
KINDS: tuple[str, ...] = ("optimal-ca", "ca", "approx-copy", "other")


@dataclass(frozen=True)
class Endpoint:
    """What a point of parameter space is, up to permutations and sign flips.

    Attributes:
        kind: one of :data:`KINDS`: the optimal copy-average point, another copy-average point,
            an approximate copy (every student has ``|cos| > copy_cos`` with a different teacher),
            or other.
        loss: the loss.
        grad_norm: ``max |grad|``.
        lambda_min: smallest Hessian eigenvalue.
        n_negative: number of Hessian eigenvalues below ``-curvature_tol``.
        partition: the group sizes (decreasing) of a copy-average point, else None.
        distance: infinity-norm distance to the nearest copy-average point of the inferred
            grouping (inf where none can be inferred).
        max_cos: per student, the largest ``|cos(w_i, v_j)|``.
        teacher: per student, the teacher with that largest overlap.
    """

    kind: str
    loss: float
    grad_norm: float
    lambda_min: float
    n_negative: int
    partition: tuple[int, ...] | None
    distance: float
    max_cos: np.ndarray
    teacher: np.ndarray


def classify(problem: Problem, theta, ca_atol: float = 1e-6, copy_cos: float = 0.9,
             curvature_tol: float = 1e-8) -> Endpoint:
    """Classify an end point of gradient flow up to permutation and sign symmetry.

    Each teacher is assigned to the student with the largest ``|w_i . v_j|``; the point is a
    copy-average point if it lies within ``ca_atol`` (infinity norm, after flipping students
    with ``a_i < 0`` to ``(-a_i, -w_i)``) of the copy-average point of that grouping.

    Args:
        problem: an erf problem with a unit-orthonormal teacher and ``n < k``.
        theta: the point.
        ca_atol: distance below which the point is a copy-average point.
        copy_cos: overlap above which a student counts as copying a teacher.
        curvature_tol: eigenvalues below ``-curvature_tol`` count as negative.

    Returns:
        An :class:`Endpoint`.
    """
    if problem.activation != "erf":
        raise ValueError("copy-average end points are defined for erf students; got activation "
                         f"{problem.activation!r}")
    problem.teacher.require_unit_orthonormal("classify")
    k, n = _check_kn(problem.k, problem.n)
    theta = _as_float(theta, "theta", ndim=1)
    a, W = problem.unpack(theta)
    g, H = problem.gradient_and_hessian(theta)
    eig = np.linalg.eigvalsh(H)
    cos = np.abs(problem.overlaps(theta))
    best = cos.argmax(axis=1)
    max_cos = cos.max(axis=1)
    owner = np.abs(W @ problem.teacher.V.T).argmax(axis=0)  # the student of each teacher
    sizes = np.bincount(owner, minlength=n)
    distance = math.inf
    partition = None
    if np.all(sizes > 0):
        sign = np.where(a < 0, -1.0, 1.0)
        target_W = np.stack([problem.teacher.V[owner == i].sum(axis=0) / math.sqrt(m * (2 * m - 1))
                             for i, m in enumerate(sizes)])
        distance = float(max(np.abs(sign * a - sizes).max(), np.abs(sign[:, None] * W - target_W).max()))
        if distance < ca_atol:
            partition = tuple(sorted((int(m) for m in sizes), reverse=True))
    if partition is not None:
        kind = "optimal-ca" if partition == optimal_partition(k, n) else "ca"
    elif np.all(max_cos > copy_cos) and len(set(best.tolist())) == n:
        kind = "approx-copy"
    else:
        kind = "other"
    return Endpoint(kind=kind, loss=problem.loss(theta), grad_norm=float(np.abs(g).max()),
                    lambda_min=float(eig[0]), n_negative=int(np.sum(eig < -curvature_tol)),
                    partition=partition, distance=distance, max_cos=max_cos, teacher=best)


def symmetric_images(problem: Problem, theta, max_images: int = 5040) -> np.ndarray:
    """Images of ``theta`` under student permutations and sign flips ``(a_i, w_i) -> (-a_i, -w_i)``.

    For erf (odd activation) every image has the same loss; for ReLU only permutations keep it.

    Args:
        problem: the problem.
        theta: the point.
        max_images: refuse more permutations than this (``n!`` grows fast).

    Returns:
        Array of shape ``(n! 2^n, P)`` for erf, ``(n!, P)`` for ReLU.
    """
    a, W = problem.unpack(_as_float(theta, "theta", ndim=1))
    n = problem.n
    if math.factorial(n) > max_images:
        raise ValueError(f"{math.factorial(n)} permutations of {n} students exceed max_images = {max_images}")
    signs = [np.ones(n)] if problem.activation == "relu" else [
        np.array([1.0 if (s >> i) & 1 == 0 else -1.0 for i in range(n)]) for s in range(2**n)]
    out = []
    for perm in permutations(range(n)):
        p = list(perm)
        for s in signs:
            out.append(problem.pack(s * a[p], s[:, None] * W[p]))
    return np.array(out)
