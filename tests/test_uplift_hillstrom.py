"""Hillstrom real-data demo: shipped copy, IPS values checked by hand, the planner's optimum, the CLI.

The full 64,000-row run is a benchmark (``docs/uplift.md``); tests use a 6,000-row sample.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from formulations.errors import InputError
from optimizer.cli import main
from optimizer.io import project_data_dir
from optimizer.uplift import hillstrom as H

SHIPPED = project_data_dir() / "hillstrom" / "hillstrom.csv"


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("hillstrom") / "sample.csv"
    pd.read_csv(SHIPPED).sample(6000, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def result(sample_csv):
    return H.run_hillstrom(sample_csv, capacity_share=0.3, objective="visit", n_bootstrap=20, random_state=1)


def test_shipped_copy_is_the_documented_file():
    assert hashlib.md5(SHIPPED.read_bytes()).hexdigest() == "b47bbd55d239c433f84e2fec6d6a1938"
    df = H.load_hillstrom()
    assert len(df) == 64_000 and df["arm"].value_counts().sort_index().tolist() == [21306, 21307, 21387]
    assert (SHIPPED.parent / "README.md").read_text().count("Hillstrom") >= 2


def test_ips_values_match_a_hand_computation(sample_csv, result):
    df = H.load_hillstrom(sample_csv)
    test = H.stratified_split(df["arm"].to_numpy(), 0.5, 1)
    held = df[test]
    v = result.values.set_index(["policy", "outcome"])
    n = len(held)
    # "no e-mail": pi(a_i) = [a_i == 0], IPS = mean(3 y [a = 0])
    assert v.loc[("no e-mail", "spend"), "value"] == pytest.approx(3 * (held["spend"] * (held["arm"] == 0)).sum() / n)
    best = result.meta["best_arm"]
    arm = H.ARMS.index(best)
    assert v.loc[(f"best arm ({best}), everyone", "visit"), "value"] == pytest.approx(
        3 * (held["visit"] * (held["arm"] == arm)).sum() / n)
    # the difference row is the difference of the two IPS values
    for outcome in H.OUTCOMES:
        diff = v.loc[("plan − random (difference)", outcome), "value"]
        assert diff == pytest.approx(v.loc[("planned targeting", outcome), "value"]
                                     - v.loc[("random targeting (same e-mails)", outcome), "value"], abs=1e-12)
        low, high = v.loc[("planned targeting", outcome), ["ci_low", "ci_high"]]
        assert low < v.loc[("planned targeting", outcome), "value"] < high


def test_doubly_robust_difference_reduces_to_ips_and_is_unbiased():
    rng = np.random.default_rng(0)
    n = 3000
    arm = rng.integers(0, 3, n)
    y = rng.random(n) < 0.1 + 0.05 * (arm == 1)
    pa = np.zeros((n, 3))
    pa[np.arange(n), rng.integers(0, 3, n)] = 1.0
    pb = np.broadcast_to([0.5, 0.25, 0.25], (n, 3))
    ips = H._difference(y.astype(float), pa[np.arange(n), arm], pb[np.arange(n), arm], 0.05)
    dr = H.dr_difference(y.astype(float), arm, pa, pb, np.zeros((n, 3)), 0.05)
    assert dr == pytest.approx(ips, abs=1e-12)
    # with the true outcome means as reward model the estimate is closer and the interval narrower
    truth = np.broadcast_to([0.1, 0.15, 0.1], (n, 3))
    dr_true = H.dr_difference(y.astype(float), arm, pa, pb, truth, 0.05)
    assert dr_true[2] - dr_true[1] < ips[2] - ips[1]
    exact = float(((pa - pb) * truth).sum(axis=1).mean())
    assert dr_true[1] <= exact <= dr_true[2]


def test_plan_respects_capacity_and_reaches_the_sorting_optimum(sample_csv, result):
    m = result.meta
    assert m["emails_planned"] <= m["capacity"] == int(0.3 * m["n_test"])
    assert sum(m["emails_by_arm"].values()) == m["emails_planned"]
    # independent optimum: one shared capacity, <= 1 e-mail each -> take the largest positive best-arm uplifts
    df = H.load_hillstrom(sample_csv)
    test = H.stratified_split(df["arm"].to_numpy(), 0.5, 1)
    from optimizer.uplift import TLearner

    cols = list(H.FEATURES)
    tau = TLearner(l2=1.0, random_state=1).fit(df[~test][cols], df[~test]["visit"], df[~test]["arm"]).predict(
        df[test][cols])
    best = np.sort(np.maximum(tau.max(axis=1), 0.0))[::-1][:m["capacity"]].sum()
    assert m["plan_objective"] == pytest.approx(best, rel=1e-3)


def test_arm_table_reports_both_arms_and_outcomes(result):
    t = result.arm_uplift
    assert sorted(t["arm"].unique()) == ["Mens E-Mail", "Womens E-Mail"] and len(t) == 6
    binary = t[t["outcome"] != "spend"]
    assert binary["qini"].notna().all() and (binary["qini_low"] <= binary["qini_high"]).all()
    assert "|" in result.markdown() and len(H.summary_lines(result)) == 3


def test_bad_inputs_are_named(tmp_path, sample_csv):
    bad = pd.read_csv(sample_csv)
    bad.drop(columns=["visit"]).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(InputError, match="visit"):
        H.load_hillstrom(tmp_path / "a.csv")
    bad.assign(segment="Kids E-Mail").to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(InputError, match="segment"):
        H.load_hillstrom(tmp_path / "b.csv")
    with pytest.raises(InputError, match="--outcome"):
        H.run_hillstrom(sample_csv, objective="revenue")
    with pytest.raises(InputError, match="--capacity"):
        H.run_hillstrom(sample_csv, capacity_share=0.0)


def test_demo_hillstrom_cli_prints_the_table(sample_csv, tmp_path, monkeypatch, capsys):
    from optimizer.cli import weekly

    monkeypatch.setattr(H, "default_path", lambda: sample_csv)
    monkeypatch.setattr(weekly.console, "width", 240)                # one table row per line
    out = tmp_path / "values.csv"
    assert main(["demo", "--hillstrom", "--out", str(out)]) == 0
    text = "".join(capsys.readouterr().out.split())
    for needle in ("plannedtargeting", "randomtargeting(samee-mails)", "plan−random(difference)", "WomensE-Mail",
                   "visit:plan", "conversion:plan", "spend:plan"):
        assert needle in text
    assert len(pd.read_csv(out)) == 8 * 3
