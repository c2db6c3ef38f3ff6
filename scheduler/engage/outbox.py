"""The rules' outbox: stored events handled in order, each in the transaction that inserts
its rule actions into `actions` and marks it handled (README "Webhooks and rules"), so a rule
fires exactly once per event, across crashes and replicas. The daemon runs the actions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from scheduler.config import Settings
from scheduler.engage.rules import plan_actions
from scheduler.failures import Failures
from scheduler.store import EventRecord, NewAction, Planned, Store

log = logging.getLogger(__name__)
BATCH = 200  # events handled per transaction
# How often the outbox looks on its own. The daemon nudges it when its look at each tick sees
# events waiting (another replica's receiver stored them), and this daemon's receiver wakes it
# at once: this is only the last resort, so that an idle daemon's tick costs it no statement.
SAFETY_S = 60.0
LAST_KINDS = ("hide",)  # planned once the event's other actions are finished


class RuleOutbox:
    """start() / stop(); `wake()` when new events were stored; `nudge()` when events are
    known to wait (at most one round a tick)."""

    def __init__(self, settings: Settings, store: Store, identity: str,
                 on_actions: Callable[[], None]) -> None:
        self.settings = settings
        self.store = store
        self._failures = Failures(log, "handling webhook events")
        self.actor = identity
        self.on_actions = on_actions
        self.handled = 0
        self.planned = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_round = float("-inf")  # monotonic

    def wake(self) -> None:
        self._wake.set()

    def nudge(self) -> None:
        """Events wait (the daemon's look said so): a round soon, but no more than one a
        tick, since rule actions waiting for others stay waiting for a while."""
        if time.monotonic() - self._last_round >= self.settings.daemon.tick_s:
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-rules")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def plan(self, event: EventRecord) -> tuple[list[NewAction], list[NewAction]]:
        """The actions the rules ask for: those to run now, and the hides, which wait until
        the others are finished because Meta refuses a reply to a hidden comment (pure;
        called inside the store's transaction). An event of an account that is not
        configured plans nothing: there is no token to act with."""
        if event.account is None or event.is_echo:
            return [], []
        now: list[NewAction] = []
        later: list[NewAction] = []
        for a in plan_actions(self.settings.rules, event.webhook_event(), event.id, event.account):
            (later if a.kind in LAST_KINDS else now).append(NewAction(
                key=a.key, account=event.account, kind=a.kind, target=a.target,
                payload=dict(a.payload), source=a.source))
        return now, later

    async def round(self) -> int:
        """Handle one batch of events, and release the actions that waited for others;
        returns how many events were handled."""
        done = await asyncio.to_thread(self.store.handle_webhook_events, self.plan, BATCH, self.actor)
        released = await asyncio.to_thread(self.store.release_later_actions, self.actor)
        planned = self._note(released)
        for _, outcomes in done or []:
            planned += self._note(outcomes)
        self.handled += len(done or [])
        self.planned += planned
        if planned:
            self.on_actions()
        return len(done or [])

    def _note(self, outcomes: list[Planned]) -> int:
        for o in outcomes:
            if o.outcome == "refused":
                log.info("rule action %s not sent: %s", o.action.key, o.reason)
        return sum(1 for o in outcomes if o.outcome == "new")

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake during the round is not lost
            self._last_round = time.monotonic()
            try:
                handled = await self.round()
            except Exception as e:
                self._failures.failed(e)
                handled = 0
            else:
                self._failures.ok()
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                wait = self._failures.delay(self.settings.daemon.tick_s) if self._failures.count else SAFETY_S
                await asyncio.wait_for(self._wake.wait(), wait)
