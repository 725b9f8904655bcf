r"""Finite discounted Markov decision processes: the model, the Bellman operator, stopping rules.

Model
-----
Sets
    states :math:`S = \{0, \dots, n-1\}`, actions :math:`A = \{0, \dots, m-1\}`,
    admissible actions :math:`A(s) \subseteq A` (e.g. no second call within
    the cooling period, no contact without consent) and the admissible
    state-action pairs :math:`SA = \{(s, a) : a \in A(s)\}`, :math:`L = |SA|`.

Data
    rewards :math:`r(s, a)` for :math:`(s, a) \in SA`; transition
    probabilities :math:`q(s' \mid s, a) \ge 0` with
    :math:`\sum_{s'} q(s' \mid s, a) = 1`; a discount factor
    :math:`\beta \in [0, 1)`.

Representation (QuantEcon's ``DiscreteDP`` conventions)
    *product form*: ``R`` (n, m) with ``-inf`` marking inadmissible actions
    and ``Q`` (n, m, n); *state-action form*: ``R`` (L,), ``Q`` (L, n) dense
    or scipy sparse, with ``s_indices`` and ``a_indices`` naming each pair.
    Internally (:class:`MDPModel`) the pairs are sorted by (state, action);
    ``state_ptr[s]:state_ptr[s+1]`` are the pairs of state *s* and
    ``transition[transition_rows[j]]`` is the transition row of pair *j* (a
    view on the caller's dense array or a CSR matrix; nothing is copied
    that need not be).

Operators
    For :math:`v \in \mathbb{R}^n` and a (deterministic, stationary) policy
    :math:`\sigma` with :math:`\sigma(s) \in A(s)`:

    .. math::

        (Tv)(s) = \max_{a \in A(s)} \; r(s,a) + \beta \sum_{s'} q(s' \mid s,a)\, v(s'),
        \qquad T_\sigma v = r_\sigma + \beta Q_\sigma v,

    and :math:`v_\sigma = (I - \beta Q_\sigma)^{-1} r_\sigma` is the value of
    :math:`\sigma`. :math:`v^* = \max_\sigma v_\sigma` is the unique fixed
    point of *T*; a policy is optimal iff it is :math:`v^*`-greedy. A policy
    is *v-greedy* when :math:`T_\sigma v = T v` (ties: the lowest action).

    Three facts carry every proof below: *T* and :math:`T_\sigma` are
    monotone (:math:`u \le v \Rightarrow Tu \le Tv`), they shift constants
    by :math:`\beta` (:math:`T(v + c\mathbf{1}) = Tv + \beta c \mathbf{1}`),
    and hence they are :math:`\beta`-contractions in the sup-norm.

Algorithms (:mod:`solvers.dp`)
    *Value iteration* (VI) :math:`v_{k+1} = T v_k`. *Policy iteration* (PI):
    evaluate :math:`v_{\sigma_k}` by solving
    :math:`(I - \beta Q_{\sigma_k}) v = r_{\sigma_k}` with a sparse Krylov
    solver (never a dense inverse), then let :math:`\sigma_{k+1}` be
    :math:`v_{\sigma_k}`-greedy, keeping :math:`\sigma_k(s)` on ties; stop
    when the policy repeats (finitely many policies, each step improves).
    A solve with residual :math:`\rho` is within
    :math:`\|\rho\|_\infty/(1-\beta)` of :math:`v_\sigma` because
    :math:`\|(I-\beta Q_\sigma)^{-1}\|_\infty \le 1/(1-\beta)`.
    *Modified policy iteration* (MPI):
    :math:`v_{k+1} = T_{\sigma_k}^{m_k} T v_k` with :math:`\sigma_k`
    :math:`v_k`-greedy and :math:`m_k \le k_{\max}` partial evaluation steps
    (Puterman 2005, §6.5).

Value bounds (McQueen–Porteus)
    For any :math:`v`, let :math:`d = Tv - v` and :math:`\sigma` be
    *v*-greedy. Then, componentwise,

    .. math::

        L := Tv + \frac{\beta \min d}{1-\beta} \;\le\; v_\sigma \;\le\; v^*
        \;\le\; Tv + \frac{\beta \max d}{1-\beta} =: U.

    *Proof.* :math:`T_\sigma v = Tv \ge v + (\min d)\mathbf{1}`; applying
    :math:`T_\sigma` *k* times (monotone, constant shift) gives
    :math:`T_\sigma^{k+1} v \ge Tv + (\beta + \dots + \beta^k)\min d`, and
    :math:`T_\sigma^k v \to v_\sigma`. Likewise
    :math:`Tv \le v + (\max d)\mathbf{1}` gives
    :math:`T^{k+1} v \le Tv + (\beta + \dots + \beta^k)\max d` and
    :math:`T^k v \to v^*`. :math:`\square`

Stopping rules (both give an :math:`\varepsilon`-optimal policy)
    *Span rule* (McQueen–Porteus): stop when
    :math:`\operatorname{sp}(d) = \max d - \min d < \varepsilon(1-\beta)/\beta`.
    Then :math:`0 \le v^* - v_\sigma \le U - L = \beta\,\operatorname{sp}(d)/(1-\beta) < \varepsilon`,
    and the midpoint :math:`\hat v = Tv + \beta\,\tfrac{\max d + \min d}{2}/(1-\beta)`
    satisfies :math:`\|\hat v - v^*\|_\infty \le \beta\,\operatorname{sp}(d)/(2(1-\beta)) < \varepsilon/2`.

    *Sup-norm rule*: with :math:`v_{k+1} = T v_k`, stop when
    :math:`\|v_{k+1} - v_k\|_\infty < \varepsilon(1-\beta)/(2\beta)` and
    return :math:`v_{k+1}` with a :math:`v_{k+1}`-greedy :math:`\sigma`.
    *Proof.* :math:`\|v_{k+1} - v^*\| \le \|T v_{k+1} - T v_k\| + \|T v_{k+1} - v^*\|`
    and contraction give :math:`\|v_{k+1} - v^*\| \le \tfrac{\beta}{1-\beta}\|v_{k+1} - v_k\| < \varepsilon/2`;
    and :math:`\|v_\sigma - v_{k+1}\| \le \|T_\sigma v_\sigma - T_\sigma v_{k+1}\| + \|T v_{k+1} - T v_k\|
    \le \beta\|v_\sigma - v_{k+1}\| + \beta\|v_{k+1} - v_k\|`, so
    :math:`\|v_\sigma - v_{k+1}\| < \varepsilon/2` and :math:`\|v_\sigma - v^*\| < \varepsilon`.
    :math:`\square` (This is QuantEcon's VI rule; with the same start both
    produce the same iterates.) Since :math:`\operatorname{sp}(d) \le 2\|d\|_\infty`,
    on the same iterates the span rule fires no later than the sup-norm rule.

    Every result reports the bounds it achieved: ``lower`` and ``upper``
    (:math:`L \le v^* \le U` from the last Bellman pass, intersected over
    the passes made at the end), ``error_bound``
    :math:`= \max_s \max(v - L, U - v) \ge \|v - v^*\|_\infty` and
    ``policy_error_bound`` :math:`= \beta\,\operatorname{sp}(d)/(1-\beta) \ge \|v^* - v_\sigma\|_\infty`.
    Hitting ``max_iter`` is reported as ``converged = False`` (the bounds
    stay valid), never silently.

Action elimination (MacQueen's test, Puterman §6.7)
    With *d* from the pass at *v* and :math:`q(s,a) = r(s,a) + \beta\sum_{s'} q(s'|s,a) v(s')`:
    if :math:`Tv(s) - q(s,a) > \beta\,\operatorname{sp}(d)/(1-\beta)` then
    *a* is not optimal at *s*. *Proof.* :math:`Tv \le v + \max d` gives
    :math:`Q^*(s,a) = r + \beta q^\top v^* \le r + \beta q^\top U \le q(s,a) + \beta\max d/(1-\beta)`,
    while :math:`v^*(s) \ge L(s) = Tv(s) + \beta\min d/(1-\beta)`; so
    :math:`Q^*(s,a) < v^*(s)`. :math:`\square` Removing pairs that are
    optimal for no optimal policy leaves :math:`v^*` unchanged (it still
    solves the reduced Bellman equation), so the bounds above, computed on
    the reduced problem, stay valid for the original one. The solvers drop
    such pairs permanently (with a rounding margin) and stop reading their
    transition rows.

Finite horizon (backward induction)
    :math:`v_T` given, :math:`v_{t}(s) = \max_{a \in A(s)} r(s,a) + \beta \sum_{s'} q(s'|s,a) v_{t+1}(s')`,
    :math:`\sigma_t` the maximisers, :math:`t = T-1, \dots, 0`.

This module also holds the plain NumPy reference operators (the twins of
the numba kernels in :mod:`solvers._dp_kernels`) used by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from formulations._validate import integer_array
from formulations.errors import InputError

ROW_SUM_TOL = 1e-8   # |sum_s' q(s'|s,a) - 1| allowed for a transition row


@dataclass(frozen=True, eq=False)
class MDPModel:
    """A validated finite MDP in sorted state-action form.

    Attributes
    ----------
    beta : float
        Discount factor in [0, 1).
    num_states, num_actions : int
        n and m (actions are ``0..m-1``; not every action is admissible everywhere).
    rewards : ndarray (L,) float64
        Rewards of the admissible pairs, sorted by (state, action).
    states, actions : ndarray (L,) int64
        State and action of each pair.
    state_ptr : ndarray (n + 1,) int64
        Pairs of state *s* are ``state_ptr[s]:state_ptr[s+1]`` (ascending action).
    transition : ndarray (rows, n) float64 or scipy.sparse.csr_matrix
        Transition rows (C-contiguous dense or CSR with sorted indices).
    transition_rows : ndarray (L,) int64
        Row of ``transition`` holding the distribution of each pair.
    """

    beta: float
    num_states: int
    num_actions: int
    rewards: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    state_ptr: np.ndarray
    transition: Any
    transition_rows: np.ndarray

    @property
    def num_sa_pairs(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.transition)

    def pair_index(self) -> np.ndarray:
        """(n, m) table of pair indices, -1 where the action is not admissible."""
        table = np.full((self.num_states, self.num_actions), -1, dtype=np.int64)
        table[self.states, self.actions] = np.arange(self.num_sa_pairs)
        return table

    def transition_csr(self) -> sp.csr_matrix:
        """The (L, n) transition matrix of the pairs in sorted order, as CSR."""
        if self.is_sparse:
            return self.transition[self.transition_rows]
        return sp.csr_matrix(self.transition[self.transition_rows])

    def with_rewards(self, rewards: np.ndarray) -> "MDPModel":
        """The same MDP with other (validated-by-caller) rewards of shape (L,)."""
        return MDPModel(self.beta, self.num_states, self.num_actions, np.ascontiguousarray(rewards, np.float64),
                        self.states, self.actions, self.state_ptr, self.transition, self.transition_rows)

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        return (f"MDPModel(states={self.num_states}, actions={self.num_actions}, pairs={self.num_sa_pairs}, "
                f"beta={self.beta}, transitions={kind})")


# ---------------------------------------------------------------------------
# construction and validation
# ---------------------------------------------------------------------------

def check_beta(beta: Any) -> float:
    """A discount factor in [0, 1)."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise InputError("beta", f"expected a discount factor in [0, 1), got {beta!r}") from None
    if not np.isfinite(b) or b < 0 or b >= 1:
        raise InputError("beta", f"expected a discount factor in [0, 1), got {beta!r}")
    return b


