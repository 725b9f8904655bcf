"""The FastAPI app of ``contactplan serve`` (endpoint contract in ``docs/service.md``).

=====================  =====================================================================
``GET /health``        200 ``{"status": "ok", "mode", "model_id", ...}``
``POST /decide``       ``{"unit_id": str, "context": {...}}`` → 200 ``{"action", "channel",
                       "offer", "propensity", "decision_id", "mode", "reason", "model_id",
                       "response_probability"}``; unknown unit → fallback (reason
                       ``unknown_unit``); malformed JSON → 400, wrong types / values → 422
``POST /events``       a JSON list of events (or ``{"events": [...]}``) → 200 counts of accepted,
                       duplicate and quarantined records (nonconforming records are
                       quarantined with a reason, never a 500)
``POST /admin/*``      ``pause``, ``resume``, ``rollback``, ``cautious`` (``{"on": bool}``),
                       ``snapshot``; header ``Authorization: Bearer $CONTACTPLAN_ADMIN_TOKEN``
                       (401 wrong token, 403 when no token is configured)
``GET /metrics``       Prometheus text: per-component latency histograms, p95 (SLO95),
                       decisions by mode/reason, events, mode, drift, rollback rates
=====================  =====================================================================

No ``from __future__ import annotations`` here: FastAPI must see the real ``Request`` class.
Handlers are ``async`` and run on the event loop: decisions are short and
CPU-bound, and one thread owns the state (no locks). fastapi is imported
only when an app is created.
"""


import asyncio
import hmac
import json
import os
from contextlib import asynccontextmanager
from typing import Any

from formulations.errors import InputError

TOKEN_ENV = "CONTACTPLAN_ADMIN_TOKEN"
MAX_EVENTS_PER_REQUEST = 10_000


