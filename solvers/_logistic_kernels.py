"""numba kernel of the logistic Newton solver, with its plain NumPy twin.

``logistic_grad_hess(X, y, w, theta, l2)`` returns the penalised loss, gradient
and Hessian of :func:`formulations.uplift.logistic_gradient_hessian` in one
pass over the rows. Rows are split into fixed chunks accumulated in parallel
(``prange``) and reduced afterwards, so the result does not depend on the
thread count. Zero entries of a row are skipped in the Hessian update, which
makes the kernel fast on the sparse one-hot / interaction designs of the
response model (BLAS cannot skip them).
"""

from __future__ import annotations

import math

import numpy as np

from formulations.uplift import logistic_gradient_hessian
from solvers._jit import parallel_kernel, prange

N_CHUNKS = 64


@parallel_kernel
def logistic_grad_hess(X, y, w, theta, l2):
    """``(loss, grad (d,), hess (d, d))`` of the weighted, L2-penalised logistic loss (intercept = column 0)."""
    n, d = X.shape
    n_chunks = min(N_CHUNKS, max(n, 1))
    loss_parts = np.zeros(n_chunks)
    grad_parts = np.zeros((n_chunks, d))
    hess_parts = np.zeros((n_chunks, d, d))
    nz = np.empty((n_chunks, d), dtype=np.int64)
    for c in prange(n_chunks):
        lo = c * n // n_chunks
        hi = (c + 1) * n // n_chunks
        for i in range(lo, hi):
            eta = 0.0
            k_nz = 0
            for k in range(d):
                xk = X[i, k]
                if xk != 0.0:
                    eta += xk * theta[k]
                    nz[c, k_nz] = k
                    k_nz += 1
            if eta > 0.0:
                e = math.exp(-eta)
                softplus = eta + math.log1p(e)
                p = 1.0 / (1.0 + e)
            else:
                e = math.exp(eta)
                softplus = math.log1p(e)
                p = e / (1.0 + e)
            wi = w[i]
            loss_parts[c] += wi * (softplus - y[i] * eta)
            r = wi * (p - y[i])
            v = wi * p * (1.0 - p)
            for a in range(k_nz):
                j = nz[c, a]
                xj = X[i, j]
                grad_parts[c, j] += r * xj
                vx = v * xj
                for b in range(a + 1):
                    k = nz[c, b]
                    hess_parts[c, j, k] += vx * X[i, k]
    loss = 0.0
    grad = np.zeros(d)
    hess = np.zeros((d, d))
    for c in range(n_chunks):
        loss += loss_parts[c]
        for j in range(d):
            grad[j] += grad_parts[c, j]
            for k in range(j + 1):
                hess[j, k] += hess_parts[c, j, k]
    for j in range(d):
        for k in range(j):
            hess[k, j] = hess[j, k]
    for j in range(1, d):
        loss += 0.5 * l2 * theta[j] * theta[j]
        grad[j] += l2 * theta[j]
        hess[j, j] += l2
    return loss, grad, hess


def logistic_grad_hess_numpy(X, y, w, theta, l2):
    """NumPy twin of :func:`logistic_grad_hess` (BLAS products)."""
    return logistic_gradient_hessian(theta, X, y, l2, w)
