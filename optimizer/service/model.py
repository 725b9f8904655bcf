"""Model features, consent masks, the projection-regularised response model and the model registry.

* :data:`FEATURE_NAMES` (feature schema ``FEATURE_SCHEMA``) are computed by
  :func:`feature_vector` from the streaming state's features -- or from the
  batch Customer 360 ``features.parquet`` columns of the same names, which
  agree with them (``tests/test_service_state.py``); a model can be trained on
  the batch features and served on the streaming ones.
* :func:`consent_mask` turns consent flags into the 0/1 mask *m* of
  :mod:`formulations.streaming`; the model only sees x' = x ⊙ m.
* :class:`ProjectedLogistic` is the per-channel logistic response model with
  the penalty ρ‖Pθ‖² of :func:`formulations.streaming.projection_matrix`.
* :class:`ModelRegistry` holds model versions (response model + fitted
  :class:`~optimizer.policy.LagrangianPolicy`); ``rollback`` restores the
  previous model id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from formulations import streaming as F
from formulations.errors import InputError

FEATURE_SCHEMA = "f1"
FEATURE_NAMES = ("decay_digital", "decay_call", "decay_branch", "decay_complaint",
                 "recency_digital", "recency_call", "recency_branch")
MASK_GROUPS = {"profiling": (0, 4), "call_data": (1, 3, 5), "branch_data": (2, 6)}
CHANNELS = ("email", "push", "sms", "call")
RECENCY_SCALE_DAYS = 30.0


def feature_vector(features: dict | None) -> np.ndarray:
    """x (d,): log1p of the decayed activities, exp(-recency/30 d) (0 when never seen); zeros when None."""
    x = np.zeros(len(FEATURE_NAMES))
    if features is None:
        return x
    for j, k in enumerate(F.DECAY_KINDS):
        x[j] = math.log1p(max(float(features[f"decay_{k}"]), 0.0))
    for j, k in enumerate(F.EVENT_TYPES):
        r = features.get(f"recency_{k}_days")
        x[4 + j] = 0.0 if r is None or not math.isfinite(r) else math.exp(-max(r, 0.0) / RECENCY_SCALE_DAYS)
    return x


def feature_matrix(frame: Any) -> np.ndarray:
    """Row-wise :func:`feature_vector` of a batch features DataFrame (columns decay_*, recency_*_days)."""
    dec = np.log1p(np.maximum(frame[[f"decay_{k}" for k in F.DECAY_KINDS]].to_numpy(np.float64), 0.0))
    rec = frame[[f"recency_{k}_days" for k in F.EVENT_TYPES]].to_numpy(np.float64)
    rec = np.where(np.isfinite(rec), np.exp(-np.maximum(rec, 0.0) / RECENCY_SCALE_DAYS), 0.0)
    return np.hstack([dec, rec])


_GRANTED = np.ones(len(FEATURE_NAMES))
_GRANTED.flags.writeable = False


def consent_mask(consent: dict | None) -> tuple[np.ndarray, dict]:
    """m in {0,1}^d from ``{"profiling": bool, "call_data": bool, "branch_data": bool}`` (missing = granted).

    Returns the mask and the logged mask state (group -> 0/1).
    """
    if not consent:
        return _GRANTED, dict.fromkeys(MASK_GROUPS, 1)
    m = np.ones(len(FEATURE_NAMES))
    state = {}
    for group, cols in MASK_GROUPS.items():
        granted = consent.get(group, True)
        if not isinstance(granted, bool):
            raise InputError(f"context.consent.{group}", f"expected true or false, got {granted!r}")
        state[group] = int(granted)
        if not granted:
            m[list(cols)] = 0.0
    unknown = sorted(set(consent) - set(MASK_GROUPS))
    if unknown:
        raise InputError(f"context.consent.{unknown[0]}", f"expected one of {', '.join(MASK_GROUPS)}")
    return m, state


def _sigmoid(s: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * s))


class ProjectedLogistic:
    """Logistic regression per output with Ω(θ) = ‖Pθ‖² (formulations.streaming, "Projection regularisation").

    Parameters
    ----------
    rho : float
        Weight ρ >= 0 of the projection penalty.
    l2 : float
        Ridge weight ρ₂ > 0 (keeps the problem strictly convex).
    tol : float
        Gradient-norm tolerance of the Newton iterations.
    """

    def __init__(self, rho: float = 0.0, l2: float = 1e-3, tol: float = 1e-9) -> None:
        if not (np.isfinite(rho) and rho >= 0 and np.isfinite(l2) and l2 > 0):
            raise InputError("rho", f"expected rho >= 0 and l2 > 0, got {rho!r}, {l2!r}")
        self.rho = float(rho)
        self.l2 = float(l2)
        self.tol = float(tol)

    def fit(self, x: np.ndarray, y: np.ndarray, projector: np.ndarray | None = None) -> "ProjectedLogistic":
        """x (n, d), y (n, C) of 0/1 (one column per output); ``projector`` P (d, d).

        Damped Newton iterations on the convex objective (exact Hessian
        ``X̃ᵀWX̃/n + diag(0, ρ₂I + 2ρPᵀP)``) until the gradient norm is below ``tol``.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
        n, d = x.shape
        p = np.zeros((d, d)) if projector is None else np.asarray(projector, dtype=np.float64)
        xt = np.hstack([np.ones((n, 1)), x])
        reg = np.zeros((d + 1, d + 1))
        reg[1:, 1:] = self.l2 * np.eye(d) + 2.0 * self.rho * p.T @ p

        def objective(w: np.ndarray, yc: np.ndarray) -> float:
            s = xt @ w
            return float(np.mean(np.logaddexp(0.0, s) - yc * s) + 0.5 * w @ reg @ w)

        coefs = []
        for c in range(y.shape[1]):
            yc, w = y[:, c], np.zeros(d + 1)
            f = objective(w, yc)
            for _ in range(100):
                mu = _sigmoid(xt @ w)
                grad = xt.T @ (mu - yc) / n + reg @ w
                if np.linalg.norm(grad) < self.tol:
                    break
                hess = (xt * (mu * (1 - mu))[:, None]).T @ xt / n + reg
                step = np.linalg.solve(hess + 1e-12 * np.eye(d + 1), grad)
                t = 1.0
                while t > 1e-8:
                    f_new = objective(w - t * step, yc)
                    if f_new <= f - 1e-4 * t * grad @ step:
                        break
                    t *= 0.5
                w, f = w - t * step, f_new
            coefs.append(w)
        coefs = np.array(coefs)
        self.coef_ = coefs[:, 1:]               # (C, d)
        self.intercept_ = coefs[:, 0]           # (C,)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, C) response probabilities (or (C,) for one row)."""
        return _sigmoid(np.asarray(x, dtype=np.float64) @ self.coef_.T + self.intercept_)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic, ties averaged)."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(p)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@dataclass
