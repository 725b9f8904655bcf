"""Calibration: Platt scaling, reliability curves and MAPE against scikit-learn (test-only reference)."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.errors import InputError
from optimizer.evaluation import (PlattScaling, mean_absolute_percentage_error, reliability_curve,
                                  weighted_mape)

sk_calibration = pytest.importorskip("sklearn.calibration")
sk_metrics = pytest.importorskip("sklearn.metrics")


def _scores(seed, n, a=1.7, b=-0.4, scale=1.0):
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 1.5, n) * scale
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * s / scale + b)))).astype(int)
    return s, y


@pytest.mark.parametrize("seed, n, scale", [(0, 2000, 1.0), (1, 300, 1.0), (2, 5000, 80.0), (3, 50, 0.01)])
def test_platt_matches_scikit_learn_sigmoid_calibration(seed, n, scale):
    s, y = _scores(seed, n, scale=scale)
    ours = PlattScaling().fit(s, y)
    big_a, big_b = sk_calibration._sigmoid_calibration(s, y)   # 1 / (1 + exp(A s + B))
    assert ours.a_ == pytest.approx(-big_a, rel=1e-4, abs=1e-6)
    assert ours.b_ == pytest.approx(-big_b, rel=1e-4, abs=1e-6)
    grid = np.linspace(s.min(), s.max(), 7)
    np.testing.assert_allclose(ours.predict_proba(grid), 1 / (1 + np.exp(big_a * grid + big_b)), atol=1e-6)


def test_platt_through_public_calibrated_classifier():
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.frozen import FrozenEstimator

    class ScoreColumn(ClassifierMixin, BaseEstimator):
        """A fitted 'classifier' whose decision function is the first column (calibrates given scores)."""

        def fit(self, X, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, X):
            return np.asarray(X)[:, 0]

        def predict(self, X):
            return (self.decision_function(X) > 0).astype(int)

    s, y = _scores(4, 1500)
    X = s[:, None]
    ref = sk_calibration.CalibratedClassifierCV(FrozenEstimator(ScoreColumn().fit(X, y)), method="sigmoid").fit(X, y)
    ours = PlattScaling().fit(s, y)
    np.testing.assert_allclose(ours.predict_proba(s), ref.predict_proba(X)[:, 1], atol=1e-6)


def test_platt_recovers_true_sigmoid_and_is_sklearn_style():
    s, y = _scores(5, 200_000)
    model = PlattScaling()
    assert model.fit(s, y) is model
    assert model.a_ == pytest.approx(1.7, abs=0.03) and model.b_ == pytest.approx(-0.4, abs=0.03)
    np.testing.assert_allclose(model.transform(s[:5]), model.predict_proba(s[:5]))


@pytest.mark.parametrize("strategy, n_bins", [("uniform", 10), ("quantile", 8), ("uniform", 3)])
def test_reliability_curve_matches_scikit_learn(strategy, n_bins):
    rng = np.random.default_rng(6)
    p = rng.beta(2, 5, 3000)
    p[:20] = np.round(p[:20], 1)  # some predictions exactly on bin edges
    y = (rng.random(3000) < p ** 0.8).astype(int)
    curve = reliability_curve(y, p, n_bins=n_bins, strategy=strategy)
    prob_true, prob_pred = sk_calibration.calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    np.testing.assert_allclose(curve.fraction_positive, prob_true, atol=1e-12)
    np.testing.assert_allclose(curve.mean_predicted, prob_pred, atol=1e-12)
    assert curve.counts.sum() == 3000
    assert curve.brier == pytest.approx(sk_metrics.brier_score_loss(y, p))
    ece = np.sum(curve.counts / 3000 * np.abs(prob_true - prob_pred))
    assert curve.ece == pytest.approx(ece)


def test_mape_matches_scikit_learn_and_wape_by_hand():
    actual = np.array([100.0, 250.0, 80.0, 40.0])
    forecast = np.array([110.0, 200.0, 80.0, 50.0])
    assert mean_absolute_percentage_error(actual, forecast) == pytest.approx(
        sk_metrics.mean_absolute_percentage_error(actual, forecast))
    assert weighted_mape(actual, forecast) == pytest.approx(70.0 / 470.0)


@pytest.mark.parametrize("call, field", [
    (lambda: PlattScaling().fit([0.1, 0.2], [1, 1]), "y"),
    (lambda: PlattScaling().fit([0.1, np.inf], [0, 1]), "scores"),
    (lambda: PlattScaling().fit([0.1, 0.2, 0.3], [0, 1]), "y"),
    (lambda: reliability_curve([0, 1], [0.2, 1.2]), "y_prob"),
    (lambda: reliability_curve([0, 1], [0.2, 0.4], strategy="kmeans"), "strategy"),
    (lambda: mean_absolute_percentage_error([0.0, 2.0], [1.0, 2.0]), "actual"),
    (lambda: weighted_mape([0.0, 0.0], [1.0, 2.0]), "actual"),
])
def test_bad_inputs(call, field):
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field
