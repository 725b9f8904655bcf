"""``LagrangianPolicy``: budget-constrained next-best-action decisions in microseconds.

::

    policy = LagrangianPolicy(costs, budget, temperature=0.1).fit(scores_sample, eligible_sample)
    decision = policy.decide(scores, eligible, rng=rng, unit_ids=ids)
    decision.actions, decision.propensities, decision.prices

Shapes: ``scores`` (n, A+1) with column 0 = no contact; ``eligible`` a bool
mask of the same shape (None = everything eligible; column 0 is always
eligible); ``costs`` (A+1,) with ``costs[0] = 0`` or (k, A+1) for k
resources with ``budget`` (k,); ``budget`` is the allowed *average* use per
decision. The maths is in :mod:`formulations.policy`.

Runtime behaviour
-----------------
* **Draws**: ``rng`` (a numpy Generator or a seed) when given; otherwise, with
  ``unit_ids``, the deterministic hash draw of :mod:`optimizer.randomization`
  (same unit id + salt = same draw); otherwise the policy's ``random_state``.
* **Holdout**: with ``control_share > 0`` the units whose hash falls in the
  control group get no contact (propensity 1, reason ``control``);
  ``unit_ids`` are then required.
* **Fallback policy**: a unit with missing scores (NaN / +inf on an eligible
  action, non-finite column 0), or every unit while the model is flagged
  stale, is decided by the fallback distribution: no contact (default) or
  the ``fallback`` probabilities renormalised over the unit's eligible
  actions. The fallback's expected cost must fit the budget.
* **Stale model**: :meth:`LagrangianPolicy.monitor` compares the live score
  moments with the fit sample's, ``d = ||(mean_live - mean_ref) / sd_ref||_2 /
  sqrt(A+1)`` (a root-mean-square standardised shift); ``d > drift_threshold``
  flags the model stale until a refit, a rollback or ``mark_stale(False)``.
* **Versions and rollback**: every :meth:`fit` / :meth:`set_prices` creates a
  model version; :meth:`rollback` restores the previous one.
* **Online prices**: with ``step > 0`` every ``decide`` call ends with the
  projected dual ascent update ``lambda <- [lambda + eta (use - n b)]_+`` on
  the batch's realised (or expected) use, ``eta_j = step * ref_j / b_j``.
* **Trace**: with ``trace=`` a path or :class:`~optimizer.decision_trace.DecisionTrace`,
  every decision is appended as a JSON line (schema in
  :mod:`optimizer.decision_trace`).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from formulations import _validate as v
from formulations import policy as F
from formulations.errors import InputError
from optimizer.decision_trace import DecisionTrace, trace_lines
from optimizer.randomization import check_share, hash_uniforms
from solvers import policy as S


@dataclass(frozen=True, eq=False)
class ScoreMoments:
    """Per-action mean, standard deviation and count of the allowed finite scores."""

    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray, eligible: np.ndarray | None) -> "ScoreMoments":
        ok = F.allowed_mask(scores, eligible) & np.isfinite(scores)
        x = np.where(ok, scores.astype(np.float64), 0.0)
        count = ok.sum(axis=0)
        safe = np.maximum(count, 1)
        mean = x.sum(axis=0) / safe
        var = np.where(ok, (scores.astype(np.float64) - mean) ** 2, 0.0).sum(axis=0) / safe
        return cls(np.where(count > 0, mean, np.nan), np.sqrt(var), count)

    def distance(self, live: "ScoreMoments") -> tuple[float, np.ndarray]:
        """(d, per-action standardised shift) against ``live`` (see the module docstring)."""
        scale = np.where(self.std > 0, self.std, 1.0)
        shift = (live.mean - self.mean) / scale
        used = np.isfinite(shift) & (self.count > 0) & (live.count > 0)
        if not used.any():
            return 0.0, np.where(used, shift, 0.0)
        return float(np.sqrt(np.mean(shift[used] ** 2))), np.where(used, shift, 0.0)


@dataclass(frozen=True)
class DriftReport:
    """Result of :meth:`LagrangianPolicy.monitor`."""

    distance: float
    threshold: float
    stale: bool
    shift: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class PolicyVersion:
    """One model version: prices, temperature, reference moments, how they were obtained."""

    model_version: str
    prices: np.ndarray
    temperature: float
    reference: ScoreMoments | None
    fit: S.PriceFit | None
    source: str
    created: float


@dataclass(frozen=True, eq=False)
class Decision:
    """A batch of decisions.

    Attributes
    ----------
    actions : ndarray (n,) int64
        Chosen actions (0 = no contact).
    propensities : ndarray (n,) float64
        Probability with which each action was chosen.
    reasons : ndarray (n,) int8
        0 policy, 1 fallback (missing scores), 2 fallback (stale model),
        3 control group; names in :attr:`reason_names`.
    prices : ndarray (k,)
        Prices used for the batch.
    model_version : str
    timestamp : float
        Seconds since the epoch when the batch was decided.
    unit_ids : sequence or None
    resource_names : tuple of str
    probabilities : ndarray (n, A+1) or None
        The full action distribution of each decision (policy, fallback or
        control), when the policy was built with ``trace_probabilities=True``.
    """

    actions: np.ndarray
    propensities: np.ndarray
    reasons: np.ndarray
    prices: np.ndarray
    model_version: str
    timestamp: float
    unit_ids: Sequence[Any] | None
    resource_names: tuple
    id_prefix: str = field(repr=False, default="")
    first_sequence: int = field(repr=False, default=0)
    probabilities: np.ndarray | None = field(repr=False, default=None)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def decision_ids(self) -> list[str]:
        """Unique ids ``<prefix>-<sequence>`` of the decisions."""
        p, s = self.id_prefix, self.first_sequence
        return [f"{p}-{s + i}" for i in range(len(self))]

    @property
    def reason_names(self) -> np.ndarray:
        return np.asarray(F.REASON_NAMES, dtype=object)[self.reasons]

    @property
    def in_control(self) -> np.ndarray:
        return self.reasons == F.REASON_CONTROL

    def to_frame(self) -> pd.DataFrame:
        """The trace fields as a DataFrame (one row per decision)."""
        import json

        return pd.DataFrame([json.loads(line) for line in trace_lines(self)])


def _fallback_distribution(value: Any, resources: F.ResourceModel) -> np.ndarray:
    a1 = resources.n_columns
    if value is None or (isinstance(value, str) and value == "no_contact"):
        out = np.zeros(a1)
        out[0] = 1.0
        return out
    p = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else None
    if p is None or p.shape != (a1,) or not np.isfinite(p).all() or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise InputError("fallback", f"expected 'no_contact' or {a1} non-negative probabilities summing to 1, "
                                     f"got {value!r}")
    use = resources.costs @ p
    if (use > resources.budget * (1 + 1e-12)).any():
        j = int(np.flatnonzero(use > resources.budget)[0])
        raise InputError("fallback", f"expected a fallback whose expected use fits the budget, got {use[j]:.6g} "
                                     f"> {resources.budget[j]:.6g} on {resources.names[j]!r}")
    return p / p.sum()


class LagrangianPolicy:
    """Budget-constrained softmax policy over eligible actions (see the module docstring).

    Parameters
    ----------
    costs : array_like (A+1,) or (k, A+1)
        Resource use per action; column 0 (no contact) must be 0.
    budget : float or array_like (k,)
        Allowed average use per decision.
    temperature : float
        Softmax temperature in score units (0 = argmax policy).
    resource_names : sequence of str, optional
    step : float
        Relative online dual-ascent step (0 = fixed prices).
    feedback : {"realised", "expected"}
        Use fed to the online update: the chosen actions' or the policy's expected use.
    fallback : "no_contact" or array_like (A+1,)
        The fallback policy.
    control_share : float
        Share of units held out (no contact) by hash, in [0, 1).
    salt : str
        Salt of the hash randomisation.
    drift_threshold : float
        Stale-model threshold on the drift distance.
    trace : str, path-like or DecisionTrace, optional
        Where decisions are appended as JSON lines.
    random_state : int or numpy Generator, optional
        Draws when neither ``rng`` nor ``unit_ids`` are given.
    trace_probabilities : bool
        Also return (and trace, as ``action_probabilities``) the full action
        distribution of every decision (slower: a NumPy pass over the batch).
    exploration : float
        kappa of the UCB option: when ``decide`` gets ``scores_std``, the
        scores become ``mean + kappa * std``.
    similarity : array_like (A+1, A+1), optional
        Item similarity Q of the diversity option ...
    diversity : float
        ... and its weight gamma: when ``decide`` gets ``exposure``, the
        scores become ``s - gamma q^T Q`` (see :mod:`formulations.policy_learning`).
    """

    def __init__(self, costs: Any, budget: Any, temperature: float = 0.1, *, resource_names: Sequence[str] = (),
                 step: float = 0.0, feedback: str = "realised", fallback: Any = "no_contact",
                 control_share: float = 0.0, salt: str = "contactplan", drift_threshold: float = 0.5,
                 trace: Any = None, random_state: Any = None, trace_probabilities: bool = False,
                 exploration: float = 0.0, similarity: Any = None, diversity: float = 0.0) -> None:
        self.resources = F.ResourceModel(costs, budget, tuple(resource_names))
        self.temperature = F.check_temperature(temperature)
        try:
            self.step = float(step)
        except (TypeError, ValueError):
            raise InputError("step", f"expected a number >= 0, got {step!r}") from None
        if not np.isfinite(self.step) or self.step < 0:
            raise InputError("step", f"expected a number >= 0, got {step!r}")
        if feedback not in ("realised", "expected"):
            raise InputError("feedback", f"expected 'realised' or 'expected', got {feedback!r}")
        self.feedback = feedback
        self.fallback = _fallback_distribution(fallback, self.resources)
        self.control_share = check_share(control_share)
        self.salt = str(salt)
        try:
            self.drift_threshold = float(drift_threshold)
        except (TypeError, ValueError):
            raise InputError("drift_threshold", f"expected a number > 0, got {drift_threshold!r}") from None
        if not self.drift_threshold > 0:
            raise InputError("drift_threshold", f"expected a number > 0, got {drift_threshold!r}")
        if trace is None or isinstance(trace, DecisionTrace):
            self.trace = trace
        elif isinstance(trace, (str, os.PathLike)):
            self.trace = DecisionTrace(trace)
        else:
            raise InputError("trace", f"expected a path or a DecisionTrace, got {type(trace).__name__}")
        self.random_state = random_state
        self.trace_probabilities = bool(trace_probabilities)
        self.exploration = v.nonnegative_scalar("exploration", exploration)
        self.diversity = v.nonnegative_scalar("diversity", diversity)
        a1 = self.resources.n_columns
        self.similarity = None if similarity is None else v.numeric_array("similarity", similarity, ndim=2,
                                                                            shape=(a1, a1))
        if self.similarity is not None:
            v.check_finite_nonnegative("similarity", self.similarity)
        self._rng = np.random.default_rng(random_state)
        self._id_prefix = uuid.uuid4().hex[:8]
        self._sequence = 0
        self._versions_made = 0
        self.version_: PolicyVersion | None = None
        self.history_: list[PolicyVersion] = []
        self.prices_: np.ndarray | None = None
        self.steps_: np.ndarray | None = None
        self.stale_ = False
        self.decisions_ = 0

    # ------------------------------------------------------------ properties
    @property
    def n_columns(self) -> int:
        return self.resources.n_columns

    @property
    def model_version_(self) -> str:
        return self._require().model_version

    @property
    def temperature_(self) -> float:
        return self._require().temperature

    @property
    def fit_result_(self) -> S.PriceFit | None:
        return self._require().fit

    def _require(self) -> PolicyVersion:
        if self.version_ is None:
            raise InputError("policy", "not fitted: call fit(scores_sample) or set_prices(prices) first")
        return self.version_

    # ------------------------------------------------------------ versions
    def _activate(self, prices: np.ndarray, fit: S.PriceFit | None, reference: ScoreMoments | None, source: str,
                  model_version: str | None, price_box: np.ndarray | None = None) -> None:
        self._versions_made += 1
        name = str(model_version) if model_version is not None else f"v{self._versions_made}"
        version = PolicyVersion(name, prices.copy(), self.temperature, reference, fit, source, time.time())
        if self.version_ is not None:
            self.history_.append(self.version_)
        self._install(version, price_box)

    def _install(self, version: PolicyVersion, price_box: np.ndarray | None = None) -> None:
        self.version_ = version
        self.prices_ = version.prices.copy()
        self._price_cost = self.resources.price_cost(self.prices_)
        box = price_box if price_box is not None else (version.fit.price_box if version.fit is not None
                                                       else np.maximum(version.prices, 1e-12))
        self.steps_ = S.step_sizes(self.step, version.prices, box, self.resources.budget)
        self.stale_ = False

    def fit(self, scores: Any, eligible: Any = None, *, model_version: str | None = None,
            warm_start: bool = True) -> "LagrangianPolicy":
        """Fit the batch prices on a sample of contexts (exact, with a bound) and activate them.

        Rows with missing scores are skipped. ``warm_start`` starts the
        multi-resource search from the current prices (e.g. a plan's).
        """
        s = F.check_scores(scores, self.n_columns)
        e = F.check_eligible(eligible, s.shape)
        start = self.prices_ if (warm_start and self.prices_ is not None) else None
        result = S.fit_prices(s, e, self.resources, self.temperature, start=start)
        self._activate(result.prices, result, ScoreMoments.of(s, e), "fit", model_version, result.price_box)
        return self

    def set_prices(self, prices: Any, *, model_version: str | None = None, source: str = "manual",
                   reference_scores: Any = None, reference_eligible: Any = None) -> "LagrangianPolicy":
        """Activate given prices as a new model version (e.g. a weekly plan's capacity prices)."""
        p = F.check_prices(prices, self.resources.n_resources)
        reference = None
        if reference_scores is not None:
            s = F.check_scores(reference_scores, self.n_columns, "reference_scores")
            reference = ScoreMoments.of(s, F.check_eligible(reference_eligible, s.shape, "reference_eligible"))
        self._activate(p, None, reference, source, model_version)
        return self

    def rollback(self) -> PolicyVersion:
        """Restore the previous model version (the current one is discarded); returns it."""
        if not self.history_:
            raise InputError("rollback", "no previous model version to restore")
        self._install(self.history_.pop())
        return self.version_  # type: ignore[return-value]

    # ------------------------------------------------------------ monitoring
    def monitor(self, scores: Any, eligible: Any = None) -> DriftReport:
        """Compare live scores with the fit sample; flag the model stale when the drift exceeds the threshold."""
        version = self._require()
        s = F.check_scores(scores, self.n_columns)
        live = ScoreMoments.of(s, F.check_eligible(eligible, s.shape))
        if version.reference is None:
            return DriftReport(0.0, self.drift_threshold, self.stale_, np.zeros(self.n_columns))
        d, shift = version.reference.distance(live)
        if d > self.drift_threshold:
            self.stale_ = True
        return DriftReport(d, self.drift_threshold, self.stale_, shift)

    def mark_stale(self, stale: bool = True) -> None:
        """Flag (or clear) the model as stale by hand."""
        self.stale_ = bool(stale)

    # ------------------------------------------------------------ decisions
    def _uniforms(self, n: int, rng: Any, unit_ids: Sequence[Any] | None) -> np.ndarray:
        if rng is not None:
            gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            return gen.random(n)
        if unit_ids is not None:
            return hash_uniforms(unit_ids, self.salt + "/draw")
        return self._rng.random(n)

    def decide(self, scores: Any, eligible: Any = None, *, rng: Any = None, unit_ids: Sequence[Any] | None = None,
               trace: bool = True, scores_std: Any = None, exposure: Any = None) -> Decision:
        """Decide a batch of units (or one unit given a (A+1,) row).

        Parameters
        ----------
        scores : array_like (n, A+1) or (A+1,)
        eligible : array_like of bool, same shape, optional
        rng : numpy Generator or int, optional
            Source of the draws (else hash draws from ``unit_ids``, else ``random_state``).
        unit_ids : sequence (n,), optional
            Unit ids for hash draws, the holdout and the trace.
        trace : bool
            Write the decisions to the policy's trace (when it has one).
        scores_std : array_like, same shape as scores, optional
            Standard deviations for the UCB option (``scores + exploration * std``).
        exposure : array_like, same shape as scores, optional
            Recent exposure per action for the diversity option (needs ``similarity``).

        Returns
        -------
        Decision
        """
        version = self.version_
        if version is None:
            self._require()
        s = F.check_scores(scores, self.resources.costs.shape[1])
        if scores_std is not None or exposure is not None:
            s = self._transform_scores(s, scores_std, exposure)
        n = s.shape[0]
        e = None if eligible is None else F.check_eligible(eligible, s.shape)
        if unit_ids is not None and len(unit_ids) != n:
            raise InputError("unit_ids", f"expected {n} ids (one per row of scores), got {len(unit_ids)}")
        if self.control_share > 0.0 and unit_ids is None:
            raise InputError("unit_ids", "expected unit ids: the policy holds out a control group by unit id")
        uniforms = self._uniforms(n, rng, unit_ids)
        prices = self.prices_
        out = S.decide_batch(s, e, self._price_cost, version.temperature, uniforms, self.fallback, self.stale_)
        if self.control_share > 0.0:
            control = hash_uniforms(unit_ids, self.salt + "/arm") < self.control_share
            out.actions[control] = 0
            out.propensities[control] = 1.0
            out.reasons[control] = F.REASON_CONTROL
        probs = self._distributions(s, e, out.reasons, version.temperature) if self.trace_probabilities else None
        decision = Decision(out.actions, out.propensities, out.reasons, prices, version.model_version, time.time(),
                            unit_ids, self.resources.names, self._id_prefix, self._sequence, probs)
        self._sequence += n
        self.decisions_ += n
        if self.step > 0.0:
            self._update_prices(s, e, out, n)
        if trace and self.trace is not None:
            self.trace.write(decision)
        return decision

    def _transform_scores(self, s: np.ndarray, scores_std: Any, exposure: Any) -> np.ndarray:
        """The UCB and diversity options (formulations.policy_learning)."""
        from formulations.policy_learning import diversify_scores, ucb_scores

        if scores_std is not None:
            std = np.asarray(scores_std)
            s = ucb_scores(s, std.reshape(s.shape) if std.size == s.size else std, self.exploration)
        if exposure is not None:
            if self.similarity is None:
                raise InputError("exposure", "expected a policy built with similarity= to use exposure")
            q = np.asarray(exposure)
            s = diversify_scores(s, q.reshape(s.shape) if q.size == s.size else q, self.similarity, self.diversity)
        return s

    def _distributions(self, s: np.ndarray, e: np.ndarray | None, reasons: np.ndarray, tau: float) -> np.ndarray:
        """The distribution each decision was drawn from (policy, fallback or control)."""
        probs = F.policy_probabilities(s, e, self._price_cost, tau)
        fb_rows = (reasons == F.REASON_MISSING) | (reasons == F.REASON_STALE)
        if fb_rows.any():
            allowed = F.allowed_mask(s[fb_rows], None if e is None else e[fb_rows])
            w = np.where(allowed, self.fallback[None, :], 0.0)
            total = w.sum(axis=1, keepdims=True)
            none = total[:, 0] <= 0
            w[none, 0], total[none] = 1.0, 1.0
            probs[fb_rows] = w / total
        control = reasons == F.REASON_CONTROL
        probs[control] = 0.0
        probs[control, 0] = 1.0
        return probs

    def _update_prices(self, s: np.ndarray, e: np.ndarray | None, out: S.BatchDecisions, n: int) -> None:
        res = self.resources
        if self.feedback == "realised" or self.version_.temperature == 0.0:
            use = res.costs[:, out.actions].sum(axis=1)
        else:
            policy_rows = out.reasons == F.REASON_POLICY
            use = res.costs[:, out.actions[~policy_rows]].sum(axis=1)
            if policy_rows.any():
                sub = s[policy_rows]
                point = S.evaluate(sub, None if e is None else e[policy_rows], res, self.prices_,
                                   self.version_.temperature)
                use = use + point.expected_use * int(policy_rows.sum())
        self.prices_ = np.maximum(self.prices_ + self.steps_ * (use - n * res.budget), 0.0)
        self._price_cost = res.price_cost(self.prices_)

    # ------------------------------------------------------------ analysis
    def probabilities(self, scores: Any, eligible: Any = None) -> np.ndarray:
        """pi(a | x) at the current prices, (n, A+1) (NaN rows for missing scores)."""
        self._require()
        s = F.check_scores(scores, self.n_columns)
        return F.policy_probabilities(s, F.check_eligible(eligible, s.shape), self._price_cost,
                                      self.version_.temperature)

    def expected_use(self, scores: Any, eligible: Any = None) -> np.ndarray:
        """Mean expected resource use per decision at the current prices (closed form), (k,).

        Rows with missing scores count as no contact (the default fallback).
        """
        self._require()
        s = F.check_scores(scores, self.n_columns)
        e = F.check_eligible(eligible, s.shape)
        missing = F.missing_rows(s, e)
        keep = ~missing
        if not keep.any():
            return np.zeros(self.resources.n_resources)
        point = S.evaluate(s[keep], None if e is None else e[keep], self.resources, self.prices_,
                           self.version_.temperature)
        return point.expected_use * keep.mean()

    def __repr__(self) -> str:
        version = "unfitted" if self.version_ is None else self.version_.model_version
        return (f"LagrangianPolicy(actions={self.n_columns - 1}, resources={self.resources.n_resources}, "
                f"temperature={self.temperature}, version={version!r})")

