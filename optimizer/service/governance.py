"""Safe modes, drift / masking monitors, the rollback trigger and bounded knob tuning.

Maths in :mod:`formulations.streaming` ("Safe modes and the rollback
trigger", "Composite objective and bounded steps").

* :class:`SafeModes` -- ``paused`` (fallback only, set by an admin),
  ``cautious`` (set by an admin or automatically while the feature drift
  distance or the masking rate is above its threshold), else ``normal``.
* :class:`RollbackMonitor` -- EWMA rates q_t of 0/1 outcomes (``error``,
  ``latency`` over budget, ``violation`` of a constraint) and the trigger
  r_t = 1[q_t > τ_q] after a minimum number of observations.
* :class:`KnobTuner` -- bounded, reversible steps on tuning knobs under the
  composite objective J = E[ℓ] + α·cost + β·risk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formulations import streaming as F


@dataclass
class GovernanceConfig:
    """Thresholds of the safe modes and of the rollback trigger."""

    drift_threshold: float = 1.0
    mask_rate_threshold: float = 0.5
    monitor_window: int = 200
    monitor_every: int = 50
    rollback_thresholds: dict = field(default_factory=lambda: {"error": 0.05, "latency": 0.2, "violation": 0.1})
    rollback_rate: float = 0.05
    rollback_min_observations: int = 100
    auto_rollback: bool = True
    cautious_breadth: int = 50
    cautious_temperature_factor: float = 0.25


class SafeModes:
    """Mode of the service: ``paused`` > ``cautious`` > ``normal`` (see the module docstring)."""

    def __init__(self, config: GovernanceConfig, feature_mean: np.ndarray, feature_std: np.ndarray) -> None:
        self.config = config
        self.paused = False
        self.manual_cautious = False
        self.reasons: set[str] = set()
        self.set_reference(feature_mean, feature_std)
        self.mask_rate = 0.0

    def set_reference(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.ref_mean = np.asarray(mean, dtype=np.float64)
        self.ref_std = np.asarray(std, dtype=np.float64)
        self._window = np.zeros((self.config.monitor_window, self.ref_mean.size))
        self._masked = np.zeros(self.config.monitor_window, dtype=bool)
        self._n = 0
        self.drift = 0.0
        self.reasons.discard("drift")

    @property
    def mode(self) -> str:
        if self.paused:
            return "paused"
        if self.manual_cautious or self.reasons:
            return "cautious"
        return "normal"

    def observe(self, x: np.ndarray, masked: bool) -> None:
        """Record one decision's unmasked features and whether any consent group was withheld."""
        w = self.config.monitor_window
        self._window[self._n % w] = x
        self._masked[self._n % w] = masked
        self._n += 1
        if self._n % self.config.monitor_every == 0 and self._n >= min(w, self.config.monitor_every):
            self.evaluate()

    def evaluate(self) -> None:
        """Recompute the drift distance and the masking rate over the window; update the automatic reasons."""
        n = min(self._n, self.config.monitor_window)
        if n == 0:
            return
        self.drift = F.drift_distance(self._window[:n].mean(axis=0), self.ref_mean, self.ref_std)
        self.mask_rate = float(self._masked[:n].mean())
        for name, on in (("drift", self.drift > self.config.drift_threshold),
                         ("masking", self.mask_rate > self.config.mask_rate_threshold)):
            if on:
                self.reasons.add(name)
            else:
                self.reasons.discard(name)


class RollbackMonitor:
    """EWMA rates and the trigger r_t = 1[q_t > τ_q] (:func:`formulations.streaming.rollback_trigger`)."""

    def __init__(self, config: GovernanceConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.rates = {name: 0.0 for name in self.config.rollback_thresholds}
        self.observations = 0

    def observe(self, **outcomes: float) -> list[str]:
        """Update the rates with 0/1 outcomes; returns the triggered names (empty = r_t = 0)."""
        for name, o in outcomes.items():
            if name in self.rates:
                self.rates[name] = F.ewma(self.rates[name], float(o), self.config.rollback_rate)
        self.observations += 1
        if self.observations < self.config.rollback_min_observations:
            return []
        return F.rollback_trigger(self.rates, self.config.rollback_thresholds)


class KnobTuner:
    """Bounded, reversible steps on knobs (e.g. temperature, candidate breadth) under J.

    Parameters
    ----------
    knobs : dict name -> (value, lower, upper, max_step)
    alpha, beta : float
        Weights of cost and risk in J = E[ℓ] + α cost + β risk.
    """

    def __init__(self, knobs: dict, alpha: float = 1.0, beta: float = 1.0) -> None:
        self.names = list(knobs)
        spec = np.array([knobs[k] for k in self.names], dtype=np.float64)
        self.values, self.lower, self.upper, self.max_step = spec.T.copy()
        self.alpha, self.beta = float(alpha), float(beta)
        self.history: list[dict] = []
        self.best_objective: float | None = None

    def objective(self, loss: float, cost: float, risk: float) -> float:
        return F.composite_objective(loss, cost, risk, self.alpha, self.beta)

    def current(self) -> dict:
        return dict(zip(self.names, self.values.tolist()))

    def step(self, direction: np.ndarray, evaluate) -> bool:
        """Try κ' = bounded_step(κ, direction); keep it iff J(κ') <= J(κ), else revert. Returns kept."""
        if self.best_objective is None:
            self.best_objective = evaluate(self.current())
        old = self.values.copy()
        self.values = F.bounded_step(old, direction, self.max_step, self.lower, self.upper)
        j = evaluate(self.current())
        kept = j <= self.best_objective
        self.history.append({"from": old.tolist(), "to": self.values.tolist(), "objective": j, "kept": kept})
        if kept:
            self.best_objective = j
        else:
            self.values = old
        return kept

    def revert(self, steps: int = 1) -> dict:
        """Undo the last ``steps`` kept steps (restores the recorded values)."""
        kept = [h for h in self.history if h["kept"]]
        if steps > 0 and kept:
            self.values = np.array(kept[-min(steps, len(kept))]["from"])
            self.history.append({"revert": steps, "to": self.values.tolist()})
        return self.current()
