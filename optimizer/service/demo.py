"""``contactplan serve --demo``: a small service trained on synthetic Customer 360 data in a few seconds.

1. :func:`optimizer.c360.generate_c360` + :func:`optimizer.c360.build_c360`
   (issue 8) write a small Customer 360 data set whose horizon ends this
   week; its canonical events are streamed into the
   :class:`~optimizer.service.state.StreamStore` (ids ``c360-<row>``, so a
   restart re-ingests nothing).
2. The response model is trained on the *batch* ``features.parquet`` rows
   (the same definitions as the streaming features): synthetic labels from a
   known logistic model in which a protected cohort (synthetic, correlated
   with digital activity) shifts the response. ``demo-v1`` is unpenalised,
   ``demo-v2`` adds the projection penalty ρ‖Pθ‖² (active; rollback → v1).
   :func:`parity_report` measures the parity delta and the accuracy cost.
3. An item catalogue with synthetic low-rank implicit interactions, truncated
   SVD embeddings and an hnswlib index.
4. Lagrangian policies (issue 6) fitted on sample scores: a normal one and a
   cautious one (lower temperature), with a diversity penalty on per-channel
   exposure.

Everything is seeded: the same directory and seed rebuild the same models.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from formulations import streaming as FS
from optimizer.service.embeddings import CandidateIndex, SVDEmbeddings
from optimizer.service.engine import Catalog, DecisionEngine, EngineConfig
from optimizer.service.governance import GovernanceConfig
from optimizer.service.model import (CHANNELS, FEATURE_NAMES, ModelRegistry, ModelVersion, ProjectedLogistic, auc,
                                     feature_matrix, log_loss)
from optimizer.service.state import StateSpec, StreamStore

COSTS = np.array([0.0, 0.01, 0.01, 0.05, 1.0])          # no contact, email, push, sms, call
BUDGET = 0.15
TEMPERATURE = 0.05
TRUE_COEF = np.array([[0.5, 0.1, 0.2, -0.8, 0.6, 0.0, 0.0],
                      [0.7, 0.0, 0.0, -0.5, 0.8, 0.0, 0.0],
                      [0.2, 0.3, 0.1, -0.5, 0.2, 0.3, 0.0],
                      [0.0, 0.6, 0.4, -1.2, 0.0, 0.6, 0.3]])
TRUE_INTERCEPT = np.array([-2.2, -2.5, -2.6, -2.0])
COHORT_SHIFT = 0.8


def _monday_weeks_ago(weeks: int) -> dt.date:
    today = dt.datetime.now(dt.timezone.utc).date()
    return today - dt.timedelta(days=today.weekday() + 7 * (weeks - 1))


def c360_data(directory: Path, n_customers: int, weeks: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(events, features, start) of a generated and built Customer 360 set (cached in ``directory``)."""
    from optimizer.c360 import BuildOptions, build_c360, generate_c360

    out = directory / "out"
    if not (out / "features.parquet").exists():
        directory.mkdir(parents=True, exist_ok=True)
        generate_c360(directory / "raw", n_customers, weeks, seed=seed, start=_monday_weeks_ago(weeks))
        build_c360(directory / "raw", out, BuildOptions(decay=0.8))
    start = json.loads((directory / "raw" / "manifest.json").read_text())["start"]
    return pd.read_parquet(out / "events.parquet"), pd.read_parquet(out / "features.parquet"), start


