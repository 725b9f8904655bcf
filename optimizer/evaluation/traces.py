"""Decision traces: the logging policy's record of every decision, as JSON lines.

Schema (version 1)
------------------
One JSON object per line, UTF-8 (a ``.gz`` suffix means gzip). Written by the
real-time decision policy for every decision, read by
:func:`read_decision_traces` and evaluated off-policy by
:func:`evaluate_traces`.

=======================  ===========================  ==========================================================
field                    type                         meaning
=======================  ===========================  ==========================================================
``unit_id``              string, integer or null      the unit (customer) decided for — required (may be null)
``time``                 ISO 8601 string or number    decision time (numbers: Unix seconds, UTC) — required;
                                                      ``timestamp`` is accepted as its name too
``action``               integer or string            the action taken (index, 0 = no contact, or a label) — required
``propensity``           number in (0, 1]             ``pi_0(action | x)``, probability the policy took it — required
``model_version``        string                       score model / policy version — required
``prices``               object or array of numbers   Lagrange prices used ({name: price} or one per cost row)
``decision_id``          string                       unique id of the decision (default: ``line-<n>``)
``reward``               number                       the outcome, when already joined
``action_probabilities`` object or array              the full ``pi_0(. | x)`` (array: index = action) — lets the
                                                      evaluation check that the target stays in the logger's support
``arm``                  string                       experiment arm (hash assignment), e.g. ``control``
``reason``               string                       why this action (``policy``, ``fallback_stale`` ...)
``context``              object                       features, kept as they are
=======================  ===========================  ==========================================================

This is the format :mod:`optimizer.decision_trace` writes for the real-time
decision policy. Other keys are kept in the ``extra`` column. A last line
without its newline that is not valid JSON (a writer that crashed mid-line)
is skipped. Example line::

    {"unit_id": "c042", "time": "2026-03-02T10:15:03Z", "action": 2, "propensity": 0.61,
     "model_version": "m-2026-03-01", "prices": {"budget": 0.8, "email": 0.05}}

Evaluation
----------
A target policy is given as a table ``(key, action, probability)`` with
``key`` = ``decision_id`` (if the table has that column) or ``unit_id``: the
probability ``pi_e(a | x)`` of each action for that decision or unit (missing
pairs are 0; each key's probabilities sum to 1). A logged action that does not
appear anywhere in the target table is an error (an action the target policy
cannot take — usually labels that do not match; list it with probability 0
to mean "never"). The reward model for DM/DR is the cross-fitted
:class:`~optimizer.evaluation.reward_model.TabularRewardModel` over actions.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from formulations.errors import InputError
from optimizer.evaluation.off_policy import compare_estimators, off_policy_value
from optimizer.evaluation.reward_model import cross_fit_reward_table

SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("unit_id", "time", "action", "propensity", "model_version")
OPTIONAL_FIELDS = ("prices", "decision_id", "reward", "action_probabilities", "arm", "reason", "context",
                   "timestamp")
COLUMNS = ("decision_id", "unit_id", "time", "action", "propensity", "model_version", "prices", "reward",
           "action_probabilities", "arm", "reason", "context", "extra")


@dataclass(frozen=True)
class DecisionTraces:
    """Decision traces as a table (one row per decision, columns :data:`COLUMNS`).

    ``time`` is a UTC timestamp, ``reward`` NaN where not recorded, ``prices``
    / ``action_probabilities`` / ``context`` / ``extra`` the JSON values (or None).
    """

    frame: pd.DataFrame
    path: str | None = None

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def actions(self) -> list:
        """Logged actions, in first-seen order."""
        return list(pd.unique(self.frame["action"]))

    def prices_frame(self) -> pd.DataFrame:
        """The prices as columns ``price_<name>`` (``price_0, price_1 ...`` for arrays; NaN where missing)."""
        rows = [p if isinstance(p, Mapping) else dict(enumerate(p)) if isinstance(p, list) else {}
                for p in self.frame["prices"]]
        return pd.DataFrame(rows, index=self.frame.index).add_prefix("price_")


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _check_record(rec: Any, line: int) -> dict:
    where = f"line {line}"
    if not isinstance(rec, dict):
        raise InputError("traces", f"{where}: expected a JSON object, got {type(rec).__name__}")
    if "time" not in rec and "timestamp" in rec:
        rec = dict(rec, time=rec["timestamp"])
    missing = [f for f in REQUIRED_FIELDS if f not in rec or (rec[f] is None and f != "unit_id")]
    if missing:
        raise InputError("traces", f"{where}: missing required field {missing[0]!r} "
                                   f"(required: {', '.join(REQUIRED_FIELDS)})")
    p = rec["propensity"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 < float(p) <= 1.0):
        raise InputError("traces", f"{where}: propensity must be a probability in (0, 1], got {p!r}")
    a = rec["action"]
    if isinstance(a, bool) or not isinstance(a, (int, str)):
        raise InputError("traces", f"{where}: action must be an integer or a string, got {a!r}")
    uid = rec["unit_id"]
    if uid is not None and (not isinstance(uid, (str, int)) or isinstance(uid, bool)):
        raise InputError("traces", f"{where}: unit_id must be a string, an integer or null, got {uid!r}")
    r = rec.get("reward")
    if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not np.isfinite(r)):
        raise InputError("traces", f"{where}: reward must be a finite number, got {r!r}")
    prices = rec.get("prices")
    if prices is not None:
        values = prices.values() if isinstance(prices, dict) else prices if isinstance(prices, list) else None
        if values is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise InputError("traces", f"{where}: prices must be an object or an array of numbers, got {prices!r}")
    return rec


def read_decision_traces(path: str | os.PathLike) -> DecisionTraces:
    """Read a decision-trace file (JSON lines, schema in the module docstring).

    Raises
    ------
    InputError
        Missing file, invalid JSON, missing required fields, propensity outside
        (0, 1], duplicate ``decision_id`` or an empty file — naming the line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("traces", f"file {str(p)!r} does not exist" if not p.exists() else f"{str(p)!r} is not a file")
    records = []
    try:
        with _open(p) as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    if not line.endswith("\n") and not fh.read(1):  # torn last line of a crashed writer
                        break
                    raise InputError("traces", f"line {line_no}: not valid JSON ({exc.msg})") from None
                records.append((line_no, _check_record(rec, line_no)))
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError("traces", f"could not read {str(p)!r}: {exc}") from None
    if not records:
        raise InputError("traces", f"{str(p)!r} holds no decisions (empty log)")
    return DecisionTraces(frame=traces_frame(records), path=str(p))


