"""The runtime API: LagrangianPolicy contract, bad inputs, fallbacks, versions, online prices, traces."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest

from formulations import policy as F
from formulations.errors import InputError
from optimizer import LagrangianPolicy
from optimizer.decision_trace import DecisionTrace, read_trace
from solvers import policy as S


def data(seed=0, n=2000, actions=10, dtype=np.float32):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1, (n, actions + 1)).astype(dtype)
    scores[:, 0] = 0
    eligible = rng.random((n, actions + 1)) < 0.8
    costs = np.r_[0.0, rng.uniform(0.5, 2.0, actions)]
    return scores, eligible, costs


@pytest.fixture(scope="module")
def fitted():
    scores, eligible, costs = data()
    return LagrangianPolicy(costs, 0.3, temperature=0.1).fit(scores, eligible), scores, eligible


def test_contract(fitted):
    policy, scores, eligible = fitted
    assert policy.fit_result_.method == "brent" and abs(policy.fit_result_.tightness[0]) < 1e-8
    decision = policy.decide(scores[:50], eligible[:50], rng=np.random.default_rng(0), unit_ids=list(range(50)))
    assert decision.actions.dtype.kind == "i" and decision.actions.shape == (50,)
    assert decision.propensities.dtype == np.float64 and np.all((decision.propensities > 0)
                                                                & (decision.propensities <= 1))
    np.testing.assert_array_equal(decision.prices, policy.prices_)
    assert decision.model_version == "v1" and len(decision.decision_ids) == 50
    assert np.all(eligible[np.arange(50), decision.actions] | (decision.actions == 0))
    one = policy.decide(scores[0], eligible[0], rng=1)           # a single (A+1,) row works
    assert one.actions.shape == (1,)
    # propensity = the policy probability of the chosen action (closed form)
    probs = policy.probabilities(scores[:50], eligible[:50])
    np.testing.assert_allclose(decision.propensities, probs[np.arange(50), decision.actions], rtol=1e-12)


def test_expected_use_closed_form(fitted):
    policy, scores, eligible = fitted
    probs = policy.probabilities(scores, eligible)
    np.testing.assert_allclose(policy.expected_use(scores, eligible), [np.mean(probs @ policy.resources.costs[0])],
                               rtol=1e-10)
    np.testing.assert_allclose(policy.expected_use(scores, eligible), 0.3, rtol=1e-8)   # the fit is tight


@pytest.mark.parametrize("kwargs, field", [
    (dict(temperature=-1.0), "temperature"),
    (dict(step=-1.0), "step"),
    (dict(feedback="guess"), "feedback"),
    (dict(control_share=1.5), "control_share"),
    (dict(fallback=[0.5, 0.5]), "fallback"),
    (dict(drift_threshold=0), "drift_threshold"),
])
def test_bad_constructor_arguments(kwargs, field):
    _, _, costs = data()
    with pytest.raises(InputError) as err:
        LagrangianPolicy(costs, 0.3, **kwargs)
    assert err.value.field == field


def test_fallback_must_fit_the_budget():
    costs = np.array([0.0, 1.0, 2.0])
    with pytest.raises(InputError, match="fallback"):
        LagrangianPolicy(costs, 0.3, fallback=[0.0, 1.0, 0.0])
    LagrangianPolicy(costs, 0.3, fallback=[0.8, 0.2, 0.0])          # expected cost 0.2 <= 0.3


def test_bad_decision_inputs(fitted):
    policy, scores, eligible = fitted
    with pytest.raises(InputError, match="scores: expected shape"):
        policy.decide(scores[:, :5])
    with pytest.raises(InputError, match="eligible: expected shape"):
        policy.decide(scores[:10], eligible[:9])
    with pytest.raises(InputError, match="eligible: expected a boolean mask"):
        policy.decide(scores[:2], np.full((2, 11), 0.5))
    with pytest.raises(InputError, match="unit_ids"):
        policy.decide(scores[:3], unit_ids=["a"])
    with pytest.raises(InputError, match="scores: expected numbers"):
        policy.decide(np.full((2, 11), "x"))
    with pytest.raises(InputError, match="not fitted"):
        LagrangianPolicy(np.r_[0.0, np.ones(10)], 0.3).decide(scores[:2])
    with pytest.raises(InputError, match="scores: expected shape"):
        LagrangianPolicy(np.r_[0.0, np.ones(10)], 0.3).fit(scores[:, :4])


def test_all_ineligible_gives_no_contact_with_propensity_one(fitted):
    policy, scores, _ = fitted
    none = np.zeros((5, 11), dtype=bool)
    d = policy.decide(scores[:5], none, rng=0)
    assert np.all(d.actions == 0) and np.all(d.propensities == 1.0) and np.all(d.reasons == F.REASON_POLICY)
    minus_inf = np.full((3, 11), -np.inf, dtype=np.float32)
    minus_inf[:, 0] = 0.0
    d = policy.decide(minus_inf, rng=0)
    assert np.all(d.actions == 0) and np.all(d.propensities == 1.0)


def test_nan_scores_take_the_documented_fallback(fitted):
    policy, scores, eligible = fitted
    s = scores[:6].copy()
    s[2, 4] = np.nan
    e = eligible[:6].copy()
    e[2, 4] = True
    d = policy.decide(s, e, rng=0)
    assert d.reasons[2] == F.REASON_MISSING and d.actions[2] == 0 and d.propensities[2] == 1.0
    assert np.all(d.reasons[[0, 1, 3, 4, 5]] == F.REASON_POLICY)
    e[2, 4] = False                                   # NaN on an ineligible action is ignored
    assert policy.decide(s, e, rng=0).reasons[2] == F.REASON_POLICY
    # fitting skips rows with missing scores and says so
    s_fit = scores.copy()
    s_fit[:10, 3] = np.nan
    p2 = LagrangianPolicy(policy.resources.costs, 0.3, temperature=0.1).fit(s_fit, None)
    assert p2.fit_result_.n_skipped == 10


def test_fallback_distribution_and_stale_model():
    scores, eligible, costs = data(1, n=3000)
    fallback = np.zeros(11)
    fallback[[0, 1]] = [0.9, 0.1]
    policy = LagrangianPolicy(costs, 0.3, temperature=0.1, fallback=fallback, drift_threshold=0.5,
                              trace_probabilities=True).fit(scores, eligible)
    report = policy.monitor(scores[:1000], eligible[:1000])
    assert not report.stale and report.distance < 0.2
    shifted = scores + np.float32(1.5)
    shifted[:, 0] = 0
    report = policy.monitor(shifted, eligible)
    assert report.stale and policy.stale_ and report.distance > 0.5
    e = np.ones((2000, 11), dtype=bool)
    d = policy.decide(scores[:2000], e, rng=3)
    assert np.all(d.reasons == F.REASON_STALE)
    assert set(np.unique(d.actions)) == {0, 1}
    np.testing.assert_allclose(d.propensities, np.where(d.actions == 0, 0.9, 0.1))
    np.testing.assert_allclose(d.probabilities[np.arange(2000), d.actions], d.propensities)
    policy.mark_stale(False)
    assert np.all(policy.decide(scores[:10], eligible[:10], rng=3).reasons == F.REASON_POLICY)


def test_versions_and_rollback():
    scores, eligible, costs = data(2)
    policy = LagrangianPolicy(costs, 0.3, temperature=0.1)
    with pytest.raises(InputError, match="rollback"):
        policy.rollback()
    policy.fit(scores, eligible)
    first = policy.prices_.copy()
    policy.set_prices([first[0] * 2], model_version="manual-2")
    assert policy.model_version_ == "manual-2"
    policy.mark_stale()
    restored = policy.rollback()
    assert restored.model_version == "v1" and np.array_equal(policy.prices_, first) and not policy.stale_
    policy.fit(scores[::-1], eligible[::-1], model_version="weekly-48")
    assert policy.model_version_ == "weekly-48" and [v.model_version for v in policy.history_] == ["v1"]
    with pytest.raises(InputError, match="prices"):
        policy.set_prices([-1.0])


def test_hash_draws_and_control_group_are_deterministic():
    scores, eligible, costs = data(3, n=4000)
    ids = [f"C{i:05d}" for i in range(4000)]
    a = LagrangianPolicy(costs, 0.3, 0.2, control_share=0.2, salt="exp-7").fit(scores, eligible)
    b = LagrangianPolicy(costs, 0.3, 0.2, control_share=0.2, salt="exp-7").fit(scores, eligible)
    da, db = a.decide(scores, eligible, unit_ids=ids), b.decide(scores[::-1], eligible[::-1], unit_ids=ids[::-1])
    assert np.array_equal(da.actions, db.actions[::-1])               # same unit + salt: same arm and draw
    control = da.in_control
    assert abs(control.mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 4000)
    assert np.all(da.actions[control] == 0) and np.all(da.propensities[control] == 1.0)
    c = LagrangianPolicy(costs, 0.3, 0.2, control_share=0.2, salt="exp-8").fit(scores, eligible)
    assert not np.array_equal(c.decide(scores, eligible, unit_ids=ids).in_control, control)
    with pytest.raises(InputError, match="unit_ids"):
        a.decide(scores[:3], eligible[:3])


def test_online_updates_match_the_stream_kernel():
    scores, eligible, costs = data(4, n=300)
    policy = LagrangianPolicy(costs, 0.3, 0.2, step=0.01).fit(scores, eligible)
    start, steps = policy.prices_.copy(), policy.steps_.copy()
    rng = np.random.default_rng(9)
    actions = [policy.decide(scores[i], eligible[i], rng=rng).actions[0] for i in range(300)]
    uniforms = np.random.default_rng(9).random(300)
    run = S.run_online(scores, eligible, policy.resources, start, steps, 0.2, uniforms, record_every=1)
    assert np.array_equal(actions, run.actions)
    np.testing.assert_allclose(policy.prices_, run.final_prices, rtol=1e-12)
    expected = LagrangianPolicy(costs, 0.3, 0.2, step=0.01, feedback="expected").fit(scores, eligible)
    rng = np.random.default_rng(5)
    actions = [expected.decide(scores[i], eligible[i], rng=rng).actions[0] for i in range(100)]
    run = S.run_online(scores[:100], eligible[:100], expected.resources, start, steps, 0.2,
                       np.random.default_rng(5).random(100), realised=False, record_every=1)
    assert np.array_equal(actions, run.actions) and expected.prices_[0] != start[0]
    np.testing.assert_allclose(expected.prices_, run.final_prices, rtol=1e-10)


def test_trace_roundtrip_and_evaluation_schema(tmp_path, fitted):
    _, scores, eligible = fitted
    path = tmp_path / "trace.jsonl"
    policy = LagrangianPolicy(fitted[0].resources.costs, 0.3, 0.1, trace=path, control_share=0.1,
                              trace_probabilities=True).fit(scores, eligible)
    ids = [f"u{i}" for i in range(200)]
    d1 = policy.decide(scores[:200], eligible[:200], unit_ids=ids)
    d2 = policy.decide(scores[200:210], eligible[200:210], rng=1, unit_ids=[None] * 10)
    df = read_trace(path)
    assert len(df) == 210 and df["decision_id"].is_unique
    assert list(df.columns[:9]) == ["decision_id", "unit_id", "timestamp", "action", "propensity", "prices",
                                    "model_version", "arm", "reason"]
    np.testing.assert_array_equal(df["action"][:200], d1.actions)
    np.testing.assert_allclose(df["propensity"][:200], d1.propensities, rtol=0)     # repr round-trips exactly
    assert df["unit_id"][:200].tolist() == ids and df["unit_id"][200:].isna().all()
    assert (df["arm"][:200] == np.where(d1.in_control, "control", "treatment")).all()
    assert df["prices"][0] == [float(policy.prices_[0])] and d2.model_version == "v1"
    probs = np.array(df["action_probabilities"].tolist())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    traces = pytest.importorskip("optimizer.evaluation.traces")      # the evaluation toolkit reads the same file
    read = traces.read_decision_traces(path)
    assert read.n == 210


def test_trace_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"decision_id": "a-0", "unit_id": 1, "timestamp": 1.0, "action": 0, "propensity": 1.0, '
                    '"prices": [0.0], "model_version": "v1", "arm": "treatment", "reason": "policy"}\n{"decision_')
    assert len(read_trace(path)) == 1
    with pytest.raises(InputError, match="trace"):
        DecisionTrace(tmp_path / "missing" / "t.jsonl")


def _append(path, seed):
    scores, eligible, costs = data(seed, n=500)
    policy = LagrangianPolicy(costs, 0.3, 0.1, trace=path).set_prices([1.0])
    for start in range(0, 500, 50):
        policy.decide(scores[start:start + 50], eligible[start:start + 50], rng=seed, unit_ids=list(range(50)))


def test_concurrent_writers_never_tear_lines(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append, args=(path, s)) for s in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = open(path).read().splitlines()
    assert len(lines) == 1500 and all(json.loads(line)["model_version"] == "v1" for line in lines)


def test_ucb_and_diversity_options():
    costs = np.array([0.0, 1.0, 1.0])
    similarity = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.2], [0.0, 0.2, 1.0]])
    policy = LagrangianPolicy(costs, 0.9, temperature=0.0, exploration=2.0, similarity=similarity,
                              diversity=1.0).set_prices([0.1])
    scores = np.array([[0.0, 1.0, 0.9]])
    assert policy.decide(scores, rng=0).actions[0] == 1
    assert policy.decide(scores, rng=0, scores_std=[[0.0, 0.0, 0.2]]).actions[0] == 2       # 0.9 + 2 * 0.2
    assert policy.decide(scores, rng=0, exposure=[[0.0, 0.5, 0.0]]).actions[0] == 2        # 0.5 < 0.9 - 0.1
    assert policy.decide(scores, rng=0, exposure=[[0.0, 2.0, 2.0]]).actions[0] == 0        # both below 0
    with pytest.raises(InputError, match="exposure"):
        LagrangianPolicy(costs, 0.9).set_prices([0.1]).decide(scores, exposure=[[0.0, 1.0, 0.0]])
