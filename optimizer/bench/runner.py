"""Run methods on suite instances, each run in a fresh subprocess, and record everything.

Per run: wall time, objective, bound, gap, iterations, peak RSS (of that
process), status — including ``time_limit`` when the solver stopped itself,
``killed_time`` when the run had to be killed, ``memory_limit`` when it ran out
of its memory allowance, and ``error``. The machine (CPU, cores, memory,
library versions) is stored with the results.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from optimizer.bench.instances import InstanceSpec
from optimizer.bench.worker import MARKER
from optimizer.io import write_json, write_table

COLUMNS = ["instance", "customers", "method", "repeat", "status", "wall_time", "solve_time", "build_time",
           "generate_time", "iterations", "objective", "bound", "gap", "peak_rss_mb", "verified", "error"]


def machine_info() -> dict:
    """CPU, cores, memory and library versions of this machine."""
    import psutil

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for mod in ("numpy", "numba", "scipy", "pandas", "highspy", "pyomo", "cvxpy"):
        try:
            versions[mod] = version(mod)
        except PackageNotFoundError:  # pragma: no cover
            versions[mod] = "missing"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average": list(os.getloadavg())}


def _limit_memory(limit_bytes: int | None):
    def apply() -> None:
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


def run_one(spec: InstanceSpec, method: str, *, time_limit: float | None, rel_gap: float = 1e-4,
            memory_limit_gb: float | None = None, threads: int | None = None, repeat: int = 0,
            verify: bool = True, warm: bool = False) -> dict:
    """One run in a fresh interpreter; never raises for solver trouble.

    ``warm`` first solves a 200-customer instance in that interpreter (not timed), so the
    timed solve finds the compiled kernels loaded; the row's method then says so.
    """
    job = {"instance": spec.to_dict(), "method": method, "time_limit": time_limit, "rel_gap": rel_gap,
           "threads": threads, "repeat": repeat, "verify": verify, "warm": warm}
    # the solver gets `time_limit`; the process is killed if it overruns it clearly
    # (instance generation and model building are allowed on top)
    hard = None if time_limit is None else time_limit * 1.5 + 60 + spec.customers / 1e6 * 10
    limit = int(memory_limit_gb * 2**30) if memory_limit_gb else None
    base = {"instance": spec.name, "customers": spec.customers,
            "method": f"{method} (kernels loaded)" if warm and method != "highs-lp" else method, "repeat": repeat}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "optimizer.bench.worker", json.dumps(job)], capture_output=True,
                              text=True, timeout=hard, preexec_fn=_limit_memory(limit))
    except subprocess.TimeoutExpired:
        return {**base, "status": "killed_time", "wall_time": time.perf_counter() - start,
                "error": f"killed after {hard:.0f} s"}
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        killed = proc.returncode < 0 or "MemoryError" in proc.stderr or "bad_alloc" in proc.stderr
        status = "memory_limit" if (limit and killed) else "error"
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**base, "status": status, "wall_time": time.perf_counter() - start,
                "error": f"exit code {proc.returncode}: {tail}"[:300]}
    result = json.loads(line[len(MARKER):])
    return {**base, **result, "method": base["method"]}


def run_suite(specs: list[InstanceSpec], methods: list[str], *, time_limit: float | None, repeat: int = 1,
              rel_gap: float = 1e-4, memory_limit_gb: float | None = None, threads: int | None = None,
              out: str | Path | None = None, progress: bool = True, skip=None) -> pd.DataFrame:
    """Run every method on every instance ``repeat`` times; write results after each run.

    ``skip(spec, method)`` may return a reason to skip a combination (recorded as status ``skipped``).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    rows: list[dict] = []
    info = machine_info()
    jobs = [(s, m, r) for s in specs for m in methods for r in range(repeat)]

    def save() -> None:
        if out is None:
            return
        df = pd.DataFrame(rows).reindex(columns=COLUMNS)
        write_table(df, out)
        write_json({"machine": info, "time_limit": time_limit, "rel_gap": rel_gap, "repeat": repeat},
                   Path(out).with_suffix(".machine.json"))

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("benchmark", total=len(jobs))
        for spec, method, r in jobs:
            bar.update(task, description=f"{spec.name} × {method} (run {r + 1})")
            reason = skip(spec, method) if skip else None
            if reason:
                rows.append({"instance": spec.name, "customers": spec.customers, "method": method, "repeat": r,
                             "status": "skipped", "error": reason})
            else:
                rows.append(run_one(spec, method, time_limit=time_limit, rel_gap=rel_gap,
                                    memory_limit_gb=memory_limit_gb, threads=threads, repeat=r))
            save()
            bar.advance(task)
    return pd.DataFrame(rows).reindex(columns=COLUMNS)
