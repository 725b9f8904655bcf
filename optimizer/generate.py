"""Synthetic weekly instances with realistic structure.

Five channels with very different costs and capacities (calls and branch
slots scarce), day-of-week effects, consent gaps and customer segments:

=========  ===========  ==============================  =========
channel    cost / unit  capacity per day                consent
=========  ===========  ==============================  =========
email      0.01         50% of customers                85%
push       0.005        40% (app users only)            55%
sms        0.06         12%                             70%
call       4.0          1.2% Mon-Fri, 0.4% Sat, Sun 0   80%
branch     9.0          0.4% Mon-Sat, Sun closed        100%
=========  ===========  ==============================  =========

Utility of a contact = P(response uplift) x customer value - cost, where the
uplift is a channel base rate x a customer affinity (lognormal) x a
day-of-week effect, and the value depends on the customer's value tier.
Customers belong to one of eight segments (region x value tier); 2% have no
consent at all and 5% were called recently (no call this week).

The generator is chunked: chunk *c* uses ``numpy.random.default_rng([seed, c])``,
so a 10-million-customer float32 instance is produced block by block without
temporary arrays of full size, and the same seed always gives the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from formulations.assignment import WEEKDAYS, PlanningProblem

CHANNELS = ("email", "push", "sms", "call", "branch")
COST = np.array([0.01, 0.005, 0.06, 4.0, 9.0])
CONSENT = np.array([0.85, 0.55, 0.70, 0.80, 1.0])
BASE_UPLIFT = np.array([0.004, 0.003, 0.008, 0.05, 0.08])
# day-of-week multipliers (rows: channels, columns: Mon..Sun)
DAY_EFFECT = np.array([
    [1.00, 1.10, 1.05, 1.10, 0.95, 0.80, 0.85],   # email: best mid-week
    [0.95, 1.00, 1.00, 1.00, 1.05, 1.15, 1.10],   # push: weekend leisure
    [1.00, 1.00, 1.00, 1.00, 1.05, 0.90, 0.80],   # sms
    [1.10, 1.05, 1.00, 1.00, 0.90, 0.70, 0.60],   # call: early week
    [0.90, 0.95, 1.00, 1.05, 1.10, 1.30, 1.00],   # branch: Saturday
])
CAPACITY_SHARE = np.array([
    [0.50] * 7,
    [0.40] * 7,
    [0.12] * 7,
    [0.012, 0.012, 0.012, 0.012, 0.012, 0.004, 0.0],
    [0.004, 0.004, 0.004, 0.004, 0.004, 0.004, 0.0],
])
SEGMENTS = tuple(f"{region}-{tier}" for region in ("north", "south", "east", "west") for tier in ("std", "gold"))
CHUNK = 200_000


@dataclass(frozen=True)
class SyntheticInstance:
    """A generated problem plus the customer attributes behind it."""

    problem: PlanningProblem
    segment: np.ndarray      # (n,) index into SEGMENTS
    value: np.ndarray        # (n,) customer value


def default_budget(n_customers: int) -> float:
    """A budget that binds on the default instance (about 60% of the unconstrained optimum's spend)."""
    return round(0.45 * n_customers, 2)


def capacity_for(n_customers: int) -> np.ndarray:
    """(5, 7) capacities for ``n_customers`` (whole contacts per channel and day)."""
    return np.floor(CAPACITY_SHARE * n_customers)


def _chunk(seed: int, index: int, size: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Utility (size, 5, 7) with -inf where not allowed, segment and value for one chunk."""
    rng = np.random.default_rng([seed, index])
    M, T = len(CHANNELS), 7
    region = rng.integers(0, 4, size)
    gold = rng.random(size) < 0.25
    segment = region * 2 + gold
    value = rng.lognormal(mean=np.where(gold, 4.6, 3.6), sigma=0.5).astype(np.float64)
    affinity = rng.lognormal(mean=0.0, sigma=0.6, size=(size, M))
    region_effect = np.array([1.0, 0.9, 1.1, 1.0])[region]
    uplift = BASE_UPLIFT[None, :] * affinity * region_effect[:, None]
    noise = rng.lognormal(0.0, 0.15, size=(size, M, T))
    prob = np.minimum(uplift[:, :, None] * DAY_EFFECT[None, :, :] * noise, 0.9)
    u = (prob * value[:, None, None] - COST[None, :, None]).astype(dtype)
    consent = rng.random((size, M)) < CONSENT[None, :]
    consent &= (rng.random(size) >= 0.02)[:, None]          # 2% opted out of everything
    consent[:, 3] &= rng.random(size) >= 0.05                  # 5% called recently: cooling
    u[~np.broadcast_to(consent[:, :, None], u.shape)] = -np.inf
    u[:, CAPACITY_SHARE == 0] = -np.inf                       # closed: call and branch on Sunday
    return u, segment.astype(np.int64), value


def generate_problem(n_customers: int, seed: int = 0, *, budget: float | None | str = "default",
                     max_contacts: int = 2, min_gap_days: int = 2, dtype=np.float32) -> SyntheticInstance:
    """A synthetic :class:`PlanningProblem` built chunk by chunk (float32 by default).

    ``budget="default"`` uses :func:`default_budget`; None means no budget.
    """
    n = int(n_customers)
    if n < 1:
        raise ValueError("n_customers must be >= 1")
    u = np.empty((n, len(CHANNELS), 7), dtype=dtype)
    segment = np.empty(n, dtype=np.int64)
    value = np.empty(n, dtype=np.float64)
    for c, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        u[start:start + size], segment[start:start + size], value[start:start + size] = _chunk(seed, c, size, dtype)
    if isinstance(budget, str):
        budget = default_budget(n)
    problem = PlanningProblem(utility=u, capacity=capacity_for(n), cost=COST, budget=budget,
                              max_contacts=max_contacts, min_gap_days=min_gap_days,
                              channel_names=CHANNELS, day_labels=WEEKDAYS)
    return SyntheticInstance(problem, segment, value)


def generate_tables(n_customers: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The same instance as long tables: (scores, channels, customers).

    ``scores`` lists only allowed contacts (negative utilities included), with
    ``customer_id`` like ``C0000042``; ``channels`` has cost and per-day
    capacities; ``customers`` has the segment and value.
    """
    inst = generate_problem(n_customers, seed, budget=None, dtype=np.float64)
    u = inst.problem.utility
    n, M, T = u.shape
    width = max(7, len(str(n)))
    ids = np.array([f"C{i:0{width}d}" for i in range(n)], dtype=object)
    i, m, t = np.nonzero(np.isfinite(u))
    scores = pd.DataFrame({
        "customer_id": ids[i],
        "channel": np.asarray(CHANNELS, dtype=object)[m],
        "day": np.asarray(WEEKDAYS, dtype=object)[t],
        "utility": np.round(u[i, m, t], 4),
    })
    channels = pd.DataFrame({"channel": CHANNELS, "cost": COST})
    cap = capacity_for(n)
    for d, label in enumerate(WEEKDAYS):
        channels[f"capacity_{label}"] = cap[:, d].astype(np.int64)
    customers = pd.DataFrame({"customer_id": ids, "segment": np.asarray(SEGMENTS, dtype=object)[inst.segment],
                              "value": np.round(inst.value, 2)})
    return scores, channels, customers
