"""Online budget tracking on a synthetic stream: online dual ascent vs fixed batch prices.

:func:`simulate_stream` generates a drifting stream (:mod:`optimizer.policy_stream`),
then decides it three ways with the same uniform draws:

* **hindsight batch price** — the exact batch price fitted on the whole
  stream (the reference: the best *fixed* price for these events);
* **pilot price, fixed** — the batch price fitted on a pilot sample of the
  early traffic and never updated (what drift does to a static price);
* **online** — starts at the pilot price and runs projected dual ascent
  after every event (:func:`solvers.policy.run_online`).

Spend metrics (realised spend of the drawn actions, relative to the budget):
``after_warmup`` = average spend per event over the events after the first
``warmup`` share; ``max_running`` = the largest deviation of the running
average from the first event, checked every ``record_every`` events after the
warm-up; ``max_window`` = the largest deviation over windows of
``warmup * n`` events after the warm-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from formulations.policy import ResourceModel, check_temperature
from optimizer.policy_stream import generate_stream
from solvers import policy as S

RECORD_EVERY = 1000


@dataclass(frozen=True)
class PolicyRun:
    """Realised numbers of one way of deciding the stream."""

    name: str
    spend_after_warmup: float       # relative error of the average spend after the warm-up
    max_running_error: float        # largest |running average / budget - 1| after the warm-up
    max_window_error: float         # largest |window average / budget - 1| over windows after the warm-up
    total_spend_error: float        # whole stream
    value_per_event: float          # mean realised score of the chosen actions
    final_prices: np.ndarray
    seconds: float


@dataclass(frozen=True)
class StreamReport:
    """Result of :func:`simulate_stream`."""

    n_events: int
    budget: float
    temperature: float
    step: float
    warmup: float
    pilot_prices: np.ndarray
    hindsight_prices: np.ndarray
    hindsight_gap: float
    runs: dict = field(default_factory=dict)
    tracking_bound: float = float("nan")   # lambda_T / (eta W b): the guaranteed over-spend bound after warm-up
    timings: dict = field(default_factory=dict)


def spend_metrics(cost_per_event: np.ndarray, budget: float, warmup_events: int,
                  record_every: int = RECORD_EVERY) -> tuple[float, float, float, float]:
    """(after_warmup, max_running, max_window, total) relative spend errors of a realised cost sequence."""
    n = cost_per_event.size
    cum = np.concatenate([[0.0], np.cumsum(cost_per_event, dtype=np.float64)])
    w = int(warmup_events)
    after = (cum[n] - cum[w]) / ((n - w) * budget) - 1.0
    points = np.arange(max(w, record_every), n + 1, record_every)
    running = np.abs(cum[points] / (points * budget) - 1.0).max() if points.size else float("nan")
    starts = np.arange(w, n - w + 1, record_every)
    window = (np.abs((cum[starts + w] - cum[starts]) / (w * budget) - 1.0).max()
              if starts.size and w > 0 else float("nan"))
    total = cum[n] / (n * budget) - 1.0
    return float(after), float(running), float(window), float(total)


def simulate_stream(n_events: int = 1_000_000, budget: float = 0.5, temperature: float = 0.1, step: float = 1e-3,
                    seed: int = 0, warmup: float = 0.05, pilot_events: int = 20_000, realised: bool = True,
                    progress=None) -> StreamReport:
    """Decide a drifting stream three ways and report spend tracking (see the module docstring).

    ``progress`` is called with a short phase name before each phase.
    """
    tau = check_temperature(temperature)
    say = progress or (lambda phase: None)
    timings: dict = {}
    t0 = time.perf_counter()
    say("generating the stream")
    stream = generate_stream(n_events, seed)
    pilot = generate_stream(pilot_events, seed + 1, start=0.0, stop=min(1.0, pilot_events / n_events))
    timings["generate"] = time.perf_counter() - t0
    res = ResourceModel(stream.costs, budget)
    uniforms = np.random.default_rng([seed, 99]).random(n_events)
    w = int(round(warmup * n_events))
    say("fitting the pilot and hindsight batch prices")
    t = time.perf_counter()
    pilot_fit = S.fit_prices(pilot.scores, pilot.eligible, res, tau)
    timings["pilot_fit"] = time.perf_counter() - t
    t = time.perf_counter()
    hindsight = S.fit_prices(stream.scores, stream.eligible, res, tau)
    timings["hindsight_fit"] = time.perf_counter() - t
    runs = {}
    rows = np.arange(n_events)
    for name, prices in (("hindsight batch price", hindsight.prices), ("pilot price, fixed", pilot_fit.prices)):
        say(f"deciding with the {name}")
        t = time.perf_counter()
        out = S.decide_batch(stream.scores, stream.eligible, res.price_cost(prices), tau, uniforms,
                             np.r_[1.0, np.zeros(res.n_columns - 1)])
        secs = time.perf_counter() - t
        cost = res.costs[0, out.actions]
        value = float(np.mean(stream.scores[rows, out.actions], dtype=np.float64))
        runs[name] = PolicyRun(name, *spend_metrics(cost, budget, w), value, prices, secs)
    say("online dual ascent")
    steps = S.step_sizes(step, pilot_fit.prices, pilot_fit.price_box, res.budget)
    online = S.run_online(stream.scores, stream.eligible, res, pilot_fit.prices, steps, tau, uniforms,
                          realised=realised, record_every=RECORD_EVERY)
    cost = res.costs[0, online.actions]
    value = float(np.mean(stream.scores[rows, online.actions], dtype=np.float64))
    runs["online dual ascent"] = PolicyRun("online dual ascent", *spend_metrics(cost, budget, w), value,
                                           online.final_prices, online.wall_time)
    bound = float(online.price_path[:, 0].max() / (steps[0] * (n_events - w) * budget)) if online.price_path.size \
        else float("nan")
    timings["total"] = time.perf_counter() - t0
    return StreamReport(n_events, budget, tau, step, warmup, pilot_fit.prices, hindsight.prices, hindsight.gap, runs,
                        bound, timings)
