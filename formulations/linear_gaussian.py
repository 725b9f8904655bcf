r"""Continuous customer state with linear-Gaussian dynamics, for fitted value iteration.

Model
-----
State :math:`z \in \mathbb{R}^d` (e.g. engagement, fatigue, recency as
continuous scores), a finite action set :math:`a \in \{0..A-1\}` (no contact
and the channels), dynamics and rewards

.. math::

    z' = F z + g_a + \eta, \quad \eta \sim N(0, \Sigma), \qquad
    r(z, a) = c_a + w_a^\top z + z^\top H_a z,

with :math:`g_a` the columns of *G* (the action effects) and discount
:math:`\beta \in [0, 1)`.

Quadratic value functions and exact expectations
------------------------------------------------
Features :math:`\phi(z) = (1, z_1..z_d, z_i z_j \; (i \le j))`, so
:math:`V_\theta(z) = \theta^\top\phi(z) = \theta_0 + \theta_\ell^\top z + z^\top \Theta z`
with :math:`\Theta_{ii} = \theta_{ii}` and
:math:`\Theta_{ij} = \Theta_{ji} = \theta_{ij}/2`. For
:math:`\mu = F z + g_a` the Gaussian expectation is exact:

.. math::

    \mathbb{E}[V_\theta(z')] = \theta_0 + \theta_\ell^\top \mu + \mu^\top \Theta \mu
                                + \operatorname{tr}(\Theta \Sigma),

because :math:`\mathbb{E}[z'z'^\top] = \mu\mu^\top + \Sigma`. No sampling
enters the Bellman backup; only the regression is approximate.

Fitted value iteration (:mod:`solvers.fitted_vi`)
-------------------------------------------------
On sample states :math:`z_1..z_N`,
:math:`y_j = \max_a r(z_j, a) + \beta\, \mathbb{E}[V_{\theta_k}(z')]` and
:math:`\theta_{k+1} = \arg\min_\theta \sum_j (\phi(z_j)^\top\theta - y_j)^2`.
With a single action and a quadratic reward the true value is quadratic
(:math:`\Theta = H + \beta F^\top \Theta F`, a discrete Lyapunov equation),
so fitted VI converges to it exactly; with several actions the max makes
*V* piecewise quadratic and the fit is an approximation. Its quality is
reported as the **Bellman residual** :math:`|V_\theta(z) - (TV_\theta)(z)|`
(max and RMS) on the sample and on fresh test states; by the contraction
bound :math:`\|V_\theta - V^*\| \le \|TV_\theta - V_\theta\|/(1-\beta)` on
the region where the residual was measured (a heuristic statement off the
sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formulations.errors import InputError
from formulations.mdp import check_beta


def _matrix(field: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise InputError(field, f"expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(field, "expected finite numbers")
    return arr


@dataclass(frozen=True, eq=False)
class LinearGaussianMDP:
    """z' = F z + G[:, a] + N(0, noise_cov); r(z, a) = c[a] + w[a] . z + z' H[a] z.

    Parameters
    ----------
    F : array_like (d, d)
    G : array_like (d, A)
        Effect of each action (use a zero column for "no contact").
    noise_cov : array_like (d, d)
        Symmetric positive semi-definite.
    reward_const : array_like (A,)
    reward_linear : array_like (A, d)
    reward_quadratic : array_like (d, d) or (A, d, d), optional
        Symmetrised on construction (default zero).
    beta : float
    """

    F: Any
    G: Any
    noise_cov: Any
    reward_const: Any
    reward_linear: Any
    reward_quadratic: Any = None
    beta: float = 0.95

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        F = np.asarray(self.F, dtype=np.float64)
        if F.ndim != 2 or F.shape[0] != F.shape[1] or F.shape[0] == 0:
            raise InputError("F", f"expected a square (d, d) matrix, got shape {F.shape}")
        d = F.shape[0]
        set_(self, "F", _matrix("F", F, (d, d)))
        G = np.asarray(self.G, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != d or G.shape[1] == 0:
            raise InputError("G", f"expected shape ({d}, A) with A >= 1, got {G.shape}")
        A = G.shape[1]
        set_(self, "G", _matrix("G", G, (d, A)))
        S = _matrix("noise_cov", self.noise_cov, (d, d))
        if not np.allclose(S, S.T, atol=1e-12) or np.linalg.eigvalsh(0.5 * (S + S.T)).min() < -1e-10:
            raise InputError("noise_cov", "expected a symmetric positive semi-definite matrix")
        set_(self, "noise_cov", 0.5 * (S + S.T))
        set_(self, "reward_const", _matrix("reward_const", np.broadcast_to(self.reward_const, (A,)), (A,)))
        set_(self, "reward_linear", _matrix("reward_linear", self.reward_linear, (A, d)))
        H = np.zeros((A, d, d)) if self.reward_quadratic is None else np.asarray(self.reward_quadratic, np.float64)
        if H.shape == (d, d):
            H = np.broadcast_to(H, (A, d, d))
        H = _matrix("reward_quadratic", H, (A, d, d))
        set_(self, "reward_quadratic", 0.5 * (H + H.transpose(0, 2, 1)))
        set_(self, "beta", check_beta(self.beta))

    @property
    def dim(self) -> int:
        return int(self.F.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.G.shape[1])

    def rewards(self, Z: np.ndarray) -> np.ndarray:
        """r(z, a) for states Z (N, d): (N, A)."""
        Z = np.asarray(Z, dtype=np.float64)
        quad = np.einsum("ni,aij,nj->na", Z, self.reward_quadratic, Z)
        return self.reward_const[None, :] + Z @ self.reward_linear.T + quad

    def next_means(self, Z: np.ndarray) -> np.ndarray:
        """mu = F z + g_a for states Z (N, d): (N, A, d)."""
        return (Z @ self.F.T)[:, None, :] + self.G.T[None, :, :]

    def sample_next(self, Z: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw z' for states Z (N, d) and actions (N,)."""
        mu = Z @ self.F.T + self.G.T[actions]
        return mu + rng.multivariate_normal(np.zeros(self.dim), self.noise_cov, size=Z.shape[0], method="cholesky")


