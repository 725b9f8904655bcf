"""Off-policy estimators: hand-solved cases, unbiasedness on synthetic bandits with known truth, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations.errors import InputError
from optimizer.evaluation import (compare_estimators, cross_fit_reward_table, effective_sample_size,
                                  expected_reward, off_policy_value, policy_propensity)
from optimizer.evaluation._bootstrap_kernels import (POISSON1_CDF, bootstrap_ratios, bootstrap_ratios_numpy,
                                                     poisson_multiplicities_numpy)

# --------------------------------------------------------------------------- a synthetic bandit with known truth
N_CONTEXTS, N_ACTIONS = 6, 4
_rng = np.random.default_rng(42)
MU = _rng.uniform(0.05, 0.6, (N_CONTEXTS, N_ACTIONS))          # E[r | x, a]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


PI_LOG = _softmax(_rng.normal(0.0, 1.0, (N_CONTEXTS, N_ACTIONS)))   # logging policy pi_0(a|x)
PI_TARGET = _softmax(6.0 * MU)                                      # target policy pi_e(a|x), greedier
TRUTH = float((PI_TARGET * MU).sum(axis=1).mean())                  # contexts uniform


def draw_logs(seed: int, n: int, noise: float | None = None):
    """Contexts uniform, actions from PI_LOG, rewards Bernoulli(MU) (or MU + N(0, noise^2))."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, N_CONTEXTS, n)
    a = (rng.random(n)[:, None] > np.cumsum(PI_LOG[x], axis=1)).sum(axis=1)
    if noise is None:
        r = (rng.random(n) < MU[x, a]).astype(float)
    else:
        r = MU[x, a] + rng.normal(0.0, noise, n)
    return x, a, r


def columns(x, a, r):
    """p, q and the cross-fitted reward model columns m, d."""
    n = r.shape[0]
    mu_hat = cross_fit_reward_table(x, a, r, N_CONTEXTS, N_ACTIONS)
    m = mu_hat[np.arange(n), a]
    d = expected_reward(PI_TARGET[x], mu_hat)
    return PI_LOG[x, a], PI_TARGET[x, a], m, d


@pytest.fixture(scope="module")
def monte_carlo():
    """IPS / SNIPS / DR / DR-with-a-wrong-model estimates over 300 independent logs of 2,000 rows."""
    out = {k: [] for k in ("ips", "snips", "dr", "dr_wrong_model", "ips_cover", "dr_cover")}
    for seed in range(300):
        x, a, r = draw_logs(seed, 2000)
        p, q, m, d = columns(x, a, r)
        ips = off_policy_value(r, p, q, "ips")
        dr = off_policy_value(r, p, q, "dr", m, d)
        out["ips"].append(ips.value)
        out["dr"].append(dr.value)
        out["snips"].append(off_policy_value(r, p, q, "snips").value)
        out["dr_wrong_model"].append(off_policy_value(r, p, q, "dr", np.full_like(r, 0.9), np.full_like(r, 0.9)).value)
        out["ips_cover"].append(ips.covers(TRUTH))
        out["dr_cover"].append(dr.covers(TRUTH))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


@pytest.mark.parametrize("method", ["ips", "dr", "dr_wrong_model"])
def test_unbiased_mean_over_seeds_within_monte_carlo_error(monte_carlo, method):
    est = monte_carlo[method]
    mc_error = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - TRUTH) < 4.0 * mc_error, (est.mean(), TRUTH, mc_error)


def test_normal_intervals_cover_about_95_percent(monte_carlo):
    for key in ("ips_cover", "dr_cover"):
        assert 0.91 <= monte_carlo[key].mean() <= 0.985, (key, monte_carlo[key].mean())


def test_dr_has_lower_variance_than_ips_with_a_good_reward_model():
    ips, dr = [], []
    for seed in range(200):
        x, a, r = draw_logs(1000 + seed, 1000, noise=0.05)
        p, q, m, d = columns(x, a, r)
        ips.append(off_policy_value(r, p, q, "ips").value)
        dr.append(off_policy_value(r, p, q, "dr", m, d).value)
    ips, dr = np.asarray(ips), np.asarray(dr)
    assert dr.var() < 0.25 * ips.var(), (dr.var(), ips.var())
    assert abs(dr.mean() - TRUTH) < 4 * dr.std(ddof=1) / np.sqrt(dr.size)


