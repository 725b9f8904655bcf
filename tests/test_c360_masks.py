"""Eligibility mask: consent (latest CRM record), reachability, cooling after calls, contact caps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from formulations.c360 import CONTACT_CHANNELS, cooling_allowed
from optimizer.c360.planning import load_eligibility
from tests.c360_helpers import built, raw_dir


def test_cooling_formula_hand_solved():
    # last call 3 days before the plan start, g = 5: calls allowed from plan day 2 on
    got = cooling_allowed(np.arange(7), np.array([3.0, np.nan, 10.0]), 5)
    assert got[0].tolist() == [False, False, True, True, True, True, True]
    assert got[1].all() and got[2].all()


def test_eligibility_matches_reference_rules():
    out, result = built()
    cooling, cap, window = 7, 4, 28
    ids, mask, remaining, days = load_eligibility(out)
    assert mask.shape == (result.n_customers, len(CONTACT_CHANNELS), 7) and days == list(result.day_labels)
    plan_start = result.plan_start
    as_of = pd.Timestamp(result.as_of)

    # consent: the latest CRM record of each customer, straight from the raw file
    crm = pd.read_parquet(raw_dir() / "crm.parquet")
    imap = pd.read_parquet(out / "identity_map.parquet")
    crm = crm.merge(imap[imap["source"] == "crm"].rename(columns={"key": "crm_id"}), on="crm_id")
    crm["updated"] = pd.to_datetime(crm["updated_at"])
    latest = crm.sort_values(["updated", "crm_id"]).groupby("customer_id").tail(1).set_index("customer_id")
    dnc = crm.groupby("customer_id")["do_not_contact"].any()
    has_email = crm.assign(ok=crm["email"].str.contains("@", na=False)).groupby("customer_id")["ok"].any()
    has_phone = crm.assign(ok=crm["phone"].notna()).groupby("customer_id")["ok"].any()

    ev = pd.read_parquet(out / "events.parquet")
    ev = ev[ev["ts"] < as_of]
    has_app = set(ev.loc[ev["channel"] == "app", "customer_id"])
    contacts = pd.read_parquet(out / "contacts.parquet")
    contacts = contacts[(contacts["ts"] < as_of) & (contacts["treatment"] == 1)]
    last_in = ev[ev["type"] == "call"].groupby("customer_id")["ts"].max()
    last_out = contacts[contacts["channel"] == "call"].groupby("customer_id")["ts"].max()
    last_call = pd.concat([last_in, last_out]).groupby(level=0).max()
    recent = contacts[contacts["ts"] >= as_of - pd.Timedelta(days=window)].groupby("customer_id").size()

    checked = {"cooling": 0, "cap": 0, "consent": 0}
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ids), 600, replace=False):
        cid = ids[i]
        left = max(cap - int(recent.get(cid, 0)), 0)
        assert remaining[i] == left
        for m, ch in enumerate(CONTACT_CHANNELS):
            reach = {"email": bool(has_email[cid]), "push": cid in has_app, "sms": bool(has_phone[cid]),
                     "call": bool(has_phone[cid]), "branch": True}[ch]
            base = bool(latest.loc[cid, f"consent_{ch}"]) and not dnc[cid] and reach and left > 0
            for d in range(7):
                want = base
                if ch == "call" and cid in last_call.index:
                    day = plan_start + dt.timedelta(days=d)
                    want = base and (day - last_call[cid].date()).days >= cooling
                    checked["cooling"] += base and not want
                assert mask[i, m, d] == want, (cid, ch, d)
            checked["consent"] += not latest.loc[cid, f"consent_{ch}"]
        checked["cap"] += left == 0
    assert checked["cooling"] > 0 and checked["consent"] > 0       # the rules actually bit on this sample


def test_cooling_and_cap_parameters_move_the_mask(tmp_path):
    from optimizer.c360 import BuildOptions, build_c360

    out, _ = built()
    _, base, _, _ = load_eligibility(out)
    strict = build_c360(raw_dir(), tmp_path / "strict", BuildOptions(cooling_days=28, contact_cap=1,
                                                                        cap_window_days=28))
    _, mask, remaining, _ = load_eligibility(tmp_path / "strict")
    assert strict.n_customers == base.shape[0]
    assert (mask <= base).all()                                    # stricter rules only remove contacts
    assert mask[:, 3].sum() < base[:, 3].sum()                     # longer cooling removes calls
    assert (remaining <= 1).all() and (remaining == 0).any()
    assert not mask[remaining == 0].any()
    with pytest.raises(Exception, match="cooling_days"):
        build_c360(raw_dir(), tmp_path / "bad", BuildOptions(cooling_days=-1))
