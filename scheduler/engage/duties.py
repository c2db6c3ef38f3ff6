"""The webhook side of the daemon, as one duty to start and stop: the receiver (intake.py),
the rules' outbox (outbox.py) and the forwarder (forwarder.py). A batch stored by the
receiver wakes the other two at once; without it they look at every tick (another replica's
receiver may have stored events)."""

from __future__ import annotations

from collections.abc import Callable

from scheduler.config import Settings
from scheduler.engage.forwarder import Forwarder
from scheduler.engage.intake import WebhookIntake
from scheduler.engage.outbox import RuleOutbox
from scheduler.store import Store


class WebhookDuties:
    def __init__(self, settings: Settings, store: Store, identity: str,
                 on_actions: Callable[[], None]) -> None:
        """`on_actions`: called when rules planned actions (the daemon then runs them)."""
        self.forwarder = Forwarder(settings, store, identity)
        self.outbox = RuleOutbox(settings, store, identity, on_actions)
        self.intake = WebhookIntake(settings, store, self._stored)

    def _stored(self) -> None:
        self.outbox.wake()
        self.forwarder.wake()

    async def start(self) -> None:
        self.outbox.start()
        self.forwarder.start()
        await self.intake.start()

    async def stop(self) -> None:
        await self.intake.stop()  # first: nothing new comes in while the others stop
        await self.outbox.stop()
        await self.forwarder.stop()
