"""numba kernels of the dynamic-programming solvers (:mod:`solvers.dp`, :mod:`solvers.weakly_coupled`).

The maths is in :mod:`formulations.mdp`; each kernel has a plain NumPy twin
there (``bellman_operator``, ``policy_operator``, ``push_distribution``,
``sample_successors``, ``eliminate_reference``; the weakly coupled kernel against
:func:`formulations.weakly_coupled.lagrangian_reference`) that the tests compare against.

Transition rows come in two layouts, each with its own kernel: CSR
(``indptr`` uint64, ``indices`` uint16, uint32 or uint64 — the narrowest
that holds the state count, since a pass is bound by the bytes it streams —
and ``data``; unsigned positions avoid numba's wrap-around test for negative
indices on every entry) and dense C-contiguous rows ``Qd``. Pair *j* reads row ``rows[j]``.
Sparse rows of 8 or more entries are summed with four partial sums in a
fixed order, which breaks the floating-point dependency chain. Dense rows use
one ``fastmath`` dot product (:func:`_fast_dot`, SIMD instead of the plain
loop's serial dependency chain): it only lets LLVM reorder the sum into
SIMD lanes, the inputs are validated finite, nothing inside compares
values, and the result stays deterministic and independent of the thread
count; the reordering changes a q-value by at most about
n * 1.1e-16 * max|v|, far below any stopping tolerance. Everything else is
compiled without ``fastmath``.

The Bellman, elimination, row-copy and policy-step kernels exist twice,
serial (``kernel``) and over states in parallel (``parallel_kernel``, suffix ``_parallel``), with the
same body (``prange`` is ``range`` in the serial build). :mod:`solvers.dp`
picks the parallel build only for passes large enough to amortise waking
the threads (``PARALLEL_MIN_WORK`` entries; measured on the quiet 2-core
machine, a 400,000-entry pass takes 0.24 ms on two threads against 0.34 ms on
one): on a busy machine a parallel region that waits for a descheduled
worker costs a time slice, so ``threads=1`` forces the serial build.
"""

from __future__ import annotations

import numpy as np

from solvers._jit import kernel, parallel_kernel, prange


_ONE = np.uint64(1)
_THREE = np.uint64(3)
_EIGHT = np.uint64(8)


@kernel(inline="always")
def _dot_sparse(indptr, indices, data, row, v):
    """Row ``row`` of a CSR matrix times v; indptr uint64 and indices unsigned.

    Unsigned positions spare numba's negative-index wrap-around test on
    every entry of the inner loop.
    """
    lo = indptr[row]
    hi = indptr[row + 1]
    a0 = 0.0
    p = lo
    if hi - lo < _EIGHT:                 # short rows: one accumulator is cheaper
        while p < hi:
            a0 += data[p] * v[indices[p]]
            p += _ONE
        return a0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    while p + _THREE < hi:
        a0 += data[p] * v[indices[p]]
        a1 += data[p + _ONE] * v[indices[p + _ONE]]
        a2 += data[p + _ONE + _ONE] * v[indices[p + _ONE + _ONE]]
        a3 += data[p + _THREE] * v[indices[p + _THREE]]
        p += _THREE + _ONE
    while p < hi:
        a0 += data[p] * v[indices[p]]
        p += _ONE
    return (a0 + a1) + (a2 + a3)


@kernel(fastmath=True)
def _fast_dot(row, v):
    """Dense row . v with reassociation allowed (SIMD); see the module docstring for why that is harmless."""
    acc = 0.0
    for c in range(v.shape[0]):
        acc += row[c] * v[c]
    return acc


@kernel(inline="always")
def _dot_dense(Qd, row, v):
    """Row ``row`` of a dense C-contiguous matrix times v."""
    return _fast_dot(Qd[row], v)


# ---------------------------------------------------------------------------
# Bellman operator: Tv, greedy pair, q-values of the live pairs
# ---------------------------------------------------------------------------

@kernel(inline="always")
def _state_sparse(s, rewards, rows, state_ptr, indptr, indices, data, alive, beta, v, tv, best, q):
    top = -np.inf
    arg = -1
    for j in range(state_ptr[s], state_ptr[s + 1]):
        if alive[j] == 0:
            continue
        val = rewards[j] + beta * _dot_sparse(indptr, indices, data, rows[j], v)
        q[j] = val
        if val > top or arg < 0:
            top = val
            arg = j
    tv[s] = top
    best[s] = arg


@kernel(inline="always")
def _state_dense(s, rewards, rows, state_ptr, Qd, alive, beta, v, tv, best, q):
    top = -np.inf
    arg = -1
    for j in range(state_ptr[s], state_ptr[s + 1]):
        if alive[j] == 0:
            continue
        val = rewards[j] + beta * _dot_dense(Qd, rows[j], v)
        q[j] = val
        if val > top or arg < 0:
            top = val
            arg = j
    tv[s] = top
    best[s] = arg


