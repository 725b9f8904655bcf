"""DiscreteMDP against QuantEcon's DiscreteDP and hand-solved MDPs.

Checks values, policies and iteration counts (QuantEcon's rules and starts
reproduce its iterates exactly) and that every reported bound holds against
an independent exact solution (QuantEcon's policy iteration with a direct
linear solve).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st
from quantecon.markov import DiscreteDP, backward_induction, random_discrete_dp

from optimizer import DiscreteMDP

QE_MODES = {"vi": dict(stop="norm", eliminate=False), "pi": dict(eliminate=False),
            "mpi": dict(eliminate=False, adaptive=False)}


def _ours(ddp: DiscreteDP) -> DiscreteMDP:
    if ddp._sa_pair:
        return DiscreteMDP(ddp.R, ddp.Q, ddp.beta, ddp.s_indices, ddp.a_indices)
    return DiscreteMDP(ddp.R, ddp.Q, ddp.beta)


def _instance(seed: int, sparse: bool, n: int = 60, m: int = 4) -> DiscreteDP:
    return random_discrete_dp(n, m, beta=0.9, k=6 if sparse else None, sparse=sparse, sa_pair=sparse,
                              random_state=seed)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("method", ["vi", "pi", "mpi"])
def test_quantecon_rules_give_quantecons_iterates(method, sparse):
    ddp = _instance(3, sparse)
    ref = ddp.solve(method, epsilon=1e-6, max_iter=10_000)
    res = _ours(ddp).solve(method, epsilon=1e-6, **QE_MODES[method])
    assert res.converged
    assert res.num_iter == ref.num_iter
    np.testing.assert_array_equal(res.sigma, ref.sigma)
    np.testing.assert_allclose(res.v, ref.v, rtol=0, atol=1e-9)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("method", ["vi", "pi", "mpi"])
def test_default_methods_are_epsilon_optimal_with_valid_bounds(method, sparse):
    ddp = _instance(5, sparse, n=80, m=5)
    exact = ddp.solve("pi")                                 # direct solve: exact up to rounding
    eps = 1e-6
    res = _ours(ddp).solve(method, epsilon=eps)
    assert res.converged
    np.testing.assert_array_equal(res.sigma, exact.sigma)
    err = np.abs(res.v - exact.v).max()
    assert err <= res.error_bound + 1e-12
    assert res.error_bound < eps / 2 + 1e-12 or method == "pi"
    assert (res.lower <= exact.v + 1e-10).all() and (exact.v <= res.upper + 1e-10).all()
    v_sigma = ddp.evaluate_policy(res.sigma)
    assert (exact.v - v_sigma).max() <= res.policy_error_bound + 1e-10
    assert res.policy_error_bound < eps


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 25), m=st.integers(1, 4), beta=st.floats(0.0, 0.97),
       sparse=st.booleans())
def test_random_instances_match_quantecon_policy_iteration(seed, n, m, beta, sparse):
    k = min(n, 3) if sparse else None
    ddp = random_discrete_dp(n, m, beta=beta, k=k, sparse=sparse, sa_pair=sparse, random_state=seed)
    exact = ddp.solve("pi")
    ours = _ours(ddp)
    for method in ("vi", "mpi", "pi"):
        res = ours.solve(method, epsilon=1e-8)
        assert res.converged
        assert np.abs(res.v - exact.v).max() <= res.error_bound + 1e-9
        v_sigma = ddp.evaluate_policy(res.sigma)
        assert (exact.v - v_sigma).max() <= res.policy_error_bound + 1e-9


def test_hand_solved_two_state_mdp():
    # Puterman (2005) §3.1: state 1 only "stay" (-1 forever): v1 = -1 / (1 - 0.95) = -20.
    # State 0: a0 gives v0 = 5 + 0.95 (v0 + v1) / 2  =>  v0 = -4.5 / 0.525 = -60/7;
    # a1 gives 10 + 0.95 v1 = -9 < -60/7, so sigma = (0, 0).
    R = [[5.0, 10.0], [-1.0, -np.inf]]
    Q = [[(0.5, 0.5), (0.0, 1.0)], [(0.0, 1.0), (0.5, 0.5)]]
    exact = np.array([-60.0 / 7.0, -20.0])
    mdp = DiscreteMDP(R, Q, 0.95)
    for method in ("vi", "pi", "mpi"):
        res = mdp.solve(method, epsilon=1e-9)
        np.testing.assert_array_equal(res.sigma, [0, 0])
        np.testing.assert_allclose(res.v, exact, atol=1e-9)
    # the same MDP in state-action form, pairs given out of order
    sa = DiscreteMDP([10.0, -1.0, 5.0], [(0.0, 1.0), (0.0, 1.0), (0.5, 0.5)], 0.95, [0, 1, 0], [1, 0, 0])
    np.testing.assert_allclose(sa.solve("pi").v, exact, atol=1e-10)
    np.testing.assert_allclose(mdp.evaluate_policy([1, 0]), [10.0 - 19.0, -20.0], atol=1e-10)


def test_hand_solved_switching_mdp():
    # two states, two actions, deterministic moves: "stay" earns r_s, "move" earns 0 and switches state.
    # r = (1, 3), beta = 0.5: in state 1 stay forever: v1 = 3 / 0.5 = 6; in state 0: stay gives 1 + 0.5 v0
    # (v0 = 2) while moving gives 0 + 0.5 * 6 = 3 > 2, so sigma = (move, stay), v = (3, 6).
    R = [[1.0, 0.0], [3.0, 0.0]]
    Q = [[(1, 0), (0, 1)], [(0, 1), (1, 0)]]
    for method in ("vi", "pi", "mpi"):
        res = DiscreteMDP(R, Q, 0.5).solve(method, epsilon=1e-10)
        np.testing.assert_array_equal(res.sigma, [1, 0])
        np.testing.assert_allclose(res.v, [3.0, 6.0], atol=1e-9)


@pytest.mark.parametrize("method, kwargs", [("vi", dict(stop="norm")), ("vi", {}), ("mpi", {}), ("pi", {})])
def test_max_iter_is_reported_not_silent(method, kwargs):
    ddp = _instance(1, True)
    exact = ddp.solve("pi")
    assert exact.num_iter > 1
    res = _ours(ddp).solve(method, epsilon=1e-12, max_iter=1, **kwargs)
    assert not res.converged and res.num_iter == 1
    assert np.abs(res.v - exact.v).max() <= res.error_bound + 1e-12   # the bounds still hold
    assert (res.lower <= exact.v + 1e-12).all() and (exact.v <= res.upper + 1e-12).all()


def test_span_rule_never_needs_more_iterations_than_the_norm_rule():
    ddp = _instance(7, False)
    ours = _ours(ddp)
    span = ours.solve("vi", epsilon=1e-6, eliminate=False)
    norm = ours.solve("vi", epsilon=1e-6, stop="norm", eliminate=False)
    assert span.num_iter <= norm.num_iter


def test_action_elimination_keeps_the_optimum():
    ddp = _instance(11, True, n=100, m=6)
    exact = ddp.solve("pi")
    res = _ours(ddp).solve("vi", epsilon=1e-8)
    assert res.eliminated > 0
    np.testing.assert_array_equal(res.sigma, exact.sigma)


def test_backward_induction_matches_quantecon():
    ddp = _instance(2, True)
    vs_ref, sig_ref = backward_induction(ddp, 6)
    vs, sig = _ours(ddp).backward_induction(6)
    np.testing.assert_allclose(vs, vs_ref, atol=1e-12)
    np.testing.assert_array_equal(sig, sig_ref)


def test_dense_and_sparse_forms_agree_and_operators_match_quantecon():
    ddp = _instance(4, False, n=30, m=3)
    sa = ddp.to_sa_pair_form(sparse=True)
    dense, sparse = _ours(ddp), _ours(sa)
    v = np.random.default_rng(0).normal(size=30)
    np.testing.assert_allclose(dense.bellman_operator(v), ddp.bellman_operator(v), atol=1e-12)
    np.testing.assert_allclose(sparse.bellman_operator(v), ddp.bellman_operator(v), atol=1e-12)
    np.testing.assert_array_equal(dense.compute_greedy(v), ddp.compute_greedy(v))
    np.testing.assert_allclose(dense.solve("pi").v, sparse.solve("pi").v, atol=1e-9)
    np.testing.assert_allclose(sparse.evaluate_policy(ddp.compute_greedy(v)),
                               ddp.evaluate_policy(ddp.compute_greedy(v)), atol=1e-9)


def test_inputs_are_not_modified():
    ddp = _instance(8, True)
    Q = sp.csr_matrix(ddp.Q)
    Q.has_sorted_indices = False            # force the canonicalisation path
    before = (Q.data.copy(), Q.indices.copy(), ddp.R.copy())
    DiscreteMDP(ddp.R, Q, ddp.beta, ddp.s_indices, ddp.a_indices).solve("mpi")
    np.testing.assert_array_equal(Q.data, before[0])
    np.testing.assert_array_equal(Q.indices, before[1])
    np.testing.assert_array_equal(ddp.R, before[2])


def test_beta_zero_is_one_greedy_step():
    R = np.array([[1.0, 2.0], [0.5, -np.inf]])
    Q = np.full((2, 2, 2), 0.5)
    for method in ("vi", "pi", "mpi"):
        res = DiscreteMDP(R, Q, 0.0).solve(method)
        np.testing.assert_array_equal(res.sigma, [1, 0])
        np.testing.assert_allclose(res.v, [2.0, 0.5])
