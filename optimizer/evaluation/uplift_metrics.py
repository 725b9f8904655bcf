"""Uplift metrics: Qini and uplift curves, their normalised areas, uplift@k.

Signatures and conventions follow scikit-uplift (``sklift.metrics``), so code
written for it gives the same numbers here (the tests check agreement to
1e-9 against scikit-uplift, a test-only dependency).

Definitions
-----------
Rows are ranked by predicted uplift, highest first (ties: a stable ascending
sort reversed, i.e. among equal scores later rows come first, as in
scikit-uplift). After the first ``k`` rows let ``N_t(k), N_c(k)`` be the
treated / control counts and ``Y_t(k), Y_c(k)`` their summed outcomes. The
curves are evaluated at ``k = 0`` and at the last row of each run of equal
scores:

    Qini curve      Q(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k)                 (0 when N_c(k) = 0)
    uplift curve    U(k) = (Y_t(k) / N_t(k) - Y_c(k) / N_c(k)) * k           (each ratio 0 when its N = 0)

The *perfect* curves rank by an oracle score: for Qini ``y t - y (1 - t)``
(treated responders first, control responders last; with
``negative_effect=False`` the three-point curve ``(0, 0), (R, R), (n, R)``
with ``R = Y_t - N_t Y_c / N_c``); for uplift ``2 [y = t] + s`` with
``s = y`` if control responders outnumber treated non-responders, else
``s = t``. With the random-targeting line from ``(0, 0)`` to the perfect
curve's end point as baseline, and areas by the trapezoidal rule,

    qini_auc_score = (area(Q) - area(baseline)) / (area(Q_perfect) - area(baseline))

and likewise ``uplift_auc_score`` (AUUC) with ``U``.

``uplift_at_k(strategy="overall")`` is the treated minus control mean
outcome among the top ``k`` rows overall; ``strategy="by_group"`` takes the
top ``k`` share of each group separately. ``k`` is a share in (0, 1) or a
row count; a top set without control (or treated) rows gives NaN.

Where scikit-uplift raises ``ValueError`` (a ``by_group`` ``k`` larger than a
group; ``qini_auc_score(negative_effect=False)`` when the overall uplift is
negative, which makes the perfect curve non-monotone) these functions raise
:class:`InputError`, a ``ValueError`` subclass with a one-line message.
Outcomes must be 0/1 for the two scores (their perfect curves need it); the
curves and ``uplift_at_k`` also accept real-valued outcomes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from formulations.errors import InputError


class Curve(NamedTuple):
    """Points of a gain curve; unpacks like scikit-uplift's ``(x, y)`` tuple."""

    x: np.ndarray
    y: np.ndarray


def _inputs(y_true: Any, uplift: Any | None, treatment: Any, binary_outcome: bool):
    y = np.asarray(y_true)
    t = np.asarray(treatment)
    arrays = [("y_true", y), ("treatment", t)]
    if uplift is not None:
        arrays.insert(1, ("uplift", np.asarray(uplift)))
    n = y.shape[0] if y.ndim == 1 else -1
    for name, arr in arrays:
        if arr.ndim != 1:
            raise InputError(name, f"expected a 1-d array, got shape {arr.shape}")
        if arr.shape[0] != n:
            raise InputError(name, f"expected {n} values like y_true, got {arr.shape[0]}")
        if arr.dtype.kind not in "biuf":
            raise InputError(name, f"expected numbers, got values of type {arr.dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputError(name, f"expected finite numbers, got {arr[~np.isfinite(arr)][0]!r}")
    if n == 0:
        raise InputError("y_true", "expected at least one row, got none")
    if not np.all(np.isin(t, (0, 1))) or np.unique(t).size != 2:
        raise InputError("treatment", f"expected 0/1 labels with both groups present, got values {np.unique(t)[:5]}")
    if binary_outcome and not np.all(np.isin(y, (0, 1))):
        raise InputError("y_true", f"expected binary 0/1 outcomes, got values {np.unique(y)[:5]}")
    y = y.astype(np.float64)
    t = t.astype(np.int64)
    if uplift is None:
        return y, None, t
    return y, np.asarray(uplift, dtype=np.float64), t


def _descending(uplift: np.ndarray) -> np.ndarray:
    return np.argsort(uplift, kind="stable")[::-1]


def _cumulative(y: np.ndarray, score: np.ndarray, t: np.ndarray):
    order = _descending(score)
    y, score, t = y[order], score[order], t[order]
    ends = np.r_[np.flatnonzero(np.diff(score) != 0), score.size - 1]
    n_treated = np.cumsum(t, dtype=np.float64)[ends]
    y_treated = np.cumsum(y * t)[ends]
    y_control = np.cumsum(y * (1 - t))[ends]
    n_all = (ends + 1).astype(np.float64)
    return n_all, n_treated, n_all - n_treated, y_treated, y_control


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _qini(y, score, t) -> Curve:
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, score, t)
    values = y_t - y_c * _ratio(n_t, n_c)
    return Curve(np.r_[0.0, n_all], np.r_[0.0, values])


