"""Export a weekly plan instance for other solvers: MPS/LP (the exact model) or Parquet + JSON (the data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem, build_model
from formulations.errors import InputError
from optimizer.io import atomic_path, write_json


def export_model(problem: PlanningProblem, path: str | Path) -> Path:
    """Write the MIP as MPS or LP (by extension), from the same sparse model the HiGHS backend passes.

    The file is written by HiGHS's own model writer, so external solvers
    (Gurobi, CPLEX, SCIP, CP-SAT, ...) read exactly the model contactplan solves.
    """
    import highspy

    from solvers.highs_direct import quiet_banner, to_highs

    target = Path(path)
    if target.suffix.lower() not in (".mps", ".lp"):
        raise InputError("path", f"expected a file name ending in .mps or .lp, got {str(target)!r}")
    if not target.parent.exists():
        raise InputError("path", f"directory {str(target.parent)!r} does not exist")
    quiet_banner()
    model = build_model(problem)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(to_highs(model))
    names = [f"x_{i}_{m}_{t}" for i, m, t in model.columns.tolist()]
    for j, name in enumerate(names):
        h.passColName(j, name)
    kinds = ["cap", "budget", "limit", "win"]
    for r, (kind, key) in enumerate(zip(model.row_kind.tolist(), model.row_key.tolist())):
        h.passRowName(r, f"{kinds[kind]}_{key[0]}_{key[1]}")
    with atomic_path(target) as tmp:
        real = tmp.with_suffix(target.suffix)       # HiGHS picks the format from the extension
        h.writeModel(str(real))
        real.replace(tmp)
    return target


def export_data(problem: PlanningProblem, directory: str | Path) -> Path:
    """Utilities as Parquet (one row per customer, a column per channel_day) plus limits as JSON."""
    out = Path(directory)
    if not out.parent.exists():
        raise InputError("directory", f"directory {str(out.parent)!r} does not exist")
    out.mkdir(exist_ok=True)
    n, M, T = problem.shape
    cols = [f"{c}_{d}" for c in problem.channel_names for d in problem.day_labels]
    u = problem.utility.reshape(n, M * T)
    df = pd.DataFrame(np.where(np.isfinite(u), u, np.nan), columns=cols)
    df.insert(0, "customer_id", [str(c) for c in problem.customer_ids])
    with atomic_path(out / "utilities.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    limits = problem.max_contacts if np.ndim(problem.max_contacts) == 0 else None
    if limits is None:
        with atomic_path(out / "max_contacts.parquet") as tmp:
            pd.DataFrame({"max_contacts": problem.contact_limits()}).to_parquet(tmp, index=False)
    write_json({"channels": list(problem.channel_names), "days": list(problem.day_labels),
                "capacity": problem.capacity, "cost": problem.cost, "budget": problem.budget,
                "max_contacts": limits, "min_gap_days": problem.min_gap_days}, out / "limits.json")
    return out


def load_data(directory: str | Path) -> PlanningProblem:
    """Read an :func:`export_data` directory back into a problem."""
    d = Path(directory)
    meta = json.loads((d / "limits.json").read_text())
    df = pd.read_parquet(d / "utilities.parquet")
    M, T = len(meta["channels"]), len(meta["days"])
    u = df.drop(columns=["customer_id"]).to_numpy(dtype=np.float64).reshape(len(df), M, T)
    limits = meta["max_contacts"]
    if limits is None:
        limits = pd.read_parquet(d / "max_contacts.parquet")["max_contacts"].to_numpy()
    return PlanningProblem(utility=u, capacity=np.array(meta["capacity"]), cost=np.array(meta["cost"]),
                           budget=meta["budget"], max_contacts=limits, min_gap_days=meta["min_gap_days"],
                           customer_ids=df["customer_id"].tolist(), channel_names=meta["channels"],
                           day_labels=meta["days"])
