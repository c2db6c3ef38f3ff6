"""The bench scenarios: each returns a plain dict (figures, the load average while it ran).

- `floor`: a bare httpx client sending the same media_publish calls at the same concurrency,
  each not before its post's due time: what the network and the fake API allow.
- `burst`: the same posts through igsched (daemon processes), from enqueue to live.
- `enqueue_scale`: many posts a month ahead enqueued at once; how long until every one has
  had its first step (or, with the media check off, needs none).
- `idle`: a daemon with those posts planned and nothing due: CPU, queries a minute, memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.harness import (
    ROOT,
    Account,
    Daemons,
    Emulator,
    loadavg,
    percentile,
    postgres_cpu_s,
    proc_cpu_s,
    proc_rss_mb,
    write_config,
)
from scheduler.config import LeadSettings
from scheduler.graph.transport import AiohttpTransport
from scheduler.models import MediaItem, PostSpec
from scheduler.store import Store


def _spec(key: str, account: str, at: datetime, url: str) -> PostSpec:
    return PostSpec(key=key, key_explicit=True, account=account, kind="image", at=at,
                    media=(MediaItem("image", url),), caption=f"bench {key}", source_file="bench.yaml")


def _stats(values: list[float]) -> dict[str, float | None]:
    return {q: (round(v, 3) if v is not None else None) for q, v in (
        ("p50", percentile(values, 0.5)), ("p95", percentile(values, 0.95)), ("p99", percentile(values, 0.99)),
        ("max", max(values) if values else None))}


# --------------------------------------------------------------------------- the floor
async def _floor(emu: Emulator, accounts: list[Account], posts: int, concurrency: int,
                 spread_s: float, one_pool: bool) -> dict[str, Any]:
    """A bare httpx client on the transport igsched's Graph client uses (aiohttp's pool,
    scheduler/graph/transport.py); `one_pool`: on httpx's own pool instead (httpcore), to show
    what that pool costs."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(base_url=f"{emu.base_url}/v23.0", timeout=30, limits=limits,
                               transport=None if one_pool else AiohttpTransport(concurrency))
    try:
        sem = asyncio.Semaphore(concurrency)

        async def create(i: int) -> tuple[Account, str]:
            a = accounts[i % len(accounts)]
            async with sem:
                r = await client.post(f"/{a.ig_user_id}/media", headers={"Authorization": f"Bearer {a.token}"},
                                      data={"image_url": f"https://cdn.example.com/floor{i}.jpg"})
            r.raise_for_status()
            return a, r.json()["id"]

        made = await asyncio.gather(*(create(i) for i in range(posts)))  # not timed
        await asyncio.sleep(0.5)  # processing (0 s in the bench) and a quiet moment
        start = time.time() + 1.0
        answers: list[tuple[float, float]] = []  # (lateness, answered at)

        async def publish(i: int, a: Account, cid: str) -> None:
            due = start + spread_s * i / posts
            await asyncio.sleep(max(0.0, due - time.time()))
            async with sem:
                r = await client.post(f"/{a.ig_user_id}/media_publish", data={"creation_id": cid},
                                      headers={"Authorization": f"Bearer {a.token}"})
            done = time.time()
            r.raise_for_status()
            answers.append((done - due, done))

        await asyncio.gather(*(publish(i, a, cid) for i, (a, cid) in enumerate(made)))
    finally:
        await client.aclose()
    late = [x for x, _ in answers]
    return {"posts": posts, "concurrency": concurrency,
            "transport": "httpx (httpcore pool)" if one_pool else "httpx on aiohttp (as igsched)", "span_s": round(max(t for _, t in answers) - start, 3),
            "lateness_s": _stats(late), "lateness_all_s": [round(x, 4) for x in late]}


def floor(emu: Emulator, accounts: list[Account], posts: int, concurrency: int, spread_s: float,
          one_pool: bool = False) -> dict[str, Any]:
    load = loadavg()
    out = asyncio.run(_floor(emu, accounts, posts, concurrency, spread_s, one_pool))
    out["loadavg"] = load
    return out


