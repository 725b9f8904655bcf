"""``contactplan frontier``: objective vs fairness penalty, budget or channel capacity."""

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


@app.command("frontier")
def frontier_cmd(
    scores: Path = typer.Option(..., "--scores", help="Scores table."),
    channels: Path = typer.Option(..., "--channels", help="Channels table."),
    customers: Optional[Path] = typer.Option(None, "--customers", help="Customer table (segment column for --fairness)."),
    budget: Optional[float] = typer.Option(None, "--budget-base", help="Budget of the base problem."),
    max_contacts: Optional[int] = typer.Option(None, "--max-contacts"),
    min_gap_days: int = typer.Option(1, "--min-gap-days"),
    fairness: bool = typer.Option(False, "--fairness", help="Sweep the fairness penalty γ (needs segments)."),
    gammas: str = typer.Option("0,1,3,10,30,100,300,1000", "--gammas", help="γ values (list or start:stop:points)."),
    fair_channel: Optional[str] = typer.Option(None, "--fair-channel", help="Channel whose rates Ψ measures (default: all)."),
    budgets: Optional[str] = typer.Option(None, "--budget", help="Budget grid, e.g. 0:200000:20."),
    capacity_channel: Optional[str] = typer.Option(None, "--channel", help="Channel for a capacity frontier."),
    factors: str = typer.Option("0.25:2:8", "--factors", help="Capacity multipliers for --channel."),
    method: str = typer.Option("dual", "--method", help="Solver method for every point."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap"),
    out: Path = typer.Option(Path("frontier.csv"), "--out", help="Table (.csv/.parquet); the plot goes next to it (.png)."),
) -> None:
    """Re-solve across a grid (warm-started) and write the frontier table and plot."""
    from optimizer.frontier import budget_frontier, capacity_frontier, fairness_frontier, parse_grid, plot_frontier
    from optimizer.io import check_output_path, write_table

    modes = sum([fairness, budgets is not None, capacity_channel is not None])
    if modes != 1:
        raise InputError("frontier", "choose exactly one of --fairness, --budget GRID or --channel NAME")
    check_output_path(out)
    problem = load_problem(scores, channels, customers, budget, max_contacts, min_gap_days)
    if fairness:
        if problem.segment is None:
            raise InputError("--customers", "a fairness frontier needs a customer table with a 'segment' column")
        problem = problem.replace(fairness_channels=None if fair_channel is None else [fair_channel])
        df = fairness_frontier(problem, parse_grid(gammas, "--gammas"), method, rel_gap, progress=True)
        x, y, title = "psi", "utility", "Fairness frontier: value vs disparity Ψ"
    elif budgets is not None:
        df = budget_frontier(problem, parse_grid(budgets, "--budget"), method, rel_gap, progress=True)
        x, y, title = "budget", "objective", "Budget frontier"
    else:
        df = capacity_frontier(problem, capacity_channel, parse_grid(factors, "--factors"), method, rel_gap,
                               progress=True)
        x, y, title = "capacity", "objective", f"Capacity frontier: {capacity_channel}"
    write_table(df, out)
    plot_frontier(df, x, y, out.with_suffix(".png"), title)
    table = Table(title=title, title_justify="left")
    for col in df.columns:
        table.add_column(col, justify="right")
    for _, row in df.iterrows():
        table.add_row(*[f"{v:.6g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    console.print(f"wrote [bold]{out}[/] and {out.with_suffix('.png')}")
