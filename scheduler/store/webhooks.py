"""Webhook events in the database: stored once by their de-duplication key, listed, handled
by the rules (one short transaction per batch), and forwarded to other services.

Events are stored with INSERT … ON CONFLICT DO NOTHING on the key, so a batch Meta delivers
three times stores each event once, whichever delivery commits first. On PostgreSQL the
handlers of events and the claimers of deliveries take a transaction-scoped advisory lock, so
replicas work one after the other and the order per account holds (on SQLite, BEGIN IMMEDIATE
already serialises them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.clock import to_aware, to_naive_utc
from scheduler.engage.events import WebhookEvent
from scheduler.lifecycle import ACTION_ACTIVE
from scheduler.store.actions import insert_actions
from scheduler.store.engine import schema_lock
from scheduler.store.records import NewAction, Planned, _FromRow
from scheduler.store.schema import actions
from scheduler.store.webhook_schema import (
    conversations,
    events,
    forward_deliveries,
    waiting_actions,
)

# pg_advisory_xact_lock keys (constants no other tool uses; see engine.MIGRATION_LOCK_KEY)
RULES_LOCK_KEY = 0x1975C4EE
FORWARD_LOCK_KEY = 0x1975C4EF


# what opens Meta's 24-hour messaging window: the person wrote, tapped a quick reply or a button
INBOUND_KINDS = ("message", "quick_reply", "postback")


@dataclass(frozen=True)
class EventRecord(_FromRow):
    id: int
    dedup_key: str
    kind: str
    account: str | None
    ig_account_id: str
    sender_id: str | None
    recipient_id: str | None
    text: str | None
    payload: str | None
    media_id: str | None
    comment_id: str | None
    parent_id: str | None
    username: str | None
    is_echo: bool
    attachments: list[dict[str, Any]] | None
    occurred_at: datetime | None
    raw: str
    received_at: datetime
    handled_at: datetime | None
    rule_actions: int | None

    def webhook_event(self) -> WebhookEvent:
        """The event as the receiver normalised it (for the rules and forwarding)."""
        return WebhookEvent(
            kind=self.kind,  # type: ignore[arg-type]  # stored from an EventKind
            ig_account_id=self.ig_account_id,
            dedup_key=self.dedup_key,
            sender_id=self.sender_id,
            recipient_id=self.recipient_id,
            text=self.text,
            payload=self.payload,
            media_id=self.media_id,
            comment_id=self.comment_id,
            parent_id=self.parent_id,
            username=self.username,
            timestamp=_aware(self.occurred_at),
            is_echo=self.is_echo,
            attachments=tuple(self.attachments or ()),
            raw=self.raw,
        )


@dataclass(frozen=True)
class ForwardTarget:
    """A forwarding target as the store knows it: `target` a digest of its URL, `host` its
    scheme and host (the URL itself may hold a secret in its path and is never stored)."""

    target: str
    host: str


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    target: str
    attempts: int
    lease_token: str
    event: EventRecord


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else to_aware(dt)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _event_row(e: WebhookEvent, account: str | None, now: datetime) -> dict[str, Any]:
    return {
        "dedup_key": e.dedup_key, "kind": e.kind, "account": account,
        "ig_account_id": e.ig_account_id, "sender_id": e.sender_id,
        "recipient_id": e.recipient_id, "text": _clean(e.text), "payload": _clean(e.payload),
        "media_id": e.media_id, "comment_id": e.comment_id, "parent_id": e.parent_id,
        "username": _clean(e.username), "is_echo": e.is_echo,
        "attachments": [_clean(dict(a)) for a in e.attachments] or None,
        "occurred_at": to_naive_utc(e.timestamp) if e.timestamp else None,
        "raw": _clean(e.raw), "received_at": now,
    }


def _clean(value: Any) -> Any:
    """Text a database can hold: PostgreSQL refuses NUL, and no UTF-8 has lone surrogates
    (JSON's escapes allow both). Each becomes U+FFFD on both databases (the raw item keeps a
    NUL as its escape), so one odd character never makes Meta retry a batch for 36 hours."""
    if isinstance(value, str):
        if value.isprintable() or ("\x00" not in value and value.isascii()):
            return value
        return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def store_events(
    conn: Connection, batch: Sequence[WebhookEvent], names: Mapping[str, str],
    targets: Sequence[ForwardTarget], now: datetime,
) -> list[int]:
    """Insert the events not stored yet (in the order given), a delivery per new event and
    target, and the people's last inbound message times; returns the new events' ids."""
    if not batch:
        return []
    rows = [_event_row(e, names.get(e.ig_account_id), now) for e in batch]
    if conn.dialect.name == "postgresql":
        inserted = _insert_events_pg(conn, rows)
    else:
        stmt = _insert(conn, events).on_conflict_do_nothing(index_elements=["dedup_key"])
        inserted = list(conn.execute(stmt.returning(events.c.id, events.c.dedup_key), rows).all())
    ids = {key: event_id for event_id, key in inserted}
    new_ids = sorted(ids.values())
    if targets and ids:
        by_key = {e.dedup_key: e for e in batch}
        conn.execute(forward_deliveries.insert(), [
            {"event_id": event_id, "target": t.target, "target_host": t.host,
             "ig_account_id": by_key[key].ig_account_id, "attempts": 0,
             "next_attempt_at": now, "created_at": now}
            for key, event_id in sorted(ids.items(), key=lambda kv: kv[1]) for t in targets
        ])
    _note_inbound(conn, [e for e in batch if e.dedup_key in ids], ids, names, now)
    return new_ids


# PostgreSQL: the batch goes as one JSON parameter, so the statement's text is the same for
# every batch (the driver prepares it once; a VALUES list of varying length is parsed anew
# each time, which costs more than the insert itself)
_PG_TYPES = {
    "dedup_key": "text", "kind": "text", "account": "text", "ig_account_id": "text",
    "sender_id": "text", "recipient_id": "text", "text": "text", "payload": "text",
    "media_id": "text", "comment_id": "text", "parent_id": "text", "username": "text",
    "is_echo": "boolean", "attachments": "json", "occurred_at": "timestamp", "raw": "text",
    "received_at": "timestamp",
}
_PG_COLUMNS = ", ".join(_PG_TYPES)
_PG_INSERT = sa.text(
    f"INSERT INTO events ({_PG_COLUMNS}) "
    f"SELECT {_PG_COLUMNS} FROM json_to_recordset(CAST(:rows AS json)) "
    f"AS r({', '.join(f'{k} {t}' for k, t in _PG_TYPES.items())}, n integer) ORDER BY n "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
)


def _insert_events_pg(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    doc = [
        {**{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}, "n": i}
        for i, row in enumerate(rows)
    ]
    return list(conn.execute(_PG_INSERT, {"rows": json.dumps(doc, ensure_ascii=False)}).all())


def _note_inbound(conn: Connection, batch: Sequence[WebhookEvent], ids: Mapping[str, int],
                  names: Mapping[str, str], now: datetime) -> None:
    latest: dict[tuple[str, str], tuple[datetime, int]] = {}
    for e in batch:
        if e.kind not in INBOUND_KINDS or e.is_echo or e.sender_id is None:
            continue
        at = to_naive_utc(e.timestamp) if e.timestamp else now
        key = (e.ig_account_id, e.sender_id)
        if key not in latest or latest[key][0] < at:
            latest[key] = (at, ids[e.dedup_key])
    # in key order: two batches upserting the same people never wait on each other in a cycle
    for (account_id, person), (at, event_id) in sorted(latest.items()):
        stmt = _insert(conn, conversations).values(
            ig_account_id=account_id, person_id=person, account=names.get(account_id),
            last_inbound_at=at, last_event_id=event_id,
        )
        newer = stmt.excluded.last_inbound_at > conversations.c.last_inbound_at
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["ig_account_id", "person_id"],
            set_={
                "last_inbound_at": sa.case((newer, stmt.excluded.last_inbound_at),
                                           else_=conversations.c.last_inbound_at),
                "last_event_id": sa.case((newer, stmt.excluded.last_event_id),
                                         else_=conversations.c.last_event_id),
                "account": stmt.excluded.account,
            },
        ))


def last_inbound_at(conn: Connection, ig_account_id: str, person_id: str) -> datetime | None:
    return conn.execute(
        sa.select(conversations.c.last_inbound_at).where(
            conversations.c.ig_account_id == ig_account_id, conversations.c.person_id == person_id
        )
    ).scalar()


def list_events(
    conn: Connection, since: datetime | None, kind: str | None, account: str | None,
    limit: int | None,
) -> list[EventRecord]:
    """Newest first. `account`: a configured account's name or a raw ig id."""
    q = sa.select(events)
    if since is not None:
        q = q.where(events.c.received_at >= since)
    if kind is not None:
        q = q.where(events.c.kind == kind)
    if account is not None:
        q = q.where(sa.or_(events.c.account == account, events.c.ig_account_id == account))
    q = q.order_by(events.c.id.desc())
    if limit is not None:
        q = q.limit(limit)
    return [EventRecord.from_row(r) for r in conn.execute(q)]


