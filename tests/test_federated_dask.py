"""Issue 10: clients as Dask tasks give the same model as the in-process loop (one small LocalCluster)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed")

from optimizer.federated import FederatedTrainer  # noqa: E402
from optimizer.federated.data import synthetic_regions  # noqa: E402


def test_dask_local_cluster_matches_in_process_loop():
    clients, _ = synthetic_regions(n_regions=3, rows_per_region=200, d=4, seed=0)
    kw = dict(n_rounds=3, local_epochs=2, clients_per_round=2, dropout_rate=0.2, clip_norm=1.0,
              noise_multiplier=0.5, secure_aggregation=True, quorum=1, random_state=7)
    loop = FederatedTrainer(executor="loop", **kw).fit(clients)
    dask = FederatedTrainer(executor="dask", **kw).fit(clients)
    np.testing.assert_array_equal(dask.coef_, loop.coef_)
    assert dask.history_.equals(loop.history_)
