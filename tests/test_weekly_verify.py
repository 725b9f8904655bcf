"""verify() catches each kind of violation, and accepts correct plans."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import PlanningProblem, solve, verify


@pytest.fixture
def problem() -> PlanningProblem:
    u = np.ones((3, 2, 4))
    u[2, 1, :] = np.nan                        # customer 2 has no consent for channel 1
    return PlanningProblem(utility=u, capacity=np.full((2, 4), 2.0), cost=np.array([1.0, 3.0]), budget=7.0,
                           max_contacts=2, min_gap_days=2)


def kinds(report) -> set[str]:
    return {v.split(":")[0] for v in report.violations}


def test_valid_plan_passes(problem):
    report = verify(problem, np.array([[0, 0, 0], [0, 0, 2], [1, 1, 1]]))
    assert report.ok and report.violations == [] and report.contacts == 3
    assert report.objective == pytest.approx(3.0) and report.spend == pytest.approx(5.0)


@pytest.mark.parametrize("rows,kind", [
    ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], "capacity"),            # 3 contacts in a cell of capacity 2
    ([[0, 1, 0], [1, 1, 2], [2, 0, 3]], "budget"),               # 3 + 3 + 1 = 7 fits, see next
    ([[0, 1, 0], [1, 1, 2], [2, 0, 3], [1, 0, 0]], "budget"),    # 8 > 7
    ([[0, 0, 0], [0, 0, 2], [0, 1, 3]], "contact limit"),        # 3 contacts > 2 (and spacing)
    ([[0, 0, 0], [0, 1, 1]], "spacing"),                         # days 0 and 1 with min_gap_days=2
    ([[0, 0, 0], [0, 1, 0]], "spacing"),                         # two channels the same day
    ([[2, 1, 0]], "eligibility"),                                # no consent
    ([[0, 0, 0], [0, 0, 0]], "duplicate"),
    ([[5, 0, 0]], "index"),
])
def test_each_violation_is_caught(problem, rows, kind):
    report = verify(problem, np.array(rows))
    if rows == [[0, 1, 0], [1, 1, 2], [2, 0, 3]]:
        assert report.ok                                         # exactly on the budget is fine
        return
    assert not report.ok
    assert kind in kinds(report), report.violations


def test_wrong_objective_and_bound_claims(problem):
    plan = solve(problem, method="highs")
    assert verify(problem, plan).ok
    plan.objective += 1.0
    assert "objective" in kinds(verify(problem, plan))
    plan.objective -= 1.0
    plan.bound = plan.objective - 1.0
    assert "bound" in kinds(verify(problem, plan))


def test_bad_shape_is_reported(problem):
    assert not verify(problem, np.zeros((2, 2))).ok
    assert verify(problem, np.zeros((0, 3), dtype=np.int64)).ok