def get_event(conn: Connection, event_id: int) -> EventRecord | None:
    row = conn.execute(sa.select(events).where(events.c.id == event_id)).first()
    return EventRecord.from_row(row) if row else None


def count_events(conn: Connection) -> tuple[int, int]:
    """(events stored, events not handled yet)."""
    total = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    waiting = conn.execute(
        sa.select(sa.func.count()).select_from(events).where(events.c.handled_at.is_(None))
    ).scalar_one()
    return int(total), int(waiting)


# ---------------------------------------------------------------------- rules (the outbox)
def take_unhandled(conn: Connection, limit: int) -> list[EventRecord] | None:
    """The oldest events not handled yet, in the order they were stored; None when another
    daemon is handling events right now (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        got = conn.execute(schema_lock(RULES_LOCK_KEY, wait=False)).scalar()
        if not got:
            return None
    rows = conn.execute(
        sa.select(events).where(events.c.handled_at.is_(None)).order_by(events.c.id).limit(limit)
    ).all()
    return [EventRecord.from_row(r) for r in rows]


# what a rule plan returns for one event: actions to insert now, and actions to insert once
# those are finished
Plan = tuple[Sequence[NewAction], Sequence[NewAction]]


def handle_events(
    conn: Connection, plan: Callable[[EventRecord], Plan], limit: int, now: datetime, actor: str,
) -> list[tuple[EventRecord, list[Planned]]] | None:
    """The transactional outbox, inside the caller's transaction: the oldest unhandled
    events, each one's rule actions inserted into `actions` (keys rule:<name>:<event>:<kind>,
    so a key planned before plans nothing) and the event marked handled, all committed
    together or not at all. Actions that must wait for the others are kept on the event
    (`waiting_actions`) and inserted by `release_later`. `plan` is pure (no I/O). None:
    another daemon is at it."""
    taken = take_unhandled(conn, limit)
    if taken is None:
        return None
    done: list[tuple[EventRecord, list[Planned]]] = []
    for event in taken:
        first, later = plan(event)
        outcomes = insert_actions(conn, first, now, actor)
        if later and not first:  # nothing to wait for
            outcomes += insert_actions(conn, later, now, actor)
        elif later:
            conn.execute(waiting_actions.insert().values(
                event_id=event.id, after=[a.key for a in first],
                actions=[_action_json(a) for a in later], created_at=now))
        conn.execute(
            events.update().where(events.c.id == event.id, events.c.handled_at.is_(None))
            .values(handled_at=now, rule_actions=len(first) + len(later))
        )
        done.append((event, outcomes))
    return done


def _action_json(a: NewAction) -> dict[str, Any]:
    return {"key": a.key, "account": a.account, "kind": a.kind, "target": a.target,
            "payload": dict(a.payload), "source": a.source}


def release_later(conn: Connection, now: datetime, actor: str, limit: int) -> list[Planned]:
    """Insert the waiting actions of events whose earlier actions are all finished (done,
    failed or unknown), in the same transaction that clears them from the event."""
    if conn.dialect.name == "postgresql":
        got = conn.execute(schema_lock(RULES_LOCK_KEY, wait=False)).scalar()
        if not got:
            return []
    wa = waiting_actions
    rows = conn.execute(
        sa.select(wa.c.event_id, wa.c.after, wa.c.actions).order_by(wa.c.event_id).limit(limit)
    ).all()
    active = [s.value for s in ACTION_ACTIVE]
    out: list[Planned] = []
    for event_id, after, waiting in rows:
        if after and conn.execute(
            sa.select(sa.func.count()).select_from(actions)
            .where(actions.c.key.in_(after), actions.c.state.in_(active))
        ).scalar_one():
            continue
        out += insert_actions(conn, [NewAction(**a) for a in waiting], now, actor)
        conn.execute(wa.delete().where(wa.c.event_id == event_id))
    return out


def later_waiting(conn: Connection) -> bool:
    return conn.execute(sa.select(waiting_actions.c.event_id).limit(1)).first() is not None


def unhandled_exists(conn: Connection) -> bool:
    return conn.execute(
        sa.select(events.c.id).where(events.c.handled_at.is_(None)).limit(1)
    ).first() is not None


# ---------------------------------------------------------------------- forwarding
def _heads(targets: Sequence[str]) -> sa.Subquery:
    """The first undelivered event of each (target, account)."""
    fd = forward_deliveries
    return (
        sa.select(sa.func.min(fd.c.event_id).label("event_id"), fd.c.target)
        .where(fd.c.delivered_at.is_(None), fd.c.target.in_(targets))
        .group_by(fd.c.target, fd.c.ig_account_id)
        .subquery()
    )


def claim_deliveries(
    conn: Connection, targets: Sequence[str], owner: str, lease_s: float, now: datetime, limit: int
) -> list[DeliveryRecord]:
    """Lease the first undelivered event of each (target, account), when its next attempt is
    due and no one holds it: a later event waits until the earlier one is delivered, so each
    target sees an account's events in order."""
    if not targets:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(schema_lock(FORWARD_LOCK_KEY))
    fd = forward_deliveries
    heads = _heads(targets)
    picked = conn.execute(
        sa.select(fd.c.id)
        .join(heads, sa.and_(fd.c.event_id == heads.c.event_id, fd.c.target == heads.c.target))
        .where(fd.c.next_attempt_at <= now,
               sa.or_(fd.c.lease_until.is_(None), fd.c.lease_until < now))
        .order_by(fd.c.next_attempt_at, fd.c.event_id)
        .limit(limit)
    ).scalars().all()
    if not picked:
        return []
    token = uuid.uuid4().hex
    conn.execute(
        fd.update().where(fd.c.id.in_(picked))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), lease_token=token)
    )
    claimed = conn.execute(
        sa.select(fd.c.id, fd.c.target, fd.c.attempts, fd.c.event_id)
        .where(fd.c.id.in_(picked)).order_by(fd.c.event_id)
    ).all()
    found = {e.id: e for e in _events_by_id(conn, [r.event_id for r in claimed])}
    return [DeliveryRecord(r.id, r.target, r.attempts, token, found[r.event_id]) for r in claimed]


