"""Delayed conversions: conversion rates corrected for observation windows that are still open.

Data
----
Unit ``i`` was exposed (contacted) ``e_i > 0`` time units before the data were
pulled (``elapsed``). By then it has converted (``c_i = 1``) after a delay
``d_i <= e_i``, or not yet (``c_i = 0``). A unit that has not converted may
still convert later, so the naive rate ``sum c / n`` underestimates the
conversion rate whenever windows are still open.

Exponential delay model (maximum likelihood with censoring)
-----------------------------------------------------------
A unit of group ``g`` eventually converts with probability ``p_g``; given
that it does, its delay is exponential, ``P(D > t) = exp(-lambda t)``, with a
rate ``lambda`` shared by all groups (Chapelle 2014). The log-likelihood is

    l(p, lambda) = sum_{c_i = 1} [log p_g(i) + log lambda - lambda d_i]
                 + sum_{c_i = 0} log(1 - p_g(i) + p_g(i) exp(-lambda e_i)).

It is maximised by EM on the latent "will convert" indicator (posterior
``w_i = p s_i / (1 - p + p s_i)``, ``s_i = exp(-lambda e_i)``, for units not yet
converted; then ``p_g = (C_g + sum_{i in g} w_i) / n_g`` and
``lambda = C / (sum_{c=1} d_i + sum_{c=0} w_i e_i)``), stopped when no
parameter moves by more than ``tol`` relatively, then polished by Newton
steps on the exact gradient and Hessian. Standard errors come from the
inverse observed information (the analytic Hessian); the interval for each
``p_g`` is the delta-method interval on the logit scale, mapped back.

Kaplan-Meier option (non-parametric)
------------------------------------
With ``T_i = d_i`` (event) for converted units and ``T_i = e_i`` (censored)
otherwise, the product-limit estimator ``S(t) = prod_{t_j <= t} (1 - k_j / n_j)``
(``k_j`` conversions at ``t_j``, ``n_j`` units with ``T >= t_j``) estimates
``P(no conversion by t)``; the corrected rate within a horizon ``H`` is
``1 - S(H)`` with Greenwood's variance ``S^2 sum k_j / (n_j (n_j - k_j))``.
It makes no assumption on the delay shape but only estimates the rate within
the longest window observed (conversions after ``H`` are not identified
without a model). Under the exponential model ``1 - S(H) = p (1 - exp(-lambda H))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logit

from formulations.errors import InputError


def _delay_inputs(elapsed: Any, converted: Any, delay: Any, groups: Any):
    try:
        e = np.asarray(elapsed, dtype=np.float64)
        c = np.asarray(converted)
        d = np.asarray(delay, dtype=np.float64) if delay is not None else None
    except (TypeError, ValueError):
        raise InputError("elapsed", "expected numeric arrays for elapsed, converted and delay") from None
    if e.ndim != 1 or e.shape[0] == 0:
        raise InputError("elapsed", f"expected a non-empty 1-d array, got shape {e.shape}")
    n = e.shape[0]
    if c.shape != (n,):
        raise InputError("converted", f"expected {n} values like elapsed, got shape {c.shape}")
    if not np.isin(c, (0, 1, True, False)).all():
        raise InputError("converted", "expected 0/1 (or True/False) values")
    c = c.astype(bool)
    bad = ~np.isfinite(e) | (e <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError("elapsed", f"expected positive finite times since exposure, got {e[i]!r} at row {i}")
    if d is None:
        if c.any():
            raise InputError("delay", "expected the delay of every converted unit, got None")
        d = np.full(n, np.nan)
    if d.shape != (n,):
        raise InputError("delay", f"expected {n} values like elapsed, got shape {d.shape}")
    bad = c & (~np.isfinite(d) | (d < 0) | (d > e * (1 + 1e-12)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError("delay", f"expected 0 <= delay <= elapsed for converted units, got delay {d[i]!r} "
                                  f"and elapsed {e[i]!r} at row {i}")
    if groups is None:
        codes, labels = np.zeros(n, dtype=np.int64), np.array(["all"], dtype=object)
    else:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise InputError("groups", f"expected {n} labels like elapsed, got shape {g.shape}")
        labels, codes = np.unique(g, return_inverse=True)
    return e, c, np.where(c, d, 0.0), codes.astype(np.int64), labels


class ExponentialDelayModel:
    """Conversion rate per group with an exponential conversion delay, fitted with censoring.

    Parameters
    ----------
    max_iter : int
        EM iterations.
    tol : float
        Relative change of every parameter that stops EM.

    Attributes
    ----------
    groups_ : ndarray
        Group labels (``["all"]`` without groups).
    conversion_rate_ : ndarray (n_groups,)
        ``p_g``, the eventual conversion probability.
    conversion_rate_se_ : ndarray (n_groups,)
        Standard errors of ``p_g``.
    delay_rate_ : float
        ``lambda``; the mean delay is ``1 / lambda``.
    delay_rate_se_ : float
    naive_rate_ : ndarray (n_groups,)
        Converted so far / units.
    log_likelihood_ : float
    n_iter_ : int
    """

    def __init__(self, max_iter: int = 10_000, tol: float = 1e-8) -> None:
        self.max_iter = max_iter
        self.tol = tol

    @staticmethod
    def _loglik(p, lam, e, c, d, g) -> float:
        pg = p[g]
        conv = np.sum(np.log(pg[c]) + np.log(lam) - lam * d[c])
        s = np.exp(-lam * e[~c])
        return float(conv + np.sum(np.log1p(-pg[~c] * (1.0 - s))))

    @staticmethod
    def _grad_hess(p, lam, e, c, d, g, n_groups):
        nc = ~c
        pg, gn, en = p[g[nc]], g[nc], e[nc]
        s = np.exp(-lam * en)
        den = 1.0 - pg * (1.0 - s)
        conv_g = np.bincount(g[c], minlength=n_groups).astype(float)
        n_conv = float(c.sum())
        grad = np.empty(n_groups + 1)
        grad[:n_groups] = conv_g / p - np.bincount(gn, weights=(1.0 - s) / den, minlength=n_groups)
        grad[n_groups] = n_conv / lam - d[c].sum() - np.sum(pg * en * s / den)
        hess = np.zeros((n_groups + 1, n_groups + 1))
        hess[np.arange(n_groups), np.arange(n_groups)] = (
            -conv_g / p ** 2 - np.bincount(gn, weights=(1.0 - s) ** 2 / den ** 2, minlength=n_groups))
        cross = -np.bincount(gn, weights=en * s / den ** 2, minlength=n_groups)
        hess[:n_groups, n_groups] = hess[n_groups, :n_groups] = cross
        hess[n_groups, n_groups] = -n_conv / lam ** 2 + np.sum(pg * (1.0 - pg) * en ** 2 * s / den ** 2)
        return grad, hess

    def fit(self, elapsed: Any, converted: Any, delay: Any, groups: Any = None) -> "ExponentialDelayModel":
        """Fit ``p_g`` and ``lambda`` by maximum likelihood; returns ``self``."""
        e, c, d, g, labels = _delay_inputs(elapsed, converted, delay, groups)
        k = labels.shape[0]
        n_g = np.bincount(g, minlength=k).astype(float)
        conv_g = np.bincount(g[c], minlength=k).astype(float)
        if conv_g.sum() == 0:
            raise InputError("converted", "no conversion observed, so the delay distribution cannot be estimated")
        empty = np.flatnonzero(conv_g == 0)
        if empty.size:
            raise InputError("converted", f"group {labels[empty[0]]!r} has no conversion; its rate cannot be "
                                          "estimated (merge it or drop it)")
        lam = conv_g.sum() / d[c].sum() if d[c].sum() > 0 else 1.0 / np.median(e)
        p = np.clip(conv_g / n_g, 1e-9, 1.0)
        nc = ~c
        it = 0
        for it in range(1, self.max_iter + 1):
            s = np.exp(-lam * e[nc])
            pg = p[g[nc]]
            w = pg * s / (1.0 - pg + pg * s)
            p_new = np.minimum((conv_g + np.bincount(g[nc], weights=w, minlength=k)) / n_g, 1.0)
            lam_new = conv_g.sum() / (d[c].sum() + (w * e[nc]).sum())
            change = max(np.max(np.abs(p_new - p) / np.maximum(p, 1e-300)), abs(lam_new - lam) / lam)
            p, lam = p_new, lam_new
            if change < self.tol:
                break
        theta = np.r_[p, lam]
        current = self._loglik(p, lam, e, c, d, g)
        for _ in range(20):  # Newton polish, accepted only when it improves the likelihood inside the domain
            grad, hess = self._grad_hess(theta[:k], theta[k], e, c, d, g, k)
            try:
                step = np.linalg.solve(hess, -grad)
            except np.linalg.LinAlgError:
                break
            cand = theta + step
            if np.any(cand[:k] <= 0) or np.any(cand[:k] > 1) or cand[k] <= 0:
                break
            value = self._loglik(cand[:k], cand[k], e, c, d, g)
            if not value >= current:
                break
            theta, current = cand, value
            if np.max(np.abs(step) / np.abs(theta)) < 1e-13:
                break
        p, lam = theta[:k], float(theta[k])
        _, hess = self._grad_hess(p, lam, e, c, d, g, k)
        try:
            cov = np.linalg.inv(-hess)
            se = np.sqrt(np.maximum(np.diag(cov), 0.0))
        except np.linalg.LinAlgError:
            se = np.full(k + 1, np.nan)
        self.groups_ = labels
        self.conversion_rate_ = p
        self.conversion_rate_se_ = se[:k]
        self.delay_rate_ = lam
        self.delay_rate_se_ = float(se[k])
        self.naive_rate_ = conv_g / n_g
        self.n_units_ = n_g.astype(np.int64)
        self.n_conversions_ = conv_g.astype(np.int64)
        self.log_likelihood_ = current
        self.n_iter_ = it
        return self

    @property
    def mean_delay_(self) -> float:
        return 1.0 / self.delay_rate_

    def conversion_rate_ci(self, alpha: float = 0.05) -> np.ndarray:
        """(n_groups, 2) delta-method interval of ``p_g`` on the logit scale."""
        z = stats.norm.ppf(1 - alpha / 2)
        p = np.clip(self.conversion_rate_, 1e-12, 1 - 1e-12)
        se_logit = self.conversion_rate_se_ / (p * (1 - p))
        return np.column_stack([expit(logit(p) - z * se_logit), expit(logit(p) + z * se_logit)])

    def survival(self, t: Any) -> np.ndarray:
        """``P(D > t) = exp(-lambda t)`` for a converting unit."""
        return np.exp(-self.delay_rate_ * np.asarray(t, dtype=np.float64))

    def rate_within(self, horizon: float) -> np.ndarray:
        """``p_g (1 - exp(-lambda H))``: conversions within ``horizon`` of exposure."""
        return self.conversion_rate_ * (1.0 - np.exp(-self.delay_rate_ * horizon))

    def eventual_conversion_probability(self, elapsed: Any, converted: Any, groups: Any = None) -> np.ndarray:
        """Per unit ``P(converts eventually | data)``: 1 if converted, else ``p s / (1 - p + p s)``.

        Use as the reward of units whose window is still open (e.g. in
        :func:`optimizer.evaluation.off_policy_value`).
        """
        # the delays themselves are not needed here: zeros pass validation for converted units
        e, c, _, g, labels = _delay_inputs(elapsed, converted, np.zeros(np.shape(elapsed)), groups)
        index = {lab: i for i, lab in enumerate(self.groups_)}
        try:
            codes = np.array([index[lab] for lab in labels])[g]
        except KeyError as exc:
            raise InputError("groups", f"group {exc.args[0]!r} was not seen in fit") from None
        p = self.conversion_rate_[codes]
        s = np.exp(-self.delay_rate_ * e)
        return np.where(c, 1.0, p * s / (1.0 - p + p * s))


class KaplanMeierConversion:
    """Non-parametric conversion rate within a horizon (Kaplan-Meier with Greenwood variance).

    Parameters
    ----------
    horizon : float, optional
        Report ``1 - S(horizon)``; default: the largest elapsed time of each group.

    Attributes
    ----------
    groups_ : ndarray
    conversion_rate_ : ndarray (n_groups,)
        ``1 - S(H)``.
    conversion_rate_se_ : ndarray (n_groups,)
        Greenwood standard error.
    horizon_ : ndarray (n_groups,)
    curves_ : dict
        Per group label: DataFrame ``time, at_risk, conversions, survival``.
    """

    def __init__(self, horizon: float | None = None) -> None:
        self.horizon = horizon

    def fit(self, elapsed: Any, converted: Any, delay: Any, groups: Any = None) -> "KaplanMeierConversion":
        e, c, d, g, labels = _delay_inputs(elapsed, converted, delay, groups)
        if self.horizon is not None and (not np.isfinite(self.horizon) or self.horizon <= 0):
            raise InputError("horizon", f"expected a positive time, got {self.horizon!r}")
        k = labels.shape[0]
        self.groups_, self.curves_ = labels, {}
        self.conversion_rate_, self.conversion_rate_se_ = np.empty(k), np.empty(k)
        self.horizon_, self.naive_rate_ = np.empty(k), np.empty(k)
        for j in range(k):
            sel = g == j
            time = np.where(c[sel], d[sel], e[sel])
            event = c[sel]
            order = np.argsort(time, kind="stable")
            time, event = time[order], event[order]
            uniq, first = np.unique(time, return_index=True)
            at_risk = time.size - first
            events = np.add.reduceat(event.astype(float), first)
            factor = 1.0 - events / at_risk
            surv = np.cumprod(factor)
            with np.errstate(divide="ignore", invalid="ignore"):
                green = np.cumsum(np.where(at_risk > events, events / (at_risk * (at_risk - events)), 0.0))
            horizon = float(self.horizon) if self.horizon is not None else float(e[sel].max())
            idx = np.searchsorted(uniq, horizon, side="right") - 1
            s_h = surv[idx] if idx >= 0 else 1.0
            var = s_h ** 2 * green[idx] if idx >= 0 else 0.0
            self.conversion_rate_[j] = 1.0 - s_h
            self.conversion_rate_se_[j] = np.sqrt(var)
            self.horizon_[j] = horizon
            self.naive_rate_[j] = event.mean()
            keep = events > 0
            self.curves_[labels[j]] = pd.DataFrame({"time": uniq[keep], "at_risk": at_risk[keep],
                                                    "conversions": events[keep].astype(int),
                                                    "survival": surv[keep]})
        return self

    def conversion_rate_ci(self, alpha: float = 0.05) -> np.ndarray:
        """(n_groups, 2) normal interval from Greenwood's variance, clipped to [0, 1]."""
        z = stats.norm.ppf(1 - alpha / 2)
        r, se = self.conversion_rate_, self.conversion_rate_se_
        return np.clip(np.column_stack([r - z * se, r + z * se]), 0.0, 1.0)


