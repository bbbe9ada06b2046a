"""Gradient flow of small multilayer perceptrons, with analytic gradients and Hessians.

The science of the chapter ``gradient-flow``: Brea, Martinelli, Şimşek & Gerstner (2023),
"MLPGradientFlow: going with the flow of multilayer perceptrons (and finding minima fast and
accurately)", arXiv:2301.10638. The infinite-data (Gaussian input) limit of the same networks is
:mod:`lib.teacher_student`, shared with the chapter ``copy-average``.

A one-hidden-layer network ``f(x) = sum_i a_i sigma(w_i . x + b_i) + c`` (biases optional) is
trained on the mean squared error ``MSE = (1/N) sum_n (f(x_n) - y_n)^2``. With residuals ``e`` and
the ``N x P`` Jacobian ``J`` of ``f``,

    grad MSE = (2/N) J^T e,     hess MSE = (2/N) [J^T J + sum_n e_n hess f_n],

where ``hess f_n`` is block-sparse (only the ``(w_i, b_i) x (w_i, b_i, a_i)`` blocks of each
neuron). The Hessian accumulates ``J^T J`` in chunks over samples, so the Jacobian is never
stored whole. This module also gives the gradient flow ``d theta/dt = -grad MSE`` through the
``scipy.integrate`` solvers (the implicit ones with the analytic Hessian as Jacobian), gradient
descent and Adam as the usual discretisations, the distance between two trajectories, minimisers
of ``scipy.optimize`` with the analytic derivatives, and torch autograd references.

Parameters are flattened as ``theta = [a (k), W (k x d, row-major), b (k), c]``; without biases
``theta = [a, W]``, the layout of :class:`lib.teacher_student.Problem`. Everything is float64.
Models only: no presets, no plotting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy.special import erf, expit

from lib import teacher_student as ts

#: Activations (``erf`` is ``erf(z / sqrt 2)``, the convention of :mod:`lib.teacher_student`).
ACTIVATIONS: tuple[str, ...] = ("softplus", "erf", "tanh", "relu")

#: ``scipy.integrate`` solvers accepted by :func:`integrate_flow`; the implicit ones get the Hessian.
METHODS: tuple[str, ...] = ("Radau", "BDF", "LSODA", "RK45", "RK23", "DOP853")
IMPLICIT_METHODS: tuple[str, ...] = ("Radau", "BDF", "LSODA")

#: Methods accepted by :func:`minimise`: ``scipy.optimize.minimize`` methods, and ``"lm"``,
#: Levenberg-Marquardt on the residuals (``scipy.optimize.least_squares``, MINPACK).
MINIMISERS: tuple[str, ...] = ("trust-exact", "BFGS", "L-BFGS-B", "Newton-CG", "lm")

#: Samples per chunk when the Hessian accumulates ``J^T J``.
CHUNK = 4096

#: Pre-activations per chunk of the gradient (``N k`` values in chunks of about 0.5 MB, so that
#: the temporaries stay in cache: at ``N = 10^4, k = 50`` this halves the time of one pass).
GRAD_CHUNK_VALUES = 2**16

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _positive_int(x, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x!r}")
    return int(x)


def _positive(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating)) or not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive finite number, got {x!r}")
    return float(x)


def _array(x, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _softplus(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``softplus(z)`` and its slope ``expit(z)`` from one exponential, elementwise.

    ``log(1 + e^z)`` with the rounding of ``u = 1 + e^z`` corrected (``log1p(e) = log u -
    ((u - 1) - e) / u``), ``z`` clipped at 40 where ``softplus(z) = z`` in float64; relative
    error below 5e-16 over all of float64 against ``logaddexp(0, z)``, and about twice as fast
    as ``logaddexp`` and ``expit`` apart.
    """
    zc = np.minimum(z, 40.0)
    e = np.exp(zc)
    u = e + 1.0
    s = np.log(u)
    c = u - 1.0
    c -= e
    c /= u
    s -= c
    zc -= z
    s -= zc  # + (z - min(z, 40))
    e /= u
    return s, e


