"""Shadow prices of the report against finite differences (see the docstring of optimizer/whatif.py).

* HiGHS LP duals (``solve_relaxation``): V(b+e) - V(b) <= price <= V(b) - V(b-e), exactly (V concave).
* The report's prices (``method="dual"``, what the report shows): the same bracket widened by
  eps = bound - V(b), the dual method's distance from the LP optimum, which must itself be tiny.
* ``price_checks`` (the table in the report): the re-solved change lies in
  [price after - gap after, price before + gap before], and so does the exact MIP change (HiGHS MIP).
"""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import solve
from optimizer.explain import shadow_prices
from optimizer.whatif import price_checks
from solvers.highs_direct import solve_relaxation
from tests.weekly_helpers import random_problem

TOL = 1e-6


def lp_value(problem) -> float:
    return solve_relaxation(problem)["value"]


def with_capacity(problem, m, t, delta):
    cap = problem.capacity.copy()
    cap[m, t] += delta
    return problem.replace(capacity=cap)


@pytest.fixture(scope="module", params=[(5, 80, 1), (0, 60, 2)], ids=["gap1", "gap2"])
def instance(request):
    """Binding budget and several binding capacities (halved capacities)."""
    seed, n, gap = request.param
    base = random_problem(seed, n=n, M=3, T=5, K=2, gap=gap)
    problem = base.replace(capacity=np.maximum(1.0, np.floor(base.capacity * 0.5)))
    return problem, solve_relaxation(problem), shadow_prices(problem, None, rel_gap=1e-7)


def test_lp_duals_bracket_the_finite_differences(instance):
    problem, lp, _ = instance
    V = lp["value"]
    lam = lp["duals"]["capacity"]
    checked = 0
    for m, t in zip(*np.nonzero(problem.capacity >= 1)):
        up = lp_value(with_capacity(problem, m, t, +1)) - V
        down = V - lp_value(with_capacity(problem, m, t, -1))
        assert up <= lam[m, t] + TOL, (m, t, up, lam[m, t])
        assert lam[m, t] <= down + TOL, (m, t, lam[m, t], down)
        checked += lam[m, t] > 1e-6
    assert checked >= 2                     # some capacity rows really bind
    mu = lp["duals"]["budget"]
    assert mu > 0
    up = lp_value(problem.replace(budget=problem.budget + 1)) - V
    down = V - lp_value(problem.replace(budget=problem.budget - 1))
    assert up - TOL <= mu <= down + TOL


def test_report_prices_agree_with_lp_finite_differences(instance):
    problem, lp, prices = instance
    V = lp["value"]
    eps = prices.bound - V
    assert -TOL <= eps <= 1e-5 * abs(V)     # the dual method's bound is the LP optimum
    lam = prices.capacity
    for m, t in zip(*np.nonzero(problem.capacity >= 1)):
        up = lp_value(with_capacity(problem, m, t, +1)) - V
        down = V - lp_value(with_capacity(problem, m, t, -1))
        assert up - eps - TOL <= lam[m, t] <= down + eps + TOL, (m, t, up, lam[m, t], down)
    up = lp_value(problem.replace(budget=problem.budget + 1)) - V
    down = V - lp_value(problem.replace(budget=problem.budget - 1))
    assert up - eps - TOL <= prices.budget <= down + eps + TOL


def test_price_checks_agree_within_the_gap_and_with_the_exact_mip(instance):
    problem, _, prices = instance
    checks = price_checks(problem, prices, cells=3, rel_gap=1e-7)
    assert len(checks) >= 3 and checks.what.iloc[-1] == "one more unit of budget"
    assert checks.within.all(), checks
    # the interval is a statement about the optimum too: the exact MIP change lies in it
    z0 = solve(problem, method="highs", rel_gap=1e-9).objective
    lam = prices.capacity
    order = np.argsort(-np.where(problem.capacity >= 1, lam, -np.inf), axis=None)
    for k, row in enumerate(checks.itertuples()):
        if row.what.startswith("one more unit of budget"):
            changed = problem.replace(budget=problem.budget + 1)
        else:
            m, t = np.unravel_index(int(order[k]), lam.shape)
            assert row.what == f"one more {problem.channel_names[m]} slot on {problem.day_labels[t]}"
            changed = with_capacity(problem, m, t, +1)
        z1 = solve(changed, method="highs", rel_gap=1e-9).objective
        assert row.low - 1e-6 <= z1 - z0 <= row.high + 1e-6, (row, z1 - z0)


def test_price_checks_fail_for_a_wrong_price(instance):
    """The check can fail: claiming the budget is worth nothing puts the real change outside the interval."""
    from dataclasses import replace

    problem, _, prices = instance
    assert prices.budget > 2 * prices.abs_gap          # the instance can tell a zero price from the real one
    wrong = replace(prices, budget=0.0)
    checks = price_checks(problem, wrong, cells=0, budget=True, rel_gap=1e-7)
    row = checks.iloc[0]
    assert row.what == "one more unit of budget" and row.high == pytest.approx(prices.abs_gap)
    assert row.change > row.high and not row.within
