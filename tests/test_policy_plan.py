"""The weekly plan's prices seed the real-time policy; on a shared instance both minimise the same dual."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from optimizer import solve
from optimizer.generate import generate_problem
from optimizer.policy_plan import plan_policy_inputs, policy_from_plan
from solvers import policy as S
from solvers.highs_direct import solve_relaxation


@pytest.fixture(scope="module")
def shared():
    """One day, one contact per customer: the plan's per-customer problem is exactly the policy's."""
    n = 1500
    week = generate_problem(n, seed=5, budget=None, max_contacts=1, min_gap_days=1, dtype=np.float64).problem
    day = PlanningProblem(utility=week.utility[:, :, :1], capacity=week.capacity[:, :1], cost=week.cost,
                          budget=0.1 * n, max_contacts=1, min_gap_days=1, channel_names=week.channel_names)
    plan = solve(day, method="dual")
    return day, plan, solve_relaxation(day)


def test_inputs_layout(shared):
    day, plan, _ = shared
    inputs = plan_policy_inputs(day, 0, budget_share=1.0)
    assert inputs.resource_names == ("capacity:email", "capacity:push", "capacity:sms", "capacity:call",
                                     "capacity:branch", "budget")
    np.testing.assert_allclose(inputs.budget[:5], day.capacity[:, 0] / day.n_customers)
    np.testing.assert_allclose(inputs.costs[5], np.r_[0.0, day.cost])
    prices = inputs.prices_from_duals(plan.duals)
    np.testing.assert_allclose(prices, np.r_[plan.duals["capacity"][:, 0], plan.duals["budget"]])
    with pytest.raises(InputError, match="day"):
        plan_policy_inputs(day, 3)
    with pytest.raises(InputError, match="problem"):
        plan_policy_inputs("not a problem")


def test_policy_dual_is_the_plan_lagrangian(shared):
    day, plan, lp = shared
    policy, inputs = policy_from_plan(plan, temperature=0.0, budget_share=1.0)
    n = day.n_customers
    at_seed = S.evaluate(inputs.scores, inputs.eligible, policy.resources, policy.prices_, 0.0)
    # D_policy(lambda) * n is the plan's Lagrangian L(lambda, mu): identical at the plan's prices
    assert abs(at_seed.value * n - plan.bound) <= 1e-9 * abs(plan.bound)
    assert policy.model_version_.startswith("plan-dual")


def test_plan_prices_and_fitted_prices_agree(shared):
    day, plan, lp = shared
    n = day.n_customers
    policy, inputs = policy_from_plan(plan, temperature=0.0, budget_share=1.0)
    seed = policy.prices_.copy()
    policy.fit(inputs.scores, inputs.eligible, warm_start=False)       # independent of the plan's prices
    fit = policy.fit_result_
    d_seed = S.evaluate(inputs.scores, inputs.eligible, policy.resources, seed, 0.0).value
    # both are minimisers of the same convex dual: values within the certified gaps
    assert abs(fit.dual_value * n - lp["value"]) <= 1e-6 * lp["value"]
    assert d_seed - fit.dual_value <= plan.gap * plan.bound / n + 1e-9
    assert fit.dual_value - d_seed <= fit.gap * abs(fit.dual_value) + 1e-12
    # the prices themselves agree to a few per cent of the largest price (the dual is flat near its minimum)
    assert np.max(np.abs(seed - policy.prices_)) <= 0.05 * np.max(policy.prices_)
    same = (S.decide_batch(inputs.scores, inputs.eligible, policy.resources.price_cost(seed), 0.0, np.zeros(n),
                           np.eye(1, 6)[0]).actions
            == S.decide_batch(inputs.scores, inputs.eligible, policy.resources.price_cost(policy.prices_), 0.0,
                              np.zeros(n), np.eye(1, 6)[0]).actions)
    assert same.mean() >= 0.97


def test_warm_start_from_plan_never_worsens_the_dual(shared):
    day, plan, _ = shared
    policy, inputs = policy_from_plan(plan, temperature=0.0, budget_share=1.0)
    d_seed = S.evaluate(inputs.scores, inputs.eligible, policy.resources, policy.prices_, 0.0).value
    policy.fit(inputs.scores, inputs.eligible)                          # starts from the plan's prices
    assert policy.fit_result_.dual_value <= d_seed + 1e-12
    assert [v.source for v in policy.history_] == ["plan"]
    policy.rollback()
    assert policy.version_.source == "plan"
