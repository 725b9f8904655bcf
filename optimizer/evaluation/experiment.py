"""Experiment design: hash-based assignment, sample size and power, guardrails with a stop rule.

Assignment
----------
Unit ``u`` gets the number ``h(u) = floor(H / 2**11) * 2**-53`` in [0, 1), where
``H`` is the 8-byte big-endian ``blake2b(salt + "\x1f" + str(u), digest_size=8)``
digest — the same convention as the decision policy's holdout draws
(:mod:`optimizer.randomization`), so one salt means one randomisation across
the project — and the variant ``k`` whose cumulative weight interval
``[W_{k-1}, W_k)`` contains ``h(u)``. The assignment is a pure function of
(unit id, salt, weights): the same in every process, machine and Python
version (``hashlib``, not Python's salted ``hash``), and a new salt gives an
independent re-randomisation. Unit ids are compared as strings (``123`` and
``"123"`` are the same unit).

Sample size and power (two proportions, normal approximation)
-------------------------------------------------------------
Control rate ``p1``, treatment rate ``p2 = p1 (1 + lift)`` (relative) or
``p1 + lift`` (absolute), allocation ``kappa = n_t / n_c``,
``pbar = (p1 + kappa p2) / (1 + kappa)``, ``z_a = z_{1 - alpha/2}``
(two-sided) or ``z_{1 - alpha}``, ``z_b = z_{power}``:

    n_c = [ z_a sqrt(pbar (1 - pbar) (1 + 1/kappa)) + z_b sqrt(p1 (1 - p1) + p2 (1 - p2) / kappa) ]^2 / (p2 - p1)^2

rounded up, ``n_t = ceil(kappa n_c)`` (Fleiss, without continuity correction:
``p1 = 0.10, p2 = 0.12`` needs 3,841 per arm at alpha = 0.05, power 0.8).
The power of given sizes is ``Phi((|delta| - z_a s0) / s1)`` (plus the other
tail when two-sided) with ``s0^2 = pbar (1 - pbar) (1/n_c + 1/n_t)`` and
``s1^2 = p1 (1 - p1) / n_c + p2 (1 - p2) / n_t``. For a mean difference
``delta`` with standard deviation ``sigma``:
``n_c = (z_a + z_b)^2 sigma^2 (1 + 1/kappa) / delta^2``.

Guardrails and the stop rule
----------------------------
A guardrail is a metric with an SLO threshold ``tau``, e.g. the 95th
percentile of latency or the complaint rate. At each check ``t`` the monitor
computes the metric ``q_t`` on the observations so far (or the last
``window`` of them) and raises ``r_t = 1[q_t > tau]`` once at least
``min_samples`` observations are in; the experiment stops at the first ``t``
where any guardrail has ``r_t = 1`` (and stays stopped).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from formulations.errors import InputError

# --------------------------------------------------------------------------- assignment


def hash_fraction(unit_ids: Iterable[Any], salt: str) -> np.ndarray:
    """``h(u)`` in [0, 1) per unit (see the module docstring); deterministic across processes."""
    if not isinstance(salt, str) or not salt:
        raise InputError("salt", f"expected a non-empty string, got {salt!r}")
    base = hashlib.blake2b((salt + "\x1f").encode("utf-8"), digest_size=8)
    digests = bytearray()
    for u in unit_ids:
        h = base.copy()
        h.update(str(u).encode("utf-8"))
        digests += h.digest()
    words = np.frombuffer(bytes(digests), dtype=">u8")
    return (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def assign_variants(unit_ids: Iterable[Any], salt: str, variants: Sequence[str] = ("control", "treatment"),
                    weights: Sequence[float] | None = None) -> np.ndarray:
    """Deterministic hash-based assignment of units to variants.

    Parameters
    ----------
    unit_ids : iterable
        Unit identifiers (compared as strings).
    salt : str
        Experiment salt; a new salt re-randomises.
    variants : sequence of str
        Variant names.
    weights : sequence of float, optional
        Traffic shares (normalised; default equal).

    Returns
    -------
    ndarray of str
        The variant of each unit.
    """
    names = list(variants)
    if len(names) < 1 or len(set(names)) != len(names):
        raise InputError("variants", f"expected distinct variant names, got {names!r}")
    w = np.ones(len(names)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(names),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InputError("weights", f"expected {len(names)} non-negative shares with a positive sum, got {weights!r}")
    edges = np.cumsum(w / w.sum())
    edges[-1] = 1.0
    h = hash_fraction(unit_ids, salt)
    idx = np.minimum(np.searchsorted(edges, h, side="right"), len(names) - 1)
    return np.asarray(names, dtype=object)[idx]


# --------------------------------------------------------------------------- sample size


@dataclass(frozen=True)
class SampleSize:
    """Units needed per arm for a two-arm test.

    Attributes
    ----------
    n_control, n_treatment, total : int
    baseline, target : float
        Control and treatment rate (or mean difference for means: baseline 0, target delta).
    alpha, power : float
        Requested error rates; ``achieved_power`` is the power at the rounded sizes.
    """

    n_control: int
    n_treatment: int
    total: int
    baseline: float
    target: float
    alpha: float
    power: float
    achieved_power: float
    alternative: str


def _z_alpha(alpha: float, alternative: str) -> float:
    if alternative not in ("two-sided", "one-sided"):
        raise InputError("alternative", f"expected 'two-sided' or 'one-sided', got {alternative!r}")
    return float(stats.norm.ppf(1 - alpha / 2 if alternative == "two-sided" else 1 - alpha))


def _check_unit(field: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and 0.0 < float(value) < 1.0):
        raise InputError(field, f"expected a number in (0, 1), got {value!r}")
    return float(value)


def _rates(baseline: float, lift: float, relative: bool) -> tuple[float, float]:
    p1 = _check_unit("baseline", baseline)
    p2 = p1 * (1.0 + lift) if relative else p1 + lift
    if not 0.0 < p2 < 1.0 or p2 == p1:
        raise InputError("lift", f"expected a non-zero lift keeping the treatment rate in (0, 1), got rate {p2:g}")
    return p1, p2


def power_two_proportions(n_control: int, n_treatment: int, baseline: float, lift: float, *, relative: bool = True,
                          alpha: float = 0.05, alternative: str = "two-sided") -> float:
    """Power of the two-proportion z-test with the given arm sizes."""
    p1, p2 = _rates(baseline, lift, relative)
    alpha = _check_unit("alpha", alpha)
    if n_control < 1 or n_treatment < 1:
        raise InputError("n_control", "expected at least one unit per arm")
    z_a = _z_alpha(alpha, alternative)
    kappa = n_treatment / n_control
    pbar = (p1 + kappa * p2) / (1 + kappa)
    s0 = math.sqrt(pbar * (1 - pbar) * (1 / n_control + 1 / n_treatment))
    s1 = math.sqrt(p1 * (1 - p1) / n_control + p2 * (1 - p2) / n_treatment)
    delta = abs(p2 - p1)
    power = stats.norm.cdf((delta - z_a * s0) / s1)
    if alternative == "two-sided":
        power += stats.norm.cdf((-delta - z_a * s0) / s1)
    return float(power)


def sample_size_two_proportions(baseline: float, lift: float, *, relative: bool = True, alpha: float = 0.05,
                                power: float = 0.8, ratio: float = 1.0,
                                alternative: str = "two-sided") -> SampleSize:
    """Units per arm to detect ``lift`` on a conversion rate ``baseline`` (module docstring formula)."""
    p1, p2 = _rates(baseline, lift, relative)
    alpha, power = _check_unit("alpha", alpha), _check_unit("power", power)
    if not (isinstance(ratio, (int, float)) and ratio > 0 and math.isfinite(ratio)):
        raise InputError("ratio", f"expected a positive allocation ratio n_t / n_c, got {ratio!r}")
    z_a, z_b = _z_alpha(alpha, alternative), float(stats.norm.ppf(power))
    pbar = (p1 + ratio * p2) / (1 + ratio)
    root = (z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio))
            + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / ratio))
    n_c = math.ceil(root ** 2 / (p2 - p1) ** 2 - 1e-9)
    n_t = math.ceil(ratio * n_c - 1e-9)
    achieved = power_two_proportions(n_c, n_t, p1, p2 - p1, relative=False, alpha=alpha, alternative=alternative)
    return SampleSize(n_control=n_c, n_treatment=n_t, total=n_c + n_t, baseline=p1, target=p2, alpha=alpha,
                      power=power, achieved_power=achieved, alternative=alternative)


def sample_size_means(std: float, min_effect: float, *, alpha: float = 0.05, power: float = 0.8,
                      ratio: float = 1.0, alternative: str = "two-sided") -> SampleSize:
    """Units per arm to detect a mean difference ``min_effect`` of a metric with standard deviation ``std``."""
    if not (std > 0 and math.isfinite(std)):
        raise InputError("std", f"expected a positive standard deviation, got {std!r}")
    if not (min_effect != 0 and math.isfinite(min_effect)):
        raise InputError("min_effect", f"expected a non-zero effect, got {min_effect!r}")
    alpha, power = _check_unit("alpha", alpha), _check_unit("power", power)
    z_a, z_b = _z_alpha(alpha, alternative), float(stats.norm.ppf(power))
    n_c = math.ceil((z_a + z_b) ** 2 * std ** 2 * (1 + 1 / ratio) / min_effect ** 2 - 1e-9)
    n_t = math.ceil(ratio * n_c - 1e-9)
    se = std * math.sqrt(1 / n_c + 1 / n_t)
    achieved = float(stats.norm.cdf(abs(min_effect) / se - z_a))
    if alternative == "two-sided":
        achieved += float(stats.norm.cdf(-abs(min_effect) / se - z_a))
    return SampleSize(n_control=n_c, n_treatment=n_t, total=n_c + n_t, baseline=0.0, target=float(min_effect),
                      alpha=alpha, power=power, achieved_power=achieved, alternative=alternative)


# --------------------------------------------------------------------------- guardrails


@dataclass(frozen=True)
class Guardrail:
    """A metric with an SLO threshold: the rule fires when ``q_t > threshold``.

    Parameters
    ----------
    name : str
        Metric name (the key of the observations passed to the monitor).
    threshold : float
        SLO ``tau``.
    statistic : {"mean", "rate", "quantile"}
        ``q_t``: the mean (a rate for 0/1 events) or a quantile of the observations.
    quantile : float
        For ``statistic="quantile"`` (0.95: the 95th percentile).
    min_samples : int
        No decision before this many observations.
    window : int, optional
        Use only the last ``window`` observations (default: all so far).
    """

    name: str
    threshold: float
    statistic: str = "mean"
    quantile: float = 0.95
    min_samples: int = 1
    window: int | None = None

    def __post_init__(self) -> None:
        if self.statistic not in ("mean", "rate", "quantile"):
            raise InputError("statistic", f"expected 'mean', 'rate' or 'quantile', got {self.statistic!r}")
        if not math.isfinite(self.threshold):
            raise InputError("threshold", f"expected a finite SLO threshold, got {self.threshold!r}")
        if not 0.0 < self.quantile < 1.0:
            raise InputError("quantile", f"expected a level in (0, 1), got {self.quantile!r}")
        if self.min_samples < 1 or (self.window is not None and self.window < 1):
            raise InputError("min_samples", "expected min_samples >= 1 and window >= 1")

    def statistic_of(self, values: np.ndarray) -> float:
        """``q_t`` of the given observations (NaN when there are none)."""
        if values.size == 0:
            return float("nan")
        if self.statistic == "quantile":
            return float(np.quantile(values, self.quantile))
        return float(values.mean())


@dataclass(frozen=True)
class GuardrailCheck:
    """The state after one check: ``q_t`` and ``r_t`` per guardrail, and whether to stop."""

    t: int
    values: dict[str, float]
    triggered: dict[str, bool]
    stop: bool
    reason: str | None


@dataclass
class GuardrailMonitor:
    """Accumulates observations per guardrail metric and applies ``r_t = 1[q_t > tau]``.

    ``update({"latency_ms": [...], "complaint": [...]})`` adds a batch and
    returns a :class:`GuardrailCheck`; once stopped, the monitor stays stopped.
    """

    guardrails: Sequence[Guardrail]
    _data: dict[str, list] = field(default_factory=dict, init=False, repr=False)
    history: list[GuardrailCheck] = field(default_factory=list, init=False)
    stopped_at: int | None = field(default=None, init=False)
    stop_reason: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        names = [g.name for g in self.guardrails]
        if not names or len(set(names)) != len(names):
            raise InputError("guardrails", f"expected guardrails with distinct names, got {names!r}")
        self._data = {name: [] for name in names}

    def update(self, observations: Mapping[str, Any]) -> GuardrailCheck:
        for name, values in observations.items():
            if name not in self._data:
                raise InputError("observations", f"unknown guardrail metric {name!r} (known: {list(self._data)})")
            arr = np.asarray(values, dtype=np.float64).ravel()
            if not np.isfinite(arr).all():
                raise InputError(name, "expected finite observations")
            self._data[name].append(arr)
        t = len(self.history)
        values, triggered = {}, {}
        for g in self.guardrails:
            chunks = self._data[g.name]
            data = np.concatenate(chunks) if chunks else np.empty(0)
            if g.window is not None:
                data = data[-g.window:]
                self._data[g.name] = [data]
            q = g.statistic_of(data)
            values[g.name] = q
            triggered[g.name] = bool(data.size >= g.min_samples and q > g.threshold)
        if self.stopped_at is None and any(triggered.values()):
            self.stopped_at = t
            fired = [g for g in self.guardrails if triggered[g.name]]
            self.stop_reason = "; ".join(f"{g.name} = {values[g.name]:.4g} > {g.threshold:.4g}" for g in fired)
        check = GuardrailCheck(t=t, values=values, triggered=triggered, stop=self.stopped_at is not None,
                               reason=self.stop_reason)
        self.history.append(check)
        return check

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def history_frame(self) -> pd.DataFrame:
        """One row per check: ``t``, ``q_<name>``, ``r_<name>``, ``stop``."""
        rows = []
        for c in self.history:
            row: dict[str, Any] = {"t": c.t}
            for name in c.values:
                row[f"q_{name}"] = c.values[name]
                row[f"r_{name}"] = int(c.triggered[name])
            row["stop"] = c.stop
            rows.append(row)
        return pd.DataFrame(rows)
