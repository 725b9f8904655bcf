"""The :class:`Plan` a solve returns: assignments plus the numbers that certify them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem
from solvers.base import Status


@dataclass(eq=False)
class Plan:
    """A weekly contact plan.

    Attributes
    ----------
    assignment_indices : ndarray (k, 3) int64
        Chosen contacts as 0-based (customer, channel, day) rows, sorted by
        customer then day.
    objective : float
        Sum of the utilities of the chosen contacts.
    bound : float or None
        Proven upper bound on the optimum (None for heuristics).
    gap : float or None
        ``(bound - objective) / |bound|``.
    status : Status
        ``optimal``, ``feasible``, ``time_limit``, ``iteration_limit`` or ``error``.
    wall_time : float
        Seconds for the whole solve (model build included).
    duals : dict or None
        Shadow prices ``{"capacity": (M, T) array, "budget": float}`` when the
        method provides them.
    method : str
        The backend that produced the plan.
    """

    problem: PlanningProblem = field(repr=False)
    assignment_indices: np.ndarray = field(repr=False)
    objective: float
    bound: float | None
    gap: float | None
    status: Status
    wall_time: float
    method: str
    duals: dict | None = field(default=None, repr=False)
    iterations: int = 0
    build_time: float = 0.0
    solve_time: float = 0.0
    message: str = ""
    info: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ contents
    @property
    def n_contacts(self) -> int:
        return int(self.assignment_indices.shape[0])

    @property
    def spend(self) -> float:
        idx = self.assignment_indices
        return float(self.problem.cost[idx[:, 1]].sum()) if idx.size else 0.0

    @cached_property
    def assignments(self) -> pd.DataFrame:
        """One row per contact: customer_id, channel, day, utility, cost."""
        idx = self.assignment_indices
        p = self.problem
        ids = np.asarray(p.customer_ids, dtype=object)
        return pd.DataFrame({
            "customer_id": ids[idx[:, 0]] if idx.size else np.array([], dtype=object),
            "channel": np.asarray(p.channel_names, dtype=object)[idx[:, 1]],
            "day": np.asarray(p.day_labels, dtype=object)[idx[:, 2]],
            "utility": p.utility[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float64),
            "cost": p.cost[idx[:, 1]],
        })

    @cached_property
    def fairness(self) -> "FairnessReport | None":
        """Segment rates, targets, Ψ and the max disparity (None without segments)."""
        return fairness_report(self.problem, self.assignment_indices)

    def usage(self) -> np.ndarray:
        """(M, T) contacts per channel and day."""
        M, T = self.problem.n_channels, self.problem.n_days
        used = np.zeros((M, T), dtype=np.int64)
        idx = self.assignment_indices
        if idx.size:
            np.add.at(used, (idx[:, 1], idx[:, 2]), 1)
        return used

    @property
    def utilization(self) -> pd.DataFrame:
        """Channel x day table with columns used, capacity and share (used / capacity)."""
        p = self.problem
        used = self.usage()
        index = pd.MultiIndex.from_product([list(p.channel_names), list(p.day_labels)], names=["channel", "day"])
        cap = p.capacity.ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cap > 0, used.ravel() / np.where(cap > 0, cap, 1), np.nan)
        return pd.DataFrame({"used": used.ravel(), "capacity": cap, "share": share}, index=index)

    def channel_summary(self) -> pd.DataFrame:
        """Per channel: contacts, spend, value."""
        p = self.problem
        idx = self.assignment_indices
        M = p.n_channels
        contacts = np.bincount(idx[:, 1], minlength=M) if idx.size else np.zeros(M, np.int64)
        value = (np.bincount(idx[:, 1], weights=p.utility[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float64),
                             minlength=M) if idx.size else np.zeros(M))
        return pd.DataFrame({"contacts": contacts, "spend": contacts * p.cost, "value": value},
                            index=pd.Index(list(p.channel_names), name="channel"))

    def summary(self) -> dict:
        """The headline numbers as a plain dict."""
        return {"method": self.method, "status": str(self.status), "objective": self.objective,
                "bound": self.bound, "gap": self.gap, "contacts": self.n_contacts, "spend": self.spend,
                "budget": self.problem.budget, "wall_time": self.wall_time, "iterations": self.iterations}


@dataclass
class FairnessReport:
    """Segment contact rates of a plan (``plan.fairness``).

    Attributes
    ----------
    table : DataFrame
        One row per (segment, channel group): customers, contacts, rate,
        target, disparity (rate - target).
    psi : float
        Ψ = Σ w_s (rate - target)² over the penalised groups.
    max_disparity : float
        Largest |rate - target|.
    bounds : DataFrame
        One row per hard segment bound: label, value, limit, satisfied.
    """

    table: pd.DataFrame
    psi: float
    max_disparity: float
    bounds: pd.DataFrame


def fairness_report(problem: PlanningProblem, indices: np.ndarray) -> FairnessReport | None:
    f = problem.fairness
    if f is None:
        return None
    seg = problem.segment_codes
    rows = []
    names = [", ".join(c for c, ok in zip(problem.channel_names, g) if ok) for g in f.groups]
    if f.groups.shape[0] == 1 and f.groups[0].all():
        names = ["all channels"]
    counts = f.group_counts(seg, indices, f.groups)
    n = problem.n_customers
    for g, gname in enumerate(names):
        overall = counts[:, g].sum() / n
        for s, label in enumerate(problem.segment_labels):
            p = g * f.n_segments + s
            target = overall if problem.segment_targets is None else f.pen_const[p]
            rate = counts[s, g] / f.segment_size[s]
            rows.append({"segment": label, "channels": gname, "customers": int(f.segment_size[s]),
                         "contacts": int(counts[s, g]), "rate": rate, "target": target, "disparity": rate - target})
    table = pd.DataFrame(rows)
    values = f.row_values(seg, indices)
    bounds = pd.DataFrame({"bound": f.row_label, "value": values, "limit": f.row_rhs,
                           "satisfied": values <= f.row_rhs + 1e-9})
    return FairnessReport(table, f.psi(seg, indices), float(table.disparity.abs().max()) if len(table) else 0.0, bounds)
