"""Pyomo backend: the weekly plan as a readable algebraic model, solved by HiGHS (appsi).

The model is written constraint family by constraint family from the index
sets of :func:`formulations.assignment.row_sets`, exactly as the docstring of
:mod:`formulations.assignment` states it; a test checks that it has the same
rows, columns and nonzeros as the matrix passed to HiGHS directly.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from formulations.assignment import PlanningProblem, candidates, plan_value, row_sets, sort_assignments
from solvers.base import SolveOptions, SolveResult, Status, Stopwatch, empty_indices, relative_gap

NAME = "pyomo"


def is_available() -> bool:
    try:
        from pyomo.contrib.appsi.solvers import Highs

        return bool(Highs().available())
    except Exception:  # pragma: no cover - optional dependency
        return False


def build_pyomo(problem: PlanningProblem):
    """The Pyomo ``ConcreteModel`` of the weekly plan (candidate columns only)."""
    import pyomo.environ as pyo

    cand = candidates(problem)
    rows = row_sets(problem, cand)
    g, T = problem.min_gap_days, problem.n_days
    by_cell: dict = defaultdict(list)
    by_customer: dict = defaultdict(list)
    by_customer_day: dict = defaultdict(list)
    for j, (i, m, t) in enumerate(zip(cand.customer.tolist(), cand.channel.tolist(), cand.day.tolist())):
        by_cell[m, t].append(j)
        by_customer[i].append(j)
        by_customer_day[i, t].append(j)
    utility = cand.utility.tolist()
    cost = problem.cost.tolist()
    channel_of = cand.channel.tolist()

    model = pyo.ConcreteModel("weekly_contact_plan")
    model.J = pyo.Set(initialize=range(len(cand)), ordered=True)
    model.x = pyo.Var(model.J, within=pyo.Binary)
    model.value = pyo.Objective(expr=pyo.quicksum(utility[j] * model.x[j] for j in model.J), sense=pyo.maximize)

    model.CELLS = pyo.Set(initialize=[tuple(c) for c in rows.capacity_cells.tolist()], dimen=2, ordered=True)

    @model.Constraint(model.CELLS)
    def capacity(mdl, m, t):
        return pyo.quicksum(mdl.x[j] for j in by_cell[m, t]) <= float(problem.capacity[m, t])

    if rows.has_budget_row:
        model.budget = pyo.Constraint(
            expr=pyo.quicksum(cost[channel_of[j]] * model.x[j] for j in model.J if cost[channel_of[j]] > 0)
            <= problem.budget)

    limits = problem.contact_limits()
    model.LIMITED = pyo.Set(initialize=rows.limit_customers.tolist(), ordered=True)

    @model.Constraint(model.LIMITED)
    def contact_limit(mdl, i):
        return pyo.quicksum(mdl.x[j] for j in by_customer[i]) <= int(limits[i])

    model.WINDOWS = pyo.Set(initialize=[tuple(w) for w in rows.windows.tolist()], dimen=2, ordered=True)

    @model.Constraint(model.WINDOWS)
    def spacing(mdl, i, s):
        days = range(s, min(s + g, T))
        return pyo.quicksum(mdl.x[j] for t in days for j in by_customer_day[i, t]) <= 1

    f = problem.fairness
    if f is not None and f.n_rows:
        seg_of = problem.segment_codes[cand.customer].tolist()
        model.FAIR = pyo.Set(initialize=range(f.n_rows), ordered=True)

        @model.Constraint(model.FAIR)
        def fairness(mdl, r):
            terms = [(f.row_coef[r, seg_of[j]], j) for j in mdl.J if f.row_channels[r, channel_of[j]]]
            return pyo.quicksum(a * mdl.x[j] for a, j in terms if a != 0) <= float(f.row_rhs[r])

    if f is not None and f.penalty > 0:
        # Psi = sum_p w_p z_p^2 with z_p = B_p x - c_p; z^2 by its tangents at the breakpoints
        from formulations.fairness import tangent_breakpoints

        seg_of = problem.segment_codes[cand.customer].tolist()
        kmax = float(min(int(problem.contact_limits().max()), T))
        points = tangent_breakpoints(kmax).tolist()
        model.TERMS = pyo.Set(initialize=range(f.n_terms), ordered=True)
        model.z = pyo.Var(model.TERMS, bounds=(-kmax - 1, kmax + 1))
        model.t = pyo.Var(model.TERMS, bounds=(0, (kmax + 1) ** 2))

        @model.Constraint(model.TERMS)
        def disparity(mdl, p_):
            terms = [(f.pen_coef[p_, seg_of[j]], j) for j in mdl.J if f.pen_channels[p_, channel_of[j]]]
            return pyo.quicksum(b * mdl.x[j] for b, j in terms if b != 0) - mdl.z[p_] == float(f.pen_const[p_])

        model.BREAKS = pyo.Set(initialize=range(len(points)), ordered=True)

        @model.Constraint(model.TERMS, model.BREAKS)
        def square_tangent(mdl, p_, k):
            a = points[k]
            return 2 * a * mdl.z[p_] - mdl.t[p_] <= a * a

        model.value.deactivate()
        model.penalised_value = pyo.Objective(
            expr=pyo.quicksum(utility[j] * model.x[j] for j in model.J)
            - f.penalty * pyo.quicksum(float(f.pen_weight[p_]) * model.t[p_] for p_ in model.TERMS),
            sense=pyo.maximize)

    model._columns = np.stack([cand.customer, cand.channel, cand.day], axis=1) if len(cand) else np.zeros((0, 3), np.int64)
    return model


def model_size(model) -> tuple[int, int, int]:
    """(rows, columns, nonzeros) of a Pyomo model, counted from its expressions."""
    import pyomo.environ as pyo
    from pyomo.repn import generate_standard_repn

    rows = cols = nnz = 0
    for con in model.component_data_objects(pyo.Constraint, active=True):
        rows += 1
        repn = generate_standard_repn(con.body)
        nnz += sum(1 for c in repn.linear_coefs if c != 0)
    cols = sum(1 for _ in model.component_data_objects(pyo.Var))
    return rows, cols, nnz


def solve(problem: PlanningProblem, options: SolveOptions) -> SolveResult:
    import pyomo.environ as pyo
    from pyomo.contrib.appsi.base import TerminationCondition as TC
    from pyomo.contrib.appsi.solvers import Highs

    if not options.verbose:
        from solvers.highs_direct import quiet_banner

        quiet_banner()
    sw = Stopwatch()
    model = build_pyomo(problem)
    build_time = sw.lap()
    if len(model.J) == 0:
        return SolveResult(Status.OPTIMAL, empty_indices(), 0.0, 0.0, 0.0, None, 0, sw.total(), build_time, 0.0,
                           NAME, "no candidate contacts")
    opt = Highs()
    opt.config.stream_solver = bool(options.verbose)
    opt.config.load_solution = False
    opt.config.mip_gap = float(options.rel_gap)
    if options.time_limit is not None:
        opt.config.time_limit = float(max(options.time_limit, 0.0))
    opt.highs_options = {"random_seed": int(options.seed)}
    if options.threads is not None:
        opt.highs_options["threads"] = int(options.threads)
    results = opt.solve(model)
    solve_time = sw.lap()
    status = {TC.optimal: Status.OPTIMAL, TC.maxTimeLimit: Status.TIME_LIMIT, TC.infeasible: Status.INFEASIBLE,
              TC.maxIterations: Status.ITERATION_LIMIT, TC.interrupted: Status.TIME_LIMIT}.get(
        results.termination_condition, Status.ERROR)
    if results.best_feasible_objective is not None:
        results.solution_loader.load_vars()
        x = np.array([pyo.value(model.x[j]) or 0.0 for j in model.J])
        indices = sort_assignments(model._columns[x > 0.5])
    else:
        indices = empty_indices()
    objective = plan_value(problem, indices)
    bound = results.best_objective_bound
    bound = None if bound is None or not np.isfinite(bound) else float(bound)
    if status == Status.OPTIMAL and bound is not None:
        bound = max(bound, objective)
    return SolveResult(status, indices, objective, bound, relative_gap(bound, objective), None, 0, sw.total(),
                       build_time, solve_time, NAME, str(results.termination_condition))
