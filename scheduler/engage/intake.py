"""The daemon's webhook intake: the receiver served in the daemon's event loop, storing each
batch in one transaction before Meta gets its 200 (README "Webhooks and rules")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from scheduler.config import SecretMissing, Settings
from scheduler.engage.events import WebhookEvent
from scheduler.engage.forwarding import target_host, target_id
from scheduler.engage.receiver import WebhookReceiver, receiver_from_settings
from scheduler.engage.rules import account_names
from scheduler.redaction import remember_secret
from scheduler.store import ForwardTarget, Store

log = logging.getLogger(__name__)
MAX_GROUP_EVENTS = 5000  # events stored in one transaction at most (Meta sends up to 1,000 a batch)


def forward_targets(settings: Settings) -> list[ForwardTarget]:
    """The configured forwarding targets as the store names them."""
    return [ForwardTarget(target_id(f.url), target_host(f.url)) for f in settings.webhooks.forward]


class StoreSink:
    """The receiver's sink: batches are stored as they come, and batches that arrive while a
    write is under way are stored together in the next transaction (group commit: one
    writer, so concurrent requests do not queue for SQLite's write lock one by one). A
    request is answered once the transaction holding its batch has committed; `on_stored`
    is called after it, so the rules and the forwarder look at new events at once."""

    def __init__(self, store: Store, names: Mapping[str, str], targets: Sequence[ForwardTarget],
                 on_stored: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.names = dict(names)
        self.targets = list(targets)
        self.on_stored = on_stored
        self.stored = 0  # new events (repeats not counted)
        self.transactions = 0
        self._pending: list[tuple[Sequence[WebhookEvent], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, on_stored: Callable[[], None]) -> StoreSink:
        return cls(store, account_names(settings), forward_targets(settings), on_stored)

    async def __call__(self, batch: Sequence[WebhookEvent]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="igsched-webhook-writer")
        await asyncio.shield(done)  # a request that goes away does not undo its batch

    async def _write(self) -> None:
        while self._pending:
            group: list[tuple[Sequence[WebhookEvent], asyncio.Future[None]]] = []
            size = 0
            while self._pending and size < MAX_GROUP_EVENTS:
                group.append(self._pending.pop(0))
                size += len(group[-1][0])
            await self._store(group)

    async def _store(self, group: list[tuple[Sequence[WebhookEvent], asyncio.Future[None]]]) -> None:
        events = [e for batch, _ in group for e in batch]
        try:
            new = await asyncio.to_thread(self.store.store_webhook_events, events, self.names, self.targets)
        except Exception as e:
            if len(group) > 1:
                # one batch the database refuses must not fail the others stored with it
                for one in group:
                    await self._store([one])
                return
            for _, done in group:
                if not done.done():
                    done.set_exception(e)
            return
        self.transactions += 1
        for _, done in group:
            if not done.done():
                done.set_result(None)
        if new:
            self.stored += len(new)
            self.on_stored()


class WebhookIntake:
    """start() / stop(): serves `webhooks.listen` while the daemon runs (nothing when unset)."""

    def __init__(self, settings: Settings, store: Store, on_stored: Callable[[], None]) -> None:
        self.settings = settings
        self.sink = StoreSink.from_settings(settings, store, on_stored)
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
            remember_secret(receiver.config.app_secret)  # never in a log line from here on
            remember_secret(receiver.config.verify_token)
            self.address = await receiver.start(*listen)
        except (SecretMissing, OSError) as e:
            log.error("webhook receiver not started: %s", e)
            return
        self.receiver = receiver

    async def stop(self) -> None:
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            await receiver.stop()