@kernel
def bellman_sparse(rewards, rows, state_ptr, indptr, indices, data, alive, beta, v, tv, best, q):
    """tv[s] = max over live pairs j of s of q[j] = rewards[j] + beta * Q[rows[j]] . v; best[s] = argmax j.

    Ties go to the first (lowest-action) pair; q is written for live pairs only.
    """
    n = state_ptr.shape[0] - 1
    for s in prange(n):
        _state_sparse(s, rewards, rows, state_ptr, indptr, indices, data, alive, beta, v, tv, best, q)


@kernel
def bellman_dense(rewards, rows, state_ptr, Qd, alive, beta, v, tv, best, q):
    """Dense-row twin of :func:`bellman_sparse`."""
    n = state_ptr.shape[0] - 1
    for s in prange(n):
        _state_dense(s, rewards, rows, state_ptr, Qd, alive, beta, v, tv, best, q)


@parallel_kernel
def bellman_sparse_parallel(rewards, rows, state_ptr, indptr, indices, data, alive, beta, v, tv, best, q):
    """Parallel build of :func:`bellman_sparse` (same body)."""
    n = state_ptr.shape[0] - 1
    for s in prange(n):
        _state_sparse(s, rewards, rows, state_ptr, indptr, indices, data, alive, beta, v, tv, best, q)


@parallel_kernel
def bellman_dense_parallel(rewards, rows, state_ptr, Qd, alive, beta, v, tv, best, q):
    """Parallel build of :func:`bellman_dense` (same body)."""
    n = state_ptr.shape[0] - 1
    for s in prange(n):
        _state_dense(s, rewards, rows, state_ptr, Qd, alive, beta, v, tv, best, q)


@kernel(inline="always")
def _eliminate_state(s, q, tv, state_ptr, alive, best, threshold, rel_margin):
    cut = threshold + rel_margin * (1.0 + abs(tv[s]))
    dropped = 0
    for j in range(state_ptr[s], state_ptr[s + 1]):
        if alive[j] != 0 and j != best[s] and tv[s] - q[j] > cut:
            alive[j] = 0
            dropped += 1
    return dropped


@kernel
def eliminate(q, tv, state_ptr, alive, best, threshold, rel_margin):
    """Drop live pairs with tv[s] - q[j] > threshold + rel_margin * (1 + |tv[s]|); returns the count.

    The greedy pair ``best[s]`` is never dropped.
    """
    dropped = 0
    for s in prange(state_ptr.shape[0] - 1):
        dropped += _eliminate_state(s, q, tv, state_ptr, alive, best, threshold, rel_margin)
    return dropped


@parallel_kernel
def eliminate_parallel(q, tv, state_ptr, alive, best, threshold, rel_margin):
    """Parallel build of :func:`eliminate` (same body; the count is a reduction)."""
    dropped = 0
    for s in prange(state_ptr.shape[0] - 1):
        dropped += _eliminate_state(s, q, tv, state_ptr, alive, best, threshold, rel_margin)
    return dropped


# ---------------------------------------------------------------------------
# Policy operator T_sigma u = r_sigma + beta Q_sigma u
# ---------------------------------------------------------------------------

@kernel
def policy_step_sparse(r_sigma, rows_sigma, indptr, indices, data, beta, u, out):
    """out = r_sigma + beta * Q[rows_sigma] . u."""
    n = rows_sigma.shape[0]
    for s in prange(n):
        out[s] = r_sigma[s] + beta * _dot_sparse(indptr, indices, data, rows_sigma[s], u)


@kernel
def policy_step_dense(r_sigma, rows_sigma, Qd, beta, u, out):
    """Dense-row twin of :func:`policy_step_sparse`."""
    n = rows_sigma.shape[0]
    for s in prange(n):
        out[s] = r_sigma[s] + beta * _dot_dense(Qd, rows_sigma[s], u)


@parallel_kernel
def policy_step_sparse_parallel(r_sigma, rows_sigma, indptr, indices, data, beta, u, out):
    n = rows_sigma.shape[0]
    for s in prange(n):
        out[s] = r_sigma[s] + beta * _dot_sparse(indptr, indices, data, rows_sigma[s], u)


@parallel_kernel
def policy_step_dense_parallel(r_sigma, rows_sigma, Qd, beta, u, out):
    n = rows_sigma.shape[0]
    for s in prange(n):
        out[s] = r_sigma[s] + beta * _dot_dense(Qd, rows_sigma[s], u)


