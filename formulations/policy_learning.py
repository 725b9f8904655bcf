r"""Score transforms and the policy gradient of the Lagrangian policy.

The maths is stated in :mod:`formulations.policy` (sections *Diversity and
exploration*); this module implements it in NumPy.

Diversity
    :math:`s'(x, a) = s(x, a) - \gamma \sum_b q_b(x) Q_{ba}` for
    :math:`a \ge 1` (no contact is never penalised and exposure to "no
    contact" counts for nothing): :math:`q(x) \ge 0` is the unit's recent
    exposure per action, :math:`Q \ge 0` the item similarity.

Exploration
    :math:`u = \hat\mu + \kappa\,\hat\sigma` (upper confidence bound),
    :math:`\kappa \ge 0`.

Policy gradient (linear score model)
    Scores :math:`u_\theta(x, a) = \phi(x, a)^\top \theta`, policy
    :math:`\pi_\theta = \operatorname{softmax}((u_\theta - \lambda^\top A)/\tau)`
    over the allowed actions, Lagrangian reward
    :math:`\tilde r(x, a) = r(x, a) - \lambda^\top A_a`, objective
    :math:`J(\theta) = \mathbb E_x \sum_a \pi_\theta(a|x)\, \bar r(x, a)`
    with :math:`\bar r = \mathbb E[\tilde r \mid x, a]`.

    * score function: :math:`\nabla_\theta \log \pi(a|x) = (\phi(x,a) - \sum_b \pi_b \phi(x,b)) / \tau`;
    * REINFORCE estimate from logged :math:`(x_i, a_i, r_i)` drawn from
      :math:`\pi_\theta`: :math:`G = \frac1n \sum_i (\tilde r_i - \beta_i)\nabla_\theta\log\pi(a_i|x_i)`;
      any baseline :math:`\beta` that does not depend on :math:`a_i` leaves
      it unbiased because :math:`\sum_a \pi_a \nabla \log \pi_a = 0`;
    * analytic gradient: :math:`\nabla J = \mathbb E_x \sum_a \pi_a\, \bar r_a\, (\phi_a - \bar\phi)/\tau`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formulations import _validate as v
from formulations.errors import InputError
from formulations.policy import ResourceModel, check_temperature, policy_probabilities


def diversify_scores(scores: Any, exposure: Any, similarity: Any, gamma: float) -> np.ndarray:
    """s' = s - gamma q^T Q on actions 1..A (float64 copy; the input is not modified).

    Parameters
    ----------
    scores : array_like (n, A+1)
    exposure : array_like (n, A+1)
        Recent exposure q per action (column 0 ignored), >= 0.
    similarity : array_like (A+1, A+1)
        Item similarity Q (row and column 0 ignored), >= 0.
    gamma : float
        Penalty weight >= 0.
    """
    s = v.numeric_array("scores", scores, ndim=2)
    n, a1 = s.shape
    q = v.numeric_array("exposure", exposure, ndim=2, shape=(n, a1))
    Q = v.numeric_array("similarity", similarity, ndim=2, shape=(a1, a1))
    v.check_finite_nonnegative("exposure", q)
    v.check_finite_nonnegative("similarity", Q)
    g = v.nonnegative_scalar("gamma", gamma)
    out = s.copy()
    out[:, 1:] -= g * (q[:, 1:] @ Q[1:, 1:])
    return out


def ucb_scores(mean: Any, std: Any, kappa: float) -> np.ndarray:
    """Upper-confidence scores mu + kappa * sigma (NaN in ``mean`` stays NaN: missing)."""
    mu = v.numeric_array("mean", mean, ndim=(1, 2))
    sd = v.numeric_array("std", std, ndim=mu.ndim, shape=mu.shape)
    bad = np.isfinite(sd) & (sd < 0) | np.isinf(sd)
    if bad.any():
        flat = int(np.flatnonzero(bad.ravel())[0])
        raise InputError("std", f"expected finite standard deviations >= 0, got {sd.ravel()[flat]!r}")
    k = v.nonnegative_scalar("kappa", kappa)
    return mu + k * sd


@dataclass(frozen=True)
class PolicyGradient:
    """A policy-gradient estimate.

    Attributes
    ----------
    gradient : ndarray (p,)
        Mean of the per-sample terms.
    standard_error : ndarray (p,)
        Standard error of that mean (per coordinate).
    baseline : ndarray (n,)
        The baseline used per sample.
    """

    gradient: np.ndarray
    standard_error: np.ndarray
    baseline: np.ndarray


def _check_features(features: Any, theta: Any) -> tuple[np.ndarray, np.ndarray]:
    phi = v.numeric_array("features", features, ndim=3)
    th = v.numeric_array("theta", theta, ndim=1, shape=(phi.shape[2],))
    return phi, th


def model_probabilities(features: Any, theta: Any, resources: ResourceModel, prices: Any, temperature: float,
                        eligible: Any = None) -> np.ndarray:
    """pi_theta (n, A+1) for the linear score model u = phi theta (temperature > 0)."""
    phi, th = _check_features(features, theta)
    tau = check_temperature(temperature)
    if tau == 0:
        raise InputError("temperature", "expected a temperature > 0 (the argmax policy has no gradient)")
    if phi.shape[1] != resources.n_columns:
        raise InputError("features", f"expected shape (n, {resources.n_columns}, p), got {phi.shape}")
    e = None if eligible is None else np.asarray(eligible, dtype=bool)
    return policy_probabilities(phi @ th, e, resources.price_cost(np.asarray(prices, dtype=np.float64)), tau)


def score_function(features: np.ndarray, probs: np.ndarray, actions: np.ndarray, temperature: float) -> np.ndarray:
    """grad_theta log pi(a_i | x_i) = (phi(x_i, a_i) - sum_b pi_b phi(x_i, b)) / tau, (n, p)."""
    mean_phi = np.einsum("na,nap->np", np.nan_to_num(probs), features)
    return (features[np.arange(features.shape[0]), actions] - mean_phi) / temperature


def reinforce_gradient(features: Any, theta: Any, actions: Any, rewards: Any, resources: ResourceModel, prices: Any,
                       temperature: float, eligible: Any = None, baseline: Any = "mean") -> PolicyGradient:
    """REINFORCE estimate G = mean_i (r_i - lambda^T A_{a_i} - beta_i) grad log pi(a_i | x_i).

    Parameters
    ----------
    features : array_like (n, A+1, p)
    theta : array_like (p,)
    actions : array_like of int (n,)
        Actions drawn from pi_theta.
    rewards : array_like (n,)
        Observed rewards r_i (before the resource price).
    resources : ResourceModel
    prices : array_like (k,)
    temperature : float
    eligible : array_like of bool (n, A+1), optional
    baseline : "mean", None, a number or array_like (n,)
        ``"mean"`` uses the batch mean of the Lagrangian rewards (bias O(1/n)).
    """
    phi, th = _check_features(features, theta)
    n = phi.shape[0]
    a = np.asarray(actions)
    if a.shape != (n,) or a.dtype.kind not in "iu" or (a < 0).any() or (a >= phi.shape[1]).any():
        raise InputError("actions", f"expected {n} action indices in 0..{phi.shape[1] - 1}")
    r = v.numeric_array("rewards", rewards, ndim=1, shape=(n,))
    probs = model_probabilities(phi, th, resources, prices, temperature, eligible)
    lagrangian = r - (np.asarray(prices, dtype=np.float64) @ resources.costs)[a]
    if isinstance(baseline, str) and baseline == "mean":
        beta = np.full(n, lagrangian.mean())
    elif baseline is None:
        beta = np.zeros(n)
    else:
        beta = np.broadcast_to(np.asarray(baseline, dtype=np.float64), (n,)).copy()
    terms = (lagrangian - beta)[:, None] * score_function(phi, probs, a, float(temperature))
    se = terms.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(th.shape, np.inf)
    return PolicyGradient(terms.mean(axis=0), se, beta)


def lagrangian_objective(features: Any, theta: Any, mean_rewards: Any, resources: ResourceModel, prices: Any,
                         temperature: float, eligible: Any = None) -> float:
    """J(theta) = mean_i sum_a pi_a (rbar_a - lambda^T A_a)."""
    probs = model_probabilities(features, theta, resources, prices, temperature, eligible)
    rbar = np.asarray(mean_rewards, dtype=np.float64) - resources.price_cost(np.asarray(prices, dtype=np.float64))
    return float(np.mean(np.sum(np.where(probs > 0, probs * rbar, 0.0), axis=1)))


def analytic_gradient(features: Any, theta: Any, mean_rewards: Any, resources: ResourceModel, prices: Any,
                      temperature: float, eligible: Any = None) -> np.ndarray:
    """grad J = mean_i sum_a pi_a rbar_a (phi_a - phibar) / tau, (p,)."""
    phi, th = _check_features(features, theta)
    probs = model_probabilities(phi, th, resources, prices, temperature, eligible)
    rbar = np.asarray(mean_rewards, dtype=np.float64) - resources.price_cost(np.asarray(prices, dtype=np.float64))
    weighted = np.where(probs > 0, probs * rbar, 0.0)                       # (n, A+1)
    mean_phi = np.einsum("na,nap->np", probs, phi)
    centred = phi - mean_phi[:, None, :]
    return np.einsum("na,nap->p", weighted, centred) / (phi.shape[0] * float(temperature))
