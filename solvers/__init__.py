"""Solver backends of contactplan (HiGHS, Pyomo, CVXPY, greedy, numba dual core).

Each backend module exposes ``NAME``, ``is_available()`` and
``solve(problem, options) -> SolveResult``; :data:`solvers.registry.METHODS`
maps method names to modules. This package never imports :mod:`optimizer`.
"""

from solvers.base import SolveOptions, SolveResult, Status

__all__ = ["SolveOptions", "SolveResult", "Status"]
