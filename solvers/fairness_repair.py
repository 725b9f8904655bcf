"""Make a recovered plan meet the hard segment bounds (rows of :mod:`formulations.fairness`).

Each row reads ``sum_i a[r, seg(i)] X_i,g_r <= b_r``. The bulk stage
(:func:`swap_rows`) first takes the cheapest additions and same-cell swaps
that lower the total violation without raising any row's own; an
"addition" may replace one of the customer's contacts on a channel no row
counts (:func:`solvers._dual_kernels.best_placements`: in a weekly plan
95% of the customers have every slot taken, so trading an e-mail for a
call is usually the cheapest way to raise a segment's call count). While some row
is still violated, take the most violated one and, in this order:

1. add the best feasible contacts (largest reduced utility, within capacity,
   budget, contact limit and spacing) of customers whose segment has
   ``a < 0`` on the row's channels;
2. if the row needs additions but the channels are full, free slots by
   dropping the least valuable contacts there of segments the row does not
   favour (``a >= 0``), then go back to 1;
3. drop the contacts with the smallest reduced utility of customers whose
   segment has ``a > 0`` on those channels.

Every move keeps the plan feasible for all other constraints; the loop stops
when all rows hold (success) or no move is possible (failure, reported to the
caller, which then keeps its previous plan). After a success,
:func:`give_back` undoes what the repair over-did and :func:`refill` gives
freed capacity back, both without breaking a row.
"""

from __future__ import annotations

import math

import numpy as np

from solvers import _dual_kernels as K

PER_KEY = 256      # candidates kept per (cell, segment) by a bulk pass, beyond 4 per contact the rows are short of
MAX_MOVES = 50     # moves of the one-at-a-time stage after the bulk swaps (which do the heavy lifting)
TOL = 1e-9


def _entries(data, codes, price, cost_price, shift, channels=None):
    """(customer, slot, channel, day, segment, reduced utility) of the plan's contacts (on ``channels``: all)."""
    channels = np.ones(data.M, dtype=bool) if channels is None else channels
    return K.plan_entries(codes, data.u, price, cost_price, shift, data.seg, data.T, channels)


