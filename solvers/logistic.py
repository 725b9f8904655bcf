r"""L2-penalised logistic regression: Newton (numba or NumPy) and L-BFGS (scipy).

Problem (see :mod:`formulations.uplift`)::

    min_theta  sum_j w_j [log(1 + exp(eta_j)) - y_j eta_j] + (lambda / 2) sum_{k >= 1} theta_k^2,
    eta_j = theta' f_j,   column 0 of F is the (unpenalised) intercept.

Methods
-------
``newton``        Newton's method; gradient and Hessian in one pass by the numba kernel
                  (:mod:`solvers._logistic_kernels`, skips zero features), the step
                  :math:`H^{-1} g` by Cholesky, Armijo backtracking on the loss. Starts
                  at :math:`\theta = (\mathrm{logit}\,\bar y, 0, \dots)`. Stops when half
                  the squared Newton decrement :math:`g^\top H^{-1} g / 2 \le`
                  ``tol`` :math:`\cdot \sum_j w_j` (the loss is then within about that
                  of the optimum), or after ``max_iter`` iterations.
``newton-numpy``  The same iteration with the NumPy/BLAS twin of the kernel.
``lbfgs``         scipy's L-BFGS-B on (loss, gradient), stopping when the largest
                  gradient component is below ``gtol`` :math:`= 10^{-5}\sqrt{\sum_j w_j}`
                  or the relative loss change is below ``ftol`` :math:`= 10^{-13}`.

The default is the method measured fastest in ``benchmarks/uplift.md``.
``hessian`` is returned (Newton always, L-BFGS on request) for standard
errors: :math:`\mathrm{se}_k = \sqrt{(H^{-1})_{kk}}`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from formulations.errors import InputError
from formulations.uplift import logistic_loss, logistic_loss_grad

METHODS = ("newton", "newton-numpy", "lbfgs")
DEFAULT_METHOD = "newton"


@dataclass(frozen=True)
class LogisticFit:
    """Result of :func:`fit_logistic`.

    Attributes
    ----------
    coef : ndarray (d,)
        :math:`\\theta`, intercept first.
    loss : float
        Penalised loss at ``coef``.
    grad_norm : float
        Largest absolute gradient component at ``coef``.
    n_iter : int
    converged : bool
    method : str
    hessian : ndarray (d, d) or None
    seconds : float
    """

    coef: np.ndarray
    loss: float
    grad_norm: float
    n_iter: int
    converged: bool
    method: str
    hessian: np.ndarray | None
    seconds: float

    def standard_errors(self) -> np.ndarray:
        """:math:`\\sqrt{\\mathrm{diag}(H^{-1})}` (needs ``hessian``)."""
        if self.hessian is None:
            raise InputError("hessian", "not computed: fit with compute_hessian=True")
        return np.sqrt(np.diag(np.linalg.inv(self.hessian)))


def _grad_hess(method: str):
    from solvers import _logistic_kernels as K

    return K.logistic_grad_hess if method == "newton" else K.logistic_grad_hess_numpy


def fit_logistic(features: np.ndarray, y: np.ndarray, l2: float = 1.0, weights: np.ndarray | None = None,
                 method: str = DEFAULT_METHOD, tol: float = 1e-12, max_iter: int | None = None,
                 compute_hessian: bool = False) -> LogisticFit:
    """Fit the penalised logistic regression of the module docstring.

    Parameters
    ----------
    features : ndarray (n, d)
        Design matrix; column 0 must be the intercept (ones).
    y : ndarray (n,)
        Outcomes in [0, 1].
    l2 : float
        Penalty :math:`\\lambda \\ge 0` (not applied to the intercept).
    weights : ndarray (n,), optional
        Non-negative row weights (default 1).
    method : {"newton", "newton-numpy", "lbfgs"}
    tol : float
        Newton stopping tolerance (per unit of weight).
    max_iter : int, optional
        Default 50 (Newton) or 2000 (L-BFGS).
    compute_hessian : bool
        Also return the Hessian for L-BFGS (Newton always does).
    """
    if method not in METHODS:
        raise InputError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    X = np.ascontiguousarray(features, dtype=np.float64)
    yv = np.ascontiguousarray(y, dtype=np.float64)
    n, d = X.shape
    w = np.ones(n) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        raise InputError("weights", "expected a positive total weight")
    start = time.perf_counter()
    theta = np.zeros(d)
    mean = float(np.clip(w @ yv / total, 1e-6, 1 - 1e-6))
    theta[0] = np.log(mean / (1.0 - mean))
    if method == "lbfgs":
        gtol = 1e-5 * np.sqrt(total)
        res = optimize.minimize(logistic_loss_grad, theta, args=(X, yv, float(l2), w), jac=True, method="L-BFGS-B",
                                options={"gtol": gtol, "ftol": 1e-13, "maxiter": max_iter or 2000,
                                         "maxcor": 20})
        theta = res.x
        loss, grad = logistic_loss_grad(theta, X, yv, float(l2), w)
        hess = _grad_hess("newton")(X, yv, w, theta, float(l2))[2] if compute_hessian else None
        return LogisticFit(theta, float(loss), float(np.abs(grad).max()), int(res.nit), bool(res.success),
                           method, hess, time.perf_counter() - start)
    grad_hess = _grad_hess(method)
    converged, it = False, 0
    loss, grad, hess = grad_hess(X, yv, w, theta, float(l2))
    for it in range(1, (max_iter or 50) + 1):
        try:
            step = linalg.cho_solve(linalg.cho_factor(hess, check_finite=False), grad, check_finite=False)
        except linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        decrement = 0.5 * float(grad @ step)
        if decrement <= tol * total:
            converged = True
            break
        t = 1.0
        while True:
            cand = theta - t * step
            cand_loss = logistic_loss(cand, X, yv, float(l2), w)
            if cand_loss <= loss - 1e-4 * t * 2.0 * decrement or t < 1e-10:
                break
            t *= 0.5
        theta = cand
        loss, grad, hess = grad_hess(X, yv, w, theta, float(l2))
    return LogisticFit(theta, float(loss), float(np.abs(grad).max()), it, converged, method, hess,
                       time.perf_counter() - start)