@kernel
def partial_evaluation_sparse(r_sigma, rows_sigma, indptr, indices, data, beta, u, work, steps, span_stop):
    """Apply T_sigma up to ``steps`` times to u (in place); stop early once sp(T_sigma u - u) < span_stop.

    Returns the number of steps applied.
    """
    n = rows_sigma.shape[0]
    done = 0
    for _ in range(steps):
        policy_step_sparse(r_sigma, rows_sigma, indptr, indices, data, beta, u, work)
        lo = np.inf
        hi = -np.inf
        for s in range(n):
            d = work[s] - u[s]
            if d < lo:
                lo = d
            if d > hi:
                hi = d
            u[s] = work[s]
        done += 1
        if hi - lo < span_stop:
            break
    return done


@kernel
def partial_evaluation_dense(r_sigma, rows_sigma, Qd, beta, u, work, steps, span_stop):
    """Dense twin of :func:`partial_evaluation_sparse`."""
    n = rows_sigma.shape[0]
    done = 0
    for _ in range(steps):
        policy_step_dense(r_sigma, rows_sigma, Qd, beta, u, work)
        lo = np.inf
        hi = -np.inf
        for s in range(n):
            d = work[s] - u[s]
            if d < lo:
                lo = d
            if d > hi:
                hi = d
            u[s] = work[s]
        done += 1
        if hi - lo < span_stop:
            break
    return done


@kernel
def compact_pairs(alive, best, pair_id, q, rewards, states, n):
    """The live pairs of a working set, in order: (pair_id, q, rewards, state_ptr, best) of the compact set.

    ``rewards`` and ``states`` are the model's (indexed by model pair);
    ``best`` (working indices) is renumbered; every greedy pair is live.
    """
    m = 0
    for j in range(alive.shape[0]):
        m += alive[j]
    new_id = np.empty(m, dtype=np.int64)
    new_q = np.empty(m)
    new_r = np.empty(m)
    ptr = np.zeros(n + 1, dtype=np.int64)
    renumber = np.empty(alive.shape[0], dtype=np.int64)
    k = 0
    for j in range(alive.shape[0]):
        renumber[j] = k
        if alive[j] != 0:
            p = pair_id[j]
            new_id[k] = p
            new_q[k] = q[j]
            new_r[k] = rewards[p]
            ptr[states[p] + 1] += 1
            k += 1
    for s in range(n):
        ptr[s + 1] += ptr[s]
    new_best = np.empty(best.shape[0], dtype=np.int64)
    for s in range(best.shape[0]):
        new_best[s] = renumber[best[s]] if best[s] >= 0 else -1
    return new_id, new_q, new_r, ptr, new_best


@kernel
def compact_rows_inplace(indptr, indices, data, alive):
    """Keep the rows j with alive[j] of a private compact CSR (row j = pair j), moved forward in place.

    Returns the new indptr; the kept entries are ``indices[:indptr[-1]]``,
    ``data[:indptr[-1]]``. Rows move only towards the front, so a serial
    forward copy never overwrites an entry it has still to read.
    """
    m = 0
    for j in range(alive.shape[0]):
        m += alive[j]
    ptr = np.empty(m + 1, dtype=np.uint64)
    ptr[0] = 0
    k = np.uint64(0)
    r = 0
    for j in range(alive.shape[0]):
        if alive[j] == 0:
            continue
        p = indptr[j]
        hi = indptr[j + 1]
        while p < hi:
            indices[k] = indices[p]
            data[k] = data[p]
            k += _ONE
            p += _ONE
        r += 1
        ptr[r] = k
    return ptr


@kernel
def row_pointers(indptr, rows):
    """indptr (uint64) of the compact CSR holding the rows ``rows`` of a CSR matrix, in that order."""
    n = rows.shape[0]
    ptr = np.empty(n + 1, dtype=np.uint64)
    ptr[0] = 0
    total = np.uint64(0)
    for i in range(n):
        total += indptr[rows[i] + 1] - indptr[rows[i]]
        ptr[i + 1] = total
    return ptr


@kernel(inline="always")
def _copy_row(i, indptr, indices, data, rows, ptr, out_idx, out_val):
    p = indptr[rows[i]]
    hi = indptr[rows[i] + 1]
    k = ptr[i]
    while p < hi:
        out_idx[k] = indices[p]
        out_val[k] = data[p]
        k += _ONE
        p += _ONE


@kernel
def copy_rows(indptr, indices, data, rows, ptr, out_idx, out_val):
    """Copy the rows ``rows`` of a CSR matrix into (ptr, out_idx, out_val) from :func:`row_pointers`."""
    for i in prange(rows.shape[0]):
        _copy_row(i, indptr, indices, data, rows, ptr, out_idx, out_val)


@parallel_kernel
def copy_rows_parallel(indptr, indices, data, rows, ptr, out_idx, out_val):
    """Parallel build of :func:`copy_rows`: compacting is a pure memory stream."""
    for i in prange(rows.shape[0]):
        _copy_row(i, indptr, indices, data, rows, ptr, out_idx, out_val)