# --------------------------------------------------------------------------- a burst through igsched
def burst(emu: Emulator, db_url: str, accounts: list[Account], posts: int, daemons: int, workers: int | None,
          lead_s: float, spread_s: float, folder: Path, timeout_s: float = 600,
          daemon_cpu: float | None = None) -> dict[str, Any]:
    """`posts` image posts over `accounts`, due within `spread_s` seconds, `lead_s` + a margin
    after enqueue; `daemons` processes, each held to `daemon_cpu` of a core if given.
    Measured: lateness, the burst's span (first due time to last live), calls per post by
    kind, staging time."""
    store = Store(db_url)
    store.sync_accounts([])
    calls_before = len(emu.get("/requests"))
    t_enqueue = time.time()
    due0 = datetime.now(UTC) + timedelta(seconds=lead_s + 5)
    specs = [_spec(f"p{i:06d}", accounts[i % len(accounts)].name,
                   due0 + timedelta(seconds=spread_s * i / posts), f"https://cdn.example.com/b{i}.jpg")
             for i in range(posts)]
    # as `igsched enqueue` does with the media check off (write_config): planned for the
    # staging time at once, no step taken to learn that there is nothing to check
    store.enqueue(specs, "bench", skip_check=LeadSettings(image=lead_s))
    enqueue_s = time.time() - t_enqueue
    configs = [write_config(folder, db_url, emu.base_url, f"bench-{daemons}-{k}", accounts, lead_s, workers)
               for k in range(daemons)]
    procs = Daemons(cpu_cap=daemon_cpu)
    load_start = loadavg()
    procs.start(configs, accounts, folder)
    ready_at = published_at = followed_at = None
    ready_before_due = 0
    # CPU seconds of the daemons, PostgreSQL and the fake API (the burst's cost, whatever the
    # machine's pace), from the last look before the first due time to the first look with all
    # published; with the window's wall time they say how many cores the burst kept busy
    cpu_due: tuple[float, float, float, float] | None = None
    cpu_published: tuple[float, float, float, float] | None = None
    pg = db_url.startswith("postgresql")

    def cpu() -> tuple[float, float, float, float]:
        return (procs.cpu_s(), postgres_cpu_s() if pg else 0.0, proc_cpu_s(emu.proc.pid), time.monotonic())
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and procs.alive():
            counts = _counts(store)
            now = time.time()
            if ready_at is None and counts.get("ready", 0) + counts.get("published", 0) >= posts:
                ready_at = now
            if now < due0.timestamp():
                ready_before_due = counts.get("ready", 0)
                cpu_due = cpu()
            if published_at is None and counts.get("published", 0) >= posts:
                published_at = now
                cpu_published = cpu()
            if published_at is not None and counts.get("followup", 0) == 0:
                followed_at = now
                break
            time.sleep(0.25)
        load_end = loadavg()
        throttled_s = procs.throttled_s()
    finally:
        procs.stop()
    rows = _published(store)
    late = [r[1] for r in rows]
    due_first = min((r[2] for r in rows), default=None)
    last_live = max((r[0] for r in rows), default=None)
    calls, _ = emu.calls_by_endpoint(calls_before)
    store.close()
    return {
        "posts": posts, "accounts": len(accounts), "daemons": daemons, "workers": workers or "default",
        "daemon_cpu_cap": daemon_cpu,
        "published": len(rows), "published_once": _published_once(emu, calls_before, len(rows)),
        "enqueue_s": round(enqueue_s, 2),
        "ready_before_due": ready_before_due,
        "staging_s": round(ready_at - t_enqueue, 2) if ready_at else None,
        "span_s": round((last_live - due_first).total_seconds(), 3) if rows and due_first and last_live else None,
        "lateness_s": _stats(late),
        "lateness_all_s": [round(x, 4) for x in late],
        "posts_per_s": round(len(rows) / max(1e-9, (last_live - due_first).total_seconds()), 1)
        if rows and due_first and last_live else None,
        "calls_per_post": {k: round(v / max(1, posts), 3) for k, v in sorted(calls.items())},
        "calls_total_per_post": round(sum(calls.values()) / max(1, posts), 3),
        # from the last look before the first due time to the first look with all published
        "daemon_cpu_ms_per_post": round(1000 * (cpu_published[0] - cpu_due[0]) / posts, 2)
        if cpu_due is not None and cpu_published is not None else None,
        **_cpu_split(cpu_due, cpu_published, posts, pg, daemons, daemon_cpu),
        # how long the caps held the daemons back, summed over daemons (0 without caps)
        "daemons_throttled_s": round(throttled_s, 1),
        "followups_done_s": round(followed_at - t_enqueue, 2) if followed_at else None,
        "loadavg": load_start, "loadavg_end": load_end,
        "log_tail": procs.log_tail()[-800:] if len(rows) < posts else "",
    }


def _cpu_split(before: tuple[float, ...] | None, after: tuple[float, ...] | None, posts: int,
               pg: bool, daemons: int = 1, daemon_cpu: float | None = None) -> dict[str, Any]:
    """The burst's CPU by process (daemons, PostgreSQL, fake API), the cores they kept busy
    together, and the most posts a second this machine's CPU allows at that cost per post."""
    if before is None or after is None:
        return {}
    d = [b - a for a, b in zip(before, after, strict=True)]
    split = {"daemons": d[0], "fake_api": d[2]} | ({"postgres": d[1]} if pg else {})
    per_post = {k: 1000 * v / posts for k, v in split.items()}
    return {"cpu_ms_per_post": {k: round(v, 2) for k, v in per_post.items()},
            "cores_busy": round(sum(split.values()) / max(1e-9, d[3]), 2),
            "cpu_ceiling_posts_per_s": cpu_ceiling(per_post["daemons"], sum(per_post.values()) - per_post["daemons"],
                                                   daemons, os.cpu_count() or 1, daemon_cpu or 1.0)}


