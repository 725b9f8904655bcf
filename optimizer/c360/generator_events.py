"""Event simulation for the Customer 360 generator (one chunk of true customers at a time).

Per customer *i* with weekly rates (digital :math:`\\rho^d_i`, calls
:math:`\\rho^c_i`, branch :math:`\\rho^b_i`) the numbers of events over *W*
weeks are Poisson(:math:`W\\rho_i`), their times uniform over the horizon
(digital 06-24h, calls 08-20h, branch 09-17h Mon-Sat). Web/app events come
from the customer's devices (a browser; an app for app users; a second
browser for 30%); one event per device is a ``login`` carrying the login
e-mail (97% of devices), which is what lets the pipeline stitch cookies to
customers. Anonymous visitors add cookies that never log in.

Campaign contacts: every week each customer is picked with probability
0.15, the channel drawn among the channels the customer truly consented to
(push only for app users); 20% of picks are a random control group
(``treatment = 0``, not contacted); the response is
Bernoulli(``p_treated_<channel>``) if contacted else Bernoulli(``p_base``).

Deliberately corrupted rows (each kind at ``Messiness.bad_row_rate`` per
source) are listed in ``truth/bad_rows.parquet`` with the reason the
pipeline must give them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from formulations.c360 import CONTACT_CHANNELS
from optimizer.c360.generator import Messiness, crm_ids, format_phone, typo

WEB_SUBTYPES = ("page_view", "product_view", "search", "login", "email_open", "email_click")
WEB_P = (0.42, 0.18, 0.10, 0.10, 0.12, 0.08)
APP_SUBTYPES = ("app_open", "screen_view", "login", "push_open", "transfer")
APP_P = (0.25, 0.35, 0.10, 0.10, 0.20)
CALL_OUTCOMES = ("RESOLVED", "INFO", "COMPLAINT", "SALE", "CALLBACK", "TRANSFER")
CALL_P = (0.55, 0.20, 0.04, 0.06, 0.09, 0.06)
VISIT_TYPES = ("TRANSACTION", "ENQUIRY", "APPOINTMENT", "COMPLAINT", "ACCOUNT_OPENING")
VISIT_P = (0.50, 0.25, 0.15, 0.05, 0.05)
CHANNEL_WEIGHTS = np.array([0.4, 0.2, 0.2, 0.1, 0.1])
N_BRANCHES = 400
ANON_BASE = 4_000_000_000
COOKIE_MULT = np.uint64(0x9E3779B97F4A7C15)

EVENT_SCHEMAS = {
    "crm": None,
    "web_events": pa.schema([("event_id", pa.int64()), ("ts", pa.string()), ("cookie_id", pa.int64()),
                             ("device_type", pa.string()), ("event_type", pa.string()),
                             ("login_email", pa.string())]),
    "call_logs": pa.schema([("call_id", pa.int64()), ("start_time", pa.string()), ("phone", pa.string()),
                            ("caller_name", pa.string()), ("outcome_code", pa.string()),
                            ("duration_s", pa.int64()), ("direction", pa.string())]),
    "branch_visits": pa.schema([("visit_id", pa.int64()), ("visit_time", pa.string()),
                                ("card_number", pa.string()), ("customer_name", pa.string()),
                                ("branch_id", pa.string()), ("visit_type", pa.string()), ("amount", pa.float64())]),
    "contacts": pa.schema([("contact_id", pa.int64()), ("crm_id", pa.string()), ("ts", pa.string()),
                           ("channel", pa.string()), ("treatment", pa.int8()), ("responded", pa.int8())]),
}
BAD_TIMES = ("", "N/A", "yesterday", "2026-02-30T25:61:00", "31/02/2026 10:00:00", "??")


def cookie_ids(slot_key: np.ndarray) -> np.ndarray:
    """Cookie id of device key ``tid*4 + slot``: an odd multiplier mod 2^63 (a bijection, looks random)."""
    with np.errstate(over="ignore"):
        h = np.asarray(slot_key, dtype=np.uint64) * COOKIE_MULT
    return (h & np.uint64(2**63 - 1)).astype(np.int64)


def _times(rng: np.random.Generator, k: int, weeks: int, start_epoch: int, hours: tuple[int, int],
           no_sunday: bool = False) -> np.ndarray:
    day = rng.integers(0, 7 * weeks, k)
    if no_sunday:
        day = np.where(day % 7 == 6, day - 1, day)
    sec = rng.integers(hours[0] * 3600, hours[1] * 3600, k)
    return start_epoch + day * 86400 + sec


def _iso(epoch: np.ndarray, sep: str = "T") -> pa.Array:
    s = pc.cast(pa.array(epoch, type=pa.timestamp("s")), pa.string())
    return pc.replace_substring(s, " ", sep) if sep != " " else s


def _dmy(epoch: np.ndarray) -> pa.Array:
    s = pc.cast(pa.array(epoch, type=pa.timestamp("s")), pa.string())
    sl = lambda a, b: pc.utf8_slice_codeunits(s, a, b)  # noqa: E731
    return pc.binary_join_element_wise(pc.binary_join_element_wise(sl(8, 10), sl(5, 7), sl(0, 4), "/"),
                                       sl(11, 19), " ")


def _pick_bad(rng: np.random.Generator, n_rows: int, kinds: tuple[str, ...], rate: float) -> dict[str, np.ndarray]:
    """Disjoint row positions for each kind of corruption."""
    counts = rng.binomial(n_rows, rate, len(kinds)) if n_rows else np.zeros(len(kinds), dtype=np.int64)
    total = int(min(counts.sum(), n_rows))
    rows = rng.choice(n_rows, size=total, replace=False) if total else np.zeros(0, dtype=np.int64)
    out, at = {}, 0
    for kind, c in zip(kinds, counts):
        c = int(min(c, total - at))
        out[kind] = np.sort(rows[at:at + c])
        at += c
    return out


def _names(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    name = first.astype(object) + " " + last.astype(object)
    for j in np.flatnonzero(rng.random(name.size) < 0.05):
        name[j] = typo(name[j], rng)
    up = rng.random(name.size) < 0.1
    name[up] = np.char.upper(name[up].astype(str)).astype(object)
    return name


def simulate_chunk(rng: np.random.Generator, cust: pd.DataFrame, crm: pd.DataFrame, weeks: int, start: dt.date,
                   mess: Messiness, offsets: dict[str, int]) -> tuple[dict[str, pd.DataFrame], dict]:
    """Raw event sources of one chunk plus the device truth and the list of corrupted rows."""
    start_epoch = int((dt.datetime.combine(start, dt.time()) - dt.datetime(1970, 1, 1)).total_seconds())
    size = len(cust)
    tid = cust["true_customer"].to_numpy()
    bad_rows: list[pd.DataFrame] = []

    def record_bad(source: str, ids: np.ndarray, picks: dict[str, np.ndarray]) -> None:
        for reason, rows in picks.items():
            if rows.size:
                bad_rows.append(pd.DataFrame({"source": source, "row_id": ids[rows], "reason": reason}))

    # ---------------------------------------------------------------- web / app
    app_user = cust["app_user"].to_numpy()
    has = np.stack([np.ones(size, bool), app_user, rng.random(size) < 0.3], axis=1)
    n_dev = has.sum(axis=1)
    order = np.argsort(~has, axis=1, kind="stable")            # existing slots first
    counts = rng.poisson(cust["digital_rate"].to_numpy() * weeks)
    owner = np.repeat(np.arange(size), counts)
    slot = order[owner, (rng.random(owner.size) * n_dev[owner]).astype(np.int64)]
    is_app = slot == 1
    sub = np.where(is_app, np.asarray(APP_SUBTYPES, dtype=object)[rng.choice(5, owner.size, p=APP_P)],
                   np.asarray(WEB_SUBTYPES, dtype=object)[rng.choice(6, owner.size, p=WEB_P)])
    device_key = tid[owner] * 4 + slot
    # one login per device (97% of devices): the first event of each device in a random order
    perm = rng.permutation(owner.size)
    _, first_pos = np.unique(device_key[perm], return_index=True)
    chosen = perm[first_pos]
    sub[chosen[rng.random(chosen.size) < 0.97]] = "login"
    email = cust["email"].to_numpy(dtype=object)[owner]
    login_email = np.where(sub == "login", email, None)
    shout = (sub == "login") & (rng.random(owner.size) < 0.1)
    login_email[shout] = np.char.upper(login_email[shout].astype(str)).astype(object)
    n_anon = int(rng.binomial(owner.size, mess.anonymous_web_share)) if owner.size else 0
    anon_key = ANON_BASE * 4 + (tid[0] * 64 + rng.integers(0, max(1, n_anon // 5), n_anon)) * 4
    anon_sub = np.asarray(WEB_SUBTYPES, dtype=object)[rng.choice(6, n_anon, p=WEB_P)]
    anon_sub[anon_sub == "login"] = "page_view"
    keys = np.concatenate([device_key, anon_key])
    k = keys.size
    ts = _times(rng, k, weeks, start_epoch, (6, 24))
    web = pd.DataFrame({
        "event_id": offsets["web_events"] + np.arange(k, dtype=np.int64),
        "ts": _iso(ts).to_pandas(),
        "cookie_id": pd.array(cookie_ids(keys), dtype="Int64"),
        "device_type": np.concatenate([np.where(is_app, "app", "web"), np.full(n_anon, "web")]).astype(object),
        "event_type": np.concatenate([sub, anon_sub]),
        "login_email": np.concatenate([login_email, np.full(n_anon, None, dtype=object)]),
    })
    picks = _pick_bad(rng, k, ("unparseable_time", "unknown_type", "missing_identifier", "out_of_range_time"),
                      mess.bad_row_rate)
    web.loc[picks["unparseable_time"], "ts"] = np.asarray(BAD_TIMES, dtype=object)[
        rng.integers(0, len(BAD_TIMES), picks["unparseable_time"].size)]
    web.loc[picks["unknown_type"], "event_type"] = "pgview"
    web.loc[picks["missing_identifier"], "cookie_id"] = pd.NA
    web.loc[picks["out_of_range_time"], "ts"] = "1970-01-01T00:00:00"
    record_bad("web_events", web["event_id"].to_numpy(), picks)
    dev_keys = np.unique(np.concatenate([device_key, anon_key]))
    devices = pd.DataFrame({"cookie_id": cookie_ids(dev_keys),
                            "true_customer": np.where(dev_keys >= ANON_BASE * 4, -1, dev_keys // 4)})

    # ---------------------------------------------------------------- calls
    counts = rng.poisson(cust["call_rate"].to_numpy() * weeks)
    owner = np.repeat(np.arange(size), counts)
    k = owner.size
    complainer = cust["complainer"].to_numpy()[owner]
    p = np.where(complainer[:, None], np.array([0.35, 0.15, 0.35, 0.02, 0.08, 0.05]), np.array(CALL_P))
    outcome = (rng.random(k)[:, None] > np.cumsum(p, axis=1)).sum(axis=1).clip(0, 5)
    number = np.where(rng.random(k) < 0.95, cust["crm_phone"].to_numpy(dtype=object)[owner],
                      cust["mobile"].to_numpy(dtype=object)[owner])
    calls = pd.DataFrame({
        "call_id": offsets["call_logs"] + np.arange(k, dtype=np.int64),
        "start_time": _dmy(_times(rng, k, weeks, start_epoch, (8, 20))).to_pandas(),
        "phone": format_phone(number, rng.integers(0, 4, k)),
        "caller_name": _names(rng, cust["first_name"].to_numpy()[owner], cust["last_name"].to_numpy()[owner]),
        "outcome_code": np.asarray(CALL_OUTCOMES, dtype=object)[outcome],
        "duration_s": np.maximum(rng.lognormal(5.4, 0.7, k), 5).astype(np.int64),
        "direction": "inbound",
    })
    picks = _pick_bad(rng, k, ("unparseable_time", "unknown_type", "missing_identifier", "bad_value",
                               "out_of_range_time"), mess.bad_row_rate)
    calls.loc[picks["unparseable_time"], "start_time"] = np.asarray(BAD_TIMES, dtype=object)[
        rng.integers(0, len(BAD_TIMES), picks["unparseable_time"].size)]
    calls.loc[picks["unknown_type"], "outcome_code"] = "XX9"
    calls.loc[picks["missing_identifier"], "phone"] = None
    calls.loc[picks["bad_value"], "duration_s"] = -1
    calls.loc[picks["out_of_range_time"], "start_time"] = "01/01/1999 10:00:00"
    record_bad("call_logs", calls["call_id"].to_numpy(), picks)

    # ---------------------------------------------------------------- branch
    counts = rng.poisson(cust["branch_rate"].to_numpy() * weeks)
    owner = np.repeat(np.arange(size), counts)
    k = owner.size
    vt = rng.choice(5, k, p=VISIT_P)
    card = cust["card_number"].to_numpy(dtype=object)[owner].copy()
    grouped = rng.random(k) < 0.5
    card[grouped] = [f"{c[:4]} {c[4:8]} {c[8:12]} {c[12:]}" for c in card[grouped]]
    card[rng.random(k) < 0.02] = None                          # walk-ins without a card
    visits = pd.DataFrame({
        "visit_id": offsets["branch_visits"] + np.arange(k, dtype=np.int64),
        "visit_time": pc.utf8_slice_codeunits(_iso(_times(rng, k, weeks, start_epoch, (9, 17), True), " "),
                                              0, 16).to_pandas(),
        "card_number": card,
        "customer_name": _names(rng, cust["first_name"].to_numpy()[owner], cust["last_name"].to_numpy()[owner]),
        "branch_id": np.char.add("BR", np.char.zfill(
            (cust["postcode_index"].to_numpy()[owner] % N_BRANCHES).astype(str), 3)).astype(object),
        "visit_type": np.asarray(VISIT_TYPES, dtype=object)[vt],
        "amount": np.where(vt == 0, np.round(rng.lognormal(4.0, 1.0, k), 2), np.nan),
    })
    picks = _pick_bad(rng, k, ("unparseable_time", "unknown_type", "missing_identifier", "bad_value",
                               "out_of_range_time"), mess.bad_row_rate)
    visits.loc[picks["unparseable_time"], "visit_time"] = np.asarray(BAD_TIMES, dtype=object)[
        rng.integers(0, len(BAD_TIMES), picks["unparseable_time"].size)]
    visits.loc[picks["unknown_type"], "visit_type"] = "VISIT?"
    visits.loc[picks["missing_identifier"], "card_number"] = None
    visits.loc[picks["bad_value"], "amount"] = -50.0
    visits.loc[picks["out_of_range_time"], "visit_time"] = "2099-12-31 23:59"
    record_bad("branch_visits", visits["visit_id"].to_numpy(), picks)

    # ---------------------------------------------------------------- campaign contacts
    consent = np.stack([cust[f"consent_{c}"].to_numpy() for c in CONTACT_CHANNELS], axis=1)
    consent[:, 1] &= app_user
    consent &= ~cust["do_not_contact"].to_numpy()[:, None]
    picked = rng.random((size, weeks)) < 0.15
    picked &= consent.any(axis=1)[:, None]
    who, week = np.nonzero(picked)
    w = consent[who] * CHANNEL_WEIGHTS
    w /= w.sum(axis=1, keepdims=True)
    channel = (rng.random(who.size)[:, None] > np.cumsum(w, axis=1)).sum(axis=1).clip(0, 4)
    treated = rng.random(who.size) < 0.8
    p_treated = np.stack([cust[f"p_treated_{c}"].to_numpy() for c in CONTACT_CHANNELS], axis=1)
    prob = np.where(treated, p_treated[who, channel], cust["p_base"].to_numpy()[who])
    when = start_epoch + week * 7 * 86400 + rng.integers(0, 5, who.size) * 86400 + rng.integers(9, 17, who.size) * 3600
    contacts = pd.DataFrame({
        "contact_id": offsets["contacts"] + np.arange(who.size, dtype=np.int64),
        "crm_id": crm_ids(tid[who], np.zeros(who.size, dtype=np.int64)),
        "ts": _iso(when, " ").to_pandas(),
        "channel": np.asarray(CONTACT_CHANNELS, dtype=object)[channel],
        "treatment": treated.astype(np.int8),
        "responded": (rng.random(who.size) < prob).astype(np.int8),
    })
    sources = {"web_events": web, "call_logs": calls, "branch_visits": visits, "contacts": contacts}
    return sources, {"devices": devices, "bad_rows": bad_rows}
