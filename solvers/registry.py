"""Method name -> backend module. New methods register here."""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS: dict[str, str] = {
    "highs": "solvers.highs_direct",
    "pyomo": "solvers.pyomo_highs",
    "cvxpy": "solvers.cvxpy_highs",
    "greedy": "solvers.greedy",
    "dual": "solvers.dual",
}

EXACT_METHODS = ("highs", "pyomo", "cvxpy")


def get_backend(method: str) -> ModuleType:
    """The backend module of ``method`` (KeyError for unknown names)."""
    return importlib.import_module(METHODS[method])


def available_methods() -> list[str]:
    return [name for name in METHODS if get_backend(name).is_available()]
