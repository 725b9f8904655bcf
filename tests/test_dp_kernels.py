"""numba DP kernels against their NumPy twins in formulations.mdp (small inputs, both row layouts)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from quantecon.markov import DiscreteDP, random_discrete_dp

from formulations import mdp as ref
from formulations.mdp import make_mdp_model
from solvers import _dp_kernels as K
from solvers.dp import Operators


def _model(seed: int, sparse: bool, n: int = 40, m: int = 4, k: int = 9):
    ddp = random_discrete_dp(n, m, beta=0.93, k=k if sparse else None, sparse=sparse, sa_pair=True,
                             random_state=seed)
    # drop a few pairs so states have different numbers of actions
    rng = np.random.default_rng(seed)
    keep = rng.random(ddp.num_sa_pairs) > 0.2
    first = np.unique(ddp.s_indices, return_index=True)[1]
    keep[first] = True
    Q = ddp.Q[keep] if sparse else ddp.Q[keep]
    return make_mdp_model(ddp.R[keep], Q, ddp.beta, ddp.s_indices[keep], ddp.a_indices[keep])


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("parallel", [False, True])
def test_bellman_kernel_matches_reference(sparse, parallel):
    model = _model(1, sparse)
    ops = Operators(model, threads=2 if parallel else 1)
    v = np.random.default_rng(2).normal(size=model.num_states)
    tv = ops.bellman(v, np.empty(model.num_states))
    tv_ref, best_ref, q_ref = ref.bellman_operator(model, v)
    np.testing.assert_allclose(tv, tv_ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ops.best_pairs(), best_ref)
    np.testing.assert_allclose(ops.q, q_ref, atol=1e-12)


def test_bellman_ties_go_to_the_lowest_action():
    R = np.array([[1.0, 1.0, 0.5]])
    Q = np.ones((1, 3, 1))
    model = make_mdp_model(R, Q, 0.5)
    ops = Operators(model)
    ops.bellman(np.zeros(1), np.empty(1))
    assert ops.best_pairs()[0] == ref.bellman_operator(model, np.zeros(1))[1][0] == 0


@pytest.mark.parametrize("sparse", [True, False])
def test_policy_step_push_and_partial_evaluation(sparse):
    model = _model(3, sparse)
    ops = Operators(model, threads=1)
    rng = np.random.default_rng(4)
    u = rng.normal(size=model.num_states)
    pairs = np.array([rng.integers(model.state_ptr[s], model.state_ptr[s + 1]) for s in range(model.num_states)])
    out = ops.policy_step(ops.policy_rows(pairs), u, np.empty_like(u))
    np.testing.assert_allclose(out, ref.policy_operator(model, pairs, u), atol=1e-12)
    mass = rng.random(model.num_states)
    np.testing.assert_allclose(ops.push(mass, pairs, np.empty_like(mass)), ref.push_distribution(model, pairs, mass),
                               atol=1e-12)
    w = u.copy()
    assert ops.partial_evaluation(pairs, w, 5, -1.0) == 5
    x = u.copy()
    for _ in range(5):
        x = ref.policy_operator(model, pairs, x)
    np.testing.assert_allclose(w, x, atol=1e-11)


@pytest.mark.parametrize("sparse", [True, False])
def test_sampling_matches_inverse_cdf(sparse):
    model = _model(5, sparse)
    ops = Operators(model)
    rng = np.random.default_rng(6)
    pairs = rng.integers(0, model.num_sa_pairs, size=500)
    uniforms = rng.random(500)
    np.testing.assert_array_equal(ops.sample(pairs, uniforms), ref.sample_successors(model, pairs, uniforms))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 5000), span=st.floats(0.0, 2.0))
def test_elimination_kernel_matches_reference(seed, span):
    model = _model(seed, True, n=15, m=4, k=4)
    ops = Operators(model)
    v = np.random.default_rng(seed).normal(size=model.num_states)
    tv = ops.bellman(v, np.empty(model.num_states))
    alive_ref = ref.eliminate_reference(model, ops.q, tv, ops.alive, ops.best, span, 1e-9)
    K.eliminate(ops.q, tv, ops.state_ptr, ops.alive, ops.best, span, 1e-9)
    np.testing.assert_array_equal(ops.alive.astype(bool), alive_ref)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 5000), steps=st.integers(1, 6))
def test_elimination_never_drops_an_optimal_action(seed, steps):
    model = _model(seed, True, n=20, m=5, k=5)
    ops = Operators(model)
    v = np.zeros(model.num_states)
    tv = np.empty(model.num_states)
    for _ in range(steps):                       # a few VI passes with MacQueen's test
        ops.bellman(v, tv)
        d = tv - v
        ops.eliminate(tv, float(d.max() - d.min()))
        v = tv.copy()
    ddp = DiscreteDP(model.rewards, model.transition_csr(), model.beta, model.states, model.actions)
    opt = ddp.solve("pi")
    _, _, q = ref.bellman_operator(model, opt.v)
    best_q = np.maximum.reduceat(q, model.state_ptr[:-1])
    optimal = q >= np.repeat(best_q, np.diff(model.state_ptr)) - 1e-9
    assert ops.alive_of(np.flatnonzero(optimal)).all()


def test_gather_rows_matches_scipy_row_selection():
    model = _model(7, True)
    ops = Operators(model)
    rows = np.random.default_rng(8).permutation(model.transition.shape[0])[:25].astype(np.int64)
    want = model.transition[rows]
    for parallel in (False, True):
        ptr, idx, val = ops.gather(rows, parallel)
        np.testing.assert_array_equal(ptr.astype(np.int64), want.indptr)
        np.testing.assert_array_equal(idx.astype(np.int64), want.indices)
        np.testing.assert_array_equal(val, want.data)



@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 5000), span=st.floats(0.0, 0.5))
def test_compacted_working_set_gives_the_same_passes(seed, span):
    """After MacQueen's test has compacted the live rows, passes equal passes over the full matrix with the same live set."""
    model = _model(seed, True, n=15, m=4, k=4)
    rng = np.random.default_rng(seed)
    v0, v1 = rng.normal(size=model.num_states), rng.normal(size=model.num_states)
    ops = Operators(model)
    tv = ops.bellman(v0, np.empty(model.num_states))
    ops.eliminate(tv, span)
    live = ops.alive_of(np.arange(model.num_sa_pairs))
    ops._compact()                                         # force the compact layout
    full = Operators(model)
    full.set_alive(live)
    assert ops.live == full.live == int(live.sum())
    np.testing.assert_array_equal(ops.bellman(v1, np.empty(model.num_states)),
                                  full.bellman(v1, np.empty(model.num_states)))
    np.testing.assert_array_equal(ops.best_pairs(), full.best_pairs())
    idx = np.flatnonzero(live)
    np.testing.assert_array_equal(ops.q_of(idx), full.q_of(idx))
    assert np.isneginf(ops.q_of(np.flatnonzero(~live))).all()
    # a second compaction shrinks the private copy in place
    drop = (rng.random(ops.pair_id.size) < 0.5) & ~np.isin(np.arange(ops.pair_id.size), ops.best)
    ops.alive[drop] = 0
    live[ops.pair_id[drop]] = False
    ops._compact()
    full.set_alive(live)
    v2 = rng.normal(size=model.num_states)
    np.testing.assert_array_equal(ops.bellman(v2, np.empty(model.num_states)),
                                  full.bellman(v2, np.empty(model.num_states)))
    np.testing.assert_array_equal(ops.best_pairs(), full.best_pairs())
    np.testing.assert_array_equal(ops.q_of(np.flatnonzero(live)), full.q_of(np.flatnonzero(live)))
