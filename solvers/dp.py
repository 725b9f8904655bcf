"""Value iteration, policy iteration and modified policy iteration on numba kernels.

The maths — Bellman operator, McQueen–Porteus bounds, the sup-norm and span
stopping rules with their proofs, MacQueen's action elimination — is in
:mod:`formulations.mdp`. This module runs the loops:

* ``value_iteration``: :math:`v \\leftarrow Tv` until the chosen rule fires
  (``stop="span"`` by default, ``"norm"`` for QuantEcon's rule and iterates);
* ``policy_iteration``: Krylov policy evaluation (``scipy.sparse.linalg``
  BiCGSTAB on :math:`I - \\beta Q_\\sigma` as a matrix-free operator, GMRES
  and then a sparse direct solve as fall-backs), greedy improvement keeping
  the current action on ties;
* ``modified_policy_iteration``: a Bellman pass, then up to ``k`` steps of
  :math:`T_\\sigma` (stopping early once the steps only shift constants,
  i.e. their span is below half the span tolerance; ``adaptive=False``
  reproduces QuantEcon's fixed ``k``), span rule.

With ``eliminate=True`` every Bellman pass also drops the pairs that
MacQueen's test proves non-optimal, so later passes read fewer transition
rows. Every result carries the bounds the last passes certify.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from formulations.errors import InputError
from formulations.mdp import MDPModel, norm_tolerance, span_tolerance, value_bounds


class _LazyKernels:
    """:mod:`solvers._dp_kernels`, imported on first use so that ``import optimizer`` does not load numba."""

    def __getattr__(self, name: str):
        from solvers import _dp_kernels

        value = getattr(_dp_kernels, name)
        setattr(self, name, value)        # later look-ups are plain attribute reads
        return value


K = _LazyKernels()

METHODS = {"vi": "value iteration", "value_iteration": "value iteration",
           "pi": "policy iteration", "policy_iteration": "policy iteration",
           "mpi": "modified policy iteration", "modified_policy_iteration": "modified policy iteration"}
DEFAULT_MAX_ITER = {"value iteration": 10_000, "policy iteration": 1_000, "modified policy iteration": 10_000}
PARALLEL_MIN_WORK = 250_000   # transition entries a pass must read before threads pay off (quiet 2-core machine)
ELIMINATION_MARGIN = 1e-9   # relative rounding margin of the elimination test
COMPACT_FRACTION = 0.5      # copy the live rows into a compact CSR once at most this share of pairs is live
EVAL_RTOL = 1e-12           # Krylov relative residual for policy evaluation


@dataclass
class DPResult:
    """Solution of a discounted MDP with the bounds that certify it.

    Attributes
    ----------
    v : ndarray (n,)
        Value estimate (``error_bound`` away from v* at most).
    sigma : ndarray (n,) int64
        Policy (an action per state); ``v* - v_sigma <= policy_error_bound``.
    num_iter : int
        Bellman passes (VI, MPI) or policy evaluations (PI), as in QuantEcon.
    converged : bool
        The stopping rule fired (False: ``max_iter`` was hit; bounds still hold).
    error_bound : float
        Certified bound on ``max_s |v(s) - v*(s)|``.
    policy_error_bound : float
        Certified bound on ``max_s v*(s) - v_sigma(s)``.
    lower, upper : ndarray (n,)
        ``lower <= v* <= upper`` (McQueen–Porteus).
    method : str
    stopping_rule : str
        ``"span"``, ``"norm"`` or ``"policy"`` (PI: the policy repeated).
    epsilon : float or None
    max_iter : int
    time : float
        Wall-clock seconds of the solve.
    eliminated : int
        State-action pairs removed by MacQueen's test.
    info : dict
        Method details (evaluation residuals, partial-evaluation steps, ...).
    """

    v: np.ndarray
    sigma: np.ndarray
    num_iter: int
    converged: bool
    error_bound: float
    policy_error_bound: float
    lower: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)
    method: str = ""
    stopping_rule: str = ""
    epsilon: float | None = None
    max_iter: int = 0
    time: float = 0.0
    eliminated: int = 0
    info: dict = field(default_factory=dict, repr=False)


class PolicyRows:
    """The transition rows of one policy, ready for T_sigma steps.

    Sparse models get a compact CSR copy of the n chosen rows (streamed by
    every step instead of gathering scattered rows of the full matrix);
    dense models read the chosen rows of the dense array in place.
    """

    def __init__(self, ops: "Operators", pairs: np.ndarray, rewards: np.ndarray | None = None) -> None:
        r = ops.rewards if rewards is None else rewards
        self.r = np.ascontiguousarray(r[pairs], dtype=np.float64)
        rows = np.ascontiguousarray(ops.rows[pairs])
        self.sparse = ops.sparse
        if self.sparse:
            self.indptr, self.indices, self.data = ops.gather(rows, ops.step_parallel)
            self.rows = np.arange(rows.shape[0], dtype=np.int64)
        else:
            self.Qd = ops.Qd
            self.rows = rows


class Operators:
    """The kernels bound to one model: Bellman passes, T_sigma, elimination, distributions.

    Pair indices in and out are the model's. Bellman passes run on a working
    set of live pairs: once MacQueen's test has dropped at least half of the
    pairs of a sparse model, the live rows are copied into a compact CSR so
    later passes stream them instead of skipping through the full matrix
    (rows scattered through memory cost a cache miss each; a compact copy is
    read at full memory bandwidth). Later compactions shrink that private
    copy in place, which spares fresh memory and its page faults.
    """

    def __init__(self, model: MDPModel, rewards: np.ndarray | None = None, threads: int | None = None) -> None:
        self.model = model
        self.n = model.num_states
        self.L = model.num_sa_pairs
        self.beta = float(model.beta)
        self.rewards = np.ascontiguousarray(model.rewards if rewards is None else rewards, dtype=np.float64)
        self.rows = np.ascontiguousarray(model.transition_rows, dtype=np.int64)
        self.state_ptr = np.ascontiguousarray(model.state_ptr, dtype=np.int64)
        self.sparse = model.is_sparse
        Q = model.transition
        if self.sparse:
            self.indptr, self.indices, self.data = kernel_csr(model)
        else:
            self.Qd = np.ascontiguousarray(Q, dtype=np.float64)
        self.threads = threads
        self.row_length = (self.data.size / max(Q.shape[0], 1)) if self.sparse else float(self.n)
        self.parallel = _use_threads(threads, self.L * self.row_length)
        self.step_parallel = _use_threads(threads, self.n * self.row_length)
        # working set (initially every pair, in model order)
        self.pair_id = np.arange(self.L, dtype=np.int64)
        self._r, self._rows, self._ptr = self.rewards, self.rows, self.state_ptr
        if self.sparse:
            self._indptr, self._indices, self._data = self.indptr, self.indices, self.data
        self.alive = np.ones(self.L, dtype=np.uint8)
        self.best = np.full(self.n, -1, dtype=np.int64)
        self.q = np.full(self.L, -np.inf)
        self.eliminated = 0
        self.live = self.L                               # live pairs in the working set
        self._position: np.ndarray | None = None     # model pair -> working index (-1: dropped)

    # -------------------------------------------------------------- passes
    def bellman(self, v: np.ndarray, out: np.ndarray, rewards: np.ndarray | None = None) -> np.ndarray:
        """out = Tv; ``best_pairs()`` = greedy pairs, ``q_of`` = q-values of live pairs.

        ``rewards`` (one per model pair) replaces the model's rewards for this pass.
        """
        if rewards is None:
            r = self._r
        else:
            r = rewards if self.pair_id.size == self.L else np.ascontiguousarray(rewards[self.pair_id])
        if self.sparse:
            fn = K.bellman_sparse_parallel if self.parallel else K.bellman_sparse
            fn(r, self._rows, self._ptr, self._indptr, self._indices, self._data, self.alive, self.beta, v, out,
               self.best, self.q)
        else:
            fn = K.bellman_dense_parallel if self.parallel else K.bellman_dense
            fn(r, self._rows, self._ptr, self.Qd, self.alive, self.beta, v, out, self.best, self.q)
        return out

    def best_pairs(self) -> np.ndarray:
        """Greedy model pairs of the last pass (a new array)."""
        return self.pair_id[self.best]

    def q_of(self, pairs: np.ndarray) -> np.ndarray:
        """q-values of model pairs from the last pass (-inf for dropped pairs)."""
        pos = self._positions(pairs)
        return np.where(pos >= 0, self.q[np.maximum(pos, 0)], -np.inf)

    def alive_of(self, pairs: np.ndarray) -> np.ndarray:
        pos = self._positions(pairs)
        return (pos >= 0) & (self.alive[np.maximum(pos, 0)] == 1)

    def eliminate(self, tv: np.ndarray, span: float) -> int:
        """MacQueen's test with the span of d = Tv - v from the pass that produced ``self.q``; returns the count."""
        if self.beta == 0.0 or not np.isfinite(span) or self.live == self.n:   # one live pair per state: done
            return 0
        threshold = self.beta * span / (1.0 - self.beta)
        fn = K.eliminate_parallel if self.parallel else K.eliminate
        dropped = int(fn(self.q, tv, self._ptr, self.alive, self.best, threshold, ELIMINATION_MARGIN))
        self.eliminated += dropped
        self.live -= dropped
        if self.sparse and dropped and self.live <= COMPACT_FRACTION * self.alive.size:
            self._compact()
        return dropped

    def set_alive(self, mask: np.ndarray) -> None:
        """Restrict the live pairs (one flag per model pair) before the first pass."""
        self.alive[:] = mask
        self.live = int(self.alive.sum())

    def _compact(self) -> None:
        """Copy the live pairs' rows into a compact working CSR (sparse models)."""
        self.pair_id, self.q, self._r, self._ptr, self.best = K.compact_pairs(
            self.alive, self.best, self.pair_id, self.q, self.rewards, self.model.states, self.n)
        if self._indptr is self.indptr:       # still the model's matrix: copy the live rows out
            self._indptr, self._indices, self._data = self.gather(np.ascontiguousarray(self.rows[self.pair_id]),
                                                                  self.parallel)
        else:                                 # already a private compact copy: shrink it in place
            ptr = K.compact_rows_inplace(self._indptr, self._indices, self._data, self.alive)
            total = int(ptr[-1])
            self._indptr, self._indices, self._data = ptr, self._indices[:total], self._data[:total]
        self.parallel = _use_threads(self.threads, self.pair_id.size * self.row_length)
        self._rows = np.arange(self.pair_id.size, dtype=np.int64)
        self.alive = np.ones(self.pair_id.size, dtype=np.uint8)
        self.live = self.pair_id.size
        self._position = None

    def _positions(self, pairs: np.ndarray) -> np.ndarray:
        """Working index of model pairs (-1: dropped)."""
        if self.pair_id.size == self.L:
            return np.asarray(pairs)
        if self._position is None:
            position = np.full(self.L, -1, dtype=np.int64)
            position[self.pair_id] = np.arange(self.pair_id.size)
            self._position = position
        return self._position[pairs]

    def gather(self, rows: np.ndarray, parallel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compact CSR copy (indptr, indices, data) of the transition rows ``rows`` (sparse models)."""
        ptr = K.row_pointers(self.indptr, rows)
        total = int(ptr[-1])
        indices = np.empty(total, dtype=self.indices.dtype)
        data = np.empty(total)
        (K.copy_rows_parallel if parallel else K.copy_rows)(self.indptr, self.indices, self.data, rows, ptr,
                                                            indices, data)
        return ptr, indices, data

    # ------------------------------------------------------------ policies
    def policy_rows(self, pairs: np.ndarray, rewards: np.ndarray | None = None) -> PolicyRows:
        return PolicyRows(self, pairs, rewards)

    def policy_step(self, P: PolicyRows, u: np.ndarray, out: np.ndarray, with_reward: bool = True) -> np.ndarray:
        """out = r_sigma + beta Q_sigma u (without r_sigma when ``with_reward`` is False)."""
        r = P.r if with_reward else np.zeros_like(P.r)
        if P.sparse:
            fn = K.policy_step_sparse_parallel if self.step_parallel else K.policy_step_sparse
            fn(r, P.rows, P.indptr, P.indices, P.data, self.beta, u, out)
        else:
            fn = K.policy_step_dense_parallel if self.step_parallel else K.policy_step_dense
            fn(r, P.rows, P.Qd, self.beta, u, out)
        return out

    def partial_evaluation(self, pairs: np.ndarray, u: np.ndarray, steps: int, span_stop: float) -> int:
        """Apply T_sigma up to ``steps`` times to u in place; stop once sp(T_sigma u - u) < span_stop."""
        P = self.policy_rows(pairs)
        work = np.empty_like(u)
        if self.step_parallel:
            done = 0
            for _ in range(steps):
                self.policy_step(P, u, work)
                d = work - u
                u[:] = work
                done += 1
                if float(d.max() - d.min()) < span_stop:
                    break
            return done
        if P.sparse:
            return int(K.partial_evaluation_sparse(P.r, P.rows, P.indptr, P.indices, P.data, self.beta, u, work,
                                                   steps, span_stop))
        return int(K.partial_evaluation_dense(P.r, P.rows, P.Qd, self.beta, u, work, steps, span_stop))

    def push(self, mass: np.ndarray, pairs: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = mass @ Q_sigma for the policy ``pairs``."""
        rows_sigma = np.ascontiguousarray(self.rows[pairs])
        if self.sparse:
            K.push_sparse(mass, rows_sigma, self.indptr, self.indices, self.data, out)
        else:
            K.push_dense(mass, rows_sigma, self.Qd, out)
        return out

    def sample(self, pairs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """One successor per entry of ``pairs`` by inverse CDF from ``uniforms``."""
        rows_of = np.ascontiguousarray(self.rows[pairs])
        out = np.empty(rows_of.shape[0], dtype=np.int64)
        if self.sparse:
            K.sample_sparse(rows_of, self.indptr, self.indices, self.data, uniforms, out)
        else:
            K.sample_dense(rows_of, self.Qd, uniforms, out)
        return out

    # -------------------------------------------------------- evaluation
    def evaluate(self, pairs: np.ndarray, x0: np.ndarray | None = None,
                 rewards: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
        """v_sigma from (I - beta Q_sigma) v = r_sigma by a matrix-free Krylov solver.

        Returns the solution and a dict with the solver used and the sup-norm
        residual (the value is within ``residual / (1 - beta)`` of v_sigma).
        """
        import scipy.sparse.linalg as spla

        n = self.n
        P = self.policy_rows(pairs, rewards)
        r_sigma = P.r
        rows_sigma = np.ascontiguousarray(self.rows[pairs])
        buf = np.empty(n)

        def matvec(x):
            x = np.ascontiguousarray(np.asarray(x, dtype=np.float64).ravel())
            self.policy_step(P, x, buf, with_reward=False)
            return x - buf

        A = spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        if self.beta == 0.0:
            return r_sigma.copy(), {"solver": "none", "residual": 0.0, "iterations": 0}
        with _single_threaded_blas():
            return self._krylov(A, matvec, r_sigma, rows_sigma, x0, counter={"n": 0})

    def _krylov(self, A, matvec, r_sigma, rows_sigma, x0, counter) -> tuple[np.ndarray, dict]:
        import scipy.sparse.linalg as spla

        n = self.n
        scale = max(float(np.abs(r_sigma).max()), 1e-300)
        target = 1e-10 * scale

        def count(_):
            counter["n"] += 1

        x, status = spla.bicgstab(A, r_sigma, x0=x0, rtol=EVAL_RTOL, atol=0.0, maxiter=10 * n + 100,
                                  callback=count)
        res = float(np.abs(r_sigma - matvec(x)).max())
        solver = "bicgstab"
        if status != 0 or not np.isfinite(res) or res > target:
            x, status = spla.gmres(A, r_sigma, x0=x, rtol=EVAL_RTOL, atol=0.0, restart=60, maxiter=200,
                                   callback=count, callback_type="pr_norm")
            res = float(np.abs(r_sigma - matvec(x)).max())
            solver = "gmres"
        if status != 0 or not np.isfinite(res) or res > target:
            P = (self.model.transition[rows_sigma] if self.sparse else sp.csr_matrix(self.Qd[rows_sigma]))
            M = (sp.identity(n, format="csc") - self.beta * P.tocsc()).tocsc()
            x = spla.spsolve(M, r_sigma)
            res = float(np.abs(r_sigma - matvec(x)).max())
            solver = "spsolve"
        return np.ascontiguousarray(x, dtype=np.float64), {"solver": solver, "residual": res,
                                                           "iterations": counter["n"]}


_KERNEL_CSR: "weakref.WeakKeyDictionary[MDPModel, tuple]" = weakref.WeakKeyDictionary()
_MAX_REWARDS: "weakref.WeakKeyDictionary[MDPModel, np.ndarray]" = weakref.WeakKeyDictionary()


def kernel_csr(model: MDPModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's CSR transition as the kernels read it, converted once per model.

    indptr is uint64 and the column indices the narrowest unsigned type that
    holds n - 1 (uint16 up to 65,536 states): unsigned positions spare numba's
    negative-index test on every entry (see :mod:`solvers._dp_kernels`) and
    narrow indices cut the bytes a pass streams, which bound its speed.
    """
    arrays = _KERNEL_CSR.get(model)
    if arrays is None:
        Q = model.transition
        n = model.num_states
        kind = np.uint16 if n <= 2 ** 16 else np.uint32 if n <= 2 ** 32 else np.uint64
        arrays = (np.ascontiguousarray(Q.indptr, dtype=np.uint64), np.ascontiguousarray(Q.indices, dtype=kind),
                  np.ascontiguousarray(Q.data, dtype=np.float64))
        _KERNEL_CSR[model] = arrays
    return arrays


def _single_threaded_blas():
    """BLAS limited to one thread while a Krylov solver runs, if ``threadpoolctl`` is installed.

    The Krylov vectors are short (n entries); a threaded BLAS only adds
    thread wake-ups, which cost milliseconds per inner product on a loaded
    machine.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _use_threads(threads: int | None, work: float) -> bool:
    """Parallel kernels when more than one thread is allowed and the pass is large enough.

    ``threads=None``: numba's thread count, for passes of at least
    ``PARALLEL_MIN_WORK`` entries; ``threads=1``: always serial.
    """
    import numba

    if threads is not None:
        if isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise InputError("threads", f"expected a positive integer, got {threads!r}")
        if threads == 1:
            return False
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
        return True
    return numba.get_num_threads() > 1 and work >= PARALLEL_MIN_WORK


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------

def _check_epsilon(epsilon) -> float:
    try:
        e = float(epsilon)
    except (TypeError, ValueError):
        raise InputError("epsilon", f"expected a positive number, got {epsilon!r}") from None
    if not np.isfinite(e) or e <= 0:
        raise InputError("epsilon", f"expected a positive number, got {epsilon!r}")
    return e


def _check_max_iter(max_iter, method: str) -> int:
    if max_iter is None:
        return DEFAULT_MAX_ITER[method]
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or int(max_iter) < 1:
        raise InputError("max_iter", f"expected a positive integer, got {max_iter!r}")
    return int(max_iter)


def _check_v(v_init, n: int) -> np.ndarray | None:
    if v_init is None:
        return None
    v = np.asarray(v_init, dtype=np.float64).ravel()
    if v.shape != (n,) or not np.isfinite(v).all():
        raise InputError("v_init", f"expected {n} finite values, got shape {np.shape(v_init)}")
    return v.copy()


def state_max_rewards(model: MDPModel) -> np.ndarray:
    """max_a r(s, a) per state (QuantEcon's default start for VI and PI; a new array, computed once per model)."""
    cached = _MAX_REWARDS.get(model)
    if cached is None:
        cached = np.maximum.reduceat(model.rewards, model.state_ptr[:-1])
        _MAX_REWARDS[model] = cached
    return cached.copy()


# ---------------------------------------------------------------------------
# the three methods
# ---------------------------------------------------------------------------

def _result(ops: Operators, v_out, pairs, tv, dmin, dmax, extra_bounds, **kw) -> DPResult:
    beta = ops.beta
    lower, upper = value_bounds(tv, dmin, dmax, beta)
    for lo, up in extra_bounds:
        lower = np.maximum(lower, lo)
        upper = np.minimum(upper, up)
    err = float(max((v_out - lower).max(), (upper - v_out).max(), 0.0))
    sigma = ops.model.actions[pairs].astype(np.int64)
    return DPResult(v=v_out, sigma=sigma, lower=lower, upper=upper, error_bound=err,
                    eliminated=ops.eliminated, **kw)


def value_iteration(model: MDPModel, epsilon: float = 1e-6, max_iter: int | None = None, v_init=None,
                    stop: str = "span", eliminate: bool = True, threads: int | None = None,
                    ops: Operators | None = None) -> DPResult:
    """Value iteration with the sup-norm (``stop="norm"``) or span (``"span"``) rule."""
    start = time.perf_counter()
    method = "value iteration"
    eps = _check_epsilon(epsilon)
    max_iter = _check_max_iter(max_iter, method)
    if stop not in ("span", "norm"):
        raise InputError("stop", f"expected 'span' or 'norm', got {stop!r}")
    ops = ops or Operators(model, threads=threads)
    beta, c = ops.beta, (ops.beta / (1.0 - ops.beta))
    v = _check_v(v_init, ops.n)
    v = state_max_rewards(model) if v is None else v
    tv = np.empty(ops.n)
    tol = norm_tolerance(eps, beta) if stop == "norm" else span_tolerance(eps, beta)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        ops.bellman(v, tv)
        d = tv - v
        dmin, dmax = float(d.min()), float(d.max())
        crit = max(abs(dmin), abs(dmax)) if stop == "norm" else dmax - dmin
        if crit < tol:
            converged = True
            break
        if eliminate:
            ops.eliminate(tv, dmax - dmin)
        v, tv = tv, v
    if not converged:      # undo the last swap: tv = T v of the last pass
        v, tv = tv, v
    if stop == "span":
        v_out = tv + c * 0.5 * (dmin + dmax)
        pairs = ops.best_pairs()
        return _result(ops, v_out, pairs, tv, dmin, dmax, [], num_iter=it, converged=converged,
                       policy_error_bound=c * (dmax - dmin), method=method, stopping_rule="span",
                       epsilon=eps, max_iter=max_iter, time=time.perf_counter() - start)
    # sup-norm rule: v = T v_k, sigma greedy with respect to it (one more pass, as QuantEcon)
    first = value_bounds(tv, dmin, dmax, beta)
    v_out = tv.copy()
    t2 = np.empty(ops.n)
    ops.bellman(v_out, t2)
    d2 = t2 - v_out
    d2min, d2max = float(d2.min()), float(d2.max())
    return _result(ops, v_out, ops.best_pairs(), t2, d2min, d2max, [first], num_iter=it, converged=converged,
                   policy_error_bound=c * (d2max - d2min), method=method, stopping_rule="norm", epsilon=eps,
                   max_iter=max_iter, time=time.perf_counter() - start)


def modified_policy_iteration(model: MDPModel, epsilon: float = 1e-6, max_iter: int | None = None, v_init=None,
                              k: int = 20, eliminate: bool = True, adaptive: bool = True,
                              threads: int | None = None, ops: Operators | None = None) -> DPResult:
    """MPI: Bellman pass, up to ``k`` steps of T_sigma, span rule (QuantEcon's start and rule)."""
    start = time.perf_counter()
    method = "modified policy iteration"
    eps = _check_epsilon(epsilon)
    max_iter = _check_max_iter(max_iter, method)
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise InputError("k", f"expected an integer >= 0, got {k!r}")
    ops = ops or Operators(model, threads=threads)
    beta, c = ops.beta, ops.beta / (1.0 - ops.beta)
    v = _check_v(v_init, ops.n)
    if v is None:
        v = np.full(ops.n, float(model.rewards.min()) / (1.0 - beta))
    tol = span_tolerance(eps, beta)
    span_stop = 0.5 * tol if adaptive else -1.0
    tv = np.empty(ops.n)
    steps = 0
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        ops.bellman(v, tv)
        d = tv - v
        dmin, dmax = float(d.min()), float(d.max())
        if dmax - dmin < tol:
            converged = True
            break
        if eliminate:
            ops.eliminate(tv, dmax - dmin)
        u = tv.copy()
        steps += ops.partial_evaluation(ops.best_pairs(), u, int(k), span_stop)
        v = u
    v_out = tv + c * 0.5 * (dmin + dmax)
    return _result(ops, v_out, ops.best_pairs(), tv, dmin, dmax, [], num_iter=it, converged=converged,
                   policy_error_bound=c * (dmax - dmin), method=method, stopping_rule="span", epsilon=eps,
                   max_iter=max_iter, time=time.perf_counter() - start, info={"evaluation_steps": steps, "k": k})


def policy_iteration(model: MDPModel, max_iter: int | None = None, v_init=None, eliminate: bool = True,
                     threads: int | None = None, ops: Operators | None = None) -> DPResult:
    """PI with Krylov policy evaluation; stops when the policy repeats."""
    start = time.perf_counter()
    method = "policy iteration"
    max_iter = _check_max_iter(max_iter, method)
    ops = ops or Operators(model, threads=threads)
    beta, c = ops.beta, ops.beta / (1.0 - ops.beta)
    v = _check_v(v_init, ops.n)
    v = state_max_rewards(model) if v is None else v
    tv = np.empty(ops.n)
    ops.bellman(v, tv)
    pairs = ops.best_pairs()
    converged = False
    evals: list[dict] = []
    it = 0
    tie = 0.0
    for it in range(1, max_iter + 1):
        v, info = ops.evaluate(pairs, x0=v)
        evals.append(info)
        ops.bellman(v, tv)
        d = tv - v
        dmin, dmax = float(d.min()), float(d.max())
        eval_error = info["residual"] / (1.0 - beta)
        tie = 2.0 * beta * eval_error + 1e-12 * (1.0 + float(np.abs(v).max()))
        if eliminate:
            ops.eliminate(tv, dmax - dmin)
        keep = ops.alive_of(pairs) & (ops.q_of(pairs) >= tv - tie)
        new = np.where(keep, pairs, ops.best_pairs())
        if np.array_equal(new, pairs):
            converged = True
            break
        pairs = new
    policy_bound = c * (dmax - dmin) + tie / (1.0 - beta)
    return _result(ops, v, pairs, tv, dmin, dmax, [], num_iter=it, converged=converged,
                   policy_error_bound=policy_bound, method=method, stopping_rule="policy", epsilon=None,
                   max_iter=max_iter, time=time.perf_counter() - start,
                   info={"evaluations": evals, "tie_tolerance": tie})


def solve_mdp(model: MDPModel, method: str = "mpi", epsilon: float = 1e-6, max_iter: int | None = None,
              v_init=None, k: int = 20, stop: str = "span", eliminate: bool = True, adaptive: bool = True,
              threads: int | None = None) -> DPResult:
    """Dispatch on ``method`` (``vi``, ``pi``, ``mpi`` or QuantEcon's long names)."""
    name = METHODS.get(str(method).lower()) if isinstance(method, str) else None
    if name is None:
        raise InputError("method", f"expected one of vi, pi, mpi (or value_iteration, policy_iteration, "
                                   f"modified_policy_iteration), got {method!r}")
    if name == "value iteration":
        return value_iteration(model, epsilon, max_iter, v_init, stop=stop, eliminate=eliminate, threads=threads)
    if name == "policy iteration":
        return policy_iteration(model, max_iter, v_init, eliminate=eliminate, threads=threads)
    return modified_policy_iteration(model, epsilon, max_iter, v_init, k=k, eliminate=eliminate, adaptive=adaptive,
                                     threads=threads)


def backward_induction(model: MDPModel, horizon: int, v_term=None,
                       rewards: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Finite-horizon values (T+1, n) and policies (T, n) (QuantEcon's ``backward_induction``).

    ``rewards`` may be (L,) or (T, L) (period-dependent rewards).
    """
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise InputError("horizon", f"expected a positive integer, got {horizon!r}")
    T = int(horizon)
    ops = Operators(model)
    n = ops.n
    vs = np.empty((T + 1, n))
    vs[T] = 0.0 if v_term is None else _check_v(v_term, n)
    sigmas = np.empty((T, n), dtype=np.int64)
    r = None if rewards is None else np.asarray(rewards, dtype=np.float64)
    for t in range(T - 1, -1, -1):
        rt = None if r is None else np.ascontiguousarray(r if r.ndim == 1 else r[t])
        ops.bellman(vs[t + 1], vs[t], rt)
        sigmas[t] = model.actions[ops.best_pairs()]
    return vs, sigmas
