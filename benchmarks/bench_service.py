"""Benchmark of the real-time decision service (issue 15); writes ``benchmarks/service.md``.

Two parts (``--part inprocess|load|all``):

* **inprocess** -- truncated SVD (scipy ``svds``) of a synthetic sparse
  interaction matrix (users × 100,000 items), an hnswlib index over the item
  vectors, recall@k of the ANN search against exact search and its speed-up,
  then the full in-process decision (features → 1,000 candidates → scores →
  Lagrangian policy → durable record) with per-component latencies.
* **load** -- ``contactplan serve --demo`` in a subprocess on loopback and
  N ``POST /decide`` requests at concurrency C from a lightweight asyncio
  HTTP/1.1 keep-alive client (the raw client keeps the client's CPU share
  small on 2 cores; ``--client httpx`` uses httpx.AsyncClient instead);
  errors, p50/p95/p99 end to end, and records in the decision log vs
  responses. ``uptime`` is recorded before and after: other jobs on the
  machine distort the numbers.

Run: ``nice -n 19 python benchmarks/bench_service.py --part all``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.io import write_text  # noqa: E402


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


# ---------------------------------------------------------------------------
# in-process
# ---------------------------------------------------------------------------

def clustered_interactions(n_users: int, n_items: int, per_user: int, n_clusters: int, seed: int) -> sp.csr_matrix:
    """Implicit 0/1 interactions: each user draws items from 3 favourite item clusters."""
    rng = np.random.default_rng(seed)
    cluster_of = rng.integers(0, n_clusters, n_items)
    members = [np.flatnonzero(cluster_of == c) for c in range(n_clusters)]
    rows, cols = [], []
    for u in range(n_users):
        fav = rng.choice(n_clusters, 3, replace=False)
        pool = np.concatenate([members[c] for c in fav])
        rows.append(np.full(per_user, u))
        cols.append(rng.choice(pool, per_user, replace=False))
    m = sp.csr_matrix((np.ones(n_users * per_user), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n_users, n_items))
    m.data[:] = 1.0
    return m


def run_inprocess(args: argparse.Namespace, rows: list[str]) -> None:
    from optimizer.service.demo import build_demo
    from optimizer.service.embeddings import CandidateIndex, SVDEmbeddings, exact_top_k, recall_at_k
    from optimizer.service.engine import Catalog, DecisionEngine, EngineConfig

    t = time.perf_counter()
    inter = clustered_interactions(args.users, args.items, 30, 1000, 0)
    t_gen = time.perf_counter() - t
    cache = Path(args.cache) if args.cache else None
    key = f"{args.users}-{args.items}-{args.dim}-{args.m}-{args.ef_construction}"
    if cache is not None and (cache / f"emb-{key}.npz").exists():
        z = np.load(cache / f"emb-{key}.npz")
        emb = SVDEmbeddings(args.dim, random_state=0)
        emb.user_vectors_, emb.item_vectors_, emb.singular_values_ = z["u"], z["v"], z["s"]
        t_svd, t_build = float(z["t_svd"]), float(z["t_build"])
        index = CandidateIndex.load(str(cache / f"hnsw-{key}.bin"), args.items, args.dim)
        print("loaded the cached embeddings and index (build times are those of the cached run)")
    else:
        t = time.perf_counter()
        emb = SVDEmbeddings(args.dim, random_state=0).fit(inter)
        t_svd = time.perf_counter() - t
        t = time.perf_counter()
        index = CandidateIndex(emb.item_vectors_, m=args.m, ef_construction=args.ef_construction, threads=2)
        t_build = time.perf_counter() - t
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(cache / f"emb-{key}.npz", u=emb.user_vectors_, v=emb.item_vectors_, s=emb.singular_values_,
                     t_svd=t_svd, t_build=t_build)
            index.save(str(cache / f"hnsw-{key}.bin"))
    print(f"interactions {inter.shape} nnz={inter.nnz} in {t_gen:.1f}s; svds k={args.dim} {t_svd:.1f}s; "
          f"hnswlib build {t_build:.1f}s", flush=True)
    rows.append(f"Embeddings: {inter.shape[0]:,} users × {inter.shape[1]:,} items, {inter.nnz:,} interactions; "
                f"truncated SVD (scipy `svds`, k={args.dim}) {t_svd:.1f} s; hnswlib build (M={args.m}, "
                f"ef_construction={args.ef_construction}, 2 threads) {t_build:.1f} s.\n")
    rng = np.random.default_rng(1)
    queries = emb.user_vectors_[rng.choice(inter.shape[0], args.queries, replace=False)]
    items = emb.item_vectors_
    rows.append("recall@k = |ANN ∩ exact| / k; value ratio = Σ inner products of the ANN top-k / Σ of the exact "
                "top-k (near-ties inside an item cluster make set recall pessimistic).\n")
    rows.append("| k | ef | recall@k | value ratio | ANN p50 ms | ANN p99 ms | exact p50 ms | exact p99 ms | "
                "speed-up (mean) |")
    rows.append("|---|---|---|---|---|---|---|---|---|")
    for k in (10, 100, 1000):
        exact_t, exact_ids = [], []
        for q in queries:
            t0 = time.perf_counter()
            exact_ids.append(exact_top_k(items, q, k)[0])
            exact_t.append(time.perf_counter() - t0)
        for ef in sorted({max(k, 64), 2 * k}):
            ann_t, ann_ids = [], []
            for q in queries:
                t0 = time.perf_counter()
                ann_ids.append(index.query(q, k, ef)[0])
                ann_t.append(time.perf_counter() - t0)
            rec = recall_at_k(np.array(ann_ids), np.array(exact_ids))
            ratio = np.mean([(items[a] @ q).sum() / (items[e] @ q).sum()
                             for a, e, q in zip(ann_ids, exact_ids, queries)])
            line = (f"| {k} | {ef} | {rec:.4f} | {ratio:.4f} | {pct(ann_t, 50):.3f} | {pct(ann_t, 99):.3f} "
                    f"| {pct(exact_t, 50):.3f} | {pct(exact_t, 99):.3f} | {np.mean(exact_t) / np.mean(ann_t):.1f}× |")
            print(line, flush=True)
            rows.append(line)

    # full in-process decisions with 1,000 candidates from the 100,000 items
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    base = build_demo(tmp / "demo", n_customers=200, weeks=4, n_items=500, extra_users=200)
    customers = sorted(base.catalog.user_rows)
    margins = np.round(np.random.default_rng(2).lognormal(1.0, 0.5, args.items), 2)
    cat = Catalog(item_ids=np.arange(args.items), margins=margins, item_vectors=items, index=index,
                  user_rows={c: i for i, c in enumerate(customers)}, user_vectors=emb.user_vectors_[:len(customers)],
                  singular_values=emb.singular_values_, popular=np.argsort(-margins, kind="stable"))
    base.close()
    from optimizer.service.model import ModelRegistry
    from optimizer.service.state import StreamStore

    store = StreamStore.open(tmp / "demo" / "state", base.store.state.spec)
    eng = DecisionEngine(store, ModelRegistry(base.registry.versions), cat, tmp / "inproc",
                         EngineConfig(breadth=1000, contact_cap=10**9))
    for i in range(200):
        eng.decide(customers[i % len(customers)])
    total = []
    for i in range(args.decisions):
        t0 = time.perf_counter()
        eng.decide(customers[i % len(customers)])
        total.append(time.perf_counter() - t0)
    recs = [json.loads(line) for line in eng.log.path.read_text().splitlines()[200:]]
    n_cand = np.mean([r.get("n_candidates", 0) for r in recs])
    eng.close()
    shutil.rmtree(tmp, ignore_errors=True)
    rows.append("")
    rows.append(f"In-process decision, breadth k = 1,000 from {args.items:,} items (ef = 1,000), {args.decisions:,} "
                f"decisions after 200 warm-up, mean candidates after filtering {n_cand:.0f}:\n")
    rows.append("| component | p50 ms | p95 ms | p99 ms |")
    rows.append("|---|---|---|---|")
    for comp in ("feat", "candidates", "score", "select", "total"):
        vals = [r["latency_ms"].get(comp, 0.0) / 1e3 for r in recs]
        rows.append(f"| {comp} (engine timer) | {pct(vals, 50):.3f} | {pct(vals, 95):.3f} | {pct(vals, 99):.3f} |")
    rows.append(f"| decide() incl. record write | {pct(total, 50):.3f} | {pct(total, 95):.3f} | {pct(total, 99):.3f} |")
    print("\n".join(rows[-8:]), flush=True)


def run_parity(args: argparse.Namespace, rows: list[str]) -> None:
    """Parity delta removed and accuracy cost of the projection penalty on the demo's batch C360 features."""
    from optimizer.service.demo import c360_data, parity_report, synthetic_labels
    from optimizer.service.model import feature_matrix

    tmp = Path(tempfile.mkdtemp(prefix="bench-parity-"))
    _, features, _ = c360_data(tmp / "c360", 400, 6, seed=0)
    shutil.rmtree(tmp, ignore_errors=True)
    x = feature_matrix(features)
    y, cohort = synthetic_labels(x, 0)
    rows.append(f"Response model (4 channels) on {len(x):,} customer-weeks of generated Customer 360 features, "
                "synthetic labels with a cohort shift; held-out half; parity delta = max over channels of "
                "|mean p(cohort 1) − mean p(cohort 0)|; logit gap = the same on the linear score.\n")
    rows.append("| ρ | parity delta | logit gap | ‖Pθ‖² | log loss | AUC |")
    rows.append("|---|---|---|---|---|---|")
    for rho in (0.0, 1.0, 10.0, 100.0):
        rep = parity_report(x, y, cohort, rho=rho)["projected"]
        rows.append(f"| {rho:g} | {rep['parity_delta']:.4f} | {rep['logit_gap']:.4f} | {rep['penalty']:.2e} | "
                    f"{rep['log_loss']:.4f} | {rep['auc']:.4f} |")
    print("\n".join(rows[-6:]), flush=True)


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def raw_worker(port: int, bodies: list[bytes], lat: list, status: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in bodies:
            req = (b"POST /decide HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            status.append(int(head[9:12]))
    finally:
        writer.close()


async def httpx_worker(client, bodies: list[bytes], lat: list, status: list) -> None:
    for body in bodies:
        t0 = time.perf_counter()
        r = await client.post("/decide", content=body, headers={"content-type": "application/json"})
        lat.append(time.perf_counter() - t0)
        status.append(r.status_code)


async def load(port: int, bodies: list[bytes], concurrency: int, client: str) -> tuple[list, list, float]:
    lat: list = []
    status: list = []
    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    t0 = time.perf_counter()
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as c:
            await asyncio.gather(*(httpx_worker(c, ch, lat, status) for ch in chunks))
    else:
        await asyncio.gather(*(raw_worker(port, ch, lat, status) for ch in chunks))
    return lat, status, time.perf_counter() - t0


def run_load(args: argparse.Namespace, rows: list[str]) -> None:
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from optimizer.cli import main; sys.exit(main(sys.argv[1:]))",
           "serve", "--demo", "--port", str(port), "--state-dir", str(tmp / "svc")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(proc.stderr.read().decode())
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        startup = time.perf_counter() - t
        units = [json.loads(line)["customer"] for line in
                 (tmp / "svc" / "state" / "events.jsonl").read_text().splitlines()[:20000:50]]
        rng = np.random.default_rng(0)
        pick = rng.integers(0, len(units), args.requests + args.warmup)
        bodies = [json.dumps({"unit_id": units[i] if rng.random() > 0.02 else f"unknown-{i}"}).encode()
                  for i in pick]
        asyncio.run(load(port, bodies[:args.warmup], args.concurrency, args.client))
        up_before = uptime()
        lat, status, wall = asyncio.run(load(port, bodies[args.warmup:], args.concurrency, args.client))
        up_after = uptime()
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    with open(tmp / "svc" / "decisions.jsonl", "rb") as f:
        n_records = sum(1 for _ in f)
    shutil.rmtree(tmp, ignore_errors=True)
    ok = sum(1 for s in status if s == 200)
    errors = len(status) - ok
    server_p95 = [line for line in metrics.splitlines()
                  if line.startswith("contactplan_decide_latency_p95_seconds")]
    rows.append(f"| {args.requests:,} | {args.concurrency} | {args.client} | {errors} | {pct(lat, 50):.2f} | "
                f"{pct(lat, 95):.2f} | {pct(lat, 99):.2f} | {len(lat) / wall:,.0f} | "
                f"{n_records:,} / {ok + args.warmup:,} | {health['decisions']:,} |")
    print(rows[-1], flush=True)
    rows.append("")
    rows.append(f"Server start-up (demo build) {startup:.1f} s. Warm-up {args.warmup} requests "
                "(counted in the records).")
    rows.append(f"`uptime` before: `{up_before}`; after: `{up_after}`.\n")
    rows.append("Server-side p95 per component of the decisions' batches after the run (from `/metrics`, last "
                "10,000 decisions; the server decides the requests that arrive together as one batch):\n")
    rows += [f"    {line}" for line in server_p95]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=("inprocess", "load", "parity", "all"))
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--client", default="raw", choices=("raw", "httpx"))
    ap.add_argument("--cache", default=None, help="directory to keep / reuse the embeddings and the index")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "service.md"))
    args = ap.parse_args()
    rows = ["# Real-time decision service benchmark (issue 15)", "",
            f"Machine: {os.cpu_count()} CPUs; command `nice -n 19 python benchmarks/bench_service.py "
            f"--part {args.part}`; `uptime` at start: `{uptime()}`.", ""]
    if args.part in ("inprocess", "all"):
        rows += ["## ANN candidates and in-process decisions", ""]
        run_inprocess(args, rows)
        rows += ["", "## Projection regularisation: parity delta removed, accuracy paid", ""]
        run_parity(args, rows)
        rows.append("")
    if args.part == "parity":
        rows += ["## Projection regularisation: parity delta removed, accuracy paid", ""]
        run_parity(args, rows)
    if args.part in ("load", "all"):
        rows += ["## HTTP load against `contactplan serve --demo` (loopback)", "",
                 "| requests | concurrency | client | errors | p50 ms | p95 ms | p99 ms | req/s | "
                 "records / responses | /health decisions |", "|---|---|---|---|---|---|---|---|---|---|"]
        run_load(args, rows)
        rows.append("")
    write_text("\n".join(rows) + "\n", args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
