"""Shared solver types: :class:`Status`, :class:`SolveOptions`, :class:`SolveResult`.

Every backend module has the same small surface::

    NAME: str
    def is_available() -> bool
    def solve(problem, options: SolveOptions) -> SolveResult

and maps its native statuses onto :class:`Status` (like cvxpy's ``STATUS_MAP``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

import numpy as np


class Status(str, Enum):
    """Outcome of a solve. Compares equal to its string value (``plan.status == "optimal"``)."""

    OPTIMAL = "optimal"            # proven optimal within the requested relative gap
    FEASIBLE = "feasible"          # a feasible plan without a proof (heuristics)
    TIME_LIMIT = "time_limit"      # stopped by the time limit; best plan found so far
    ITERATION_LIMIT = "iteration_limit"
    INFEASIBLE = "infeasible"      # proven: no plan meets the constraints (only possible with segment minimums)
    NO_SOLUTION = "no_solution"    # no feasible plan found (the bound is still valid)
    ERROR = "error"

    def __str__(self) -> str:  # "optimal", not "Status.OPTIMAL"
        return self.value


@dataclass(frozen=True)
class SolveOptions:
    """Options understood by every backend (each ignores what it cannot use).

    Parameters
    ----------
    time_limit : float, optional
        Wall-clock seconds for the solve (None: no limit).
    rel_gap : float
        Stop when ``(bound - objective) / |bound| <= rel_gap``.
    threads : int, optional
        Threads the backend may use (None: backend default).
    verbose : bool
        Show solver output / progress.
    seed : int
        Random seed for backends with randomness.
    warm_start : dict, optional
        Prices ``{"capacity": (M, T), "budget": float}`` from a previous plan
        (used by the dual method).
    max_iter : int, optional
        Iteration cap for iterative methods.
    progress : callable, optional
        Called by iterative methods with a dict per iteration.
    extra : dict
        Backend-specific options.
    """

    time_limit: float | None = None
    rel_gap: float = 1e-4
    threads: int | None = None
    verbose: bool = False
    seed: int = 0
    warm_start: dict | None = None
    max_iter: int | None = None
    progress: Callable[[dict], None] | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class SolveResult:
    """What a backend returns: a plan as index rows plus the numbers that certify it.

    Attributes
    ----------
    status : Status
    assignment_indices : ndarray (k, 3) int64
        Chosen (customer, channel, day) rows.
    objective : float
        Value of the returned plan.
    bound : float or None
        Proven upper bound on the optimum (None when the method gives none).
    gap : float or None
        ``(bound - objective) / |bound|`` (0 when both are 0).
    duals : dict or None
        Shadow prices ``{"capacity": (M, T), "budget": float}`` when available.
    iterations : int
        Native iteration count (MIP nodes, dual iterations, ...).
    wall_time : float
        Seconds for build + solve.
    build_time, solve_time : float
    method : str
    message : str
    info : dict
        Backend-specific details.
    """

    status: Status
    assignment_indices: np.ndarray
    objective: float
    bound: float | None
    gap: float | None
    duals: dict | None = None
    iterations: int = 0
    wall_time: float = 0.0
    build_time: float = 0.0
    solve_time: float = 0.0
    method: str = ""
    message: str = ""
    info: dict = field(default_factory=dict)


def relative_gap(bound: float | None, objective: float) -> float | None:
    """``(bound - objective) / |bound|``; 0 when both are 0, None without a bound."""
    if bound is None or not np.isfinite(bound) or not np.isfinite(objective):
        return None
    diff = max(bound - objective, 0.0)
    if diff == 0.0:
        return 0.0
    return diff / max(abs(bound), 1e-300)


class Stopwatch:
    """Tiny helper: ``sw = Stopwatch(); ...; sw.lap()`` returns seconds since the last lap."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        out, self.last = now - self.last, now
        return out

    def total(self) -> float:
        return time.perf_counter() - self.start


def empty_indices() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.int64)
