"""highs, pyomo and cvxpy reach the same optimum; greedy is feasible and never better."""

from __future__ import annotations

import itertools

import pytest

from optimizer import solve, verify
from tests.weekly_helpers import random_problem

GRID = list(itertools.product([1, 2, 3], [1, 2, 3], [True, False]))


@pytest.mark.parametrize("K,gap,budget", GRID, ids=[f"K{k}-g{g}-{'B' if b else 'noB'}" for k, g, b in GRID])
def test_exact_methods_agree(K, gap, budget):
    problem = random_problem(seed=100 * K + 10 * gap + budget, n=14, K=K, gap=gap, budget=budget)
    plans = {m: solve(problem, method=m, rel_gap=1e-9) for m in ("highs", "pyomo", "cvxpy")}
    ref = plans["highs"].objective
    for method, plan in plans.items():
        assert plan.status == "optimal", method
        assert verify(problem, plan).ok, (method, verify(problem, plan).violations)
        assert plan.objective == pytest.approx(ref, rel=1e-6, abs=1e-9), method
        assert plan.bound >= plan.objective - 1e-9
    greedy = solve(problem, method="greedy")
    assert verify(problem, greedy).ok
    assert greedy.objective <= ref + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_greedy_feasible_and_dominated(seed):
    problem = random_problem(seed, n=40, T=7, K=2, gap=2)
    greedy = solve(problem, method="greedy")
    best = solve(problem, method="highs", rel_gap=1e-9)
    assert verify(problem, greedy).ok
    assert greedy.objective <= best.objective + 1e-9
