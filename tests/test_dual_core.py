"""The numba Lagrangian dual core: kernels vs NumPy twins, DP vs brute force, bounds vs HiGHS."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations.lagrangian import customer_choices, customer_dp, dual_function
from optimizer import PlanningProblem, solve, verify
from solvers import _dual_kernels as K
from solvers.dual import DualData
from solvers.highs_direct import solve_relaxation
from tests.weekly_helpers import random_problem


def kernel_eval(problem, price, mu):
    d = DualData(problem)
    sums, usage, _ = K.evaluate_dual(d.u, d.cell_ok, price, mu * d.cost, d.limits, d.gap, 7, d.seg,
                                     np.zeros((1, d.M)), d.neg_ok, K.NO_CODES)
    value = float(np.sum(sums)) + float((price * np.where(d.cell_ok, problem.capacity, 0)).sum())
    if problem.budget is not None:
        value += mu * problem.budget
    return value, usage


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_evaluate_kernel_matches_numpy_twin(seed, dtype):
    problem = random_problem(seed, n=40, T=6, K=1 + seed % 3, gap=1 + seed % 3, dtype=dtype)
    if seed % 2:
        problem = problem.replace(max_contacts=np.random.default_rng(seed).integers(0, 4, problem.n_customers))
    rng = np.random.default_rng(seed)
    price = rng.uniform(0, 1.5, size=problem.capacity.shape)
    mu = 0.3 if problem.budget is not None else 0.0
    ref = dual_function(problem, price, mu)
    value, usage = kernel_eval(problem, price, mu)
    assert value == pytest.approx(ref.value, rel=1e-12, abs=1e-9)
    np.testing.assert_array_equal(usage, ref.usage)


@pytest.mark.parametrize("seed", range(4))
def test_choose_kernel_matches_numpy_twin(seed):
    problem = random_problem(seed, n=30, T=7, K=2, gap=2)
    d = DualData(problem)
    price = np.random.default_rng(seed).uniform(0, 1, size=problem.capacity.shape)
    codes = K.choose_contacts(d.u, d.cell_ok, price, 0.2 * d.cost, d.limits, d.gap, d.slots, 8, d.seg,
                              np.zeros((1, d.M)), d.neg_ok)
    idx, _ = K.codes_to_indices(codes, d.u, d.T)
    _, ref = customer_choices(problem, price, 0.2)
    order = np.lexsort((ref[:, 2], ref[:, 0]))
    np.testing.assert_array_equal(idx, ref[order])


def brute_force_customer(r: np.ndarray, limit: int, gap: int) -> float:
    """max over contact sets (channel per chosen day) with spacing >= gap and at most ``limit`` contacts."""
    M, T = r.shape
    best = 0.0
    for size in range(0, min(limit, T) + 1):
        for days in itertools.combinations(range(T), size):
            if any(b - a < gap for a, b in zip(days, days[1:])):
                continue
            for channels in itertools.product(range(M), repeat=size):
                vals = [r[m, t] for m, t in zip(channels, days)]
                if all(np.isfinite(vals)):
                    best = max(best, float(sum(vals)))
    return best


@pytest.mark.parametrize("negative_on", ["neg_ok channel", "other channel", "none"])
def test_candidate_rule_with_negative_prices(negative_on):
    """A contact counts when its utility is > 0, or finite on a ``neg_ok`` channel; the kernel may skip that
    test only while no price of another channel is negative (price_table's ``check``)."""
    rng = np.random.default_rng(7)
    n, M, T, S = 60, 3, 4, 2
    u = rng.normal(0.2, 1.0, size=(n, M, T))
    u[rng.random(u.shape) < 0.1] = -np.inf
    u[rng.random(u.shape) < 0.1] = 0.0
    cell_ok = np.ones((M, T), dtype=bool)
    cell_ok[2, 3] = False
    neg_ok = np.array([False, True, False])
    price = rng.uniform(0.0, 0.3, size=(M, T))
    shift = np.zeros((S, M))
    if negative_on == "neg_ok channel":
        shift[1, 1] = -1.5
    elif negative_on == "other channel":
        shift[0, 2] = -1.5
    seg = rng.integers(0, S, n)
    limits = np.array([2])
    P, check = K.price_table(cell_ok, price, np.zeros(M), shift, neg_ok)
    assert check == (negative_on == "other channel")
    each, _, _ = K.evaluate_dual(u, cell_ok, price, np.zeros(M), limits, 1, 1, seg, shift, neg_ok, K.NO_CODES)
    for i in range(n):
        allowed = cell_ok & ((u[i] > 0) | (neg_ok[:, None] & np.isfinite(u[i])))
        r = np.where(allowed, u[i] - P[seg[i]], -np.inf)
        assert each[i] == pytest.approx(brute_force_customer(r, 2, 1), abs=1e-12)


reduced = st.integers(1, 3).flatmap(lambda M: st.integers(1, 5).flatmap(lambda T: st.lists(
    st.one_of(st.floats(-3, 3, allow_nan=False, width=32), st.just(float("-inf"))),
    min_size=M * T, max_size=M * T).map(lambda v: np.array(v, dtype=np.float64).reshape(M, T))))


@settings(max_examples=80, deadline=None)
@given(r=reduced, limit=st.integers(0, 4), gap=st.integers(1, 4))
def test_customer_dp_equals_brute_force(r, limit, gap):
    expected = brute_force_customer(r, limit, gap)
    day_value = r.max(axis=0)
    value, take = customer_dp(day_value[None, :], np.array([limit]), gap)
    assert value[0] == pytest.approx(expected, abs=1e-9)
    days = np.flatnonzero(take[0])
    assert len(days) <= limit and all(np.diff(days) >= gap)
    # the numba kernel on the same single customer (u = r, no prices)
    M, T = r.shape
    u = np.where(r > 0, r, -np.inf)[None]
    sums, _, _ = K.evaluate_dual(u, np.ones((M, T), dtype=bool), np.zeros((M, T)), np.zeros(M),
                                 np.array([limit], dtype=np.int64), gap, 1, np.zeros(1, dtype=np.int64),
                                 np.zeros((1, M)), np.zeros(M, dtype=bool), K.NO_CODES)
    assert float(np.sum(sums)) == pytest.approx(expected, abs=1e-9)


GRID = [(K_, g, b) for K_ in (1, 2, 3) for g in (1, 2, 3) for b in (True, False)]


@pytest.mark.parametrize("K_,gap,budget", GRID, ids=[f"K{k}-g{g}-{'B' if b else 'noB'}" for k, g, b in GRID])
def test_bound_mip_and_plan_are_ordered(K_, gap, budget):
    problem = random_problem(10 * K_ + gap, n=40, T=7, K=K_, gap=gap, budget=budget, zero_capacity=True)
    mip = solve(problem, method="highs", rel_gap=1e-9)
    plan = solve(problem, method="dual", rel_gap=1e-5)
    assert verify(problem, plan).ok
    tol = 1e-9 * max(1.0, abs(mip.objective))
    assert plan.bound >= mip.objective - tol and mip.objective >= plan.objective - tol
    assert plan.gap == pytest.approx((plan.bound - plan.objective) / abs(plan.bound), abs=1e-15)
    assert plan.duals["capacity"].shape == problem.capacity.shape and plan.duals["budget"] >= 0


@pytest.mark.parametrize("seed", range(2))
def test_bound_equals_lp_relaxation(seed):
    problem = random_problem(seed, n=50, T=7, K=2, gap=2, budget=True)
    lp = solve_relaxation(problem)
    plan = solve(problem, method="dual", rel_gap=1e-7, max_iter=600)
    assert plan.bound >= lp["value"] - 1e-7 * abs(lp["value"])
    assert plan.bound == pytest.approx(lp["value"], rel=2e-6)


def test_gap_closes_on_a_larger_instance():
    from optimizer.generate import generate_problem
    problem = generate_problem(20_000, seed=3).problem
    plan = solve(problem, method="dual", rel_gap=1e-4)
    assert plan.status == "optimal" and plan.gap <= 1e-4
    assert verify(problem, plan).ok
    warm = solve(problem, method="dual", rel_gap=1e-4, warm_start=plan.duals)
    assert warm.status == "optimal" and warm.iterations <= plan.iterations


@pytest.mark.parametrize("case", ["no capacity", "budget zero", "all negative", "one customer", "ties"])
def test_degenerate_inputs(case):
    rng = np.random.default_rng(0)
    u = rng.uniform(0.5, 2, size=(20, 3, 4))
    cap = np.full((3, 4), 3.0)
    cost = np.array([0.0, 1.0, 2.0])
    kw = dict(utility=u, capacity=cap, cost=cost, budget=10.0, max_contacts=2, min_gap_days=1)
    if case == "no capacity":
        kw["capacity"] = np.zeros((3, 4))
    elif case == "budget zero":
        kw["budget"] = 0.0
    elif case == "all negative":
        kw["utility"] = -u
    elif case == "one customer":
        kw["utility"] = u[:1]
    elif case == "ties":
        kw["utility"] = np.ones_like(u)
    problem = PlanningProblem(**kw)
    plan = solve(problem, method="dual", rel_gap=1e-9)
    mip = solve(problem, method="highs", rel_gap=1e-9)
    assert verify(problem, plan).ok
    tol = 1e-9 * max(1.0, abs(mip.objective))
    assert plan.bound >= mip.objective - tol and mip.objective >= plan.objective - tol
    if case in ("no capacity", "all negative"):
        assert plan.n_contacts == 0 and plan.objective == 0 and plan.bound == 0 and plan.status == "optimal"
    if case == "budget zero":
        assert set(plan.assignment_indices[:, 1]) <= {0}
    if case == "ties":
        assert plan.objective == pytest.approx(mip.objective)


def test_time_limit_returns_the_best_plan_so_far():
    from optimizer.generate import generate_problem
    problem = generate_problem(30_000, seed=1).problem
    plan = solve(problem, method="dual", rel_gap=1e-12, time_limit=1e-3)
    assert plan.status == "time_limit" and verify(problem, plan).ok
    assert plan.bound >= plan.objective
    mip = solve(generate_problem(3000, seed=1).problem, method="highs", time_limit=0.05)
    assert mip.status == "time_limit"


def test_a_reached_level_estimate_is_dropped():
    """An estimate of min L that is too optimistic must not make the level method creep towards it.

    Levels based on the estimate f_guess sit at f_guess + alpha * (best - f_guess); when best
    approaches f_guess every step reaches its level, so the steps shrink by alpha each time
    (1M customers, hard segment rows, seed 4: 19 iterations of steps from 1e-5 down to 1e-14).
    Once best is within the requested gap of the estimate, the estimate is dropped. Without
    that, this instance takes 70 iterations with the estimate against 47 without one.
    """
    from optimizer.generate import generate_problem
    from solvers.dual import level_loop

    data = DualData(generate_problem(3000, seed=1).problem)
    y0 = data.clearing_start()
    plain = level_loop(data, y0, 1e-4, None, 200)
    guessed = level_loop(data, y0, 1e-4, None, 200, guess=1e-7)
    assert guessed.iterations <= plain.iterations + 10
    assert guessed.best_f == pytest.approx(plain.best_f, rel=1e-4)


@pytest.mark.parametrize("n, size", [(200_000, 20_000), (499_999, 20_000), (1_000_000, 40_000),
                                     (2_000_000, 80_000), (10_000_000, 200_000), (50_000_000, 200_000)])
def test_default_sample_size(n, size):
    """The sample stage's size: 1/25 of the customers, at least 20,000 and at most 200,000 (measured at 200k, 1M, 10M)."""
    from solvers.dual import default_sample_size

    assert default_sample_size(n) == size


def test_sample_size_reaches_the_solve(monkeypatch):
    """A solve from SAMPLE_FROM customers starts from a sample of default_sample_size customers."""
    import solvers.dual as dual
    from optimizer.generate import generate_problem

    monkeypatch.setattr(dual, "SAMPLE_FROM", 2000)
    monkeypatch.setattr(dual, "SAMPLE_MIN", 300)
    monkeypatch.setattr(dual, "SAMPLE_SHARE", 5)
    monkeypatch.setattr(dual, "SAMPLE_MAX", 500)
    big = solve(generate_problem(4000, seed=1).problem, method="dual")
    assert big.info["sample_size"] == 500 and big.info["sample_iterations"] > 0
    small = solve(generate_problem(2000, seed=1).problem, method="dual")
    assert small.info["sample_size"] == 400
    assert big.bound >= big.objective and small.bound >= small.objective


@pytest.mark.parametrize("option, value, expected", [
    ("sample_size", "abc", "an integer >= 1"),
    ("sample_size", -5, "an integer >= 1"),
    ("sample_size", 2.5, "an integer >= 1"),
    ("sample_size", True, "an integer >= 1"),
    ("level_alpha", 0.0, "a number between 0 and 1 (exclusive)"),
    ("level_alpha", 1.5, "a number between 0 and 1 (exclusive)"),
    ("level_alpha", "x", "a number between 0 and 1 (exclusive)"),
])
def test_dual_options_are_checked(option, value, expected):
    """The dual's own options get a one-line InputError naming the option (not a bare ValueError)."""
    from formulations.errors import InputError

    problem = random_problem(0, n=30)
    with pytest.raises(InputError) as err:
        solve(problem, method="dual", **{option: value})
    assert str(err.value) == f"{option}: expected {expected}, got {value!r}"


@pytest.mark.parametrize("seed", range(6))
def test_least_distance_projection_matches_cvxpy(seed):
    """The bundle's NNLS projection onto {G y <= b, box} against CVXPY; an empty set is reported as None."""
    import cvxpy as cp

    from solvers.bundle import least_distance

    rng = np.random.default_rng(seed)
    d, k = int(rng.integers(2, 12)), int(rng.integers(1, 30))
    lower, upper = np.zeros(d), rng.uniform(0.5, 3.0, d)
    G = rng.normal(size=(k, d))
    inside = rng.uniform(0, 1, d) * upper
    b = G @ inside + rng.uniform(0, 0.5, k) * (rng.random(k) < 0.7)
    center = rng.normal(scale=3.0, size=d)
    y = least_distance(G, b, lower, upper, center)
    v = cp.Variable(d)
    cp.Problem(cp.Minimize(cp.sum_squares(v - center)), [G @ v <= b, v >= lower, v <= upper]).solve()
    assert y is not None
    np.testing.assert_allclose(y, v.value, atol=1e-5)
    assert (G @ y - b).max() <= 1e-8 and (y >= lower - 1e-9).all() and (y <= upper + 1e-9).all()
    # an empty set: sum(y) <= -1 with y >= 0
    assert least_distance(np.ones((1, d)), np.array([-1.0]), lower, upper, center) is None


def test_recovery_from_the_kept_choices_equals_a_fresh_one():
    """A recovery right after an evaluation at the same prices reuses its choices and gives the same plan."""
    p = random_problem(3, n=300, K=2, gap=2, budget=True)
    a, b = DualData(p), DualData(p)
    y = np.full(a.dim, 0.3) * a.box
    a.evaluate(y)
    price, mu = a.prices(y)
    fresh = K.choose_contacts(a.u, a.cell_ok, price, mu * a.cost, a.limits, a.gap, a.slots, 8, a.seg, a.shift(y),
                              a.neg_ok)
    np.testing.assert_array_equal(a.choices(y), fresh)             # the evaluation kernel's codes
    plan_a, value_a = a.recover(y)
    plan_b, value_b = b.recover(y)
    np.testing.assert_array_equal(plan_a, plan_b)
    assert value_a == value_b


def test_clearing_start_prices_the_first_customer_beyond_capacity():
    """Start price of a cell = CLEARING_SHARE x its (capacity+1)-th largest positive utility, however customers are split."""
    from solvers.dual_data import CLEARING_SHARE, cell_tops

    p = random_problem(5, n=60, K=2, gap=1, budget=True)
    d = DualData(p)
    y = d.clearing_start()
    price, _ = d.prices(y)
    binding = 0
    for m, t in d.price_cells:
        col = np.sort(p.utility[:, m, t][p.utility[:, m, t] > 0])[::-1]
        c = int(np.floor(p.capacity[m, t]))
        expected = CLEARING_SHARE * col[c] if col.size > c else 0.0
        binding += col.size > c
        assert price[m, t] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert binding > 0
    parts = [cell_tops(p.utility[i::3], d.price_cells, d.capacity) for i in range(3)]
    np.testing.assert_array_equal(d._clearing_coords(parts), y)


def _moves_reference(codes, u, price, cost, excess, T, gap):
    """NumPy/Python reference of ``relocations`` + ``drop_overloaded`` with moves (no fairness, no budget price)."""
    n, slots = codes.shape
    M = u.shape[1]
    out = codes.copy()
    entries = []                                                # (cell, customer, slot, key, target)
    for i in range(n):
        for q in range(slots):
            c = int(codes[i, q])
            if c < 0 or excess[c] <= 0:
                continue
            ma, ta = divmod(c, T)
            days = [int(codes[i, p]) % T for p in range(slots) if p != q and codes[i, p] >= 0]
            alt, where = -np.inf, -1
            for t in range(T):
                if any(abs(d - t) < gap for d in days):
                    continue
                for m in range(M):
                    if excess[m * T + t] < 0 and u[i, m, t] > 0 and cost[m] <= cost[ma]:
                        r = float(u[i, m, t]) - price[m, t]
                        if r > alt:
                            alt, where = r, m * T + t
            key = float(u[i, ma, ta]) - price[ma, ta] - (alt if alt > 0 else 0.0)
            entries.append((c, i, q, key, where if alt > 0 else -1))
    room = np.maximum(-excess, 0)
    for c in np.flatnonzero(excess > 0):
        mine = [e for e in entries if e[0] == c]                # position order
        chosen = sorted(np.argsort([e[3] for e in mine], kind="stable")[:excess[c]])
        for k in chosen:
            _, i, q, _, to = mine[k]
            days = [int(out[i, p]) % T for p in range(slots) if p != q and out[i, p] >= 0]
            if to >= 0 and room[to] > 0 and all(abs(d - to % T) >= gap for d in days):
                out[i, q] = to
                room[to] -= 1
            else:
                out[i, q] = -1
    return out


@pytest.mark.parametrize("seed", range(4))
def test_overloaded_contacts_move_where_it_keeps_more(seed):
    """``relocations`` + ``drop_overloaded`` equal a plain reference: contact for contact, ties included.

    The plan stays feasible: overloaded cells end at capacity, cells with room are not overfilled,
    spacing holds and no move adds spend.
    """
    rng = np.random.default_rng(seed)
    n, M, T, slots, gap = 300, 3, 5, 2, 2
    u = rng.integers(1, 6, size=(n, M, T)).astype(np.float32)
    cost = np.array([0.0, 1.0, 1.0])
    codes = np.full((n, slots), -1, dtype=np.int16)
    for i in range(n):
        days = [0, 2, 4][:rng.integers(0, slots + 1)]
        for q, t in enumerate(days):
            codes[i, q] = rng.integers(0, M) * T + t
    price = rng.integers(0, 3, size=(M, T)).astype(np.float64)
    usage = np.bincount(codes[codes >= 0], minlength=M * T)
    cap = rng.integers(0, 60, size=M * T)
    excess = (usage - cap).astype(np.int64)
    assert (excess > 0).any() and (excess < 0).any()
    expected = _moves_reference(codes, u, price, cost, excess, T, gap)
    got = codes.copy()
    alt_value, alt_cell = K.relocations(got, u, np.ones((M, T), dtype=bool), price, np.zeros(M), cost, excess, T, gap,
                                        np.zeros(1, dtype=np.int64), np.zeros((1, M)), np.zeros(M, dtype=bool), 64)
    K.drop_overloaded(got, u, price, np.zeros(M), excess, T, np.zeros(1, dtype=np.int64), np.zeros((1, M)),
                      alt_value, alt_cell, gap)
    np.testing.assert_array_equal(got, expected)
    after = np.bincount(got[got >= 0], minlength=M * T)
    assert (after <= cap).all() and (after[excess > 0] == cap[excess > 0]).all()
    assert ((got != codes) & (got >= 0)).any()                  # some contacts did move
    for i in range(n):
        days = sorted(int(c) % T for c in got[i] if c >= 0)
        assert all(b - a >= gap for a, b in zip(days, days[1:]))
    moved = (got != codes) & (got >= 0)
    assert (cost[got[moved] // T] <= cost[codes[moved] // T]).all()


@pytest.mark.parametrize("seed", range(4))
def test_drop_overloaded_drops_the_stable_smallest(seed):
    """Per overloaded cell, exactly the first ``excess`` contacts in (reduced utility, position) order go.

    Utilities are small integers so ties are common; the reference is a stable sort.
    """
    rng = np.random.default_rng(seed)
    n, M, T, slots = 400, 3, 4, 2
    u = rng.integers(1, 5, size=(n, M, T)).astype(np.float32)
    codes = np.full((n, slots), -1, dtype=np.int16)
    for i in range(n):
        days = rng.choice(T, size=rng.integers(0, slots + 1), replace=False)
        for q, t in enumerate(days):
            codes[i, q] = rng.integers(0, M) * T + t
    price = rng.integers(0, 2, size=(M, T)).astype(np.float64)
    cost_price = np.zeros(M)
    shift = np.zeros((1, M))
    usage = np.bincount(codes[codes >= 0], minlength=M * T)
    excess = np.maximum(usage - rng.integers(0, 60, size=M * T), 0).astype(np.int64)
    expected = codes.copy()
    for c in np.flatnonzero(excess > 0):
        who, slot = np.nonzero(codes == c)                     # position order: customer, then slot
        m, t = divmod(int(c), T)
        red = u[who, m, t].astype(np.float64) - price[m, t]
        gone = np.argsort(red, kind="stable")[:excess[c]]
        expected[who[gone], slot[gone]] = -1
    got = codes.copy()
    dropped = K.drop_overloaded(got, u, price, cost_price, excess, T, np.zeros(1, dtype=np.int64), shift,
                                np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64), 1)
    assert dropped == int(excess.sum())
    np.testing.assert_array_equal(got, expected)
