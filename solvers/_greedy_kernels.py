"""numba kernel of the greedy baseline, with its plain Python twin."""

from __future__ import annotations

import numpy as np

from solvers._jit import kernel


def _fits(taken_row, day, gap, n_days):
    lo = max(0, day - gap + 1)
    hi = min(n_days, day + gap)
    for s in range(lo, hi):
        if taken_row[s]:
            return False
    return True


@kernel
def greedy_select(order, customer, channel, day, cost, remaining_capacity, budget, limits, gap, n_customers, n_days):
    """Best-first selection: walk candidates in ``order``, keep those that still fit.

    ``remaining_capacity`` (M, T) int64 is updated in place. Returns a bool
    array over candidates and the spend.
    """
    k = order.shape[0]
    selected = np.zeros(customer.shape[0], dtype=np.bool_)
    count = np.zeros(n_customers, dtype=np.int64)
    taken = np.zeros((n_customers, n_days), dtype=np.bool_)
    spend = 0.0
    for pos in range(k):
        j = order[pos]
        i = customer[j]
        m = channel[j]
        t = day[j]
        if count[i] >= limits[i]:
            continue
        if remaining_capacity[m, t] <= 0:
            continue
        c = cost[m]
        if spend + c > budget:
            continue
        ok = True
        lo = max(0, t - gap + 1)
        hi = min(n_days, t + gap)
        for s in range(lo, hi):
            if taken[i, s]:
                ok = False
                break
        if not ok:
            continue
        selected[j] = True
        count[i] += 1
        taken[i, t] = True
        remaining_capacity[m, t] -= 1
        spend += c
    return selected, spend


def greedy_select_py(order, customer, channel, day, cost, remaining_capacity, budget, limits, gap, n_customers, n_days):
    """Plain Python twin of :func:`greedy_select` (tests, small inputs)."""
    selected = np.zeros(customer.shape[0], dtype=bool)
    count = np.zeros(n_customers, dtype=np.int64)
    taken = np.zeros((n_customers, n_days), dtype=bool)
    spend = 0.0
    for j in order:
        i, m, t = customer[j], channel[j], day[j]
        if count[i] >= limits[i] or remaining_capacity[m, t] <= 0 or spend + cost[m] > budget:
            continue
        if not _fits(taken[i], t, gap, n_days):
            continue
        selected[j] = True
        count[i] += 1
        taken[i, t] = True
        remaining_capacity[m, t] -= 1
        spend += cost[m]
    return selected, spend
