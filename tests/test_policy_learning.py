"""Diversity penalty, UCB scores and the policy gradient on the Lagrangian reward."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.errors import InputError
from formulations.policy import ResourceModel
from formulations.policy_learning import (analytic_gradient, diversify_scores, lagrangian_objective,
                                          model_probabilities, reinforce_gradient, ucb_scores)


def test_diversity_penalty_by_hand():
    scores = np.array([[0.0, 1.0, 1.0, 1.0]])
    exposure = np.array([[5.0, 2.0, 0.0, 1.0]])        # column 0 (no contact) is ignored
    similarity = np.array([[9.0, 9.0, 9.0, 9.0],
                           [9.0, 1.0, 0.5, 0.0],
                           [9.0, 0.5, 1.0, 0.0],
                           [9.0, 0.0, 0.0, 1.0]])
    out = diversify_scores(scores, exposure, similarity, gamma=0.1)
    # penalty_a = 0.1 * sum_b q_b Q_ba over b, a >= 1: a=1: 2*1 + 1*0 = 2; a=2: 2*0.5 = 1; a=3: 1*1 = 1
    np.testing.assert_allclose(out, [[0.0, 0.8, 0.9, 0.9]])
    np.testing.assert_array_equal(scores, [[0.0, 1.0, 1.0, 1.0]])      # input untouched


def test_diversity_and_ucb_reject_bad_input():
    with pytest.raises(InputError, match="exposure"):
        diversify_scores(np.zeros((2, 3)), np.zeros((2, 2)), np.eye(3), 0.1)
    with pytest.raises(InputError, match="similarity"):
        diversify_scores(np.zeros((2, 3)), np.zeros((2, 3)), -np.eye(3), 0.1)
    with pytest.raises(InputError, match="gamma"):
        diversify_scores(np.zeros((2, 3)), np.zeros((2, 3)), np.eye(3), -1)
    with pytest.raises(InputError, match="std"):
        ucb_scores(np.zeros((2, 3)), -np.ones((2, 3)), 1.0)
    with pytest.raises(InputError, match="kappa"):
        ucb_scores(np.zeros((2, 3)), np.ones((2, 3)), -1.0)


def test_ucb_by_hand():
    mean = np.array([[0.0, 1.0, np.nan]])
    std = np.array([[0.0, 0.5, 0.2]])
    out = ucb_scores(mean, std, 2.0)
    np.testing.assert_allclose(out[0, :2], [0.0, 2.0])
    assert np.isnan(out[0, 2])          # a missing mean stays missing (fallback at decision time)


def small_case(seed=0, n=8, actions=3, p=4):
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (n, actions + 1, p))
    features[:, 0, :] = 0.0                                    # no contact: score 0
    theta = rng.normal(0, 0.5, p)
    mean_rewards = rng.uniform(0, 2, (n, actions + 1))
    mean_rewards[:, 0] = 0.0
    eligible = np.ones((n, actions + 1), dtype=bool)
    eligible[0, 2] = False
    res = ResourceModel(np.r_[0.0, rng.uniform(0.2, 1.0, actions)], 0.4)
    return features, theta, mean_rewards, eligible, res


def test_analytic_gradient_matches_finite_differences():
    features, theta, rbar, eligible, res = small_case()
    prices = np.array([0.7])
    grad = analytic_gradient(features, theta, rbar, res, prices, 0.5, eligible)
    h = 1e-6
    fd = np.array([(lagrangian_objective(features, theta + h * e, rbar, res, prices, 0.5, eligible)
                    - lagrangian_objective(features, theta - h * e, rbar, res, prices, 0.5, eligible)) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_reinforce_matches_analytic_gradient_and_baseline_cuts_variance():
    features, theta, rbar, eligible, res = small_case()
    rbar = rbar + 5.0       # a common offset leaves the gradient unchanged but inflates the variance without baseline
    prices, tau = np.array([0.7]), 0.5
    reps = 25_000
    probs = model_probabilities(features, theta, res, prices, tau, eligible)
    rng = np.random.default_rng(1)
    big_f = np.tile(features, (reps, 1, 1))
    big_e = np.tile(eligible, (reps, 1))
    big_p = np.tile(probs, (reps, 1))
    cum = np.cumsum(big_p, axis=1)
    actions = np.minimum((cum < rng.random(len(big_p))[:, None]).sum(axis=1), features.shape[1] - 1)
    rows = np.arange(len(actions))
    rewards = np.tile(rbar, (reps, 1))[rows, actions] + rng.normal(0, 0.5, len(actions))   # noisy outcomes
    exact = analytic_gradient(features, theta, rbar, res, prices, tau, eligible)
    # the state-value baseline beta(x) = sum_a pi_a (rbar_a - lambda^T A_a) does not depend on the action
    value = np.sum(probs * (rbar - res.price_cost(prices)), axis=1)
    with_value = reinforce_gradient(big_f, theta, actions, rewards, res, prices, tau, big_e,
                                    baseline=np.tile(value, reps))
    with_mean = reinforce_gradient(big_f, theta, actions, rewards, res, prices, tau, big_e, baseline="mean")
    without = reinforce_gradient(big_f, theta, actions, rewards, res, prices, tau, big_e, baseline=None)
    for est in (with_value, with_mean, without):
        assert np.all(np.abs(est.gradient - exact) < 4.5 * est.standard_error + 1e-12)
    for est in (with_value, with_mean):
        assert np.sum(est.standard_error ** 2) < 0.25 * np.sum(without.standard_error ** 2)


def test_policy_gradient_rejects_bad_input():
    features, theta, rbar, eligible, res = small_case()
    with pytest.raises(InputError, match="temperature"):
        analytic_gradient(features, theta, rbar, res, [0.5], 0.0)
    with pytest.raises(InputError, match="theta"):
        analytic_gradient(features, theta[:2], rbar, res, [0.5], 0.5)
    with pytest.raises(InputError, match="actions"):
        reinforce_gradient(features, theta, np.full(8, 9), np.zeros(8), res, [0.5], 0.5)
