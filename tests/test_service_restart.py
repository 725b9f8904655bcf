"""Restart: kill -9 the real ``contactplan serve --demo`` process, restart it, state and decision log intact."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

TOKEN = "restart-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(state_dir: Path, port: int, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, CONTACTPLAN_ADMIN_TOKEN=TOKEN)
    cmd = [sys.executable, "-c", "import sys; from optimizer.cli import main; sys.exit(main(sys.argv[1:]))",
           "serve", "--demo", "--port", str(port), "--state-dir", str(state_dir), "--customers", "40", "--items", "300"]
    repo = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 120.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        try:
            r = httpx.get(url + "/health", timeout=1.0)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


def test_kill_restart_keeps_state_and_decision_log(tmp_path):
    from optimizer.service.state import FeatureState, read_lines, replay

    state_dir = tmp_path / "svc"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(state_dir, port, tmp_path)
    try:
        h0 = wait_healthy(proc, url)
        units = json.loads(next(read_lines(state_dir / "state" / "events.jsonl")))["customer"]
        now = int(time.time()) - 30
        ev = [{"event_id": f"live-{i}", "customer_id": units, "ts": now + i, "type": "digital", "subtype": "login"}
              for i in range(7)]
        with httpx.Client(base_url=url, timeout=10.0) as c:
            assert c.post("/events", json=ev).json()["accepted"] == 7
            answers = [c.post("/decide", json={"unit_id": units}).json() for _ in range(25)]
            answers.append(c.post("/decide", json={"unit_id": "ghost"}).json())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()
        log = [json.loads(line) for line in read_lines(state_dir / "decisions.jsonl")]
        assert [r["decision_id"] for r in log] == [a["decision_id"] for a in answers]

        proc = start(state_dir, port, tmp_path)
        h1 = wait_healthy(proc, url)
        assert h1["events"] == h0["events"] + 7 and h1["decisions"] == len(answers)
        with httpx.Client(base_url=url, timeout=10.0) as c:
            again = c.post("/decide", json={"unit_id": units}).json()
            assert again["decision_id"] not in {a["decision_id"] for a in answers}
            assert c.post("/events", json=ev).json()["duplicates"] == 7          # idempotent across restarts
            assert c.post("/admin/snapshot", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        snap, _ = FeatureState.from_json((state_dir / "state" / "state.json").read_text())
        replayed = replay(state_dir / "state" / "events.jsonl", snap.spec)
        assert replayed.state_json() == snap.state_json()
        assert len(list(read_lines(state_dir / "decisions.jsonl"))) == len(answers) + 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if proc.stderr and not proc.stderr.closed:
            proc.stderr.close()
