r"""Lagrangian dual decomposition of the weekly plan (the maths of ``method="dual"``).

Relaxation
----------
Relax only the coupling rows of :mod:`formulations.assignment` — channel
capacity (one price :math:`\lambda_{mt} \ge 0` per channel-day) and the budget
(one price :math:`\mu \ge 0`). With reduced utilities

.. math::

    r_{imt}(\lambda, \mu) = u_{imt} - \lambda_{mt} - \mu\, c_m

the Lagrangian separates per customer:

.. math::

    L(\lambda, \mu) = \sum_{m,t} \lambda_{mt}\, \text{cap}_{mt} + \mu B
                      + \sum_i \phi_i(\lambda, \mu), \qquad
    \phi_i = \max_{x_i \in X_i} \sum_{m,t} r_{imt}\, x_{imt},

where :math:`X_i` holds the customer's own constraints: at most :math:`K_i`
contacts, spacing windows, eligibility (the same candidate contacts and
reductions as the ILP). Any feasible plan *x* satisfies
:math:`\sum u x \le L(\lambda, \mu)` for every :math:`\lambda, \mu \ge 0`
(the relaxed terms :math:`\lambda(\text{cap} - \text{usage})` and
:math:`\mu(B - \text{spend})` are non-negative), so **every evaluated
L is an upper bound on the optimum**; ``plan.bound`` is the smallest one
evaluated.

Per-customer subproblem (exact dynamic programme over days)
----------------------------------------------------------
At most one contact per day is allowed (windows cover every day), so only the
best channel of each day matters: :math:`w_t = \max_m r_{imt}` over the
customer's candidate contacts, taken only when :math:`w_t > 0`. Choosing days
pairwise at least *g* apart, at most *K* of them:

.. math::

    V_{t+1,k} = \max\bigl(V_{t,k},\; V_{\max(0,\, t-g+1),\, k-1} + w_t\bigr),
    \qquad V_{0,k} = V_{t,0} = 0,

and :math:`\phi_i = V_{T, K_i}`; back-tracking the maximisers gives the
contacts. Ties are broken towards *not* contacting and towards the lowest
channel index, identically in the numba kernel and its NumPy twin. Cost per
customer: :math:`O(MT + TK)`.

Why the dual bound equals the LP relaxation bound
-------------------------------------------------
Order a customer's candidate columns by day. Every row of :math:`X_i` — each
spacing window and the limit row — covers a block of consecutive columns, so
the constraint matrix of :math:`X_i` is an interval matrix and therefore
totally unimodular; with integer right-hand sides and :math:`0 \le x \le 1`
the polytope :math:`\{x : \text{rows of } X_i\}` has integral vertices. By
Geoffrion's theorem (a Lagrangian subproblem with the integrality property)
:math:`\min_{\lambda,\mu \ge 0} L = ` the LP relaxation value of the
(reduced) ILP. The tests check this against HiGHS's LP.

Minimising the dual: a level bundle method
------------------------------------------
*L* is convex and piecewise linear in :math:`d \le MT + 1` prices. Each
evaluation at :math:`p_j` gives a value :math:`L_j` and a subgradient
:math:`s_j = (\text{cap} - \text{usage}_j,\; B - \text{spend}_j)`. The method
(Lemaréchal, Nemirovskii, Nesterov 1995) keeps the cutting-plane model
:math:`\check L(p) = \max_j L_j + s_j^\top (p - p_j)` and

1. a lower estimate :math:`f_\text{low} = \max(\min_{p \in P} \check L(p),\, z)`
   from a small HiGHS LP over the price box *P* and the best primal plan
   value *z* (weak duality: :math:`z \le \min L`),
2. the level :math:`\ell = f_\text{low} + \alpha (f_\text{up} - f_\text{low})`
   with :math:`f_\text{up} = \min_j L_j`,
3. the next prices: the Euclidean projection of the best point onto
   :math:`\{p \in P : \check L(p) \le \ell\}`, a small convex QP. It is
   a least-distance programme, solved exactly through nonnegative least
   squares (Lawson and Hanson, ch. 23; scipy's ``nnls``) in 0.25–0.45 ms
   per projection on the 10k weekly instance against 0.7–1.9 ms for HiGHS's
   QP solver, which checks any point that misses a cut and any claim that
   the level set is empty.

Prices are scaled by their box widths (each price lies in
:math:`[0, \max_i u_{imt}]`, the budget price in
:math:`[0, \max u/c]`: beyond those, raising a price only raises *L*), so
channels with costs in cents and in tens of euros move on the same scale.
Unlike a subgradient method the level method needs no step-size rule, keeps
a certified interval :math:`[f_\text{low}, f_\text{up}]` and its projections
are stable on a dual that is nearly smooth at millions of customers but
kinked at small *n*. The measured comparison that motivated the choice is in
``benchmarks/dual_methods.md``.

Primal recovery
---------------
From the final prices each customer's DP choice gives a plan that satisfies
the customer's own constraints but may overload a channel-day or the budget.
An overloaded channel-day gives up the contacts that are cheapest to lose:
the reduced utility less that of the customer's best channel-day with room
(same fairness shift, no more spend, spacing kept), and such a contact moves
there while room lasts; the others are dropped (with hard segment rows all
are dropped). An overspent budget drops contacts with the smallest
:math:`(u - \lambda)/c` (value per unit of cost net of capacity prices).
Moving and dropping never break a customer's constraints. Leftover capacity and budget
are then filled greedily with the best remaining feasible contacts in order
of reduced utility. ``plan.objective`` is the value of that feasible plan and
``plan.gap = (bound - objective) / |bound|`` is a certified optimality gap.

The Lagrangian dual equals the LP over convex combinations of each
customer's patterns (the Dantzig-Wolfe master), so near the optimum a good
plan mixes the customers' choices at nearby prices. From 200,000 customers
(in-process) the recoveries after the first are *master recoveries*
(:mod:`solvers.master`): starting from the incumbent plan :math:`x^0`, every
customer whose choice at one of the last eight evaluation points differs
from :math:`x^0_i` is offered that choice (the one of largest reduced gain),
and the LP

.. math::

   \max_{0 \le z \le 1} \sum_c g_c z_c - \gamma \sum_p w_p z_p^2
   \quad \text{s.t.} \quad \sum_c D_c z_c \le s

(:math:`g_c` the change in utility, :math:`D_c` the change in cell usage,
spend and segment rows, :math:`s` the slack :math:`x^0` leaves; the penalty
term cut by tangents) picks the switches. Columns with the same change
share a group whose members enter the LP as buckets of consecutive gain
ranks, split until the LP is exact over the offered columns; the few
fractional columns are rounded and the plan repaired as above.

This module holds the NumPy reference (twin) of the numba kernels in
:mod:`solvers._dual_kernels`; it is used by the tests on small inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.assignment import PlanningProblem


@dataclass(frozen=True)
class DualEvaluation:
    """L(prices) with the pieces of its subgradient."""

    value: float              # L(lambda, mu)
    customer_sum: float       # sum_i phi_i
    usage: np.ndarray         # (M, T) contacts per cell at the customers' optima
    spend: float              # total cost at the customers' optima


def reduced_utilities(problem: PlanningProblem, capacity_price: np.ndarray, budget_price: float,
                      shift: np.ndarray | None = None) -> np.ndarray:
    """r = u - (lambda + mu*c + shift[segment]) over candidate contacts; -inf elsewhere (float64, (n, M, T)).

    ``shift`` (S, M) is the fairness price shift of :mod:`formulations.fairness`.
    """
    u = problem.utility.astype(np.float64)
    neg_ok = problem.negative_ok()
    ok = ((u > 0) | (np.isfinite(u) & neg_ok[None, :, None])) & problem.cell_allowed()[None, :, :]
    limits = problem.contact_limits()
    ok &= (limits > 0)[:, None, None]
    total = capacity_price + budget_price * problem.cost[:, None]      # summed first, as the kernels do
    if shift is not None and problem.segment_codes is not None:
        r = u - (total[None, :, :] + shift[problem.segment_codes][:, :, None])
    else:
        r = u - total[None, :, :]
    return np.where(ok, r, -np.inf)


def customer_dp(day_value: np.ndarray, limits: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-customer DP, vectorised over customers.

    Parameters
    ----------
    day_value : ndarray (n, T)
        Best reduced utility per day (``-inf`` when no candidate).
    limits : ndarray (n,)
        Contact limits K_i.
    gap : int
        Minimum days between contacts.

    Returns
    -------
    values : ndarray (n,)
        phi_i.
    take : ndarray of bool (n, T)
        Days contacted in the optimal choice.
    """
    n, T = day_value.shape
    limits = np.minimum(np.asarray(limits, dtype=np.int64), T)
    kmax = int(limits.max()) if n else 0
    w = np.where(day_value > 0, day_value, 0.0)
    takeable = day_value > 0
    V = np.zeros((n, T + 1, kmax + 1))
    choice = np.zeros((n, T, kmax + 1), dtype=bool)
    for t in range(T):
        prev = max(0, t - gap + 1)
        for k in range(1, kmax + 1):
            skip = V[:, t, k]
            take = V[:, prev, k - 1] + w[:, t]
            better = takeable[:, t] & (take > skip)
            V[:, t + 1, k] = np.where(better, take, skip)
            choice[:, t, k] = better
    rows = np.arange(n)
    values = V[rows, T, limits]
    chosen = np.zeros((n, T), dtype=bool)
    pos = np.full(n, T, dtype=np.int64)
    k = limits.copy()
    for _ in range(T):
        active = (pos > 0) & (k > 0)
        if not active.any():
            break
        t = pos - 1
        took = active & choice[rows, np.maximum(t, 0), k]
        chosen[rows[took], t[took]] = True
        pos = np.where(took, np.maximum(0, t - gap + 1), np.where(active, t, pos))
        k = np.where(took, k - 1, k)
    return values, chosen


