"""Running the daemon in-process until every post is done (for end-to-end tests)."""

from __future__ import annotations

import asyncio

from scheduler.config import Settings
from scheduler.daemon import Daemon
from scheduler.store import Store


def run_until_idle(settings: Settings, store: Store, timeout_s: float = 60.0) -> Daemon:
    daemon = Daemon(settings, store, stop_when_idle=True)

    async def go() -> None:
        await asyncio.wait_for(daemon.run(), timeout_s)

    asyncio.run(go())
    return daemon
