"""HiGHS backend: the sparse model passed in bulk through ``highspy``.

The model of :func:`formulations.assignment.build_model` is handed to HiGHS
with one ``Highs.passModel(HighsLp)`` call (column-wise matrix), never
variable by variable. :func:`solve_relaxation` solves the LP relaxation of the
same model and returns its value and row duals.
"""

from __future__ import annotations

import numpy as np

from formulations.assignment import PlanningProblem, build_model, decode, plan_value
from formulations.model import SparseModel
from solvers.base import SolveOptions, SolveResult, Status, Stopwatch, empty_indices, relative_gap

NAME = "highs"


def is_available() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:  # pragma: no cover - a hard dependency
        return False
    return True


def _status_map():
    import highspy

    S = highspy.HighsModelStatus
    return {
        S.kOptimal: Status.OPTIMAL,
        S.kTimeLimit: Status.TIME_LIMIT,
        S.kIterationLimit: Status.ITERATION_LIMIT,
        S.kSolutionLimit: Status.ITERATION_LIMIT,
        S.kInterrupt: Status.TIME_LIMIT,
        S.kModelEmpty: Status.OPTIMAL,
        S.kInfeasible: Status.INFEASIBLE,
    }


def to_highs(model: SparseModel, *, integer: bool = True):
    """A ``highspy.HighsLp`` holding the model (maximisation, column-wise matrix)."""
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_ = model.num_cols
    lp.num_row_ = model.num_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.ascontiguousarray(model.objective, dtype=np.float64)
    lp.col_lower_ = np.ascontiguousarray(model.col_lower, dtype=np.float64)
    lp.col_upper_ = np.ascontiguousarray(model.col_upper, dtype=np.float64)
    lp.row_lower_ = np.ascontiguousarray(model.row_lower, dtype=np.float64)
    lp.row_upper_ = np.ascontiguousarray(model.row_upper, dtype=np.float64)
    csc = model.matrix
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data.astype(np.float64)
    lp.a_matrix_.num_col_ = model.num_cols
    lp.a_matrix_.num_row_ = model.num_rows
    if integer and model.integrality.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                           for b in model.integrality]
    return lp


_BANNER_SHOWN = False