# ---------------------------------------------------------------------------
# Distributions and simulation
# ---------------------------------------------------------------------------

@kernel
def push_sparse(mass, rows_sigma, indptr, indices, data, out):
    """out = mass @ Q_sigma (out is overwritten)."""
    out[:] = 0.0
    for s in range(rows_sigma.shape[0]):
        w = mass[s]
        if w == 0.0:
            continue
        row = rows_sigma[s]
        p = indptr[row]
        hi = indptr[row + 1]
        while p < hi:
            out[indices[p]] += w * data[p]
            p += _ONE


@kernel
def push_dense(mass, rows_sigma, Qd, out):
    out[:] = 0.0
    n = out.shape[0]
    for s in range(rows_sigma.shape[0]):
        w = mass[s]
        if w == 0.0:
            continue
        row = rows_sigma[s]
        for c in range(n):
            out[c] += w * Qd[row, c]


@parallel_kernel
def sample_sparse(rows_of, indptr, indices, data, uniforms, out):
    """Inverse-CDF draw: out[i] = first column whose cumulative probability in row rows_of[i] exceeds uniforms[i]."""
    for i in prange(rows_of.shape[0]):
        row = rows_of[i]
        lo = indptr[row]
        hi = indptr[row + 1]
        acc = 0.0
        pick = np.int64(indices[hi - _ONE])
        p = lo
        while p < hi:
            acc += data[p]
            if uniforms[i] < acc:
                pick = np.int64(indices[p])
                break
            p += _ONE
        out[i] = pick


@parallel_kernel
def sample_dense(rows_of, Qd, uniforms, out):
    n = Qd.shape[1]
    for i in prange(rows_of.shape[0]):
        row = rows_of[i]
        acc = 0.0
        pick = n - 1
        while pick > 0 and Qd[row, pick] == 0.0:
            pick -= 1
        for c in range(n):
            p = Qd[row, c]
            if p == 0.0:
                continue
            acc += p
            if uniforms[i] < acc:
                pick = c
                break
        out[i] = pick


# ---------------------------------------------------------------------------
# Finite-horizon Lagrangian of a weakly coupled MDP (solvers.weakly_coupled)
# ---------------------------------------------------------------------------

@kernel(inline="always")
def _priced_state(s, rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta, v_next,
                  v_out, best):
    """One state's priced Bellman step (shared by the serial and parallel passes)."""
    top = -np.inf
    arg = -1
    for j in range(state_ptr[s], state_ptr[s + 1]):
        r = rewards[j]
        c = pair_channel[j]
        if c >= 0:
            r -= prices[c, t]
        val = r + beta * _dot_sparse(indptr, indices, data, rows[j], v_next)
        if val > top or arg < 0:
            top = val
            arg = j
    v_out[s] = top
    best[s] = arg


@kernel
def _priced_pass(rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta, v_next, v_out,
                 best):
    for s in prange(state_ptr.shape[0] - 1):
        _priced_state(s, rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta, v_next,
                      v_out, best)


@parallel_kernel
def _priced_pass_parallel(rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta, v_next,
                          v_out, best):
    for s in prange(state_ptr.shape[0] - 1):
        _priced_state(s, rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta, v_next,
                      v_out, best)


@kernel
def finite_horizon_lagrangian(rewards, pair_channel, prices, rows, state_ptr, indptr, indices, data, beta, mass0,
                              segment_of_state, values, policies, usage, parallel):
    """Backward induction with priced rewards r_j - prices[ch_j, t], then forward usage.

    Writes values (T+1, n) (values[T] is the terminal value, read only),
    policies (T, n) (greedy pairs) and usage (K, M, T) (expected contacts per
    segment, channel and period from the initial mass ``mass0``).
    """
    T = policies.shape[0]
    n = state_ptr.shape[0] - 1
    for t in range(T - 1, -1, -1):
        if parallel:
            _priced_pass_parallel(rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta,
                                  values[t + 1], values[t], policies[t])
        else:
            _priced_pass(rewards, pair_channel, prices, t, rows, state_ptr, indptr, indices, data, beta,
                         values[t + 1], values[t], policies[t])
    mass = mass0.copy()
    nxt = np.zeros(n)
    usage[:, :, :] = 0.0
    for t in range(T):
        for s in range(n):
            w = mass[s]
            if w == 0.0:
                continue
            j = policies[t, s]
            c = pair_channel[j]
            if c >= 0:
                usage[segment_of_state[s], c, t] += w
            if t + 1 < T:
                row = rows[j]
                p = indptr[row]
                hi = indptr[row + 1]
                while p < hi:
                    nxt[indices[p]] += w * data[p]
                    p += _ONE
        if t + 1 < T:
            for s in range(n):
                mass[s] = nxt[s]
                nxt[s] = 0.0
