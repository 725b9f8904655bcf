"""numba kernels of the Lagrangian dual core.

Plain loops over customers, parallel over chunks of customers (``prange``);
utilities may be float32 (reduced utilities are computed in float64). The
NumPy twins live in :mod:`formulations.lagrangian` (``customer_dp``,
``customer_choices``, ``dual_function``) and the tests compare both.

Conventions shared with the twins: a contact is a candidate when its utility
is > 0, its cell is allowed and the customer's limit is > 0; per day the
first channel with the largest reduced utility wins; a day is taken only if
taking it is strictly better.
"""

from __future__ import annotations

import numpy as np

from solvers._jit import kernel, parallel_kernel, prange


@kernel
def _allowed(x, m, neg_ok):
    """A contact is a candidate when its utility is > 0 (or finite on channels where fairness may pay for it)."""
    return x > 0.0 or (neg_ok[m] and x > -np.inf)


@kernel
def price_table(cell_ok, price, cost_price, shift, neg_ok):
    """Total price per (segment, channel, day) and whether candidates need the utility test.

    ``P[s, m, t] = (price[m, t] + cost_price[m]) + shift[s, m]``, ``+inf`` on cells
    that are not allowed, so a customer's reduced utility is one subtraction
    ``u - P`` (the NumPy twin :func:`formulations.lagrangian.reduced_utilities`
    rounds the same way). A contact is taken only when ``u - P`` exceeds a
    reduced utility >= 0 (:func:`group_patterns` tests the rows' channels,
    where it keeps contacts below zero, itself), so where ``P >= 0`` that
    implies ``u > 0``; on channels where a contact of utility <= 0 may be
    taken (``neg_ok``, fairness) any finite utility is a candidate anyway.
    The per-cell candidate test is therefore needed (``check`` True) only
    when some price of another channel is negative: 30% off an evaluation
    without it. Before, ``neg_ok`` alone turned the test on (1M customers,
    hard rows: 73 -> 64-65 ms per evaluation without it).
    """
    S = shift.shape[0]
    M, T = price.shape
    P = np.empty((S, M, T))
    check = False
    for s in range(S):
        for m in range(M):
            for t in range(T):
                if cell_ok[m, t]:
                    P[s, m, t] = price[m, t] + cost_price[m] + shift[s, m]
                    if P[s, m, t] < 0.0 and not neg_ok[m]:
                        check = True
                else:
                    P[s, m, t] = np.inf
    return P, check


@kernel
def _dp_setup(n, chunk, limits, seg, cell_ok, price, cost_price, shift, neg_ok):
    """What every per-customer DP kernel starts with: chunk count, scalar flags, the price table."""
    P, check = price_table(cell_ok, price, cost_price, shift, neg_ok)
    return (n + chunk - 1) // chunk, limits.shape[0] == 1, seg.shape[0] == 1, P, check


@kernel
def _customer_optimum(u_i, P_i, check, neg_ok, limit, gap, w, best_ch, V, choice, days_out):
    """phi_i and its chosen days for one customer.

    ``P_i`` (M, T) is the customer's total price table (its segment's slice of
    :func:`price_table`). Fills ``days_out[:count]`` with the chosen days
    (latest first) and ``best_ch`` with each day's best channel; returns
    (value, count).
    """
    M, T = u_i.shape
    K = min(limit, T)
    if K <= 0:
        return 0.0, 0
    any_day = False
    for t in range(T):
        best = 0.0
        ch = -1
        for m in range(M):
            x = np.float64(u_i[m, t])
            r = x - P_i[m, t]
            if r > best and (not check or _allowed(x, m, neg_ok)):
                best = r
                ch = m
        w[t] = best
        best_ch[t] = ch
        if ch >= 0:
            any_day = True
    if not any_day:
        return 0.0, 0
    return _best_days(w, best_ch, T, K, gap, V, choice, days_out)


@kernel
def _best_days(w, day_ch, T, K, gap, V, choice, days_out):
    """The DP over days: at most K of them, ``gap`` apart, day t worth ``w[t]`` when ``day_ch[t] >= 0``.

    Fills ``days_out[:count]`` with the chosen days (latest first); returns (value, count).
    """
    for k in range(K + 1):
        V[0, k] = 0.0
    for t in range(T):
        V[t + 1, 0] = 0.0
        prev = t - gap + 1
        if prev < 0:
            prev = 0
        ok = day_ch[t] >= 0
        wt = w[t]
        for k in range(1, K + 1):
            # branch-free (the outcome is data-dependent, so a branch mispredicts): 8% of an evaluation
            skip = V[t, k]
            take = V[prev, k - 1] + wt
            better = ok & (take > skip)
            V[t + 1, k] = take if better else skip
            choice[t, k] = better
    value = V[T, K]
    count = 0
    pos = T
    k = K
    while pos > 0 and k > 0:
        t = pos - 1
        if choice[t, k]:
            days_out[count] = t
            count += 1
            pos = t - gap + 1
            if pos < 0:
                pos = 0
            k -= 1
        else:
            pos = t
    return value, count


@kernel
def _sum_parts(part_usage, part_seg):
    """Usage (M, T) and segment usage (S, M) summed over the chunks' parts."""
    usage = part_usage.sum(axis=0)
    seg_usage = part_seg.sum(axis=0)
    return usage, seg_usage


@parallel_kernel
def evaluate_dual(u, cell_ok, price, cost_price, limits, gap, chunk, seg, shift, neg_ok, codes):
    """Sum of customer optima, usage per cell and per (segment, channel) at given prices.

    Returns (sums of customer optima per chunk of ``chunk`` customers, usage
    (M, T) int64, segment usage (S, M) int64): chunk sums are summed by the
    caller, so shards aligned on chunk boundaries reproduce the in-process
    total bit for bit. ``limits`` and ``seg`` have length n or 1; ``shift`` is (S, M).
    ``codes`` is an (n, slots) int16 array that receives the choices as
    :func:`choose_contacts` would return them, or a (0, 0) array for none.
    """
    n, M, T = u.shape
    keep_codes = codes.shape[0] == n
    slots = codes.shape[1]
    S = shift.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    part_sum = np.zeros(n_chunks)
    part_usage = np.zeros((n_chunks, M, T), dtype=np.int64)
    part_seg = np.zeros((n_chunks, S, M), dtype=np.int64)
    scalar_limit = limits.shape[0] == 1
    scalar_seg = seg.shape[0] == 1
    P, check = price_table(cell_ok, price, cost_price, shift, neg_ok)
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        w = np.empty(T)
        best_ch = np.empty(T, dtype=np.int64)
        V = np.empty((T + 1, T + 1))
        choice = np.zeros((T, T + 1), dtype=np.bool_)
        days = np.empty(T, dtype=np.int64)
        acc = 0.0
        for i in range(lo, hi):
            lim = limits[0] if scalar_limit else limits[i]
            s_i = seg[0] if scalar_seg else seg[i]
            value, count = _customer_optimum(u[i], P[s_i], check, neg_ok, lim, gap, w,
                                             best_ch, V, choice, days)
            acc += value
            for q in range(count):
                t = days[q]
                part_usage[c, best_ch[t], t] += 1
                part_seg[c, s_i, best_ch[t]] += 1
            if keep_codes:
                for q in range(slots):
                    codes[i, q] = best_ch[days[q]] * T + days[q] if q < count else -1
        part_sum[c] = acc
    usage, seg_usage = _sum_parts(part_usage, part_seg)
    return part_sum, usage, seg_usage


