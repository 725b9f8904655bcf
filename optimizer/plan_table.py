"""Plan files back into :class:`~optimizer.plan.Plan` objects.

``contactplan plan --out plan.csv`` writes one row per contact with columns
``customer_id, channel, day, utility, cost``. :func:`plan_from_table` maps
such a table back onto the (customer, channel, day) indices of a problem,
checks it and recomputes its value from the problem's utilities:

* every ``customer_id``, ``channel`` and ``day`` must exist in the problem
  (ids are matched as given, then as text, so ``"17"`` and ``17`` agree);
* no (customer, channel, day) may appear twice;
* when the table has a ``utility`` column it must agree with the problem's
  utility (relative tolerance 1e-6) — a plan made from other scores is
  rejected instead of being silently re-valued;
* with ``check=True`` the plan must pass :func:`optimizer.verify.verify`
  (capacity, budget, contact limit, spacing, consent, segment bounds).

The objective is recomputed as
:math:`\\sum_{(i,m,t) \\in \\text{plan}} u_{imt} - γ Ψ` (:func:`formulations.assignment.plan_value`).
A plan read from a file carries no optimality certificate: ``bound``,
``gap`` and ``duals`` are None and the status is ``feasible``; the report
and ``explain`` obtain prices and a bound by re-solving (see
:mod:`optimizer.explain`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem, plan_value, sort_assignments
from formulations.errors import InputError
from optimizer.plan import Plan
from solvers.base import Status

UTILITY_RTOL = 1e-6


def _lookup(values: pd.Series, labels: Any, field: str, what: str) -> np.ndarray:
    """Positions of ``values`` in ``labels``; exact match first, then as text."""
    labels = list(labels)
    values = pd.Series(values).reset_index(drop=True)
    try:
        pos = values.map(pd.Series(np.arange(len(labels)), index=pd.Index(labels, dtype=object)))
    except (TypeError, pd.errors.InvalidIndexError):
        pos = pd.Series(np.nan, index=values.index)
    if pos.isna().any():
        as_text = pd.Series(np.arange(len(labels)), index=pd.Index([str(v) for v in labels]))
        if as_text.index.has_duplicates:
            as_text = as_text[~as_text.index.duplicated()]
        pos = pos.fillna(values.astype(str).map(as_text))
    if pos.isna().any():
        row = int(np.flatnonzero(pos.isna().to_numpy())[0])
        raise InputError(field, f"unknown {what} {values.iloc[row]!r} in row {row + 1} (not in the problem's {what}s)")
    return pos.to_numpy(dtype=np.int64)


def customer_index(problem: PlanningProblem, customer_id: Any, field: str = "CUSTOMER_ID") -> int:
    """0-based index of ``customer_id`` in the problem (matched as given, then as text)."""
    try:
        return int(_lookup(pd.Series([customer_id]), problem.customer_ids, field, "customer")[0])
    except InputError:
        raise InputError(field, f"unknown customer {customer_id!r} (not in the scores)") from None


PLAN_COLUMNS = ("customer_id", "channel", "day")


def require_columns(df: pd.DataFrame, field: str, columns: tuple[str, ...] = PLAN_COLUMNS) -> pd.DataFrame:
    """``df`` itself if it is a table with ``columns``; else an :class:`InputError` naming ``field``."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(field, f"expected a table, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(field, f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")
    return df


def table_indices(problem: PlanningProblem, df: pd.DataFrame, field: str = "plan") -> np.ndarray:
    """(k, 3) int64 (customer, channel, day) indices of a plan table; no checks beyond the lookup."""
    require_columns(df, field)
    if len(df) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    i = _lookup(df["customer_id"], problem.customer_ids, f"{field}.customer_id", "customer")
    m = _lookup(df["channel"].astype(str), problem.channel_names, f"{field}.channel", "channel")
    t = _lookup(df["day"], problem.day_labels, f"{field}.day", "day")
    return np.stack([i, m, t], axis=1)


def plan_from_table(problem: PlanningProblem, df: pd.DataFrame, *, field: str = "plan", check: bool = True) -> Plan:
    """Rebuild a :class:`Plan` for ``problem`` from a plan table (see the module docstring).

    Parameters
    ----------
    problem : PlanningProblem
        The week the plan was made for.
    df : pandas.DataFrame
        Columns ``customer_id``, ``channel``, ``day`` (``utility`` and ``cost``
        optional; ``utility`` is checked when present).
    field : str
        Name used in error messages (e.g. the CLI argument ``PLAN_FILE``).
    check : bool
        Reject plans that violate a constraint of the problem.

    Returns
    -------
    Plan
        ``method="file"``, status ``feasible``, objective recomputed, no bound,
        gap or duals.

    Raises
    ------
    InputError
        Unknown ids, duplicate contacts, utilities that disagree with the
        problem, or (with ``check``) a constraint violation.
    """
    idx = table_indices(problem, df, field)
    if idx.shape[0]:
        n, M, T = problem.shape
        key = (idx[:, 0] * M + idx[:, 1]) * T + idx[:, 2]
        dup = pd.Series(key).duplicated().to_numpy()
        if dup.any():
            r = int(np.flatnonzero(dup)[0])
            raise InputError(field, f"contact ({df['customer_id'].iloc[r]!r}, {df['channel'].iloc[r]!r}, "
                                    f"{df['day'].iloc[r]!r}) is listed twice (row {r + 1})")
        if "utility" in df.columns:
            given = pd.to_numeric(df["utility"], errors="coerce").to_numpy(dtype=np.float64)
            actual = problem.utility[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float64)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(given - actual) <= UTILITY_RTOL * np.maximum(1.0, np.abs(actual)))
            bad &= np.isfinite(actual)       # contacts without consent are reported by verify below
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise InputError(f"{field}.utility", f"row {r + 1} says {given[r]!r} but the scores give "
                                                     f"{actual[r]:.10g}; was the plan made from these scores?")
    idx = sort_assignments(idx)
    if check:
        from optimizer.verify import verify

        report = verify(problem, idx)
        if not report.ok:
            more = f" (and {len(report.violations) - 1} more)" if len(report.violations) > 1 else ""
            raise InputError(field, f"the plan is not feasible for this problem: {report.violations[0]}{more}")
    return Plan(problem=problem, assignment_indices=idx, objective=plan_value(problem, idx), bound=None, gap=None,
                status=Status.FEASIBLE, wall_time=0.0, method="file", info={"source": "table"})
