"""Minimising the Lagrangian bound of a weakly coupled MDP (level bundle on numba DP kernels).

The maths (relaxation, bound, subgradient, price box, policy) is in
:mod:`formulations.weakly_coupled`. Each evaluation of
:math:`\\mathcal{L}(\\lambda)` runs on the stacked block-diagonal model:

* finite horizon: *T* backward Bellman passes with priced rewards
  (:func:`solvers._dp_kernels.finite_horizon_lagrangian`), then *T* forward pushes of
  the expected customer counts for the usage (subgradient);
* infinite horizon: modified policy iteration on the priced rewards
  (warm-started from the previous prices) — the bound uses the certified
  upper value bound *U* >= V^lambda, so it stays an upper bound — and the
  discounted occupancy from a Krylov solve of
  :math:`(I - \\beta Q_\\sigma)^\\top d = \\mu_0`.

The prices minimise :math:`\\mathcal{L}` over a box (per channel and period,
the largest advantage any customer can have, see
:meth:`LagrangianEvaluator.price_box`)
by the level bundle method of :mod:`solvers.bundle` (cutting-plane LP for a
lower estimate, level-set projection QP for the next prices). It stops when
``(bound - lower) / |bound| <= rel_tol``, at ``max_iter`` or at the time
limit; ``converged`` says which.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from formulations.weakly_coupled import LagrangianEvaluation, WeaklyCoupledProblem, stack_segments
from solvers.bundle import LevelBundle
from solvers.multicut_bundle import MultiCutLevel
from solvers.dp import K as K_, Operators, _single_threaded_blas, modified_policy_iteration

MAX_LEVEL_TRIES = 60
CUT_GROUPS = 32        # cuts per evaluation of the multi-cut model (segment k in group k mod CUT_GROUPS)


@dataclass
class LagrangianSolution:
    """Prices minimising the Lagrangian bound, and the relaxation's values there.

    Attributes
    ----------
    prices : ndarray (M, T)
        Capacity prices (T = 1 for the infinite horizon).
    bound : float
        The smallest L evaluated: an upper bound on the coupled optimum.
    lower : float
        Lower estimate of min L (cutting-plane model): ``bound - lower``
        bounds how much lower the best Lagrangian bound could go.
    gap : float
        ``(bound - lower) / |bound|``.
    iterations : int
    converged : bool
        The gap reached ``rel_tol``.
    time : float
    values : ndarray (T + 1, N) or (N,)
        V^lambda of the stacked states at the best prices (finite: per period).
    usage : ndarray (M, T)
        Expected contacts of the priced policies at the best prices.
    history : list of dict
    """

    prices: np.ndarray
    bound: float
    lower: float
    gap: float
    iterations: int
    converged: bool
    time: float
    values: np.ndarray = field(repr=False)
    usage: np.ndarray = field(repr=False)
    history: list = field(default_factory=list, repr=False)


class LagrangianEvaluator:
    """Evaluates L(prices) and a subgradient on the stacked segments."""

    def __init__(self, problem: WeaklyCoupledProblem, threads: int | None = None) -> None:
        self.problem = problem
        self.stack = stack_segments(problem)
        self.model = self.stack.model
        self.ops = Operators(self.model, threads=threads)
        self.threads = threads
        self.beta = problem.beta
        self.M, self.T = problem.n_channels, problem.periods
        self.capacity = problem.capacity
        self.channel = self.stack.pair_channel
        self.priced = self.channel >= 0
        self.price_channel = np.maximum(self.channel, 0)
        self.discount = self.beta ** np.arange(self.T)
        self._warm: np.ndarray | None = None
        self._box: np.ndarray | None = None
        self._buffers: tuple | None = None

    def price_box(self) -> np.ndarray:
        """Per (channel, period) price bounds beyond which nobody uses the channel (see below).

        V^lambda lies between the never-contact values ``V_free`` and the
        unpriced values ``V_0`` for every lambda >= 0, so the advantage of a
        pair j over its state's channel-free pair f is at most
        ``r_j - r_f + beta (D+ V_0 + D- V_free)`` with ``D = q_j - q_f`` split
        into positive and negative parts. A price at or above the largest
        such advantage of a channel keeps every customer off it; lowering it
        to that value keeps the policies and lowers L, so a minimiser lies in
        the box. Tighter than the global box of :mod:`formulations.weakly_coupled`.
        """
        if self._box is not None:
            return self._box
        model, st = self.model, self.stack
        free_alive = (self.channel < 0).astype(np.uint8)
        priced = np.flatnonzero(self.priced)
        free_of = st.free_pair[model.states[priced]]
        Q = model.transition_csr()
        D = (Q[priced] - Q[free_of]).tocsr()
        Dpos, Dneg = D.maximum(0).tocsr(), D.minimum(0).tocsr()
        r_diff = model.rewards[priced] - model.rewards[free_of]
        ch = self.channel[priced]
        box = np.zeros((self.M, self.T))
        if self.problem.horizon is None:
            v0 = modified_policy_iteration(model, epsilon=1e-9, eliminate=False, threads=self.threads).upper
            free_ops = Operators(model, threads=self.threads)
            free_ops.set_alive(free_alive)
            vf = modified_policy_iteration(model, epsilon=1e-9, eliminate=False, ops=free_ops).lower
            tables = [(v0, vf)]
        else:
            N = model.num_states
            v0 = np.zeros((self.T + 1, N))
            vf = np.zeros((self.T + 1, N))
            free_ops = Operators(model, threads=self.threads)
            free_ops.set_alive(free_alive)
            for t in range(self.T - 1, -1, -1):
                self.ops.bellman(v0[t + 1], v0[t])
                free_ops.bellman(vf[t + 1], vf[t])
            tables = [(v0[t + 1], vf[t + 1]) for t in range(self.T)]
        for t, (hi, lo) in enumerate(tables):
            adv = r_diff + self.beta * (Dpos @ hi + Dneg @ lo)
            best = np.full(self.M, -np.inf)
            np.maximum.at(best, ch, adv)
            box[:, t] = np.maximum(best, 0.0)
        self._box = box * (1.0 + 1e-9) + 1e-12
        return self._box

    def priced_rewards(self, period_prices: np.ndarray) -> np.ndarray:
        """r(s, a) - lambda[ch(a)] per pair (no price for channel-free actions)."""
        return np.where(self.priced, self.model.rewards - period_prices[self.price_channel], self.model.rewards)

    def evaluate(self, prices: np.ndarray, keep_values: bool = False) -> tuple[LagrangianEvaluation, np.ndarray]:
        """(evaluation, values): values is (T + 1, N) when ``keep_values`` (finite horizon) else V_0."""
        prices = np.asarray(prices, dtype=np.float64).reshape(self.M, self.T)
        if self.problem.horizon is None:
            return self._evaluate_infinite(prices)
        N, T, K = self.model.num_states, self.T, self.problem.n_segments
        if self._buffers is None:     # values[T] = 0 is the terminal value, never written
            self._buffers = (np.zeros((T + 1, N)), np.empty((T, N), dtype=np.int64), np.empty((K, self.M, T)))
        table, policies, usage = self._buffers
        ops = self.ops
        K_.finite_horizon_lagrangian(ops.rewards, self.channel, np.ascontiguousarray(prices), ops.rows,
                                     ops.state_ptr, ops.indptr, ops.indices, ops.data, self.beta, self.stack.mass0,
                                     self.stack.segment_of_state, table, policies, usage, ops.parallel)
        v0 = table[0].copy()
        seg_values = np.add.reduceat(self.stack.mass0 * v0, self.stack.offsets[:-1])
        seg_usage = usage * self.discount            # d phi_k / d prices = -seg_usage[k]
        total = usage.sum(axis=0)
        value = float(self.discount @ (prices * self.capacity).sum(axis=0) + seg_values.sum())
        ev = LagrangianEvaluation(value, self.discount * (self.capacity - total), total, v0, seg_values, seg_usage)
        return ev, (table.copy() if keep_values else v0)

    def _evaluate_infinite(self, prices: np.ndarray) -> tuple[LagrangianEvaluation, np.ndarray]:
        lam = prices[:, 0]
        rewards = self.priced_rewards(lam)
        scale = max(float(np.abs(rewards).max()), 1e-12) / (1.0 - self.beta)
        res = modified_policy_iteration(self.model.with_rewards(rewards), epsilon=1e-9 * scale,
                                        v_init=self._warm, eliminate=False, threads=self.threads)
        self._warm = res.v
        pairs = self.model.pair_index()[np.arange(self.model.num_states), res.sigma]
        occupancy = self._occupancy(pairs)
        c = self.channel[pairs]
        sel = c >= 0
        K = self.problem.n_segments
        seg_usage = np.zeros((K, self.M))
        np.add.at(seg_usage, (self.stack.segment_of_state[sel], c[sel]), occupancy[sel])
        seg_usage = seg_usage[:, :, None]
        usage = seg_usage.sum(axis=0)
        b = self.capacity[:, 0]
        seg_values = np.add.reduceat(self.stack.mass0 * res.upper, self.stack.offsets[:-1])
        value = float(lam @ b / (1.0 - self.beta) + seg_values.sum())
        grad = (b / (1.0 - self.beta))[:, None] - usage
        return LagrangianEvaluation(value, grad, usage * (1.0 - self.beta), res.upper.copy(), seg_values,
                                    seg_usage), res.upper

    def _occupancy(self, pairs: np.ndarray) -> np.ndarray:
        """d = mu0 (I - beta Q_sigma)^{-1} by BiCGSTAB on the transposed, matrix-free operator."""
        import scipy.sparse.linalg as spla

        N = self.model.num_states
        buf = np.empty(N)

        def matvec(x):
            x = np.ascontiguousarray(np.asarray(x, dtype=np.float64).ravel())
            self.ops.push(x, pairs, buf)
            return x - self.beta * buf

        A = spla.LinearOperator((N, N), matvec=matvec, dtype=np.float64)
        with _single_threaded_blas():
            return self._solve_occupancy(A)

    def _solve_occupancy(self, A) -> np.ndarray:
        import scipy.sparse.linalg as spla

        N = self.model.num_states
        d, status = spla.bicgstab(A, self.stack.mass0, x0=self.stack.mass0 / (1.0 - self.beta), rtol=1e-12,
                                  atol=0.0, maxiter=20 * N + 100)
        if status != 0:
            d, status = spla.gmres(A, self.stack.mass0, x0=d, rtol=1e-12, atol=0.0, restart=60, maxiter=500)
        return d


def _level_step(bundle: LevelBundle, best_y: np.ndarray, best_f: float, f_low: float,
                rel_tol: float) -> tuple[np.ndarray | None, float]:
    """Next point by level-set projection; raises f_low when the level set is empty."""
    for _ in range(MAX_LEVEL_TRIES):
        level = f_low + bundle.alpha * (best_f - f_low)
        outcome, y_next = bundle.project(best_y, level)
        if outcome == "ok":
            return y_next, f_low
        if outcome == "failed":
            return (bundle.model_minimizer() if hasattr(bundle, "model_minimizer")
                    else bundle.model_minimum()[1]), f_low
        f_low = level        # empty level set: min L > level
        if (best_f - f_low) <= rel_tol * max(abs(best_f), 1e-300):
            break
    return None, f_low


def minimise_lagrangian(problem: WeaklyCoupledProblem, rel_tol: float = 1e-3, max_iter: int = 300,
                        time_limit: float | None = None, alpha: float = 0.5,
                        progress: Callable[[dict], None] | None = None, threads: int | None = None,
                        evaluator: LagrangianEvaluator | None = None, multicut: bool = True,
                        cut_groups: int | None = None) -> LagrangianSolution:
    """Minimise L over the price box with a level bundle method (starting from zero prices).

    ``multicut=True`` keeps one cut per group of segments per evaluation
    (:mod:`solvers.multicut_bundle`; ``cut_groups`` groups, default
    ``CUT_GROUPS``, segment k in group k mod G), ``False`` one cut for the
    sum (:mod:`solvers.bundle`).
    """
    start = time.perf_counter()
    ev = evaluator or LagrangianEvaluator(problem, threads=threads)
    M, T, K = ev.M, ev.T, problem.n_segments
    dim = M * T
    scale = ev.price_box().ravel()           # y = prices / box in [0, 1]
    disc_cap = (ev.discount * ev.capacity).ravel() if problem.horizon is not None else \
        (ev.capacity[:, 0] / (1.0 - ev.beta))
    groups = max(1, min(K, int(cut_groups or CUT_GROUPS)))
    group_of = np.arange(K) % groups
    if multicut:
        bundle = MultiCutLevel(dim, groups, disc_cap * scale, np.ones(dim), alpha=alpha)
    else:
        bundle = LevelBundle(dim, alpha=alpha, upper=np.ones(dim))
    y = np.zeros(dim)
    best_f, best_y = np.inf, y
    f_low = -np.inf
    history: list[dict] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        evaluation, _ = ev.evaluate((y * scale).reshape(M, T))
        f = evaluation.value
        if f < best_f:
            best_f, best_y = f, y
        if multicut:
            values = np.bincount(group_of, weights=evaluation.segment_values, minlength=groups)
            grads = np.zeros((groups, dim))
            np.add.at(grads, group_of, -evaluation.segment_usage.reshape(K, dim) * scale)
            bundle.add_cuts(y, values, grads)
            f_low = max(f_low, bundle.model_minimum()[0])
        else:
            bundle.add_cut(y, f, evaluation.subgradient.ravel() * scale)
            f_low = max(f_low, bundle.model_minimum())
        row = {"iteration": it, "value": f, "bound": best_f, "lower": f_low,
               "gap": (best_f - f_low) / max(abs(best_f), 1e-300), "elapsed": time.perf_counter() - start}
        history.append(row)
        if progress is not None:
            progress(row)
        if row["gap"] <= rel_tol:
            converged = True
            break
        if time_limit is not None and time.perf_counter() - start >= time_limit:
            break
        y, f_low = _level_step(bundle, best_y, best_f, f_low, rel_tol)
        if y is None:
            converged = (best_f - f_low) <= rel_tol * max(abs(best_f), 1e-300)
            break
    prices = (best_y * scale).reshape(M, T)
    final, values = ev.evaluate(prices, keep_values=True)
    return LagrangianSolution(prices=prices, bound=float(best_f), lower=float(f_low),
                              gap=float((best_f - f_low) / max(abs(best_f), 1e-300)), iterations=it,
                              converged=converged, time=time.perf_counter() - start, values=values,
                              usage=final.usage, history=history)
