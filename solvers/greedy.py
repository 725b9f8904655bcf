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
    objective = plan_value(problem, indices)
    return SolveResult(Status.FEASIBLE, indices, objective, None, None, None, 1, sw.total(), build_time, sw.lap(),
                       NAME, "greedy baseline (no bound)")
