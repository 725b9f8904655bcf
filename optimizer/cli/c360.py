"""``contactplan generate-c360`` and ``contactplan c360 build|plan``: the Customer 360 pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from formulations.errors import InputError
from optimizer.cli import app

console = Console()
c360_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Customer 360: raw events → identities → features → eligibility masks.")
app.add_typer(c360_app, name="c360")


def _date(value: Optional[str], field: str) -> Optional[dt.date]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(field, f"expected an ISO date like 2026-01-05, got {value!r}") from None


@app.command("generate-c360")
def generate_c360_cmd(
    customers: int = typer.Option(..., "--customers", help="Number of true customers."),
    weeks: int = typer.Option(12, "--weeks", help="Weeks of events."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    out: Path = typer.Option(..., "--out", help="Output directory for the raw sources (created if missing)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv (truth and labels are always Parquet)."),
    messiness: float = typer.Option(1.0, "--messiness", help="Factor scaling every messiness rate (1 = default)."),
    start: Optional[str] = typer.Option(None, "--start", help="First day of the horizon (default 2026-01-05)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress or summary."),
) -> None:
    """Write synthetic Customer 360 raw sources with messiness plus hidden ground truth."""
    from optimizer.c360.generator import DEFAULT_START, generate_c360

    first_day = _date(start, "--start") or DEFAULT_START
    with Progress(TextColumn("generating"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} customers"),
                  TimeElapsedColumn(), console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task("gen", total=max(customers, 0))
        manifest = generate_c360(out, customers, weeks, seed, messiness=messiness, fmt=fmt, start=first_day,
                                 progress=lambda done, total: bar.update(task, completed=done))
    if quiet:
        return
    table = Table(title=f"raw sources in {out}", show_header=True)
    table.add_column("source")
    table.add_column("rows", justify="right")
    for name, rows in manifest["rows"].items():
        table.add_row(name, f"{rows:,}")
    table.add_row("[dim]truth: bad rows injected[/]", f"{manifest['truth_rows']['bad_rows']:,}")
    table.add_row("[dim]labels: reviewed records[/]", f"{manifest['labelled_records']:,}")
    console.print(table)
    console.print(f"{manifest['events']:,} events for {customers:,} customers over {weeks} weeks from "
                  f"{manifest['start']}; next: [bold]contactplan c360 build {out} --out OUT_DIR[/]")


@c360_app.command("build")
def build_cmd(
    raw_dir: Path = typer.Argument(..., help="Directory of raw sources (see data/README.md)."),
    out: Path = typer.Option(..., "--out", help="Output directory (created if missing)."),
    granularity: str = typer.Option("week", "--granularity", help="Feature grid: week or day."),
    latency_days: float = typer.Option(0.0, "--latency-days", help="Data latency L: features as of t - L days."),
    decay: float = typer.Option(0.8, "--decay", help="Decay λ per period of z_t = λ z_(t-1) + x_t."),
    start: Optional[str] = typer.Option(None, "--start", help="Grid start (default: RAW_DIR/manifest.json)."),
    weeks: Optional[int] = typer.Option(None, "--weeks", help="Weeks in the horizon (default: manifest)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Match probability to link two records."),
    max_block: int = typer.Option(50, "--max-block", help="Skip blocking keys shared by more records."),
    match_model: Optional[Path] = typer.Option(None, "--match-model",
                                               help="match_model.json of an earlier build, or 'default' for the "
                                                    "documented rule (used anyway when RAW_DIR has no labels)."),
    cooling_days: int = typer.Option(7, "--cooling-days", help="No call within g days of the last call."),
    contact_cap: int = typer.Option(4, "--contact-cap", help="Campaign contacts allowed per cap window."),
    cap_window_days: int = typer.Option(28, "--cap-window-days", help="Rolling window of the contact cap."),
    memory_limit: str = typer.Option("6GB", "--memory-limit", help="DuckDB memory limit (spills beyond)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="DuckDB threads (default: all cores)."),
    no_events: bool = typer.Option(False, "--no-events", help="Do not write the canonical events.parquet."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="Dask scheduler address: compute the features on that cluster."),
    workers: Optional[int] = typer.Option(None, "--workers",
                                          help="Compute the features on a local Dask cluster with N workers."),
    partitions: Optional[int] = typer.Option(None, "--feature-partitions",
                                             help="Customer partitions on the cluster (default: 2 × workers)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress or summary."),
) -> None:
    """Build features, eligibility and the identity map from raw sources; print identity quality."""
    from optimizer.c360.pipeline import BuildOptions, build_c360

    if scheduler is not None and workers is not None:
        raise InputError("--workers", "give either --scheduler or --workers, not both")
    if workers is not None and workers < 1:
        raise InputError("--workers", f"expected a positive number of workers, got {workers}")
    cluster = scheduler if scheduler is not None else workers
    if partitions is not None and (cluster is None or partitions < 1):
        raise InputError("--feature-partitions", "expected a positive integer together with --workers or "
                                                 f"--scheduler, got {partitions}")

    options = BuildOptions(granularity=granularity, latency_days=latency_days, decay=decay,
                           start=_date(start, "--start"), weeks=weeks, threshold=threshold, max_block=max_block,
                           match_model=match_model, cooling_days=cooling_days, contact_cap=contact_cap,
                           cap_window_days=cap_window_days, memory_limit=memory_limit, threads=threads,
                           write_events=not no_events)
    steps = ["load_records", "identity_resolution", "ingest_events", "features", "masks", "write_outputs"]
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                  disable=quiet, transient=True) as bar:
        task = bar.add_task("c360 build", total=len(steps))

        def progress(name: str) -> None:
            bar.update(task, completed=steps.index(name) if name in steps else 0, description=f"c360: {name}")

        result = build_c360(raw_dir, out, options, progress=progress, cluster=cluster,
                            feature_partitions=partitions)
    if not quiet:
        print_build_summary(result)


def print_build_summary(result) -> None:
    """The short summary table of a build."""
    ident = result.identity
    table = Table(title=f"Customer 360 build → {result.out_dir}", show_header=False)
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("CRM records → customers", f"{ident.n_records:,} → {result.n_customers:,}")
    table.add_row("candidate pairs (per record)", f"{ident.n_pairs:,} ({ident.pairs_per_record:.2f})")
    table.add_row("match model", {"labels": f"fitted on {ident.n_training_pairs:,} labelled pairs",
                                  "given": "given (--match-model)",
                                  "default rule": "default rule (no labels in RAW_DIR)"}.get(ident.model_source,
                                                                                            ident.model_source))
    if ident.scores is not None:
        s = ident.scores
        table.add_row("identity precision / recall / F1",
                      f"{s.precision:.4f} / {s.recall:.4f} / [bold]{s.f1:.4f}[/]")
        if ident.heldout_scores is not None:
            h = ident.heldout_scores
            table.add_row("  held-out records P / R / F1", f"{h.precision:.4f} / {h.recall:.4f} / {h.f1:.4f}")
        table.add_row("  blocking recall", f"{ident.blocking_recall:.4f}")
    else:
        table.add_row("identity quality", "no ground truth in RAW_DIR")
    table.add_row("canonical events", f"{result.n_events:,}")
    table.add_row("campaign contacts", f"{result.n_contacts:,}")
    table.add_row("rejected rows", f"{result.n_rejects:,}")
    table.add_row("feature rows (customers × periods)",
                  f"{result.n_feature_rows:,} ({result.grid.n_periods} × {result.grid.granularity})")
    table.add_row("as of / plan week", f"{result.as_of} / {', '.join(result.day_labels)} from {result.plan_start}")
    table.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    console.print(table)
    if len(result.rejects):
        rej = Table(title="rejects (rejects.parquet)")
        for col in ("source", "reason", "rows"):
            rej.add_column(col, justify="right" if col == "rows" else "left")
        for row in result.rejects.itertuples(index=False):
            rej.add_row(row.source, row.reason, f"{row.rows:,}")
        console.print(rej)


@c360_app.command("plan")
def plan_cmd(
    out_dir: Path = typer.Argument(..., help="Output directory of `contactplan c360 build`."),
    out: Path = typer.Option(..., "--out", help="Plan output (.csv or .parquet), written atomically."),
    value: float = typer.Option(80.0, "--value", help="Customer value V of the simple utility rule."),
    max_contacts: int = typer.Option(2, "--max-contacts", help="Contacts per customer in the week."),
    min_gap_days: int = typer.Option(2, "--min-gap-days", help="Minimum days between two contacts."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Spend allowed (default: 0.45 per customer)."),
    method: str = typer.Option("auto", "--method", help="auto, highs, pyomo, cvxpy, greedy or dual."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap", help="Relative optimality gap at which to stop."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Solver time limit in seconds."),
    quiet: bool = typer.Option(False, "--quiet", help="No summary output."),
) -> None:
    """Plan the week after a build: features → simple utility rule, eligibility → PlanningProblem → plan."""
    from optimizer.c360.planning import planning_problem
    from optimizer.cli.weekly import run_plan
    from optimizer.io import check_output_path

    check_output_path(out)
    problem = planning_problem(out_dir, value=value, max_contacts=max_contacts, min_gap_days=min_gap_days,
                               budget="default" if budget is None else budget)
    if not (rel_gap >= 0):
        raise InputError("--rel-gap", f"expected a number >= 0, got {rel_gap!r}")
    run_plan(problem, method, out, rel_gap, time_limit, None, quiet)
