"""Customer 360: raw events from digital, call-centre and branch → resolved identities →
weekly features → consent and cooling masks for the planner.

DuckDB is the embedded analytical engine (Parquet/CSV in, SQL window
functions for the heavy lifting), pandas and NumPy at the edges. The maths
(latency cut-off, decay recurrence, match model, blocking keys, eligibility
rules) is specified in :mod:`formulations.c360`.

Typical use::

    from optimizer.c360 import generate_c360, build_c360, planning_problem
    generate_c360("raw/", n_customers=20_000, n_weeks=12, seed=1)
    result = build_c360("raw/", "c360/")          # features, eligibility, identity map
    problem = planning_problem("c360/")            # -> PlanningProblem (simple documented utility rule)

Command line: ``contactplan generate-c360`` and ``contactplan c360 build``.
"""

from optimizer.c360.generator import Messiness, generate_c360
from optimizer.c360.identity import IdentityResult, MatchModel
from optimizer.c360.pipeline import BuildOptions, C360Result, build_c360
from optimizer.c360.planning import load_eligibility, planning_problem

__all__ = ["Messiness", "generate_c360", "IdentityResult", "MatchModel", "BuildOptions", "C360Result",
           "build_c360", "load_eligibility", "planning_problem"]
