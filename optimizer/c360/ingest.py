"""Ingest: raw sources → CRM records and the canonical event table (DuckDB SQL).

Raw sources in ``RAW_DIR`` (each as ``<name>.parquet``, ``<name>.csv`` or a
directory ``<name>/`` of such files; schemas in ``data/README.md``):
``crm``, ``web_events``, ``call_logs``, ``branch_visits`` (required) and
``contacts`` (optional campaign history).

Every raw row either becomes a canonical row or lands in the ``rejects``
table with one reason, checked in this order:

=======================  ====================================================================
``missing_identifier``   no cookie / phone / card / crm_id (or a CRM row with nothing to match)
``duplicate_key``        a CRM row whose ``crm_id`` was seen before (the later row is rejected)
``unparseable_time``     the timestamp does not parse in the source's format
``out_of_range_time``    parses, but outside the horizon [start, end)
``unknown_type``         event type / outcome code / visit type / channel not in the vocabulary
``bad_value``            negative or non-numeric duration / amount, treatment not 0/1
``unresolved_identity``  the key matches no resolved customer (anonymous cookie, unknown card)
``ambiguous_identity``   the key matches several customers and the name cannot decide
=======================  ====================================================================

Canonical events: ``customer`` (resolved, integer index), ``ts``, ``type`` ∈
{digital, call, branch}, ``subtype`` (lower-case code), ``channel`` (web,
app, email, push, phone, branch), ``value`` (1 for digital, call seconds,
branch amount or 0).

Identity links: a cookie belongs to the customer whose (normalised) e-mail
it logged in with (cookie stitching: all events of the cookie follow); a
call to the customer(s) with that normalised phone, a shared phone decided
by the best Jaro-Winkler similarity of the caller's name (ambiguous if the
best is below ``CALLER_NAME_MIN``); a visit to the customer holding the card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from formulations.c360 import CONTACT_CHANNELS
from formulations.errors import InputError

REQUIRED_SOURCES = ("crm", "web_events", "call_logs", "branch_visits")
OPTIONAL_SOURCES = ("contacts",)
WEB_SUBTYPES = ("page_view", "product_view", "search", "login", "email_open", "email_click", "app_open",
                "screen_view", "push_open", "transfer")
CALL_SUBTYPES = ("resolved", "info", "complaint", "sale", "callback", "transfer")
BRANCH_SUBTYPES = ("transaction", "enquiry", "appointment", "complaint", "account_opening")
EVENT_CHANNELS = ("web", "app", "email", "push", "phone", "branch")
SOURCE_COLUMNS = {
    "crm": ("crm_id", "first_name", "last_name", "email", "phone", "postcode", "date_of_birth", "card_number",
            "updated_at", "do_not_contact") + tuple(f"consent_{c}" for c in CONTACT_CHANNELS),
    "web_events": ("event_id", "ts", "cookie_id", "device_type", "event_type", "login_email"),
    "call_logs": ("call_id", "start_time", "phone", "caller_name", "outcome_code", "duration_s"),
    "branch_visits": ("visit_id", "visit_time", "card_number", "branch_id", "visit_type", "amount"),
    "contacts": ("contact_id", "crm_id", "ts", "channel", "treatment", "responded"),
}
TIME_FORMATS = {"call_logs": "%d/%m/%Y %H:%M:%S", "branch_visits": "%Y-%m-%d %H:%M"}
CALLER_NAME_MIN = 0.85

MACROS = r"""
CREATE OR REPLACE MACRO c360_digits(s) AS regexp_replace(coalesce(CAST(s AS VARCHAR), ''), '[^0-9]', '', 'g');
CREATE OR REPLACE MACRO c360_phone_canon(d) AS CASE
    WHEN d LIKE '0044%' THEN '0' || substr(d, 5)
    WHEN d LIKE '44%' AND length(d) = 12 THEN '0' || substr(d, 3)
    WHEN d LIKE '440%' AND length(d) = 13 THEN substr(d, 3)
    ELSE d END;
