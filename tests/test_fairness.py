"""Fairness across segments: hard bounds on every method, the penalty frontier, the dual core, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from formulations.lagrangian import dual_function
from optimizer import InputError, solve, verify
from optimizer.frontier import fairness_frontier
from solvers.dual import DualData
from solvers.dual_data import SETTLE_Z_TOL
from tests.fairness_helpers import unfair_problem

BOUNDS = {
    "relative-min-ch1": [dict(channel="ch1", min_rate=0.8, relative=True)],
    "absolute-max-north": [dict(segment="north", max_rate=0.5)],
    "absolute-min-south-ch1": [dict(segment="south", channel="ch1", min_rate=0.2)],
}


@pytest.mark.parametrize("method", ["highs", "pyomo", "cvxpy", "dual", "greedy"])
@pytest.mark.parametrize("name", list(BOUNDS))
def test_hard_segment_bounds_are_met_on_every_method(method, name):
    problem = unfair_problem(1, n=60, segment_bounds=BOUNDS[name])
    unconstrained = solve(unfair_problem(1, n=60), method="highs")
    assert not verify(problem, unconstrained).ok            # the bound really binds
    plan = solve(problem, method=method, rel_gap=1e-6)
    report = verify(problem, plan)
    assert report.ok, report.violations
    assert plan.fairness.bounds.satisfied.all()


def test_verify_reports_segment_violations():
    problem = unfair_problem(1, n=60, segment_bounds=BOUNDS["absolute-max-north"])
    plan = solve(unfair_problem(1, n=60), method="highs")
    report = verify(problem, plan)
    assert not report.ok and any(v.startswith("segment bound") for v in report.violations)


def test_infeasible_minimum_is_a_status_not_an_error():
    problem = unfair_problem(1, n=60, segment_bounds=[dict(segment="south", channel="ch1", min_rate=5.0)])
    assert solve(problem, method="highs").status == "infeasible"
    plan = solve(problem, method="dual")
    assert plan.status == "no_solution" and plan.n_contacts == 0


def test_raising_the_penalty_lowers_disparity_and_value():
    problem = unfair_problem(2, n=45)
    df = fairness_frontier(problem, [0, 1, 10, 100, 1000], method="highs", rel_gap=1e-7)
    assert (np.diff(df.psi) <= 1e-9).all(), df
    assert (np.diff(df.utility) <= 1e-7).all(), df
    assert df.psi.iloc[-1] < 0.2 * df.psi.iloc[0], df


@pytest.mark.parametrize("kw", [dict(fairness_penalty=200.0, fairness_channels=["ch1"]), dict(fairness_penalty=20.0),
                                dict(segment_bounds=BOUNDS["absolute-max-north"])], ids=["pen-ch1", "pen-all", "max"])
def test_dual_agrees_with_the_exact_plan(kw):
    problem = unfair_problem(1, n=120, **kw)
    exact = solve(problem, method="highs", rel_gap=1e-7)
    dual = solve(problem, method="dual", rel_gap=1e-5)
    assert verify(problem, dual).ok
    assert dual.bound >= exact.objective - 1e-9 * abs(exact.objective)
    assert dual.objective == pytest.approx(exact.objective, rel=1e-3)


@pytest.mark.parametrize("seed", [1, 2])
def test_dual_relative_minimum_agrees_with_the_exact_plan(seed):
    problem = unfair_problem(seed, n=120, segment_bounds=BOUNDS["relative-min-ch1"])
    exact = solve(problem, method="highs", rel_gap=1e-7)
    # the dual method alone: feasible, valid bound, the repair's loss within its certified gap
    alone = solve(problem, method="dual", rel_gap=1e-5, polish=False)
    assert verify(problem, alone).ok and alone.bound >= exact.objective - 1e-9 * abs(exact.objective)
    assert alone.objective >= exact.objective - alone.gap * abs(alone.bound) - 1e-9
    # with the exact MIP over the cells Lagrangian fixing keeps (the default on small instances)
    dual = solve(problem, method="dual", rel_gap=1e-5)
    assert verify(problem, dual).ok and dual.bound >= exact.objective - 1e-9 * abs(exact.objective)
    assert dual.objective == pytest.approx(exact.objective, rel=1e-3)
    assert dual.objective >= alone.objective - 1e-9
    assert "Lagrangian fixing" in dual.message or alone.gap <= 1e-5


@pytest.mark.parametrize("seed", range(3))
def test_dual_function_with_fairness_prices_matches_numpy_twin(seed):
    problem = unfair_problem(seed, n=50, fairness_penalty=5.0, segment_bounds=BOUNDS["relative-min-ch1"])
    data = DualData(problem)
    rng = np.random.default_rng(seed)
    y = rng.uniform(data.lower, data.box) * 0.05
    value, _, usage, _ = data.evaluate(y)
    price, mu = data.prices(y)
    rows, terms = data.fairness_prices(y)
    ref = dual_function(problem, price, mu, rows, terms)
    assert value == pytest.approx(ref.value, rel=1e-12, abs=1e-9)
    np.testing.assert_array_equal(usage, ref.usage)



@pytest.mark.parametrize("seed", range(3))
def test_plan_entries_kernel_matches_numpy_twin(seed):
    """The repair's flat view of a plan (numba) equals the NumPy reference, entry for entry."""
    from solvers import _dual_kernels as K
    from solvers.fairness_repair import entries_numpy

    problem = unfair_problem(seed, n=80, segment_bounds=BOUNDS["relative-min-ch1"])
    data = DualData(problem)
    y = np.random.default_rng(seed).uniform(data.lower, data.box) * 0.05
    data.evaluate(y)
    codes = data.choices(y)
    price, mu = data.prices(y)
    shift = data.shift(y)
    every = np.ones(data.M, dtype=bool)
    for channels in (every, every & (np.arange(data.M) % 2 == 1)):
        got = K.plan_entries(codes, data.u, price, mu * data.cost, shift, data.seg, data.T, channels)
        ref = entries_numpy(data, codes, price, mu * data.cost, shift, channels)
        assert got[0].size > 0 and np.all(channels[got[2]])
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a, b)

