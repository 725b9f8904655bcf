"""CVXPY backend: the weekly plan as a boolean ``cvxpy.Problem`` solved by HiGHS.

Each constraint family is an incidence matrix times the boolean vector ``x``
of candidate contacts, written from the index sets of
:func:`formulations.assignment.row_sets`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from formulations.assignment import PlanningProblem, candidates, plan_value, row_sets, sort_assignments
from solvers.base import SolveOptions, SolveResult, Status, Stopwatch, empty_indices, relative_gap

NAME = "cvxpy"


def is_available() -> bool:
    try:
        import cvxpy as cp

        return "HIGHS" in cp.installed_solvers()
    except Exception:  # pragma: no cover
        return False


def _incidence(row_of_col: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """0/1 matrix with a one at (row_of_col[j], j) wherever row_of_col[j] >= 0."""
    cols = np.flatnonzero(row_of_col >= 0)
    return sp.csr_matrix((np.ones(cols.size), (row_of_col[cols], cols)), shape=(n_rows, row_of_col.size))


def build_cvxpy(problem: PlanningProblem, *, relax: bool = False, exact_quadratic: bool = False):
    """(cvxpy.Problem, x variable, columns) for the weekly plan.

    ``relax`` makes x continuous in [0, 1] (the LP/QP relaxation);
    ``exact_quadratic`` keeps the fairness penalty as a true square.
    """
    import cvxpy as cp

    cand = candidates(problem)
    rows = row_sets(problem, cand)
    k = len(cand)
    n, M, T = problem.shape
    g = problem.min_gap_days
    x = cp.Variable(k, boolean=not relax, name="contact")
    constraints = [x >= 0, x <= 1] if relax else []

    # capacity: one row per listed (channel, day) cell
    cell_row = np.full((M, T), -1, dtype=np.int64)
    cell_row[rows.capacity_cells[:, 0], rows.capacity_cells[:, 1]] = np.arange(len(rows.capacity_cells))
    if len(rows.capacity_cells):
        A_cap = _incidence(cell_row[cand.channel, cand.day], len(rows.capacity_cells))
        constraints.append(A_cap @ x <= problem.capacity[rows.capacity_cells[:, 0], rows.capacity_cells[:, 1]])

    # budget: total spend
    if rows.has_budget_row:
        constraints.append(problem.cost[cand.channel] @ x <= problem.budget)

    # contact limit per listed customer
    if rows.limit_customers.size:
        cust_row = np.full(n, -1, dtype=np.int64)
        cust_row[rows.limit_customers] = np.arange(rows.limit_customers.size)
        A_lim = _incidence(cust_row[cand.customer], rows.limit_customers.size)
        constraints.append(A_lim @ x <= problem.contact_limits()[rows.limit_customers])

    # spacing: a column of day t lies in the windows starting at t-g+1 .. t
    if len(rows.windows):
        win_id = {(int(i), int(s)): r for r, (i, s) in enumerate(rows.windows.tolist())}
        r_idx, c_idx = [], []
        for j, (i, t) in enumerate(zip(cand.customer.tolist(), cand.day.tolist())):
            for s in range(t - g + 1, t + 1):
                r = win_id.get((i, s))
                if r is not None:
                    r_idx.append(r)
                    c_idx.append(j)
        A_win = sp.csr_matrix((np.ones(len(r_idx)), (r_idx, c_idx)), shape=(len(rows.windows), k))
        constraints.append(A_win @ x <= 1)

    f = problem.fairness
    seg = problem.segment_codes[cand.customer] if f is not None else None
    if f is not None and f.n_rows:
        A_fair = np.stack([f.row_coef[r, seg] * f.row_channels[r, cand.channel] for r in range(f.n_rows)])
        constraints.append(sp.csr_matrix(A_fair) @ x <= f.row_rhs)
    objective = cand.utility @ x
    if f is not None and f.penalty > 0:
        # disparities z = B x - c; z^2 by its tangents (no MIQP solver among cvxpy's installed ones);
        # `exact_quadratic=True` keeps the true square (for QP relaxations and MIQP-capable solvers)
        from formulations.fairness import tangent_breakpoints

        B = sp.csr_matrix(np.stack([f.pen_coef[p, seg] * f.pen_channels[p, cand.channel] for p in range(f.n_terms)]))
        z = B @ x - f.pen_const
        if exact_quadratic:
            objective = objective - f.penalty * cp.sum(cp.multiply(f.pen_weight, cp.square(z)))
        else:
            kmax = float(min(int(problem.contact_limits().max()), T))
            t = cp.Variable(f.n_terms, nonneg=True, name="disparity_square")
            for a in tangent_breakpoints(kmax):
                constraints.append(t >= 2 * a * z - a * a)
            objective = objective - f.penalty * (f.pen_weight @ t)
    problem_cp = cp.Problem(cp.Maximize(objective), constraints)
    columns = np.stack([cand.customer, cand.channel, cand.day], axis=1) if k else np.zeros((0, 3), np.int64)
    return problem_cp, x, columns


def qp_relaxation_bound(problem: PlanningProblem) -> float:
    """Upper bound from the continuous relaxation with the exact quadratic fairness penalty (a convex QP)."""
    import cvxpy as cp

    prob, _, columns = build_cvxpy(problem, relax=True, exact_quadratic=True)
    if columns.shape[0] == 0:
        return 0.0
    prob.solve(solver=cp.CLARABEL if "CLARABEL" in cp.installed_solvers() else cp.HIGHS)
    return float(prob.value)


def solve(problem: PlanningProblem, options: SolveOptions) -> SolveResult:
    import cvxpy as cp

    if not options.verbose:
        from solvers.highs_direct import quiet_banner

        quiet_banner()
    sw = Stopwatch()
    prob, x, columns = build_cvxpy(problem)
    build_time = sw.lap()
    if columns.shape[0] == 0:
        return SolveResult(Status.OPTIMAL, empty_indices(), 0.0, 0.0, 0.0, None, 0, sw.total(), build_time, 0.0,
                           NAME, "no candidate contacts")
    kwargs = {"mip_rel_gap": float(options.rel_gap), "random_seed": int(options.seed)}
    if options.time_limit is not None:
        kwargs["time_limit"] = float(max(options.time_limit, 0.0))
    if options.threads is not None:
        kwargs["threads"] = int(options.threads)
    try:
        prob.solve(solver=cp.HIGHS, verbose=bool(options.verbose), **kwargs)
    except cp.error.SolverError as exc:
        return SolveResult(Status.ERROR, empty_indices(), 0.0, None, None, None, 0, sw.total(), build_time,
                           sw.lap(), NAME, str(exc))
    solve_time = sw.lap()
    status = {"optimal": Status.OPTIMAL, "optimal_inaccurate": Status.OPTIMAL, "infeasible": Status.INFEASIBLE,
              "user_limit": Status.TIME_LIMIT}.get(prob.status, Status.ERROR)
    if x.value is not None:
        indices = sort_assignments(columns[np.asarray(x.value) > 0.5])
    else:
        indices = empty_indices()
    objective = plan_value(problem, indices)
    info = prob.solver_stats.extra_stats
    bound = None
    if info is not None and np.isfinite(getattr(info, "mip_dual_bound", np.nan)):
        bound = -float(info.mip_dual_bound)  # cvxpy hands HiGHS the minimisation of -objective
    if status == Status.OPTIMAL and bound is not None:
        bound = max(bound, objective)
    nodes = int(getattr(info, "mip_node_count", 0)) if info is not None else 0
    return SolveResult(status, indices, objective, bound, relative_gap(bound, objective), None, nodes, sw.total(),
                       build_time, solve_time, NAME, prob.status)
