"""Off-policy value estimation: IPS, SNIPS, DM, DR and switch-DR, with confidence intervals.

Setting
-------
A logging policy ``pi_0`` made ``n`` decisions ``(x_i, a_i, r_i)``, recording the
propensity ``p_i = pi_0(a_i | x_i) > 0`` of the action it took. The value of a
target policy ``pi_e`` is ``V(pi_e) = E_x sum_a pi_e(a|x) E[r | x, a]``. Per row the
caller supplies

    q_i = pi_e(a_i | x_i)                         target_propensity, in [0, 1]
    m_i = mu(x_i, a_i)                            reward_hat_logged (a reward model)
    d_i = sum_a pi_e(a | x_i) mu(x_i, a)          reward_hat_target

and the importance weight is ``w_i = q_i / p_i``.

Estimators (means over i = 1..n)
--------------------------------
    ips        V = mean(w r)                           unbiased when pi_0(a|x) > 0 wherever pi_e(a|x) > 0
    snips      V = sum(w r) / sum(w)                   self-normalised; bias O(1/n), never outside the reward range
    dm         V = mean(d)                             direct method: as good as the reward model
    dr         V = mean(d + w (r - m))                 doubly robust: unbiased if the propensities are right,
                                                       lower variance than IPS when mu is good
    switch-dr  V = mean(d + w 1[w <= tau] (r - m))     DR on rows with w <= tau, the model beyond (Wang et al. 2017)

Weight clipping (``clip=M``, for ips, snips and dr) replaces ``w`` by ``min(w, M)``:
less variance, a downward bias of at most ``mean((w - M)_+ r)`` for r >= 0. For
switch-dr ``tau`` is ``switch_threshold``; when not given it is chosen from the
weight quantiles {50, 75, 90, 95, 99, 100 %} by the smallest estimated MSE
``se(tau)^2 + (V_tau - V_dr)^2`` with DR as the unbiased pilot (the squared
difference also carries DR's noise, which makes the choice conservative);
the CI does not account for that selection.

Uncertainty
-----------
Every estimator except SNIPS is a mean of per-row pseudo-outcomes ``phi_i``;
its standard error is ``sd(phi) / sqrt(n)`` (ddof = 1) and the normal interval
``V +- z_{1-alpha/2} se``. SNIPS uses the delta method, influence
``phi_i = w_i (r_i - V) / mean(w)``. The bootstrap interval is the percentile
interval of ``n_bootstrap`` Poisson-bootstrap replicates of the same statistic
(the ratio itself for SNIPS), computed by the numba kernel in
``_bootstrap_kernels.py``. Both intervals are conditional on the reward model:
they carry the sampling noise of the logs, not the model's bias, so DM and
switch-DR intervals are too narrow when the model is biased (refit the model
inside the bootstrap for an honest interval, as the Open Bandit check does).
The effective sample size is Kish's
``ESS = (sum w)^2 / sum w^2`` of the (clipped) weights (``n`` for DM); the mean
weight should be close to 1 (``E_0[w] = sum_a pi_e(a|x) = 1`` under support),
a cheap check of the propensities.

Bad input raises :class:`InputError`: empty logs, propensities outside (0, 1],
target propensities outside [0, 1], mismatched shapes, missing reward-model
columns, and a target policy that gives probability 0 to every logged action
(no logged row says anything about it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import stats

from formulations.errors import InputError

METHODS = ("ips", "snips", "dm", "dr", "switch-dr")
CI_METHODS = ("normal", "bootstrap")
_NEEDS_WEIGHTS = ("ips", "snips", "dr", "switch-dr")
_SWITCH_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class OffPolicyResult:
    """An off-policy value estimate with its uncertainty and weight diagnostics.

    Attributes
    ----------
    method : str
        ``ips``, ``snips``, ``dm``, ``dr`` or ``switch-dr``.
    value : float
        Estimated value of the target policy (mean reward per decision).
    std_error : float
        Standard error (normal / delta method).
    ci : tuple of float
        ``(low, high)`` interval of level ``1 - alpha`` from ``ci_method``.
    ci_method : str
        ``normal`` or ``bootstrap``.
    alpha : float
        One minus the interval's confidence level.
    n : int
        Logged rows.
    ess : float
        Kish effective sample size of the importance weights (``n`` for DM).
    ci_normal : tuple of float
        Normal interval (always computed).
    ci_bootstrap : tuple of float or None
        Percentile Poisson-bootstrap interval (when ``ci="bootstrap"``).
    mean_weight, max_weight : float
        Importance-weight diagnostics (NaN for DM).
    n_modified : int
        Rows whose weight was clipped (clip) or handed to the model (switch-dr).
    threshold : float or None
        The clip level or switch threshold used.
    """

    method: str
    value: float
    std_error: float
    ci: tuple[float, float]
    ci_method: str
    alpha: float
    n: int
    ess: float
    ci_normal: tuple[float, float]
    ci_bootstrap: tuple[float, float] | None = None
    mean_weight: float = float("nan")
    max_weight: float = float("nan")
    n_modified: int = 0
    threshold: float | None = None

    def covers(self, truth: float) -> bool:
        """Whether ``truth`` lies in :attr:`ci`."""
        return bool(self.ci[0] <= truth <= self.ci[1])

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci_low"], out["ci_high"] = self.ci
        return out


# --------------------------------------------------------------------------- validation


def _vector(field: str, value: Any, n: int | None) -> np.ndarray:
    if value is None:
        raise InputError(field, "expected a 1-d array, got None")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(field, "expected a 1-d array of numbers") from None
    if arr.ndim != 1:
        raise InputError(field, f"expected a 1-d array (one value per logged row), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputError(field, f"expected {n} values (one per logged row, like rewards), got {arr.shape[0]}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(field, f"expected finite numbers, got {arr[i]!r} at row {i}")
    return arr


def _check_range(field: str, arr: np.ndarray, low: float, high: float, low_open: bool) -> None:
    bad = (arr <= low if low_open else arr < low) | (arr > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise InputError(field, f"expected probabilities in {interval}, got {arr[i]!r} at row {i}")


def validate_logs(rewards: Any, logging_propensity: Any, target_propensity: Any) -> tuple[np.ndarray, ...]:
    """Check and convert the three per-row arrays; returns ``(rewards, p, q)`` as float64."""
    r = _vector("rewards", rewards, None)
    if r.shape[0] == 0:
        raise InputError("rewards", "the log is empty: expected at least one logged decision")
    p = _vector("logging_propensity", logging_propensity, r.shape[0])
    _check_range("logging_propensity", p, 0.0, 1.0, low_open=True)
    q = _vector("target_propensity", target_propensity, r.shape[0])
    _check_range("target_propensity", q, 0.0, 1.0, low_open=False)
    return r, p, q


# --------------------------------------------------------------------------- statistics


def effective_sample_size(weights: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 when every weight is 0)."""
    w = np.asarray(weights, dtype=np.float64)
    top = float(np.abs(w).max()) if w.size else 0.0
    if top == 0.0:
        return 0.0
    u = w / top  # scale-free: no underflow of tiny weights
    return float(u.sum() ** 2 / (u * u).sum())