def test_edge_cases():
    base = unfair_problem(1, n=60)
    # gamma = 0 is the plain problem
    assert solve(base.replace(fairness_penalty=0.0), method="highs").objective == \
        pytest.approx(solve(base, method="highs").objective)
    # one segment: disparity is zero whatever the plan
    one = base.replace(segment=np.zeros(60, dtype=int), fairness_penalty=100.0,
                       segment_bounds=[dict(min_rate=0.9, relative=True)])
    plan = solve(one, method="dual")
    assert verify(one, plan).ok and plan.fairness.psi == pytest.approx(0.0)
    # a segment nobody in which can be contacted on ch1: its bound is not written, the rest plans normally
    u = base.utility.copy()
    seg = np.asarray(base.segment)
    u[seg == "west", 1, :] = -np.inf
    problem = base.replace(utility=u, segment_bounds=BOUNDS["relative-min-ch1"])
    assert len(problem.fairness.row_label) == 2
    for method in ("highs", "dual"):
        assert verify(problem, solve(problem, method=method)).ok


@pytest.mark.parametrize("kwargs,field", [
    (dict(segment_bounds=[dict(segment="east")]), "segment_bounds"),
    (dict(segment_bounds=[dict(channel="fax", min_rate=0.1)]), "segment_bounds"),
    (dict(segment_bounds=[dict(min_rate=0.5, max_rate=0.1)]), "segment_bounds"),
    (dict(fairness_penalty=-1.0), "fairness_penalty"),
    (dict(segment_targets=[0.1, 0.2]), "segment_targets"),
    (dict(segment=["a"] * 3), "segment"),
])
def test_bad_fairness_fields(kwargs, field):
    with pytest.raises(InputError) as err:
        unfair_problem(1, n=60, **kwargs)
    assert err.value.field == field


def test_missing_segments_with_fairness_fields():
    base = unfair_problem(1, n=60)
    with pytest.raises(InputError, match="segment"):
        base.replace(segment=None, fairness_penalty=1.0)


def test_frontier_cli(tmp_path, capsys):
    from optimizer.cli import main
    week = tmp_path / "week"
    assert main(["generate", "--customers", "300", "--seed", "2", "--out", str(week)]) == 0
    out = tmp_path / "front.csv"
    code = main(["frontier", "--scores", str(week / "scores.csv"), "--channels", str(week / "channels.csv"),
                 "--customers", str(week / "customers.csv"), "--fairness", "--fair-channel", "call",
                 "--gammas", "0,10,1000", "--max-contacts", "2", "--out", str(out)])
    assert code == 0
    df = pd.read_csv(out)
    assert list(df.gamma) == [0, 10, 1000] and (tmp_path / "front.png").exists()
    assert df.psi.iloc[-1] <= df.psi.iloc[0] + 1e-12


@pytest.mark.parametrize("kw", [dict(fairness_penalty=3.0, fairness_channels=["ch1"]),
                                dict(segment_bounds=BOUNDS["relative-min-ch1"])], ids=["penalty", "bounds"])
def test_pyomo_and_highs_build_the_same_fairness_model(kw):
    from formulations.assignment import build_model
    from solvers.pyomo_highs import build_pyomo, model_size
    problem = unfair_problem(3, n=12, **kw)
    model = build_model(problem)
    assert model_size(build_pyomo(problem)) == (model.num_rows, model.num_cols, model.num_nonzeros)


