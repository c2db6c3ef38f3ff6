"""The rules' outbox: stored events handled in order, each in the transaction that inserts
its rule actions into `actions` and marks it handled (README "Webhooks and rules"), so a rule
fires exactly once per event, across crashes and replicas. The daemon runs the actions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from scheduler.config import Settings
from scheduler.engage.rules import plan_actions
from scheduler.store import EventRecord, NewAction, Store

log = logging.getLogger(__name__)
BATCH = 200  # events handled per transaction


class RuleOutbox:
    """start() / stop(); `wake()` when new events were stored."""

    def __init__(self, settings: Settings, store: Store, identity: str,
                 on_actions: Callable[[], None]) -> None:
        self.settings = settings
        self.store = store
        self.actor = identity
        self.on_actions = on_actions
        self.handled = 0
        self.planned = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
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

    def plan(self, event: EventRecord) -> list[NewAction]:
        """The actions the rules ask for (pure; called inside the store's transaction). An
        event of an account that is not configured plans nothing: there is no token to act."""
        if event.account is None or event.is_echo:
            return []
        return [
            NewAction(key=a.key, account=event.account, kind=a.kind, target=a.target,
                      payload=dict(a.payload), source=a.source)
            for a in plan_actions(self.settings.rules, event.webhook_event(), event.id, event.account)
        ]

    async def round(self) -> int:
        """Handle one batch of events; how many were handled."""
        done = await asyncio.to_thread(self.store.handle_webhook_events, self.plan, BATCH, self.actor)
        if done is None:
            return 0  # another daemon is handling events right now
        planned = 0
        for event, outcomes in done:
            for o in outcomes:
                if o.outcome == "new":
                    planned += 1
                elif o.outcome == "refused":
                    log.info("rule action %s for event %d not sent: %s", o.action.key, event.id, o.reason)
        self.handled += len(done)
        self.planned += planned
        if planned:
            self.on_actions()
        return len(done)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake during the round is not lost
            try:
                handled = await self.round()
            except Exception:
                log.exception("handling webhook events failed; trying again at the next tick")
                handled = 0
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.daemon.tick_s)
