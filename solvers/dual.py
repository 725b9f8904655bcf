"""``method="dual"``: numba Lagrangian dual decomposition with a certified gap.

The maths (relaxation, per-customer DP, level bundle method, primal
recovery) is in :mod:`formulations.lagrangian`; the kernels are in
:mod:`solvers._dual_kernels`. This module runs the loop:

1. evaluate L and a subgradient at the current prices (one parallel pass
   over the customers),
2. update the cutting-plane model; its minimum (HiGHS LP) and the best
   feasible plan bound min L from below,
3. recover a feasible plan from the best prices when the interval is small
   (from ``MASTER_FROM`` customers, in-process, by the restricted master LP
   of :mod:`solvers.master` once a few points' choices are kept),
4. stop when ``(bound - objective) / |bound| <= rel_gap`` (status
   ``optimal``), at the time limit (``time_limit``), at the iteration cap
   (``iteration_limit``), or when the dual is solved but the plan cannot
   close the remaining gap (``feasible``, the certified gap is reported);
5. otherwise project onto the level set (least-distance NNLS, HiGHS QP as
   check and fallback; :mod:`solvers.bundle`) for the next prices. With a
   fairness penalty, L = h + q where q(nu) = sum nu^2/(4 gamma w) is known:
   the projected point is pulled into the level set of "h's cuts + q exact"
   by cuts that need no evaluation (:func:`_exact_smooth_part`). Measured at
   1M customers, gamma=1000 on the call rates: 49 -> 29 iterations; at 200k,
   106 -> 14.

Hard segment rows that all count the same channels are priced exactly at
every evaluation (:meth:`DualData.settled`): the level method then works on
min over the row prices of L. Measured at 1M customers, 8 segments, every
call rate >= 0.8 x the overall one, seeds 1-4 (with the recovery changes
that go with it): 51, 51, 58, 58 -> 20, 27, 21, 20 iterations; settling
only in the sample stage (tried, measured before the free-channel fill of
the recovery) took 55, 48, 70, 47. The sample stage settles them as well
(``SAMPLE_SETTLE`` in :mod:`solvers.dual_data`, where its measurements are).
After a sample stage the full stage settles exactly only every
``SETTLE_REPRICE + 1``-th evaluation and re-prices the last patterns in
between (``DualData.reprice_settles``, set below; measured in
:meth:`DualData.settled`). ``SETTLE_ROWS = False`` in
:mod:`solvers.dual_data` turns settling off.

The prices of a quadratic fairness penalty are settled the same way when its
terms count the same channels (that LP then carries the penalty by tangents,
see :func:`solvers.dual_data._settle_lp`), and the sample's estimate of min L
then places the levels as for hard rows. Measured at 1M customers, 8
segments, gamma=1e7 on the call rates, seeds 1-12 (2026-11-29, this
machine, in-process): 191 -> 129-136 full iterations, 72.0 -> 52-53 s in all
(no fairness: 121 iterations, 33.7-34.2 s).

Starting prices: ``warm_start`` when given; else, from ``SAMPLE_FROM``
customers, the prices a level loop finds on a random sample; else half the
naive clearing price of every channel-day (:meth:`DualData.clearing_start`;
the sample stage starts from it too). ``solve(..., clearing_start=False)``
starts from zero prices instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from formulations._validate import integer_scalar
from formulations.assignment import PlanningProblem
from formulations.errors import InputError
from solvers.base import SolveOptions, SolveResult, Status, Stopwatch, empty_indices, relative_gap
from solvers.bundle import LevelBundle
from solvers.dual_data import DualData, PlanCodes

NAME = "dual"
MAX_ITER = 500
LIGHT_ROUNDS = 2      # add/swap rounds of the recoveries during the iterations (the returned plan gets a full one).
#                       Their plans also lift the level's floor; with one round the 1M fairness instances stalled
RECOVER_NEAR = 10     # recover at every new best price once the dual interval is within this many rel_gaps
RECOVER_EVERY = 10    # ... and at least every this many iterations before
MASTER_MIN_POINTS = 4  # recoveries mix the choices of the recent points (solvers.master) once this many are kept ...
MASTER_EVERY = 5      # ... at least every this many iterations (and once the dual interval is near) ...
MASTER_EVERY_SETTLED = 4  # ... or this many with settled fairness prices (1M, hard rows, seeds 1-12: 107 -> 98 iterations,
#                            22.6 -> 21.6 s; seeds 13-24: 138 -> 125, 28.0 -> 26.5 s. Without rows no gain: seeds 1-12
#                            121 -> 109 iterations in 13.7 s both, seeds 13-24 13.5 -> 14.6 s, 10M 12.8 -> 15.0 s)
MASTER_AGAIN = 0.5    # ... and as soon as the bound has closed this share of the gap left at the last one
DUAL_CLOSED = 0.01    # dual interval, relative to rel_gap, at which the dual counts as solved
MAX_LEVEL_TRIES = 60  # level lowerings per iteration before giving up
STALL_ITERATIONS = 60  # stop when neither bound nor plan improved by rel_gap/100 for this many iterations
PARALLEL_FROM = 4_096  # customers from which the kernels run on several threads (10k: 2.1 -> 1.4 ms per evaluation)
SAMPLE_FROM = 200_000  # customers from which starting prices come from a sample
SAMPLE_MIN = 20_000    # customers in that sample (at least) ...
SAMPLE_SHARE = 25      # ... or 1/25 of the customers (1M: 40,000), at most SAMPLE_MAX. 1/50 before: interleaved A/B,
#                        1M `weekly` seeds 1-24 x sample seeds 0-2 (72 solves each), full iterations and seconds in all:
#                        no fairness 785 -> 700, 184.5 -> 182.8 s; penalty gamma=1e7 852 -> 674, 268.6 -> 235.0 s; hard
#                        rows 796 -> 662, 308.2 -> 295.1 s. A 40,000 sample at 200k (seeds 1-6 x 0-2) was slower
#                        (10.0 -> 12.5 s, 22.9 -> 24.8, 28.3 -> 35.0), hence a share, not a larger minimum
SAMPLE_MAX = 200_000   # 10M customers keep the 200,000 sample of their benchmark (400,000 there, weekly seed 1,
#                        sample seeds 0 and 1: 36.0 and 19.0 s against 21.7 and 23.6 s: no gain shown)
SAMPLE_GAP = 3e-4      # dual interval at which the sample stage stops. 1M `weekly`, interleaved A/B 5e-4 -> 3e-4,
#                        sample seeds 0-1, seconds and full iterations in all: instances 1-12 no fairness 51.0 -> 53.0 s
#                        (214 -> 216), hard rows 74.4 -> 68.9 s (219 -> 200), penalty gamma=1e7 77.0 -> 72.9 s (228 ->
#                        205); instances 13-24 no fairness 49.4 -> 45.5 s (243 -> 218), hard rows 77.9 -> 70.3 s (245 ->
#                        214; 2e-4: 72.2 s, 219). 1e-3 (hard, 1-12): 78.5 -> 106.9 s (219 -> 302). 10M (`weekly-10m`,
#                        sample seeds 0-2): 25.2 -> 33.9, 20.9 -> 15.4, 20.3 -> 23.0 s. Earlier (six seeds,
#                        1e-3 -> 5e-4): no fairness 9.8 -> 7.9 s, penalty 10.3 -> 9.3, hard rows 15.0 -> 13.4
GUESS_FACTOR = 2.0     # the full stage expects min L within this many times the sample's dual interval
SMOOTH_CUTS = 3       # h-cuts combined with q's tangent at each projected point (fairness penalty; 0 = off)
SMOOTH_ROUNDS = 3     # ... re-projections per level
POLISH_CELLS = 40_000  # customer-channel-day cells up to which an open gap is closed by an exact MIP (see polish)
POLISH_SECONDS = 30.0  # time limit of that MIP when the solve has none


def is_available() -> bool:
    return True


def _progress_display(verbose: bool):
    if not verbose:
        return None
    from rich.live import Live
    from rich.table import Table

    def render(rows: list[dict]) -> Table:
        table = Table(title="contactplan dual", title_justify="left")
        for col in ("iter", "bound", "best plan", "gap", "elapsed s"):
            table.add_column(col, justify="right")
        for r in rows[-8:]:
            table.add_row(str(r["iteration"]), f"{r['bound']:.10g}",
                          "—" if r["objective"] is None else f"{r['objective']:.10g}",
                          "—" if r["gap"] is None else f"{r['gap']:.2e}", f"{r['elapsed']:.2f}")
        return table

    live = Live(render([]), refresh_per_second=8, transient=False)
    live.start()
    rows: list[dict] = []

    def update(row: dict | None) -> None:
        if row is None:
            live.stop()
            return
        rows.append(row)
        live.update(render(rows))

    return update


@dataclass
class LoopResult:
    status: Status
    best_f: float
    best_y: np.ndarray
    plan: np.ndarray
    objective: float
    lower: float
    iterations: int
    cuts: int
    history: list


def default_sample_size(n: int) -> int:
    """Customers in the sample whose prices start a solve of ``n`` customers (from ``SAMPLE_FROM``)."""
    return min(max(SAMPLE_MIN, n // SAMPLE_SHARE), SAMPLE_MAX)


def level_loop(data: DualData, y0: np.ndarray, rel_gap: float, deadline: float | None, max_iter: int,
               alpha: float = 0.3, on_row=None, clock_start: float | None = None, tune: str = "final",
               guess: float | None = None, prices_only: bool = False, master: bool = True) -> LoopResult:
    """Minimise L over the price box from ``y0``; recover plans on the way (see module docstring).

    ``guess`` (relative): min L is expected within ``guess * |L(y0)|`` below L(y0), as the
    sample stage measured. Levels are then placed above that estimate while the certified
    lower bound is still below it, so the first steps stay near a good start instead of
    exploring the box while the cutting-plane model is poor. The estimate never enters the
    stopping tests; an empty level set still proves a (certified) lower bound. Measured at
    1M customers: 28 -> 19 iterations without fairness, 99 -> 58 with hard segment rows, but
    49 -> 62 with the quadratic fairness penalty, so ``run`` does not use it there. Once the
    best value is within ``rel_gap`` of the estimate the estimate is dropped: levels based on
    it would only creep towards it, every step reaching its level and shrinking by ``alpha``
    (1M customers, hard rows, seed 4: steps from 1e-5 down to 1e-14 over 19 iterations;
    43 -> 35 iterations with the estimate dropped, the other five seeds and the six
    no-fairness solves unchanged).

    ``prices_only`` (the sample stage): stop as soon as the dual interval
    (best L against the lower bound) is within ``rel_gap``, whatever the plan's gap.
    ``master=False`` keeps to the light recoveries (no :mod:`solvers.master`).
    """
    start = time.perf_counter() if clock_start is None else clock_start
    bundle = LevelBundle(data.dim, alpha=alpha, upper=data.box, lower=data.lower)
    y = y0
    best_f, best_y = math.inf, y0
    plan, objective = data.empty_plan()             # feasible unless segment minimums forbid it
    recovered_y = None
    f_low = 0.0
    status = Status.ITERATION_LIMIT
    history: list[dict] = []
    closed = DUAL_CLOSED * rel_gap
    f_guess = -math.inf
    settle = getattr(data, "settles", lambda: False)()
    # q's tangents serve term prices the bundle method moves; settled ones are set at every evaluation
    smooth_cuts = (SMOOTH_CUTS > 0 and data.smooth_part(y0) is not None
                   and not getattr(data, "settles_terms", lambda: False)())
    h_cuts: list = []
    it = 0
    master = master and getattr(data, "supports_master", lambda: False)()
    mastered, master_at = False, (math.inf, 0)
    for it in range(1, max_iter + 1):
        if settle:      # the row prices that minimise L for the other prices (DualData.settled)
            y, (f, g, _, _) = data.settled(y)
        else:
            f, g, _, _ = data.evaluate(y)
        if master:
            data.keep_choices()
        if f < best_f:
            best_f, best_y = f, y
        if guess is not None and it == 1:
            f_guess = f - guess * abs(f)
        elif best_f - f_guess <= rel_gap * abs(best_f):
            f_guess = -math.inf     # the estimate is reached: levels based on it would only creep towards it
        if data.dim == 0:           # nothing to price: the customers' choices are optimal
            idx, obj = data.recover(best_y)
            if obj > objective:
                plan, objective = idx, obj
            recovered_y, status = best_y, Status.OPTIMAL
            break
        bundle.add_cut(y, f, g)
        if smooth_cuts:
            qv, qg = data.smooth_part(y)
            h_cuts.append((np.array(y, dtype=np.float64), f - qv, g - qg))
        f_low = max(f_low, bundle.model_minimum(), objective)
        dual_gap = (best_f - f_low) / max(abs(best_f), 1e-300)
        near = dual_gap <= RECOVER_NEAR * rel_gap
        mixing = master and isinstance(plan, PlanCodes) and data.master_points() >= MASTER_MIN_POINTS
        if mixing:      # master recoveries (solvers.master), also at the same best prices: new points, new choices
            due = (it - master_at[1] >= (MASTER_EVERY_SETTLED if settle else MASTER_EVERY) or (near and not mastered)
                   or (mastered and best_f <= master_at[0] - MASTER_AGAIN * (master_at[0] - objective)))
        else:
            due = recovered_y is not best_y and (recovered_y is None or near or it % RECOVER_EVERY == 0)
        if due:
            at = best_y
            if data.has_budget_price and tune == "near" and near:
                at, evals = data.tune_budget_price(best_y)
                for yy, ff, gg in evals:
                    bundle.add_cut(yy, ff, gg)
                    if ff < best_f:
                        best_f, best_y = ff, yy
            if mixing:      # mix the recent choices into the incumbent
                idx, obj = data.recover_master(at, plan.codes, lazy=True)
                mastered = True
            elif master:    # master recoveries to come: the first plan is only their base (no add/swap rounds,
                #             no rows' give-back; 1M, six seeds, the same iterations: plain 7.9 -> 6.8 s, hard rows 2.3 s less)
                idx, obj = data.recover(at, rounds=0, lazy=True, give_back=False)
            else:
                idx, obj = data.recover(at, rounds=LIGHT_ROUNDS, lazy=True)
            master_at = (best_f, it)
            recovered_y = best_y
            if obj > objective:
                plan, objective = idx, obj
                f_low = max(f_low, objective)
        gap = relative_gap(best_f, objective)
        row = {"iteration": it, "bound": best_f, "objective": objective, "gap": gap, "lower": f_low,
               "elapsed": time.perf_counter() - start, "y": y}
        history.append(row)
        if on_row is not None:
            on_row(row)
        if gap is not None and gap <= rel_gap or prices_only and dual_gap <= rel_gap:
            status = Status.OPTIMAL
            break
        if deadline is not None and time.perf_counter() >= deadline:
            status = Status.TIME_LIMIT
            break
        if best_f - f_low <= closed * max(abs(best_f), 1e-300):
            # the dual is solved far below the requested gap, yet the plan cannot close the
            # rest (integrality gap or recovery loss): more price iterations cannot help
            status = Status.FEASIBLE
            break
        if it >= STALL_ITERATIONS:
            past = history[-STALL_ITERATIONS]
            scale = closed * max(abs(best_f), 1e-300)
            if past["bound"] - best_f <= scale and objective - past["objective"] <= scale:
                status = Status.FEASIBLE     # stalled: report the certified gap reached
                break
        y_next = None
        for _ in range(MAX_LEVEL_TRIES):
            base = f_guess if f_low < f_guess < best_f else f_low
            level = base + bundle.alpha * (best_f - base)
            outcome, y_next = bundle.project(best_y, level)
            if outcome == "ok" and smooth_cuts:
                outcome, y_next = _exact_smooth_part(data, bundle, h_cuts, best_y, level, y_next)
            if outcome == "ok":
                break
            if outcome == "failed":     # numerical trouble in the QP: take Kelley's point instead
                y_next = bundle.model_minimizer()
                break
            f_low = level               # empty level set: min L > level, a valid lower bound
            if best_f - f_low <= closed * max(abs(best_f), 1e-300):
                break
        if y_next is None:
            status = Status.FEASIBLE
            break
        y = y_next
    if status != Status.OPTIMAL:
        idx, obj = data.recover(best_y)
        if obj > objective:
            plan, objective = idx, obj
    gap = relative_gap(best_f, objective)
    if (tune != "never" and data.has_budget_price and gap is not None and gap > rel_gap
            and (deadline is None or time.perf_counter() < deadline)):
        # last attempt: the plan is most sensitive to the budget price; fit it exactly
        at, evals = data.tune_budget_price(best_y)
        for yy, ff, _ in evals:
            if ff < best_f:
                best_f, best_y = ff, yy
        idx, obj = data.recover(at)
        if obj > objective:
            plan, objective = idx, obj
    if status in (Status.ITERATION_LIMIT, Status.FEASIBLE):
        gap = relative_gap(best_f, objective)
        if gap is not None and gap <= rel_gap:
            status = Status.OPTIMAL
    plan = None if plan is None else data.indices_of(plan)
    return LoopResult(status, best_f, best_y, plan, objective, f_low, it, len(bundle), history)


def _exact_smooth_part(data: DualData, bundle: LevelBundle, h_cuts: list, center: np.ndarray, level: float,
                       y: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Pull a projected point into the level set of the model with q exact.

    L = h + q with q(y) = sum nu^2/(4 gamma w) known (:meth:`DualData.smooth_part`).
    Any cut of h plus any tangent of q is a valid cut of L, found without an
    evaluation: while the point lies above the level for h's most active cuts
    plus q's exact value there, add those cuts with q's tangent at the point
    and project again.
    """
    for _ in range(SMOOTH_ROUNDS):
        qv, qg = data.smooth_part(y)
        hv = np.array([fh + gh @ (y - yj) for yj, fh, gh in h_cuts])
        if hv.max() + qv <= level + 1e-9 * max(abs(level), 1.0):
            break
        for j in np.argsort(-hv)[:SMOOTH_CUTS]:
            bundle.add_cut(y, float(hv[j] + qv), h_cuts[j][2] + qg)
        outcome, y = bundle.project(center, level)
        if outcome != "ok":
            return outcome, y
    return "ok", y


