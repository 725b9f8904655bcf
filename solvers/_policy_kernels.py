"""numba kernels of the Lagrangian decision policy.

Plain loops over decisions; the batch kernels run in parallel over chunks of
rows (``prange``). Scores may be float32 (reduced scores are computed in
float64). The NumPy twins are in :mod:`formulations.policy`
(``policy_weights``, ``draw_actions``, ``dual_point``, ``online_dual_ascent``)
and the tests compare both.

Conventions shared with the twins:

* action 0 (no contact) is always allowed; action a > 0 is allowed when the
  mask allows it (or there is no mask) and its score is not ``-inf``;
* a row is *missing* when an allowed action has a NaN or ``+inf`` score or
  column 0 is not finite; it then takes the fallback distribution;
* temperature 0 is the argmax policy, ties to the lowest action index;
* the draw is the inverse CDF: the first action whose running sum of
  unnormalised weights exceeds ``uniform * total`` (sums in action order).
"""

from __future__ import annotations

import math

import numpy as np

from solvers._jit import kernel, parallel_kernel, prange

REASON_POLICY = 0
REASON_MISSING = 1
REASON_STALE = 2
NEG_INF = -np.inf


@kernel
def _fallback_row(scores, eligible, has_mask, i, fallback, uniform, weights):
    """Draw from the fallback distribution restricted to the allowed actions; (action, propensity)."""
    a1 = scores.shape[1]
    total = 0.0
    for a in range(a1):
        w = fallback[a]
        if a > 0:
            if has_mask and not eligible[i, a]:
                w = 0.0
            elif scores[i, a] == NEG_INF:
                w = 0.0
        weights[a] = w
        total += w
    if total <= 0.0:
        return 0, 1.0
    target = uniform * total
    acc = 0.0
    last = 0
    for a in range(a1):
        w = weights[a]
        if w > 0.0:
            acc += w
            last = a
            if acc > target:
                return a, w / total
    return last, weights[last] / total


@kernel
def decide_row(scores, eligible, has_mask, i, price_cost, temperature, uniform, fallback, force_fallback,
               weights):
    """One decision: (action, propensity, reason). ``weights`` is scratch space of length A+1."""
    a1 = scores.shape[1]
    if force_fallback:
        a, p = _fallback_row(scores, eligible, has_mask, i, fallback, uniform, weights)
        return a, p, REASON_STALE
    best = NEG_INF
    best_a = 0
    missing = False
    for a in range(a1):
        x = np.float64(scores[i, a])
        if a == 0:
            if not math.isfinite(x):
                missing = True
                break
        else:
            if has_mask and not eligible[i, a]:
                weights[a] = NEG_INF
                continue
            if x == NEG_INF:
                weights[a] = NEG_INF
                continue
            if not math.isfinite(x):
                missing = True
                break
        r = x - price_cost[a]
        weights[a] = r
        if r > best:
            best = r
            best_a = a
    if missing:
        a, p = _fallback_row(scores, eligible, has_mask, i, fallback, uniform, weights)
        return a, p, REASON_MISSING
    if temperature == 0.0:
        return best_a, 1.0, REASON_POLICY
    inv = 1.0 / temperature
    total = 0.0
    for a in range(a1):
        r = weights[a]
        if r == NEG_INF:
            weights[a] = 0.0
        else:
            w = math.exp((r - best) * inv)
            weights[a] = w
            total += w
    target = uniform * total
    acc = 0.0
    last = best_a
    for a in range(a1):
        w = weights[a]
        if w > 0.0:
            acc += w
            last = a
            if acc > target:
                return a, w / total, REASON_POLICY
    return last, weights[last] / total, REASON_POLICY


@kernel
def _expected_use_row(weights, costs, out):
    """Add sum_a pi_a A_a (from the normalised weights of a policy row) to ``out`` (k,)."""
    k, a1 = costs.shape
    total = 0.0
    for a in range(a1):
        total += weights[a]
    for j in range(k):
        acc = 0.0
        for a in range(a1):
            acc += weights[a] * costs[j, a]
        out[j] += acc / total


@kernel
def decide_serial(scores, eligible, has_mask, price_cost, temperature, uniforms, fallback, force_fallback,
                  actions, propensities, reasons):
    """Decide every row in order (no threads: the low-latency path for small batches)."""
    n, a1 = scores.shape
    weights = np.empty(a1)
    for i in range(n):
        a, p, r = decide_row(scores, eligible, has_mask, i, price_cost, temperature, uniforms[i], fallback,
                             force_fallback, weights)
        actions[i] = a
        propensities[i] = p
        reasons[i] = r


@parallel_kernel
def decide_parallel(scores, eligible, has_mask, price_cost, temperature, uniforms, fallback, force_fallback,
                    actions, propensities, reasons, chunk):
    """Decide every row, in parallel over chunks of ``chunk`` rows."""
    n, a1 = scores.shape
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        weights = np.empty(a1)
        for i in range(lo, hi):
            a, p, r = decide_row(scores, eligible, has_mask, i, price_cost, temperature, uniforms[i], fallback,
                                 force_fallback, weights)
            actions[i] = a
            propensities[i] = p
            reasons[i] = r