def synthetic_labels(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y (n, C), cohort (n,)): a protected cohort correlated with digital activity shifts every response."""
    rng = np.random.default_rng(seed)
    cohort = (x[:, 0] + x[:, 4] + rng.normal(0, 0.5, len(x)) > np.median(x[:, 0] + x[:, 4])).astype(int)
    logits = TRUE_INTERCEPT + x @ TRUE_COEF.T + COHORT_SHIFT * cohort[:, None]
    y = (rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits))).astype(float)
    return y, cohort


def parity_report(x: np.ndarray, y: np.ndarray, cohort: np.ndarray, rho: float, seed: int = 0) -> dict:
    """Parity delta and accuracy (log loss, AUC) on a held-out half, without and with the projection penalty."""
    rng = np.random.default_rng(seed)
    test = rng.random(len(x)) < 0.5
    proj = FS.projection_matrix(x[~test], cohort[~test])
    out = {}
    for name, r in (("unpenalised", 0.0), ("projected", rho)):
        model = ProjectedLogistic(rho=r).fit(x[~test], y[~test], proj)
        p = model.predict_proba(x[test])
        logit = x[test] @ model.coef_.T
        gap = np.abs(logit[cohort[test] == 1].mean(0) - logit[cohort[test] == 0].mean(0))
        out[name] = {"parity_delta": max(FS.parity_delta(p[:, c], cohort[test]) for c in range(y.shape[1])),
                     "logit_gap": float(np.max(gap)),
                     "log_loss": float(np.mean([log_loss(p[:, c], y[test, c]) for c in range(y.shape[1])])),
                     "auc": float(np.mean([auc(p[:, c], y[test, c]) for c in range(y.shape[1])])),
                     "penalty": float(np.sum((proj @ model.coef_.T) ** 2))}
    return out


def catalog(customers: list[str], n_items: int, dim: int, seed: int, n_extra_users: int = 1000,
            per_user: int = 20) -> Catalog:
    """Synthetic low-rank implicit interactions → SVD embeddings → hnswlib index."""
    rng = np.random.default_rng(seed)
    n_users = len(customers) + n_extra_users
    true_u = rng.normal(size=(n_users, 8)).astype(np.float32)
    true_v = rng.normal(size=(n_items, 8)).astype(np.float32)
    rows, cols = [], []
    for lo in range(0, n_users, 500):
        s = true_u[lo:lo + 500] @ true_v.T + rng.gumbel(size=(min(500, n_users - lo), n_items)).astype(np.float32) * 2
        top = np.argpartition(-s, per_user, axis=1)[:, :per_user]
        rows.append(np.repeat(np.arange(lo, lo + len(top)), per_user))
        cols.append(top.ravel())
    inter = sp.csr_matrix((np.ones(n_users * per_user), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_users, n_items))
    emb = SVDEmbeddings(dim, random_state=seed).fit(inter)
    margins = np.round(rng.lognormal(1.0, 0.5, n_items), 2)
    return Catalog(item_ids=np.arange(n_items), margins=margins, item_vectors=emb.item_vectors_,
                   index=CandidateIndex(emb.item_vectors_, random_state=seed), user_rows={c: i for i, c in
                                                                                         enumerate(customers)},
                   user_vectors=emb.user_vectors_[:len(customers)], singular_values=emb.singular_values_,
                   popular=np.argsort(-margins, kind="stable"))


def _policies(scores: np.ndarray, seed: int):
    from optimizer import LagrangianPolicy

    sim = np.eye(len(COSTS))
    sim[0, 0] = 0.0
    sim[1, 2] = sim[2, 1] = 0.5
    out = []
    for tau in (TEMPERATURE, TEMPERATURE * GovernanceConfig().cautious_temperature_factor):
        out.append(LagrangianPolicy(COSTS, BUDGET, temperature=tau, similarity=sim, diversity=0.05,
                                    salt="contactplan-serve", random_state=seed).fit(scores))
    return out


def build_demo(directory: str | Path, n_customers: int = 400, weeks: int = 6, n_items: int = 5000, dim: int = 16,
               seed: int = 0, config: EngineConfig = EngineConfig(), governance: GovernanceConfig = GovernanceConfig(),
               extra_users: int = 1000, progress: Callable[[str], None] | None = None) -> DecisionEngine:
    """Build (or reopen) the demo service in ``directory``; see the module docstring."""
    say = progress or (lambda msg: None)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    say("customer 360 data")
    events, features, start = c360_data(d / "c360", n_customers, weeks, seed)
    spec = StateSpec(epoch=start, period_days=7.0, decay=0.8)
    store = StreamStore.open(d / "state", spec, fsync=config.fsync)
    if len(store.state) == 0:
        say("streaming events into the state")
        ts = events["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").tolist()
        raws = [{"event_id": f"c360-{i}", "customer_id": c, "ts": t, "type": k, "subtype": s, "channel": h,
                 "value": float(v)} for i, (c, t, k, s, h, v) in
                enumerate(zip(events["customer_id"], ts, events["type"], events["subtype"], events["channel"],
                              events["value"]))]
        store.ingest(raws)
        store.snapshot()
    say("training the response models")
    x = feature_matrix(features)
    y, cohort = synthetic_labels(x, seed)
    proj = FS.projection_matrix(x, cohort)
    customers = sorted(features["customer_id"].unique().tolist())
    cat = catalog(customers, n_items, dim, seed, n_extra_users=extra_users)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(customers), size=min(300, len(customers)), replace=False)
    aff = cat.user_vectors[sample] @ cat.item_vectors.T
    best_value = (cat.margins * 0.5 * (1 + np.tanh(0.5 * aff))).max(axis=1)
    last = features[features["period"] == features["period"].max()].set_index("customer_id")
    xs = feature_matrix(last.loc[[customers[i] for i in sample]])
    versions = []
    for model_id, rho in (("demo-v1", 0.0), ("demo-v2", 100.0)):
        response = ProjectedLogistic(rho=rho).fit(x, y, proj)
        scores = np.hstack([np.zeros((len(sample), 1)), response.predict_proba(xs) * best_value[:, None]])
        policy, cautious = _policies(scores, seed)
        versions.append(ModelVersion(model_id, response, policy, x.mean(axis=0), x.std(axis=0),
                                     info={"cautious_policy": cautious, "rho": rho, "channels": CHANNELS,
                                           "features": FEATURE_NAMES}))
    say("ready")
    return DecisionEngine(store, ModelRegistry(versions), cat, d, config, governance)
