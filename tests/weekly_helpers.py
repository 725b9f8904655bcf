"""Small random weekly planning problems for the tests."""

from __future__ import annotations

import numpy as np

from formulations.assignment import PlanningProblem


def random_problem(seed: int, n: int = 12, M: int = 3, T: int = 5, *, budget: bool = True, K: int = 2, gap: int = 1,
                   ineligible: float = 0.15, zero_capacity: bool = False, dtype=np.float64) -> PlanningProblem:
    """A small random instance with binding capacities (and a binding budget when asked)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(1.0, 1.0, size=(n, M, T)).astype(dtype)
    mask = rng.random((n, M, T)) < ineligible
    u[mask] = np.nan
    u[0, :, :] = np.nan                                 # a customer with nothing eligible
    cap = rng.integers(1, max(2, n // 3), size=(M, T)).astype(float)
    if zero_capacity:
        cap[0, 0] = 0.0
    cost = np.round(rng.uniform(0.1, 2.0, size=M), 2)
    b = float(np.round(0.25 * n * cost.mean(), 2)) if budget else None
    return PlanningProblem(utility=u, capacity=cap, cost=cost, budget=b, max_contacts=K, min_gap_days=gap)
