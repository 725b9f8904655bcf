"""One benchmark run in a fresh process: ``python -m optimizer.bench.worker '<json job>'``.

Prints a single line ``BENCH_RESULT {...}`` with the measured numbers, so the
runner can measure memory per run and survive crashes, kills and time limits.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback

MARKER = "BENCH_RESULT "


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux reports KiB


def run_job(job: dict) -> dict:
    from optimizer.bench.instances import InstanceSpec

    spec = InstanceSpec(**job["instance"])
    method = job["method"]
    out = {"instance": spec.name, "method": method, "customers": spec.customers, "repeat": job.get("repeat", 0)}
    t0 = time.perf_counter()
    problem = spec.build()
    out["generate_time"] = time.perf_counter() - t0
    out["cells"] = int(problem.n_customers * problem.n_channels * problem.n_days)
    if job.get("warm") and method != "highs-lp":
        # load the compiled kernels (numba's on-disk cache) first, as a long-running campaign tool has
        from optimizer.api import solve

        t0 = time.perf_counter()
        solve(InstanceSpec(name="warm-up", customers=200, seed=99).build(), method=method)
        out["warm_up_time"] = time.perf_counter() - t0      # the runner labels the row "(kernels loaded)"
    t1 = time.perf_counter()
    if method == "highs-lp":
        from solvers.base import SolveOptions
        from solvers.highs_direct import solve_relaxation

        lp = solve_relaxation(problem, SolveOptions(time_limit=job.get("time_limit"), threads=job.get("threads")))
        native = {"Optimal": "optimal", "Time limit reached": "time_limit",
                  "Iteration limit reached": "iteration_limit"}
        out.update(status=native.get(lp["status"], lp["status"].lower().replace(" ", "_")),
                   objective=lp["value"], bound=lp["value"], gap=0.0, iterations=0,
                   build_time=lp["build_time"], solve_time=lp["solve_time"])
    else:
        from optimizer.api import solve
        from optimizer.verify import verify

        plan = solve(problem, method=method, rel_gap=job.get("rel_gap", 1e-4), time_limit=job.get("time_limit"),
                     threads=job.get("threads"))
        out.update(status=str(plan.status), objective=plan.objective, bound=plan.bound, gap=plan.gap,
                   iterations=plan.iterations, build_time=plan.build_time, solve_time=plan.solve_time)
        if job.get("verify", True):
            out["verified"] = bool(verify(problem, plan).ok)
    out["wall_time"] = time.perf_counter() - t1
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> int:
    job = json.loads(sys.argv[1])
    try:
        result = run_job(job)
    except MemoryError:
        result = {"status": "memory_limit", "error": "MemoryError", "peak_rss_mb": peak_rss_mb()}
    except Exception as exc:  # recorded, never crashes the suite
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(limit=3), "peak_rss_mb": peak_rss_mb()}
    print(MARKER + json.dumps(result, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