def _value_and_slope(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The activation and its first derivative (one pass for softplus)."""
    if name == "softplus":
        return _softplus(z)
    return activation(name, z), activation(name, z, 1)


def activation(name: str, z: np.ndarray, order: int = 0) -> np.ndarray:
    """The activation (``order = 0``) or its first or second derivative, elementwise.

    Args:
        name: one of :data:`ACTIVATIONS`.
        z: pre-activations.
        order: 0, 1 or 2.

    Returns:
        An array of the shape of ``z``.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
    if name == "softplus":
        if order == 0:
            return _softplus(np.asarray(z, dtype=float))[0]
        s = expit(z)
        return s if order == 1 else s * (1.0 - s)
    if name == "erf":
        if order == 0:
            return erf(z / math.sqrt(2.0))
        g = _SQRT_2_OVER_PI * np.exp(-0.5 * z * z)
        return g if order == 1 else -z * g
    if name == "tanh":
        t = np.tanh(z)
        if order == 0:
            return t
        return 1.0 - t * t if order == 1 else -2.0 * t * (1.0 - t * t)
    if order == 0:  # relu
        return np.maximum(z, 0.0)
    return (z > 0).astype(float) if order == 1 else np.zeros_like(z)


@dataclass(frozen=True)
class MLP:
    """A one-hidden-layer perceptron with a scalar output.

    Args:
        d: input dimension.
        k: hidden width.
        activation: one of :data:`ACTIVATIONS`.
        bias: hidden and output biases (``P = k (d + 2) + 1``) or none (``P = k (d + 1)``).
    """

    d: int
    k: int
    activation: str = "softplus"
    bias: bool = True

    def __post_init__(self):
        _positive_int(self.d, "input dimension d")
        _positive_int(self.k, "hidden width k")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be True or False, got {self.bias!r}")

    @property
    def n_params(self) -> int:
        """Number of parameters ``P``."""
        return self.k * (self.d + 2) + 1 if self.bias else self.k * (self.d + 1)

    def pack(self, a, W, b=None, c: float = 0.0) -> np.ndarray:
        """Flatten ``a`` (``(k,)``), ``W`` (``(k, d)``), ``b`` (``(k,)``) and ``c`` into ``theta``."""
        a = _array(a, "output weights a", 1)
        W = _array(W, "input weights W", 2)
        if a.shape != (self.k,) or W.shape != (self.k, self.d):
            raise ValueError(f"expected a of shape ({self.k},) and W of shape ({self.k}, {self.d}), "
                             f"got {a.shape} and {W.shape}")
        if not self.bias:
            return np.concatenate([a, W.ravel()])
        b = np.zeros(self.k) if b is None else _array(b, "biases b", 1)
        if b.shape != (self.k,):
            raise ValueError(f"expected b of shape ({self.k},), got {b.shape}")
        return np.concatenate([a, W.ravel(), b, [float(c)]])

    def unpack(self, theta) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Split ``theta`` into ``(a, W, b, c)`` (zeros for the biases of a bias-free net)."""
        theta = _array(theta, "theta", 1)
        if theta.shape[0] != self.n_params:
            raise ValueError(f"theta must have length P = {self.n_params}, got {theta.shape[0]}")
        k, d = self.k, self.d
        a, W = theta[:k], theta[k:k + k * d].reshape(k, d)
        if not self.bias:
            return a, W, np.zeros(k), 0.0
        return a, W, theta[k + k * d:k + k * d + k], float(theta[-1])

    def _check_x(self, x) -> np.ndarray:
        x = _array(x, "inputs x", 2)
        if x.shape[1] != self.d:
            raise ValueError(f"inputs x must have shape (N, {self.d}), got {x.shape}")
        return x

    def predict(self, theta, x) -> np.ndarray:
        """Network outputs ``f(x_n)``, shape ``(N,)`` for inputs of shape ``(N, d)``."""
        a, W, b, c = self.unpack(theta)
        x = self._check_x(x)
        return activation(self.activation, x @ W.T + b) @ a + c

    def jacobian(self, theta, x) -> np.ndarray:
        """The ``N x P`` Jacobian of the outputs with respect to ``theta`` (materialised)."""
        a, W, b, _ = self.unpack(theta)
        x = self._check_x(x)
        z = x @ W.T
        z += b
        s, s1 = _value_and_slope(self.activation, z)
        s1 *= a
        parts = [s, (s1[:, :, None] * x[:, None, :]).reshape(len(x), -1)]
        if self.bias:
            parts += [s1, np.ones((len(x), 1))]
        return np.concatenate(parts, axis=1)

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Glorot-normal initialisation (MLPGradientFlow.jl): ``W ~ N(0, 2/(d+k))``,
        ``a ~ N(0, 2/(k+1))``, zero biases. ``W`` is drawn before ``a``."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator")
        W = rng.normal(0.0, math.sqrt(2.0 / (self.d + self.k)), size=(self.k, self.d))
        a = rng.normal(0.0, math.sqrt(2.0 / (self.k + 1)), size=self.k)
        return self.pack(a, W)

    def random(self, rng: np.random.Generator) -> np.ndarray:
        """A random teacher: every parameter (biases included) standard normal."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator")
        return rng.normal(size=self.n_params)


