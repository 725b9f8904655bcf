"""Decision traces: schema, reader, evaluation from traces, and the ``contactplan evaluate --traces`` CLI."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from formulations.errors import InputError
from optimizer.cli import main
from optimizer.evaluation import evaluate_traces, off_policy_value, read_decision_traces, write_decision_traces

ACTIONS = ["none", "email", "sms"]
LOG_PROBS = np.array([0.5, 0.3, 0.2])
TARGET_PROBS = np.array([0.2, 0.6, 0.2])
MEAN_REWARD = np.array([0.01, 0.08, 0.05])
TRUTH = float(TARGET_PROBS @ MEAN_REWARD)


def _records(n: int, seed: int = 0, with_probs: bool = False):
    rng = np.random.default_rng(seed)
    acts = rng.choice(3, size=n, p=LOG_PROBS)
    rewards = (rng.random(n) < MEAN_REWARD[acts]).astype(int)
    out = []
    for i in range(n):
        rec = {"unit_id": f"c{i}", "time": 1_764_355_060 + i, "action": ACTIONS[acts[i]],
               "propensity": float(LOG_PROBS[acts[i]]), "model_version": "m1",
               "prices": {"budget": 0.8}, "reward": int(rewards[i])}
        if with_probs:
            rec["action_probabilities"] = dict(zip(ACTIONS, LOG_PROBS.tolist()))
        out.append(rec)
    return out


def _target_table(n: int, probs=TARGET_PROBS, actions=ACTIONS) -> pd.DataFrame:
    rows = [{"unit_id": f"c{i}", "action": a, "probability": p} for i in range(n) for a, p in zip(actions, probs)]
    return pd.DataFrame(rows)


def test_write_read_roundtrip(tmp_path):
    recs = _records(20, with_probs=True)
    path = write_decision_traces(recs, tmp_path / "t.jsonl")
    traces = read_decision_traces(path)
    f = traces.frame
    assert traces.n == 20 and f["decision_id"].iloc[3] == "line-4"
    assert str(f["time"].dt.tz) == "UTC" and f["time"].iloc[0] == pd.Timestamp(1_764_355_060, unit="s", tz="UTC")
    assert f["action"].tolist() == [r["action"] for r in recs]
    assert traces.prices_frame()["price_budget"].eq(0.8).all()
    assert set(traces.actions) <= set(ACTIONS)


def test_reads_the_decision_policy_format_and_skips_a_torn_last_line(tmp_path):
    # the real-time policy writes `timestamp`, a price list, null unit ids, arm and reason
    lines = [
        '{"decision_id": "p-1", "unit_id": "C1", "timestamp": 1764355060.5, "action": 3, "propensity": 0.25, '
        '"prices": [1.5], "model_version": "v1", "arm": "treatment", "reason": "policy"}',
        '{"decision_id": "p-2", "unit_id": null, "timestamp": 1764355061.0, "action": 0, "propensity": 1.0, '
        '"prices": [1.5], "model_version": "v1", "arm": "control", "reason": "control"}',
        '{"decision_id": "p-3", "unit_id": "C3", "timest',   # a writer crashed mid-line
    ]
    path = tmp_path / "policy.jsonl"
    path.write_text("\n".join(lines))
    traces = read_decision_traces(path)
    assert traces.n == 2
    assert traces.frame["reason"].tolist() == ["policy", "control"]
    assert pd.isna(traces.frame["unit_id"].iloc[1])
    assert traces.prices_frame()["price_0"].tolist() == [1.5, 1.5]
    gz = tmp_path / "policy.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("\n".join(lines[:2]) + "\n")
    assert read_decision_traces(gz).n == 2


@pytest.mark.parametrize("content, fragment", [
    ("", "no decisions"),
    ('{"unit_id": "a", "time": 1, "action": 1, "model_version": "m"}\n', "missing required field 'propensity'"),
    ('{"unit_id": "a", "time": 1, "action": 1, "propensity": 0, "model_version": "m"}\n', "(0, 1]"),
    ('{"unit_id": "a", "time": 1, "action": 1, "propensity": 1.5, "model_version": "m"}\n', "line 1"),
    ('not json\n{"unit_id": "a"}\n', "line 1: not valid JSON"),
    ('{"unit_id": "a", "time": 1, "action": [1], "propensity": 0.5, "model_version": "m"}\n', "action"),
    ('{"unit_id": "a", "time": 1, "action": 1, "propensity": 0.5, "model_version": "m", "reward": "x"}\n',
     "reward"),
    ('{"unit_id": "a", "time": "yesterday", "action": 1, "propensity": 0.5, "model_version": "m"}\n', "time"),
])
def test_bad_trace_files(tmp_path, content, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_decision_traces(path)
    assert err.value.field == "traces" and fragment in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_decision_traces(tmp_path / "nope.jsonl")


def test_evaluate_traces_known_truth(tmp_path):
    n = 8000
    path = write_decision_traces(_records(n, seed=1, with_probs=True), tmp_path / "t.jsonl")
    traces = read_decision_traces(path)
    result = evaluate_traces(traces, _target_table(n))
    table = result.table.set_index("method")
    for method in ("ips", "snips", "dr"):
        assert table.loc[method, "ci_low"] <= TRUTH <= table.loc[method, "ci_high"], method
    assert result.support_gap == 0.0
    r = traces.frame["reward"].to_numpy()
    assert result.logging_value.value == pytest.approx(r.mean())
    # the IPS row is exactly off_policy_value on the joined columns
    acts = traces.frame["action"].map({a: i for i, a in enumerate(ACTIONS)}).to_numpy()
    ips = off_policy_value(r, LOG_PROBS[acts], TARGET_PROBS[acts], "ips")
    assert table.loc["ips", "value"] == pytest.approx(ips.value)


def test_target_equal_to_logging_policy_gives_the_logged_mean(tmp_path):
    path = write_decision_traces(_records(500, seed=2), tmp_path / "t.jsonl")
    traces = read_decision_traces(path)
    result = evaluate_traces(traces, _target_table(500, LOG_PROBS), methods=["ips", "snips"])
    np.testing.assert_allclose(result.table["value"], traces.frame["reward"].mean())


def test_support_gap_reported(tmp_path):
    recs = _records(200, seed=3)
    for rec in recs:
        rec["action_probabilities"] = {"none": 0.5, "email": 0.5, "sms": 0.0}
        if rec["action"] == "sms":
            rec["action"], rec["propensity"] = "email", 0.5
    traces = read_decision_traces(write_decision_traces(recs, tmp_path / "t.jsonl"))
    result = evaluate_traces(traces, _target_table(200))
    assert result.support_gap == pytest.approx(0.2)


def test_actions_the_target_policy_cannot_take(tmp_path):
    traces = read_decision_traces(write_decision_traces(_records(50, seed=4), tmp_path / "t.jsonl"))
    target = _target_table(50, [0.3, 0.7], ["none", "email"])          # no "sms" at all
    with pytest.raises(InputError, match="which the target policy cannot take"):
        evaluate_traces(traces, target)
    with pytest.raises(InputError, match="sum to"):
        evaluate_traces(traces, _target_table(50, [0.3, 0.3, 0.3]))
    with pytest.raises(InputError, match="no probabilities for unit_id"):
        evaluate_traces(traces, _target_table(10))


# --------------------------------------------------------------------------- CLI


def test_cli_traces_with_outcomes_and_delay_correction(tmp_path, capsys):
    n = 3000
    recs = _records(n, seed=5)
    for rec in recs:
        rec.pop("reward")
    trace_path = write_decision_traces(recs, tmp_path / "t.jsonl")
    _target_table(n).to_csv(tmp_path / "target.csv", index=False)
    rng = np.random.default_rng(0)
    pd.DataFrame({"unit_id": [f"c{i}" for i in range(n)], "reward": rng.integers(0, 2, n)}).to_csv(
        tmp_path / "outcomes.csv", index=False)
    out = tmp_path / "ope.md"
    code = main(["evaluate", "--traces", str(trace_path), "--target", str(tmp_path / "target.csv"),
                 "--outcomes", str(tmp_path / "outcomes.csv"), "--n-bootstrap", "50", "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "| ips |" in text and "logging policy" in text
    # delayed outcomes: converted / elapsed / delay columns
    elapsed = rng.uniform(0.1, 10, n)
    delay = rng.exponential(2.0, n)
    converted = (rng.random(n) < 0.3) & (delay <= elapsed)
    pd.DataFrame({"unit_id": [f"c{i}" for i in range(n)], "converted": converted.astype(int), "elapsed": elapsed,
                  "delay": np.where(converted, delay, np.nan)}).to_csv(tmp_path / "conv.csv", index=False)
    code = main(["evaluate", "--traces", str(trace_path), "--target", str(tmp_path / "target.csv"),
                 "--outcomes", str(tmp_path / "conv.csv"), "--ci", "normal", "--out", str(tmp_path / "o.csv")])
    assert code == 0
    assert "corrected" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "o.csv")) == 5


def test_cli_bad_input_one_line_error_and_nothing_written(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"unit_id": "a", "time": 1, "action": 1, "propensity": 0.0, "model_version": "m"}\n')
    (tmp_path / "target.csv").write_text("unit_id,action,probability\na,1,1.0\n")
    out = tmp_path / "never.md"
    code = main(["evaluate", "--traces", str(bad), "--target", str(tmp_path / "target.csv"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: traces: line 1") and err.count("\n") == 1
    assert not out.exists()
    assert main(["evaluate", "--traces", str(bad)]) == 2
    assert main(["evaluate"]) == 2
