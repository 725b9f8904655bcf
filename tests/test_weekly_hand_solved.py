"""Tiny instances solved by hand; every exact method (and the dual core) must find the optimum."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import PlanningProblem, solve, verify

NAN = np.nan

# (name, problem kwargs, optimum, why)
CASES = [
    ("capacity",
     dict(utility=np.array([5.0, 3.0, 4.0]).reshape(3, 1, 1), capacity=[[2]], cost=[0.0], max_contacts=1),
     9.0,
     "one channel-day with 2 slots and three customers worth 5, 3, 4: take the two best, 5 + 4"),
    ("spacing",
     dict(utility=np.array([3.0, 4.0, 3.0]).reshape(1, 1, 3), capacity=[[1, 1, 1]], cost=[0.0], max_contacts=2,
          min_gap_days=2),
     6.0,
     "days worth 3, 4, 3 and contacts at least 2 days apart: {day1, day3} = 6 beats {day2} = 4"),
    ("budget",
     dict(utility=np.array([[2.0, 6.0], [1.2, 5.5]]).reshape(2, 2, 1), capacity=[[2], [2]], cost=[1.0, 5.0],
          budget=6.0, max_contacts=1),
     7.5,
     "budget 6, e-mail costs 1 and a call 5: call the second customer and e-mail the first (5.5 + 2 = 7.5); "
     "calling the first (6) leaves only 1 for an e-mail worth 1.2 (7.2); two calls cost 10"),
    ("limit-and-consent",
     dict(utility=np.array([[1.0, NAN, 3.0], [2.0, 5.0, -1.0]]).reshape(1, 2, 3), capacity=np.ones((2, 3)),
          cost=[0.0, 0.0], max_contacts=2),
     8.0,
     "best per day: 2 (ch1), 5 (ch1; ch0 has no consent), 3 (ch0); two contacts allowed: 5 + 3"),
    ("gap-longer-than-week",
     dict(utility=np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3), capacity=[[1, 1, 1]], cost=[0.0], max_contacts=3,
          min_gap_days=5),
     3.0,
     "a gap of 5 days in a 3-day week allows one contact: the best day, 3"),
    ("eligible-mask",
     dict(utility=np.array([[4.0, 1.0], [3.0, 2.0]]).reshape(2, 2, 1), capacity=[[1], [1]], cost=[0.0, 0.0],
          eligible=np.array([[False, True], [True, True]]), max_contacts=1),
     4.0,
     "customer 0 may not get channel 0, so channel 0 goes to customer 1 (3) and channel 1 to customer 0 (1)"),
    ("nothing-positive",
     dict(utility=-np.ones((2, 2, 2)), capacity=np.ones((2, 2)), cost=[1.0, 1.0], budget=10.0),
     0.0,
     "every contact loses value: the empty plan is optimal"),
]


@pytest.mark.parametrize("method", ["highs", "pyomo", "cvxpy", "dual"])
@pytest.mark.parametrize("name,kwargs,optimum,why", CASES, ids=[c[0] for c in CASES])
def test_hand_solved_optimum(method, name, kwargs, optimum, why):
    problem = PlanningProblem(**kwargs)
    plan = solve(problem, method=method, rel_gap=1e-9)
    assert plan.objective == pytest.approx(optimum, abs=1e-9), why
    assert verify(problem, plan).ok
    if method != "dual" or plan.status == "optimal":
        assert plan.status == "optimal"
    assert plan.bound is not None and plan.bound >= optimum - 1e-9


def test_greedy_misses_budget_optimum():
    """Greedy takes the 6-call first and ends at 7.2 on the budget case: feasible, below the optimum."""
    problem = PlanningProblem(**CASES[2][1])
    plan = solve(problem, method="greedy")
    assert plan.objective == pytest.approx(7.2)
    assert verify(problem, plan).ok
    assert plan.bound is None and plan.status == "feasible"
