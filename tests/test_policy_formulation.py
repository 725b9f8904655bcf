"""Lagrangian policy maths: kernels vs NumPy twins, closed forms, exact batch prices vs LP / conic references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations import policy as F
from formulations.errors import InputError
from solvers import policy as S


def instance(seed: int, n: int = 300, actions: int = 6, k: int = 1, dtype=np.float64, mask: bool = True):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 1.0, (n, actions + 1)).astype(dtype)
    scores[:, 0] = rng.normal(0.0, 0.1, n).astype(dtype)
    eligible = rng.random((n, actions + 1)) < 0.75 if mask else None
    costs = np.zeros((k, actions + 1))
    costs[0, 1:] = rng.uniform(0.2, 2.0, actions)
    for j in range(1, k):
        costs[j, 1:] = (rng.random(actions) < 0.5).astype(float)
    budget = np.r_[0.3, np.full(k - 1, 0.15)]
    return scores, eligible, F.ResourceModel(costs, budget)


def brute_argmax(scores, eligible, price_cost):
    """Independent argmax: Python loops, first maximum, column 0 always allowed."""
    out = []
    for i in range(scores.shape[0]):
        best, best_a = -math.inf, 0
        for a in range(scores.shape[1]):
            if a > 0 and ((eligible is not None and not eligible[i, a]) or scores[i, a] == -np.inf):
                continue
            r = float(scores[i, a]) - price_cost[a]
            if r > best:
                best, best_a = r, a
        out.append(best_a)
    return np.array(out)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("costs, budget, field", [
    ([1.0, 2.0], 1.0, "costs"),                 # no-contact column must cost 0
    ([0.0, -1.0], 1.0, "costs"),
    ([0.0, np.nan], 1.0, "costs"),
    ([0.0], 1.0, "costs"),                      # no action besides no contact
    ([0.0, 1.0], 0.0, "budget"),
    ([0.0, 1.0], -1.0, "budget"),
    ([[0.0, 1.0], [0.0, 2.0]], 1.0, "budget"),  # two rows, one budget
    ([0.0, 1.0], [1.0, 2.0], "budget"),
])
def test_resource_model_rejects_bad_input(costs, budget, field):
    with pytest.raises(InputError) as err:
        F.ResourceModel(costs, budget)
    assert err.value.field == field


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "hot"])
def test_bad_temperature(value):
    with pytest.raises(InputError, match="temperature"):
        F.check_temperature(value)


# ---------------------------------------------------------------- tau -> 0 and the argmax policy
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), price=st.floats(0.0, 3.0))
def test_tau_to_zero_is_argmax_of_reduced_scores(seed, price):
    scores, eligible, res = instance(seed, n=40)
    pc = res.price_cost(np.array([price]))
    expected = brute_argmax(scores, eligible, pc)
    r = F.reduced_scores(scores, eligible, pc)
    top2 = np.sort(r, axis=1)[:, -2:]
    gap = np.min(top2[:, 1] - np.where(np.isfinite(top2[:, 0]), top2[:, 0], -1e9))
    if gap > 1e-6:   # distinct maxima: the softmax with a tiny temperature is one-hot on the argmax
        probs = F.policy_probabilities(scores, eligible, pc, gap / 800.0)   # others weigh <= e^-800
        assert np.array_equal(np.argmax(probs, axis=1), expected)
        assert np.all(probs.max(axis=1) > 1 - 1e-15)
    out = S.decide_batch(scores, eligible, pc, 0.0, np.random.default_rng(seed).random(40), np.eye(1, 7)[0])
    assert np.array_equal(out.actions, expected)
    assert np.all(out.propensities == 1.0)


def test_hand_solved_softmax_and_expected_cost():
    # one context, actions 0..2: scores 0, 1, 2; costs 0, 1, 3; lambda = 0.5, tau = 1
    scores = np.array([[0.0, 1.0, 2.0]])
    res = F.ResourceModel([0.0, 1.0, 3.0], 1.0)
    r = np.array([0.0, 0.5, 0.5])                       # u - lambda c
    p = np.exp(r) / np.exp(r).sum()
    got = F.policy_probabilities(scores, None, res.price_cost(np.array([0.5])), 1.0)
    np.testing.assert_allclose(got[0], p, rtol=1e-14)
    point = F.dual_point(scores, None, res, np.array([0.5]), 1.0)
    np.testing.assert_allclose(point.expected_use, [p @ [0.0, 1.0, 3.0]], rtol=1e-14)
    np.testing.assert_allclose(point.value, 0.5 * 1.0 + math.log(np.exp(r).sum()), rtol=1e-14)
    np.testing.assert_allclose(point.primal, p @ [0.0, 1.0, 2.0] - np.sum(p * np.log(p)), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tau", [0.0, 0.3, 2.0])
@pytest.mark.parametrize("k", [1, 3])
def test_kernel_matches_twin(dtype, tau, k):
    scores, eligible, res = instance(7, n=500, k=k, dtype=dtype)
    scores[3, 2] = -np.inf
    prices = np.linspace(0.4, 0.9, k)
    twin = F.dual_point(scores, eligible, res, prices, tau)
    kern = S.evaluate(scores, eligible, res, prices, tau)
    np.testing.assert_allclose(kern.value, twin.value, rtol=1e-12)
    np.testing.assert_allclose(kern.expected_use, twin.expected_use, rtol=1e-11)
    np.testing.assert_allclose(kern.primal, twin.primal, rtol=1e-11, atol=1e-13)
    pc = res.price_cost(prices)
    uniforms = np.random.default_rng(1).random(500)
    a, p = F.draw_actions(F.policy_weights(scores, eligible, pc, tau), uniforms)
    for parallel in (False, True):
        out = S.decide_batch(scores, eligible, pc, tau, uniforms, np.eye(1, scores.shape[1])[0], parallel=parallel)
        assert np.array_equal(out.actions, a)
        np.testing.assert_allclose(out.propensities, p, rtol=1e-12)


def test_expected_cost_closed_form_matches_draws():
    scores, eligible, res = instance(3, n=50)
    prices = np.array([0.6])
    closed = F.dual_point(scores, eligible, res, prices, 0.5).expected_use[0]
    reps = 4000
    big_s, big_e = np.tile(scores, (reps, 1)), np.tile(eligible, (reps, 1))
    out = S.decide_batch(big_s, big_e, res.price_cost(prices), 0.5, np.random.default_rng(0).random(len(big_s)),
                         np.eye(1, 7)[0])
    cost = res.costs[0, out.actions]
    se = cost.reshape(reps, 50).mean(axis=1).std(ddof=1) / math.sqrt(reps)
    assert abs(cost.mean() - closed) < 4 * se


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), l1=st.floats(0, 4), l2=st.floats(0, 4), tau=st.sampled_from([0.0, 0.2, 1.0]))
def test_dual_is_convex_and_gradient_is_b_minus_use(seed, l1, l2, tau):
    scores, eligible, res = instance(seed, n=60)
    d = lambda lam: F.dual_point(scores, eligible, res, np.array([lam]), tau).value  # noqa: E731
    assert d(0.5 * (l1 + l2)) <= 0.5 * (d(l1) + d(l2)) + 1e-12
    if tau > 0:
        h = 1e-6
        fd = (d(l1 + h) - d(l1 - h + (h if l1 < h else 0))) / (2 * h if l1 >= h else h)
        grad = F.dual_point(scores, eligible, res, np.array([l1]), tau).gradient[0]
        assert abs(fd - grad) < 1e-5


def test_price_box_makes_every_resource_underused():
    for seed in range(5):
        for tau in (0.0, 0.5):
            scores, eligible, res = instance(seed, k=3)
            box = F.price_upper_bounds(scores, eligible, res, tau)
            for j in range(3):
                prices = np.zeros(3)
                prices[j] = box[j]
                assert F.dual_point(scores, eligible, res, prices, tau).expected_use[j] <= res.budget[j]


# ---------------------------------------------------------------- exact batch price
@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_fitted_price_makes_budget_tight(tau):
    scores, eligible, res = instance(11, n=2000, dtype=np.float32)
    fit = S.fit_prices(scores, eligible, res, tau)
    assert fit.method == "brent" and fit.prices[0] > 0
    assert abs(fit.tightness[0]) < 1e-8
    assert fit.expected_use[0] <= res.budget[0]          # the feasible end of the bracket
    assert fit.gap < 1e-8
    lo, hi = fit.bracket
    assert lo < hi and S.evaluate(scores, eligible, res, np.array([lo]), tau).expected_use[0] > res.budget[0]


def test_argmax_price_is_the_smallest_feasible_price():
    scores, eligible, res = instance(12, n=2000)
    fit = S.fit_prices(scores, eligible, res, 0.0)
    lo, hi = fit.bracket
    assert fit.method == "bisection" and hi - lo <= 1e-9 * fit.price_box[0]
    assert fit.expected_use[0] <= res.budget[0]
    assert S.evaluate(scores, eligible, res, np.array([lo]), 0.0).expected_use[0] > res.budget[0]
    # a step function: tight up to the cost of the contexts that switch at the price
    assert res.budget[0] - fit.expected_use[0] <= res.costs.max() * 3 / 2000


def test_slack_budget_gives_zero_price():
    scores, eligible, _ = instance(13)
    res = F.ResourceModel(np.r_[0.0, np.full(6, 0.1)], 5.0)
    fit = S.fit_prices(scores, eligible, res, 0.2)
    assert fit.method == "slack" and fit.prices[0] == 0.0 and fit.slack.all()
    assert fit.expected_use[0] <= 5.0


def test_several_resources_tight_or_slack():
    scores, eligible, res = instance(14, n=3000, k=3)
    fit = S.fit_prices(scores, eligible, res, 0.3)
    assert fit.gap < 1e-8
    for j in range(3):   # complementary slackness
        assert fit.prices[j] >= 0
        if fit.prices[j] > 1e-9:
            assert abs(fit.tightness[j]) < 1e-6
        else:
            assert fit.expected_use[j] <= res.budget[j] * (1 + 1e-9)


def test_argmax_price_equals_lp_dual():
    """tau = 0: min D equals the fractional assignment LP solved by HiGHS (through scipy)."""
    from scipy.optimize import linprog

    scores, eligible, res = instance(15, n=120, k=2)
    fit = S.fit_prices(scores, eligible, res, 0.0)
    n, a1 = scores.shape
    allowed = F.allowed_mask(scores, eligible)
    cols = np.argwhere(allowed)
    c = -scores[cols[:, 0], cols[:, 1]] / n
    rows_eq = np.zeros((n, len(cols)))
    rows_eq[cols[:, 0], np.arange(len(cols))] = 1.0
    a_ub = res.costs[:, cols[:, 1]] / n
    lp = linprog(c, A_ub=a_ub, b_ub=res.budget, A_eq=rows_eq, b_eq=np.ones(n), bounds=(0, None), method="highs")
    assert lp.status == 0
    assert abs(-lp.fun - fit.dual_value) <= 1e-6 * abs(lp.fun)
    assert fit.lower_bound <= -lp.fun + 1e-9 and fit.dual_value >= -lp.fun - 1e-9


def test_smooth_price_equals_conic_reference():
    """tau > 0: the entropy-regularised problem solved by CVXPY (Clarabel, exponential cone)."""
    cp = pytest.importorskip("cvxpy")
    if "CLARABEL" not in cp.installed_solvers():
        pytest.skip("Clarabel not installed")
    scores, eligible, res = instance(16, n=40, actions=4, k=2)
    tau = 0.4
    fit = S.fit_prices(scores, eligible, res, tau)
    n, a1 = scores.shape
    allowed = F.allowed_mask(scores, eligible)
    pi = cp.Variable((n, a1), nonneg=True)
    budget_rows = cp.sum(pi @ res.costs.T, axis=0) / n <= res.budget
    cons = [cp.sum(pi, axis=1) == 1, pi[~allowed] == 0, budget_rows]
    obj = cp.Maximize(cp.sum(cp.multiply(np.where(allowed, scores, 0.0), pi)) / n + tau * cp.sum(cp.entr(pi)) / n)
    value = cp.Problem(obj, cons).solve(solver="CLARABEL")
    assert abs(value - fit.dual_value) < 1e-6 * max(1.0, abs(value))
    np.testing.assert_allclose(fit.prices, budget_rows.dual_value, atol=2e-5, rtol=1e-4)


# ---------------------------------------------------------------- fallback rows
def test_missing_rows_take_the_fallback():
    scores, eligible, res = instance(17, n=6, mask=False)
    scores[1, 3] = np.nan        # missing score on an allowed action
    scores[2, 0] = np.inf        # non-finite no-contact score
    scores[3, 4] = -np.inf       # not allowed: an ordinary row
    fb = np.eye(1, 7)[0]
    out = S.decide_batch(scores, None, res.price_cost(np.array([0.2])), 0.1, np.full(6, 0.5), fb)
    assert list(out.reasons) == [0, 1, 1, 0, 0, 0]
    assert out.actions[1] == 0 and out.propensities[1] == 1.0
    assert out.actions[3] != 4
    mix = np.r_[0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    out = S.decide_batch(scores, None, res.price_cost(np.array([0.2])), 0.1, np.array([0.9] * 6), mix,
                         force_fallback=True)
    assert np.all(out.reasons == 2) and np.all(out.actions == 1) and np.allclose(out.propensities, 0.5)


# ---------------------------------------------------------------- online dual ascent
@pytest.mark.parametrize("realised", [True, False])
@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_online_kernel_matches_twin_and_tracking_bound(realised, tau):
    scores, eligible, res = instance(18, n=400, k=2)
    scores[5, 1] = np.nan
    steps = np.array([0.05, 0.1])
    start = np.array([0.3, 0.0])
    uniforms = np.random.default_rng(2).random(400)
    a, p, path = F.online_dual_ascent(scores, eligible, res, start, steps, tau, uniforms, realised)
    run = S.run_online(scores, eligible, res, start, steps, tau, uniforms, realised=realised, record_every=1)
    assert np.array_equal(run.actions, a)
    np.testing.assert_allclose(run.propensities, p, rtol=1e-12)
    np.testing.assert_allclose(run.price_path, path, rtol=1e-10, atol=1e-12)
    if realised:   # sum_{t=s}^{T-1} (A a_t - b) <= lambda_T / eta for every window start s (deterministic)
        use = res.costs[:, run.actions].T - res.budget          # (n, k)
        tail = np.cumsum(use[::-1], axis=0)[::-1]                # sums from s to the end
        assert np.all(tail <= run.final_prices / steps + 1e-9)
