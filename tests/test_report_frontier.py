"""The efficient frontier of the report: monotone in the budget and in a capacity, and sandwiching the optimum.

Reference: the exact HiGHS MIP at every grid point (``budget_frontier(..., method="highs")``).
"""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.frontier import budget_frontier
from optimizer.whatif import budget_curve, capacity_channel, capacity_curve, default_budget_grid
from tests.weekly_helpers import random_problem


@pytest.fixture(scope="module")
def problem():
    base = random_problem(11, n=60, M=3, T=5, K=2, gap=2)
    return base.replace(capacity=np.maximum(1.0, np.floor(base.capacity * 0.5)))


@pytest.fixture(scope="module")
def budgets(problem):
    return default_budget_grid(problem, 0.0, 6)


@pytest.fixture(scope="module")
def exact(problem, budgets):
    return budget_frontier(problem, budgets, method="highs", rel_gap=1e-9)


def non_decreasing(values, tol=1e-9):
    v = np.asarray(values, dtype=float)
    return bool((np.diff(v) >= -tol * max(1.0, np.abs(v).max())).all())


def test_default_grid_spans_zero_to_twice_the_budget(problem, budgets):
    assert budgets[0] == 0.0 and budgets[-1] == pytest.approx(2 * problem.budget)
    assert problem.budget in budgets and budgets == sorted(budgets)


def test_exact_frontier_is_monotone_in_the_budget(exact):
    assert non_decreasing(exact.objective), exact
    assert exact.objective.iloc[-1] > exact.objective.iloc[0] + 1.0       # the budget matters here


def test_report_budget_curve_is_monotone_and_sandwiches_the_optimum(problem, budgets, exact):
    curve = budget_curve(problem, budgets, rel_gap=1e-6)
    assert non_decreasing(curve.best_objective) and non_decreasing(curve.best_bound), curve
    assert (curve.best_objective >= curve.objective - 1e-12).all()
    assert (curve.best_bound <= curve.bound + 1e-12).all()
    z = exact.objective.to_numpy()
    tol = 1e-7 * max(1.0, np.abs(z).max())
    assert (curve.best_objective.to_numpy() <= z + tol).all(), (curve.best_objective, z)
    assert (z <= curve.best_bound.to_numpy() + tol).all(), (z, curve.best_bound)
    # the raw dual points are monotone up to their certified gaps: z(b_k) <= bound(b_{k+1})
    assert (curve.objective.to_numpy()[:-1] <= curve.bound.to_numpy()[1:] + tol).all()


def test_capacity_curve_is_monotone(problem):
    channel = capacity_channel(problem)
    factors = [0.5, 1.0, 1.5, 2.0]
    curve = capacity_curve(problem, channel, factors, rel_gap=1e-6)
    assert non_decreasing(curve.capacity) and non_decreasing(curve.best_objective)
    assert non_decreasing(curve.best_bound)
    exact = capacity_curve(problem, channel, factors, method="highs", rel_gap=1e-9)
    assert non_decreasing(exact.objective)
    tol = 1e-7 * max(1.0, exact.objective.abs().max())
    assert (curve.best_objective <= exact.objective + tol).all()
    assert (exact.objective <= curve.best_bound + tol).all()


def test_capacity_channel_prefers_call():
    p = random_problem(1, n=10, M=3).replace(channel_names=["email", "call", "sms"])
    assert capacity_channel(p) == "call"
