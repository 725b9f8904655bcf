"""Rich tables for the CLI: headline numbers, channels, utilization."""

from __future__ import annotations

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from optimizer.plan import Plan


def format_number(x, digits: int = 6) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if not np.isfinite(x):
            return str(x)
        return f"{x:,.{digits}g}" if abs(x) < 1e6 else f"{x:,.0f}"
    return str(x)


def headline_table(plan: Plan) -> Table:
    t = Table(title="Weekly contact plan", show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    p = plan.problem
    n, M, T = p.shape
    t.add_row("customers × channels × days", f"{n:,} × {M} × {T}")
    t.add_row("method", plan.method)
    t.add_row("status", str(plan.status))
    t.add_row("objective", format_number(plan.objective, 10))
    t.add_row("bound", format_number(plan.bound, 10))
    t.add_row("gap", "—" if plan.gap is None else f"{plan.gap:.2e}")
    t.add_row("contacts", f"{plan.n_contacts:,}")
    spend = f"{plan.spend:,.2f}" + ("" if p.budget is None else f" of {p.budget:,.2f}")
    t.add_row("spend", spend)
    t.add_row("time (s)", f"{plan.wall_time:.2f} (build {plan.build_time:.2f}, solve {plan.solve_time:.2f})")
    if plan.iterations:
        t.add_row("iterations", f"{plan.iterations:,}")
    return t


def channel_table(plan: Plan) -> Table:
    df = plan.channel_summary()
    t = Table(title="Contacts and spend per channel", title_justify="left")
    for col, just in (("channel", "left"), ("contacts", "right"), ("spend", "right"), ("value", "right")):
        t.add_column(col, justify=just)
    for name, row in df.iterrows():
        t.add_row(str(name), f"{int(row.contacts):,}", f"{row.spend:,.2f}", f"{row.value:,.2f}")
    return t


def utilization_table(plan: Plan) -> Table:
    p = plan.problem
    used = plan.usage()
    t = Table(title="Utilization: used/capacity (full cells in red)", title_justify="left", box=box.SIMPLE_HEAD,
              padding=(0, 1), pad_edge=False)
    t.add_column("channel")
    for d in p.day_labels:
        t.add_column(str(d), justify="right")
    for m, name in enumerate(p.channel_names):
        cells = []
        for d in range(p.n_days):
            cap = p.capacity[m, d]
            u = used[m, d]
            style = "bold red" if cap > 0 and u >= cap else ""
            text = f"{u}/{cap:.0f}"
            cells.append(f"[{style}]{text}[/]" if style else text)
        t.add_row(str(name), *cells)
    return t


def print_plan_summary(plan: Plan, console: Console | None = None, utilization: bool = True) -> None:
    console = console or Console()
    console.print(headline_table(plan))
    console.print(channel_table(plan))
    if utilization:
        console.print(utilization_table(plan))
