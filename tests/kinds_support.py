"""Shared pieces of the end-to-end tests of every post kind (tests/test_e2e_kinds*.py).

Queue files are written as YAML text and parsed by `parse_queue_text`, so the path from what a
user writes to what the API receives is covered. Media URLs point at the emulator's own
`/_media/` files, so the media check before staging fetches real bytes over HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scheduler.clock import FakeClock, to_aware
from scheduler.config import Settings
from scheduler.daemon import Daemon
from scheduler.emulator import EmulatorState, RunningEmulator
from scheduler.models import PostSpec
from scheduler.queuefile import parse_queue_text
from scheduler.store import PostRecord, Store

SHOP_ID = "17841400000000001"
BRAND2_ID = "17841400000000002"
TOKENS = {"shop": "tok-shop-secret", "brand2": "tok-brand2-secret"}
CREATE = "media"  # the emulator's endpoint name of POST /{ig-user-id}/media


def add_accounts(emu: RunningEmulator) -> None:
    """The two accounts of tests.helpers.settings_for, each bound to its token (so /me knows
    which account a token belongs to, as on Meta)."""
    emu.state.add_account(SHOP_ID, username="shop", token=TOKENS["shop"])
    emu.state.add_account(BRAND2_ID, username="brand2", token=TOKENS["brand2"])


def warped_emulator(clock: FakeClock) -> RunningEmulator:
    """The fake Graph API reading the test's clock (unstarted; use it in a `with`)."""
    return RunningEmulator(EmulatorState(clock=lambda: to_aware(clock.now()).timestamp()))


def at_in(seconds: float) -> str:
    """An `at:` value `seconds` from now (ISO 8601 with offset, as a user may write it)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def media_url(emu: RunningEmulator, name: str, **query: object) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{emu.base_url}/_media/{name}" + (f"?{q}" if q else "")


def parse(text: str, settings: Settings, base_dir: Path | None = None) -> list[PostSpec]:
    return parse_queue_text(text, "kinds.yaml", settings, datetime.now(UTC), base_dir=base_dir)


def enqueue_yaml(store: Store, settings: Settings, text: str, base_dir: Path | None = None) -> list[PostSpec]:
    specs = parse(text, settings, base_dir)
    store.sync_accounts(settings.accounts)
    report = store.enqueue(specs, "test")
    assert len(report.new) == len(specs), report
    return specs


def write_video(path: Path, size: int = 300_000) -> str:
    """A local "video" of `size` bytes; returns its sha256 (to compare with what arrived)."""
    data = b"\x00\x00\x00\x18ftypmp42" + os.urandom(size - 12)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def run_daemon(
    settings: Settings,
    store: Store,
    timeout_s: float = 60.0,
    *,
    until: Callable[[], bool] | None = None,
    on_tick: Callable[[], None] | None = None,
    warp: FakeClock | None = None,
) -> Daemon:
    """Run the daemon in-process until every post is done (or, with `until`, until it says
    so: it is called every 50 ms from the event loop, like `on_tick`, a test's way to act
    at a moment while the daemon runs, e.g. to move the emulator's clock).

    With `warp` (the FakeClock the store and the emulator read), time jumps: whenever the
    daemon is idle, the clock moves straight to the next moment a post needs attention, so a
    day of waiting passes in milliseconds and nothing due is ever skipped."""
    if warp is None and isinstance(store.clock, FakeClock):
        warp = store.clock
    daemon = Daemon(settings, store, stop_when_idle=until is None)

    def time_warp() -> None:
        assert warp is not None
        if daemon.busy:
            return
        now = warp.now()
        with store.engine.connect() as c:  # a lease still running: its step is not done
            if c.execute(sa.text("SELECT count(*) FROM posts WHERE lease_until > :now"), {"now": now}).scalar():
                return
        nxt = store.next_action_at()
        if nxt is not None and nxt > now:
            warp.advance((nxt - now).total_seconds())
            daemon.wake()

    async def go() -> None:
        ticker = None
        if on_tick is not None or until is not None or warp is not None:
            async def tick() -> None:
                while True:
                    await asyncio.sleep(0.05)
                    if warp is not None:
                        # under a frozen clock an idle daemon claims again and again (its next
                        # wake-up is "now" on the fake clock); on PostgreSQL a claim takes long
                        # enough that the ticker seldom saw the daemon between two, and a jump
                        # waited seconds: catch the end of the claim in flight
                        for _ in range(2000):
                            if not daemon.busy or daemon.stepping:
                                break
                            await asyncio.sleep(0)
                        time_warp()
                    if on_tick is not None:
                        on_tick()
                    if until is not None and until():
                        daemon.stop()
                        return
            ticker = asyncio.create_task(tick())
        try:
            await asyncio.wait_for(daemon.run(), timeout_s)
        finally:
            if ticker is not None:
                ticker.cancel()

    asyncio.run(go())
    return daemon


def created(emu: RunningEmulator, account: str | None = None) -> list[dict[str, Any]]:
    """The log entries of POST /{ig-user-id}/media, oldest first."""
    return [
        r for r in emu.state.requests
        if r["endpoint"] == CREATE and r["method"] == "POST" and (account is None or r["account"] == account)
    ]  # fmt: skip


def count(emu: RunningEmulator, endpoint: str, method: str | None = None, outcome: str | None = None) -> int:
    return sum(
        1 for r in emu.state.requests
        if r["endpoint"] == endpoint and (method is None or r["method"] == method)
        and (outcome is None or r["outcome"] == outcome)
    )  # fmt: skip


def by_key(store: Store) -> dict[str, PostRecord]:
    states = ["planned", "staging", "ready", "publishing", "verifying", "deferred", "waiting",
              "published", "failed", "cancelled"]  # fmt: skip
    return {p.key: p for p in store.list_posts(states)}


def events_text(store: Store, post: PostRecord) -> str:
    return "\n".join(f"{e['from_state']} → {e['to_state']}: {e['reason']}" for e in store.events(post.id))
