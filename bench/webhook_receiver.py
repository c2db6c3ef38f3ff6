"""Benchmark: signed webhook batches posted concurrently to the receiver; how many events per
second are stored, and how long does an answer take?

The receiver runs in its own process (so the load generator does not share its interpreter),
with the store the daemon gives it: each batch stored in one transaction (ON CONFLICT DO
NOTHING on the event key) before the 200. Runs: the real store on SQLite (a temporary file)
and on PostgreSQL (a temporary schema, when reachable at $IGSCHED_BENCH_PG_URL), and an
in-memory sink for comparison. Prints one JSON document, a run per store:
  store, bodies, events_posted, events_stored, events_stored_per_s, answer_ms {p50, p95, p99,
  max}, statuses, concurrency. Nothing is asserted: the figures depend on the machine.
Targets: >= 1,000 events stored per second, p99 <= 100 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

SECRET = "bench-app-secret"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ACCOUNTS = [str(17841400000001000 + i) for i in range(4)]


def _body(n: int, events: int) -> bytes:
    """A batch as Meta sends it: messages and comments, an entry each."""
    entries: list[dict[str, Any]] = []
    for i in range(events):
        acct = ACCOUNTS[(n + i) % len(ACCOUNTS)]
        if i % 2:
            entries.append({"id": acct, "time": 1764500000, "changes": [{"field": "comments",
                            "value": {"id": f"{18010000000000000 + n * events + i}",
                                      "text": f"sale? {n}/{i}", "from": {"id": "42", "username": "fan"},
                                      "media": {"id": "18000000000000001"}}}]})
        else:
            entries.append({"id": acct, "time": 1764500000000, "messaging": [
                {"sender": {"id": "42"}, "recipient": {"id": acct}, "timestamp": 1764500000000,
                 "message": {"mid": f"m_{n}_{i}", "text": f"hello {n}/{i}"}}]})
    return json.dumps({"object": "instagram", "entry": entries}, separators=(",", ":")).encode()


def serve(store_url: str | None) -> None:
    """Child process: the receiver with the store-backed sink (or an in-memory one when
    `store_url` is None); prints its URL, serves until stdin closes, then prints figures."""
    from concurrent.futures import ThreadPoolExecutor

    from scheduler.engage.events import WebhookEvent
    from scheduler.engage.intake import StoreSink
    from scheduler.engage.receiver import ReceiverConfig, WebhookReceiver
    from scheduler.store import Store

    stored: dict[str, WebhookEvent] = {}
    store = Store(store_url) if store_url else None
    names = {a: f"acct{i}" for i, a in enumerate(ACCOUNTS)}

    async def memory_sink(events: Sequence[WebhookEvent]) -> None:
        for e in events:
            stored.setdefault(e.dedup_key, e)

    async def main() -> None:
        # as the daemon: database calls in threads, enough for every concurrent request
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(20, "bench-db"))
        sink = StoreSink(store, names, ()) if store else memory_sink  # the daemon's sink
        receiver = WebhookReceiver(ReceiverConfig("/webhooks/instagram", "v", SECRET), sink)
        host, port = await receiver.start("127.0.0.1", 0)
        print(f"http://{host}:{port}/webhooks/instagram", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await receiver.stop()
        unique = store.webhook_event_counts()[0] if store else len(stored)
        print(json.dumps({"unique": unique, "stats": receiver.stats.__dict__}), flush=True)

    asyncio.run(main())


async def load(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], dict[int, int]]:
    times: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    # aiohttp's client: lighter than httpx, so more of the CPU goes to the receiver
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker() -> None:
            while not queue.empty():
                raw = queue.get_nowait()
                sig = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                started = time.perf_counter()
                async with client.post(url, data=raw, headers={
                        "X-Hub-Signature-256": sig, "Content-Type": "application/json"}) as r:
                    await r.read()
                times.append(time.perf_counter() - started)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times, statuses


def run_once(label: str, store_url: str | None, bodies: list[bytes], warmup: list[bytes],
             events_per_body: int, concurrency: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--serve"] + (["--store-url", store_url] if store_url else [])
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert child.stdin is not None and child.stdout is not None
    try:
        url = child.stdout.readline().strip()
        asyncio.run(load(url, warmup, 4))  # warm-up: connections, first imports, first writes
        started = time.perf_counter()
        times, statuses = asyncio.run(load(url, bodies, concurrency))
        elapsed = time.perf_counter() - started
    finally:
        child.stdin.close()
        figures = json.loads(child.stdout.readline() or "{}")
        child.wait(30)
    ms = sorted(t * 1000 for t in times)
    stored = (figures.get("unique") or 0) - len(warmup) * events_per_body
    return {
        "store": label,
        "bodies": len(bodies),
        "events_posted": len(bodies) * events_per_body,
        "events_stored": stored,
        "elapsed_s": round(elapsed, 3),
        "events_stored_per_s": round(stored / elapsed, 1),
        "answer_ms": {
            "p50": round(statistics.median(ms), 2),
            "p95": round(ms[int(0.95 * (len(ms) - 1))], 2),
            "p99": round(ms[int(0.99 * (len(ms) - 1))], 2),
            "max": round(ms[-1], 2),
        },
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "concurrency": concurrency,
    }


def _pg_schema(url: str) -> tuple[str, Callable[[], None]] | None:
    """A fresh schema on the PostgreSQL server at `url` (None when unreachable)."""
    import sqlalchemy as sa

    schema = "bench_" + uuid.uuid4().hex[:10]
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.begin() as c:
            c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except Exception:
        return None

    def drop() -> None:
        with engine.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()

    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}", drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bodies", type=int, default=1000, help="distinct batches")
    ap.add_argument("--events-per-body", type=int, default=10)
    ap.add_argument("--repeats", type=float, default=0.2,
                    help="share of batches delivered a second time, as Meta's retries are")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--stores", default="sqlite,postgresql,memory",
                    help="which runs, comma-separated: sqlite, postgresql, memory")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.store_url)
        return
    distinct = [_body(n, args.events_per_body) for n in range(args.bodies)]
    bodies = distinct + distinct[: int(len(distinct) * args.repeats)]
    warmup = [_body(args.bodies + n, args.events_per_body) for n in range(20)]
    runs: list[dict[str, Any]] = []
    for label in [s.strip() for s in args.stores.split(",") if s.strip()]:
        if label == "memory":
            runs.append(run_once(label, None, bodies, warmup, args.events_per_body, args.concurrency))
        elif label == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                runs.append(run_once(label, url, bodies, warmup, args.events_per_body, args.concurrency))
        elif label == "postgresql":
            pg = _pg_schema(os.environ.get("IGSCHED_BENCH_PG_URL", PG_URL))
            if pg is None:
                runs.append({"store": label, "skipped": "PostgreSQL unreachable"})
                continue
            url, drop = pg
            try:
                runs.append(run_once(label, url, bodies, warmup, args.events_per_body, args.concurrency))
            finally:
                drop()
        else:
            ap.error(f"unknown store {label!r}")
    print(json.dumps({
        "runs": runs,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "note": "each batch is stored in one transaction before the 200; repeats store nothing",
    }, indent=2))


if __name__ == "__main__":
    main()
