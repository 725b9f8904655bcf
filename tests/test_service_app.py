"""The FastAPI endpoint contract, decision records, consent masking, caps and admin (in-process TestClient)."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from formulations.errors import InputError
from optimizer.service.engine import EngineConfig
from optimizer.service.governance import GovernanceConfig
from optimizer.service.model import FEATURE_NAMES, MASK_GROUPS

TOKEN = "s3cret-token"
SMALL = dict(n_customers=60, weeks=3, n_items=400, extra_users=200)


@lru_cache(maxsize=None)
def base_engine():
    """A tiny demo service (generated + built Customer 360 set, models, catalogue), made once per test process."""
    from optimizer.service.demo import build_demo

    d = Path(tempfile.mkdtemp(prefix="svc-tests-"))
    atexit.register(shutil.rmtree, d, True)
    eng = build_demo(d, **SMALL)
    eng.close()
    return eng


def small_engine(directory: Path, config: EngineConfig = EngineConfig(breadth=100),
                 governance: GovernanceConfig = GovernanceConfig()):
    """A fresh engine in ``directory`` sharing the cached models and catalogue (its own state, logs, registry)."""
    from optimizer.service.engine import DecisionEngine
    from optimizer.service.model import ModelRegistry
    from optimizer.service.state import StreamStore

    base = base_engine()
    if not (directory / "state").exists():
        shutil.copytree(base.store.dir, directory / "state")
    store = StreamStore.open(directory / "state", base.store.state.spec)
    return DecisionEngine(store, ModelRegistry(base.registry.versions), base.catalog, directory, config, governance)


@pytest.fixture
def engine(tmp_path):
    eng = small_engine(tmp_path)
    yield eng
    eng.close()


@pytest.fixture
def client(engine):
    from fastapi.testclient import TestClient

    from optimizer.service.app import create_app

    with TestClient(create_app(engine, admin_token=TOKEN)) as c:
        yield c


def records(engine) -> list[dict]:
    return [json.loads(line) for line in engine.log.path.read_text().splitlines()]


def known_unit(engine) -> str:
    return sorted(engine.store.state.customers)[0]


def test_health_and_decide_contract(client, engine):
    assert client.get("/health").status_code == 200
    unit = known_unit(engine)
    r = client.post("/decide", json={"unit_id": unit, "context": {}})
    assert r.status_code == 200
    body = r.json()
    for key in ("action", "propensity", "decision_id", "mode"):
        assert key in body
    assert 0 < body["propensity"] <= 1 and body["mode"] == "normal" and body["reason"] == "policy"
    assert body["model_id"] == "demo-v2"


def test_unknown_unit_gets_the_fallback(client):
    r = client.post("/decide", json={"unit_id": "never-seen"})
    assert r.status_code == 200
    assert r.json()["action"] == 0 and r.json()["reason"] == "unknown_unit" and r.json()["propensity"] == 1.0


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (b"\xff\xfe", 400),
    (b"[1, 2]", 422),
    (b'"unit"', 422),
    (b"{}", 422),
    (b'{"unit_id": 12}', 422),
    (b'{"unit_id": ""}', 422),
    (b'{"unit_id": null}', 422),
    (b'{"unit_id": "u", "context": [1]}', 422),
    (b'{"unit_id": "u", "context": {"consent": {"profiling": "no"}}}', 422),
    (b'{"unit_id": "u", "context": {"consent": {"shoe_size": true}}}', 422),
    (b'{"unit_id": "u", "context": {"consent": 3}}', 422),
    (b'{"unit_id": "u", "context": {"channels": {"fax": true}}}', 422),
    (b'{"unit_id": "u", "context": {"recent_items": [1e9]}}', 422),
    (b'{"unit_id": "u", "context": {"recent_items": "abc"}}', 422),
    (b'{"unit_id": "u", "context": {"now": "tomorrow"}}', 422),
    (b'{"unit_id": "u", "extra": 1}', 422),
])
def test_malformed_requests_are_4xx_with_a_message_never_500(client, body, status):
    r = client.post("/decide", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert r.json()["error"]


def test_decide_fast_path_leaves_the_rest_to_fastapi(client, engine):
    """POST /decide skips FastAPI's routing; other methods on it and the other endpoints still go through it."""
    assert client.app.state.engine is engine                     # attribute look-ups reach the FastAPI app
    assert client.get("/decide").status_code == 405
    chunked = client.post("/decide", content=iter([b'{"unit_id": ', json.dumps(known_unit(engine)).encode(), b"}"]))
    assert chunked.status_code == 200 and chunked.json()["unit_id"] == known_unit(engine)
    assert chunked.headers["content-type"] == "application/json"
    assert client.get("/health").status_code == 200


