"""The daemon's wake-up at a post's time, over real HTTP on both databases (real clock), and
stopping it while its duties are being kicked.

A claim reads the store's clock when it starts and may then wait for the database (SQLite's
one writer, a lock held by another process, a loaded machine). The wake-up it sets must count
from the time the claim ended, not from the time it started: otherwise the post goes out as
late as that claim waited.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from scheduler.clock import utcnow
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.engage.duty import ActionDuty
from scheduler.pipeline.runtime import Runtime
from scheduler.store import Store
from tests.helpers import settings_for
from tests.kinds_support import (
    TOKENS,
    add_accounts,
    at_in,
    count,
    enqueue_yaml,
    events_text,
    media_url,
)

HOLD_S = 1.5  # how long the claim that sets the wake-up waits for the database
BOUND_S = 1.0  # generous for a loaded machine (as elsewhere), below HOLD_S: a late wake-up fails


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@contextmanager
def write_lock_held(db_url: str) -> Iterator[None]:
    """Another connection holds what a claim needs: SQLite's write lock, or on PostgreSQL a
    table lock that a claim's SELECT … FOR UPDATE waits for."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as c:
            c.execute(sa.text("LOCK TABLE posts IN EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def test_a_claim_that_waited_for_the_database_does_not_make_the_post_late(
    db_url: str, emulator: RunningEmulator
) -> None:
    add_accounts(emulator)
    # no periodic tick before the post's time: only the wake-up that the last claim set
    settings = settings_for(db_url, emulator.base_url, daemon={"tick_s": 60},
                            staging={"lead_s": {"image": 6, "story": 6, "reel": 6, "carousel": 6}})
    text = f"""
account: shop
posts:
  - {{key: on-time, at: {at_in(8)}, image: {media_url(emulator, "a.jpg")}, caption: on time}}
"""
    store = Store(db_url)
    enqueue_yaml(store, settings, text)
    daemon = Daemon(settings, store)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with write_lock_held(db_url):
            held.set()
            release.wait(5)

    async def scenario() -> None:
        post = await asyncio.to_thread(store.get, "on-time")
        assert post is not None
        due = post.due_at
        while post is not None and post.state != "ready":  # staged at its lead, 6 s ahead
            assert utcnow() < due, events_text(store, post)
            await asyncio.sleep(0.05)
            post = await asyncio.to_thread(store.get, "on-time")
        lock_at = due - timedelta(seconds=HOLD_S + 0.4)  # released 0.4 s before its time
        if utcnow() >= lock_at:  # only on a machine too loaded for any timing to mean much
            pytest.skip(f"the post was ready only {(due - utcnow()).total_seconds():.2f} s before its time")
        while utcnow() < lock_at:
            await asyncio.sleep(0.02)
        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert await asyncio.to_thread(held.wait, 5)
            daemon.wake()  # a look for due work now: its claim waits for the lock
            await asyncio.sleep(HOLD_S)
        finally:
            release.set()
            await asyncio.to_thread(holder.join, 5)
        give_up = due + timedelta(seconds=3 * (BOUND_S + HOLD_S))
        while post is not None and post.state != "published" and utcnow() < give_up:
            await asyncio.sleep(0.05)
            post = await asyncio.to_thread(store.get, "on-time")

    async def go() -> None:
        watcher = asyncio.create_task(scenario())
        watcher.add_done_callback(lambda _: daemon.stop())
        await asyncio.wait_for(daemon.run(), 20)
        await watcher

    try:
        asyncio.run(go())
        post = store.get("on-time")
        assert post is not None and post.state == "published", events_text(store, post) if post else None
        assert post.lateness_s is not None and 0 <= post.lateness_s < BOUND_S, (post.lateness_s, events_text(store, post))
        assert count(emulator, "media_publish") == 1
    finally:
        store.close()


def test_the_action_duty_stops_when_kicked_just_before(db_url: str) -> None:
    """A kick (a publish done, a webhook's rule actions, an action finished) right before
    stop(): Python 3.11's wait_for would swallow the cancel and the duty would run on, so
    the daemon's SIGTERM would never finish."""
    settings = settings_for(db_url)
    store = Store(db_url)

    async def go() -> None:
        rt = Runtime(settings, store, "t")
        duty = ActionDuty(rt)
        try:
            duty.start()
            await asyncio.sleep(0.05)  # waiting for a kick
            duty.kick()
            started = time.monotonic()
            async with asyncio.timeout(3):
                await duty.stop()  # its cancel meets the kick in the same turn of the loop
            # timed as well: stop() suppresses CancelledError, so the timeout may not raise
            assert time.monotonic() - started < 2
        finally:
            await rt.aclose()

    try:
        asyncio.run(go())
    finally:
        store.close()
