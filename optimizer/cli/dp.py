"""``contactplan mdp demo`` and ``contactplan mdp adp``: the dynamic-programming core from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from formulations.errors import InputError
from optimizer.cli import app

mdp_app = typer.Typer(no_args_is_help=True, help="Dynamic programming: contact-fatigue MDP and Lagrangian ADP.")
app.add_typer(mdp_app, name="mdp")
console = Console()


@mdp_app.command("demo")
def demo_cmd(
    method: str = typer.Option("all", "--method", help="vi, pi, mpi or all."),
    epsilon: float = typer.Option(1e-6, "--epsilon", help="Policies are epsilon-optimal."),
    beta: float = typer.Option(0.95, "--beta", help="Discount factor per period."),
) -> None:
    """Solve one customer's contact-fatigue MDP (500 states, 6 actions) and print the certificates."""
    from formulations.contact_mdp import ContactMDPParams, build_contact_mdp
    from optimizer.dp.fatigue import BASE_LOGIT, CHANNEL_CLASS, CHANNELS, COST, VALUE
    from optimizer.dp.mdp import DiscreteMDP

    methods = ("vi", "pi", "mpi") if method == "all" else (method,)
    for m in methods:
        if m not in ("vi", "pi", "mpi"):
            raise InputError("--method", f"expected vi, pi, mpi or all, got {method!r}")
    params = ContactMDPParams(base_logit=BASE_LOGIT, value=VALUE, cost=COST, channel_class=CHANNEL_CLASS,
                              cooling=(1, 2), beta=beta, channel_names=CHANNELS)
    contact = build_contact_mdp(params)
    mdp = DiscreteMDP.from_model(contact.model)
    table = Table(title=f"contact-fatigue MDP: {mdp.num_states} states, {mdp.num_actions} actions, "
                        f"{mdp.num_sa_pairs} admissible pairs, beta={mdp.beta}", title_justify="left")
    for col in ("method", "iterations", "converged", "time (s)", "|v - v*| <=", "v* - v_sigma <=", "eliminated"):
        table.add_column(col, justify="right")
    mdp.solve("mpi", max_iter=1)     # load the compiled kernels so the times below are solve times
    result = None
    for m in methods:
        result = mdp.solve(m, epsilon=epsilon)
        table.add_row(result.method, str(result.num_iter), str(result.converged), f"{result.time:.4f}",
                      f"{result.error_bound:.2e}", f"{result.policy_error_bound:.2e}", f"{result.eliminated:,}")
    console.print(table)
    actions = ("no contact",) + CHANNELS
    counts = np.bincount(result.sigma, minlength=len(actions))
    mix = Table(title="optimal action by state", title_justify="left")
    mix.add_column("action")
    mix.add_column("states", justify="right")
    for name, c in zip(actions, counts):
        mix.add_row(name, f"{c:,}")
    console.print(mix)


@mdp_app.command("adp")
def adp_cmd(
    segments: int = typer.Option(100, "--segments", help="Customer segments (one 500-state MDP each)."),
    customers: int = typer.Option(100, "--customers-per-segment", help="Customers per segment."),
    periods: int = typer.Option(20, "--periods", help="Planning periods."),
    replications: int = typer.Option(5, "--replications", help="Simulation replications (common random numbers)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the scenario and the simulation."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the numbers as JSON (atomically)."),
) -> None:
    """Lagrangian ADP on a simulated fatigue environment: bound, ADP value, myopic value, difference."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from optimizer.dp.adp import LagrangianADP, compare_policies
    from optimizer.dp.fatigue import fatigue_scenario
    from optimizer.io import check_output_path, write_json

    for name, value in (("--segments", segments), ("--customers-per-segment", customers), ("--periods", periods),
                        ("--replications", replications)):
        if value < 1:
            raise InputError(name, f"expected a positive integer, got {value}")
    if out is not None:
        check_output_path(out, suffixes=(".json",))
    scenario = fatigue_scenario(segments, customers, periods, seed=seed)
    adp = LagrangianADP(scenario.problem)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("price iterations", total=adp.max_iter, info="")

        def on_row(row: dict) -> None:
            progress.update(task, completed=row["iteration"], info=f"bound {row['bound']:.6g} gap {row['gap']:.1e}")

        adp.fit(progress=on_row)
    comparison = compare_policies(adp, scenario.myopic_scores, replications=replications, seed=seed)
    net = adp.simulate(adp.evaluator_.model.rewards, replications, seed)
    sol = adp.solution_
    table = Table(title=f"Lagrangian ADP: {segments} segments x {customers} customers, {periods} periods",
                  title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_row("Lagrangian bound", f"{sol.bound:,.2f}", f"lower estimate {sol.lower:,.2f}")
    table.add_row("ADP policy (simulated)", f"{comparison.adp.mean:,.2f}",
                  f"[{comparison.adp.ci_low:,.2f}, {comparison.adp.ci_high:,.2f}]")
    table.add_row("bound - ADP (relative)", f"{(sol.bound - comparison.adp.mean) / abs(sol.bound):.2%}", "")
    table.add_row("myopic p*value top-N", f"{comparison.baseline.mean:,.2f}",
                  f"[{comparison.baseline.ci_low:,.2f}, {comparison.baseline.ci_high:,.2f}]")
    table.add_row("ADP - myopic", f"{comparison.difference:,.2f} ({comparison.relative:+.1%})",
                  f"[{comparison.ci_low:,.2f}, {comparison.ci_high:,.2f}]")
    table.add_row("myopic net (p*value - cost)", f"{net.mean:,.2f}", f"[{net.ci_low:,.2f}, {net.ci_high:,.2f}]")
    table.add_row("price iterations / time", f"{sol.iterations} / {sol.time:.1f} s", f"converged={sol.converged}")
    console.print(table)
    if out is not None:
        write_json({"bound": sol.bound, "lower": sol.lower, "iterations": sol.iterations, "converged": sol.converged,
                    "adp": comparison.adp.values, "myopic": comparison.baseline.values, "myopic_net": net.values,
                    "difference": comparison.difference, "difference_ci": [comparison.ci_low, comparison.ci_high],
                    "prices": sol.prices}, out)
        console.print(f"wrote [bold]{out}[/]")
