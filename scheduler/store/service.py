"""Running as a service: token state (one daemon refreshes under a lease), daemon heartbeats,
durable notifications (recorded once per occurrence and target), and the figures `status`
shows (README "Running it for months")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.lifecycle import ACTIVE, State
from scheduler.store.records import _FromRow
from scheduler.store.schema import (
    account_tokens,
    accounts,
    actions,
    app_state,
    daemons,
    notifications,
    post_events,
    posts,
)

NOTIFY_CURSOR = "notify_cursor"  # app_state row: how far the event scan has looked


@dataclass(frozen=True)
class TokenState(_FromRow):
    account: str
    source: str
    seeded_fingerprint: str
    seen_at: datetime
    refreshed_token: str | None  # ciphertext, never the token
    expires_at: datetime | None
    refreshed_at: datetime | None
    last_attempt_at: datetime | None
    failures: int
    not_before: datetime | None
    last_error: str | None
    lease_owner: str | None
    lease_until: datetime | None
    version: int
    updated_at: datetime

    def __repr__(self) -> str:  # the ciphertext stays out of logs and reprs
        return f"TokenState(account={self.account!r}, source={self.source!r}, version={self.version})"


@dataclass(frozen=True)
class DaemonRecord(_FromRow):
    identity: str
    host: str
    pid: int
    started_at: datetime
    last_tick_at: datetime
    stopped_at: datetime | None


@dataclass(frozen=True)
class NotificationRecord(_FromRow):
    id: int
    event: str
    occurrence: str
    target_id: str
    account: str | None
    key: str | None
    body: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class NewNotification:
    event: str
    occurrence: str
    target_id: str
    account: str | None
    key: str | None
    body: str


@dataclass(frozen=True)
class PostEventSeen:
    """A post's move to a state the notifications care about (failed, published)."""

    event_id: int
    at: datetime
    post_id: int
    key: str
    account: str
    to_state: str
    reason: str | None
    due_at: datetime
    asap: bool
    lateness_s: float | None
    permalink: str | None


def _lock(conn: Connection, q: sa.Select) -> sa.Select:
    return q.with_for_update(skip_locked=True) if conn.dialect.name == "postgresql" else q


# --- tokens ---------------------------------------------------------------------------------

def token_state(conn: Connection, account: str) -> TokenState | None:
    row = conn.execute(sa.select(account_tokens).where(account_tokens.c.account == account)).first()
    return TokenState.from_row(row) if row else None


def token_states(conn: Connection) -> list[TokenState]:
    rows = conn.execute(sa.select(account_tokens).order_by(account_tokens.c.account))
    return [TokenState.from_row(r) for r in rows]


def seed_token(conn: Connection, account: str, fingerprint: str, now: datetime) -> TokenState:
    """The account's row, made for the configured token if there is none; a configured token
    other than the seeded one (a new login) starts the row afresh and drops a refreshed one."""
    row = conn.execute(
        sa.select(account_tokens).where(account_tokens.c.account == account).with_for_update()
        if conn.dialect.name == "postgresql"
        else sa.select(account_tokens).where(account_tokens.c.account == account)
    ).first()
    fresh = {
        "source": "config", "seeded_fingerprint": fingerprint, "seen_at": now,
        "refreshed_token": None, "expires_at": None, "refreshed_at": None,
        "last_attempt_at": None, "failures": 0, "not_before": None, "last_error": None,
        "lease_owner": None, "lease_until": None, "updated_at": now,
    }
    if row is None:  # two daemons starting at once may both get here: the first one wins
        ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(ins(account_tokens).values(account=account, version=0, **fresh)
                     .on_conflict_do_nothing(index_elements=["account"]))
    elif row.seeded_fingerprint != fingerprint:
        conn.execute(account_tokens.update().where(account_tokens.c.account == account)
                     .values(version=row.version + 1, **fresh))
    got = token_state(conn, account)
    assert got is not None
    return got


def claim_refresh(conn: Connection, account: str, version: int, owner: str, now: datetime,
                  lease_s: float) -> bool:
    """Take the account's refresh for `lease_s`, if nobody changed or holds it since `version`
    was read (SKIP LOCKED on PostgreSQL: a daemon refreshing right now is passed over)."""
    q = _lock(conn, sa.select(account_tokens.c.account).where(
        account_tokens.c.account == account,
        account_tokens.c.version == version,
        sa.or_(account_tokens.c.lease_until.is_(None), account_tokens.c.lease_until < now),
    ))
    if conn.execute(q).first() is None:
        return False
    res = conn.execute(account_tokens.update().where(
        account_tokens.c.account == account, account_tokens.c.version == version,
    ).values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s),
             version=version + 1, updated_at=now))
    return res.rowcount == 1


