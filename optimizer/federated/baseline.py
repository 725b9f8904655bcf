"""Centralised reference fit: the same L2-regularised log-loss on the pooled data (scipy L-BFGS).

Kept independent of issue 9's response model so the federated comparison
does not move when that model changes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from formulations.federated import ClientData, log_loss, log_loss_grad


def pool_clients(clients: Sequence[ClientData]) -> tuple[np.ndarray, np.ndarray]:
    """Stack every client's rows into one (X, y) — what a central server would hold."""
    return np.vstack([c.X for c in clients]), np.concatenate([c.y for c in clients])


def fit_centralised(X: np.ndarray, y: np.ndarray, l2: float = 1e-4, tol: float = 1e-10) -> np.ndarray:
    """Minimise ``log_loss(theta, X, y, l2)`` with L-BFGS-B from θ = 0; returns θ."""
    from scipy.optimize import minimize

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    res = minimize(log_loss, np.zeros(X.shape[1]), args=(X, y, l2), jac=log_loss_grad, method="L-BFGS-B",
                   options={"maxiter": 1000, "gtol": tol, "ftol": tol})
    return res.x


__all__ = ["pool_clients", "fit_centralised"]
