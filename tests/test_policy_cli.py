"""``contactplan policy simulate``: runs, writes its report atomically, refuses bad input with exit code 2."""

from __future__ import annotations

import json

import pytest

from optimizer.cli import main


def test_simulate_writes_report(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["policy", "simulate", "--events", "20000", "--step", "0.003", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["runs"]) == {"hindsight batch price", "pilot price, fixed", "online dual ascent"}
    online = report["runs"]["online dual ascent"]
    assert abs(online["spend_after_warmup"]) < 0.05
    assert "online dual ascent" in capsys.readouterr().out


@pytest.mark.parametrize("args, field", [
    (["--budget", "-1"], "--budget"),
    (["--events", "10"], "--events"),
    (["--warmup", "0.9"], "--warmup"),
    (["--feedback", "x"], "--feedback"),
    (["--temperature", "-1"], "temperature"),
])
def test_bad_input(args, field, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["policy", "simulate", "--events", "5000", *args, "--out", str(out)]) == 2
    assert f"error: {field}" in capsys.readouterr().err
    assert not out.exists()
