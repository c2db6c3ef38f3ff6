"""Benchmark: N posts due at the same moment; how late do they go live, at what cost?

Runs the real daemon in-process against the fake Graph API over HTTP, on SQLite (default) or
PostgreSQL (--db URL). Prints one JSON document:
  lateness_s {p50, p95, max}, posts_per_s, api_calls_per_post, db_rows, peak_rss_mb.
Targets (checked and reported in "targets_met"): p95 lateness < 1 s for 100 posts due at once
on SQLite; at most 5 API calls per image post; peak RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from scheduler.config import settings_from_dict
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from tests.helpers import image_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--posts", type=int, default=100)
    ap.add_argument("--accounts", type=int, default=4)
    ap.add_argument("--due-in", type=float, default=8.0, help="seconds from enqueue to the due time")
    ap.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    os.environ["IGSCHED_BENCH_TOKEN"] = "bench-token"
    with tempfile.TemporaryDirectory() as tmp, RunningEmulator() as emu:
        emu.state.configure(containers_per_day=None)
        accounts = [{"name": f"acct{i}", "ig_user_id": str(17841400000001000 + i), "token_env": "IGSCHED_BENCH_TOKEN"}
                    for i in range(args.accounts)]
        for a in accounts:
            emu.state.set_quota(a["ig_user_id"], quota_total=10_000)
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = settings_from_dict({
            "database": {"url": url},
            "graph": {"base_url": emu.base_url, "timeout_s": 10},
            "accounts": accounts,
            "daemon": {"identity": "bench", "tick_s": 1, "workers": 32},
            "staging": {"lead_s": {"image": args.due_in - 2}, "poll_min_s": 0.5},
            "preflight": {"enabled": False},
            "log_level": "WARNING",
        }, "bench")
        store = Store(url)
        store.sync_accounts(settings.accounts)
        specs = [image_spec(f"b{i}", in_s=args.due_in, account=f"acct{i % args.accounts}", caption=f"post {i}")
                 for i in range(args.posts)]
        t0 = time.monotonic()
        store.enqueue(specs, "bench", skip_check=settings.skip_check())
        enqueue_s = time.monotonic() - t0
        daemon = Daemon(settings, store, stop_when_idle=True)
        t1 = time.monotonic()
        asyncio.run(asyncio.wait_for(daemon.run(), 300))
        wall = time.monotonic() - t1
        published = store.list_posts(["published"])
        late = sorted(p.lateness_s or 0.0 for p in published)
        with store.engine.connect() as c:
            rows = {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ("posts", "post_media", "post_events", "api_calls")}
        calls = len(emu.state.requests)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        p95 = late[int(0.95 * (len(late) - 1))] if late else None
        result = {
            "benchmark": "publish_burst",
            "database": store.dialect,
            "posts": args.posts,
            "published": len(published),
            "published_once": len(emu.state.published_media()) == len(published),
            "lateness_s": {"p50": statistics.median(late) if late else None, "p95": p95, "max": late[-1] if late else None},
            "enqueue_s": round(enqueue_s, 3),
            "run_wall_s": round(wall, 2),
            "api_calls": calls,
            "api_calls_per_post": round(calls / max(1, args.posts), 2),
            "db_rows": rows,
            "peak_rss_mb": round(peak_mb, 1),
        }
        result["targets_met"] = {
            "p95_lateness_under_1s": p95 is not None and p95 < 1.0,
            "api_calls_per_post_at_most_5": result["api_calls_per_post"] <= 5,
            "peak_rss_under_200mb": peak_mb < 200,
            "all_published_once": len(published) == args.posts and result["published_once"],
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
