"""Grid features per customer and period from the canonical events (DuckDB window functions).

Implements the "Time grid", "data latency" and "Features" sections of
:mod:`formulations.c360`: every event enters the bucket
:math:`b(e) = \\lfloor (t_e + L)/\\Delta \\rfloor`; per (customer, period) the
counts are aggregated once (``GROUP BY``), the customers × periods grid is
formed by a cross join, and running windows
(``ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`` per customer) give

* decayed activity ``decay_<kind> = λ^p Σ_{q≤p} λ^{-q} x_q`` (= the recurrence
  z_p = λ z_{p-1} + x_p) for kind ∈ {digital, call, branch, complaint};
* recency ``recency_<type>_days = c_p − (last event time < c_p)`` in days;
* ``last_call_outcome``: subtype of the latest visible call.

Columns (one row per customer and period; counts are of the period's bucket):

=========================  ================================================================
``n_digital``              digital events (web, app, e-mail / push engagement)
``n_call``                 inbound calls
``n_branch``               branch visits
``n_complaint``            complaint calls + complaint visits
``n_login``                log-ins (digital engagement)
``n_app``                  app events
``n_campaign_engagement``  e-mail opens / clicks and push opens
``digital_active_days``    distinct calendar (UTC) days with a digital event (a bit mask of
                           day mod 64 per bucket: exact because a bucket spans <= 8 days)
``call_minutes``           total call duration (minutes)
``branch_amount``          total branch transaction amount
``n_contacts``             outbound campaign contacts made (treatment = 1)
``n_responses``            responses to those contacts
``decay_*``                decayed activity (see above)
``recency_*_days``         days since the last visible event (NaN if none)
``last_call_outcome``      latest visible call outcome (NULL if none)
=========================  ================================================================
"""

from __future__ import annotations

import duckdb

from formulations.c360 import GridSpec

COUNT_COLUMNS = ("n_digital", "n_call", "n_branch", "n_complaint", "n_login", "n_app", "n_campaign_engagement",
                 "digital_active_days", "call_minutes", "branch_amount", "n_contacts", "n_responses")
DECAY_KINDS = ("digital", "call", "branch", "complaint")
RECENCY_TYPES = ("digital", "call", "branch")


def _bucket(ts: str, start: str, grid: GridSpec) -> str:
    """SQL for b(e) = floor((t_e + L) / Δ) with t in days since ``start``."""
    return (f"CAST(floor((epoch({ts}) - epoch(TIMESTAMP '{start}') + {float(grid.latency_days)} * 86400.0) "
            f"/ ({grid.period_days} * 86400.0)) AS INTEGER)")


