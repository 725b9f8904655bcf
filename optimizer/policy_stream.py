"""Synthetic event streams with drifting traffic, for the real-time policy.

Ten actions: five channels (the costs of :mod:`optimizer.generate`: email
0.01, push 0.005, sms 0.06, call 4.0, branch 9.0) x two offers. Event *t* of
*n* happens at stream time :math:`s = t / n \\in [0, 1)`; its scores are

.. math::

    u(x, a) = \\text{value}(x) \\cdot p_{\\text{channel}(a)} \\cdot \\text{affinity}(x, a)
              \\cdot f_{\\text{offer}(a)}(x) \\cdot \\text{trend}_{\\text{channel}(a)}(s),

with a lognormal customer value, lognormal affinities and an offer fit.
The traffic drifts in three ways:

* a cycle (four "days" per stream): the share of high-value customers moves
  between 15% and 45%;
* a trend: the call and branch uplift grows by 50% from start to end;
* a consent shift: the share of units reachable by call falls from 90% to 70%.

Eligibility otherwise: 20% of units lack consent for sms, 40% have no app
(push).

The same seed always gives the same stream (chunk *c* uses
``default_rng([seed, c])``); ``start``/``stop`` select a stream-time window,
so a *pilot* sample of the early traffic comes from the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANNEL_COST = np.array([0.01, 0.005, 0.06, 4.0, 9.0])
CHANNEL_UPLIFT = np.array([0.004, 0.003, 0.008, 0.05, 0.08])
CHANNEL_NAMES = ("email", "push", "sms", "call", "branch")
OFFERS = ("retention", "upsell")
CYCLES = 4
CHUNK = 250_000


@dataclass(frozen=True, eq=False)
class EventStream:
    """A generated stream.

    Attributes
    ----------
    scores : ndarray (n, 11) float32
        Column 0 = no contact (0), then channel x offer.
    eligible : ndarray of bool (n, 11)
    costs : ndarray (11,)
    action_names : tuple of str
    times : ndarray (n,)
        Stream time of each event in [0, 1).
    """

    scores: np.ndarray
    eligible: np.ndarray
    costs: np.ndarray
    action_names: tuple
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def action_costs() -> np.ndarray:
    """(11,) cost per action, 0 for no contact."""
    return np.r_[0.0, np.repeat(CHANNEL_COST, len(OFFERS))]


def action_names() -> tuple:
    return ("no_contact",) + tuple(f"{c}:{o}" for c in CHANNEL_NAMES for o in OFFERS)


def _chunk(rng: np.random.Generator, times: np.ndarray, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    size = times.size
    M, O = len(CHANNEL_NAMES), len(OFFERS)
    phase = (times * CYCLES) % 1.0
    gold_share = 0.30 + 0.15 * np.sin(2 * np.pi * phase) if drift else np.full(size, 0.30)
    gold = rng.random(size) < gold_share
    value = rng.lognormal(np.where(gold, 4.6, 3.6), 0.5)
    affinity = rng.lognormal(0.0, 0.6, size=(size, M))
    offer_fit = rng.lognormal(0.0, 0.3, size=(size, O))
    trend = np.ones((size, M))
    if drift:
        trend[:, 3:] = 1.0 + 0.5 * times[:, None]
    uplift = CHANNEL_UPLIFT[None, :] * affinity * trend                    # (size, M)
    u = value[:, None, None] * uplift[:, :, None] * offer_fit[:, None, :]  # (size, M, O)
    scores = np.zeros((size, 1 + M * O), dtype=np.float32)
    scores[:, 1:] = np.minimum(u, 0.9 * value[:, None, None]).reshape(size, M * O)
    eligible = np.ones((size, 1 + M * O), dtype=bool)
    consent = np.ones((size, M), dtype=bool)
    consent[:, 1] = rng.random(size) >= 0.4
    consent[:, 2] = rng.random(size) >= 0.2
    consent[:, 3] = rng.random(size) < (0.9 - 0.2 * times if drift else 0.9)
    eligible[:, 1:] = np.repeat(consent, O, axis=1)
    return scores, eligible


def generate_stream(n_events: int, seed: int = 0, *, start: float = 0.0, stop: float = 1.0,
                    drift: bool = True) -> EventStream:
    """``n_events`` events evenly spread over stream time ``[start, stop)``.

    Parameters
    ----------
    n_events : int
    seed : int
    start, stop : float
        Stream-time window in [0, 1].
    drift : bool
        False gives stationary traffic (the start-of-stream mix, no trend,
        channels always open).
    """
    n = int(n_events)
    if n < 1:
        raise ValueError("n_events must be >= 1")
    if not 0.0 <= start < stop <= 1.0:
        raise ValueError("expected 0 <= start < stop <= 1")
    times = start + (stop - start) * np.arange(n) / n
    scores = np.empty((n, 11), dtype=np.float32)
    eligible = np.empty((n, 11), dtype=bool)
    for c, lo in enumerate(range(0, n, CHUNK)):
        hi = min(n, lo + CHUNK)
        scores[lo:hi], eligible[lo:hi] = _chunk(np.random.default_rng([seed, c]), times[lo:hi], drift)
    return EventStream(scores, eligible, action_costs(), action_names(), times)
