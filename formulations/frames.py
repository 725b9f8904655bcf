"""Long tables -> :class:`~formulations.assignment.PlanningProblem`.

The input schema is documented in ``data/README.md``:

* ``scores``: one row per allowed contact with columns ``customer_id``,
  ``channel``, ``day``, ``utility`` and optionally ``eligible``. A
  (customer, channel, day) triple without a row is not allowed.
* ``channels``: one row per channel with ``channel``, ``cost`` and either
  ``capacity`` (every day) or ``capacity_<day>`` per day (per-day columns
  override ``capacity``).
* ``customers`` (optional): ``customer_id`` and ``max_contacts``.

Days are weekday names (``Mon``..``Sun``, the whole week is the horizon),
integers (the horizon is every integer from the smallest to the largest) or
ISO dates (every date from the first to the last): the horizon is a
contiguous calendar so that the spacing rule measures real days.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from formulations.errors import InputError

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAY_INDEX = {d.lower(): i for i, d in enumerate(WEEKDAYS)}
_WEEKDAY_INDEX.update({full: i for i, full in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))})


def _require_columns(table: str, df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(table, f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")


def _numeric_column(table: str, df: pd.DataFrame, column: str, *, nonnegative: bool = False) -> np.ndarray:
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if nonnegative:
        bad |= values < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        want = "a non-negative finite number" if nonnegative else "a finite number"
        raise InputError(f"{table}.{column}", f"expected {want}, got {df[column].iloc[i]!r} in row {i + 1}")
    return values


def day_axis(values: pd.Series, day_order: Sequence[Any] | None = None) -> tuple[list[str], np.ndarray]:
    """Map the ``day`` column to 0-based day indices on a contiguous horizon.

    Returns the day labels of the horizon and the index of every row.
    """
    if day_order is not None:
        labels = [str(d) for d in day_order]
        pos = {d: i for i, d in enumerate(labels)}
        idx = values.astype(str).map(pos)
        if idx.isna().any():
            i = int(np.flatnonzero(idx.isna().to_numpy())[0])
            raise InputError("scores.day", f"expected one of {labels}, got {values.iloc[i]!r} in row {i + 1}")
        return labels, idx.to_numpy(dtype=np.int64)
    uniq = pd.unique(values)
    as_str = pd.Series(uniq).astype(str).str.strip().str.lower()
    if as_str.isin(list(_WEEKDAY_INDEX)).all():
        mapping = dict(zip(uniq, as_str.map(_WEEKDAY_INDEX)))
        return list(WEEKDAYS), values.map(mapping).to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(pd.Series(uniq), errors="coerce")
    if numeric.notna().all() and (numeric == np.round(numeric)).all():
        lo, hi = int(numeric.min()), int(numeric.max())
        if hi - lo > 3660:
            raise InputError("scores.day", f"expected a horizon of at most 3661 days, got days {lo}..{hi}")
        idx = pd.to_numeric(values).to_numpy(dtype=np.int64) - lo
        return [str(d) for d in range(lo, hi + 1)], idx
    dates = pd.to_datetime(pd.Series(uniq), errors="coerce", format="ISO8601")
    if dates.notna().all():
        first, last = dates.min().normalize(), dates.max().normalize()
        if (last - first).days > 3660:
            raise InputError("scores.day", "expected a horizon of at most 3661 days")
        horizon = pd.date_range(first, last, freq="D")
        mapping = dict(zip(uniq, (dates.dt.normalize() - first).dt.days))
        return [d.strftime("%Y-%m-%d") for d in horizon], values.map(mapping).to_numpy(dtype=np.int64)
    bad = next(u for u, d, x in zip(uniq, dates, numeric) if pd.isna(d) and pd.isna(x))
    raise InputError("scores.day", f"expected weekday names (Mon..Sun), integers or ISO dates, got {bad!r}")


def problem_from_frames(cls: type, scores: pd.DataFrame, channels: pd.DataFrame, *,
                        budget: float | None = None, max_contacts: int | None = None,
                        min_gap_days: int = 1, customers: pd.DataFrame | None = None,
                        day_order: Sequence[Any] | None = None, dtype: Any = np.float64, **extra: Any):
    """Assemble a problem from the long tables described in the module docstring."""
    if not isinstance(scores, pd.DataFrame) or len(scores) == 0:
        raise InputError("scores", "expected a table with at least one row")
    if not isinstance(channels, pd.DataFrame) or len(channels) == 0:
        raise InputError("channels", "expected a table with at least one channel row")
    _require_columns("scores", scores, ["customer_id", "channel", "day", "utility"])
    _require_columns("channels", channels, ["channel", "cost"])

    channel_names = channels["channel"].astype(str).tolist()
    dup = pd.Series(channel_names).duplicated()
    if dup.any():
        raise InputError("channels.channel", f"expected unique channel names, got {channel_names[int(np.flatnonzero(dup)[0])]!r} twice")
    cost = _numeric_column("channels", channels, "cost", nonnegative=True)

    chan_pos = {c: i for i, c in enumerate(channel_names)}
    chan_idx = scores["channel"].astype(str).map(chan_pos)
    if chan_idx.isna().any():
        i = int(np.flatnonzero(chan_idx.isna().to_numpy())[0])
        raise InputError("scores.channel", f"unknown channel {scores['channel'].iloc[i]!r} in row {i + 1}; "
                                           f"channels are {', '.join(channel_names)}")
    chan_idx = chan_idx.to_numpy(dtype=np.int64)
    utility = _numeric_column("scores", scores, "utility")
    day_labels, day_idx = day_axis(scores["day"], day_order)
    cust_idx, customer_ids = pd.factorize(scores["customer_id"], sort=False)
    if (cust_idx < 0).any():
        i = int(np.flatnonzero(cust_idx < 0)[0])
        raise InputError("scores.customer_id", f"expected an id, got a missing value in row {i + 1}")
    n, M, T = len(customer_ids), len(channel_names), len(day_labels)

    key = (cust_idx.astype(np.int64) * M + chan_idx) * T + day_idx
    dup = pd.Series(key).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError("scores", f"duplicate (customer_id, channel, day) = ({scores['customer_id'].iloc[i]!r}, "
                                   f"{scores['channel'].iloc[i]!r}, {scores['day'].iloc[i]!r}) in row {i + 1}")
    if "eligible" in scores.columns:
        elig = scores["eligible"]
        if elig.dtype != bool:
            mapped = elig.astype(str).str.strip().str.lower().map(
                {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False, "no": False})
            if mapped.isna().any():
                i = int(np.flatnonzero(mapped.isna().to_numpy())[0])
                raise InputError("scores.eligible", f"expected true/false, got {elig.iloc[i]!r} in row {i + 1}")
            elig = mapped.astype(bool)
        utility = np.where(elig.to_numpy(dtype=bool), utility, -np.inf)

    u = np.full((n, M, T), -np.inf, dtype=dtype)
    u.reshape(-1)[key] = utility

    capacity = np.full((M, T), np.nan)
    if "capacity" in channels.columns:
        capacity[:] = _numeric_column("channels", channels, "capacity", nonnegative=True)[:, None]
    for t, label in enumerate(day_labels):
        col = f"capacity_{label}"
        if col in channels.columns:
            capacity[:, t] = _numeric_column("channels", channels, col, nonnegative=True)
    if np.isnan(capacity).any():
        t = int(np.flatnonzero(np.isnan(capacity).any(axis=0))[0])
        raise InputError("channels", f"expected a 'capacity' column or a 'capacity_{day_labels[t]}' column "
                                     f"for every day of the horizon ({', '.join(day_labels)})")

    limits: Any = 2 if max_contacts is None else max_contacts
    if customers is not None and len(customers) and "max_contacts" in customers.columns:
        _require_columns("customers", customers, ["customer_id", "max_contacts"])
        per = pd.Series(customers["max_contacts"].to_numpy(), index=customers["customer_id"].to_numpy())
        if per.index.duplicated().any():
            raise InputError("customers.customer_id", "expected unique customer ids")
        mapped = per.reindex(customer_ids)
        fallback = limits if max_contacts is not None else 2
        limits = mapped.fillna(fallback).to_numpy()

    if customers is not None and len(customers) and "segment" in customers.columns and "segment" not in extra:
        _require_columns("customers", customers, ["customer_id", "segment"])
        seg = pd.Series(customers["segment"].astype(str).to_numpy(), index=customers["customer_id"].to_numpy())
        if seg.index.duplicated().any():
            raise InputError("customers.customer_id", "expected unique customer ids")
        extra["segment"] = seg.reindex(customer_ids).fillna("unknown").to_numpy()
    return cls(utility=u, capacity=capacity, cost=cost, budget=budget, max_contacts=limits,
               min_gap_days=min_gap_days, customer_ids=list(customer_ids), channel_names=channel_names,
               day_labels=day_labels, **extra)
