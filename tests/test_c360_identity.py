"""Identity resolution: key normalisation, blocking, the match model, clustering and its quality."""

from __future__ import annotations

import itertools
import json
from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations.c360 import (MATCH_FEATURES, logistic_loss_grad, normalize_email, normalize_name,
                               normalize_phone, normalize_postcode, pairwise_scores, union_find_labels)
from formulations.errors import InputError
from optimizer.c360.identity import MatchModel, candidate_pairs, cluster_labels
from optimizer.c360.ingest import install_macros
from tests.c360_helpers import built

ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126).map(str) | st.sampled_from(
    ["\t", "\n", " ", "+", "@", "0", "4", "7"]), max_size=20)


@lru_cache(maxsize=1)
def _macro_connection() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    install_macros(c)
    return c


@settings(max_examples=40, deadline=None)
@given(values=st.lists(ASCII | st.from_regex(r"(\+44|0044|0)?[ ()-]?7[0-9 ]{9,11}", fullmatch=True), max_size=8))
def test_sql_normalisation_matches_python_reference(values):
    c = _macro_connection()
    c.register("vals", pd.DataFrame({"s": pd.Series(values, dtype=object)}))
    got = c.execute("SELECT norm_phone(s), norm_email(s), norm_name(s), norm_postcode(s) FROM vals").fetchall()
    for v, row in zip(values, got):
        assert row == (normalize_phone(v), normalize_email(v), normalize_name(v), normalize_postcode(v)), v


def test_phone_formats_normalise_to_one_key():
    forms = ["07700 900123", "+44 7700 900123", "(07700) 900123", "0044 7700 900123", "+44 (0)7700 900123",
             "07700900123"]
    assert {normalize_phone(f) for f in forms} == {"07700900123"}
    assert normalize_phone("12345") is None and normalize_email("no-at-sign") is None
    assert normalize_name(" O'Neil ") == "oneil"


def brute_force_pairs(records: pd.DataFrame, max_block: int) -> set[tuple[int, int]]:
    keys = {
        "phone": records["phone"], "email": records["email"],
        "last_postcode": records["last"] + "|" + records["postcode"],
        "first_dob": records["first"] + "|" + records["dob"].astype(str).where(records["dob"].notna()),
        "card": records["card"],
    }
    pairs = set()
    for values in keys.values():
        blocks: dict[str, list[int]] = {}
        for rid, v in zip(records["rid"], values):
            if isinstance(v, str):
                blocks.setdefault(v, []).append(int(rid))
        for members in blocks.values():
            if len(members) <= max_block:
                pairs.update(itertools.combinations(sorted(members), 2))
    return pairs


@pytest.mark.parametrize("max_block", [2, 3, 50])
def test_blocking_equals_brute_force(max_block):
    rng = np.random.default_rng(3)
    n = 60
    pick = lambda opts: [opts[j] if j < len(opts) else None for j in rng.integers(0, len(opts) + 1, n)]  # noqa
    records = pd.DataFrame({
        "rid": np.arange(n), "phone": pick(["01", "02", "03"]), "email": pick(["a@x", "b@x"]),
        "last": pick(["smith", "jones"]), "postcode": pick(["AB1", "CD2"]), "first": pick(["ann", "bob", "cy"]),
        "dob": pd.to_datetime(pick(["1980-01-01", "1990-05-05"])), "card": pick(["4111", "4222", "4333", "4444"]),
    })
    c = duckdb.connect()
    c.register("r", records)
    c.execute("CREATE TABLE records AS SELECT rid, phone, email, last, postcode, first, CAST(dob AS DATE) AS dob, "
              "card FROM r")
    stats = candidate_pairs(c, max_block)
    got = set(map(tuple, c.execute("SELECT a, b FROM pairs").fetchall()))
    assert got == brute_force_pairs(records, max_block)
    assert stats.candidate_pairs == len(got)
    if max_block == 2:
        assert sum(stats.skipped_blocks.values()) > 0


def test_match_model_matches_scikit_learn_and_gradient():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    X = rng.random((400, len(MATCH_FEATURES)))
    w = rng.normal(0, 2, len(MATCH_FEATURES))
    y = (rng.random(400) < 1 / (1 + np.exp(-(X @ w - 1)))).astype(float)
    model = MatchModel(l2=2.0, tol=1e-10).fit(X, y)
    ref = sklearn.LogisticRegression(C=1 / 2.0, tol=1e-10, max_iter=10_000).fit(X, y)
    assert model.coef_ == pytest.approx(ref.coef_[0], abs=1e-4)
    assert model.intercept_ == pytest.approx(ref.intercept_[0], abs=1e-4)
    assert model.predict_proba(X) == pytest.approx(ref.predict_proba(X)[:, 1], abs=1e-5)
    # analytic gradient vs central differences
    theta = rng.normal(size=len(MATCH_FEATURES) + 1)
    _, grad = logistic_loss_grad(theta, X, y, 2.0)
    eps = 1e-6
    num = [(logistic_loss_grad(theta + eps * e, X, y, 2.0)[0] - logistic_loss_grad(theta - eps * e, X, y, 2.0)[0])
           / (2 * eps) for e in np.eye(theta.size)]
    assert grad == pytest.approx(num, rel=1e-5, abs=1e-5)
    again = MatchModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.predict_proba(X) == pytest.approx(model.predict_proba(X))
    with pytest.raises(InputError, match="labels"):
        MatchModel().fit(X, np.zeros(400))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 25), data=st.data())
