"""The planner report: one self-contained HTML file per plan.

``write_report(problem, plan, path)`` writes a single HTML file (no scripts,
no network: figures are inline SVG data URIs, styles inline) with these
sections (``<section id=...>``):

``headline``
    objective, bound, gap, status, contacts, spend against the budget;
``utilization``
    channel x day heatmap of used/capacity and the per-channel totals;
``shadow-prices``
    the value of one more slot per channel-day and of one more unit of
    budget, and a finite-difference check of the largest ones
    (:func:`optimizer.whatif.price_checks`: the re-solved change lies in the
    interval the gaps certify);
``utilities``
    utilities of planned contacts against allowed but unplanned ones, and of
    contacted against not contacted customers (their best option);
``contacts-per-customer``
    how many customers get 0, 1, 2, ... contacts;
``fairness`` (with segments)
    contact rates per segment against their targets, Ψ, the hard bounds;
``frontier`` (``frontier=True``)
    objective against the budget and against the call-centre capacity,
    re-solved with warm starts (:mod:`optimizer.whatif`);
``explanations``
    sampled customers with the statement of :mod:`optimizer.explain`;
``diff`` (``previous`` given)
    who moved channels, who dropped out and why (:mod:`optimizer.plan_diff`).

Prices. A plan from ``method="dual"`` carries its prices; any other plan
(an exact MIP plan, a plan read back from a file) has none, so the report
re-solves the problem with ``method="dual"`` and uses that solve's prices and
bound. The headline's bound is the smallest bound available (the plan's own
and the re-solve's; both are valid upper bounds on the optimum), and the
gap is computed against it. The ``<meta name="contactplan-sections">`` tag
lists the sections present (used by ``scripts/render_report.py``).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from optimizer import report_figures as figs
from optimizer.explain import ShadowPrices, explain_customers, planned_mask, sample_customers, shadow_prices
from optimizer.plan import Plan
from optimizer.summary import format_number
from solvers.base import relative_gap

CORE_SECTIONS = ("headline", "utilization", "shadow-prices", "utilities", "contacts-per-customer", "explanations")
_HIST_CUSTOMERS = 200_000

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1150px;margin:0 auto;padding:16px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:.4em 0}h2{border-bottom:2px solid #1f77b4;padding-bottom:4px;margin-top:1.8em}
nav a{margin-right:12px;font-size:.9em}table.tbl{border-collapse:collapse;font-size:.85em;margin:8px 0}
table.tbl th,table.tbl td{border:1px solid #ddd;padding:3px 7px;text-align:right}
table.tbl th{background:#f0f4f8}table.tbl td:first-child,table.tbl th:first-child{text-align:left}
.kpi{display:inline-block;min-width:150px;margin:6px 10px 6px 0;padding:8px 12px;border:1px solid #ddd;
border-radius:6px;background:#f7fbff}.kpi b{display:block;font-size:1.3em}.note{color:#555;font-size:.88em}
img.fig{max-width:100%;height:auto;display:block;margin:8px 0}details{margin:6px 0}
summary{cursor:pointer}.bar{height:12px;background:#e0e0e0;border-radius:6px;width:320px;overflow:hidden}
.bar span{display:block;height:100%;background:#1f77b4}.ok{color:#2ca02c}.bad{color:#d62728}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 6) -> str:
    """The CLI's number format (:func:`optimizer.summary.format_number`); integers with separators, non-finite as —."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    if x is None or not np.isfinite(float(x)):
        return "—"
    return format_number(float(x), digits)


def _table(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_html(index=index, classes="tbl", border=0, na_rep="—", escape=True,
                      float_format=lambda v: _num(v, 5))


def _img(uri: str, alt: str) -> str:
    return f'<img class="fig" alt="{_esc(alt)}" src="{uri}">'


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}">\n<h2>{_esc(title)}</h2>\n{body}\n</section>\n'


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------

def certified_bound(plan: Plan, prices: ShadowPrices) -> tuple[float | None, float | None, str]:
    """The smallest valid bound (the plan's own or the prices' re-solve), the plan's gap to it, and its source."""
    bounds = [b for b in (plan.bound, prices.bound) if b is not None and np.isfinite(b)]
    bound = min(bounds) if bounds else None
    gap = relative_gap(bound, plan.objective) if bound is not None else None
    if plan.bound is None and bound is not None:
        note = "from the method=dual re-solve (the plan itself carries no bound)"
    elif bound is not None and plan.bound is not None and bound < plan.bound:
        note = "the re-solve's bound, tighter than the plan's own"
    else:
        note = f"from the plan ({plan.method})"
    return bound, gap, note


