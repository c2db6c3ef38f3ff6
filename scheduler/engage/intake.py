"""The daemon's webhook intake: the receiver served in the daemon's event loop, storing each
batch in one transaction before Meta gets its 200 (README "Webhooks and rules")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from scheduler.config import SecretMissing, Settings
from scheduler.engage.events import WebhookEvent
from scheduler.engage.forwarding import target_host, target_id
from scheduler.engage.receiver import WebhookReceiver, receiver_from_settings
from scheduler.engage.rules import account_names
from scheduler.store import ForwardTarget, Store

log = logging.getLogger(__name__)


def forward_targets(settings: Settings) -> list[ForwardTarget]:
    """The configured forwarding targets as the store names them."""
    return [ForwardTarget(target_id(f.url), target_host(f.url)) for f in settings.webhooks.forward]


class StoreSink:
    """The receiver's sink: each batch stored at once (new events only), then `on_stored` is
    called so the rules and the forwarder look at them without waiting for a tick."""

    def __init__(self, settings: Settings, store: Store, on_stored: Callable[[], None]) -> None:
        self.store = store
        self.names = account_names(settings)
        self.targets = forward_targets(settings)
        self.on_stored = on_stored
        self.stored = 0  # new events (repeats not counted)

    async def __call__(self, batch: Sequence[WebhookEvent]) -> None:
        new = await asyncio.to_thread(self.store.store_webhook_events, batch, self.names, self.targets)
        if new:
            self.stored += len(new)
            self.on_stored()


class WebhookIntake:
    """start() / stop(): serves `webhooks.listen` while the daemon runs (nothing when unset)."""

    def __init__(self, settings: Settings, store: Store, on_stored: Callable[[], None]) -> None:
        self.settings = settings
        self.sink = StoreSink(settings, store, on_stored)
        self.receiver: WebhookReceiver | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> None:
        listen = self.settings.webhooks.listen_address()
        if listen is None:
            return
        # a receiver that cannot start is said loudly, and publishing goes on: Meta keeps
        # retrying its deliveries for 36 hours, a post's time does not wait
        try:
            receiver = receiver_from_settings(self.settings.webhooks, self.sink)
            self.address = await receiver.start(*listen)
        except (SecretMissing, OSError) as e:
            log.error("webhook receiver not started: %s", e)
            return
        self.receiver = receiver

    async def stop(self) -> None:
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            await receiver.stop()
