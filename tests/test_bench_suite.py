"""The benchmark suite: instance library, subprocess runner, statuses, export, reports."""

from __future__ import annotations

import highspy
import numpy as np
import pandas as pd
import pytest

from optimizer import solve
from optimizer.bench import (export_data, export_model, get_instance, load_data, load_library, performance_profile,
                             run_one, suite_instances, summarize)
from optimizer.cli import main


def test_library_is_consistent():
    instances, suites = load_library()
    for suite in suites.values():
        assert all(name in instances for name in suite["instances"])
    a, b = get_instance("tiny-binding").build(), get_instance("tiny-binding").build()
    np.testing.assert_array_equal(a.utility, b.utility)          # seeded: reproducible


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
def test_exported_model_read_back_by_highs_has_the_same_optimum(tmp_path, suffix):
    problem = get_instance("tiny-tight-k1").build()
    path = export_model(problem, tmp_path / f"week{suffix}")
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.readModel(str(path))
    h.run()
    direct = solve(problem, method="highs", rel_gap=1e-9)
    assert h.getInfo().objective_function_value == pytest.approx(direct.objective, rel=1e-9)


def test_data_export_round_trip(tmp_path):
    problem = get_instance("tiny-ineligible").build()
    back = load_data(export_data(problem, tmp_path / "inst"))
    np.testing.assert_allclose(back.utility, problem.utility.astype(np.float64))
    assert solve(back, method="highs").objective == pytest.approx(solve(problem, method="highs").objective)


def test_runner_records_statuses_in_fresh_processes():
    spec = get_instance("tiny-binding")
    ok = run_one(spec, "highs", time_limit=60)
    assert ok["status"] == "optimal" and ok["peak_rss_mb"] > 0 and ok["verified"]
    killed = run_one(get_instance("weekly-10k"), "highs-lp", time_limit=1e-3)
    assert killed["status"] in ("time_limit", "killed_time")
    mem = run_one(spec, "dual", time_limit=60, memory_limit_gb=0.05)
    assert mem["status"] in ("memory_limit", "error") and mem["status"] != "optimal"


def test_profiles_and_cli_report(tmp_path, capsys):
    suites = tmp_path / "suites.toml"
    suites.write_text('[suite.mini]\ninstances = ["a", "b"]\n[instance.a]\ncustomers = 30\n'
                      '[instance.b]\ncustomers = 40\nseed = 2\nmax_contacts = 1\n')
    out = tmp_path / "res.csv"
    code = main(["bench", "run", "--suite", "mini", "--suites", str(suites), "--methods", "highs,greedy",
                 "--time-limit", "60", "--out", str(out)])
    assert code == 0
    df = pd.read_csv(out)
    assert set(df.status) <= {"optimal", "feasible"} and len(df) == 2 * len(suite_instances("mini", suites))
    prof = performance_profile(df)
    assert prof["highs"].iloc[-1] == 1.0 and prof["greedy"].iloc[-1] == 0.0   # greedy never certifies
    assert len(summarize(df)) == len(df)
    assert main(["bench", "report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "performance_profile.png").exists() and (tmp_path / "rep" / "report.md").exists()
    # the README's performance block is regenerated from the result file, the rest is kept
    from optimizer.bench.report import README_END, README_START

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_START}\nstale\n{README_END}\nafter\n")
    assert main(["bench", "report", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    block = text.split(README_START)[1].split(README_END)[0]
    assert block.count("| a | 30 |") == 2 and block.count("| b | 40 |") == 2 and "cores" in block
    bad = tmp_path / "NOMARKERS.md"
    bad.write_text("no markers\n")
    assert main(["bench", "report", str(out), "--readme", str(bad)]) == 2 and bad.read_text() == "no markers\n"
    assert main(["bench", "report", str(out), "--readme", str(tmp_path / "missing.md")]) == 2
    assert main(["bench", "run", "--suite", "nope", "--out", str(tmp_path / "x.csv")]) == 2