def _headline(problem: PlanningProblem, plan: Plan, prices: ShadowPrices) -> tuple[str, dict]:
    bound, gap, bound_note = certified_bound(plan, prices)
    n = problem.n_customers
    contacted = int(np.unique(plan.assignment_indices[:, 0]).size) if plan.n_contacts else 0
    kpis = [("objective", _num(plan.objective, 10)), ("bound", _num(bound, 10)),
            ("gap", "—" if gap is None else f"{gap:.2e}"), ("status", str(plan.status)),
            ("contacts", f"{plan.n_contacts:,}"), ("customers contacted", f"{contacted:,} of {n:,}"),
            ("spend", _num(plan.spend, 8) + ("" if problem.budget is None else f" of {_num(problem.budget, 8)}"))]
    body = "".join(f'<div class="kpi">{_esc(k)}<b>{_esc(v)}</b></div>' for k, v in kpis)
    if problem.budget:
        share = min(1.0, plan.spend / problem.budget)
        body += (f'<p>Spend vs budget: {share:.1%}</p><div class="bar" title="spend / budget">'
                 f'<span style="width:{100 * share:.1f}%"></span></div>')
    _, M, T = problem.shape
    body += (f'<p class="note">{n:,} customers × {M} channels × {T} days; method <b>{_esc(plan.method)}</b>; '
             f'at most {_esc(problem.max_contacts if np.ndim(problem.max_contacts) == 0 else "per-customer")} '
             f'contacts per customer, {problem.min_gap_days} day(s) apart. Bound: {_esc(bound_note)}. '
             f'Gap = (bound − objective) / |bound|.</p>')
    return body, {"bound": bound, "gap": gap}


def _utilization(problem: PlanningProblem, plan: Plan) -> str:
    used = plan.usage()
    cap = problem.capacity
    body = _img(figs.utilization_figure(problem.channel_names, problem.day_labels, used, cap),
                "utilization heatmap")
    head = "".join(f"<th>{_esc(d)}</th>" for d in problem.day_labels)
    rows = []
    for m, ch in enumerate(problem.channel_names):
        cells = []
        for t in range(problem.n_days):
            if cap[m, t] < 1:
                cells.append('<td style="background:#eee">closed</td>')
                continue
            share = used[m, t] / cap[m, t]
            style = f"background:rgba(31,119,180,{0.08 + 0.6 * min(share, 1):.2f})"
            cells.append(f'<td style="{style}">{int(used[m, t]):,}/{cap[m, t]:,.0f}</td>')
        rows.append(f"<tr><td>{_esc(ch)}</td>{''.join(cells)}</tr>")
    body += f'<table class="tbl"><tr><th>channel</th>{head}</tr>{"".join(rows)}</table>'
    summary = plan.channel_summary().reset_index()
    summary["capacity"] = cap.sum(axis=1)
    body += "<h3>Per channel</h3>" + _table(summary)
    return body


def _prices(problem: PlanningProblem, plan: Plan, prices: ShadowPrices, checks: pd.DataFrame | None) -> str:
    from optimizer.whatif import price_table

    lam = prices.capacity
    cap = problem.capacity
    items = []
    if problem.budget is not None:
        need = ", ".join(f"{_esc(ch)} {_num(prices.budget * c, 4)}" for ch, c in zip(problem.channel_names, problem.cost)
                         if c > 0)
        items.append(f"One more unit of budget is worth <b>{_num(prices.budget, 4)}</b> of utility"
                     + (f"; to pay for its money a contact must bring at least: {need}" if need and prices.budget > 0
                        else "") + ".")
    table = price_table(problem, prices, plan.usage())
    for _, r in table[table.price > 0].head(5).iterrows():
        items.append(f"One more <b>{_esc(r.channel)}</b> slot on <b>{_esc(r.day)}</b> is worth "
                     f"<b>{_num(r.price, 4)}</b> ({int(r.used):,}/{r.capacity:,.0f} used).")
    from optimizer.whatif import capacity_channel

    call = capacity_channel(problem, prices)
    m = list(problem.channel_names).index(call)
    per_day = ", ".join(f"{_esc(d)} {_num(lam[m, t], 4) if cap[m, t] >= 1 else 'closed'}"
                        for t, d in enumerate(problem.day_labels))
    items.append(f"Call centre (<b>{_esc(call)}</b>), value of one more slot by day: {per_day}.")
    if not (table.price > 0).any():
        items.append("No channel-day is scarce: every capacity price is 0 (one more slot adds nothing).")
    body = "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
    body += _img(figs.price_figure(problem.channel_names, problem.day_labels, lam, cap), "shadow prices heatmap")
    body += f'<p class="note">Prices from {_esc(prices.source)}. A price is the marginal value of one more unit of ' \
            "the row in the relaxation: 0 for a channel-day with spare room; closed cells (capacity 0) have no row " \
            "and no price.</p>"
    if checks is not None and len(checks):
        shown = checks[["what", "price", "objective_before", "objective_after", "change", "low", "high", "within"]]
        body += ("<h3>Check: re-solve with one more unit</h3>" + _table(shown)
                 + '<p class="note">Each row re-solves (method=dual, warm-started) with one more unit. By weak '
                   "duality the change in the objective must lie in [low, high] = [price after − gap after, "
                   "price + gap before] (absolute gaps): the price agrees with the finite difference within "
                   "the certified gaps.</p>")
    body += "<details><summary>All channel-day prices</summary>" + _table(table) + "</details>"
    return body


