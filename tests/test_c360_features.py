"""Grid features (decay, recency, latency cut-off, counts) against a slow pure-Python reference."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations.c360 import GridSpec, decayed_activity, latency_bucket
from formulations.errors import InputError
from optimizer.c360.features import build_features
from tests.c360_helpers import built, days_since

START = dt.date(2026, 1, 5)


def reference_features(events: list[tuple], n_customers: int, grid: GridSpec) -> dict:
    """Slow reference straight from the definitions: cut-offs c_p, visibility t < c_p, the recurrence.

    ``events``: (customer, t_days, type, subtype). Returns {(customer, period): {feature: value}}.
    """
    out = {}
    cut = [(p + 1) * grid.period_days - grid.latency_days for p in range(grid.n_periods)]
    for i in range(n_customers):
        mine = [e for e in events if e[0] == i]
        z = {"digital": 0.0, "call": 0.0, "branch": 0.0, "complaint": 0.0}
        for p in range(grid.n_periods):
            lo = cut[p - 1] if p > 0 else -math.inf
            new = [e for e in mine if lo <= e[1] < cut[p]]          # visible now, not at the last cut-off
            row = {}
            for k in ("digital", "call", "branch"):
                x = sum(1 for e in new if e[2] == k)
                row[f"n_{k}"] = x
                z[k] = grid.decay * z[k] + x
                row[f"decay_{k}"] = z[k]
                seen = [e[1] for e in mine if e[2] == k and e[1] < cut[p]]
                row[f"recency_{k}_days"] = cut[p] - max(seen) if seen else math.nan
            xc = sum(1 for e in new if e[3] == "complaint")
            z["complaint"] = grid.decay * z["complaint"] + xc
            row["n_complaint"], row["decay_complaint"] = xc, z["complaint"]
            calls = [(e[1], e[3]) for e in mine if e[2] == "call" and e[1] < cut[p]]
            row["last_call_outcome"] = max(calls)[1] if calls else None
            out[(i, p)] = row
    return out


def sql_features(events: list[tuple], n_customers: int, grid: GridSpec) -> pd.DataFrame:
    con = duckdb.connect()
    start = dt.datetime.combine(START, dt.time())
    df = pd.DataFrame({
        "customer": np.array([e[0] for e in events], dtype=np.int32),
        "ts": [start + dt.timedelta(microseconds=round(e[1] * 86_400e6)) for e in events],
        "type": [e[2] for e in events], "subtype": [e[3] for e in events],
        "channel": ["phone" if e[2] == "call" else e[2] if e[2] == "branch" else "web" for e in events],
        "value": 1.0,
    })
    con.register("ev", df)
    con.execute("CREATE TABLE events AS SELECT customer, CAST(ts AS TIMESTAMP) AS ts, type, subtype, channel, "
                "value FROM ev")
    con.execute(f"CREATE TABLE customers AS SELECT range::INTEGER AS customer FROM range({n_customers})")
    build_features(con, grid, start.isoformat(sep=" "), contacts=None)
    return con.execute("SELECT * FROM features ORDER BY customer, period").df()


def assert_match(sql: pd.DataFrame, ref: dict) -> None:
    assert len(sql) == len(ref)
    for row in sql.itertuples(index=False):
        want = ref[(row.customer, row.period)]
        for name, value in want.items():
            got = getattr(row, name)
            if name == "last_call_outcome":
                assert (got if isinstance(got, str) else None) == value, (row.customer, row.period, name)
            elif isinstance(value, float) and math.isnan(value):
                assert got is None or math.isnan(got), (row.customer, row.period, name, got)
            else:
                assert got == pytest.approx(value, rel=1e-9, abs=1e-6), (row.customer, row.period, name, got, value)


def test_hand_solved_decay_and_latency():
    # events at day 1 (digital), day 8.5 and 9 (digital), day 12 (call); λ = 0.5, weekly
    events = [(0, 1.0, "digital", "login"), (0, 8.5, "digital", "page_view"), (0, 9.0, "digital", "search"),
              (0, 12.0, "call", "complaint")]
    f = sql_features(events, 1, GridSpec(3, "week", 0.0, 0.5))
    assert f["n_digital"].tolist() == [1, 2, 0]
    assert f["decay_digital"].tolist() == pytest.approx([1.0, 2.5, 1.25])
    assert f["recency_digital_days"].tolist() == pytest.approx([6.0, 5.0, 12.0])
    assert f["decay_complaint"].tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert f["last_call_outcome"].tolist()[1:] == ["complaint", "complaint"]
    # latency 3 days: cut-offs 4, 11, 18 -> the call (day 12) is only visible in period 2
    g = sql_features(events, 1, GridSpec(3, "week", 3.0, 0.5))
    assert g["n_digital"].tolist() == [1, 2, 0]
    assert g["n_call"].tolist() == [0, 0, 1]
    assert g["recency_digital_days"].tolist() == pytest.approx([3.0, 2.0, 9.0])
    assert g["as_of"].dt.day.tolist() == [9, 16, 23]            # 5 Jan + 4, 11, 18 days
    # latency 6.5 days: cut-offs 0.5, 7.5, 14.5 -> day 1 moves to period 1, days 8.5 and 9 to period 2
    h = sql_features(events, 1, GridSpec(3, "week", 6.5, 0.5))
    assert h["n_digital"].tolist() == [0, 1, 2]
    assert h["decay_digital"].tolist() == pytest.approx([0.0, 1.0, 2.5])


event_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.floats(0, 20.999, allow_nan=False),
              st.sampled_from([("digital", "login"), ("digital", "page_view"), ("call", "complaint"),
                               ("call", "resolved"), ("call", "sale"), ("branch", "complaint"),
                               ("branch", "transaction")])),
    max_size=25)


@settings(max_examples=25, deadline=None)
@given(events=event_strategy, granularity=st.sampled_from(["week", "day"]),
       latency=st.sampled_from([0.0, 1.0, 2.5, 6.0]), decay=st.sampled_from([1.0, 0.8, 0.5]))
def test_sql_features_match_reference(events, granularity, latency, decay):
    events = [(i, round(t, 4), k, s) for i, t, (k, s) in events]
    n_periods = 3 if granularity == "week" else 21
    grid = GridSpec(n_periods, granularity, latency, decay)
    assert_match(sql_features(events, 3, grid), reference_features(events, 3, grid))


@pytest.mark.parametrize("granularity,latency", [("week", 0.0), ("day", 1.5)])
def test_built_features_match_reference_on_generated_sample(granularity, latency):
    out, result = built(granularity, latency)
    ev = pd.read_parquet(out / "events.parquet")
    sample = sorted(ev["customer_id"].drop_duplicates().sample(25, random_state=1))
    ev = ev[ev["customer_id"].isin(sample)]
    index = {c: i for i, c in enumerate(sample)}
    t = days_since(ev["ts"], START)
    events = list(zip(ev["customer_id"].map(index), t, ev["type"].astype(str), ev["subtype"].astype(str)))
    ref = reference_features(events, len(sample), result.grid)
    f = pd.read_parquet(out / "features.parquet")
    f = f[f["customer_id"].isin(sample)].assign(customer=lambda d: d["customer_id"].map(index))
    assert len(f) == len(sample) * result.grid.n_periods
    assert_match(f, ref)


def test_reference_helpers_and_validation():
    x = np.array([[1.0, 0.0, 2.0, 0.0]])
    assert decayed_activity(x, 0.5).tolist() == [[1.0, 0.5, 2.25, 1.125]]
    assert latency_bucket(np.array([0.0, 6.99, 7.0, 4.5]), 7, 2.5).tolist() == [0, 1, 1, 1]
    with pytest.raises(InputError, match="decay"):
        GridSpec(3, "week", 0.0, 1.5)
    with pytest.raises(InputError, match="decay"):
        GridSpec(2000, "day", 0.0, 0.5)             # λ^{-P} would overflow the closed form
    with pytest.raises(InputError, match="granularity"):
        GridSpec(3, "month")
    with pytest.raises(InputError, match="latency_days"):
        GridSpec(3, "week", -1.0)
