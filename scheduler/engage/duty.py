"""The daemon's action duty: sends due actions (scheduled messages from queue files, rule
actions, deferred ones whose budget or pause has freed, retries), each claimed with a lease.

It runs beside the post workers with its own loop, woken by the daemon after each look and at
least every `daemon.tick_s`. `kick` makes it claim now (rules planned actions, an action
finished); `hint` passes on when the daemon's own look says the next action is due, and while
that is later the duty claims nothing: an idle daemon's tick costs it no statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import datetime

from scheduler.engage.executor import run_action
from scheduler.failures import Failures
from scheduler.pipeline.runtime import Runtime
from scheduler.store import ActionRecord

log = logging.getLogger(__name__)
HINT_TICKS = 3  # the daemon's word on the next action is trusted for this many ticks


class ActionDuty:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._wake = asyncio.Event()
        self._failures = Failures(log, "claiming due actions")
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[ActionRecord]] = set()
        self._claiming = False  # a claim in flight: the actions it takes are about to run
        self.sent = 0  # actions worked (any outcome), for tests and logs
        self._stopping = False
        # (when the daemon's look began, when the next action is due: both on the monotonic
        # clock, so that deciding needs no read of the store's clock on the event loop; inf:
        # no action is claimable)
        self._hint: tuple[float, float] | None = None
        self._kicked_at = 0.0

    @property
    def busy(self) -> bool:
        """Actions are being worked or claimed (a claim in flight counts: the daemon's
        idleness, and a test's time jump, must not fall between a claim and its work)."""
        return bool(self._running) or self._claiming

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-actions")

    def kick(self) -> None:
        """Claim now: actions may have been planned or freed."""
        self._hint = None
        self._kicked_at = time.monotonic()
        self._wake.set()

    def hint(self, next_at: datetime | None, store_now: datetime, mono_now: float, looked_at: float) -> None:
        """The daemon's look, begun at `looked_at` (monotonic): the first claimable action is
        due at `next_at` (None: there is none), by the store's clock, which read `store_now`
        at monotonic `mono_now`. A kick since the look began wins (the look may not have seen
        what the kick was for), and so does a look that began later."""
        if self._kicked_at >= looked_at or (self._hint is not None and self._hint[0] > looked_at):
            return
        due = math.inf if next_at is None else mono_now + (next_at - store_now).total_seconds()
        self._hint = (looked_at, due)

    def wake(self) -> None:
        """Look at the hint now (the daemon passes one on after each look)."""
        self._wake.set()

    def wake_if_due(self) -> None:
        """Wake only if the daemon's last look said an action is due by now: for a moment the
        daemon sends no claim (so passes on no new look), at no statement of ours; a stale or
        missing hint waits for the duty's own tick."""
        if self._hint is not None and time.monotonic() >= self._hint[1]:
            self._wake.set()

    def _nothing_due(self) -> bool:
        if self._hint is None:
            return False
        looked_at, due = self._hint
        now = time.monotonic()
        if now - looked_at > HINT_TICKS * self.rt.settings.daemon.tick_s:
            return False  # stale: the daemon has not looked lately, so look ourselves
        return now < due

    async def stop(self) -> None:
        """Stop claiming; let running actions finish (their leases protect the rest)."""
        # the flag as well as the cancel: on Python 3.11 a wait_for whose event is set at the
        # moment of the cancel (a kick just before stopping) returns instead of raising, and
        # the loop would go on for ever
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            await asyncio.wait(self._running, timeout=20)

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._failures.delay(self.rt.settings.daemon.tick_s))
            if self._stopping:
                return
            self._wake.clear()
            try:
                await self._claim_and_run()
            except Exception as e:
                self._failures.failed(e)
            else:
                self._failures.ok()

    async def _claim_and_run(self) -> None:
        free = self.rt.settings.daemon.workers - len(self._running)
        if free <= 0 or self._nothing_due():
            return
        self._claiming = True
        try:
            claimed = await self.rt.db(self.rt.store.claim_due_actions, self.rt.identity,
                                       self.rt.settings.daemon.lease_s, free)
        finally:
            self._claiming = False
        for action in claimed:
            task = asyncio.create_task(run_action(self.rt, action), name=f"action-{action.key}")
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[ActionRecord]) -> None:
        self._running.discard(task)
        self.sent += 1
        self.kick()  # more may be due (a claim is capped by the free workers)
