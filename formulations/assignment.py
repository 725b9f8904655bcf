r"""Weekly contact plan: the channel-capacity assignment ILP.

Model
-----
Sets
    customers :math:`i = 1..n`, channels :math:`m = 1..M`, days :math:`t = 1..T`
    (a weekly grid, :math:`T = 7` by default).

Data
    :math:`u_{imt}` expected incremental value of contacting customer *i*
    through channel *m* on day *t* (already net of cost if the caller wants);
    :math:`\text{cap}_{mt} \ge 0` channel capacity (contacts per channel and
    day); :math:`c_m \ge 0` cost per contact; :math:`B \ge 0` budget
    (optional); :math:`K_i \ge 0` contact limit per customer (a scalar or one
    value per customer); :math:`g \ge 1` minimum gap in days between two
    contacts of the same customer; an eligibility (consent) mask
    :math:`e_{imt} \in \{0, 1\}`.

Variables
    :math:`x_{imt} \in \{0, 1\}`: contact customer *i* through channel *m*
    on day *t*.

Problem
    .. math::

        \max_x \; \sum_{i,m,t} u_{imt} x_{imt}

    subject to

    ======================  =========================================================  ====================
    capacity                :math:`\sum_i x_{imt} \le \text{cap}_{mt}`                   for all m, t
    budget (optional)       :math:`\sum_{i,m,t} c_m x_{imt} \le B`
    contact limit           :math:`\sum_{m,t} x_{imt} \le K_i`                          for all i
    cooling / spacing       :math:`\sum_m \sum_{t=s}^{s+g-1} x_{imt} \le 1`             for all i, s = 1..T-g+1
    eligibility             :math:`x_{imt} = 0` where :math:`e_{imt} = 0`
    ======================  =========================================================  ====================

    The spacing windows say that two contacts of the same customer are at
    least *g* days apart: contacts on days :math:`t_1 < t_2` with
    :math:`t_2 - t_1 < g` both lie in the window starting at
    :math:`s = \min(t_1, T-g+1)`. With :math:`g = 1` (the default) the
    windows are single days: at most one contact per customer per day. With
    :math:`g \ge T` there is one window, the whole horizon.

Duals (shadow prices)
    All rows are packing rows (:math:`\le`) of a maximisation, so their duals
    are non-negative: :math:`\lambda_{mt} \ge 0` is the value of one more
    contact slot in channel *m* on day *t*, :math:`\mu \ge 0` the value of
    one more unit of budget.

Eligibility
    A contact is not allowed where ``utility`` is NaN or ``-inf`` or where the
    ``eligible`` mask (shape (n, M) or (n, M, T)) is False.

Reductions (exact; they never change the optimum)
    * Variables with :math:`u_{imt} \le 0` are dropped: setting such a
      variable to 0 keeps every packing row feasible and does not lower the
      objective, so some optimal plan never uses them. (Plans therefore
      never contain contacts of zero or negative value.) Exception: on
      channels where a fairness row with a negative coefficient (a minimum
      rate) or the fairness penalty applies, such a contact can pay for
      itself, so there all allowed contacts stay (see
      :mod:`formulations.fairness`).
    * Contacts that no integer plan can make are dropped: cells with
      :math:`\lfloor \text{cap}_{mt} \rfloor = 0`, channels with
      :math:`c_m > B`, customers with :math:`K_i = 0`. Capacities are counts,
      so a fractional capacity acts as its floor.
    * Redundant rows are not written: a capacity row whose cell has at most
      :math:`\text{cap}_{mt}` candidate contacts; the budget row when all
      candidates together cost at most *B*; a contact-limit row when
      :math:`K_i` is at least the largest number of candidate days the
      spacing rule allows (:math:`\kappa_i`, computed by the greedy
      earliest-day rule, which is optimal for interval scheduling); spacing
      windows with fewer than two candidate variables, windows whose
      candidate days equal those of the next window, and all windows of a
      customer whose limit row is :math:`\sum x \le 1`.

    The same reductions define the LP relaxation used everywhere in
    contactplan (HiGHS LP, the Lagrangian dual bound), so all bounds refer to
    one and the same relaxation.

Per-customer structure
    Order a customer's variables by day. Each spacing window covers the
    variables of *g* consecutive days and the limit row covers all of them:
    every row is a block of consecutive columns, so the customer's
    constraint matrix is an interval matrix, hence totally unimodular. This
    is what makes the Lagrangian dual of :mod:`formulations.lagrangian` equal
    to the LP relaxation bound.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from formulations import _validate as v
from formulations.errors import InputError
from formulations.model import ROW_KINDS, SparseModel

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, eq=False)
class PlanningProblem:
    """A weekly contact-planning instance, validated once at construction.

    Parameters
    ----------
    utility : array_like (n, M, T)
        Expected incremental value of each contact. NaN or ``-inf`` marks a
        contact that is not allowed. float32 input is kept as float32 (to save
        memory at millions of customers); other numeric types become float64.
        The stored array is the caller's array unless NaNs or an ``eligible``
        mask had to be folded in, in which case it is a copy with ``-inf``
        there; the caller's array is never modified.
    capacity : array_like (M, T) or (M,)
        Contacts allowed per channel and day (a (M,) array applies to every
        day). Non-negative and finite.
    cost : array_like (M,)
        Cost of one contact per channel. Non-negative and finite.
    budget : float, optional
        Total spend allowed; ``None`` for no budget.
    max_contacts : int or array_like of int (n,)
        Contacts allowed per customer over the horizon.
    min_gap_days : int
        Minimum distance in days between two contacts of one customer
        (1 = at most one contact per day).
    eligible : array_like of bool (n, M) or (n, M, T), optional
        Consent / eligibility mask; False forbids the contact.
    customer_ids, channel_names, day_labels : sequence, optional
        Labels used in plans and reports. Defaults: ``0..n-1``, ``ch0..``,
        ``Mon..Sun`` when T = 7 (else ``day1..``).

    Raises
    ------
    InputError
        Naming the field, the expected form and the first offending index.
    """

    utility: np.ndarray
    capacity: np.ndarray
    cost: np.ndarray
    budget: float | None = None
    max_contacts: int | np.ndarray = 2
    min_gap_days: int = 1
    eligible: np.ndarray | None = None
    customer_ids: Sequence[Any] | None = None
    channel_names: Sequence[str] | None = None
    day_labels: Sequence[str] | None = None
    segment: Sequence[Any] | None = None
    segment_bounds: Any = None
    segment_targets: Any = None
    segment_weights: Any = None
    fairness_penalty: float = 0.0
    fairness_channels: Sequence[str] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        u = v.numeric_array("utility", self.utility, ndim=3, keep_float32=True)
        n, M, T = u.shape
        if n == 0:
            raise InputError("utility", "expected at least one customer, got an empty array")
        if M == 0 or T == 0:
            raise InputError("utility", f"expected at least one channel and one day, got shape {u.shape}")
        has_nan = v.scan_utility("utility", u)
        eligible = self.eligible
        if eligible is not None:
            e = np.asarray(eligible)
            if e.dtype != np.bool_:
                if e.dtype.kind in "iu" and e.size and np.isin(e, (0, 1)).all():
                    e = e.astype(bool)
                else:
                    raise InputError("eligible", f"expected a boolean mask, got values of type {e.dtype}")
            if e.shape not in ((n, M), (n, M, T)):
                raise InputError("eligible", f"expected shape ({n}, {M}) or ({n}, {M}, {T}), got {e.shape}")
            if e.ndim == 2:
                e = e[:, :, None]
            u = np.where(e, u, -np.inf).astype(u.dtype, copy=False)
            if has_nan:
                u[np.isnan(u)] = -np.inf
            eligible = e
        elif has_nan:
            u = u.copy()
            u[np.isnan(u)] = -np.inf
        set_(self, "utility", u)
        set_(self, "eligible", eligible)

        cap = v.numeric_array("capacity", self.capacity, ndim=(1, 2))
        if cap.ndim == 1:
            if cap.shape != (M,):
                raise InputError("capacity", f"expected shape ({M}, {T}) or ({M},), got {cap.shape}")
            cap = np.repeat(cap[:, None], T, axis=1)
        elif cap.shape != (M, T):
            raise InputError("capacity", f"expected shape ({M}, {T}) or ({M},), got {cap.shape}")
        v.check_finite_nonnegative("capacity", cap)
        set_(self, "capacity", np.floor(cap))

        cost = v.numeric_array("cost", self.cost, ndim=1)
        if cost.shape != (M,):
            raise InputError("cost", f"expected shape ({M},), got {cost.shape}")
        v.check_finite_nonnegative("cost", cost)
        set_(self, "cost", cost)

        set_(self, "budget", v.nonnegative_scalar("budget", self.budget, allow_none=True))
        if np.ndim(self.max_contacts) == 0:
            set_(self, "max_contacts", v.integer_scalar("max_contacts", self.max_contacts, minimum=0))
        else:
            set_(self, "max_contacts", v.integer_array("max_contacts", self.max_contacts, length=n, minimum=0))
        set_(self, "min_gap_days", v.integer_scalar("min_gap_days", self.min_gap_days, minimum=1))

        set_(self, "customer_ids", v.labels("customer_ids", self.customer_ids, length=n, default=range(n)))
        set_(self, "channel_names", v.labels("channel_names", self.channel_names, length=M,
                                             default=[f"ch{m}" for m in range(M)]))
        default_days = WEEKDAYS if T == 7 else [f"day{t + 1}" for t in range(T)]
        set_(self, "day_labels", v.labels("day_labels", self.day_labels, length=T, default=default_days))
        self._init_fairness()

    def _init_fairness(self) -> None:
        """Segment codes and the fairness rows/terms (see :mod:`formulations.fairness`)."""
        from formulations import fairness as fz

        set_ = object.__setattr__
        bounds = fz.parse_bounds(self.segment_bounds)
        penalty = v.nonnegative_scalar("fairness_penalty", self.fairness_penalty)
        set_(self, "fairness_penalty", penalty)
        if self.segment is None:
            if bounds or penalty > 0 or self.segment_targets is not None:
                raise InputError("segment", "expected one segment label per customer when segment_bounds, "
                                            "segment_targets or fairness_penalty are given")
            set_(self, "fairness", None)
            set_(self, "segment_codes", None)
            set_(self, "segment_labels", ())
            return
        n, M, T = self.shape
        codes, labels = fz.segment_codes("segment", self.segment, n)
        eligible_any = np.zeros((n, M), dtype=bool)
        allowed = self.cell_allowed()
        for start in range(0, n, 250_000):
            block = self.utility[start:start + 250_000]
            eligible_any[start:start + 250_000] = ((block > 0) & allowed[None]).any(axis=2)
        model = fz.build_fairness(n=n, channel_names=self.channel_names, codes=codes, labels=labels,
                                  eligible_any=eligible_any, bounds=bounds, penalty=penalty,
                                  fairness_channels=self.fairness_channels, targets=self.segment_targets,
                                  weights=self.segment_weights)
        set_(self, "segment_codes", codes)
        set_(self, "segment_labels", labels)
        set_(self, "fairness", model)

    def negative_ok(self) -> np.ndarray:
        """(M,) channels on which contacts with utility <= 0 can still help.

        A fairness row with a negative coefficient (a minimum rate, or a rate
        relative to the overall rate) or the fairness penalty can make a
        contact of non-positive utility worth taking, so on the channels they
        involve every allowed contact stays a candidate.
        """
        M = self.n_channels
        f = self.fairness
        out = np.zeros(M, dtype=bool)
        if f is None:
            return out
        for r in range(f.n_rows):
            if (f.row_coef[r] < 0).any():
                out |= f.row_channels[r]
        if f.penalty > 0:
            out |= f.pen_channels.any(axis=0)
        return out

    @property
    def has_fairness(self) -> bool:
        """True when segment bounds or a fairness penalty shape the plan."""
        f = self.fairness
        return f is not None and (f.n_rows > 0 or f.penalty > 0)

    # ------------------------------------------------------------------ sizes
    @property
    def n_customers(self) -> int:
        return int(self.utility.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.utility.shape[1])

    @property
    def n_days(self) -> int:
        return int(self.utility.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.utility.shape)  # type: ignore[return-value]

    def contact_limits(self) -> np.ndarray:
        """Per-customer contact limits as an int64 array (n,) (a broadcast view for a scalar)."""
        if np.ndim(self.max_contacts) == 0:
            return np.broadcast_to(np.int64(self.max_contacts), (self.n_customers,))
        return self.max_contacts  # type: ignore[return-value]

    def cell_allowed(self) -> np.ndarray:
        """(M, T) mask of channel-days any integer plan can use (capacity >= 1, cost within budget)."""
        ok = self.capacity >= 1
        if self.budget is not None:
            ok &= (self.cost <= self.budget)[:, None]
        return ok

    def replace(self, **changes: Any) -> "PlanningProblem":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def from_frames(cls, scores: Any, channels: Any, **kwargs: Any) -> "PlanningProblem":
        """Build a problem from long tables (see ``data/README.md`` for the schema).

        Parameters
        ----------
        scores : pandas.DataFrame
            One row per allowed contact: ``customer_id``, ``channel``, ``day``,
            ``utility`` (and optionally ``eligible``). Missing rows are
            contacts that are not allowed.
        channels : pandas.DataFrame
            One row per channel: ``channel``, ``cost``, and ``capacity`` or
            per-day ``capacity_<day>`` columns.
        **kwargs
            ``budget``, ``max_contacts``, ``min_gap_days``, ``customers`` (an
            optional table with per-customer ``max_contacts``), ``day_order``.
        """
        from formulations.frames import problem_from_frames

        return problem_from_frames(cls, scores, channels, **kwargs)

    def __repr__(self) -> str:
        n, M, T = self.shape
        return (f"PlanningProblem(n={n}, M={M}, T={T}, budget={self.budget}, "
                f"max_contacts={'per-customer' if np.ndim(self.max_contacts) else self.max_contacts}, "
                f"min_gap_days={self.min_gap_days}, dtype={self.utility.dtype})")


# ---------------------------------------------------------------------------
# Candidate contacts and the sparse model
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Candidates:
    """Contacts that some optimal plan may use (after the exact reductions).

    Arrays of equal length ``k``, ordered by (customer, channel, day).
    """

    customer: np.ndarray
    channel: np.ndarray
    day: np.ndarray
    utility: np.ndarray

    def __len__(self) -> int:
        return int(self.customer.shape[0])


def candidates(problem: PlanningProblem) -> Candidates:
    """Enumerate candidate contacts: allowed, positive utility, usable cell."""
    u = problem.utility
    limits = problem.contact_limits()
    neg_ok = problem.negative_ok()
    if neg_ok.any():
        mask = ((u > 0) | (np.isfinite(u) & neg_ok[None, :, None])) & problem.cell_allowed()[None, :, :]
    else:
        mask = (u > 0) & problem.cell_allowed()[None, :, :]
    if (limits == 0).any():
        mask &= (limits > 0)[:, None, None]
    i, m, t = np.nonzero(mask)
    return Candidates(i.astype(np.int64), m.astype(np.int64), t.astype(np.int64),
                      u[i, m, t].astype(np.float64))


def max_spaced_days(day_has: np.ndarray, gap: int) -> np.ndarray:
    """kappa_i: the most days of ``day_has`` (n, T) that are pairwise >= ``gap`` apart.

    The earliest-day greedy rule is optimal for this interval-scheduling problem.
    """
    n, T = day_has.shape
    count = np.zeros(n, dtype=np.int64)
    next_free = np.zeros(n, dtype=np.int64)
    for t in range(T):
        take = day_has[:, t] & (next_free <= t)
        count += take
        next_free = np.where(take, t + gap, next_free)
    return count


def window_starts(n_days: int, gap: int) -> np.ndarray:
    """First days of the spacing windows (one window of all days when gap >= T)."""
    return np.arange(max(1, n_days - gap + 1), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class RowSets:
    """Index sets of the rows that are written (shared by every builder)."""

    capacity_cells: np.ndarray     # (r_c, 2) channel, day
    has_budget_row: bool
    limit_customers: np.ndarray    # (r_l,)
    windows: np.ndarray            # (r_w, 2) customer, first day


def row_sets(problem: PlanningProblem, cand: Candidates) -> RowSets:
    """Decide which rows are written, applying the redundancy rules of the module docstring."""
    n, M, T = problem.shape
    g = problem.min_gap_days
    cell_count = np.zeros((M, T), dtype=np.int64)
    np.add.at(cell_count, (cand.channel, cand.day), 1)
    cm, ct = np.nonzero(cell_count > problem.capacity)
    capacity_cells = np.stack([cm, ct], axis=1).astype(np.int64)

    has_budget = problem.budget is not None and float(problem.cost[cand.channel].sum()) > problem.budget

    vars_per_day = np.zeros((n, T), dtype=np.int64)
    np.add.at(vars_per_day, (cand.customer, cand.day), 1)
    day_has = vars_per_day > 0
    limits = problem.contact_limits()
    kappa = max_spaced_days(day_has, g)
    limit_rows = limits < kappa
    limit_customers = np.flatnonzero(limit_rows).astype(np.int64)

    starts = window_starts(T, g)
    keep = np.zeros((n, starts.size), dtype=bool)
    for s in starts:
        e = min(s + g, T)
        nvars = vars_per_day[:, s:e].sum(axis=1)
        k = nvars >= 2
        if s + 1 < starts.size:  # next window exists: drop if it has the same candidate days
            same = ~day_has[:, s] & (~day_has[:, s + g] if s + g < T else True)
            k &= ~same
        keep[:, s] = k
    # a limit row sum(x) <= 1 dominates every window of that customer
    keep &= ~(limit_rows & (limits == 1))[:, None]
    wi, ws = np.nonzero(keep)
    windows = np.stack([wi, ws], axis=1).astype(np.int64)
    return RowSets(capacity_cells, bool(has_budget), limit_customers, windows)


def build_model(problem: PlanningProblem) -> SparseModel:
    """Build the sparse MIP of the module docstring (the HiGHS backend passes it in bulk)."""
    n, M, T = problem.shape
    g = problem.min_gap_days
    cand = candidates(problem)
    rows = row_sets(problem, cand)
    k = len(cand)
    col = np.arange(k, dtype=np.int64)
    entries_r: list[np.ndarray] = []
    entries_c: list[np.ndarray] = []
    entries_v: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    next_row = 0

    # capacity rows
    cell_row = np.full((M, T), -1, dtype=np.int64)
    rc = rows.capacity_cells.shape[0]
    if rc:
        cell_row[rows.capacity_cells[:, 0], rows.capacity_cells[:, 1]] = np.arange(rc)
        r = cell_row[cand.channel, cand.day]
        sel = r >= 0
        entries_r.append(r[sel] + next_row); entries_c.append(col[sel]); entries_v.append(np.ones(sel.sum()))
        kinds.append(np.full(rc, ROW_KINDS.index("capacity"), np.int8)); keys.append(rows.capacity_cells)
        upper.append(problem.capacity[rows.capacity_cells[:, 0], rows.capacity_cells[:, 1]])
        next_row += rc

    # budget row
    if rows.has_budget_row:
        c = problem.cost[cand.channel]
        sel = c > 0
        entries_r.append(np.full(sel.sum(), next_row)); entries_c.append(col[sel]); entries_v.append(c[sel])
        kinds.append(np.array([ROW_KINDS.index("budget")], np.int8)); keys.append(np.zeros((1, 2), np.int64))
        upper.append(np.array([problem.budget], dtype=np.float64))
        next_row += 1

    # contact-limit rows
    rl = rows.limit_customers.size
    if rl:
        cust_row = np.full(n, -1, dtype=np.int64)
        cust_row[rows.limit_customers] = np.arange(rl)
        r = cust_row[cand.customer]
        sel = r >= 0
        entries_r.append(r[sel] + next_row); entries_c.append(col[sel]); entries_v.append(np.ones(sel.sum()))
        kinds.append(np.full(rl, ROW_KINDS.index("limit"), np.int8))
        keys.append(np.stack([rows.limit_customers, np.zeros(rl, np.int64)], axis=1))
        upper.append(problem.contact_limits()[rows.limit_customers].astype(np.float64))
        next_row += rl

    # spacing windows
    rw = rows.windows.shape[0]
    if rw:
        n_starts = window_starts(T, g).size
        win_row = np.full((n, n_starts), -1, dtype=np.int64)
        win_row[rows.windows[:, 0], rows.windows[:, 1]] = np.arange(rw)
        for offset in range(min(g, T)):
            s = cand.day - offset
            ok = (s >= 0) & (s < n_starts)
            r = np.full(k, -1, dtype=np.int64)
            r[ok] = win_row[cand.customer[ok], s[ok]]
            sel = r >= 0
            entries_r.append(r[sel] + next_row); entries_c.append(col[sel]); entries_v.append(np.ones(sel.sum()))
        kinds.append(np.full(rw, ROW_KINDS.index("window"), np.int8)); keys.append(rows.windows)
        upper.append(np.ones(rw))
        next_row += rw

    # fairness rows: sum_i a[r, seg(i)] sum_{m in g_r, t} x <= rhs_r
    f = problem.fairness
    if f is not None and f.n_rows:
        seg = problem.segment_codes[cand.customer]
        for r in range(f.n_rows):
            coef = f.row_coef[r, seg] * f.row_channels[r, cand.channel]
            sel = coef != 0
            entries_r.append(np.full(sel.sum(), next_row)); entries_c.append(col[sel]); entries_v.append(coef[sel])
            next_row += 1
        kinds.append(np.full(f.n_rows, ROW_KINDS.index("fairness"), np.int8))
        keys.append(np.stack([np.arange(f.n_rows), np.zeros(f.n_rows, np.int64)], axis=1))
        upper.append(f.row_rhs.copy())

    lower_parts = [np.full(next_row, -np.inf)]
    extra_obj = np.zeros(0)
    extra_lo = np.zeros(0)
    extra_hi = np.zeros(0)
    n_terms = 0
    if f is not None and f.penalty > 0:
        # z_p = B_p x - c_p (equality rows), t_p >= 2 a z_p - a^2 for every breakpoint a
        from formulations.fairness import tangent_breakpoints

        n_terms = f.n_terms
        kmax = float(min(int(problem.contact_limits().max()), T))
        points = tangent_breakpoints(kmax)
        seg = problem.segment_codes[cand.customer]
        z_col = k + np.arange(n_terms)
        t_col = k + n_terms + np.arange(n_terms)
        link_rows = next_row + np.arange(n_terms)
        for p_ in range(n_terms):
            coef = f.pen_coef[p_, seg] * f.pen_channels[p_, cand.channel]
            sel = coef != 0
            entries_r.append(np.full(sel.sum() + 1, link_rows[p_]))
            entries_c.append(np.r_[col[sel], z_col[p_]])
            entries_v.append(np.r_[coef[sel], -1.0])
        kinds.append(np.full(n_terms, ROW_KINDS.index("penalty_link"), np.int8))
        keys.append(np.stack([np.arange(n_terms), np.zeros(n_terms, np.int64)], axis=1))
        upper.append(f.pen_const.copy())
        lower_parts.append(f.pen_const.copy())
        next_row += n_terms
        n_cut = n_terms * points.size
        cut_rows = next_row + np.arange(n_cut)
        term = np.repeat(np.arange(n_terms), points.size)
        a = np.tile(points, n_terms)
        entries_r += [cut_rows, cut_rows]
        entries_c += [z_col[term], t_col[term]]
        entries_v += [2 * a, -np.ones(n_cut)]
        kinds.append(np.full(n_cut, ROW_KINDS.index("penalty_cut"), np.int8))
        keys.append(np.stack([term, np.tile(np.arange(points.size), n_terms)], axis=1))
        upper.append(a * a)
        lower_parts.append(np.full(n_cut, -np.inf))
        next_row += n_cut
        extra_obj = np.r_[np.zeros(n_terms), -f.penalty * f.pen_weight[:n_terms]]
        extra_lo = np.r_[np.full(n_terms, -kmax - 1), np.zeros(n_terms)]
        extra_hi = np.r_[np.full(n_terms, kmax + 1), np.full(n_terms, (kmax + 1) ** 2)]

    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    ncols = k + 2 * n_terms
    values, rows_i, cols_i = cat(entries_v, np.float64), cat(entries_r, np.int64), cat(entries_c, np.int64)
    nz = values != 0
    matrix = sp.csc_matrix((values[nz], (rows_i[nz], cols_i[nz])), shape=(next_row, ncols))
    matrix.sort_indices()
    return SparseModel(
        objective=np.r_[cand.utility, extra_obj],
        matrix=matrix,
        row_lower=cat(lower_parts, np.float64),
        row_upper=cat(upper, np.float64),
        col_lower=np.r_[np.zeros(k), extra_lo],
        col_upper=np.r_[np.ones(k), extra_hi],
        integrality=np.r_[np.ones(k, dtype=bool), np.zeros(2 * n_terms, dtype=bool)],
        row_kind=cat(kinds, np.int8),
        row_key=np.concatenate(keys).astype(np.int64) if keys else np.zeros((0, 2), np.int64),
        columns=np.stack([cand.customer, cand.channel, cand.day], axis=1) if k else np.zeros((0, 3), np.int64),
        meta={"shape": problem.shape, "penalty_terms": n_terms},
    )


def decode(model: SparseModel, x: np.ndarray) -> np.ndarray:
    """Columns set to one in ``x`` as (k, 3) int64 (customer, channel, day) rows, sorted by customer, day."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (model.num_cols,):
        raise ValueError(f"solution vector has shape {x.shape}, expected ({model.num_cols},)")
    chosen = model.columns[x[:model.num_contacts] > 0.5]
    return sort_assignments(chosen)


def sort_assignments(indices: np.ndarray) -> np.ndarray:
    """Sort (customer, channel, day) rows by customer, then day, then channel, as int64."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1, 3)
    if idx.shape[0] == 0:
        return idx
    order = np.lexsort((idx[:, 1], idx[:, 2], idx[:, 0]))
    return idx[order]


def utility_sum(problem: PlanningProblem, indices: np.ndarray) -> float:
    """Sum of the utilities of a set of assignments (float64)."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1, 3)
    if idx.shape[0] == 0:
        return 0.0
    return float(np.sum(problem.utility[idx[:, 0], idx[:, 1], idx[:, 2]], dtype=np.float64))


def plan_value(problem: PlanningProblem, indices: np.ndarray) -> float:
    """Objective value of a set of assignments: sum of utilities minus the fairness penalty γΨ."""
    value = utility_sum(problem, indices)
    f = problem.fairness
    if f is not None and f.penalty > 0:
        value -= f.penalty * f.psi(problem.segment_codes, np.asarray(indices, dtype=np.int64).reshape(-1, 3))
    return value
