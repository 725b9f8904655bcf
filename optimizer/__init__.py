"""contactplan: optimisation engine for customer contact planning.

The public API::

    from optimizer import PlanningProblem, solve, verify
    problem = PlanningProblem(utility=u, capacity=cap, cost=cost, budget=10_000, max_contacts=2)
    plan = solve(problem)            # method="auto"
    verify(problem, plan).ok         # independent feasibility check
"""

from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from optimizer.api import solve
from optimizer.dp import DiscreteMDP, DPResult, LagrangianADP, WeaklyCoupledProblem, utilities_from_mdp  # noqa: F401
from optimizer.plan import Plan
from optimizer.policy import LagrangianPolicy
from optimizer.uplift.utilities import utilities_from_models
from optimizer.verify import VerificationReport, verify
from solvers.base import Status

__version__ = "0.1.0"

__all__ = ["PlanningProblem", "Plan", "Status", "LagrangianPolicy", "DiscreteMDP", "DPResult", "LagrangianADP",
           "WeaklyCoupledProblem", "utilities_from_mdp", "utilities_from_models", "InputError", "VerificationReport", "solve", "verify", "__version__"]
