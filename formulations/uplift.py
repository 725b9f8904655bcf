r"""Response and uplift models, and the contact utilities the planner optimises.

This module states the maths of :mod:`optimizer.uplift` and holds the plain
NumPy pieces (loss, gradient, Hessian, design matrices, the utility rule).
It imports no solver and nothing from :mod:`optimizer`.

Customers, actions, outcomes
----------------------------
Customer *i* has a state :math:`s_i \in \mathbb{R}^p`: digital features
:math:`x_i` (web/app activity), call-centre features :math:`c_i` (calls,
complaints), branch / offline features :math:`o_i` (visits, amounts) and
static attributes. An action :math:`a \in \{0, 1, \dots, M\}` is "no
contact" (:math:`a = 0`) or a contact through channel *m*. The outcome
:math:`y \in \{0, 1\}` (responded) or :math:`y \in \mathbb{R}` (spend).

Response model (pooled logistic with action interactions)
---------------------------------------------------------
With :math:`e_a \in \{0,1\}^M` the one-hot code of the channel
(:math:`e_0 = 0`) and :math:`g(s)` the state columns that may change the
effect of a contact (default: all of them), the feature map is

.. math:: f(s, a) = \bigl[1,\; s,\; e_a,\; e_a \otimes g(s)\bigr]
          \in \mathbb{R}^{1 + p + M + M q}

(:func:`response_design`), and :math:`p(s, a) = \sigma(\theta^\top f(s, a))`,
:math:`\sigma(z) = 1 / (1 + e^{-z})`. The parameters minimise the
L2-penalised, optionally weighted, logistic loss

.. math::

    \ell(\theta) = \sum_j w_j \bigl[\log(1 + e^{\eta_j}) - y_j \eta_j\bigr]
                   + \tfrac{\lambda}{2} \sum_{k \ge 1} \theta_k^2,
    \qquad \eta_j = \theta^\top f_j,

with the intercept :math:`\theta_0` not penalised (:func:`logistic_loss`,
:func:`logistic_gradient_hessian`). :math:`\ell` is convex, strictly so for
:math:`\lambda > 0`; gradient :math:`F^\top W(\sigma(\eta) - y) + \lambda
\bar\theta`, Hessian :math:`F^\top W D F + \lambda \bar I` with
:math:`D = \mathrm{diag}(\sigma(\eta)(1-\sigma(\eta)))`. Solvers
(:mod:`solvers.logistic`): Newton's method with backtracking, stopping when
half the squared Newton decrement :math:`\tfrac12 g^\top H^{-1} g` is below
``tol`` (relative to the number of rows), or scipy's L-BFGS-B stopping on
the projected-gradient norm. Standard errors are the square roots of the
diagonal of :math:`H^{-1}` at the optimum (the usual asymptotic covariance
when :math:`\lambda` is small against *n*).

The uplift of channel *m* for a customer is

.. math:: \tau_m(s) = p(s, m) - p(s, 0).

T-learner
---------
One model per action fitted on that action's rows only:
:math:`\mu_a(x) = E[y \mid x, a]`, logistic (binary *y*) or ridge
(real *y*, :math:`\min_\beta \sum_j w_j (y_j - \beta^\top [1, x_j])^2 +
\lambda \sum_{k \ge 1}\beta_k^2`), and :math:`\tau_m(x) = \mu_m(x) -
\mu_0(x)`. Optional Platt calibration replaces a logistic :math:`\mu_a` by
:math:`\sigma(\alpha_a \eta_a(x) + \beta_a)` fitted on a held-out share of
the rows (:class:`optimizer.evaluation.PlattScaling`).

Linear uplift model (transformed outcome)
-----------------------------------------
For channel *m* against control, on the rows with :math:`a \in \{0, m\}`,
:math:`t = [a = m]` and the known (or empirical) assignment probability
:math:`e = P(t = 1)`, the transformed outcome

.. math:: z = y \, \frac{t - e}{e (1 - e)}

satisfies :math:`E[z \mid x] = \tau_m(x)` under random assignment
(Athey & Imbens 2016). The linear uplift model
:math:`\tau_m(x) = g(x)^\top \delta_m` is the ridge regression of *z* on
:math:`g(x) = [1, x]` (:func:`transformed_outcome`).

Contact utilities
-----------------
For the planner's (n, M, T) array (:class:`formulations.assignment.PlanningProblem`):

.. math:: u_{imt} = \hat\tau_{im}\, v_i\, w_{mt} - c_m,

with :math:`\hat\tau` the predicted uplift, :math:`v_i` the value of a
response (from history: e.g. mean spend of responders), :math:`w_{mt}`
the day-of-week multiplier of channel *m* on day *t* (1 = no effect) and
:math:`c_m` the contact cost (:func:`contact_utilities`). Day-of-week
multipliers can be estimated from logged contacts by
:func:`day_of_week_effects`: with :math:`\hat\tau_{md}` the treated-minus-control
response rate of channel *m* on weekday *d* over :math:`n_{md}` treated
contacts and :math:`\hat\tau_m` over all days,

.. math:: w_{md} = \frac{n_{md}\,\hat\tau_{md} + \kappa\,\hat\tau_m}{(n_{md} + \kappa)\,\hat\tau_m}
          \quad\text{clipped to } [0, w_{\max}],

a shrinkage towards 1 with pseudo-count :math:`\kappa` (1 where the channel
has no positive overall uplift or no data on that day).

Metrics
-------
log-loss :math:`-\frac1n \sum_j [y_j \log p_j + (1-y_j)\log(1-p_j)]`
(probabilities clipped to :math:`[\epsilon, 1-\epsilon]`, :math:`\epsilon = 10^{-15}`),
ROC AUC = the Mann-Whitney probability that a positive outranks a negative
(ties count one half); Qini coefficient, AUUC and uplift@k as in
:mod:`optimizer.evaluation.uplift_metrics`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import expit, log_expit

from formulations.errors import InputError

EPS_PROB = 1e-15


def sigmoid(z: np.ndarray) -> np.ndarray:
    """:math:`\\sigma(z)`, numerically stable."""
    return expit(z)


def logistic_loss(theta: np.ndarray, features: np.ndarray, y: np.ndarray, l2: float,
                  weights: np.ndarray | None = None) -> float:
    """:math:`\\ell(\\theta)` of the module docstring (column 0 of ``features`` is the intercept)."""
    eta = features @ theta
    per_row = -(y * log_expit(eta) + (1.0 - y) * log_expit(-eta))
    total = float(per_row.sum() if weights is None else weights @ per_row)
    return total + 0.5 * l2 * float(theta[1:] @ theta[1:])


def logistic_loss_grad(theta: np.ndarray, features: np.ndarray, y: np.ndarray, l2: float,
                       weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """``(loss, gradient)`` — the objective handed to L-BFGS."""
    eta = features @ theta
    per_row = -(y * log_expit(eta) + (1.0 - y) * log_expit(-eta))
    resid = expit(eta) - y
    if weights is not None:
        per_row = per_row * weights
        resid = resid * weights
    grad = features.T @ resid
    grad[1:] += l2 * theta[1:]
    loss = float(per_row.sum()) + 0.5 * l2 * float(theta[1:] @ theta[1:])
    return loss, grad


def logistic_gradient_hessian(theta: np.ndarray, features: np.ndarray, y: np.ndarray, l2: float,
                              weights: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """``(loss, gradient, Hessian)`` in plain NumPy (BLAS); the reference for the numba kernel."""
    eta = features @ theta
    p = expit(eta)
    per_row = -(y * log_expit(eta) + (1.0 - y) * log_expit(-eta))
    resid = p - y
    curv = p * (1.0 - p)
    if weights is not None:
        per_row, resid, curv = per_row * weights, resid * weights, curv * weights
    grad = features.T @ resid
    grad[1:] += l2 * theta[1:]
    hess = features.T @ (features * curv[:, None])
    idx = np.arange(1, theta.shape[0])
    hess[idx, idx] += l2
    loss = float(per_row.sum()) + 0.5 * l2 * float(theta[1:] @ theta[1:])
    return loss, grad, hess


def ridge_solve(features: np.ndarray, y: np.ndarray, l2: float, weights: np.ndarray | None = None) -> np.ndarray:
    """:math:`\\arg\\min_\\beta \\sum_j w_j (y_j - \\beta^\\top f_j)^2 + \\lambda \\sum_{k\\ge1} \\beta_k^2`."""
    fw = features if weights is None else features * weights[:, None]
    gram = fw.T @ features
    idx = np.arange(1, features.shape[1])
    gram[idx, idx] += l2
    rhs = fw.T @ y
    try:
        return np.linalg.solve(gram, rhs)
    except np.linalg.LinAlgError:  # singular design without penalty: minimum-norm solution
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]


def response_design(state: np.ndarray, action: np.ndarray, n_actions: int,
                    interact: Sequence[int] | None = None) -> np.ndarray:
    """The feature map :math:`f(s, a) = [1, s, e_a, e_a \\otimes g(s)]` row by row.

    Parameters
    ----------
    state : ndarray (n, p)
    action : ndarray of int (n,)
        0 = no contact, 1..M = channel.
    n_actions : int
        M, the number of channels.
    interact : sequence of int, optional
        Columns of ``state`` forming :math:`g(s)` (default: all).

    Returns
    -------
    ndarray (n, 1 + p + M + M q), float64
    """
    s = np.asarray(state, dtype=np.float64)
    n, p = s.shape
    cols = np.arange(p) if interact is None else np.asarray(interact, dtype=np.int64)
    q = cols.size
    out = np.zeros((n, 1 + p + n_actions + n_actions * q))
    out[:, 0] = 1.0
    out[:, 1:1 + p] = s
    a = np.asarray(action, dtype=np.int64)
    rows = np.flatnonzero(a > 0)
    out[rows, 1 + p + a[rows] - 1] = 1.0
    g = s[:, cols]
    base = 1 + p + n_actions
    for m in range(1, n_actions + 1):
        r = np.flatnonzero(a == m)
        out[np.ix_(r, base + (m - 1) * q + np.arange(q))] = g[r]
    return out


def response_feature_names(state_names: Sequence[str], channel_names: Sequence[str],
                           interact: Sequence[int] | None = None) -> list[str]:
    """Names of the columns of :func:`response_design` (``intercept``, state, ``a=<ch>``, ``<ch>*<state>``)."""
    cols = range(len(state_names)) if interact is None else list(interact)
    names = ["intercept", *state_names, *(f"a={c}" for c in channel_names)]
    for c in channel_names:
        names += [f"{c}*{state_names[k]}" for k in cols]
    return names


def transformed_outcome(y: np.ndarray, treated: np.ndarray, propensity: float | np.ndarray) -> np.ndarray:
    """:math:`z = y (t - e) / (e (1 - e))`, whose conditional mean is the uplift under randomisation."""
    e = np.asarray(propensity, dtype=np.float64)
    if np.any(e <= 0) or np.any(e >= 1):
        raise InputError("propensity", "expected treatment probabilities strictly between 0 and 1")
    t = np.asarray(treated, dtype=np.float64)
    return np.asarray(y, dtype=np.float64) * (t - e) / (e * (1.0 - e))


def contact_utilities(uplift: np.ndarray, value: float | np.ndarray, cost: np.ndarray,
                      day_effect: np.ndarray) -> np.ndarray:
    """:math:`u_{imt} = \\hat\\tau_{im} v_i w_{mt} - c_m` as an (n, M, T) float64 array."""
    tau = np.asarray(uplift, dtype=np.float64)
    v = np.broadcast_to(np.asarray(value, dtype=np.float64), (tau.shape[0],))
    w = np.asarray(day_effect, dtype=np.float64)
    return (tau * v[:, None])[:, :, None] * w[None, :, :] - np.asarray(cost, dtype=np.float64)[None, :, None]


def day_of_week_effects(channel: np.ndarray, weekday: np.ndarray, treated: np.ndarray, y: np.ndarray,
                        n_channels: int, n_days: int = 7, pseudo_count: float = 200.0,
                        max_effect: float = 3.0) -> np.ndarray:
    """Shrunken multiplicative day-of-week uplift effects :math:`w_{md}` (module docstring), shape (M, T).

    ``channel`` (0..M-1) and ``weekday`` (0..T-1) of each logged contact, ``treated`` 0/1 (control rows
    carry the channel and day they were assigned), ``y`` the outcome.
    """
    ch = np.asarray(channel, dtype=np.int64)
    wd = np.asarray(weekday, dtype=np.int64)
    t = np.asarray(treated, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    out = np.ones((n_channels, n_days))
    for m in range(n_channels):
        on_m = ch == m
        tr, co = on_m & (t == 1), on_m & (t == 0)
        if not tr.any() or not co.any():
            continue
        control_rate = y[co].mean()
        overall = y[tr].mean() - control_rate
        if overall <= 0:
            continue
        for d in range(n_days):
            td = tr & (wd == d)
            n_md = int(td.sum())
            if n_md == 0:
                continue
            cd = co & (wd == d)
            base = y[cd].mean() if cd.sum() >= 30 else control_rate
            tau_md = y[td].mean() - base
            out[m, d] = (n_md * tau_md + pseudo_count * overall) / ((n_md + pseudo_count) * overall)
    return np.clip(out, 0.0, max_effect)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy with probabilities clipped to ``[1e-15, 1 - 1e-15]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS_PROB, 1.0 - EPS_PROB)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log1p(-q)))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted one half."""
    from scipy.stats import rankdata

    y = np.asarray(y)
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    n_pos = int((y == 1).sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InputError("y_true", "AUC needs both outcomes (0 and 1)")
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
