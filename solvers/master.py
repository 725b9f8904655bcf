"""Primal recovery by a restricted master LP over the customers' recent choices.

Near the optimum the level method evaluates L at prices close to each
other; at each of them every customer picks a best pattern (its contacts of
the week). The Lagrangian dual equals the LP over convex combinations of
such patterns (the Dantzig-Wolfe master), so a plan close to the bound is a
mix of the customers' choices at those points. :func:`master_plan` starts
from a feasible plan (the incumbent or a light recovery) and offers every
customer whose choice at some recent point differs from it one alternative:
the one worth most in reduced utility at the current prices. It then solves

    max sum_c gain_c z_c   s.t.   sum_c D_c z_c <= slack,   0 <= z_c <= 1,

D_c being the change the switch makes to the cells' usage, the spend and
the segment rows, and slack what the feasible plan leaves of capacities,
budget and rows. Columns with the same change (same contacts removed and
added, same segment when a row counts the channel) are grouped; a group's
columns, sorted by gain, enter the LP as buckets of consecutive ranks, and a
bucket is split while the LP takes it in part, takes it whole though its
last column loses at the LP's prices, or leaves it though its first column
gains — so the final LP is the exact one over the offered columns, solved
with a few thousand columns instead of 10^5. About one bucket per coupling
row ends fractional; each group's count of taken columns is rounded, single
take/give-back moves repair the rows rounding broke (:func:`_fix_rows`), and
the caller's repair (:meth:`solvers.dual_data.DualData.recover` from these
codes) fixes anything left. A fairness penalty enters through tangent cuts of
gamma * w * z^2 (:class:`_BucketLP`).

Measured on the 1M-customer ``weekly`` instance, seed 3, every segment's
call rate >= 0.8 x the overall one, at the recovery points of a solve: at
iteration 15 the light recovery left 5.2e-4 below the final bound, this
master 1.7e-5 (7.8e-5 below the bound known then); the full LP with
convexity rows over all alternatives took 4-40 s in HiGHS, this one a few
tenths.
"""

from __future__ import annotations

import numpy as np

from solvers import _dual_kernels as K

BUCKETS = 1          # buckets per group in the first LP (1M, hard rows: 1, 2, 8 -> 0.29, 0.37, 0.60 s)
PIECES = 8           # pieces a bucket is split into
MAX_SPLITS = 40      # refinement rounds before taking the LP as it is
PENALTY = 10.0       # elastic slack cost per unit of a coupling row, times the largest gain per column
TANGENTS = 14        # a fairness penalty term is cut by tangents at 0, +-1, +-2, ..., +-2^13 contacts from the base