NO_CODES = np.zeros((0, 0), dtype=np.int16)


@parallel_kernel
def choose_contacts(u, cell_ok, price, cost_price, limits, gap, slots, chunk, seg, shift, neg_ok):
    """Each customer's optimal contacts as codes ``m * T + t`` in an (n, slots) int16 array (-1 = empty)."""
    n, M, T = u.shape
    codes = np.full((n, slots), -1, dtype=np.int16)
    n_chunks, scalar_limit, scalar_seg, P, check = _dp_setup(n, chunk, limits, seg, cell_ok, price, cost_price,
                                                            shift, neg_ok)
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        w = np.empty(T)
        best_ch = np.empty(T, dtype=np.int64)
        V = np.empty((T + 1, T + 1))
        choice = np.zeros((T, T + 1), dtype=np.bool_)
        days = np.empty(T, dtype=np.int64)
        for i in range(lo, hi):
            lim = limits[0] if scalar_limit else limits[i]
            s_i = seg[0] if scalar_seg else seg[i]
            value, count = _customer_optimum(u[i], P[s_i], check, neg_ok, lim, gap, w,
                                             best_ch, V, choice, days)
            for q in range(min(count, slots)):
                t = days[q]
                codes[i, q] = best_ch[t] * T + t
    return codes


@parallel_kernel
def max_positive_utility(u, cell_ok, chunk):
    """(M, T) largest positive utility per allowed cell (0 where none)."""
    n, M, T = u.shape
    n_chunks = (n + chunk - 1) // chunk
    part = np.zeros((n_chunks, M, T))
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        for i in range(lo, hi):
            for m in range(M):
                for t in range(T):
                    if cell_ok[m, t]:
                        x = np.float64(u[i, m, t])
                        if x > part[c, m, t]:
                            part[c, m, t] = x
    out = np.zeros((M, T))
    for c in range(n_chunks):
        for m in range(M):
            for t in range(T):
                if part[c, m, t] > out[m, t]:
                    out[m, t] = part[c, m, t]
    return out


@kernel
def _open_cells(cell_ok, leftover):
    """(M, T) cells that are allowed and have leftover capacity."""
    M, T = cell_ok.shape
    out = np.zeros((M, T), dtype=np.bool_)
    for m in range(M):
        for t in range(T):
            out[m, t] = cell_ok[m, t] and leftover[m, t] > 0
    return out


@kernel
def _contact_days(codes_i, T, gap, day):
    """Fill ``day[q]`` with the day of slot q (far outside the week when empty); return the contact count.

    Computed once per customer, so the spacing tests of a scan need no integer division.
    """
    count = 0
    for q in range(codes_i.shape[0]):
        code = codes_i[q]
        if code >= 0:
            day[q] = code % T
            count += 1
        else:
            day[q] = -T - gap
    return count


@kernel
def _day_free(day, skip, t, gap):
    """Is day ``t`` at least ``gap`` days from every contact day except slot ``skip``?"""
    for q in range(day.shape[0]):
        if q != skip and abs(day[q] - t) < gap:
            return False
    return True


@kernel
def _open_segments(shift):
    """(S,) segments with some channel whose ``shift`` is finite (an infinite shift excludes the pair)."""
    S, M = shift.shape
    out = np.zeros(S, dtype=np.bool_)
    for s in range(S):
        for m in range(M):
            if shift[s, m] < np.inf:
                out[s] = True
    return out


@kernel(inline="always")
def _customer_limit(i, seg, seg_open, limits):
    """Customer i's segment and contact limit; limit 0 when its segment is not open."""
    s_i = seg[0] if seg.shape[0] == 1 else seg[i]
    if not seg_open[s_i]:
        return s_i, 0
    return s_i, limits[0] if limits.shape[0] == 1 else limits[i]


@parallel_kernel
def best_additions(u, cell_ok, price, cost_price, cost, limits, gap, codes, leftover, budget_left, chunk, seg, shift,
                   neg_ok):
    """Per customer, the feasible addition with the largest reduced utility.

    An addition is feasible when the cell has leftover capacity, its cost
    fits the leftover budget and the customer's limit and spacing allow it.
    Contacts with an infinite ``shift`` are excluded (used to target segments).
    Returns (code (n,) int64, -1 for none; reduced utility (n,)).
    """
    n, M, T = u.shape
    best_code = np.full(n, -1, dtype=np.int64)
    best_r = np.full(n, -np.inf)
    n_chunks = (n + chunk - 1) // chunk
    open_cell = _open_cells(cell_ok, leftover)
    slots = codes.shape[1]
    seg_open = _open_segments(shift)
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        day = np.empty(slots, dtype=np.int64)
        for i in range(lo, hi):
            s_i, lim = _customer_limit(i, seg, seg_open, limits)
            if lim <= 0 or _contact_days(codes[i], T, gap, day) >= lim:
                continue
            for t in range(T):                  # first maximum in day, then channel order wins
                if not _day_free(day, -1, t, gap):
                    continue
                for m in range(M):
                    if not open_cell[m, t] or cost[m] > budget_left or shift[s_i, m] == np.inf:
                        continue
                    x = np.float64(u[i, m, t])
                    if not _allowed(x, m, neg_ok):
                        continue
                    v = x - price[m, t] - cost_price[m] - shift[s_i, m]
                    if v > best_r[i]:
                        best_r[i] = v
                        best_code[i] = m * T + t
    return best_code, best_r


@kernel(inline="always")
def _best_per_day(u_i, cell_ok, price, cost_price, channels, n_channels, neg_ok, w_day, m_day):
    """Per day, the channel of ``channels[:n_channels]`` (ascending) with the largest ``u - price - cost_price``
    among allowed candidates (first wins): ``w_day``, ``m_day`` (-1: none)."""
    T = u_i.shape[1]
    for t in range(T):
        w_day[t] = -np.inf
        m_day[t] = -1
        for k in range(n_channels):
            m = channels[k]
            if not cell_ok[m, t]:
                continue
            x = np.float64(u_i[m, t])
            if not _allowed(x, m, neg_ok):
                continue
            w = x - price[m, t] - cost_price[m]
            if m_day[t] < 0 or w > w_day[t]:
                w_day[t] = w
                m_day[t] = m