def test_clusters_equal_union_find_reference(n, data):
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40))
    pairs = [(min(a, b), max(a, b)) for a, b in pairs if a != b]
    matched = np.array(data.draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs))), dtype=bool)
    idx = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    got = cluster_labels(n, idx, matched)
    assert got.tolist() == union_find_labels(n, [p for p, m in zip(pairs, matched) if m]).tolist()


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=30))
def test_pairwise_scores_equal_brute_force(labels):
    pred = np.array([a for a, _ in labels], dtype=np.int64)
    true = np.array([b for _, b in labels], dtype=np.int64)
    s = pairwise_scores(pred, true)
    pp = {(i, j) for i, j in itertools.combinations(range(len(labels)), 2) if pred[i] == pred[j]}
    tp = {(i, j) for i, j in itertools.combinations(range(len(labels)), 2) if true[i] == true[j]}
    assert (s.true_positive_pairs, s.predicted_pairs, s.true_pairs) == (len(pp & tp), len(pp), len(tp))


def test_identity_quality_on_default_messiness():
    out, result = built()
    ident = result.identity
    assert ident.scores is not None
    assert ident.scores.f1 >= 0.97, ident.summary()
    assert ident.heldout_scores.f1 >= 0.97
    assert ident.n_pairs <= 20 * ident.n_records
    assert ident.blocking_recall >= 0.95
    assert ident.model.converged_
    # the trade-off: precision rises and recall falls with the threshold
    tr = ident.tradeoff
    assert tr["precision"].iloc[-1] >= tr["precision"].iloc[0]
    assert tr["recall"].iloc[-1] <= tr["recall"].iloc[0]
    report = json.loads((out / "identity_report.json").read_text())
    assert report["all_records"]["f1"] == pytest.approx(ident.scores.f1)
    # the identity map covers every CRM record and agrees with the truth on most records
    imap = pd.read_parquet(out / "identity_map.parquet")
    crm = imap[imap["source"] == "crm"]
    assert crm["key"].is_unique and len(crm) == ident.n_records
    assert set(imap["source"]) == {"crm", "email", "phone", "card", "cookie"}


def test_default_match_rule_equals_its_field_by_field_definition_and_resolves_well():
    """No labels: the hand-set rule of formulations.c360 — linear coefficients = the field-by-field score."""
    import datetime as dt

    from formulations.c360 import default_match_score
    from optimizer.c360.identity import comparison_features
    from optimizer.c360.ingest import create_rejects, find_sources, load_records
    from tests.c360_helpers import raw_dir

    con = duckdb.connect()
    install_macros(con)
    sources = find_sources(raw_dir())
    create_rejects(con)
    n = load_records(con, sources)
    stats = candidate_pairs(con)
    idx, phi = comparison_features(con)
    model = MatchModel.default()
    score = model.decision_function(phi)
    records = con.execute("SELECT rid, first, last, email, phone, postcode, dob, card FROM records ORDER BY rid").df()
    rec = records.astype(object).where(records.notna(), None).to_dict(orient="records")
    for r in rec:
        if r["dob"] is not None:
            r["dob"] = pd.Timestamp(r["dob"]).date()
    jw = lambda x, y: con.execute("SELECT jaro_winkler_similarity(?, ?)", [x, y]).fetchone()[0]  # noqa: E731
    rng = np.random.default_rng(5)
    for k in rng.choice(len(idx), 150, replace=False):
        a, b = idx[k]
        assert score[k] == pytest.approx(default_match_score(rec[a], rec[b], jw), abs=1e-9), (rec[a], rec[b])
    assert isinstance(rec[0]["dob"], (dt.date, type(None)))
    # quality on the generated data without using its labels (measured F1 0.9946 on this data set)
    truth = pd.read_parquet(raw_dir() / "truth" / "identities.parquet")
    crm_ids = con.execute("SELECT crm_id FROM records ORDER BY rid").fetchnumpy()["crm_id"]
    true_label = truth.set_index("crm_id").loc[list(crm_ids), "true_customer"].to_numpy()
    labels = cluster_labels(n, idx, model.predict_proba(phi) >= 0.5)
    s = pairwise_scores(labels, true_label)
    assert s.f1 >= 0.97 and stats.candidate_pairs <= 20 * n, (s.precision, s.recall)
    # household partners sharing a phone and a postcode (different first name and birthday) stay apart
    hh = {"first": "ann", "last": "lee", "phone": "07700900001", "postcode": "AB12CD",
          "dob": dt.date(1980, 2, 3), "email": None, "card": None}
    partner = dict(hh, first="bob", dob=dt.date(1979, 7, 9))
    duplicate = dict(hh, first="anne", email="ann@x.example", postcode="ZZ99ZZ")
    assert default_match_score(hh, partner, jw) < 0 < default_match_score(hh, duplicate, jw)
