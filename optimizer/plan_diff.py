"""Week-over-week comparison of two plans: who moved channels, who dropped out, and why.

Each customer of either plan falls in one class, from the sets of
(channel, day) contacts :math:`O` (old plan) and :math:`N` (new plan):

=================  ==========================================================
``new``            :math:`O = \\emptyset \\ne N`
``dropped``        :math:`O \\ne \\emptyset = N`
``moved channel``  both non-empty, the channel sets differ
``moved day``      same channels, different days
``unchanged``      :math:`O = N`
=================  ==========================================================

Customers are matched on ``customer_id`` as text. The *why* column uses the
explanation logic of :mod:`optimizer.explain` on the **new** problem and
plan: for each old contact that is gone, the reason that (channel, day)
option is not in the new plan (priced out, cap, cooling, consent, limit,
...), with the utility last week (from the old plan's ``utility`` column)
against this week's; for each new contact, its utility against its prices.
When an old day is not in the new horizon (plans of different weeks with
dated days), the best option of the same channel stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem
from optimizer.explain import REASONS, ShadowPrices, option_detail, option_table
from optimizer.plan import Plan
from optimizer.plan_table import require_columns

CHANGES = ("new", "dropped", "moved channel", "moved day", "unchanged")
_MAX_PARTS = 3


@dataclass
class PlanDiff:
    """Result of :func:`diff_plans`.

    Attributes
    ----------
    customers : DataFrame
        One row per customer whose contacts changed: ``customer_id, change,
        old, new, why`` (``why`` empty without a problem).
    summary : DataFrame
        Customers per change class (``unchanged`` included).
    flows : DataFrame
        Customers by old channel set (rows) and new channel set (columns);
        ``none`` = not contacted.
    """

    customers: pd.DataFrame
    summary: pd.DataFrame
    flows: pd.DataFrame


def _as_table(plan, field: str) -> pd.DataFrame:
    return require_columns(plan.assignments if isinstance(plan, Plan) else plan, field)


def _contact_sets(df: pd.DataFrame) -> dict[str, dict]:
    out: dict[str, dict] = {}
    util = df["utility"].to_numpy(dtype=np.float64) if "utility" in df.columns else np.full(len(df), np.nan)
    for cid, ch, day, u in zip(df["customer_id"].tolist(), df["channel"].astype(str).tolist(),
                               df["day"].astype(str).tolist(), util.tolist()):
        rec = out.setdefault(str(cid), {"id": cid, "contacts": {}})
        rec["contacts"][(ch, day)] = u
    return out


def _describe(contacts: dict) -> str:
    return ", ".join(f"{ch} {day}" for ch, day in sorted(contacts, key=lambda cd: (cd[1], cd[0])))


def _classify(old: dict, new: dict) -> str:
    if not old:
        return "new"
    if not new:
        return "dropped"
    if {c for c, _ in old} != {c for c, _ in new}:
        return "moved channel"
    return "moved day" if set(old) != set(new) else "unchanged"


def diff_plans(old, new, problem: PlanningProblem | None = None, plan: Plan | None = None,
               prices: ShadowPrices | None = None) -> PlanDiff:
    """Compare two plans (tables with ``customer_id, channel, day`` or :class:`Plan` objects).

    Parameters
    ----------
    old, new : DataFrame or Plan
        Last week's and this week's plan.
    problem, plan, prices : optional
        This week's problem, the new plan as a :class:`Plan` of it, and the
        prices to read it with; with all three the ``why`` column is filled
        (see the module docstring).
    """
    old_sets = _contact_sets(_as_table(old, "old plan"))
    new_sets = _contact_sets(_as_table(new, "new plan"))
    keys = list(dict.fromkeys(list(new_sets) + list(old_sets)))
    rows = []
    flow_rows = []
    counts = dict.fromkeys(CHANGES, 0)
    for key in keys:
        o = old_sets.get(key, {"contacts": {}})
        nw = new_sets.get(key, {"contacts": {}})
        change = _classify(o["contacts"], nw["contacts"])
        counts[change] += 1
        flow_rows.append(("+".join(sorted({c for c, _ in o["contacts"]})) or "none",
                          "+".join(sorted({c for c, _ in nw["contacts"]})) or "none"))
        if change != "unchanged":
            rows.append({"customer_id": nw.get("id", o.get("id")), "key": key, "change": change,
                         "old": _describe(o["contacts"]), "new": _describe(nw["contacts"]), "why": "",
                         "_old": o["contacts"], "_new": nw["contacts"]})
    customers = pd.DataFrame(rows, columns=["customer_id", "key", "change", "old", "new", "why", "_old", "_new"])
    if problem is not None and plan is not None and prices is not None and len(customers):
        customers["why"] = _reasons(problem, plan, prices, customers)
    customers = customers.drop(columns=["key", "_old", "_new"])
    order = {c: k for k, c in enumerate(CHANGES)}
    customers = customers.sort_values("change", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    summary = pd.DataFrame({"change": list(CHANGES), "customers": [counts[c] for c in CHANGES]})
    fl = pd.DataFrame(flow_rows, columns=["old", "new"])
    flows = pd.crosstab(fl["old"], fl["new"]) if len(fl) else pd.DataFrame()
    return PlanDiff(customers, summary, flows)


def _reasons(problem: PlanningProblem, plan: Plan, prices: ShadowPrices, customers: pd.DataFrame) -> list[str]:
    index = {str(c): i for i, c in enumerate(problem.customer_ids)}
    chan = {str(c): m for m, c in enumerate(problem.channel_names)}
    days = {str(d): t for t, d in enumerate(problem.day_labels)}
    inside = [index.get(k) for k in customers["key"]]
    present = np.array([i for i in inside if i is not None], dtype=np.int64)
    opts = option_table(problem, plan, prices, present) if present.size else None
    row_of = {int(i): r for r, i in enumerate(present.tolist())}
    out = []
    for i, old, new in zip(inside, customers["_old"], customers["_new"]):
        if i is None:
            out.append("not in this week's scores")
            continue
        r = row_of[int(i)]
        parts = []
        for (ch, day), u_old in sorted(old.items(), key=lambda kv: kv[0][1]):
            if (ch, day) in new:
                continue
            m = chan.get(ch)
            if m is None:
                parts.append(f"{ch}: channel no longer offered")
                continue
            t = days.get(day)
            label = f"{ch} {day}"
            if t is None:       # another week's day: the best option of the same channel stands in
                t = int(np.argmax(np.where(np.isfinite(opts.utility[r, m]), opts.reduced[r, m], -np.inf)))
                label = f"{ch} (best day now {problem.day_labels[t]})"
            if REASONS[int(opts.reason[r, m, t])] == "contacted":
                continue
            detail = _gone_detail(problem, plan, opts, r, m, t)
            u_now = float(opts.utility[r, m, t])
            trend = (f" (utility {u_old:.4g} last week, {u_now:.4g} now)"
                     if np.isfinite(u_old) and np.isfinite(u_now) and abs(u_old - u_now) > 1e-9 else "")
            parts.append(f"{label}: {detail}{trend}")
        for (ch, day) in sorted(new, key=lambda cd: cd[1]):
            if (ch, day) in old or ch not in chan or day not in days:
                continue
            parts.append(f"now {ch} {day}: {option_detail(problem, plan, opts, r, chan[ch], days[day])}")
        if len(parts) > _MAX_PARTS:
            parts = parts[:_MAX_PARTS] + [f"... {len(parts) - _MAX_PARTS} more"]
        out.append("; ".join(parts))
    return out


def _gone_detail(problem: PlanningProblem, plan: Plan, opts, r: int, m: int, t: int) -> str:
    """Why a former contact is not in the plan; for limit/spacing also the economics behind it."""
    detail = option_detail(problem, plan, opts, r, m, t)
    code = REASONS[int(opts.reason[r, m, t])]
    if code not in ("limit", "spacing"):
        return detail
    red = float(opts.reduced[r, m, t])
    chosen = opts.reduced[r][opts.reason[r] == REASONS.index("contacted")]
    if red <= 1e-9:
        return f"priced out now (reduced value {red:.4g} ≤ 0), and {detail}"
    if chosen.size and red <= float(chosen.min()):
        return (f"displaced by this customer's better contact(s) (reduced value +{red:.4g} here vs at least "
                f"+{float(chosen.min()):.4g} for those chosen); {detail}")
    return detail
