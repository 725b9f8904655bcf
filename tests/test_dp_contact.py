"""The contact-fatigue MDP builder and fitted value iteration for the linear-Gaussian state."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

from formulations.contact_mdp import ContactMDPParams, build_contact_mdp
from formulations.errors import InputError
from formulations.linear_gaussian import LinearGaussianMDP, expected_features, expected_value, quadratic_features
from optimizer import DiscreteMDP
from solvers.fitted_vi import bellman_targets, fitted_value_iteration, greedy_actions

PARAMS = dict(base_logit=[-1.0, -2.0, -0.5], value=[1.0, 1.0, 4.0], cost=[0.01, 0.0, 1.0], channel_class=[0, 0, 1],
              cooling=[1, 3], engagement_logit=[-0.5, 0.0, 0.5], fatigue_logit=[0.0, -0.8, -1.6], max_days=4)


@pytest.fixture(scope="module")
def contact():
    return build_contact_mdp(ContactMDPParams(**PARAMS))


def test_state_space_and_rows(contact):
    p = contact.params
    assert contact.model.num_states == 3 * 4 ** 2 * 3
    sums = np.asarray(contact.model.transition_csr().sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, 1.0, atol=1e-12)
    s = contact.state_index(contact.engagement, contact.days, contact.fatigue)
    np.testing.assert_array_equal(s, np.arange(contact.model.num_states))
    assert p.n_channels == 3 and contact.channel_of_action.tolist() == [-1, 0, 1, 2]


def test_cooling_and_consent_define_admissible_actions(contact):
    m = contact.model
    table = m.pair_index()
    call_ok = table[:, 3] >= 0                     # action 3 = channel 2 (class 1, cooling 3)
    np.testing.assert_array_equal(call_ok, contact.days[:, 1] >= 3)
    assert (table[:, 0] >= 0).all() and (table[:, 1] >= 0).all()
    no_sms = build_contact_mdp(ContactMDPParams(**{**PARAMS, "consent": np.array([True, False, True])}))
    assert (no_sms.model.pair_index()[:, 2] < 0).all()


def test_reward_and_dynamics_of_one_state(contact):
    p = contact.params
    s = int(contact.state_index(1, [4, 4], 1))
    j = contact.model.pair_index()[s, 3]                # call
    resp = 1.0 / (1.0 + np.exp(-(p.base_logit[2] + p.engagement_logit[1] + p.fatigue_logit[1])))
    assert contact.response[j] == pytest.approx(resp)
    assert contact.model.rewards[j] == pytest.approx(resp * 4.0 - 1.0)
    row = contact.model.transition_csr()[j].toarray().ravel()
    up = contact.state_index(2, [4, 1], 2)            # engaged after a response, class 1 restarted, more tired
    down = contact.state_index(0, [4, 1], 2)
    assert row[up] == pytest.approx(resp * p.engagement_up * p.fatigue_up)
    assert row[down] == pytest.approx((1 - resp) * p.engagement_decay * p.fatigue_up)
    j0 = contact.model.pair_index()[s, 0]
    rested = contact.state_index(1, [4, 4], 0)
    assert contact.model.transition_csr()[j0].toarray().ravel()[rested] == pytest.approx(
        (1 - p.engagement_decay) * p.fatigue_recovery)


def test_contact_mdp_solves_and_waits_when_tired(contact):
    res = DiscreteMDP.from_model(contact.model).solve("pi")
    assert res.converged
    fresh = int(contact.state_index(2, [4, 4], 0))
    tired = int(contact.state_index(2, [4, 4], 2))
    assert res.sigma[fresh] != 0          # a rested, engaged customer is worth a contact ...
    assert res.v[fresh] > res.v[tired]    # ... and fatigue costs long-run value


def test_builder_validation():
    for field, bad in [("base_logit", []), ("cooling", [1, 9]), ("engagement_up", 1.5), ("beta", 1.0),
                       ("channel_class", [0, 2, 2]), ("consent", [1, 0, 1])]:
        with pytest.raises(InputError) as info:
            ContactMDPParams(**{**PARAMS, field: bad})
        assert info.value.field == field


# ---------------------------------------------------------------- linear-Gaussian
F = np.array([[0.8, 0.1], [0.0, 0.7]])
S = np.array([[0.1, 0.02], [0.02, 0.05]])
H = np.array([[-0.2, 0.05], [0.05, -0.1]])


def test_exact_gaussian_expectation_against_monte_carlo():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=6)
    mu = np.array([0.3, -0.2])
    draws = rng.multivariate_normal(mu, S, size=400_000)
    mc = quadratic_features(draws) @ theta
    se = mc.std() / np.sqrt(mc.size)
    assert abs(expected_value(theta, mu[None, :], S)[0] - mc.mean()) < 5 * se
    assert expected_features(mu[None, :], S)[0] @ theta == pytest.approx(expected_value(theta, mu[None, :], S)[0])


def test_fitted_vi_recovers_the_lyapunov_solution():
    G = np.array([[0.3], [0.5]])
    w = np.array([[1.0, -0.5]])
    c, beta = np.array([0.3]), 0.9
    res = fitted_value_iteration(LinearGaussianMDP(F, G, S, c, w, H, beta))
    Theta = solve_discrete_lyapunov(np.sqrt(beta) * F.T, H)       # Theta = H + beta F' Theta F
    g = G[:, 0]
    lin = np.linalg.solve(np.eye(2) - beta * F.T, w[0] + 2 * beta * F.T @ Theta @ g)
    const = (c[0] + beta * (lin @ g + g @ Theta @ g + np.sum(Theta * S))) / (1 - beta)
    assert res.converged
    np.testing.assert_allclose(res.quadratic, Theta, atol=1e-9)
    np.testing.assert_allclose(res.linear, lin, atol=1e-8)
    assert res.constant == pytest.approx(const, abs=1e-7)
    assert res.residual_max < 1e-7 and res.test_residual_max < 1e-7


def test_fitted_vi_reports_the_bellman_residual_with_several_actions():
    G = np.array([[0.0, 0.3, 0.6], [0.0, 0.5, -0.2]])
    w = np.array([[1.0, -0.5], [1.2, -0.8], [0.9, -0.3]])
    mdp = LinearGaussianMDP(F, G, S, [0.0, -0.1, -0.05], w, H, 0.9)
    res = fitted_value_iteration(mdp, n_samples=1500)
    assert res.converged
    assert 0 < res.residual_rms <= res.residual_max < 0.1 * res.value_scale
    assert np.isfinite(res.test_residual_max)
    Z = np.random.default_rng(1).normal(size=(50, 2))
    q = mdp.rewards(Z) + 0.9 * (expected_features(mdp.next_means(Z), S) @ res.theta)   # exact E[V(z')]
    np.testing.assert_array_equal(greedy_actions(mdp, res.theta, Z), q.argmax(axis=1))
    np.testing.assert_allclose(bellman_targets(mdp, res.theta, Z)[0], q.max(axis=1), atol=1e-10)
    with pytest.raises(InputError):
        fitted_value_iteration(mdp, states=np.zeros((3, 2)))