def build_features(con: duckdb.DuckDBPyConnection, grid: GridSpec, start: str, customers: str = "customers",
                   events: str = "events", contacts: str | None = "contact_history",
                   table: str = "features") -> int:
    """Create ``table`` (customer, period, period_start, as_of, counts, decay_*, recency_*, last outcome).

    Parameters
    ----------
    con : duckdb connection holding ``events`` (customer, ts, type, subtype, channel, value),
        ``customers`` (customer 0..n-1) and optionally ``contacts`` (customer, ts, treatment, responded).
    grid : GridSpec
    start : str
        ISO timestamp of the grid start s_0.

    Returns
    -------
    int
        Number of rows (customers × periods).
    """
    P, lam = int(grid.n_periods), float(grid.decay)
    bucket = _bucket("ts", start, grid)
    con.execute(f"""
        CREATE OR REPLACE TABLE feature_agg AS
        SELECT customer, period,
               count(*) FILTER (WHERE type = 'digital') AS n_digital,
               count(*) FILTER (WHERE type = 'call') AS n_call,
               count(*) FILTER (WHERE type = 'branch') AS n_branch,
               count(*) FILTER (WHERE subtype = 'complaint') AS n_complaint,
               count(*) FILTER (WHERE subtype = 'login') AS n_login,
               count(*) FILTER (WHERE channel = 'app') AS n_app,
               count(*) FILTER (WHERE channel IN ('email', 'push')) AS n_campaign_engagement,
               -- distinct calendar days: a bucket spans at most Δ + 1 <= 8 consecutive days, so day % 64 is exact
               bit_count(bit_or(CAST(1 AS UBIGINT) << CAST((epoch_us(ts) // 86400000000) % 64 AS INTEGER))
                   FILTER (WHERE type = 'digital')) AS digital_active_days,
               coalesce(sum(value) FILTER (WHERE type = 'call'), 0) / 60.0 AS call_minutes,
               coalesce(sum(value) FILTER (WHERE type = 'branch'), 0) AS branch_amount,
               max(ts) FILTER (WHERE type = 'digital') AS last_digital,
               max(ts) FILTER (WHERE type = 'call') AS last_call,
               max(ts) FILTER (WHERE type = 'branch') AS last_branch,
               max(struct_pack(t := ts, s := CAST(subtype AS VARCHAR))) FILTER (WHERE type = 'call').s
                   AS last_call_outcome
        FROM (SELECT *, {bucket} AS period FROM {events})
        WHERE period >= 0 AND period < {P}
        GROUP BY customer, period""")
    if contacts is not None:
        con.execute(f"""
            CREATE OR REPLACE TABLE contact_agg AS
            SELECT customer, period, count(*) FILTER (WHERE treatment = 1) AS n_contacts,
                   count(*) FILTER (WHERE treatment = 1 AND responded = 1) AS n_responses
            FROM (SELECT *, {_bucket('ts', start, grid)} AS period FROM {contacts})
            WHERE period >= 0 AND period < {P}
            GROUP BY customer, period""")
    else:
        con.execute("CREATE OR REPLACE TABLE contact_agg (customer INTEGER, period INTEGER, n_contacts BIGINT, "
                    "n_responses BIGINT)")
    counts = ",\n".join(
        f"coalesce(a.{c}, 0){'::DOUBLE' if c in ('call_minutes', 'branch_amount') else '::INTEGER'} AS {c}"
        for c in COUNT_COLUMNS if c not in ("n_contacts", "n_responses"))
    decay_src = {"digital": "a.n_digital", "call": "a.n_call", "branch": "a.n_branch", "complaint": "a.n_complaint"}
    decays = ",\n".join(
        f"pow({lam}, g.period) * sum(coalesce({decay_src[k]}, 0) * pow({lam}, -g.period)) OVER w AS decay_{k}"
        for k in DECAY_KINDS)
    cutoff = (f"(epoch(TIMESTAMP '{start}') + ((g.period + 1) * {grid.period_days} - {float(grid.latency_days)})"
              f" * 86400.0)")
    recency = ",\n".join(
        f"({cutoff} - epoch(max(a.last_{k}) OVER w)) / 86400.0 AS recency_{k}_days" for k in RECENCY_TYPES)
    con.execute(f"""
        CREATE OR REPLACE TABLE {table} AS
        SELECT g.customer, g.period,
               CAST(TIMESTAMP '{start}' + to_days(CAST(g.period * {grid.period_days} AS INTEGER)) AS DATE)
                   AS period_start,
               make_timestamp(CAST({cutoff} * 1000000 AS BIGINT)) AS as_of,
               {counts},
               coalesce(c.n_contacts, 0)::INTEGER AS n_contacts, coalesce(c.n_responses, 0)::INTEGER AS n_responses,
               {decays},
               {recency},
               last_value(a.last_call_outcome IGNORE NULLS) OVER w AS last_call_outcome
        FROM (SELECT cu.customer, p.range::INTEGER AS period FROM {customers} cu CROSS JOIN range({P}) p) g
        LEFT JOIN feature_agg a ON a.customer = g.customer AND a.period = g.period
        LEFT JOIN contact_agg c ON c.customer = g.customer AND c.period = g.period
        WINDOW w AS (PARTITION BY g.customer ORDER BY g.period ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)""")
    con.execute("DROP TABLE feature_agg; DROP TABLE contact_agg")
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# --------------------------------------------------------------------------------------------------------------
# The same features on a Dask cluster: K hash partitions of customers (``customer % K = k``), one task each.
# Features are per customer (every window is PARTITION BY customer), so a partition's rows are exactly the rows
# the in-process build computes for those customers, with the same SQL.
# --------------------------------------------------------------------------------------------------------------

