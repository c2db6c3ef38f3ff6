"""The Store's webhook methods (mixed into `Store`): storing events once, listing them, the
people's last inbound messages, and forwarding deliveries. SQL is in store/webhooks.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

import scheduler.store.webhooks as wh
from scheduler.clock import to_naive_utc
from scheduler.engage.events import WebhookEvent
from scheduler.store.records import Planned
from scheduler.store.webhooks import DeliveryRecord, EventRecord, ForwardTarget, Plan

__all__ = ["DeliveryRecord", "EventRecord", "ForwardTarget", "WebhookStore"]

DEADLOCK_RETRIES = 3  # PostgreSQL: two batches holding the same events in another order


def _deadlock(e: OperationalError) -> bool:
    return getattr(getattr(e, "orig", None), "sqlstate", None) == "40P01"


class WebhookStore:
    if TYPE_CHECKING:  # provided by Store
        def _tx(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def now(self) -> datetime: ...

    def store_webhook_events(
        self, batch: Sequence[WebhookEvent], names: Mapping[str, str],
        targets: Sequence[ForwardTarget] = (),
    ) -> list[int]:
        """Store the events not stored yet, in one transaction (`names`: ig id → configured
        account name; `targets`: where each new event is to be forwarded). Returns the ids of
        the events stored by this call; a repeated delivery stores none."""
        now = self.now()
        for attempt in range(DEADLOCK_RETRIES):
            try:
                with self._tx() as conn:
                    return wh.store_events(conn, batch, names, targets, now)
            except OperationalError as e:
                if not _deadlock(e) or attempt == DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def webhook_events(
        self, since: datetime | None = None, kind: str | None = None,
        account: str | None = None, limit: int | None = None,
    ) -> list[EventRecord]:
        """Stored events, newest first (`account`: a configured name or a raw ig id)."""
        with self._read() as conn:
            return wh.list_events(conn, to_naive_utc(since) if since else None, kind, account, limit)

    def webhook_event(self, event_id: int) -> EventRecord | None:
        with self._read() as conn:
            return wh.get_event(conn, event_id)

    def webhook_event_counts(self) -> tuple[int, int]:
        """(events stored, events whose rules have not run yet)."""
        with self._read() as conn:
            return wh.count_events(conn)

    def last_inbound_at(self, ig_account_id: str, person_id: str) -> datetime | None:
        """When the person last wrote to the account (naive UTC), as far as webhooks told."""
        with self._read() as conn:
            return wh.last_inbound_at(conn, ig_account_id, person_id)

    # --- rules -------------------------------------------------------------------------
    def handle_webhook_events(
        self, plan: Callable[[EventRecord], Plan], limit: int, actor: str
    ) -> list[tuple[EventRecord, list[Planned]]] | None:
        """Handle the oldest unhandled events in one transaction (the transactional outbox):
        each one's actions (`plan`, pure: the actions to insert now, and those to insert
        once these are finished) inserted into `actions` and the event marked handled, together, so a rule fires once per event across crashes and replicas.
        Returns each event with what planning its actions did; None when another daemon is
        handling events right now (PostgreSQL)."""
        with self._read() as conn:  # the usual answer, without taking the write lock
            if not wh.unhandled_exists(conn):
                return []
        now = self.now()
        with self._tx() as conn:
            return wh.handle_events(conn, plan, limit, now, actor)

    def release_later_actions(self, actor: str, limit: int = 500) -> list[Planned]:
        """Insert the actions that waited for an event's other actions to finish (e.g. a
        hide after the replies), each with the event's row in one transaction."""
        with self._read() as conn:
            if not wh.later_waiting(conn):
                return []
        now = self.now()
        with self._tx() as conn:
            return wh.release_later(conn, now, actor, limit)

    # --- forwarding -----------------------------------------------------------------------
    def claim_deliveries(self, targets: Sequence[str], owner: str, lease_s: float,
                         limit: int) -> list[DeliveryRecord]:
        now = self.now()
        with self._tx() as conn:
            return wh.claim_deliveries(conn, targets, owner, lease_s, now, limit)

    def finish_delivery(self, delivery: DeliveryRecord, *, delivered: bool, status: int | None,
                        error: str | None, retry_in_s: float | None) -> bool:
        """Record one attempt; a failed one is tried again `retry_in_s` from now. False when
        the lease was lost (another daemon took the delivery over)."""
        now = self.now()
        with self._tx() as conn:
            return wh.finish_delivery(conn, delivery.id, delivery.lease_token, now,
                                      delivered=delivered, status=status, error=error,
                                      retry_in_s=retry_in_s)

    def next_delivery_at(self, targets: Sequence[str]) -> tuple[datetime | None, datetime]:
        """(when the next delivery attempt is due, the store's now)."""
        now = self.now()
        with self._read() as conn:
            return wh.next_delivery_at(conn, targets), now

    def deliveries(self, event_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return wh.deliveries_of(conn, event_id)
