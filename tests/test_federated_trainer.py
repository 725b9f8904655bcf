"""Issue 10: FedAvg/FedProx trainer — equals centralised GD, sampling, clipping, noise, secure aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from formulations.errors import InputError
from formulations.federated import ClientData, log_loss, log_loss_grad, local_update
from optimizer.federated import FederatedTrainer, privacy_epsilon
from optimizer.federated.baseline import fit_centralised, pool_clients
from optimizer.federated.data import synthetic_regions


@pytest.fixture(scope="module")
def regions():
    return synthetic_regions(n_regions=4, rows_per_region=300, d=5, seed=1)


def test_one_local_step_full_participation_equals_centralised_gradient_descent(regions):
    clients, _ = regions
    X, y = pool_clients(clients)
    lr, l2, rounds = 0.7, 1e-2, 6
    theta = np.zeros(X.shape[1])
    for _ in range(rounds):
        theta = theta - lr * log_loss_grad(theta, X, y, l2)
    fed = FederatedTrainer(n_rounds=rounds, local_epochs=1, local_lr=lr, server_lr=1.0, l2=l2, random_state=0)
    fed.fit(clients)
    np.testing.assert_allclose(fed.coef_, theta, rtol=1e-12, atol=1e-14)
    assert (fed.history_["sampled"] == len(clients)).all()


def test_several_local_epochs_differ_from_gd_but_converge_to_centralised(regions):
    clients, test = regions
    X, y = pool_clients(clients)
    central = fit_centralised(X, y, l2=1e-3)
    fed = FederatedTrainer(n_rounds=80, local_epochs=5, local_lr=0.2, server_momentum=0.5, l2=1e-3,
                           random_state=0).fit(clients)
    # non-IID clients: FedAvg's fixed point carries a small client-drift bias, hence 1% not 0
    assert log_loss(fed.coef_, test.X, test.y) == pytest.approx(log_loss(central, test.X, test.y), rel=1e-2)


def test_fedprox_term_pulls_local_model_towards_global(regions):
    client = regions[0][0]
    theta = np.zeros(client.d)
    plain = local_update(theta, client, epochs=10, lr=0.5, l2=0.0, mu=0.0)
    prox = local_update(theta, client, epochs=10, lr=0.5, l2=0.0, mu=1.0)
    assert np.linalg.norm(prox) < np.linalg.norm(plain)
    # one step: the proximal gradient vanishes at w = theta, so FedProx == FedAvg
    np.testing.assert_allclose(local_update(theta, client, 1, 0.5, 0.0, 1.0),
                               local_update(theta, client, 1, 0.5, 0.0, 0.0))


def test_inclusion_probabilities_proportional_to_weights_and_capped(regions):
    clients, _ = regions
    fed = FederatedTrainer(clients_per_round=2, sampling_weights=[1, 1, 1, 10])
    pi = fed._inclusion_probabilities(clients)
    assert pi.sum() == pytest.approx(2.0)
    assert pi[3] == 1.0 and np.allclose(pi[:3], 1 / 3)


def test_client_sampling_minimum_participation_and_dropouts(regions):
    clients, _ = regions
    fed = FederatedTrainer(n_rounds=40, clients_per_round=1, min_clients=2, dropout_rate=0.3, random_state=3)
    fed.fit(clients)
    h = fed.history_
    assert (h["sampled"] >= 2).all()
    assert (h["survivors"] <= h["sampled"]).all() and (h["survivors"] < h["sampled"]).any()
    assert h.loc[h["survivors"] == 0, "aborted"].all()


def test_dp_reports_epsilon_of_its_sigma_q_rounds(regions):
    clients, _ = regions
    fed = FederatedTrainer(n_rounds=30, dp_unit="user", user_sampling_rate=0.01, clip_norm=1.0, noise_multiplier=1.0,
                           delta=1e-5, local_lr=1.0, server_lr=0.05, server_optimizer="adam", random_state=0)
    fed.fit(clients)
    assert fed.dp_ and fed.sampling_rate_ == 0.01
    assert fed.epsilon_ == pytest.approx(privacy_epsilon(1.0, 0.01, 30, 1e-5), rel=1e-12)
    other = FederatedTrainer(**(fed.get_params() | {"random_state": 1})).fit(clients)
    assert not np.allclose(other.coef_, fed.coef_)          # noise and sampling really enter


def test_clipping_bounds_the_server_step(regions):
    clients, _ = regions
    C, lr = 1e-3, 1.0
    fed = FederatedTrainer(n_rounds=1, local_lr=5.0, clip_norm=C, server_lr=lr, random_state=0).fit(clients)
    # each client's update has norm <= C; the fixed denominator is the expected count K
    assert np.linalg.norm(fed.coef_) <= lr * C + 1e-12
    zero = np.zeros(clients[0].d)
    ups = [local_update(zero, c, 1, 5.0, fed.l2) for c in clients]
    assert min(np.linalg.norm(u) for u in ups) > 100 * C                  # so clipping was active
    expected = -lr * np.mean([u * C / np.linalg.norm(u) for u in ups], axis=0)
    np.testing.assert_allclose(fed.coef_, expected, rtol=1e-12)


def test_secure_aggregation_in_training_matches_plain_sum(regions):
    clients, _ = regions
    kw = dict(n_rounds=8, local_epochs=2, clients_per_round=3, dropout_rate=0.2, quorum=1, random_state=5)
    plain = FederatedTrainer(**kw).fit(clients)
    secure = FederatedTrainer(secure_aggregation=True, **kw).fit(clients)
    np.testing.assert_allclose(secure.coef_, plain.coef_, atol=1e-6)
    assert (secure.history_["upload_bytes"] > 0).any()


def test_distributed_noise_at_clients_with_quorum(regions):
    clients, _ = regions
    fed = FederatedTrainer(n_rounds=5, clip_norm=0.5, noise_multiplier=1.0, noise_at="clients",
                           secure_aggregation=True, quorum=3, random_state=0).fit(clients)
    assert math.isfinite(fed.epsilon_) and np.all(np.isfinite(fed.coef_))


def test_bad_configuration_raises_input_error(regions):
    clients, _ = regions
    with pytest.raises(InputError, match="clip_norm"):
        FederatedTrainer(noise_multiplier=1.0).fit(clients)
    with pytest.raises(InputError, match="dp_unit"):
        FederatedTrainer(dp_unit="row").fit(clients)
    with pytest.raises(InputError, match="expected 5 features"):
        FederatedTrainer().fit([clients[0], ClientData(np.ones((3, 2)), np.zeros(3))])
    with pytest.raises(InputError, match=r"region_x\.y"):
        ClientData(np.ones((3, 2)), np.array([0, 2, 1]), name="region_x")


def test_effective_noise_on_the_average_is_sigma_c_over_m(regions):
    clients, _ = regions                          # K = 4 clients, all sampled: m = 4
    sigma, C = 2.0, 0.1
    kw = dict(n_rounds=1, local_lr=1.0, clip_norm=C, noise_multiplier=sigma, server_lr=1.0)
    coefs = np.array([FederatedTrainer(random_state=s, **kw).fit(clients).coef_ for s in range(300)])
    zero = np.zeros(clients[0].d)
    clipped = [u * min(1.0, C / np.linalg.norm(u)) for u in (local_update(zero, c, 1, 1.0, 1e-4) for c in clients)]
    np.testing.assert_allclose(coefs.mean(axis=0), -np.mean(clipped, axis=0), atol=4 * sigma * C / 4 / np.sqrt(300))
    np.testing.assert_allclose(coefs.std(axis=0), sigma * C / 4, rtol=0.2)


def test_distributed_noise_sums_to_at_least_the_central_noise(regions):
    clients, _ = regions                          # 4 clients, quorum Q = 2: each adds N(0, σ²C²/2)
    sigma, C = 2.0, 0.1
    kw = dict(n_rounds=1, local_lr=1.0, clip_norm=C, noise_multiplier=sigma, noise_at="clients",
              secure_aggregation=True, quorum=2)
    coefs = np.array([FederatedTrainer(random_state=s, **kw).fit(clients).coef_ for s in range(200)])
    np.testing.assert_allclose(coefs.std(axis=0), sigma * C * np.sqrt(4 / 2) / 4, rtol=0.25)