def create_app(engine: Any, admin_token: str | None = None) -> Any:
    """The FastAPI app serving ``engine`` (a :class:`~optimizer.service.engine.DecisionEngine`).

    ``admin_token`` defaults to the environment variable ``CONTACTPLAN_ADMIN_TOKEN``.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, Response

    to_json = json.JSONEncoder(separators=(",", ":"), default=str).encode
    token = admin_token if admin_token is not None else os.environ.get(TOKEN_ENV)

    @asynccontextmanager
    async def lifespan(app: Any):
        yield
        engine.close()

    app = FastAPI(title="contactplan decision service", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine

    def encode(body: Any, status: int) -> bytes:
        if status >= 400:
            engine.metrics.http_errors[status] += 1
        return to_json(body).encode()

    def reply(body: Any, status: int = 200) -> Response:
        return Response(encode(body, status), status_code=status, media_type="application/json")

    def parse(raw: bytes) -> tuple[Any, bytes | None]:
        """(JSON value, None), or (None, the 400 body) for a body that is not JSON."""
        try:
            return json.loads(raw), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, encode({"error": f"body: expected JSON ({exc})"}, 400)

    def decide_many_bytes(raws: list) -> list:
        """Whole ``POST /decide`` exchanges on raw bodies, decided as one batch: [(status, JSON body)]."""
        out: list = [None] * len(raws)
        valid, requests = [], []
        for i, raw in enumerate(raws):
            body, bad = parse(raw)
            if bad is not None:
                out[i] = 400, bad
            elif not isinstance(body, dict):
                out[i] = 422, encode({"error": "body: expected an object {\"unit_id\": str, \"context\": {...}}"},
                                     422)
            elif unknown := sorted(set(body) - {"unit_id", "context"}):
                out[i] = 422, encode({"error": f"{unknown[0]}: unknown field"}, 422)
            elif "unit_id" not in body:
                out[i] = 422, encode({"error": "unit_id: missing"}, 422)
            else:
                valid.append(i)
                requests.append((body["unit_id"], body.get("context")))
        for i, res in zip(valid, engine.decide_many(requests)):
            out[i] = (422, encode({"error": str(res)}, 422)) if isinstance(res, InputError) else (200, encode(res, 200))
        return out

    async def body_json(request: Request) -> tuple[Any, Response | None]:
        body, bad = parse(await request.body())
        return body, None if bad is None else Response(bad, status_code=400, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return reply(engine.status())

    @app.post("/decide")
    async def decide(request: Request) -> Response:      # POST is served by DecideFastPath; the route gives 405s
        status, payload = decide_many_bytes([await request.body()])[0]
        return Response(payload, status_code=status, media_type="application/json")

    @app.post("/events")
    async def events(request: Request) -> Response:
        body, bad = await body_json(request)
        if bad is not None:
            return bad
        if isinstance(body, dict) and set(body) == {"events"}:
            body = body["events"]
        if not isinstance(body, list):
            return reply({"error": "body: expected a list of events or {\"events\": [...]}"}, 422)
        if len(body) > MAX_EVENTS_PER_REQUEST:
            return reply({"error": f"body: at most {MAX_EVENTS_PER_REQUEST} events per request"}, 413)
        return reply(engine.ingest(body))

    @app.get("/metrics")
    async def metrics() -> Response:
        return PlainTextResponse(engine.metrics_text(), media_type="text/plain; version=0.0.4")

    def authorised(request: Request) -> Response | None:
        if not token:
            return reply({"error": f"admin: disabled (set {TOKEN_ENV})"}, 403)
        given = request.headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else request.headers.get("x-admin-token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return reply({"error": "admin: invalid token"}, 401)
        return None

    @app.post("/admin/{action}")
    async def admin(action: str, request: Request) -> Response:
        denied = authorised(request)
        if denied is not None:
            return denied
        try:
            if action == "pause":
                return reply(engine.pause(True))
            if action == "resume":
                return reply(engine.pause(False))
            if action == "rollback":
                return reply(engine.rollback())
            if action == "snapshot":
                return reply({"snapshot": engine.snapshot()})
            if action == "cautious":
                body, bad = await body_json(request)
                if bad is not None:
                    return bad
                on = body.get("on") if isinstance(body, dict) else None
                if not isinstance(on, bool):
                    return reply({"error": "on: expected true or false"}, 422)
                return reply(engine.set_cautious(on))
        except InputError as exc:
            return reply({"error": str(exc)}, 409)
        return reply({"error": f"admin: unknown action {action!r}"}, 404)

    return DecideFastPath(app, decide_many_bytes)


class DecideFastPath:
    """The ASGI entry point: ``POST /decide`` is answered here, in batches; everything else by FastAPI.

    The hot endpoint skips routing, the Request/Response objects and the
    middleware stack (the same validation and messages run in
    ``decide_many_bytes``). Bodies that arrive in the same turn of the event
    loop are decided together: the first one schedules a flush with
    ``call_soon`` and every request waits for its own answer, so one request
    alone is served at once, and under load one ANN, model and policy call
    serve the whole batch (the engine's ``decide_many`` gives the decisions
    one-by-one deciding would). Attribute look-ups (``state``, ``routes`` ...)
    go to the FastAPI app.
    """

    HEADERS = [(b"content-type", b"application/json")]

    def __init__(self, app: Any, decide_many_bytes: Any) -> None:
        self.app = app
        self.decide_many_bytes = decide_many_bytes
        self.pending: list = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        try:
            results = self.decide_many_bytes([raw for raw, _ in batch])
        except BaseException as exc:        # never leave a request waiting
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            raise
        for (_, fut), res in zip(batch, results):
            if not fut.done():
                fut.set_result(res)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/decide" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.append((b"".join(chunks), fut))
        if len(self.pending) == 1:
            loop.call_soon(self.flush)
        status, payload = await fut
        await send({"type": "http.response.start", "status": status,
                    "headers": self.HEADERS + [(b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
