r"""What-if numbers for the report: shadow prices checked by re-solving, and frontiers.

Shadow prices and finite differences
------------------------------------
Let :math:`Z(b)` be the integer optimum with capacities/budget :math:`b`,
:math:`V(b) \ge Z(b)` the LP relaxation and :math:`L(p; b)` the Lagrangian
of :mod:`formulations.lagrangian` at prices *p*. The dual method reports a
plan value :math:`z(b) \le Z(b)` and the bound :math:`\bar z(b) = L(p_b; b)`
attained at its prices :math:`p_b`. Adding one unit :math:`e` to a capacity
cell (or the budget) changes the Lagrangian by exactly the price of that row,
:math:`L(p; b + e) = L(p; b) + p_e`, so by weak duality

.. math::

    z(b+e) - z(b) \;\le\; V(b+e) - z(b) \;\le\; L(p_b; b+e) - z(b)
                 \;=\; p_{b,e} + (\bar z(b) - z(b)),

    z(b+e) - z(b) \;\ge\; z(b+e) - L(p_{b+e}; b) \;=\; p_{b+e,e} - (\bar z(b+e) - z(b+e)).

The re-solved change in the objective therefore lies in
:math:`[\,p_{b+e,e} - \text{gap}(b+e),\; p_{b,e} + \text{gap}(b)\,]` (absolute
gaps): *it agrees with the price within the gaps*. :func:`price_checks`
re-solves (warm-started from the prices) and reports the change and this
interval. For the LP relaxation itself the exact statement is
:math:`V(b+e) - V(b) \le p_e \le V(b) - V(b-e)` for any optimal LP dual *p*
(the LP value is concave in *b*, and *p* is a supergradient); the tests check
both with HiGHS (``solvers.highs_direct.solve_relaxation``). Closed cells
(capacity 0) have no row, hence no price: opening one changes the set of
allowed contacts, which a price cannot describe; they are skipped.

Frontiers
---------
:func:`budget_curve` and :func:`capacity_curve` re-solve across a grid with
:func:`optimizer.frontier.budget_frontier` / ``capacity_frontier``
(warm-started from the previous point's prices). The optimum is
non-decreasing in the budget and in a capacity, and a plan for a smaller
budget stays feasible for a larger one, so two envelopes are valid and are
added:

* ``best_objective`` :math:`= \max_{b' \le b} z(b')` — the best plan known to
  be feasible at *b*;
* ``best_bound`` :math:`= \min_{b' \ge b} \bar z(b')` — still an upper bound
  on :math:`Z(b)`.

Both are non-decreasing, and :math:`\text{best\_objective} \le Z(b) \le
\text{best\_bound}`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from optimizer.explain import ShadowPrices

CHECK_TOL = 1e-7


def price_table(problem: PlanningProblem, prices: ShadowPrices, usage: np.ndarray) -> pd.DataFrame:
    """One row per channel-day: used, capacity, price (NaN for closed cells), sorted by price."""
    rows = []
    for m, ch in enumerate(problem.channel_names):
        for t, day in enumerate(problem.day_labels):
            cap = float(problem.capacity[m, t])
            rows.append({"channel": ch, "day": day, "used": int(usage[m, t]), "capacity": cap,
                         "price": float(prices.capacity[m, t]) if cap >= 1 else np.nan})
    return pd.DataFrame(rows).sort_values("price", ascending=False, kind="stable").reset_index(drop=True)


def price_checks(problem: PlanningProblem, prices: ShadowPrices, cells: int = 3, budget: bool = True,
                 rel_gap: float = 1e-4, time_limit: float | None = None,
                 extra_cells: Sequence[tuple[int, int]] = ()) -> pd.DataFrame:
    """Re-solve with one more unit of the highest-priced capacity cells (and of the budget).

    Parameters
    ----------
    problem : PlanningProblem
    prices : ShadowPrices
        Must come from a ``method="dual"`` solve (``prices.plan``): the interval
        of the module docstring needs the bound attained at these prices.
    cells : int
        How many of the highest-priced open cells to check.
    budget : bool
        Also check one more unit of budget (when the problem has one).
    rel_gap, time_limit
        For the re-solves.
    extra_cells : sequence of (channel, day) indices
        Cells to check in addition.

    Returns
    -------
    DataFrame
        ``what, price, objective_before, objective_after, change, low, high,
        within`` — ``within`` is ``low <= change <= high`` (tolerance 1e-7).
    """
    from optimizer.api import solve

    base = prices.plan
    if base is None or base.bound is None or base.method != "dual":
        raise InputError("prices", "price checks need prices from a method='dual' solve")
    lam = prices.capacity
    open_cells = problem.capacity >= 1
    order = np.argsort(-np.where(open_cells, lam, -np.inf), axis=None, kind="stable")
    chosen: list[tuple[int, int]] = []
    for flat in order[:max(0, cells)]:
        m, t = np.unravel_index(int(flat), lam.shape)
        if open_cells[m, t] and lam[m, t] > 0:
            chosen.append((int(m), int(t)))
    for m, t in extra_cells:
        if (m, t) not in chosen and open_cells[m, t]:
            chosen.append((int(m), int(t)))
    gap0 = float(base.bound - base.objective)
    rows = []

    def check(what: str, changed: PlanningProblem, price: float, pick) -> None:
        after = solve(changed, method="dual", rel_gap=rel_gap, time_limit=time_limit, warm_start=prices.duals)
        change = float(after.objective - base.objective)
        price_after = float(pick(after.duals))
        low = price_after - float(after.bound - after.objective)
        high = price + gap0
        rows.append({"what": what, "price": price, "objective_before": float(base.objective),
                     "objective_after": float(after.objective), "change": change, "price_after": price_after,
                     "low": low, "high": high,
                     "within": bool(low - CHECK_TOL * max(1.0, abs(base.objective)) <= change
                                    <= high + CHECK_TOL * max(1.0, abs(base.objective)))})

    for m, t in chosen:
        cap = problem.capacity.copy()
        cap[m, t] += 1
        check(f"one more {problem.channel_names[m]} slot on {problem.day_labels[t]}", problem.replace(capacity=cap),
              float(lam[m, t]), lambda d, m=m, t=t: np.asarray(d["capacity"])[m, t])
    if budget and problem.budget is not None:
        check("one more unit of budget", problem.replace(budget=problem.budget + 1.0), float(prices.budget),
              lambda d: d.get("budget", 0.0))
    return pd.DataFrame(rows, columns=["what", "price", "objective_before", "objective_after", "change",
                                       "price_after", "low", "high", "within"])


def _envelopes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    obj = pd.to_numeric(df["objective"], errors="coerce")
    bound = pd.to_numeric(df["bound"], errors="coerce")
    df["best_objective"] = obj.cummax()
    df["best_bound"] = bound[::-1].cummin()[::-1]
    return df


def default_budget_grid(problem: PlanningProblem, spend: float, points: int) -> list[float]:
    """0 .. 2 x budget (or 1.5 x the unconstrained spend), plus the current budget."""
    top = 2.0 * problem.budget if problem.budget else 1.5 * max(spend, 1.0)
    grid = set(np.round(np.linspace(0.0, top, max(2, points)), 10).tolist())
    if problem.budget is not None:
        grid.add(float(problem.budget))
    return sorted(grid)


def budget_curve(problem: PlanningProblem, budgets: Sequence[float], method: str = "dual", rel_gap: float = 1e-4,
                 progress: bool = False) -> pd.DataFrame:
    """Objective vs budget (:func:`optimizer.frontier.budget_frontier`) with the envelopes of the module docstring."""
    from optimizer.frontier import budget_frontier

    df = budget_frontier(problem, budgets, method=method, rel_gap=rel_gap, progress=progress)
    return _envelopes(df)


def capacity_channel(problem: PlanningProblem, prices: ShadowPrices | None = None) -> str:
    """The call-centre channel: ``call`` if present, else the channel with the largest total capacity price."""
    names = list(problem.channel_names)
    for name in names:
        if name.lower() in ("call", "calls", "call_centre", "call_center", "phone"):
            return name
    if prices is not None and np.any(prices.capacity > 0):
        return names[int(np.argmax(prices.capacity.sum(axis=1)))]
    return names[int(np.argmin(problem.capacity.sum(axis=1)))]


def capacity_curve(problem: PlanningProblem, channel: str, factors: Sequence[float], method: str = "dual",
                   rel_gap: float = 1e-4, progress: bool = False) -> pd.DataFrame:
    """Objective vs the capacity of ``channel`` scaled by ``factors``, with envelopes."""
    from optimizer.frontier import capacity_frontier

    df = capacity_frontier(problem, channel, factors, method=method, rel_gap=rel_gap, progress=progress)
    return _envelopes(df)