def test_decision_record_is_complete_and_reproduces_the_draw(client, engine):
    unit = known_unit(engine)
    out = [client.post("/decide", json={"unit_id": unit, "context": {"now": 1_900_000_000 + i}}).json()
           for i in range(3)]
    recs = records(engine)
    assert [r["decision_id"] for r in recs] == [o["decision_id"] for o in out]
    for rec, o in zip(recs, out):
        for key in ("decision_id", "model_id", "feature_schema", "event_schema", "mask", "propensity", "prices",
                    "scores", "eligible", "exposure", "features", "latency_ms", "temperature", "mode"):
            assert key in rec, key
        version = engine.registry.get(rec["model_id"])
        np.testing.assert_array_equal(rec["prices"], version.policy.prices_)
        again = version.policy.decide(np.array([rec["scores"]]), np.array([rec["eligible"]], dtype=bool),
                                      unit_ids=[rec["decision_id"]], trace=False, exposure=np.array([rec["exposure"]]))
        assert int(again.actions[0]) == rec["action"] == o["action"]
        assert float(again.propensities[0]) == rec["propensity"]
        assert set(rec["latency_ms"]) == {"feat", "candidates", "score", "select", "total"}


def test_consent_mask_zeroes_features_and_is_logged(client, engine):
    unit = known_unit(engine)
    now = 1_800_000_000
    client.post("/decide", json={"unit_id": unit, "context": {"now": now,
                                                             "consent": {"profiling": False, "call_data": False}}})
    client.post("/decide", json={"unit_id": unit, "context": {"now": now}})
    masked, full = records(engine)
    assert masked["mask"] == {"profiling": 0, "call_data": 0, "branch_data": 1}
    assert full["mask"] == {"profiling": 1, "call_data": 1, "branch_data": 1}
    for j in MASK_GROUPS["profiling"] + MASK_GROUPS["call_data"]:
        assert masked["features"][j] == 0.0
    assert any(full["features"][j] != 0 for j in range(len(FEATURE_NAMES)))
    assert masked["features"][2] == full["features"][2]


def test_channel_consent_and_contact_cap(client, engine):
    unit = known_unit(engine)
    no_channels = {ch: False for ch in ("email", "push", "sms", "call")}
    r = client.post("/decide", json={"unit_id": unit, "context": {"channels": no_channels}}).json()
    assert r["action"] == 0 and records(engine)[-1]["eligible"] == [1, 0, 0, 0, 0]
    engine.contacts[unit].extend([(1_700_000_000_000_000 + i, 1, 7) for i in range(engine.config.contact_cap)])
    r = client.post("/decide", json={"unit_id": unit, "context": {"now": 1_700_000_100}}).json()
    assert r["action"] == 0 and records(engine)[-1]["eligible"] == [1, 0, 0, 0, 0]


def test_events_endpoint_updates_state_and_quarantines(client, engine):
    unit = known_unit(engine)
    before = client.post("/decide", json={"unit_id": unit}).json()
    t = int(time.time()) - 3600
    ev = [{"event_id": f"new-{i}", "customer_id": unit, "ts": t + i, "type": "call",
           "subtype": "complaint", "value": 60} for i in range(5)]
    r = client.post("/events", json=ev + ev[:2] + [{"event_id": "bad", "customer_id": unit, "type": "fax", "ts": 1}])
    assert r.status_code == 200
    assert r.json()["accepted"] == 5 and r.json()["duplicates"] == 2 and r.json()["quarantined"] == 1
    assert r.json()["reasons"][0].startswith("type:")
    assert client.post("/events", json={"events": ev}).json()["duplicates"] == 5
    assert client.post("/events", content=b"{oops").status_code == 400
    assert client.post("/events", json={"not": "events"}).status_code == 422
    client.post("/decide", json={"unit_id": unit})
    first, last = records(engine)[0], records(engine)[-1]
    assert last["features"][3] > first["features"][3]        # decay_complaint went up
    assert before["decision_id"] == first["decision_id"]


def test_admin_requires_the_token_and_pause_serves_fallback_only(client, engine):
    assert client.post("/admin/pause").status_code == 401
    assert client.post("/admin/pause", headers={"authorization": "Bearer wrong"}).status_code == 401
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert client.post("/admin/pause", headers=auth).status_code == 200
    units = sorted(engine.store.state.customers)[:20]
    out = [client.post("/decide", json={"unit_id": u}).json() for u in units]
    assert all(o["action"] == 0 and o["mode"] == "paused" and o["reason"] == "paused" for o in out)
    assert client.post("/admin/resume", headers={"x-admin-token": TOKEN}).status_code == 200
    assert client.post("/decide", json={"unit_id": units[0]}).json()["mode"] == "normal"


def test_admin_rollback_restores_the_previous_model_id(client, engine):
    auth = {"authorization": f"Bearer {TOKEN}"}
    unit = known_unit(engine)
    assert client.post("/decide", json={"unit_id": unit}).json()["model_id"] == "demo-v2"
    r = client.post("/admin/rollback", headers=auth)
    assert r.status_code == 200 and r.json()["previous"] == "demo-v2" and r.json()["model_id"] == "demo-v1"
    assert client.post("/decide", json={"unit_id": unit}).json()["model_id"] == "demo-v1"
    assert client.get("/health").json()["model_id"] == "demo-v1"
    assert client.post("/admin/rollback", headers=auth).status_code == 409     # nothing older
    assert client.post("/admin/cautious", headers=auth, json={"on": "yes"}).status_code == 422
    assert client.post("/admin/cautious", headers=auth, json={"on": True}).json()["mode"] == "cautious"
    assert client.post("/admin/nonsense", headers=auth).status_code == 404


