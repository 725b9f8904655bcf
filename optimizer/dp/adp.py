"""Lagrangian ADP for many customers: bound, per-period plans, simulation, weekly utilities.

The maths is in :mod:`formulations.weakly_coupled`; the price minimisation in
:mod:`solvers.weakly_coupled`. This module is what a planner calls:

* :class:`LagrangianADP` — ``fit()`` minimises the Lagrangian bound
  (``bound_``, ``prices_``); ``advantages(t)`` gives the long-run advantage
  ``u_t(s, m) = Q_t(s, a_m) - Q_t(s, a_0)`` of each channel in each state;
  ``simulate()`` runs the policy that solves, every period, the capacity
  assignment over customers with those utilities (a one-day
  :class:`~formulations.assignment.PlanningProblem` solved by
  :func:`optimizer.solve`), and reports the discounted value with a
  confidence interval;
* :func:`compare_policies` — the ADP policy against a baseline scoring rule
  (e.g. the myopic ``p * value``) under common random numbers: the paired
  difference and its confidence interval;
* :func:`utilities_from_mdp` — (n, M, T) utilities for the weekly plan that
  include long-run value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from formulations.weakly_coupled import WeaklyCoupledProblem
from solvers.weakly_coupled import LagrangianEvaluator, LagrangianSolution, minimise_lagrangian


@dataclass
class SimulationResult:
    """Discounted value of a policy over replications.

    Attributes
    ----------
    values : ndarray (R,)
        Discounted value of each replication (expected one-period rewards
        summed along the simulated paths).
    mean, std_error, ci_low, ci_high : float
        Mean and its 95% t-interval.
    usage : ndarray (M, T)
        Mean contacts per channel and period.
    time : float
    """

    values: np.ndarray
    mean: float
    std_error: float
    ci_low: float
    ci_high: float
    usage: np.ndarray = field(repr=False)
    time: float = 0.0


@dataclass
class PolicyComparison:
    """ADP minus a baseline policy under common random numbers (paired replications)."""

    adp: SimulationResult
    baseline: SimulationResult
    difference: float
    std_error: float
    ci_low: float
    ci_high: float
    relative: float          # difference / |baseline mean|


def _interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    se = float(values.std(ddof=1) / np.sqrt(values.size))
    half = float(stats.t.ppf(0.5 + level / 2, values.size - 1)) * se
    return mean, se, mean - half, mean + half


class LagrangianADP:
    """Approximate dynamic programming for customers sharing channel capacities.

    Parameters
    ----------
    problem : WeaklyCoupledProblem
        Segments, customer counts, initial distributions, capacities, horizon.
    rel_tol : float
        Relative gap of the price minimisation (bound vs. its lower estimate).
    max_iter : int
    time_limit : float, optional
    threads : int, optional
        1: serial kernels; None: numba threads for large passes.

    Attributes
    ----------
    solution_ : LagrangianSolution
    bound_ : float
        Upper bound on the value of any policy respecting the capacities.
    prices_ : ndarray (M, T)
    """

    def __init__(self, problem: WeaklyCoupledProblem, rel_tol: float = 5e-3, max_iter: int = 300,
                 time_limit: float | None = None, threads: int | None = None) -> None:
        if not isinstance(problem, WeaklyCoupledProblem):
            raise InputError("problem", f"expected a WeaklyCoupledProblem, got {type(problem).__name__}")
        self.problem = problem
        self.rel_tol = rel_tol
        self.max_iter = max_iter
        self.time_limit = time_limit
        self.threads = threads

    def fit(self, progress: Callable[[dict], None] | None = None) -> "LagrangianADP":
        """Minimise the Lagrangian bound; sets ``solution_``, ``bound_``, ``prices_``."""
        self.evaluator_ = LagrangianEvaluator(self.problem, threads=self.threads)
        self.solution_: LagrangianSolution = minimise_lagrangian(
            self.problem, rel_tol=self.rel_tol, max_iter=self.max_iter, time_limit=self.time_limit,
            progress=progress, evaluator=self.evaluator_)
        self.bound_ = self.solution_.bound
        self.prices_ = self.solution_.prices
        st = self.evaluator_.stack
        model = st.model
        self.pair_table_ = model.pair_index()
        self._P = model.transition_csr()
        self._action_of_channel = np.full(self.problem.n_channels, -1, dtype=np.int64)
        ch = self.problem.channel_of_action
        for a in range(ch.size - 1, -1, -1):
            if ch[a] >= 0:
                self._action_of_channel[ch[a]] = a
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "solution_"):
            raise InputError("adp", "call fit() first")

    def continuation(self, t: int) -> np.ndarray:
        """V^lambda_{t+1} of the stacked states (the stationary V for an infinite horizon)."""
        self._check_fitted()
        vals = self.solution_.values
        if self.problem.horizon is None:
            return vals
        return vals[min(t + 1, vals.shape[0] - 1)]

    def q_values(self, t: int) -> np.ndarray:
        """Q_t(s, a) = r(s, a) + beta E[V_{t+1}(s')] for every stacked pair (no price)."""
        model = self.evaluator_.model
        return model.rewards + model.beta * (self._P @ self.continuation(t))

    def advantages(self, t: int) -> np.ndarray:
        """(N, M) table u_t(s, m) = Q_t(s, a_m) - Q_t(s, a_0); NaN where channel m is not admissible."""
        self._check_fitted()
        ev = self.evaluator_
        q = self.q_values(t)
        return self._table(q - q[ev.stack.free_pair[ev.model.states]])

    def _table(self, per_pair: np.ndarray) -> np.ndarray:
        ev = self.evaluator_
        model = ev.model
        out = np.full((model.num_states, self.problem.n_channels), np.nan)
        ch = ev.channel
        sel = ch >= 0
        out[model.states[sel], ch[sel]] = per_pair[sel]
        return out

    def score_table(self, scores: np.ndarray) -> np.ndarray:
        """(N, M) table from per-pair scores of the stacked model (e.g. the myopic p * value)."""
        self._check_fitted()
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (self.evaluator_.model.num_sa_pairs,):
            raise InputError("scores", f"expected one score per stacked pair ({self.evaluator_.model.num_sa_pairs},),"
                                       f" got shape {scores.shape}")
        return self._table(scores)

    # ------------------------------------------------------------ simulation
    def simulate(self, policy: str | np.ndarray = "adp", replications: int = 5, seed: int = 0,
                 periods: int | None = None, assignment_method: str = "greedy") -> SimulationResult:
        """Discounted value of the ADP policy (or of per-pair ``scores``) over replications.

        Each replication draws every customer's initial state from its
        segment's distribution, then per period solves the capacity
        assignment (``optimizer.solve`` on a one-day PlanningProblem) and
        draws next states. Replication *r* uses seed ``seed + r`` for every
        policy (common random numbers).
        """
        self._check_fitted()
        T = self.problem.horizon if periods is None else int(periods)
        if T is None:
            raise InputError("periods", "expected a number of periods for an infinite-horizon problem")
        if isinstance(policy, str):
            if policy != "adp":
                raise InputError("policy", f"expected 'adp' or per-pair scores, got {policy!r}")
            table_of = self.advantages
        else:
            fixed = self.score_table(policy)
            table_of = lambda t: fixed  # noqa: E731
        start = time.perf_counter()
        values = np.empty(int(replications))
        usage = np.zeros((self.problem.n_channels, T))
        tables = [table_of(t) for t in range(T)]
        for r in range(int(replications)):
            v, u = self._run(tables, T, np.random.default_rng(seed + r), assignment_method)
            values[r] = v
            usage += u
        mean, se, lo, hi = _interval(values)
        return SimulationResult(values, mean, se, lo, hi, usage / max(int(replications), 1),
                                time.perf_counter() - start)

    def customers(self) -> np.ndarray:
        """Segment of each simulated customer (counts must be integers)."""
        counts = self.problem.counts
        if (counts != np.round(counts)).any():
            raise InputError("counts", "expected integer customer counts to simulate")
        return np.repeat(np.arange(counts.size), counts.astype(np.int64))

    def _run(self, tables: list, T: int, rng: np.random.Generator, method: str) -> tuple[float, np.ndarray]:
        from optimizer.api import solve

        ev = self.evaluator_
        st, model, ops = ev.stack, ev.model, ev.ops
        seg = self.customers()
        n = seg.size
        # initial states: inverse-CDF draws from each segment's distribution
        u0 = rng.random(n)
        state = np.empty(n, dtype=np.int64)
        for k in range(self.problem.n_segments):
            who = np.flatnonzero(seg == k)
            cdf = np.cumsum(self.problem.initial[k])
            local = np.minimum(np.searchsorted(cdf, u0[who], side="right"), cdf.size - 1)
            state[who] = st.offsets[k] + local
        uniforms = rng.random((T, n))
        M = self.problem.n_channels
        beta = model.beta
        total = 0.0
        usage = np.zeros((M, T))
        cap = self.problem.capacity
        for t in range(T):
            util = tables[t][state]                       # (n, M), NaN = not admissible
            action = np.full(n, -1, dtype=np.int64)
            if np.isfinite(util).any() and (np.nan_to_num(util, nan=-1.0) > 0).any():
                problem = PlanningProblem(utility=util[:, :, None], capacity=cap[:, min(t, cap.shape[1] - 1)],
                                          cost=np.zeros(M), max_contacts=1)
                plan = solve(problem, method=method)
                idx = plan.assignment_indices
                action[idx[:, 0]] = self._action_of_channel[idx[:, 1]]
                usage[:, t] = np.bincount(idx[:, 1], minlength=M)
            pairs = st.free_pair[state]
            chosen = action >= 0
            pairs[chosen] = self.pair_table_[state[chosen], action[chosen]]
            total += beta ** t * float(model.rewards[pairs].sum())
            state = ops.sample(pairs, uniforms[t])
        return total, usage


def compare_policies(adp: LagrangianADP, baseline_scores: np.ndarray, replications: int = 10, seed: int = 0,
                     assignment_method: str = "greedy") -> PolicyComparison:
    """ADP vs. a scoring baseline on the same random numbers; paired 95% t-interval of the difference."""
    a = adp.simulate("adp", replications, seed, assignment_method=assignment_method)
    b = adp.simulate(baseline_scores, replications, seed, assignment_method=assignment_method)
    diff = a.values - b.values
    mean, se, lo, hi = _interval(diff)
    return PolicyComparison(a, b, mean, se, lo, hi, mean / max(abs(b.mean), 1e-300))


def utilities_from_mdp(source: Any, states: Any, *, segments: Any = None, values: Any = None,
                       channel_of_action: Any = None, periods: int = 7, start_period: int = 0,
                       discount: bool = True) -> np.ndarray:
    """Long-run utilities (n, M, T) for :class:`~formulations.assignment.PlanningProblem`.

    ``u[i, m, t]`` is the expected advantage of contacting customer *i*
    through channel *m* in plan period *t* rather than not at all, given no
    earlier contact in the plan: with :math:`P_0` the no-contact transition
    matrix and :math:`\\pi_t = e_{s_i} P_0^t`,
    ``u[i, m, t] = beta^t * pi_t . (Q_t(., a_m) - Q_t(., a_0))`` (without
    ``beta^t`` when ``discount=False``). NaN (not allowed) where channel *m*
    is not admissible in a reachable state.

    Parameters
    ----------
    source : LagrangianADP or DiscreteMDP
        A fitted ADP (period-dependent Q from the relaxation, customers given
        by ``segments`` and segment-local ``states``) or a DiscreteMDP with
        its ``values`` (a DPResult or v) and ``channel_of_action``.
    states : array_like of int (n,)
    periods : int
        Plan periods T (one MDP period per plan day).
    start_period : int
        ADP period of the first plan day.
    """
    from optimizer.dp.mdp import DiscreteMDP

    states = np.asarray(states)
    if states.ndim != 1 or states.dtype.kind not in "iu":
        raise InputError("states", f"expected a 1-d integer array, got {states.dtype} {states.shape}")
    T = int(periods)
    if T < 1:
        raise InputError("periods", f"expected a positive integer, got {periods!r}")
    if isinstance(source, LagrangianADP):
        source._check_fitted()
        ev = source.evaluator_
        st = ev.stack
        seg = np.asarray(segments if segments is not None else np.zeros(states.size, dtype=np.int64))
        if seg.shape != states.shape or seg.dtype.kind not in "iu" or seg.min() < 0 \
                or seg.max() >= source.problem.n_segments:
            raise InputError("segments", f"expected {states.size} segment indices in [0, "
                                         f"{source.problem.n_segments})")
        sizes = np.diff(st.offsets)
        if (states < 0).any() or (states >= sizes[seg]).any():
            raise InputError("states", "expected segment-local state indices")
        glob = st.offsets[seg] + states
        model, free_pair = st.model, st.free_pair
        tables = [source.advantages(start_period + t) for t in range(T)]
    elif isinstance(source, DiscreteMDP):
        if values is None or channel_of_action is None:
            raise InputError("values", "expected values (a DPResult or v) and channel_of_action with a DiscreteMDP")
        v = getattr(values, "v", values)
        q = source.q_table(v)
        ch = np.asarray(channel_of_action, dtype=np.int64)
        free = np.flatnonzero(ch < 0)
        if free.size == 0 or ch.shape != (source.num_actions,):
            raise InputError("channel_of_action", f"expected {source.num_actions} entries with a -1 (no contact)")
        model = source.model
        if (states < 0).any() or (states >= model.num_states).any():
            raise InputError("states", f"expected states in [0, {model.num_states})")
        glob = states
        M = int(ch.max()) + 1
        adv = np.full((model.num_states, M), np.nan)
        for a in np.flatnonzero(ch >= 0):
            d = q[:, a] - q[:, free[0]]
            adv[:, ch[a]] = np.where(np.isfinite(d), d, np.nan)
        tables = [adv] * T
        free_pair = model.pair_index()[np.arange(model.num_states), free[0]]
        if (free_pair < 0).any():
            raise InputError("channel_of_action", f"the no-contact action {int(free[0])} must be admissible in "
                                                  f"every state (state {int(np.flatnonzero(free_pair < 0)[0])})")
    else:
        raise InputError("source", f"expected a fitted LagrangianADP or a DiscreteMDP, got {type(source).__name__}")
    P0 = model.transition_csr()[free_pair]                     # no-contact chain (N, N)
    n, M = glob.size, tables[0].shape[1]
    out = np.empty((n, M, T))
    beta = model.beta
    for t in range(T):
        W = tables[t]
        W = np.where(np.isnan(W), np.inf, W)                   # inf marks "not admissible somewhere reachable"
        for _ in range(t):
            W = _sparse_expect(P0, W)
        W = np.where(np.isinf(W), np.nan, W)
        out[:, :, t] = (beta ** t if discount else 1.0) * W[glob]
    return out


def _sparse_expect(P: sp.csr_matrix, W: np.ndarray) -> np.ndarray:
    """P @ W where inf entries of W propagate to every state that reaches them with positive probability."""
    bad = np.isinf(W)
    finite = np.where(bad, 0.0, W)
    out = np.asarray(P @ finite)
    reach_bad = np.asarray((P @ bad.astype(np.float64)) > 0)
    return np.where(reach_bad, np.inf, out)
