"""Issue 10: optional budget and fairness terms of the federated objective J = −E[u] + λ(b − β) + γΨ."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.errors import InputError
from formulations.federated import (ClientData, budget_penalty, budget_spend, budget_spend_grad, fairness_gap,
                                    fairness_gap_grad, local_objective, local_objective_grad, local_update,
                                    log_loss_grad)
from optimizer.federated import FederatedTrainer
from optimizer.federated.trainer import objective_terms


def _clients(n_clients: int = 3, n: int = 240, d: int = 4, seed: int = 0) -> list[ClientData]:
    """Non-IID clients; segment 1 has a higher true response rate (feature 1 shifted), costs in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    theta = np.array([-1.0, 1.2, -0.6, 0.4])[:d]
    out = []
    for k in range(n_clients):
        seg = (rng.random(n) < 0.3 + 0.15 * k).astype(np.int64)
        X = np.column_stack([np.ones(n), rng.normal(0.2 * k, 1.0, (n, d - 1))])
        X[:, 1] += 1.2 * seg
        y = (rng.random(n) < 1 / (1 + np.exp(-(X @ theta)))).astype(float)
        costs = rng.uniform(0.5, 2.0, n)
        out.append(ClientData(X, y, name=f"region_{k}", costs=costs, segments=seg))
    return out