def _utilities(problem: PlanningProblem, plan: Plan, random_state: int) -> str:
    n = problem.n_customers
    rng = np.random.default_rng(random_state)
    customers = np.sort(rng.choice(n, size=_HIST_CUSTOMERS, replace=False)) if n > _HIST_CUSTOMERS else np.arange(n)
    u = problem.utility[customers].astype(np.float64)
    planned = planned_mask(plan, customers)
    finite = np.isfinite(u)
    contacted = planned.any(axis=(1, 2))
    best = np.where(finite, u, -np.inf).max(axis=(1, 2))
    has = np.isfinite(best)
    a, b = u[planned], u[finite & ~planned]
    body = _img(figs.utility_figure(a, b, best[has & contacted], best[has & ~contacted]), "utility distributions")
    stats = pd.DataFrame([
        {"group": "planned contacts", "count": a.size, "median utility": np.median(a) if a.size else np.nan},
        {"group": "allowed, not planned", "count": b.size, "median utility": np.median(b) if b.size else np.nan},
        {"group": "contacted customers (best option)", "count": int((has & contacted).sum()),
         "median utility": np.median(best[has & contacted]) if (has & contacted).any() else np.nan},
        {"group": "not contacted (best option)", "count": int((has & ~contacted).sum()),
         "median utility": np.median(best[has & ~contacted]) if (has & ~contacted).any() else np.nan}])
    note = (f" (a random sample of {customers.size:,} of {n:,} customers)" if customers.size < n else "")
    return body + _table(stats) + f'<p class="note">Options with no consent are left out{_esc(note)}.</p>'


def _contacts(problem: PlanningProblem, plan: Plan) -> str:
    n = problem.n_customers
    idx = plan.assignment_indices
    per = np.bincount(idx[:, 0], minlength=n) if idx.size else np.zeros(n, np.int64)
    top = int(max(per.max(initial=0), int(np.max(problem.contact_limits(), initial=0)) if n else 0))
    counts = np.bincount(per, minlength=top + 1)
    df = pd.DataFrame({"contacts": np.arange(counts.size), "customers": counts,
                       "share": counts / max(n, 1)})
    return _img(figs.contacts_figure(counts), "contacts per customer") + _table(df)


def _fairness(problem: PlanningProblem, plan: Plan) -> str:
    rep = plan.fairness
    body = _img(figs.fairness_figure(rep.table), "segment fairness")
    body += _table(rep.table)
    body += (f"<p>Ψ (weighted squared disparity) = <b>{_num(rep.psi, 5)}</b>; largest |rate − target| = "
             f"<b>{_num(rep.max_disparity, 5)}</b>; fairness penalty γ = {_num(problem.fairness_penalty)}.</p>")
    if len(rep.bounds):
        body += "<h3>Hard segment bounds</h3>" + _table(rep.bounds)
    else:
        body += '<p class="note">No hard segment bounds are set.</p>'
    return body


