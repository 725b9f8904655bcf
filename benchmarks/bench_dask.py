"""Issue 12: the dual method on a 2-worker Dask LocalCluster vs in-process, same instance.

Writes ``benchmarks/dask.md``: wall time, iterations, objective, bound, identical-plan
check, bytes sent/received per dual evaluation, and the per-shard throughput used by
the 1-billion-customer estimate in ``docs/scale_out.md``.

    python benchmarks/bench_dask.py [--customers 10000000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from optimizer import solve
from optimizer.bench.report import machine_line
from optimizer.bench.runner import machine_info
from optimizer.generate import generate_problem
from optimizer.io import write_text

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=10_000_000)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    problem = generate_problem(args.customers, seed=1).problem
    gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    local = solve(problem, method="dual", master=False)     # the shards recover without the master LP
    local_time = time.perf_counter() - t0
    print("in-process", local.status, local.iterations, local_time, flush=True)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="8GiB")
    client = Client(cluster)
    t0 = time.perf_counter()
    dist = solve(problem, method="dual", cluster=client)
    dist_time = time.perf_counter() - t0
    print("distributed", dist.status, dist.iterations, dist_time, flush=True)
    client.close()
    cluster.close()
    same = (np.array_equal(local.assignment_indices, dist.assignment_indices) and local.objective == dist.objective
            and local.bound == dist.bound)
    per_eval = dist.solve_time / max(dist.iterations, 1)
    throughput = args.customers / 2 / per_eval    # customers per second per worker, per iteration incl. overhead
    rows = [("in-process (2 numba threads)", local_time, local.solve_time, local.iterations, local.objective,
             local.bound, local.gap, "—", "—"),
            ("LocalCluster, 2 workers x 1 thread", dist_time, dist.solve_time, dist.iterations, dist.objective,
             dist.bound, dist.gap, f"{dist.info['bytes_sent_per_evaluation']:,}",
             f"{dist.info['bytes_received_per_evaluation']:,}")]
    lines = ["| run | wall s | solve s | iterations | objective | bound | gap | bytes sent / evaluation | "
             "bytes received / evaluation |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]} | {r[4]:,.2f} | {r[5]:,.2f} | {r[6]:.1e} | {r[7]} | {r[8]} |")
    text = (f"# Dual method on Dask (issue 12)\n\n{machine_line({'machine': machine_info()})}\n\n"
            f"{args.customers:,} customers (`weekly` generator, seed 1, float32; generated in {gen:.0f} s), "
            f"requested gap 1e-4. Same plan, objective and bound in both runs: **{same}**.\n\n" + "\n".join(lines)
            + f"\n\nMeasured distributed solve time per dual iteration (incl. recoveries and master): "
              f"{per_eval:.3f} s for {args.customers // 2:,} customers per worker, i.e. "
              f"{throughput / 1e6:.2f} M customers per second per worker.\n")
    write_text(text, HERE / "dask.md")
    print(text)


if __name__ == "__main__":
    main()
