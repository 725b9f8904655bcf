"""Per-customer explanations, plan files read back, and the week-over-week diff.

The explanation's statements are checked against the plan with an independent reference: every
structural blocker (consent, closed cell, limit, spacing, capacity, budget, segment bound) must be
a real violation reported by ``verify`` when the option is added to the plan; "open" options must
really fit; prices and reduced values are recomputed from the problem data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from formulations.errors import InputError
from optimizer import solve, verify
from optimizer.explain import REASONS, explain_customer, explain_customers, sample_customers, shadow_prices
from optimizer.plan_diff import diff_plans
from optimizer.plan_table import plan_from_table
from tests.fairness_helpers import unfair_problem
from tests.weekly_helpers import random_problem

VIOLATION = {"consent": ("eligibility",), "closed": ("capacity", "budget"), "limit": ("contact limit",),
             "spacing": ("spacing",), "capacity": ("capacity",), "budget": ("budget",),
             "segment": ("segment bound",)}


def _instances():
    base = random_problem(4, n=50, M=3, T=5, K=2, gap=2, zero_capacity=True)
    tight = base.replace(capacity=np.maximum(0.0, np.floor(base.capacity * 0.5)))
    limit1 = random_problem(6, n=40, M=3, T=6, K=1, gap=1)
    fair = unfair_problem(1, n=60, segment_bounds=[dict(segment="north", max_rate=0.5)], budget=None)
    return {"tight-gap2": tight, "limit1": limit1, "segment-bound": fair}


INSTANCES = _instances()


def check_explanation(problem, plan, prices, ex) -> None:
    i = ex.index
    idx = plan.assignment_indices
    names, days = list(problem.channel_names), list(problem.day_labels)
    mine = {(names[m], days[t]) for m, t in idx[idx[:, 0] == i, 1:]}
    assert set(ex.contacts) == mine and ex.contacted == bool(mine)
    assert len(ex.options) == problem.n_channels * problem.n_days
    shift = (prices.fairness_shift[problem.segment_codes[i]] if prices.fairness_shift is not None
             else np.zeros(problem.n_channels))
    for row in ex.options.itertuples():
        m, t = names.index(row.channel), days.index(row.day)
        u = float(problem.utility[i, m, t])
        assert row.reason in REASONS
        assert (row.reason == "contacted") == ((row.channel, row.day) in mine)
        if np.isfinite(u):
            expect = u - prices.capacity[m, t] - prices.budget * problem.cost[m] - shift[m]
            assert row.reduced == pytest.approx(expect, abs=1e-9)
        if row.reason == "contacted":
            continue
        added = verify(problem, np.vstack([idx, [[i, m, t]]]))
        kinds = {v.split(":")[0] for v in added.violations}
        if row.reason in VIOLATION:
            assert kinds & set(VIOLATION[row.reason]), (row, added.violations)
        elif row.reason == "no value":
            assert u <= 0
        elif row.reason == "price":
            assert row.reduced <= 1e-9 and "priced out" in row.detail
        elif row.reason == "open":
            assert added.ok and u > 0 and "fits every constraint" in row.detail
    if ex.contacted:
        for ch, day in ex.contacts:
            assert f"{ch} on {day}" in ex.statement
    else:
        assert "not contacted" in ex.statement and ex.blocker in ex.statement


@pytest.mark.parametrize("method", ["dual", "highs"])
@pytest.mark.parametrize("name", list(INSTANCES))
def test_explanations_are_consistent_with_the_plan(name, method):
    problem = INSTANCES[name]
    plan = solve(problem, method=method, rel_gap=1e-6)
    assert verify(problem, plan).ok
    prices = shadow_prices(problem, plan, rel_gap=1e-6)
    assert ("own" in prices.source) == (method == "dual")
    explanations = explain_customers(problem, plan, np.arange(problem.n_customers), prices)
    seen = set()
    for ex in explanations:
        check_explanation(problem, plan, prices, ex)
        seen.update(ex.options.reason)
    assert {"contacted", "consent", "price", "no value"} <= seen, seen     # the instances exercise the reasons
    # limit1 shows "budget" or "price" for the same options depending on which of its (degenerate)
    # optimal dual solutions the method returns; tight-gap2 covers "budget" either way
    assert {"tight-gap2": {"spacing", "closed", "budget"}, "limit1": {"limit"},
            "segment-bound": {"limit", "spacing"}}[name] <= seen, seen
    if name == "segment-bound" and method == "dual":
        assert prices.fairness_shift is not None


@pytest.mark.parametrize("name", list(INSTANCES))
def test_with_zero_prices_every_blocker_is_a_real_constraint(name):
    """Zero prices leave only the constraints: capacity, budget, segment bounds must show up and be true."""
    from dataclasses import replace

    problem = INSTANCES[name]
    plan = solve(problem, method="highs", rel_gap=1e-6)
    prices = shadow_prices(problem, plan)
    zero = replace(prices, capacity=np.zeros_like(prices.capacity), budget=0.0, fairness_shift=None)
    seen = set()
    for ex in explain_customers(problem, plan, np.arange(problem.n_customers), zero):
        check_explanation(problem, plan, zero, ex)
        seen.update(ex.options.reason)
    assert "price" not in seen
    assert {"tight-gap2": {"capacity", "budget"}, "limit1": {"capacity", "budget"},
            "segment-bound": {"segment"}}[name] <= seen, seen


def test_thinned_plan_reports_open_options():
    """A deliberately poor plan (every third contact kept): freed room shows up as truthful "open" options."""
    problem = INSTANCES["tight-gap2"]
    plan = solve(problem, method="dual", rel_gap=1e-6)
    prices = shadow_prices(problem, plan)
    # drop every third contact: room appears, some options become 'open', the rest stay explained
    thinned = plan_from_table(problem, plan.assignments.iloc[::3])
    explanations = explain_customers(problem, thinned, np.arange(problem.n_customers), prices)
    reasons = set()
    for ex in explanations:
        check_explanation(problem, thinned, prices, ex)
        reasons.update(ex.options.reason)
    assert "open" in reasons          # freed room with positive reduced value: the thinned plan is not maximal


def test_explain_by_id_and_unknown_id():
    problem = random_problem(1, n=20).replace(customer_ids=[f"C{k:03d}" for k in range(20)])
    plan = solve(problem, method="dual")
    ex = explain_customer(problem, plan, "C005")
    assert ex.index == 5 and ex.customer_id == "C005"
    with pytest.raises(InputError, match="unknown customer"):
        explain_customer(problem, plan, "C999")
    ex0 = explain_customer(problem, plan, "C000")          # customer 0 has nothing eligible
    assert not ex0.contacted and ex0.blocker == "consent" and "no contact is allowed" in ex0.statement


def test_sample_customers_picks_both_kinds():
    problem = INSTANCES["tight-gap2"]
    plan = solve(problem, method="dual")
    picked = sample_customers(plan, 3, random_state=1)
    contacted = set(plan.assignment_indices[:, 0].tolist())
    assert sum(int(i) in contacted for i in picked) == 3 and len(picked) == 6
    assert np.array_equal(picked, sample_customers(plan, 3, random_state=1))


# ---------------------------------------------------------------- plan files
def test_plan_from_table_round_trip(tmp_path):
    problem = random_problem(2, n=30, gap=2).replace(customer_ids=list(range(100, 130)))
    plan = solve(problem, method="highs")
    path = tmp_path / "plan.csv"
    plan.assignments.to_csv(path, index=False)
    back = plan_from_table(problem, pd.read_csv(path))
    assert np.array_equal(back.assignment_indices, plan.assignment_indices)
    assert back.objective == pytest.approx(plan.objective, abs=1e-9)
    assert back.bound is None and back.duals is None and back.method == "file" and back.status == "feasible"
    as_text = pd.read_csv(path, dtype={"customer_id": str})        # ids as text still match
    assert np.array_equal(plan_from_table(problem, as_text).assignment_indices, plan.assignment_indices)


@pytest.mark.parametrize("mutate,needle", [
    (lambda df: df.assign(customer_id=df.customer_id.where(df.index != 0, 999)), "unknown customer 999"),
    (lambda df: df.assign(channel=df.channel.where(df.index != 1, "fax")), "unknown channel 'fax'"),
    (lambda df: pd.concat([df, df.iloc[[0]]]), "listed twice"),
    (lambda df: df.assign(utility=df.utility + 1.0), "was the plan made from these scores"),
    (lambda df: df.drop(columns=["day"]), "missing column"),
])
def test_plan_from_table_rejects_bad_tables(mutate, needle):
    problem = random_problem(2, n=30, gap=2)
    plan = solve(problem, method="highs")
    with pytest.raises(InputError, match=needle):
        plan_from_table(problem, mutate(plan.assignments.reset_index(drop=True)))


def test_plan_from_table_rejects_an_infeasible_plan():
    problem = random_problem(2, n=30, gap=2)
    loose = solve(problem.replace(capacity=problem.capacity * 10, budget=None), method="greedy")
    with pytest.raises(InputError, match="not feasible"):
        plan_from_table(problem, loose.assignments)
    assert plan_from_table(problem, loose.assignments, check=False).n_contacts == loose.n_contacts


# ---------------------------------------------------------------- diff
def test_diff_classes_on_a_hand_made_pair():
    old = pd.DataFrame({"customer_id": ["a", "a", "b", "c", "d", "e"],
                        "channel": ["sms", "email", "call", "sms", "email", "push"],
                        "day": ["Mon", "Wed", "Tue", "Fri", "Thu", "Sat"]})
    new = pd.DataFrame({"customer_id": ["a", "a", "b", "d", "f"],
                        "channel": ["sms", "email", "email", "email", "call"],
                        "day": ["Mon", "Wed", "Tue", "Fri", "Mon"]})
    d = diff_plans(old, new)
    got = dict(zip(d.customers.customer_id, d.customers.change))
    assert got == {"b": "moved channel", "c": "dropped", "e": "dropped", "d": "moved day", "f": "new"}
    assert dict(zip(d.summary.change, d.summary.customers)) == {"new": 1, "dropped": 2, "moved channel": 1,
                                                                "moved day": 1, "unchanged": 1}
    assert d.flows.loc["call", "email"] == 1 and d.flows.loc["none", "call"] == 1
    assert (d.customers.why == "").all()


def test_diff_reasons_match_explain():
    problem = INSTANCES["tight-gap2"]
    old_plan = solve(problem.replace(budget=problem.budget * 1.6), method="dual")
    new_plan = solve(problem, method="dual")
    prices = shadow_prices(problem, new_plan)
    old_table = old_plan.assignments.copy()
    old_table.loc[old_table.index[:2], "utility"] += 0.5        # last week's scores differed for two contacts
    d = diff_plans(old_table, new_plan, problem, new_plan, prices)
    assert len(d.customers) and (d.customers.why != "").all()
    for row in d.customers[d.customers.change == "dropped"].itertuples():
        ex = explain_customer(problem, new_plan, row.customer_id, prices)
        assert not ex.contacted
        for part in row.old.split(", "):
            ch, day = part.split(" ")
            reason = ex.options[(ex.options.channel == ch) & (ex.options.day == day)].reason.iloc[0]
            assert reason != "contacted"
            assert f"{ch} {day}:" in row.why
    assert d.customers.why.str.contains("last week").any()