def solve(problem: PlanningProblem, options: SolveOptions) -> SolveResult:
    """Minimise the Lagrangian dual with a level bundle method and recover a plan."""
    import numba

    sw = Stopwatch()
    previous_threads = numba.get_num_threads()
    threads = numba.config.NUMBA_NUM_THREADS if options.threads is None else int(options.threads)
    if problem.n_customers < PARALLEL_FROM:
        threads = 1     # a parallel region costs more than it saves on a few chunks (and stalls on busy machines)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        data = DualData(problem)
        result = run(data, options, sw, budget_given=problem.budget is not None)
        return polish(problem, data, result, options)
    finally:
        numba.set_num_threads(previous_threads)


def polish(problem: PlanningProblem, data: DualData, result: SolveResult, options: SolveOptions) -> SolveResult:
    """Close the gap left on a small instance with an exact MIP over the cells Lagrangian fixing keeps.

    For prices y >= 0 every plan x satisfies value(x) <= L(y) + r_c for each
    cell c it uses, r_c being the cell's reduced utility at y (the customer's
    other contacts form a pattern worth at most that customer's optimum, and
    the relaxed rows only lower the bound). A cell with r_c < -(bound -
    objective) therefore lies in no plan better than the incumbent: it is
    fixed to zero, and HiGHS solves the MIP over the remaining cells. The
    full optimum is then max(incumbent, restricted optimum), so the bound
    becomes min(bound, max(objective, restricted MIP bound)) — for these
    problems ``plan.bound`` is then no longer the Lagrangian (LP) bound; the
    message says so. Used only for hard segment rows (the recovery's repair
    is a heuristic there and integrality gaps are large on small instances)
    without a fairness penalty (HiGHS has no MIQP), when the dual method
    stops above the requested gap on at most ``POLISH_CELLS`` cells (the
    MIP gets the time the solve has left, ``POLISH_SECONDS`` without a
    limit; stopped early, its incumbent and bound are used as they are);
    ``solve(..., polish=False)`` turns it off.
    """
    n, M, T = problem.shape
    gap = result.gap
    if (not data.n_rows or data.gamma or not options.extra.get("polish", True) or n * M * T > POLISH_CELLS
            or gap is None or gap <= options.rel_gap or result.bound is None or result.status == Status.NO_SOLUTION):
        return result
    from solvers import highs_direct

    y = data.coords(result.duals)          # the best prices, back from the plan's shadow prices
    price, mu = data.prices(y)
    shift = data.shift(y)
    seg = data.seg if data.seg.shape[0] > 1 else np.zeros(n, dtype=np.int64)
    reduced = (problem.utility - price[None, :, :] - (mu * data.cost)[None, :, None]
               - shift[seg][:, :, None])
    slack = (result.bound - result.objective) * (1.0 + 1e-9) + 1e-9
    keep = reduced >= -slack
    utility = np.where(keep, problem.utility, -np.inf)
    remaining = POLISH_SECONDS if options.time_limit is None else max(options.time_limit - result.wall_time, 1.0)
    exact = highs_direct.solve(problem.replace(utility=utility),
                               SolveOptions(time_limit=remaining, rel_gap=options.rel_gap, threads=options.threads))
    if exact.status not in (Status.OPTIMAL, Status.FEASIBLE, Status.TIME_LIMIT) or exact.bound is None:
        return result
    objective, plan = result.objective, result.assignment_indices
    if exact.assignment_indices is not None and exact.objective > objective:
        objective, plan = exact.objective, exact.assignment_indices
    bound = min(result.bound, max(objective, exact.bound))
    new_gap = relative_gap(bound, objective)
    status = Status.OPTIMAL if new_gap is not None and new_gap <= options.rel_gap else result.status
    info = dict(result.info, polish={"cells_kept": int(keep.sum()), "cells": int(keep.size),
                                     "mip_status": str(exact.status), "mip_time": exact.wall_time})
    return SolveResult(status=status, assignment_indices=plan, objective=objective, bound=bound, gap=new_gap,
                       duals=result.duals, iterations=result.iterations, wall_time=result.wall_time + exact.wall_time,
                       build_time=result.build_time, solve_time=result.solve_time + exact.wall_time, method=NAME,
                       message=result.message + f"; exact MIP over {int(keep.sum()):,} of {keep.size:,} cells "
                       "(Lagrangian fixing)", info=info)


