"""Problem classes of contactplan and their mathematics.

This package holds the models (data classes, sparse model builders, bounds
and checks). It never imports :mod:`solvers` or :mod:`optimizer`.
"""

from formulations.assignment import PlanningProblem, build_model, candidates, decode
from formulations.errors import InputError
from formulations.model import SparseModel

__all__ = ["PlanningProblem", "SparseModel", "InputError", "build_model", "candidates", "decode"]
