"""``contactplan plan``, ``generate`` and ``demo``: the weekly plan from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from optimizer.cli import app
from optimizer.io import check_output_path, project_data_dir, read_table, write_table
from optimizer.summary import print_plan_summary

console = Console()
err_console = Console(stderr=True)


def is_lake(scores: Path) -> bool:
    """A glob or a directory of Parquet parts (the partitioned layout) rather than one scores table."""
    text = str(scores)
    return any(ch in text for ch in "*?[") or scores.is_dir()


def load_problem(scores: Path, channels: Path, customers: Optional[Path], budget: Optional[float],
                 max_contacts: Optional[int], min_gap_days: int):
    """Read the input tables and build the problem (errors name the option or column).

    ``--scores`` may be a glob or directory of Parquet parts in the wide
    layout of :mod:`formulations.partitioned`; that gives a PartitionedProblem.
    """
    if is_lake(scores):
        from formulations.partitioned import PartitionedProblem

        return PartitionedProblem(str(scores), read_table(channels, "--channels"), budget=budget,
                                  max_contacts=2 if max_contacts is None else max_contacts, min_gap_days=min_gap_days)
    scores_df = read_table(scores, "--scores")
    channels_df = read_table(channels, "--channels")
    customers_df = read_table(customers, "--customers") if customers is not None else None
    return PlanningProblem.from_frames(scores_df, channels_df, budget=budget, max_contacts=max_contacts,
                                       min_gap_days=min_gap_days, customers=customers_df)


def run_plan(problem, method: str, out: Optional[Path], rel_gap: float,
             time_limit: Optional[float], threads: Optional[int], quiet: bool, verbose: bool = False, cluster=None):
    from optimizer.api import solve
    from optimizer.verify import verify

    with console.status(f"solving with method={method} ...", spinner="dots") if not quiet and not verbose else _null():
        kwargs = {} if cluster is None else {"cluster": cluster}
        plan = solve(problem, method=method, rel_gap=rel_gap, time_limit=time_limit, threads=threads,
                     verbose=verbose, **kwargs)
    report = verify(plan.problem, plan)
    if not report.ok:  # never hand out a wrong plan
        raise RuntimeError("the plan failed verification: " + "; ".join(report.violations[:3]))
    if out is not None:
        write_table(plan.assignments, out)
    if not quiet:
        print_plan_summary(plan, console)
        if out is not None:
            console.print(f"wrote {plan.n_contacts:,} contacts to [bold]{out}[/]")
    return plan


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@app.command("plan")
def plan_cmd(
    scores: Path = typer.Option(..., "--scores", help="Scores table (CSV/Parquet): customer_id, channel, day, utility."),
    channels: Path = typer.Option(..., "--channels", help="Channels table: channel, cost, capacity[_<day>]."),
    out: Path = typer.Option(..., "--out", help="Plan output (.csv or .parquet), written atomically."),
    customers: Optional[Path] = typer.Option(None, "--customers", help="Optional customer table with max_contacts."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Total spend allowed (default: no budget)."),
    max_contacts: Optional[int] = typer.Option(None, "--max-contacts", help="Contacts per customer (default 2)."),
    min_gap_days: int = typer.Option(1, "--min-gap-days", help="Minimum days between two contacts of a customer."),
    method: str = typer.Option("auto", "--method", help="auto, highs, pyomo, cvxpy, greedy or dual."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap", help="Relative optimality gap to stop at."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Seconds; best plan so far is returned."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Solver threads."),
    quiet: bool = typer.Option(False, "--quiet", help="No summary output."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the solver log / progress."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (method dual)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Start a local Dask cluster with N workers."),
) -> None:
    """Plan a week: read scores and channels, solve, write the plan, print a summary."""
    check_output_path(out)
    if scheduler is not None and workers is not None:
        raise InputError("--workers", "give either --scheduler or --workers, not both")
    if workers is not None and workers < 1:
        raise InputError("--workers", f"expected a positive number of workers, got {workers}")
    cluster = scheduler if scheduler is not None else workers
    problem = load_problem(scores, channels, customers, budget, max_contacts, min_gap_days)
    run_plan(problem, method, out, rel_gap, time_limit, threads, quiet, verbose, cluster=cluster)


@app.command("generate")
def generate_cmd(
    customers: int = typer.Option(..., "--customers", help="Number of customers."),
    out: Path = typer.Option(..., "--out", help="Output directory (created if missing)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
) -> None:
    """Write a synthetic weekly instance (scores, channels, customers) in the input schema."""
    from optimizer.generate import default_budget, generate_tables

    if customers < 1:
        raise InputError("--customers", f"expected a positive number, got {customers}")
    if fmt not in ("csv", "parquet"):
        raise InputError("--format", f"expected csv or parquet, got {fmt!r}")
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"{str(out)!r} exists and is not a directory")
    if not out.parent.exists():
        raise InputError("--out", f"directory {str(out.parent)!r} does not exist")
    out.mkdir(exist_ok=True)
    scores, channels, customers_df = generate_tables(customers, seed)
    for name, df in (("scores", scores), ("channels", channels), ("customers", customers_df)):
        write_table(df, out / f"{name}.{fmt}")
    settings = {"budget": default_budget(customers), "max_contacts": 2, "min_gap_days": 2, "seed": seed}
    from optimizer.io import write_json

    write_json(settings, out / "settings.json")
    console.print(f"wrote {len(scores):,} score rows for {customers:,} customers to [bold]{out}[/] "
                  f"(suggested: --budget {settings['budget']} --max-contacts 2 --min-gap-days 2)")


@app.command("demo")
def demo_cmd(
    method: str = typer.Option("auto", "--method", help="Solver method."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the plan here."),
    hillstrom: bool = typer.Option(False, "--hillstrom", help="Real-data demo instead: target the Hillstrom "
                                   "e-mail experiment under a 30% e-mail capacity, value it on held-out data."),
) -> None:
    """Plan the shipped sample week in data/sample and print the summary."""
    if out is not None:
        check_output_path(out)
    if hillstrom:
        from optimizer.uplift.hillstrom import print_hillstrom

        print_hillstrom(console, method="dual" if method == "auto" else method, out=out)
        return
    sample = project_data_dir() / "sample"
    settings = json.loads((sample / "settings.json").read_text())
    problem = load_problem(sample / "scores.csv", sample / "channels.csv", None, settings["budget"],
                           settings["max_contacts"], settings["min_gap_days"])
    console.print(f"[bold]contactplan demo[/]: {problem.n_customers:,} customers, "
                  f"{problem.n_channels} channels, {problem.n_days} days, budget {settings['budget']:,}, "
                  f"max {settings['max_contacts']} contacts, {settings['min_gap_days']} days apart")
    run_plan(problem, method, out, 1e-4, None, None, quiet=False)
