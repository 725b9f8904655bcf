"""The Open Bandit real-data check: data, BTS action distribution, table and CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from optimizer.cli import main
from optimizer.evaluation.open_bandit import (N_ITEMS, action_frequencies, bts_action_distribution,
                                              evaluate_open_bandit, load_bts_prior, load_open_bandit)
from optimizer.evaluation.reward_model import PRIOR_GRID, TabularRewardModel, cross_fit_reward_table


@pytest.fixture(scope="module")
def logs():
    return load_open_bandit()


def test_shipped_sample(logs):
    assert logs["random"].n == logs["bts"].n == 10_000
    assert int(logs["random"].click.sum()) == 38 and int(logs["bts"].click.sum()) == 42
    np.testing.assert_allclose(logs["random"].propensity, 1 / 80)
    assert ((logs["bts"].propensity > 0) & (logs["bts"].propensity <= 1)).all()
    freq = action_frequencies(logs["bts"])
    np.testing.assert_allclose(freq.sum(axis=0), 1.0)


def test_bts_top_slot_probability_matches_numerical_integration():
    alpha, beta = load_bts_prior()
    pi = bts_action_distribution(alpha, beta, n_sim=20_000, random_state=3)
    np.testing.assert_allclose(pi.sum(axis=0), 1.0)
    # P(item a is ranked first) = integral of f_a(t) prod_{b != a} F_b(t) dt (independent Beta draws);
    # the posteriors put no visible mass above 0.012 (the integrals sum to 1 below)
    t = np.linspace(0.0, 0.012, 6001)
    cdf = special.betainc(alpha[:, None], beta[:, None], t[None, :])
    dens = stats.beta.pdf(t[None, :], alpha[:, None], beta[:, None])
    exact = np.array([np.trapezoid(dens[a] * np.prod(np.delete(cdf, a, axis=0), axis=0), t)
                      for a in range(alpha.size)])
    assert exact.sum() == pytest.approx(1.0, abs=1e-5)
    se = np.sqrt(exact * (1 - exact) / 20_000) + 1e-4
    assert np.all(np.abs(pi[:, 0] - exact) < 4.5 * se)


def test_table_against_hand_formulas(logs):
    table = evaluate_open_bandit(alpha=0.05, n_bootstrap=30, n_sim=5000, random_state=0)
    assert len(table) == 15 and set(table["estimator"]) == {"ips", "snips", "dm", "dr", "switch-dr"}
    rnd, bts = logs["random"], logs["bts"]
    back = table[(table["logs"] == "bts") & (table["estimator"] == "ips")].iloc[0]
    assert back["truth"] == pytest.approx(rnd.click.mean())
    assert back["estimate"] == pytest.approx(np.mean((1 / 80) / bts.propensity * bts.click))
    fwd = table[(table["logs"] == "random") & (table["estimator"] == "ips")].iloc[0]
    pi = bts_action_distribution(*load_bts_prior(), n_sim=5000)
    assert fwd["truth"] == pytest.approx(bts.click.mean())
    assert fwd["estimate"] == pytest.approx(np.mean(N_ITEMS * pi[rnd.item, rnd.position] * rnd.click))
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()
    assert (table["rel_ci_low"] <= table["rel_error"] + 1e-12).all()
    np.testing.assert_allclose(table["rel_error"], table["estimate"] / table["truth"] - 1)


def test_cli_open_bandit_writes_markdown(tmp_path):
    out = tmp_path / "open_bandit.md"
    code = main(["evaluate", "--open-bandit", "--n-bootstrap", "20", "--n-sim", "2000", "--out", str(out),
                 "--quiet"])
    assert code == 0
    text = out.read_text()
    assert text.startswith("# Open Bandit Dataset") and text.count("| random from BTS log |") == 5


# --------------------------------------------------------------------------- the reward model


def test_tabular_reward_model_by_hand_and_brute_force_cross_validation():
    rng = np.random.default_rng(0)
    n = 3000
    g, a = rng.integers(0, 3, n), rng.integers(0, 7, n)
    r = (rng.random(n) < 0.1 + 0.02 * a).astype(float)
    fixed = TabularRewardModel(prior_strength=10).fit(g, a, r, 3, 7)
    sel = g == 1
    mu_g = (r[sel].sum() + 10 * r.mean()) / (sel.sum() + 10)
    cell = sel & (a == 4)
    assert fixed.table_[1, 4] == pytest.approx((r[cell].sum() + 10 * mu_g) / (cell.sum() + 10))
    assert fixed.predict([1], [4])[0] == fixed.table_[1, 4]
    model = TabularRewardModel(n_folds=5, random_state=0).fit(g, a, r, 3, 7)
    folds = np.random.default_rng(0).integers(0, 5, n)
    for m in PRIOR_GRID:
        sq = 0.0
        for k in range(5):
            train, test = folds != k, folds == k
            table = TabularRewardModel(prior_strength=m).fit(g[train], a[train], r[train], 3, 7).table_
            sq += ((r[test] - table[g[test], a[test]]) ** 2).sum()
        assert model.cv_errors_[m] == pytest.approx(sq / n)
    assert model.prior_strength_ == min(model.cv_errors_, key=model.cv_errors_.get)


def test_cross_fit_rows_never_see_their_own_reward():
    rng = np.random.default_rng(1)
    n = 400
    g, a = np.zeros(n, dtype=int), rng.integers(0, 2, n)
    r = rng.normal(size=n)
    base = cross_fit_reward_table(g, a, r, 1, 2, prior_strength=0.0)
    r2 = r.copy()
    r2[7] += 100.0
    moved = cross_fit_reward_table(g, a, r2, 1, 2, prior_strength=0.0)
    assert moved[7] == pytest.approx(base[7])         # row 7's prediction ignores row 7
    assert not np.allclose(moved, base)
