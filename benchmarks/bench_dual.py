"""Issue 4: the numba dual core from 10k to 10M customers, against HiGHS LP/MIP where they finish.

Writes ``benchmarks/dual.md``: per n, method, build/solve time, iterations, time per
iteration, objective, bound, gap, peak RSS (each run a fresh process). At 10k it
also reports the dual's distance to the HiGHS MIP optimum and its speed-up over
HiGHS solving the LP relaxation of the same instance, in a fresh process and with
the compiled kernels already loaded (``dual (kernels loaded)``).

    python benchmarks/bench_dual.py [--skip-10m] [--time-limit 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from optimizer.bench import get_instance
from optimizer.bench.report import machine_line, markdown_table, summarize
from optimizer.bench.runner import machine_info, run_one
from optimizer.io import write_table, write_text

HERE = Path(__file__).resolve().parent
WARM = "dual (kernels loaded)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--skip-10m", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs per dual row (the 10k kernels-loaded row: at least 5)")
    ap.add_argument("--keep-highs", action="store_true",
                    help="re-measure the dual rows only; keep the HiGHS rows of results/dual.csv (and say so)")
    args = ap.parse_args()
    kept, kept_note = [], ""
    if args.keep_highs:
        old = pd.read_csv(HERE / "results" / "dual.csv")
        kept = old[old.method.isin(["highs", "highs-lp"])].to_dict("records")
        text = (HERE / "dual.md").read_text() if (HERE / "dual.md").exists() else ""
        header = text.split(" on ", 1)[0]
        when = header.rsplit("Measured ", 1)[-1] if "Measured " in header else "an earlier run"
        if "kept from the run measured " in text:     # kept before: the time they were measured
            when = text.split("kept from the run measured ", 1)[1].split(" (not re-measured)", 1)[0]
        kept_note = f" The HiGHS rows are kept from the run measured {when} (not re-measured)."
    plan = [("weekly-10k", ["dual", WARM, "highs-lp", "highs"]), ("weekly-100k", ["dual", "highs-lp"]),
            ("weekly-1m", ["dual"])]
    if not args.skip_10m:
        plan.append(("weekly-10m", ["dual"]))
    rows = list(kept)
    for name, methods in plan:
        spec = get_instance(name)
        for method in methods:
            if args.keep_highs and method in ("highs", "highs-lp"):
                continue
            repeats = max(args.repeat, 5) if method == WARM else args.repeat if method == "dual" else 1
            for r in range(repeats):
                row = run_one(spec, "dual" if method == WARM else method, time_limit=args.time_limit, repeat=r,
                              warm=method == WARM)
                rows.append(row)
                print(name, method, row.get("status"), row.get("wall_time"), row.get("gap"), flush=True)
                write_table(pd.DataFrame(rows), HERE / "results" / "dual.csv")
    df = pd.DataFrame(rows)
    summary = summarize(df)
    dual = summary[summary.method == "dual"].copy()
    dual["per_iteration_s"] = dual.solve_time / dual.iterations
    lines = ["| n | iterations | solve s | s per iteration | per iteration per 1M customers |", "|---|---|---|---|---|"]
    for _, r in dual.iterrows():
        lines.append(f"| {int(r.customers):,} | {int(r.iterations)} | {r.solve_time:.3g} | {r.per_iteration_s:.3g} | "
                     f"{r.per_iteration_s / r.customers * 1e6:.3g} |")
    extra = ""
    k10 = summary[summary.instance == "weekly-10k"].set_index("method")
    if {"dual", WARM, "highs-lp", "highs"} <= set(k10.index):
        d, warm, lp, mip = k10.loc["dual"], k10.loc[WARM], k10.loc["highs-lp"], k10.loc["highs"]
        extra = (f"\nAt 10k customers: dual objective {d.objective:,.4f} vs HiGHS MIP {mip.objective:,.4f} "
                 f"(relative difference {(mip.objective - d.objective) / abs(mip.objective):.2e}; MIP status "
                 f"{mip.status}); dual bound {d.bound:,.4f} vs HiGHS LP value {lp.objective:,.4f}. Wall time: dual "
                 f"{d.wall_time:.3g} s, HiGHS LP {lp.wall_time:.3g} s (x{lp.wall_time / d.wall_time:.1f}), "
                 f"HiGHS MIP {mip.wall_time:.3g} s. Wall time excludes instance generation and includes process-"
                 f"level work after it (model build, numba loading).\n\n"
                 f"Solve time against HiGHS solving the LP relaxation ({lp.solve_time:.3g} s): dual in a fresh "
                 f"process {d.solve_time:.3g} s (x{lp.solve_time / d.solve_time:.1f}; it includes loading the "
                 f"compiled kernels from numba's cache); dual with the kernels loaded (a 200-customer solve "
                 f"first in the same process, as in a long-running campaign tool) {warm.solve_time:.3g} s (median of "
                 f"{int(warm.runs)} processes) "
                 f"(x{lp.solve_time / warm.solve_time:.1f}), wall {warm.wall_time:.3g} s "
                 f"(x{lp.wall_time / warm.wall_time:.1f} of the LP's wall time); {int(warm.iterations)} "
                 f"iterations, gap {warm.gap:.1e}.\n")
    text = (f"# Dual core scaling (issue 4)\n\n{machine_line({'machine': machine_info()})}\n\n"
            f"Instances `weekly-*` of `benchmarks/suites.toml` (M=5, T=7, K=2, min_gap_days=2, binding budget and "
            f"binding call/branch capacities, float32 utilities generated in chunks). Requested gap 1e-4. Each run "
            f"is a fresh process; peak RSS includes the input.{kept_note}\n\n{markdown_table(summary)}\n\n"
            f"## Time per dual iteration\n\n" + "\n".join(lines) + "\n" + extra)
    write_text(text, HERE / "dual.md")
    print(text)


if __name__ == "__main__":
    main()
