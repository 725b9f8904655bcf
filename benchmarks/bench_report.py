"""Benchmark of the planner report; writes ``benchmarks/report.md``.

For synthetic weeks (``optimizer.generate``: five channels, budget binding,
two contacts two days apart, eight segments) of growing size it measures:

* the plan (``method="dual"``) the report is about;
* ``write_report`` without the what-if re-solves (``frontier=False,
  price_checks=0``): figures, tables, explanations;
* the full report (budget and call-capacity frontiers of 9 points + the current setting each, at gap 1e-3,
  3 capacity price checks + 1 budget check), and its parts;
* ``plan_from_table`` + ``shadow_prices`` for a plan read back from a file
  (the re-solve the CLI does), ``explain`` for one customer, the diff
  against a plan with a 10% smaller budget;
* quality: the price checks inside their certified interval, decreases of the
  raw (non-envelope) budget frontier beyond its gaps, report size;
* headless Chromium render time (when Chromium is installed).

Peak memory is the process high-water mark (``ru_maxrss``) after each size,
sizes ascending. Run: ``nice -n 19 .venv/bin/python benchmarks/bench_report.py [--quick]``.
Timings are wall-clock on a shared 2-core machine: the 1-minute load average
(``os.getloadavg``, as ``uptime`` shows it) is recorded before and after each
size next to the timings; with a load above the core count, treat them as
upper bounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer import solve  # noqa: E402
from optimizer.explain import explain_customer, shadow_prices  # noqa: E402
from optimizer.generate import SEGMENTS, generate_problem  # noqa: E402
from optimizer.io import write_text  # noqa: E402
from optimizer.plan_diff import diff_plans  # noqa: E402
from optimizer.plan_table import plan_from_table  # noqa: E402
from optimizer.report import render_report  # noqa: E402
from optimizer.whatif import budget_curve, default_budget_grid, price_checks  # noqa: E402


from optimizer.bench.report import text_table as table  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import numba

    return (f"{platform.platform()}, Python {platform.python_version()}, {psutil.cpu_count()} cores, "
            f"numpy {np.__version__}, numba {numba.__version__}; shared machine (other jobs running)")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def renderer():
    spec = importlib.util.spec_from_file_location("render_report", ROOT / "scripts" / "render_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module if module.find_chromium() else None


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_size(n: int, tmp: Path, render) -> dict:
    load_before = os.getloadavg()[0]
    inst = generate_problem(n, seed=3)
    problem = inst.problem.replace(segment=np.asarray(SEGMENTS, dtype=object)[inst.segment])
    plan, t_plan = timed(lambda: solve(problem, method="dual"))
    prices = shadow_prices(problem, plan)
    fast, t_fast = timed(lambda: render_report(problem, plan, frontier=False, price_checks=0, prices=prices))
    checks, t_checks = timed(lambda: price_checks(problem, prices, cells=3))
    grid = default_budget_grid(problem, plan.spend, 9)
    curve, t_curve = timed(lambda: budget_curve(problem, grid, rel_gap=1e-3))
    old = solve(problem.replace(budget=0.9 * problem.budget), method="dual", warm_start=plan.duals)
    full, t_full = timed(lambda: render_report(problem, plan, previous=old.assignments, prices=prices))
    path = tmp / f"report_{n}.html"
    write_text(full, path)
    table_plan, t_read = timed(lambda: plan_from_table(problem, plan.assignments))
    _, t_reprice = timed(lambda: shadow_prices(problem, table_plan))
    who = plan.assignments.customer_id.iloc[len(plan.assignments) // 2]
    _, t_explain = timed(lambda: explain_customer(problem, plan, who, prices))
    diff, t_diff = timed(lambda: diff_plans(old.assignments, plan, problem, plan, prices))
    raw = curve.objective.to_numpy()
    bound = curve.bound.to_numpy()
    drops = int(np.sum(np.diff(raw) < 0))
    beyond = int(np.sum(raw[:-1] > bound[1:] + 1e-9 * np.abs(bound[1:])))
    t_render = None
    render_ok = None
    if render is not None:
        res, t_render = timed(lambda: render.render(path))
        render_ok = not render.check(res, render.expected_sections(full))
    return {"n": n, "plan": t_plan, "gap": plan.gap, "fast": t_fast, "checks": t_checks, "curve": t_curve,
            "full": t_full, "read": t_read, "reprice": t_reprice, "explain": t_explain, "diff": t_diff,
            "changed": len(diff.customers), "within": f"{int(checks.within.sum())}/{len(checks)}",
            "drops": drops, "beyond": beyond, "size_kb": len(full.encode()) / 1024, "fast_kb": len(fast.encode()) / 1024,
            "render": t_render, "render_ok": render_ok, "peak": peak_mb(),
            "load": f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"}


def markdown(rows: list[dict], command: str, started: str, load_start: str) -> str:
    """The benchmark page for the sizes measured so far."""
    f = (lambda x, d=2: "—" if x is None else f"{x:.{d}f}")
    timing = table(["customers", "plan (dual) s", "plan gap", "report, no what-if s", "price checks (4 re-solves) s",
                    "budget frontier (10 points) s", "full report s", "peak RSS MB", "load avg 1 min (before → after)"],
                   [[f"{r['n']:,}", f(r["plan"]), f"{r['gap']:.1e}", f(r["fast"]), f(r["checks"]), f(r["curve"]),
                     f(r["full"]), f"{r['peak']:,.0f}", r["load"]] for r in rows])
    parts = table(["customers", "plan file -> Plan s", "re-solve for prices s", "explain 1 customer s",
                   "diff (why for all changed) s", "changed customers", "Chromium render s", "renders clean"],
                  [[f"{r['n']:,}", f(r["read"], 3), f(r["reprice"]), f(r["explain"], 3), f(r["diff"]),
                    f"{r['changed']:,}", f(r["render"]), "—" if r["render_ok"] is None else str(r["render_ok"])]
                   for r in rows])
    quality = table(["customers", "price checks within interval", "raw frontier decreases",
                     "decreases beyond the gaps", "report KB (full)", "report KB (no what-if)"],
                    [[f"{r['n']:,}", r["within"], r["drops"], r["beyond"], f"{r['size_kb']:,.0f}",
                      f"{r['fast_kb']:,.0f}"] for r in rows])
    return (f"# Planner report benchmark\n\nMachine: {machine()}.\n"
            f"Run: `{command}` ({time.strftime('%Y-%m-%d', time.gmtime())}, {started} – "
            f"{time.strftime('%H:%M UTC', time.gmtime())}). "
            f"Load average (1/5/15 min, as `uptime` reports it) at the start: {load_start}; at the end: {load()} "
            "— the machine's 2 cores were shared with other jobs, so the timings are upper bounds of what a quiet "
            "machine gives.\n\nSynthetic weeks from `optimizer.generate` (seed 3, float32, budget "
            "0.45 × n, 2 contacts 2 days apart, 8 segments). The full report has both frontiers (9 points + the "
            "current setting each, frontier gap 1e-3), "
            "3 + 1 price checks, 4 + 4 explained customers and the diff against a plan with a 10% smaller budget.\n\n"
            f"## Time\n\n{timing}\n\n## Parts\n\n{parts}\n\n## Quality\n\n{quality}\n\n"
            "Price checks: the re-solved change of the objective lies in [price after − gap after, price + gap "
            "before] (see `optimizer/whatif.py`). Raw frontier decreases: points where the dual method's plan at "
            "a larger budget is worth less than at the next smaller one (a heuristic plan within its gap); "
            "'beyond the gaps' counts z(b_k) > bound(b_{k+1}), which weak duality forbids — it must be 0. The "
            "report shows the monotone envelopes.\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the two smaller sizes")
    ap.add_argument("--sizes", default=None, help="comma-separated customer counts (overrides --quick)")
    args = ap.parse_args(argv)
    sizes = [2_000, 20_000] if args.quick else [2_000, 20_000, 100_000]
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    command = "nice -n 19 .venv/bin/python benchmarks/bench_report.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    render = renderer()
    load_start, started = load(), time.strftime("%H:%M UTC", time.gmtime())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            r = run_size(n, Path(tmp), render)
            rows.append(r)
            print(r, flush=True)
            # rewritten after every size: an interrupted run leaves the sizes it measured
            text = markdown(rows, command, started, load_start)
            write_text(text, ROOT / "benchmarks" / "report.md")
    print(text)


if __name__ == "__main__":
    main()
