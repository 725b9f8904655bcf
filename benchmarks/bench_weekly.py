"""Issue 3: exact methods vs greedy on the weekly plan (n = 1k, 10k; M=5, T=7, K=2, gap=2, binding budget).

Runs ``contactplan bench run --suite weekly`` (each run a fresh process) and writes
``benchmarks/weekly.md`` with build time, solve time, objective and gap.

    python benchmarks/bench_weekly.py [--time-limit 600]
    python benchmarks/bench_weekly.py --rerun highs:weekly-10k   # re-measure one row, keep the others
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from optimizer.bench import get_instance, suite_instances
from optimizer.bench.report import machine_line, markdown_table, summarize
from optimizer.bench.runner import machine_info, run_one, run_suite
from optimizer.io import write_table, write_text

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--rerun", action="append", default=[], metavar="METHOD:INSTANCE",
                    help="re-measure only these rows of results/weekly.csv")
    args = ap.parse_args()
    out = HERE / "results" / "weekly.csv"
    out.parent.mkdir(exist_ok=True)
    if args.rerun:
        df = pd.read_csv(out)
        for item in args.rerun:
            method, instance = item.split(":")
            row = run_one(get_instance(instance), method, time_limit=args.time_limit)
            df = pd.concat([df[~((df.method == method) & (df.instance == instance))], pd.DataFrame([row])])
            write_table(df, out)
    else:
        df = run_suite(suite_instances("weekly"), ["highs", "pyomo", "cvxpy", "greedy", "dual"],
                       time_limit=args.time_limit, out=out)
    table = markdown_table(summarize(df))
    text = (f"# Weekly plan: exact methods vs greedy (issue 3)\n\n{machine_line({'machine': machine_info()})}\n\n"
            f"Instances `weekly-1k`, `weekly-10k` of `benchmarks/suites.toml` (M=5 channels, T=7 days, K=2, "
            f"min_gap_days=2, binding budget, float32 utilities). Requested relative gap 1e-4, time limit "
            f"{args.time_limit:g} s per run, each run a fresh process. `build s` is the model build "
            f"(candidates, rows; Pyomo/CVXPY model objects), `solve s` the solver.\n\n{table}\n")
    write_text(text, HERE / "weekly.md")
    print(text)


if __name__ == "__main__":
    main()
