"""Streaming feature state: idempotency, order independence, quarantine, snapshots, replay, batch agreement."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations import streaming as F
from formulations.errors import InputError
from optimizer.service.state import FeatureState, StateSpec, StreamStore, normalize_event, replay

SPEC = StateSpec(epoch="2026-01-05", period_days=7.0, decay=0.8)
T0 = 1767571200  # 2026-01-05T00:00:00Z


def make_events(seeds: list[tuple[int, int, int, int, float]]) -> list[dict]:
    types = ("digital", "call", "branch")
    subs = ("", "complaint", "resolved", "login")
    return [{"event_id": f"e{i}", "customer_id": f"C{c}", "ts": T0 + t, "type": types[k], "subtype": subs[s],
             "value": v} for i, (c, t, k, s, v) in enumerate(seeds)]


event_tuples = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60 * 86400), st.integers(0, 2),
                                  st.integers(0, 3), st.floats(0, 1e4, allow_nan=False)), min_size=1, max_size=40)


def state_of(events: list[dict]) -> FeatureState:
    state = FeatureState(SPEC)
    for e in events:
        state.apply(normalize_event(e))
    return state


@settings(max_examples=60, deadline=None)
@given(event_tuples, st.randoms(use_true_random=False), st.data())
def test_permutations_and_duplicates_give_the_same_state_bit_for_bit(seeds, rnd, data):
    events = make_events(seeds)
    reference = state_of(events).state_json()
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=20))
    shuffled = events + dupes
    rnd.shuffle(shuffled)
    assert state_of(shuffled).state_json() == reference


@settings(max_examples=40, deadline=None)
@given(event_tuples, st.integers(0, 70 * 86400))
def test_accumulator_matches_the_sorted_recurrence(seeds, as_of_offset):
    events = make_events(seeds)
    state = state_of(events)
    as_of_us = (T0 + as_of_offset) * 1_000_000
    pos = SPEC.read_position(as_of_us)
    for c in {e["customer_id"] for e in events}:
        mine = [normalize_event(e) for e in events if e["customer_id"] == c]
        got = state.features(c, as_of_us)
        for kind in F.DECAY_KINDS:
            terms = [(SPEC.position(e["t_us"]), 1.0) for e in mine
                     if e["type"] == kind or (kind == "complaint" and e["subtype"] == "complaint")]
            if all(t <= pos for t, _ in terms):   # every event visible as of the read time
                ref = F.reference_accumulator(terms, pos, SPEC.decay)
                assert got[f"decay_{kind}"] == pytest.approx(ref, rel=1e-12, abs=1e-12)
            assert got[f"n_{kind}"] == len(terms)


def test_idempotent_apply_and_conflicting_reuse_is_refused():
    e = normalize_event({"event_id": "a", "customer_id": "C1", "ts": T0 + 10, "type": "call", "value": 30})
    state = FeatureState(SPEC)
    assert state.apply(e) is True
    before = state.state_json()
    assert state.apply(dict(e)) is False
    assert state.state_json() == before
    with pytest.raises(InputError, match="re-used with a different payload"):
        state.apply({**e, "value": 31.0})
    assert state.state_json() == before


@pytest.mark.parametrize("raw, field", [
    ({"event_id": "x", "customer_id": "C", "ts": T0, "type": "fax"}, "type"),
    ({"event_id": "x", "customer_id": "C", "ts": "yesterday", "type": "call"}, "ts"),
    ({"event_id": "x", "customer_id": "C", "type": "call"}, "ts"),
    ({"customer_id": "C", "ts": T0, "type": "call"}, "event_id"),
    ({"event_id": "x", "customer_id": "C", "ts": T0, "type": "call", "value": -1}, "value"),
    ({"event_id": "x", "customer_id": "C", "ts": T0, "type": "call", "schema_version": 2}, "schema_version"),
    ({"event_id": "x", "customer_id": "C", "ts": T0, "type": "call", "colour": "red"}, "colour"),
    ({"event_id": "x", "customer_id": "C", "ts": T0 - 86400, "type": "call"}, "ts"),      # before the epoch
    ([1, 2], "event"),
])
def test_nonconforming_records_are_quarantined_with_a_reason(tmp_path, raw, field):
    store = StreamStore(tmp_path, SPEC)
    res = store.ingest([raw])
    assert (res.accepted, res.quarantined) == (0, 1)
    assert res.reasons[0].startswith(field + ":")
    lines = (tmp_path / "quarantine.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["field"] == field
    assert len(store.state) == 0


def test_future_events_are_quarantined(tmp_path):
    store = StreamStore(tmp_path, SPEC)
    now = (T0 + 86400) * 1_000_000
    res = store.ingest([{"event_id": "f", "customer_id": "C", "ts": T0 + 3 * 86400, "type": "call"}], now_us=now)
    assert res.quarantined == 1 and "future" in res.reasons[0]


def test_snapshot_is_atomic_and_replay_reproduces_it_bit_for_bit(tmp_path):
    rng = np.random.default_rng(3)
    seeds = [(int(rng.integers(0, 20)), int(rng.integers(0, 50 * 86400)), int(rng.integers(0, 3)),
              int(rng.integers(0, 4)), float(rng.integers(0, 500))) for _ in range(400)]
    events = make_events(seeds)
    store = StreamStore(tmp_path, SPEC)
    store.ingest(events[:250])
    store.snapshot()
    store.ingest(events[200:] + events[:30])          # overlaps and duplicates
    path = store.snapshot()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    snap_state, offset = FeatureState.from_json(path.read_text())
    assert offset == (tmp_path / "events.jsonl").stat().st_size
    replayed = replay(tmp_path / "events.jsonl", SPEC)
    assert replayed.state_json() == snap_state.state_json() == store.state.state_json()
    assert replayed.to_json(offset) == path.read_text()
    store.close()
    # restart: snapshot + tail
    store2 = StreamStore.open(tmp_path, SPEC)
    assert store2.state.state_json() == replayed.state_json()
    late = {"event_id": "late", "customer_id": "C1", "ts": T0 + 3600, "type": "call", "subtype": "complaint"}
    assert store2.ingest([late]).accepted == 1
    store2.close()
    store3 = StreamStore.open(tmp_path, SPEC)         # no new snapshot: the tail is re-applied
    assert store3.state.seen.keys() == store2.state.seen.keys()
    assert store3.state.state_json() == store2.state.state_json()
    store3.close()
    with pytest.raises(InputError, match="state.json"):
        StreamStore.open(tmp_path, StateSpec(epoch="2026-01-05", decay=0.5))


def test_torn_last_line_is_cut(tmp_path):
    store = StreamStore(tmp_path, SPEC)
    store.ingest(make_events([(0, 100, 0, 0, 1.0), (1, 200, 1, 0, 2.0)]))
    store.close()
    with open(tmp_path / "events.jsonl", "ab") as f:
        f.write(b'{"id": "torn", "cust')
    store = StreamStore.open(tmp_path, SPEC)
    assert len(store.state) == 2
    store.ingest(make_events([(2, 300, 2, 0, 1.0)] * 3)[2:])
    assert len(replay(tmp_path / "events.jsonl", SPEC)) == 3


def test_streaming_agrees_with_the_batch_customer_360_features(tmp_path):
    """Grid mode, period by period, against ``build_c360`` on a small generated sample (issue 8 definitions)."""
    from optimizer.c360 import BuildOptions, build_c360, generate_c360

    generate_c360(tmp_path / "raw", 150, 3, seed=5)
    result = build_c360(tmp_path / "raw", tmp_path / "out", BuildOptions(decay=0.7))
    events = pd.read_parquet(tmp_path / "out" / "events.parquet")
    batch = pd.read_parquet(tmp_path / "out" / "features.parquet")
    spec = StateSpec(epoch=str(result.start), period_days=7.0, decay=0.7, grid=True)
    t_us = events["ts"].to_numpy().astype("datetime64[us]").astype(np.int64)
    bucket = np.floor((t_us - spec.epoch_us) / (7 * F.US_PER_DAY)).astype(int)
    state = FeatureState(spec)
    checked = 0
    for p in range(result.grid.n_periods):
        for i in np.flatnonzero(bucket == p):
            row = events.iloc[i]
            state.apply(normalize_event({"event_id": f"r{i}", "customer_id": row.customer_id, "ts": int(t_us[i]) / 1e6,
                                         "type": row.type, "subtype": row.subtype, "channel": row.channel,
                                         "value": float(row.value)}))
        as_of = spec.epoch_us + (p + 1) * 7 * F.US_PER_DAY
        for _, b in batch[batch["period"] == p].iterrows():
            got = state.features(b.customer_id, as_of)
            if got is None:
                assert b.decay_digital == b.decay_call == b.decay_branch == 0
                continue
            for k in F.DECAY_KINDS:
                assert got[f"decay_{k}"] == pytest.approx(b[f"decay_{k}"], rel=1e-9, abs=1e-12)
            for k in F.EVENT_TYPES:
                want = b[f"recency_{k}_days"]
                assert (math.isnan(got[f"recency_{k}_days"]) and pd.isna(want)) or \
                    got[f"recency_{k}_days"] == pytest.approx(want, abs=1e-6)
            assert got["last_call_outcome"] == (None if pd.isna(b.last_call_outcome) else b.last_call_outcome)
            checked += 1
    assert checked > 200
    # frequency: streaming totals = sum of the batch's per-period counts
    totals = batch.groupby("customer_id")[["n_digital", "n_call", "n_branch", "n_complaint"]].sum()
    for cid, row in totals.head(50).iterrows():
        got = state.features(cid, spec.epoch_us)
        if got is not None:
            assert [got["n_digital"], got["n_call"], got["n_branch"], got["n_complaint"]] == list(row)
