r"""From a Customer 360 build to a :class:`~formulations.assignment.PlanningProblem`.

``load_eligibility(out_dir)`` reads the ``eligible`` mask (n, M, T) for the
planner's channels ``("email", "push", "sms", "call", "branch")`` in that
order, plus the contacts each customer has left under the contact cap.

``planning_problem(out_dir)`` builds utilities from the latest feature
period with a deliberately simple, documented rule (the response/uplift
models of a later stage replace it):

.. math::

    u_{imd} = V \, b_m \, \bigl(1 + \log(1 + z_{i,k(m)})\bigr)\, w_{m,\mathrm{wd}(d)} - c_m

with :math:`z_{i,k}` the decayed activity of the customer's last period
(``decay_digital`` drives email, push and sms, ``decay_call`` the call
channel, ``decay_branch`` the branch channel), :math:`b_m` the channel's
base response rate and :math:`w` the day-of-week effect and :math:`c_m`
the cost of :mod:`optimizer.generate` (``BASE_UPLIFT``, ``DAY_EFFECT``,
``COST``), and :math:`V` a customer value (default 80). Capacities and the
default budget are those of :mod:`optimizer.generate` for *n* customers;
``max_contacts`` is ``min(max_contacts, remaining_contacts)`` per customer.
``customers=[...]`` restricts the problem to a segment of the build.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from formulations.assignment import WEEKDAYS, PlanningProblem
from formulations.c360 import CONTACT_CHANNELS
from formulations.errors import InputError
from optimizer.generate import BASE_UPLIFT, CAPACITY_SHARE, COST, DAY_EFFECT, default_budget

DRIVER = {"email": "decay_digital", "push": "decay_digital", "sms": "decay_digital", "call": "decay_call",
          "branch": "decay_branch"}


def _read(out_dir: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(out_dir) / name
    if not path.is_file():
        raise InputError("OUT_DIR", f"{name} not found in {str(out_dir)!r}: run `contactplan c360 build` first")
    return pd.read_parquet(path, columns=columns)


def load_eligibility(out_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(customer_ids (n,), eligible (n, M, T) bool, remaining_contacts (n,), day labels) of a build."""
    out = Path(out_dir)
    elig = _read(out, "eligibility.parquet")
    days = [c for c in elig.columns if c not in ("customer_id", "channel")]
    customers = _read(out, "customers.parquet", ["customer_id", "remaining_contacts"])
    ids = customers["customer_id"].to_numpy(dtype=object)
    pos = pd.Index(ids).get_indexer(elig["customer_id"])
    ch = pd.Index(CONTACT_CHANNELS).get_indexer(elig["channel"])
    if (pos < 0).any() or (ch < 0).any():
        raise InputError("eligibility.parquet", "rows for unknown customers or channels")
    mask = np.zeros((ids.size, len(CONTACT_CHANNELS), len(days)), dtype=bool)
    mask[pos, ch, :] = elig[days].to_numpy(dtype=bool)
    return ids, mask, customers["remaining_contacts"].to_numpy(dtype=np.int64), days


def simple_utility(latest: pd.DataFrame, day_labels: list[str], value: float = 80.0) -> np.ndarray:
    """The documented rule of the module docstring, (n, M, T) float64, rows in ``latest`` order."""
    weekday = [WEEKDAYS.index(d) if d in WEEKDAYS else dt.date.fromisoformat(d).weekday() for d in day_labels]
    z = np.stack([latest[DRIVER[c]].to_numpy(dtype=np.float64) for c in CONTACT_CHANNELS], axis=1)
    lift = value * BASE_UPLIFT[None, :] * (1.0 + np.log1p(np.maximum(z, 0.0)))
    return lift[:, :, None] * DAY_EFFECT[None, :, weekday] - COST[None, :, None]


def planning_problem(out_dir: str | Path, *, value: float = 80.0, max_contacts: int = 2, min_gap_days: int = 2,
                     budget: float | None | str = "default",
                     customers: Sequence[str] | None = None) -> PlanningProblem:
    """A :class:`PlanningProblem` for the plan week of a build (utility rule of the module docstring).

    Parameters
    ----------
    out_dir : path
        Output directory of ``contactplan c360 build``.
    value : float
        Customer value V of the utility rule.
    max_contacts : int
        Contacts per customer in the week (capped by the contacts left under the contact cap).
    min_gap_days : int
    budget : float, None or "default"
        ``"default"`` uses :func:`optimizer.generate.default_budget`.
    customers : sequence of str, optional
        Plan only these ``customer_id`` values (a segment; capacities and the default budget scale
        with its size). Default: every customer of the build.
    """
    out = Path(out_dir)
    ids, eligible, remaining, days = load_eligibility(out)
    if customers is not None:
        wanted = pd.Index(list(customers))
        pos = pd.Index(ids).get_indexer(wanted)
        if (pos < 0).any():
            raise InputError("customers", f"unknown customer_id {wanted[int(np.flatnonzero(pos < 0)[0])]!r} "
                                          f"(not in {str(out)!r})")
        if wanted.has_duplicates or pos.size == 0:
            raise InputError("customers", "expected a non-empty list of distinct customer ids")
        ids, eligible, remaining = ids[pos], eligible[pos], remaining[pos]
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else {}
    last = manifest.get("grid", {}).get("n_periods")
    feats = _read(out, "features.parquet", ["customer_id", "period", *sorted(set(DRIVER.values()))])
    if last is None:
        last = int(feats["period"].max()) + 1
    latest = feats[feats["period"] == last - 1].set_index("customer_id").reindex(ids).fillna(0.0)
    utility = simple_utility(latest, days, value)
    n, T = ids.size, len(days)
    weekday = [WEEKDAYS.index(d) if d in WEEKDAYS else dt.date.fromisoformat(d).weekday() for d in days]
    capacity = np.floor(CAPACITY_SHARE[:, weekday] * n)
    if isinstance(budget, str):
        budget = default_budget(n)
    limits = np.minimum(int(max_contacts), remaining)
    return PlanningProblem(utility=utility, capacity=capacity, cost=COST, budget=budget, max_contacts=limits,
                           min_gap_days=min_gap_days, eligible=eligible, customer_ids=list(ids),
                           channel_names=CONTACT_CHANNELS, day_labels=days if T else None)
