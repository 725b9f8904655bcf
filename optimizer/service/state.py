"""Streaming feature state: idempotent, order-independent, quarantined, snapshotted, replayable.

Implements the "Events", "Decayed accumulators" and "Recency, frequency,
sums" sections of :mod:`formulations.streaming`::

    store = StreamStore(directory, StateSpec(epoch="2026-01-05"))
    store.ingest([{"event_id": "e1", "customer_id": "C1", "ts": "2026-01-06T10:00:00Z",
                   "type": "call", "subtype": "complaint", "value": 120}])
    store.state.features("C1", as_of_us)      # decayed activity, recency, frequency, sums
    store.snapshot()                          # atomic: state.json (+ the event-log offset)

Files in ``directory``: ``events.jsonl`` (accepted events, canonical JSON,
append-only), ``quarantine.jsonl`` (rejected records with their reason),
``state.json`` (the latest snapshot). :meth:`StreamStore.open` loads the
snapshot and re-applies the event-log tail written after it;
:func:`replay` rebuilds the state from the log alone -- its snapshot bytes
equal the live one's (tested).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator

from formulations import streaming as F
from formulations.errors import InputError
from optimizer.io import write_text

EVENT_FIELDS = ("event_id", "customer_id", "ts", "type", "subtype", "channel", "value", "schema_version")
MAX_ID_LENGTH = 128
SNAPSHOT_FORMAT = "contactplan.stream_state"


@dataclass(frozen=True)
class StateSpec:
    """Decay λ per period of ``period_days``, schema epoch t_0, latency L, continuous time or the period grid."""

    epoch: str = "2026-01-05"
    period_days: float = 7.0
    decay: float = 0.8
    latency_days: float = 0.0
    grid: bool = False

    def __post_init__(self) -> None:
        F.check_decay(self.decay)
        if not (isinstance(self.period_days, (int, float)) and self.period_days > 0):
            raise InputError("period_days", f"expected a positive number of days, got {self.period_days!r}")
        if not (math.isfinite(self.latency_days) and self.latency_days >= 0):
            raise InputError("latency_days", f"expected a number of days >= 0, got {self.latency_days!r}")
        parse_time_us(self.epoch, "epoch")

    @cached_property
    def epoch_us(self) -> int:
        return parse_time_us(self.epoch, "epoch")

    def position(self, t_us: int) -> float:
        """τ_e of an event at ``t_us``."""
        return F.event_position(t_us, self.epoch_us, self.period_days, self.latency_days, self.grid)

    def read_position(self, as_of_us: int) -> float:
        """τ at which features are read as of ``as_of_us``: on the grid, the last period whose cut-off
        c_p = (p+1)Δ - L is <= as_of (so reading at c_p gives period p, as the batch build)."""
        if not self.grid:
            return self.position(as_of_us)
        days = (int(as_of_us) - self.epoch_us) / F.US_PER_DAY
        return float(math.ceil((days + self.latency_days) / self.period_days) - 1)


def parse_time_us(value: Any, field: str = "ts") -> int:
    """ISO 8601 text (naive = UTC) or Unix seconds → integer microseconds since the Unix epoch."""
    if isinstance(value, bool):
        raise InputError(field, f"expected an ISO 8601 time or Unix seconds, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > 1e11:
            raise InputError(field, f"expected Unix seconds, got {value!r}")
        return int(round(value * 1_000_000))
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(field, f"expected an ISO 8601 time, got {value!r}") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise InputError(field, f"expected an ISO 8601 time or Unix seconds, got {type(value).__name__}")


def _text(raw: dict, field: str, required: bool, default: str = "") -> str:
    value = raw.get(field)
    if value is None:
        if required:
            raise InputError(field, "missing")
        return default
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or (required and not value.strip()):
        raise InputError(field, f"expected a non-empty string of at most {MAX_ID_LENGTH} characters, got {value!r}")
    return value


def normalize_event(raw: Any) -> dict:
    """Validate one raw event (schema version 1) into its canonical form; InputError names the bad field."""
    if not isinstance(raw, dict):
        raise InputError("event", f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version", F.EVENT_SCHEMA_VERSION)
    if version != F.EVENT_SCHEMA_VERSION or isinstance(version, bool):
        raise InputError("schema_version", f"expected {F.EVENT_SCHEMA_VERSION}, got {version!r}")
    unknown = sorted(set(raw) - set(EVENT_FIELDS))
    if unknown:
        raise InputError(unknown[0], f"unknown field for schema version {F.EVENT_SCHEMA_VERSION}")
    kind = raw.get("type")
    if kind not in F.EVENT_TYPES:
        raise InputError("type", f"expected one of {', '.join(F.EVENT_TYPES)}, got {kind!r}")
    value = raw.get("value", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError("value", f"expected a finite number >= 0, got {value!r}")
    if "ts" not in raw:
        raise InputError("ts", "missing")
    return {"v": F.EVENT_SCHEMA_VERSION, "id": _text(raw, "event_id", True),
            "customer": _text(raw, "customer_id", True), "t_us": parse_time_us(raw["ts"]), "type": kind,
            "subtype": _text(raw, "subtype", False).lower(), "channel": _text(raw, "channel", False).lower(),
            "value": float(value)}


def canonical(event: dict) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def _digest(line: str) -> str:
    return hashlib.blake2b(line.encode("utf-8"), digest_size=8).hexdigest()


def _new_customer() -> dict:
    return {"n": {k: 0 for k in F.DECAY_KINDS}, "acc": {k: 0 for k in F.DECAY_KINDS},
            "call_seconds": 0, "branch_amount": 0, "last": {}, "last_call": None}


class FeatureState:
    """The per-customer accumulators of :mod:`formulations.streaming` (a function of the accepted event set)."""

    def __init__(self, spec: StateSpec) -> None:
        self.spec = spec
        self.customers: dict[str, dict] = {}
        self.seen: dict[str, str] = {}          # event id -> payload digest

    def __len__(self) -> int:
        return len(self.seen)

    def check(self, event: dict) -> str:
        """'new', 'duplicate' or raises InputError (conflicting re-use of an id, beyond the horizon)."""
        line = canonical(event)
        old = self.seen.get(event["id"])
        if old is not None:
            if old == _digest(line):
                return "duplicate"
            raise InputError("event_id", f"{event['id']!r} re-used with a different payload")
        F.anchor_weight(self.spec.position(event["t_us"]), self.spec.decay)
        return "new"

    def apply(self, event: dict) -> bool:
        """Apply a canonical event; False (and no change) when its id was already applied."""
        if self.check(event) == "duplicate":
            return False
        weight = F.anchor_weight(self.spec.position(event["t_us"]), self.spec.decay)
        term = F.fixed_point(weight)
        c = self.customers.get(event["customer"])
        if c is None:
            c = self.customers[event["customer"]] = _new_customer()
        kinds = [event["type"]] + (["complaint"] if event["subtype"] == "complaint" else [])
        for k in kinds:
            c["n"][k] += 1
            c["acc"][k] += term
        t = event["t_us"]
        if c["last"].get(event["type"], -math.inf) < t:
            c["last"][event["type"]] = t
        if event["type"] == "call":
            c["call_seconds"] += F.fixed_point(event["value"])
            if c["last_call"] is None or (t, event["subtype"]) > tuple(c["last_call"]):
                c["last_call"] = [t, event["subtype"]]
        elif event["type"] == "branch":
            c["branch_amount"] += F.fixed_point(event["value"])
        self.seen[event["id"]] = _digest(canonical(event))
        return True

    def features(self, customer: str, as_of_us: int) -> dict | None:
        """Features as of ``as_of_us`` (None for an unknown customer).

        decay_<kind>, n_<kind>, recency_<type>_days, call_minutes, branch_amount, last_call_outcome.
        """
        c = self.customers.get(customer)
        if c is None:
            return None
        pos = self.spec.read_position(as_of_us)
        out: dict[str, Any] = {}
        for k in F.DECAY_KINDS:
            out[f"decay_{k}"] = F.read_accumulator(c["acc"][k], pos, self.spec.decay)
            out[f"n_{k}"] = c["n"][k]
        for k in F.EVENT_TYPES:
            last = c["last"].get(k)
            out[f"recency_{k}_days"] = (as_of_us - last) / F.US_PER_DAY if last is not None else math.nan
        out["call_minutes"] = F.from_fixed_point(c["call_seconds"]) / 60.0
        out["branch_amount"] = F.from_fixed_point(c["branch_amount"])
        out["last_call_outcome"] = c["last_call"][1] if c["last_call"] else None
        return out

    # ------------------------------------------------------------ snapshots
    def to_json(self, log_offset: int = 0) -> str:
        """Canonical JSON (sorted keys; big integers exact) -- equal states give equal bytes."""
        body = {"format": SNAPSHOT_FORMAT, "schema_version": F.EVENT_SCHEMA_VERSION, "spec": asdict(self.spec),
                "n_events": len(self.seen), "customers": self.customers, "seen": self.seen}
        return json.dumps({"state": body, "log_offset": log_offset}, sort_keys=True, separators=(",", ":")) + "\n"

    def state_json(self) -> str:
        """The state part of the snapshot only (what a replay must reproduce bit for bit)."""
        return json.dumps(json.loads(self.to_json())["state"], sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> tuple["FeatureState", int]:
        data = json.loads(text)
        body = data.get("state", {})
        if body.get("format") != SNAPSHOT_FORMAT or body.get("schema_version") != F.EVENT_SCHEMA_VERSION:
            raise InputError("state.json", f"expected a {SNAPSHOT_FORMAT} snapshot of schema version "
                                           f"{F.EVENT_SCHEMA_VERSION}")
        state = cls(StateSpec(**body["spec"]))
        state.customers = body["customers"]
        state.seen = body["seen"]
        return state, int(data.get("log_offset", 0))


class AppendLog:
    """Append-only JSON-lines file (O_APPEND, whole lines per write); a torn last line is cut on open."""

    def __init__(self, path: str | os.PathLike, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = bool(fsync)
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                data = f.read()
                if not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, lines: Iterable[str]) -> int:
        data = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        if self.fsync:
            os.fsync(self._fd)
        return len(data)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


def read_lines(path: str | os.PathLike, offset: int = 0) -> Iterator[str]:
    """Complete lines of a JSON-lines file from byte ``offset`` (an unterminated last line is skipped)."""
    p = Path(path)
    if not p.exists():
        return
    with open(p, "rb") as f:
        f.seek(offset)
        for raw in f:
            if raw.endswith(b"\n"):
                yield raw.decode("utf-8")


def replay(log_path: str | os.PathLike, spec: StateSpec) -> FeatureState:
    """Rebuild the state from the event log alone."""
    state = FeatureState(spec)
    for line in read_lines(log_path):
        state.apply(json.loads(line))
    return state


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: list | None = None


class StreamStore:
    """The state with its event log, quarantine and snapshot in one directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, spec: StateSpec = StateSpec(), fsync: bool = False) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = FeatureState(spec)
        self.events = AppendLog(self.dir / "events.jsonl", fsync)
        self.quarantine = AppendLog(self.dir / "quarantine.jsonl", fsync)
        self.quarantine_counts: dict[str, int] = {}

    @classmethod
    def open(cls, directory: str | os.PathLike, spec: StateSpec = StateSpec(), fsync: bool = False) -> "StreamStore":
        """Load ``state.json`` when present and re-apply the event-log tail written after it."""
        store = cls(directory, spec, fsync)
        snap = store.dir / "state.json"
        offset = 0
        if snap.exists():
            store.state, offset = FeatureState.from_json(snap.read_text(encoding="utf-8"))
            if store.state.spec != spec:
                raise InputError("state.json", f"the snapshot was built with {store.state.spec}, not {spec}")
        for line in read_lines(store.events.path, offset):
            store.state.apply(json.loads(line))
        return store

    def ingest(self, raws: Iterable[Any], now_us: int | None = None, max_future_s: float = 300.0) -> IngestResult:
        """Validate, de-duplicate, log and apply events; nonconforming ones go to the quarantine with a reason."""
        res = IngestResult(reasons=[])
        accepted, rejected = [], []
        for raw in raws:
            try:
                event = normalize_event(raw)
                if now_us is not None and event["t_us"] > now_us + max_future_s * 1e6:
                    raise InputError("ts", "event time in the future")
                if self.state.check(event) == "duplicate":
                    res.duplicates += 1
                    continue
                self.state.apply(event)
                accepted.append(canonical(event))
                res.accepted += 1
            except InputError as exc:
                res.quarantined += 1
                res.reasons.append(str(exc))
                self.quarantine_counts[exc.field] = self.quarantine_counts.get(exc.field, 0) + 1
                rejected.append(json.dumps({"reason": str(exc), "field": exc.field, "record": raw}, default=str))
        if accepted:
            self.events.append(accepted)
        if rejected:
            self.quarantine.append(rejected)
        return res

    def snapshot(self) -> Path:
        """Write ``state.json`` atomically (temp file + rename) with the event-log offset it covers."""
        return write_text(self.state.to_json(self.events.size()), self.dir / "state.json")

    def close(self) -> None:
        self.events.close()
        self.quarantine.close()
