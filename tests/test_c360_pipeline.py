"""End to end: generate-c360 → c360 build (CLI contract) → PlanningProblem → plan; rejects; bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from formulations.c360 import CONTACT_CHANNELS
from formulations.errors import InputError
from optimizer import PlanningProblem, solve, verify
from optimizer.c360 import planning_problem
from optimizer.c360.planning import load_eligibility, simple_utility
from optimizer.cli import main
from tests.c360_helpers import built, raw_dir


def test_cli_generate_build_plan(tmp_path, capsys):
    # small on purpose: the simple utility rule gives many customers identical utilities, and the MIP of
    # a few hundred customers is already solved exactly in well under a second
    raw, out = tmp_path / "raw", tmp_path / "c360"
    assert main(["generate-c360", "--customers", "200", "--weeks", "2", "--seed", "3", "--out", str(raw)]) == 0
    for name in ("crm", "web_events", "call_logs", "branch_visits", "contacts"):
        assert (raw / f"{name}.parquet").is_file()
    for name in ("identities", "customers", "devices", "bad_rows"):
        assert (raw / "truth" / f"{name}.parquet").is_file()
    assert main(["c360", "build", str(raw), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "precision / recall / F1" in text
    for name in ("features.parquet", "eligibility.parquet", "identity_map.parquet", "customers.parquet",
                 "events.parquet", "rejects.parquet", "identity_report.json", "manifest.json"):
        assert (out / name).is_file(), name
    assert not any(p.name.startswith(".c360-staging") for p in out.iterdir())
    report = json.loads((out / "identity_report.json").read_text())
    assert f"{report['all_records']['f1']:.4f}" in text
    assert report["model_source"] == "labels" and "labelled pairs" in text
    assert main(["c360", "plan", str(out), "--out", str(tmp_path / "plan.csv"), "--method", "highs",
                 "--rel-gap", "1e-6", "--time-limit", "120"]) == 0
    plan = pd.read_csv(tmp_path / "plan.csv")
    assert len(plan) > 0 and set(plan["channel"]) <= set(CONTACT_CHANNELS)
    # the plan file is the optimum of the PlanningProblem of the build, and respects its mask
    problem = planning_problem(out)
    best = solve(problem, method="highs", rel_gap=1e-6)
    assert best.status == "optimal"
    assert plan["utility"].sum() == pytest.approx(best.objective, rel=1e-5)
    ids, eligible, _, days = load_eligibility(out)
    i = pd.Index(ids).get_indexer(plan["customer_id"].astype(str))
    m = pd.Index(CONTACT_CHANNELS).get_indexer(plan["channel"])
    d = pd.Index(days).get_indexer(plan["day"].astype(str))
    assert (i >= 0).all() and (m >= 0).all() and (d >= 0).all()
    assert eligible[i, m, d].all()


def test_features_to_planning_problem_to_plan():
    out, result = built()
    full = planning_problem(out)
    assert isinstance(full, PlanningProblem)
    assert full.shape == (result.n_customers, 5, 7)
    assert tuple(full.channel_names) == CONTACT_CHANNELS
    # an exact solve on a segment of 150 customers (the full 3,000 are a benchmark-sized MIP)
    all_ids, all_eligible, all_remaining, _ = load_eligibility(out)
    segment = sorted(pd.Series(all_ids).sample(150, random_state=2))
    problem = planning_problem(out, customers=segment)
    assert problem.shape == (150, 5, 7) and list(problem.customer_ids) == segment
    pos = pd.Index(all_ids).get_indexer(segment)
    assert (problem.eligible == all_eligible[pos]).all()
    plan = solve(problem, method="highs", rel_gap=1e-6)
    assert plan.status == "optimal" and verify(problem, plan).ok
    ids, eligible, remaining = all_ids[pos], all_eligible[pos], all_remaining[pos]
    idx = plan.assignment_indices
    assert eligible[idx[:, 0], idx[:, 1], idx[:, 2]].all()          # the mask is respected
    per_customer = np.bincount(idx[:, 0], minlength=ids.size)
    assert (per_customer <= np.minimum(2, remaining)).all()
    # the documented utility rule, recomputed by hand for one planned contact
    feats = pd.read_parquet(out / "features.parquet")
    last = feats[feats["period"] == result.grid.n_periods - 1].set_index("customer_id").loc[ids]
    u = simple_utility(last, list(result.day_labels))
    i, m, d = idx[0]
    z = last.iloc[i][{0: "decay_digital", 1: "decay_digital", 2: "decay_digital", 3: "decay_call",
                      4: "decay_branch"}[m]]
    from optimizer.generate import BASE_UPLIFT, COST, DAY_EFFECT
    assert u[i, m, d] == pytest.approx(80 * BASE_UPLIFT[m] * (1 + np.log1p(z)) * DAY_EFFECT[m, d] - COST[m])
    assert plan.assignments["utility"].iloc[0] == pytest.approx(u[i, m, d])
    with pytest.raises(InputError, match="customers"):
        planning_problem(out, customers=["NO-SUCH-ID"])


def test_every_injected_bad_row_is_rejected_with_its_reason():
    out, result = built()
    rejects = pd.read_parquet(out / "rejects.parquet")
    bad = pd.read_parquet(raw_dir() / "truth" / "bad_rows.parquet")
    assert set(bad["reason"]) == {"unparseable_time", "unknown_type", "missing_identifier", "out_of_range_time",
                                  "bad_value"}
    merged = bad.merge(rejects, on=["source", "row_id"], how="left", suffixes=("_expected", "_got"))
    assert merged["reason_got"].notna().all(), merged[merged["reason_got"].isna()].head()
    assert (merged["reason_expected"] == merged["reason_got"]).all()
    # nothing is silently dropped: every raw event row is either an event or a reject
    manifest = json.loads((raw_dir() / "manifest.json").read_text())
    for source in ("web_events", "call_logs", "branch_visits", "contacts", "crm"):
        n_rej = int((rejects["source"] == source).sum())
        used = {"web_events": ("digital",), "call_logs": ("call",), "branch_visits": ("branch",)}
        ev = pd.read_parquet(out / "events.parquet", columns=["type"])
        if source in used:
            assert (ev["type"] == used[source][0]).sum() + n_rej == manifest["rows"][source]
    n_contacts = len(pd.read_parquet(out / "contacts.parquet"))
    assert n_contacts + int((rejects["source"] == "contacts").sum()) == manifest["rows"]["contacts"]
    assert result.identity.n_records + int((rejects["source"] == "crm").sum()) == manifest["rows"]["crm"]
    assert rejects["detail"].notna().sum() > 0


def test_csv_sources_give_the_same_build():
    out_p, res_p = built()
    out_c, res_c = built(fmt="csv")
    assert res_c.identity.scores.f1 == pytest.approx(res_p.identity.scores.f1)
    assert res_c.n_events == res_p.n_events
    order = ["customer_id", "period"]
    f_p = pd.read_parquet(out_p / "features.parquet").sort_values(order, ignore_index=True)
    f_c = pd.read_parquet(out_c / "features.parquet").sort_values(order, ignore_index=True)
    pd.testing.assert_frame_equal(f_p, f_c)


def test_handwritten_bad_rows_in_csv(tmp_path):
    """A tiny raw directory written by hand: each kind of bad row, and the run still finishes."""
    from optimizer.c360 import BuildOptions, build_c360

    raw = tmp_path / "raw"
    raw.mkdir()
    cons = ",".join(f"consent_{c}" for c in CONTACT_CHANNELS)
    (raw / "crm.csv").write_text(
        f"crm_id,first_name,last_name,email,phone,postcode,date_of_birth,card_number,updated_at,do_not_contact,{cons}\n"
        "C1,Ann,Lee,ann@x.example,07700900001,AB1 2CD,1980-02-03,4111,2025-01-01,false,true,true,true,true,true\n"
        "C2,Bob,Ray,bob@x.example,07700900002,AB1 2CD,1975-05-06,4222,2025-01-01,false,true,false,true,true,true\n"
        "C1,Dup,Key,dup@x.example,07700900009,ZZ9 9ZZ,1970-01-01,4999,2025-01-01,false,true,true,true,true,true\n"
        ",No,Id,noid@x.example,07700900003,AB1 2CD,1990-01-01,4333,2025-01-01,false,true,true,true,true,true\n"
        "C4,Cy,Ray,cy@x.example,07700 900002,AB1 2CD,1977-07-08,4444,2025-01-01,false,true,true,true,true,true\n")
    (raw / "web_events.csv").write_text(
        "event_id,ts,cookie_id,device_type,event_type,login_email\n"
        "1,2026-01-05T10:00:00,11,web,login,ANN@x.example\n"
        "2,2026-01-06T10:00:00,11,web,page_view,\n"
        "3,not a time,11,web,page_view,\n"
        "4,2030-01-01T00:00:00,11,web,page_view,\n"
        "5,2026-01-06T10:00:00,11,web,teleport,\n"
        "6,2026-01-06T10:00:00,,web,page_view,\n"
        "7,2026-01-06T10:00:00,99,web,page_view,\n")
    (raw / "call_logs.csv").write_text(
        "call_id,start_time,phone,caller_name,outcome_code,duration_s,direction\n"
        "1,07/01/2026 09:00:00,+44 7700 900002,Bob Ray,COMPLAINT,120,inbound\n"
        "2,07/01/2026 09:00:00,+44 7700 900002,Bob Ray,COMPLAINT,minus five,inbound\n"
        "3,07/01/2026 09:00:00,07700 900555,Zed Unknown,INFO,60,inbound\n"
        "4,07/01/2026 10:00:00,07700900002,Ann Smith,INFO,60,inbound\n")       # shared phone, name fits neither
    (raw / "branch_visits.csv").write_text(
        "visit_id,visit_time,card_number,customer_name,branch_id,visit_type,amount\n"
        "1,2026-01-08 11:00,4111,Ann Lee,BR1,TRANSACTION,12.5\n"
        "2,2026-01-08 11:00,4111,Ann Lee,BR1,TRANSACTION,-3\n"
        "3,2026-01-08,4111,Ann Lee,BR1,ENQUIRY,\n")
    (raw / "contacts.csv").write_text(
        "contact_id,crm_id,ts,channel,treatment,responded\n"
        "1,C1,2026-01-06 10:00:00,email,1,0\n"
        "2,C1,2026-01-06 10:00:00,fax,1,0\n"
        "3,C1,2026-01-06 10:00:00,sms,2,0\n"
        "4,C9,2026-01-06 10:00:00,sms,1,0\n"
        "5,,2026-01-06 10:00:00,sms,1,0\n"
        "6,C2,someday,sms,1,0\n")
    result = build_c360(raw, tmp_path / "out", BuildOptions(start=pd.Timestamp("2026-01-05").date(), weeks=1))
    rej = pd.read_parquet(tmp_path / "out" / "rejects.parquet")
    got = {(r.source, r.row_id): r.reason for r in rej.itertuples()}
    assert got == {
        ("crm", "2"): "duplicate_key", ("crm", "3"): "missing_identifier",
        ("web_events", "3"): "unparseable_time", ("web_events", "4"): "out_of_range_time",
        ("web_events", "5"): "unknown_type", ("web_events", "6"): "missing_identifier",
        ("web_events", "7"): "unresolved_identity",
        ("call_logs", "2"): "bad_value", ("call_logs", "3"): "unresolved_identity",
        ("call_logs", "4"): "ambiguous_identity",
        ("branch_visits", "2"): "bad_value", ("branch_visits", "3"): "unparseable_time",
        ("contacts", "2"): "unknown_type", ("contacts", "3"): "bad_value", ("contacts", "4"): "unresolved_identity",
        ("contacts", "5"): "missing_identifier", ("contacts", "6"): "unparseable_time",
    }
    assert rej["detail"].notna().sum() >= 10                     # the offending value is kept for review
    assert result.n_events == 4 and result.n_customers == 3 and result.n_contacts == 1
    assert result.identity.scores is None                       # no truth: no quality report
    # no labels in RAW_DIR: the documented default match rule, and the report says so
    assert result.identity.model_source == "default rule"
    report = json.loads((tmp_path / "out" / "identity_report.json").read_text())
    assert report["model_source"] == "default rule"
    imap = pd.read_parquet(tmp_path / "out" / "identity_map.parquet")
    assert sorted(imap.loc[imap["source"] == "crm", "customer_id"]) == ["C1", "C2", "C4"]   # Cy is not Bob
    feats = pd.read_parquet(tmp_path / "out" / "features.parquet").set_index("customer_id")
    assert feats.loc["C1", "n_digital"] == 2 and feats.loc["C1", "n_branch"] == 1
    assert feats.loc["C2", "n_complaint"] == 1 and feats.loc["C2", "last_call_outcome"] == "complaint"
    assert feats.loc["C1", "n_contacts"] == 1 and feats.loc["C4", "n_call"] == 0


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["c360", "build", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "error: RAW_DIR: source 'crm' not found" in capsys.readouterr().err
    assert main(["c360", "build", str(raw_dir()), "--out", str(tmp_path / "o"), "--granularity", "month"]) == 2
    assert "granularity" in capsys.readouterr().err
    assert main(["c360", "build", str(raw_dir()), "--out", str(tmp_path / "o"), "--decay", "2"]) == 2
    assert "decay" in capsys.readouterr().err
    assert main(["generate-c360", "--customers", "1", "--out", str(tmp_path / "g")]) == 2
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
