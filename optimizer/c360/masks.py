"""Admissible actions: consent, reachability, cooling after calls and contact caps → ``eligible``.

Implements the "Admissible actions" section of :mod:`formulations.c360` for
the plan week: days :math:`D_0..D_{T-1}` starting at ``plan_start`` (the day
after the feature grid), state as of the last cut-off ``as_of``
(= plan start − latency).

Per customer (``customer_state``):

* ``consent_<channel>``: the flag of the most recently updated CRM record of
  the customer (ties: the larger ``crm_id``); ``do_not_contact`` if any of
  its records says so;
* reachability: ``has_email`` (email), ``has_phone`` (sms, call),
  ``has_app`` (push: an app event visible as of ``as_of``); branch is
  always reachable;
* ``last_call``: the latest visible inbound call or outbound campaign call;
* ``remaining_contacts = max(0, contact_cap − treated campaign contacts in
  [as_of − cap_window_days, as_of))``.

``eligibility`` has one row per (customer, channel) and one boolean column
per plan day; a call on day *d* needs ``D_d − date(last_call) ≥ cooling_days``.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from formulations.c360 import CONTACT_CHANNELS
from formulations.errors import InputError

REACHABLE = {"email": "has_email", "push": "has_app", "sms": "has_phone", "call": "has_phone", "branch": "true"}


def day_labels(plan_start: dt.date, n_days: int) -> list[str]:
    """Column names of the plan days: weekday abbreviations for a 7-day plan, else ISO dates."""
    days = [plan_start + dt.timedelta(days=d) for d in range(n_days)]
    if n_days <= 7:
        return [d.strftime("%a") for d in days]
    return [d.isoformat() for d in days]


def build_customers(con: duckdb.DuckDBPyConnection) -> int:
    """``customers``: one row per resolved customer with merged CRM attributes (latest record wins)."""
    consent = ", ".join(f"arg_max(consent_{c}, struct_pack(u := updated_at, id := crm_id)) AS consent_{c}"
                        for c in CONTACT_CHANNELS)
    con.execute(f"""
        CREATE OR REPLACE TABLE customers AS
        SELECT customer, min(crm_id) AS customer_id, count(*)::INTEGER AS n_records,
               bool_or(email IS NOT NULL) AS has_email, bool_or(phone IS NOT NULL) AS has_phone,
               bool_or(do_not_contact) AS do_not_contact, {consent}
        FROM records JOIN record_customer USING (rid)
        GROUP BY customer ORDER BY customer""")
    return int(con.execute("SELECT count(*) FROM customers").fetchone()[0])


def check_mask_options(n_days: int, cooling_days: int, contact_cap: int, cap_window_days: int) -> None:
    """Validate the mask parameters (one-line errors naming the option)."""
    if int(cooling_days) < 0:
        raise InputError("cooling_days", f"expected an integer >= 0, got {cooling_days!r}")
    if int(contact_cap) < 0:
        raise InputError("contact_cap", f"expected an integer >= 0, got {contact_cap!r}")
    if int(cap_window_days) < 1:
        raise InputError("cap_window_days", f"expected a positive integer, got {cap_window_days!r}")
    if int(n_days) < 1:
        raise InputError("plan_days", f"expected a positive integer, got {n_days!r}")


def build_masks(con: duckdb.DuckDBPyConnection, as_of: str, plan_start: dt.date, n_days: int = 7,
                cooling_days: int = 7, contact_cap: int = 4, cap_window_days: int = 28) -> list[str]:
    """Create ``customer_state`` and ``eligibility``; returns the plan-day column names."""
    check_mask_options(n_days, cooling_days, contact_cap, cap_window_days)
    con.execute(f"""
        CREATE OR REPLACE TABLE customer_state AS
        SELECT c.*, coalesce(app.seen, false) AS has_app, greatest(li.last_in, lo.last_out) AS last_call,
               coalesce(cap.recent, 0)::INTEGER AS recent_contacts,
               greatest({int(contact_cap)} - coalesce(cap.recent, 0), 0)::INTEGER AS remaining_contacts
        FROM customers c
        LEFT JOIN (SELECT customer, true AS seen FROM events
                   WHERE channel = 'app' AND ts < TIMESTAMP '{as_of}' GROUP BY customer) app USING (customer)
        LEFT JOIN (SELECT customer, max(ts) AS last_in FROM events
                   WHERE type = 'call' AND ts < TIMESTAMP '{as_of}' GROUP BY customer) li USING (customer)
        LEFT JOIN (SELECT customer, max(ts) AS last_out FROM contact_history
                   WHERE channel = 'call' AND treatment = 1 AND ts < TIMESTAMP '{as_of}'
                   GROUP BY customer) lo USING (customer)
        LEFT JOIN (SELECT customer, count(*) AS recent FROM contact_history
                   WHERE treatment = 1 AND ts < TIMESTAMP '{as_of}'
                     AND ts >= TIMESTAMP '{as_of}' - to_days({int(cap_window_days)})
                   GROUP BY customer) cap USING (customer)
        ORDER BY customer""")
    labels = day_labels(plan_start, int(n_days))
    rows = []
    for ch in CONTACT_CHANNELS:
        base = f"(consent_{ch} AND NOT do_not_contact AND {REACHABLE[ch]} AND remaining_contacts > 0)"
        days = []
        for d, label in enumerate(labels):
            day = plan_start + dt.timedelta(days=d)
            cond = base
            if ch == "call":
                cond = (f"({base} AND (last_call IS NULL OR date_diff('day', CAST(last_call AS DATE), "
                        f"DATE '{day.isoformat()}') >= {int(cooling_days)}))")
            days.append(f"{cond} AS \"{label}\"")
        rows.append(f"SELECT customer, '{ch}' AS channel, {', '.join(days)} FROM customer_state")
    con.execute("CREATE OR REPLACE TABLE eligibility AS " + " UNION ALL ".join(rows))
    return labels