def customer_choices(problem: PlanningProblem, capacity_price: np.ndarray, budget_price: float,
                     shift: np.ndarray | None = None):
    """Each customer's optimal contacts at given prices: (values (n,), indices (k, 3))."""
    r = reduced_utilities(problem, capacity_price, budget_price, shift)
    best_channel = np.argmax(r, axis=1)                       # first maximum: lowest channel index
    day_value = np.take_along_axis(r, best_channel[:, None, :], axis=1)[:, 0, :]
    values, take = customer_dp(day_value, problem.contact_limits(), problem.min_gap_days)
    i, t = np.nonzero(take)
    return values, np.stack([i, best_channel[i, t], t], axis=1).astype(np.int64)


def dual_function(problem: PlanningProblem, capacity_price: np.ndarray, budget_price: float = 0.0,
                  row_price: np.ndarray | None = None, term_price: np.ndarray | None = None) -> DualEvaluation:
    """Evaluate L(lambda, mu, nu) and its subgradient pieces (NumPy reference).

    ``row_price`` (R,) >= 0 prices the hard segment rows, ``term_price`` (P,)
    the fairness penalty terms (see :mod:`formulations.fairness`).
    """
    capacity_price = np.asarray(capacity_price, dtype=np.float64)
    if problem.budget is None:
        budget_price = 0.0
    f = problem.fairness if problem.has_fairness else None
    shift = None
    extra = 0.0
    if f is not None:
        row_price = np.zeros(f.n_rows) if row_price is None else np.asarray(row_price, dtype=np.float64)
        term_price = np.zeros(f.n_terms) if term_price is None else np.asarray(term_price, dtype=np.float64)
        shift = f.shift(row_price, term_price)
        extra = float(row_price @ f.row_rhs)
        if f.n_terms:
            w = f.pen_weight[:f.n_terms]
            extra += float(term_price @ f.pen_const[:f.n_terms] + np.sum(term_price ** 2 / (4 * f.penalty * w)))
    values, idx = customer_choices(problem, capacity_price, budget_price, shift)
    M, T = problem.n_channels, problem.n_days
    usage = np.zeros((M, T), dtype=np.int64)
    np.add.at(usage, (idx[:, 1], idx[:, 2]), 1)
    spend = float(problem.cost[idx[:, 1]].sum())
    allowed = problem.cell_allowed()
    customer_sum = float(values.sum())
    value = float(np.sum(np.where(allowed, capacity_price * problem.capacity, 0.0))) + customer_sum + extra
    if problem.budget is not None:
        value += budget_price * problem.budget
    return DualEvaluation(value, customer_sum, usage, spend)
