"""Logistic solvers, the response model, the T-learner and the linear uplift model against references."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from formulations.errors import InputError
from formulations.uplift import logistic_gradient_hessian, response_design, transformed_outcome
from optimizer.uplift import FeatureEncoder, LinearUplift, LogisticResponse, TLearner, encode_features
from solvers import _logistic_kernels as K
from solvers.logistic import fit_logistic

sk_linear = pytest.importorskip("sklearn.linear_model")


def _logistic_data(seed: int, n: int = 4000, d: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 3:] *= rng.random((n, d - 3)) < 0.3                      # sparse columns (kernel skips zeros)
    theta = np.r_[-1.0, rng.normal(scale=0.7, size=d)]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(theta[0] + X @ theta[1:])))).astype(float)
    return np.hstack([np.ones((n, 1)), X]), y, theta


def test_numba_kernel_matches_numpy_twin():
    F, y, theta = _logistic_data(0, n=500)
    w = np.random.default_rng(1).random(500)
    loss, grad, hess = K.logistic_grad_hess(F, y, w, theta, 0.7)
    loss2, grad2, hess2 = K.logistic_grad_hess_numpy(F, y, w, theta, 0.7)
    assert loss == pytest.approx(loss2, rel=1e-12)
    np.testing.assert_allclose(grad, grad2, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(hess, hess2, rtol=1e-10, atol=1e-10)
    # and the gradient is the derivative of the loss (central differences)
    e = np.zeros_like(theta)
    e[2] = 1e-6
    fd = (logistic_gradient_hessian(theta + e, F, y, 0.7, w)[0] - logistic_gradient_hessian(theta - e, F, y, 0.7, w)[0]) / 2e-6
    assert fd == pytest.approx(grad[2], rel=1e-5)


@pytest.mark.parametrize("l2", [0.5, 10.0])
def test_solvers_agree_with_each_other_and_scikit_learn(l2):
    F, y, _ = _logistic_data(2)
    fits = {m: fit_logistic(F, y, l2, method=m) for m in ("newton", "newton-numpy", "lbfgs")}
    assert all(f.converged for f in fits.values())
    ref = sk_linear.LogisticRegression(C=1.0 / l2, tol=1e-12, max_iter=10_000).fit(F[:, 1:], y)
    ref_coef = np.r_[ref.intercept_, ref.coef_.ravel()]              # sklearn: intercept not penalised
    for f in fits.values():
        np.testing.assert_allclose(f.coef, ref_coef, atol=1e-5)
    np.testing.assert_allclose(fits["newton"].coef, fits["newton-numpy"].coef, atol=1e-10)
    assert fits["newton"].grad_norm < 1e-6


def test_fit_logistic_rejects_unknown_method():
    F, y, _ = _logistic_data(3, n=50)
    with pytest.raises(InputError, match="method"):
        fit_logistic(F, y, method="sgd")


def test_tlearner_matches_scikit_uplift_two_models():
    sk_models = pytest.importorskip("sklift.models")
    rng = np.random.default_rng(4)
    n = 3000
    X = rng.normal(size=(n, 4))
    t = (rng.random(n) < 0.5).astype(int)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1 + X[:, 1] + t * (0.3 + X[:, 0]))))).astype(int)
    ours = TLearner(l2=2.0).fit(X, y, t).predict(X)
    lr = sk_linear.LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sk_models.TwoModels(estimator_trmnt=lr, estimator_ctrl=sk_linear.LogisticRegression(
            C=0.5, tol=1e-12, max_iter=10_000), method="vanilla").fit(X, y, t).predict(X)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_tlearner_multi_arm_continuous_and_estimator_plugin():
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.normal(size=(n, 2))
    t = rng.integers(0, 3, n)
    spend = 2.0 + X[:, 0] + (t == 1) * (1.0 + X[:, 1]) + (t == 2) * 0.5 + rng.normal(scale=0.1, size=n)
    model = TLearner(l2=1e-6).fit(X, spend, t)
    assert model.outcome_ == "continuous" and model.arms_.tolist() == [1, 2]
    tau = model.predict(X)
    assert tau.shape == (n, 2)
    np.testing.assert_allclose(tau[:, 0], 1.0 + X[:, 1], atol=0.05)
    np.testing.assert_allclose(tau[:, 1], 0.5, atol=0.05)
    plug = TLearner(estimator=sk_linear.LinearRegression()).fit(X, spend, t).predict(X)
    np.testing.assert_allclose(plug, tau, atol=1e-4)


def test_tlearner_platt_calibration_and_dataframe_input():
    rng = np.random.default_rng(6)
    n = 4000
    df = pd.DataFrame({"x": rng.normal(size=n), "zone": rng.choice(["Urban", "Rural", "Suburban"], n)})
    t = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(-1 + 0.8 * df["x"] + 0.5 * (df["zone"] == "Urban") + t * 0.6)))
    y = (rng.random(n) < p).astype(int)
    model = TLearner(calibration="platt", random_state=0).fit(df, y, t)
    assert model.encoder_.feature_names_ == ["x", "zone=Suburban", "zone=Urban"]
    assert set(model.calibrators_) == {0, 1}
    mu = model.predict_outcome(df)
    assert mu.shape == (n, 2) and ((mu > 0) & (mu < 1)).all()
    assert abs(mu[t == 1, 1].mean() - y[t == 1].mean()) < 0.02     # calibrated in the large
    X, names = encode_features(df)
    assert names == model.encoder_.feature_names_ and X.shape == (n, 3)
    unseen = df.assign(zone="Mars")                                  # unseen level = reference level
    assert FeatureEncoder().fit(df).transform(unseen)[:, 1:].sum() == 0


def test_linear_uplift_recovers_a_linear_effect():
    rng = np.random.default_rng(7)
    n = 60_000
    X = rng.normal(size=(n, 2))
    t = (rng.random(n) < 0.5).astype(int)
    p = np.clip(0.2 + 0.05 * X[:, 1] + t * (0.1 + 0.05 * X[:, 0]), 0, 1)
    y = (rng.random(n) < p).astype(float)
    model = LinearUplift(l2=1e-6, propensity=0.5).fit(X, y, t)
    np.testing.assert_allclose(model.coef_[0], [0.1, 0.05, 0.0], atol=0.03)
    assert model.propensity_.tolist() == [0.5]
    z = transformed_outcome(y, t, 0.5)                               # E[z] = average uplift under randomisation
    assert z.mean() == pytest.approx(y[t == 1].mean() - y[t == 0].mean(), abs=0.01)
    with pytest.raises(InputError, match="propensity"):
        transformed_outcome(y, t, 1.0)


def test_logistic_response_uplift_and_design():
    rng = np.random.default_rng(8)
    n = 20_000
    S = rng.normal(size=(n, 2))
    a = rng.integers(0, 3, n)
    true = np.array([-2.0, 0.5, 0.0, 0.4, 0.8, 0.6, 0.0, 0.0, -0.5])   # [1, s, e_a, e_a x s]
    F = response_design(S, a, 2)
    y = (rng.random(n) < 1 / (1 + np.exp(-F @ true))).astype(int)
    model = LogisticResponse(l2=1e-3).fit(S, y, a, channel_names=["email", "call"])
    assert model.feature_names_ == ["intercept", "x0", "x1", "a=email", "a=call", "email*x0", "email*x1",
                                    "call*x0", "call*x1"]
    z = (model.coef_ - true) / model.standard_errors_
    assert np.abs(z).max() < 4.0
    tau = model.predict_uplift(S[:5])
    eta0 = true[0] + S[:5] @ true[1:3]
    expect_call = 1 / (1 + np.exp(-(eta0 + 0.8 - 0.5 * S[:5, 1]))) - 1 / (1 + np.exp(-eta0))
    np.testing.assert_allclose(tau[:, 1], expect_call, atol=0.03)
    assert model.converged_


@pytest.mark.parametrize("kwargs, field", [({"l2": -1.0}, "l2"), ({"calibration": "isotonic"}, "calibration"),
                                           ({"outcome": "binary"}, "y")])
def test_tlearner_errors_name_the_field(kwargs, field):
    X = np.arange(20.0)[:, None]
    y = np.r_[np.zeros(10), np.ones(10) * 2.5]
    t = np.tile([0, 1], 10)
    with pytest.raises(InputError, match=field):
        TLearner(**kwargs).fit(X, y, t)


def test_inputs_are_checked():
    X = np.ones((4, 1))
    with pytest.raises(InputError, match="treatment"):
        TLearner().fit(X, [0, 1, 0, 1], [1, 1, 1, 1])                # no control group
    with pytest.raises(InputError, match="X"):
        TLearner().fit(np.array([[np.nan]] * 4), [0, 1, 0, 1], [0, 1, 0, 1])
    with pytest.raises(InputError, match="y"):
        LogisticResponse().fit(X, [0, 1, 0, 3], [0, 1, 0, 1])
    with pytest.raises(InputError, match="TLearner"):
        TLearner().predict(X)