@pytest.mark.parametrize("gamma", [5.0, 200.0])
def test_penalty_cuts_without_evaluation_are_valid(gamma):
    """The cuts the level loop adds for the penalty's smooth part (h-cut + tangent of q) never exceed L.

    A wrong decomposition L = h + q (say q's gradient or value off by a factor) would
    put such a cut above L somewhere; it is checked at random points of the price box.
    """
    from solvers.bundle import LevelBundle
    from solvers.dual import _exact_smooth_part

    problem = unfair_problem(4, fairness_penalty=gamma)
    d = DualData(problem)
    rng = np.random.default_rng(0)
    # q is the conjugate term of formulations.fairness, with its gradient
    f = problem.fairness
    y = d.lower + rng.random(d.dim) * (d.box - d.lower)
    q, qg = d.smooth_part(y)
    nu = y[d.i_terms:] * d.scale[d.i_terms:]
    assert q == pytest.approx(float(np.sum(nu ** 2 / (4 * f.penalty * f.pen_weight[:f.n_terms]))), rel=1e-12)
    step = 1e-6
    for k in range(d.dim):
        e = np.zeros(d.dim)
        e[k] = step
        fd = (d.smooth_part(y + e)[0] - d.smooth_part(y - e)[0]) / (2 * step)
        assert qg[k] == pytest.approx(fd, rel=1e-6, abs=1e-6)
    bundle = LevelBundle(d.dim, upper=d.box, lower=d.lower)
    h_cuts = []
    for _ in range(4):
        y = d.lower + rng.random(d.dim) * (d.box - d.lower)
        f, g, _, _ = d.evaluate(y)
        bundle.add_cut(y, f, g)
        q, qg = d.smooth_part(y)
        h_cuts.append((y, f - q, g - qg))
    level = bundle.model_minimum() + 0.2 * (min(bundle.values) * bundle.scale - bundle.model_minimum())
    real = len(bundle)
    outcome, _ = _exact_smooth_part(d, bundle, h_cuts, h_cuts[0][0], level, d.lower + 0.5 * (d.box - d.lower))
    assert len(bundle) > real                      # cuts were added without evaluating L
    points = [d.lower + rng.random(d.dim) * (d.box - d.lower) for _ in range(40)] + bundle.points[real:]
    for y in points:                               # random points and the added cuts' own points
        f = d.evaluate(y)[0]
        cuts = [(v + g @ (y - p)) * bundle.scale for v, g, p in zip(bundle.values, bundle.grads, bundle.points)]
        assert max(cuts) <= f + 1e-9 * max(1.0, abs(f))


def test_lazy_recovery_has_the_same_plan_and_value():
    """A light recovery kept as codes (value and penalty from the codes kernel) equals the index-row one."""
    d = DualData(unfair_problem(2, fairness_penalty=50.0))
    y = np.full(d.dim, 0.2) * d.box
    idx, value = d.recover(y, rounds=2)
    plan, lazy_value = d.recover(y, rounds=2, lazy=True)
    np.testing.assert_array_equal(d.indices_of(plan), idx)
    assert lazy_value == pytest.approx(value, rel=1e-12)


def test_give_back_keeps_the_rows_and_only_gains(monkeypatch):
    """After the repair, rows a price made too generous give back contacts: never a loss, never a broken row."""
    import solvers.fairness_repair as FR
    from solvers.dual_data import PlanCodes

    give_back = FR.give_back
    gained = 0
    for seed, n in [(0, 120), (1, 300)]:
        problem = unfair_problem(seed, n=n, segment_bounds=BOUNDS["relative-min-ch1"]).replace(max_contacts=1)
        data = DualData(problem)
        for share in (0.05, 0.1, 0.2):
            y = np.full(data.dim, 0.05) * data.box
            y[data.i_rows:data.i_terms] = share * data.box[data.i_rows:data.i_terms]
            monkeypatch.setattr(FR, "give_back", lambda d, codes, *a, **k: a[-1])
            without, before = data.recover(y, rounds=2, lazy=True)
            monkeypatch.setattr(FR, "give_back", give_back)
            plan, after = data.recover(y, rounds=2, lazy=True)
            assert isinstance(plan, PlanCodes)
            assert (FR._plan_rows(data, plan.codes) <= data.row_rhs + 1e-9).all()
            report = verify(problem, data.indices_of(plan))
            assert report.ok, report.violations
            assert after >= before - 1e-9
            gained += after > before + 1e-6
    assert gained >= 2            # the instances above do leave slack to give back


def test_row_swaps_improve_mode_stops_at_the_row():
    """Hand-solved: a row 'segment 1 keeps >= 2 contacts' with 2 of slack; give-back swaps the two best pairs only."""
    from solvers import _dual_kernels as K

    # one channel-day cell, full; customers 0-3 (segment 1) hold it, 4-7 (segment 0) would like it
    codes = np.array([[0], [0], [0], [0], [-1], [-1], [-1], [-1]], dtype=np.int16)
    row_coef = np.array([[0.0, -1.0]])                      # -x_seg1 <= -2
    row_val, row_rhs = np.array([-4.0]), np.array([-2.0])
    add_ptr = np.array([0, 4, 4])                           # key c*S + s: (cell 0, seg 0) -> 4 additions
    drop_ptr = np.array([0, 0, 4])                          # (cell 0, seg 1) -> 4 drops
    add_cust, add_val = np.array([4, 5, 6, 7]), np.array([5.0, 4.0, 3.0, 0.5])
    drop_cust, drop_slot, drop_val = np.array([0, 1, 2, 3]), np.zeros(4, dtype=np.int64), np.array([1.0, 1.5, 2.0, 6.0])
    leftover = np.zeros((1, 1), dtype=np.int64)
    moves, budget = K.row_swaps(row_coef, np.array([[True]]), row_val, row_rhs, 1, add_ptr, add_cust, add_val,
                                np.full(4, -1), np.zeros(4), drop_ptr, drop_cust, drop_slot, drop_val, codes, leftover,
                                np.zeros(1), 10.0, True)
    assert moves == 2 and budget == 10.0
    np.testing.assert_array_equal(codes.ravel(), [-1, -1, 0, 0, 0, 0, -1, -1])
    assert row_val[0] == -2.0 and leftover[0, 0] == 0


