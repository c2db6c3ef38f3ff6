"""Running the daemon in-process until every post is done (for end-to-end tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from scheduler.config import Settings
from scheduler.daemon import Daemon
from scheduler.store import Store
from tests.kinds_support import run_daemon


def run_until_idle(settings: Settings, store: Store, timeout_s: float = 60.0) -> Daemon:
    """Run the daemon until no post has anything left to do (on a store with a FakeClock,
    waiting is skipped: see kinds_support.run_daemon)."""
    return run_daemon(settings, store, timeout_s)


def run_until(settings: Settings, store: Store, done: Callable[[], bool], timeout_s: float = 60.0,
              check_every_s: float = 0.2) -> Daemon:
    """Run the daemon until `done()` (called in a thread, between steps) says so; then stop it
    as SIGTERM would. Raises TimeoutError if that takes longer than `timeout_s`."""
    daemon = Daemon(settings, store)

    async def watch() -> None:
        while not await asyncio.to_thread(done):
            await asyncio.sleep(check_every_s)
        daemon.stop()

    async def go() -> None:
        watcher = asyncio.create_task(watch())
        try:
            await asyncio.wait_for(daemon.run(), timeout_s)
        finally:
            watcher.cancel()

    asyncio.run(go())
    return daemon
