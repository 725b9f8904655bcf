"""``contactplan experiment privacy`` (issue 10): registers on ``experiment_app``.

Privacy–utility sweep of federated, user-level differentially private training
of the logistic response model on 8 non-IID regions: prints a table of test
log-loss vs target ε next to the centralised fit, optionally writes the table
(CSV) and a plot (PNG) atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from formulations.errors import InputError
from optimizer.cli.experiment import experiment_app


@experiment_app.command("privacy")
def privacy_cmd(
    data: str = typer.Option("c360", "--data", help="c360 (generate a Customer 360 data set), synthetic, "
                                                    "or a Customer 360 directory from generate-c360."),
    customers: int = typer.Option(20_000, "--customers", help="Customers to generate with --data c360."),
    regions: int = typer.Option(8, "--regions", help="Number of non-IID regions (clients)."),
    epsilons: str = typer.Option("0.5,1,2,4,8,inf", "--epsilons", help="Target ε values, comma-separated."),
    delta: float = typer.Option(1e-5, "--delta", help="δ of the (ε, δ) guarantee."),
    rounds: int = typer.Option(300, "--rounds", help="Federated rounds T."),
    sampling_rate: float = typer.Option(0.1, "--sampling-rate", help="Per-round customer sampling rate q."),
    clip_norm: float = typer.Option(5.0, "--clip-norm", help="Per-customer clip norm C."),
    accountant: str = typer.Option("rdp", "--accountant", help="rdp or pld (dp-accounting; pld is tighter, slower)."),
    seeds: int = typer.Option(1, "--seeds", help="Repetitions per ε (mean and std reported)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data set and the first repetition."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for privacy_utility.csv and .png."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write the PNG plot (needs --out)."),
) -> None:
    """Privacy–utility sweep: federated DP log-loss vs ε against the centralised fit."""
    from rich.console import Console
    from rich.table import Table

    from optimizer.federated.experiment import SweepConfig, load_regions, parse_epsilons, plot_sweep, privacy_sweep

    console = Console()
    eps = parse_epsilons(epsilons)
    if not (0 < delta < 1):
        raise InputError("--delta", f"expected a number in (0, 1), got {delta}")
    if rounds < 1:
        raise InputError("--rounds", f"expected a positive integer, got {rounds}")
    if not (0 < sampling_rate <= 1):
        raise InputError("--sampling-rate", f"expected a number in (0, 1], got {sampling_rate}")
    if not (clip_norm > 0):
        raise InputError("--clip-norm", f"expected a number > 0, got {clip_norm}")
    if accountant not in ("rdp", "pld"):
        raise InputError("--accountant", f"expected rdp or pld, got {accountant!r}")
    if seeds < 1:
        raise InputError("--seeds", f"expected a positive integer, got {seeds}")
    if regions < 2:
        raise InputError("--regions", f"expected at least 2 regions, got {regions}")
    if customers < 100:
        raise InputError("--customers", f"expected at least 100 customers, got {customers}")
    if out is not None and (not out.exists() or not out.is_dir()):
        raise InputError("--out", f"expected an existing directory, got {str(out)!r}")
    if data not in ("c360", "synthetic") and not Path(data).is_dir():
        raise InputError("--data", f"expected c360, synthetic or a Customer 360 directory, got {data!r}")

    with console.status("preparing regional data"):
        clients, test, label = load_regions(data, n_regions=regions, customers=customers, seed=seed)
    config = SweepConfig(n_rounds=rounds, user_sampling_rate=sampling_rate, clip_norm=clip_norm, delta=delta,
                         accountant=accountant)
    with console.status("training") as status:
        df = privacy_sweep(clients, test, eps, config, seeds=range(seed, seed + seeds),
                           progress=lambda msg: status.update(f"training — last: {msg}"))

    table = Table(title=f"privacy–utility, {label}; T={rounds}, q={sampling_rate:g}, C={clip_norm:g}, δ={delta:g}")
    for col in ("target ε", "σ", f"ε ({accountant.upper()})", "test log-loss", "centralised", "gap vs centralised"):
        table.add_column(col, justify="right")
    for r in df.itertuples():
        table.add_row(f"{r.epsilon_target:g}", f"{r.noise_multiplier:.3f}", f"{r.epsilon:.3f}",
                      f"{r.log_loss:.5f}" + (f" ± {r.log_loss_std:.5f}" if seeds > 1 else ""),
                      f"{r.centralised_log_loss:.5f}", f"{r.gap_pct:+.2f}%")
    console.print(table)
    console.print(f"{sum(c.n for c in clients):,} training rows in {len(clients)} regions "
                  f"({', '.join(str(c.n) for c in clients)}), {test.n:,} test rows")
    if out is not None:
        from optimizer.io import write_table

        write_table(df, out / "privacy_utility.csv")
        console.print(f"wrote {out / 'privacy_utility.csv'}")
        if plot:
            plot_sweep(df, out / "privacy_utility.png", title=f"privacy–utility ({label})")
            console.print(f"wrote {out / 'privacy_utility.png'}")