def store_refreshed(conn: Connection, account: str, ciphertext: str, issued_at: datetime,
                    expires_at: datetime | None, now: datetime) -> bool:
    """Keep a newly issued token, unless a newer one is stored already (every older token
    stopped working when it was issued, so the newest one is the only good one)."""
    res = conn.execute(account_tokens.update().where(
        account_tokens.c.account == account,
        sa.or_(account_tokens.c.refreshed_at.is_(None), account_tokens.c.refreshed_at <= issued_at),
    ).values(
        source="refreshed", refreshed_token=ciphertext, seen_at=issued_at, expires_at=expires_at,
        refreshed_at=issued_at, last_attempt_at=now, failures=0, not_before=None,
        last_error=None, lease_owner=None, lease_until=None,
        version=account_tokens.c.version + 1, updated_at=now,
    ))
    return res.rowcount == 1


def refresh_failed(conn: Connection, account: str, owner: str, last_attempt_at: datetime,
                   failures: int, not_before: datetime | None, error: str, now: datetime) -> None:
    conn.execute(account_tokens.update().where(
        account_tokens.c.account == account, account_tokens.c.lease_owner == owner,
    ).values(
        last_attempt_at=last_attempt_at, failures=failures, not_before=not_before,
        last_error=error, lease_owner=None, lease_until=None,
        version=account_tokens.c.version + 1, updated_at=now,
    ))


# --- daemons --------------------------------------------------------------------------------

def daemon_started(conn: Connection, identity: str, host: str, pid: int, now: datetime) -> None:
    values = {"host": host, "pid": pid, "started_at": now, "last_tick_at": now, "stopped_at": None}
    res = conn.execute(daemons.update().where(daemons.c.identity == identity).values(**values))
    if res.rowcount == 0:
        conn.execute(daemons.insert().values(identity=identity, **values))


def daemon_ticked(conn: Connection, identity: str, now: datetime) -> None:
    conn.execute(daemons.update().where(daemons.c.identity == identity).values(last_tick_at=now))


def daemon_stopped(conn: Connection, identity: str, pid: int, now: datetime) -> None:
    conn.execute(daemons.update().where(daemons.c.identity == identity, daemons.c.pid == pid)
                 .values(stopped_at=now, last_tick_at=now))


def all_daemons(conn: Connection) -> list[DaemonRecord]:
    return [DaemonRecord.from_row(r) for r in conn.execute(sa.select(daemons).order_by(daemons.c.identity))]


# --- notifications --------------------------------------------------------------------------

def add_notifications(conn: Connection, rows: Sequence[NewNotification], now: datetime) -> int:
    """Insert what is new; an occurrence already recorded (by any daemon) is left alone."""
    if not rows:
        return 0
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    added = 0
    for r in rows:
        stmt = ins(notifications).values(
            event=r.event, occurrence=r.occurrence, target_id=r.target_id, account=r.account,
            key=r.key, body=r.body, state="pending", attempts=0, next_attempt_at=now,
            created_at=now,
        ).on_conflict_do_nothing(index_elements=["occurrence", "target_id"]).returning(notifications.c.id)
        added += len(conn.execute(stmt).all())
    return added


def claim_notifications(conn: Connection, owner: str, now: datetime, lease_s: float,
                        limit: int) -> list[NotificationRecord]:
    pick = _lock(conn, sa.select(notifications.c.id).where(
        notifications.c.state == "pending",
        notifications.c.next_attempt_at <= now,
        sa.or_(notifications.c.lease_until.is_(None), notifications.c.lease_until < now),
    ).order_by(notifications.c.next_attempt_at, notifications.c.id).limit(limit))
    ids = [r[0] for r in conn.execute(pick)]
    if not ids:
        return []
    conn.execute(notifications.update().where(notifications.c.id.in_(ids)).values(
        lease_owner=owner, lease_until=now + timedelta(seconds=lease_s)))
    rows = conn.execute(sa.select(notifications).where(notifications.c.id.in_(ids))
                        .order_by(notifications.c.next_attempt_at, notifications.c.id))
    return [NotificationRecord.from_row(r) for r in rows]


