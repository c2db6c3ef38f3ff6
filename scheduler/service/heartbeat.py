"""Daemon duty: the daemon's row in `daemons` (identity, host, pid, start, last tick, stop),
read by `igsched status`: a daemon that has not ticked for a minute needs a person."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from scheduler.failures import Failures
from scheduler.pipeline.runtime import Runtime

log = logging.getLogger(__name__)
# three beats inside status's minute (STALE_TICK): one late beat is no alarm, and an idle
# daemon writes its row three times a minute, not at every tick
INTERVAL_S = 20.0


class Heartbeat:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.pid = os.getpid()
        self.interval_s = INTERVAL_S
        self._task: asyncio.Task[None] | None = None
        self._failures = Failures(log, "recording the daemon's tick")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-heartbeat")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            await self.rt.db(self.rt.store.daemon_stopped, self.rt.identity, self.pid)
        except Exception:
            log.warning("could not record that daemon %s stopped", self.rt.identity, exc_info=True)

    async def _loop(self) -> None:
        store, identity = self.rt.store, self.rt.identity
        started = False
        while True:
            try:
                if not started:
                    await self.rt.db(store.daemon_started, identity, socket.gethostname(), self.pid)
                    started = True
                else:
                    await self.rt.db(store.daemon_ticked, identity)
            except Exception as e:
                self._failures.failed(e)
            else:
                self._failures.ok()
            await asyncio.sleep(self._failures.delay(self.interval_s))
