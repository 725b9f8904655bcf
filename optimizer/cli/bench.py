"""``contactplan bench``: run, report and export the solver benchmark suite."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from formulations.errors import InputError
from optimizer.cli import app

bench_app = typer.Typer(no_args_is_help=True, help="Solver benchmarks: instance library, runner, reports, export.")
app.add_typer(bench_app, name="bench")
console = Console()
METHODS = ("highs", "highs-lp", "pyomo", "cvxpy", "greedy", "dual")


@bench_app.command("list")
def list_cmd(suites: Optional[Path] = typer.Option(None, "--suites", help="Suites TOML (default: benchmarks/suites.toml).")):
    """List the suites and their instances."""
    from optimizer.bench.instances import load_library

    instances, suite_map = load_library(suites)
    table = Table(title="Benchmark suites", title_justify="left")
    for col in ("suite", "instances", "description"):
        table.add_column(col)
    for name, s in suite_map.items():
        table.add_row(name, ", ".join(s["instances"]), s.get("description", ""))
    console.print(table)


@bench_app.command("run")
def run_cmd(
    suite: str = typer.Option("standard", "--suite", help="Suite name from the suites file."),
    methods: str = typer.Option("highs,dual,greedy", "--methods", help=f"Comma-separated: {', '.join(METHODS)}."),
    time_limit: float = typer.Option(600.0, "--time-limit", help="Seconds per run (solver limit; the process is killed if it overruns)."),
    repeat: int = typer.Option(1, "--repeat", help="Runs per instance and method."),
    rel_gap: float = typer.Option(1e-4, "--rel-gap", help="Requested relative gap."),
    memory_limit: Optional[float] = typer.Option(None, "--memory-limit", help="GiB of address space per run."),
    max_customers: Optional[int] = typer.Option(None, "--max-customers", help="Skip exact methods above this n."),
    out: Path = typer.Option(Path("benchmarks/results/latest.csv"), "--out", help="Result file (.csv or .parquet)."),
    suites: Optional[Path] = typer.Option(None, "--suites", help="Suites TOML (default: benchmarks/suites.toml)."),
) -> None:
    """Run each method on each instance in a fresh subprocess; write results as they come."""
    from optimizer.bench.instances import suite_instances
    from optimizer.bench.report import markdown_table, summarize
    from optimizer.bench.runner import run_suite
    from optimizer.io import check_output_path

    names = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise InputError("--methods", f"expected a comma-separated subset of {', '.join(METHODS)}, got {methods!r}")
    if repeat < 1:
        raise InputError("--repeat", f"expected a positive integer, got {repeat}")
    if time_limit <= 0:
        raise InputError("--time-limit", f"expected a positive number of seconds, got {time_limit}")
    out.parent.mkdir(parents=True, exist_ok=True) if out.parent.parent.exists() else None
    check_output_path(out)
    specs = suite_instances(suite, suites)

    def skip(spec, method):
        if max_customers is not None and method not in ("dual", "greedy") and spec.customers > max_customers:
            return f"exact method skipped above {max_customers:,} customers (--max-customers)"
        return None

    df = run_suite(specs, names, time_limit=time_limit, repeat=repeat, rel_gap=rel_gap,
                   memory_limit_gb=memory_limit, out=out, skip=skip)
    console.print(markdown_table(summarize(df)), soft_wrap=True)
    console.print(f"wrote [bold]{out}[/] and {out.with_suffix('.machine.json')}")


@bench_app.command("report")
def report_cmd(
    results: Path = typer.Argument(..., help="A result file written by `contactplan bench run`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for report.md and the plots."),
    title: str = typer.Option("Benchmark results", "--title"),
    readme: Optional[Path] = typer.Option(None, "--readme", help="Regenerate this README's performance block "
                                          "(between its performance markers) from the result file."),
) -> None:
    """Print the Markdown table; with --out also write report.md, performance profile and scaling plots."""
    from optimizer.bench.report import load_results, markdown_table, machine_line, plot_profiles, summarize, \
        write_markdown_report

    df, meta = load_results(results)
    console.print(machine_line(meta))
    console.print(markdown_table(summarize(df)), soft_wrap=True)
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InputError("--out", f"{str(out)!r} is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        write_markdown_report(results, out / "report.md", title)
        for p in plot_profiles(df, out):
            console.print(f"wrote {p}")
    if readme is not None:
        from optimizer.bench.report import update_readme

        update_readme(results, readme)
        console.print(f"updated the performance block of {readme}")


@bench_app.command("export")
def export_cmd(
    instance: str = typer.Argument(..., help="Instance name from the suites file."),
    out: Path = typer.Option(..., "--out", help="file.mps / file.lp (the MIP) or a directory (Parquet + JSON data)."),
    suites: Optional[Path] = typer.Option(None, "--suites"),
) -> None:
    """Export an instance: MPS/LP for external MIP solvers, or Parquet + JSON for the dual method."""
    from optimizer.bench.export import export_data, export_model
    from optimizer.bench.instances import get_instance

    spec = get_instance(instance, suites)
    if out.suffix.lower() in (".mps", ".lp"):
        export_model(spec.build(), out)
    elif out.suffix:
        raise InputError("--out", f"expected a .mps or .lp file or a directory, got {str(out)!r}")
    else:
        export_data(spec.build(), out)
    console.print(f"wrote [bold]{out}[/]")
