"""The in-process decision engine: features → candidates → scores → selection, with durable records.

One call of :meth:`DecisionEngine.decide`:

1. **feat** -- streaming features of the unit (:mod:`optimizer.service.state`),
   the model features x, the consent mask m and x' = x ⊙ m;
2. **candidates** -- the unit's embedding (refreshed by fold-in when the
   context carries ``recent_items``) queried against the hnswlib index
   (breadth k; a non-personalised popular list when profiling consent is
   withheld), then filtered by eligibility (items already shown to the unit
   inside the cap window are dropped);
3. **score** -- per channel c the response probability p_c(x') of the active
   model times the value of the best remaining offer (margin × σ(affinity));
   channels without consent, or every channel once the unit reached its
   contact cap, are not eligible;
4. **select** -- the Lagrangian policy of issue 6 (prices, propensities,
   diversity penalty on recent per-channel exposure, hash draw keyed by the
   decision id so the record reproduces the draw).

:meth:`DecisionEngine.decide_many` runs these steps for a batch of requests
(the HTTP service batches the bodies that arrive together): one hnswlib call,
one model call and one policy call for the first request of every unit, then
for the units' repeats; decision ids follow the request order, so the
decisions are the ones one-by-one deciding gives (tested).

Every decision -- policy, fallback, paused, error -- is appended to
``decisions.jsonl`` *before* the answer is returned (one ``os.write`` of the
batch's whole lines; ``fsync=True`` adds an fsync per write). A record
carries the decision id, unit, time, model id, feature-schema and
event-schema versions, mode, reason, mask state, masked features, candidate
count, the chosen offer, scores, eligibility, prices, temperature,
propensity, the per-component latencies of its batch and the batch size:
with the model version that is enough to recompute the action distribution
and the draw (tested).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formulations import streaming as FS
from formulations.errors import InputError
from optimizer.randomization import hash_uniform
from optimizer.service.governance import GovernanceConfig, RollbackMonitor, SafeModes
from optimizer.service.metrics import Metrics
from optimizer.service.model import (CHANNELS, FEATURE_NAMES, FEATURE_SCHEMA, ModelRegistry, _sigmoid, consent_mask,
                                     feature_vector)
from optimizer.service.state import AppendLog, StreamStore, parse_time_us, read_lines

ACTIONS = ("no_contact",) + CHANNELS
CHANNEL_COLUMN = {ch: j for j, ch in enumerate(ACTIONS)}
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
MAX_RECENT_ITEMS = 100


@dataclass
class EngineConfig:
    """Serving knobs: candidate breadth k, latency budget L (ms), contact cap, snapshot cadence."""

    breadth: int = 200
    ef: int | None = None
    latency_budget_ms: float = 10.0
    contact_cap: int = 3
    cap_window_days: float = 7.0
    snapshot_every: int = 10_000
    fsync: bool = False
    salt: str = "contactplan-serve"


@dataclass
class Catalog:
    """Items (ids, margins, vectors), their ANN index, user vectors and popularity order."""

    item_ids: np.ndarray
    margins: np.ndarray
    item_vectors: np.ndarray
    index: Any                      # CandidateIndex
    user_rows: dict                 # customer id -> row of user_vectors
    user_vectors: np.ndarray
    singular_values: np.ndarray
    popular: np.ndarray             # item rows, most valuable first (non-personalised list)

    def fold_in(self, items: list[int]) -> np.ndarray:
        """u = x V Σ^{-1} for a 0/1 interaction row over ``items``."""
        return (self.item_vectors[items].sum(axis=0) / self.singular_values).astype(np.float32)


class DecisionEngine:
    """State + models + candidates + governance + durable decision log (see the module docstring)."""

    def __init__(self, store: StreamStore, registry: ModelRegistry, catalog: Catalog, directory: str | Path,
                 config: EngineConfig = EngineConfig(), governance: GovernanceConfig = GovernanceConfig()) -> None:
        self.store = store
        self.registry = registry
        self.catalog = catalog
        self.config = config
        self.governance = governance
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        active = registry.active
        self.modes = SafeModes(governance, active.feature_mean, active.feature_std)
        self.rollback_monitor = RollbackMonitor(governance)
        self.metrics = Metrics(config.latency_budget_ms / 1000.0)
        self.instance = uuid.uuid4().hex[:10]
        self.sequence = 0
        self.log = AppendLog(self.dir / "decisions.jsonl", config.fsync)
        self.admin_log = AppendLog(self.dir / "admin.jsonl", config.fsync)
        self.contacts: dict[str, deque] = defaultdict(deque)      # unit -> (t_us, channel, item) of contacts
        self.refreshed: dict[str, np.ndarray] = {}
        self.use_total = 0.0
        self.n_decided = 0
        self.events_since_snapshot = 0
        self.records_written = self._rebuild_from_log()

    # ------------------------------------------------------------ restart
    def _rebuild_from_log(self) -> int:
        """Count the durable records and rebuild the contact-cap memory from them."""
        n = 0
        for line in read_lines(self.log.path):
            n += 1
            rec = json.loads(line)
            if rec.get("action", 0) > 0:
                self.contacts[rec["unit_id"]].append((rec["t_us"], rec["action"], rec.get("offer")))
        return n

    # ------------------------------------------------------------ context
    def _context(self, context: Any) -> dict:
        if context is None:
            return {"consent": None, "channels": {}}
        if not isinstance(context, dict):
            raise InputError("context", f"expected a JSON object, got {type(context).__name__}")
        out: dict[str, Any] = {}
        if "now" in context:
            out["now_us"] = parse_time_us(context["now"], "context.now")
        consent = context.get("consent")
        if consent is not None and not isinstance(consent, dict):
            raise InputError("context.consent", "expected an object of group -> true/false")
        out["consent"] = consent
        channels = context.get("channels") or {}
        if not isinstance(channels, dict) or any(k not in CHANNELS or not isinstance(v, bool)
                                                 for k, v in channels.items()):
            raise InputError("context.channels", f"expected an object of channel ({', '.join(CHANNELS)}) -> "
                                                 "true/false")
        out["channels"] = channels
        items = context.get("recent_items")
        if items is not None:
            if (not isinstance(items, list) or len(items) > MAX_RECENT_ITEMS
                    or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.catalog.margins)
                           for i in items)):
                raise InputError("context.recent_items", f"expected at most {MAX_RECENT_ITEMS} item indices in "
                                                         f"[0, {len(self.catalog.margins)})")
            out["recent_items"] = items
        return out

    # ------------------------------------------------------------ decide
    def decide(self, unit_id: Any, context: Any = None) -> dict:
        """One decision as a dict (the ``/decide`` response); InputError on malformed input."""
        out = self.decide_many([(unit_id, context)])[0]
        if isinstance(out, InputError):
            raise out
        return out

    def decide_many(self, requests: list) -> list:
        """Decide ``(unit_id, context)`` requests: a response dict, or the InputError, per request.

        The first request of every unit is decided in one batch (one ANN call,
        one model call, one policy call, one write of their records), then the
        second request of the units that repeat, and so on. That gives the
        decisions one-by-one deciding would: a unit's contacts only affect its
        own later decisions, and each unit's requests keep their order. Mode and
        model version are read once per batch.
        """
        out: list = [None] * len(requests)
        waiting: list = []
        for i, (unit_id, context) in enumerate(requests):
            try:
                if not isinstance(unit_id, str) or not unit_id or len(unit_id) > 128:
                    raise InputError("unit_id", "expected a non-empty string of at most 128 characters, "
                                                f"got {unit_id!r}")
                ctx = self._context(context)
                mask, mask_state = consent_mask(ctx.get("consent"))
            except InputError as exc:
                out[i] = exc
                continue
            waiting.append((i, unit_id, ctx, mask, mask_state, f"{self.instance}-{self.sequence}"))
            self.sequence += 1              # decision ids follow the request order whatever the batch order
        while waiting:
            batch, later, units = [], [], set()
            for item in waiting:
                (later if item[1] in units else batch).append(item)
                units.add(item[1])
            self._decide_batch(batch, out)
            waiting = later
        return out

    def _decide_batch(self, batch: list, out: list) -> None:
        t_start = time.perf_counter()
        version = self.registry.active
        mode = self.modes.mode
        wall_us = int(time.time() * 1_000_000)
        recs = []
        for _, unit_id, ctx, _, mask_state, decision_id in batch:
            recs.append({"decision_id": decision_id, "unit_id": unit_id,
                         "t_us": ctx.get("now_us") or wall_us, "model_id": version.model_id,
                         "feature_schema": FEATURE_SCHEMA, "event_schema": FS.EVENT_SCHEMA_VERSION, "mode": mode,
                         "mask": mask_state})
        timings: dict = {}
        error = False
        try:
            self._decide_into(recs, batch, version, mode, timings, t_start)
        except Exception as exc:     # an internal failure serves the fallback, is logged and counted
            error = True
            for rec in recs:
                rec.update(action=0, channel=ACTIONS[0], offer=None, propensity=1.0, reason="error",
                           error=f"{type(exc).__name__}: {exc}")
        timings["total"] = time.perf_counter() - t_start
        latency = {k: round(v * 1e3, 4) for k, v in timings.items()}
        lines = []
        for rec in recs:
            rec["latency_ms"] = latency
            rec["batch"] = len(recs)
            lines.append(COMPACT_JSON(rec))
        self.log.append(lines)
        self.records_written += len(recs)
        for (i, *_), rec in zip(batch, recs):
            self.metrics.observe_decision(rec["mode"], rec["reason"], timings)
            self._after(rec, version, error, timings["total"])
            out[i] = {k: rec[k] for k in ("decision_id", "unit_id", "action", "channel", "offer", "propensity",
                                          "mode", "reason", "model_id")} | {
                "response_probability": rec.get("response_probability")}

    def _decide_into(self, recs: list, batch: list, version: Any, mode: str, timings: dict, t0: float) -> None:
        cat = self.catalog
        n = len(recs)
        xm = np.empty((n, len(FEATURE_NAMES)))
        live, recents, queries, ann_rows = [], [], [], []
        for r, (rec, (_, unit_id, ctx, mask, mask_state, _)) in enumerate(zip(recs, batch)):
            feats = self.store.state.features(unit_id, rec["t_us"])
            x = feature_vector(feats)
            xm[r] = FS.apply_mask(x, mask)
            if mode == "paused" or (feats is None and unit_id not in cat.user_rows):
                rec.update(action=0, channel=ACTIONS[0], offer=None, propensity=1.0,
                           reason="paused" if mode == "paused" else "unknown_unit")
                continue
            self.modes.observe(x, 0 in mask_state.values())
            live.append(r)
            recents.append(self._recent_contacts(unit_id, rec["t_us"]))
            if mask_granted(mask_state, "profiling"):
                if "recent_items" in ctx:
                    self.refreshed[unit_id] = cat.fold_in(ctx["recent_items"])
                u = self.refreshed.get(unit_id)
                if u is None:
                    row = cat.user_rows.get(unit_id)
                    u = cat.user_vectors[row] if row is not None else cat.user_vectors.mean(axis=0)
                ann_rows.append(len(live) - 1)
                queries.append(u)
        for rec, row in zip(recs, xm.tolist()):
            rec["features"] = row
        t1 = time.perf_counter()
        timings["feat"] = t1 - t0
        if not live:
            return
        breadth = self.governance.cautious_breadth if mode == "cautious" else self.config.breadth
        k = min(breadth, len(cat.margins))
        ids = np.broadcast_to(cat.popular[:k], (len(live), k)).copy()
        affinity = np.zeros((len(live), k))
        if queries:
            ids[ann_rows], affinity[ann_rows] = cat.index.query_many(np.vstack(queries), k, self.config.ef)
        shown = [[c[2] for c in recent if c[2] is not None] for recent in recents]
        keep = np.ones(ids.shape, dtype=bool)
        width = max(map(len, shown))
        if width:               # drop the items already shown inside the cap window (table padded with -1)
            table = np.full((len(live), width), -1, dtype=np.int64)
            for j, items in enumerate(shown):
                table[j, :len(items)] = items
            for c in range(width):
                keep &= ids != table[:, c:c + 1]
        t2 = time.perf_counter()
        timings["candidates"] = t2 - t1
        value = cat.margins[ids] * _sigmoid(affinity)
        if width:
            value[~keep] = -np.inf
        rows = np.arange(len(live))
        best = value.argmax(axis=1)
        offer_value = value[rows, best]
        has_offer = offer_value > -np.inf
        offers = np.where(has_offer, ids[rows, best], -1)
        offer_value[~has_offer] = 0.0
        p = version.response.predict_proba(xm[live])
        scores = np.zeros((len(live), len(ACTIONS)))
        scores[:, 1:] = p * offer_value[:, None]
        eligible = np.ones(scores.shape, dtype=bool)
        eligible[:, 1:] = has_offer[:, None]
        exposure = np.zeros(scores.shape)
        for j, (r, recent) in enumerate(zip(live, recents)):
            channels = batch[r][2]["channels"]
            for ch, allowed in channels.items():
                eligible[j, CHANNEL_COLUMN[ch]] &= allowed
            if len(recent) >= self.config.contact_cap:
                eligible[j, 1:] = False
            for c in recent:
                exposure[j, c[1]] += 1.0
        t3 = time.perf_counter()
        timings["score"] = t3 - t2
        policy = version.info["cautious_policy"] if mode == "cautious" else version.policy
        d = policy.decide(scores, eligible, unit_ids=[recs[r]["decision_id"] for r in live], trace=False,
                          exposure=exposure if policy.similarity is not None else None)
        timings["select"] = time.perf_counter() - t3
        prices = d.prices.tolist()
        per_row = zip(live, d.actions.tolist(), d.propensities.tolist(), d.reason_names.tolist(), p.tolist(),
                      offers.tolist(), keep.sum(axis=1).tolist(), scores.tolist(),
                      eligible.astype(int).tolist(), exposure.tolist())
        for r, a, prop, reason, p_row, offer, n_cand, s_row, e_row, q_row in per_row:
            offer = offer if offer >= 0 else None
            recs[r].update(action=a, channel=ACTIONS[a], offer=offer if a > 0 else None, propensity=prop,
                           reason=reason, response_probability=p_row[a - 1] if a > 0 else None, n_candidates=n_cand,
                           scores=s_row, eligible=e_row, exposure=q_row, prices=prices,
                           temperature=policy.temperature_, policy_version=d.model_version,
                           draw_salt=policy.salt + "/draw", best_offer=offer)

    def _recent_contacts(self, unit_id: str, now_us: int) -> list:
        q = self.contacts.get(unit_id)
        if not q:
            return []
        horizon = now_us - self.config.cap_window_days * FS.US_PER_DAY
        while q and q[0][0] < horizon:
            q.popleft()
        return [c for c in q if c[0] <= now_us]

    def _after(self, rec: dict, version: Any, error: bool, total: float) -> None:
        a = rec["action"]
        if a > 0:
            self.contacts[rec["unit_id"]].append((rec["t_us"], a, rec.get("offer")))
        costs = version.policy.resources.costs
        self.use_total += float(costs[0, a])
        self.n_decided += 1
        over = self.n_decided > 200 and self.use_total / self.n_decided > version.policy.resources.budget[0] * 1.1
        triggered = self.rollback_monitor.observe(error=float(error),
                                                  latency=float(total * 1e3 > self.config.latency_budget_ms),
                                                  violation=float(over))
        if triggered and self.governance.auto_rollback and len(self.registry.history) > 1:
            self.rollback(reason="trigger:" + ",".join(triggered))

    # ------------------------------------------------------------ events / admin
    def ingest(self, events: list) -> dict:
        res = self.store.ingest(events, now_us=int(time.time() * 1_000_000))
        self.metrics.events["accepted"] += res.accepted
        self.metrics.events["duplicate"] += res.duplicates
        self.metrics.events["quarantined"] += res.quarantined
        self.events_since_snapshot += res.accepted
        if self.events_since_snapshot >= self.config.snapshot_every:
            self.snapshot()
        return {"accepted": res.accepted, "duplicates": res.duplicates, "quarantined": res.quarantined,
                "reasons": res.reasons[:20]}

    def snapshot(self) -> str:
        self.events_since_snapshot = 0
        return str(self.store.snapshot())

    def _admin(self, action: str, **info: Any) -> dict:
        entry = {"t": time.time(), "action": action, "model_id": self.registry.active.model_id,
                 "mode": self.modes.mode} | info
        self.admin_log.append([json.dumps(entry, default=str)])
        return entry

    def pause(self, paused: bool = True) -> dict:
        self.modes.paused = bool(paused)
        return self._admin("pause" if paused else "resume")

    def set_cautious(self, on: bool = True) -> dict:
        self.modes.manual_cautious = bool(on)
        return self._admin("cautious" if on else "normal")

    def rollback(self, reason: str = "admin") -> dict:
        previous = self.registry.active.model_id
        active = self.registry.rollback()
        self.modes.set_reference(active.feature_mean, active.feature_std)
        self.rollback_monitor.reset()
        return self._admin("rollback", previous=previous, reason=reason)

    def status(self) -> dict:
        return {"status": "ok", "mode": self.modes.mode, "model_id": self.registry.active.model_id,
                "models": list(self.registry.history), "decisions": self.records_written,
                "events": len(self.store.state), "customers": len(self.store.state.customers),
                "drift": self.modes.drift, "mask_rate": self.modes.mask_rate,
                "cautious_reasons": sorted(self.modes.reasons), "rollback_rates": self.rollback_monitor.rates}

    def metrics_text(self) -> str:
        g = self.metrics.gauges
        g["drift_distance"] = self.modes.drift
        g["mask_rate"] = self.modes.mask_rate
        for m in ("normal", "cautious", "paused"):
            g[f'mode|{{mode="{m}"}}'] = float(self.modes.mode == m)
        for name, q in self.rollback_monitor.rates.items():
            g[f'rollback_rate|{{signal="{name}"}}'] = q
        g["decision_records_total"] = float(self.records_written)
        g["state_events"] = float(len(self.store.state))
        return self.metrics.render()

    def close(self) -> None:
        """Snapshot the state and close the logs (idempotent)."""
        if self.log._fd is None:
            return
        self.snapshot()
        self.log.close()
        self.admin_log.close()
        self.store.close()


def mask_granted(mask_state: dict, group: str) -> bool:
    return bool(mask_state.get(group, 1))


def draw_of(record: dict) -> float:
    """The uniform draw of a recorded policy decision (blake2b hash of the decision id)."""
    return hash_uniform(record["decision_id"], record["draw_salt"])
