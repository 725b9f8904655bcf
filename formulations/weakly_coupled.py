r"""Weakly coupled MDPs: many customers sharing per-period channel capacities.

Coupled problem
---------------
Customers :math:`i` belong to segments :math:`k = 1..K` (:math:`N_k`
customers each); customer *i* follows its segment's MDP
:math:`(S_k, A_k(\cdot), r_k, q_k, \beta)` independently of the others
except through the capacities. Action *a* uses channel
:math:`\text{ch}(a) \in \{-1, 0..M-1\}` (-1: no channel, e.g. "no contact",
which must be admissible in every state). With :math:`b_{mt} \ge 0` the
capacity of channel *m* in period *t*, the planner solves

.. math::

    V = \max_\pi \; \mathbb{E}^\pi \sum_{t<T} \beta^t \sum_i r_{k(i)}(s_{it}, a_{it})
    \quad \text{s.t.} \quad \#\{i : \text{ch}(a_{it}) = m\} \le b_{mt} \;\; \text{a.s., all } m, t,

from initial states drawn from segment distributions :math:`p^0_k`
(horizon :math:`T` finite, or :math:`T = \infty` with stationary
:math:`b_m`). Its state space is the product of all customers' states:
far too large to solve exactly.

Lagrangian relaxation
---------------------
Price the capacity rows with :math:`\lambda_{mt} \ge 0` (or stationary
:math:`\lambda_m` for :math:`T = \infty`). Each customer then solves its
own MDP with rewards :math:`r(s,a) - \lambda_{\text{ch}(a), t}` (no price
for ch = -1); let :math:`V^\lambda_{k,t}` be its value (backward induction,
:math:`V^\lambda_{k,T} = 0`). The Lagrangian

.. math::

    \mathcal{L}(\lambda) = \sum_{t<T} \beta^t \sum_m \lambda_{mt} b_{mt}
      + \sum_k N_k \, p^0_k \cdot V^\lambda_{k,0}
    \qquad \Bigl(T = \infty:\; \sum_m \frac{\lambda_m b_m}{1-\beta} + \sum_k N_k\, p^0_k \cdot V^\lambda_k\Bigr)

is an **upper bound** on *V* for every :math:`\lambda \ge 0`. *Proof.* For
any feasible policy, each relaxed term
:math:`\beta^t\lambda_{mt}(b_{mt} - \#\{i: \text{ch}(a_{it}) = m\})` is
:math:`\ge 0` almost surely, so the policy's value is at most
:math:`\sum_t\beta^t\sum_m\lambda_{mt}b_{mt} + \sum_i \mathbb{E}\sum_t\beta^t (r - \lambda_{\text{ch}(a_{it}),t})`.
Customer *i*'s transitions depend only on its own states and actions, so
its (history-dependent) behaviour under the joint policy is a policy of its
own MDP, whose priced value is at most :math:`V^\lambda_{k(i),0}(s_{i0})`;
take expectations over the initial states. :math:`\square`

:math:`\mathcal{L}` is convex and piecewise linear; with
:math:`\sigma^\lambda_{k,t}` the priced greedy policies and
:math:`\mu_{k,t}` the expected number of segment-*k* customers per state
(:math:`\mu_{k,0} = N_k p^0_k`, :math:`\mu_{k,t+1} = \mu_{k,t} Q_{\sigma_t}`),

.. math::

    g_{mt} = \beta^t \Bigl(b_{mt} - \sum_k \sum_s \mu_{k,t}(s)\,
             \mathbf{1}[\text{ch}(\sigma^\lambda_{k,t}(s)) = m]\Bigr)

is a subgradient (capacity minus expected usage). For :math:`T = \infty`,
:math:`g_m = b_m/(1-\beta) - \sum_s d(s)\mathbf{1}[\text{ch}(\sigma(s)) = m]`
with the discounted occupancy :math:`d = \mu_0 (I - \beta Q_\sigma)^{-1}`.
:math:`\min_{\lambda \ge 0} \mathcal{L}` equals the optimum of the
occupation-measure ("fluid") LP in which capacities hold in expectation
(LP duality); the tests check this against HiGHS.

Price box
---------
No useful price exceeds
:math:`\bar\lambda = (\max_{s,a} r - \min_s r(s, a_0)) / (1-\beta)`
(:math:`a_0` the channel-free action): every priced advantage
:math:`Q_t(s,a) - Q_t(s,a_0) \le \bar\lambda`, so above it nobody uses the
channel and *g* > 0. The minimisation (:mod:`solvers.weakly_coupled`, level
bundle) works in :math:`[0, \bar\lambda]^{MT}`.

Policy (ADP)
------------
In period *t* each customer's long-run advantage of channel action *a* is

.. math::

    u_t(s, a) = Q_t(s, a) - Q_t(s, a_0), \qquad
    Q_t(s, a) = r(s, a) + \beta \sum_{s'} q(s'|s,a)\, V^\lambda_{t+1}(s')

(continuation values from the relaxation, immediate reward without the
price: the period's assignment prices capacity itself). The period's plan
is the capacity assignment :math:`\max \sum_i u_t(s_i, a_i)` with
:math:`\#\{i : \text{ch}(a_i) = m\} \le b_{mt}` and one action per customer,
a :class:`formulations.assignment.PlanningProblem` with one day.

Stacking
--------
For the kernels all segments form one block-diagonal MDP
(:func:`stack_segments`): segment *k*'s states are
``offsets[k]:offsets[k+1]``. This module also holds the NumPy reference
of the finite-horizon Lagrangian (:func:`lagrangian_reference`), the twin
of :mod:`solvers.weakly_coupled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from formulations.errors import InputError
from formulations.mdp import MDPModel, bellman_operator, push_distribution


@dataclass(frozen=True, eq=False)
class WeaklyCoupledProblem:
    """Segments of customers sharing channel capacities (validated at construction).

    Parameters
    ----------
    segments : sequence of MDPModel
        One MDP per segment (same beta, same action numbering).
    counts : array_like (K,)
        Customers per segment (> 0; integers when simulating).
    initial : sequence of array_like
        Initial state distribution of each segment (length n_k, sums to 1),
        or an int state per segment.
    capacity : array_like (M, T) or (M,)
        Contacts per channel and period; (M,) is repeated over the periods
        (and is the stationary capacity when ``horizon`` is None).
    channel_of_action : array_like of int (m,)
        Channel used by each action, -1 for none.
    horizon : int, optional
        T periods (None: infinite horizon, stationary prices).
    """

    segments: Sequence[MDPModel]
    counts: Any
    initial: Sequence[Any]
    capacity: Any
    channel_of_action: Any
    horizon: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        segs = tuple(self.segments)
        if not segs or not all(isinstance(s, MDPModel) for s in segs):
            raise InputError("segments", "expected a non-empty sequence of MDPModel")
        beta = segs[0].beta
        for k, s in enumerate(segs):
            if s.beta != beta:
                raise InputError("segments", f"expected one discount factor, segment {k} has {s.beta} != {beta}")
        set_(self, "segments", segs)
        K = len(segs)
        counts = np.asarray(self.counts, dtype=np.float64).ravel()
        if counts.shape != (K,) or not np.isfinite(counts).all() or (counts <= 0).any():
            raise InputError("counts", f"expected {K} positive customer counts, got {np.asarray(self.counts)!r}")
        set_(self, "counts", counts)
        ch = np.asarray(self.channel_of_action)
        m = max(s.num_actions for s in segs)
        if ch.ndim != 1 or ch.shape[0] < m or ch.dtype.kind not in "iu" or (ch < -1).any():
            raise InputError("channel_of_action", f"expected {m} integers >= -1 (one per action), got {ch!r}")
        ch = ch.astype(np.int64)
        set_(self, "channel_of_action", ch)
        M = int(ch.max()) + 1
        if M <= 0:
            raise InputError("channel_of_action", "expected at least one action that uses a channel")
        for k, s in enumerate(segs):
            free = ch[s.actions] < 0
            has = np.zeros(s.num_states, dtype=bool)
            has[s.states[free]] = True
            if not has.all():
                raise InputError("segments", f"expected a channel-free action (e.g. no contact) in every state; "
                                             f"segment {k}, state {int(np.flatnonzero(~has)[0])} has none")
        init = list(self.initial)
        if len(init) != K:
            raise InputError("initial", f"expected {K} initial distributions, got {len(init)}")
        dists = []
        for k, (s, p0) in enumerate(zip(segs, init)):
            if np.ndim(p0) == 0:
                st = int(p0)
                if not 0 <= st < s.num_states:
                    raise InputError("initial", f"segment {k}: state {p0!r} outside [0, {s.num_states})")
                d = np.zeros(s.num_states)
                d[st] = 1.0
            else:
                d = np.asarray(p0, dtype=np.float64).ravel()
                if d.shape != (s.num_states,) or not np.isfinite(d).all() or (d < 0).any() \
                        or abs(d.sum() - 1.0) > 1e-8:
                    raise InputError("initial", f"segment {k}: expected a distribution over {s.num_states} states")
            dists.append(d)
        set_(self, "initial", tuple(dists))
        if self.horizon is not None:
            if isinstance(self.horizon, bool) or int(self.horizon) != self.horizon or int(self.horizon) < 1:
                raise InputError("horizon", f"expected a positive integer or None, got {self.horizon!r}")
            set_(self, "horizon", int(self.horizon))
        cap = np.asarray(self.capacity, dtype=np.float64)
        T = 1 if self.horizon is None else self.horizon
        if cap.ndim == 1 and cap.shape == (M,):
            cap = np.repeat(cap[:, None], T, axis=1)
        if cap.shape != (M, T):
            raise InputError("capacity", f"expected shape ({M}, {T}) or ({M},), got {np.shape(self.capacity)}")
        if not np.isfinite(cap).all() or (cap < 0).any():
            raise InputError("capacity", "expected non-negative finite capacities")
        set_(self, "capacity", cap)

    @property
    def beta(self) -> float:
        return self.segments[0].beta

    @property
    def n_channels(self) -> int:
        return int(self.channel_of_action.max()) + 1

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    @property
    def periods(self) -> int:
        """T (1 for the infinite horizon: one stationary price per channel)."""
        return int(self.capacity.shape[1])


@dataclass(frozen=True, eq=False)
class StackedModel:
    """All segments as one block-diagonal MDP (CSR transitions)."""

    model: MDPModel
    offsets: np.ndarray          # (K + 1,) first state of each segment
    segment_of_state: np.ndarray  # (N,)
    pair_channel: np.ndarray      # (L,) channel of each pair, -1 for none
    free_pair: np.ndarray         # (N,) the channel-free pair of each state (lowest such action)
    mass0: np.ndarray             # (N,) expected customers per state at t = 0


def stack_segments(problem: WeaklyCoupledProblem) -> StackedModel:
    """Stack the segment MDPs into one block-diagonal model."""
    segs = problem.segments
    sizes = np.array([s.num_states for s in segs], dtype=np.int64)
    offsets = np.zeros(len(segs) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    blocks = [s.transition_csr() for s in segs]
    Q = sp.block_diag(blocks, format="csr")
    Q.sort_indices()
    Q.indptr = Q.indptr.astype(np.int64)
    rewards = np.concatenate([s.rewards for s in segs])
    states = np.concatenate([s.states + offsets[k] for k, s in enumerate(segs)])
    actions = np.concatenate([s.actions for s in segs])
    state_ptr = np.zeros(offsets[-1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(states, minlength=offsets[-1]), out=state_ptr[1:])
    m = max(s.num_actions for s in segs)
    model = MDPModel(problem.beta, int(offsets[-1]), m, rewards, states, actions, state_ptr, Q,
                     np.arange(rewards.size, dtype=np.int64))
    pair_channel = problem.channel_of_action[actions]
    free = pair_channel < 0
    free_pair = np.full(model.num_states, -1, dtype=np.int64)
    idx = np.flatnonzero(free)
    _, first = np.unique(states[idx], return_index=True)   # pairs are sorted: first = lowest action
    free_pair[states[idx[first]]] = idx[first]
    mass0 = np.concatenate([problem.counts[k] * problem.initial[k] for k in range(len(segs))])
    seg_of_state = np.repeat(np.arange(len(segs), dtype=np.int64), sizes)
    return StackedModel(model, offsets, seg_of_state, pair_channel, free_pair, mass0)


@dataclass
class LagrangianEvaluation:
    """L(prices) with a subgradient and the pieces behind it."""

    value: float
    subgradient: np.ndarray     # (M, T)
    usage: np.ndarray           # (M, T) expected contacts under the priced policies
    values0: np.ndarray         # (N,) V^lambda at t = 0 (stacked states)
    segment_values: np.ndarray | None = None   # (K,) N_k p0_k . V^lambda_k: L = prices . b + sum
    segment_usage: np.ndarray | None = None    # (K, M, T) discounted-weighted usage: d L / d prices = b - sum


def lagrangian_reference(problem: WeaklyCoupledProblem, prices: np.ndarray) -> LagrangianEvaluation:
    """Finite-horizon L(prices) and its subgradient with the NumPy operators (test twin)."""
    if problem.horizon is None:
        raise InputError("horizon", "the reference evaluation covers finite horizons only")
    st = stack_segments(problem)
    model = st.model
    beta, T, M = problem.beta, problem.periods, problem.n_channels
    prices = np.asarray(prices, dtype=np.float64).reshape(M, T)
    ch = st.pair_channel
    v = np.zeros(model.num_states)
    policies = []
    for t in range(T - 1, -1, -1):
        r = model.rewards - np.where(ch >= 0, prices[np.maximum(ch, 0), t], 0.0)
        v, best, _ = bellman_operator(model, v, rewards=r)
        policies.append(best)
    policies.reverse()
    usage = np.zeros((M, T))
    mass = st.mass0.copy()
    for t in range(T):
        c = ch[policies[t]]
        usage[:, t] = np.bincount(c[c >= 0], weights=mass[c >= 0], minlength=M)
        mass = push_distribution(model, policies[t], mass)
    disc = beta ** np.arange(T)
    value = float((disc * (prices * problem.capacity).sum(axis=0)).sum() + st.mass0 @ v)
    return LagrangianEvaluation(value, disc * (problem.capacity - usage), usage, v)