def test_admin_disabled_without_a_token(engine):
    from fastapi.testclient import TestClient

    from optimizer.service.app import create_app

    with TestClient(create_app(engine, admin_token="")) as c:
        assert c.post("/admin/pause", headers={"authorization": "Bearer "}).status_code == 403


def test_metrics_exports_per_component_latencies(client, engine):
    unit = known_unit(engine)
    for _ in range(5):
        client.post("/decide", json={"unit_id": unit})
    client.post("/decide", json={"unit_id": 5})
    text = client.get("/metrics").text
    for c in ("feat", "candidates", "score", "select", "total"):
        assert f'contactplan_decide_latency_seconds_count{{component="{c}"}} 5' in text
        assert f'contactplan_decide_latency_p95_seconds{{component="{c}"}}' in text
    assert 'contactplan_decisions_total{mode="normal",reason="policy"} 5' in text
    assert 'contactplan_http_client_errors_total{status="422"} 1' in text
    assert "contactplan_slo95_met" in text and 'contactplan_mode{mode="normal"} 1' in text


def test_profiling_consent_withheld_uses_the_non_personalised_list(engine):
    unit = known_unit(engine)
    engine.decide(unit, {"consent": {"profiling": False}})
    rec = records(engine)[-1]
    assert rec["best_offer"] in engine.catalog.popular[:engine.config.breadth].tolist()


def test_fold_in_refresh_from_recent_items(engine):
    unit = known_unit(engine)
    engine.decide(unit, {"recent_items": [1, 2, 3]})
    u = engine.refreshed[unit]
    np.testing.assert_allclose(u, engine.catalog.item_vectors[[1, 2, 3]].sum(0) / engine.catalog.singular_values,
                               rtol=1e-6)


def test_serve_without_demo_is_a_one_line_error(capsys):
    from optimizer.cli import main

    assert main(["serve"]) == 2
    assert capsys.readouterr().err.startswith("error: --demo:")


def test_batched_decisions_equal_one_by_one(tmp_path):
    """decide_many (first request of every unit together, repeats in later rounds) = deciding one at a time."""
    a, b = small_engine(tmp_path / "a"), small_engine(tmp_path / "b")
    b.instance = a.instance                                   # same decision ids, hence the same draws
    units = sorted(a.store.state.customers)[:5]
    t = 1_900_000_000
    for eng in (a, b):                                        # one more contact reaches units[0]'s cap
        eng.contacts[units[0]].extend([(t * 1_000_000 - 10 ** 6, 1, 7)] * (eng.config.contact_cap - 1))
    requests = [(units[0], {"now": t + i}) for i in range(6)]
    requests += [(u, {"now": t + 10, "consent": {"profiling": False}}) for u in units[1:3]]
    requests += [(units[3], {"now": t + 11, "channels": {"email": False, "push": False}}),
                 (units[4], {"now": t + 12, "recent_items": [1, 2, 3]}), ("unknown-unit", {"now": t + 13}),
                 (5, None), (units[1], {"now": t + 14, "consent": {"nope": True}}), (units[1], {"now": t + 15})]
    requests = requests[::2] + requests[1::2]                                       # interleave the repeats
    batched = a.decide_many(requests)
    single = []
    for unit, context in requests:
        try:
            single.append(b.decide(unit, context))
        except InputError as exc:
            single.append(exc)
    assert [str(x) if isinstance(x, InputError) else x for x in batched] == \
           [str(x) if isinstance(x, InputError) else x for x in single]
    assert sum(isinstance(x, InputError) for x in batched) == 2
    strip = lambda rec: {k: v for k, v in rec.items() if k not in ("latency_ms", "batch")}   # noqa: E731
    ra, rb = records(a), records(b)
    assert sorted(map(json.dumps, map(strip, ra))) == sorted(map(json.dumps, map(strip, rb)))
    assert max(r["batch"] for r in ra) > 1 and all(r["batch"] == 1 for r in rb)
    a.close()
    b.close()


def test_concurrent_posts_are_decided_in_one_batch(engine):
    """Bodies that reach DecideFastPath in the same event-loop turn share one engine batch; bad ones get their 4xx."""
    import asyncio

    from optimizer.service.app import create_app

    app = create_app(engine, admin_token=TOKEN)
    units = sorted(engine.store.state.customers)[:8]
    bodies = [json.dumps({"unit_id": u}).encode() for u in units] + [b"{not json", b'{"unit_id": 3}']

    async def post(body):
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        await app({"type": "http", "path": "/decide", "method": "POST"}, receive, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    async def main():
        return await asyncio.gather(*(post(body) for body in bodies))

    out = asyncio.run(main())
    assert [s for s, _ in out] == [200] * len(units) + [400, 422]
    assert [o["unit_id"] for _, o in out[:len(units)]] == units
    assert "unit_id" in out[-1][1]["error"]
    assert [r["batch"] for r in records(engine)] == [len(units)] * len(units)
