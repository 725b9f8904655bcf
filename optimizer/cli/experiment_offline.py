"""``contactplan experiment offline-value`` (issue 9): registers on ``experiment_app``.

What are call-centre and branch data worth? Generates Customer 360 data with ground truth, builds
it per latency / granularity, fits the response model with and without the offline features,
plans with each and values the plans under the truth (:mod:`optimizer.uplift.offline_value`).
Prints the Δℓ / ΔJ, latency and granularity tables and saves two plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from formulations.errors import InputError
from optimizer.cli.experiment import experiment_app

console = Console()


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(option, f"expected comma-separated numbers, got {text!r}") from None


def _print_frame(title: str, df, digits: int = 4) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right")
    for row in df.itertuples(index=False):
        table.add_row(*[f"{x:.{digits}f}" if isinstance(x, float) else str(x) for x in row])
    console.print(table)


@experiment_app.command("offline-value")
def offline_value_cmd(
    customers: int = typer.Option(10_000, "--customers", help="Customers per generated data set."),
    weeks: int = typer.Option(12, "--weeks", help="Weeks of history per data set."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds (one data set each)."),
    latencies: str = typer.Option("0,1,3,7,14", "--latencies", help="Data latencies L in days."),
    granularity: str = typer.Option("day", "--granularity", help="Reference feature granularity: day or week."),
    value: float = typer.Option(80.0, "--value", help="Value V of a response."),
    l2: float = typer.Option(1.0, "--l2", help="L2 penalty of the response models."),
    method: str = typer.Option("dual", "--method", help="Planner method."),
    out: Path = typer.Option(Path("offline_value"), "--out", help="Directory for plots and the runs table."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Keep raw data and builds here "
                                           "(default: a temporary directory)."),
) -> None:
    """Value of call-centre/branch data: Δℓ, ΔJ, latency and granularity sensitivity (tables + plots)."""
    from optimizer.io import write_json, write_table
    from optimizer.uplift.offline_value import run_offline_value, save_plots

    seed_list = [int(s) for s in _floats(seeds, "--seeds")]
    if any(s != int(s) or s < 0 for s in _floats(seeds, "--seeds")):
        raise InputError("--seeds", f"expected non-negative integers, got {seeds!r}")
    lat = _floats(latencies, "--latencies")
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"{str(out)!r} exists and is not a directory")
    if not out.resolve().parent.exists():
        raise InputError("--out", f"directory {str(out.resolve().parent)!r} does not exist")
    with console.status("offline-value experiment ...", spinner="dots") as status:
        result = run_offline_value(customers, weeks, seed_list, latencies=lat, granularity=granularity, value=value,
                                   l2=l2, method=method, workdir=workdir, progress=status.update)
    m = result.meta
    console.print(f"[bold]offline-value[/]: {m['customers']:,} customers x {m['weeks']} weeks, seeds {m['seeds']}, "
                  f"value {m['value']:g}, reference granularity {m['granularity']}, {m['seconds']:.0f} s")
    _print_frame("Value of call-centre + branch data (L = 0): Δℓ = ℓ_full − ℓ_digital, ΔJ = J_full − J_digital",
                 result.offline_table())
    _print_frame(f"Latency sensitivity (full model, {m['granularity']} features): ΔJ(L) = J(0) − J(L)",
                 result.latency_table())
    _print_frame("Granularity sensitivity (L = 0)", result.granularity_table())
    out.mkdir(exist_ok=True)
    write_table(result.runs, out / "runs.csv")
    write_json(m, out / "meta.json")
    paths = save_plots(result, out)
    console.print(f"wrote {out / 'runs.csv'} and plots {', '.join(str(p) for p in paths)}")
