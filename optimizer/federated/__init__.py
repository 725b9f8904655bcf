"""Federated, differentially private training of the logistic response model (issue 10).

Public contract::

    from optimizer.federated import privacy_epsilon, calibrate_noise, FederatedTrainer

The maths is in :mod:`formulations.federated`. Heavy dependencies
(``dp_accounting``, ``dask``, ``scipy``, ``pandas``) are imported inside the
functions that need them, so importing this package costs only NumPy.
"""

from __future__ import annotations

from formulations.federated import ClientData
from optimizer.federated.accountant import calibrate_noise, privacy_epsilon
from optimizer.federated.secure_agg import QuorumError, SecureAggregationRound, secure_sum
from optimizer.federated.trainer import FederatedTrainer

__all__ = ["privacy_epsilon", "calibrate_noise", "FederatedTrainer", "ClientData", "SecureAggregationRound",
           "QuorumError", "secure_sum"]