@kernel(inline="always")
def _day_conflicts(day, T, gap, n_conf, who):
    """Per day t, how many contacts lie within ``gap`` days (``n_conf``) and the last of them (``who``)."""
    for t in range(T):
        n_conf[t] = 0
        who[t] = -1
        for q in range(day.shape[0]):
            if abs(day[q] - t) < gap:
                n_conf[t] += 1
                who[t] = q


@parallel_kernel
def best_placements(u, cell_ok, price, cost_price, cost, limits, gap, codes, chunk, seg, target, replace_ok, neg_ok):
    """Per customer, the most valuable way to take one more contact on a targeted channel (fairness repair).

    Either an addition (within the customer's limit and spacing) or the
    replacement of one of its contacts on a channel with ``replace_ok`` by
    the new one (spacing without that contact). Most customers of a weekly
    plan have every slot taken (95% at 300k, ``weekly`` seed 3), so the
    cheapest way to raise a segment's call count is usually a replacement:
    the customer trades an e-mail for a call. New contacts are allowed where
    ``target[s, m]`` is finite; capacity and budget are left to the caller.
    The best new contact per day and the contacts each day conflicts with
    are computed once per customer, so each replacement is one pass over
    the days (first the addition, then slot by slot, day by day; the first
    largest value wins).
    Returns (code (n,) int64, -1 for none; value (n,): the change in reduced
    utility without fairness prices; slot (n,): the replaced slot, -1 for an
    addition; dcost (n,): the change in spend).
    """
    n, M, T = u.shape
    best_code = np.full(n, -1, dtype=np.int64)
    best_v = np.full(n, -np.inf)
    best_slot = np.full(n, -1, dtype=np.int64)
    dcost = np.zeros(n)
    n_chunks = (n + chunk - 1) // chunk
    slots = codes.shape[1]
    seg_open = _open_segments(target)
    S = target.shape[0]
    channels = np.zeros((S, M), dtype=np.int64)      # per segment, the targeted channels in order
    n_channels = np.zeros(S, dtype=np.int64)
    for s in range(S):
        for m in range(M):
            if target[s, m] < np.inf:
                channels[s, n_channels[s]] = m
                n_channels[s] += 1
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        day = np.empty(slots, dtype=np.int64)
        w_day = np.empty(T)
        m_day = np.empty(T, dtype=np.int64)
        n_conf = np.empty(T, dtype=np.int64)
        who = np.empty(T, dtype=np.int64)
        for i in range(lo, hi):
            s_i, lim = _customer_limit(i, seg, seg_open, limits)
            if lim <= 0:
                continue
            count = _contact_days(codes[i], T, gap, day)
            movable = count < lim
            for q in range(slots):
                if codes[i, q] >= 0 and replace_ok[codes[i, q] // T]:
                    movable = True
            if not movable:
                continue
            _best_per_day(u[i], cell_ok, price, cost_price, channels[s_i], n_channels[s_i], neg_ok, w_day, m_day)
            _day_conflicts(day, T, gap, n_conf, who)
            for q in range(-1, slots):          # -1: an addition; q: replace slot q
                old = 0.0
                old_cost = 0.0
                if q < 0:
                    if count >= lim:
                        continue
                else:
                    ca = codes[i, q]
                    if ca < 0 or not replace_ok[ca // T]:
                        continue
                    ma = ca // T
                    old = np.float64(u[i, ma, ca - ma * T]) - price[ma, ca - ma * T] - cost_price[ma]
                    old_cost = cost[ma]
                for t in range(T):
                    if m_day[t] < 0 or not (n_conf[t] == 0 or (n_conf[t] == 1 and who[t] == q)):
                        continue
                    v = w_day[t] - old
                    if v > best_v[i]:
                        best_v[i] = v
                        best_code[i] = m_day[t] * T + t
                        best_slot[i] = q
                        dcost[i] = cost[m_day[t]] - old_cost
    return best_code, best_v, best_slot, dcost


@kernel
def greedy_add(order, code, codes, leftover, cost, budget_left, limits, gap, T):
    """Add customer i's candidate contact ``code[i]``, i in ``order``, while it fits (updates ``codes``, ``leftover``).

    Returns (number added, budget left).
    """
    added = 0
    scalar_limit = limits.shape[0] == 1
    day = np.empty(codes.shape[1], dtype=np.int64)
    for pos in range(order.shape[0]):
        i = order[pos]
        cd = code[i]
        m = cd // T
        t = cd % T
        if leftover[m, t] <= 0 or cost[m] > budget_left:
            continue
        lim = limits[0] if scalar_limit else limits[i]
        if _contact_days(codes[i], T, gap, day) >= lim or not _day_free(day, -1, t, gap):
            continue
        for q in range(codes.shape[1]):
            if codes[i, q] < 0:
                codes[i, q] = cd
                break
        leftover[m, t] -= 1
        budget_left -= cost[m]
        added += 1
    return added, budget_left


@kernel
def code_usage(codes, cost, M, T):
    """Usage per cell (M*T,) and spend of a code array."""
    usage = np.zeros(M * T, dtype=np.int64)
    spend = 0.0
    n, slots = codes.shape
    for i in range(n):
        for q in range(slots):
            c = codes[i, q]
            if c >= 0:
                usage[c] += 1
                spend += cost[c // T]
    return usage, spend


@parallel_kernel
def relocations(codes, u, cell_ok, price, cost_price, cost, excess, T, gap, seg, shift, neg_ok, chunk):
    """For each contact in an overloaded cell, its best move to a cell with room (``drop_overloaded``'s regret).

    Returns (value (n, slots): the reduced utility there, -inf without one;
    cell (n, slots): its code, -1 without one). The customer's other contacts
    keep their days (spacing); cells with room are those with ``excess < 0``;
    a move keeps the customer's fairness shift and costs no more than the
    contact it replaces (so it never adds spend).
    """
    n, M, _ = u.shape
    slots = codes.shape[1]
    value = np.full((n, slots), -np.inf)
    where = np.full((n, slots), -1, dtype=np.int64)
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        day = np.empty(slots, dtype=np.int64)
        for i in range(lo, hi):
            over = False
            for q in range(slots):
                if codes[i, q] >= 0 and excess[codes[i, q]] > 0:
                    over = True
            if not over:
                continue
            _contact_days(codes[i], T, gap, day)
            s_i = seg[0] if seg.shape[0] == 1 else seg[i]
            for q in range(slots):
                if codes[i, q] < 0 or excess[codes[i, q]] <= 0:
                    continue
                ma = codes[i, q] // T
                for t in range(T):
                    if not _day_free(day, q, t, gap):
                        continue
                    for m in range(M):
                        x = np.float64(u[i, m, t])
                        if not cell_ok[m, t] or excess[m * T + t] >= 0 or not _allowed(x, m, neg_ok):
                            continue
                        if shift[s_i, m] != shift[s_i, ma] or cost[m] > cost[ma]:
                            continue      # moves keep the customer's fairness rows and add no spend
                        r = x - price[m, t] - cost_price[m] - shift[s_i, m]
                        if r > value[i, q]:
                            value[i, q] = r
                            where[i, q] = m * T + t
    return value, where


@kernel
def drop_overloaded(codes, u, price, cost_price, excess, T, seg, shift, alt_value, alt_cell, gap):
    """Clear every cell with ``excess[c] > 0`` of that many contacts, the cheapest to lose first.

    The cost of losing a contact is its reduced utility less what moving it
    to its best cell with room would keep (``alt_value``/``alt_cell`` from
    :func:`relocations`, used when positive; empty arrays: plain reduced
    utilities). The chosen contacts are then moved there or dropped by
    :func:`relocate_or_drop`, cell by cell in customer and slot order.
    Measured at 1M customers (``weekly`` seeds 1-8): 270 -> 167 iterations
    and 54.5 -> 38.6 s in all without fairness, 397 -> 197 and 61.9 -> 39.5 s
    with the fairness penalty (at 10 price points of one penalty solve the
    recovered plan was better at 8, worse at 2). Returns the number of
    contacts moved or dropped.
    """
    n, slots = codes.shape
    n_cells = excess.shape[0]
    count = np.zeros(n_cells, dtype=np.int64)
    for i in range(n):
        for q in range(slots):
            c = codes[i, q]
            if c >= 0 and excess[c] > 0:
                count[c] += 1
    start = np.zeros(n_cells + 1, dtype=np.int64)
    for c in range(n_cells):
        start[c + 1] = start[c] + count[c]
    total = start[n_cells]
    who = np.empty(total, dtype=np.int64)
    slot = np.empty(total, dtype=np.int64)
    red = np.empty(total)
    target = np.full(total, -1, dtype=np.int64)
    moves = alt_value.shape[0] == n
    fill = start[:n_cells].copy()
    for i in range(n):
        for q in range(slots):
            c = codes[i, q]
            if c >= 0 and excess[c] > 0:
                k = fill[c]
                who[k] = i
                slot[k] = q
                m = c // T
                t = c % T
                s_i = seg[0] if seg.shape[0] == 1 else seg[i]
                red[k] = np.float64(u[i, m, t]) - price[m, t] - cost_price[m] - shift[s_i, m]
                if moves and alt_value[i, q] > 0:
                    red[k] -= alt_value[i, q]
                    target[k] = alt_cell[i, q]
                fill[c] += 1
    chosen = np.zeros(total, dtype=np.bool_)
    for c in range(n_cells):
        if excess[c] <= 0:
            continue
        lo = start[c]
        hi = start[c + 1]
        k = min(excess[c], hi - lo)
        if k <= 0:
            continue
        # the k first in (cost, position) order, as a stable sort would give, via one
        # partition: everything below the k-th smallest value, then its ties by position
        thr = np.partition(red[lo:hi], k - 1)[k - 1]
        below = 0
        for e in range(lo, hi):
            if red[e] < thr:
                below += 1
        ties = k - below
        for e in range(lo, hi):
            if red[e] == thr and ties > 0:
                ties -= 1
                chosen[e] = True
            elif red[e] < thr:
                chosen[e] = True
    pick = np.flatnonzero(chosen)
    relocate_or_drop(codes, who[pick], slot[pick], target[pick], np.maximum(-excess, 0), T, gap)
    return pick.shape[0]


@kernel
def relocate_or_drop(codes, who, slot, target, room, T, gap):
    """In order, move contact (who, slot) to cell ``target`` if it has room and spacing allows, else drop it.

    ``codes`` rows are indexed by ``who``; ``room`` (per cell) is updated.
    """
    day = np.empty(codes.shape[1], dtype=np.int64)
    for e in range(who.shape[0]):
        i = who[e]
        to = target[e]
        if to >= 0 and room[to] > 0:
            _contact_days(codes[i], T, gap, day)
            if _day_free(day, slot[e], to % T, gap):
                codes[i, slot[e]] = to
                room[to] -= 1
                continue
        codes[i, slot[e]] = -1


@kernel
def paid_entries(codes, u, price, cost, T, seg, shift):
    """Contacts with positive cost: (customer, slot, (u - lambda) / cost, cost)."""
    n, slots = codes.shape
    total = 0
    for i in range(n):
        for q in range(slots):
            c = codes[i, q]
            if c >= 0 and cost[c // T] > 0:
                total += 1
    who = np.empty(total, dtype=np.int64)
    slot = np.empty(total, dtype=np.int64)
    ratio = np.empty(total)
    paid = np.empty(total)
    k = 0
    for i in range(n):
        for q in range(slots):
            c = codes[i, q]
            if c >= 0:
                m = c // T
                if cost[m] > 0:
                    t = c % T
                    who[k] = i
                    slot[k] = q
                    s_i = seg[0] if seg.shape[0] == 1 else seg[i]
                    ratio[k] = (np.float64(u[i, m, t]) - price[m, t] - shift[s_i, m]) / cost[m]
                    paid[k] = cost[m]
                    k += 1
    return who, slot, ratio, paid


@kernel
def _count_contacts(codes, channels, T):
    """Number of contacts (codes >= 0) on ``channels`` (bool (M,)) in a code array."""
    n, slots = codes.shape
    total = 0
    for i in range(n):
        for q in range(slots):
            if codes[i, q] >= 0 and channels[codes[i, q] // T]:
                total += 1
    return total


@parallel_kernel
def codes_value(codes, u, seg, S, T):
    """Value of a code array's contacts and their count per (segment, channel) (S, M).

    Summed per chunk of 65,536 customers, then over chunks in order (the same
    total on any number of threads). With an empty ``u`` (shape (0, M, T))
    only the counts are taken (value 0): no utility is read.
    """
    n, slots = codes.shape
    M = u.shape[1]
    read = u.shape[0] == n
    chunk = 65_536
    n_chunks = (n + chunk - 1) // chunk
    part = np.zeros(n_chunks)
    part_usage = np.zeros((n_chunks, S, M), dtype=np.int64)
    scalar_seg = seg.shape[0] == 1
    for b in prange(n_chunks):
        acc = 0.0
        for i in range(b * chunk, min(n, (b + 1) * chunk)):
            s_i = seg[0] if scalar_seg else seg[i]
            for q in range(slots):
                c = codes[i, q]
                if c >= 0:
                    m = c // T
                    if read:
                        acc += np.float64(u[i, m, c - m * T])
                    part_usage[b, s_i, m] += 1
        part[b] = acc
    value = 0.0
    usage = np.zeros((S, M), dtype=np.int64)
    for b in range(n_chunks):
        value += part[b]
        usage += part_usage[b]
    return value, usage


@kernel
def codes_to_indices(codes, u, T):
    """(k, 3) int64 (customer, channel, day) rows of a code array and their utilities (float64, same order)."""
    n, slots = codes.shape
    total = _count_contacts(codes, np.ones(u.shape[1], dtype=np.bool_), T)
    out = np.empty((total, 3), dtype=np.int64)
    value = np.empty(total)
    k = 0
    day = np.empty(slots, dtype=np.int64)
    for i in range(n):
        if _contact_days(codes[i], T, 1, day) == 0:
            continue
        # contacts of a customer in day order (codes hold at most a handful)
        for t in range(T):
            for q in range(slots):
                if day[q] == t:
                    m = codes[i, q] // T
                    out[k, 0] = i
                    out[k, 1] = m
                    out[k, 2] = t
                    value[k] = np.float64(u[i, m, t])
                    k += 1
    return out, value


@parallel_kernel
def best_swaps(u, cell_ok, price, cost_price, cost, gap, codes, leftover, budget_left, chunk, seg, shift):
    """Per customer, the best replacement of one contact by another.

    A swap (slot q: a -> b) keeps the customer's count, must respect spacing
    with the other contacts, needs leftover capacity in b's cell (unless it is
    a's cell) and a cost increase within the leftover budget, and must raise
    the plan's value (u_b > u_a). Ranked by the gain in reduced utility.
    Returns (slot, new code, gain) per customer (slot -1 for none).
    """
    n, M, T = u.shape
    slots = codes.shape[1]
    best_slot = np.full(n, -1, dtype=np.int64)
    best_code = np.full(n, -1, dtype=np.int64)
    best_gain = np.full(n, -np.inf)
    n_chunks = (n + chunk - 1) // chunk
    open_cell = _open_cells(cell_ok, leftover)
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        day = np.empty(slots, dtype=np.int64)
        for i in range(lo, hi):
            if _contact_days(codes[i], T, gap, day) == 0:
                continue
            s_i = seg[0] if seg.shape[0] == 1 else seg[i]
            for q in range(slots):
                ca = codes[i, q]
                if ca < 0:
                    continue
                ma = ca // T
                ta = day[q]
                ua = np.float64(u[i, ma, ta])
                ra = ua - price[ma, ta] - cost_price[ma] - shift[s_i, ma]
                for t in range(T):
                    if not _day_free(day, q, t, gap):
                        continue
                    for m in range(M):
                        cb = m * T + t
                        if cb == ca or not open_cell[m, t]:
                            continue
                        if cost[m] - cost[ma] > budget_left:
                            continue
                        ub = np.float64(u[i, m, t])
                        if not (ub > ua) or shift[s_i, m] != shift[s_i, ma]:
                            continue      # swaps keep the customer's fairness rows unchanged
                        gain = (ub - price[m, t] - cost_price[m] - shift[s_i, m]) - ra
                        if gain > best_gain[i]:
                            best_gain[i] = gain
                            best_slot[i] = q
                            best_code[i] = cb
    return best_slot, best_code, best_gain


@kernel
def apply_swaps(order, best_slot, best_code, codes, leftover, cost, budget_left, gap, T):
    """Apply swaps in ``order`` while they still fit; returns (number applied, budget left)."""
    applied = 0
    day = np.empty(codes.shape[1], dtype=np.int64)
    for pos in range(order.shape[0]):
        i = order[pos]
        q = best_slot[i]
        cb = best_code[i]
        ca = codes[i, q]
        if ca < 0:
            continue
        mb = cb // T
        tb = cb % T
        ma = ca // T
        ta = ca % T
        if leftover[mb, tb] <= 0:
            continue
        delta = cost[mb] - cost[ma]
        if delta > budget_left:
            continue
        _contact_days(codes[i], T, gap, day)
        if not _day_free(day, q, tb, gap):
            continue
        codes[i, q] = cb
        leftover[mb, tb] -= 1
        leftover[ma, ta] += 1
        budget_left -= delta
        applied += 1
    return applied, budget_left


@kernel(inline="always")
def _helps(row_val, delta, row_rhs, viol):
    """Does a move with row changes ``delta`` lower the total violation without raising any row's own?"""
    new = 0.0
    for r in range(row_val.shape[0]):
        before = max(0.0, row_val[r] - row_rhs[r])
        after = max(0.0, row_val[r] + delta[r] - row_rhs[r])
        if after > before + 1e-12:
            return False
        new += after
    return new < viol - 1e-12


@kernel(inline="always")
def _allowed_move(row_val, delta, row_rhs, viol, improve):
    """Repair: does the move help (:func:`_helps`)? Improvement: does every row still hold after it?"""
    if not improve:
        return _helps(row_val, delta, row_rhs, viol)
    for r in range(row_val.shape[0]):
        if row_val[r] + delta[r] - row_rhs[r] > 1e-9:
            return False
    return True


@kernel
def top_by_key(key, score, n_keys, k):
    """CSR lists per key of the (at most) ``k`` entries with the smallest ``score``, ascending (ties: by position).

    Returns (ptr (n_keys + 1,), idx). A counting sort by key, then a stable
    sort inside each key: what ``np.lexsort((score, key))`` cut to ``k`` per
    key gives, without sorting a million candidates whole (0.35 s at 1M).
    """
    n = key.shape[0]
    start = np.zeros(n_keys + 1, dtype=np.int64)
    for j in range(n):
        start[key[j] + 1] += 1
    for g in range(n_keys):
        start[g + 1] += start[g]
    grouped = np.empty(n, dtype=np.int64)
    fill = start[:-1].copy()
    for j in range(n):
        grouped[fill[key[j]]] = j
        fill[key[j]] += 1
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for g in range(n_keys):
        ptr[g + 1] = ptr[g] + min(k, start[g + 1] - start[g])
    idx = np.empty(ptr[n_keys], dtype=np.int64)
    for g in range(n_keys):
        members = grouped[start[g]:start[g + 1]]
        vals = score[members]
        if members.shape[0] > k > 0:        # only the k smallest (and ties with the k-th) need sorting
            kth = np.partition(vals, k - 1)[k - 1]
            members = members[vals <= kth]
            vals = score[members]
        order = np.argsort(vals, kind="mergesort")
        for j in range(ptr[g + 1] - ptr[g]):
            idx[ptr[g] + j] = members[order[j]]
    return ptr, idx


@kernel
def row_swaps(row_coef, row_channels, row_val, row_rhs, T, add_ptr, add_cust, add_val, add_slot, add_dcost, drop_ptr,
              drop_cust, drop_slot, drop_val, codes, leftover, cost, budget_left, improve=False):
    """Greedy cheapest moves that reduce the violation of the segment rows (fairness repair).

    A move gives a customer a contact in a cell, either into leftover
    capacity (and budget) or in place of another customer's contact in the
    same cell (a swap). Candidates come as CSR slices per (cell, segment)
    key (c*S + s, c = m*T + t): additions best value first (``add_*``; an
    addition with ``add_slot >= 0`` replaces the customer's contact in that
    slot, which is on no row's channel, and changes spend by ``add_dcost``),
    drops cheapest first (``drop_*``). Values are reduced utilities without
    fairness prices. The value lost by a move is ``-add`` (an addition) or
    ``drop - add`` (a swap); every step takes the cheapest move over all
    cells and segment pairs among those that lower the total violation
    ``sum_r max(0, row_val[r] - row_rhs[r])`` without raising any row's own
    violation (rows are not traded against each other). Stops when every
    row holds or no move helps. Updates codes, leftover (M, T) and row_val
    in place; returns (moves, budget left).

    ``improve=True`` (rows already hold): every step takes the most valuable
    move (loss < 0) that keeps every row satisfied, until none is left. This
    gives back what the repair over-did: a row with a positive price left
    slack by the repair costs about its price per contact of slack.
    """
    R, S = row_coef.shape
    n_cells = (add_ptr.shape[0] - 1) // S
    a_pos = add_ptr[:-1].copy()
    d_pos = drop_ptr[:-1].copy()
    delta = np.zeros(R)
    best_delta = np.zeros(R)
    moves = 0
    viol = 0.0
    for r in range(R):
        viol += max(0.0, row_val[r] - row_rhs[r])
    while viol > 1e-9 or improve:
        best_loss = -1e-9 if improve else np.inf
        best_add = -1
        best_drop = -1
        for c in range(n_cells):
            m = c // T
            t = c % T
            for s_add in range(S):
                j = a_pos[c * S + s_add]
                if j >= add_ptr[c * S + s_add + 1]:
                    continue
                if leftover[m, t] > 0 and add_dcost[j] <= budget_left:
                    loss = -add_val[j]
                    if loss < best_loss:
                        for r in range(R):
                            delta[r] = row_coef[r, s_add] if row_channels[r, m] else 0.0
                        if _allowed_move(row_val, delta, row_rhs, viol, improve):
                            best_loss, best_add, best_drop = loss, c * S + s_add, -1
                            best_delta[:] = delta
                for s_drop in range(S):      # a swap may help where an addition would not
                    p = d_pos[c * S + s_drop]
                    if s_drop == s_add or p >= drop_ptr[c * S + s_drop + 1]:
                        continue
                    loss = drop_val[p] - add_val[j]
                    if loss >= best_loss:
                        continue
                    for r in range(R):
                        delta[r] = (row_coef[r, s_add] - row_coef[r, s_drop]) if row_channels[r, m] else 0.0
                    if _allowed_move(row_val, delta, row_rhs, viol, improve):
                        best_loss, best_add, best_drop = loss, c * S + s_add, c * S + s_drop
                        best_delta[:] = delta
        if best_add < 0:
            break
        c = best_add // S
        m = c // T
        t = c % T
        j = a_pos[best_add]
        i = add_cust[j]
        q = add_slot[j]
        if q >= 0:                             # a replacement frees the old contact's cell
            ca = codes[i, q]
            leftover[ca // T, ca % T] += 1
            codes[i, q] = c
        else:
            for q in range(codes.shape[1]):
                if codes[i, q] < 0:
                    codes[i, q] = c
                    break
        a_pos[best_add] += 1
        budget_left -= add_dcost[j]
        if best_drop >= 0:                     # the dropped contact was in the same cell
            p = d_pos[best_drop]
            codes[drop_cust[p], drop_slot[p]] = -1
            d_pos[best_drop] += 1
            budget_left += cost[m]
        else:
            leftover[m, t] -= 1
        viol = 0.0
        for r in range(R):
            row_val[r] += best_delta[r]
            viol += max(0.0, row_val[r] - row_rhs[r])
        moves += 1
    return moves, budget_left


@parallel_kernel
def plan_entries(codes, u, price, cost_price, shift, seg, T, channels):
    """The plan's contacts on ``channels`` (bool (M,)) as flat arrays (customer, slot, channel, day, segment, reduced utility).

    Same rows, in the same order (customer, then slot), as ``np.nonzero(codes >= 0)`` (on all channels);
    ``seg`` has length n or 1. Two parallel passes over chunks of customers (count, then
    fill from each chunk's offset). NumPy twin: ``solvers.fairness_repair.entries_numpy``.
    """
    n, slots = codes.shape
    chunk = 4096
    n_chunks = (n + chunk - 1) // chunk
    counts = np.zeros(n_chunks + 1, dtype=np.int64)
    for c in prange(n_chunks):
        counts[c + 1] = _count_contacts(codes[c * chunk:min(n, (c + 1) * chunk)], channels, T)
    offset = np.cumsum(counts)
    k = offset[n_chunks]
    rows = np.empty(k, dtype=np.int64)
    slot = np.empty(k, dtype=np.int64)
    m = np.empty(k, dtype=np.int64)
    t = np.empty(k, dtype=np.int64)
    sg = np.empty(k, dtype=np.int64)
    reduced = np.empty(k)
    scalar_seg = seg.shape[0] == 1
    for c in prange(n_chunks):
        j = offset[c]
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            s_i = 0 if scalar_seg else seg[i]
            for q in range(slots):
                code = codes[i, q]
                if code >= 0 and channels[code // T]:
                    mm, tt = code // T, code % T
                    rows[j], slot[j], m[j], t[j], sg[j] = i, q, mm, tt, s_i
                    reduced[j] = np.float64(u[i, mm, tt]) - price[mm, tt] - cost_price[mm] - shift[s_i, mm]
                    j += 1
    return rows, slot, m, t, sg, reduced


@parallel_kernel
def group_customers(codes, group, T, chunk):
    """Mask (n,) of the customers whose contacts in ``codes`` (n, slots) include one on a ``group`` channel."""
    n, slots = codes.shape
    in_group = np.empty(group.shape[0] * T, dtype=np.bool_)
    for code in range(in_group.shape[0]):
        in_group[code] = group[code // T]
    mask = np.zeros(n, dtype=np.bool_)
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            for q in range(slots):
                code = codes[i, q]
                if code >= 0 and in_group[code]:
                    mask[i] = True
                    break
    return mask


@parallel_kernel
def group_patterns(u, cell_ok, price, cost_price, limits, gap, chunk, seg, shift, neg_ok, group, who, value, codes,
                   cap, plan):
    """For each customer ``who[k]``, its best pattern with exactly g contacts on the ``group`` channels, g = 0..slots.

    Same reduced utilities as :func:`evaluate_dual` (``shift`` without the
    rows' prices). Fills ``value`` (k, slots + 1), -inf where no pattern has g
    group contacts, and ``codes`` (k, slots + 1, slots) int16 (-1 = empty),
    row k for customer ``who[k]``. The customer's optimum when the group's
    contacts gain a bonus theta is then max_g value[g] + g * theta, which lets
    :meth:`solvers.dual_data.DualData.settled` price the segment rows exactly.
    Per day the best non-group channel counts only when its reduced utility
    is > 0 (as in the plain DP); a group contact may be < 0 (a bonus can lift it).

    Also returns what these customers add to an evaluation at bonus ``cap[s]``
    whose choices are ``plan`` (n, slots): per-chunk sums of their optima
    there, their usage (M, T) and segment usage (S, M) — what
    :meth:`solvers.dual_data.DualData.settled` takes off that evaluation.
    """
    n, M, T = u.shape
    S = shift.shape[0]
    k_all = who.shape[0]
    slots = codes.shape[2]
    G = slots
    n_chunks = (k_all + chunk - 1) // chunk
    scalar_limit, scalar_seg = limits.shape[0] == 1, seg.shape[0] == 1
    P, check = price_table(cell_ok, price, cost_price, shift, neg_ok)
    part_sum = np.zeros(n_chunks)
    part_usage = np.zeros((n_chunks, M, T), dtype=np.int64)
    part_seg = np.zeros((n_chunks, S, M), dtype=np.int64)
    for c in prange(n_chunks):
        wn = np.empty(T)
        wg = np.empty(T)
        cn = np.empty(T, dtype=np.int64)
        cg = np.empty(T, dtype=np.int64)
        V = np.empty((T + 1, T + 1, G + 1))
        ch = np.zeros((T, T + 1, G + 1), dtype=np.int8)
        for kk in range(c * chunk, min(k_all, (c + 1) * chunk)):
            i = who[kk]
            lim = limits[0] if scalar_limit else limits[i]
            s_i = seg[0] if scalar_seg else seg[i]
            for q in range(slots):
                code = plan[i, q]
                if code >= 0:
                    part_usage[c, code // T, code % T] += 1
                    part_seg[c, s_i, code // T] += 1
            K = min(lim, T)
            for g in range(G + 1):
                value[kk, g] = -np.inf      # codes[kk, g] is only written (and read) where value[kk, g] is finite
            value[kk, 0] = 0.0
            if K <= 0:
                for q in range(slots):
                    codes[kk, 0, q] = -1
                continue
            Gk = min(G, K)
            for t in range(T):
                bn = 0.0
                bg = -np.inf
                cn[t] = -1
                cg[t] = -1
                for m in range(M):
                    x = np.float64(u[i, m, t])
                    r = x - P[s_i, m, t]
                    if group[m]:
                        if r > bg and (r > 0.0 and not check or _allowed(x, m, neg_ok)):
                            bg = r
                            cg[t] = m
                    elif r > bn and (not check or _allowed(x, m, neg_ok)):
                        bn = r
                        cn[t] = m
                wn[t] = bn if cn[t] >= 0 else -np.inf
                wg[t] = bg
            for k in range(K + 1):
                V[0, k, 0] = 0.0
                for g in range(1, Gk + 1):
                    V[0, k, g] = -np.inf
            for t in range(T):
                prev = t - gap + 1
                if prev < 0:
                    prev = 0
                for g in range(Gk + 1):
                    V[t + 1, 0, g] = V[t, 0, g]
                for k in range(1, K + 1):
                    for g in range(Gk + 1):
                        best = V[t, k, g]
                        how = 0
                        take = V[prev, k - 1, g] + wn[t]
                        if take > best:
                            best = take
                            how = 1
                        if g > 0:
                            take = V[prev, k - 1, g - 1] + wg[t]
                            if take > best:
                                best = take
                                how = 2
                        V[t + 1, k, g] = best
                        ch[t, k, g] = how
            for g in range(Gk + 1):
                v = V[T, K, g]
                value[kk, g] = v
                if v == -np.inf:
                    continue
                pos = T
                k = K
                gg = g
                q = 0
                while pos > 0 and k > 0:
                    t = pos - 1
                    how = ch[t, k, gg]
                    if how == 0:
                        pos = t
                        continue
                    if q < slots:
                        codes[kk, g, q] = (cn[t] if how == 1 else cg[t]) * T + t
                    q += 1
                    if how == 2:
                        gg -= 1
                    k -= 1
                    pos = t - gap + 1
                    if pos < 0:
                        pos = 0
                while q < slots:
                    codes[kk, g, q] = -1
                    q += 1
            best = value[kk, 0]
            for g in range(1, G + 1):
                if value[kk, g] + g * cap[s_i] > best:
                    best = value[kk, g] + g * cap[s_i]
            part_sum[c] += best
    usage, seg_usage = _sum_parts(part_usage, part_seg)
    return part_sum, usage, seg_usage


@parallel_kernel
def pattern_values(u, price, cost_price, shift, seg, who, pcodes, value, chunk):
    """Re-price the patterns ``pcodes`` (k, G + 1, slots) of customers ``who`` into ``value`` where it is finite."""
    T = u.shape[2]
    k_all, G1, slots = pcodes.shape
    scalar_seg = seg.shape[0] == 1
    n_chunks = (k_all + chunk - 1) // chunk
    for c in prange(n_chunks):
        for kk in range(c * chunk, min(k_all, (c + 1) * chunk)):
            i = who[kk]
            s_i = seg[0] if scalar_seg else seg[kk]
            for g in range(G1):
                if value[kk, g] == -np.inf:
                    continue
                v = 0.0
                for q in range(slots):
                    code = pcodes[kk, g, q]
                    if code >= 0:
                        m = code // T
                        t = code - m * T
                        v += np.float64(u[i, m, t]) - (price[m, t] + cost_price[m] + shift[s_i, m])
                value[kk, g] = v


@kernel
def _hull_next(v, a):
    """From hull vertex ``a`` of the points (g, v[g]), the next upper-hull vertex (-1 at the end)."""
    G = v.shape[0] - 1
    best = -1
    slope = -np.inf
    for b in range(a + 1, G + 1):
        if v[b] == -np.inf:
            continue
        s = (v[b] - v[a]) / (b - a)
        if s >= slope:          # ties: the farther vertex (one breakpoint for the whole run)
            slope = s
            best = b
    return best


@parallel_kernel
def group_breakpoints(value, seg, S, lo, hi, chunk):
    """The group-contact breakpoints of every row of ``value``, split by a window [lo[s], hi[s]] per segment.

    A customer moves from hull vertex a to b (b - a more group contacts)
    when the bonus theta exceeds the breakpoint (v[a] - v[b]) / (b - a).
    Returns (per segment: group contacts taken at theta = lo[s] from
    breakpoints below the window; breakpoints inside the window as flat
    arrays (breakpoint, weight, segment, row, from vertex a)).
    """
    n = value.shape[0]
    scalar_seg = seg.shape[0] == 1
    n_chunks = (n + chunk - 1) // chunk
    part_base = np.zeros((n_chunks, S))
    part_count = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            s_i = seg[0] if scalar_seg else seg[i]
            a = 0
            b = _hull_next(value[i], a)
            while b >= 0:
                bp = (value[i, a] - value[i, b]) / (b - a)
                if bp < lo[s_i]:
                    part_base[c, s_i] += b - a
                elif bp <= hi[s_i]:
                    part_count[c] += 1
                a = b
                b = _hull_next(value[i], a)
    start = np.zeros(n_chunks + 1, dtype=np.int64)
    for c in range(n_chunks):
        start[c + 1] = start[c] + part_count[c]
    bps = np.empty(start[n_chunks])
    wts = np.empty(start[n_chunks])
    sgs = np.empty(start[n_chunks], dtype=np.int64)
    who = np.empty(start[n_chunks], dtype=np.int64)
    frm = np.empty(start[n_chunks], dtype=np.int64)
    for c in prange(n_chunks):
        j = start[c]
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            s_i = seg[0] if scalar_seg else seg[i]
            a = 0
            b = _hull_next(value[i], a)
            while b >= 0:
                bp = (value[i, a] - value[i, b]) / (b - a)
                if lo[s_i] <= bp <= hi[s_i]:
                    bps[j] = bp
                    wts[j] = b - a
                    sgs[j] = s_i
                    who[j] = i
                    frm[j] = a
                    j += 1
                a = b
                b = _hull_next(value[i], a)
    base = np.zeros(S)
    for c in range(n_chunks):
        base += part_base[c]
    return base, bps, wts, sgs, who, frm


@parallel_kernel
def settle_patterns(value, pcodes, seg, theta, M, T, chunk, codes):
    """Each row's optimum when its segment's group contacts gain ``theta[s]``.

    Picks g maximising value[g] + g * theta (the smallest g on ties, as the
    DP takes a day only when strictly better), writes its pattern into
    ``codes`` (rows, slots) and returns (chunk sums of the optima, usage (M, T),
    segment usage (S, M)) like :func:`evaluate_dual`.
    """
    n, G1 = value.shape
    S = theta.shape[0]
    slots = codes.shape[1]
    scalar_seg = seg.shape[0] == 1
    n_chunks = (n + chunk - 1) // chunk
    part_sum = np.zeros(n_chunks)
    part_usage = np.zeros((n_chunks, M, T), dtype=np.int64)
    part_seg = np.zeros((n_chunks, S, M), dtype=np.int64)
    for c in prange(n_chunks):
        acc = 0.0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            s_i = seg[0] if scalar_seg else seg[i]
            th = theta[s_i]
            best = value[i, 0]
            g_best = 0
            for g in range(1, G1):
                x = value[i, g] + g * th
                if x > best:
                    best = x
                    g_best = g
            acc += best
            for q in range(slots):
                code = pcodes[i, g_best, q]
                codes[i, q] = code
                if code >= 0:
                    m = code // T
                    part_usage[c, m, code - m * T] += 1
                    part_seg[c, s_i, m] += 1
        part_sum[c] = acc
    usage, seg_usage = _sum_parts(part_usage, part_seg)
    return part_sum, usage, seg_usage


@kernel(inline="always")
def _in_pattern(code, pattern):
    for q in range(pattern.shape[0]):
        if pattern[q] == code:
            return True
    return False


@kernel(inline="always")
def _pattern_value(u_i, P_i, pattern, T):
    """(utility, reduced utility, contacts) of a pattern of codes for one customer (``P_i`` its price table)."""
    val = 0.0
    red = 0.0
    count = 0
    for q in range(pattern.shape[0]):
        code = pattern[q]
        if code >= 0:
            m = code // T
            x = np.float64(u_i[m, code - m * T])
            val += x
            red += x - P_i[m, code - m * T]
            count += 1
    return val, red, count


@parallel_kernel
def master_options(base, alts, u, P, seg, counted, T, chunk):
    """Per customer, the alternative pattern (a row of ``alts[a]``) worth most in reduced terms against ``base``.

    ``base`` (n, slots) is a feasible plan, ``alts`` (A, n, slots) the
    customers' choices at A price points, ``P`` the total price table of
    :func:`price_table`. A pattern counts as different when its set of
    codes differs from the base's. Returns (alternative index per customer
    or -1 when every alternative equals the base, its gain in utility,
    whether it changes the count on a ``counted`` channel) — the columns of
    :mod:`solvers.master`.
    """
    A, n, slots = alts.shape
    M = u.shape[1]
    scalar_seg = seg.shape[0] == 1
    pick = np.full(n, -1, dtype=np.int64)
    gain = np.zeros(n)
    moves_rows = np.zeros(n, dtype=np.bool_)
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        per_channel = np.zeros(M, dtype=np.int64)
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            s_i = seg[0] if scalar_seg else seg[i]
            b = base[i]
            b_val, b_red, b_n = _pattern_value(u[i], P[s_i], b, T)
            best = -np.inf
            for a in range(A):
                p = alts[a, i]
                same = True
                p_n = 0
                for q in range(slots):
                    if p[q] >= 0:
                        p_n += 1
                        if not _in_pattern(p[q], b):
                            same = False
                if same and p_n == b_n:
                    continue
                val, r, _ = _pattern_value(u[i], P[s_i], p, T)
                if r - b_red > best:
                    best = r - b_red
                    pick[i] = a
                    gain[i] = val - b_val
            if pick[i] < 0:
                continue
            for m in range(M):
                per_channel[m] = 0
            p = alts[pick[i], i]
            for q in range(slots):
                if p[q] >= 0:
                    per_channel[p[q] // T] += 1
                if b[q] >= 0:
                    per_channel[b[q] // T] -= 1
            for m in range(M):
                if counted[m] and per_channel[m] != 0:
                    moves_rows[i] = True
    return pick, gain, moves_rows


@parallel_kernel
def master_keys(base, alts, pick, cust):
    """Canonical change of each chosen column: (removed codes, added codes), each sorted, -1 padded: (k, 2 * slots)."""
    slots = base.shape[1]
    k = cust.shape[0]
    keys = np.full((k, 2 * slots), -1, dtype=np.int32)
    for j in prange(k):
        i = cust[j]
        b = base[i]
        p = alts[pick[i], i]
        nr = 0
        na = 0
        for q in range(slots):
            if b[q] >= 0 and not _in_pattern(b[q], p):
                keys[j, nr] = b[q]
                nr += 1
            if p[q] >= 0 and not _in_pattern(p[q], b):
                keys[j, slots + na] = p[q]
                na += 1
        keys[j, :nr].sort()
        keys[j, slots:slots + na].sort()
    return keys
