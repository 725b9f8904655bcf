r"""Adapter from a Customer 360 build (:mod:`optimizer.c360`) to model inputs, with the generator's truth.

State features per customer and period, in four groups (``FEATURE_GROUPS``):

=========  ==========================================================================================
group      columns (from ``features.parquet`` of the build; ``log1p`` of counts / amounts)
=========  ==========================================================================================
crm        ``age_z`` = (age − 50)/15 from the CRM date of birth (0 if unknown), ``age_missing``
digital    ``dig_activity`` = log1p(decay_digital), ``dig_recency`` = log1p(min(recency, 120 d)),
           ``app_seen`` (an app event seen so far), ``engagement`` = log1p(cumulative e-mail/push opens)
call       ``call_activity`` = log1p(decay_call), ``complaints`` = log1p(decay_complaint),
           ``complained`` (a complaint seen so far), ``call_recency``
branch     ``branch_activity`` = log1p(decay_branch), ``branch_recency``,
           ``branch_amount`` = log1p(cumulative branch amount) / 5
=========  ==========================================================================================

Point in time: period *p* of a build covers days :math:`[p\Delta, (p+1)\Delta)` and
holds the events before :math:`(p+1)\Delta - L` (data latency *L*, see
:mod:`formulations.c360`). It is known at the end of the period, so a
decision at time *t* (days from the grid start) uses period
:math:`p(t) = \lfloor t / \Delta \rfloor - 1`; contacts with :math:`p(t) < 0`
(the first period) have no state and are not used. The plan week follows the
grid, so it uses the last period :math:`P - 1`.

Truth: a resolved customer id is the smallest ``crm_id`` of its cluster, so
its true customer is that CRM row's ``true_customer``
(``truth/identities.parquet``); the true uplift per channel is
``uplift_<channel>`` of ``truth/customers.parquet``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.c360 import CONTACT_CHANNELS, GRANULARITY_DAYS
from formulations.errors import InputError

FEATURE_GROUPS = {
    "crm": ("age_z", "age_missing"),
    "digital": ("dig_activity", "dig_recency", "app_seen", "engagement"),
    "call": ("call_activity", "complaints", "complained", "call_recency"),
    "branch": ("branch_activity", "branch_recency", "branch_amount"),
}
FULL = ("crm", "digital", "call", "branch")
DIGITAL_ONLY = ("crm", "digital")
RECENCY_CAP_DAYS = 120.0


def feature_columns(groups: tuple[str, ...]) -> list[str]:
    """State columns of the given feature groups, in a fixed order."""
    return [c for g in groups for c in FEATURE_GROUPS[g]]


@dataclass
class BuildData:
    """Model inputs from one Customer 360 build.

    Attributes
    ----------
    contacts : DataFrame
        Logged contacts with a state: ``customer_id, channel (0..M-1), treatment, responded, action``
        (0 = control, m + 1 = contacted through channel m) and the state columns of every group.
    plan_state : DataFrame
        State of every customer at the last period (rows in ``customer_ids`` order).
    customer_ids : ndarray
        Customers of the build (order of ``eligible``).
    eligible : ndarray (n, M, T) of bool
    remaining : ndarray (n,) of int
        Contacts left under the contact cap.
    day_labels : list of str
    period_days : int
    latency_days : float
    """

    contacts: pd.DataFrame
    plan_state: pd.DataFrame
    customer_ids: np.ndarray
    eligible: np.ndarray
    remaining: np.ndarray
    day_labels: list[str]
    period_days: int
    latency_days: float


def _ages(raw_dir: Path, out_dir: Path, as_of: dt.date) -> pd.Series:
    """Customer id → age in years from the raw CRM dates of birth (first parseable one per customer)."""
    crm_path = next((p for p in (raw_dir / "crm.parquet", raw_dir / "crm.csv") if p.exists()), None)
    if crm_path is None:
        return pd.Series(dtype=np.float64)
    crm = (pd.read_parquet(crm_path, columns=["crm_id", "date_of_birth"]) if crm_path.suffix == ".parquet"
           else pd.read_csv(crm_path, usecols=["crm_id", "date_of_birth"], dtype=str))
    ids = pd.read_parquet(out_dir / "identity_map.parquet")
    ids = ids[ids["source"] == "crm"].rename(columns={"key": "crm_id"})[["crm_id", "customer_id"]]
    dob = pd.to_datetime(crm["date_of_birth"], errors="coerce", format="%Y-%m-%d")
    crm = crm.assign(dob=dob).dropna(subset=["dob", "crm_id"]).merge(ids, on="crm_id")
    first = crm.groupby("customer_id")["dob"].first()
    return (pd.Timestamp(as_of) - first).dt.days / 365.25


def _state(feats: pd.DataFrame, ages: pd.Series) -> pd.DataFrame:
    """State columns (module docstring) per (customer_id, period)."""
    f = feats.sort_values(["customer_id", "period"])
    g = f.groupby("customer_id", sort=False)
    age = f["customer_id"].map(ages)

    def recency(col: str) -> np.ndarray:
        return np.log1p(f[col].fillna(RECENCY_CAP_DAYS).clip(upper=RECENCY_CAP_DAYS).to_numpy(dtype=np.float64))

    return pd.DataFrame({
        "customer_id": f["customer_id"].to_numpy(), "period": f["period"].to_numpy(),
        "age_z": ((age - 50.0) / 15.0).fillna(0.0).to_numpy(), "age_missing": age.isna().to_numpy(dtype=float),
        "dig_activity": np.log1p(f["decay_digital"].to_numpy(dtype=np.float64)),
        "dig_recency": recency("recency_digital_days"),
        "app_seen": (g["n_app"].cummax() > 0).to_numpy(dtype=float),
        "engagement": np.log1p(g["n_campaign_engagement"].cumsum().to_numpy(dtype=np.float64)),
        "call_activity": np.log1p(f["decay_call"].to_numpy(dtype=np.float64)),
        "complaints": np.log1p(f["decay_complaint"].to_numpy(dtype=np.float64)),
        "complained": (g["n_complaint"].cummax() > 0).to_numpy(dtype=float),
        "call_recency": recency("recency_call_days"),
        "branch_activity": np.log1p(f["decay_branch"].to_numpy(dtype=np.float64)),
        "branch_recency": recency("recency_branch_days"),
        "branch_amount": np.log1p(g["branch_amount"].cumsum().to_numpy(dtype=np.float64)) / 5.0,
    })


def load_build(raw_dir: str | Path, out_dir: str | Path) -> BuildData:
    """Read a build (``contactplan c360 build RAW_DIR --out OUT_DIR``) into :class:`BuildData`."""
    from optimizer.c360.planning import load_eligibility

    raw, out = Path(raw_dir), Path(out_dir)
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise InputError("OUT_DIR", f"manifest.json not found in {str(out)!r}: run `contactplan c360 build` first")
    manifest = json.loads(manifest_path.read_text())
    grid = manifest["grid"]
    period_days = int(GRANULARITY_DAYS[grid["granularity"]])
    n_periods = int(grid["n_periods"])
    start = dt.date.fromisoformat(manifest["start"])
    feats = pd.read_parquet(out / "features.parquet")
    state = _state(feats, _ages(raw, out, start))
    ids, eligible, remaining, days = load_eligibility(out)
    last = state[state["period"] == n_periods - 1].set_index("customer_id").reindex(ids)
    plan_state = last.drop(columns=["period"]).fillna(0.0).reset_index()

    contacts = pd.read_parquet(out / "contacts.parquet")
    t_days = (pd.to_datetime(contacts["ts"]) - pd.Timestamp(start)).dt.total_seconds().to_numpy() / 86400.0
    period = np.floor(t_days / period_days).astype(np.int64) - 1
    keep = (period >= 0) & (period < n_periods)
    channel = pd.Index(CONTACT_CHANNELS).get_indexer(contacts["channel"])
    keep &= channel >= 0
    c = pd.DataFrame({"customer_id": contacts["customer_id"].to_numpy()[keep], "period": period[keep],
                      "channel": channel[keep], "treatment": contacts["treatment"].to_numpy(dtype=np.int64)[keep],
                      "responded": contacts["responded"].to_numpy(dtype=np.int64)[keep],
                      "weekday": ((np.floor(t_days[keep]).astype(np.int64) + start.weekday()) % 7)})
    c["action"] = np.where(c["treatment"] == 1, c["channel"] + 1, 0)
    c = c.merge(state, on=["customer_id", "period"], how="inner")
    return BuildData(contacts=c, plan_state=plan_state, customer_ids=ids, eligible=eligible, remaining=remaining,
                     day_labels=list(days), period_days=period_days, latency_days=float(grid["latency_days"]))


def true_uplift(raw_dir: str | Path, customer_ids: np.ndarray) -> np.ndarray:
    """(n, M) true uplift ``p_treated − p_base`` per resolved customer and channel (generator truth)."""
    truth = Path(raw_dir) / "truth"
    if not (truth / "customers.parquet").is_file():
        raise InputError("RAW_DIR", f"no generator truth in {str(truth)!r}: use `contactplan generate-c360` output")
    ident = pd.read_parquet(truth / "identities.parquet", columns=["crm_id", "true_customer"])
    cust = pd.read_parquet(truth / "customers.parquet",
                           columns=["true_customer", *(f"uplift_{c}" for c in CONTACT_CHANNELS)])
    who = pd.Series(customer_ids).map(ident.set_index("crm_id")["true_customer"])
    if who.isna().any():
        raise InputError("truth/identities.parquet", f"customer {customer_ids[int(np.flatnonzero(who.isna())[0])]!r} "
                                                     "has no true identity")
    table = cust.set_index("true_customer").loc[who.to_numpy(dtype=np.int64)]
    return table[[f"uplift_{c}" for c in CONTACT_CHANNELS]].to_numpy(dtype=np.float64)


# --------------------------------------------------------------------------- correctly specified truth design
TRUTH_STATE = ("gold", "age_z", "dig", "branch_h", "complainer")
TRUTH_INTERACT = ("dig", "age_z", "branch_h", "complainer")


def truth_contacts(raw_dir: str | Path) -> pd.DataFrame:
    """Raw logged contacts joined to the generator's *true* customer attributes (no pipeline involved).

    Columns: ``true_customer, channel (0..M-1), treatment, responded, action`` (0 = control, m + 1 =
    contacted through m) and the true state ``TRUTH_STATE``: ``gold``, ``age_z`` = (age − 50)/15,
    ``dig`` = log1p(digital rate), ``branch_h`` = log(branch rate / 0.15), ``complainer`` — exactly the
    quantities of the generator's response model (:mod:`optimizer.c360.generator`), so a
    :class:`~optimizer.uplift.LogisticResponse` with ``interact=TRUTH_INTERACT`` is correctly specified
    and its coefficients can be compared with :func:`true_response_coefficients`.
    """
    raw = Path(raw_dir)
    truth = raw / "truth"
    if not (truth / "customers.parquet").is_file():
        raise InputError("RAW_DIR", f"no generator truth in {str(truth)!r}: use `contactplan generate-c360` output")
    contacts_path = next((p for p in (raw / "contacts.parquet", raw / "contacts.csv") if p.exists()), None)
    if contacts_path is None:
        raise InputError("RAW_DIR", f"no contacts.parquet or contacts.csv in {str(raw)!r}")
    cols = ["crm_id", "channel", "treatment", "responded"]
    contacts = (pd.read_parquet(contacts_path, columns=cols) if contacts_path.suffix == ".parquet"
                else pd.read_csv(contacts_path, usecols=cols))
    ident = pd.read_parquet(truth / "identities.parquet", columns=["crm_id", "true_customer"])
    cust = pd.read_parquet(truth / "customers.parquet",
                           columns=["true_customer", "gold", "age", "digital_rate", "branch_rate", "complainer"])
    c = contacts.merge(ident, on="crm_id", how="inner").merge(cust, on="true_customer", how="inner")
    channel = pd.Index(CONTACT_CHANNELS).get_indexer(c["channel"])
    c = c.loc[channel >= 0]
    channel = channel[channel >= 0]
    treatment = c["treatment"].to_numpy(dtype=np.int64)
    return pd.DataFrame({
        "true_customer": c["true_customer"].to_numpy(), "channel": channel, "treatment": treatment,
        "responded": c["responded"].to_numpy(dtype=np.int64),
        "action": np.where(treatment == 1, channel + 1, 0),
        "gold": c["gold"].to_numpy(dtype=np.float64), "age_z": (c["age"].to_numpy(dtype=np.float64) - 50.0) / 15.0,
        "dig": np.log1p(c["digital_rate"].to_numpy(dtype=np.float64)),
        "branch_h": np.log(c["branch_rate"].to_numpy(dtype=np.float64) / 0.15),
        "complainer": c["complainer"].to_numpy(dtype=np.float64),
    })


def true_response_coefficients(raw_dir: str | Path | None = None) -> dict[str, float]:
    """The generator's response model as coefficients of the design of :func:`truth_contacts`.

    Names follow :func:`formulations.uplift.response_feature_names` with channel names
    ``CONTACT_CHANNELS``; with :math:`h_{email} = h_{push} = dig - 1.2`, :math:`h_{call} = -age_z`,
    :math:`h_{branch} = branch_h` the channel effect :math:`\\gamma_m + \\delta_m h_m` gives
    ``a=email`` = γ − 1.2 δ, ``email*dig`` = δ, ``call*age_z`` = −δ, ``call*complainer`` = the
    complainer shift; every other coefficient is 0. Read from ``truth/response_model.json`` when
    ``raw_dir`` is given, else from :data:`optimizer.c360.generator.RESPONSE_MODEL`.
    """
    if raw_dir is not None:
        rm = json.loads((Path(raw_dir) / "truth" / "response_model.json").read_text())["coefficients"]
    else:
        from optimizer.c360.generator import RESPONSE_MODEL as rm
    g, d = rm["gamma"], rm["delta"]
    coef = {"intercept": rm["b0"], "gold": rm["b_gold"], "age_z": rm["b_age"], "dig": rm["b_dig"],
            "branch_h": 0.0, "complainer": 0.0}
    main = {"email": g["email"] - 1.2 * d["email"], "push": g["push"] - 1.2 * d["push"], "sms": g["sms"],
            "call": g["call"], "branch": g["branch"]}
    for ch in CONTACT_CHANNELS:
        coef[f"a={ch}"] = main[ch]
    for ch in CONTACT_CHANNELS:
        for s in TRUTH_INTERACT:
            coef[f"{ch}*{s}"] = 0.0
    coef["email*dig"] = d["email"]
    coef["push*dig"] = d["push"]
    coef["sms*dig"] = d["sms"]
    coef["call*age_z"] = -d["call"]
    coef["branch*branch_h"] = d["branch"]
    coef["call*complainer"] = rm["complainer_call_shift"]
    return coef
