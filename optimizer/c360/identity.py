"""Identity resolution of CRM records: blocking → match probabilities → clusters → quality.

Implements the "Identity resolution" section of :mod:`formulations.c360`:

1. **Blocking** (SQL): one key per record and kind in ``BLOCKING_KEYS``;
   candidate pairs are the distinct record pairs sharing a key in a block of
   at most ``max_block`` records.
2. **Comparison features** φ (SQL): Jaro-Winkler similarities of names and
   e-mails, exact-match and missing indicators (``MATCH_FEATURES``).
3. **Match model** :class:`MatchModel`: L2-penalised logistic regression
   fitted by L-BFGS (``scipy.optimize.minimize``) on labelled pairs. The
   clerical-review file lists *complete* clusters (every CRM row of each
   reviewed customer), so every candidate pair with at least one listed row
   is labelled: a match iff both rows are listed with the same label. (Pairs
   with both rows listed would be a biased sample: a coincidence across
   postcodes is then s² rare for a review share s.)
4. **Clusters**: connected components of the graph of pairs with
   probability ≥ θ (``scipy.sparse.csgraph``; the same partition as
   union-find, checked against :func:`formulations.c360.union_find_labels`).
   Without labels and without a given model, the documented default rule of
   :mod:`formulations.c360` (:meth:`MatchModel.default`) is used and the
   report says so (``model_source``).
5. **Quality** against the hidden truth when present: pairwise precision,
   recall and F1, on all records and on the records outside the training
   sample, the threshold trade-off, and the blocking recall (share of true
   matching pairs that survive blocking).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy import optimize
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from formulations.c360 import (BLOCKING_KEYS, MATCH_FEATURES, PairwiseScores, default_match_coefficients,
                               logistic_loss_grad, pairwise_scores, sigmoid)
from formulations.errors import InputError

TRADEOFF_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)

BLOCK_KEY_SQL = {
    "phone": "phone",
    "email": "email",
    "last_postcode": "CASE WHEN last IS NOT NULL AND postcode IS NOT NULL THEN last || '|' || postcode END",
    "first_dob": "CASE WHEN first IS NOT NULL AND dob IS NOT NULL THEN first || '|' || CAST(dob AS VARCHAR) END",
    "card": "card",
}

FEATURE_SQL = """
SELECT coalesce(jaro_winkler_similarity(x.first, y.first), 0) AS first_sim,
       coalesce(jaro_winkler_similarity(x.last, y.last), 0) AS last_sim,
       coalesce(x.email = y.email, false)::FLOAT AS email_eq,
       coalesce(jaro_winkler_similarity(x.email, y.email), 0) AS email_sim,
       (x.email IS NULL OR y.email IS NULL)::FLOAT AS email_missing,
       coalesce(x.phone = y.phone, false)::FLOAT AS phone_eq,
       (x.phone IS NULL OR y.phone IS NULL)::FLOAT AS phone_missing,
       coalesce(x.postcode = y.postcode, false)::FLOAT AS postcode_eq,
       coalesce(x.dob = y.dob, false)::FLOAT AS dob_eq,
       coalesce(x.dob <> y.dob AND year(x.dob) = year(y.dob) AND month(x.dob) = day(y.dob)
                AND day(x.dob) = month(y.dob), false)::FLOAT AS dob_swapped,
       (x.dob IS NULL OR y.dob IS NULL)::FLOAT AS dob_missing,
       coalesce(x.card = y.card, false)::FLOAT AS card_eq,
       (x.card IS NULL OR y.card IS NULL)::FLOAT AS card_missing,
       coalesce(jaro_winkler_similarity(x.first, y.first) * jaro_winkler_similarity(x.last, y.last), 0)
           * coalesce(x.dob = y.dob, false)::FLOAT AS name_sim_x_dob_eq
