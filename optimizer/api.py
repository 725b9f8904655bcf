"""``solve(problem, method=...) -> Plan``: the entry point campaign tools call."""

from __future__ import annotations

from typing import Any

import numpy as np

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from optimizer.plan import Plan
from solvers import registry
from solvers.base import SolveOptions

# Above this many (customer, channel, day) cells "auto" uses the dual core instead of
# the HiGHS MIP. Measured (benchmarks/crossover.md, weekly shape): at 2,000 customers
# (70,000 cells) the MIP takes ~8 s and the dual reaches the 1e-4 gap in ~0.5 s; at
# 5,000 the MIP takes ~60 s; below 2,000 the dual's plan can miss 1e-4 (integrality
# gap of small instances) while the MIP is fast.
AUTO_DUAL_CELLS = 70_000


def choose_method(problem: PlanningProblem) -> str:
    """The method ``"auto"`` resolves to for this problem."""
    n, M, T = problem.shape
    if "dual" in registry.METHODS and n * M * T > AUTO_DUAL_CELLS:
        return "dual"
    return "highs"


def solve(problem: PlanningProblem, method: str = "auto", rel_gap: float = 1e-4, time_limit: float | None = None,
          threads: int | None = None, verbose: bool = False, seed: int = 0, warm_start: dict | None = None,
          max_iter: int | None = None, progress=None, cluster: Any = None, **extra: Any) -> Plan:
    """Solve a weekly contact-planning problem.

    Parameters
    ----------
    problem : PlanningProblem
    method : str
        ``"highs"`` (direct HiGHS MIP), ``"pyomo"``, ``"cvxpy"``, ``"greedy"``,
        ``"dual"`` (numba Lagrangian core) or ``"auto"``.
    rel_gap : float
        Relative optimality gap at which exact methods stop.
    time_limit : float, optional
        Seconds; the best plan found is returned with status ``time_limit``.
    threads : int, optional
    verbose : bool
        Solver log / progress display.
    seed : int
    warm_start : dict, optional
        Prices from a previous plan (``plan.duals``), used by ``"dual"``.
    max_iter : int, optional
        Iteration cap for iterative methods.
    progress : callable, optional
        Per-iteration callback of iterative methods.
    cluster : dask.distributed.Client, str or int, optional
        Run ``method="dual"`` on a Dask cluster (a Client, a scheduler
        address, or a number of local workers). Same plan as in-process with
        ``master=False`` (from 200,000 customers the in-process dual method
        also recovers plans through the master LP, which shards do not).
    **extra
        Backend-specific options. Dual: ``master=False`` keeps to the light
        primal recovery, no restricted master LP; ``sample_size`` (customers
        in the sample whose prices start a solve from 200,000 customers;
        default :func:`solvers.dual.default_sample_size`), ``sample=False``
        starts without it; ``level_alpha`` (0 < a < 1, default 0.3) places
        the level between the lower bound and the best value;
        ``polish=False`` skips the exact MIP that closes a small hard-row
        instance's gap.

    Returns
    -------
    Plan
        For a :class:`~formulations.partitioned.PartitionedProblem` solved on
        a cluster, ``plan.problem`` covers the contacted customers only.
    """
    partitioned = getattr(problem, "is_partitioned", False)
    if partitioned and cluster is None:
        problem = problem.to_problem()
        partitioned = False
    if not isinstance(problem, PlanningProblem) and not partitioned:
        raise InputError("problem", f"expected a PlanningProblem, got {type(problem).__name__}")
    if cluster is not None:
        return _solve_on_cluster(problem, method, cluster, rel_gap=rel_gap, time_limit=time_limit, verbose=verbose,
                                 seed=seed, warm_start=warm_start, max_iter=max_iter, progress=progress, extra=extra)
    if method == "auto":
        method = choose_method(problem)
    if method not in registry.METHODS:
        raise InputError("method", f"expected one of auto, {', '.join(registry.METHODS)}; got {method!r}")
    try:
        rel_gap = float(rel_gap)
    except (TypeError, ValueError):
        raise InputError("rel_gap", f"expected a number >= 0, got {rel_gap!r}") from None
    if not np.isfinite(rel_gap) or rel_gap < 0:
        raise InputError("rel_gap", f"expected a number >= 0, got {rel_gap!r}")
    if time_limit is not None and (not np.isfinite(float(time_limit)) or float(time_limit) <= 0):
        raise InputError("time_limit", f"expected a positive number of seconds, got {time_limit!r}")
    if threads is not None and int(threads) < 1:
        raise InputError("threads", f"expected a positive integer, got {threads!r}")
    backend = registry.get_backend(method)
    if not backend.is_available():
        raise InputError("method", f"{method!r} is not available on this machine (missing dependency)")
    options = SolveOptions(time_limit=None if time_limit is None else float(time_limit), rel_gap=rel_gap,
                           threads=None if threads is None else int(threads), verbose=bool(verbose), seed=int(seed),
                           warm_start=warm_start, max_iter=max_iter, progress=progress, extra=dict(extra))
    result = backend.solve(problem, options)
    return Plan(problem=problem, assignment_indices=result.assignment_indices, objective=result.objective,
                bound=result.bound, gap=result.gap, status=result.status, wall_time=result.wall_time,
                method=result.method or method, duals=result.duals, iterations=result.iterations,
                build_time=result.build_time, solve_time=result.solve_time, message=result.message,
                info=result.info)


def _solve_on_cluster(problem, method: str, cluster: Any, *, rel_gap, time_limit, verbose, seed, warm_start,
                      max_iter, progress, extra) -> Plan:
    from solvers import dual_dask

    if method not in ("auto", "dual"):
        raise InputError("method", f"only 'dual' runs on a cluster, got {method!r}")
    options = SolveOptions(time_limit=time_limit, rel_gap=float(rel_gap), verbose=bool(verbose), seed=int(seed),
                           warm_start=warm_start, max_iter=max_iter, progress=progress, extra=dict(extra))
    result, subproblem = dual_dask.solve(problem, options, cluster)
    owner = subproblem if subproblem is not None else problem
    return Plan(problem=owner, assignment_indices=result.assignment_indices, objective=result.objective,
                bound=result.bound, gap=result.gap, status=result.status, wall_time=result.wall_time,
                method="dual", duals=result.duals, iterations=result.iterations, build_time=result.build_time,
                solve_time=result.solve_time, message=result.message, info=result.info)
