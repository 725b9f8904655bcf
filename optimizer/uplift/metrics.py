"""Model metrics: log-loss, AUC, and the uplift metrics of :mod:`optimizer.evaluation` with confidence intervals.

The Qini coefficient, AUUC and uplift@k are those of
:mod:`optimizer.evaluation.uplift_metrics` (scikit-uplift conventions); this
module adds what a model report needs around them:

* :func:`log_loss` and :func:`roc_auc` (definitions in :mod:`formulations.uplift`);
* :func:`qini_interval` — a percentile bootstrap interval of the Qini
  coefficient, resampling rows with replacement **within** the treated and the
  control group (so both stay present and keep their sizes). A random ranking
  has expected Qini coefficient 0, so an interval above 0 means the model ranks
  better than random targeting at that confidence level;
* :func:`uplift_report` — all of them for one model on held-out rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from formulations import uplift as F
from formulations.errors import InputError
from optimizer.evaluation import qini_auc_score, uplift_at_k, uplift_auc_score


def _pair(y_true: Any, y_prob: Any, field: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_prob, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape or y.size == 0:
        raise InputError(field, f"expected a 1-d array like y_true ({y.shape}), got {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError("y_true", "expected 0/1 outcomes")
    if not np.isfinite(p).all():
        raise InputError(field, "expected finite numbers")
    return y, p


def log_loss(y_true: Any, y_prob: Any) -> float:
    """Mean cross-entropy of probabilities (clipped to [1e-15, 1 - 1e-15]), as scikit-learn's ``log_loss``."""
    y, p = _pair(y_true, y_prob, "y_prob")
    if (p < 0).any() or (p > 1).any():
        raise InputError("y_prob", "expected probabilities in [0, 1]")
    return F.log_loss(y, p)


def roc_auc(y_true: Any, y_score: Any) -> float:
    """ROC AUC (Mann-Whitney, ties one half), as scikit-learn's ``roc_auc_score``."""
    y, s = _pair(y_true, y_score, "y_score")
    return F.roc_auc(y, s)


@dataclass(frozen=True)
class QiniInterval:
    """Qini coefficient with a percentile bootstrap interval."""

    qini: float
    ci: tuple[float, float]
    n_bootstrap: int
    alpha: float

    @property
    def beats_random(self) -> bool:
        """The whole interval lies above 0 (random targeting's expected Qini coefficient)."""
        return bool(self.ci[0] > 0)


def qini_interval(y_true: Any, uplift: Any, treatment: Any, n_bootstrap: int = 200, alpha: float = 0.05,
                  random_state: int | None = 0) -> QiniInterval:
    """Qini coefficient and its stratified percentile bootstrap interval (module docstring)."""
    y = np.asarray(y_true)
    u = np.asarray(uplift, dtype=np.float64)
    t = np.asarray(treatment)
    value = qini_auc_score(y, u, t)
    if not (isinstance(n_bootstrap, (int, np.integer)) and n_bootstrap >= 10):
        raise InputError("n_bootstrap", f"expected an integer >= 10, got {n_bootstrap!r}")
    rng = np.random.default_rng(random_state)
    treated, control = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    reps = np.empty(int(n_bootstrap))
    for b in range(int(n_bootstrap)):
        idx = np.concatenate([rng.choice(treated, treated.size), rng.choice(control, control.size)])
        yb = y[idx]
        if yb.min() == yb.max():
            reps[b] = np.nan
            continue
        reps[b] = qini_auc_score(yb, u[idx], t[idx])
    reps = reps[np.isfinite(reps)]
    low, high = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return QiniInterval(float(value), (float(low), float(high)), int(n_bootstrap), float(alpha))


@dataclass(frozen=True)
class UpliftReport:
    """Held-out quality of an uplift ranking (binary outcome)."""

    n: int
    qini: float
    qini_ci: tuple[float, float]
    auuc: float
    uplift_at_30: float
    observed_uplift: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def uplift_report(y_true: Any, uplift: Any, treatment: Any, n_bootstrap: int = 200,
                  random_state: int | None = 0) -> UpliftReport:
    """Qini (with interval), AUUC, uplift@30% and the overall treated-minus-control rate."""
    y = np.asarray(y_true, dtype=np.float64)
    t = np.asarray(treatment)
    qi = qini_interval(y, uplift, t, n_bootstrap=n_bootstrap, random_state=random_state)
    return UpliftReport(n=int(y.size), qini=qi.qini, qini_ci=qi.ci, auuc=uplift_auc_score(y, uplift, t),
                        uplift_at_30=uplift_at_k(y, uplift, t, strategy="overall", k=0.3),
                        observed_uplift=float(y[t == 1].mean() - y[t == 0].mean()))
