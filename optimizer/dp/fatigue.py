"""A simulated contact-fatigue environment: many segments, five channels, shared capacities.

Used by ``contactplan mdp adp``, ``benchmarks/bench_dp.py`` and the tests.
Channels: email, sms, push (class "digital", no cooling) and call, mail
(class "personal", cooling 2 periods). Each segment is a contact-fatigue MDP
(:mod:`formulations.contact_mdp`) with its own channel response logits; its
customers start at engagement levels drawn for the segment, rested
(fatigue 0) and not recently contacted. With 5 engagement levels, 5 recency
values for 2 classes and 4 fatigue levels every segment has
5 x 25 x 4 = 500 states and 6 actions.

The myopic baseline scores each admissible contact by ``p_hat * value``
(response probability times the value of a response) and fills each
channel's capacity with the top scores, one contact per customer and period
— the single-week plan applied week after week.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formulations.contact_mdp import ContactMDP, ContactMDPParams, build_contact_mdp
from formulations.weakly_coupled import WeaklyCoupledProblem

CHANNELS = ("email", "sms", "push", "call", "mail")
CHANNEL_CLASS = (0, 0, 0, 1, 1)
BASE_LOGIT = np.array([-1.6, -1.9, -2.3, -0.6, -1.2])
VALUE = np.array([1.0, 1.0, 0.8, 5.0, 3.0])
COST = np.array([0.01, 0.03, 0.0, 1.2, 0.6])
CAPACITY_SHARE = np.array([0.20, 0.15, 0.15, 0.08, 0.08])   # of all customers, per period


@dataclass
class FatigueScenario:
    """The coupled problem plus what the baselines need."""

    problem: WeaklyCoupledProblem
    segments: list[ContactMDP] = field(repr=False)
    myopic_scores: np.ndarray = field(repr=False)   # (L_stacked,) p_hat * value per pair


def fatigue_scenario(n_segments: int = 100, customers_per_segment: int = 100, periods: int = 20,
                     beta: float = 0.95, capacity_share: np.ndarray | None = None, fatigue_strength: float = 0.3,
                     seed: int = 0) -> FatigueScenario:
    """Build the environment (segment parameters drawn with ``seed``)."""
    rng = np.random.default_rng(seed)
    segs: list[ContactMDP] = []
    initial = []
    for _ in range(int(n_segments)):
        params = ContactMDPParams(
            base_logit=BASE_LOGIT + rng.normal(0.0, 0.4, size=BASE_LOGIT.size),
            value=VALUE, cost=COST, channel_class=CHANNEL_CLASS, cooling=(1, 2),
            engagement_logit=(-1.0, -0.5, 0.0, 0.5, 1.0),
            fatigue_logit=tuple(-fatigue_strength * np.arange(4) * (1.0 + 0.3 * rng.random())),
            max_days=5, engagement_up=0.5, engagement_decay=0.1, fatigue_up=1.0, fatigue_recovery=0.35,
            beta=beta, channel_names=CHANNELS)
        c = build_contact_mdp(params)
        segs.append(c)
        level_weights = rng.dirichlet(np.ones(5))
        p0 = np.zeros(c.model.num_states)
        p0[c.state_index(np.arange(5), 5, 0)] = level_weights
        initial.append(p0)
    counts = np.full(int(n_segments), int(customers_per_segment))
    share = CAPACITY_SHARE if capacity_share is None else np.asarray(capacity_share, dtype=np.float64)
    capacity = np.floor(share * counts.sum())
    problem = WeaklyCoupledProblem([c.model for c in segs], counts, initial, capacity,
                                   segs[0].channel_of_action, horizon=periods)
    scores = np.concatenate([c.response_score() for c in segs])
    return FatigueScenario(problem, segs, scores)
