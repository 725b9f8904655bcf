"""Issue 10: drift tracking, checkpoints, rollback on a poisoned client, fallback to the deployed model."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.federated import FederatedTrainer
from optimizer.federated.data import synthetic_regions


@pytest.fixture(scope="module")
def regions():
    return synthetic_regions(n_regions=4, rows_per_region=300, d=5, seed=2)


def _poison(at_rounds, client=1, factor=-200.0):
    def hook(rnd, k, update):
        return update * factor if (rnd in at_rounds and k == client) else update
    return hook


def test_rollback_triggers_on_poisoned_client_and_restores_checkpoint(regions, tmp_path):
    clients, test = regions
    kw = dict(n_rounds=8, local_epochs=2, local_lr=0.5, rollback_tolerance=0.05, random_state=0)
    clean = FederatedTrainer(**kw).fit(clients, validation=test)
    bad = FederatedTrainer(client_update_hook=_poison({4}), checkpoint_dir=tmp_path, **kw).fit(clients, validation=test)
    h = bad.history_.set_index("round")
    assert not clean.history_["rejected"].any()
    assert h.loc[4, "rejected"] and h.loc[4, "rolled_back_to"] == 3 and bad.n_rollbacks_ == 1
    assert not h.drop(index=4)["rejected"].any()
    # the restored model is the round-3 checkpoint, bit for bit (read back from disk)
    ckpt = {r: c for r, c, _ in bad.checkpoints_}
    np.testing.assert_array_equal(ckpt[3], {r: c for r, c, _ in clean.checkpoints_}[3])
    assert 4 not in ckpt
    # training resumed from the restored round-3 model: bad round 5 == clean round 4 (same deterministic step)
    np.testing.assert_array_equal(ckpt[5], {r: c for r, c, _ in clean.checkpoints_}[4])
    with np.load(tmp_path / "round_0003.npz") as z:
        np.testing.assert_array_equal(z["coef"], ckpt[3])
    assert not (tmp_path / "round_0004.npz").exists()
    assert bad.loss(test.X, test.y) < 1.02 * clean.loss(test.X, test.y)
    assert not list(tmp_path.glob(".*.tmp"))                     # atomic writes leave no temp files


def test_without_rollback_the_poison_damages_the_model(regions):
    clients, test = regions
    kw = dict(n_rounds=8, local_epochs=2, local_lr=0.5, random_state=0)
    clean = FederatedTrainer(**kw).fit(clients)
    bad = FederatedTrainer(client_update_hook=_poison({8}), **kw).fit(clients)
    assert bad.loss(test.X, test.y) > 1.5 * clean.loss(test.X, test.y)


def test_persistent_poison_falls_back_to_deployed_model(regions):
    clients, test = regions
    deployed = np.full(clients[0].d, 0.01)
    fed = FederatedTrainer(n_rounds=10, local_lr=0.5, rollback_tolerance=0.05, max_rollbacks=2, deployed_coef=deployed,
                           client_update_hook=_poison(set(range(3, 11))), random_state=0).fit(clients, validation=test)
    assert fed.fell_back_ and fed.n_rollbacks_ == 2
    np.testing.assert_array_equal(fed.coef_, deployed)
    assert fed.history_["round"].max() == 4                       # stopped after two rejected rounds


def test_drift_is_tracked_and_a_drift_threshold_rejects_rounds(regions):
    clients, _ = regions
    full = FederatedTrainer(n_rounds=5, random_state=0).fit(clients)
    assert np.allclose(full.history_["drift"], 0.0)               # same clients, same statistics
    partial = FederatedTrainer(n_rounds=20, clients_per_round=2, random_state=0).fit(clients)
    drift = partial.history_["drift"].dropna()
    assert (drift > 0).any()
    threshold = float(np.quantile(drift[drift > 0], 0.5))
    guarded = FederatedTrainer(n_rounds=20, clients_per_round=2, max_drift=threshold, max_rollbacks=20,
                               random_state=0).fit(clients)
    rej = guarded.history_[guarded.history_["rejected"]]
    assert len(rej) > 0 and (rej["drift"] > threshold).all()
