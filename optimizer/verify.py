"""Independent feasibility check of a plan.

:func:`verify` re-derives every constraint of the weekly plan directly from
the problem data (it does not reuse the model builders), so it can catch a
wrong plan from any backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formulations.assignment import PlanningProblem

_TOL = 1e-9
_MAX_LISTED = 10


@dataclass
class VerificationReport:
    """Result of :func:`verify`.

    Attributes
    ----------
    ok : bool
        True when no constraint is violated.
    violations : list of str
        One line per violation (at most ten per kind are listed, then a count).
    objective : float
        Value of the plan recomputed from the utilities.
    spend : float
    contacts : int
    """

    ok: bool
    violations: list[str] = field(default_factory=list)
    objective: float = 0.0
    spend: float = 0.0
    contacts: int = 0

    def __bool__(self) -> bool:
        return self.ok


def verify(problem: PlanningProblem, plan) -> VerificationReport:
    """Check a plan (a :class:`~optimizer.plan.Plan` or a (k, 3) index array) against the problem."""
    indices = plan.assignment_indices if hasattr(plan, "assignment_indices") else plan
    out: list[str] = []
    n, M, T = problem.shape

    def add(kind: str, lines: list[str]) -> None:
        out.extend(f"{kind}: {line}" for line in lines[:_MAX_LISTED])
        if len(lines) > _MAX_LISTED:
            out.append(f"{kind}: ... and {len(lines) - _MAX_LISTED} more")

    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.reshape(0, 3)
    if idx.ndim != 2 or idx.shape[1] != 3 or (idx.size and idx.dtype.kind not in "iu"):
        return VerificationReport(False, [f"shape: expected an integer (k, 3) array, got {idx.dtype} {idx.shape}"])
    idx = idx.astype(np.int64)
    inside = (idx >= 0).all(axis=1) & (idx[:, 0] < n) & (idx[:, 1] < M) & (idx[:, 2] < T)
    if not inside.all():
        bad = idx[~inside]
        add("index", [f"row {tuple(int(v) for v in r)} is outside ({n}, {M}, {T})" for r in bad])
        return VerificationReport(False, out)

    chan, day = problem.channel_names, problem.day_labels
    ids = problem.customer_ids

    # duplicates
    key = (idx[:, 0] * M + idx[:, 1]) * T + idx[:, 2]
    uniq, counts = np.unique(key, return_counts=True)
    dups = uniq[counts > 1]
    if dups.size:
        add("duplicate", [f"customer {ids[k // (M * T)]!r} {chan[(k // T) % M]} {day[k % T]} listed more than once"
                          for k in dups.tolist()])

    # eligibility / consent
    u = problem.utility[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float64)
    bad = ~np.isfinite(u)
    if bad.any():
        add("eligibility", [f"customer {ids[i]!r} may not be contacted by {chan[m]} on {day[t]}"
                            for i, m, t in idx[bad].tolist()])

    # capacity
    used = np.zeros((M, T), dtype=np.int64)
    np.add.at(used, (idx[:, 1], idx[:, 2]), 1)
    over = np.argwhere(used > problem.capacity + _TOL)
    if over.size:
        add("capacity", [f"{chan[m]} on {day[t]} has {used[m, t]} contacts > capacity {problem.capacity[m, t]:g}"
                         for m, t in over.tolist()])

    # budget
    spend = float(problem.cost[idx[:, 1]].sum()) if idx.size else 0.0
    if problem.budget is not None and spend > problem.budget * (1 + _TOL) + _TOL:
        out.append(f"budget: spend {spend:.6g} > budget {problem.budget:.6g}")

    # contact limit
    per_customer = np.bincount(idx[:, 0], minlength=n) if idx.size else np.zeros(n, np.int64)
    limits = problem.contact_limits()
    over_c = np.flatnonzero(per_customer > limits)
    if over_c.size:
        add("contact limit", [f"customer {ids[i]!r} has {per_customer[i]} contacts > max_contacts {limits[i]}"
                              for i in over_c.tolist()])

    # spacing: consecutive contacts of a customer at least g days apart
    g = problem.min_gap_days
    if idx.shape[0] > 1:
        order = np.lexsort((idx[:, 2], idx[:, 0]))
        s = idx[order]
        same = s[1:, 0] == s[:-1, 0]
        close = same & (s[1:, 2] - s[:-1, 2] < g)
        if close.any():
            lines = []
            for r in np.flatnonzero(close).tolist():
                a, b = s[r], s[r + 1]
                lines.append(f"customer {ids[a[0]]!r} contacted on {day[a[2]]} and {day[b[2]]}, "
                             f"less than min_gap_days={g} apart")
            add("spacing", lines)

    objective = float(np.sum(u[np.isfinite(u)])) if idx.size else 0.0
    if problem.segment is not None:
        lines, psi = _fairness_checks(problem, idx)
        add("segment bound", lines)
        objective -= problem.fairness_penalty * psi
    claimed = getattr(plan, "objective", None)
    if claimed is not None and abs(claimed - objective) > 1e-9 * max(1.0, abs(objective)):
        out.append(f"objective: plan reports {claimed:.12g}, contacts sum to {objective:.12g}")
    bound = getattr(plan, "bound", None)
    if bound is not None and bound < objective - 1e-6 * max(1.0, abs(objective)):
        out.append(f"bound: reported bound {bound:.12g} is below the plan's value {objective:.12g}")
    return VerificationReport(not out, out, objective, spend, int(idx.shape[0]))


def _fairness_checks(problem: PlanningProblem, idx: np.ndarray) -> tuple[list[str], float]:
    """Segment-bound violations and Ψ, recomputed from the problem's fields (not from the model rows)."""
    from formulations.fairness import parse_bounds

    labels = np.asarray(problem.segment)
    n, M, T = problem.shape
    names, codes = np.unique(labels.astype(str) if labels.dtype == object else labels, return_inverse=True)
    S = len(names)
    size = np.bincount(codes, minlength=S).astype(float)
    chan = list(problem.channel_names)
    contacts = np.zeros((S, M))
    if idx.size:
        np.add.at(contacts, (codes[idx[:, 0]], idx[:, 1]), 1)
    allowed = problem.cell_allowed()
    reach = np.zeros((S, M), dtype=bool)
    for start in range(0, n, 250_000):
        block = ((problem.utility[start:start + 250_000] > 0) & allowed[None]).any(axis=2)
        for m in range(M):
            reach[:, m] |= np.bincount(codes[start:start + 250_000], weights=block[:, m], minlength=S) > 0
    lines = []
    for b in parse_bounds(problem.segment_bounds):
        group = np.ones(M, dtype=bool) if b.channel is None else np.array([c == b.channel for c in chan])
        overall = contacts[:, group].sum() / n
        segs = range(S) if b.segment is None else [int(np.flatnonzero(names == np.asarray(b.segment).astype(names.dtype))[0])]
        for s in segs:
            if not reach[s][group].any():
                continue
            rate = contacts[s, group].sum() / size[s]
            scale = overall if b.relative else 1.0
            where = "all channels" if b.channel is None else b.channel
            if b.max_rate is not None and rate > b.max_rate * scale + 1e-9:
                lines.append(f"segment {names[s]!r} {where} rate {rate:.6g} > {b.max_rate * scale:.6g}")
            if b.min_rate is not None and rate < b.min_rate * scale - 1e-9:
                lines.append(f"segment {names[s]!r} {where} rate {rate:.6g} < {b.min_rate * scale:.6g}")
    psi = 0.0
    if problem.fairness_penalty > 0:
        fc = problem.fairness_channels
        groups = [np.ones(M, dtype=bool)] if fc is None else \
            [np.array([c == g for c in chan]) for g in ([fc] if isinstance(fc, str) else fc)]
        w = size / n if problem.segment_weights is None else np.asarray(problem.segment_weights, dtype=float)
        tg = None if problem.segment_targets is None else np.asarray(problem.segment_targets, dtype=float)
        for g, group in enumerate(groups):
            rate = contacts[:, group].sum(axis=1) / size
            target = np.full(S, contacts[:, group].sum() / n) if tg is None else (tg if tg.ndim == 1 else tg[:, g])
            psi += float(np.sum(w * (rate - target) ** 2))
    return lines, psi