def _normal_ci(value: float, se: float, alpha: float) -> tuple[float, float]:
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    return (value - z * se, value + z * se)


def _mean_se(phi: np.ndarray) -> float:
    n = phi.shape[0]
    return float(np.std(phi, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def bootstrap_ci(numerator: np.ndarray, denominator: np.ndarray | None, alpha: float, n_bootstrap: int,
                 random_state: int) -> tuple[float, float]:
    """Percentile Poisson-bootstrap interval of ``sum k*numerator / sum k*denominator`` (numba kernel).

    ``denominator=None`` means ones (the interval of a mean).
    """
    from optimizer.evaluation._bootstrap_kernels import POISSON1_CDF, bootstrap_ratios

    num = np.ascontiguousarray(numerator, dtype=np.float64)
    den = np.ones_like(num) if denominator is None else np.ascontiguousarray(denominator, dtype=np.float64)
    seed = np.uint64(int(random_state) % (1 << 64))
    reps = bootstrap_ratios(num, den, int(n_bootstrap), seed, POISSON1_CDF)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(low), float(high))


def _choose_switch_threshold(w: np.ndarray, r: np.ndarray, m: np.ndarray, d: np.ndarray) -> float:
    dr = d + w * (r - m)
    v_dr = dr.mean()
    best, best_mse = float(w.max()), np.inf
    for tau in np.unique(np.quantile(w, _SWITCH_QUANTILES)):
        keep = w <= tau
        phi = d + np.where(keep, w * (r - m), 0.0)
        mse = _mean_se(phi) ** 2 + (phi.mean() - v_dr) ** 2
        if mse < best_mse - 1e-18:
            best, best_mse = float(tau), mse
    return best


# --------------------------------------------------------------------------- public API


def off_policy_value(rewards: Any, logging_propensity: Any, target_propensity: Any, method: str = "ips",
                     reward_hat_logged: Any = None, reward_hat_target: Any = None, alpha: float = 0.05, *,
                     ci: str = "normal", n_bootstrap: int = 1000, random_state: int = 0,
                     clip: float | None = None, switch_threshold: float | None = None) -> OffPolicyResult:
    """Estimate the value of a target policy from logs of another policy.

    Parameters
    ----------
    rewards : array-like (n,)
        Observed reward of each logged decision.
    logging_propensity : array-like (n,)
        ``pi_0(a_i | x_i)`` of the logged action, in (0, 1].
    target_propensity : array-like (n,)
        ``pi_e(a_i | x_i)`` of the logged action under the target policy, in [0, 1].
    method : {"ips", "snips", "dm", "dr", "switch-dr"}
        Estimator (see the module docstring).
    reward_hat_logged : array-like (n,), optional
        Reward model at the logged action, ``mu(x_i, a_i)`` (dr, switch-dr).
    reward_hat_target : array-like (n,), optional
        ``sum_a pi_e(a | x_i) mu(x_i, a)`` (dm, dr, switch-dr).
    alpha : float
        The interval has level ``1 - alpha``.
    ci : {"normal", "bootstrap"}
        Which interval :attr:`OffPolicyResult.ci` holds.
    n_bootstrap : int
        Bootstrap replicates (when ``ci="bootstrap"``).
    random_state : int
        Seed of the bootstrap.
    clip : float, optional
        Weight clipping level ``M`` for ips, snips and dr.
    switch_threshold : float, optional
        ``tau`` of switch-dr (default: chosen by estimated MSE).

    Returns
    -------
    OffPolicyResult
    """
    method = str(method).lower()
    if method not in METHODS:
        raise InputError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    if ci not in CI_METHODS:
        raise InputError("ci", f"expected 'normal' or 'bootstrap', got {ci!r}")
    if not (isinstance(alpha, (int, float, np.integer, np.floating)) and 0.0 < float(alpha) < 1.0):
        raise InputError("alpha", f"expected a number in (0, 1), got {alpha!r}")
    alpha = float(alpha)
    if ci == "bootstrap" and (not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 10):
        raise InputError("n_bootstrap", f"expected an integer >= 10, got {n_bootstrap!r}")
    r, p, q = validate_logs(rewards, logging_propensity, target_propensity)
    n = r.shape[0]
    m = d = None
    if method in ("dm", "dr", "switch-dr"):
        if reward_hat_target is None:
            raise InputError("reward_hat_target", f"method {method!r} needs sum_a pi_e(a|x) mu(x,a) per row")
        d = _vector("reward_hat_target", reward_hat_target, n)
    if method in ("dr", "switch-dr"):
        if reward_hat_logged is None:
            raise InputError("reward_hat_logged", f"method {method!r} needs mu(x, a_logged) per row")
        m = _vector("reward_hat_logged", reward_hat_logged, n)
    if clip is not None:
        if method not in ("ips", "snips", "dr"):
            raise InputError("clip", f"weight clipping applies to ips, snips and dr, not {method!r}")
        if not np.isfinite(clip) or clip <= 0:
            raise InputError("clip", f"expected a positive clipping level, got {clip!r}")
    if switch_threshold is not None and (method != "switch-dr" or not np.isfinite(switch_threshold)
                                         or switch_threshold <= 0):
        raise InputError("switch_threshold", "expected a positive threshold, and only with method='switch-dr'")

    w = q / p
    if method in _NEEDS_WEIGHTS and not (q > 0).any():
        raise InputError("target_propensity", "the target policy gives probability 0 to every logged action, "
                                              "so the logs say nothing about it (no overlap)")
    mean_w, max_w = (float(w.mean()), float(w.max())) if method != "dm" else (float("nan"), float("nan"))
    n_modified, threshold = 0, None
    if clip is not None:
        n_modified, threshold = int((w > clip).sum()), float(clip)
        w = np.minimum(w, clip)

    denominator = None
    if method == "ips":
        phi = w * r
        value, se = float(phi.mean()), _mean_se(phi)
        ess = effective_sample_size(w)
    elif method == "snips":
        # self-normalised, so free of the weights' scale: divided by the largest, tiny weights do not
        # underflow (weights ~1e-323 had put the estimate outside the rewards' range)
        u = w / float(w.max())
        total = float(u.sum())
        value = float((u * r).sum() / total)
        influence = u * (r - value) / (total / n)
        se = float(np.sqrt((influence * influence).sum() / (n * max(n - 1, 1))))
        phi, denominator = u * r, u
        ess = effective_sample_size(w)
    elif method == "dm":
        phi = d
        value, se, ess = float(phi.mean()), _mean_se(phi), float(n)
    elif method == "dr":
        phi = d + w * (r - m)
        value, se = float(phi.mean()), _mean_se(phi)
        ess = effective_sample_size(w)
    else:  # switch-dr
        tau = float(switch_threshold) if switch_threshold is not None else _choose_switch_threshold(w, r, m, d)
        keep = w <= tau
        phi = d + np.where(keep, w * (r - m), 0.0)
        value, se = float(phi.mean()), _mean_se(phi)
        ess = effective_sample_size(np.where(keep, w, 0.0))
        n_modified, threshold = int((~keep).sum()), tau

    ci_normal = _normal_ci(value, se, alpha)
    ci_boot = bootstrap_ci(phi, denominator, alpha, n_bootstrap, random_state) if ci == "bootstrap" else None
    return OffPolicyResult(method=method, value=value, std_error=se, ci=ci_boot if ci_boot else ci_normal,
                           ci_method=ci, alpha=alpha, n=n, ess=ess, ci_normal=ci_normal, ci_bootstrap=ci_boot,
                           mean_weight=mean_w, max_weight=max_w, n_modified=n_modified, threshold=threshold)


def compare_estimators(rewards: Any, logging_propensity: Any, target_propensity: Any,
                       reward_hat_logged: Any = None, reward_hat_target: Any = None, alpha: float = 0.05, *,
                       methods: Iterable[str] | None = None, **options: Any) -> pd.DataFrame:
    """Run several estimators on the same logs; one row per method.

    ``methods`` defaults to every method the given columns allow (dm, dr and
    switch-dr need the reward-model columns). ``options`` go to
    :func:`off_policy_value` (``ci``, ``n_bootstrap``, ``random_state``).
    """
    if methods is None:
        methods = ["ips", "snips"]
        if reward_hat_target is not None:
            methods.append("dm")
            if reward_hat_logged is not None:
                methods += ["dr", "switch-dr"]
    rows = []
    for method in methods:
        res = off_policy_value(rewards, logging_propensity, target_propensity, method, reward_hat_logged,
                               reward_hat_target, alpha, **options)
        rows.append(res.to_dict())
    cols = ["method", "value", "std_error", "ci_low", "ci_high", "ci_method", "ess", "n", "mean_weight",
            "max_weight", "n_modified", "threshold"]
    return pd.DataFrame(rows)[cols]


def policy_propensity(actions: Any, action_probabilities: Any, field: str = "actions") -> np.ndarray:
    """``pi(a_i | x_i)`` per row from a full (n, K) table of action probabilities.

    Parameters
    ----------
    actions : array-like of int (n,)
        Logged action indices.
    action_probabilities : array-like (n, K)
        Each row a distribution over the K actions the policy can take.
    field : str
        Name used in errors for ``actions``.

    Raises
    ------
    InputError
        If a logged action is not one of the policy's actions ``0..K-1``, a row
        is not a distribution, or the shapes disagree.
    """
    probs = np.asarray(action_probabilities, dtype=np.float64)
    a = np.asarray(actions)
    if probs.ndim != 2:
        raise InputError("action_probabilities", f"expected an (n, K) array, got shape {probs.shape}")
    if a.ndim != 1 or a.shape[0] != probs.shape[0]:
        raise InputError(field, f"expected {probs.shape[0]} actions (one per row of action_probabilities), "
                                f"got shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError(field, "the log is empty: expected at least one logged decision")
    if a.dtype.kind not in "iu":
        raise InputError(field, f"expected integer action indices, got values of type {a.dtype}")
    k = probs.shape[1]
    bad = (a < 0) | (a >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(field, f"row {i} logged action {int(a[i])}, which the policy cannot take "
                                f"(its actions are 0..{k - 1})")
    check_distributions("action_probabilities", probs)
    return probs[np.arange(a.shape[0]), a]


def check_distributions(field: str, probs: np.ndarray, atol: float = 1e-6) -> None:
    """Require each row of ``probs`` to be a probability distribution (finite, >= 0, sums to 1)."""
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(field, f"expected probabilities in [0, 1], got {probs[i, j]!r} at ({i}, {j})")
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InputError(field, f"expected each row to sum to 1, row {i} sums to {sums[i]:.6g}")


def expected_reward(action_probabilities: Any, reward_hat: Any) -> np.ndarray:
    """``sum_a pi(a | x_i) mu(x_i, a)`` per row (the ``reward_hat_target`` column)."""
    probs = np.asarray(action_probabilities, dtype=np.float64)
    mu = np.asarray(reward_hat, dtype=np.float64)
    if probs.shape != mu.shape or probs.ndim != 2:
        raise InputError("reward_hat", f"expected shape {probs.shape} like action_probabilities, got {mu.shape}")
    return np.einsum("ik,ik->i", probs, mu)
