r"""Link between the weekly plan and the real-time policy: one day of a plan as policy inputs.

For a day *t* of a :class:`~formulations.assignment.PlanningProblem` each
customer is one decision context with actions ``0 = no contact`` and
``1..M`` = channels, scores :math:`u_{imt}` (``-inf`` where not allowed).
Resources (one row each):

* ``capacity:<channel>``: :math:`A_{m,a} = 1` if *a* is channel *m*; allowed
  use per decision :math:`\text{cap}_{mt} / n` (channels with capacity < 1
  that day are made ineligible instead);
* ``budget`` (when the problem has one): :math:`A_{\cdot,a} = c_m`, allowed
  use :math:`s\,B / n` with *s* the day's share of the weekly budget
  (default :math:`1/T`).

With :math:`T = 1` and a contact limit of at least 1 this is exactly the
per-customer problem of the plan, and the policy's dual at :math:`\tau = 0`
is the plan's Lagrangian divided by *n*,

.. math::

    D(\lambda, \mu) = \frac1n\Bigl(\sum_m \lambda_m \text{cap}_m + \mu B
                     + \sum_i \max\bigl(0, \max_m u_{im} - \lambda_m - \mu c_m\bigr)\Bigr),

so both minimise the same convex function and the plan's prices
(``plan.duals``: capacity :math:`\lambda_{mt}` per contact, budget
:math:`\mu` per unit of money) are the policy's prices in the same units.
For :math:`T > 1` the per-day policy ignores the weekly contact limit and
spacing; the plan's prices are then a seed, not the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formulations.assignment import PlanningProblem
from formulations.errors import InputError


@dataclass(frozen=True, eq=False)
class PlanPolicyInputs:
    """Policy inputs for one day of a weekly problem.

    Attributes
    ----------
    scores : ndarray (n, M+1)
    eligible : ndarray of bool (n, M+1)
    costs : ndarray (k, M+1)
    budget : ndarray (k,)
    resource_names : tuple of str
    capacity_rows : ndarray of int (k_c,)
        Channel of each capacity row.
    day : int
    """

    scores: np.ndarray
    eligible: np.ndarray
    costs: np.ndarray
    budget: np.ndarray
    resource_names: tuple
    capacity_rows: np.ndarray
    day: int

    def prices_from_duals(self, duals: dict | None) -> np.ndarray:
        """The policy's prices (k,) from a plan's ``duals`` ({"capacity": (M, T), "budget": float})."""
        if not duals or "capacity" not in duals:
            raise InputError("plan", "expected a plan with duals (solve with method='dual')")
        cap = np.asarray(duals["capacity"], dtype=np.float64)
        prices = [float(cap[m, self.day]) for m in self.capacity_rows]
        if "budget" in self.resource_names:
            prices.append(float(duals.get("budget", 0.0) or 0.0))
        return np.maximum(np.asarray(prices), 0.0)


def plan_policy_inputs(problem: PlanningProblem, day: int = 0, budget_share: float | None = None) -> PlanPolicyInputs:
    """Scores, eligibility and resources of day ``day`` as policy inputs (see the module docstring)."""
    if not isinstance(problem, PlanningProblem):
        raise InputError("problem", f"expected a PlanningProblem, got {type(problem).__name__}")
    n, M, T = problem.shape
    if not 0 <= int(day) < T:
        raise InputError("day", f"expected a day index in 0..{T - 1}, got {day!r}")
    day = int(day)
    u = problem.utility[:, :, day].astype(np.float64)
    open_channel = problem.capacity[:, day] >= 1
    allowed = np.isfinite(u) & open_channel[None, :]
    if np.ndim(problem.max_contacts) == 0:
        allowed &= int(problem.max_contacts) > 0
    else:
        allowed &= (np.asarray(problem.max_contacts) > 0)[:, None]
    scores = np.zeros((n, M + 1))
    scores[:, 1:] = np.where(allowed, u, -np.inf)
    eligible = np.ones((n, M + 1), dtype=bool)
    eligible[:, 1:] = allowed
    rows, budget, names = [], [], []
    capacity_rows = np.flatnonzero(open_channel)
    for m in capacity_rows:
        row = np.zeros(M + 1)
        row[m + 1] = 1.0
        rows.append(row)
        budget.append(problem.capacity[m, day] / n)
        names.append(f"capacity:{problem.channel_names[m]}")
    if problem.budget is not None:
        share = 1.0 / T if budget_share is None else float(budget_share)
        if not 0 < share <= 1:
            raise InputError("budget_share", f"expected a share in (0, 1], got {budget_share!r}")
        if problem.budget <= 0:
            raise InputError("budget", "expected a positive budget to build a budget row")
        rows.append(np.r_[0.0, problem.cost])
        budget.append(share * problem.budget / n)
        names.append("budget")
    if not rows:
        raise InputError("problem", f"no open channel on day {day}")
    return PlanPolicyInputs(scores, eligible, np.asarray(rows), np.asarray(budget), tuple(names),
                            capacity_rows.astype(np.int64), day)


def policy_from_plan(plan: Any, day: int = 0, temperature: float = 0.0, budget_share: float | None = None,
                     **kwargs: Any):
    """A :class:`~optimizer.policy.LagrangianPolicy` for one day of a plan, seeded with the plan's prices.

    Returns ``(policy, inputs)``; ``policy.fit(inputs.scores, inputs.eligible)``
    refits on the same contexts, starting from the plan's prices.
    """
    from optimizer.policy import LagrangianPolicy

    inputs = plan_policy_inputs(plan.problem, day, budget_share)
    policy = LagrangianPolicy(inputs.costs, inputs.budget, temperature, resource_names=inputs.resource_names,
                              **kwargs)
    policy.set_prices(inputs.prices_from_duals(plan.duals), model_version=f"plan-{plan.method}-day{day}",
                      source="plan", reference_scores=inputs.scores, reference_eligible=inputs.eligible)
    return policy, inputs
