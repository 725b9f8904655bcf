"""The sparse model, its twins, reductions and the problem validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from formulations.assignment import build_model, candidates, max_spaced_days
from optimizer import InputError, PlanningProblem, solve
from solvers.cvxpy_highs import build_cvxpy
from solvers.pyomo_highs import build_pyomo, model_size
from tests.weekly_helpers import random_problem


@pytest.mark.parametrize("K,gap,budget", [(1, 1, True), (2, 2, True), (3, 3, False), (2, 1, False)])
def test_pyomo_and_direct_highs_build_the_same_model(K, gap, budget):
    problem = random_problem(7, n=10, K=K, gap=gap, budget=budget)
    model = build_model(problem)
    rows, cols, nnz = model_size(build_pyomo(problem))
    assert (rows, cols, nnz) == (model.num_rows, model.num_cols, model.num_nonzeros)
    cp_problem, x, _ = build_cvxpy(problem)
    assert x.size == model.num_cols
    assert sum(c.size for c in cp_problem.constraints) == model.num_rows


def test_reductions_drop_only_useless_columns():
    problem = random_problem(3, n=8, zero_capacity=True)
    cand = candidates(problem)
    u = problem.utility[cand.customer, cand.channel, cand.day]
    assert (u > 0).all()
    assert not ((cand.channel == 0) & (cand.day == 0)).any()      # zero-capacity cell
    assert not (cand.customer == 0).any()                          # nothing eligible


def test_max_spaced_days_matches_brute_force():
    rng = np.random.default_rng(1)
    import itertools
    for _ in range(50):
        T, gap = int(rng.integers(1, 8)), int(rng.integers(1, 4))
        days = rng.random(T) < 0.6
        best = 0
        for r in range(T + 1):
            for combo in itertools.combinations(np.flatnonzero(days), r):
                if all(b - a >= gap for a, b in zip(combo, combo[1:])):
                    best = max(best, r)
        assert max_spaced_days(days[None, :], gap)[0] == best


def test_lp_relaxation_duals_are_shadow_prices():
    from solvers.highs_direct import solve_relaxation
    problem = random_problem(5, n=30, T=3, K=1)
    lp = solve_relaxation(problem)
    assert (lp["duals"]["capacity"] >= -1e-9).all() and lp["duals"]["budget"] >= -1e-9
    # one more unit of the most valuable slot raises the LP value by its price (small step, same basis)
    m, t = np.unravel_index(np.argmax(lp["duals"]["capacity"]), problem.capacity.shape)
    cap = problem.capacity.copy()
    cap[m, t] += 1
    bumped = solve_relaxation(problem.replace(capacity=cap))
    assert bumped["value"] - lp["value"] <= lp["duals"]["capacity"][m, t] + 1e-7


# ------------------------------------------------------------------ validation
U = np.ones((2, 2, 3))


@pytest.mark.parametrize("kwargs,field", [
    (dict(utility=np.ones((2, 2))), "utility"),
    (dict(utility=np.ones((0, 2, 3))), "utility"),
    (dict(utility=np.array([[["a"]]])), "utility"),
    (dict(utility=np.full((2, 2, 3), np.inf)), "utility"),
    (dict(capacity=np.ones((3, 3))), "capacity"),
    (dict(capacity=-np.ones((2, 3))), "capacity"),
    (dict(capacity=np.full((2, 3), np.nan)), "capacity"),
    (dict(cost=[1.0]), "cost"),
    (dict(cost=[1.0, -2.0]), "cost"),
    (dict(budget=-1.0), "budget"),
    (dict(budget=float("inf")), "budget"),
    (dict(max_contacts=-1), "max_contacts"),
    (dict(max_contacts=1.5), "max_contacts"),
    (dict(max_contacts=[1, 2, 3]), "max_contacts"),
    (dict(min_gap_days=0), "min_gap_days"),
    (dict(eligible=np.ones((2, 3), dtype=bool)), "eligible"),
    (dict(eligible=np.full((2, 2), 0.5)), "eligible"),
    (dict(customer_ids=["a", "a"]), "customer_ids"),
    (dict(channel_names=["x"]), "channel_names"),
])
def test_bad_fields_raise_one_line_errors(kwargs, field):
    base = dict(utility=U, capacity=np.ones((2, 3)), cost=[1.0, 2.0])
    base.update(kwargs)
    with pytest.raises(InputError) as err:
        PlanningProblem(**base)
    assert err.value.field == field
    assert "\n" not in str(err.value) and str(err.value).startswith(field)


def test_input_arrays_are_never_modified():
    u = np.ones((2, 2, 3))
    u[0, 0, 0] = np.nan
    elig = np.ones((2, 2), dtype=bool)
    elig[1, 1] = False
    before = u.copy()
    problem = PlanningProblem(utility=u, capacity=np.ones((2, 3)), cost=[1, 1], eligible=elig)
    np.testing.assert_array_equal(u, before)
    assert np.isneginf(problem.utility[0, 0, 0]) and np.isneginf(problem.utility[1, 1]).all()


def test_solve_argument_errors(small_problem):
    with pytest.raises(InputError, match="method"):
        solve(small_problem, method="simplex")
    with pytest.raises(InputError, match="rel_gap"):
        solve(small_problem, rel_gap=-1)
    with pytest.raises(InputError, match="time_limit"):
        solve(small_problem, time_limit=0)
    with pytest.raises(InputError, match="problem"):
        solve("not a problem")


# ------------------------------------------------------------------ from_frames
def frames():
    scores = pd.DataFrame({"customer_id": ["a", "a", "b", "b"], "channel": ["email", "call", "email", "call"],
                           "day": ["Mon", "Wed", "Tue", "Sun"], "utility": [1.0, 5.0, 2.0, 3.0]})
    channels = pd.DataFrame({"channel": ["email", "call"], "cost": [0.01, 4.0], "capacity": [10, 1]})
    return scores, channels


def test_from_frames_builds_the_week():
    scores, channels = frames()
    channels["capacity_Sun"] = [10, 0]
    problem = PlanningProblem.from_frames(scores, channels, budget=10.0, max_contacts=2)
    assert problem.shape == (2, 2, 7) and problem.day_labels[0] == "Mon"
    assert problem.utility[0, 1, 2] == 5.0 and np.isneginf(problem.utility[0, 1, 0])
    assert problem.capacity[1, 6] == 0 and problem.capacity[1, 0] == 1
    plan = solve(problem, method="highs")
    assert set(plan.assignments.customer_id) == {"a", "b"}


def test_from_frames_integer_and_date_days():
    scores, channels = frames()
    scores["day"] = [3, 5, 4, 7]
    assert PlanningProblem.from_frames(scores, channels).day_labels == ("3", "4", "5", "6", "7")
    scores["day"] = ["2026-12-01", "2026-12-03", "2026-12-02", "2026-12-05"]
    assert PlanningProblem.from_frames(scores, channels).n_days == 5


@pytest.mark.parametrize("mutate,field", [
    (lambda s, c: s.assign(channel=["email", "fax", "email", "call"]), "scores.channel"),
    (lambda s, c: pd.concat([s, s.iloc[:1]]), "scores"),
    (lambda s, c: s.assign(utility=["1", "x", "2", "3"]), "scores.utility"),
    (lambda s, c: s.assign(day=["Mon", "someday", "Tue", "Sun"]), "scores.day"),
    (lambda s, c: s.iloc[:0], "scores"),
    (lambda s, c: s.drop(columns=["utility"]), "scores"),
])
def test_from_frames_errors(mutate, field):
    scores, channels = frames()
    with pytest.raises(InputError) as err:
        PlanningProblem.from_frames(mutate(scores, channels), channels)
    assert err.value.field == field


def test_from_frames_channel_errors():
    scores, channels = frames()
    with pytest.raises(InputError, match="channels.cost"):
        PlanningProblem.from_frames(scores, channels.assign(cost=[1.0, -1.0]))
    with pytest.raises(InputError, match="capacity"):
        PlanningProblem.from_frames(scores, channels.drop(columns=["capacity"]))
