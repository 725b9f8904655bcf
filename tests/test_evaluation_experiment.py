"""Experiment design: hash assignment, sample size / power, guardrails and the stop rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from formulations.errors import InputError
from optimizer.evaluation import (Guardrail, GuardrailMonitor, assign_variants, hash_fraction,
                                  power_two_proportions, sample_size_means, sample_size_two_proportions)

ROOT = Path(__file__).resolve().parents[1]


def test_hash_assignment_is_deterministic_and_pinned():
    ids = [f"c{i:05d}" for i in range(20)]
    first = assign_variants(ids, "exp-42")
    assert (first == assign_variants(list(ids), "exp-42")).all()
    assert (hash_fraction([7], "s") == hash_fraction(["7"], "s")).all()   # ids compared as strings
    # pinned values: blake2b("s\x1f" + "7", digest_size=8), top 53 bits
    import hashlib

    word = int.from_bytes(hashlib.blake2b(b"s\x1f7", digest_size=8).digest(), "big")
    assert hash_fraction([7], "s")[0] == (word >> 11) * 2.0 ** -53


def test_hash_assignment_stable_across_processes():
    ids = [f"unit-{i}" for i in range(200)] + list(range(50))
    code = ("import json, sys; from optimizer.evaluation import assign_variants; "
            "ids = json.loads(sys.argv[1]); "
            "print(json.dumps(assign_variants(ids, 'salt-x', ['a', 'b', 'c'], [0.2, 0.3, 0.5]).tolist()))")
    # another interpreter with a different str-hash seed than this one gives the same arms
    env = dict(os.environ, PYTHONHASHSEED="12345")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(ids)], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True)
    assert json.loads(res.stdout) == assign_variants(ids, "salt-x", ["a", "b", "c"], [0.2, 0.3, 0.5]).tolist()


def test_hash_assignment_uniform_and_weighted():
    ids = np.arange(60_000)
    h = hash_fraction(ids, "uniformity")
    counts = np.histogram(h, bins=20, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3
    arms = assign_variants(ids, "w", ["control", "treatment"], [0.1, 0.9])
    share = (arms == "control").mean()
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / ids.size)
    # a new salt re-randomises independently: agreement near 0.5 for two 50/50 splits
    a1, a2 = assign_variants(ids, "salt-1"), assign_variants(ids, "salt-2")
    assert abs((a1 == a2).mean() - 0.5) < 0.01


def test_matches_policy_randomization_when_available():
    randomization = pytest.importorskip("optimizer.randomization")
    ids = ["a", "b", 3, 4.5]
    np.testing.assert_array_equal(hash_fraction(ids, "holdout"), randomization.hash_uniforms(ids, "holdout"))


def test_sample_size_textbook_value_and_power():
    res = sample_size_two_proportions(0.10, 0.20)      # 10% -> 12% (relative lift 20%)
    assert (res.n_control, res.n_treatment) == (3841, 3841)   # Fleiss, no continuity correction
    assert res.achieved_power >= 0.8
    assert power_two_proportions(res.n_control - 1, res.n_treatment - 1, 0.10, 0.20) < 0.8
    absolute = sample_size_two_proportions(0.10, 0.02, relative=False)
    assert absolute.n_control == 3841
    unequal = sample_size_two_proportions(0.05, 0.1, ratio=2.0)
    assert unequal.n_treatment == int(np.ceil(2 * unequal.n_control))
    assert unequal.achieved_power >= 0.8


def test_power_by_simulation():
    res = sample_size_two_proportions(0.2, 0.15, alpha=0.05, power=0.8)
    rng = np.random.default_rng(0)
    sims = 20_000
    xc = rng.binomial(res.n_control, 0.2, sims)
    xt = rng.binomial(res.n_treatment, 0.2 * 1.15, sims)
    pc, pt = xc / res.n_control, xt / res.n_treatment
    pooled = (xc + xt) / (res.n_control + res.n_treatment)
    z = (pt - pc) / np.sqrt(pooled * (1 - pooled) * (1 / res.n_control + 1 / res.n_treatment))
    power = (np.abs(z) > stats.norm.ppf(0.975)).mean()
    assert abs(power - res.achieved_power) < 4 * np.sqrt(0.8 * 0.2 / sims)


def test_sample_size_means_closed_form():
    res = sample_size_means(std=10.0, min_effect=2.0)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert res.n_control == int(np.ceil(2 * z ** 2 * 100 / 4))
    assert res.achieved_power >= 0.8


def test_guardrail_stop_rule():
    monitor = GuardrailMonitor([Guardrail("latency_ms", 250.0, "quantile", 0.95, min_samples=100),
                                Guardrail("complaint", 0.01, "rate", min_samples=500)])
    rng = np.random.default_rng(1)
    batches = [rng.normal(150, 30, 50), rng.normal(150, 30, 1000), rng.normal(400, 30, 5000),
               rng.normal(100, 5, 100_000)]
    first = monitor.update({"latency_ms": batches[0], "complaint": [1] * 5})
    assert not first.stop                                   # below min_samples: no decision yet
    ok = monitor.update({"latency_ms": batches[1], "complaint": np.zeros(1000)})
    assert not ok.stop and ok.values["latency_ms"] < 250
    assert ok.values["complaint"] == pytest.approx(5 / 1005)
    bad = monitor.update({"latency_ms": batches[2], "complaint": np.zeros(10)})
    assert bad.stop and bad.triggered["latency_ms"] and not bad.triggered["complaint"]
    assert "latency_ms" in bad.reason and monitor.stopped_at == 2
    assert bad.values["latency_ms"] == pytest.approx(np.quantile(np.concatenate(batches[:3]), 0.95))
    later = monitor.update({"latency_ms": batches[3]})
    assert later.stop and monitor.stopped_at == 2           # stays stopped
    frame = monitor.history_frame()
    assert frame["r_latency_ms"].tolist() == [0, 0, 1, 0] and frame["stop"].tolist() == [False, False, True, True]
    assert frame["q_latency_ms"].iloc[-1] == pytest.approx(np.quantile(np.concatenate(batches), 0.95))


def test_guardrail_window():
    monitor = GuardrailMonitor([Guardrail("err", 0.5, "mean", window=10)])
    monitor.update({"err": np.ones(100)})
    assert monitor.stopped
    monitor2 = GuardrailMonitor([Guardrail("err", 0.5, "mean", window=10)])
    monitor2.update({"err": np.ones(100)[:4]})
    check = monitor2.update({"err": np.zeros(10)})
    assert check.values["err"] == 0.0


@pytest.mark.parametrize("call, field", [
    (lambda: assign_variants(["a"], ""), "salt"),
    (lambda: assign_variants(["a"], "s", ["x", "x"]), "variants"),
    (lambda: assign_variants(["a"], "s", ["x", "y"], [1.0, -1.0]), "weights"),
    (lambda: sample_size_two_proportions(0.0, 0.1), "baseline"),
    (lambda: sample_size_two_proportions(0.9, 0.5), "lift"),
    (lambda: sample_size_two_proportions(0.1, 0.1, power=1.0), "power"),
    (lambda: sample_size_means(-1.0, 1.0), "std"),
    (lambda: Guardrail("x", 1.0, "p99"), "statistic"),
    (lambda: GuardrailMonitor([Guardrail("x", 1.0)]).update({"y": [1.0]}), "observations"),
])
def test_bad_inputs(call, field):
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field
