"""Synthetic Customer 360 raw sources with hidden ground truth.

``generate_c360(out_dir, n_customers, n_weeks, seed)`` writes, chunk by chunk
(``CHUNK`` true customers at a time, chunk *c* uses
``numpy.random.default_rng([seed, c])``, so memory stays flat and a seed
always gives the same files):

==============================  ===============================================================
``crm.parquet``                 CRM master rows; true customers may have 2-3 rows (duplicates
                                from other source systems with typos, missing e-mail / phone,
                                an old address, swapped day/month of birth, stale consents)
``web_events.parquet``          web/app events keyed by cookie / device; ``login`` events carry
                                the login e-mail; several devices per customer; anonymous
                                visitors
``call_logs.parquet``           inbound call-centre log: phone in mixed formats (households
                                share a landline), caller name as typed, outcome code, duration
``branch_visits.parquet``       branch visits keyed by card number
``contacts.parquet``            outbound campaign history with a random control group and the
                                simulated response (the test bed of the response/uplift models)
``manifest.json``               start date, weeks, seed, messiness, row counts
``labels/match_labels.parquet`` a clerical-review sample: ``crm_id`` → ``label`` for *every* CRM
                                row of a random 5% (at least ~1000) of the true customers (complete clusters, so
                                a candidate pair with one listed row and one unlisted row is a
                                known non-match; training data of the match model)
``truth/identities.parquet``    every ``crm_id`` → ``true_customer`` (hidden truth)
``truth/customers.parquet``     true customers: clean attributes, latent rates, true consents
                                and the true response model per channel
``truth/devices.parquet``       every cookie → ``true_customer`` (-1 = anonymous visitor)
``truth/bad_rows.parquet``      the rows deliberately corrupted: source, row id, expected reason
``truth/response_model.json``   the response model's formula and coefficients
==============================  ===============================================================

Response model (truth, per customer *i* and channel *m*)::

    eta0_i      = b0 + b_gold*gold_i + b_age*age_z_i + b_dig*log1p(digital_rate_i)
    theta_im    = gamma_m + delta_m * h_im   (+ sleeping-dog shift for complainers on call)
    p_base_i    = sigmoid(eta0_i)                 # respond without contact
    p_treated_im= sigmoid(eta0_i + theta_im)      # respond when contacted through m
    uplift_im   = p_treated_im - p_base_i

with h = (digital engagement for email/push, 0 for sms, -age_z for call,
log branch rate for branch); the numbers are in ``RESPONSE_MODEL``.
The events themselves are simulated by :mod:`optimizer.c360.generator_events`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from formulations.c360 import CONTACT_CHANNELS
from formulations.errors import InputError
from optimizer.io import atomic_path, write_json

CHUNK = 50_000
REVIEW_SHARE = 0.05          # share of true customers whose complete set of CRM rows is labelled ...
REVIEW_MIN = 1000            # ... but at least about this many customers (small data sets)
DEFAULT_START = dt.date(2026, 1, 5)  # a Monday
DOMAINS = ("mail.example", "post.example", "inbox.example", "web.example", "fast.example")
SOURCE_SYSTEMS = ("branch", "call_centre", "web", "migration")
RESPONSE_MODEL = {
    "b0": -3.0, "b_gold": 0.3, "b_age": 0.2, "b_dig": 0.3,
    "gamma": {"email": 0.35, "push": 0.25, "sms": 0.35, "call": 0.9, "branch": 1.1},
    "delta": {"email": 0.45, "push": 0.5, "sms": 0.0, "call": 0.25, "branch": 0.6},
    "complainer_call_shift": -1.4,
    "true_consent_rate": {"email": 0.85, "push": 0.6, "sms": 0.7, "call": 0.8, "branch": 1.0},
}
CRM_SCHEMA = pa.schema([(c, pa.string()) for c in ("crm_id", "first_name", "last_name", "email", "phone", "postcode",
                                                    "date_of_birth", "card_number", "source_system", "updated_at")]
                       + [("do_not_contact", pa.bool_())] + [(f"consent_{c}", pa.bool_()) for c in CONTACT_CHANNELS])
BAD_SCHEMA = pa.schema([("source", pa.string()), ("row_id", pa.string()), ("reason", pa.string())])


@dataclass(frozen=True)
class Messiness:
    """Rates of the realistic mess in the raw sources (default = "default messiness").

    ``scaled(f)`` multiplies every rate by ``f`` (capped at sensible maxima).
    """

    duplicate_rate: float = 0.15        # customers with a duplicate CRM row (a third of them two)
    name_typo_rate: float = 0.2         # per name field of a duplicate row
    email_missing_primary: float = 0.03
    email_missing_duplicate: float = 0.4
    email_typo_rate: float = 0.05
    phone_missing_duplicate: float = 0.3
    moved_rate: float = 0.15            # duplicate row carries an old postcode
    dob_missing_rate: float = 0.1
    dob_swap_rate: float = 0.05
    card_missing_duplicate: float = 0.6
    household_rate: float = 0.1         # customers living with a partner (same postcode, often surname)
    shared_phone_rate: float = 0.5      # households whose CRM phone is the shared landline
    anonymous_web_share: float = 0.03   # share of web events from cookies that never log in
    bad_row_rate: float = 0.001         # corrupted rows per source (each kind of bad row)

    def scaled(self, factor: float) -> "Messiness":
        if not (factor >= 0):
            raise InputError("messiness", f"expected a factor >= 0, got {factor!r}")
        return Messiness(**{k: min(v * factor, 0.9) for k, v in asdict(self).items()})


# ---------------------------------------------------------------------------
# name pools and identifiers
# ---------------------------------------------------------------------------

_SYL = ("an", "ar", "bel", "bo", "ca", "dan", "de", "el", "em", "fi", "ga", "ha", "is", "jo", "ka", "la", "le",
        "li", "lo", "ma", "mi", "na", "ni", "no", "ol", "pa", "ra", "re", "ri", "ro", "sa", "se", "si", "ta",
        "te", "ti", "to", "va", "vi", "wil", "yo", "za")
_SUFFIX = ("son", "ley", "ford", "man", "ton", "er", "well", "wood", "field", "s", "", "")


@lru_cache(maxsize=1)
def name_pools() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first names, first-name weights, last names, last-name weights): synthetic, Zipf-like frequencies."""
    rng = np.random.default_rng(20260105)

    def pool(size: int, parts: tuple[int, int], suffix: bool) -> np.ndarray:
        seen: dict[str, None] = {}
        while len(seen) < size:
            k = int(rng.integers(parts[0], parts[1] + 1))
            s = "".join(_SYL[j] for j in rng.integers(0, len(_SYL), k))
            if suffix:
                s += _SUFFIX[int(rng.integers(0, len(_SUFFIX)))]
            if len(s) >= 3:
                seen.setdefault(s.capitalize(), None)
        return np.array(list(seen), dtype=object)

    first, last = pool(600, (2, 3), False), pool(5000, (1, 2), True)
    wf = 1.0 / (np.arange(first.size) + 15.0)
    wl = 1.0 / (np.arange(last.size) + 30.0)
    return first, wf / wf.sum(), last, wl / wl.sum()


