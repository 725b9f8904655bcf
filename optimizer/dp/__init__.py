"""Dynamic programming: discounted MDPs, the contact-fatigue model, weakly coupled Lagrangian ADP.

::

    from optimizer import DiscreteMDP
    res = DiscreteMDP(R, Q, beta).solve("mpi", epsilon=1e-6)   # QuantEcon DiscreteDP arguments
    res.v, res.sigma, res.num_iter, res.converged, res.error_bound

See ``docs/dp.md``.
"""

from formulations.contact_mdp import ContactMDP, ContactMDPParams, build_contact_mdp
from formulations.linear_gaussian import LinearGaussianMDP
from formulations.weakly_coupled import WeaklyCoupledProblem
from optimizer.dp.adp import LagrangianADP, PolicyComparison, SimulationResult, compare_policies, utilities_from_mdp
from optimizer.dp.mdp import DiscreteMDP
from solvers.dp import DPResult
from solvers.fitted_vi import FittedVIResult, fitted_value_iteration

__all__ = ["DiscreteMDP", "DPResult", "ContactMDP", "ContactMDPParams", "build_contact_mdp", "LinearGaussianMDP",
           "FittedVIResult", "fitted_value_iteration", "WeaklyCoupledProblem", "LagrangianADP", "SimulationResult",
           "PolicyComparison", "compare_policies", "utilities_from_mdp"]
