"""``contactplan evaluate``: off-policy evaluation from the command line.

- ``contactplan evaluate --open-bandit`` — the real-data check on the Open
  Bandit Dataset sample: each policy's click rate estimated from the other
  policy's log, against its observed on-policy rate; prints the table and
  writes it to ``benchmarks/open_bandit.md`` (or ``--out``).
- ``contactplan evaluate --traces T.jsonl --target target.csv [--outcomes O.csv]``
  — a target policy's value from decision traces, with every estimator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from formulations.errors import InputError
from optimizer.cli import app
from optimizer.io import check_output_path, project_data_dir, read_table, write_table, write_text

console = Console()

OUT_SUFFIXES = (".md", ".csv", ".parquet")


def _pct(x: float) -> str:
    return f"{100 * x:.3f}%"


def _open_bandit_tables(table: pd.DataFrame) -> list[Table]:
    """One compact table per (direction, target probabilities), truth in the title."""
    out = []
    for (direction, target), rows in table.groupby(["direction", "target"], sort=False):
        first = rows.iloc[0]
        t = Table(title=f"{direction}, target: {target}\n"
                        f"truth (on-policy click rate) {_pct(first.truth)} "
                        f"[{_pct(first.truth_ci_low)}, {_pct(first.truth_ci_high)}]",
                  title_justify="left", caption="95% intervals; covers: truth inside the estimate's interval",
                  caption_justify="left")
        for col in ("estimator", "estimate % [CI]", "rel. error % [CI]", "covers", "ESS"):
            t.add_column(col, justify="left" if col == "estimator" else "right", no_wrap=True)
        for r in rows.itertuples():
            t.add_row(r.estimator, f"{100 * r.estimate:.3f} [{100 * r.ci_low:.3f}, {100 * r.ci_high:.3f}]",
                      f"{100 * r.rel_error:+.1f} [{100 * r.rel_ci_low:+.1f}, {100 * r.rel_ci_high:+.1f}]",
                      "yes" if r.truth_in_ci else "no", f"{r.ess:,.0f}")
        out.append(t)
    return out


def _default_open_bandit_out() -> Optional[Path]:
    bench = project_data_dir().parent / "benchmarks"
    return bench / "open_bandit.md" if bench.is_dir() else None


def run_open_bandit_cmd(out: Optional[Path], data: Optional[Path], alpha: float, n_bootstrap: int, n_sim: int,
                        seed: int, quiet: bool) -> pd.DataFrame:
    from optimizer.evaluation.open_bandit import markdown_table, run_open_bandit

    with Progress(TextColumn("[bold]open bandit[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet, transient=True) as progress:
        task = progress.add_task("directions", total=3)
        table, meta = run_open_bandit(data, alpha=alpha, n_bootstrap=n_bootstrap, n_sim=n_sim, random_state=seed,
                                      progress=lambda done, total: progress.update(task, completed=done))
    if out is not None:
        if out.suffix.lower() == ".md":
            write_text(markdown_table(table, meta), out)
        else:
            write_table(table, out)
    if not quiet:
        for t in _open_bandit_tables(table):
            console.print(t)
        console.print(f"random log: {meta['n_random']:,} impressions, {meta['clicks_random']} clicks; "
                      f"BTS log: {meta['n_bts']:,} impressions, {meta['clicks_bts']} clicks; "
                      f"{meta['seconds']:.1f} s")
        if out is not None:
            console.print(f"wrote the table to [bold]{out}[/]")
    return table


def _rewards_from_outcomes(traces, outcomes: pd.DataFrame) -> np.ndarray:
    """Join outcomes on decision_id (or unit_id): a ``reward`` column, or ``converted, elapsed[, delay]``
    corrected for open conversion windows (exponential delay model)."""
    from optimizer.evaluation.delayed import ExponentialDelayModel

    frame = traces.frame
    key = "decision_id" if "decision_id" in outcomes.columns else "unit_id"
    if key not in outcomes.columns:
        raise InputError("--outcomes", "expected a decision_id or unit_id column")
    if outcomes[key].astype(str).duplicated().any():
        raise InputError("--outcomes", f"{key} values must be unique")
    joined = frame[[key]].astype(str).merge(outcomes.assign(**{key: outcomes[key].astype(str)}), on=key,
                                            how="left", validate="many_to_one")
    if "reward" in outcomes.columns:
        r = pd.to_numeric(joined["reward"], errors="coerce").to_numpy(np.float64)
        if np.isnan(r).any():
            i = int(np.flatnonzero(np.isnan(r))[0])
            raise InputError("--outcomes", f"no numeric reward for {key} {joined[key].iloc[i]!r}")
        return r
    needed = ("converted", "elapsed")
    if not all(c in outcomes.columns for c in needed):
        raise InputError("--outcomes", "expected a reward column, or converted and elapsed (and delay) columns")
    if joined["converted"].isna().any():
        i = int(np.flatnonzero(joined["converted"].isna().to_numpy())[0])
        raise InputError("--outcomes", f"no outcome for {key} {joined[key].iloc[i]!r}")
    delay = joined["delay"] if "delay" in joined.columns else None
    model = ExponentialDelayModel().fit(joined["elapsed"], joined["converted"].astype(int), delay)
    console.print(f"delayed conversions: naive rate {model.naive_rate_[0]:.4g}, corrected "
                  f"{model.conversion_rate_[0]:.4g}, mean delay {model.mean_delay_:.3g}")
    return model.eventual_conversion_probability(joined["elapsed"], joined["converted"].astype(int))


def run_traces_cmd(traces_path: Path, target_path: Optional[Path], outcomes_path: Optional[Path],
                   out: Optional[Path], alpha: float, ci: str, n_bootstrap: int, seed: int, quiet: bool):
    from optimizer.evaluation.traces import evaluate_traces, read_decision_traces

    if target_path is None:
        raise InputError("--target", "evaluating traces needs the target policy: a table with "
                                     "(decision_id | unit_id), action, probability")
    traces = read_decision_traces(traces_path)
    target = read_table(target_path, "--target")
    rewards = _rewards_from_outcomes(traces, read_table(outcomes_path, "--outcomes")) if outcomes_path else None
    result = evaluate_traces(traces, target, rewards, alpha=alpha, ci=ci, n_bootstrap=n_bootstrap,
                             random_state=seed)
    if out is not None:
        if out.suffix.lower() == ".md":
            write_text(_traces_markdown(result, traces_path), out)
        else:
            write_table(result.table, out)
    if not quiet:
        t = Table(title=f"Off-policy value of the target policy ({traces.n:,} decisions)", title_justify="left")
        for col in ("estimator", "estimate", f"{100 * (1 - alpha):.0f}% CI", "ESS", "mean weight"):
            t.add_column(col, justify="left" if col == "estimator" else "right")
        for r in result.table.itertuples():
            t.add_row(r.method, f"{r.value:.6g}", f"[{r.ci_low:.6g}, {r.ci_high:.6g}]", f"{r.ess:,.0f}",
                      "—" if np.isnan(r.mean_weight) else f"{r.mean_weight:.3f}")
        lv = result.logging_value
        t.add_row("logging policy (on-policy)", f"{lv.value:.6g}", f"[{lv.ci[0]:.6g}, {lv.ci[1]:.6g}]",
                  f"{lv.n:,}", "—")
        console.print(t)
        if result.support_gap is not None:
            console.print(f"target mass outside the logging policy's support: {result.support_gap:.3g}"
                          + (" (IPS/DR are biased by it)" if result.support_gap > 0 else ""))
        if out is not None:
            console.print(f"wrote the table to [bold]{out}[/]")
    return result


def _traces_markdown(result, path: Path) -> str:
    lines = [f"# Off-policy evaluation of `{path.name}`", "",
             "| estimator | estimate | CI low | CI high | ESS | mean weight |", "|---|---|---|---|---|---|"]
    for r in result.table.itertuples():
        lines.append(f"| {r.method} | {r.value:.6g} | {r.ci_low:.6g} | {r.ci_high:.6g} | {r.ess:,.0f} | "
                     f"{r.mean_weight:.3f} |")
    lv = result.logging_value
    lines.append(f"| logging policy (on-policy) | {lv.value:.6g} | {lv.ci[0]:.6g} | {lv.ci[1]:.6g} | {lv.n:,} | — |")
    return "\n".join(lines) + "\n"


@app.command("evaluate")
def evaluate_cmd(
    open_bandit: bool = typer.Option(False, "--open-bandit",
                                     help="Real-data check on the shipped Open Bandit sample (both directions)."),
    traces: Optional[Path] = typer.Option(None, "--traces", help="Decision traces (JSON lines) of the logging policy."),
    target: Optional[Path] = typer.Option(None, "--target",
                                          help="Target policy table: decision_id|unit_id, action, probability."),
    outcomes: Optional[Path] = typer.Option(None, "--outcomes",
                                            help="Outcomes: decision_id|unit_id and reward, or converted, elapsed, "
                                                 "delay (corrected for open windows)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table (.md, .csv or .parquet); "
                                                           "--open-bandit default: benchmarks/open_bandit.md."),
    data: Optional[Path] = typer.Option(None, "--data", help="Open Bandit data directory (default data/open_bandit)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Intervals have level 1 - alpha."),
    ci: str = typer.Option("bootstrap", "--ci", help="Interval for --traces: normal or bootstrap."),
    n_bootstrap: int = typer.Option(1000, "--n-bootstrap", help="Bootstrap replicates."),
    n_sim: int = typer.Option(100_000, "--n-sim", help="Monte Carlo draws for the BTS action distribution."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", help="No summary output."),
) -> None:
    """Estimate a policy's value from another policy's logs (IPS, SNIPS, DM, DR, switch-DR)."""
    if open_bandit == (traces is not None):
        raise InputError("--open-bandit", "give exactly one of --open-bandit or --traces")
    if not 0.0 < alpha < 1.0:
        raise InputError("--alpha", f"expected a number in (0, 1), got {alpha}")
    if n_bootstrap < 10:
        raise InputError("--n-bootstrap", f"expected at least 10 replicates, got {n_bootstrap}")
    if n_sim < 1000:
        raise InputError("--n-sim", f"expected at least 1000 draws, got {n_sim}")
    if out is not None:
        check_output_path(out, "--out", OUT_SUFFIXES)
    if open_bandit:
        run_open_bandit_cmd(out if out is not None else _default_open_bandit_out(), data, alpha, n_bootstrap, n_sim,
                            seed, quiet)
    else:
        run_traces_cmd(traces, target, outcomes, out, alpha, ci, n_bootstrap, seed, quiet)
