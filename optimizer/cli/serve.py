"""``contactplan serve`` (issue 15): the real-time decision service.

``contactplan serve --demo`` builds (or reopens) a demo service trained on
synthetic Customer 360 data in ``--state-dir`` and serves it with uvicorn on
127.0.0.1. fastapi / uvicorn are imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from formulations.errors import InputError
from optimizer.cli import app


@app.command("serve")
def serve_cmd(
    demo: bool = typer.Option(False, "--demo", help="Serve the demo model trained on synthetic Customer 360 data."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (default: localhost only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    state_dir: Path = typer.Option(Path("contactplan-serve"), "--state-dir",
                                   help="Directory of the state, event log, decision log and snapshots."),
    customers: int = typer.Option(400, "--customers", help="Demo: Customer 360 customers to generate."),
    items: int = typer.Option(5000, "--items", help="Demo: catalogue size."),
    breadth: int = typer.Option(200, "--breadth", help="Candidates retrieved per decision (k)."),
    latency_budget_ms: float = typer.Option(10.0, "--latency-budget-ms", help="Latency budget L (ms)."),
    fsync: bool = typer.Option(False, "--fsync", help="fsync every decision record (power-loss durability)."),
    seed: int = typer.Option(0, "--seed", help="Demo: random seed."),
) -> None:
    """Start the HTTP decision service (GET /health, POST /decide, POST /events, /admin/*, GET /metrics)."""
    if not demo:
        raise InputError("--demo", "only the demo model can be served so far: run `contactplan serve --demo`")
    if not 0 <= port < 65536:
        raise InputError("--port", f"expected 0..65535, got {port}")
    if breadth < 1:
        raise InputError("--breadth", f"expected a positive integer, got {breadth}")
    if customers < 20:
        raise InputError("--customers", f"expected at least 20 customers, got {customers}")
    if items < 100:
        raise InputError("--items", f"expected at least 100 items, got {items}")
    if not latency_budget_ms > 0:
        raise InputError("--latency-budget-ms", f"expected a positive number, got {latency_budget_ms}")
    if state_dir.exists() and not state_dir.is_dir():
        raise InputError("--state-dir", f"{str(state_dir)!r} is not a directory")
    import gc
    import time

    import uvicorn

    from optimizer.service.app import create_app
    from optimizer.service.demo import build_demo
    from optimizer.service.engine import EngineConfig

    t0 = time.perf_counter()
    config = EngineConfig(breadth=breadth, latency_budget_ms=latency_budget_ms, fsync=fsync)
    engine = build_demo(state_dir, n_customers=customers, n_items=items, seed=seed, config=config,
                        progress=lambda msg: typer.echo(f"[{time.perf_counter() - t0:5.1f}s] {msg}", err=True))
    status = engine.status()
    typer.echo(f"serving model {status['model_id']} ({status['customers']} customers, {status['events']} events, "
               f"{status['decisions']} decision records) on http://{host}:{port}", err=True)
    gc.freeze()     # the demo state is long-lived: keep it out of the collector's scans (shorter GC pauses)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning", access_log=False,
                proxy_headers=False)