def n_features(d: int) -> int:
    """1 + d + d (d + 1) / 2."""
    return 1 + d + d * (d + 1) // 2


def quadratic_features(Z: np.ndarray) -> np.ndarray:
    """phi(z) = (1, z, z_i z_j for i <= j) for states Z (N, d): (N, p)."""
    Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
    N, d = Z.shape
    iu, ju = np.triu_indices(d)
    return np.concatenate([np.ones((N, 1)), Z, Z[:, iu] * Z[:, ju]], axis=1)


def unpack(theta: np.ndarray, d: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(theta_0, theta_l (d,), Theta (d, d) symmetric) from the feature weights."""
    theta = np.asarray(theta, dtype=np.float64)
    iu, ju = np.triu_indices(d)
    Theta = np.zeros((d, d))
    quad = theta[1 + d:]
    Theta[iu, ju] = np.where(iu == ju, quad, quad / 2)
    Theta[ju, iu] = Theta[iu, ju]
    return float(theta[0]), theta[1:1 + d].copy(), Theta


def expected_features(means: np.ndarray, noise_cov: np.ndarray) -> np.ndarray:
    """E[phi(z')] for z' ~ N(mean, noise_cov), for means of shape (..., d) (exact).

    ``E[z_i z_j] = mu_i mu_j + Sigma_ij``, so the expectation adds Sigma's
    upper triangle to the quadratic features of the mean; E[V_theta(z')] =
    expected_features . theta is linear in theta.
    """
    means = np.asarray(means, dtype=np.float64)
    d = means.shape[-1]
    flat = quadratic_features(means.reshape(-1, d))
    iu, ju = np.triu_indices(d)
    flat[:, 1 + d:] += noise_cov[iu, ju]
    return flat.reshape(means.shape[:-1] + (flat.shape[1],))


def expected_value(theta: np.ndarray, means: np.ndarray, noise_cov: np.ndarray) -> np.ndarray:
    """E[V_theta(z')] for z' ~ N(mean, noise_cov), for means of shape (..., d) (exact)."""
    d = means.shape[-1]
    c, lin, Theta = unpack(theta, d)
    return c + means @ lin + np.einsum("...i,ij,...j->...", means, Theta, means) + float(np.sum(Theta * noise_cov))