def _frontier(problem: PlanningProblem, plan: Plan, prices: ShadowPrices, points: int, channel: str | None,
              rel_gap: float, progress: bool) -> str:
    from optimizer.whatif import budget_curve, capacity_channel, capacity_curve, default_budget_grid

    body = ""
    grid = default_budget_grid(problem, plan.spend, points)
    df = budget_curve(problem, grid, rel_gap=rel_gap, progress=progress)
    body += _img(figs.frontier_figure(df, "budget", "budget", "Objective vs budget", problem.budget),
                 "budget frontier")
    body += "<details><summary>Budget frontier table</summary>" + _table(
        df[["budget", "objective", "bound", "best_objective", "best_bound", "spend", "budget_price", "status",
            "time"]]) + "</details>"
    channel = channel or capacity_channel(problem, prices)
    if channel not in problem.channel_names:
        raise InputError("capacity_channel", f"unknown channel {channel!r}; channels are "
                                             f"{', '.join(problem.channel_names)}")
    m = list(problem.channel_names).index(channel)
    factors = sorted(set(np.round(np.linspace(0.5, 2.0, max(2, points)), 6).tolist()) | {1.0})
    cf = capacity_curve(problem, channel, factors, rel_gap=rel_gap, progress=progress)
    body += _img(figs.frontier_figure(cf, "capacity", f"weekly {channel} capacity (slots)",
                                      f"Objective vs {channel} capacity", float(problem.capacity[m].sum())),
                 "capacity frontier")
    body += "<details><summary>Capacity frontier table</summary>" + _table(
        cf[["factor", "capacity", "objective", "bound", "best_objective", "best_bound", "used", "status",
            "time"]]) + "</details>"
    body += ('<p class="note">Each point is a full re-solve (method=dual, warm-started from the previous point\'s '
             "prices). best_objective is the best plan known to be feasible at that point (a plan for a smaller "
             "budget or capacity stays feasible), best_bound the smallest valid bound (the optimum cannot fall "
             "as the budget grows): the optimum lies between them and both are non-decreasing. For another grid or "
             "method: <code>contactplan frontier --budget 0:200000:20</code> (or <code>--channel NAME</code>).</p>")
    return body


def _explanations(problem: PlanningProblem, plan: Plan, prices: ShadowPrices, samples: int,
                  random_state: int) -> str:
    picked = sample_customers(plan, samples, random_state)
    if picked.size == 0:
        return "<p>No customers.</p>"
    body = ('<p class="note">A random sample of contacted and not-contacted customers. Reduced value = utility − '
            "channel-day price − budget price × cost (− fairness shift): a contact pays for itself when it is "
            "positive. Run <code>contactplan explain CUSTOMER_ID</code> for any other customer.</p>")
    for ex in explain_customers(problem, plan, picked, prices):
        opts = ex.options[ex.options.reason != "consent"]
        body += (f'<details class="explain"><summary>{_esc(ex.statement)}</summary>'
                 + _table(opts[["channel", "day", "utility", "capacity_price", "budget_price", "fairness", "reduced",
                                "reason", "detail"]]) + "</details>")
    return body


def _diff(problem: PlanningProblem, plan: Plan, prices: ShadowPrices, previous: Any, rows: int = 15) -> str:
    from optimizer.plan_diff import diff_plans

    d = diff_plans(previous, plan, problem, plan, prices)
    body = _table(d.summary)
    if len(d.flows):
        flows = d.flows.rename_axis(index="last week \\ this week", columns=None).reset_index()
        body += "<h3>Customers by channels last week (rows) and this week (columns)</h3>" + _table(flows)
    for change, group in d.customers.groupby("change", sort=False):
        body += (f"<details><summary>{_esc(change)}: {len(group):,} customers"
                 f"{' (first ' + str(rows) + ')' if len(group) > rows else ''}</summary>" + _table(group.head(rows))
                 + "</details>")
    return body


# ---------------------------------------------------------------------------
# assembly
# ---------------------------------------------------------------------------

