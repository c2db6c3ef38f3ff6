"""Which occurrences become notifications, each once: a post published late (delivered to a
command by a running daemon), a token with 7 and then 1 day left, an account needing
re-authorisation; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.lifecycle import PostMove
from scheduler.pipeline.runtime import Runtime
from scheduler.service.outbox import Outbox
from scheduler.store import Store
from tests.helpers import image_spec
from tests.kinds_support import (
    SHOP_ID,
    TOKENS,
    media_url,
)
from tests.service_support import (
    close_connections,  # noqa: F401  (autouse fixture)
    run_beside,
    service_config,
    settings_of,
    wait_for,
)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


def test_a_post_published_late_is_sent_to_a_command_once(
    db_url: str, emulator: RunningEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    emulator.state.add_account(SHOP_ID, username="shop", token=TOKENS["shop"])
    received = tmp_path / "received.jsonl"
    append = f"import sys; open({str(received)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')"
    cfg = service_config(db_url, emulator.base_url, notify=[{"command": [sys.executable, "-c", append]}],
                         notifications={"check_s": 0.05, "late_after_s": 30},
                         staging={"poll_max_s": 0.5})
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings_of(cfg).accounts)
    # a post whose time was a minute ago (the daemon was down, say): published late
    store.enqueue([image_spec("overdue", in_s=-60, url=media_url(emulator, "o.jpg"))], "test")

    async def delivered() -> None:
        await wait_for(lambda: any(n.state == "delivered" for n in store.notifications()))
        await asyncio.sleep(0.3)

    asyncio.run(run_beside([Daemon(settings_of(cfg), store)], delivered))
    lines = received.read_text().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert (doc["event"], doc["key"], doc["state"]) == ("post_late", "overdue", "published")
    assert doc["reason"].startswith("published 6")  # about 60 s after its time
    assert [n.occurrence.split(":")[0] for n in store.notifications()] == ["post_late"]


def test_token_expiring_at_7_and_1_days_and_needs_reauth_once_each(db_url: str) -> None:
    clock = FakeClock()
    cfg = service_config(db_url, "http://127.0.0.1:9", graph={"login": "instagram"},
                         notify=[{"url": "http://127.0.0.1:9/hook"}])
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    state = store.seed_token("shop", "f" * 64)
    assert store.claim_refresh("shop", state.version, "d", 60)
    store.store_refreshed("shop", "ciphertext", clock.now(), clock.now() + timedelta(days=6.5))

    async def scans() -> list[list[str]]:
        rt = Runtime(settings, store, "t", clock)
        box = Outbox(rt)
        seen = []
        try:
            for step in (0, 0, 5.6, 0):
                clock.advance(step * 86400)
                await box.scan()
                seen.append([n.occurrence for n in store.notifications()])
            store.set_reauth("shop", True, "Error validating access token (190/460)")
            await box.scan()
            await box.scan()
            seen.append([n.occurrence for n in store.notifications()])
        finally:
            await rt.aclose()
        return seen

    seen = asyncio.run(scans())
    assert [len(s) for s in seen] == [1, 1, 2, 2, 3]
    assert seen[0][0].startswith("token_expiring:shop:") and seen[0][0].endswith(":7")
    assert seen[2][1].endswith(":1")
    reauth = [n for n in store.notifications() if n.event == "needs_reauth"]
    assert len(reauth) == 1
    body = json.loads(reauth[0].body)
    assert "log in again" in body["reason"] and "IGSCHED_TEST_TOKEN_SHOP" in body["reason"]
    expiring = json.loads(store.notifications()[0].body)
    assert expiring["account"] == "shop" and "6.5 days" in expiring["reason"]


def test_a_post_still_deferred_past_its_time_is_late_once(db_url: str) -> None:
    """A post deferred for a full quota: once it is more than late_after_s past its time,
    post_late is recorded, once."""
    clock = FakeClock()
    cfg = service_config(db_url, "http://127.0.0.1:9", notify=[{"url": "http://127.0.0.1:9/hook"}],
                         notifications={"late_after_s": 300})
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    store.enqueue([image_spec("q1", in_s=10)], "test")
    [post] = store.claim_due("test", 60, 1)
    store.transition(post, PostMove.TO_READY, "test", release=False)
    store.transition(post, PostMove.TO_DEFERRED, "test", reason="publishing quota full (1/1 in the rolling window)")

    async def scans() -> list[int]:
        rt = Runtime(settings, store, "t", clock)
        box = Outbox(rt)
        try:
            counts = [await box.scan()]  # deferred, not yet late
            clock.advance(400)
            counts += [await box.scan(), await box.scan()]
            return counts
        finally:
            await rt.aclose()

    assert asyncio.run(scans()) == [0, 1, 0]
    [late] = store.notifications()
    doc = json.loads(late.body)
    assert (doc["event"], doc["key"], doc["state"]) == ("post_late", "q1", "deferred")
    assert "quota full" in doc["reason"]


def test_a_failed_engagement_action_is_notified_once(db_url: str) -> None:
    clock = FakeClock()
    cfg = service_config(db_url, "http://127.0.0.1:9", notify=[{"url": "http://127.0.0.1:9/hook",
                                                                 "on": ["action_failed"]}])
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)

    async def scan() -> int:
        rt = Runtime(settings, store, "t", clock)
        try:
            return await Outbox(rt).scan()
        finally:
            await rt.aclose()

    assert asyncio.run(scan()) == 0  # no failed action: nothing to notify
    with store.engine.begin() as conn:
        for i, key, kind, state, error in ((1, "rule:sale:9:reply", "reply", "failed", "(#10) not allowed"),
                                           (2, "dm-1", "message", "done", None)):
            conn.execute(sa.text(
                "INSERT INTO actions (id, key, account, kind, target, payload, state, error, attempts, "
                "next_action_at, source, created_at, updated_at, done_at) VALUES (:i, :k, 'shop', :kind, "
                "'9', '{}', :s, :e, 1, :t, 'cli', :t, :t, :t)"),
                {"i": i, "k": key, "kind": kind, "s": state, "e": error, "t": clock.now()})
    assert asyncio.run(scan()) == 1
    assert asyncio.run(scan()) == 0
    [row] = store.notifications()
    doc = json.loads(row.body)
    assert (doc["event"], doc["key"], doc["state"]) == ("action_failed", "rule:sale:9:reply", "failed")
    assert doc["reason"] == "reply: (#10) not allowed"