def run(data: DualData, options: SolveOptions, sw: Stopwatch, budget_given: bool) -> SolveResult:
    """The dual method on prepared data (in-process :class:`DualData` or a sharded one)."""
    build_time = sw.lap()
    start = time.perf_counter()
    deadline = None if options.time_limit is None else start + options.time_limit
    max_iter = int(options.max_iter or MAX_ITER)
    alpha = options.extra.get("level_alpha", 0.3)
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.number)) or not 0 < alpha < 1:
        raise InputError("level_alpha", f"expected a number between 0 and 1 (exclusive), got {alpha!r}")
    alpha = float(alpha)
    display = _progress_display(options.verbose)

    def on_row(row: dict) -> None:
        if display:
            display(row)
        if options.progress:
            options.progress(row)

    master = options.extra.get("master", True)
    if not isinstance(master, (bool, np.bool_)):
        raise InputError("master", f"expected True or False, got {master!r}")
    y0 = data.coords(options.warm_start)
    clearing = options.warm_start is None and data.dim > 0 and options.extra.get("clearing_start", True)
    sample_iterations = 0
    guess = None
    sample_size = options.extra.get("sample_size", default_sample_size(data.n))
    sample_size = integer_scalar("sample_size", sample_size, minimum=1)
    use_sample = (options.warm_start is None and data.dim > 0 and options.extra.get("sample", True)
                  and data.n >= SAMPLE_FROM and sample_size < data.n)
    try:
        if use_sample:
            # cheap starting prices from a random subset of customers
            sample = data.subsample(sample_size, options.seed)
            first = level_loop(sample, sample.clearing_start() if clearing else y0, max(options.rel_gap, SAMPLE_GAP),
                               deadline, max_iter, alpha, prices_only=True)
            y0, sample_iterations = first.best_y, first.iterations
            guess = GUESS_FACTOR * (first.best_f - first.lower) / max(abs(first.best_f), 1e-300)
            data.reprice_settles = True     # the full stage starts close: settles may re-price patterns
        elif clearing:
            y0 = data.clearing_start()
        result = level_loop(data, y0, options.rel_gap, deadline, max_iter, alpha, on_row, start,
                            tune=str(options.extra.get("tune_budget", "final")),
                            guess=guess if options.extra.get("sample_guess", not data.n_terms or data.settles_terms()) else None,
                            master=bool(master))
    finally:
        if display:
            display(None)
    solve_time = sw.lap()
    price, mu = data.prices(result.best_y)
    status, plan, objective = result.status, result.plan, result.objective
    if plan is None:   # no plan met the segment bounds (the bound is still valid)
        status, plan, objective = Status.NO_SOLUTION, empty_indices(), 0.0
    duals = {"capacity": price, "budget": mu if budget_given else 0.0}
    if data.fair is not None:
        rows, terms = data.fairness_prices(result.best_y)
        duals.update(fairness=rows, fairness_penalty=terms)
    return SolveResult(
        status=status, assignment_indices=plan, objective=objective, bound=result.best_f,
        gap=None if status == Status.NO_SOLUTION else relative_gap(result.best_f, objective),
        duals=duals,
        iterations=result.iterations, wall_time=sw.total(), build_time=build_time, solve_time=solve_time,
        method=NAME, message=f"level bundle: {result.iterations} iterations"
        + (f" after {sample_iterations} on a {sample_size:,}-customer sample" if use_sample else ""),
        info={"history": result.history, "lower_bound": result.lower, "dimension": data.dim,
              "sample_iterations": sample_iterations, "sample_size": sample_size if use_sample else 0,
              "prices": [h.get("y") for h in result.history] if options.extra.get("record_prices") else None},
    )
