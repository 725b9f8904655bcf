"""On the Customer 360 generator (ground truth): coefficients recovered, Qini beats random with a CI.

Tolerance of the recovery test: the response model with the generator's own state columns
(``truth_contacts``) is correctly specified, so each fitted coefficient must lie within
4 standard errors of the true one (|z| < 4 for all 31 coefficients; two-sided p = 6e-5 each) and
the Wald statistic (θ̂ − θ)ᵀ Σ̂⁻¹ (θ̂ − θ) must be below the 0.999 quantile of a chi-square with
31 degrees of freedom (61.1). At 5,000 customers (about 8,800 logged contacts) the standard
errors are 0.07-1.1, so this is an absolute tolerance of roughly 0.3 on the main effects; the
benchmark (``benchmarks/uplift.md``) reports the absolute errors at larger sizes. (Seeds 1-5 gave
Wald statistics 35.0, 28.6, 58.7, 40.3, 24.2 when this test was written.)
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from formulations.c360 import CONTACT_CHANNELS
from optimizer.c360 import generate_c360
from optimizer.uplift import LogisticResponse, TLearner, qini_interval
from optimizer.uplift.c360_data import (TRUTH_INTERACT, TRUTH_STATE, true_response_coefficients, truth_contacts)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("c360") / "raw"
    generate_c360(out, n_customers=5000, n_weeks=12, seed=1)
    return out


@pytest.fixture(scope="module")
def contacts(raw):
    return truth_contacts(raw)


def _fit(c):
    return LogisticResponse(l2=1e-3, interact=list(TRUTH_INTERACT)).fit(
        c[list(TRUTH_STATE)], c["responded"], c["action"], n_channels=5, channel_names=CONTACT_CHANNELS)


def test_truth_coefficients_match_the_generator_file(raw):
    assert true_response_coefficients(raw) == true_response_coefficients()
    coef = true_response_coefficients()
    assert coef["email*dig"] == 0.45 and coef["call*complainer"] == -1.4 and coef["a=email"] == pytest.approx(-0.19)


def test_response_model_recovers_true_coefficients(contacts):
    model = _fit(contacts)
    truth = true_response_coefficients()
    true = np.array([truth[name] for name in model.feature_names_])
    z = (model.coef_ - true) / model.standard_errors_
    assert model.converged_ and len(true) == 31
    assert np.abs(z).max() < 4.0, dict(zip(model.feature_names_, np.round(z, 2)))
    err = model.coef_ - true
    assert float(err @ np.linalg.solve(model.covariance_, err)) < stats.chi2.ppf(0.999, df=31)
    # the test can fail: a model with the channel effects switched off is rejected
    wrong = true.copy()
    wrong[[model.feature_names_.index(f"a={c}") for c in CONTACT_CHANNELS]] = 0.0
    assert np.abs((model.coef_ - wrong) / model.standard_errors_).max() > 4.0


@pytest.mark.parametrize("learner", ["response", "tlearner"])
def test_uplift_ranking_beats_random_with_confidence(contacts, learner):
    rng = np.random.default_rng(0)
    customers = contacts["true_customer"].unique()
    held_out = np.isin(contacts["true_customer"], rng.choice(customers, customers.size // 2, replace=False))
    train, test = contacts[~held_out], contacts[held_out]
    cols = list(TRUTH_STATE)
    if learner == "response":
        tau = _fit(train).predict_uplift(test[cols])
    else:
        tau = TLearner(l2=1.0).fit(train[cols], train["responded"], train["action"]).predict(test[cols])
    score = tau[np.arange(len(test)), test["channel"].to_numpy()]    # uplift of the channel each row was assigned
    q = qini_interval(test["responded"].to_numpy(), score, test["treatment"].to_numpy(), n_bootstrap=100,
                      random_state=1)
    assert q.beats_random, q                                          # the 95% interval lies above 0