def traces_frame(records: Iterable[tuple[int, dict]] | Iterable[dict]) -> pd.DataFrame:
    """Build the trace table from ``(line, record)`` pairs or plain records (validated)."""
    rows = []
    for k, item in enumerate(records, start=1):
        line, rec = item if isinstance(item, tuple) else (k, _check_record(item, k))
        extra = {key: v for key, v in rec.items() if key not in REQUIRED_FIELDS + OPTIONAL_FIELDS}
        rows.append({
            "decision_id": str(rec.get("decision_id", f"line-{line}")),
            "unit_id": rec["unit_id"],
            "time": rec["time"],
            "action": rec["action"],
            "propensity": float(rec["propensity"]),
            "model_version": str(rec["model_version"]),
            "prices": rec.get("prices"),
            "reward": float(rec["reward"]) if rec.get("reward") is not None else np.nan,
            "action_probabilities": rec.get("action_probabilities"),
            "arm": rec.get("arm"),
            "reason": rec.get("reason"),
            "context": rec.get("context"),
            "extra": extra or None,
        })
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    times = frame["time"]
    try:
        numeric = pd.to_numeric(times, errors="coerce")
        if numeric.notna().all():
            frame["time"] = pd.to_datetime(numeric, unit="s", utc=True)
        else:
            frame["time"] = pd.to_datetime(times.astype(str), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError("traces", f"time must be ISO 8601 strings or Unix seconds ({exc})") from None
    dup = frame["decision_id"].duplicated()
    if dup.any():
        raise InputError("traces", f"decision_id {frame['decision_id'][dup].iloc[0]!r} appears more than once")
    return frame


def write_decision_traces(records: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Validate records against the schema and write them as JSON lines (atomically)."""
    from optimizer.io import write_text

    lines = []
    for k, rec in enumerate(records, start=1):
        _check_record(dict(rec), k)
        lines.append(json.dumps(rec, separators=(",", ":"), default=_json_value))
    if not lines:
        raise InputError("records", "no decisions to write")
    return write_text("\n".join(lines) + "\n", path)


def _json_value(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    raise TypeError(f"cannot write {type(obj).__name__} to a trace")


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class TraceEvaluation:
    """Off-policy estimates of a target policy from decision traces.

    Attributes
    ----------
    table : DataFrame
        One row per estimator (see :func:`~optimizer.evaluation.compare_estimators`).
    logging_value : OffPolicyResult
        The logging policy's own mean reward (on-policy, with its interval).
    actions : list
        Action labels, the columns of ``target_probabilities``.
    target_probabilities : ndarray (n, K)
    support_gap : float or None
        Mean target mass on actions the logger could not take (from
        ``action_probabilities``; None when not recorded). IPS/DR are unbiased
        only when it is 0.
    """

    table: pd.DataFrame
    logging_value: Any
    actions: list
    target_probabilities: np.ndarray
    support_gap: float | None


def _target_matrix(traces: DecisionTraces, target: pd.DataFrame) -> tuple[np.ndarray, list]:
    frame = traces.frame
    if not isinstance(target, pd.DataFrame):
        raise InputError("target", "expected a table with columns (decision_id or unit_id), action, probability")
    key = "decision_id" if "decision_id" in target.columns else "unit_id"
    for col in (key, "action", "probability"):
        if col not in target.columns:
            raise InputError("target", f"missing column {col!r} (expected {key}, action, probability)")
    if target.empty:
        raise InputError("target", "the target policy table is empty")
    prob = pd.to_numeric(target["probability"], errors="coerce")
    if prob.isna().any() or (prob < 0).any() or (prob > 1).any():
        i = int(np.flatnonzero(prob.isna() | (prob < 0) | (prob > 1))[0])
        raise InputError("target", f"probability must be in [0, 1], got {target['probability'].iloc[i]!r} "
                                   f"at row {i}")
    t_actions = [str(a) for a in pd.unique(target["action"])]
    logged = frame["action"].astype(str)
    unknown = ~logged.isin(t_actions)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError("traces", f"decision {frame['decision_id'].iloc[i]!r} logged action {logged.iloc[i]!r}, "
                                   f"which the target policy cannot take (its actions: {', '.join(t_actions[:10])}); "
                                   "list it with probability 0 if that is meant")
    actions = t_actions
    col = {a: j for j, a in enumerate(actions)}
    tkey = target[key].astype(str).to_numpy()
    if pd.DataFrame({"k": tkey, "a": target["action"].astype(str).to_numpy()}).duplicated().any():
        raise InputError("target", f"a ({key}, action) pair appears more than once")
    keys, key_idx = np.unique(tkey, return_inverse=True)
    table = np.zeros((keys.shape[0], len(actions)))
    np.add.at(table, (key_idx, target["action"].astype(str).map(col).to_numpy()), prob.to_numpy())
    sums = table.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-6
    if off.any():
        raise InputError("target", f"probabilities of {key} {keys[np.flatnonzero(off)[0]]!r} sum to "
                                   f"{sums[off][0]:.6g}, expected 1")
    want = frame[key].astype(str).to_numpy()
    pos = np.searchsorted(keys, want)
    pos = np.minimum(pos, keys.shape[0] - 1)
    missing = keys[pos] != want
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError("target", f"no probabilities for {key} {want[i]!r} "
                                   f"(decision {frame['decision_id'].iloc[i]!r})")
    return table[pos], actions


def _support_gap(frame: pd.DataFrame, actions: list, target: np.ndarray) -> float | None:
    gaps = []
    for i, probs in enumerate(frame["action_probabilities"]):
        if isinstance(probs, list):
            probs = {str(a): v for a, v in enumerate(probs)}
        if not isinstance(probs, dict):
            continue
        logger = np.array([float(probs.get(str(a), 0.0)) for a in actions])
        gaps.append(float(target[i][logger <= 0].sum()))
    return float(np.mean(gaps)) if gaps else None


def evaluate_traces(traces: DecisionTraces, target: pd.DataFrame, rewards: Any = None, *, alpha: float = 0.05,
                    methods: Iterable[str] | None = None, ci: str = "normal", n_bootstrap: int = 1000,
                    random_state: int = 0) -> TraceEvaluation:
    """Estimate a target policy's value from decision traces with every estimator.

    Parameters
    ----------
    traces : DecisionTraces
        From :func:`read_decision_traces`.
    target : DataFrame
        ``(decision_id | unit_id, action, probability)`` of the target policy.
    rewards : array-like (n,), optional
        Rewards per decision (default: the traces' ``reward`` field, which must then be complete).
    """
    frame = traces.frame
    if rewards is None:
        r = frame["reward"].to_numpy(dtype=np.float64)
        if np.isnan(r).any():
            i = int(np.flatnonzero(np.isnan(r))[0])
            raise InputError("rewards", f"decision {frame['decision_id'].iloc[i]!r} has no reward; join outcomes first")
    else:
        r = np.asarray(rewards, dtype=np.float64)
    target_probs, actions = _target_matrix(traces, target)
    col = {a: j for j, a in enumerate(actions)}
    logged = frame["action"].astype(str).map(col).to_numpy()
    q = target_probs[np.arange(len(frame)), logged]
    p = frame["propensity"].to_numpy(dtype=np.float64)
    n_folds = min(5, max(2, len(frame) // 2))
    mu = cross_fit_reward_table(np.zeros(len(frame), dtype=np.int64), logged, r, 1, len(actions),
                                n_folds=n_folds, random_state=random_state)
    m = mu[np.arange(len(frame)), logged]
    d = np.einsum("ik,ik->i", target_probs, mu)
    table = compare_estimators(r, p, q, m, d, alpha, methods=methods, ci=ci, n_bootstrap=n_bootstrap,
                               random_state=random_state)
    logging_value = off_policy_value(r, p, p, "ips", alpha=alpha, ci=ci, n_bootstrap=n_bootstrap,
                                     random_state=random_state)
    return TraceEvaluation(table=table, logging_value=logging_value, actions=actions,
                           target_probabilities=target_probs, support_gap=_support_gap(frame, actions, target_probs))
