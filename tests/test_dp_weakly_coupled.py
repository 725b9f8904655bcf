"""Weakly coupled MDPs: the Lagrangian bound against exact joint MDPs and the fluid LP; the ADP policy.

* the numba evaluation equals the NumPy reference;
* on 3 customers sharing one slot per period the bound is >= the exact
  optimum of the joint MDP (solved by DiscreteMDP), which is >= the exact
  value of the ADP policy (finite and infinite horizon);
* min L equals the occupation-measure LP solved by HiGHS (LP duality);
* in a small fatigue environment the ADP policy beats the myopic plan with
  a confidence interval above zero, and its simulated value is within the
  bound.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from quantecon.markov import random_discrete_dp
from scipy.optimize import linprog

from formulations.errors import InputError
from formulations.mdp import make_mdp_model
from formulations.weakly_coupled import WeaklyCoupledProblem, lagrangian_reference
from optimizer import DiscreteMDP, LagrangianADP, PlanningProblem, solve, utilities_from_mdp
from optimizer.dp.adp import compare_policies
from optimizer.dp.fatigue import fatigue_scenario
from solvers.weakly_coupled import LagrangianEvaluator, minimise_lagrangian


def _segment(seed: int, n: int, m: int, beta: float = 0.9):
    d = random_discrete_dp(n, m, beta=beta, k=min(n, 3), sparse=True, sa_pair=True, random_state=seed)
    R = d.R.copy()
    R[d.a_indices == 0] *= 0.2                  # no contact earns little, contacts more
    return make_mdp_model(R, d.Q, beta, d.s_indices, d.a_indices)


def _tiny(horizon):
    segs = [_segment(s, 3, 2) for s in (1, 2, 3)]
    return WeaklyCoupledProblem(segs, [1, 1, 1], [0, 1, 2], [1.0], [-1, 0], horizon=horizon)


def _joint(problem):
    """The exact coupled MDP of 3 single-customer segments with one slot: joint R (27, 4), Q (27, 4, 27)."""
    segs = problem.segments
    n = [s.num_states for s in segs]
    states = list(itertools.product(*[range(k) for k in n]))
    index = {x: i for i, x in enumerate(states)}
    tables = [s.pair_index() for s in segs]
    P = [s.transition_csr().toarray() for s in segs]
    N = len(states)
    R = np.full((N, 4), -np.inf)
    Q = np.zeros((N, 4, N))
    for i, x in enumerate(states):
        for a in range(4):                    # 0: nobody, 1 + c: contact customer c
            acts = [1 if a == 1 + c else 0 for c in range(3)]
            pairs = [tables[c][x[c], acts[c]] for c in range(3)]
            if min(pairs) < 0:
                continue
            R[i, a] = sum(segs[c].rewards[pairs[c]] for c in range(3))
            for y in states:
                Q[i, a, index[y]] = np.prod([P[c][pairs[c], y[c]] for c in range(3)])
    return R, Q, states, index


def _adp_joint_policy(adp, states, period):
    """Joint action of the ADP assignment (best positive advantage takes the slot)."""
    table = adp.advantages(period)[:, 0]
    offs = adp.evaluator_.stack.offsets
    out = np.zeros(len(states), dtype=np.int64)
    for i, x in enumerate(states):
        u = np.array([table[offs[c] + x[c]] for c in range(3)])
        u = np.where(np.isnan(u), -np.inf, u)
        out[i] = 1 + int(np.argmax(u)) if u.max() > 0 else 0
    return out


@pytest.mark.parametrize("threads", [1, 2])
def test_evaluation_matches_reference(threads):
    sc = fatigue_scenario(3, 20, 6, seed=4)
    ev = LagrangianEvaluator(sc.problem, threads=threads)
    prices = np.random.default_rng(0).uniform(0, 0.5, size=(5, 6))
    got, _ = ev.evaluate(prices)
    want = lagrangian_reference(sc.problem, prices)
    assert got.value == pytest.approx(want.value, rel=1e-12)
    np.testing.assert_allclose(got.subgradient, want.subgradient, atol=1e-9)
    assert got.segment_values.sum() + (ev.discount * prices * ev.capacity).sum() == pytest.approx(got.value)


def test_finite_horizon_bound_brackets_the_exact_joint_optimum():
    problem = _tiny(horizon=4)
    adp = LagrangianADP(problem, rel_tol=1e-8).fit()
    R, Q, states, index = _joint(problem)
    joint = DiscreteMDP(R, Q, problem.beta)
    vs, _ = joint.backward_induction(4)
    start = index[(0, 1, 2)]
    optimum = vs[0, start]
    # exact value of the ADP policy on the joint chain
    v = np.zeros(len(states))
    for t in range(3, -1, -1):
        act = _adp_joint_policy(adp, states, t)
        rows = np.arange(len(states))
        v = R[rows, act] + problem.beta * Q[rows, act] @ v
    assert v[start] <= optimum + 1e-9
    assert optimum <= adp.bound_ + 1e-7
    assert adp.solution_.lower <= adp.bound_


def test_infinite_horizon_bound_is_above_the_exact_optimum():
    problem = _tiny(horizon=None)
    sol = minimise_lagrangian(problem, rel_tol=1e-6, max_iter=200)
    R, Q, states, index = _joint(problem)
    exact = DiscreteMDP(R, Q, problem.beta).solve("pi").v[index[(0, 1, 2)]]
    assert exact <= sol.bound + 1e-7
    # without the coupling (capacity 3) the bound is exact: the sum of the three optima
    loose = WeaklyCoupledProblem(problem.segments, [1, 1, 1], [0, 1, 2], [3.0], [-1, 0])
    free = minimise_lagrangian(loose, rel_tol=1e-9)
    singles = sum(DiscreteMDP.from_model(s).solve("pi").v[k] for k, s in enumerate(problem.segments))
    assert free.bound == pytest.approx(singles, rel=1e-7)


def _fluid_lp(problem):
    """max sum_t beta^t r x  s.t. flow conservation per segment and expected capacity (HiGHS via linprog)."""
    T, beta = problem.horizon, problem.beta
    blocks, rhs_eq, cost, cap_rows = [], [], [], []
    col = 0
    eq_rows, eq_cols, eq_vals = [], [], []
    cap_r, cap_c = [], []
    row = 0
    for k, s in enumerate(problem.segments):
        L, n = s.num_sa_pairs, s.num_states
        P = s.transition_csr().toarray()
        for t in range(T):
            base = col + t * L
            for j in range(L):                       # outflow of (s, a) at t
                eq_rows.append(row + t * n + s.states[j]); eq_cols.append(base + j); eq_vals.append(1.0)
                if t + 1 < T:                        # inflow into t + 1
                    for y in np.flatnonzero(P[j]):
                        eq_rows.append(row + (t + 1) * n + y); eq_cols.append(base + j); eq_vals.append(-P[j, y])
                ch = problem.channel_of_action[s.actions[j]]
                if ch >= 0:
                    cap_r.append(ch * T + t); cap_c.append(base + j)
            cost.append(-(beta ** t) * s.rewards)
        rhs = np.zeros(T * n)
        rhs[:n] = problem.counts[k] * problem.initial[k]
        rhs_eq.append(rhs)
        row += T * n
        col += T * L
    A_eq = sp.csr_matrix((eq_vals, (eq_rows, eq_cols)), shape=(row, col))
    M = problem.n_channels
    A_ub = sp.csr_matrix((np.ones(len(cap_r)), (cap_r, cap_c)), shape=(M * T, col))
    res = linprog(np.concatenate(cost), A_ub=A_ub, b_ub=problem.capacity.ravel(), A_eq=A_eq,
                  b_eq=np.concatenate(rhs_eq), bounds=(0, None), method="highs")
    assert res.status == 0
    return -res.fun


@pytest.mark.parametrize("multicut", [True, False])
def test_min_lagrangian_equals_the_fluid_lp(multicut):
    segs = [_segment(s, 6, 3) for s in (7, 8, 9)]
    rng = np.random.default_rng(1)
    init = [rng.dirichlet(np.ones(6)) for _ in segs]
    problem = WeaklyCoupledProblem(segs, [10, 20, 15], init, rng.uniform(2, 8, size=(2, 5)), [-1, 0, 1], horizon=5)
    lp = _fluid_lp(problem)
    sol = minimise_lagrangian(problem, rel_tol=1e-8, max_iter=400, multicut=multicut)
    assert sol.converged
    assert sol.bound == pytest.approx(lp, rel=1e-6)
    assert sol.lower <= lp * (1 + 1e-9)


def test_adp_beats_the_myopic_plan_and_stays_below_the_bound():
    sc = fatigue_scenario(8, 40, 8, seed=2)
    adp = LagrangianADP(sc.problem).fit()
    cmp = compare_policies(adp, sc.myopic_scores, replications=4, seed=0)
    assert cmp.ci_low > 0                           # ADP earns more, with a CI above zero
    assert cmp.adp.mean <= adp.bound_               # the bound bounds the simulated policy
    assert (adp.bound_ - cmp.adp.mean) / adp.bound_ < 0.05
    assert (cmp.adp.usage <= sc.problem.capacity + 1e-9).all()


def test_utilities_from_mdp_for_the_weekly_plan():
    sc = fatigue_scenario(2, 10, 6, seed=3)
    adp = LagrangianADP(sc.problem).fit()
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 2, size=50)
    local = rng.integers(0, 500, size=50)
    u = utilities_from_mdp(adp, local, segments=seg, periods=3)
    assert u.shape == (50, 5, 3)
    glob = adp.evaluator_.stack.offsets[seg] + local
    np.testing.assert_array_equal(np.isnan(u[:, :, 0]), np.isnan(adp.advantages(0)[glob]))
    np.testing.assert_allclose(np.nan_to_num(u[:, :, 0]), np.nan_to_num(adp.advantages(0)[glob]))
    # period 1: beta * E[advantage] one no-contact step ahead
    model, free = adp.evaluator_.model, adp.evaluator_.stack.free_pair
    P0 = model.transition_csr()[free].toarray()
    A1 = adp.advantages(1)
    ok = ~np.isnan(u[:, 3, 1])
    want = sc.problem.beta * (P0 @ np.nan_to_num(A1[:, 3]))[glob]
    np.testing.assert_allclose(u[ok, 3, 1], want[ok], atol=1e-10)
    # cooling: a call right after a call is not allowed
    contact = sc.segments[0]
    just_called = np.flatnonzero(contact.days[:, 1] == 1)[:3]
    u2 = utilities_from_mdp(adp, just_called, segments=np.zeros(3, dtype=np.int64), periods=1)
    assert np.isnan(u2[:, 3, 0]).all()
    plan = solve(PlanningProblem(utility=u, capacity=np.full((5, 3), 5.0), cost=np.zeros(5), max_contacts=1),
                 method="greedy")
    assert plan.n_contacts > 0
    with pytest.raises(InputError):
        utilities_from_mdp(adp, local, segments=seg + 5)


def test_utilities_from_a_single_mdp():
    sc = fatigue_scenario(1, 10, 4, seed=5)
    contact = sc.segments[0]
    mdp = DiscreteMDP.from_model(contact.model)
    res = mdp.solve("pi")
    states = np.arange(0, 500, 37)
    u = utilities_from_mdp(mdp, states, values=res, channel_of_action=contact.channel_of_action, periods=2)
    q = mdp.q_table(res.v)
    want = q[states, 1:] - q[states, :1]
    want[~np.isfinite(want)] = np.nan
    np.testing.assert_allclose(u[:, :, 0], want)


def test_weakly_coupled_problem_validation():
    segs = [_segment(s, 3, 2) for s in (1, 2)]
    ok = dict(segments=segs, counts=[1, 2], initial=[0, 1], capacity=[1.0], channel_of_action=[-1, 0], horizon=3)
    WeaklyCoupledProblem(**ok)
    for field, bad in [("counts", [1, -2]), ("capacity", [[1.0, 2.0]]), ("capacity", [-1.0]),
                       ("initial", [0, [0.5, 0.2, 0.2]]), ("initial", [0, 7]), ("horizon", 0),
                       ("channel_of_action", [-2, 0]), ("channel_of_action", [-1, -1]), ("segments", [])]:
        with pytest.raises(InputError) as info:
            WeaklyCoupledProblem(**{**ok, field: bad})
        assert info.value.field == field
    # a state without the channel-free action: drop action 0 of state 0 of the first segment
    s0 = segs[0]
    keep = ~((s0.states == 0) & (s0.actions == 0))
    Q = s0.transition_csr()[np.flatnonzero(keep)]
    no_free = make_mdp_model(s0.rewards[keep], Q, s0.beta, s0.states[keep], s0.actions[keep])
    with pytest.raises(InputError, match="channel-free"):
        WeaklyCoupledProblem(**{**ok, "segments": [no_free, segs[1]]})
