"""Fitted value iteration with quadratic features and exact Gaussian expectations.

The model and the maths are in :mod:`formulations.linear_gaussian`. The loop:

1. targets :math:`y_j = \\max_a r(z_j, a) + \\beta\\,\\mathbb{E}[\\phi(z')]^\\top\\theta_k`
   on the sample states (the expected features are exact and computed once);
2. :math:`\\theta_{k+1}` by least squares (the pseudo-inverse of the fixed
   design matrix is computed once; optional ridge on the non-constant
   weights);
3. stop when :math:`\\|\\theta_{k+1} - \\theta_k\\|_\\infty \\le \\text{tol}\\,(1 + \\|\\theta_{k+1}\\|_\\infty)`
   (``converged``) or at ``max_iter`` (not converged, reported).

The result reports the Bellman residual :math:`|V_\\theta - TV_\\theta|` on
the sample and on independent test states.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from formulations.errors import InputError
from formulations.linear_gaussian import (LinearGaussianMDP, expected_features, expected_value, n_features,
                                          quadratic_features, unpack)
from solvers.dp import _single_threaded_blas


@dataclass
class FittedVIResult:
    """Quadratic value function V(z) = constant + linear . z + z' quadratic z, with its residuals.

    Attributes
    ----------
    theta : ndarray (p,)
        Feature weights.
    constant, linear, quadratic : float, ndarray (d,), ndarray (d, d)
    num_iter : int
    converged : bool
    residual_max, residual_rms : float
        Bellman residual on the sample states.
    test_residual_max, test_residual_rms : float
        Bellman residual on fresh test states.
    value_scale : float
        max |V| on the sample (to read the residuals relatively).
    time : float
    """

    theta: np.ndarray
    constant: float
    linear: np.ndarray
    quadratic: np.ndarray
    num_iter: int
    converged: bool
    residual_max: float
    residual_rms: float
    test_residual_max: float
    test_residual_rms: float
    value_scale: float
    time: float
    history: list = field(default_factory=list, repr=False)

    def value(self, Z: np.ndarray) -> np.ndarray:
        return quadratic_features(Z) @ self.theta


def bellman_targets(mdp: LinearGaussianMDP, theta: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((T V_theta)(z_j), greedy action) on states Z (N, d)."""
    q = mdp.rewards(Z) + mdp.beta * expected_value(theta, mdp.next_means(Z), mdp.noise_cov)
    return q.max(axis=1), q.argmax(axis=1)


def greedy_actions(mdp: LinearGaussianMDP, theta: np.ndarray, Z: np.ndarray) -> np.ndarray:
    return bellman_targets(mdp, theta, Z)[1]


def bellman_residual(mdp: LinearGaussianMDP, theta: np.ndarray, Z: np.ndarray) -> tuple[float, float]:
    """(max, RMS) of |V_theta(z) - (T V_theta)(z)| over states Z."""
    r = quadratic_features(Z) @ theta - bellman_targets(mdp, theta, Z)[0]
    return float(np.abs(r).max()), float(np.sqrt(np.mean(r ** 2)))


def fitted_value_iteration(mdp: LinearGaussianMDP, states: np.ndarray | None = None, n_samples: int = 2000,
                           sample_scale: float = 1.0, test_states: np.ndarray | None = None, ridge: float = 0.0,
                           tol: float = 1e-10, max_iter: int = 2000, random_state: int = 0) -> FittedVIResult:
    """Fitted VI on ``states`` (default: N(0, sample_scale^2 I) draws).

    Parameters
    ----------
    mdp : LinearGaussianMDP
    states : ndarray (N, d), optional
        Regression states; N must be at least the number of features.
    test_states : ndarray, optional
        States for the out-of-sample residual (default: fresh draws).
    ridge : float
        L2 penalty on the non-constant weights (0: plain least squares).
    """
    if not isinstance(mdp, LinearGaussianMDP):
        raise InputError("mdp", f"expected a LinearGaussianMDP, got {type(mdp).__name__}")
    start = time.perf_counter()
    d = mdp.dim
    p = n_features(d)
    rng = np.random.default_rng(random_state)
    Z = rng.normal(0.0, sample_scale, size=(n_samples, d)) if states is None else np.asarray(states, np.float64)
    if Z.ndim != 2 or Z.shape[1] != d or Z.shape[0] < p or not np.isfinite(Z).all():
        raise InputError("states", f"expected at least {p} finite states of dimension {d}, got shape {Z.shape}")
    Zt = rng.normal(0.0, sample_scale, size=(max(n_samples // 2, p), d)) if test_states is None else \
        np.asarray(test_states, np.float64)
    Phi = quadratic_features(Z)
    if ridge < 0 or not np.isfinite(ridge):
        raise InputError("ridge", f"expected a number >= 0, got {ridge!r}")
    if ridge > 0:
        penalty = np.sqrt(ridge) * np.eye(p)[1:]
        design = np.vstack([Phi, penalty])
    else:
        design = Phi
    solve = np.linalg.pinv(design)                     # (p, N [+ p - 1]): theta = solve @ targets
    rewards = mdp.rewards(Z)                           # (N, A)
    next_phi = expected_features(mdp.next_means(Z), mdp.noise_cov)   # (N, A, p): E[phi(z')]
    theta = np.zeros(p)
    converged = False
    history = []
    it = 0
    with _single_threaded_blas():        # (p x N) products: threads only wait for each other
        for it in range(1, max_iter + 1):
            y = (rewards + mdp.beta * (next_phi @ theta)).max(axis=1)
            rhs = np.concatenate([y, np.zeros(p - 1)]) if ridge > 0 else y
            new = solve @ rhs
            change = float(np.abs(new - theta).max())
            theta = new
            history.append(change)
            if change <= tol * (1.0 + float(np.abs(theta).max())):
                converged = True
                break
    res_max, res_rms = bellman_residual(mdp, theta, Z)
    test_max, test_rms = bellman_residual(mdp, theta, Zt)
    c, lin, Theta = unpack(theta, d)
    return FittedVIResult(theta, c, lin, Theta, it, converged, res_max, res_rms, test_max, test_rms,
                          float(np.abs(Phi @ theta).max()), time.perf_counter() - start, history)
