"""Benchmark: signed webhook batches posted concurrently to the receiver; how many events per
second are accepted, and how long does an answer take?

The receiver runs in its own process (so the load generator does not share its interpreter)
with an in-memory sink that de-duplicates by event key, as the store will. The storage of
events is not part of this figure yet. Prints one JSON document:
  bodies, events_posted, events_unique_stored, events_per_s, answer_ms {p50, p95, p99, max},
  statuses, concurrency. Nothing is asserted: the figures depend on the machine.
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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

SECRET = "bench-app-secret"
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


def serve() -> None:
    """Child process: the receiver with a de-duplicating in-memory sink; prints its URL,
    serves until stdin closes, then prints the sink's figures."""
    from scheduler.engage.events import WebhookEvent
    from scheduler.engage.receiver import ReceiverConfig, WebhookReceiver

    stored: dict[str, WebhookEvent] = {}

    async def sink(events: Sequence[WebhookEvent]) -> None:
        for e in events:
            stored.setdefault(e.dedup_key, e)

    async def main() -> None:
        receiver = WebhookReceiver(ReceiverConfig("/webhooks/instagram", "v", SECRET), sink)
        host, port = await receiver.start("127.0.0.1", 0)
        print(f"http://{host}:{port}/webhooks/instagram", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await receiver.stop()
        print(json.dumps({"unique": len(stored), "stats": receiver.stats.__dict__}), flush=True)

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bodies", type=int, default=1000, help="distinct batches")
    ap.add_argument("--events-per-body", type=int, default=10)
    ap.add_argument("--repeats", type=float, default=0.2,
                    help="share of batches delivered a second time, as Meta's retries are")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    distinct = [_body(n, args.events_per_body) for n in range(args.bodies)]
    bodies = distinct + distinct[: int(len(distinct) * args.repeats)]
    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert child.stdin is not None and child.stdout is not None
    try:
        url = child.stdout.readline().strip()
        asyncio.run(load(url, distinct[:20], 4))  # warm-up: connections, first imports
        started = time.perf_counter()
        times, statuses = asyncio.run(load(url, bodies, args.concurrency))
        elapsed = time.perf_counter() - started
    finally:
        child.stdin.close()
        figures = json.loads(child.stdout.readline() or "{}")
        child.wait(10)
    ms = sorted(t * 1000 for t in times)
    posted = len(bodies) * args.events_per_body
    print(json.dumps({
        "bodies": len(bodies),
        "events_posted": posted,
        "events_unique_stored": figures.get("unique"),
        "events_per_s": round(posted / elapsed, 1),
        "answer_ms": {
            "p50": round(statistics.median(ms), 2),
            "p95": round(ms[int(0.95 * (len(ms) - 1))], 2),
            "p99": round(ms[int(0.99 * (len(ms) - 1))], 2),
            "max": round(ms[-1], 2),
        },
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "concurrency": args.concurrency,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "sink": "in-memory, de-duplicating by event key",
    }, indent=2))


if __name__ == "__main__":
    main()