@kernel
def _evaluate_rows(scores, eligible, has_mask, costs, price_cost, temperature, lo, hi, r, w, use):
    """Rows lo..hi-1 at fixed prices: (sum phi, sum primal); adds the expected use to ``use`` (k,).

    phi = tau log sum_a m_a exp(r_a / tau) (max_a r_a at tau = 0), primal =
    u^T pi + tau H(pi). ``r`` and ``w`` are scratch space of length A+1. Rows must not
    be missing (the wrapper removes them).
    """
    a1 = scores.shape[1]
    k = costs.shape[0]
    acc_phi = 0.0
    acc_primal = 0.0
    for i in range(lo, hi):
        best = NEG_INF
        best_a = 0
        for a in range(a1):
            if a > 0 and ((has_mask and not eligible[i, a]) or scores[i, a] == NEG_INF):
                r[a] = NEG_INF
                continue
            x = np.float64(scores[i, a]) - price_cost[a]
            r[a] = x
            if x > best:
                best = x
                best_a = a
        if temperature == 0.0:
            acc_phi += best
            acc_primal += np.float64(scores[i, best_a])
            for j in range(k):
                use[j] += costs[j, best_a]
            continue
        inv = 1.0 / temperature
        total = 0.0
        for a in range(a1):
            if r[a] != NEG_INF:
                z = (r[a] - best) * inv
                r[a] = z                      # r now holds z = (r - best) / tau ...
                w[a] = math.exp(z)            # ... and w the unnormalised weight
                total += w[a]
        log_total = math.log(total)
        value = 0.0
        entropy = 0.0
        for a in range(a1):
            z = r[a]
            if z == NEG_INF:
                continue
            p = w[a] / total
            if p > 0.0:
                value += p * np.float64(scores[i, a])
                entropy -= p * (z - log_total)
                for j in range(k):
                    use[j] += p * costs[j, a]
        acc_phi += best + temperature * log_total
        acc_primal += value + temperature * entropy
    return acc_phi, acc_primal


@kernel
def evaluate_prices_serial(scores, eligible, has_mask, costs, price_cost, temperature):
    """Sums over all rows: (sum phi, sum expected use (k,), sum primal), one thread."""
    r = np.empty(scores.shape[1])
    w = np.empty(scores.shape[1])
    use = np.zeros(costs.shape[0])
    phi, primal = _evaluate_rows(scores, eligible, has_mask, costs, price_cost, temperature, 0, scores.shape[0],
                                 r, w, use)
    return phi, use, primal


@parallel_kernel
def evaluate_prices(scores, eligible, has_mask, costs, price_cost, temperature, chunk):
    """Sums over all rows: (sum phi, sum expected use (k,), sum primal), parallel over chunks."""
    n, a1 = scores.shape
    k = costs.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    part_phi = np.zeros(n_chunks)
    part_primal = np.zeros(n_chunks)
    part_use = np.zeros((n_chunks, k))
    for c in prange(n_chunks):
        lo = c * chunk
        hi = min(n, lo + chunk)
        r = np.empty(a1)
        w = np.empty(a1)
        use = np.zeros(k)
        phi, primal = _evaluate_rows(scores, eligible, has_mask, costs, price_cost, temperature, lo, hi, r, w, use)
        part_phi[c] = phi
        part_primal[c] = primal
        for j in range(k):
            part_use[c, j] = use[j]
    total_use = np.zeros(k)
    for c in range(n_chunks):
        for j in range(k):
            total_use[j] += part_use[c, j]
    return part_phi.sum(), total_use, part_primal.sum()


@kernel
def online_stream(scores, eligible, has_mask, costs, budget, start_prices, steps, temperature, uniforms,
                  fallback, realised, record_every, actions, propensities, reasons, price_path, use_path):
    """Sequential decisions with projected dual ascent after every event.

    ``lambda <- max(0, lambda + steps * (g - budget))`` with g the realised use
    of the chosen action (``realised``) or the expected use under the policy.
    Fills the per-event outputs; every ``record_every`` events stores the
    prices and the cumulative realised use in ``price_path`` / ``use_path``.
    Returns the final prices.
    """
    n, a1 = scores.shape
    k = costs.shape[0]
    lam = start_prices.copy()
    price_cost = np.zeros(a1)
    weights = np.empty(a1)
    use = np.zeros(k)
    cum = np.zeros(k)
    rec = 0
    for t in range(n):
        for a in range(a1):
            acc = 0.0
            for j in range(k):
                acc += lam[j] * costs[j, a]
            price_cost[a] = acc
        a, p, reason = decide_row(scores, eligible, has_mask, t, price_cost, temperature, uniforms[t], fallback,
                                  False, weights)
        actions[t] = a
        propensities[t] = p
        reasons[t] = reason
        for j in range(k):
            cum[j] += costs[j, a]
        if realised or reason != REASON_POLICY or temperature == 0.0:
            for j in range(k):
                use[j] = costs[j, a]
        else:
            for j in range(k):
                use[j] = 0.0
            _expected_use_row(weights, costs, use)
        for j in range(k):
            x = lam[j] + steps[j] * (use[j] - budget[j])
            lam[j] = x if x > 0.0 else 0.0
        if (t + 1) % record_every == 0 and rec < price_path.shape[0]:
            for j in range(k):
                price_path[rec, j] = lam[j]
                use_path[rec, j] = cum[j]
            rec += 1
    return lam
