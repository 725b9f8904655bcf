"""The contactplan CLI: the happy path and one-line errors (exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from optimizer.cli import main


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("week")
    assert main(["generate", "--customers", "150", "--seed", "4", "--out", str(out)]) == 0
    return out


def plan_args(week: Path, out: Path, *extra: str) -> list[str]:
    return ["plan", "--scores", str(week / "scores.csv"), "--channels", str(week / "channels.csv"),
            "--budget", "60", "--max-contacts", "2", "--min-gap-days", "2", "--out", str(out), *extra]


def test_generate_writes_the_input_schema(week):
    scores = pd.read_csv(week / "scores.csv")
    channels = pd.read_csv(week / "channels.csv")
    assert list(scores.columns) == ["customer_id", "channel", "day", "utility"]
    assert set(scores.channel) <= set(channels.channel) == {"email", "push", "sms", "call", "branch"}
    assert json.loads((week / "settings.json").read_text())["max_contacts"] == 2
    assert not scores.duplicated(["customer_id", "channel", "day"]).any()


@pytest.mark.parametrize("suffix,method", [(".csv", "highs"), (".parquet", "dual"), (".csv", "greedy")])
def test_plan_writes_a_verified_plan(week, tmp_path, suffix, method, capsys):
    out = tmp_path / f"plan{suffix}"
    assert main(plan_args(week, out, "--method", method)) == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(df.columns) == ["customer_id", "channel", "day", "utility", "cost"]
    assert df.cost.sum() <= 60 + 1e-9
    printed = capsys.readouterr().out
    assert "objective" in printed and "Utilization" in printed


@pytest.mark.parametrize("mutate,needle", [
    (lambda w, t: ["plan", "--scores", str(w / "nope.csv"), "--channels", str(w / "channels.csv"), "--out",
                   str(t / "p.csv")], "does not exist"),
    (lambda w, t: plan_args(w, t / "missing" / "p.csv"), "does not exist"),
    (lambda w, t: plan_args(w, t / "p.txt"), "--out"),
    (lambda w, t: plan_args(w, t / "p.csv", "--min-gap-days", "0"), "min_gap_days"),
    (lambda w, t: plan_args(w, t / "p.csv", "--max-contacts", "-1"), "max_contacts"),
    (lambda w, t: plan_args(w, t / "p.csv", "--budget", "-5"), "budget"),
    (lambda w, t: plan_args(w, t / "p.csv", "--method", "magic"), "method"),
])
def test_bad_input_is_one_line_exit_2(week, tmp_path, mutate, needle, capsys):
    code = main(mutate(week, tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error:") and needle in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("p.*"))


@pytest.mark.parametrize("edit,needle", [
    (lambda s, c: (s.assign(channel=s.channel.where(s.index != 3, "fax")), c), "unknown channel"),
    (lambda s, c: (pd.concat([s, s.iloc[[5]]]), c), "duplicate"),
    (lambda s, c: (s.assign(utility=s.utility.astype(object).where(s.index != 2, "lots")), c), "utility"),
    (lambda s, c: (s.iloc[:0], c), "scores"),
    (lambda s, c: (s, c.assign(cost=-1.0)), "cost"),
    (lambda s, c: (s, c.drop(columns=[x for x in c.columns if x.startswith("capacity")])), "capacity"),
])
def test_bad_tables_are_rejected(week, tmp_path, edit, needle, capsys):
    scores, channels = edit(pd.read_csv(week / "scores.csv"), pd.read_csv(week / "channels.csv"))
    scores.to_csv(tmp_path / "scores.csv", index=False)
    channels.to_csv(tmp_path / "channels.csv", index=False)
    out = tmp_path / "plan.csv"
    code = main(["plan", "--scores", str(tmp_path / "scores.csv"), "--channels", str(tmp_path / "channels.csv"),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1 and not out.exists()


def test_console_script_exit_code_and_no_traceback(tmp_path):
    exe = Path(sys.executable).parent / "contactplan"
    proc = subprocess.run([str(exe), "plan", "--scores", "x.csv", "--channels", "y.csv", "--out",
                           str(tmp_path / "p.csv")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