def teacher_data(teacher: MLP, theta_teacher, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard Gaussian inputs and the teacher's outputs on them.

    Returns:
        ``(x, y)`` of shapes ``(n, d)`` and ``(n,)``.
    """
    n = _positive_int(n, "sample size n")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    x = rng.standard_normal((n, teacher.d))
    return x, teacher.predict(theta_teacher, x)


@dataclass(frozen=True)
class Objective:
    """The mean squared error of ``net`` on data ``(x, y)``, with analytic derivatives.

    ``loss``, ``gradient`` and ``hessian`` take ``theta`` and can be handed to
    ``scipy.optimize.minimize`` or to :func:`integrate_flow` (which also accepts a
    :class:`lib.teacher_student.Problem`, the infinite-data limit).

    Args:
        net: the network.
        x: inputs, shape ``(N, d)``.
        y: targets, shape ``(N,)``.
        chunk: samples per chunk of the Hessian's ``J^T J``.
    """

    net: MLP
    x: np.ndarray
    y: np.ndarray
    chunk: int = CHUNK

    def __post_init__(self):
        if not isinstance(self.net, MLP):
            raise ValueError(f"net must be an MLP, got {type(self.net).__name__}")
        x = self.net._check_x(self.x)
        y = _array(self.y, "targets y", 1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}; expected equal")
        _positive_int(self.chunk, "chunk")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return self.x.shape[0]

    def loss(self, theta) -> float:
        """``MSE(theta)``."""
        e = self.net.predict(theta, self.x) - self.y
        return float(e @ e / self.n)

    def gradient(self, theta) -> np.ndarray:
        """``grad MSE = (2/N) J^T e``, by backpropagation, ``O(N P)``, in chunks of samples
        (:data:`GRAD_CHUNK_VALUES` pre-activations each) with in-place temporaries."""
        net = self.net
        a, W, b, c = net.unpack(theta)
        g_a, g_W, g_b, g_c = np.zeros(net.k), np.zeros((net.k, net.d)), np.zeros(net.k), 0.0
        rows = max(64, GRAD_CHUNK_VALUES // net.k)
        for lo in range(0, self.n, rows):
            x = self.x[lo:lo + rows]
            z = x @ W.T
            z += b
            s, s1 = _value_and_slope(net.activation, z)
            e = s @ a
            e += c - self.y[lo:lo + rows]
            g_a += e @ s
            s1 *= e[:, None]
            s1 *= a  # now e_n a_i s'(z_ni)
            g_W += s1.T @ x
            g_b += s1.sum(axis=0)
            g_c += e.sum()
        parts = [g_a, g_W.ravel()]
        if net.bias:
            parts += [g_b, [g_c]]
        return (2.0 / self.n) * np.concatenate(parts)

    def hessian(self, theta) -> np.ndarray:
        """``hess MSE = (2/N) [J^T J + sum_n e_n hess f_n]``, ``J^T J`` accumulated in chunks."""
        net, k, d = self.net, self.net.k, self.net.d
        a, W, b, c = net.unpack(theta)
        P = net.n_params
        H = np.zeros((P, P))
        dt = d + 1 if net.bias else d  # length of x-tilde = (x, 1)
        T = np.zeros((k, dt, dt))
        C = np.zeros((k, dt))
        for lo in range(0, self.n, self.chunk):
            x = self.x[lo:lo + self.chunk]
            z = x @ W.T + b
            s, s1 = _value_and_slope(net.activation, z)
            s2 = s1 * (1.0 - s1) if net.activation == "softplus" else activation(net.activation, z, 2)
            e = s @ a + c - self.y[lo:lo + self.chunk]
            J = [s, ((s1 * a)[:, :, None] * x[:, None, :]).reshape(len(x), -1)]
            xt = np.concatenate([x, np.ones((len(x), 1))], axis=1) if net.bias else x
            if net.bias:
                J += [s1 * a, np.ones((len(x), 1))]
            J = np.concatenate(J, axis=1)
            H += J.T @ J
            xx = (xt[:, :, None] * xt[:, None, :]).reshape(len(x), dt * dt)
            T += ((e[:, None] * s2).T @ xx).reshape(k, dt, dt)  # sum_n e s'' x~ x~^T
            C += (e[:, None] * s1).T @ xt
        # indices of (w_i, b_i) for every neuron i
        idx = k + np.arange(k)[:, None] * d + np.arange(d)[None, :]
        if net.bias:
            idx = np.concatenate([idx, (k + k * d + np.arange(k))[:, None]], axis=1)
        H[idx[:, :, None], idx[:, None, :]] += a[:, None, None] * T
        ai = np.broadcast_to(np.arange(k)[:, None], idx.shape)
        H[ai, idx] += C
        H[idx, ai] += C
        return (2.0 / self.n) * H

    def grad_norm(self, theta) -> float:
        """``max |grad MSE|``."""
        return float(np.abs(self.gradient(theta)).max())

    def residuals(self, theta) -> np.ndarray:
        """``r = (f(x_n) - y_n) / sqrt(N)``, so that ``MSE = r . r``."""
        return (self.net.predict(theta, self.x) - self.y) / math.sqrt(self.n)

    def residual_jacobian(self, theta) -> np.ndarray:
        """The ``N x P`` Jacobian of :meth:`residuals`, ``J / sqrt(N)`` (materialised)."""
        J = self.net.jacobian(theta, self.x)
        J *= 1.0 / math.sqrt(self.n)
        return J


# ----------------------------------------------------------------------------- trajectories


@dataclass(frozen=True)
class Trajectory:
    """A path in parameter space.

    Attributes:
        t: flow times of the recorded points (for gradient descent and Adam: steps times the
            learning rate), shape ``(T,)``.
        theta: the points, shape ``(T, P)``.
        n_grad: gradient evaluations.
        n_hess: Hessian evaluations.
        method: the method's name.
        message: how it ended.
    """

    t: np.ndarray
    theta: np.ndarray
    n_grad: int
    n_hess: int
    method: str
    message: str

    @property
    def end(self) -> np.ndarray:
        """The last point."""
        return self.theta[-1]


def _check_objective(obj):
    for name in ("loss", "gradient", "hessian"):
        if not callable(getattr(obj, name, None)):
            raise ValueError(f"objective must have a callable {name}(theta), got {type(obj).__name__}")


def integrate_flow(obj, theta0, *, method: str = "Radau", t_max: float = 1e4, rtol: float = 1e-6,
                   atol: float = 1e-6, grad_tol: float = 1e-12, max_steps: int = 100_000) -> Trajectory:
    """Integrate ``d theta/dt = -grad L(theta)`` with a ``scipy.integrate`` solver.

    The solver is stepped one step at a time (the loop :func:`lib.teacher_student.flow_steps`,
    shared with the infinite-data flow); it stops at ``t_max``, once the largest gradient entry
    is below ``grad_tol``, or after ``max_steps`` steps (a deterministic compute budget). The
    implicit solvers get ``-hessian`` as their Jacobian.

    Args:
        obj: an :class:`Objective` or a :class:`lib.teacher_student.Problem`.
        theta0: the initial point.
        method: one of :data:`METHODS`.
        t_max: the longest time (flow units of ``L``).
        rtol, atol: the solver's tolerances.
        grad_tol: the stopping rule on ``max |grad|``.
        max_steps: the most solver steps.

    Returns:
        A :class:`Trajectory` with every accepted step.
    """
    _check_objective(obj)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    for name, val in (("t_max", t_max), ("rtol", rtol), ("atol", atol), ("grad_tol", grad_tol)):
        _positive(val, name)
    max_steps = _positive_int(max_steps, "max_steps")
    theta0 = _array(theta0, "theta0", 1).copy()
    run = ts.flow_steps(obj.gradient, obj.hessian, theta0, method=method, t_max=t_max,
                        rtol=rtol, atol=atol, grad_tol=grad_tol, max_steps=max_steps)
    t_end = run.t[-1]
    if run.failure:
        message = f"{method} failed at t = {t_end:.4g}: {run.failure}"
    elif run.converged:
        message = f"max |grad| < {grad_tol:g} at t = {t_end:.4g}"
    elif run.status == "running":
        message = f"step budget ({max_steps}) spent at t = {t_end:.4g}"
    else:
        message = f"t_max = {t_max:g} reached"
    return Trajectory(run.t, run.theta, run.n_grad, run.n_hess, method, message)


def descent(obj, theta0, *, lr: float, n_steps: int, adam: bool = False, betas=(0.9, 0.999),
            eps: float = 1e-8, record_every: int = 1,
            max_seconds: float | None = None) -> Trajectory:
    """Gradient descent ``theta <- theta - lr grad L`` or Adam (Kingma & Ba) on ``L``.

    Args:
        obj: an :class:`Objective` or a :class:`lib.teacher_student.Problem`.
        theta0: the initial point.
        lr: the learning rate (one step of gradient descent is a flow time ``lr``).
        n_steps: number of steps.
        adam: Adam instead of plain descent.
        betas, eps: Adam's moment decay rates and denominator offset.
        record_every: keep every this many steps (and the last).
        max_seconds: if given, also stop once this much CPU time (``time.process_time``) has
            passed (a time budget: the number of steps then depends on the machine).

    Returns:
        A :class:`Trajectory` (``t`` = steps times ``lr``; ``n_grad`` = steps taken).
    """
    _check_objective(obj)
    lr = _positive(lr, "lr")
    if max_seconds is not None:
        max_seconds = _positive(max_seconds, "max_seconds")
    n_steps = _positive_int(n_steps, "n_steps")
    record_every = _positive_int(record_every, "record_every")
    b1, b2 = betas
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"Adam betas must lie in [0, 1), got {betas!r}")
    theta = _array(theta0, "theta0", 1).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    ts_, ys = [0.0], [theta.copy()]
    t0 = time.process_time()
    step = 0
    for step in range(1, n_steps + 1):
        g = obj.gradient(theta)
        if adam:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            theta = theta - lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps)
        else:
            theta = theta - lr * g
        out_of_time = max_seconds is not None and time.process_time() - t0 > max_seconds
        if step % record_every == 0 or step == n_steps or out_of_time:
            ts_.append(step * lr)
            ys.append(theta.copy())
        if out_of_time:
            break
    name = f"Adam({lr:g})" if adam else f"GD({lr:g})"
    return Trajectory(np.array(ts_), np.array(ys), step, 0, name, f"{step} steps")


def trajectory_distance(path, reference: Trajectory, n_samples: int = 200) -> tuple[float, float]:
    """How closely ``path`` follows ``reference``, the metrics of the paper's integrator figure.

    ``n_samples`` points of ``path`` (evenly spaced in its index) are projected onto the polyline
    through the reference's points.

    Args:
        path: a :class:`Trajectory` (or an array of points ``(T, P)``).
        reference: the reference trajectory (the exact flow, a tight-tolerance solver).
        n_samples: points of ``path`` used.

    Returns:
        ``(d_m, t_m)``: the mean over the samples of the smallest squared Euclidean distance to
        the reference, and the largest reference time matched by a sample ("progress").
    """
    pts = path.theta if isinstance(path, Trajectory) else _array(path, "path", 2)
    if not isinstance(reference, Trajectory):
        raise ValueError("reference must be a Trajectory")
    if pts.shape[1] != reference.theta.shape[1]:
        raise ValueError(f"path has {pts.shape[1]} parameters, reference {reference.theta.shape[1]}")
    n_samples = _positive_int(n_samples, "n_samples")
    if len(reference.t) < 2:
        raise ValueError(f"the reference must have at least 2 points (a path to project on), "
                         f"got {len(reference.t)}")
    if len(pts) < 1:
        raise ValueError("the path has no points")
    q = pts[np.unique(np.linspace(0, len(pts) - 1, n_samples).round().astype(int))]
    p0, p1 = reference.theta[:-1], reference.theta[1:]
    seg = p1 - p0
    L2 = np.maximum(np.sum(seg * seg, axis=1), 1e-300)
    t0, t1 = reference.t[:-1], reference.t[1:]
    best = np.full(len(q), np.inf)
    when = np.zeros(len(q))
    for lo in range(0, len(q), 32):
        qq = q[lo:lo + 32]
        u = (np.einsum("qp,sp->qs", qq, seg) - (p0 * seg).sum(1)) / L2
        u = np.clip(u, 0.0, 1.0)
        proj = p0[None] + u[:, :, None] * seg[None]
        dist = np.sum((qq[:, None, :] - proj) ** 2, axis=2)
        j = dist.argmin(axis=1)
        best[lo:lo + 32] = dist[np.arange(len(qq)), j]
        when[lo:lo + 32] = t0[j] + u[np.arange(len(qq)), j] * (t1[j] - t0[j])
    return float(best.mean()), float(when.max())


@dataclass(frozen=True)
class Scaled:
    """An objective whose loss (and so gradient and Hessian) is multiplied by ``factor``.

    Its gradient flow follows the same path as the original's but ``factor`` times as fast:
    the control of the solver comparison (a gradient that is wrong by a constant factor). A
    metric that ignores time, such as :func:`trajectory_distance`, cannot tell the two apart;
    :func:`flow_error` can.
    """

    obj: object
    factor: float

    def __post_init__(self):
        _check_objective(self.obj)
        _positive(self.factor, "factor")

    def loss(self, theta) -> float:
        return self.factor * self.obj.loss(theta)

    def gradient(self, theta) -> np.ndarray:
        return self.factor * self.obj.gradient(theta)

    def hessian(self, theta) -> np.ndarray:
        return self.factor * self.obj.hessian(theta)


def torch_flow(net: MLP, theta0, x, y, *, t_max: float, rtol: float = 1e-10,
               atol: float = 1e-12, method: str = "Radau"):
    """The gradient flow of the MSE computed without this module's derivatives: an
    independent reference.

    The right-hand side is the torch autograd gradient (``.backward()``) of :func:`torch_mse` (an
    independent torch implementation of the same network), the Jacobian of the implicit solvers
    ``torch.func.hessian``; the integration is ``scipy.integrate.solve_ivp`` with dense output.

    Args:
        net, theta0, x, y: the network, the initial point and the data.
        t_max: the end time (flow units).
        rtol, atol: the solver's tolerances.
        method: a ``solve_ivp`` method (:data:`METHODS`).

    Returns:
        ``(trajectory, dense)``: a :class:`Trajectory` of the accepted steps and the dense
        solution, a callable ``t -> theta(t)`` (``(P,)`` for a scalar, ``(P, T)`` for an array).
    """
    import torch

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    t_max = _positive(t_max, "t_max")
    rtol, atol = _positive(rtol, "rtol"), _positive(atol, "atol")
    theta0 = _array(theta0, "theta0", 1)
    net.unpack(theta0)
    mse = torch_mse(net)
    xt = torch.as_tensor(net._check_x(x), dtype=torch.float64)
    yt = torch.as_tensor(_array(y, "targets y", 1), dtype=torch.float64)
    f_hess = torch.func.hessian(mse)
    count = {"g": 0, "h": 0}

    def rhs(t, th):
        count["g"] += 1
        v = torch.tensor(th, dtype=torch.float64, requires_grad=True)
        mse(v, xt, yt).backward()
        return -v.grad.numpy()

    def jac(t, th):
        count["h"] += 1
        return -f_hess(torch.as_tensor(th), xt, yt).numpy()

    kw = {"jac": jac} if method in IMPLICIT_METHODS else {}
    sol = integrate.solve_ivp(rhs, (0.0, t_max), theta0, method=method, rtol=rtol, atol=atol,
                              dense_output=True, **kw)
    if not sol.success:
        raise RuntimeError(f"the reference flow failed: {sol.message}")
    tr = Trajectory(sol.t, sol.y.T.copy(), count["g"], count["h"], f"torch {method}",
                    f"rtol = {rtol:g}, atol = {atol:g}")
    return tr, sol.sol


def flow_error(path: Trajectory, dense) -> float:
    """How far ``path`` is from the flow at the same times: the largest Euclidean distance
    ``|theta_path(t_i) - theta_ref(t_i)|`` over the points of ``path``.

    Unlike :func:`trajectory_distance`, this is a distance at matched times, so a method that
    runs along the right path at the wrong speed (a scaled gradient) is far from the flow.

    Args:
        path: a :class:`Trajectory` (its ``t`` must lie in the reference's time span).
        dense: the reference's dense solution (the second value of :func:`torch_flow`).

    Returns:
        The largest distance.
    """
    if not isinstance(path, Trajectory):
        raise ValueError("path must be a Trajectory")
    ref = np.asarray(dense(path.t), float)
    if ref.ndim != 2 or ref.shape != path.theta.T.shape:
        raise ValueError(f"the reference gives shape {ref.shape}, expected {path.theta.T.shape}")
    return float(np.sqrt(np.sum((path.theta.T - ref) ** 2, axis=0)).max())


# ----------------------------------------------------------------------------- minima


@dataclass(frozen=True)
class Minimum:
    """The end point of :func:`minimise`.

    Attributes:
        theta: the point.
        loss: its loss.
        grad_norm: ``max |grad|``.
        lambda_min: the smallest eigenvalue of the Hessian.
        n_iter: the optimiser's iterations.
        method: the optimiser.
    """

    theta: np.ndarray
    loss: float
    grad_norm: float
    lambda_min: float
    n_iter: int
    method: str


def describe(obj, theta, n_iter: int = 0, method: str = "") -> Minimum:
    """The :class:`Minimum` record of a point: loss, ``max |grad|``, smallest Hessian eigenvalue."""
    _check_objective(obj)
    theta = _array(theta, "theta", 1)
    lam = float(np.linalg.eigvalsh(obj.hessian(theta))[0])
    return Minimum(theta.copy(), float(obj.loss(theta)), float(np.abs(obj.gradient(theta)).max()), lam,
                   int(n_iter), method)


def minimise(obj, theta0, *, method: str = "trust-exact", gtol: float = 1e-14,
             max_iter: int = 2000) -> Minimum:
    """Minimise ``obj`` from ``theta0`` with its analytic derivatives.

    ``scipy.optimize.minimize`` with the analytic gradient (and Hessian where used), or, for
    ``method="lm"``, Levenberg-Marquardt on the residuals (``scipy.optimize.least_squares``,
    MINPACK's ``lmder``, with the analytic Jacobian of :meth:`Objective.residual_jacobian`;
    its tolerances at machine epsilon, so that the evaluation budget stops it).

    Args:
        obj: an :class:`Objective` or a :class:`lib.teacher_student.Problem` (``"lm"`` needs
            an :class:`Objective`: the residuals of finite data).
        theta0: the start (typically the end of a gradient flow).
        method: one of :data:`MINIMISERS` (``trust-exact``: Newton trust region).
        gtol: the optimiser's gradient tolerance (``scipy.optimize.minimize`` methods).
        max_iter: the most iterations (for ``"lm"``: residual evaluations).

    Returns:
        A :class:`Minimum` (for ``"lm"``, ``n_iter`` counts residual evaluations).
    """
    _check_objective(obj)
    if method not in MINIMISERS:
        raise ValueError(f"unknown minimiser {method!r}; expected one of {', '.join(MINIMISERS)}")
    gtol = _positive(gtol, "gtol")
    max_iter = _positive_int(max_iter, "max_iter")
    theta0 = _array(theta0, "theta0", 1)
    if method == "lm":
        if not (callable(getattr(obj, "residuals", None))
                and callable(getattr(obj, "residual_jacobian", None))):
            raise ValueError("method 'lm' needs residuals(theta) and residual_jacobian(theta) "
                             f"(an Objective), got {type(obj).__name__}")
        eps = float(np.finfo(float).eps)
        res = optimize.least_squares(obj.residuals, theta0, jac=obj.residual_jacobian,
                                     method="lm", ftol=eps, xtol=eps, gtol=eps,
                                     max_nfev=max_iter)
        return describe(obj, res.x, res.nfev, method)
    opts: dict = {"maxiter": max_iter}
    kw: dict = {}
    if method in ("trust-exact", "Newton-CG"):
        kw["hess"] = obj.hessian
    if method == "L-BFGS-B":
        opts.update(gtol=gtol, ftol=0.0)
    elif method == "Newton-CG":
        opts.update(xtol=1e-16)
    else:
        opts.update(gtol=gtol)
    res = optimize.minimize(obj.loss, theta0, jac=obj.gradient, method=method, options=opts, **kw)
    return describe(obj, res.x, res.nit, method)


# ----------------------------------------------------------------------------- torch references


def torch_mse(net: MLP):
    """A torch function ``mse(theta, x, y)`` of the same network (for autograd comparisons)."""
    import torch

    if not isinstance(net, MLP):
        raise ValueError(f"net must be an MLP, got {type(net).__name__}")
    k, d = net.k, net.d
    act = {"softplus": torch.nn.functional.softplus, "tanh": torch.tanh, "relu": torch.relu,
           "erf": lambda z: torch.erf(z / math.sqrt(2.0))}[net.activation]

    def mse(theta, x, y):
        a, W = theta[:k], theta[k:k + k * d].reshape(k, d)
        z = x @ W.T
        out = act(z + theta[k + k * d:k + k * d + k]) @ a + theta[-1] if net.bias else act(z) @ a
        return ((out - y) ** 2).mean()

    return mse


def torch_derivatives(net: MLP, theta, x, y, how: str = "func"):
    """Gradient and Hessian of the MSE by torch autograd, float64, as numpy arrays.

    Args:
        net, theta, x, y: the network, the point and the data.
        how: ``"func"`` (``torch.func.grad`` and ``torch.func.hessian``) or ``"functional"``
            (``.backward()`` and ``torch.autograd.functional.hessian``, the paper's baseline).

    Returns:
        ``(gradient, hessian)``.
    """
    import torch

    if how not in ("func", "functional"):
        raise ValueError(f"how must be 'func' or 'functional', got {how!r}")
    mse = torch_mse(net)
    th = torch.as_tensor(np.asarray(theta, float), dtype=torch.float64)
    xt = torch.as_tensor(np.asarray(x, float), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y, float), dtype=torch.float64)
    if how == "func":
        g = torch.func.grad(mse)(th, xt, yt)
        H = torch.func.hessian(mse)(th, xt, yt)
    else:
        tv = th.clone().requires_grad_(True)
        mse(tv, xt, yt).backward()
        g = tv.grad
        H = torch.autograd.functional.hessian(lambda t: mse(t, xt, yt), th)
    return g.detach().numpy(), H.detach().numpy()