def _as_float_array(field: str, value: Any, ndims: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover
        raise InputError(field, f"expected a numeric array ({exc})") from None
    if arr.dtype.kind not in "fiub":
        raise InputError(field, f"expected numbers, got values of type {arr.dtype}")
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-d" for d in ndims)
        raise InputError(field, f"expected a {want} array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_rewards(R: np.ndarray) -> None:
    bad = np.isnan(R) | np.isposinf(R)
    if bad.any():
        idx = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), R.shape)
        where = ", ".join(str(int(i)) for i in idx)
        raise InputError("R", f"expected finite rewards (-inf marks an inadmissible action), "
                              f"got {R[idx]} at index ({where})")


def _check_rows(Q2: Any, rows: np.ndarray, label) -> None:
    """Entries finite and >= 0, rows summing to one (only the rows in ``rows``)."""
    if sp.issparse(Q2):
        data = Q2.data
        if data.size and (not np.isfinite(data).all() or data.min() < 0):
            bad = ~np.isfinite(data) | (data < 0)
            k = int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(Q2.indptr, k, side="right") - 1)
            raise InputError("Q", f"expected probabilities >= 0, got {data[k]} in the row of {label(row)}")
        sums = np.asarray(Q2.sum(axis=1)).ravel()[rows]
    else:
        sub = Q2[rows] if rows.size != Q2.shape[0] else Q2
        smallest = sub.min() if sub.size else 0.0
        if not np.isfinite(smallest) or smallest < 0:
            bad = ~np.isfinite(sub) | (sub < 0)
            r = int(np.flatnonzero(bad.any(axis=1))[0])
            c = int(np.flatnonzero(bad[r])[0])
            raise InputError("Q", f"expected probabilities >= 0, got {sub[r, c]} in the row of {label(int(rows[r]))}")
        sums = sub.sum(axis=1)
    bad = np.abs(sums - 1.0) > ROW_SUM_TOL
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError("Q", f"expected each transition row to sum to 1 (tolerance {ROW_SUM_TOL:g}), "
                              f"got {sums[k]:.12g} for {label(int(rows[k]))}")