def render_report(problem: PlanningProblem, plan: Plan, *, previous: Any = None, frontier: bool = True,
                  frontier_points: int = 9, capacity_channel: str | None = None, price_checks: int = 3,
                  samples: int = 4, rel_gap: float = 1e-4, frontier_rel_gap: float = 1e-3, random_state: int = 0,
                  title: str | None = None, progress: bool = False, prices: ShadowPrices | None = None) -> str:
    """The report as an HTML string (see :func:`write_report` for the parameters)."""
    if not isinstance(problem, PlanningProblem):
        raise InputError("problem", f"expected a PlanningProblem, got {type(problem).__name__}")
    if not isinstance(plan, Plan):
        raise InputError("plan", f"expected a Plan, got {type(plan).__name__}")
    if plan.problem is not problem and plan.problem.shape != problem.shape:
        raise InputError("plan", f"the plan is for a problem of shape {plan.problem.shape}, not {problem.shape}")
    prices = prices or shadow_prices(problem, plan, rel_gap=rel_gap)
    checks = None
    if price_checks > 0:
        from optimizer.whatif import price_checks as run_checks

        checks = run_checks(problem, prices, cells=price_checks, rel_gap=rel_gap)
    head_body, head = _headline(problem, plan, prices)
    sections = [("headline", "Headline", head_body),
                ("utilization", "Channel × day utilization", _utilization(problem, plan)),
                ("shadow-prices", "Shadow prices", _prices(problem, plan, prices, checks)),
                ("utilities", "Utilities: contacted vs not contacted", _utilities(problem, plan, random_state)),
                ("contacts-per-customer", "Contacts per customer", _contacts(problem, plan))]
    if problem.segment is not None and plan.fairness is not None:
        sections.append(("fairness", "Segment fairness", _fairness(problem, plan)))
    if frontier:
        sections.append(("frontier", "Efficient frontier",
                         _frontier(problem, plan, prices, frontier_points, capacity_channel, frontier_rel_gap,
                                   progress)))
    sections.append(("explanations", "Why these contacts: sampled customers",
                     _explanations(problem, plan, prices, samples, random_state)))
    if previous is not None:
        sections.append(("diff", "Week-over-week changes", _diff(problem, plan, prices, previous)))
    from optimizer import __version__

    title = title or "Weekly contact plan"
    nav = "".join(f'<a href="#{sid}">{_esc(name)}</a>' for sid, name, _ in sections)
    content = "".join(_section(sid, name, body) for sid, name, body in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"contactplan {__version__}\">\n"
            f"<meta name=\"contactplan-sections\" content=\"{' '.join(s for s, _, _ in sections)}\">\n"
            f"<title>{_esc(title)}</title>\n<style>{_CSS}</style></head>\n<body><main>\n"
            f"<h1>{_esc(title)}</h1>\n<nav>{nav}</nav>\n{content}"
            f'<p class="note">Generated by contactplan {__version__}. Self-contained: no scripts, no network.</p>\n'
            "</main></body></html>\n")


def write_report(problem: PlanningProblem, plan: Plan, path: str | os.PathLike, *, previous: Any = None,
                 frontier: bool = True, frontier_points: int = 9, capacity_channel: str | None = None,
                 price_checks: int = 3, samples: int = 4, rel_gap: float = 1e-4, frontier_rel_gap: float = 1e-3,
                 random_state: int = 0, title: str | None = None, progress: bool = False,
                 prices: ShadowPrices | None = None) -> Path:
    """Write the planner report for ``plan`` as one self-contained HTML file.

    Parameters
    ----------
    problem : PlanningProblem
    plan : Plan
        A plan of ``problem`` (from :func:`optimizer.solve` or
        :func:`optimizer.plan_table.plan_from_table`).
    path : path-like
        Output file (``.html``), written atomically.
    previous : DataFrame or Plan, optional
        Last week's plan (``customer_id, channel, day[, utility]``): adds the
        week-over-week section.
    frontier : bool
        Compute the budget and capacity frontiers (two grids of warm-started
        re-solves); ``False`` for a fast report.
    frontier_points : int
        Grid points per frontier: budgets 0 .. 2 x budget (plus the budget itself), capacity factors
        0.5 .. 2 (plus 1).
    capacity_channel : str, optional
        Channel of the capacity frontier (default: ``call`` if present, else
        the channel with the largest capacity prices).
    price_checks : int
        Highest-priced channel-days checked by re-solving with one more slot
        (plus one more unit of budget); 0 to skip.
    samples : int
        Contacted and not-contacted customers explained.
    rel_gap : float
        Relative gap of the prices' re-solve (when the plan has none) and of the price checks.
    frontier_rel_gap : float
        Relative gap of the frontier points (coarser: a frontier is a picture; each point still shows its
        certified interval).
    random_state : int
        Seed of the customer samples.
    title : str, optional
    progress : bool
        Show rich progress bars for the frontiers.
    prices : ShadowPrices, optional
        Prices to read the plan with (default: :func:`optimizer.explain.shadow_prices`).

    Returns
    -------
    pathlib.Path
    """
    from optimizer.io import check_output_path, write_text

    target = check_output_path(path, field="path", suffixes=(".html", ".htm"))
    text = render_report(problem, plan, previous=previous, frontier=frontier, frontier_points=frontier_points,
                         capacity_channel=capacity_channel, price_checks=price_checks, samples=samples,
                         rel_gap=rel_gap, frontier_rel_gap=frontier_rel_gap, random_state=random_state, title=title,
                         progress=progress, prices=prices)
    return write_text(text, target)