FROM {pairs} p JOIN records x ON p.a = x.rid JOIN records y ON p.b = y.rid
ORDER BY p.a, p.b
"""


@dataclass
class MatchModel:
    """Logistic match model Pr(match | φ) = σ(α₀ + αᵀφ) fitted by L-BFGS (scikit-learn conventions).

    Parameters
    ----------
    l2 : float
        Ridge penalty ρ on α (the intercept is not penalised).
    tol : float
        Gradient tolerance of L-BFGS.
    max_iter : int
    feature_names : tuple of str
    """

    l2: float = 1.0
    tol: float = 1e-6
    max_iter: int = 500
    feature_names: tuple[str, ...] = MATCH_FEATURES

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "MatchModel":
        """Minimise the penalised logistic loss; sets ``intercept_``, ``coef_``, ``n_iter_``, ``converged_``."""
        X = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise InputError("features", f"expected shape (k, {len(self.feature_names)}), got {X.shape}")
        if y.shape != (X.shape[0],) or not np.isin(y, (0.0, 1.0)).all():
            raise InputError("labels", "expected one 0/1 label per row of features")
        if y.min() == y.max():
            raise InputError("labels", "expected both matching and non-matching labelled pairs")
        res = optimize.minimize(logistic_loss_grad, np.zeros(X.shape[1] + 1), args=(X, y, self.l2), jac=True,
                                method="L-BFGS-B", options={"gtol": self.tol, "maxiter": self.max_iter})
        self.intercept_ = float(res.x[0])
        self.coef_ = res.x[1:].copy()
        self.n_iter_ = int(res.nit)
        self.converged_ = bool(res.success)
        self.loss_ = float(res.fun)
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return self.intercept_ + np.asarray(features, dtype=np.float64) @ self.coef_

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Match probabilities σ(α₀ + αᵀφ), shape (k,)."""
        return sigmoid(self.decision_function(features))

    def to_dict(self) -> dict:
        return {"feature_names": list(self.feature_names), "intercept": self.intercept_,
                "coef": [float(c) for c in self.coef_], "l2": self.l2, "n_iter": self.n_iter_,
                "converged": self.converged_}

    @classmethod
    def default(cls) -> "MatchModel":
        """The hand-set default rule (``formulations.c360.DEFAULT_MATCH_WEIGHTS``), for data without labels."""
        m = cls(l2=0.0)
        m.intercept_, m.coef_ = default_match_coefficients()
        m.n_iter_, m.converged_, m.loss_ = 0, True, float("nan")
        m.source_ = "default rule"
        return m

    @classmethod
    def from_dict(cls, d: dict) -> "MatchModel":
        names = tuple(d.get("feature_names", ()))
        if names != MATCH_FEATURES or len(d.get("coef", ())) != len(MATCH_FEATURES):
            raise InputError("match model", f"expected coefficients for the features {', '.join(MATCH_FEATURES)}")
        m = cls(l2=float(d.get("l2", 1.0)))
        m.intercept_, m.coef_ = float(d["intercept"]), np.asarray(d["coef"], dtype=np.float64)
        m.n_iter_, m.converged_, m.loss_ = int(d.get("n_iter", 0)), bool(d.get("converged", True)), float("nan")
        return m


@dataclass
class BlockingStats:
    """Pairs per blocking key (before de-duplication) and the blocks skipped for size."""

    pairs_by_key: dict[str, int]
    skipped_blocks: dict[str, int]
    skipped_records: dict[str, int]
    candidate_pairs: int
    max_block: int


@dataclass
class IdentityResult:
    """What identity resolution produced and how good it is (quality fields None without truth)."""

    n_records: int
    n_customers: int
    n_pairs: int
    n_matched_pairs: int
    threshold: float
    model: MatchModel
    blocking: BlockingStats
    n_training_pairs: int = 0
    scores: PairwiseScores | None = None
    heldout_scores: PairwiseScores | None = None
    blocking_recall: float | None = None
    tradeoff: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    model_source: str = "labels"      # "labels" (fitted), "given" (a fitted model passed in) or "default rule"

    @property
    def pairs_per_record(self) -> float:
        return self.n_pairs / max(self.n_records, 1)

    def summary(self) -> dict:
        out = {"records": self.n_records, "customers": self.n_customers, "candidate_pairs": self.n_pairs,
               "pairs_per_record": round(self.pairs_per_record, 3), "matched_pairs": self.n_matched_pairs,
               "threshold": self.threshold, "training_pairs": self.n_training_pairs,
               "blocking": {"pairs_by_key": self.blocking.pairs_by_key,
                            "skipped_blocks": self.blocking.skipped_blocks,
                            "skipped_records": self.blocking.skipped_records, "max_block": self.blocking.max_block},
               "model_source": self.model_source,
               "model": self.model.to_dict(), "timings_s": {k: round(v, 3) for k, v in self.timings.items()}}
        if self.scores is not None:
            for name, s in (("all_records", self.scores), ("heldout_records", self.heldout_scores)):
                if s is not None:
                    out[name] = {"precision": s.precision, "recall": s.recall, "f1": s.f1,
                                 "true_positive_pairs": s.true_positive_pairs,
                                 "predicted_pairs": s.predicted_pairs, "true_pairs": s.true_pairs}
            out["blocking_recall"] = self.blocking_recall
        if self.tradeoff is not None:
            out["tradeoff"] = self.tradeoff.to_dict(orient="records")
        return out


# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------

def candidate_pairs(con: duckdb.DuckDBPyConnection, max_block: int = 50) -> BlockingStats:
    """Create table ``pairs(a, b)`` (a < b, distinct) from the blocking keys of ``records``."""
    if int(max_block) < 2:
        raise InputError("max_block", f"expected an integer >= 2, got {max_block!r}")
    selects = " UNION ALL ".join(
        f"SELECT rid, '{k}' AS kind, {BLOCK_KEY_SQL[k]} AS key FROM records WHERE {BLOCK_KEY_SQL[k]} IS NOT NULL"
        for k in BLOCKING_KEYS)
    con.execute(f"CREATE OR REPLACE TABLE block_keys AS {selects}")
    con.execute("""CREATE OR REPLACE TABLE block_sizes AS
                   SELECT kind, key, count(*) AS n FROM block_keys GROUP BY kind, key HAVING count(*) > 1""")
    con.execute(f"""
        CREATE OR REPLACE TABLE keyed_pairs AS
        SELECT k1.kind, k1.rid AS a, k2.rid AS b
        FROM (SELECT k.* FROM block_keys k JOIN block_sizes s USING (kind, key) WHERE s.n <= {int(max_block)}) k1
        JOIN block_keys k2 ON k1.kind = k2.kind AND k1.key = k2.key AND k1.rid < k2.rid""")
    by_key = dict(con.execute("SELECT kind, count(*) FROM keyed_pairs GROUP BY kind").fetchall())
    skipped = con.execute(f"SELECT kind, count(*), sum(n) FROM block_sizes WHERE n > {int(max_block)} "
                          "GROUP BY kind").fetchall()
    con.execute("CREATE OR REPLACE TABLE pairs AS SELECT DISTINCT a, b FROM keyed_pairs")
    con.execute("DROP TABLE keyed_pairs; DROP TABLE block_keys; DROP TABLE block_sizes")
    n_pairs = int(con.execute("SELECT count(*) FROM pairs").fetchone()[0])
    return BlockingStats({k: int(by_key.get(k, 0)) for k in BLOCKING_KEYS},
                         {k: int(c) for k, c, _ in skipped}, {k: int(r) for k, _, r in skipped}, n_pairs,
                         int(max_block))


def comparison_features(con: duckdb.DuckDBPyConnection, pairs: str = "pairs") -> tuple[np.ndarray, np.ndarray]:
    """(pair index (k, 2) int64, φ (k, d) float64) for the pairs of table ``pairs``, ordered by (a, b)."""
    sql = FEATURE_SQL.format(pairs=pairs).replace("SELECT coalesce", "SELECT p.a, p.b, coalesce", 1)
    cols = con.execute(sql).fetchnumpy()
    idx = np.stack([np.asarray(cols["a"], dtype=np.int64), np.asarray(cols["b"], dtype=np.int64)], axis=1)
    phi = np.stack([np.asarray(cols[name], dtype=np.float64) for name in MATCH_FEATURES], axis=1) \
        if idx.shape[0] else np.zeros((0, len(MATCH_FEATURES)))
    return idx, phi