def _sql_path(path) -> str:
    return str(path).replace("'", "''")


def feature_partition(work_dir: str, part: int, n_parts: int, grid: GridSpec, start: str, with_contacts: bool,
                      config: dict) -> int:
    """Dask task: features of the customers with ``customer % n_parts == part``.

    Reads ``customers/events/contacts.parquet`` of ``work_dir`` (written by :func:`build_features_on_cluster`)
    in its own in-memory DuckDB connection, runs :func:`build_features` and writes
    ``features-<part>.parquet`` atomically (a retried task simply rewrites it). Returns the number of rows.
    """
    from pathlib import Path

    work = Path(work_dir)
    con = duckdb.connect(config=dict(config, temp_directory=str(work / f"spill-{part}")))
    try:
        con.execute("SET enable_progress_bar = false")
        where = f"WHERE customer % {int(n_parts)} = {int(part)}"
        for name in ("customers", "events", "contacts"):
            if name == "contacts" and not with_contacts:
                continue
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{_sql_path(work / (name + '.parquet'))}') "
                        f"{where}")
        n = build_features(con, grid, start, contacts="contacts" if with_contacts else None)
        target, tmp = work / f"features-{part}.parquet", work / f".features-{part}.parquet.tmp"
        con.execute(f"COPY features TO '{_sql_path(tmp)}' (FORMAT PARQUET)")
        tmp.replace(target)
        return n
    finally:
        con.close()


def build_features_on_cluster(con: duckdb.DuckDBPyConnection, grid: GridSpec, start: str, client, work_dir,
                              n_parts: int, config: dict | None = None, customers: str = "customers",
                              events: str = "events", contacts: str | None = "contact_history",
                              table: str = "features") -> int:
    """:func:`build_features` with the per-customer work done by Dask tasks; same ``table`` (same rows).

    The client writes the inputs the features need (``customers.customer``; the event and contact
    columns) to Parquet in ``work_dir``, submits ``n_parts`` :func:`feature_partition` tasks and loads
    their outputs back into ``table`` in canonical order (customer, period). ``work_dir`` must be
    readable and writable by every worker (a shared file system for a remote cluster).

    Returns
    -------
    int
        Number of rows (customers × periods).
    """
    from pathlib import Path

    n_parts = int(n_parts)
    if n_parts < 1:
        raise ValueError(f"n_parts: expected a positive integer, got {n_parts}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    inputs = {"customers": f"SELECT customer FROM {customers}",
              "events": f"SELECT customer, ts, type, subtype, channel, value FROM {events}"}
    if contacts is not None:
        inputs["contacts"] = f"SELECT customer, ts, treatment, responded FROM {contacts}"
    for name, sql in inputs.items():
        con.execute(f"COPY ({sql}) TO '{_sql_path(work / (name + '.parquet'))}' (FORMAT PARQUET)")
    futures = [client.submit(feature_partition, str(work), k, n_parts, grid, start, contacts is not None,
                             dict(config or {}), pure=False)
               for k in range(n_parts)]
    counts = client.gather(futures)
    files = ", ".join(f"'{_sql_path(work / f'features-{k}.parquet')}'" for k in range(n_parts))
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet([{files}]) ORDER BY customer, period")
    n = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    if n != sum(counts):
        raise RuntimeError(f"features on the cluster: partitions reported {sum(counts)} rows, loaded {n}")
    return n
