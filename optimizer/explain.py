r"""Per-customer explanations of a plan: why a contact, and what blocked the others.

Prices
------
The explanation reads the plan through the Lagrangian prices of
:mod:`formulations.lagrangian`: a capacity price :math:`\lambda_{mt} \ge 0`
per channel-day (the value of one more slot), a budget price :math:`\mu \ge 0`
(the value of one more unit of budget) and, with segment fairness, a
per-(segment, channel) shift :math:`\sigma_{s m}` (:mod:`formulations.fairness`).
The *reduced value* of an option is

.. math::

    r_{imt} = u_{imt} - \lambda_{mt} - \mu\, c_m - \sigma_{s(i), m}.

A contact pays for itself at these prices when :math:`r_{imt} > 0`: its
utility beats the value the same slot and money would have elsewhere.
Prices come from ``plan.duals`` when the plan has them (``method="dual"``);
otherwise (exact MIP plans, plans read from a file) the problem is re-solved
with ``method="dual"`` and its prices and bound are used
(:func:`shadow_prices`). The prices are those at which the dual method's
bound :math:`L(\lambda, \mu)` was attained, so they are optimal for the LP
relaxation up to the dual method's gap.

What blocked an option
----------------------
Every (channel, day) option of a customer that is not in the plan gets the
first reason that applies, in this order (structural constraints first,
then the economics):

==============  ===============================================================
``consent``     no allowed contact there (no score row, not eligible, NaN)
``closed``      capacity 0 that day, or the channel costs more than the budget
``no value``    :math:`u \le 0` (never planned; outside fairness channels)
``limit``       the customer already has :math:`K_i` contacts in the plan
``spacing``     a planned contact of the customer lies fewer than
                ``min_gap_days`` days away (cooling period; one per day at g = 1)
``price``       :math:`r \le 0`: the slot and the money are worth more elsewhere
``capacity``    the channel-day is full in the plan (although :math:`r > 0`)
``budget``      spend + :math:`c_m` would exceed the budget
``segment``     a hard segment-rate bound would be violated
``open``        none of the above: the contact fits and has :math:`u > 0` —
                the plan is not maximal there (its gap bounds such misses)
==============  ===============================================================

``limit``, ``spacing``, ``capacity``, ``budget`` and ``segment`` are
checkable facts about the plan (adding the contact breaks that constraint);
``price`` is the economic reason read from the prices. The main blocker of a
customer who is not contacted is the reason of their best option (largest
reduced value among the options not excluded by consent, closure or
non-positive utility).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem
from optimizer.plan import Plan

REASONS = ("contacted", "consent", "closed", "no value", "limit", "spacing", "price", "capacity", "budget",
           "segment", "open")
_CODE = {r: k for k, r in enumerate(REASONS)}
STRUCTURAL = ("consent", "closed", "no value")
_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class ShadowPrices:
    """Prices used to read a plan.

    Attributes
    ----------
    capacity : ndarray (M, T)
        Value of one more slot per channel-day.
    budget : float
        Value of one more unit of budget (0 without a budget).
    fairness_shift : ndarray (S, M) or None
        Reduced-utility shift of a customer of segment s on channel m.
    source : str
        Where the prices come from (the plan, or a re-solve).
    bound : float or None
        The dual bound attained at these prices (an upper bound on the optimum).
    objective : float or None
        Value of the dual method's plan at these prices.
    duals : dict
        The raw ``plan.duals`` (usable as ``warm_start``).
    plan : Plan or None
        The dual method's plan the prices belong to.
    """

    capacity: np.ndarray
    budget: float
    fairness_shift: np.ndarray | None
    source: str
    bound: float | None
    objective: float | None
    duals: dict = field(repr=False)
    plan: Plan | None = field(default=None, repr=False)

    @property
    def abs_gap(self) -> float | None:
        """``bound - objective`` of the dual plan the prices belong to."""
        if self.bound is None or self.objective is None:
            return None
        return float(self.bound - self.objective)


def shadow_prices(problem: PlanningProblem, plan: Plan | None = None, rel_gap: float = 1e-4,
                  time_limit: float | None = None) -> ShadowPrices:
    """Prices for ``problem``: from ``plan.duals`` when present, else from a ``method="dual"`` re-solve."""
    from optimizer.api import solve

    if plan is not None and plan.duals is not None and plan.method == "dual":
        source, ref = "the plan's own dual prices (method=dual)", plan
    else:
        ref = solve(problem, method="dual", rel_gap=rel_gap, time_limit=time_limit)
        gap = "" if ref.gap is None else f"gap {ref.gap:.2e}"
        if plan is None:
            source = f"a method=dual solve ({gap})" if gap else "a method=dual solve"
        else:
            why = "the plan has no prices" if plan.duals is None else f"the plan is from method={plan.method}"
            source = f"a re-solve with method=dual ({why}{'; ' + gap if gap else ''})"
    duals = ref.duals or {}
    cap = np.asarray(duals.get("capacity", np.zeros((problem.n_channels, problem.n_days))), dtype=np.float64)
    shift = None
    f = problem.fairness
    if f is not None and ("fairness" in duals or "fairness_penalty" in duals):
        rows = np.asarray(duals.get("fairness", np.zeros(f.n_rows)), dtype=np.float64)
        terms = np.asarray(duals.get("fairness_penalty", np.zeros(f.n_terms)), dtype=np.float64)
        shift = f.shift(rows, terms)
        if not np.any(shift):
            shift = None
    return ShadowPrices(capacity=cap, budget=float(duals.get("budget", 0.0) or 0.0), fairness_shift=shift,
                        source=source, bound=ref.bound, objective=ref.objective, duals=duals, plan=ref)


# ---------------------------------------------------------------------------
# Options of a set of customers
# ---------------------------------------------------------------------------

def planned_mask(plan: Plan, customers: np.ndarray) -> np.ndarray:
    """(k, M, T) bool: True where the plan contacts ``customers[r]`` (sorted, unique 0-based indices)."""
    customers = np.asarray(customers, dtype=np.int64)
    _, M, T = plan.problem.shape
    mask = np.zeros((customers.size, M, T), dtype=bool)
    idx = plan.assignment_indices
    if idx.size and customers.size:
        pos = np.minimum(np.searchsorted(customers, idx[:, 0]), customers.size - 1)
        hit = customers[pos] == idx[:, 0]
        mask[pos[hit], idx[hit, 1], idx[hit, 2]] = True
    return mask


@dataclass(frozen=True, eq=False)
class OptionTable:
    """Every (channel, day) option of some customers, with prices and the blocking reason.

    Arrays have shape (k, M, T) for the ``customers`` (k,) they describe.
    """

    customers: np.ndarray
    utility: np.ndarray
    capacity_price: np.ndarray      # (M, T)
    budget_price: float             # mu
    budget_cost: np.ndarray         # (M,) mu * c_m
    fairness: np.ndarray            # (k, M)
    reduced: np.ndarray
    reason: np.ndarray              # int8 codes into REASONS
    planned_count: np.ndarray       # (k,)
    limits: np.ndarray              # (k,)
    usage: np.ndarray               # (M, T) contacts per channel-day in the plan
    spend: float                    # the plan's spend


def option_table(problem: PlanningProblem, plan: Plan, prices: ShadowPrices, customers: Sequence[int]) -> OptionTable:
    """Reduced values and blocking reasons of every option of ``customers`` (see the module docstring)."""
    cust = np.asarray(customers, dtype=np.int64).reshape(-1)
    n, M, T = problem.shape
    k = cust.size
    u = problem.utility[cust].astype(np.float64)
    idx = plan.assignment_indices
    uniq, inverse = np.unique(cust, return_inverse=True)
    planned = planned_mask(plan, uniq)[inverse.reshape(-1)]
    count = planned.sum(axis=(1, 2))
    limits = np.asarray(problem.contact_limits()[cust], dtype=np.int64)
    lam = prices.capacity
    mu_c = prices.budget * problem.cost
    if prices.fairness_shift is not None and problem.segment_codes is not None:
        shift = prices.fairness_shift[problem.segment_codes[cust]]
    else:
        shift = np.zeros((k, M))
    with np.errstate(invalid="ignore"):
        reduced = u - lam[None] - mu_c[None, :, None] - shift[:, :, None]

    reason = np.full((k, M, T), _CODE["open"], dtype=np.int8)
    undecided = ~planned
    reason[planned] = _CODE["contacted"]

    def assign(name: str, mask: np.ndarray) -> None:
        nonlocal undecided
        sel = undecided & mask
        reason[sel] = _CODE[name]
        undecided = undecided & ~sel

    assign("consent", ~np.isfinite(u))
    assign("closed", ~problem.cell_allowed()[None])
    assign("no value", (u <= 0) & ~problem.negative_ok()[None, :, None])
    assign("limit", (count >= limits)[:, None, None])
    g = problem.min_gap_days
    day_planned = planned.any(axis=1)                         # (k, T)
    near = np.zeros((k, T), dtype=bool)
    for d in range(-(g - 1), g):
        lo, hi = max(0, -d), min(T, T - d)
        near[:, lo:hi] |= day_planned[:, lo + d:hi + d]
    assign("spacing", near[:, None, :])
    assign("price", ~(reduced > _TOL))
    used = plan.usage()
    assign("capacity", (used >= problem.capacity)[None])
    spend = plan.spend
    if problem.budget is not None:
        assign("budget", (spend + problem.cost > problem.budget * (1 + _TOL) + _TOL)[None, :, None])
    f = problem.fairness
    if f is not None and f.n_rows:
        lhs = f.row_values(problem.segment_codes, idx)
        seg = problem.segment_codes[cust]
        delta = f.row_coef[:, seg][:, :, None] * f.row_channels[:, None, :]     # (R, k, M)
        breaks = ((lhs[:, None, None] + delta) > f.row_rhs[:, None, None] + 1e-9).any(axis=0)
        assign("segment", breaks[:, :, None])
    return OptionTable(cust, u, lam, prices.budget, mu_c, shift, reduced, reason, count, limits, used, spend)


# ---------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------

def _num(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1e5 else f"{x:,.0f}"


def option_detail(problem: PlanningProblem, plan: Plan, opts: OptionTable, row: int, m: int, t: int) -> str:
    """One sentence about option (channel m, day t) of the ``row``-th customer of ``opts``."""
    code = REASONS[int(opts.reason[row, m, t])]
    u = float(opts.utility[row, m, t])
    lam = float(opts.capacity_price[m, t])
    muc = float(opts.budget_cost[m])
    sh = float(opts.fairness[row, m])
    r = float(opts.reduced[row, m, t])
    ch, day = problem.channel_names[m], problem.day_labels[t]
    used, cap = int(opts.usage[m, t]), problem.capacity[m, t]
    if opts.budget_price:
        price = (f"channel-day price {_num(lam)} + budget price {_num(opts.budget_price)} × cost "
                 f"{_num(problem.cost[m])}")
    else:
        price = f"channel-day price {_num(lam)}"
    if sh:
        price += f" + fairness {_num(sh)}"
    if code == "contacted":
        if r > 0:
            return f"utility {_num(u)} > {price} (reduced value +{_num(r)})"
        return (f"utility {_num(u)} ≤ {price} (reduced value {_num(r)}): kept although the prices value the slot "
                "higher (prices are those of the relaxation)")
    if code == "consent":
        return "not allowed (no consent / not eligible)"
    if code == "closed":
        if cap < 1:
            return f"{ch} is closed on {day} (capacity 0)"
        return f"one {ch} contact costs {_num(problem.cost[m])}, more than the budget {_num(problem.budget)}"
    if code == "no value":
        return f"utility {_num(u)} ≤ 0: never worth a contact"
    if code == "limit":
        return f"contact limit reached ({int(opts.planned_count[row])} of {int(opts.limits[row])} planned)"
    if code == "spacing":
        days = np.flatnonzero((opts.reason[row] == _CODE["contacted"]).any(axis=0))
        near = int(days[np.argmin(np.abs(days - t))])
        return (f"cooling period: another contact is planned on {problem.day_labels[near]}, fewer than "
                f"{problem.min_gap_days} day(s) away (min_gap_days)")
    if code == "price":
        full = f"; {ch} on {day} is full ({used}/{cap:.0f})" if used >= cap else ""
        return f"priced out: utility {_num(u)} ≤ {price} = {_num(lam + muc + sh)}{full}"
    if code == "capacity":
        return f"{ch} on {day} is full ({used}/{cap:.0f}); reduced value +{_num(r)}"
    if code == "budget":
        return (f"budget exhausted: spend {_num(opts.spend)} + {_num(problem.cost[m])} > budget "
                f"{_num(problem.budget)}")
    if code == "segment":
        return "a hard segment-rate bound would be violated"
    return (f"fits every constraint and has utility {_num(u)} > 0: adding it would raise the objective "
            f"(reduced value {_num(r)}; the plan is not maximal here, its gap bounds such misses)")


@dataclass
class CustomerExplanation:
    """Why one customer is (not) contacted.

    Attributes
    ----------
    customer_id : any
    index : int
        0-based customer index in the problem.
    contacted : bool
    contacts : list of (channel, day)
        The customer's planned contacts.
    blocker : str or None
        Main reason (a key of ``REASONS``) when the customer is not contacted.
    statement : str
        The explanation in one paragraph.
    options : DataFrame
        One row per (channel, day): utility, capacity_price, budget_price,
        fairness, reduced, reason, detail.
    """

    customer_id: Any
    index: int
    contacted: bool
    contacts: list
    blocker: str | None
    statement: str
    options: pd.DataFrame = field(repr=False)


def explain_customers(problem: PlanningProblem, plan: Plan, customers: Sequence[int],
                      prices: ShadowPrices | None = None) -> list[CustomerExplanation]:
    """Explanations for customers given by 0-based index (see :func:`explain_customer` for ids)."""
    prices = prices or shadow_prices(problem, plan)
    opts = option_table(problem, plan, prices, customers)
    return [_explain_row(problem, plan, opts, r) for r in range(opts.customers.size)]


def explain_customer(problem: PlanningProblem, plan: Plan, customer_id: Any,
                     prices: ShadowPrices | None = None) -> CustomerExplanation:
    """Explain one customer, given by id (matched as given, then as text)."""
    from optimizer.plan_table import customer_index

    return explain_customers(problem, plan, [customer_index(problem, customer_id)], prices)[0]


def _explain_row(problem: PlanningProblem, plan: Plan, opts: OptionTable, row: int) -> CustomerExplanation:
    n, M, T = problem.shape
    i = int(opts.customers[row])
    cid = problem.customer_ids[i]
    codes = opts.reason[row]
    records = []
    for m in range(M):
        for t in range(T):
            records.append({"channel": problem.channel_names[m], "day": problem.day_labels[t],
                            "utility": float(opts.utility[row, m, t]), "capacity_price": float(opts.capacity_price[m, t]),
                            "budget_price": float(opts.budget_cost[m]), "fairness": float(opts.fairness[row, m]),
                            "reduced": float(opts.reduced[row, m, t]), "reason": REASONS[int(codes[m, t])],
                            "detail": option_detail(problem, plan, opts, row, m, t)})
    options = pd.DataFrame(records)
    planned = np.argwhere(codes == _CODE["contacted"])
    planned = planned[np.argsort(planned[:, 1], kind="stable")]
    contacts = [(problem.channel_names[m], problem.day_labels[t]) for m, t in planned]
    others = options[options.reason != "contacted"].reason.value_counts()
    tail = "; ".join(f"{v} {k}" for k, v in others.items())
    if contacts:
        parts = [f"{problem.channel_names[m]} on {problem.day_labels[t]}: "
                 f"{option_detail(problem, plan, opts, row, m, t)}" for m, t in planned]
        statement = (f"Customer {cid} is contacted {len(contacts)} time(s) (limit {int(opts.limits[row])}). "
                     + " ".join(p + "." for p in parts) + (f" Other options: {tail}." if tail else ""))
        return CustomerExplanation(cid, i, True, contacts, None, statement, options)
    live = ~np.isin(codes, [_CODE[c] for c in STRUCTURAL])
    if live.any():
        val = np.where(live, opts.reduced[row], -np.inf)
        m, t = np.unravel_index(int(np.argmax(val)), val.shape)
    elif np.isfinite(opts.utility[row]).any():
        val = np.where(np.isfinite(opts.utility[row]), opts.utility[row], -np.inf)
        m, t = np.unravel_index(int(np.argmax(val)), val.shape)
    else:
        statement = f"Customer {cid} is not contacted: no contact is allowed (no consent on any channel and day)."
        return CustomerExplanation(cid, i, False, [], "consent", statement, options)
    blocker = REASONS[int(codes[m, t])]
    statement = (f"Customer {cid} is not contacted; main blocker: {blocker}. Best option "
                 f"{problem.channel_names[m]} on {problem.day_labels[t]}: {option_detail(problem, plan, opts, row, m, t)}."
                 + (f" All options: {tail}." if tail else ""))
    return CustomerExplanation(cid, i, False, [], blocker, statement, options)


def sample_customers(plan: Plan, k: int, random_state: int = 0) -> np.ndarray:
    """A random sample of up to ``k`` contacted and ``k`` not-contacted customers, preferring those with a
    positive-utility option (explaining a customer without consent anywhere says little)."""
    n = plan.problem.n_customers
    rng = np.random.default_rng(random_state)
    contacted = np.zeros(n, dtype=bool)
    if plan.assignment_indices.size:
        contacted[plan.assignment_indices[:, 0]] = True
    picked = []
    u = plan.problem.utility
    for pool in (np.flatnonzero(contacted), np.flatnonzero(~contacted)):
        if pool.size == 0 or k <= 0:
            continue
        # a random subset; customers with a positive-utility option first
        subset = np.sort(rng.permutation(pool)[:max(50 * k, 1000)])
        live = (u[subset] > 0).any(axis=(1, 2))
        ordered = np.r_[rng.permutation(subset[live]), rng.permutation(subset[~live])]
        picked.append(np.sort(ordered[:k]).astype(np.int64))
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