def cluster_labels(n_records: int, pair_index: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Cluster label per record (the smallest record index of its cluster) from the matched pairs."""
    sel = pair_index[matched]
    graph = coo_matrix((np.ones(sel.shape[0], dtype=np.int8), (sel[:, 0], sel[:, 1])),
                       shape=(n_records, n_records))
    _, comp = connected_components(graph, directed=False)
    smallest = np.full(comp.max() + 1 if n_records else 0, n_records, dtype=np.int64)
    np.minimum.at(smallest, comp, np.arange(n_records, dtype=np.int64))
    return smallest[comp]


def _read_labels(con: duckdb.DuckDBPyConnection, path: Path, column: str) -> np.ndarray:
    """Label per record rid (-1 = unknown) from a (crm_id, <column>) Parquet file."""
    n = int(con.execute("SELECT count(*) FROM records").fetchone()[0])
    p = str(path).replace("'", "''")
    try:
        rows = con.execute(f"""SELECT r.rid, CAST(l.{column} AS BIGINT) FROM records r
                               JOIN read_parquet('{p}') l ON r.crm_id = CAST(l.crm_id AS VARCHAR)""").fetchnumpy()
    except duckdb.Error as exc:
        raise InputError(str(path), f"expected columns crm_id and {column}: {str(exc).splitlines()[0]}") from None
    out = np.full(n, -1, dtype=np.int64)
    keys = list(rows)
    out[np.asarray(rows[keys[0]], dtype=np.int64)] = np.asarray(rows[keys[1]], dtype=np.int64)
    return out


def resolve_identities(con: duckdb.DuckDBPyConnection, *, labels_path: Path | None = None,
                       model: MatchModel | None = None, truth_path: Path | None = None, threshold: float = 0.5,
                       max_block: int = 50, l2: float = 1.0) -> IdentityResult:
    """Resolve ``records`` into customers; creates ``record_customer(rid, customer)`` and ``customers``.

    Either ``labels_path`` (clerical-review labels: crm_id, label; complete clusters) to fit the match
    model, or a fitted ``model``; with neither, the default rule :meth:`MatchModel.default`.
    ``truth_path`` (crm_id, true_customer) enables the quality report.
    """
    if not (0.0 < float(threshold) < 1.0):
        raise InputError("threshold", f"expected a probability in (0, 1), got {threshold!r}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n = int(con.execute("SELECT count(*) FROM records").fetchone()[0])
    blocking = candidate_pairs(con, max_block)
    timings["blocking"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pair_index, phi = comparison_features(con)
    timings["comparison_features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_train = 0
    source = getattr(model, "source_", "given")
    if model is None and labels_path is None:
        model, source = MatchModel.default(), "default rule"
    if model is None:
        source = "labels"
        lab = _read_labels(con, labels_path, "label")
        la, lb = lab[pair_index[:, 0]], lab[pair_index[:, 1]]
        train = (la >= 0) | (lb >= 0)          # labels list complete clusters: one listed row suffices
        n_train = int(train.sum())
        y = ((la == lb) & (la >= 0))[train].astype(np.float64)
        if n_train == 0 or y.min() == y.max():
            raise InputError(str(labels_path), f"expected labelled candidate pairs of both classes, got {n_train} "
                                               f"pairs with {int(y.sum()) if n_train else 0} matches")
        model = MatchModel(l2=l2).fit(phi[train], y)
    prob = model.predict_proba(phi) if phi.shape[0] else np.zeros(0)
    timings["match_model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels = cluster_labels(n, pair_index, prob >= threshold)
    # customer index: clusters ordered by their smallest record (records are sorted by crm_id)
    _, customer = np.unique(labels, return_inverse=True)
    con.register("rc_frame", pd.DataFrame({"rid": np.arange(n, dtype=np.int64),
                                           "customer": customer.astype(np.int32)}))
    con.execute("CREATE OR REPLACE TABLE record_customer AS SELECT * FROM rc_frame")
    con.unregister("rc_frame")
    timings["clustering"] = time.perf_counter() - t0
    result = IdentityResult(n, int(customer.max()) + 1 if n else 0, blocking.candidate_pairs,
                            int((prob >= threshold).sum()), float(threshold), model, blocking, n_train,
                            timings=timings, model_source=source)
    if truth_path is not None:
        t0 = time.perf_counter()
        truth = _read_labels(con, truth_path, "true_customer")
        known = truth >= 0
        result.scores = pairwise_scores(labels[known], truth[known])
        if labels_path is not None and source == "labels":
            held = known & (_read_labels(con, labels_path, "label") < 0)
            if held.any():        # every record may be labelled on a small data set: then no held-out score
                result.heldout_scores = pairwise_scores(labels[held], truth[held])
        same = truth[pair_index[:, 0]] == truth[pair_index[:, 1]]
        same &= truth[pair_index[:, 0]] >= 0
        result.blocking_recall = float(same.sum()) / max(result.scores.true_pairs, 1)
        rows = []
        for th in TRADEOFF_THRESHOLDS:
            s = pairwise_scores(cluster_labels(n, pair_index, prob >= th)[known], truth[known])
            rows.append({"threshold": th, "precision": s.precision, "recall": s.recall, "f1": s.f1,
                         "matched_pairs": int((prob >= th).sum())})
        result.tradeoff = pd.DataFrame(rows)
        timings["evaluation"] = time.perf_counter() - t0
    return result
