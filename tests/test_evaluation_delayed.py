"""Delayed conversions: the censoring correction recovers the true rate on simulated data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from formulations.errors import InputError
from optimizer.evaluation import ExponentialDelayModel, KaplanMeierConversion, corrected_conversion_rates


def simulate(seed: int, n: int, rate, delay_rate: float, window: float = 20.0, groups=None):
    """Exposures uniform over the last ``window`` days; eventual conversion ~ Bernoulli(rate),
    delay ~ Exp(delay_rate); observed only if the delay fits in the elapsed time."""
    rng = np.random.default_rng(seed)
    elapsed = rng.uniform(0.05, window, n)
    p = rate if groups is None else np.asarray(rate)[groups]
    will = rng.random(n) < p
    delay = rng.exponential(1.0 / delay_rate, n)
    converted = will & (delay <= elapsed)
    return elapsed, converted, np.where(converted, delay, np.nan)


def test_exponential_model_recovers_true_rate_under_censoring():
    e, c, d = simulate(1, 40_000, 0.08, 0.25)
    model = ExponentialDelayModel().fit(e, c, d)
    low, high = model.conversion_rate_ci()[0]
    assert model.naive_rate_[0] < 0.07                       # open windows hide conversions
    assert low <= 0.08 <= high
    assert abs(model.conversion_rate_[0] - 0.08) < 3 * model.conversion_rate_se_[0]
    assert abs(model.delay_rate_ - 0.25) < 3 * model.delay_rate_se_
    assert model.mean_delay_ == pytest.approx(1 / model.delay_rate_)


def test_interval_coverage_over_seeds():
    hits = 0
    for seed in range(40):
        e, c, d = simulate(100 + seed, 4000, 0.1, 0.4, window=10.0)
        low, high = ExponentialDelayModel().fit(e, c, d).conversion_rate_ci()[0]
        hits += low <= 0.1 <= high
    assert hits >= 34  # nominal 95%: 38 of 40 expected


def test_mle_matches_direct_optimisation_and_numeric_hessian():
    e, c, d = simulate(2, 3000, [0.05, 0.15], 0.3, groups=np.arange(3000) % 2)
    g = np.arange(3000) % 2
    model = ExponentialDelayModel().fit(e, c, d, groups=g)
    dd = np.where(c, d, 0.0)

    def nll(theta):
        return -ExponentialDelayModel._loglik(theta[:2], theta[2], e, c, dd, g)

    ref = minimize(nll, x0=[0.1, 0.1, 1.0], method="L-BFGS-B", bounds=[(1e-6, 1), (1e-6, 1), (1e-6, 10)],
                   options=dict(ftol=1e-15, gtol=1e-12, maxiter=10_000))
    theta = np.r_[model.conversion_rate_, model.delay_rate_]
    np.testing.assert_allclose(theta, ref.x, rtol=1e-4)
    assert -ref.fun <= model.log_likelihood_ + 1e-7
    # standard errors from the analytic Hessian vs central differences of the log-likelihood
    h = 1e-5 * theta
    num = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            def f(si, sj):
                t = theta.copy()
                t[i] += si * h[i]
                t[j] += sj * h[j]
                return -nll(t)
            num[i, j] = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (4 * h[i] * h[j])
    se_num = np.sqrt(np.diag(np.linalg.inv(-num)))
    np.testing.assert_allclose(np.r_[model.conversion_rate_se_, model.delay_rate_se_], se_num, rtol=1e-3)


def test_grouped_rates_and_table():
    groups = np.arange(30_000) % 3
    e, c, d = simulate(3, 30_000, [0.04, 0.08, 0.12], 0.2, groups=groups)
    table = corrected_conversion_rates(e, c, d, groups=groups)
    model = ExponentialDelayModel().fit(e, c, d, groups=groups)
    np.testing.assert_allclose(table["corrected_rate"], model.conversion_rate_)
    for row, se, truth in zip(table.itertuples(), model.conversion_rate_se_, (0.04, 0.08, 0.12)):
        assert abs(row.corrected_rate - truth) < 4 * se        # (a single 95% interval misses 1 in 20)
        assert row.ci_low < row.corrected_rate < row.ci_high
        assert row.naive_rate < row.corrected_rate


def test_kaplan_meier_recovers_rate_within_horizon():
    e, c, d = simulate(4, 40_000, 0.1, 0.3)
    horizon = 12.0
    truth = 0.1 * (1 - np.exp(-0.3 * horizon))
    km = KaplanMeierConversion(horizon=horizon).fit(e, c, d)
    low, high = km.conversion_rate_ci()[0]
    assert low <= truth <= high
    expo = ExponentialDelayModel().fit(e, c, d)
    assert abs(km.conversion_rate_[0] - expo.rate_within(horizon)[0]) < 3 * km.conversion_rate_se_[0]
    table = corrected_conversion_rates(e, c, d, method="kaplan-meier", horizon=horizon)
    assert table["corrected_rate"].iloc[0] == pytest.approx(km.conversion_rate_[0])


def test_kaplan_meier_by_hand():
    # times: conversions at 1, 2, 2; censored (not yet converted) at 1.5, 3, 4
    e = np.array([5.0, 5.0, 5.0, 1.5, 3.0, 4.0])
    c = np.array([1, 1, 1, 0, 0, 0])
    d = np.array([1.0, 2.0, 2.0, np.nan, np.nan, np.nan])
    km = KaplanMeierConversion(horizon=2.5).fit(e, c, d)
    # S(1) = 5/6, S(2) = 5/6 * (1 - 2/4) = 5/12 (at risk at 2: the two converters and the units censored at 3, 4)
    assert km.conversion_rate_[0] == pytest.approx(1 - 5 / 12)
    greenwood = (5 / 12) ** 2 * (1 / (6 * 5) + 2 / (4 * 2))
    assert km.conversion_rate_se_[0] == pytest.approx(np.sqrt(greenwood))
    curve = km.curves_["all"]
    assert curve["time"].tolist() == [1.0, 2.0] and curve["at_risk"].tolist() == [6, 4]


def test_eventual_conversion_probability():
    e, c, d = simulate(5, 5000, 0.2, 0.5)
    model = ExponentialDelayModel().fit(e, c, d)
    prob = model.eventual_conversion_probability(e, c)
    p, lam = model.conversion_rate_[0], model.delay_rate_
    assert np.all(prob[c] == 1.0)
    i = int(np.flatnonzero(~c)[0])
    s = np.exp(-lam * e[i])
    assert prob[i] == pytest.approx(p * s / (1 - p + p * s))
    assert prob.mean() == pytest.approx(p, rel=0.02)  # the posterior means average back to the rate


@pytest.mark.parametrize("args, field", [
    (([1.0, 2.0], [1, 0], [1.5, np.nan]), "delay"),        # delay > elapsed
    (([1.0, -2.0], [1, 0], [0.5, np.nan]), "elapsed"),
    (([1.0, 2.0], [0, 0], [np.nan, np.nan]), "converted"),  # nothing to learn the delay from
    (([1.0, 2.0], [1, 2], [0.5, np.nan]), "converted"),
    (([1.0, 2.0], [1], [0.5]), "converted"),
    (([], [], []), "elapsed"),
])
def test_bad_inputs(args, field):
    with pytest.raises(InputError) as err:
        ExponentialDelayModel().fit(*args)
    assert err.value.field == field
