"""Data of the dual method: customer arrays, the price layout, L(y), and primal recovery.

Prices live in normalised coordinates y (``price = y * scale``). A
:class:`DualData` holds one set of customers (all of them in-process, or one
shard); :meth:`DualData.partial` is the per-customer part of L that shards
compute, :meth:`DualData.combine` the global part. Every ordering used by the
recovery is canonical — by value, then customer index, then slot — so a
sharded recovery that merges per-shard candidate lists returns the very same
plan (see :mod:`solvers.dual_dask`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from formulations.assignment import PlanningProblem
from solvers import _dual_kernels as K
from solvers.base import empty_indices

CLEARING_SHARE = 0.5   # start prices at this share of the naive clearing price (see clearing_start)
CHUNK = 1024          # customers per parallel work item (10k customers: 10 items balance 2 threads)
TOL_ROWS = 1e-9
SETTLE_ROWS = True    # price the segment rows exactly at every evaluation (DualData.settled) ...
SETTLE_TERMS = True   # ... and the penalty terms' prices too, when they count the same channels, from
SETTLE_TERMS_FROM = 200_000  # this many customers (gamma=1e7, seeds 1-2: 200k 1.7/2.1 -> 1.2/1.7 s, but 20k
#                              2.8/3.6 -> 7.5/9.6 s: fewer iterations, yet the settle's LPs cost more than they save)
SAMPLE_SETTLE = True   # ... and on the sample that gives the starting prices. Interleaved A/B, hard rows, sample
#                        seeds 0-2, in all: 1M `weekly` seeds 1-12 173.1 -> 154.0 s (sample iterations 2,736 -> 1,025,
#                        full 324 -> 326), seeds 13-24 158.0 -> 154.5 s and again 172.3 -> 168.1 s (full 338 -> 358);
#                        200k seeds 1-6 29.1 -> 26.9 s. (With the 1/50 sample it had lost: six 1M seeds 16.3 -> 17.8 s)
SETTLE_WIDTH = 1e-3   # smallest half-width of its breakpoint window, relative to the largest utility
SETTLE_TRIES = 6      # window enlargements before giving up (then the rows keep the given prices)
SETTLE_EXACT = 2000   # breakpoints up to which the last LP prices each on its own (exact)
SETTLE_CAP = 4.0      # settled's patterns serve bonuses up to this many window half-widths above the current one
SETTLE_TANGENTS = 40  # tangent rounds for the penalty's z^2 in that LP, until z lies within
SETTLE_Z_TOL = 1e-2   # ... this many contacts (of the term's segment) of a tangent point
SETTLE_REPRICE = 15   # after a sample: between exact settles, this many from the last one's patterns re-priced
SETTLE_COLUMNS = 64   # LP columns per segment (buckets of breakpoints); the window then narrows twice
ROW_SCALE = 2.0       # a fairness row price spans [0, ROW_SCALE * max utility / smallest coefficient]
FILL_ROUNDS = 6       # add/swap rounds of the final recovery
FREE_ROUNDS = 2       # rounds of filling channels no fairness row or term counts (DualData._fill_free_channels)
MASTER_RECOVERY = True  # near the optimum, recover through the restricted master LP (solvers.master)
MASTER_FROM = 200_000   # customers from which it is used (in-process data; from where the sample stage starts:
#                         below, without a sample's prices, it cost more than it saved: 150k, six solves 6.9 -> 9.6 s)
MASTER_POINTS = 8       # recent evaluation points whose choices it mixes


def _settle_lp(A, rhs, lam_max, base, bps, wts, sgs, S, exact, lo, hi, terms=None):
    """Row (and penalty) prices minimising L over a breakpoint window (see :meth:`DualData.settled`).

    Columns: per segment, its window [lo, hi] cut into ``SETTLE_COLUMNS``
    equal bins of breakpoints (cost = their weighted mean, bound = their
    weight; one pass, no sort: windows early in a solve hold 10^5
    breakpoints), or one column per breakpoint when ``exact``, plus one
    slack per row priced at the row's largest price (so the prices stay in
    the box). Passed to HiGHS column-wise and solved without presolve (a few
    rows, up to a few thousand columns): the 102 LPs of one 1M-customer
    solve took 0.42-0.61 s through ``scipy.optimize.linprog``, 0.24-0.32 s
    this way, with the same prices to 1e-15.

    ``terms`` (B, c, gamma * w, current term prices) adds the penalty: per
    term a free column z_p = B_p (base + x) - c_p (an equality row) and a
    cost column t_p >= gamma w_p z_p^2, held by tangent rows at the current
    prices' z and 1, 4, ..., 4^6 contacts either side, then at the LP's z
    until it lies within ``SETTLE_Z_TOL`` contacts of a tangent point
    (HiGHS's QP solver, tried first, stalled on a 512-column window at 1M).
    The term prices are the equality rows' duals, so the LP's choices are
    the customers' at the bonuses -(lam A + nu B) (a breakpoint below its
    segment's bonus taken, above it left, at it split), and nu is within
    the tolerance of 2 gamma w z, the conjugate's maximiser. Returns (row
    prices, term prices, the group contacts taken at each breakpoint when
    ``exact``), or None when HiGHS reports no optimum.
    """
    import highspy

    from solvers.highs_direct import add_tangent_rows, quiet_highs

    R = A.shape[0]
    if exact:
        cost, upper, cseg = bps, wts, sgs
    else:
        B = SETTLE_COLUMNS
        span = np.maximum(hi - lo, 1e-300)
        key = sgs * B + np.clip(((bps - lo[sgs]) / span[sgs] * B).astype(np.int64), 0, B - 1)
        weight = np.bincount(key, weights=wts, minlength=S * B)
        total = np.bincount(key, weights=bps * wts, minlength=S * B)
        used = np.flatnonzero(weight > 0)
        cost, upper, cseg = total[used] / weight[used], weight[used], used // B
    nz = cseg.size
    B, c, gw, nu_in = terms if terms is not None else (np.zeros((0, S)), np.zeros(0), np.zeros(0), np.zeros(0))
    P = B.shape[0]
    coef = np.vstack([A, B])
    unit = np.maximum(np.abs(coef).max(axis=1), 1e-300)            # rows scaled to coefficients ~1 for HiGHS
    block = (coef / unit[:, None])[:, cseg].T                       # column j holds segment cseg[j]'s coefficients
    col, row = np.nonzero(block)
    # then one slack per row r (-1 on it); per term p a free column z'_p (-1 on row R + p: z_p in units of
    # that row) and its cost t_p >= gamma w_p z_p^2 = a_p z'_p^2, kept by tangent rows (added below)
    start = np.concatenate([np.searchsorted(col, np.arange(nz)), col.size + np.arange(R + P + 1),
                            np.full(P, col.size + R + P)]).astype(np.int32)
    index = np.concatenate([row, np.arange(R + P)]).astype(np.int32)
    value = np.concatenate([block[col, row], -np.ones(R + P)])
    inf = highspy.kHighsInf
    ncol = nz + R + 2 * P
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = ncol, R + P
    lp.col_cost_ = np.concatenate([cost, lam_max * unit[:R], np.zeros(P), np.ones(P)])
    lp.col_lower_ = np.concatenate([np.zeros(nz + R), np.full(P, -inf), np.zeros(P)])
    lp.col_upper_ = np.concatenate([upper, np.full(R + 2 * P, inf)])
    eq = (c - B @ base) / unit[R:]
    lp.row_lower_ = np.concatenate([np.full(R, -inf), eq])
    lp.row_upper_ = np.concatenate([(rhs - A @ base) / unit[:R], eq])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = start, index, value
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = ncol, R + P
    h = quiet_highs()
    h.passModel(lp)
    a = gw * unit[R:] ** 2
    zc, tc = nz + R + np.arange(P), nz + R + P + np.arange(P)

    def tangents(d):        # a (2 d z' - d^2) <= t
        add_tangent_rows(h, zc, tc, 2.0 * a * d, a * d * d)

    points = []
    if P:       # at the current prices' z and 1, 4, ..., 4^6 contacts on either side
        d0 = nu_in / (2.0 * gw * unit[R:])
        for off in np.concatenate([[0.0], 4.0 ** np.arange(7), -(4.0 ** np.arange(7))]):
            tangents(d0 + off)
            points.append(d0 + off)
    tol = SETTLE_Z_TOL if exact else 100.0 * SETTLE_Z_TOL       # coarse LPs only place the window
    for _ in range(SETTLE_TANGENTS if P else 1):
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=np.float64)
        if not P:
            break
        z = x[zc]
        # the tangents' maximum is within a tol^2 of a z^2 near a tangent point: stop when z is that near one
        if (np.abs(np.asarray(points) - z).min(axis=0) <= tol).all():
            break
        tangents(z)
        points.append(z)
    duals = -np.asarray(sol.row_dual, dtype=np.float64)[:R + P] / unit
    # the term prices are the eq rows' duals: a slope of the tangents' maximum at z, so the LP's choices
    # are the customers' at the bonuses -(lam A + nu B); within the tolerance above, nu = 2 gamma w z
    return np.maximum(duals[:R], 0.0), duals[R:], (x[:nz] if exact else None)


def _window(found, lo, hi, S):
    """The breakpoints of ``found`` (see :func:`solvers._dual_kernels.group_breakpoints`) in [lo, hi]."""
    base, bps, wts, sgs, who, frm = found
    keep = (bps >= lo[sgs]) & (bps <= hi[sgs])
    below = bps < lo[sgs]
    base = base + np.bincount(sgs[below], weights=wts[below], minlength=S)
    return base, bps[keep], wts[keep], sgs[keep], who[keep], frm[keep]


@dataclass
class PlanCodes:
    """A recovered plan still as (n, slots) contact codes (see :meth:`DualData.recover`)."""

    codes: np.ndarray


def spend_of(usage: np.ndarray, cost: np.ndarray, M: int, T: int) -> float:
    """Spend of a usage vector, summed per channel from integer counts (order-independent)."""
    return float((np.asarray(usage).reshape(M, T).sum(axis=1) * cost).sum())


def cheapest_prefix(ratio, who, slot, paid, need, budget) -> np.ndarray:
    """Indices of the shortest prefix, in (ratio, customer, slot) order, whose cost reaches ``need``."""
    k = min(ratio.size, 1024)
    while True:  # partial selection of the cheapest-to-lose contacts
        if k < ratio.size:
            part = np.argpartition(ratio, k - 1)[:k]
            part = np.flatnonzero(ratio <= ratio[part].max())      # keep every tie at the boundary
        else:
            part = np.arange(ratio.size)
        part = part[np.lexsort((slot[part], who[part], ratio[part]))]
        freed = np.cumsum(paid[part])
        if freed[-1] >= need or part.size >= ratio.size:
            break
        k = min(ratio.size, 4 * k)
    j = min(int(np.searchsorted(freed, need - 1e-12 * max(1.0, budget))), part.size - 1)
    return part[:j + 1]


def cell_tops(u: np.ndarray, price_cells: np.ndarray, capacity: np.ndarray) -> list:
    """Per priced cell (m, t), its floor(capacity) + 1 largest positive utilities (all when fewer).

    Enough to find the (capacity + 1)-th largest over several parts of the customers.
    """
    out = []
    cap = np.floor(capacity)
    for m, t in price_cells:
        col = u[:, m, t]
        pos = col[col > 0]
        k = int(cap[m, t]) + 1
        out.append(pos if pos.size <= k else np.partition(pos, pos.size - k)[pos.size - k:])
    return out


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
        limits = p.contact_limits()
        self.limits = (np.array([int(p.max_contacts)], dtype=np.int64) if np.ndim(p.max_contacts) == 0
                       else np.ascontiguousarray(limits, dtype=np.int64))
        cell_ok = np.ascontiguousarray(p.cell_allowed())
        f = p.fairness if p.has_fairness else None
        self.seg = (np.ascontiguousarray(p.segment_codes, dtype=np.int64) if f is not None
                    else np.zeros(1, dtype=np.int64))
        max_u = K.max_positive_utility(self.u, cell_ok, CHUNK)
        self._setup(n=n, M=M, T=T, gap=int(p.min_gap_days), cost=p.cost, capacity=p.capacity, budget=p.budget,
                    limit_max=int(self.limits.max()) if self.limits.size else 0, cell_ok=cell_ok,
                    neg_ok=p.negative_ok(), max_u=max_u, fair=f)

    def _setup(self, *, n, M, T, gap, cost, capacity, budget, limit_max, cell_ok, neg_ok, max_u, fair) -> None:
        """Everything except the customer arrays: sizes, limits and the price layout."""
        self.n, self.M, self.T = n, M, T
        # settled() re-prices the last exact settle's patterns in between (set by solvers.dual for the full
        # stage after a sample: from prices close to the optimum)
        self.reprice_settles = False
        self._last_patterns, self._repriced = None, 0
        self.gap = int(gap)
        self.cost = np.ascontiguousarray(cost, dtype=np.float64)
        self.capacity = np.ascontiguousarray(capacity, dtype=np.float64)
        self.budget = budget
        self.limit_max = int(limit_max)
        self.slots = max(1, min(self.limit_max, math.ceil(T / self.gap), T))
        self.cell_ok = np.ascontiguousarray(cell_ok)
        self.neg_ok = np.ascontiguousarray(neg_ok)
        self.max_u = max_u
        umax = float(self.max_u.max()) if self.max_u.size else 0.0
        f = fair
        self.fair = f
        self.n_segments = f.n_segments if f is not None else 1
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
            kmax = float(min(self.limit_max, T))
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

    def clearing_start(self) -> np.ndarray:
        """Starting prices: in each priced channel-day, the utility of the first customer beyond its capacity.

        As if every customer with a positive utility there asked for that
        channel-day (they take at most K contacts, so the true clearing price
        is lower); cells with room for all of them start at 0, and so do the
        budget and fairness prices. On the seven 10k/1k benchmark instances this
        start took 6–26% off the solve time against zero prices (median of 3 in-process solves).
        """
        return self._clearing_coords([cell_tops(self.u, self.price_cells, self.capacity)])

    def _clearing_coords(self, parts: list) -> np.ndarray:
        """Coordinates of the clearing prices from per-part :func:`cell_tops` lists."""
        y = np.zeros(self.dim)
        cap = np.floor(self.capacity)
        for j, (m, t) in enumerate(self.price_cells):
            vals = np.concatenate([part[j] for part in parts])
            k = int(cap[m, t]) + 1
            if vals.size >= k:
                y[j] = CLEARING_SHARE * float(np.partition(vals, vals.size - k)[vals.size - k]) / self.scale[j]
        return np.clip(y, self.lower, self.box)

    def partial(self, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """This data's customers at prices y: (sum of optima, usage (M, T), segment usage (S, M)).

        The customers' choices are kept (2 bytes per customer and slot) so that
        a recovery at the same prices starts from them without a second DP pass.
        """
        price, mu = self.prices(y)
        codes = getattr(self, "_codes", None)
        if codes is None or codes.shape != (self.n, self.slots):
            codes = self._codes = np.empty((self.n, self.slots), dtype=np.int16)
        self._codes_y = None                      # being overwritten
        out = K.evaluate_dual(self.u, self.cell_ok, price, mu * self.cost, self.limits, self.gap, CHUNK, self.seg,
                              self.shift(y), self.neg_ok, codes)
        self._codes_y = np.array(y, dtype=np.float64)
        return out

    def choices(self, y: np.ndarray) -> np.ndarray:
        """Each customer's optimal contacts at prices y as (n, slots) codes (a fresh array)."""
        at = getattr(self, "_codes_y", None)
        if at is not None and at.shape == np.shape(y) and np.array_equal(at, y):
            return self._codes.copy()
        price, mu = self.prices(y)
        return K.choose_contacts(self.u, self.cell_ok, price, mu * self.cost, self.limits, self.gap, self.slots,
                                 CHUNK, self.seg, self.shift(y), self.neg_ok)

    def evaluate(self, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
        """L(y), its subgradient in y-coordinates, usage (M, T), spend."""
        chunk_sums, usage, seg_usage = self.partial(y)
        return self.combine(y, float(np.sum(chunk_sums)), usage, seg_usage)

    def settles_rows(self) -> bool:
        """Can :meth:`settled` price the segment rows exactly (all rows count the same channels)?"""
        f = self.fair
        return bool(SETTLE_ROWS and getattr(self, "_settle_here", True) and self.n_rows and f is not None
                    and (f.row_channels == f.row_channels[0]).all() and f.row_channels[0].any())

    def settles_terms(self) -> bool:
        """Does :meth:`settled` price the penalty terms too (all count the same channels, those of any rows)?"""
        f = self.fair
        if not (SETTLE_TERMS and getattr(self, "_settle_here", True) and self.n_terms and f is not None
                and self.n >= SETTLE_TERMS_FROM):
            return False
        chans = f.pen_channels[:self.n_terms]
        same = bool((chans == chans[0]).all() and chans[0].any())
        return same and (not self.n_rows or self.settles_rows() and bool((f.row_channels[0] == chans[0]).all()))

    def settles(self) -> bool:
        """Does :meth:`settled` replace :meth:`evaluate` (rows or penalty terms priced exactly)?"""
        return self.settles_rows() or self.settles_terms()

    def _settle_group(self) -> np.ndarray:
        """(M,) the channels the settled rows / terms count."""
        f = self.fair
        return np.ascontiguousarray(f.row_channels[0] if self.settles_rows() else f.pen_channels[0])

    def settled(self, y: np.ndarray) -> tuple[np.ndarray, tuple]:
        """The row (and penalty) prices that minimise L for y's other prices, and L there: (y*, evaluate(y*)).

        With the capacity and budget prices fixed, a customer's optimum is
        max_g value[g] + g * theta, g its contacts on the rows' channels and
        theta its segment's row bonus (-shift). One evaluation at a bonus cap
        above the window settles every customer who takes no group contact
        there (none at any smaller bonus either); for the others (4-24% at 1M
        customers) :func:`solvers._dual_kernels.group_patterns` gives value[g]
        and the patterns (1M, hard rows: 100 -> 86 ms per settle against a
        64 ms evaluation; the pattern DP over every customer had cost 80 ms).
        Minimising L over the row
        prices is then an LP over the customers' breakpoints (whose dual are
        the row prices); only breakpoints in a window around the current bonus
        are priced, in ``SETTLE_COLUMNS`` buckets per segment; the window grows
        until the bonuses it yields lie inside it, then narrows twice around them. L(y*) is exact
        (any row prices give a valid bound and cut); the level method then
        works on min over the row prices of L, and a recovery at y* starts
        from choices that already (nearly) meet the rows.

        Penalty terms that count the same channels (:meth:`settles_terms`)
        are settled with them: their prices shift the bonuses too, and the
        LP becomes min breakpoint cost + sum gamma w z^2 over the window,
        solved with tangents of z^2 (:func:`_settle_lp`). Their prices are
        that LP's duals, so the cut's term part is (nearly) zero as well:
        c + nu / (2 gamma w) - B x, nu within ``SETTLE_Z_TOL`` contacts of
        2 gamma w z.

        With ``reprice_settles`` (the full stage after a sample stage; not on
        the sample or without one, where the prices still move far) only
        every ``SETTLE_REPRICE + 1``-th call settles this way; the calls in
        between take the last exact settle's customers and patterns, re-price
        them at y (:func:`solvers._dual_kernels.pattern_values`: no DP), solve
        the same LP over them and evaluate L plainly at the prices it gives.
        Those prices are then close to, not exactly, the minimisers, and L
        there is exact as always: any row prices give a valid bound and cut.
        1M customers, sample seeds 0-1, interleaved A/B against exact settles
        only: instances 7-12, hard rows 45.0 -> 40.1 s in all (full iterations
        98 -> 102), penalty gamma=1e7 40.1 -> 37.1 s (107 -> 111); instances
        1-6 never refreshing: 41.1 -> 38.0 s (116 -> 117) and 41.0 -> 38.2 s
        (117 -> 117). A call took 180-210 ms instead of 210-275 ms (instances 3
        and 6). On the sample the re-priced patterns cost iterations (hard
        rows, instances 1-6: 333 -> 1,085).
        """
        f = self.fair
        price, mu = self.prices(y)
        rows_y = y[self.i_rows:self.i_terms]
        _, terms = self.fairness_prices(y)
        with_terms = self.settles_terms()
        base_shift = np.ascontiguousarray(f.shift(np.zeros(self.n_rows), np.zeros_like(terms) if with_terms else terms))
        group = self._settle_group()
        codes = getattr(self, "_codes", None)
        if codes is None or codes.shape != (self.n, self.slots):
            codes = self._codes = np.empty((self.n, self.slots), dtype=np.int16)
        self._codes_y = None                    # being overwritten
        S = self.n_segments
        A = f.row_coef                                            # (R, S): row r counts a[r, s] per group contact
        scale_rows = self.scale[self.i_rows:self.i_terms]
        lam_max = self.box[self.i_rows:self.i_terms] * scale_rows
        theta_in = -(rows_y * scale_rows) @ A
        pen = None
        if with_terms:      # the penalty's z_p = B_p x - c_p; its price nu_p shifts segment s by nu_p B[p, s]
            B = f.pen_coef[:self.n_terms]
            pen = (B, self.pen_const, self.gamma * self.term_weight, terms)
            theta_in = theta_in - terms @ B
        w_min = SETTLE_WIDTH * max(float(self.max_u.max()), 1e-9)
        width = getattr(self, "_settle_width", None)
        if width is None or width.shape != (S,):
            width = np.full(S, w_min)
        fixed = who = value = pcodes = seg_m = None

        def patterns(cap):
            """Evaluate at bonus ``cap``: a customer who takes no group contact there takes none at any bonus
            <= cap, so its choice, optimum and usage are final (``fixed``); the others (``who``) get their
            pattern per group count from :func:`solvers._dual_kernels.group_patterns`."""
            nonlocal fixed, who, value, pcodes, seg_m
            shift_cap = np.ascontiguousarray(base_shift - cap[:, None] * group[None, :])
            sums, usage, seg_usage = K.evaluate_dual(self.u, self.cell_ok, price, mu * self.cost, self.limits,
                                                     self.gap, CHUNK, self.seg, shift_cap, self.neg_ok, codes)
            who = np.flatnonzero(K.group_customers(codes, group, self.T, CHUNK))
            value = np.empty((who.size, self.slots + 1))
            pcodes = np.empty((who.size, self.slots + 1, self.slots), dtype=np.int16)
            at_cap, mov_usage, mov_seg = K.group_patterns(self.u, self.cell_ok, price, mu * self.cost, self.limits,
                                                          self.gap, CHUNK, self.seg, base_shift, self.neg_ok, group,
                                                          who, value, pcodes, np.ascontiguousarray(cap), codes)
            seg_m = np.ascontiguousarray(self.seg[who]) if self.seg.shape[0] > 1 else np.zeros(who.size, np.int64)
            fixed = (float(np.sum(sums)) - float(np.sum(at_cap)), usage - mov_usage, seg_usage - mov_seg)
            return cap

        last = self._last_patterns
        reprice = self.reprice_settles and last is not None and self._repriced < SETTLE_REPRICE
        if reprice:         # the last exact settle's patterns at the current prices (no DP; see the docstring)
            who, pcodes, seg_m, value = last
            K.pattern_values(self.u, price, mu * self.cost, base_shift, seg_m, who, pcodes, value, CHUNK)
            cap = np.full(S, np.inf)
            self._repriced += 1
        else:
            cap = patterns(theta_in + SETTLE_CAP * width)
        lam = nu = taken = window = theta = None
        stage, narrow, found = 0, width, None
        for _ in range(4 * SETTLE_TRIES):
            if found is None:                       # the coarse window and its breakpoints
                lo, hi = theta_in - width, theta_in + width
                if (hi > cap).any():
                    cap = patterns(theta_in + SETTLE_CAP * width)
                found = K.group_breakpoints(value, seg_m, S, lo, hi, CHUNK)
                stage, narrow = 0, width
            if stage == 0:
                lo2, hi2, sub = lo, hi, found
            else:                                   # narrowed around the last answer: finer buckets
                lo2, hi2 = np.maximum(theta - narrow, lo), np.minimum(theta + narrow, hi)
                sub = _window(found, lo2, hi2, S)
            exact = stage > 0 and sub[1].size <= SETTLE_EXACT
            out = _settle_lp(A, self.row_rhs, lam_max, *sub[:4], S, exact=exact, lo=lo2, hi=hi2, terms=pen)
            if out is None:
                break
            theta2 = -out[0] @ A - (out[1] @ pen[0] if with_terms else 0.0)
            escaped = (theta2 <= lo) | (theta2 >= hi)
            if escaped.any():                       # beyond the coarse window: widen it
                width = np.where(escaped, width * 4.0, width)
                found = None
                continue
            missed = (theta2 <= lo2) | (theta2 >= hi2)
            if stage and missed.any():              # a coarse bucket was wide: widen the narrow window
                narrow = np.where(missed, narrow * 4.0, narrow)
                continue
            lam, nu, theta = out[0], out[1], theta2
            if exact:
                taken, window = out[2], sub
                break
            stage = 1
            narrow = narrow / 16.0
        if lam is None:
            return y, self.evaluate(y)     # (overwrites the codes)
        self._settle_width = np.maximum(3.0 * np.abs(theta - theta_in), w_min)   # next time
        ys = np.array(y, dtype=np.float64)
        ys[self.i_rows:self.i_terms] = np.clip(lam / scale_rows, self.lower[self.i_rows:self.i_terms],
                                              self.box[self.i_rows:self.i_terms])
        theta = -(ys[self.i_rows:self.i_terms] * scale_rows) @ A
        if with_terms:
            nu_y = nu / self.scale[self.i_terms:]
            ys[self.i_terms:] = np.clip(nu_y, self.lower[self.i_terms:], self.box[self.i_terms:])
            if not np.array_equal(ys[self.i_terms:], nu_y):
                taken = None        # clipped to the box: the LP's split choices are not the customers' there
            theta = theta - (ys[self.i_terms:] * self.scale[self.i_terms:]) @ pen[0]
        if reprice:
            return ys, self.evaluate(ys)
        self._last_patterns, self._repriced = (who, pcodes, seg_m, value), 0
        mov_codes = np.empty((who.size, self.slots), dtype=np.int16)
        sums, usage, seg_usage = K.settle_patterns(value, pcodes, seg_m, theta, self.M, self.T, CHUNK, mov_codes)
        usage, seg_usage = usage + fixed[1], seg_usage + fixed[2]
        if taken is not None:
            usage, seg_usage = self._follow_lp(mov_codes, pcodes, seg_m, group, window, taken, usage, seg_usage)
        codes[who] = mov_codes
        self._codes_y = ys.copy()
        return ys, self.combine(ys, fixed[0] + float(np.sum(sums)), usage, seg_usage)

    def _follow_lp(self, codes, pcodes, seg_m, group, window, taken, usage, seg_usage):
        """Make the choices at the window's breakpoints those of the exact LP (see :meth:`settled`).

        The customers' optima at the LP's bonuses agree with the LP except at
        breakpoints (numerically) equal to a bonus; there the LP's choice is
        taken, a fractional one as that mix of the two patterns. The usage is
        then a subgradient whose row part is zero on every priced row, so
        the level method's cuts do not pull the row prices (which
        :meth:`settled` sets anyway). Rows of ``codes``, ``pcodes`` and
        ``seg_m`` are the movable customers of :meth:`settled`; ``group`` the
        channels it settles.
        """
        _, bps, wts, sgs, who, frm = window
        T = self.T
        usage = usage.astype(np.float64)
        seg_usage = seg_usage.astype(np.float64)
        full = taken >= wts - 1e-9
        none = taken <= 1e-9
        chosen = np.where(codes[who] >= 0, group[np.maximum(codes[who], 0) // T], False).sum(axis=1)
        order = np.argsort(bps, kind="stable")
        for j in order:
            i, a = int(who[j]), int(frm[j])
            b = a + int(round(wts[j]))
            g_now = int(chosen[j])
            if full[j] and g_now >= b or none[j] and g_now <= a:
                continue
            s_i = int(seg_m[i])
            frac = 1.0 if full[j] else (0.0 if none[j] else float(taken[j] / wts[j]))
            # from the current pattern to (1 - frac) * pattern a + frac * pattern b
            for g, weight in ((g_now, -1.0), (a, 1.0 - frac), (b, frac)):
                if weight == 0.0:
                    continue
                pat = pcodes[i, g]
                pat = pat[pat >= 0]
                np.add.at(usage, (pat // T, pat % T), weight)
                np.add.at(seg_usage, (s_i, pat // T), weight)
            g_new = b if frac >= 0.5 else a
            codes[i] = pcodes[i, g_new]
            chosen[who == i] = g_new
        return usage, seg_usage

    def combine(self, y: np.ndarray, customer_sum: float, usage: np.ndarray, seg_usage: np.ndarray):
        """L(y) and its subgradient from the customer part (summed over shards if sharded)."""
        price, mu = self.prices(y)
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

    def smooth_part(self, y: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The known smooth part of L, q(y) = sum_p nu_p^2 / (4 gamma w_p), and its gradient (None without one).

        L(y) = h(y) + q(y) with h piecewise linear; the level loop models h by
        cuts and q exactly (through tangents it adds without evaluating L).
        """
        if not self.n_terms:
            return None
        _, terms = self.fairness_prices(y)
        denom = 4.0 * self.gamma * self.term_weight
        grad = np.zeros(self.dim)
        grad[self.i_terms:] = 2.0 * terms / denom * self.scale[self.i_terms:]
        return float(np.sum(terms ** 2 / denom)), grad

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
        sub._start_sample()
        return sub

    def _start_sample(self) -> None:
        """What a sample (:meth:`subsample`, also the sharded one) must not keep of the data it copied: the
        problem, the full data's choices and last settle; it settles (``SAMPLE_SETTLE``), and exactly."""
        self.problem = None
        self._settle_here = SAMPLE_SETTLE
        self.reprice_settles, self._last_patterns = False, None
        self._codes = self._codes_y = None

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

    def recover(self, y: np.ndarray, rounds: int = FILL_ROUNDS, lazy: bool = False,
                start: np.ndarray | None = None, give_back: bool = True) -> tuple[np.ndarray | PlanCodes | None, float]:
        """A feasible plan from prices y: the customers' choices, repaired and filled.

        Contacts beyond a cell's capacity are moved to the customer's best
        cell with room when that keeps more than dropping them
        (:func:`solvers._dual_kernels.drop_overloaded`); with hard segment
        rows whose prices the bundle sets they are dropped (moves measured
        slower there: 1M customers, seeds 1-4, 74 -> 96 s in all, and one
        solve stalled), with rows priced by :meth:`settled` they move (seeds
        1-4 with settled rows: 42.3 s and 144 iterations dropping, 29.6 s
        and 88 iterations moving). With fairness on, capacity left on
        channels that no row or term counts is then filled
        (:meth:`_fill_free_channels`).

        ``rounds`` bounds the add/swap improvement rounds (each is a pass over
        the customers): a light recovery during the iterations, a full one for
        the returned plan. Returns the (k, 3) index rows (sorted by customer,
        day) and their value; ``None`` rows when the segment bounds could not
        be met. ``lazy=True`` returns the plan as :class:`PlanCodes` instead
        (turned into rows by :meth:`indices_of` only if it is kept; at 1M
        customers building the rows costs 40 ms). ``start`` (n, slots) codes
        replace the customers' choices at y as the plan to repair (taken over
        in place); ``give_back=False`` skips the give-back and refill after a
        row repair (see :meth:`recover_master`).
        """
        price, mu = self.prices(y)
        cost_price = mu * self.cost
        shift = self.shift(y)
        T, M = self.T, self.M
        cap = np.floor(self.capacity).ravel().astype(np.int64)
        codes = self.choices(y) if start is None else start
        usage, spend = self._usage(codes)
        excess = usage - cap
        if (excess > 0).any():
            if self.n_rows and not self.settles_rows():     # hard segment rows priced by the bundle: drop only
                alt_value, alt_cell = np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64)
            else:
                alt_value, alt_cell = K.relocations(codes, self.u, self.cell_ok, price, cost_price, self.cost, excess,
                                                   T, self.gap, self.seg, shift, self.neg_ok, CHUNK)
            K.drop_overloaded(codes, self.u, price, cost_price, excess, T, self.seg, shift, alt_value, alt_cell,
                              self.gap)
            usage, spend = self._usage(codes)
        budget = np.inf if self.budget is None else float(self.budget)
        if spend > budget:
            self._drop_for_budget(codes, price, shift, spend - budget, budget)
            usage, spend = self._usage(codes)
        leftover = (cap - usage).reshape(M, T)
        budget_left = max(budget - spend, 0.0)
        for _ in range(rounds):
            # add: each customer's best feasible extra contact, best first
            added, budget_left = self._add_best(codes, price, cost_price, shift, self.neg_ok, leftover, budget_left,
                                                positive=self.fair is not None)
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
            from solvers.fairness_repair import give_back as give_back_rows
            from solvers.fairness_repair import refill, repair_rows

            ok, budget_left = repair_rows(self, codes, price, cost_price, shift, leftover, budget_left)
            if not ok:
                return None, -np.inf
            if give_back:
                budget_left = give_back_rows(self, codes, price, cost_price, shift, leftover, budget_left)
                budget_left = refill(self, codes, price, cost_price, shift, leftover, budget_left)
        if self.fair is not None:
            budget_left = self._fill_free_channels(codes, price, cost_price, shift, leftover, budget_left)
        if lazy:
            value, seg_usage = K.codes_value(codes, self.u, self.seg, self.n_segments, T)
            return PlanCodes(codes), value - self._penalty_of(seg_usage)
        idx, values = K.codes_to_indices(codes, self.u, T)
        return idx, float(np.sum(values)) - self.penalty_value(idx)

    def counted_channels(self) -> np.ndarray:
        """(M,) bool: the channels some fairness row or penalty term counts."""
        f = self.fair
        counted = f.row_channels.any(axis=0) if self.n_rows else np.zeros(self.M, dtype=bool)
        if self.n_terms:
            counted = counted | f.pen_channels[:self.n_terms].any(axis=0)
        return counted

    # ------------------------------------------------------------ master recovery
    def supports_master(self) -> bool:
        """Is :meth:`recover_master` used (in-process customers, at least ``MASTER_FROM`` of them)?"""
        return bool(MASTER_RECOVERY and self.n >= MASTER_FROM)

    def master_points(self) -> int:
        """How many points' choices :meth:`keep_choices` holds."""
        return min(getattr(self, "_ring_next", 0), MASTER_POINTS)

    def keep_choices(self) -> None:
        """Remember the customers' choices at the point evaluated last (the ``MASTER_POINTS`` latest are kept)."""
        at = getattr(self, "_codes_y", None)
        if at is None:
            return
        ring = getattr(self, "_ring", None)
        if ring is None or ring.shape[1:] != (self.n, self.slots):
            ring = self._ring = np.empty((MASTER_POINTS, self.n, self.slots), dtype=np.int16)
            self._ring_y, self._ring_next = [None] * MASTER_POINTS, 0
        k = self._ring_next % MASTER_POINTS
        ring[k] = self._codes
        self._ring_y[k] = at.copy()
        self._ring_next += 1

    def recover_master(self, y: np.ndarray, base: np.ndarray, rounds: int = 0,
                       lazy: bool = False) -> tuple[np.ndarray | PlanCodes | None, float]:
        """A plan mixing the customers' recent choices by the restricted master LP (:mod:`solvers.master`).

        ``base`` is a feasible plan's codes (the incumbent); the LP's plan is
        then repaired and filled like any other (:meth:`recover` with ``start``),
        without add/swap rounds by default and without the rows' give-back and
        refill: the LP has placed the contacts, and those steps judge moves at
        the prices y, not the LP's. 1M customers, hard rows, seed 2, at the two
        master points of a solve: plan gaps 1.30e-4 and 9.59e-5 after two
        rounds, 1.31e-4 and 9.59e-5 after none (0.15-0.2 s less), 1.07e-4 and
        7.63e-5 without give-back and refill (another 0.1-0.17 s less; the
        refill alone changed nothing).
        """
        from solvers.master import master_plan

        filled = self.master_points()
        if filled == 0:
            return None, -np.inf
        alts = self._ring[:filled]
        if not any(v is not None and np.array_equal(v, y) for v in self._ring_y):
            alts = np.concatenate([alts, self.choices(y)[None]])
        codes, self.master_info = master_plan(self, y, base, alts)
        if codes is None:
            return None, -np.inf
        return self.recover(y, rounds=rounds, lazy=lazy, start=codes, give_back=False)

    def _fill_free_channels(self, codes, price, cost_price, shift, leftover, budget_left, rounds: int = FREE_ROUNDS):
        """Fill capacity left on channels no fairness row or term counts with any contact worth > 0.

        The add rounds above take only contacts with a positive reduced
        utility when fairness is on (elsewhere a contact can break a row);
        on these channels a contact of positive utility that fits its cell,
        the budget and the customer's limits is a pure gain, also where the
        price overstates the cell's value. Without this, cells priced a
        little too high stayed part empty (1M customers, hard rows, seed 3:
        about 250 of a 380 loss at near-optimal prices).
        """
        counted = self.counted_channels()
        if counted.all():
            return budget_left
        target = np.where(counted[None, :], np.inf, shift)
        no_neg = np.zeros(self.M, dtype=bool)
        for _ in range(rounds):
            # no free cell with room that the budget left can pay for: the round would add nothing, so skip its
            # pass over every customer (1M, instances 1-6, penalty gamma=1e7 and hard rows: 64 -> 42 passes of
            # ~25 ms in the 32 fills of the 12 solves, the same plans)
            room = (leftover > 0) & self.cell_ok & ~counted[:, None] & (self.cost <= budget_left)[:, None]
            if not room.any():
                break
            added, budget_left = self._add_best(codes, price, cost_price, target, no_neg, leftover, budget_left,
                                                positive=False)
            if added == 0:
                break
        return budget_left

    def _add_best(self, codes, price, cost_price, shift, neg_ok, leftover, budget_left, positive: bool):
        """One add round: each customer's best feasible extra contact (:func:`solvers._dual_kernels.best_additions`),
        taken best first while it fits; only those of positive reduced utility when ``positive``.
        Returns (contacts added, budget left)."""
        best_code, best_r = K.best_additions(self.u, self.cell_ok, price, cost_price, self.cost, self.limits,
                                             self.gap, codes, leftover, budget_left, CHUNK, self.seg, shift, neg_ok)
        cand = np.flatnonzero((best_code >= 0) & ((best_r > 0) | (not positive)))
        if cand.size == 0:
            return 0, budget_left
        order = cand[np.argsort(-best_r[cand], kind="stable")]
        return K.greedy_add(order, best_code, codes, leftover, self.cost, budget_left, self.limits, self.gap, self.T)

    def indices_of(self, plan):
        """(k, 3) index rows of a plan returned by :meth:`recover` (lazy or not)."""
        if isinstance(plan, PlanCodes):
            return K.codes_to_indices(plan.codes, self.u, self.T)[0]
        return plan

    def penalty_value(self, idx: np.ndarray) -> float:
        """γΨ of a plan in this data's (possibly sampled) terms."""
        if self.fair is None or not self.gamma:
            return 0.0
        seg = self.seg[idx[:, 0]] if idx.size else np.zeros(0, dtype=np.int64)
        usage = np.zeros((self.n_segments, self.M))
        np.add.at(usage, (seg, idx[:, 1]), 1.0)
        return self._penalty_of(usage)

    def _penalty_of(self, usage: np.ndarray) -> float:
        """γΨ from the plan's contacts per (segment, channel)."""
        if self.fair is None or not self.gamma:
            return 0.0
        f = self.fair
        usage = np.asarray(usage, dtype=np.float64)
        bx = np.einsum("ps,sp->p", f.pen_coef[:self.n_terms], usage @ f.pen_channels[:self.n_terms].T.astype(float))
        z = bx - self.pen_const
        return float(self.gamma * np.sum(f.pen_weight[:self.n_terms] * z * z))

    def empty_plan(self) -> tuple[np.ndarray | None, float]:
        """The empty plan and its value, or (None, -inf) when segment minimums rule it out."""
        if self.n_rows and (self.row_rhs < -TOL_ROWS).any():
            return None, -np.inf
        idx = empty_indices()
        return idx, -self.penalty_value(idx)

    def _usage(self, codes) -> tuple[np.ndarray, float]:
        """Usage per cell (M*T,) and spend computed from the counts (identical however the codes are split)."""
        usage, _ = K.code_usage(codes, self.cost, self.M, self.T)
        return usage, spend_of(usage, self.cost, self.M, self.T)

    def _drop_for_budget(self, codes, price, shift, need, budget) -> None:
        """Drop the contacts with the least value per unit of cost until ``need`` is freed."""
        who, slot, ratio, paid = K.paid_entries(codes, self.u, price, self.cost, self.T, self.seg, shift)
        order = cheapest_prefix(ratio, who, slot, paid, need, budget)
        codes[who[order], slot[order]] = -1
