"""Truncated SVD embeddings, fold-in refresh, exact top-k and hnswlib recall@k."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from formulations.errors import InputError
from optimizer.service.embeddings import CandidateIndex, SVDEmbeddings, exact_top_k, recall_at_k


def interactions(seed=0, users=120, items=80, density=0.1):
    rng = np.random.default_rng(seed)
    return sp.random(users, items, density=density, random_state=rng, data_rvs=lambda n: np.ones(n), format="csr")


def test_svd_embeddings_are_the_best_rank_k_approximation():
    m = interactions()
    emb = SVDEmbeddings(dim=8, random_state=0).fit(m)
    u, s, vt = np.linalg.svd(m.toarray(), full_matrices=False)
    best = (u[:, :8] * s[:8]) @ vt[:8]
    np.testing.assert_allclose(emb.singular_values_, s[:8], rtol=1e-8)
    np.testing.assert_allclose(emb.user_vectors_.astype(float) @ emb.item_vectors_.T.astype(float), best, atol=1e-4)


def test_fold_in_of_a_training_row_gives_its_user_vector():
    m = interactions(1)
    emb = SVDEmbeddings(dim=6, random_state=0).fit(m)
    np.testing.assert_allclose(emb.fold_in(m[:20]), emb.user_vectors_[:20], atol=1e-4)
    with pytest.raises(InputError):
        SVDEmbeddings(dim=500).fit(m)


def test_exact_top_k_is_sorted_brute_force():
    rng = np.random.default_rng(3)
    items, q = rng.normal(size=(500, 8)), rng.normal(size=(4, 8))
    top = exact_top_k(items, q, 10)
    np.testing.assert_array_equal(top, np.argsort(-(q @ items.T), axis=1)[:, :10])
    assert recall_at_k(top, top) == 1.0 and recall_at_k(top[:, ::-1][:, :10], top) == 1.0


def test_hnswlib_recall_at_k_against_exact_search(tmp_path):
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(30, 16))
    items = (centres[rng.integers(0, 30, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(np.float32)
    index = CandidateIndex(items, random_state=0)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    exact = exact_top_k(items, queries, 50)
    low = recall_at_k(np.array([index.query(q, 50, ef=50)[0] for q in queries]), exact)
    high = recall_at_k(np.array([index.query(q, 50, ef=400)[0] for q in queries]), exact)
    assert high >= 0.95 and high >= low
    ids, scores = index.query(queries[0], 10)
    np.testing.assert_allclose(scores, items[ids] @ queries[0], rtol=1e-4, atol=1e-4)
    assert len(index.query(queries[0], 10_000)[0]) == 3000
    index.save(str(tmp_path / "index.bin"))
    again = CandidateIndex.load(str(tmp_path / "index.bin"), 3000, 16)
    np.testing.assert_array_equal(again.query(queries[1], 20, ef=100)[0], index.query(queries[1], 20, ef=100)[0])