def test_snips_close_to_ips_for_large_n():
    x, a, r = draw_logs(7, 200_000)
    p, q, _, _ = columns(x, a, r)
    ips = off_policy_value(r, p, q, "ips")
    snips = off_policy_value(r, p, q, "snips")
    w = q / p
    # SNIPS - IPS = IPS (1 / mean(w) - 1) and mean(w) - 1 = O(sd(w) / sqrt(n)): the two agree to O(1/sqrt(n))
    assert abs(snips.value - ips.value) < 4 * ips.value * w.std() / np.sqrt(w.size)
    assert abs(snips.value / ips.value - 1) < 0.005
    assert abs(snips.value - TRUTH) < 4 * snips.std_error
    assert snips.ess == pytest.approx(ips.ess)
    assert ips.mean_weight == pytest.approx(1.0, abs=0.01)  # E_0[w] = 1 under support


# --------------------------------------------------------------------------- hand-solved


def test_hand_computed_estimators():
    r = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.5, 0.25, 1.0, 0.5])
    q = np.array([1.0, 0.5, 0.0, 0.5])          # w = 2, 2, 0, 1
    m = np.array([0.5, 0.5, 0.5, 0.5])
    d = np.array([0.8, 0.2, 0.4, 0.6])
    assert off_policy_value(r, p, q, "ips").value == pytest.approx(2.0 / 4)
    assert off_policy_value(r, p, q, "snips").value == pytest.approx(2.0 / 5)
    assert off_policy_value(r, p, q, "dm", None, d).value == pytest.approx(0.5)
    # DR: d + w (r - m) = 0.8 + 1, 0.2 - 1, 0.4 + 0, 0.6 - 0.5
    dr = off_policy_value(r, p, q, "dr", m, d)
    assert dr.value == pytest.approx((1.8 - 0.8 + 0.4 + 0.1) / 4)
    assert dr.std_error == pytest.approx(np.std([1.8, -0.8, 0.4, 0.1], ddof=1) / 2)
    assert dr.ess == pytest.approx(25.0 / 9.0) == effective_sample_size([2, 2, 0, 1])
    # clipping at 1.5: w = 1.5, 1.5, 0, 1
    clipped = off_policy_value(r, p, q, "ips", clip=1.5)
    assert clipped.value == pytest.approx(1.5 / 4) and clipped.n_modified == 2
    # switch-DR with tau = 1.5: rows with w = 2 use the model only
    sw = off_policy_value(r, p, q, "switch-dr", m, d, switch_threshold=1.5)
    assert sw.value == pytest.approx((0.8 + 0.2 + 0.4 + 0.1) / 4) and sw.n_modified == 2
    assert off_policy_value(r, p, q, "switch-dr", m, d, switch_threshold=10.0).value == pytest.approx(dr.value)


def test_snips_delta_method_and_normal_interval():
    r = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    w = np.array([2.0, 1.0, 0.5, 1.5, 1.0])
    res = off_policy_value(r, np.full(5, 0.4), 0.4 * w, "snips", alpha=0.1)
    v = (w * r).sum() / w.sum()
    infl = w * (r - v) / w.mean()
    assert res.value == pytest.approx(v)
    assert res.std_error == pytest.approx(np.sqrt((infl ** 2).sum() / (5 * 4)))
    assert res.ci[1] - res.value == pytest.approx(1.6448536269514722 * res.std_error)


def test_policy_propensity_and_expected_reward():
    probs = np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])
    assert policy_propensity([1, 2], probs).tolist() == [0.8, 0.25]
    mu = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 8.0]])
    assert expected_reward(probs, mu).tolist() == pytest.approx([1.8, 4.0])


# --------------------------------------------------------------------------- bootstrap kernel


def test_bootstrap_kernel_matches_numpy_twin():
    rng = np.random.default_rng(3)
    num, den = rng.normal(size=57), rng.uniform(0.5, 2.0, size=57)
    for seed in (0, 1, 2 ** 63 + 5):
        fast = bootstrap_ratios(num, den, 64, np.uint64(seed), POISSON1_CDF)
        slow = bootstrap_ratios_numpy(num, den, 64, seed)
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)


def test_poisson_multiplicities_have_poisson_1_moments():
    k = poisson_multiplicities_numpy(2000, 100, seed=11)
    assert k.mean() == pytest.approx(1.0, abs=0.01)
    assert k.var() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_array_equal(poisson_multiplicities_numpy(30, 5, seed=4, first=7),
                                  poisson_multiplicities_numpy(30, 12, seed=4)[7:])