def finish_notification(conn: Connection, note_id: int, owner: str, state: str, attempts: int,
                        next_attempt_at: datetime | None, error: str | None, now: datetime) -> bool:
    values: dict[str, Any] = {"state": state, "attempts": attempts, "last_error": error,
                              "lease_owner": None, "lease_until": None}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if state == "delivered":
        values["delivered_at"] = now
    res = conn.execute(notifications.update().where(
        notifications.c.id == note_id, notifications.c.lease_owner == owner).values(**values))
    return res.rowcount == 1


def list_notifications(conn: Connection) -> list[NotificationRecord]:
    rows = conn.execute(sa.select(notifications).order_by(notifications.c.id))
    return [NotificationRecord.from_row(r) for r in rows]


def notification_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(notifications.c.state, sa.func.count()).group_by(notifications.c.state))
    return {r[0]: int(r[1]) for r in rows}


def scan_cursor(conn: Connection) -> datetime | None:
    row = conn.execute(sa.select(app_state.c.until).where(app_state.c.name == NOTIFY_CURSOR)).first()
    return row[0] if row else None


def move_scan_cursor(conn: Connection, to: datetime, now: datetime) -> None:
    """Forward only (several daemons scan)."""
    res = conn.execute(app_state.update().where(
        app_state.c.name == NOTIFY_CURSOR,
        sa.or_(app_state.c.until.is_(None), app_state.c.until < to),
    ).values(until=to, updated_at=now))
    if res.rowcount == 0 and scan_cursor(conn) is None:
        conn.execute(app_state.insert().values(name=NOTIFY_CURSOR, until=to, updated_at=now))


def post_events_since(conn: Connection, since: datetime, states: Sequence[str]) -> list[PostEventSeen]:
    rows = conn.execute(
        sa.select(
            post_events.c.id.label("event_id"), post_events.c.at, post_events.c.post_id,
            posts.c.key, posts.c.account, post_events.c.to_state, post_events.c.reason,
            posts.c.due_at, posts.c.asap, posts.c.lateness_s, posts.c.permalink,
        )
        .join(posts, posts.c.id == post_events.c.post_id)
        .where(post_events.c.at >= since, post_events.c.to_state.in_(list(states)),
               sa.or_(post_events.c.from_state.is_(None), post_events.c.from_state != post_events.c.to_state))
        .order_by(post_events.c.id)
    )
    return [PostEventSeen(**r._mapping) for r in rows]


def deferred_since(conn: Connection, due_before: datetime) -> list[dict[str, Any]]:
    """Deferred posts whose time was before `due_before` (post_late while still waiting)."""
    rows = conn.execute(sa.select(posts.c.id, posts.c.key, posts.c.account, posts.c.state,
                                  posts.c.reason, posts.c.due_at)
                        .where(posts.c.state == State.DEFERRED.value, posts.c.asap.is_(False),
                               posts.c.due_at < due_before))
    return [dict(r._mapping) for r in rows]


def failed_actions_since(conn: Connection, since: datetime) -> list[dict[str, Any]]:
    """Engagement actions that failed since `since` (action_failed notifications)."""
    rows = conn.execute(sa.select(actions.c.id, actions.c.key, actions.c.account, actions.c.kind,
                                  actions.c.state, actions.c.error, actions.c.reason, actions.c.done_at)
                        .where(actions.c.state == "failed", actions.c.done_at >= since)
                        .order_by(actions.c.id))
    return [dict(r._mapping) for r in rows]


# --- status ---------------------------------------------------------------------------------

def posts_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(posts.c.state, sa.func.count()).group_by(posts.c.state))
    return {r[0]: int(r[1]) for r in rows}


def next_due_post(conn: Connection) -> dict[str, Any] | None:
    active = [s.value for s in ACTIVE]
    row = conn.execute(sa.select(posts.c.key, posts.c.account, posts.c.kind, posts.c.state, posts.c.due_at)
                       .where(posts.c.state.in_(active)).order_by(posts.c.due_at, posts.c.id).limit(1)).first()
    return dict(row._mapping) if row else None


def actions_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(actions.c.state, sa.func.count()).group_by(actions.c.state))
    return {str(r[0]): int(r[1]) for r in rows}


def reauth_accounts(conn: Connection) -> list[tuple[str, str | None]]:
    rows = conn.execute(sa.select(accounts.c.name, accounts.c.reauth_reason)
                        .where(accounts.c.needs_reauth.is_(True)).order_by(accounts.c.name))
    return [(r[0], r[1]) for r in rows]
