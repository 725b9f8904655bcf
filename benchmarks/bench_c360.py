"""Benchmark of the Customer 360 pipeline; writes ``benchmarks/c360.md``.

For each size (default 100k and 1M customers × 12 weeks, ≈ 5M and ≈ 50M
events):

1. ``generate-c360`` writes the raw sources (Parquet, chunked) to a work
   directory outside the repository (default ``/tmp/c360-bench``);
2. ``contactplan c360 build RAW --out OUT --threads 2 --memory-limit 6GB``
   runs in a child process: wall time, CPU time (user + system) and peak
   resident memory (``ru_maxrss`` of the child: Python + DuckDB) are
   measured, with the load average of the machine before and after;
3. the build's own ``manifest.json`` / ``identity_report.json`` give the
   step timings, the number of events / rejects, the candidate pairs after
   blocking and the identity-resolution precision / recall / F1 against the
   generator's hidden truth.

Run: ``.venv/bin/python benchmarks/bench_c360.py [--sizes 100000 1000000] [--workdir /tmp/c360-bench]``.
The machine is shared with other engineers' jobs: wall times are upper
bounds; the CPU time is the less load-dependent number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.io import write_text  # noqa: E402


from optimizer.bench.report import text_table as table  # noqa: E402


def machine() -> str:
    import duckdb

    return (f"{platform.platform()}, Python {platform.python_version()}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, DuckDB {duckdb.__version__}; "
            "shared machine (other engineers' jobs running)")


# the child reports its own rusage (RUSAGE_CHILDREN's ru_maxrss would be the maximum over *all* children so far)
CLI = [sys.executable, "-c",
       "import sys, json, resource; from optimizer.cli import main; rc = main(sys.argv[1:]); "
       "ru = resource.getrusage(resource.RUSAGE_SELF); "
       "sys.stderr.write('\\n@@RUSAGE ' + json.dumps([ru.ru_maxrss, ru.ru_utime, ru.ru_stime]) + '\\n'); "
       "sys.exit(rc)"]


def uptime() -> str:
    """The load averages (1, 5, 15 min) as `uptime` shows them."""
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def child(cmd: list[str]) -> dict:
    """Run ``cmd`` (a ``CLI`` call); wall, CPU (user + sys) and peak RSS of that process, load before/after."""
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = [x for x in proc.stderr.splitlines() if x.startswith("@@RUSAGE ")][-1]
    maxrss_kb, utime, stime = json.loads(line.split(" ", 1)[1])
    return {"wall": wall, "cpu": utime + stime, "peak_gb": maxrss_kb / 2**20, "load": (load0, os.getloadavg()[0]),
            "stdout": proc.stdout}


def run_size(n: int, weeks: int, seed: int, workdir: Path, threads: int, memory_limit: str, reuse: bool) -> dict:
    raw, out = workdir / f"raw-{n}", workdir / f"out-{n}"
    cli = CLI
    manifest = raw / "manifest.json"
    gen = None
    if not (reuse and manifest.is_file() and json.loads(manifest.read_text()).get("customers") == n):
        shutil.rmtree(raw, ignore_errors=True)
        gen = child(cli + ["generate-c360", "--customers", str(n), "--weeks", str(weeks), "--seed", str(seed),
                           "--out", str(raw), "--quiet"])
    shutil.rmtree(out, ignore_errors=True)
    build = child(cli + ["c360", "build", str(raw), "--out", str(out), "--threads", str(threads),
                         "--memory-limit", memory_limit, "--quiet"])
    m = json.loads((out / "manifest.json").read_text())
    ident = json.loads((out / "identity_report.json").read_text())
    raw_m = json.loads(manifest.read_text())
    return {"n": n, "weeks": weeks, "gen": gen, "build": build, "manifest": m, "identity": ident, "raw": raw_m,
            "uptime_after": uptime()}


def run_default_rule(n: int, workdir: Path, threads: int, memory_limit: str) -> dict:
    """A second build of size ``n`` with the documented default match rule instead of the fitted model."""
    raw, out = workdir / f"raw-{n}", workdir / f"out-{n}-default-rule"
    cli = CLI
    shutil.rmtree(out, ignore_errors=True)
    build = child(cli + ["c360", "build", str(raw), "--out", str(out), "--threads", str(threads),
                         "--memory-limit", memory_limit, "--match-model", "default", "--no-events", "--quiet"])
    ident = json.loads((out / "identity_report.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {"n": n, "build": build, "identity": ident}


def render(results: list[dict], threads: int, memory_limit: str, default_rule: dict | None = None,
           uptime_start: str = "", uptime_end: str = "") -> str:
    lines = ["# Customer 360 pipeline benchmark", "",
             f"Machine: {machine()}.",
             f"Run: `.venv/bin/python {' '.join(['benchmarks/bench_c360.py'] + sys.argv[1:])}` "
             f"({dt.date.today().isoformat()}, process niceness {os.nice(0)}); build with "
             f"`--threads {threads} --memory-limit {memory_limit}`. Target: 1M customers × 12 weeks (≈ 50M events) "
             "→ features + masks in ≤ 5 min on 2 cores, ≤ 8 GB; identity F1 ≥ 0.97 with ≤ 20 pairs per record.",
             "",
             f"Machine load (`uptime`) when the run started: {uptime_start}; when it ended: {uptime_end}; after "
             "each size: " + "; ".join(f"{r['n']:,}: {r['uptime_after']}" for r in results) + ".",
             "",
             "## End to end: raw Parquet → `contactplan c360 build` (features, masks, identity map, events, rejects)",
             ""]
    rows = []
    for r in results:
        b, m = r["build"], r["manifest"]
        rows.append([f"{r['n']:,} × {r['weeks']} wk", f"{r['raw']['events']:,}", f"{m['events']:,}",
                     f"{sum(x['rows'] for x in m['rejects']):,}", f"{m['feature_rows']:,}",
                     f"{b['wall']:.0f} s", f"{b['cpu']:.0f} s", f"{b['peak_gb']:.2f} GB",
                     f"{b['load'][0]:.1f} / {b['load'][1]:.1f}",
                     f"{r['gen']['wall']:.0f} s" if r["gen"] else "reused"])
    lines.append(table(["customers", "raw events", "canonical events", "rejected rows", "feature rows",
                        "build wall", "build CPU (user+sys)", "peak RSS", "load avg before / after",
                        "generate wall"], rows))
    lines += ["", "Step timings (wall seconds, from the build's `manifest.json`):", ""]
    steps = list(results[0]["manifest"]["timings_s"])
    lines.append(table(["customers"] + steps + ["features + masks"],
                       [[f"{r['n']:,}"] + [f"{r['manifest']['timings_s'][s]:.1f}" for s in steps]
                        + [f"{r['manifest']['timings_s']['features'] + r['manifest']['timings_s']['masks']:.1f}"]
                        for r in results]))
    lines += ["", "## Identity resolution (CRM records, default messiness, threshold 0.5)", ""]
    rows = []
    for r in results:
        i = r["identity"]
        a, h = i["all_records"], i.get("heldout_records", {})
        rows.append([f"{r['n']:,}", f"{i['records']:,}", f"{i['customers']:,}", f"{i['candidate_pairs']:,}",
                     f"{i['pairs_per_record']:.2f}", f"{i['blocking_recall']:.4f}", f"{a['precision']:.4f}",
                     f"{a['recall']:.4f}", f"**{a['f1']:.4f}**", f"{h.get('f1', float('nan')):.4f}",
                     f"{i['training_pairs']:,}"])
    lines.append(table(["customers", "CRM records", "resolved customers", "candidate pairs", "pairs / record",
                        "blocking recall", "precision", "recall", "F1", "F1 held-out records",
                        "training pairs"], rows))
    big = results[-1]["identity"]
    lines += ["", f"Pairs per blocking key before de-duplication ({results[-1]['n']:,} customers): "
              + ", ".join(f"{k} {v:,}" for k, v in big["blocking"]["pairs_by_key"].items())
              + f"; blocks skipped (> {big['blocking']['max_block']} records): "
              + (", ".join(f"{k} {v}" for k, v in big["blocking"]["skipped_blocks"].items()) or "none") + ".", "",
              f"Threshold trade-off ({results[-1]['n']:,} customers; clusters = transitive closure of the pairs "
              "above the threshold):", ""]
    lines.append(table(["threshold", "precision", "recall", "F1", "matched pairs"],
                       [[f"{t['threshold']:.2f}", f"{t['precision']:.4f}", f"{t['recall']:.4f}", f"{t['f1']:.4f}",
                         f"{t['matched_pairs']:,}"] for t in big["tradeoff"]]))
    if default_rule is not None:
        i, b = default_rule["identity"], default_rule["build"]
        a = i["all_records"]
        lines += ["", f"Without labels: the documented default match rule (`--match-model default`, "
                  f"`formulations.c360.DEFAULT_MATCH_WEIGHTS`) on the same {default_rule['n']:,}-customer raw data "
                  f"(load average {b['load'][0]:.1f} / {b['load'][1]:.1f} before / after):", ""]
        lines.append(table(["customers", "model", "candidate pairs", "precision", "recall", "F1", "build wall"],
                           [[f"{default_rule['n']:,}", i["model_source"], f"{i['candidate_pairs']:,}",
                             f"{a['precision']:.4f}", f"{a['recall']:.4f}", f"**{a['f1']:.4f}**",
                             f"{b['wall']:.0f} s"]]))
    lines += ["", "## Rejected rows by source and reason "
              f"({results[-1]['n']:,} customers; injected corruptions are 0.1% per kind and source, the rest are "
              "anonymous cookies, walk-ins without a card and unknown phones)", ""]
    lines.append(table(["source", "reason", "rows"], [[x["source"], x["reason"], f"{x['rows']:,}"]
                                                      for x in results[-1]["manifest"]["rejects"]]))
    lines += ["", "Notes: wall times were taken on a 2-core machine shared with other engineers' jobs (see the "
              "load averages); the CPU column is user + system time of the build process summed over its threads. "
              "Peak RSS is the child's maximum resident set (Python + DuckDB); DuckDB spills to the output "
              "directory beyond `--memory-limit`.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--weeks", type=int, default=12)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/c360-bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="6GB")
    ap.add_argument("--reuse-raw", action="store_true", help="Keep raw data of an earlier run of the same size.")
    ap.add_argument("--default-rule-size", type=int, default=100_000,
                    help="Also build this size (one of --sizes) with the default match rule; 0 to skip.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "c360.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    uptime_start = uptime()
    default_rule = None
    for n in args.sizes:
        r = run_size(n, args.weeks, args.seed, args.workdir, args.threads, args.memory_limit, args.reuse_raw)
        b = r["build"]
        print(f"{n:>9,} customers: build {b['wall']:.0f} s wall, {b['cpu']:.0f} s CPU, peak {b['peak_gb']:.2f} GB, "
              f"F1 {r['identity']['all_records']['f1']:.4f}, pairs/record {r['identity']['pairs_per_record']:.2f}",
              flush=True)
        results.append(r)
        if n == args.default_rule_size:
            default_rule = run_default_rule(n, args.workdir, args.threads, args.memory_limit)
            print(f"default rule, {n:,} customers: F1 {default_rule['identity']['all_records']['f1']:.4f}", flush=True)
        # the table so far (a long run on a busy machine may be stopped; finished sizes are kept)
        text = render(results, args.threads, args.memory_limit, default_rule, uptime_start, uptime())
        write_text(text, args.out)
    print(text)


if __name__ == "__main__":
    main()
