"""Notifications from running daemons: a post that fails for good produces exactly one signed
notification at a local receiver, although the receiver was down at first, the daemon was
restarted in between and two daemons share the database; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web

from scheduler.clock import FakeClock
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.service.notify import SIGNATURE_HEADER, signature_valid
from scheduler.store import Store
from tests.kinds_support import SHOP_ID, TOKENS, at_in, by_key, enqueue_yaml, media_url
from tests.service_support import (
    close_connections,  # noqa: F401  (autouse fixture)
    run_beside,
    service_config,
    settings_of,
    wait_for,
)

SECRET = "notify-secret-for-tests"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_permanent_failure_is_notified_once_across_a_receiver_outage_and_a_restart(
    db_url: str, emulator: RunningEmulator, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_NOTIFY_SECRET", SECRET)
    emulator.state.add_account(SHOP_ID, username="shop", token=TOKENS["shop"])
    emulator.state.inject("media", 36003, 2207009, message="The aspect ratio is not supported.",
                          is_transient=False, account=SHOP_ID)
    port = _free_port()  # nothing listens there yet
    cfg = service_config(
        db_url, emulator.base_url,
        notify=[{"url": f"http://127.0.0.1:{port}/hook", "secret_env": "IGSCHED_NOTIFY_SECRET"}],
        notifications={"retry_base_s": 0.1, "retry_cap_s": 0.3, "check_s": 0.05},
    )
    store = Store(db_url, clock=clock)
    settings = settings_of(cfg)
    enqueue_yaml(store, settings, f"account: shop\nposts:\n  - {{key: doomed, at: {at_in(1)}, "
                                  f"image: {media_url(emulator, 'd.jpg')}}}\n")

    def tried_twice() -> bool:
        return any(n.attempts >= 2 for n in store.notifications())

    async def receiver_down() -> None:
        await wait_for(lambda: by_key(store)["doomed"].state == "failed")
        await wait_for(tried_twice)

    asyncio.run(run_beside([Daemon(settings, store)], receiver_down))
    [pending] = store.notifications()
    assert pending.state == "pending" and pending.event == "post_failed" and pending.last_error

    got: list[tuple[bytes, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((await request.read(), request.headers.get(SIGNATURE_HEADER)))
        return web.Response(status=204)

    async def receiver_up() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await wait_for(lambda: store.notifications()[0].state == "delivered")
            await asyncio.sleep(0.5)  # both daemons keep scanning and delivering meanwhile
        finally:
            await runner.cleanup()

    # the restarted daemon and a second one: both notice the failure, one notification arrives
    restarted = Daemon(settings, Store(db_url, clock=clock))
    second = Daemon(settings_of(cfg, identity="second"), Store(db_url, clock=clock))
    asyncio.run(run_beside([restarted, second], receiver_up))

    assert len(got) == 1
    body, signature = got[0]
    assert signature_valid(body, SECRET.encode(), signature)
    doc = json.loads(body)
    assert (doc["event"], doc["account"], doc["key"], doc["state"]) == ("post_failed", "shop", "doomed", "failed")
    assert "aspect ratio" in doc["reason"]
    [row] = store.notifications()
    assert row.state == "delivered" and row.attempts >= 3 and row.delivered_at is not None