CREATE OR REPLACE MACRO c360_phone_valid(d) AS CASE WHEN length(d) = 11 AND d LIKE '0%' THEN d END;
CREATE OR REPLACE MACRO norm_phone(s) AS c360_phone_valid(c360_phone_canon(c360_digits(s)));
CREATE OR REPLACE MACRO c360_strip(s) AS
    trim(CAST(s AS VARCHAR), ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13));
CREATE OR REPLACE MACRO norm_email(s) AS CASE WHEN regexp_full_match(lower(c360_strip(s)),
    '[^@ \t\n\r\f\v]+@[^@ \t\n\r\f\v]+') THEN lower(c360_strip(s)) END;
CREATE OR REPLACE MACRO norm_name(s) AS nullif(regexp_replace(lower(CAST(s AS VARCHAR)), '[^a-z]', '', 'g'), '');
CREATE OR REPLACE MACRO norm_postcode(s) AS
    nullif(upper(regexp_replace(CAST(s AS VARCHAR), '[ \t\n\r\f\v]', '', 'g')), '');
CREATE OR REPLACE MACRO norm_card(s) AS nullif(c360_digits(s), '');
CREATE OR REPLACE MACRO c360_bool(s) AS CASE lower(trim(CAST(s AS VARCHAR)))
    WHEN 'true' THEN true WHEN '1' THEN true WHEN 'yes' THEN true WHEN 't' THEN true WHEN 'y' THEN true
    ELSE false END;
