"""`igsched demo`: the whole path in one command, with no account and no set-up.

An embedded fake Graph API, a temporary SQLite database, the example queue with its times
moved a few seconds ahead; the daemon runs until every post is done; the history is printed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from scheduler.config import Settings, settings_from_dict
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.lifecycle import FINISHED
from scheduler.queuefile import parse_queue_text
from scheduler.store import Store
from scheduler.views import post_view, short_time

DEMO_TOKEN_ENV = "IGSCHED_DEMO_TOKEN"
FIRST_AFTER_S = 8.0  # the first post is due this long after start; the rest follow
SPACING_S = 3.0


def example_files() -> list[Path]:
    folder = resources.files("scheduler") / "examples"
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml"))


def demo_settings(base_url: str, db_path: Path) -> Settings:
    return settings_from_dict(
        {
            "database": {"url": f"sqlite:///{db_path}"},
            "graph": {"base_url": base_url, "timeout_s": 10},
            "accounts": [{"name": "demo", "ig_user_id": "17841400000000001", "token_env": DEMO_TOKEN_ENV}],
            "daemon": {"identity": "demo", "tick_s": 1},
            # every kind staged a few seconds ahead: the emulator processes in about two
            "staging": {"lead_s": {"image": 6, "story": 6, "reel": 7, "carousel": 7}, "poll_min_s": 0.5},
            "log_level": "WARNING",
        },
        "demo settings",
    )


def shifted_queue(path: Path, start: datetime, offset: int) -> tuple[str, int]:
    """The example file with each post's `at` moved to start + a few seconds."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    for i, post in enumerate(data.get("posts", [])):
        post["at"] = (start + timedelta(seconds=FIRST_AFTER_S + SPACING_S * (offset + i))).isoformat()
    return yaml.safe_dump(data, sort_keys=False), len(data.get("posts", []))


def run_demo(timeout_s: float = 120.0, out: Callable[[str], None] = print) -> int:
    os.environ.setdefault(DEMO_TOKEN_ENV, "demo-token-not-secret")
    with tempfile.TemporaryDirectory(prefix="igsched-demo-") as tmp, RunningEmulator() as emu:
        settings = demo_settings(emu.base_url, Path(tmp) / "demo.db")
        store = Store(settings.database.url)
        store.sync_accounts(settings.accounts)
        start = datetime.now(UTC)
        offset = 0
        for f in example_files():
            text, n = shifted_queue(f, start, offset)
            offset += n
            specs = parse_queue_text(text, f"examples/{f.name}", settings, datetime.now(UTC))
            report = store.enqueue(specs, "demo", skip_check=settings.skip_check())
            out(f"enqueued examples/{f.name}: {len(report.new)} posts")
        out(f"fake Graph API at {emu.base_url}; database {settings.database.url}")
        out("running the daemon until every post is published …")
        daemon = Daemon(settings, store, stop_when_idle=True)

        async def bounded() -> int:
            return await asyncio.wait_for(daemon.run(), timeout_s)

        try:
            asyncio.run(bounded())
        except TimeoutError:
            out(f"demo: gave up after {timeout_s:.0f} s")
        posts = store.list_posts([s.value for s in FINISHED])
        out("")
        out(f"{'key':18} {'kind':9} {'scheduled (UTC)':24} {'published (UTC)':24} {'late s':>7}  media id / reason")
        ok = True
        for p in sorted(posts, key=lambda p: p.due_at):
            v = post_view(p)
            late = f"{v['lateness_s']:.3f}" if v.get("lateness_s") is not None else "-"
            tail = v.get("media_id") or f"{v['state']}: {v['reason']}"
            out(f"{p.key:18} {p.kind:9} {short_time(v['at']):24} {short_time(v.get('published_at')):24} {late:>7}  {tail}")
            ok = ok and p.state == "published"
        left = store.list_posts(["planned", "staging", "ready", "publishing", "verifying", "deferred", "waiting"])
        for p in left:
            out(f"{p.key:18} {p.kind:9} not finished: {p.state} {p.reason or ''}")
        out(f"\n{sum(p.state == 'published' for p in posts)} of {len(posts) + len(left)} posts published; "
            f"{daemon.rt.calls_made} Graph API calls")
        store.close()
        return 0 if ok and not left else 1