def corrected_conversion_rates(elapsed: Any, converted: Any, delay: Any, groups: Any = None,
                               method: str = "exponential", horizon: float | None = None,
                               alpha: float = 0.05) -> pd.DataFrame:
    """Naive and censoring-corrected conversion rate per group, with intervals.

    ``method="exponential"`` reports the eventual rate ``p_g`` (or
    ``p_g (1 - exp(-lambda H))`` when ``horizon`` is given);
    ``method="kaplan-meier"`` reports ``1 - S(H)``.
    """
    if method == "exponential":
        model = ExponentialDelayModel().fit(elapsed, converted, delay, groups)
        rate, ci = model.conversion_rate_, model.conversion_rate_ci(alpha)
        if horizon is not None:
            scale = 1.0 - np.exp(-model.delay_rate_ * horizon)
            rate, ci = rate * scale, ci * scale
    elif method == "kaplan-meier":
        model = KaplanMeierConversion(horizon).fit(elapsed, converted, delay, groups)
        rate, ci = model.conversion_rate_, model.conversion_rate_ci(alpha)
    else:
        raise InputError("method", f"expected 'exponential' or 'kaplan-meier', got {method!r}")
    return pd.DataFrame({"group": model.groups_, "naive_rate": model.naive_rate_, "corrected_rate": rate,
                         "ci_low": ci[:, 0], "ci_high": ci[:, 1]})