def quiet_banner() -> None:
    """Create the process's first ``Highs`` with stdout muted: HiGHS prints its banner once per process."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        _BANNER_SHOWN = True


def quiet_highs():
    """A silent ``Highs`` without presolve, for the small LPs the dual method solves many times."""
    import highspy

    quiet_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    return h


def add_tangent_rows(h, e_cols, t_cols, slope, rhs) -> None:
    """Rows ``slope[r] * x[e_cols[r]] - x[t_cols[r]] <= rhs[r]`` (tangent cuts t >= slope e - rhs), each divided
    by max(|slope|, 1) so that its coefficients are about 1 for HiGHS."""
    import highspy

    k = slope.size
    sc = np.maximum(np.abs(slope), 1.0)
    h.addRows(k, np.full(k, -highspy.kHighsInf), rhs / sc, 2 * k, np.arange(0, 2 * k, 2, dtype=np.int32),
              np.column_stack([np.broadcast_to(e_cols, k), np.broadcast_to(t_cols, k)]).ravel().astype(np.int32),
              np.column_stack([slope / sc, -1.0 / sc]).ravel())


def new_highs(options: SolveOptions):
    """A ``Highs`` instance with the shared options applied."""
    import highspy

    if not options.verbose:
        quiet_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(options.verbose))
    if options.time_limit is not None:
        h.setOptionValue("time_limit", float(max(options.time_limit, 0.0)))
    if options.threads is not None:
        # HiGHS keeps one global thread scheduler; it must be reset to change the thread count
        highspy.Highs.resetGlobalScheduler(True)
        h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", int(options.seed))
    h.setOptionValue("mip_rel_gap", float(options.rel_gap))
    for key, value in options.extra.get("highs_options", {}).items():
        h.setOptionValue(key, value)
    return h


TANGENT_ROUNDS = 8


def _read_mip(h, model: SparseModel, problem: PlanningProblem):
    """(status, indices, true objective, bound, info) of the current HiGHS solution."""
    native = h.getModelStatus()
    status = _status_map().get(native, Status.ERROR)
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    indices = decode(model, np.asarray(h.getSolution().col_value)) if has_solution else empty_indices()
    objective = plan_value(problem, indices)
    bound = float(info.mip_dual_bound)
    if not np.isfinite(bound) or status in (Status.ERROR, Status.INFEASIBLE):
        bound = None
    if status == Status.OPTIMAL and bound is not None:
        bound = max(bound, objective)
    return status, indices, objective, bound, info


def solve(problem: PlanningProblem, options: SolveOptions) -> SolveResult:
    """Solve the weekly plan MIP with HiGHS (tangent refinement for a fairness penalty)."""
    sw = Stopwatch()
    model = build_model(problem)
    build_time = sw.lap()
    if model.num_cols == 0:
        return SolveResult(Status.OPTIMAL, empty_indices(), 0.0, 0.0, 0.0, None, 0, sw.total(), build_time,
                           0.0, NAME, "no candidate contacts")
    h = new_highs(options)
    h.passModel(to_highs(model))
    h.run()
    status, indices, objective, bound, info = _read_mip(h, model, problem)
    rounds = 0
    k, n_terms = model.num_contacts, int(model.meta.get("penalty_terms", 0))
    while (n_terms and status == Status.OPTIMAL and bound is not None and rounds < TANGENT_ROUNDS
           and relative_gap(bound, objective) > options.rel_gap):
        # the tangent model of z^2 is loose at this solution: add tangents at its disparities, re-solve
        z = np.asarray(h.getSolution().col_value)[k:k + n_terms]
        for p_, zp in enumerate(z):
            h.addRow(-np.inf, zp * zp, 2, np.array([k + p_, k + n_terms + p_], dtype=np.int32),
                     np.array([2 * zp, -1.0]))
        h.run()
        status, indices, objective, bound, info = _read_mip(h, model, problem)
        rounds += 1
    solve_time = sw.lap()
    native = h.getModelStatus()
    if status == Status.OPTIMAL and relative_gap(bound, objective) is not None \
            and relative_gap(bound, objective) > max(options.rel_gap, 1e-9) * 1.0001 and n_terms:
        status = Status.FEASIBLE     # the tangent model's error exceeds the requested gap
    return SolveResult(
        status=status, assignment_indices=indices, objective=objective, bound=bound,
        gap=relative_gap(bound, objective), duals=None, iterations=int(info.mip_node_count),
        wall_time=sw.total(), build_time=build_time, solve_time=solve_time, method=NAME,
        message=h.modelStatusToString(native),
        info={"rows": model.num_rows, "cols": model.num_cols, "nonzeros": model.num_nonzeros,
              "highs_objective": float(info.objective_function_value)},
    )


def solve_relaxation(problem: PlanningProblem, options: SolveOptions | None = None) -> dict:
    """Solve the LP relaxation of the reduced model.

    Returns
    -------
    dict
        ``value`` (LP optimum), ``status`` (HiGHS model status string),
        ``duals`` ({"capacity": (M, T), "budget": float}), ``x`` (column
        values), ``model`` and ``solve_time``.
    """
    options = options or SolveOptions()
    sw = Stopwatch()
    model = build_model(problem)
    M, T = problem.n_channels, problem.n_days
    duals = {"capacity": np.zeros((M, T)), "budget": 0.0}
    if model.num_cols == 0:
        return {"value": 0.0, "status": "Optimal", "duals": duals, "x": np.zeros(0), "model": model,
                "build_time": sw.lap(), "solve_time": 0.0}
    build_time = sw.lap()
    h = new_highs(options)
    h.passModel(to_highs(model, integer=False))
    h.run()
    solve_time = sw.lap()
    sol = h.getSolution()
    row_dual = np.asarray(sol.row_dual)  # maximisation: >= 0 on binding <= rows (checked in the tests)
    for r in model.rows_of_kind("capacity"):
        m, t = model.row_key[r]
        duals["capacity"][m, t] = row_dual[r]
    rb = model.rows_of_kind("budget")
    if rb.size:
        duals["budget"] = float(row_dual[rb[0]])
    return {"value": float(h.getInfo().objective_function_value), "status": h.modelStatusToString(h.getModelStatus()),
            "duals": duals, "x": np.asarray(sol.col_value), "model": model, "build_time": build_time,
            "solve_time": solve_time}
