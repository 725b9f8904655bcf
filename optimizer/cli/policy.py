"""``contactplan policy simulate``: the real-time policy on a synthetic drifting stream."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from formulations.errors import InputError
from optimizer.cli import app

console = Console()
policy_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Real-time budget-constrained decision policy (Lagrangian next-best-action).")
app.add_typer(policy_app, name="policy")


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


@policy_app.command("simulate")
def simulate_cmd(
    events: int = typer.Option(1_000_000, "--events", help="Events in the synthetic stream."),
    budget: float = typer.Option(0.5, "--budget", help="Allowed average spend per decision."),
    temperature: float = typer.Option(0.1, "--temperature", help="Softmax temperature (0 = argmax)."),
    step: float = typer.Option(1e-3, "--step", help="Relative online dual-ascent step."),
    warmup: float = typer.Option(0.05, "--warmup", help="Share of the stream before spend is scored."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the stream."),
    feedback: str = typer.Option("realised", "--feedback", help="realised or expected use in the update."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the report as JSON (atomically)."),
) -> None:
    """Decide a drifting stream with the hindsight batch price, a fixed pilot price and online dual ascent."""
    from optimizer.io import check_output_path, write_json
    from optimizer.policy_simulation import simulate_stream

    if events < 1000:
        raise InputError("--events", f"expected at least 1000 events, got {events}")
    if not budget > 0:
        raise InputError("--budget", f"expected a positive number, got {budget}")
    if not 0 < warmup < 0.5:
        raise InputError("--warmup", f"expected a share in (0, 0.5), got {warmup}")
    if step < 0:
        raise InputError("--step", f"expected a number >= 0, got {step}")
    if feedback not in ("realised", "expected"):
        raise InputError("--feedback", f"expected realised or expected, got {feedback!r}")
    if out is not None:
        check_output_path(out, "--out", suffixes=(".json",))
    with console.status("simulating ...", spinner="dots") as status:
        report = simulate_stream(events, budget, temperature, step, seed, warmup,
                                 pilot_events=min(20_000, max(1000, events // 50)),
                                 realised=feedback == "realised",
                                 progress=lambda phase: status.update(phase + " ..."))
    table = Table(title=f"{events:,} drifting events, budget {budget:g}/decision, temperature {temperature:g}, "
                        f"step {step:g}", title_justify="left")
    for col in ("policy", "spend", "running", "window", "value", "price", "s"):
        table.add_column(col, justify="right" if col != "policy" else "left", no_wrap=col == "policy")
    for run in report.runs.values():
        table.add_row(run.name, _pct(run.spend_after_warmup), f"{100 * run.max_running_error:.2f}%",
                      f"{100 * run.max_window_error:.1f}%", f"{run.value_per_event:.4g}",
                      ", ".join(f"{p:.4g}" for p in run.final_prices), f"{run.seconds:.2f}")
    console.print(table)
    console.print(f"spend: average spend after the first {100 * warmup:g}% vs the budget; running / window: "
                  "largest deviation of the running average / of a window average after the warm-up; "
                  "value: mean score of the chosen actions; price: final price")
    console.print(f"hindsight price certified gap {report.hindsight_gap:.1e}; proven over-spend bound after "
                  f"warm-up (lambda_max / (eta W b)): {100 * report.tracking_bound:.2f}%")
    if out is not None:
        payload = {"n_events": report.n_events, "budget": report.budget, "temperature": report.temperature,
                   "step": report.step, "warmup": report.warmup, "pilot_prices": report.pilot_prices,
                   "hindsight_prices": report.hindsight_prices, "tracking_bound": report.tracking_bound,
                   "runs": {k: vars(r) for k, r in report.runs.items()}, "timings": report.timings}
        write_json(payload, out)
        console.print(f"wrote the report to [bold]{out}[/]")
