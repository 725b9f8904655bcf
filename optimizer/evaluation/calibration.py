"""Calibration of scores and forecasts: Platt scaling, reliability curves, MAPE.

Platt scaling
-------------
Maps a score ``s`` (a model's logit, margin or uncalibrated probability) to a
probability ``p(s) = sigma(a s + b) = 1 / (1 + exp(-(a s + b)))``. With ``N+``
positives and ``N-`` negatives, Platt (1999) fits ``(a, b)`` by minimising the
cross-entropy against smoothed targets

    t_i = (N+ + 1) / (N+ + 2)   if y_i = 1,        t_i = 1 / (N- + 2)   if y_i = 0,

    min_{a,b}  - sum_i [ t_i log p(s_i) + (1 - t_i) log(1 - p(s_i)) ]

(the targets keep the fit finite on separable data). The problem is convex;
it is solved by Newton's method with backtracking (Lin, Lin & Weng 2007),
stopping when the Newton decrement is below ``tol``. scikit-learn's sigmoid
calibration solves the same problem with the opposite sign convention,
``1 / (1 + exp(A s + B))``, i.e. ``A = -a``, ``B = -b``.

Reliability curve
-----------------
Bins predictions into ``n_bins`` bins (``uniform`` edges on [0, 1] or
``quantile`` edges of the predictions; a prediction on an inner edge falls in
the lower bin) and reports, per non-empty bin ``B``, the mean prediction, the
observed positive rate and the count. Expected calibration error
``ECE = sum_B |B|/n * |rate_B - mean_B|``; Brier score ``mean (p - y)^2``.

MAPE
----
``MAPE = mean_i |y_i - f_i| / |y_i|`` (a fraction, not per cent; zero actuals
are an error, use WAPE ``sum |y - f| / sum |y|`` for volumes that can be 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from formulations.errors import InputError


def _array(field: str, value: Any, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(field, "expected a 1-d array of numbers") from None
    if arr.ndim != 1:
        raise InputError(field, f"expected a 1-d array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputError(field, f"expected {n} values, got {arr.shape[0]}")
    if arr.shape[0] == 0:
        raise InputError(field, "expected at least one value, got none")
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise InputError(field, f"expected finite numbers, got {arr[i]!r} at row {i}")
    return arr


def _binary(field: str, value: Any, n: int) -> np.ndarray:
    y = _array(field, value, n)
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError(field, f"expected 0/1 labels, got values {np.unique(y)[:5]}")
    return y


class PlattScaling:
    """Platt's sigmoid calibration ``p = sigma(a s + b)``, scikit-learn style.

    Parameters
    ----------
    max_iter : int
        Newton iterations.
    tol : float
        Stop when half the squared Newton decrement is below ``tol``.

    Attributes
    ----------
    a_, b_ : float
        Slope and intercept.
    n_iter_ : int
        Newton iterations used.
    """

    def __init__(self, max_iter: int = 100, tol: float = 1e-12) -> None:
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, scores: Any, y: Any) -> "PlattScaling":
        """Fit ``(a, b)`` on scores and 0/1 outcomes; returns ``self``."""
        s = _array("scores", scores)
        y = _binary("y", y, s.shape[0])
        n_pos = float(y.sum())
        n_neg = float(s.shape[0] - n_pos)
        if n_pos == 0 or n_neg == 0:
            raise InputError("y", "expected both outcomes (0 and 1) to calibrate, got only one")
        target = np.where(y > 0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        scale = max(1.0, float(np.abs(s).max()))  # invariance: fit on s / scale, map back
        x = s / scale
        a, b = 0.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))

        def loss(a_: float, b_: float) -> float:
            z = a_ * x + b_
            return float(-(target * log_expit(z) + (1.0 - target) * log_expit(-z)).sum())

        current = loss(a, b)
        self.n_iter_ = 0
        for it in range(1, self.max_iter + 1):
            p = expit(a * x + b)
            resid = p - target
            grad = np.array([(resid * x).sum(), resid.sum()])
            v = np.maximum(p * (1.0 - p), 1e-12)
            vx = (v * x).sum()
            hess = np.array([[(v * x * x).sum(), vx], [vx, v.sum()]])
            hess[0, 0] += 1e-12
            hess[1, 1] += 1e-12
            step = np.linalg.solve(hess, grad)
            decrement = float((grad * step).sum()) / 2.0
            self.n_iter_ = it
            if decrement < self.tol:
                break
            t = 1.0
            while t > 1e-10:
                cand = loss(a - t * step[0], b - t * step[1])
                if cand <= current - 1e-4 * t * 2.0 * decrement:
                    break
                t /= 2.0
            a, b = a - t * step[0], b - t * step[1]
            current = loss(a, b)
        self.a_, self.b_ = a / scale, b
        return self

    def predict_proba(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities ``sigma(a s + b)`` (1-d, the positive class)."""
        s = _array("scores", scores)
        return expit(self.a_ * s + self.b_)

    def transform(self, scores: Any) -> np.ndarray:
        """Same as :meth:`predict_proba` (for use as a transformer)."""
        return self.predict_proba(scores)

    def fit_transform(self, scores: Any, y: Any) -> np.ndarray:
        return self.fit(scores, y).predict_proba(scores)


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per non-empty bin: mean prediction, observed positive rate, count.

    Attributes
    ----------
    mean_predicted, fraction_positive : ndarray
        As scikit-learn's ``calibration_curve`` returns (``prob_pred``, ``prob_true``).
    counts : ndarray of int
        Rows per bin.
    bin_edges : ndarray
        The ``n_bins + 1`` edges used.
    ece : float
        Expected calibration error.
    brier : float
        Brier score over all rows.
    """

    mean_predicted: np.ndarray
    fraction_positive: np.ndarray
    counts: np.ndarray
    bin_edges: np.ndarray
    ece: float
    brier: float


def reliability_curve(y_true: Any, y_prob: Any, n_bins: int = 10, strategy: str = "uniform") -> ReliabilityCurve:
    """Reliability (calibration) curve of probabilities against 0/1 outcomes."""
    p = _array("y_prob", y_prob)
    y = _binary("y_true", y_true, p.shape[0])
    if (p < 0).any() or (p > 1).any():
        raise InputError("y_prob", "expected probabilities in [0, 1]")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError("n_bins", f"expected a positive integer, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    else:
        raise InputError("strategy", f"expected 'uniform' or 'quantile', got {strategy!r}")
    ids = np.searchsorted(edges[1:-1], p)
    counts = np.bincount(ids, minlength=n_bins)
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)
    sum_y = np.bincount(ids, weights=y, minlength=n_bins)
    nz = counts > 0
    mean_p, rate = sum_p[nz] / counts[nz], sum_y[nz] / counts[nz]
    ece = float(np.sum(counts[nz] / p.shape[0] * np.abs(rate - mean_p)))
    return ReliabilityCurve(mean_predicted=mean_p, fraction_positive=rate, counts=counts[nz], bin_edges=edges,
                            ece=ece, brier=float(np.mean((p - y) ** 2)))


def mean_absolute_percentage_error(actual: Any, forecast: Any) -> float:
    """MAPE ``mean |y - f| / |y|`` as a fraction; zero actuals raise :class:`InputError`."""
    y = _array("actual", actual)
    f = _array("forecast", forecast, y.shape[0])
    if (y == 0).any():
        i = int(np.flatnonzero(y == 0)[0])
        raise InputError("actual", f"MAPE is undefined for an actual of 0 (row {i}); use weighted_mape")
    return float(np.mean(np.abs(y - f) / np.abs(y)))


def weighted_mape(actual: Any, forecast: Any) -> float:
    """WAPE ``sum |y - f| / sum |y|`` (volume-weighted MAPE; defined when actuals are 0)."""
    y = _array("actual", actual)
    f = _array("forecast", forecast, y.shape[0])
    total = float(np.abs(y).sum())
    if total == 0:
        raise InputError("actual", "WAPE is undefined when every actual is 0")
    return float(np.abs(y - f).sum() / total)