def _scramble(x: np.ndarray, mult: int, add: int, mod: int) -> np.ndarray:
    """A bijection of [0, mod) for gcd(mult, mod) = 1 (keeps ids unique but unordered)."""
    return (np.asarray(x, dtype=np.int64) * mult + add) % mod


def crm_ids(tid: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """CRM ids of record ``copy`` (0 = primary) of true customer ``tid``."""
    num = _scramble(np.asarray(tid) * 4 + np.asarray(copy), 48271, 777_777, 1_000_000_000)
    return np.char.add("CRM", np.char.zfill(num.astype(str), 9)).astype(object)


def postcode_strings(idx: np.ndarray) -> np.ndarray:
    """Synthetic postcodes like ``KA12 7RN`` (a bijection of the index)."""
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"), dtype=object)
    i = _scramble(idx, 7919, 13, 20 * 20 * 90 * 10 * 20 * 20)
    a, b = letters[(i // 20) % 20], letters[i % 20]
    d1 = ((i // 400) % 90 + 10).astype(str)
    d2 = ((i // 36000) % 10).astype(str)
    c, e = letters[(i // 360000) % 20], letters[(i // 7200000) % 20]
    return (a + b + d1.astype(object) + " " + d2.astype(object) + c + e).astype(object)


def format_phone(num: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Render 11-digit phone strings in one of four styles (0: plain, 1: +44, 2: spaced, 3: brackets)."""
    out = np.empty(num.size, dtype=object)
    for j, (p, s) in enumerate(zip(num, style)):
        if p is None:
            out[j] = None
        elif s == 1:
            out[j] = f"+44 {p[1:5]} {p[5:]}"
        elif s == 2:
            out[j] = f"{p[:5]} {p[5:8]} {p[8:]}"
        elif s == 3:
            out[j] = f"({p[:5]}) {p[5:]}"
        else:
            out[j] = p
    return out


def typo(s: str, rng: np.random.Generator) -> str:
    """One keyboard slip: substitute, delete, transpose or insert a letter (never the first)."""
    if len(s) < 3:
        return s
    k = int(rng.integers(0, 4))
    j = int(rng.integers(1, len(s) - 1))
    letter = chr(int(rng.integers(97, 123)))
    if k == 0:
        return s[:j] + letter + s[j + 1:]
    if k == 1:
        return s[:j] + s[j + 1:]
    if k == 2:
        return s[:j] + s[j + 1] + s[j] + s[j + 2:]
    return s[:j] + letter + s[j:]


# ---------------------------------------------------------------------------
# true customers and CRM rows
# ---------------------------------------------------------------------------

def true_customers(rng: np.random.Generator, t0: int, size: int, n_total: int, mess: Messiness) -> pd.DataFrame:
    """Clean attributes, latent behaviour and the true response model of customers t0..t0+size-1."""
    first, wf, last, wl = name_pools()
    tid = np.arange(t0, t0 + size, dtype=np.int64)
    f_idx = rng.choice(first.size, size=size, p=wf)
    l_idx = rng.choice(last.size, size=size, p=wl)
    n_postcodes = max(50, n_total // 20)
    pc = rng.integers(0, n_postcodes, size)
    # households: customer j+1 lives with customer j (j even) for a share of pairs
    household = tid.copy()
    partner = np.zeros(size, dtype=bool)
    pair = np.flatnonzero((np.arange(size) % 2 == 1) & (rng.random(size) < mess.household_rate))
    partner[pair] = True
    household[pair] = tid[pair - 1]
    pc[pair] = pc[pair - 1]
    same_surname = rng.random(size) < 0.8
    l_idx[pair[same_surname[pair]]] = l_idx[pair[same_surname[pair]] - 1]
    in_household = partner.copy()
    in_household[pair - 1] = True
    dob = (np.datetime64("1940-01-01") + rng.integers(0, 66 * 365, size).astype("timedelta64[D]"))
    mobile = np.char.add("07", np.char.zfill(_scramble(tid, 48271, 12345, 10**9).astype(str), 9)).astype(object)
    landline = np.char.add("01", np.char.zfill(_scramble(household, 69621, 54321, 10**9).astype(str), 9))
    uses_landline = in_household & (rng.random(size) < mess.shared_phone_rate)
    uses_landline[pair] = uses_landline[pair - 1]           # the household shares the choice
    crm_phone = np.where(uses_landline, landline.astype(object), mobile)
    fn, ln = first[f_idx], last[l_idx]
    scr = np.char.mod("%x", _scramble(tid, 2654435761 % (2**31 - 1), 99991, 2**31 - 1))
    email = (np.char.lower(fn.astype(str)).astype(object) + "." + np.char.lower(ln.astype(str)).astype(object)
             + "." + scr.astype(object) + "@" + np.asarray(DOMAINS, dtype=object)[rng.integers(0, 5, size)])
    card = np.char.add("4", np.char.zfill(_scramble(tid, 98_245_165_313, 1_234_567, 10**15).astype(str), 15))

    consent = rng.random((size, 5)) < np.array([RESPONSE_MODEL["true_consent_rate"][c] for c in CONTACT_CHANNELS])
    dnc = rng.random(size) < 0.02
    age = (np.datetime64(DEFAULT_START) - dob).astype(np.int64) / 365.25
    inactive = rng.random(size) < np.clip((age - 30) / 150, 0.02, 0.3)   # older customers less digital
    digital_rate = np.where(inactive, 0.0, rng.lognormal(np.log(4.3) - 0.32, 0.8, size))
    app_user = (digital_rate > 0) & (rng.random(size) < 0.6)
    call_rate = rng.lognormal(np.log(0.25) - 0.18, 0.6, size)
    branch_rate = rng.lognormal(np.log(0.15) - 0.18, 0.6, size) * np.where(age > 55, 1.6, 1.0)
    complainer = rng.random(size) < 0.06
    gold = rng.random(size) < 0.25

    rm = RESPONSE_MODEL
    age_z = (age - 50.0) / 15.0
    dig = np.log1p(digital_rate)
    eta0 = rm["b0"] + rm["b_gold"] * gold + rm["b_age"] * age_z + rm["b_dig"] * dig
    h = np.stack([dig - 1.2, dig - 1.2, np.zeros(size), -age_z, np.log(branch_rate / 0.15)], axis=1)
    theta = np.array([rm["gamma"][c] for c in CONTACT_CHANNELS]) + np.array(
        [rm["delta"][c] for c in CONTACT_CHANNELS]) * h
    theta[:, 3] += rm["complainer_call_shift"] * complainer
    p_base = 1.0 / (1.0 + np.exp(-eta0))
    p_treated = 1.0 / (1.0 + np.exp(-(eta0[:, None] + theta)))

    df = pd.DataFrame({
        "true_customer": tid, "first_name": fn, "last_name": ln, "email": email, "mobile": mobile,
        "crm_phone": crm_phone, "postcode": postcode_strings(pc), "postcode_index": pc, "dob": dob,
        "card_number": card.astype(object), "household": household, "do_not_contact": dnc,
        "app_user": app_user, "gold": gold, "age": age, "complainer": complainer,
        "digital_rate": digital_rate, "call_rate": call_rate, "branch_rate": branch_rate,
        "response_logit_base": eta0, "p_base": p_base,
    })
    for m, c in enumerate(CONTACT_CHANNELS):
        df[f"consent_{c}"] = consent[:, m]
    for m, c in enumerate(CONTACT_CHANNELS):
        df[f"uplift_logit_{c}"] = theta[:, m]
        df[f"p_treated_{c}"] = p_treated[:, m]
        df[f"uplift_{c}"] = p_treated[:, m] - p_base
    return df


def crm_rows(rng: np.random.Generator, cust: pd.DataFrame, mess: Messiness, start: dt.date) -> pd.DataFrame:
    """CRM rows: one primary row per customer plus messy duplicates from other source systems."""
    size = len(cust)
    extra = (rng.random(size) < mess.duplicate_rate).astype(np.int64)
    extra += (extra > 0) & (rng.random(size) < 1 / 3)
    copies = 1 + extra
    idx = np.repeat(np.arange(size), copies)
    copy = np.arange(idx.size) - np.repeat(np.cumsum(copies) - copies, copies)
    dup = copy > 0
    c = cust.iloc[idx].reset_index(drop=True)
    n = idx.size
    first = c["first_name"].to_numpy(dtype=object).copy()
    last = c["last_name"].to_numpy(dtype=object).copy()
    for arr in (first, last):
        for j in np.flatnonzero(dup & (rng.random(n) < mess.name_typo_rate)):
            arr[j] = typo(arr[j], rng)
    upper = rng.random(n) < 0.05
    last[upper] = np.char.upper(last[upper].astype(str)).astype(object)
    email = c["email"].to_numpy(dtype=object).copy()
    for j in np.flatnonzero(dup & (rng.random(n) < mess.email_typo_rate)):
        at = email[j].index("@")
        email[j] = typo(email[j][:at], rng) + email[j][at:]
    shout = rng.random(n) < 0.05
    email[shout] = np.char.upper(email[shout].astype(str)).astype(object)
    missing = np.where(dup, rng.random(n) < mess.email_missing_duplicate, rng.random(n) < mess.email_missing_primary)
    email[missing] = None
    phone = c["crm_phone"].to_numpy(dtype=object).copy()
    other = dup & (rng.random(n) < 0.1)
    phone[other] = c["mobile"].to_numpy(dtype=object)[other]
    phone[dup & (rng.random(n) < mess.phone_missing_duplicate)] = None
    phone = format_phone(phone, rng.integers(0, 4, n))
    n_postcodes = max(50, int(c["postcode_index"].max()) + 1)
    moved = dup & (rng.random(n) < mess.moved_rate)
    postcode = c["postcode"].to_numpy(dtype=object).copy()
    postcode[moved] = postcode_strings(rng.integers(0, n_postcodes, int(moved.sum())))
    nospace = rng.random(n) < 0.1
    postcode[nospace] = np.char.replace(postcode[nospace].astype(str), " ", "").astype(object)
    dob = c["dob"].to_numpy().astype("datetime64[D]")
    dob_s = np.datetime_as_string(dob).astype(object)
    day = dob.astype("datetime64[D]") - dob.astype("datetime64[M]").astype("datetime64[D]") + 1
    swap = dup & (rng.random(n) < mess.dob_swap_rate) & (day.astype(np.int64) <= 12)
    for j in np.flatnonzero(swap):
        y, mth, d = dob_s[j].split("-")
        if mth != d:
            dob_s[j] = f"{y}-{d}-{mth}"
    dob_s[rng.random(n) < mess.dob_missing_rate * np.where(dup, 1.0, 0.3)] = None
    card = c["card_number"].to_numpy(dtype=object).copy()
    card[np.where(dup, rng.random(n) < mess.card_missing_duplicate, rng.random(n) < 0.05)] = None
    start_ts = np.datetime64(start, "s")
    age_days = np.where(dup, rng.integers(200, 3000, n), rng.integers(1, 150, n))
    updated = start_ts - (age_days * 86400).astype("timedelta64[s]")
    out = pd.DataFrame({
        "crm_id": crm_ids(c["true_customer"].to_numpy(), copy),
        "first_name": first, "last_name": last, "email": email, "phone": phone, "postcode": postcode,
        "date_of_birth": dob_s, "card_number": card,
        "source_system": np.where(dup, np.asarray(SOURCE_SYSTEMS, dtype=object)[rng.integers(0, 4, n)], "crm"),
        "updated_at": np.datetime_as_string(updated).astype(object),
        "do_not_contact": c["do_not_contact"].to_numpy(),
    })
    for ch in CONTACT_CHANNELS:
        flag = c[f"consent_{ch}"].to_numpy().copy()
        stale = dup & (rng.random(n) < 0.2)
        flag[stale] = ~flag[stale]
        out[f"consent_{ch}"] = flag
    out["true_customer"] = c["true_customer"].to_numpy()
    out["copy"] = copy
    return out


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------

class _ChunkedWriter:
    """Append DataFrames to one Parquet or CSV file per source, renamed into place on success."""

    def __init__(self, stack: contextlib.ExitStack, path: Path, fmt: str) -> None:
        self.path, self.fmt, self.stack = path, fmt, stack
        self.tmp = stack.enter_context(atomic_path(path))
        self.writer = None
        self.rows = 0

    def write(self, df: pd.DataFrame, schema: pa.Schema | None = None) -> None:
        table = pa.Table.from_pandas(df, preserve_index=False, schema=schema)
        if self.writer is None:
            if self.fmt == "parquet":
                self.writer = pq.ParquetWriter(str(self.tmp), table.schema, compression="zstd")
            else:
                import pyarrow.csv as pacsv

                self.writer = pacsv.CSVWriter(str(self.tmp), table.schema)
            self.stack.callback(self.writer.close)
        self.writer.write_table(table.cast(self.writer.schema) if self.fmt == "parquet" else table)
        self.rows += len(df)


def generate_c360(out_dir: str | Path, n_customers: int, n_weeks: int = 12, seed: int = 0, *,
                  messiness: Messiness | float | None = None, fmt: str = "parquet",
                  start: dt.date = DEFAULT_START, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the raw sources, labels and hidden truth for ``n_customers`` over ``n_weeks`` weeks.

    Parameters
    ----------
    out_dir : path
        Directory to write (created if missing; its parent must exist).
    n_customers, n_weeks, seed : int
    messiness : Messiness or float, optional
        Rates of the mess, or a factor scaling the defaults.
    fmt : {"parquet", "csv"}
        File format of the raw sources (truth and labels are always Parquet).
    start : datetime.date
        First day of the horizon (should be a Monday).
    progress : callable, optional
        ``progress(done_customers, n_customers)`` after each chunk.

    Returns
    -------
    dict
        The manifest (also written to ``manifest.json``).
    """
    from optimizer.c360.generator_events import EVENT_SCHEMAS, simulate_chunk

    if int(n_customers) < 2:
        raise InputError("--customers", f"expected at least 2 customers, got {n_customers}")
    if int(n_weeks) < 1:
        raise InputError("--weeks", f"expected a positive number of weeks, got {n_weeks}")
    if fmt not in ("parquet", "csv"):
        raise InputError("--format", f"expected parquet or csv, got {fmt!r}")
    mess = messiness if isinstance(messiness, Messiness) else Messiness().scaled(
        1.0 if messiness is None else float(messiness))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"{str(out)!r} exists and is not a directory")
    if not out.parent.exists():
        raise InputError("--out", f"directory {str(out.parent)!r} does not exist")
    for sub in ("", "truth", "labels"):
        (out / sub).mkdir(exist_ok=True)
    n, weeks = int(n_customers), int(n_weeks)
    raw_ext = "parquet" if fmt == "parquet" else "csv"
    counts: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        writers = {name: _ChunkedWriter(stack, out / f"{name}.{raw_ext}", fmt)
                   for name in ("crm", "web_events", "call_logs", "branch_visits", "contacts")}
        for name in ("identities", "customers", "devices", "bad_rows"):
            writers[f"truth/{name}"] = _ChunkedWriter(stack, out / "truth" / f"{name}.parquet", "parquet")
        writers["labels"] = _ChunkedWriter(stack, out / "labels" / "match_labels.parquet", "parquet")
        offsets = {"web_events": 0, "call_logs": 0, "branch_visits": 0, "contacts": 0}
        for c, t0 in enumerate(range(0, n, CHUNK)):
            size = min(CHUNK, n - t0)
            rng = np.random.default_rng([seed, c])
            cust = true_customers(rng, t0, size, n, mess)
            crm = crm_rows(rng, cust, mess, start)
            sources, truth = simulate_chunk(rng, cust, crm, weeks, start, mess, offsets)
            crm_out = crm.drop(columns=["true_customer", "copy"])
            bad_crm = rng.random(len(crm_out)) < mess.bad_row_rate
            crm_out.loc[bad_crm, "crm_id"] = None
            writers["crm"].write(crm_out, CRM_SCHEMA if fmt == "parquet" else None)
            truth["bad_rows"].append(pd.DataFrame({"source": "crm", "row_id": writers["crm"].rows - len(crm_out)
                                                   + np.flatnonzero(bad_crm), "reason": "missing_identifier"}))
            for name, df in sources.items():
                writers[name].write(df, EVENT_SCHEMAS.get(name) if fmt == "parquet" else None)
                offsets[name] += len(df)
            writers["truth/identities"].write(crm.loc[~bad_crm, ["crm_id", "true_customer", "copy"]])
            writers["truth/customers"].write(cust.assign(dob=cust["dob"].astype("datetime64[s]")))
            writers["truth/devices"].write(truth["devices"])
            bad = pd.concat([pd.DataFrame({"source": pd.Series([], dtype=object),
                                          "row_id": pd.Series([], dtype=np.int64),
                                          "reason": pd.Series([], dtype=object)})] + truth["bad_rows"],
                            ignore_index=True)
            writers["truth/bad_rows"].write(bad.astype({"source": str, "row_id": str, "reason": str}), BAD_SCHEMA)
            share = max(REVIEW_SHARE, min(1.0, REVIEW_MIN / n))
            reviewed = np.random.default_rng([seed, 999_999, c]).random(size) < share
            keep = reviewed[crm["true_customer"].to_numpy() - t0] & ~bad_crm
            writers["labels"].write(pd.DataFrame({"crm_id": crm["crm_id"].to_numpy()[keep],
                                                  "label": crm["true_customer"].to_numpy()[keep]}))
            if progress is not None:
                progress(t0 + size, n)
        counts = {name: w.rows for name, w in writers.items()}
    manifest = {
        "generator": "contactplan generate-c360", "customers": n, "weeks": weeks, "seed": int(seed),
        "start": start.isoformat(), "format": fmt, "messiness": asdict(mess),
        "rows": {k: v for k, v in counts.items() if "/" not in k and k != "labels"},
        "truth_rows": {k.split("/")[1]: v for k, v in counts.items() if k.startswith("truth/")},
        "labelled_records": counts["labels"],
    }
    manifest["events"] = sum(manifest["rows"][k] for k in ("web_events", "call_logs", "branch_visits"))
    write_json(manifest, out / "manifest.json")
    write_json({"formula": __doc__.split("Response model (truth, per customer *i* and channel *m*)::")[1]
                .split("The events themselves")[0].strip(), "coefficients": RESPONSE_MODEL,
                "channels": list(CONTACT_CHANNELS),
                "per_customer_file": "truth/customers.parquet (p_base, p_treated_<channel>, uplift_<channel>, "
                                     "uplift_logit_<channel>, response_logit_base)",
                "outcome_history": "contacts.<ext>: treatment=1 contacted, 0 random control; responded ~ "
                                   "Bernoulli(p_treated or p_base)"},
               out / "truth" / "response_model.json")
    return manifest


__all__ = ["Messiness", "generate_c360", "name_pools", "crm_ids", "postcode_strings", "format_phone", "typo",
           "true_customers", "crm_rows"]
