"""Greedy baseline: best-first by utility, respecting every constraint.

Candidates (allowed, positive utility) are visited in order of decreasing
utility (ties by customer, channel, day); a contact is kept when the
customer has room under the contact limit, no other contact of that customer
lies within ``min_gap_days``, the channel-day has capacity left and the
budget allows it. Always feasible, no optimality bound.
"""

from __future__ import annotations

import numpy as np

from formulations.assignment import PlanningProblem, candidates, plan_value, sort_assignments
from solvers._greedy_kernels import greedy_select
from solvers.base import SolveOptions, SolveResult, Status, Stopwatch

NAME = "greedy"


def is_available() -> bool:
    return True


def solve(problem: PlanningProblem, options: SolveOptions) -> SolveResult:
    sw = Stopwatch()
    cand = candidates(problem)
    order = np.argsort(-cand.utility, kind="stable").astype(np.int64)
    build_time = sw.lap()
    remaining = problem.capacity.astype(np.int64).copy()
    budget = np.inf if problem.budget is None else float(problem.budget)
    limits = np.ascontiguousarray(problem.contact_limits(), dtype=np.int64)
    selected, _ = greedy_select(order, cand.customer, cand.channel, cand.day, problem.cost, remaining, budget,
                                limits, problem.min_gap_days, problem.n_customers, problem.n_days)
    indices = sort_assignments(np.stack([cand.customer[selected], cand.channel[selected], cand.day[selected]], axis=1))
    status, message = Status.FEASIBLE, "greedy baseline (no bound)"
    if problem.fairness is not None and problem.fairness.n_rows:
        indices, ok = _meet_segment_bounds(problem, indices, remaining, budget)
        if not ok:
            status, message = Status.NO_SOLUTION, "greedy could not meet the segment bounds"
    objective = plan_value(problem, indices)
    return SolveResult(status, indices, objective, None, None, None, 1, sw.total(), build_time, sw.lap(),
                       NAME, message)


def _meet_segment_bounds(problem: PlanningProblem, indices: np.ndarray, remaining: np.ndarray, budget: float):
    """Repair the greedy plan for the hard segment bounds (by raw utility); (indices, success)."""
    from solvers import _dual_kernels as K
    from solvers.dual import DualData
    from solvers.fairness_repair import repair_rows

    data = DualData(problem)
    codes = np.full((data.n, data.slots), -1, dtype=np.int16)
    fill = np.zeros(data.n, dtype=np.int64)
    for i, m, t in indices.tolist():
        codes[i, fill[i]] = m * data.T + t
        fill[i] += 1
    spend = float(problem.cost[indices[:, 1]].sum()) if indices.size else 0.0
    zero = np.zeros((data.M, data.T))
    ok, _ = repair_rows(data, codes, zero, np.zeros(data.M), np.zeros((data.n_segments, data.M)),
                        remaining.copy(), max(budget - spend, 0.0))
    if not ok:
        empty, _ = data.empty_plan()
        return (empty if empty is not None else np.zeros((0, 3), np.int64)), empty is not None
    idx, _ = K.codes_to_indices(codes, data.u, data.T)
    return idx, True