def cpu_ceiling(daemon_ms: float, others_ms: float, daemons: int, cores: int,
                core_per_daemon: float = 1.0) -> float | None:
    """Posts a second at which the CPU runs out, for this CPU per post: each daemon is one
    process (one core at most, or its cap; `daemon_ms` a post), and all of them with what serves them
    (`others_ms` a post: the database, the fake API) share the machine's cores. Two daemons
    go 1.6× as fast as one only where others_ms ≤ daemon_ms / 4, or cores are not shared."""
    if daemon_ms <= 0:
        return None
    return round(min(daemons * core_per_daemon * 1000 / daemon_ms, cores * 1000 / (daemon_ms + others_ms)), 1)


def _published_once(emu: Emulator, since: int, published: int) -> bool:
    """Every post live exactly once: as many bench captions at the fake API as published
    posts, none twice."""
    captions = [m.get("caption") for m in emu.get("/media") if str(m.get("caption", "")).startswith("bench ")]
    return len(captions) == published and len(set(captions)) == len(captions)


def _counts(store: Store) -> dict[str, int]:
    """Posts ready, published, and with a follow-up pending: one pass over the table (the
    bench's own look, four times a second, is load on the database it measures)."""
    with store.engine.connect() as c:
        ready, published, followup = c.execute(sa.text(
            "SELECT count(*) FILTER (WHERE state = 'ready'), count(*) FILTER (WHERE state = 'published'), "
            "count(*) FILTER (WHERE followup_pending) FROM posts")).one()
    return {"ready": int(ready), "published": int(published), "followup": int(followup)}


def _published(store: Store) -> list[tuple[datetime, float, datetime]]:
    return [(p.published_at, float(p.lateness_s or 0.0), p.due_at) for p in store.list_posts(["published"])
            if p.published_at is not None]


# --------------------------------------------------------------------------- scale at enqueue, and at rest
def enqueue_scale(db_url: str, accounts: list[Account], posts: int, folder: Path, base_url: str,
                  batch: int = 10_000) -> dict[str, Any]:
    """`posts` image posts a month ahead, enqueued at once; then a daemon: how long until no
    post is left without its first step (media check off: enqueue plans staging itself, so
    none should need one) and how many steps the daemon took meanwhile."""
    load = loadavg()
    store = Store(db_url)
    due = datetime.now(UTC) + timedelta(days=30)
    t0 = time.time()
    for start in range(0, posts, batch):
        specs = [_spec(f"s{i:07d}", accounts[i % len(accounts)].name, due + timedelta(seconds=i),
                       f"https://cdn.example.com/s{i}.jpg") for i in range(start, min(posts, start + batch))]
        # as `igsched enqueue` does with the bench's configuration (media check off)
        store.enqueue(specs, "bench", skip_check=LeadSettings(image=600))
    enqueue_s = time.time() - t0
    cfg = write_config(folder, db_url, base_url, "bench-scale", accounts, 600)
    procs = Daemons()
    procs.start([cfg], accounts, folder)
    t1 = time.time()
    first_step_s = None
    try:
        while time.time() - t1 < 900 and procs.alive():
            with store.engine.connect() as c:
                left = c.execute(sa.text("SELECT count(*) FROM posts WHERE preflight IS NULL")).scalar_one()
            if left == 0:
                first_step_s = time.time() - t1
                break
            time.sleep(0.5)
    finally:
        procs.stop()
    store.close()
    return {"posts": posts, "enqueue_s": round(enqueue_s, 2),
            "enqueue_posts_per_s": round(posts / max(enqueue_s, 1e-9)),
            "first_step_done_s": round(first_step_s, 2) if first_step_s is not None else None,
            "through_first_step_s": round(enqueue_s + first_step_s, 2) if first_step_s is not None else None,
            "loadavg": load}


def idle(db_url: str, accounts: list[Account], folder: Path, base_url: str, seconds: float) -> dict[str, Any]:
    """A daemon over a planned queue with nothing due: CPU share, database statements a
    minute (counted inside the daemon process), resident memory."""
    cfg = write_config(folder, db_url, base_url, "bench-idle", accounts, 600)
    load = loadavg()
    env_tokens = {a.env: a.token for a in accounts}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.idle_probe", str(cfg), str(seconds)],
        cwd=ROOT, env={**os.environ, **env_tokens}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(min(10.0, seconds / 3))  # start-up (migrations, account sync) is not idling
    cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
    rss = 0.0
    while proc.poll() is None:
        rss = max(rss, proc_rss_mb(proc.pid)) if proc.poll() is None else rss
        cpu1, t1 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(1)
    out, err = proc.communicate()
    probe = json.loads(out.decode() or "{}") if proc.returncode == 0 else {"error": err.decode()[-1000:]}
    return {"seconds": round(t1 - t0, 1), "cpu_pct": round(100 * (cpu1 - cpu0) / max(1e-9, t1 - t0), 2),
            "rss_mb": round(rss, 1), **probe, "loadavg": load}
