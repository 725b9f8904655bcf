"""Non-IID regional client data sets for federated experiments.

Two sources:

* :func:`c360_regions` — rows are the outbound contacts of the Customer 360
  generator (``contacts`` with ``treatment``/``responded``), joined to the
  hidden truth (``truth/identities``, ``truth/customers``) for clean customer
  attributes. The generator has no region column, so customers are split into
  ``n_regions`` regions *non-IID*: by quantiles (of unequal sizes) of a noisy
  age/digital score, so regions differ in age mix, digital engagement, size
  and response rate. Every customer (the privacy unit) lives in one region.
* :func:`synthetic_regions` — a small documented generator (no files): region
  ``r`` draws features from N(μ_r, I) with region-specific means and a shared
  true θ, so clients are non-IID in covariates and base rate.

Features of a contact row (14, the intercept first)::

    1, gold, age_z, dig, treat×channel one-hot (5), treat×h_m for email, push,
    call, branch (4), treat×call×complainer

with ``age_z = (age − 50)/15``, ``dig = log1p(digital_rate)`` and ``h`` as in
:mod:`optimizer.c360.generator` — the logistic model is then close to the
generator's true response model (only control rows' and treated rows'
structure, no hidden terms beyond these).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from formulations.errors import InputError
from formulations.federated import ClientData

C360_FEATURES = ("intercept", "gold", "age_z", "dig", "t_email", "t_push", "t_sms", "t_call", "t_branch",
                 "t_email_h", "t_push_h", "t_call_h", "t_branch_h", "t_call_complainer")
REGION_SHARES = (0.06, 0.08, 0.10, 0.12, 0.13, 0.15, 0.17, 0.19)


def _region_of(score: np.ndarray, n_regions: int) -> np.ndarray:
    shares = np.asarray(REGION_SHARES if n_regions == len(REGION_SHARES) else np.linspace(1, 2, n_regions))
    cuts = np.quantile(score, np.cumsum(shares / shares.sum())[:-1])
    return np.searchsorted(cuts, score, side="right")


def c360_features(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features X, responses y, customer ids and the customers' table index of every contact row."""
    import pandas as pd

    root = Path(data_dir)
    for rel in ("contacts.parquet", "truth/identities.parquet", "truth/customers.parquet"):
        if not (root / rel).exists():
            raise InputError("--data", f"expected a Customer 360 directory with {rel}, not found in {str(root)!r}")
    contacts = pd.read_parquet(root / "contacts.parquet", columns=["crm_id", "channel", "treatment", "responded"])
    ident = pd.read_parquet(root / "truth/identities.parquet", columns=["crm_id", "true_customer"])
    cust = pd.read_parquet(root / "truth/customers.parquet",
                           columns=["true_customer", "gold", "age", "digital_rate", "branch_rate", "complainer"])
    rows = contacts.merge(ident, on="crm_id", how="inner").merge(cust, on="true_customer", how="inner")
    rows = rows.sort_values(["true_customer", "crm_id", "channel"], kind="stable").reset_index(drop=True)
    age_z = (rows["age"].to_numpy() - 50.0) / 15.0
    dig = np.log1p(rows["digital_rate"].to_numpy())
    t = rows["treatment"].to_numpy().astype(np.float64)
    ch = rows["channel"].to_numpy().astype(str)
    onehot = {c: t * (ch == c) for c in ("email", "push", "sms", "call", "branch")}
    X = np.column_stack([
        np.ones(len(rows)), rows["gold"].to_numpy(float), age_z, dig,
        onehot["email"], onehot["push"], onehot["sms"], onehot["call"], onehot["branch"],
        onehot["email"] * (dig - 1.2), onehot["push"] * (dig - 1.2), onehot["call"] * (-age_z),
        onehot["branch"] * np.log(rows["branch_rate"].to_numpy() / 0.15),
        onehot["call"] * rows["complainer"].to_numpy(float)])
    return X, rows["responded"].to_numpy(float), rows["true_customer"].to_numpy(np.int64), rows


def split_train_test(users: np.ndarray, test_share: float, seed: int) -> np.ndarray:
    """Boolean test mask by user (a customer's rows are all train or all test)."""
    u = np.unique(users)
    test_users = u[np.random.default_rng([seed, 7]).random(u.size) < test_share]
    return np.isin(users, test_users)


def c360_regions(data_dir: str | Path, n_regions: int = 8, test_share: float = 0.2, seed: int = 0
                 ) -> tuple[list[ClientData], ClientData]:
    """Regional training clients and a pooled test set from a Customer 360 directory.

    Returns ``(clients, test)``; ``test`` holds every region's held-out customers.
    """
    X, y, users, rows = c360_features(data_dir)
    rng = np.random.default_rng([seed, 11])
    uniq, inv = np.unique(users, return_inverse=True)
    age_z = np.zeros(uniq.size)
    dig = np.zeros(uniq.size)
    age_z[inv], dig[inv] = X[:, 2], X[:, 3]
    region_of_user = _region_of(age_z - 0.8 * dig + rng.normal(0, 0.4, uniq.size), n_regions)
    region = region_of_user[inv]
    test = split_train_test(users, test_share, seed)
    clients = [ClientData(X[(region == r) & ~test], y[(region == r) & ~test], users[(region == r) & ~test],
                          name=f"region_{r}") for r in range(n_regions)]
    return clients, ClientData(X[test], y[test], users[test], name="test")


def synthetic_regions(n_regions: int = 8, rows_per_region: int = 2000, d: int = 6, seed: int = 0,
                      test_share: float = 0.2) -> tuple[list[ClientData], ClientData]:
    """Small non-IID logistic data: region r has covariate mean μ_r ~ N(0, 0.5² I) and size ∝ (1 + r/n)."""
    rng = np.random.default_rng([seed, 3])
    theta = np.concatenate([[-2.0], rng.normal(0, 0.7, d - 1)])
    clients, tests = [], []
    uid = 0
    for r in range(n_regions):
        n = int(rows_per_region * (0.5 + r / max(n_regions - 1, 1)))
        mu = rng.normal(0, 0.5, d - 1)
        X = np.column_stack([np.ones(n), rng.normal(mu, 1.0, (n, d - 1))])
        y = (rng.random(n) < 1 / (1 + np.exp(-(X @ theta)))).astype(float)
        users = uid + np.arange(n)
        uid += n
        test = rng.random(n) < test_share
        clients.append(ClientData(X[~test], y[~test], users[~test], name=f"region_{r}"))
        tests.append((X[test], y[test], users[test]))
    Xt, yt, ut = (np.concatenate(parts) for parts in zip(*tests))
    return clients, ClientData(Xt, yt, ut, name="test")


__all__ = ["C360_FEATURES", "c360_features", "c360_regions", "synthetic_regions", "split_train_test"]
