"""Response and uplift estimators (scikit-learn conventions): the maths is in :mod:`formulations.uplift`.

* :class:`LogisticResponse` — the pooled response model :math:`p(s, a) = \\sigma(\\theta^\\top f(s, a))`
  with channel main effects and channel × state interactions; ``predict_uplift`` gives
  :math:`\\tau_m(s) = p(s, m) - p(s, 0)` for every channel.
* :class:`TLearner` — one outcome model per arm (logistic or ridge), optional Platt calibration;
  ``fit(X, y, treatment)`` in scikit-uplift's argument order, ``predict(X)`` the uplift.
* :class:`LinearUplift` — :math:`\\tau_m(x) = [1, x]^\\top \\delta_m` by ridge regression of the
  transformed outcome.

Treatments / actions are integer codes: 0 = control (no contact), 1..M the
arms / channels. ``X`` is a numeric array or a DataFrame (categorical
columns one-hot encoded by :class:`~optimizer.uplift.features.FeatureEncoder`).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np

from formulations.errors import InputError
from formulations.uplift import (response_design, response_feature_names, ridge_solve, sigmoid,
                                 transformed_outcome)
from optimizer.uplift.features import FeatureEncoder, check_vector
from solvers.logistic import DEFAULT_METHOD, fit_logistic


def _check_l2(l2: float) -> float:
    if not (isinstance(l2, (int, float, np.integer, np.floating)) and np.isfinite(l2) and l2 >= 0):
        raise InputError("l2", f"expected a non-negative number, got {l2!r}")
    return float(l2)


def _outcome_kind(y: np.ndarray, outcome: str) -> str:
    if outcome not in ("auto", "binary", "continuous"):
        raise InputError("outcome", f"expected 'auto', 'binary' or 'continuous', got {outcome!r}")
    binary = bool(np.isin(y, (0.0, 1.0)).all())
    if outcome == "binary" and not binary:
        raise InputError("y", f"expected 0/1 outcomes for outcome='binary', got values {np.unique(y)[:5]}")
    if outcome == "auto":
        return "binary" if binary else "continuous"
    return outcome


class LogisticResponse:
    """Pooled logistic response model with action interactions, fitted by Newton or L-BFGS.

    Parameters
    ----------
    l2 : float
        Ridge penalty :math:`\\lambda` on every coefficient but the intercept.
    interact : sequence of int or str, optional
        State columns :math:`g(s)` that interact with the channel (default: all).
    solver : {"newton", "newton-numpy", "lbfgs"}
        See :mod:`solvers.logistic`.
    tol : float
        Newton tolerance.
    random_state : int, optional
        Unused (the fit is deterministic); kept for the scikit-learn contract.

    Attributes
    ----------
    coef_ : ndarray (d,)
        :math:`\\theta` (intercept first), in the column order of ``feature_names_``.
    covariance_ : ndarray (d, d)
        :math:`H^{-1}` at the optimum (asymptotic covariance of ``coef_`` when ``l2`` is small).
    standard_errors_ : ndarray (d,)
        Square roots of the diagonal of ``covariance_``.
    n_channels_ : int
    encoder_ : FeatureEncoder
    feature_names_ : list of str
    n_iter_, converged_, loss_ : as reported by the solver
    """

    def __init__(self, l2: float = 1.0, interact: Sequence[int] | Sequence[str] | None = None,
                 solver: str = DEFAULT_METHOD, tol: float = 1e-12, random_state: int | None = None) -> None:
        self.l2 = l2
        self.interact = interact
        self.solver = solver
        self.tol = tol
        self.random_state = random_state

    def fit(self, X: Any, y: Any, action: Any, n_channels: int | None = None, channel_names: Sequence[str] | None = None,
            sample_weight: Any = None) -> "LogisticResponse":
        """Fit on logged (state, action, outcome) rows; ``action`` 0 = no contact, 1..M = channel."""
        l2 = _check_l2(self.l2)
        self.encoder_ = FeatureEncoder().fit(X)
        S = self.encoder_.transform(X)
        n = S.shape[0]
        yv = check_vector("y", y, n)
        if not np.isin(yv, (0.0, 1.0)).all():
            raise InputError("y", f"expected 0/1 outcomes, got values {np.unique(yv)[:5]}")
        a = check_vector("action", action, n, kind="int")
        M = int(a.max()) if n_channels is None else int(n_channels)
        if M < 1 or a.max() > M:
            raise InputError("action", f"expected codes 0..{max(M, 1)} with at least one contacted row")
        self.n_channels_ = M
        self.channel_names_ = list(channel_names) if channel_names is not None else [f"ch{m}" for m in range(1, M + 1)]
        self.interact_ = self._interact_columns()
        F = response_design(S, a, M, self.interact_)
        w = None if sample_weight is None else check_vector("sample_weight", sample_weight, n)
        fit = fit_logistic(F, yv, l2, w, method=self.solver, tol=self.tol, compute_hessian=True)
        self.coef_ = fit.coef
        self.n_iter_, self.converged_, self.loss_ = fit.n_iter, fit.converged, fit.loss
        self.fit_seconds_ = fit.seconds
        self.covariance_ = np.linalg.inv(fit.hessian)
        self.standard_errors_ = np.sqrt(np.diag(self.covariance_))
        self.feature_names_ = response_feature_names(self.encoder_.feature_names_, self.channel_names_, self.interact_)
        return self

    def _interact_columns(self) -> np.ndarray:
        names = self.encoder_.feature_names_
        if self.interact is None:
            return np.arange(len(names))
        cols = []
        for c in self.interact:
            if isinstance(c, str):
                if c not in names:
                    raise InputError("interact", f"unknown feature {c!r}")
                cols.append(names.index(c))
            else:
                if not 0 <= int(c) < len(names):
                    raise InputError("interact", f"column {c} out of range")
                cols.append(int(c))
        return np.asarray(cols, dtype=np.int64)

    def decision_function(self, X: Any, action: Any) -> np.ndarray:
        """Logits :math:`\\theta^\\top f(s, a)`; ``action`` an array or one code for every row."""
        S = self.encoder_.transform(X)
        a = np.broadcast_to(np.asarray(action, dtype=np.int64), (S.shape[0],))
        if a.min() < 0 or a.max() > self.n_channels_:
            raise InputError("action", f"expected codes 0..{self.n_channels_}")
        return response_design(S, a, self.n_channels_, self.interact_) @ self.coef_

    def predict_proba(self, X: Any, action: Any) -> np.ndarray:
        """:math:`p(s, a)` per row."""
        return sigmoid(self.decision_function(X, action))

    def predict_uplift(self, X: Any) -> np.ndarray:
        """(n, M): :math:`p(s, m) - p(s, 0)` for every channel."""
        base = self.predict_proba(X, 0)
        return np.stack([self.predict_proba(X, m) - base for m in range(1, self.n_channels_ + 1)], axis=1)


class _LogisticOutcome:
    def __init__(self, l2: float, solver: str) -> None:
        self.l2, self.solver = l2, solver

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight=None) -> "_LogisticOutcome":
        F = np.hstack([np.ones((X.shape[0], 1)), X])
        self.coef_ = fit_logistic(F, y, self.l2, sample_weight, method=self.solver).coef
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.coef_[0] + X @ self.coef_[1:]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = sigmoid(self.decision_function(X))
        return np.stack([1.0 - p, p], axis=1)


class _RidgeOutcome:
    def __init__(self, l2: float) -> None:
        self.l2 = l2

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight=None) -> "_RidgeOutcome":
        F = np.hstack([np.ones((X.shape[0], 1)), X])
        self.coef_ = ridge_solve(F, y, self.l2, sample_weight)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.coef_[0] + X @ self.coef_[1:]


class TLearner:
    """T-learner: :math:`\\tau_m(x) = \\mu_m(x) - \\mu_0(x)` with one outcome model per arm.

    Parameters
    ----------
    outcome : {"auto", "binary", "continuous"}
        Logistic models for 0/1 outcomes, ridge regression otherwise (``auto`` decides from ``y``).
    l2 : float
        Penalty of the built-in models.
    estimator : object, optional
        Any scikit-learn style model (``fit``; ``predict_proba`` for binary, ``predict`` otherwise),
        deep-copied per arm; replaces the built-in models.
    calibration : {None, "platt"}
        Platt-scale each arm's logit on a held-out ``calibration_share`` of its rows
        (binary outcomes, built-in models or models with ``decision_function``).
    calibration_share : float
    solver : str
        Logistic solver (:mod:`solvers.logistic`).
    random_state : int, optional
        Seed of the calibration split.

    Attributes
    ----------
    arms_ : ndarray of int
        Treatment codes other than 0, sorted.
    models_ : dict
        Code (0 = control) → fitted outcome model.
    calibrators_ : dict
        Code → :class:`~optimizer.evaluation.PlattScaling` (with ``calibration="platt"``).
    outcome_ : str
    encoder_ : FeatureEncoder
    """

    def __init__(self, outcome: str = "auto", l2: float = 1.0, estimator: Any = None, calibration: str | None = None,
                 calibration_share: float = 0.25, solver: str = DEFAULT_METHOD,
                 random_state: int | None = None) -> None:
        self.outcome = outcome
        self.l2 = l2
        self.estimator = estimator
        self.calibration = calibration
        self.calibration_share = calibration_share
        self.solver = solver
        self.random_state = random_state

    def fit(self, X: Any, y: Any, treatment: Any, sample_weight: Any = None) -> "TLearner":
        """Fit one model per treatment code on its rows (scikit-uplift's argument order)."""
        from optimizer.evaluation import PlattScaling

        l2 = _check_l2(self.l2)
        if self.calibration not in (None, "platt"):
            raise InputError("calibration", f"expected None or 'platt', got {self.calibration!r}")
        self.encoder_ = FeatureEncoder().fit(X)
        Z = self.encoder_.transform(X)
        n = Z.shape[0]
        yv = check_vector("y", y, n)
        t = check_vector("treatment", treatment, n, kind="int")
        self.outcome_ = _outcome_kind(yv, self.outcome)
        if self.calibration == "platt" and self.outcome_ != "binary":
            raise InputError("calibration", "Platt calibration needs a 0/1 outcome")
        codes = np.unique(t)
        if 0 not in codes or codes.size < 2:
            raise InputError("treatment", f"expected a control group (0) and at least one arm, got codes {codes}")
        self.arms_ = codes[codes > 0]
        w = None if sample_weight is None else check_vector("sample_weight", sample_weight, n)
        rng = np.random.default_rng(self.random_state)
        self.models_, self.calibrators_ = {}, {}
        for code in codes:
            rows = np.flatnonzero(t == code)
            fit_rows, cal_rows = rows, None
            if self.calibration == "platt":
                share = float(self.calibration_share)
                if not 0.0 < share < 1.0:
                    raise InputError("calibration_share", f"expected a share in (0, 1), got {share!r}")
                perm = rng.permutation(rows)
                k = int(round(share * rows.size))
                cal_rows, fit_rows = np.sort(perm[:k]), np.sort(perm[k:])
            if self.outcome_ == "binary" and np.unique(yv[fit_rows]).size < 2 and self.estimator is not None:
                raise InputError("y", f"arm {int(code)} has only one outcome value; cannot fit a classifier")
            model = self._new_model(l2)
            if w is None:
                model.fit(Z[fit_rows], yv[fit_rows])
            else:
                model.fit(Z[fit_rows], yv[fit_rows], sample_weight=w[fit_rows])
            self.models_[int(code)] = model
            if cal_rows is not None:
                if np.unique(yv[cal_rows]).size < 2:
                    raise InputError("y", f"the calibration rows of arm {int(code)} have only one outcome value")
                self.calibrators_[int(code)] = PlattScaling().fit(self._score(model, Z[cal_rows]), yv[cal_rows])
        return self

    def _new_model(self, l2: float):
        if self.estimator is not None:
            return copy.deepcopy(self.estimator)
        return _LogisticOutcome(l2, self.solver) if self.outcome_ == "binary" else _RidgeOutcome(l2)

    @staticmethod
    def _score(model, Z: np.ndarray) -> np.ndarray:
        if hasattr(model, "decision_function"):
            return np.asarray(model.decision_function(Z), dtype=np.float64)
        p = np.clip(model.predict_proba(Z)[:, 1], 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    def _mean(self, code: int, Z: np.ndarray) -> np.ndarray:
        model = self.models_[code]
        if self.outcome_ == "continuous":
            return np.asarray(model.predict(Z), dtype=np.float64)
        if code in self.calibrators_:
            return self.calibrators_[code].predict_proba(self._score(model, Z))
        return np.asarray(model.predict_proba(Z)[:, 1], dtype=np.float64)

    def predict_outcome(self, X: Any) -> np.ndarray:
        """(n, 1 + M): :math:`\\mu_a(x)` for control and every arm (columns in code order)."""
        if not hasattr(self, "models_"):
            raise InputError("TLearner", "call fit before predict")
        Z = self.encoder_.transform(X)
        return np.stack([self._mean(c, Z) for c in (0, *self.arms_.tolist())], axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Uplift :math:`\\mu_m(x) - \\mu_0(x)`: shape (n,) with one arm, (n, M) with several."""
        mu = self.predict_outcome(X)
        tau = mu[:, 1:] - mu[:, :1]
        return tau[:, 0] if tau.shape[1] == 1 else tau


class LinearUplift:
    """Linear uplift model :math:`\\tau_m(x) = [1, x]^\\top \\delta_m` (transformed-outcome ridge).

    Parameters
    ----------
    l2 : float
        Ridge penalty (not on the intercept).
    propensity : float or sequence of float, optional
        :math:`P(t = m \\mid t \\in \\{0, m\\})` per arm when known (a randomised trial); default the
        empirical share.
    random_state : int, optional
        Unused (deterministic); kept for the scikit-learn contract.

    Attributes
    ----------
    arms_ : ndarray of int
    coef_ : ndarray (M, 1 + d)
        :math:`\\delta_m` per arm (intercept first).
    propensity_ : ndarray (M,)
    encoder_ : FeatureEncoder
    """

    def __init__(self, l2: float = 1.0, propensity: float | Sequence[float] | None = None,
                 random_state: int | None = None) -> None:
        self.l2 = l2
        self.propensity = propensity
        self.random_state = random_state

    def fit(self, X: Any, y: Any, treatment: Any) -> "LinearUplift":
        l2 = _check_l2(self.l2)
        self.encoder_ = FeatureEncoder().fit(X)
        Z = self.encoder_.transform(X)
        n = Z.shape[0]
        yv = check_vector("y", y, n)
        t = check_vector("treatment", treatment, n, kind="int")
        codes = np.unique(t)
        if 0 not in codes or codes.size < 2:
            raise InputError("treatment", f"expected a control group (0) and at least one arm, got codes {codes}")
        self.arms_ = codes[codes > 0]
        given = None if self.propensity is None else np.broadcast_to(
            np.asarray(self.propensity, dtype=np.float64), (self.arms_.size,))
        coefs, props = [], []
        for k, m in enumerate(self.arms_):
            rows = np.flatnonzero((t == 0) | (t == m))
            treated = (t[rows] == m).astype(np.float64)
            e = float(treated.mean()) if given is None else float(given[k])
            z = transformed_outcome(yv[rows], treated, e)
            F = np.hstack([np.ones((rows.size, 1)), Z[rows]])
            coefs.append(ridge_solve(F, z, l2))
            props.append(e)
        self.coef_ = np.vstack(coefs)
        self.propensity_ = np.asarray(props)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Uplift: (n,) with one arm, (n, M) with several."""
        if not hasattr(self, "coef_"):
            raise InputError("LinearUplift", "call fit before predict")
        Z = self.encoder_.transform(X)
        tau = self.coef_[:, 0][None, :] + Z @ self.coef_[:, 1:].T
        return tau[:, 0] if tau.shape[1] == 1 else tau