"""


@dataclass
class RawSources:
    """Where the raw sources are and how to scan them (a SQL table expression per source)."""

    raw_dir: Path
    scans: dict[str, str]
    manifest: dict = field(default_factory=dict)
    truth_dir: Path | None = None
    labels_path: Path | None = None


def _scan_expr(paths: list[Path], kind: str) -> str:
    quoted = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"
    if kind == "parquet":
        return f"read_parquet({quoted}, union_by_name=true)"
    return f"read_csv({quoted}, all_varchar=true, header=true, union_by_name=true)"


def find_sources(raw_dir: str | Path) -> RawSources:
    """Locate the raw sources in ``raw_dir``; errors name the missing source."""
    root = Path(raw_dir)
    if not root.is_dir():
        raise InputError("RAW_DIR", f"expected a directory of raw sources, got {str(root)!r}")
    scans: dict[str, str] = {}
    for name in REQUIRED_SOURCES + OPTIONAL_SOURCES:
        found: tuple[list[Path], str] | None = None
        for kind in ("parquet", "csv"):
            if (root / f"{name}.{kind}").is_file():
                found = ([root / f"{name}.{kind}"], kind)
                break
            if (root / name).is_dir():
                files = sorted((root / name).glob(f"*.{kind}"))
                if files:
                    found = (files, kind)
                    break
        if found is None:
            if name in REQUIRED_SOURCES:
                raise InputError("RAW_DIR", f"source {name!r} not found: expected {name}.parquet, {name}.csv "
                                            f"or a directory {name}/ in {str(root)!r}")
            continue
        scans[name] = _scan_expr(*found)
    manifest = {}
    if (root / "manifest.json").is_file():
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise InputError("manifest.json", f"could not parse: {exc}") from None
    truth = root / "truth" if (root / "truth" / "identities.parquet").is_file() else None
    labels = root / "labels" / "match_labels.parquet"
    return RawSources(root, scans, manifest, truth, labels if labels.is_file() else None)


def check_columns(con: duckdb.DuckDBPyConnection, sources: RawSources) -> None:
    """Every source must have its documented columns (a clear error otherwise)."""
    for name, scan in sources.scans.items():
        try:
            have = {d[0].lower() for d in con.execute(f"SELECT * FROM {scan} LIMIT 0").description}
        except duckdb.Error as exc:
            raise InputError(name, f"could not read: {str(exc).splitlines()[0]}") from None
        missing = [c for c in SOURCE_COLUMNS[name] if c not in have]
        if missing:
            raise InputError(name, f"missing column(s) {', '.join(missing)} (see data/README.md)")


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in MACROS.strip().split(";\n"):
        if stmt.strip():
            con.execute(stmt)


def create_rejects(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TABLE rejects (source VARCHAR, row_id VARCHAR, reason VARCHAR, detail VARCHAR)")


def load_records(con: duckdb.DuckDBPyConnection, sources: RawSources) -> int:
    """CRM rows → ``records`` (rid, crm_id, normalised attributes, consents); bad rows → rejects."""
    con.execute(f"""
        CREATE OR REPLACE TABLE crm_raw AS
        SELECT (row_number() OVER ()) - 1 AS row_no, * FROM {sources.scans['crm']}""")
    consent_cols = ", ".join(f"c360_bool(consent_{c}) AS consent_{c}" for c in CONTACT_CHANNELS)
    con.execute(f"""
        CREATE OR REPLACE TABLE crm_stage AS
        SELECT row_no, nullif(trim(CAST(crm_id AS VARCHAR)), '') AS crm_id,
               norm_name(first_name) AS first, norm_name(last_name) AS last, norm_email(email) AS email,
               norm_phone(phone) AS phone, norm_postcode(postcode) AS postcode,
               try_strptime(CAST(date_of_birth AS VARCHAR), '%Y-%m-%d')::DATE AS dob,
               norm_card(card_number) AS card,
               coalesce(try_cast(updated_at AS TIMESTAMP), TIMESTAMP '1900-01-01') AS updated_at,
               c360_bool(do_not_contact) AS do_not_contact, {consent_cols}
        FROM crm_raw""")
    con.execute("""
        CREATE OR REPLACE TABLE crm_checked AS
        SELECT *, CASE
            WHEN crm_id IS NULL THEN 'missing_identifier'
            WHEN first IS NULL AND last IS NULL AND email IS NULL AND phone IS NULL AND card IS NULL
                 THEN 'missing_identifier'
            WHEN row_number() OVER (PARTITION BY crm_id ORDER BY row_no) > 1 THEN 'duplicate_key'
        END AS reason
        FROM crm_stage""")
    con.execute("""
        INSERT INTO rejects SELECT 'crm', CAST(row_no AS VARCHAR), reason, crm_id
        FROM crm_checked WHERE reason IS NOT NULL""")
    con.execute("""
        CREATE OR REPLACE TABLE records AS
        SELECT (row_number() OVER (ORDER BY crm_id)) - 1 AS rid, * EXCLUDE (reason, row_no)
        FROM crm_checked WHERE reason IS NULL ORDER BY crm_id""")
    con.execute("DROP TABLE crm_raw; DROP TABLE crm_stage; DROP TABLE crm_checked")
    return int(con.execute("SELECT count(*) FROM records").fetchone()[0])


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _stage_and_split(con: duckdb.DuckDBPyConnection, source: str, stage_sql: str, type_: str) -> None:
    """Materialise the classified rows once as ``<source>_stage`` and copy the bad ones to ``rejects``.

    The canonical ``events`` view reads the good rows of the stage tables (no second copy).
    """
    con.execute(f"""CREATE OR REPLACE TABLE {source}_stage AS
                    SELECT row_id, customer, ts, CAST('{type_}' AS c360_type) AS type,
                           CAST(subtype AS c360_subtype) AS subtype, CAST(channel AS c360_channel) AS channel,
                           value, reason, detail FROM ({stage_sql})""")
    con.execute(f"INSERT INTO rejects SELECT '{source}', CAST(row_id AS VARCHAR), reason, detail "
                f"FROM {source}_stage WHERE reason IS NOT NULL")


def ingest_events(con: duckdb.DuckDBPyConnection, sources: RawSources, start: str, end: str) -> None:
    """Build ``events`` (canonical) and ``contact_history``; needs ``record_customer`` and ``customers``.

    ``start`` / ``end`` are ISO timestamps bounding the horizon [start, end).
    """
    con.execute(f"""CREATE OR REPLACE TYPE c360_type AS ENUM {_in(('digital', 'call', 'branch'))};
                    CREATE OR REPLACE TYPE c360_subtype AS ENUM
                        {_in(tuple(dict.fromkeys(WEB_SUBTYPES + CALL_SUBTYPES + BRANCH_SUBTYPES)))};
                    CREATE OR REPLACE TYPE c360_channel AS ENUM {_in(EVENT_CHANNELS)};""")
    in_range = f"BETWEEN TIMESTAMP '{start}' AND TIMESTAMP '{end}' - INTERVAL 1 MICROSECOND"
    # key maps from the resolved records
    con.execute("""
        CREATE OR REPLACE TABLE email_map AS
        SELECT email, min(customer) AS customer, count(DISTINCT customer) > 1 AS ambiguous
        FROM records JOIN record_customer USING (rid) WHERE email IS NOT NULL GROUP BY email;
        CREATE OR REPLACE TABLE phone_map AS
        SELECT m.*, n.n_customers FROM
            (SELECT DISTINCT phone, customer, coalesce(first, '') || coalesce(last, '') AS name
             FROM records JOIN record_customer USING (rid) WHERE phone IS NOT NULL) m
        JOIN (SELECT phone, count(DISTINCT customer) AS n_customers FROM records JOIN record_customer USING (rid)
              WHERE phone IS NOT NULL GROUP BY phone) n USING (phone);
        CREATE OR REPLACE TABLE card_map AS
        SELECT card, min(customer) AS customer, count(DISTINCT customer) > 1 AS ambiguous
        FROM records JOIN record_customer USING (rid) WHERE card IS NOT NULL GROUP BY card;""")

    # ------------------------------------------------------------ web / app
    web = sources.scans["web_events"]
    con.execute(f"""
        CREATE OR REPLACE TABLE cookie_map AS
        SELECT cookie, min(customer) AS customer, count(DISTINCT customer) > 1 OR bool_or(ambiguous) AS ambiguous
        FROM (SELECT try_cast(cookie_id AS BIGINT) AS cookie, norm_email(login_email) AS email
              FROM {web} WHERE lower(CAST(event_type AS VARCHAR)) = 'login') l
        JOIN email_map USING (email) WHERE cookie IS NOT NULL GROUP BY cookie""")
    _stage_and_split(con, "web_events", f"""
        WITH p AS (
            SELECT event_id AS row_id, try_cast(cookie_id AS BIGINT) AS cookie,
                   CAST(ts AS VARCHAR) AS ts_raw, try_cast(ts AS TIMESTAMP) AS t,
                   lower(CAST(event_type AS VARCHAR)) AS sub, lower(CAST(device_type AS VARCHAR)) AS dev
            FROM {web})
        , j AS (SELECT p.*, m.customer, m.ambiguous FROM p LEFT JOIN cookie_map m ON p.cookie = m.cookie)
        SELECT row_id, customer, t AS ts, CASE WHEN reason IS NULL THEN sub END AS subtype,
               CASE WHEN reason IS NOT NULL THEN NULL WHEN sub IN ('email_open', 'email_click') THEN 'email'
                    WHEN sub = 'push_open' THEN 'push' ELSE dev END AS channel,
               1.0 AS value, reason,
               CASE reason WHEN 'unparseable_time' THEN ts_raw WHEN 'out_of_range_time' THEN ts_raw
                    WHEN 'unknown_type' THEN sub || '/' || coalesce(dev, '')
                    WHEN 'unresolved_identity' THEN CAST(cookie AS VARCHAR)
                    WHEN 'ambiguous_identity' THEN CAST(cookie AS VARCHAR) END AS detail
        FROM (SELECT *, CASE
            WHEN cookie IS NULL THEN 'missing_identifier'
            WHEN t IS NULL THEN 'unparseable_time'
            WHEN NOT (t {in_range}) THEN 'out_of_range_time'
            WHEN sub IS NULL OR sub NOT IN {_in(WEB_SUBTYPES)} OR dev IS NULL OR dev NOT IN ('web', 'app')
                 THEN 'unknown_type'
            WHEN customer IS NULL THEN 'unresolved_identity'
            WHEN ambiguous THEN 'ambiguous_identity' END AS reason FROM j)""", "digital")

    # ------------------------------------------------------------ call centre
    calls = sources.scans["call_logs"]
    con.execute(f"""
        CREATE OR REPLACE TABLE call_raw AS
        SELECT call_id AS row_id, norm_phone(phone) AS phone, norm_name(caller_name) AS caller,
               CAST(start_time AS VARCHAR) AS ts_raw,
               try_strptime(CAST(start_time AS VARCHAR), '{TIME_FORMATS['call_logs']}') AS t,
               lower(CAST(outcome_code AS VARCHAR)) AS sub, try_cast(duration_s AS DOUBLE) AS dur,
               CAST(duration_s AS VARCHAR) AS dur_raw
        FROM {calls}""")
    con.execute(f"""
        CREATE OR REPLACE TABLE call_match AS
        SELECT row_id, customer, n_cand, sim FROM (
            SELECT c.row_id, m.customer, m.n_customers AS n_cand,
                   coalesce(jaro_winkler_similarity(c.caller, m.name), 0) AS sim,
                   row_number() OVER (PARTITION BY c.row_id ORDER BY
                       coalesce(jaro_winkler_similarity(c.caller, m.name), 0) DESC, m.customer) AS rk
            FROM call_raw c JOIN phone_map m ON c.phone = m.phone)
        WHERE rk = 1""")
    _stage_and_split(con, "call_logs", f"""
        SELECT row_id, customer, t AS ts, CASE WHEN reason IS NULL THEN sub END AS subtype,
               CASE WHEN reason IS NULL THEN 'phone' END AS channel, dur AS value, reason,
               CASE reason WHEN 'unparseable_time' THEN ts_raw WHEN 'out_of_range_time' THEN ts_raw
                    WHEN 'unknown_type' THEN sub WHEN 'bad_value' THEN dur_raw
                    WHEN 'unresolved_identity' THEN phone WHEN 'ambiguous_identity' THEN phone END AS detail
        FROM (SELECT c.*, m.customer, m.n_cand, m.sim, CASE
            WHEN c.phone IS NULL THEN 'missing_identifier'
            WHEN t IS NULL THEN 'unparseable_time'
            WHEN NOT (t {in_range}) THEN 'out_of_range_time'
            WHEN sub IS NULL OR sub NOT IN {_in(CALL_SUBTYPES)} THEN 'unknown_type'
            WHEN dur IS NULL OR dur < 0 OR NOT isfinite(dur) THEN 'bad_value'
            WHEN m.customer IS NULL THEN 'unresolved_identity'
            WHEN m.n_cand > 1 AND m.sim < {CALLER_NAME_MIN} THEN 'ambiguous_identity' END AS reason
            FROM call_raw c LEFT JOIN call_match m ON c.row_id = m.row_id)""", "call")
    con.execute("DROP TABLE call_raw; DROP TABLE call_match")

    # ------------------------------------------------------------ branch
    visits = sources.scans["branch_visits"]
    _stage_and_split(con, "branch_visits", f"""
        WITH p AS (
            SELECT visit_id AS row_id, norm_card(card_number) AS card,
                   CAST(visit_time AS VARCHAR) AS ts_raw,
                   try_strptime(CAST(visit_time AS VARCHAR), '{TIME_FORMATS['branch_visits']}') AS t,
                   lower(CAST(visit_type AS VARCHAR)) AS sub, try_cast(amount AS DOUBLE) AS amt,
                   CAST(amount AS VARCHAR) AS amt_raw
            FROM {visits})
        SELECT row_id, customer, t AS ts, CASE WHEN reason IS NULL THEN sub END AS subtype,
               CASE WHEN reason IS NULL THEN 'branch' END AS channel, coalesce(amt, 0.0) AS value, reason,
               CASE reason WHEN 'unparseable_time' THEN ts_raw WHEN 'out_of_range_time' THEN ts_raw
                    WHEN 'unknown_type' THEN sub WHEN 'bad_value' THEN amt_raw
                    WHEN 'unresolved_identity' THEN card WHEN 'ambiguous_identity' THEN card END AS detail
        FROM (SELECT p.*, m.customer, CASE
            WHEN p.card IS NULL THEN 'missing_identifier'
            WHEN t IS NULL THEN 'unparseable_time'
            WHEN NOT (t {in_range}) THEN 'out_of_range_time'
            WHEN sub IS NULL OR sub NOT IN {_in(BRANCH_SUBTYPES)} THEN 'unknown_type'
            WHEN (amt_raw IS NOT NULL AND amt IS NULL) OR amt < 0 OR NOT isfinite(amt) THEN 'bad_value'
            WHEN m.customer IS NULL THEN 'unresolved_identity'
            WHEN m.ambiguous THEN 'ambiguous_identity' END AS reason
            FROM p LEFT JOIN card_map m ON p.card = m.card)""", "branch")

    con.execute("""CREATE OR REPLACE VIEW events AS
        SELECT customer, ts, type, subtype, channel, value FROM web_events_stage WHERE reason IS NULL
        UNION ALL SELECT customer, ts, type, subtype, channel, value FROM call_logs_stage WHERE reason IS NULL
        UNION ALL SELECT customer, ts, type, subtype, channel, value FROM branch_visits_stage
            WHERE reason IS NULL""")

    # ------------------------------------------------------------ campaign contacts (optional)
    con.execute("""CREATE OR REPLACE TABLE contact_history (customer INTEGER, ts TIMESTAMP, channel VARCHAR,
                   treatment TINYINT, responded TINYINT, contact_id VARCHAR)""")
    if "contacts" in sources.scans:
        con.execute(f"""
            CREATE OR REPLACE TABLE stage AS
            WITH p AS (
                SELECT CAST(contact_id AS VARCHAR) AS row_id, nullif(trim(CAST(crm_id AS VARCHAR)), '') AS crm_id,
                       CAST(ts AS VARCHAR) AS ts_raw, try_cast(ts AS TIMESTAMP) AS t,
                       lower(CAST(channel AS VARCHAR)) AS ch, try_cast(treatment AS INTEGER) AS tr,
                       try_cast(responded AS INTEGER) AS rs
                FROM {sources.scans['contacts']})
            SELECT row_id, customer, t, ch, tr, rs, reason,
                   CASE reason WHEN 'unparseable_time' THEN ts_raw WHEN 'out_of_range_time' THEN ts_raw
                        WHEN 'unknown_type' THEN ch WHEN 'unresolved_identity' THEN crm_id END AS detail
            FROM (SELECT p.*, m.customer, CASE
                WHEN p.crm_id IS NULL THEN 'missing_identifier'
                WHEN t IS NULL THEN 'unparseable_time'
                WHEN NOT (t {in_range}) THEN 'out_of_range_time'
                WHEN ch IS NULL OR ch NOT IN {_in(CONTACT_CHANNELS)} THEN 'unknown_type'
                WHEN tr IS NULL OR tr NOT IN (0, 1) OR (rs IS NOT NULL AND rs NOT IN (0, 1)) THEN 'bad_value'
                WHEN m.customer IS NULL THEN 'unresolved_identity' END AS reason
                FROM p LEFT JOIN (SELECT crm_id, customer FROM records JOIN record_customer USING (rid)) m
                     ON p.crm_id = m.crm_id)""")
        con.execute("INSERT INTO contact_history SELECT customer, t, ch, tr, rs, row_id FROM stage "
                    "WHERE reason IS NULL")
        con.execute("INSERT INTO rejects SELECT 'contacts', row_id, reason, detail FROM stage "
                    "WHERE reason IS NOT NULL")
        con.execute("DROP TABLE stage")