def entries_numpy(data, codes, price, cost_price, shift, channels):
    """NumPy twin of :func:`solvers._dual_kernels.plan_entries` (tests)."""
    on = (codes >= 0) & channels[np.maximum(codes, 0) // data.T]
    rows, slot = np.nonzero(on)
    code = codes[rows, slot].astype(np.int64)
    m, t = code // data.T, code % data.T
    seg = data.seg[rows] if data.seg.shape[0] > 1 else np.zeros(rows.size, dtype=np.int64)
    reduced = data.u[rows, m, t].astype(np.float64) - price[m, t] - cost_price[m] - shift[seg, m]
    return rows, slot, m, t, seg, reduced


def _plan_rows(data, codes) -> np.ndarray:
    """Row values of a plan from its contacts per (segment, channel): counts only, no utility read."""
    return _rows_of_usage(data, K.codes_value(codes, data.u[:0], data.seg, data.n_segments, data.T)[1])


def _rows_of_usage(data, usage) -> np.ndarray:
    f = data.fair
    usage = np.asarray(usage).astype(np.float64)
    return np.einsum("rs,sr->r", f.row_coef, usage @ f.row_channels.T.astype(np.float64))


def swap_rows(data, codes, price, cost_price, shift, leftover, budget_left,
              rounds: int = 3) -> tuple[float, np.ndarray | None]:
    """Bulk first stage of the repair: cheapest additions and same-cell swaps for the violated rows.

    Candidates: every customer of a segment some violated row favours gets
    its best contact on those rows' channels, added or in place of a
    contact no row counts (capacity aside: a swap frees the cell), and every
    contact on those channels may be dropped. At 1M customers (``weekly``
    seeds 1-4, call rate >= 0.8 x overall) allowing the replacement took
    the solves from 118, 52, 106 and 89 iterations to 51, 51, 58 and 58.
    :func:`solvers._dual_kernels.row_swaps` then takes the cheapest moves that
    lower the total violation without raising any row's own, so rows are not
    traded against each other. A few rounds, since a customer offers one
    candidate per round. Returns the budget left and the plan's row values
    when no move followed their last count (else None: count them again);
    ``codes`` and ``leftover`` are updated in place.
    """
    f = data.fair
    for _ in range(rounds):
        row_val = _plan_rows(data, codes)
        violated = row_val - data.row_rhs > TOL
        if not violated.any():
            return budget_left, row_val
        favoured = (f.row_coef[violated] < 0).any(axis=0)
        if not favoured.any():
            return budget_left, row_val
        moves, budget_left = _row_moves(data, codes, price, cost_price, shift, leftover, budget_left, row_val,
                                        favoured, f.row_channels[violated].any(axis=0), improve=False)
        if moves == 0:
            return budget_left, row_val
    return budget_left, None


def give_back(data, codes, price, cost_price, shift, leftover, budget_left, rounds: int = 1) -> float:
    """After a successful repair, undo what it over-did while every row still holds.

    The repair moves whole contacts, so rows with a positive price can end
    with slack; each contact of slack costs about the row's price (at 1M
    customers, 92 and 75 contacts of slack on two rows cost 5e-4 of the
    objective at one price point).
    Same candidates as :func:`swap_rows` for every segment on the rows'
    channels; :func:`solvers._dual_kernels.row_swaps` in ``improve`` mode
    takes the most valuable additions and same-cell swaps that keep all rows
    satisfied. One round by default: at the 17 recovery points of two 1M
    solves (hard rows, seeds 3 and 6) a second round changed the plan value
    by at most about 1e-6 of the objective (either way) and cost a full
    ``best_placements`` pass.
    Returns the budget left.
    """
    f = data.fair
    every = np.ones(data.n_segments, dtype=bool)
    group = f.row_channels.any(axis=0)
    for _ in range(rounds):
        moves, budget_left = _row_moves(data, codes, price, cost_price, shift, leftover, budget_left,
                                        _plan_rows(data, codes), every, group, improve=True)
        if moves == 0:
            break
    return budget_left


def _row_moves(data, codes, price, cost_price, shift, leftover, budget_left, row_val, segments, group, improve):
    """One :func:`solvers._dual_kernels.row_swaps` pass: additions for ``segments`` and drops on ``group``'s channels."""
    f = data.fair
    T, M = data.T, data.M
    n_cells, S = M * T, data.n_segments
    target = np.full_like(shift, np.inf)
    target[np.ix_(segments, group)] = shift[np.ix_(segments, group)]
    best_code, best_v, best_slot, dcost = K.best_placements(data.u, data.cell_ok, price, cost_price, data.cost,
                                                             data.limits, data.gap, codes, 2048, data.seg, target,
                                                             ~f.row_channels.any(axis=0), np.ones(M, dtype=bool))
    rows, slot, m, t, seg, reduced = _entries(data, codes, price, cost_price, shift, group)
    drop_key = (m * T + t) * S + seg
    drop_val = reduced + shift[seg, m]                                # value without the fairness price
    if improve:     # only gains are taken: an addition worth > 0, or a swap worth more than some drop
        add_cust = np.flatnonzero((best_code >= 0) & (best_v > min(0.0, drop_val.min(initial=0.0))))
    else:
        add_cust = np.flatnonzero(best_code >= 0)
    if add_cust.size == 0:
        return 0, budget_left
    add_cell = best_code[add_cust]
    add_seg = data.seg[add_cust] if data.seg.shape[0] > 1 else np.zeros(add_cust.size, dtype=np.int64)
    add_val = best_v[add_cust]
    add_key = add_cell * S + add_seg
    keep = PER_KEY + 4 * _contacts_short(data, row_val)
    add_ptr, a_order = K.top_by_key(add_key, -add_val, n_cells * S, keep)
    drop_ptr, d_order = K.top_by_key(drop_key, drop_val, n_cells * S, keep)
    a_cust = add_cust[a_order]
    return K.row_swaps(
        f.row_coef, f.row_channels, row_val, data.row_rhs, T, add_ptr, a_cust, add_val[a_order], best_slot[a_cust],
        dcost[a_cust], drop_ptr, rows[d_order], slot[d_order], drop_val[d_order], codes, leftover, data.cost,
        float(budget_left), improve)


def _contacts_for(violation: float, coef: np.ndarray) -> int:
    """Contacts that clear ``violation`` of a row when each moves it by the smallest |coefficient| in ``coef``."""
    return math.ceil(violation / np.abs(coef).min() - TOL)


def _contacts_short(data, row_val) -> int:
    """Contacts the rows are short of: sum over violated rows of violation / smallest favoured |coefficient|."""
    f = data.fair
    short = 0
    for r in np.flatnonzero(row_val - data.row_rhs > TOL):
        a = f.row_coef[r][f.row_coef[r] < 0]
        if a.size:
            short += _contacts_for(row_val[r] - data.row_rhs[r], a)
    return short


def repair_rows(data, codes, price, cost_price, shift, leftover, budget_left) -> tuple[bool, float]:
    """Repair ``codes`` in place; returns (all rows satisfied, budget left)."""
    f = data.fair
    budget_left, row_val = swap_rows(data, codes, price, cost_price, shift, leftover, budget_left)
    for _ in range(MAX_MOVES):
        viol = (_plan_rows(data, codes) if row_val is None else row_val) - data.row_rhs
        row_val = None
        r = int(np.argmax(viol))
        if viol[r] <= TOL:
            return True, budget_left
        a = f.row_coef[r]
        group = f.row_channels[r]
        favoured = a < 0
        moved = 0
        if favoured.any():                                   # 1. add favoured-segment contacts
            target = np.full_like(shift, np.inf)
            target[np.ix_(favoured, group)] = shift[np.ix_(favoured, group)]
            best_code, best_r = K.best_additions(data.u, data.cell_ok, price, cost_price, data.cost, data.limits,
                                                 data.gap, codes, leftover, budget_left, 2048, data.seg, target,
                                                 np.ones(data.M, dtype=bool))
            cand = np.flatnonzero(best_code >= 0)
            if cand.size:
                need = _contacts_for(viol[r], a[favoured])
                order = cand[np.argsort(-best_r[cand], kind="stable")][:max(need, 1)]
                moved, budget_left = K.greedy_add(order, best_code, codes, leftover, data.cost,
                                                  budget_left, data.limits, data.gap, data.T)
        if moved == 0:
            rows, slot, m, t, seg, reduced = _entries(data, codes, price, cost_price, shift)
        if moved == 0 and favoured.any():                    # 2. free full slots for the favoured segments
            full = group[:, None] & (leftover <= 0)
            pick = np.flatnonzero((a[seg] >= 0) & full[m, t])
            if pick.size:
                need = _contacts_for(viol[r], a[favoured])
                pick = pick[np.argsort(reduced[pick], kind="stable")][:max(need, 1)]
                moved = _drop(data, codes, rows, slot, m, t, pick, leftover)
                budget_left += float(data.cost[m[pick]].sum())
        if moved == 0 and (a > 0).any():                     # 3. drop disfavoured-segment contacts
            pick = np.flatnonzero((a[seg] > 0) & group[m])
            if pick.size:
                need = _contacts_for(viol[r], a[a > 0])
                pick = pick[np.argsort(reduced[pick], kind="stable")][:max(need, 1)]
                moved = _drop(data, codes, rows, slot, m, t, pick, leftover)
                budget_left += float(data.cost[m[pick]].sum())
        if moved == 0:
            return False, budget_left
    return False, budget_left


def _drop(data, codes, rows, slot, m, t, pick, leftover) -> int:
    codes[rows[pick], slot[pick]] = -1
    np.add.at(leftover, (m[pick], t[pick]), 1)
    return int(pick.size)


def refill(data, codes, price, cost_price, shift, leftover, budget_left, rounds: int = 4) -> float:
    """After a repair, give freed capacity back without breaking any segment row.

    Additions are limited per (segment, channel) to what every row's slack
    allows (each row's slack is shared out in proportion to the coefficients,
    so the batch as a whole keeps the row satisfied); repeated a few rounds.
    """
    f = data.fair
    S, M = data.n_segments, data.M
    for _ in range(rounds):
        slack = data.row_rhs - _plan_rows(data, codes)
        coef = f.row_coef[:, :, None] * f.row_channels[:, None, :]          # (R, S, M)
        positive = coef > TOL
        share = np.where(positive, coef, 0.0)
        total = share.sum(axis=(1, 2))                                       # per row
        cap = np.full((S, M), np.inf)
        for r in range(f.n_rows):
            if total[r] <= 0:
                continue
            # additions with positive coefficient may use slack_r in proportion to their weight
            per_pair = np.where(positive[r], np.maximum(slack[r], 0.0) / total[r], np.inf)
            cap = np.minimum(cap, np.floor(per_pair + TOL))
        target = np.where(cap > 0, shift, np.inf)
        best_code, best_r = K.best_additions(data.u, data.cell_ok, price, cost_price, data.cost, data.limits,
                                             data.gap, codes, leftover, budget_left, 2048, data.seg, target,
                                             data.neg_ok)
        cand = np.flatnonzero((best_code >= 0) & (best_r > 0))
        if cand.size == 0:
            break
        order = cand[np.argsort(-best_r[cand], kind="stable")]
        cseg = data.seg[order] if data.seg.shape[0] > 1 else np.zeros(order.size, dtype=np.int64)
        cm = best_code[order] // data.T
        keep = np.ones(order.size, dtype=bool)
        finite = np.isfinite(cap[cseg, cm])
        if finite.any():
            # at most cap[s, m] additions per pair, best first
            pair = cseg * M + cm
            rank = np.zeros(order.size, dtype=np.int64)
            counts: dict = {}
            for k in np.flatnonzero(finite):
                rank[k] = counts.get(pair[k], 0)
                counts[pair[k]] = rank[k] + 1
            keep[finite] = rank[finite] < cap[cseg[finite], cm[finite]]
        added, budget_left = K.greedy_add(order[keep], best_code, codes, leftover, data.cost, budget_left,
                                          data.limits, data.gap, data.T)
        if added == 0:
            break
    return budget_left
