"""``build_c360(raw_dir, out_dir)``: the Customer 360 build, end to end.

Steps (each a DuckDB stage over one on-disk working database, so large
inputs spill instead of running out of memory):

1. ``load_records``        CRM rows → normalised records (+ rejects)
2. ``resolve_identities``  blocking, match model, clusters, quality vs truth
3. ``build_customers``     merged customer attributes (latest record wins)
4. ``ingest_events``       web/app, calls, branch, contacts → canonical events (+ rejects)
5. ``build_features``      customers × periods grid features (on a Dask cluster when ``cluster`` is given)
6. ``build_masks``         consent, reachability, cooling, caps → eligibility for the plan week

Outputs (``OUT_DIR``; staged in a private sub-directory and moved into place
only when every step succeeded, each file renamed atomically):

=========================  ======================================================================
``features.parquet``       customer_id, period, period_start, as_of, counts, decay_*, recency_*
``eligibility.parquet``    customer_id, channel, one boolean column per plan day
``customers.parquet``      customer_id, records, consents, reachability, last call, contacts left
``identity_map.parquet``   source (crm, email, phone, card, cookie), key, customer_id
``events.parquet``         the canonical event table (customer_id, ts, type, subtype, channel, value)
``contacts.parquet``       resolved campaign history (customer_id, ts, channel, treatment, responded)
``rejects.parquet``        source, row_id, reason, detail — every row that was not used
``identity_report.json``   blocking counts, match model, precision / recall / F1, trade-off
``match_model.json``       the fitted match model (reusable with ``--match-model``)
``manifest.json``          parameters, horizon, row counts, reject counts, timings
=========================  ======================================================================
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb
import pandas as pd

from formulations.c360 import GRANULARITY_DAYS, GridSpec
from formulations.errors import InputError
from optimizer.c360.features import build_features, build_features_on_cluster
from optimizer.c360.identity import IdentityResult, MatchModel, resolve_identities
from optimizer.c360.ingest import (check_columns, create_rejects, find_sources, ingest_events, install_macros,
                                   load_records)
from optimizer.c360.masks import build_customers, build_masks, check_mask_options
from optimizer.io import write_json

OUTPUT_FILES = ("features.parquet", "eligibility.parquet", "customers.parquet", "identity_map.parquet",
                "events.parquet", "contacts.parquet", "rejects.parquet", "identity_report.json",
                "match_model.json", "manifest.json")


@dataclass(frozen=True)
class BuildOptions:
    """Parameters of a Customer 360 build (defaults = the documented defaults of the CLI).

    ``start`` / ``weeks`` default to the raw directory's ``manifest.json``; ``n_periods`` defaults to
    the whole horizon at the chosen granularity.
    """

    granularity: str = "week"
    latency_days: float = 0.0
    decay: float = 0.8
    start: dt.date | None = None
    weeks: int | None = None
    n_periods: int | None = None
    threshold: float = 0.5
    max_block: int = 50
    l2: float = 1.0
    match_model: Path | str | None = None     # match_model.json of an earlier build, or "default" (the rule)
    cooling_days: int = 7
    contact_cap: int = 4
    cap_window_days: int = 28
    plan_days: int = 7
    memory_limit: str = "6GB"
    threads: int | None = None
    write_events: bool = True


@dataclass
class C360Result:
    """What a build wrote and measured."""

    out_dir: Path
    identity: IdentityResult
    grid: GridSpec
    start: dt.date
    plan_start: dt.date
    as_of: str
    n_customers: int
    n_events: int
    n_contacts: int
    n_feature_rows: int
    rejects: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    day_labels: list[str] = field(default_factory=list)

    @property
    def n_rejects(self) -> int:
        return int(self.rejects["rows"].sum()) if len(self.rejects) else 0


def _horizon(options: BuildOptions, manifest: dict) -> tuple[dt.date, int]:
    start = options.start
    if start is None and manifest.get("start"):
        try:
            start = dt.date.fromisoformat(manifest["start"])
        except ValueError:
            raise InputError("manifest.json", f"start: expected an ISO date, got {manifest['start']!r}") from None
    weeks = options.weeks if options.weeks is not None else manifest.get("weeks")
    if start is None or weeks is None:
        raise InputError("--start", "RAW_DIR has no manifest.json: give --start (a date) and --weeks")
    if int(weeks) < 1:
        raise InputError("--weeks", f"expected a positive number of weeks, got {weeks!r}")
    return start, int(weeks)


def _copy(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    target = str(path).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{target}' (FORMAT PARQUET, COMPRESSION ZSTD)")


def _features_on_cluster(con, grid: GridSpec, start: str, cluster: Any, n_parts: int | None, work: Path,
                         options: BuildOptions) -> tuple[int, int]:
    """The ``features`` step on a Dask cluster; returns (rows, partitions)."""
    from solvers.dual_dask import connect

    client, owned = connect(cluster)
    try:
        if n_parts is None:
            n_parts = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        config = {"memory_limit": options.memory_limit}
        if options.threads:
            config["threads"] = int(options.threads)
        return build_features_on_cluster(con, grid, start, client, work, int(n_parts), config), int(n_parts)
    finally:
        if owned:
            local = getattr(client, "cluster", None)
            client.close()
            if local is not None:
                local.close()


def build_c360(raw_dir: str | Path, out_dir: str | Path, options: BuildOptions = BuildOptions(),
               progress: Callable[[str], None] | None = None, cluster: Any = None,
               feature_partitions: int | None = None) -> C360Result:
    """Run the whole build; see the module docstring for steps and outputs.

    Parameters
    ----------
    raw_dir : path
        Raw sources (``contactplan generate-c360`` output or the same schemas, ``data/README.md``).
    out_dir : path
        Output directory (created if missing; its parent must exist). Existing files of the same
        names are replaced only when the whole build succeeded.
    options : BuildOptions
    progress : callable, optional
        Called with the name of each step as it starts.
    cluster : dask.distributed.Client, str or int, optional
        Run the ``features`` step on a Dask cluster (a Client, a scheduler address, or the number of
        workers of a LocalCluster started for the build): the customers are cut into
        ``feature_partitions`` hash partitions (``customer % K``), each computed by a task with its own
        DuckDB connection from Parquet written to the build's staging directory (which the workers must
        be able to read, i.e. a shared file system for a remote cluster). The other steps run here.
        ``features.parquet`` holds the same rows and values as the in-process build.
    feature_partitions : int, optional
        Number K of partitions on a cluster (default: 2 × the number of workers).

    Returns
    -------
    C360Result
    """
    sources = find_sources(raw_dir)
    start, weeks = _horizon(options, sources.manifest)
    period_days = GRANULARITY_DAYS.get(options.granularity)
    if period_days is None:
        raise InputError("--granularity", f"expected 'week' or 'day', got {options.granularity!r}")
    n_periods = options.n_periods or (weeks * 7) // period_days
    grid = GridSpec(n_periods, options.granularity, float(options.latency_days), float(options.decay))
    check_mask_options(options.plan_days, options.cooling_days, options.contact_cap, options.cap_window_days)
    if not (0.0 < float(options.threshold) < 1.0):
        raise InputError("--threshold", f"expected a probability in (0, 1), got {options.threshold!r}")
    if int(options.max_block) < 2:
        raise InputError("--max-block", f"expected an integer >= 2, got {options.max_block!r}")
    model = None
    if options.match_model is not None and str(options.match_model) == "default":
        model = MatchModel.default()
    elif options.match_model is not None:
        try:
            model = MatchModel.from_dict(json.loads(Path(options.match_model).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError("--match-model", f"could not read {str(options.match_model)!r}: {exc}") from None
    if feature_partitions is not None and (cluster is None or int(feature_partitions) < 1):
        raise InputError("feature_partitions", "expected a positive integer, and a cluster to run them on, "
                                               f"got {feature_partitions!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"{str(out)!r} exists and is not a directory")
    if not out.parent.exists():
        raise InputError("--out", f"directory {str(out.parent)!r} does not exist")
    out.mkdir(exist_ok=True)
    stage = out / f".c360-staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    start_ts = dt.datetime.combine(start, dt.time())
    end_ts = start_ts + dt.timedelta(days=7 * weeks)
    grid_end = start_ts + dt.timedelta(days=grid.n_periods * grid.period_days)
    as_of = (grid_end - dt.timedelta(days=grid.latency_days)).isoformat(sep=" ")
    plan_start = grid_end.date()
    timings: dict[str, float] = {}

    def step(name: str):
        if progress is not None:
            progress(name)
        t = time.perf_counter()

        @contextlib.contextmanager
        def timer():
            yield
            timings[name] = time.perf_counter() - t
        return timer()

    config = {"memory_limit": options.memory_limit, "temp_directory": str(stage / "spill")}
    if options.threads:
        config["threads"] = int(options.threads)
    try:
        con = duckdb.connect(str(stage / "work.duckdb"), config=config)
    except duckdb.Error as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise InputError("--memory-limit", str(exc).splitlines()[0]) from None
    try:
        con.execute("SET enable_progress_bar = false")
        install_macros(con)
        check_columns(con, sources)
        create_rejects(con)
        with step("load_records"):
            load_records(con, sources)
        with step("identity_resolution"):
            truth = sources.truth_dir / "identities.parquet" if sources.truth_dir is not None else None
            identity = resolve_identities(con, labels_path=None if model is not None else sources.labels_path,
                                          model=model, truth_path=truth, threshold=options.threshold,
                                          max_block=options.max_block, l2=options.l2)
            n_customers = build_customers(con)
        with step("ingest_events"):
            ingest_events(con, sources, start_ts.isoformat(sep=" "), end_ts.isoformat(sep=" "))
        with step("features"):
            if cluster is None:
                n_rows = build_features(con, grid, start_ts.isoformat(sep=" "))
            else:
                n_rows, n_parts = _features_on_cluster(con, grid, start_ts.isoformat(sep=" "), cluster,
                                                       feature_partitions, stage / "features-dist", options)
        with step("masks"):
            labels = build_masks(con, as_of, plan_start, options.plan_days, options.cooling_days,
                                 options.contact_cap, options.cap_window_days)
        with step("write_outputs"):
            ids = "JOIN customers c USING (customer)"
            _copy(con, f"SELECT c.customer_id, f.* EXCLUDE (customer) FROM features f {ids}",
                  stage / "features.parquet")
            day_cols = ", ".join(f'e."{d}"' for d in labels)
            _copy(con, f"SELECT c.customer_id, e.channel, {day_cols} FROM eligibility e {ids}",
                  stage / "eligibility.parquet")
            _copy(con, "SELECT customer_id, customer, * EXCLUDE (customer_id, customer) FROM customer_state "
                       "ORDER BY customer", stage / "customers.parquet")
            _copy(con, """
                SELECT 'crm' AS source, r.crm_id AS key, c.customer_id FROM records r
                    JOIN record_customer USING (rid) JOIN customers c USING (customer)
                UNION ALL SELECT 'email', m.email, c.customer_id FROM email_map m JOIN customers c USING (customer)
                UNION ALL SELECT 'phone', m.phone, c.customer_id FROM (SELECT DISTINCT phone, customer FROM phone_map) m
                    JOIN customers c USING (customer)
                UNION ALL SELECT 'card', m.card, c.customer_id FROM card_map m JOIN customers c USING (customer)
                UNION ALL SELECT 'cookie', CAST(m.cookie AS VARCHAR), c.customer_id FROM cookie_map m
                    JOIN customers c USING (customer)""", stage / "identity_map.parquet")
            if options.write_events:
                _copy(con, f"SELECT c.customer_id, e.ts, e.type, e.subtype, e.channel, e.value FROM events e {ids}",
                      stage / "events.parquet")
            _copy(con, f"SELECT c.customer_id, h.* EXCLUDE (customer) FROM contact_history h {ids}",
                  stage / "contacts.parquet")
            _copy(con, "SELECT * FROM rejects ORDER BY source, reason, row_id", stage / "rejects.parquet")
            rejects = con.execute("SELECT source, reason, count(*) AS rows FROM rejects GROUP BY ALL "
                                  "ORDER BY source, reason").df()
            n_events = int(con.execute("SELECT count(*) FROM events").fetchone()[0])
            n_contacts = int(con.execute("SELECT count(*) FROM contact_history").fetchone()[0])
        con.close()
        result = C360Result(out, identity, grid, start, plan_start, as_of, n_customers, n_events, n_contacts,
                            n_rows, rejects, timings, labels)
        report = identity.summary()
        write_json(report, stage / "identity_report.json")
        write_json(identity.model.to_dict(), stage / "match_model.json")
        opts = {k: (str(v) if isinstance(v, (Path, dt.date)) else v) for k, v in asdict(options).items()}
        write_json({"raw_dir": str(Path(raw_dir).resolve()), "options": opts, "start": start.isoformat(),
                    "weeks": weeks, "grid": asdict(grid), "as_of": as_of, "plan_start": plan_start.isoformat(),
                    "plan_days": labels, "customers": n_customers, "records": identity.n_records,
                    "events": n_events, "contacts": n_contacts, "feature_rows": n_rows,
                    "rejects": rejects.to_dict(orient="records"), "timings_s": timings,
                    **({} if cluster is None else {"feature_partitions": n_parts})},
                   stage / "manifest.json")
        for name in OUTPUT_FILES:
            if (stage / name).exists():
                os.replace(stage / name, out / name)
        if not options.write_events and (out / "events.parquet").exists():
            (out / "events.parquet").unlink()   # never leave a stale canonical table from an older build
    finally:
        with contextlib.suppress(Exception):
            con.close()
        shutil.rmtree(stage, ignore_errors=True)
    return result
