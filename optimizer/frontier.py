"""What-if curves: re-solve across a grid with warm starts.

* :func:`fairness_frontier` — objective vs Ψ as the fairness penalty γ grows;
* :func:`budget_frontier` — objective vs budget;
* :func:`capacity_frontier` — objective vs the capacity of one channel.

Each point is a full solve; the dual method starts from the previous
point's prices (``warm_start``), which is what makes a 20-point grid cheap.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem, utility_sum
from formulations.errors import InputError
from optimizer.api import solve


def _solve_grid(problems: list[PlanningProblem], method: str, rel_gap: float, time_limit: float | None,
                progress: bool, label: str, values: Sequence[float]):
    from rich.progress import Progress

    plans = []
    warm = None
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=len(problems))
        for problem in problems:
            t0 = time.perf_counter()
            plan = solve(problem, method=method, rel_gap=rel_gap, time_limit=time_limit,
                         warm_start=warm if method == "dual" else None)
            plan.info["frontier_time"] = time.perf_counter() - t0
            if plan.duals is not None:
                warm = plan.duals
            plans.append(plan)
            bar.advance(task)
    return plans


def fairness_frontier(problem: PlanningProblem, gammas: Sequence[float], method: str = "dual",
                      rel_gap: float = 1e-4, time_limit: float | None = None, progress: bool = False) -> pd.DataFrame:
    """Objective, utility and Ψ for each fairness penalty γ (the problem must have segments)."""
    if problem.segment is None:
        raise InputError("segment", "a fairness frontier needs customer segments")
    gammas = sorted(float(g) for g in gammas)
    if not gammas or min(gammas) < 0:
        raise InputError("gammas", "expected non-negative penalty values")
    # Ψ is measured with the problem's groups/targets even at γ = 0
    probe = problem.replace(fairness_penalty=1.0)
    problems = [problem.replace(fairness_penalty=g) for g in gammas]
    plans = _solve_grid(problems, method, rel_gap, time_limit, progress, "fairness frontier", gammas)
    rows = []
    for g, plan in zip(gammas, plans):
        psi = probe.fairness.psi(probe.segment_codes, plan.assignment_indices)
        rows.append({"gamma": g, "objective": plan.objective, "utility": utility_sum(problem, plan.assignment_indices),
                     "psi": psi, "bound": plan.bound, "gap": plan.gap, "status": str(plan.status),
                     "time": plan.info["frontier_time"]})
    return pd.DataFrame(rows)


def budget_frontier(problem: PlanningProblem, budgets: Sequence[float], method: str = "dual", rel_gap: float = 1e-4,
                    time_limit: float | None = None, progress: bool = False) -> pd.DataFrame:
    """Objective, spend and budget price for each budget."""
    budgets = sorted(float(b) for b in budgets)
    if not budgets or min(budgets) < 0:
        raise InputError("--budget", "expected non-negative budgets")
    plans = _solve_grid([problem.replace(budget=b) for b in budgets], method, rel_gap, time_limit, progress,
                        "budget frontier", budgets)
    return pd.DataFrame([{"budget": b, "objective": p.objective, "bound": p.bound, "gap": p.gap, "spend": p.spend,
                          "budget_price": (p.duals or {}).get("budget"), "status": str(p.status),
                          "time": p.info["frontier_time"]} for b, p in zip(budgets, plans)])


def capacity_frontier(problem: PlanningProblem, channel: str, factors: Sequence[float], method: str = "dual",
                      rel_gap: float = 1e-4, time_limit: float | None = None, progress: bool = False) -> pd.DataFrame:
    """Objective as the capacity of ``channel`` is scaled by each factor (every day alike)."""
    names = list(problem.channel_names)
    if channel not in names:
        raise InputError("--channel", f"unknown channel {channel!r}; channels are {', '.join(names)}")
    m = names.index(channel)
    factors = sorted(float(f) for f in factors)
    problems = []
    for f in factors:
        cap = problem.capacity.copy()
        cap[m] = np.floor(cap[m] * f)
        problems.append(problem.replace(capacity=cap))
    plans = _solve_grid(problems, method, rel_gap, time_limit, progress, "capacity frontier", factors)
    return pd.DataFrame([{"factor": f, "capacity": float(pr.capacity[m].sum()), "objective": p.objective,
                          "bound": p.bound, "gap": p.gap, "used": int(p.usage()[m].sum()), "status": str(p.status),
                          "time": p.info["frontier_time"]} for f, pr, p in zip(factors, problems, plans)])


def plot_frontier(df: pd.DataFrame, x: str, y: str, path, title: str) -> None:
    """Line plot of a frontier, written atomically (PNG/SVG by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optimizer.io import write_with

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(df[x], df[y], marker="o")
    for _, row in df.iterrows():
        if "gamma" in df.columns:
            ax.annotate(f"γ={row['gamma']:g}", (row[x], row[y]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fmt = str(path).rsplit(".", 1)[-1]
    write_with(lambda p: fig.savefig(p, format=fmt, bbox_inches="tight"), path)
    plt.close(fig)


def parse_grid(text: str, field: str) -> list[float]:
    """``"0:200000:20"`` (start:stop:points) or ``"1,2,5"`` into numbers."""
    try:
        if ":" in text:
            a, b, k = text.split(":")
            return list(np.linspace(float(a), float(b), int(k)))
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(field, f"expected start:stop:points or a comma-separated list, got {text!r}") from None