def _events_by_id(conn: Connection, ids: Sequence[int]) -> list[EventRecord]:
    rows = conn.execute(sa.select(events).where(events.c.id.in_(ids))).all()
    return [EventRecord.from_row(r) for r in rows]


def finish_delivery(
    conn: Connection, delivery_id: int, token: str, now: datetime, *, delivered: bool,
    status: int | None, error: str | None, retry_in_s: float | None,
) -> bool:
    """Record one attempt (compare-and-set on the lease token); False when the lease was lost."""
    fd = forward_deliveries
    values: dict[str, Any] = {
        "attempts": fd.c.attempts + 1, "last_status": status, "last_error": error,
        "lease_owner": None, "lease_until": None, "lease_token": None,
    }
    if delivered:
        values["delivered_at"] = now
    elif retry_in_s is not None:
        values["next_attempt_at"] = now + timedelta(seconds=retry_in_s)
    res = conn.execute(fd.update().where(fd.c.id == delivery_id, fd.c.lease_token == token).values(**values))
    return res.rowcount == 1


def next_delivery_at(conn: Connection, targets: Sequence[str]) -> datetime | None:
    if not targets:
        return None
    fd = forward_deliveries
    heads = _heads(targets)
    return conn.execute(
        sa.select(sa.func.min(sa.func.coalesce(fd.c.lease_until, fd.c.next_attempt_at)))
        .join(heads, sa.and_(fd.c.event_id == heads.c.event_id, fd.c.target == heads.c.target))
    ).scalar()


def deliveries_of(conn: Connection, event_id: int) -> list[dict[str, Any]]:
    fd = forward_deliveries
    rows = conn.execute(
        sa.select(fd.c.target, fd.c.target_host, fd.c.attempts, fd.c.next_attempt_at,
                  fd.c.delivered_at, fd.c.last_status, fd.c.last_error)
        .where(fd.c.event_id == event_id).order_by(fd.c.target)
    ).all()
    return [dict(r._mapping) for r in rows]