def _uplift(y, score, t) -> Curve:
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, score, t)
    values = (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n_all
    return Curve(np.r_[0.0, n_all], np.r_[0.0, values])


def qini_curve(y_true: Any, uplift: Any, treatment: Any) -> Curve:
    """Qini curve ``(x, y)``: rows targeted and incremental responders (see the module docstring)."""
    return _qini(*_inputs(y_true, uplift, treatment, binary_outcome=False))


def uplift_curve(y_true: Any, uplift: Any, treatment: Any) -> Curve:
    """Uplift curve ``(x, y)``: rows targeted and (response-rate difference) x rows."""
    return _uplift(*_inputs(y_true, uplift, treatment, binary_outcome=False))


def perfect_qini_curve(y_true: Any, treatment: Any, negative_effect: bool = True) -> Curve:
    """The Qini curve of an oracle ranking (binary outcomes)."""
    y, _, t = _inputs(y_true, None, treatment, binary_outcome=True)
    return _perfect_qini(y, t, negative_effect)


def _perfect_qini(y, t, negative_effect) -> Curve:
    if not isinstance(negative_effect, (bool, np.bool_)):
        raise InputError("negative_effect", f"expected True or False, got {negative_effect!r}")
    if negative_effect:
        return _qini(y, y * t - y * (1 - t), t)
    treated, control = t == 1, t == 0
    excess = y[treated].sum() - treated.sum() * y[control].sum() / control.sum()
    return Curve(np.array([0.0, excess, float(y.size)]), np.array([0.0, excess, excess]))


def perfect_uplift_curve(y_true: Any, treatment: Any) -> Curve:
    """The uplift curve of an oracle ranking (binary outcomes)."""
    y, _, t = _inputs(y_true, None, treatment, binary_outcome=True)
    return _perfect_uplift(y, t)


def _perfect_uplift(y, t) -> Curve:
    control_responders = np.sum((y == 1) & (t == 0))
    treated_nonresponders = np.sum((y == 0) & (t == 1))
    extra = y if control_responders > treated_nonresponders else t.astype(np.float64)
    return _uplift(y, 2.0 * (y == t) + extra, t)


def _normalised_area(actual: Curve, perfect: Curve) -> float:
    baseline = perfect.x[-1] * perfect.y[-1] / 2.0
    return float((np.trapezoid(actual.y, actual.x) - baseline) / (np.trapezoid(perfect.y, perfect.x) - baseline))


def qini_auc_score(y_true: Any, uplift: Any, treatment: Any, negative_effect: bool = True) -> float:
    """Normalised area under the Qini curve (Qini coefficient), binary outcomes."""
    y, u, t = _inputs(y_true, uplift, treatment, binary_outcome=True)
    perfect = _perfect_qini(y, t, negative_effect)
    if not negative_effect and perfect.x[1] < 0:
        raise InputError("negative_effect", f"the overall uplift is negative ({perfect.x[1]:.4g} responders), so "
                                            "the perfect curve without negative effects is undefined; use True")
    return _normalised_area(_qini(y, u, t), perfect)


def uplift_auc_score(y_true: Any, uplift: Any, treatment: Any) -> float:
    """Normalised area under the uplift curve (AUUC), binary outcomes."""
    y, u, t = _inputs(y_true, uplift, treatment, binary_outcome=True)
    return _normalised_area(_uplift(y, u, t), _perfect_uplift(y, t))


def uplift_at_k(y_true: Any, uplift: Any, treatment: Any, strategy: str = "overall", k: float | int = 0.3) -> float:
    """Treated minus control mean outcome among the top ``k`` rows by predicted uplift.

    Parameters
    ----------
    y_true, uplift, treatment : array-like (n,)
        Outcomes, predicted uplift, 0/1 treatment labels.
    strategy : {"overall", "by_group"}
        Top ``k`` of all rows, or of each group separately.
    k : float or int
        Share of rows in (0, 1), or a number of rows in [1, n).
    """
    y, u, t = _inputs(y_true, uplift, treatment, binary_outcome=False)
    if strategy not in ("overall", "by_group"):
        raise InputError("strategy", f"expected 'overall' or 'by_group', got {strategy!r}")
    n = y.size
    kind = np.asarray(k).dtype.kind
    if kind not in "if" or isinstance(k, (bool, np.bool_)):
        raise InputError("k", f"expected a share in (0, 1) or a row count, got {k!r}")
    if (kind == "i" and not 0 < k < n) or (kind == "f" and not 0.0 < k < 1.0):
        raise InputError("k", f"expected a share in (0, 1) or a row count in [1, {n}), got {k!r}")
    order = _descending(u)
    y, t = y[order], t[order]
    if strategy == "overall":
        top = int(n * k) if kind == "f" else int(k)
        y_top, t_top = y[:top], t[:top]
        return _mean(y_top[t_top == 1]) - _mean(y_top[t_top == 0])
    n_control, n_treated = int((t == 0).sum()), int((t == 1).sum())
    top_c = int(n_control * k) if kind == "f" else int(k)
    top_t = int(n_treated * k) if kind == "f" else int(k)
    if top_c > n_control or top_t > n_treated:
        raise InputError("k", f"k={k} exceeds a group's size (control {n_control}, treated {n_treated})")
    return _mean(y[t == 1][:top_t]) - _mean(y[t == 0][:top_c])


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")
