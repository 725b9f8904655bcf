"""``contactplan report``, ``explain`` and ``diff``: the planner's view of a plan.

* ``report PLAN_FILE --scores ... --channels ... --out report.html`` — the
  self-contained HTML report of :mod:`optimizer.report`;
* ``explain CUSTOMER_ID --scores ... --channels ... [--plan PLAN_FILE]`` — why
  this customer is (not) contacted (:mod:`optimizer.explain`);
* ``diff OLD_PLAN NEW_PLAN [--scores ... --channels ...]`` — who moved
  channels, who dropped out, and (with the problem) why (:mod:`optimizer.plan_diff`).

A plan file (written by ``contactplan plan``) carries no prices or bound, so
these commands re-solve the problem with ``method="dual"`` for the prices
(and the report's bound). Without ``--plan``, ``explain`` plans the week with
``method="dual"`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from formulations.errors import InputError
from optimizer.cli import app
from optimizer.cli.weekly import load_problem

console = Console()

_SCORES = "Scores table (CSV/Parquet): customer_id, channel, day, utility."
_CHANNELS = "Channels table: channel, cost, capacity[_<day>]."


def _read_plan(problem, path: Path, field: str):
    from optimizer.io import read_table
    from optimizer.plan_table import plan_from_table

    return plan_from_table(problem, read_table(path, field), field=field)


def _prices(problem, plan, rel_gap: float):
    from optimizer.explain import shadow_prices

    with console.status("computing shadow prices (method=dual) ...", spinner="dots"):
        return shadow_prices(problem, plan, rel_gap=rel_gap)


@app.command("report")
def report_cmd(
    plan_file: Path = typer.Argument(..., help="Plan written by `contactplan plan` (customer_id, channel, day, ...)."),
    scores: Path = typer.Option(..., "--scores", help=_SCORES),
    channels: Path = typer.Option(..., "--channels", help=_CHANNELS),
    out: Path = typer.Option(..., "--out", help="Report file (.html), written atomically."),
    customers: Optional[Path] = typer.Option(None, "--customers", help="Customer table (max_contacts, segment)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Total spend allowed."),
    max_contacts: Optional[int] = typer.Option(None, "--max-contacts", help="Contacts per customer (default 2)."),
    min_gap_days: int = typer.Option(1, "--min-gap-days", help="Minimum days between two contacts of a customer."),
    previous: Optional[Path] = typer.Option(None, "--previous", help="Last week's plan: adds the week-over-week section."),
    no_frontier: bool = typer.Option(False, "--no-frontier", help="Skip the frontiers (faster)."),
    frontier_points: int = typer.Option(9, "--frontier-points", help="Grid points per frontier."),
    capacity_channel: Optional[str] = typer.Option(None, "--capacity-channel",
                                                   help="Channel of the capacity frontier (default: call)."),
    price_checks: int = typer.Option(3, "--price-checks", help="Top-priced channel-days re-solved with +1 slot."),
    samples: int = typer.Option(4, "--samples", help="Contacted and not-contacted customers explained."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap", help="Relative gap of the price re-solves."),
    frontier_rel_gap: float = typer.Option(1e-3, "--frontier-rel-gap", help="Relative gap of the frontier points."),
    title: Optional[str] = typer.Option(None, "--title", help="Report title."),
) -> None:
    """Write the planner report of a plan file as one self-contained HTML file."""
    from optimizer.io import check_output_path, read_table, write_text
    from optimizer.plan_table import require_columns
    from optimizer.report import certified_bound, render_report

    check_output_path(out, suffixes=(".html", ".htm"))
    if frontier_points < 2:
        raise InputError("--frontier-points", f"expected at least 2, got {frontier_points}")
    if price_checks < 0 or samples < 0:
        raise InputError("--price-checks" if price_checks < 0 else "--samples", "expected a number >= 0")
    problem = load_problem(scores, channels, customers, budget, max_contacts, min_gap_days)
    plan = _read_plan(problem, plan_file, "PLAN_FILE")
    prev = read_table(previous, "--previous") if previous is not None else None
    if prev is not None:
        require_columns(prev, "--previous")
    prices = _prices(problem, plan, rel_gap)
    console.print("building the report (frontiers: one re-solve per point) ...")
    text = render_report(problem, plan, previous=prev, frontier=not no_frontier, frontier_points=frontier_points,
                         capacity_channel=capacity_channel, price_checks=price_checks, samples=samples,
                         rel_gap=rel_gap, frontier_rel_gap=frontier_rel_gap, title=title, progress=True, prices=prices)
    write_text(text, out)
    bound, gap, note = certified_bound(plan, prices)
    table = Table(title="Planner report", show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("objective (recomputed)", f"{plan.objective:,.6f}")
    table.add_row("bound", "—" if bound is None else f"{bound:,.6f}")
    table.add_row("gap", "—" if gap is None else f"{gap:.2e}")
    table.add_row("contacts", f"{plan.n_contacts:,}")
    table.add_row("spend", f"{plan.spend:,.2f}" + ("" if problem.budget is None else f" of {problem.budget:,.2f}"))
    table.add_row("budget price", f"{prices.budget:.6g}")
    console.print(table)
    console.print(f"bound: {note}")
    console.print(f"wrote [bold]{out}[/] ({out.stat().st_size / 1024:,.0f} KiB)")


@app.command("explain")
def explain_cmd(
    customer_id: str = typer.Argument(..., help="The customer to explain."),
    scores: Path = typer.Option(..., "--scores", help=_SCORES),
    channels: Path = typer.Option(..., "--channels", help=_CHANNELS),
    customers: Optional[Path] = typer.Option(None, "--customers", help="Customer table (max_contacts, segment)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Total spend allowed."),
    max_contacts: Optional[int] = typer.Option(None, "--max-contacts", help="Contacts per customer (default 2)."),
    min_gap_days: int = typer.Option(1, "--min-gap-days", help="Minimum days between two contacts of a customer."),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Plan file to explain (default: plan with method=dual)."),
    all_options: bool = typer.Option(False, "--all", help="Also list options without consent."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap", help="Relative gap of the solve for the prices."),
) -> None:
    """Why this customer is contacted (utility vs prices), or what blocked them."""
    from optimizer.explain import explain_customer
    from optimizer.plan_table import customer_index

    problem = load_problem(scores, channels, customers, budget, max_contacts, min_gap_days)
    customer_index(problem, customer_id)        # unknown id: fail before any solve
    plan = _read_plan(problem, plan_file, "--plan") if plan_file is not None else None
    prices = _prices(problem, plan, rel_gap)
    plan = plan if plan is not None else prices.plan
    ex = explain_customer(problem, plan, customer_id, prices)
    console.print(ex.statement)
    opts = ex.options if all_options else ex.options[ex.options.reason != "consent"]
    table = Table(title=f"Options of customer {ex.customer_id}", title_justify="left")
    cols = [("channel", "left"), ("day", "left"), ("utility", "right"), ("slot price", "right"),
            ("budget × cost", "right"), ("reduced", "right"), ("reason", "left")]
    fair = bool((opts.fairness != 0).any())
    if fair:
        cols.insert(5, ("fairness", "right"))
    for col, just in cols:
        table.add_column(col, justify=just)
    for _, r in opts.iterrows():
        style = "bold green" if r.reason == "contacted" else ""
        cells = [str(r.channel), str(r.day), f"{r.utility:.4g}", f"{r.capacity_price:.4g}", f"{r.budget_price:.4g}",
                 f"{r.reduced:.4g}", f"[{style}]{r.reason}[/]" if style else r.reason]
        if fair:
            cells.insert(5, f"{r.fairness:.4g}")
        table.add_row(*cells)
    console.print(table)
    console.print("reduced = utility − slot price − budget price × cost" + (" − fairness" if fair else "")
                  + "; reasons: consent, closed, no value, limit, spacing, price, capacity, budget, segment, open "
                    "(see docs/report.md)")
    console.print(f"prices from {prices.source}; plan: "
                  f"{'method=dual' if plan_file is None else str(plan_file)}")


@app.command("diff")
def diff_cmd(
    old_plan: Path = typer.Argument(..., help="Last week's plan file."),
    new_plan: Path = typer.Argument(..., help="This week's plan file."),
    scores: Optional[Path] = typer.Option(None, "--scores", help="This week's scores (for the reasons)."),
    channels: Optional[Path] = typer.Option(None, "--channels", help="This week's channels (for the reasons)."),
    customers: Optional[Path] = typer.Option(None, "--customers", help="Customer table (max_contacts, segment)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="This week's budget."),
    max_contacts: Optional[int] = typer.Option(None, "--max-contacts", help="Contacts per customer (default 2)."),
    min_gap_days: int = typer.Option(1, "--min-gap-days", help="Minimum days between two contacts of a customer."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the per-customer changes (.csv/.parquet)."),
    rows: int = typer.Option(10, "--rows", help="Changed customers shown per class."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap", help="Relative gap of the solve for the prices."),
) -> None:
    """Compare two plans: who moved channels, who dropped out, and why."""
    from optimizer.io import check_output_path, read_table, write_table
    from optimizer.plan_diff import diff_plans

    if out is not None:
        check_output_path(out)
    if (scores is None) != (channels is None):
        raise InputError("--scores" if scores is None else "--channels",
                         "give both --scores and --channels (to explain the changes) or neither")
    old_df = read_table(old_plan, "OLD_PLAN")
    new_df = read_table(new_plan, "NEW_PLAN")
    problem = plan = prices = None
    if scores is not None:
        problem = load_problem(scores, channels, customers, budget, max_contacts, min_gap_days)
        plan = _read_plan(problem, new_plan, "NEW_PLAN")
        prices = _prices(problem, plan, rel_gap)
    d = diff_plans(old_df, new_df, problem, plan, prices)
    if out is not None:
        write_table(d.customers, out)
    summary = Table(title="Week-over-week changes", title_justify="left")
    summary.add_column("change")
    summary.add_column("customers", justify="right")
    for _, r in d.summary.iterrows():
        summary.add_row(r.change, f"{int(r.customers):,}")
    console.print(summary)
    for change, group in d.customers.groupby("change", sort=False):
        more = f" (first {rows})" if len(group) > rows else ""
        console.print(f"[bold]{change}[/]: {len(group):,} customers{more}")
        for _, r in group.head(rows).iterrows():
            console.print(f"  {r.customer_id}: {r.old or '—'} → {r.new or '—'}", highlight=False)
            if problem is not None and r.why:
                console.print(f"      why: {r.why}", highlight=False, style="dim")
    if out is not None:
        console.print(f"wrote {len(d.customers):,} changed customers to [bold]{out}[/]")