class ModelVersion:
    """One served model: response model, policy, reference feature moments, provenance."""

    model_id: str
    response: ProjectedLogistic
    policy: Any                       # LagrangianPolicy
    feature_mean: np.ndarray
    feature_std: np.ndarray
    info: dict = field(default_factory=dict)
    feature_schema: str = FEATURE_SCHEMA


class ModelRegistry:
    """Ordered model versions; ``active`` is served, ``rollback`` restores the previous model id."""

    def __init__(self, versions: Sequence[ModelVersion] = ()) -> None:
        self.versions: list[ModelVersion] = []
        self.history: list[str] = []      # active ids, oldest first
        for v in versions:
            self.deploy(v)

    def deploy(self, version: ModelVersion) -> None:
        if any(v.model_id == version.model_id for v in self.versions):
            raise InputError("model_id", f"{version.model_id!r} is already deployed")
        self.versions.append(version)
        self.history.append(version.model_id)

    @property
    def active(self) -> ModelVersion:
        if not self.history:
            raise InputError("model", "no model deployed")
        return self.get(self.history[-1])

    def get(self, model_id: str) -> ModelVersion:
        for v in self.versions:
            if v.model_id == model_id:
                return v
        raise InputError("model_id", f"unknown model {model_id!r}")

    def rollback(self) -> ModelVersion:
        """Make the previously active version active again (InputError when there is none)."""
        if len(self.history) < 2:
            raise InputError("rollback", "no previous model version to roll back to")
        self.history.pop()
        return self.active
