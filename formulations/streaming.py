r"""Streaming feature state and the governance maths of the real-time decision service.

This module is the specification of :mod:`optimizer.service` (issue 15). It
imports no solver and nothing from :mod:`optimizer`.

Events and event time
---------------------
An event is :math:`e = (\mathrm{id}_e, i_e, t_e, k_e, s_e, h_e, v_e)`: a
stable event id, customer, event time (integer microseconds since the Unix
epoch), type :math:`k_e \in` ``EVENT_TYPES`` (digital, call, branch), subtype,
channel and value (call seconds, branch amount, 1 for digital), under a
versioned schema (``EVENT_SCHEMA_VERSION``). Aggregates are functions of the
event *time*, never of the arrival time. Let :math:`\mathcal{E}` be the
**set** of accepted events (a set of ids: re-delivering an id changes
nothing). Every feature below is a function of :math:`\mathcal{E}` alone, so
any order of arrival, any lateness and any number of duplicates give the same
state -- in real arithmetic *and* in the bits, because every sum is kept in
exact integer arithmetic (below). An id that is re-used with a *different*
payload is not applied; it is quarantined with a reason (the first payload
seen wins -- the only order-dependent case, reported, never silent).

Decayed accumulators
--------------------
With decay :math:`\lambda \in (0, 1]` per period of :math:`\Delta` days and
the schema epoch :math:`t_0`, event *e* sits at the position

.. math:: \tau_e = (t_e - t_0)/\Delta \quad\text{(continuous time)}, \qquad
          \tau_e = b(e) = \lfloor (t_e - t_0 + L)/\Delta \rfloor \quad\text{(period grid)}

(the grid position is the batch bucket :math:`b(e)` of
:mod:`formulations.c360` with latency *L*). The accumulator of customer *i*
and kind *k* read at position :math:`\tau` is

.. math:: z_{ik}(\tau) = \sum_{e \in \mathcal{E}_{ik},\ \tau_e \le \tau} \lambda^{\tau - \tau_e} x_e
          = \lambda^{\tau} A_{ik}, \qquad A_{ik} = \sum_{e \in \mathcal{E}_{ik}} x_e \lambda^{-\tau_e},

where the second form holds when every accepted event is visible at the
read position (:math:`\tau \ge \max_e \tau_e`): the state holds all accepted
events and is read at the current time, and events more than a small skew
ahead of the clock are quarantined; reading the past, as the batch grid does,
means applying only the events visible then (as the agreement test does).
This is the continuous-time recurrence :math:`z \leftarrow \lambda^{\Delta\tau} z + x`
applied in event-time order (and, on the period grid, exactly the batch
recurrence :math:`z_p = \lambda z_{p-1} + x_p` of
:func:`formulations.c360.decayed_activity`, so the two agree -- tested on
generated Customer 360 data). :math:`x_e = 1` (counts) for the kinds
``DECAY_KINDS`` = digital, call, branch (by type) and complaint (by subtype).
:math:`A_{ik}` is stored as an integer in units of :math:`2^{-64}`:
each term :math:`x_e \lambda^{-\tau_e}` is rounded once (a deterministic
function of the event alone, :func:`fixed_point`), integer addition is exact
and associative, so :math:`A` is independent of the order -- bit for bit. The
anchored form is the SQL closed form of the batch build; it needs
:math:`\tau_e \ln(1/\lambda) \le 600` (``MAX_DECAY_EXPONENT``, :func:`anchor_weight`),
e.g. 51 years at :math:`\lambda = 0.8` per week; older epochs must be re-based
(not implemented: an event beyond the horizon is quarantined).

Recency, frequency, sums
------------------------
Recency of type *k* as of time *t*: :math:`r_{ik}(t) = t - \max\{t_e : e \in \mathcal{E}_{ik}, t_e \le t\}`
(days; missing when empty) -- ``max`` is order independent. Frequency
:math:`n_{ik} = |\mathcal{E}_{ik}|` (integers). Value sums (call seconds,
branch amount) use the same fixed-point integers. Last call outcome: the
subtype of :math:`\max (t_e, s_e)` over calls (lexicographic, as the batch
tie-break).

Consent / policy masking
------------------------
Before features reach a model, :math:`x' = x \odot m` with
:math:`m \in \{0, 1\}^d` (:func:`apply_mask`); a withdrawn consent zeroes the
feature group it covers. The mask is logged with every decision.

Projection regularisation
-------------------------
Monitored cohorts :math:`g = 1..G` with feature means :math:`\mu_g` give the
difference directions :math:`d_g = \mu_g - \mu_1` (:math:`g \ge 2`). With
:math:`Q` an orthonormal basis of their span, :math:`P = QQ^\top` is the
projector onto the protected directions and the response model
:math:`p(y=1 \mid x) = \sigma(\beta_0 + \theta^\top x)` minimises

.. math:: \frac1n \sum_j \big[\log(1 + e^{s_j}) - y_j s_j\big] + \frac{\rho_2}{2}\lVert\theta\rVert^2
          + \rho\, \Omega(\theta), \qquad \Omega(\theta) = \lVert P\theta \rVert^2,

convex for :math:`\rho \ge 0`. As :math:`\rho \to \infty`, :math:`P\theta \to 0`,
so :math:`\theta^\top(\mu_g - \mu_h) \to 0`: the cohorts' mean *logits* are
equal (the parity delta on the linear score is removed). The service reports
the parity delta :math:`\max_{g,h} |\bar p_g - \bar p_h|` of the mean
predicted propensities with and without the penalty and the log-loss /
AUC cost on held-out data (:func:`projection_matrix`).

Composite objective and bounded steps
-------------------------------------
Tuning knobs :math:`\kappa` (exploration temperature, candidate breadth) are
chosen to lower :math:`J(\kappa) = E[\ell] + \alpha\,\mathrm{cost} + \beta\,\mathrm{risk}`
(:func:`composite_objective`). A step moves each knob by at most
:math:`\delta_j` and stays in its box :math:`[lo_j, hi_j]`
(:func:`bounded_step`); a step is kept only if the measured :math:`J` does not
increase, otherwise it is reverted (every step is recorded, so any state can
be restored).

Safe modes and the rollback trigger
-----------------------------------
With monitored rates :math:`q_t` (error rate, latency-budget violations,
constraint violations), each an exponentially weighted mean
:math:`q_t = (1-\eta) q_{t-1} + \eta\, o_t` of 0/1 outcomes
(:func:`ewma`), the rollback trigger is :math:`r_t = 1[q_t > \tau_q]`
(:func:`rollback_trigger`) for any monitored *q*; when it fires the service
rolls back to the previous model version. *Cautious* mode (narrower
candidates, less exploration) is entered when the feature drift distance
:math:`d = \lVert(\bar x_{live} - \bar x_{ref})/s_{ref}\rVert_2/\sqrt{d}` or
the masking rate crosses its threshold; *paused* mode serves the fallback
action only.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from formulations.c360 import check_decay  # noqa: F401  (λ in (0, 1], shared with the batch features)
from formulations.errors import InputError

EVENT_SCHEMA_VERSION = 1
EVENT_TYPES = ("digital", "call", "branch")
DECAY_KINDS = ("digital", "call", "branch", "complaint")
MAX_DECAY_EXPONENT = 600.0
FIXED_POINT_BITS = 64
US_PER_DAY = 86_400_000_000


def event_position(t_us: int, epoch_us: int, period_days: float, latency_days: float, grid: bool) -> float:
    """τ_e: (t_e - t_0)/Δ in periods, or the bucket b(e) on the period grid."""
    days = (int(t_us) - int(epoch_us)) / US_PER_DAY
    if grid:
        return float(math.floor((days + latency_days) / period_days))
    return days / period_days


def anchor_weight(position: float, decay: float) -> float:
    """λ^{-τ}; raises InputError beyond the horizon τ ln(1/λ) <= 600 or before the epoch."""
    if position < 0:
        raise InputError("ts", "event before the schema epoch")
    expo = position * -math.log(decay) if decay < 1.0 else 0.0
    if expo > MAX_DECAY_EXPONENT:
        raise InputError("ts", f"event beyond the decay horizon (τ ln(1/λ) = {expo:.4g} > {MAX_DECAY_EXPONENT:g})")
    return math.exp(expo)


def fixed_point(value: float) -> int:
    """round(value · 2^64) as an exact integer (a deterministic function of ``value`` alone)."""
    return int(round(math.ldexp(float(value), FIXED_POINT_BITS)))


def from_fixed_point(total: int) -> float:
    """The float nearest to total · 2^-64 (Python's int → float conversion is correctly rounded)."""
    if total == 0:
        return 0.0
    return math.ldexp(float(total), -FIXED_POINT_BITS)


def read_accumulator(total: int, position: float, decay: float) -> float:
    """z(τ) = λ^τ A from the fixed-point anchored sum A."""
    if total == 0:
        return 0.0
    return from_fixed_point(total) * (decay ** position)


def reference_accumulator(events: Sequence[tuple[float, float]], position: float, decay: float) -> float:
    """Slow reference: the recurrence z <- λ^{Δτ} z + x over (τ_e, x_e) sorted by τ, read at ``position``."""
    z, last = 0.0, None
    for tau, x in sorted(e for e in events if e[0] <= position):
        z = z * (decay ** (tau - last)) + x if last is not None else x
        last = tau
    return z * (decay ** (position - last)) if last is not None else 0.0


# ---------------------------------------------------------------------------
# masking, projection, objective, trigger
# ---------------------------------------------------------------------------

def apply_mask(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x' = x ⊙ m (m of 0/1, broadcast over rows)."""
    return np.asarray(x, dtype=np.float64) * np.asarray(mask, dtype=np.float64)


def projection_matrix(features: np.ndarray, cohorts: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """P = QQᵀ onto span{μ_g - μ_first} of the cohort mean differences (see the docstring).

    Parameters
    ----------
    features : (n, d) array
    cohorts : (n,) integer labels (at least two distinct values)
    """
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(cohorts)
    if x.ndim != 2 or labels.shape != (x.shape[0],):
        raise InputError("cohorts", f"expected one label per row of features ({x.shape[0]}), got {labels.shape}")
    groups = np.unique(labels)
    if groups.size < 2:
        raise InputError("cohorts", "expected at least two cohorts to build protected directions")
    means = np.stack([x[labels == g].mean(axis=0) for g in groups])
    diffs = (means[1:] - means[0]).T                       # (d, G-1)
    u, s, _ = np.linalg.svd(diffs, full_matrices=False)
    q = u[:, s > tol * max(1.0, float(s.max(initial=0.0)))]
    return q @ q.T


def parity_delta(propensities: np.ndarray, cohorts: np.ndarray) -> float:
    """max_{g,h} |mean p_g - mean p_h|."""
    p = np.asarray(propensities, dtype=np.float64)
    labels = np.asarray(cohorts)
    means = [p[labels == g].mean() for g in np.unique(labels)]
    return float(max(means) - min(means))


def composite_objective(loss: float, cost: float, risk: float, alpha: float, beta: float) -> float:
    """J = E[ℓ] + α·cost + β·risk."""
    return float(loss) + float(alpha) * float(cost) + float(beta) * float(risk)


def bounded_step(knobs: np.ndarray, direction: np.ndarray, max_step: np.ndarray, lower: np.ndarray,
                 upper: np.ndarray) -> np.ndarray:
    """κ' = clip(κ + clip(direction, -δ, δ), lo, hi): each knob moves by at most δ_j and stays in its box."""
    k = np.asarray(knobs, dtype=np.float64)
    step = np.clip(np.asarray(direction, dtype=np.float64), -np.asarray(max_step), np.asarray(max_step))
    return np.clip(k + step, lower, upper)


def ewma(previous: float, outcome: float, rate: float) -> float:
    """q_t = (1 - η) q_{t-1} + η o_t."""
    return (1.0 - rate) * previous + rate * outcome


def rollback_trigger(rates: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """r_t = 1[q_t > τ_q]: the names of the monitored rates above their thresholds (empty = no trigger)."""
    return [name for name, q in rates.items() if name in thresholds and q > thresholds[name]]


def drift_distance(live_mean: np.ndarray, ref_mean: np.ndarray, ref_std: np.ndarray) -> float:
    """d = ||(x̄_live - x̄_ref)/s_ref||_2 / sqrt(d) (standardised root-mean-square shift)."""
    scale = np.where(np.asarray(ref_std) > 0, ref_std, 1.0)
    shift = (np.asarray(live_mean) - np.asarray(ref_mean)) / scale
    return float(np.sqrt(np.mean(shift ** 2))) if shift.size else 0.0
