"""From fitted models to (n, M, T) utilities and a verified plan."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.errors import InputError
from optimizer import PlanningProblem, solve, utilities_from_models, verify
from optimizer.uplift import LogisticResponse, TLearner, day_of_week_effects, predicted_uplift


def test_utility_formula_hand_computed():
    tau = np.array([[0.10, 0.02], [0.00, 0.30]])
    w = np.array([[1.0, 2.0, 0.5], [1.0, 1.0, 1.0]])
    u = utilities_from_models(tau, cost=[1.0, 5.0], value=[50.0, 20.0], day_effect=w)
    assert u.shape == (2, 2, 3)
    assert u[0, 0].tolist() == pytest.approx([4.0, 9.0, 1.5])        # 0.1 * 50 * w - 1
    assert u[0, 1].tolist() == pytest.approx([-4.0, -4.0, -4.0])     # 0.02 * 50 - 5
    assert u[1, 1].tolist() == pytest.approx([1.0, 1.0, 1.0])        # 0.3 * 20 - 5
    flat = utilities_from_models(tau, cost=[0.0, 0.0], value=1.0, n_days=4)
    assert flat.shape == (2, 2, 4) and np.allclose(flat[:, :, 3], tau)


def test_utilities_accept_fitted_models():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    a = rng.integers(0, 3, 2000)
    y = (rng.random(2000) < 0.1 + 0.05 * (a > 0) * (X[:, 0] > 0)).astype(int)
    resp = LogisticResponse().fit(X, y, a)
    tl = TLearner().fit(X, y, a)
    for model in (resp, tl):
        u = utilities_from_models(model, X[:10], cost=[0.1, 0.2], value=10.0)
        np.testing.assert_allclose(u[:, :, 0], predicted_uplift(model, X[:10]) * 10.0 - [0.1, 0.2])
    with pytest.raises(InputError, match="X"):
        utilities_from_models(tl, cost=[0.1, 0.2])


@pytest.mark.parametrize("kwargs, field", [
    ({"cost": [1.0]}, "cost"), ({"cost": [1.0, -1.0]}, "cost"), ({"cost": [1, 1], "value": [1.0, 2.0, 3.0]}, "value"),
    ({"cost": [1, 1], "day_effect": np.ones((3, 7))}, "day_effect"), ({"cost": [1, 1], "n_days": 0}, "n_days")])
def test_utility_inputs_are_checked(kwargs, field):
    with pytest.raises(InputError, match=field):
        utilities_from_models(np.full((4, 2), 0.1), **kwargs)
    with pytest.raises(InputError, match="uplift"):
        utilities_from_models(np.array([[np.nan]]), cost=[0.0])


def test_day_of_week_effects_find_a_strong_day_and_shrink_the_rest():
    rng = np.random.default_rng(1)
    n = 200_000
    channel = rng.integers(0, 2, n)
    weekday = rng.integers(0, 5, n)
    treated = (rng.random(n) < 0.8).astype(int)
    lift = np.where(channel == 0, 0.05 * np.where(weekday == 2, 2.0, 1.0), -0.01)   # channel 1 hurts
    y = (rng.random(n) < 0.1 + treated * lift).astype(int)
    w = day_of_week_effects(channel, weekday, treated, y, n_channels=2, n_days=7, pseudo_count=200)
    assert w.shape == (2, 7)
    # true multipliers: 0.10 / 0.06 on Wednesday, 0.05 / 0.06 on the other weekdays (overall uplift 0.06)
    assert w[0, 2] == pytest.approx(0.10 / 0.06, abs=0.25)
    assert np.all(np.abs(np.delete(w[0, :5], 2) - 0.05 / 0.06) < 0.2)
    assert np.all(w[0, 5:] == 1.0) and np.all(w[1] == 1.0)            # no data / no positive uplift: 1


def test_plan_from_model_utilities_captures_most_of_the_oracle_value():
    """Logged data from a known response model → fitted model → plan; valued under the truth."""
    rng = np.random.default_rng(2)
    n_log, n, M, T = 30_000, 400, 2, 3
    coef_base, coef_ch = np.array([-2.0, 0.5]), np.array([[0.2, 1.0], [0.6, -0.8]])   # uplift logits per channel

    def truth(x):
        eta0 = coef_base[0] + coef_base[1] * x[:, 1]
        p0 = 1 / (1 + np.exp(-eta0))
        p = 1 / (1 + np.exp(-(eta0[:, None] + coef_ch[:, 0] + x[:, :1] * coef_ch[:, 1])))
        return p0, p

    X = rng.normal(size=(n_log, 2))
    a = rng.integers(0, M + 1, n_log)
    p0, p = truth(X)
    prob = np.where(a == 0, p0, p[np.arange(n_log), np.maximum(a - 1, 0)])
    y = (rng.random(n_log) < prob).astype(int)
    model = LogisticResponse(l2=1.0).fit(X, y, a)

    Xp = rng.normal(size=(n, 2))
    p0, p = truth(Xp)
    true_tau = p - p0[:, None]
    value, cost = 40.0, np.array([0.5, 2.0])
    capacity = np.full((M, T), 40.0)
    u_model = utilities_from_models(model, Xp, cost=cost, value=value, n_days=T)
    u_true = utilities_from_models(true_tau, cost=cost, value=value, n_days=T)
    problem = PlanningProblem(utility=u_model, capacity=capacity, cost=cost, max_contacts=1)
    plan = solve(problem, method="highs")
    assert verify(problem, plan).ok and plan.n_contacts > 0
    oracle = solve(PlanningProblem(utility=u_true, capacity=capacity, cost=cost, max_contacts=1), method="highs")

    def true_value(idx):
        return float(u_true[idx[:, 0], idx[:, 1], idx[:, 2]].sum())

    rand_idx = np.column_stack([rng.permutation(n)[:plan.n_contacts], rng.integers(0, M, plan.n_contacts),
                                rng.integers(0, T, plan.n_contacts)])
    assert true_value(plan.assignment_indices) >= 0.9 * oracle.objective
    assert true_value(plan.assignment_indices) > true_value(rand_idx) + 0.2 * oracle.objective
