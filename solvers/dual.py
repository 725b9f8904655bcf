"""``method="dual"``: numba Lagrangian dual decomposition with a certified gap.

The maths (relaxation, per-customer DP, level bundle method, primal
recovery) is in :mod:`formulations.lagrangian`; the kernels are in
:mod:`solvers._dual_kernels`. This module runs the loop:

1. evaluate L and a subgradient at the current prices (one parallel pass
   over the customers),
2. update the cutting-plane model; its minimum (HiGHS LP) and the best
   feasible plan bound min L from below,
3. recover a feasible plan from the best prices when the interval is small,
4. stop when ``(bound - objective) / |bound| <= rel_gap`` (status
   ``optimal``), at the time limit (``time_limit``), at the iteration cap
   (``iteration_limit``), or when the dual is solved but the plan cannot
   close the remaining gap (``feasible``, the certified gap is reported);
5. otherwise project onto the level set (HiGHS QP) for the next prices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from formulations.assignment import PlanningProblem
from solvers import _dual_kernels as K
from solvers.base import SolveOptions, SolveResult, Status, Stopwatch, empty_indices, relative_gap
from solvers.bundle import LevelBundle

NAME = "dual"
CHUNK = 2048          # customers per parallel work item
MAX_ITER = 500
TOL_ROWS = 1e-9
ROW_SCALE = 2.0       # a fairness row price spans [0, ROW_SCALE * max utility / smallest coefficient]
FILL_ROUNDS = 6       # add/swap rounds of the final recovery
LIGHT_ROUNDS = 2      # ... and of the recoveries during the iterations
DUAL_CLOSED = 0.01    # dual interval, relative to rel_gap, at which the dual counts as solved
MAX_LEVEL_TRIES = 60  # level lowerings per iteration before giving up
STALL_ITERATIONS = 60  # stop when neither bound nor plan improved by rel_gap/100 for this many iterations
PARALLEL_FROM = 16_384  # customers from which the kernels run on several threads
SAMPLE_FROM = 200_000  # customers from which starting prices come from a sample
SAMPLE_MIN = 20_000    # customers in that sample (at least) ...
SAMPLE_SHARE = 50      # ... or 1/50 of the customers
SAMPLE_GAP = 1e-3      # gap at which the sample stage stops


def is_available() -> bool:
    return True


class DualData:
    """Arrays the kernels need, prepared once per solve (no copy of the utilities).

    Prices live in normalised coordinates y (``price = y * scale``) laid out as
    [capacity cells | budget | fairness rows | fairness penalty terms]; the
    first three are >= 0, penalty prices are free (box [-1, 1]).
    """

    def __init__(self, problem: PlanningProblem) -> None:
        p = problem
        self.problem = p
        self.u = p.utility if p.utility.flags.c_contiguous else np.ascontiguousarray(p.utility)
        n, M, T = p.shape
        self.n, self.M, self.T = n, M, T
        self.gap = int(p.min_gap_days)
        self.cost = np.ascontiguousarray(p.cost, dtype=np.float64)
        self.capacity = np.ascontiguousarray(p.capacity, dtype=np.float64)
        self.budget = p.budget
        limits = p.contact_limits()
        self.limits = (np.array([int(p.max_contacts)], dtype=np.int64) if np.ndim(p.max_contacts) == 0
                       else np.ascontiguousarray(limits, dtype=np.int64))
        self.slots = max(1, min(int(self.limits.max()) if self.limits.size else 0, math.ceil(T / self.gap), T))
        self.cell_ok = np.ascontiguousarray(p.cell_allowed())
        self.neg_ok = np.ascontiguousarray(p.negative_ok())
        self.max_u = K.max_positive_utility(self.u, self.cell_ok, CHUNK)
        umax = float(self.max_u.max()) if self.max_u.size else 0.0
        f = p.fairness if p.has_fairness else None
        self.fair = f
        if f is not None:
            self.seg = np.ascontiguousarray(p.segment_codes, dtype=np.int64)
            self.n_segments = f.n_segments
        else:
            self.seg = np.zeros(1, dtype=np.int64)
            self.n_segments = 1
        # price variables: cells somebody may want, plus the budget when something costs money
        self.price_cells = np.argwhere(self.cell_ok & ((self.max_u > 0) | self.neg_ok[:, None]))
        cell_scale = np.maximum(self.max_u[self.price_cells[:, 0], self.price_cells[:, 1]], max(umax, 1e-9) * 1e-3) \
            if self.price_cells.size else np.zeros(0)
        scale = list(cell_scale)
        lower = [0.0] * len(scale)
        self.has_budget_price = False
        if self.budget is not None:
            ratios = [self.max_u[m].max() / self.cost[m] for m in range(M) if self.cost[m] > 0]
            mu_max = max(ratios) if ratios else 0.0
            if mu_max > 0:
                self.has_budget_price = True
                scale.append(mu_max)
                lower.append(0.0)
        self.n_rows = f.n_rows if f is not None else 0
        self.n_terms = f.n_terms if f is not None else 0
        self.row_rhs = f.row_rhs.copy() if f is not None else np.zeros(0)
        self.pen_const = f.pen_const[:self.n_terms].copy() if f is not None else np.zeros(0)
        self.gamma = f.penalty if f is not None else 0.0
        if self.n_rows:
            # a row price times the row's smallest coefficient shifts utilities by at most ~2 umax
            mins = [np.abs(f.row_coef[r][f.row_coef[r] != 0]).min() for r in range(self.n_rows)]
            scale += [ROW_SCALE * max(umax, 1e-9) / a for a in mins]
            lower += [0.0] * self.n_rows
        if self.n_terms:
            kmax = float(min(int(self.limits.max()), T))
            weight = f.pen_weight[:self.n_terms]
            self.term_weight = np.maximum(weight, 1e-300)
            scale += list(2.0 * f.penalty * weight * (kmax + 1.0) + 1e-12)
            lower += [-1.0] * self.n_terms
        self.scale = np.asarray(scale, dtype=np.float64)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.box = np.ones(self.scale.size)     # y lies in [lower, box]
        self.dim = self.scale.size
        ncell = self.price_cells.shape[0]
        self.i_mu = ncell if self.has_budget_price else None
        self.i_rows = ncell + int(self.has_budget_price)
        self.i_terms = self.i_rows + self.n_rows

    # prices <-> normalised coordinates y
    def prices(self, y: np.ndarray) -> tuple[np.ndarray, float]:
        price = np.zeros((self.M, self.T))
        ncell = self.price_cells.shape[0]
        if ncell:
            price[self.price_cells[:, 0], self.price_cells[:, 1]] = y[:ncell] * self.scale[:ncell]
        mu = float(y[self.i_mu] * self.scale[self.i_mu]) if self.has_budget_price else 0.0
        return price, mu

    def fairness_prices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = y[self.i_rows:self.i_terms] * self.scale[self.i_rows:self.i_terms]
        terms = y[self.i_terms:] * self.scale[self.i_terms:]
        return rows, terms

    def shift(self, y: np.ndarray) -> np.ndarray:
        """(S, M) fairness price shift of the reduced utilities."""
        if self.fair is None:
            return np.zeros((1, self.M))
        rows, terms = self.fairness_prices(y)
        return np.ascontiguousarray(self.fair.shift(rows, terms))

    def coords(self, duals: dict | None) -> np.ndarray:
        y = np.zeros(self.dim)
        if not duals:
            return y
        cap = np.asarray(duals.get("capacity", np.zeros((self.M, self.T))), dtype=np.float64)
        if cap.shape == (self.M, self.T):
            ncell = self.price_cells.shape[0]
            y[:ncell] = cap[self.price_cells[:, 0], self.price_cells[:, 1]] / self.scale[:ncell]
        if self.has_budget_price:
            y[self.i_mu] = float(duals.get("budget", 0.0) or 0.0) / self.scale[self.i_mu]
        rows = np.asarray(duals.get("fairness", []), dtype=np.float64).ravel()
        if rows.size == self.n_rows and self.n_rows:
            y[self.i_rows:self.i_terms] = rows / self.scale[self.i_rows:self.i_terms]
        terms = np.asarray(duals.get("fairness_penalty", []), dtype=np.float64).ravel()
        if terms.size == self.n_terms and self.n_terms:
            y[self.i_terms:] = terms / self.scale[self.i_terms:]
        return np.clip(np.nan_to_num(y), self.lower, self.box)

    def evaluate(self, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
        """L(y), its subgradient in y-coordinates, usage (M, T), spend."""
        price, mu = self.prices(y)
        cost_price = mu * self.cost
        customer_sum, usage, seg_usage = K.evaluate_dual(self.u, self.cell_ok, price, cost_price, self.limits,
                                                         self.gap, CHUNK, self.seg, self.shift(y), self.neg_ok)
        spend = float((usage * self.cost[:, None]).sum())
        value = float((price * self.capacity).sum()) + customer_sum
        ncell = self.price_cells.shape[0]
        grad = np.empty(self.dim)
        if ncell:
            pc = self.price_cells
            grad[:ncell] = (self.capacity[pc[:, 0], pc[:, 1]] - usage[pc[:, 0], pc[:, 1]]) * self.scale[:ncell]
        if self.has_budget_price:
            value += mu * self.budget
            grad[self.i_mu] = (self.budget - spend) * self.scale[self.i_mu]
        if self.fair is not None and (self.n_rows or self.n_terms):
            f = self.fair
            rows, terms = self.fairness_prices(y)
            if self.n_rows:
                lhs = np.einsum("rs,sr->r", f.row_coef, seg_usage @ f.row_channels.T.astype(np.float64))
                value += float(rows @ self.row_rhs)
                grad[self.i_rows:self.i_terms] = (self.row_rhs - lhs) * self.scale[self.i_rows:self.i_terms]
            if self.n_terms:
                c = self.pen_const
                bx = np.einsum("ps,sp->p", f.pen_coef[:self.n_terms],
                               seg_usage @ f.pen_channels[:self.n_terms].T.astype(np.float64))
                value += float(terms @ c + np.sum(terms ** 2 / (4.0 * self.gamma * self.term_weight)))
                grad[self.i_terms:] = (c + terms / (2.0 * self.gamma * self.term_weight) - bx) * self.scale[self.i_terms:]
        return value, grad, usage, spend

    def subsample(self, size: int, seed: int) -> "DualData":
        """The same prices on a random subset of customers, with capacity and budget scaled to it.

        Capacities are scaled without rounding: the sample only serves to find
        good starting prices (same coordinates y, same box).
        """
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(self.n, size=size, replace=False))
        share = size / self.n
        sub = object.__new__(DualData)
        sub.__dict__.update(self.__dict__)
        sub.u = np.ascontiguousarray(self.u[rows])
        sub.n = size
        sub.limits = self.limits if self.limits.shape[0] == 1 else np.ascontiguousarray(self.limits[rows])
        sub.capacity = self.capacity * share
        sub.budget = None if self.budget is None else self.budget * share
        if self.seg.shape[0] > 1:
            sub.seg = np.ascontiguousarray(self.seg[rows])
        # fairness rows keep their coefficients (so prices transfer); sums over a sample are `share`
        # times the full sums: absolute right-hand sides and targets scale with it, the penalty by 1/share
        sub.row_rhs = self.row_rhs * share
        sub.pen_const = self.pen_const * share
        sub.gamma = self.gamma / share if self.gamma else 0.0
        sub.problem = None
        return sub

    # ------------------------------------------------------------ recovery
    def tune_budget_price(self, y: np.ndarray, max_evals: int = 10) -> tuple[np.ndarray, list]:
        """Move the budget price so that the customers' choices just fit the budget.

        The plan recovered from prices is very sensitive to the budget price
        (one price moves every customer's channel trade-off), while L is flat
        near its minimum. With the capacity prices fixed, spend(mu) is
        non-increasing; a bracketed secant search (Illinois rule) finds the
        smallest mu with spend <= B. Every evaluation is a valid dual point
        and is returned as ``(y, L, subgradient)`` so it can enter the bundle.
        """
        evals: list = []
        if not self.has_budget_price:
            return y, evals
        B = float(self.budget)
        k = self.i_mu

        def excess(mu_y: float) -> float:
            yy = y.copy()
            yy[k] = mu_y
            f, g, _, spend = self.evaluate(yy)
            evals.append((yy, f, g))
            return spend - B

        mu0 = float(y[k])
        h0 = excess(mu0)
        if h0 <= 0 and mu0 == 0.0:
            return y, evals
        a, ha, b, hb = (mu0, h0, None, None) if h0 > 0 else (None, None, mu0, h0)
        step = max(mu0, 1e-6 * self.box[k]) * 0.02
        while (a is None or b is None) and len(evals) < max_evals:
            if b is None:                       # spend too high: raise mu
                cand = min(a + step, self.box[k])
                hc = excess(cand)
                if hc <= 0:
                    b, hb = cand, hc
                else:
                    a, ha = cand, hc
                    if cand >= self.box[k]:
                        break
            else:                               # spend fits: lower mu until it does not
                cand = max(b - step, 0.0)
                hc = excess(cand)
                if hc > 0:
                    a, ha = cand, hc
                else:
                    b, hb = cand, hc
                    if cand == 0.0:
                        break
            step *= 3.0
        if a is None or b is None:
            out = y.copy()
            out[k] = b if b is not None else float(self.box[k])
            return out, evals
        side = 0
        while len(evals) < max_evals and (b - a) > 1e-7 * max(b, 1e-12):
            # Illinois (modified regula falsi) on the decreasing step function spend(mu) - B
            c = b - hb * (b - a) / (hb - ha) if ha != hb else 0.5 * (a + b)
            if not (a < c < b):
                c = 0.5 * (a + b)
            hc = excess(c)
            if hc > 0:
                a, ha = c, hc
                if side == -1:
                    hb *= 0.5
                side = -1
            else:
                b, hb = c, hc
                if side == 1:
                    ha *= 0.5
                side = 1
        out = y.copy()
        out[k] = b
        return out, evals

    def recover(self, y: np.ndarray, rounds: int = FILL_ROUNDS) -> tuple[np.ndarray, float]:
        """A feasible plan from prices y: the customers' choices, repaired and filled.

        ``rounds`` bounds the add/swap improvement rounds (each is a pass over
        the customers): a light recovery during the iterations, a full one for
        the returned plan. Returns the (k, 3) index rows (sorted by customer,
        day) and their value; ``None`` rows when the segment bounds could not
        be met.
        """
        price, mu = self.prices(y)
        cost_price = mu * self.cost
        shift = self.shift(y)
        T, M = self.T, self.M
        cap = np.floor(self.capacity).ravel().astype(np.int64)
        codes = K.choose_contacts(self.u, self.cell_ok, price, cost_price, self.limits, self.gap, self.slots, CHUNK,
                                  self.seg, shift, self.neg_ok)
        usage, spend = K.code_usage(codes, self.cost, M, T)
        excess = usage - cap
        if (excess > 0).any():
            K.drop_overloaded(codes, self.u, price, cost_price, excess, T, self.seg, shift)
            usage, spend = K.code_usage(codes, self.cost, M, T)
        budget = np.inf if self.budget is None else float(self.budget)
        if spend > budget:
            self._drop_for_budget(codes, price, shift, spend - budget, budget)
            usage, spend = K.code_usage(codes, self.cost, M, T)
        leftover = (cap - usage).reshape(M, T)
        budget_left = max(budget - spend, 0.0)
        customers = np.arange(self.n, dtype=np.int64)
        for _ in range(rounds):
            # add: each customer's best feasible extra contact, best first
            best_code, best_r = K.best_additions(self.u, self.cell_ok, price, cost_price, self.cost, self.limits,
                                                 self.gap, codes, leftover, budget_left, CHUNK, self.seg, shift,
                                                 self.neg_ok)
            cand = np.flatnonzero((best_code >= 0) & ((best_r > 0) | (self.fair is None)))
            added = 0
            if cand.size:
                order = cand[np.argsort(-best_r[cand], kind="stable")]
                added, budget_left = K.greedy_add(order, customers, best_code, codes, leftover, self.cost,
                                                  budget_left, self.limits, self.gap, T)
            # swap: replace one contact by a more valuable one that still fits
            best_slot, swap_code, gain = K.best_swaps(self.u, self.cell_ok, price, cost_price, self.cost, self.gap,
                                                      codes, leftover, budget_left, CHUNK, self.seg, shift)
            cand = np.flatnonzero(best_slot >= 0)
            swapped = 0
            if cand.size:
                order = cand[np.argsort(-gain[cand], kind="stable")]
                swapped, budget_left = K.apply_swaps(order, best_slot, swap_code, codes, leftover, self.cost,
                                                     budget_left, self.gap, T)
            if added == 0 and swapped == 0:
                break
        if self.fair is not None and self.n_rows:
            from solvers.fairness_repair import refill, repair_rows

            ok, budget_left = repair_rows(self, codes, price, cost_price, shift, leftover, budget_left)
            if not ok:
                return None, -np.inf
            budget_left = refill(self, codes, price, cost_price, shift, leftover, budget_left)
        idx, value = K.codes_to_indices(codes, self.u, T)
        return idx, value - self.penalty_value(idx)

    def penalty_value(self, idx: np.ndarray) -> float:
        """γΨ of a plan in this data's (possibly sampled) terms."""
        if self.fair is None or not self.gamma:
            return 0.0
        f = self.fair
        seg = self.seg[idx[:, 0]] if idx.size else np.zeros(0, dtype=np.int64)
        usage = np.zeros((self.n_segments, self.M))
        np.add.at(usage, (seg, idx[:, 1]), 1.0)
        bx = np.einsum("ps,sp->p", f.pen_coef[:self.n_terms], usage @ f.pen_channels[:self.n_terms].T.astype(float))
        z = bx - self.pen_const
        return float(self.gamma * np.sum(f.pen_weight[:self.n_terms] * z * z))

    def empty_plan(self) -> tuple[np.ndarray | None, float]:
        """The empty plan and its value, or (None, -inf) when segment minimums rule it out."""
        if self.n_rows and (self.row_rhs < -TOL_ROWS).any():
            return None, -np.inf
        idx = empty_indices()
        return idx, -self.penalty_value(idx)

    def _drop_for_budget(self, codes, price, shift, need, budget) -> None:
        """Drop the contacts with the least value per unit of cost until ``need`` is freed."""
        who, slot, ratio, paid = K.paid_entries(codes, self.u, price, self.cost, self.T, self.seg, shift)
        k = min(ratio.size, 1024)
        while True:  # partial selection of the cheapest-to-lose contacts
            part = np.argpartition(ratio, k - 1)[:k] if k < ratio.size else np.arange(ratio.size)
            part = part[np.argsort(ratio[part], kind="stable")]
            freed = np.cumsum(paid[part])
            if freed[-1] >= need or k >= ratio.size:
                break
            k = min(ratio.size, 4 * k)
        j = min(int(np.searchsorted(freed, need - 1e-12 * max(1.0, budget))), part.size - 1)
        codes[who[part[:j + 1]], slot[part[:j + 1]]] = -1


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


def level_loop(data: DualData, y0: np.ndarray, rel_gap: float, deadline: float | None, max_iter: int,
               alpha: float = 0.3, on_row=None, clock_start: float | None = None, tune: str = "final") -> LoopResult:
    """Minimise L over the price box from ``y0``; recover plans on the way (see module docstring)."""
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
    it = 0
    for it in range(1, max_iter + 1):
        f, g, _, _ = data.evaluate(y)
        if f < best_f:
            best_f, best_y = f, y
        if data.dim == 0:           # nothing to price: the customers' choices are optimal
            idx, obj = data.recover(best_y)
            if obj > objective:
                plan, objective = idx, obj
            recovered_y, status = best_y, Status.OPTIMAL
            break
        bundle.add_cut(y, f, g)
        f_low = max(f_low, bundle.model_minimum(), objective)
        dual_gap = (best_f - f_low) / max(abs(best_f), 1e-300)
        if recovered_y is not best_y and (recovered_y is None or dual_gap <= 10 * rel_gap or it % 10 == 0):
            at = best_y
            if data.has_budget_price and tune == "near" and dual_gap <= 10 * rel_gap:
                at, evals = data.tune_budget_price(best_y)
                for yy, ff, gg in evals:
                    bundle.add_cut(yy, ff, gg)
                    if ff < best_f:
                        best_f, best_y = ff, yy
            idx, obj = data.recover(at, rounds=LIGHT_ROUNDS)
            recovered_y = best_y
            if obj > objective:
                plan, objective = idx, obj
                f_low = max(f_low, objective)
        gap = relative_gap(best_f, objective)
        row = {"iteration": it, "bound": best_f, "objective": objective, "gap": gap, "lower": f_low,
               "elapsed": time.perf_counter() - start}
        history.append(row)
        if on_row is not None:
            on_row(row)
        if gap is not None and gap <= rel_gap:
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
            level = f_low + bundle.alpha * (best_f - f_low)
            outcome, y_next = bundle.project(best_y, level)
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
    if status != Status.OPTIMAL or recovered_y is not best_y:
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
    return LoopResult(status, best_f, best_y, plan, objective, f_low, it, len(bundle), history)


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
        return _solve(problem, options, sw)
    finally:
        numba.set_num_threads(previous_threads)


def _solve(problem: PlanningProblem, options: SolveOptions, sw: Stopwatch) -> SolveResult:
    data = DualData(problem)
    build_time = sw.lap()
    start = time.perf_counter()
    deadline = None if options.time_limit is None else start + options.time_limit
    max_iter = int(options.max_iter or MAX_ITER)
    alpha = float(options.extra.get("level_alpha", 0.3))
    display = _progress_display(options.verbose)

    def on_row(row: dict) -> None:
        if display:
            display(row)
        if options.progress:
            options.progress(row)

    y0 = data.coords(options.warm_start)
    sample_iterations = 0
    sample_size = int(options.extra.get("sample_size", max(SAMPLE_MIN, data.n // SAMPLE_SHARE)))
    use_sample = (options.warm_start is None and data.dim > 0 and options.extra.get("sample", True)
                  and data.n >= SAMPLE_FROM and sample_size < data.n)
    try:
        if use_sample:
            # cheap starting prices from a random subset of customers
            sample = data.subsample(sample_size, options.seed)
            first = level_loop(sample, y0, max(options.rel_gap, SAMPLE_GAP), deadline, max_iter, alpha)
            y0, sample_iterations = first.best_y, first.iterations
        result = level_loop(data, y0, options.rel_gap, deadline, max_iter, alpha, on_row, start,
                            tune=str(options.extra.get("tune_budget", "final")))
    finally:
        if display:
            display(None)
    solve_time = sw.lap()
    price, mu = data.prices(result.best_y)
    status, plan, objective = result.status, result.plan, result.objective
    if plan is None:   # no plan met the segment bounds (the bound is still valid)
        status, plan, objective = Status.NO_SOLUTION, empty_indices(), 0.0
    duals = {"capacity": price, "budget": mu if problem.budget is not None else 0.0}
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
              "sample_iterations": sample_iterations, "sample_size": sample_size if use_sample else 0},
    )
