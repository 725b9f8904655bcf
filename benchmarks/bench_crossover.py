"""Where ``method="auto"`` switches from the HiGHS MIP to the dual core.

Runs the HiGHS MIP and the dual method on the ``weekly`` generator (M=5, T=7, K=2,
min_gap_days=2, binding budget) for n = 500 … 20,000 customers, each run a fresh
process, and writes ``benchmarks/crossover.md``: time and gap of both. ``auto``
uses HiGHS while n·M·T ≤ ``optimizer.api.AUTO_DUAL_CELLS``: exact plans while the
MIP is cheap, the dual's certified ≤ 1e-4 gap beyond.

    python benchmarks/bench_crossover.py [--time-limit 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from optimizer.api import AUTO_DUAL_CELLS
from optimizer.bench.instances import InstanceSpec
from optimizer.bench.report import machine_line
from optimizer.bench.runner import machine_info, run_one
from optimizer.io import write_table, write_text

HERE = Path(__file__).resolve().parent
SIZES = (500, 1_000, 2_000, 5_000, 10_000, 20_000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=300)
    ap.add_argument("--render-only", action="store_true", help="rewrite crossover.md from results/crossover.csv")
    args = ap.parse_args()
    if args.render_only:
        df = pd.read_csv(HERE / "results" / "crossover.csv")
    else:
        rows = []
        for n in SIZES:
            spec = InstanceSpec(name=f"weekly-{n}", customers=n, seed=1)
            for method in ("highs", "dual"):
                row = run_one(spec, method, time_limit=args.time_limit)
                rows.append(row)
                print(n, method, row.get("status"), row.get("wall_time"), row.get("gap"), flush=True)
        df = pd.DataFrame(rows)
        write_table(df, HERE / "results" / "crossover.csv")
    lines = ["| n | n·M·T | HiGHS MIP s | MIP status | MIP gap | dual s | dual gap | dual obj / MIP obj − 1 | auto picks |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in SIZES:
        h = df[(df.customers == n) & (df.method == "highs")].iloc[0]
        d = df[(df.customers == n) & (df.method == "dual")].iloc[0]
        cells = n * 35
        rel = d.objective / h.objective - 1 if h.objective else float("nan")
        lines.append(f"| {n:,} | {cells:,} | {h.wall_time:.2f} | {h.status} | {h.gap:.1e} | {d.wall_time:.2f} | "
                     f"{d.gap:.1e} | {rel:.1e} | {'dual' if cells > AUTO_DUAL_CELLS else 'highs'} |")
    text = (f"# Crossover of `method=\"auto\"` (HiGHS MIP vs dual core)\n\n{machine_line({'machine': machine_info()})}\n\n"
            f"`weekly` generator (M=5, T=7, K=2, min_gap_days=2, binding budget, seed 1), requested gap 1e-4, "
            f"time limit {args.time_limit:g} s, each run a fresh process (wall time includes the model build and "
            f"numba cache loading). `auto` switches at n·M·T > {AUTO_DUAL_CELLS:,}.\n\n" + "\n".join(lines) + "\n")
    write_text(text, HERE / "crossover.md")
    print(text)


if __name__ == "__main__":
    main()