def test_bootstrap_interval_agrees_with_normal_interval():
    x, a, r = draw_logs(5, 20_000)
    p, q, m, d = columns(x, a, r)
    for method in ("ips", "snips", "dr"):
        res = off_policy_value(r, p, q, method, m, d, ci="bootstrap", n_bootstrap=400, random_state=1)
        width = res.ci_normal[1] - res.ci_normal[0]
        assert res.ci_method == "bootstrap" and res.ci == res.ci_bootstrap
        assert abs(res.ci[0] - res.ci_normal[0]) < 0.15 * width
        assert abs(res.ci[1] - res.ci_normal[1]) < 0.15 * width


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.01, 1.0), st.floats(0.0, 1.0)), min_size=2, max_size=40))
def test_properties(rows):
    r, p, q = (np.array(c) for c in zip(*rows))
    if not (q > 0).any():
        q[0] = 0.5
    snips = off_policy_value(r, p, q, "snips").value
    assert r.min() - 1e-9 <= snips <= r.max() + 1e-9          # SNIPS stays in the reward range
    on_policy = off_policy_value(r, p, p, "ips")
    assert on_policy.value == pytest.approx(r.mean())           # target = logging: IPS is the sample mean
    assert on_policy.ess == pytest.approx(len(r))                # all weights 1
    ess = off_policy_value(r, p, q, "ips").ess
    assert 1.0 - 1e-9 <= ess <= len(r) + 1e-9


def test_snips_with_tiny_weights_stays_in_the_reward_range():
    """Hypothesis found it: a target propensity of 5e-324 made the weights denormal and SNIPS 1.5 for rewards 0, 1.375."""
    res = off_policy_value([0.0, 1.375], [1.0, 0.5], [0.0, 5e-324], "snips")
    assert res.value == 1.375
    assert res.ess == 1.0


def test_compare_estimators_table():
    x, a, r = draw_logs(9, 3000)
    p, q, m, d = columns(x, a, r)
    table = compare_estimators(r, p, q, m, d)
    assert table["method"].tolist() == ["ips", "snips", "dm", "dr", "switch-dr"]
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()
    assert compare_estimators(r, p, q)["method"].tolist() == ["ips", "snips"]


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("kwargs, field, fragment", [
    (dict(rewards=[], logging_propensity=[], target_propensity=[]), "rewards", "empty"),
    (dict(logging_propensity=[0.5, 0.0, 0.5]), "logging_propensity", "(0, 1]"),
    (dict(logging_propensity=[0.5, 1.2, 0.5]), "logging_propensity", "row 1"),
    (dict(logging_propensity=[0.5, -0.1, 0.5]), "logging_propensity", "-0.1"),
    (dict(target_propensity=[0.5, 1.5, 0.5]), "target_propensity", "[0, 1]"),
    (dict(target_propensity=[0.5, -0.5, 0.5]), "target_propensity", "row 1"),
    (dict(target_propensity=[0.0, 0.0, 0.0]), "target_propensity", "probability 0 to every logged action"),
    (dict(target_propensity=[0.5, 0.5]), "target_propensity", "expected 3 values"),
    (dict(logging_propensity=[[0.5, 0.5, 0.5]]), "logging_propensity", "1-d"),
    (dict(rewards=[1.0, np.nan, 0.0]), "rewards", "finite"),
    (dict(method="magic"), "method", "ips, snips, dm, dr, switch-dr"),
    (dict(method="dr"), "reward_hat_target", "needs"),
    (dict(method="dr", reward_hat_target=[0.1, 0.1, 0.1]), "reward_hat_logged", "needs"),
    (dict(method="dm", reward_hat_target=[0.1, 0.1]), "reward_hat_target", "expected 3 values"),
    (dict(alpha=1.5), "alpha", "(0, 1)"),
    (dict(ci="jackknife"), "ci", "normal"),
    (dict(clip=-1.0), "clip", "positive"),
])
def test_bad_inputs_raise_clear_errors(kwargs, field, fragment):
    args = dict(rewards=[1.0, 0.0, 1.0], logging_propensity=[0.5, 0.5, 0.5], target_propensity=[0.5, 0.2, 0.1])
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        off_policy_value(**args)
    assert err.value.field == field
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_logged_action_the_policy_cannot_take():
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    with pytest.raises(InputError, match="row 1 logged action 2, which the policy cannot take"):
        policy_propensity([0, 2], probs)
    with pytest.raises(InputError, match="sum to 1"):
        policy_propensity([0, 1], np.array([[0.5, 0.4], [1.0, 0.0]]))
    with pytest.raises(InputError, match="expected 2 actions"):
        policy_propensity([0], probs)
    with pytest.raises(InputError, match="empty"):
        policy_propensity(np.array([], dtype=int), np.zeros((0, 2)))