class _BucketLP:
    """max gain.x - sum_p t_p s.t. D.T x <= rhs (elastic), the penalty rows, 0 <= x <= upper.

    Columns are added and retired between warm-started solves. Rows are
    scaled to coefficients of about 1; each coupling row has an elastic
    slack priced far above any column (the base plan is feasible, so they
    only absorb rounding noise). Retired columns keep their place with both
    bounds at 0, so HiGHS restarts from its last basis. ``terms`` (a
    fairness penalty gamma * sum_p w_p z_p^2, z = z0 + E x) adds per term a
    free column e_p = z_p (in units of the row), a cost column t_p >= 0 and
    the tangent rows t_p >= gamma w_p (2 d e_p - d^2) at the points ``d``.
    """

    def __init__(self, D: np.ndarray, rhs: np.ndarray, penalty: float, terms=None) -> None:
        import highspy

        from solvers.highs_direct import add_tangent_rows, quiet_highs

        inf = highspy.kHighsInf
        nc = rhs.size                                   # coupling rows (<=); then one equality row per term
        unit = np.maximum(np.abs(D).max(axis=0), 1e-300)
        self.Dn = D / unit
        self.unit = unit
        h = self.h = quiet_highs()      # no presolve: it took 5 of 5.4 s on a 43k-column master
        none_i, none_v = np.zeros(0, np.int32), np.zeros(0)
        lower = np.full(nc, -inf)
        upper = rhs / unit[:nc]
        if terms is not None:
            z0 = terms["z0"]
            lower = np.concatenate([lower, z0 / unit[nc:]])
            upper = np.concatenate([upper, z0 / unit[nc:]])
        h.addRows(lower.size, lower, upper, 0, none_i, none_i, none_v)
        h.addCols(nc, np.full(nc, penalty), np.zeros(nc), np.full(nc, inf), nc,
                  np.arange(nc, dtype=np.int32), np.arange(nc, dtype=np.int32), -np.ones(nc))
        self.n_cols = nc
        if terms is not None:
            P = terms["z0"].size
            # e_p (free, in units of its row) with +1 on row nc + p, then t_p >= 0 at cost 1
            h.addCols(P, np.zeros(P), np.full(P, -inf), np.full(P, inf), P, np.arange(P, dtype=np.int32),
                      (nc + np.arange(P)).astype(np.int32), np.ones(P))
            h.addCols(P, np.ones(P), np.zeros(P), np.full(P, inf), 0, np.zeros(P, np.int32), none_i, none_v)
            self.n_cols += 2 * P
            gw = terms["gamma"] * terms["weight"]
            for p in range(P):      # gamma w (2 d z - d^2) <= t_p at the points d, z = unit * e_p
                d = terms["points"][p]
                add_tangent_rows(h, nc + p, nc + P + p, 2.0 * gw[p] * d * unit[nc + p], gw[p] * d * d)

    def add(self, groups: np.ndarray, gain: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Columns for buckets of these groups; returns their LP indices."""
        block = self.Dn[groups]
        j, r = np.nonzero(block)
        starts = np.searchsorted(j, np.arange(groups.size)).astype(np.int32)
        self.h.addCols(groups.size, -gain, np.zeros(groups.size), upper, j.size, starts, r.astype(np.int32),
                       block[j, r])
        cols = self.n_cols + np.arange(groups.size)
        self.n_cols += groups.size
        return cols

    def retire(self, cols: np.ndarray) -> None:
        zero = np.zeros(cols.size)
        self.h.changeColsBounds(cols.size, cols.astype(np.int32), zero, zero)

    def solve(self):
        """(x per LP column, row prices in the original units), or None without an optimum."""
        import highspy

        # dual simplex, the first (cold) solve too: 1M, seeds 1-12, the same iterations, in-process on an Intel
        # Xeon machine: no fairness 31.3 -> 31.0 s, penalty gamma=1e7 50.5 -> 45.1, gamma=1000 39.2 -> 34.6, hard
        # rows 47.3 -> 45.6 (primal simplex for the cold solve had measured 82-94 -> 25 ms per penalty master on
        # an AMD EPYC machine, before the penalty's prices were settled; the penalty pairs here ran with a
        # since-fixed slip that dropped the settle's split choices at every point)
        self.h.setOptionValue("simplex_strategy", 1)
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        sol = self.h.getSolution()
        return np.asarray(sol.col_value), -np.asarray(sol.row_dual)[:self.unit.size] / self.unit


def _group_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct key row, group of every row); keys are small ints >= -1."""
    radix = int(keys.max(initial=0)) + 2
    if radix ** keys.shape[1] < 2 ** 62:         # one int64 per row: a 1-D unique (20x faster than axis=0)
        code = np.zeros(keys.shape[0], dtype=np.int64)
        for q in range(keys.shape[1]):
            code = code * radix + (keys[:, q].astype(np.int64) + 1)
        _, first, group = np.unique(code, return_index=True, return_inverse=True)
    else:
        _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, group.ravel()


def _split(lo, hi, k):
    """Cut each rank range [lo, hi) into up to k consecutive pieces."""
    parts = np.minimum(hi - lo, k)
    rep = np.repeat(np.arange(lo.size), parts)
    piece = np.arange(rep.size) - np.repeat(np.cumsum(parts) - parts, parts)
    size = hi[rep] - lo[rep]
    return (lo[rep] + piece * size // parts[rep], lo[rep] + (piece + 1) * size // parts[rep], rep)


def _fix_rows(count, starts, ranked_gain, D, rhs, max_moves: int = 64):
    """Take or give back single columns until no coupling row is violated (the rounding's leftovers).

    ``count[g]`` best columns of group g are taken; a move takes the group's next column or gives
    back its last one, and breaks no row that holds. Each step takes the most valuable move that
    repairs every row, else the move that removes most violation (rows measured in units of their
    largest coefficient). Rounding the LP's few fractional columns to the nearest
    had broken segment rows by fractions of a contact and the budget by a few units (1M, hard
    rows), which sent the plan through the row repair (a pass over the customers, about 80 ms).
    Returns (counts, moves made).
    """
    size = np.diff(starts)
    unit = np.maximum(np.abs(D).max(axis=0, initial=0.0), 1e-300)
    Dn = D / unit
    slack = (rhs - count @ D) / unit
    tol = 1e-9
    moves = 0
    while moves < max_moves:
        short = np.minimum(slack, 0.0)
        if short.min() >= -tol:
            break
        best = None
        for sign, ok in ((1, count < size), (-1, count > 0)):
            g = np.flatnonzero(ok)
            if g.size == 0:
                continue
            after = slack[None, :] - sign * Dn[g]
            fine = ((after >= -tol) | (short[None, :] < -tol)).all(axis=1)       # no row newly broken
            gain = np.minimum(after, 0.0).sum(axis=1) - short.sum()             # total violation removed
            fine &= gain > tol
            if not fine.any():
                continue
            g, after, gain = g[fine], after[fine], gain[fine]
            edge = ranked_gain[starts[g] + count[g]] if sign > 0 else -ranked_gain[starts[g] + count[g] - 1]
            # a move that repairs everything, the most valuable; else the one that repairs most
            key = np.where(gain >= -short.sum() - tol, edge + 1e12, gain)
            j = int(np.argmax(key))
            if best is None or key[j] > best[0]:
                best = (key[j], g[j], sign, after[j])
        if best is None:
            break
        count[best[1]] += best[2]
        slack = best[3]
        moves += 1
    return count, moves


def master_plan(data, y: np.ndarray, base: np.ndarray, alts: np.ndarray) -> tuple[np.ndarray | None, dict]:
    """Codes of the master LP's plan (see the module docstring), or None when no customer has an alternative.

    ``base`` (n, slots) is a feasible plan's codes, ``alts`` (A, n, slots) the
    customers' choices at A price points. A row that rounding broke and no
    single move of :func:`_fix_rows` repairs stays broken: finish with
    :meth:`solvers.dual_data.DualData.recover` (``start=``).
    """
    M, T = data.M, data.T
    price, mu = data.prices(y)
    P, _ = K.price_table(data.cell_ok, price, mu * data.cost, data.shift(y), data.neg_ok)
    f = data.fair
    counted = data.counted_channels()
    pick, gain, moves_rows = K.master_options(base, alts, data.u, P, data.seg, counted, T, 1024)
    cust = np.flatnonzero(pick >= 0)
    info = {"columns": int(cust.size)}
    if cust.size == 0:
        return None, info
    keys = K.master_keys(base, alts, pick, cust)
    seg = data.seg[cust] if data.seg.shape[0] > 1 else np.zeros(cust.size, dtype=np.int64)
    segkey = np.where(moves_rows[cust], seg, -1)
    first, group = _group_ids(np.column_stack([keys, segkey]))
    G, slots = first.size, base.shape[1]
    # each group's change of cells, spend and rows
    dcell = np.zeros((G, M * T))
    for q in range(2 * slots):
        code = keys[first, q]
        on = code >= 0
        np.add.at(dcell, (np.flatnonzero(on), code[on]), -1.0 if q < slots else 1.0)
    dchan = dcell.reshape(G, M, T).sum(axis=2)
    usage, spend = data._usage(base)
    if f is not None:
        seg_usage = K.codes_value(base, data.u[:0], data.seg, data.n_segments, T)[1].astype(np.float64)
    parts = [dcell]
    rhs = [np.floor(data.capacity).ravel() - usage]
    if data.budget is not None:
        parts.append((dchan @ data.cost)[:, None])
        rhs.append(np.array([float(data.budget) - spend]))
    if data.n_rows:
        gseg = np.maximum(segkey[first], 0)
        parts.append(f.row_coef[:, gseg].T * (dchan @ f.row_channels.T.astype(np.float64)))
        from solvers.fairness_repair import _rows_of_usage

        rhs.append(data.row_rhs - _rows_of_usage(data, seg_usage))
    rhs = np.concatenate(rhs)
    terms = None
    if data.n_terms:        # the penalty: z_p = bx_p - const_p moves by E x
        n_terms = data.n_terms
        gseg = np.maximum(segkey[first], 0)
        term_channels = f.pen_channels[:n_terms].T.astype(np.float64)
        parts.append(-(f.pen_coef[:n_terms, gseg].T * (dchan @ term_channels)))
        z0 = np.einsum("ps,sp->p", f.pen_coef[:n_terms], seg_usage @ term_channels) - data.pen_const
        step = np.abs(f.pen_coef[:n_terms]).max(axis=1)            # z moved by one contact
        offsets = np.concatenate([[0.0], 2.0 ** np.arange(TANGENTS)])
        offsets = np.concatenate([-offsets[:0:-1], offsets])
        terms = dict(z0=z0, gamma=data.gamma, weight=data.term_weight,
                     points=[z0[p] + step[p] * offsets for p in range(n_terms)])
    D = np.concatenate(parts, axis=1)
    # ranks: by group, then gain (best first), then customer
    gain_c = gain[cust]
    by_gain = np.argsort(-gain_c, kind="stable")            # cust ascending: ties stay in customer order
    order = by_gain[np.argsort(group[by_gain], kind="stable")]  # = lexsort((cust, -gain_c, group)), 2x faster
    ranked_gain = gain_c[order]
    csum = np.concatenate([[0.0], np.cumsum(ranked_gain)])
    starts = np.searchsorted(group[order], np.arange(G + 1))
    lp = _BucketLP(D, rhs, PENALTY * max(float(np.abs(gain_c).max()), 1.0), terms)

    def columns(lo, hi, owner):
        width = (hi - lo).astype(np.float64)
        return lp.add(owner, (csum[hi] - csum[lo]) / width, width)

    lo, hi, owner = _split(starts[:-1], starts[1:], BUCKETS)
    col = columns(lo, hi, owner)
    rounds = 0
    while True:
        rounds += 1
        out = lp.solve()
        if out is None:
            return None, dict(info, lp="failed")
        x, pi = out[0][col], out[1]
        width = hi - lo
        price = (D @ pi)[owner]                   # what a column of the group pays at the LP's prices
        full, empty = x >= width - 1e-9, x <= 1e-9
        split = (width > 1) & ((full & (ranked_gain[hi - 1] < price - 1e-12))
                               | (empty & (ranked_gain[lo] > price + 1e-12)) | (~full & ~empty))
        if not split.any() or rounds == MAX_SPLITS:
            break
        lp.retire(col[split])
        a, b, rep = _split(lo[split], hi[split], PIECES)
        keep = ~split
        owner_new = owner[split][rep]
        col = np.concatenate([col[keep], columns(a, b, owner_new)])
        lo, hi, owner = (np.concatenate([lo[keep], a]), np.concatenate([hi[keep], b]),
                         np.concatenate([owner[keep], owner_new]))
    lp_gain = float(x @ ((csum[hi] - csum[lo]) / (hi - lo)))
    lp_value = -float(lp.h.getInfo().objective_function_value)      # gain minus the penalty's tangent cost
    # per group, the number of its best columns taken (the LP takes a group's columns best first)
    count = np.floor(np.bincount(owner, weights=x, minlength=G) + 0.5).astype(np.int64)
    count, moves = _fix_rows(count, starts, ranked_gain, D[:, :rhs.size], rhs)
    taken = np.repeat(starts[:-1] - np.cumsum(count) + count, count) + np.arange(count.sum())
    chosen = cust[order[taken]]
    codes = base.copy()
    codes[chosen] = alts[pick[chosen], chosen]
    info.update(groups=G, buckets=int(lo.size), rounds=rounds, switched=int(chosen.size), lp_gain=lp_gain,
                lp_value=lp_value, row_moves=moves)
    return codes, info
