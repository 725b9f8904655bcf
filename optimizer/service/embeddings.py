"""User and item embeddings (truncated SVD on scipy.sparse) and ANN candidates (hnswlib).

``E ≈ U Vᵀ`` with ``U = L Σ^{1/2}``, ``V = R Σ^{1/2}`` from the k largest
singular triplets of the (users × items) interaction matrix
(:func:`scipy.sparse.linalg.svds`); a user with a new interaction row *x* is
refreshed by the fold-in ``u = x V Σ^{-1}`` (exact for rows of the training
matrix). :class:`CandidateIndex` wraps an hnswlib inner-product HNSW index;
:func:`exact_top_k` is the brute-force reference used for recall@k.
hnswlib is imported only when an index is built.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from formulations.errors import InputError


class SVDEmbeddings:
    """Truncated SVD embeddings (scikit-learn style: ``fit(...) -> self``, learned attributes end in ``_``).

    Parameters
    ----------
    dim : int
        Number of singular triplets k.
    random_state : int
        Seed of the ARPACK start vector.
    """

    def __init__(self, dim: int = 16, random_state: int = 0) -> None:
        if int(dim) != dim or dim < 1:
            raise InputError("dim", f"expected a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.random_state = random_state

    def fit(self, interactions: sp.spmatrix) -> "SVDEmbeddings":
        from scipy.sparse.linalg import svds

        m = sp.csr_matrix(interactions, dtype=np.float64)
        if self.dim >= min(m.shape):
            raise InputError("dim", f"expected dim < min{m.shape}, got {self.dim}")
        v0 = np.random.default_rng(self.random_state).random(min(m.shape))
        left, s, right_t = svds(m, k=self.dim, v0=v0)
        order = np.argsort(-s)
        s, left, right = s[order], left[:, order], right_t[order].T
        root = np.sqrt(s)
        self.singular_values_ = s
        self.user_vectors_ = (left * root).astype(np.float32)
        self.item_vectors_ = (right * root).astype(np.float32)
        return self

    def fold_in(self, rows: sp.spmatrix | np.ndarray) -> np.ndarray:
        """u = x V Σ^{-1} for new interaction rows x (n, items) -> (n, dim)."""
        x = sp.csr_matrix(rows, dtype=np.float64)
        return np.asarray(x @ (self.item_vectors_.astype(np.float64) / self.singular_values_), dtype=np.float32)


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(q, k) item ids of the k largest inner products, best first (brute force)."""
    scores = np.atleast_2d(queries) @ items.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean |approx_q ∩ exact_q| / k over the queries."""
    k = exact.shape[1]
    return float(np.mean([len(set(a[:k].tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact)]))


class CandidateIndex:
    """hnswlib HNSW index (inner product) over item vectors.

    Parameters
    ----------
    items : (n_items, dim) float32
    m : int
        HNSW graph degree M.
    ef_construction : int
    random_state : int
    threads : int
        Build threads (queries are single-threaded in the service).
    """

    def __init__(self, items: np.ndarray, m: int = 32, ef_construction: int = 200, random_state: int = 0,
                 threads: int = 1) -> None:
        import hnswlib

        x = np.ascontiguousarray(items, dtype=np.float32)
        self.n_items, self.dim = x.shape
        self.index = hnswlib.Index(space="ip", dim=self.dim)
        self.index.init_index(max_elements=self.n_items, ef_construction=ef_construction, M=m,
                              random_seed=random_state)
        self.index.set_num_threads(threads)
        self.index.add_items(x, np.arange(self.n_items))
        self.index.set_num_threads(1)
        self._ef = 0

    def save(self, path: str) -> None:
        """hnswlib's binary index file (reload with :meth:`load`)."""
        self.index.save_index(str(path))

    @classmethod
    def load(cls, path: str, n_items: int, dim: int) -> "CandidateIndex":
        import hnswlib

        self = cls.__new__(cls)
        self.n_items, self.dim = int(n_items), int(dim)
        self.index = hnswlib.Index(space="ip", dim=self.dim)
        self.index.load_index(str(path), max_elements=self.n_items)
        self.index.set_num_threads(1)
        self._ef = 0
        return self

    def query(self, vector: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, inner products) of about the k best items (k is capped at the index size)."""
        ids, sims = self.query_many(np.asarray(vector).reshape(1, -1), k, ef)
        return ids[0], sims[0]

    def query_many(self, vectors: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, inner products), both (n, min(k, n_items)), for n query vectors in one hnswlib call."""
        k = int(min(k, self.n_items))
        ef = int(max(k, ef or k))
        if ef != self._ef:
            self.index.set_ef(ef)
            self._ef = ef
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        try:
            labels, dist = self.index.knn_query(q, k=k)
        except RuntimeError:      # hnswlib cannot return k results (k close to the index size): exact search
            items = self.index.get_items(np.arange(self.n_items), return_type="numpy")
            ids = exact_top_k(items, q, k)
            return ids.astype(np.int64), np.take_along_axis(q @ items.T, ids, axis=1)
        return labels.astype(np.int64), 1.0 - dist
