r"""Fairness across customer segments: segment bounds and the quadratic fairness penalty.

Sets and rates
--------------
Customers carry a segment label :math:`s(i) \in \{1..S\}` (region, age band,
value tier, ...), :math:`n_s = |\{i : s(i) = s\}|`. Rates are measured on
*channel groups* *g* (a single channel, or all channels when no channel is
given):

.. math::

    X_{ig} = \sum_{m \in g} \sum_t x_{imt}, \qquad
    \rho_{sg} = \frac{1}{n_s} \sum_{i : s(i) = s} X_{ig}, \qquad
    \bar\rho_g = \frac{1}{n} \sum_i X_{ig}

(contacts per customer of the segment, and overall).

Hard bounds (linear rows, ``segment_bounds``)
---------------------------------------------
Each bound names a segment (or every segment), a channel (or all channels),
``min_rate`` and/or ``max_rate``, and whether the rates are absolute or
``relative`` to the overall rate of that channel group:

=====================  =========================================================
absolute max           :math:`\sum_{i \in s} X_{ig} \le \text{hi}\; n_s`
absolute min           :math:`-\sum_{i \in s} X_{ig} \le -\text{lo}\; n_s`
relative max (κ)       :math:`\tfrac{1}{n_s}\sum_{i \in s} X_{ig} - \tfrac{κ}{n}\sum_i X_{ig} \le 0`
relative min (κ)       :math:`\tfrac{κ}{n}\sum_i X_{ig} - \tfrac{1}{n_s}\sum_{i \in s} X_{ig} \le 0`
=====================  =========================================================

("every segment gets at least 80% of the overall call rate" is a relative
min with κ = 0.8 on the call channel.) Every row has the form
:math:`\sum_i a_{r, s(i)} \sum_{m \in g_r, t} x_{imt} \le b_r`: its
coefficient depends on the customer only through the segment. In the
Lagrangian (see :mod:`formulations.lagrangian`) a row gets a price
:math:`\nu_r \ge 0` and shifts the reduced utility of a customer of segment
*s* on channel *m* by :math:`\nu_r a_{r,s}` for :math:`m \in g_r` — a
per-(segment, channel) price shift, so the per-customer problem stays the
same dynamic programme. Bounds of a segment with no eligible customer on the
group are not written (nobody in it can be contacted; the plan reports it).

Soft penalty (``fairness_penalty`` γ)
-------------------------------------
.. math::

    \max_x \; \sum u x - γ Ψ(x), \qquad
    Ψ = \sum_{g} \sum_s w_s (\rho_{sg} - \bar\rho_{sg})^2,

with targets :math:`\bar\rho_{sg}` (``segment_targets``, default the overall
rate :math:`\bar\rho_g`, making Ψ a disparity measure) and weights
:math:`w_s` (default the population share :math:`n_s / n`). Write
:math:`z_{sg} = \rho_{sg} - \bar\rho_{sg} = \sum_i B_{sg, s(i)} X_{ig} - c_{sg}`
(linear in *x*). Ψ is a convex quadratic, so the penalised objective is
concave.

* Exact on small instances: a MIQP where a solver supports it; otherwise
  (HiGHS has no MIQP) a MILP that replaces :math:`z^2` by the maximum of
  tangents at *K* breakpoints :math:`a_k` spaced *h* apart on the range of
  *z*: :math:`z^2 \ge \max_k (2 a_k z - a_k^2) \ge z^2 - h^2/4`. The MILP
  optimum is therefore an upper bound within :math:`γ \sum w_s h^2/4`
  (summed over groups) of the true optimum, and the true penalised value of
  the MILP's plan is a lower bound: both are reported.
* Continuous QP bound: the LP relaxation with the exact quadratic (CVXPY).
* Dual core: by the conjugate :math:`γ w z^2 = \max_\nu \{\nu z - \nu^2/(4γw)\}`,
  :math:`-γ w z^2 = \min_\nu \{-\nu z + \nu^2/(4γ w)\}` with a free price
  :math:`\nu_{sg}`; exchanging max and min gives the upper bound
  :math:`L = \dots + \sum_{sg} (\nu_{sg} c_{sg} + \nu_{sg}^2/(4γ w_s))
  + \sum_i \phi_i(\text{shifted})` whose per-customer part again sees only a
  per-(segment, channel) price shift :math:`\nu_{sg} B_{sg, s(i)}`. The
  optimal price is :math:`\nu = 2γ w z`, hence :math:`|\nu_{sg}| \le
  2γ w_s (1 + \max \bar\rho)`, which bounds the price box. The term
  :math:`q(\nu) = \sum \nu^2/(4γw)` is smooth and known, so the solver's
  bundle model keeps it exact: L = h + q with h piecewise linear, and a cut
  of h plus a tangent of q at any point is a valid cut of L that needs no
  evaluation (:func:`solvers.dual._exact_smooth_part`).
  When the terms all count the same channels (and at scale), the solver
  instead sets ν at every evaluation to its minimiser for the other prices
  (:meth:`solvers.dual_data.DualData.settled`): an LP over the customers'
  breakpoints with γ w z² kept by tangents, whose duals are ν.

This module turns the problem's fairness fields into these rows and terms
(:class:`FairnessModel`) and computes rates and Ψ for a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from formulations.errors import InputError


@dataclass(frozen=True)
class SegmentBound:
    """A hard bound on segment contact rates.

    Parameters
    ----------
    segment : label or None
        The segment, or None for every segment.
    channel : str or None
        The channel, or None for all channels together.
    min_rate, max_rate : float or None
        Bounds on contacts per customer of the segment over the horizon
        (or multiples of the overall rate when ``relative``).
    relative : bool
        Bounds are multiples of the overall rate of the channel group.
    """

    segment: Any = None
    channel: str | None = None
    min_rate: float | None = None
    max_rate: float | None = None
    relative: bool = False


@dataclass(frozen=True, eq=False)
class FairnessModel:
    """Fairness rows and penalty terms of a problem in segment-level form.

    Attributes
    ----------
    n_segments : int
    segment_size : ndarray (S,)
    groups : ndarray of bool (G, M)
        Channel groups the penalty measures.
    row_coef : ndarray (R, S)
        Coefficient a_{r,s} of a customer of segment s in hard row r.
    row_channels : ndarray of bool (R, M)
    row_rhs : ndarray (R,)
    row_label : list of str
        Human-readable description of each row.
    penalty : float
        γ.
    pen_coef : ndarray (P, S)
        B_{(s,g), s'} for each penalty term p = (s, g).
    pen_channels : ndarray of bool (P, M)
    pen_const : ndarray (P,)
        c_{sg}.
    pen_weight : ndarray (P,)
        w_s.
    pen_key : ndarray (P, 2)
        (segment, group) of each term.
    """

    n_segments: int
    segment_size: np.ndarray
    groups: np.ndarray
    row_coef: np.ndarray
    row_channels: np.ndarray
    row_rhs: np.ndarray
    row_label: list
    penalty: float
    pen_coef: np.ndarray
    pen_channels: np.ndarray
    pen_const: np.ndarray
    pen_weight: np.ndarray
    pen_key: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.row_rhs.shape[0])

    @property
    def n_terms(self) -> int:
        return int(self.pen_const.shape[0]) if self.penalty > 0 else 0

    def shift(self, row_price: np.ndarray, term_price: np.ndarray) -> np.ndarray:
        """(S, M) reduced-utility shift of a customer of segment s on channel m."""
        S, M = self.n_segments, self.groups.shape[1]
        out = np.zeros((S, M))
        if self.n_rows:
            out += (row_price[:, None, None] * self.row_coef[:, :, None] * self.row_channels[:, None, :]).sum(axis=0)
        if self.n_terms:
            out += (term_price[:, None, None] * self.pen_coef[:, :, None] * self.pen_channels[:, None, :]).sum(axis=0)
        return out

    def group_counts(self, segment: np.ndarray, indices: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """(S, G) contacts of each segment in each channel group for a plan's (k, 3) indices."""
        S = self.n_segments
        out = np.zeros((S, groups.shape[0]))
        if indices.size:
            seg = segment[indices[:, 0]]
            for g in range(groups.shape[0]):
                sel = groups[g][indices[:, 1]]
                out[:, g] = np.bincount(seg[sel], minlength=S)
        return out

    def row_values(self, segment: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Left-hand sides of the hard rows for a plan."""
        if not self.n_rows:
            return np.zeros(0)
        counts = self.group_counts(segment, indices, self.row_channels)   # (S, R)
        return np.einsum("rs,sr->r", self.row_coef, counts)

    def psi(self, segment: np.ndarray, indices: np.ndarray) -> float:
        """Ψ of a plan (0 without penalty terms)."""
        if self.pen_const.size == 0:
            return 0.0
        counts = self.group_counts(segment, indices, self.pen_channels)   # (S, P)
        z = np.einsum("ps,sp->p", self.pen_coef, counts) - self.pen_const
        return float(np.sum(self.pen_weight * z * z))


def segment_codes(field: str, labels: Any, n: int) -> tuple[np.ndarray, tuple]:
    """(int codes (n,), sorted unique labels) of a segment label array."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(field, f"expected one label per customer, shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise InputError(field, f"expected a label for every customer, got NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    if arr.dtype == object and any(v is None for v in arr):
        raise InputError(field, "expected a label for every customer, got None")
    try:
        names, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        names, codes = np.unique(arr.astype(str), return_inverse=True)
    return codes.astype(np.int64), tuple(names.tolist())


def parse_bounds(value: Any) -> list[SegmentBound]:
    """Segment bounds from SegmentBound objects, dicts or a DataFrame with those columns."""
    if value is None:
        return []
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        value = value.to_dict("records")
    if isinstance(value, (SegmentBound, dict)):
        value = [value]
    out = []
    for k, b in enumerate(value):
        if isinstance(b, SegmentBound):
            out.append(b)
        elif isinstance(b, dict):
            extra = set(b) - {"segment", "channel", "min_rate", "max_rate", "relative"}
            if extra:
                raise InputError("segment_bounds", f"unknown key(s) {', '.join(sorted(extra))} in bound {k}")
            clean = {key: (None if _missing(v) else v) for key, v in b.items()}
            clean["relative"] = bool(clean.get("relative") or False)
            out.append(SegmentBound(**clean))
        else:
            raise InputError("segment_bounds", f"expected SegmentBound or dict entries, got {type(b).__name__} at {k}")
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def build_fairness(*, n: int, channel_names: Sequence[str], codes: np.ndarray, labels: tuple,
                   eligible_any: np.ndarray, bounds: list[SegmentBound], penalty: float,
                   fairness_channels: Sequence[str] | None, targets: Any, weights: Any) -> FairnessModel:
    """Assemble :class:`FairnessModel` (validation of the fairness fields happens here).

    ``eligible_any`` (n, M) tells whether customer i has any allowed contact on channel m.
    """
    M = len(channel_names)
    S = len(labels)
    size = np.bincount(codes, minlength=S).astype(np.float64)
    chan_index = {c: m for m, c in enumerate(channel_names)}
    label_index = {lab: s for s, lab in enumerate(labels)}

    def group_of(channel: Any, field: str) -> np.ndarray:
        mask = np.zeros(M, dtype=bool)
        if channel is None:
            mask[:] = True
        elif channel in chan_index:
            mask[chan_index[channel]] = True
        else:
            raise InputError(field, f"unknown channel {channel!r}; channels are {', '.join(channel_names)}")
        return mask

    elig_seg = np.zeros((S, M), dtype=bool)
    for m in range(M):
        elig_seg[:, m] = np.bincount(codes, weights=eligible_any[:, m].astype(float), minlength=S) > 0

    coefs, chans, rhs, names = [], [], [], []
    for k, b in enumerate(bounds):
        group = group_of(b.channel, "segment_bounds")
        if b.segment is None:
            segs = range(S)
        elif b.segment in label_index:
            segs = [label_index[b.segment]]
        else:
            raise InputError("segment_bounds", f"unknown segment {b.segment!r} in bound {k}")
        for rate, name in ((b.min_rate, "min_rate"), (b.max_rate, "max_rate")):
            if rate is not None and (not np.isfinite(float(rate)) or float(rate) < 0):
                raise InputError("segment_bounds", f"expected {name} >= 0 in bound {k}, got {rate!r}")
        if b.min_rate is not None and b.max_rate is not None and float(b.min_rate) > float(b.max_rate):
            raise InputError("segment_bounds", f"min_rate > max_rate in bound {k}")
        where = "all channels" if b.channel is None else b.channel
        for s in segs:
            if not elig_seg[s][group].any():
                continue                   # nobody in the segment can be contacted on this group
            for rate, sign in ((b.max_rate, +1.0), (b.min_rate, -1.0)):
                if rate is None:
                    continue
                rate = float(rate)
                a = np.zeros(S)
                if b.relative:
                    a[s] += sign / size[s]
                    a -= sign * rate / n
                    bound_rhs = 0.0
                else:
                    a[s] += sign
                    bound_rhs = sign * rate * size[s]
                coefs.append(a)
                chans.append(group)
                rhs.append(bound_rhs)
                kind = "max" if sign > 0 else "min"
                rel = f"{rate:g} x overall" if b.relative else f"{rate:g}"
                names.append(f"{labels[s]} {where} rate {kind} {rel}")

    if fairness_channels is None:
        groups = np.ones((1, M), dtype=bool)
    else:
        fc = [fairness_channels] if isinstance(fairness_channels, str) else list(fairness_channels)
        if not fc:
            raise InputError("fairness_channels", "expected at least one channel")
        groups = np.stack([group_of(c, "fairness_channels") for c in fc])
    G = groups.shape[0]
    penalty = float(penalty)
    if not np.isfinite(penalty) or penalty < 0:
        raise InputError("fairness_penalty", f"expected a number >= 0, got {penalty!r}")
    if weights is None:
        w = size / n
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (S,) or not np.isfinite(w).all() or (w < 0).any():
            raise InputError("segment_weights", f"expected {S} non-negative weights (one per segment), got {w.shape}")
    if targets is not None:
        tgt = np.asarray(targets, dtype=np.float64)
        if tgt.shape == (S,):
            tgt = np.repeat(tgt[:, None], G, axis=1)
        if tgt.shape != (S, G) or not np.isfinite(tgt).all() or (tgt < 0).any():
            raise InputError("segment_targets", f"expected non-negative rates of shape ({S},) or ({S}, {G}), got {tgt.shape}")
    pcoef, pchan, pconst, pweight, pkey = [], [], [], [], []
    for g in range(G):
        for s in range(S):
            b = np.zeros(S)
            b[s] += 1.0 / size[s]
            if targets is None:
                b -= 1.0 / n
                c = 0.0
            else:
                c = float(tgt[s, g])
            pcoef.append(b)
            pchan.append(groups[g])
            pconst.append(c)
            pweight.append(w[s])
            pkey.append((s, g))
    as_arr = (lambda rows, shape: np.array(rows, dtype=np.float64).reshape(shape))
    return FairnessModel(
        n_segments=S, segment_size=size, groups=groups,
        row_coef=as_arr(coefs, (len(coefs), S)), row_channels=np.array(chans, dtype=bool).reshape(len(chans), M),
        row_rhs=np.array(rhs, dtype=np.float64), row_label=names, penalty=penalty,
        pen_coef=as_arr(pcoef, (len(pcoef), S)), pen_channels=np.array(pchan, dtype=bool).reshape(len(pchan), M),
        pen_const=np.array(pconst), pen_weight=np.array(pweight), pen_key=np.array(pkey, dtype=np.int64))


def tangent_breakpoints(z_max: float) -> np.ndarray:
    """Breakpoints a_k for the tangent (outer) approximation of z^2 on [-z_max, z_max].

    Dense near 0, where disparities live: the error z^2 - max_k(2 a_k z - a_k^2)
    is at most h^2/4 on an interval of width h between breakpoints
    (h <= 0.005 for |z| <= 0.1, growing geometrically beyond).
    """
    z_max = max(float(z_max), 0.1)
    inner = np.linspace(-0.1, 0.1, 41)
    outer = np.geomspace(0.1, z_max, 24)
    return np.unique(np.round(np.r_[inner, outer, -outer], 12))


def tangent_error(breakpoints: np.ndarray, z: np.ndarray) -> np.ndarray:
    """z^2 - max_k (2 a_k z - a_k^2): the tangent model's shortfall at each z."""
    a = np.asarray(breakpoints)[None, :]
    zz = np.asarray(z, dtype=np.float64)[:, None]
    return (zz[:, 0] ** 2) - np.max(2 * a * zz - a * a, axis=1)