def _placements_reference(data, codes, price, cost_price, target, replace_ok, neg_ok):
    """Brute force twin of :func:`solvers._dual_kernels.best_placements` (same scan order, first maximum wins)."""
    n, M, T = data.u.shape
    code = np.full(n, -1)
    value = np.full(n, -np.inf)
    slot = np.full(n, -1)
    dcost = np.zeros(n)
    lim = data.limits[0]
    for i in range(n):
        s = data.seg[i]
        days = [(q, int(c) % T) for q, c in enumerate(codes[i]) if c >= 0]
        for q in range(-1, codes.shape[1]):
            if q < 0:
                if len(days) >= lim:
                    continue
                old, old_cost = 0.0, 0.0
            else:
                c = int(codes[i, q])
                if c < 0 or not replace_ok[c // T]:
                    continue
                old = float(data.u[i, c // T, c % T]) - price[c // T, c % T] - cost_price[c // T]
                old_cost = data.cost[c // T]
            for t in range(T):
                if any(abs(d - t) < data.gap for qq, d in days if qq != q):
                    continue
                for m in range(M):
                    x = float(data.u[i, m, t])
                    if not data.cell_ok[m, t] or np.isinf(target[s, m]) or not (x > 0 or (neg_ok[m] and x > -np.inf)):
                        continue
                    v = x - price[m, t] - cost_price[m] - old
                    if v > value[i]:
                        code[i], value[i], slot[i], dcost[i] = m * T + t, v, q, data.cost[m] - old_cost
    return code, value, slot, dcost


@pytest.mark.parametrize("seed", range(3))
def test_best_placements_match_brute_force(seed):
    """Additions and replacements of a non-row contact, with spacing, limits and targets, against brute force."""
    from solvers import _dual_kernels as K

    problem = unfair_problem(seed, n=90, segment_bounds=BOUNDS["relative-min-ch1"]).replace(max_contacts=3,
                                                                                            min_gap_days=2)
    data = DualData(problem)
    y = np.random.default_rng(seed).uniform(data.lower, data.box) * 0.05
    data.evaluate(y)
    codes = data.choices(y)
    codes[::2, 0] = -1                                   # free slots, so additions compete with replacements
    price, mu = data.prices(y)
    shift = data.shift(y)
    target = np.full_like(shift, np.inf)
    target[1:, 1] = shift[1:, 1]                         # segments 1.. on channel 1 only
    replace_ok = np.arange(data.M) != 1
    for neg_ok in (data.neg_ok, np.zeros(data.M, dtype=bool)):
        got = K.best_placements(data.u, data.cell_ok, price, mu * data.cost, data.cost, data.limits, data.gap, codes,
                                16, data.seg, target, replace_ok, neg_ok)
        ref = _placements_reference(data, codes, price, mu * data.cost, target, replace_ok, neg_ok)
        assert (got[2] >= 0).sum() > 0 and ((got[2] < 0) & (got[0] >= 0)).sum() > 0 and (got[0] < 0).sum() > 0
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b)


def test_top_by_key_is_lexsort_cut_per_key():
    from solvers import _dual_kernels as K

    rng = np.random.default_rng(0)
    key = rng.integers(0, 6, 500)
    score = rng.integers(0, 20, 500).astype(float)         # many ties: broken by position
    for k in (1, 7, 1000):
        ptr, idx = K.top_by_key(key, score, 7, k)
        order = np.lexsort((score, key))
        counts = np.bincount(key, minlength=7)
        starts = np.concatenate([[0], np.cumsum(counts)])
        expect = np.concatenate([order[starts[g]:starts[g] + min(k, counts[g])] for g in range(7)])
        np.testing.assert_array_equal(idx, expect)
        np.testing.assert_array_equal(np.diff(ptr), np.minimum(counts, k))


def test_row_swaps_replaces_a_contact_on_another_channel():
    """Hand-solved: segment 1 needs one more call; its only customer has both slots taken by e-mails.

    Channels: 0 = e-mail (cost 1), 1 = call (cost 3); one day. Customer 0 (segment 1) replaces its
    e-mail in slot 1 by a call (value -2, spend +2): the e-mail cell gets a place back, the call cell
    loses one, the row holds with no slack.
    """
    from solvers import _dual_kernels as K

    codes = np.array([[0, 0]], dtype=np.int16)                # codes c = m*T + t with T = 1
    row_coef = np.array([[0.0, -1.0]])                         # -calls of segment 1 <= -1
    row_channels = np.array([[False, True]])
    row_val, row_rhs = np.array([0.0]), np.array([-1.0])
    S, n_cells = 2, 2
    add_ptr = np.zeros(n_cells * S + 1, dtype=np.int64)
    add_ptr[1 * S + 1 + 1:] = 1                                # key (cell 1, segment 1): one candidate
    drop_ptr = np.zeros(n_cells * S + 1, dtype=np.int64)
    leftover = np.array([[0], [1]], dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    moves, budget = K.row_swaps(row_coef, row_channels, row_val, row_rhs, 1, add_ptr, np.array([0]),
                                np.array([-2.0]), np.array([1]), np.array([2.0]), drop_ptr, empty, empty,
                                np.zeros(0), codes, leftover, np.array([1.0, 3.0]), 5.0, False)
    assert moves == 1 and budget == 3.0
    np.testing.assert_array_equal(codes, [[0, 1]])
    np.testing.assert_array_equal(leftover, [[1], [0]])
    assert row_val[0] == -1.0


def _settle_instance(seed):
    problem = unfair_problem(seed, n=40, segment_bounds=BOUNDS["relative-min-ch1"]).replace(max_contacts=2,
                                                                                             min_gap_days=2)
    data = DualData(problem)
    y = np.random.default_rng(seed).uniform(data.lower, data.box) * 0.05
    y[data.i_rows:data.i_terms] = 0.0
    return problem, data, y


@pytest.mark.parametrize("seed", range(3))
def test_group_patterns_match_the_plain_dp_at_every_bonus(seed):
    """max_g value[g] + g * theta is each customer's optimum when the rows' channels gain theta (plain DP per customer)."""
    from solvers import _dual_kernels as K

    _, data, y = _settle_instance(seed)
    price, mu = data.prices(y)
    group = data.fair.row_channels[0].copy()
    base = data.shift(y)                                   # row prices are zero here
    everyone = np.arange(data.n)
    value = np.empty((data.n, data.slots + 1))
    codes = np.empty((data.n, data.slots + 1, data.slots), dtype=np.int16)
    plan = np.full((data.n, data.slots), -1, dtype=np.int16)
    cap = np.zeros(data.n_segments)
    at_cap, none_used, _ = K.group_patterns(data.u, data.cell_ok, price, mu * data.cost, data.limits, data.gap, 7,
                                            data.seg, base, data.neg_ok, group, everyone, value, codes, cap, plan)
    assert none_used.sum() == 0
    g = np.arange(data.slots + 1)

    def optimum(theta):
        shift = base - theta * group[None, :]
        chosen = np.empty((data.n, data.slots), dtype=np.int16)
        each, _, _ = K.evaluate_dual(data.u, data.cell_ok, price, mu * data.cost, data.limits, data.gap, 1, data.seg,
                                     shift, data.neg_ok, chosen)
        return each, chosen

    for theta in [-3.0, -0.7, 0.0, 0.4, 1.5, 6.0]:
        np.testing.assert_allclose((value + g * theta).max(axis=1), optimum(theta)[0], rtol=1e-12, atol=1e-12)
    assert at_cap.sum() == pytest.approx(optimum(0.0)[0].sum(), rel=1e-12)
    # each pattern has g contacts on the group and is worth value[g]
    P, _ = K.price_table(data.cell_ok, price, mu * data.cost, base, data.neg_ok)
    for i in range(data.n):
        for gg in range(data.slots + 1):
            if np.isfinite(value[i, gg]):
                c = codes[i, gg][codes[i, gg] >= 0]
                m, t = c // data.T, c % data.T
                assert group[m].sum() == gg
                worth = sum(float(data.u[i, mm, tt]) - P[data.seg[i], mm, tt] for mm, tt in zip(m, t))
                assert worth == pytest.approx(value[i, gg], abs=1e-9)
    assert np.isfinite(value[:, 1:]).any() and np.isinf(value[:, 1:]).any()
    # a customer taking no group contact at a bonus takes none below it (DualData.settled's fixed customers)
    for cap in [0.0, 0.4, 1.5]:
        at_cap, chosen = optimum(cap)
        movable = np.flatnonzero(K.group_customers(chosen, group, data.T, 5))
        has_group = ((chosen >= 0) & group[np.maximum(chosen, 0) // data.T]).any(axis=1)
        np.testing.assert_array_equal(movable, np.flatnonzero(has_group))
        assert 0 < movable.size < data.n
        fixed = ~has_group
        for theta in [cap, cap - 0.3, cap - 2.0]:
            below, chosen_below = optimum(theta)
            np.testing.assert_allclose(below[fixed], at_cap[fixed], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(chosen_below[fixed], chosen[fixed])
        # what the movable ones add at the cap: their optima and the usage of their choices there
        caps = np.full(data.n_segments, cap)
        sub_value = np.empty((movable.size, data.slots + 1))
        sub_codes = np.empty((movable.size, data.slots + 1, data.slots), dtype=np.int16)
        part, used, seg_used = K.group_patterns(data.u, data.cell_ok, price, mu * data.cost, data.limits, data.gap,
                                                5, data.seg, base, data.neg_ok, group, movable, sub_value, sub_codes,
                                                caps, chosen)
        assert part.sum() == pytest.approx(at_cap[movable].sum(), rel=1e-12)
        c = chosen[movable][chosen[movable] >= 0].astype(np.int64)
        np.testing.assert_array_equal(used.ravel(), np.bincount(c, minlength=data.M * data.T))
        np.testing.assert_array_equal(seg_used.sum(axis=0), used.sum(axis=1))


def _patterns(problem, data, y, group):
    """Every customer's patterns at y's prices (brute force): (customer x pattern membership, values,
    segment x pattern group contacts, the prices' constant part of L)."""
    from itertools import combinations, product

    price, mu = data.prices(y)
    shift = data.shift(y)
    n, M, T = problem.shape
    ok = data.cell_ok[None] & ((data.u > 0) | (data.neg_ok[None, :, None] & np.isfinite(data.u)))
    rows_i, values, counts = [], [], []
    for i in range(n):
        s = data.seg[i]
        for k in range(int(data.limits[0] if data.limits.size == 1 else data.limits[i]) + 1):
            for days in combinations(range(T), k):
                if any(b - a < data.gap for a, b in zip(days, days[1:])):
                    continue
                for chans in product(range(M), repeat=k):
                    if not all(ok[i, m, t] for m, t in zip(chans, days)):
                        continue
                    v = sum(float(data.u[i, m, t]) - price[m, t] - mu * data.cost[m] - shift[s, m]
                            for m, t in zip(chans, days))
                    rows_i.append(i)
                    values.append(v)
                    counts.append((s, sum(group[m] for m in chans)))
    constant = float((price * data.capacity).sum()) + (mu * data.budget if data.has_budget_price else 0.0)
    nv = len(values)
    member = np.zeros((n, nv))
    member[rows_i, np.arange(nv)] = 1.0
    seg_count = np.zeros((data.n_segments, nv))
    for j, (s, c) in enumerate(counts):
        seg_count[s, j] = c
    return member, np.asarray(values), seg_count, constant


def _min_over_row_prices_lp(problem, data, y):
    """min over row prices of L at y's other prices, by LP duality over every customer's patterns (brute force)."""
    from scipy.optimize import linprog

    f = data.fair
    member, values, seg_count, constant = _patterns(problem, data, y, f.row_channels[0])
    res = linprog(-values, A_ub=f.row_coef @ seg_count, b_ub=data.row_rhs, A_eq=member, b_eq=np.ones(member.shape[0]),
                  method="highs")
    assert res.status == 0
    return -res.fun + constant


def _min_over_term_prices_qp(problem, data, y):
    """min over penalty prices of L at y's other prices: by conjugate duality, the concave QP
    max sum value * lambda - gamma sum_p w_p z_p^2 over every customer's convex mix of patterns (CVXPY)."""
    import cvxpy as cp

    f = data.fair
    y0 = np.array(y, dtype=np.float64)
    y0[data.i_terms:] = 0.0                     # the patterns' values without the term prices
    member, values, seg_count, constant = _patterns(problem, data, y0, f.pen_channels[0])
    lam = cp.Variable(values.size, nonneg=True)
    z = f.pen_coef[:data.n_terms] @ (seg_count @ lam) - data.pen_const
    objective = cp.Maximize(values @ lam - data.gamma * cp.sum(cp.multiply(data.term_weight, cp.square(z))))
    value = cp.Problem(objective, [member @ lam == 1]).solve(solver=cp.CLARABEL)
    return value + constant


@pytest.mark.parametrize("seed", range(3))
def test_settled_row_prices_minimise_the_dual_exactly(seed):
    """DualData.settled: L at its row prices equals min over row prices (LP over all patterns), with a flat row subgradient."""
    problem, data, y = _settle_instance(seed)
    assert data.settles_rows()
    ys, (f, g, _, _) = data.settled(y)
    assert f == pytest.approx(_min_over_row_prices_lp(problem, data, y), rel=1e-9, abs=1e-9)
    assert f == pytest.approx(data.evaluate(ys)[0], rel=1e-12)
    np.testing.assert_array_equal(ys[:data.i_rows], y[:data.i_rows])      # other prices untouched
    rows = ys[data.i_rows:data.i_terms]
    scale = data.scale[data.i_rows:data.i_terms]
    grad = g[data.i_rows:data.i_terms] / scale
    assert np.all(np.abs(grad[rows > 0]) <= 1e-9) and np.all(grad[rows == 0] >= -1e-9)
    assert (rows > 0).any()
    # the cut it returns is valid: it never lies above L elsewhere
    rng = np.random.default_rng(seed)
    for _ in range(20):
        z = np.clip(ys + rng.normal(0.0, 0.01, ys.size), data.lower, data.box)
        assert data.evaluate(z)[0] >= f + g @ (z - ys) - 1e-7 * abs(f)


@pytest.mark.parametrize("seed", range(3))
def test_the_sample_settles_its_row_prices_exactly(seed):
    """The sample stage settles the rows too (dual_data.SAMPLE_SETTLE): on a subsample (capacities, budget and
    row right-hand sides scaled to it) L at the settled row prices is min over row prices of the sample's L."""
    from types import SimpleNamespace

    problem, data, y = _settle_instance(seed)
    sub = data.subsample(25, seed)
    assert sub.settles_rows()
    ys, (f, _, _, _) = sub.settled(y)
    _, M, T = problem.shape
    assert f == pytest.approx(_min_over_row_prices_lp(SimpleNamespace(shape=(sub.n, M, T)), sub, y),
                              rel=1e-9, abs=1e-9)
    assert f == pytest.approx(sub.evaluate(ys)[0], rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_settled_penalty_prices_minimise_the_dual_exactly(seed, monkeypatch):
    """DualData.settled with a fairness penalty: L at its term prices equals min over them (QP over all
    patterns), the cut's term part is (nearly) zero, and the cut is valid."""
    monkeypatch.setattr("solvers.dual_data.SETTLE_TERMS_FROM", 0)
    problem = unfair_problem(seed, n=40, fairness_penalty=200.0, fairness_channels=["ch1"]).replace(
        max_contacts=2, min_gap_days=2)
    data = DualData(problem)
    assert data.settles_terms() and not data.settles_rows()
    rng = np.random.default_rng(seed)
    y = rng.uniform(data.lower, data.box) * 0.05
    y[data.i_terms:] = rng.uniform(-0.5, 0.5, data.n_terms)         # far from the settled prices
    ys, (f, g, _, _) = data.settled(y)
    assert f == pytest.approx(_min_over_term_prices_qp(problem, data, y), rel=1e-7)
    assert f == pytest.approx(data.evaluate(ys)[0], rel=1e-12)
    np.testing.assert_array_equal(ys[:data.i_terms], y[:data.i_terms])      # other prices untouched
    assert not np.allclose(ys[data.i_terms:], y[data.i_terms:])
    # the term part of the cut: c + nu / (2 gamma w) - B x, within the tangents' tolerance of zero
    grad = g[data.i_terms:] / data.scale[data.i_terms:]
    step = np.abs(data.fair.pen_coef[:data.n_terms]).max(axis=1)          # z moved by one contact
    assert np.all(np.abs(grad) <= 2 * step * SETTLE_Z_TOL + 1e-12)
    for _ in range(20):
        w = np.clip(ys + rng.normal(0.0, 0.01, ys.size), data.lower, data.box)
        assert data.evaluate(w)[0] >= f + g @ (w - ys) - 1e-7 * abs(f)
    # settled again from its own prices: the same point
    ys2, (f2, _, _, _) = data.settled(ys)
    assert f2 == pytest.approx(f, rel=1e-12)


def test_penalty_on_other_channels_than_the_rows_keeps_the_bundle_pricing_it(monkeypatch):
    """Rows on ch1 and a penalty on all channels: only the rows are settled; the solve still certifies its gap."""
    monkeypatch.setattr("solvers.dual_data.SETTLE_TERMS_FROM", 0)
    problem = unfair_problem(1, n=60, segment_bounds=BOUNDS["relative-min-ch1"], fairness_penalty=50.0)
    data = DualData(problem)
    assert data.settles_rows() and not data.settles_terms()
    plan = solve(problem, method="dual", polish=False)
    assert verify(problem, plan).ok and plan.bound >= plan.objective - 1e-9


@pytest.mark.parametrize("seed, rows", [(0, None), (1, None), (0, "relative-min-ch1")])
def test_settled_penalty_solve_agrees_with_the_bundle_priced_one(seed, rows, monkeypatch):
    """The same penalised instance (with or without hard rows on the same channel) with the term prices settled
    and left to the bundle: both certify their gap and the two plans' values lie within each other's bounds."""
    problem = unfair_problem(seed, n=200, fairness_penalty=100.0, fairness_channels=["ch1"],
                             **({} if rows is None else dict(segment_bounds=BOUNDS[rows])))
    plain = solve(problem, method="dual", rel_gap=1e-3, polish=False)
    monkeypatch.setattr("solvers.dual_data.SETTLE_TERMS_FROM", 0)
    assert DualData(problem).settles_terms()
    settled = solve(problem, method="dual", rel_gap=1e-3, polish=False)
    for plan in (plain, settled):
        assert verify(problem, plan).ok and plan.bound >= plan.objective - 1e-9
    assert settled.objective <= plain.bound + 1e-9 and plain.objective <= settled.bound + 1e-9


@pytest.mark.parametrize("budget_left", [0.0, 0.05, 0.5, 3.0, 1e9])
def test_free_channel_fill_skips_only_rounds_that_could_add_nothing(budget_left):
    """The fill stops before a pass when no free cell with room is affordable: same plan as running every round."""
    problem = unfair_problem(2, n=80, segment_bounds=BOUNDS["relative-min-ch1"])
    data = DualData(problem)
    y = np.random.default_rng(2).uniform(data.lower, data.box) * 0.05
    price, mu = data.prices(y)
    codes = data.choices(y)
    codes[::3] = -1                                         # leave room on every channel
    usage, _ = data._usage(codes)
    leftover = (np.floor(data.capacity).ravel().astype(np.int64) - usage).reshape(data.M, data.T)
    assert data.counted_channels().any() and not data.counted_channels().all()

    def every_round(codes, leftover, budget):
        target = np.where(data.counted_channels()[None, :], np.inf, data.shift(y))
        for _ in range(2):
            added, budget = data._add_best(codes, price, mu * data.cost, target, np.zeros(data.M, dtype=bool),
                                           leftover, budget, positive=False)
            if added == 0:
                break
        return budget

    ref_codes, ref_left = codes.copy(), leftover.copy()
    ref_budget = every_round(ref_codes, ref_left, budget_left)
    got_left = leftover.copy()
    got_budget = data._fill_free_channels(codes, price, mu * data.cost, data.shift(y), got_left, budget_left, rounds=2)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(got_left, ref_left)
    assert got_budget == ref_budget
    if budget_left < data.cost.min():
        assert got_budget == budget_left                    # nothing affordable: nothing added


@pytest.mark.parametrize("seed", range(3))
def test_pattern_values_reprice_the_group_patterns(seed):
    """pattern_values: at the prices group_patterns ran at it gives back its values; at other prices each
    pattern's worth summed contact by contact; no pattern where there was none."""
    from solvers import _dual_kernels as K

    _, data, y = _settle_instance(seed)
    group = data.fair.row_channels[0].copy()
    everyone = np.arange(data.n)
    value = np.empty((data.n, data.slots + 1))
    codes = np.empty((data.n, data.slots + 1, data.slots), dtype=np.int16)
    plan = np.full((data.n, data.slots), -1, dtype=np.int16)
    price, mu = data.prices(y)
    base = data.shift(y)
    K.group_patterns(data.u, data.cell_ok, price, mu * data.cost, data.limits, data.gap, 7, data.seg, base,
                     data.neg_ok, group, everyone, value, codes, np.zeros(data.n_segments), plan)
    again = value.copy()
    K.pattern_values(data.u, price, mu * data.cost, base, data.seg, everyone, codes, again, 7)
    np.testing.assert_allclose(again, value, rtol=1e-12, atol=1e-12)
    y2 = np.clip(y + np.random.default_rng(seed).uniform(0.0, 0.05, y.size), data.lower, data.box)
    y2[data.i_rows:data.i_terms] = 0.0
    price2, mu2 = data.prices(y2)
    shift2 = np.random.default_rng(seed).uniform(-0.1, 0.1, (data.n_segments, data.M))    # as penalty terms shift
    moved = value.copy()
    K.pattern_values(data.u, price2, mu2 * data.cost, shift2, data.seg, everyone, codes, moved, 7)
    P2, _ = K.price_table(data.cell_ok, price2, mu2 * data.cost, shift2, data.neg_ok)
    for i in range(data.n):
        for g in range(data.slots + 1):
            if np.isinf(value[i, g]):
                assert np.isinf(moved[i, g])
                continue
            c = codes[i, g][codes[i, g] >= 0]
            worth = sum(float(data.u[i, m, t]) - P2[data.seg[i], m, t] for m, t in zip(c // data.T, c % data.T))
            assert moved[i, g] == pytest.approx(worth, abs=1e-12)
    assert not np.allclose(moved[np.isfinite(moved)], value[np.isfinite(value)])


@pytest.mark.parametrize("seed", range(3))
def test_repriced_settles_evaluate_exactly_and_refresh(seed, monkeypatch):
    """With reprice_settles, settled() takes the last exact settle's patterns re-priced: L is still exactly
    L at the prices it returns (never below min over row prices), other prices are untouched, and every
    SETTLE_REPRICE + 1-th call settles exactly again."""
    monkeypatch.setattr("solvers.dual_data.SETTLE_REPRICE", 2)
    problem, data, y = _settle_instance(seed)
    data.reprice_settles = True
    rng = np.random.default_rng(seed)
    for k in range(6):
        z = np.clip(y + rng.uniform(0.0, 0.01, y.size), data.lower, data.box)
        z[data.i_rows:data.i_terms] = 0.0           # (the brute force below reads the rows' shift from z)
        zs, (f, _, _, _) = data.settled(z)
        assert data._repriced == k % 3
        np.testing.assert_array_equal(zs[:data.i_rows], z[:data.i_rows])
        assert f == pytest.approx(data.evaluate(zs)[0], rel=1e-12)
        best = _min_over_row_prices_lp(problem, data, z)
        assert f >= best - 1e-9 * abs(best)
        if k % 3 == 0:
            assert f == pytest.approx(best, rel=1e-9, abs=1e-9)
        else:
            assert f <= best + 1e-2 * abs(best)


def test_solve_after_a_sample_reprices_settles_and_certifies(monkeypatch):
    """A sampled solve with hard rows re-prices patterns in its full stage and still certifies its gap."""
    from solvers import _dual_kernels as K

    calls = []
    reprice = K.pattern_values

    def counted(*args):
        calls.append(args[5].shape[0])
        return reprice(*args)

    monkeypatch.setattr(K, "pattern_values", counted)
    monkeypatch.setattr("solvers.dual.SAMPLE_FROM", 0)
    problem = unfair_problem(3, n=3000, segment_bounds=BOUNDS["relative-min-ch1"])
    plan = solve(problem, method="dual", rel_gap=1e-3, sample_size=600, polish=False)
    assert plan.info["sample_size"] == 600 and calls
    assert verify(problem, plan).ok and plan.bound >= plan.objective - 1e-9
    assert plan.gap <= 1e-3
