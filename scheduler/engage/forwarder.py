"""The daemon's forwarder: each stored event POSTed to every `webhooks.forward` URL, signed,
retried with backoff until a 2xx, in order per account (README "Webhooks and rules").

Delivery state is in the database (forward_deliveries): a delivery is leased while it is
being sent, so a crashed daemon's deliveries are sent again by the next one (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from scheduler.clock import to_aware
from scheduler.config import ForwardSettings, SecretMissing, Settings
from scheduler.engage.forwarding import (
    DeliveryOutcome,
    deliver,
    event_document,
    retry_delay_s,
    target_host,
    target_id,
)
from scheduler.failures import Failures
from scheduler.redaction import remember_secret
from scheduler.store import DeliveryRecord, Store
from scheduler.tls import tls_context

log = logging.getLogger(__name__)
BATCH = 32  # deliveries claimed at a time (at most one per target and account)
LEASE_MARGIN_S = 30.0
MIN_WAIT_S = 0.05


class Forwarder:
    """start() / stop(); `wake()` when new events were stored."""

    def __init__(self, settings: Settings, store: Store, identity: str) -> None:
        self.settings = settings
        self.store = store
        self._failures = Failures(log, "forwarding webhook events")
        self.identity = identity
        self.targets: dict[str, ForwardSettings] = {target_id(f.url): f for f in settings.webhooks.forward}
        self.delivered = 0
        self.failed_attempts = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._logged: set[str] = set()  # failures logged once per target until one succeeds

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.targets and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-forwarder")

    async def stop(self) -> None:
        """Stop at once: a delivery in flight keeps its lease until it runs out and is sent
        again then (at least once)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        hooks = self.settings.webhooks
        async with httpx.AsyncClient(timeout=hooks.forward_timeout_s, follow_redirects=False,
                                     verify=tls_context()) as http:
            while True:
                self._wake.clear()  # before looking: a wake during the round is not lost
                try:
                    sent = await self.round(http)
                except Exception as e:
                    self._failures.failed(e)
                    sent = 0
                else:
                    self._failures.ok()
                if sent:
                    continue
                await self._sleep()

    async def round(self, http: httpx.AsyncClient) -> int:
        """Claim what is due, send it (different accounts at the same time), record it."""
        lease_s = self.settings.webhooks.forward_timeout_s + LEASE_MARGIN_S
        claimed = await asyncio.to_thread(
            self.store.claim_deliveries, list(self.targets), self.identity, lease_s, BATCH
        )
        await asyncio.gather(*(self._one(http, d) for d in claimed))
        return len(claimed)

    async def _one(self, http: httpx.AsyncClient, d: DeliveryRecord) -> None:
        hooks = self.settings.webhooks
        target = self.targets[d.target]
        ev = d.event
        try:
            secret = target.secret()
        except SecretMissing as e:
            outcome = DeliveryOutcome(False, None, str(e), 0.0)
        else:
            remember_secret(secret)
            doc = event_document(ev.webhook_event(), event_id=ev.id, account=ev.account,
                                 received_at=to_aware(ev.received_at),
                                 handled_at=to_aware(ev.handled_at) if ev.handled_at else None)
            outcome = await deliver(target.url, secret, doc, client=http, timeout_s=hooks.forward_timeout_s)
        retry_in = None
        if outcome.delivered:
            self.delivered += 1
            if d.target in self._logged:
                self._logged.discard(d.target)
                log.info("forwarding to %s works again", target_host(target.url))
        else:
            self.failed_attempts += 1
            retry_in = retry_delay_s(d.attempts + 1, hooks.forward_backoff_base_s, hooks.forward_backoff_cap_s)
            if d.target not in self._logged:
                self._logged.add(d.target)
                log.warning("forwarding event %d to %s failed (%s); retrying with backoff (next in "
                            "%.1f s), later failures are not logged until it works again",
                            ev.id, target_host(target.url), outcome.error, retry_in)
        await asyncio.to_thread(self.store.finish_delivery, d, delivered=outcome.delivered,
                                status=outcome.status, error=outcome.error, retry_in_s=retry_in)

    async def _sleep(self) -> None:
        tick = self._failures.delay(self.settings.daemon.tick_s)
        try:
            nxt, now = await asyncio.to_thread(self.store.next_delivery_at, list(self.targets))
        except Exception as e:
            self._failures.failed(e)
            nxt, now = None, None
        wait = tick
        if nxt is not None and now is not None:
            wait = min(tick, max(MIN_WAIT_S, (nxt - now).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)
