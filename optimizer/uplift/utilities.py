"""From fitted models to the planner's utilities: :math:`u_{imt} = \\hat\\tau_{im} v_i w_{mt} - c_m`.

See "Contact utilities" in :mod:`formulations.uplift`. Typical use::

    from optimizer import PlanningProblem, solve, utilities_from_models
    model = LogisticResponse().fit(X_hist, y_hist, action_hist)
    u = utilities_from_models(model, X_now, value=80.0, cost=cost, day_effect=w)   # (n, M, T)
    plan = solve(PlanningProblem(utility=u, capacity=cap, cost=cost, budget=B))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from formulations.errors import InputError
from formulations.uplift import contact_utilities, day_of_week_effects

__all__ = ["utilities_from_models", "predicted_uplift", "day_of_week_effects"]


def predicted_uplift(model: Any, X: Any = None) -> np.ndarray:
    """(n, M) predicted uplift of a fitted model (``predict_uplift`` or ``predict``) or an uplift array."""
    if hasattr(model, "predict_uplift"):
        tau = model.predict_uplift(X)
    elif hasattr(model, "predict"):
        if X is None:
            raise InputError("X", "a fitted model needs the customers' features X")
        tau = model.predict(X)
    else:
        tau = model
    tau = np.asarray(tau, dtype=np.float64)
    if tau.ndim == 1:
        tau = tau[:, None]
    if tau.ndim != 2 or tau.shape[0] == 0:
        raise InputError("uplift", f"expected an (n, M) array of predicted uplift, got shape {tau.shape}")
    if not np.isfinite(tau).all():
        raise InputError("uplift", "expected finite predicted uplift")
    return tau


def utilities_from_models(model: Any, X: Any = None, *, cost: Any, value: Any = 1.0, day_effect: Any = None,
                          n_days: int = 7) -> np.ndarray:
    """Utilities (n, M, T) for :class:`~optimizer.PlanningProblem` from a fitted uplift / response model.

    Parameters
    ----------
    model : fitted model or array_like (n, M)
        A :class:`~optimizer.uplift.LogisticResponse` (``predict_uplift``), a
        :class:`~optimizer.uplift.TLearner` / :class:`~optimizer.uplift.LinearUplift` (``predict``),
        any object with one of those methods, or the predicted uplift itself.
    X : array_like or DataFrame, optional
        Features of the customers to plan (rows = customers).
    cost : array_like (M,)
        Cost per contact of each channel.
    value : float or array_like (n,)
        Value of one response (e.g. mean spend of past responders, per customer or overall).
    day_effect : array_like (M, T) or (T,), optional
        Multiplier of the uplift per channel and day (default 1: no day-of-week effect); see
        :func:`day_of_week_effects`.
    n_days : int
        T when ``day_effect`` is not given.

    Returns
    -------
    ndarray (n, M, T), float64
    """
    tau = predicted_uplift(model, X)
    n, M = tau.shape
    c = np.asarray(cost, dtype=np.float64)
    if c.shape != (M,) or not np.isfinite(c).all() or (c < 0).any():
        raise InputError("cost", f"expected {M} non-negative costs (one per channel), got {c.tolist()!r}")
    v = np.asarray(value, dtype=np.float64)
    if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != n) or not np.isfinite(v).all():
        raise InputError("value", f"expected a finite number or {n} values (one per customer)")
    if day_effect is None:
        if not (isinstance(n_days, (int, np.integer)) and n_days >= 1):
            raise InputError("n_days", f"expected a positive integer, got {n_days!r}")
        w = np.ones((M, int(n_days)))
    else:
        w = np.asarray(day_effect, dtype=np.float64)
        if w.ndim == 1:
            w = np.broadcast_to(w, (M, w.shape[0]))
        if w.ndim != 2 or w.shape[0] != M or not np.isfinite(w).all() or (w < 0).any():
            raise InputError("day_effect", f"expected non-negative multipliers of shape ({M}, T) or (T,), "
                                           f"got shape {np.shape(day_effect)}")
    return contact_utilities(tau, v, c, w)