def _central_diff(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        g[j] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


@pytest.fixture(scope="module")
def clients():
    return _clients()


def test_budget_and_fairness_gradients_match_central_finite_differences(clients):
    c = clients[1]
    theta = np.array([-0.3, 0.5, -0.2, 0.1])
    np.testing.assert_allclose(budget_spend_grad(theta, c.X, c.costs),
                               _central_diff(lambda t: budget_spend(t, c.X, c.costs), theta), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fairness_gap_grad(theta, c.X, c.segment_index_, c.n_segments_),
                               _central_diff(lambda t: fairness_gap(t, c.X, c.segment_index_, c.n_segments_), theta),
                               rtol=1e-5, atol=1e-9)
    # three segments of unequal size, and the whole local objective
    seg3 = ClientData(c.X, c.y, costs=c.costs, segments=np.arange(c.n) % 3 + 5 * (np.arange(c.n) % 7 == 0))
    np.testing.assert_allclose(fairness_gap_grad(theta, seg3.X, seg3.segment_index_, seg3.n_segments_),
                               _central_diff(lambda t: fairness_gap(t, seg3.X, seg3.segment_index_,
                                                                    seg3.n_segments_), theta), rtol=1e-5, atol=1e-9)
    full = _central_diff(lambda t: local_objective(t, seg3, 1e-2, 0.7, 0.3, 2.5), theta)
    np.testing.assert_allclose(local_objective_grad(theta, seg3, 1e-2, 0.7, 2.5), full, rtol=1e-6, atol=1e-9)
    # the values themselves: λ(b − β) and Ψ against a direct computation
    p = 1 / (1 + np.exp(-(c.X @ theta)))
    assert budget_penalty(theta, c.X, c.costs, 0.7, 0.3) == pytest.approx(0.7 * (np.mean(c.costs * p) - 0.3))
    s = c.segments
    direct = sum(np.mean(s == v) * (p[s == v].mean() - p.mean()) ** 2 for v in np.unique(s))
    assert fairness_gap(theta, c.X, c.segment_index_, c.n_segments_) == pytest.approx(direct, rel=1e-12)
    assert fairness_gap(theta, c.X, None, 1) == 0.0 and not fairness_gap_grad(theta, c.X, None, 1).any()


def _old_local_update(theta, data, epochs, lr, l2, mu=0.0):
    """The local update as it was before the optional terms (reference for bit-for-bit equality)."""
    w = theta.copy()
    for _ in range(int(epochs)):
        grad = log_loss_grad(w, data.X, data.y, l2)
        if mu:
            grad = grad + mu * (w - theta)
        w = w - lr * grad
    return theta - w


def test_terms_off_leave_training_bit_for_bit_unchanged(clients):
    theta = np.array([0.1, -0.2, 0.3, 0.05])
    for c in clients:
        assert np.array_equal(local_update(theta, c, 4, 0.5, 1e-3, 0.2), _old_local_update(theta, c, 4, 0.5, 1e-3, 0.2))
    plain = [ClientData(c.X, c.y, name=c.name) for c in clients]
    kw = dict(n_rounds=8, local_epochs=3, local_lr=0.5, clients_per_round=2, dropout_rate=0.2, random_state=3)
    base = FederatedTrainer(**kw).fit(plain)
    with_fields = FederatedTrainer(**kw, budget_price=0.0, fairness_weight=0.0, budget_per_row=0.2).fit(clients)
    assert np.array_equal(base.coef_, with_fields.coef_)
    assert base.history_.equals(with_fields.history_)
    # and the terms do change the model when switched on
    on = FederatedTrainer(**kw, budget_price=0.5, fairness_weight=2.0).fit(clients)
    assert not np.allclose(on.coef_, base.coef_)


def test_one_local_step_with_terms_equals_centralised_gradient_descent_on_the_full_objective(clients):
    lr, l2, lam, gam, rounds = 0.5, 1e-3, 0.8, 3.0, 5
    N = sum(c.n for c in clients)
    theta = np.zeros(clients[0].d)
    for _ in range(rounds):
        theta = theta - lr * sum(c.n / N * local_objective_grad(theta, c, l2, lam, gam) for c in clients)
    fed = FederatedTrainer(n_rounds=rounds, local_lr=lr, l2=l2, budget_price=lam, fairness_weight=gam,
                           random_state=0).fit(clients)
    np.testing.assert_allclose(fed.coef_, theta, rtol=1e-12, atol=1e-14)


def test_raising_fairness_weight_lowers_psi_and_raising_budget_price_lowers_spend(clients):
    kw = dict(n_rounds=40, local_epochs=3, local_lr=1.0, l2=1e-3, random_state=0)
    psi = [FederatedTrainer(**kw, fairness_weight=g).fit(clients).objective_terms(clients)["fairness_gap"]
           for g in (0.0, 5.0, 50.0)]
    assert psi[0] > psi[1] > psi[2]
    assert psi[2] < 0.5 * psi[0]
    spend = [FederatedTrainer(**kw, budget_price=lam).fit(clients).objective_terms(clients)["budget_spend"]
             for lam in (0.0, 0.5, 2.0)]
    assert spend[0] > spend[1] > spend[2]
    terms = FederatedTrainer(**kw, budget_price=2.0, budget_per_row=0.1).fit(clients).objective_terms(clients)
    assert terms["budget_penalty"] == pytest.approx(2.0 * (terms["budget_spend"] - 0.1))
    assert terms == objective_terms(FederatedTrainer(**kw, budget_price=2.0).fit(clients).coef_, clients, 2.0, 0.1)


def test_invalid_costs_segments_and_parameters_raise_input_error(clients):
    X, y = clients[0].X, clients[0].y
    with pytest.raises(InputError, match="costs"):
        ClientData(X, y, costs=-np.ones(len(y)))
    with pytest.raises(InputError, match="costs"):
        ClientData(X, y, costs=np.ones(len(y) - 1))
    with pytest.raises(InputError, match="segments"):
        ClientData(X, y, segments=np.full(len(y), 0.5))
    with pytest.raises(InputError, match="budget_price"):
        FederatedTrainer(budget_price=-1.0).fit(clients)
    with pytest.raises(InputError, match="fairness_weight"):
        FederatedTrainer(fairness_weight=1.0).fit([ClientData(c.X, c.y) for c in clients])
    with pytest.raises(InputError, match="dp_unit"):
        FederatedTrainer(dp_unit="user", clip_norm=1.0, fairness_weight=1.0).fit(clients)
