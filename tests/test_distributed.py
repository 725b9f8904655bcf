"""The dual method on a Dask LocalCluster: same prices, same plan; survives a killed worker."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from formulations.partitioned import PartitionedProblem, write_partitioned  # noqa: E402
from optimizer import InputError, solve, verify  # noqa: E402
from optimizer.generate import generate_problem  # noqa: E402
from solvers.dual_data import CHUNK  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def problem():
    return generate_problem(2 * CHUNK + 50, seed=5).problem


def same_run(a, b):
    assert a.objective == b.objective and a.bound == b.bound and a.iterations == b.iterations
    np.testing.assert_array_equal(a.assignment_indices, b.assignment_indices)
    for ra, rb in zip(a.info["history"], b.info["history"]):
        np.testing.assert_array_equal(ra["y"], rb["y"])


def test_distributed_solve_equals_in_process(client, problem):
    local = solve(problem, method="dual", record_prices=True)
    dist = solve(problem, method="dual", cluster=client, record_prices=True)
    same_run(local, dist)
    assert verify(problem, dist).ok and dist.info["shards"] == 2
    assert 0 < dist.info["bytes_sent_per_evaluation"] < 20_000      # prices only, independent of n


def test_killed_worker_mid_solve(client, problem):
    local = solve(problem, method="dual", record_prices=True)
    killed = []

    def kill_one(row):
        if row["iteration"] == 3 and not killed:
            victim = sorted(client.scheduler_info()["workers"])[0]
            pid = client.run(os.getpid, workers=[victim])[victim]
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    dist = solve(problem, method="dual", cluster=client, record_prices=True, progress=kill_one)
    assert killed
    same_run(local, dist)
    assert verify(problem, dist).ok
    client.wait_for_workers(2, timeout=60)


def test_partitioned_problem_on_files(client, problem, tmp_path):
    write_partitioned(problem, tmp_path, rows_per_file=CHUNK)
    import pandas as pd
    part = PartitionedProblem(str(tmp_path / "*.parquet"), pd.read_csv(tmp_path / "channels.csv"),
                              budget=problem.budget, max_contacts=2, min_gap_days=problem.min_gap_days)
    assert part.n_customers == problem.n_customers
    local = solve(part, method="dual")                       # loads the files in-process
    dist = solve(part, method="dual", cluster=client)
    assert dist.objective == local.objective and dist.bound == local.bound
    assert verify(dist.problem, dist).ok                     # the plan's problem: the contacted customers
    assert dist.n_contacts == local.n_contacts


def test_fairness_on_a_cluster_is_refused(client, problem):
    seg = np.arange(problem.n_customers) % 2
    with pytest.raises(InputError, match="cluster"):
        solve(problem.replace(segment=seg, fairness_penalty=1.0), method="dual", cluster=client)
    with pytest.raises(InputError, match="method"):
        solve(problem, method="highs", cluster=client)


def test_cli_plans_a_lake_on_local_workers(problem, tmp_path):
    from optimizer.cli import main
    write_partitioned(problem, tmp_path / "lake", rows_per_file=CHUNK)
    out = tmp_path / "plan.csv"
    code = main(["plan", "--scores", str(tmp_path / "lake" / "*.parquet"), "--channels",
                 str(tmp_path / "lake" / "channels.csv"), "--budget", str(problem.budget), "--min-gap-days",
                 str(problem.min_gap_days), "--workers", "2", "--quiet", "--out", str(out)])
    assert code == 0 and out.exists()