def _state_ptr(states: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(states, minlength=n)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise InputError("R", f"expected at least one admissible action in every state, state {int(empty[0])} "
                              "has none")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def make_mdp_model(R: Any, Q: Any, beta: Any, s_indices: Any = None, a_indices: Any = None) -> MDPModel:
    """Validate QuantEcon-style MDP data and return the sorted state-action model.

    Parameters
    ----------
    R : array_like (n, m) or (L,)
        Rewards; ``-inf`` marks an inadmissible action (product form) or a
        pair to drop (state-action form). NaN and ``+inf`` are errors.
    Q : array_like (n, m, n) or (L, n), or scipy sparse (L, n)
        Transition probabilities; rows of admissible pairs must be >= 0 and
        sum to 1 within ``ROW_SUM_TOL``.
    beta : float
        Discount factor in [0, 1).
    s_indices, a_indices : array_like (L,) of int, optional
        State and action of each row (state-action form only).

    Raises
    ------
    InputError
        Naming the field (``R``, ``Q``, ``beta``, ``s_indices``, ``a_indices``).
    """
    b = check_beta(beta)
    if sp.issparse(Q):
        sa_form = True
    else:
        Qa = np.asarray(Q) if not isinstance(Q, np.ndarray) else Q
        if Qa.ndim not in (2, 3):
            raise InputError("Q", f"expected a 3-d (n, m, n) or 2-d (L, n) array, got shape {Qa.shape}")
        sa_form = Qa.ndim == 2
    if sa_form:
        return _from_state_action(R, Q, b, s_indices, a_indices)
    if s_indices is not None or a_indices is not None:
        raise InputError("s_indices", "expected s_indices/a_indices only with a 1-d R and a 2-d Q")
    return _from_product(R, Qa, b)


def _from_product(R: Any, Q: np.ndarray, beta: float) -> MDPModel:
    R = _as_float_array("R", R, (2,))
    n, m = R.shape
    if n == 0 or m == 0:
        raise InputError("R", f"expected at least one state and one action, got shape {R.shape}")
    if Q.shape != (n, m, n):
        raise InputError("Q", f"expected shape ({n}, {m}, {n}) to match R {R.shape}, got {Q.shape}")
    _check_rewards(R)
    Q = _as_float_array("Q", Q, (3,))
    states, actions = np.nonzero(R > -np.inf)
    states = states.astype(np.int64)
    actions = actions.astype(np.int64)
    ptr = _state_ptr(states, n)
    Q2 = Q.reshape(n * m, n)
    rows = states * m + actions
    _check_rows(Q2, rows, lambda r: f"(state {r // m}, action {r % m})")
    return MDPModel(beta, n, m, R[states, actions].copy(), states, actions, ptr, Q2, rows)


def _indices(field: str, value: Any, L: int) -> np.ndarray:
    if value is None:
        raise InputError(field, "expected an integer array with the state-action form (1-d R, 2-d Q)")
    return integer_array(field, value, length=L, minimum=0)


def _from_state_action(R: Any, Q: Any, beta: float, s_indices: Any, a_indices: Any) -> MDPModel:
    R = _as_float_array("R", R, (1,))
    L = R.shape[0]
    if L == 0:
        raise InputError("R", "expected at least one state-action pair, got an empty array")
    if sp.issparse(Q):
        Q2 = sp.csr_matrix(Q, dtype=np.float64)
        if not Q2.has_canonical_format:      # never sort the caller's arrays in place
            Q2 = Q2.copy()
            Q2.sum_duplicates()
        if Q2.indptr.dtype != np.int64:
            Q2.indptr = Q2.indptr.astype(np.int64)
    else:
        Q2 = _as_float_array("Q", Q, (2,))
    if Q2.shape[0] != L:
        raise InputError("Q", f"expected {L} rows (one per entry of R), got shape {Q2.shape}")
    n = int(Q2.shape[1])
    if n == 0:
        raise InputError("Q", "expected at least one state (column), got 0")
    s = _indices("s_indices", s_indices, L)
    a = _indices("a_indices", a_indices, L)
    if s.max() >= n:
        i = int(np.flatnonzero(s >= n)[0])
        raise InputError("s_indices", f"expected state indices in [0, {n}), got {s[i]} at index {i}")
    _check_rewards(R)
    keep = R > -np.inf
    order = np.lexsort((a, s))
    order = order[keep[order]]
    s_sorted, a_sorted = s[order], a[order]
    dup = (np.diff(s_sorted) == 0) & (np.diff(a_sorted) == 0)
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise InputError("a_indices", f"expected unique (state, action) pairs, got ({s_sorted[k]}, {a_sorted[k]}) "
                                      "twice")
    m = int(a.max()) + 1
    ptr = _state_ptr(s_sorted, n)
    rows = order.astype(np.int64)
    _check_rows(Q2, rows, lambda r: f"(state {s[r]}, action {a[r]}) (row {r})")
    return MDPModel(beta, n, m, R[order].copy(), s_sorted, a_sorted, ptr, Q2, rows)


# ---------------------------------------------------------------------------
# NumPy reference operators (twins of solvers._dp_kernels)
# ---------------------------------------------------------------------------

def q_values(model: MDPModel, v: np.ndarray, rewards: np.ndarray | None = None) -> np.ndarray:
    """q(s,a) = r(s,a) + beta * sum_s' q(s'|s,a) v(s') for every pair (L,)."""
    r = model.rewards if rewards is None else rewards
    return r + model.beta * np.asarray(model.transition_csr() @ np.asarray(v, dtype=np.float64)).ravel()


def bellman_operator(model: MDPModel, v: np.ndarray, rewards: np.ndarray | None = None,
                     alive: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Tv, greedy pair index per state, q) — ties go to the lowest action.

    ``alive`` (L,) bool restricts the maximum to the pairs still admissible.
    """
    q = q_values(model, v, rewards)
    qa = q if alive is None else np.where(alive, q, -np.inf)
    starts = model.state_ptr[:-1]
    tv = np.maximum.reduceat(qa, starts)
    # first pair of each state attaining the maximum
    hit = qa == np.repeat(tv, np.diff(model.state_ptr))
    first = np.full(model.num_states, -1, dtype=np.int64)
    idx = np.flatnonzero(hit)
    st = model.states[idx]
    _, pos = np.unique(st, return_index=True)
    first[st[pos]] = idx[pos]
    return tv, first, q


def policy_operator(model: MDPModel, sigma_pairs: np.ndarray, u: np.ndarray,
                    rewards: np.ndarray | None = None) -> np.ndarray:
    """T_sigma u = r_sigma + beta Q_sigma u for a policy given as pair indices (n,)."""
    r = model.rewards if rewards is None else rewards
    P = model.transition_csr()[sigma_pairs]
    return r[sigma_pairs] + model.beta * np.asarray(P @ u).ravel()


def push_distribution(model: MDPModel, sigma_pairs: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Next-period mass ``mass @ Q_sigma`` (forward Kolmogorov step)."""
    P = model.transition_csr()[sigma_pairs]
    return np.asarray(P.T @ mass).ravel()


def sample_successors(model: MDPModel, pairs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of s' ~ q(.|pair) for each entry, given U(0,1) draws (column order)."""
    P = model.transition_csr()[pairs]
    out = np.empty(len(pairs), dtype=np.int64)
    for i in range(len(pairs)):
        lo, hi = P.indptr[i], P.indptr[i + 1]
        cdf = np.cumsum(P.data[lo:hi])
        k = int(np.searchsorted(cdf, uniforms[i], side="right"))
        out[i] = P.indices[lo + min(k, hi - lo - 1)]
    return out


def value_bounds(tv: np.ndarray, diff_min: float, diff_max: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """McQueen–Porteus bounds L <= v* <= U from Tv and min/max of d = Tv - v."""
    if beta == 0.0:
        return tv.copy(), tv.copy()
    c = beta / (1.0 - beta)
    return tv + c * diff_min, tv + c * diff_max


def norm_tolerance(epsilon: float, beta: float) -> float:
    """Sup-norm rule threshold eps (1 - beta) / (2 beta) (infinite for beta = 0)."""
    return np.inf if beta == 0 else epsilon * (1.0 - beta) / (2.0 * beta)


def span_tolerance(epsilon: float, beta: float) -> float:
    """Span rule threshold eps (1 - beta) / beta (infinite for beta = 0)."""
    return np.inf if beta == 0 else epsilon * (1.0 - beta) / beta


def eliminate_reference(model: MDPModel, q: np.ndarray, tv: np.ndarray, alive: np.ndarray, best: np.ndarray,
                        threshold: float, rel_margin: float) -> np.ndarray:
    """MacQueen's test (the twin of the elimination kernel): the new ``alive`` mask.

    Drops live pairs *j* of state *s* with ``tv[s] - q[j] > threshold + rel_margin (1 + |tv[s]|)``,
    never the greedy pair ``best[s]``.
    """
    s = model.states
    cut = threshold + rel_margin * (1.0 + np.abs(tv[s]))
    drop = alive.astype(bool) & (tv[s] - q > cut) & (np.arange(model.num_sa_pairs) != best[s])
    return alive.astype(bool) & ~drop
