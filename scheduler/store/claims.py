"""Claims and leases: which daemon works which post, fenced by a lease token.

A claim is one short transaction committed before any API call. Finishing a step is a
compare-and-set on the token, so a worker that lost its lease (reaped, cancelled, edited)
changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.lifecycle import ACTIVE, POSTS, PostMove, State
from scheduler.store.posts import add_event
from scheduler.store.records import MediaChanges, PostChanges, PostRecord
from scheduler.store.schema import post_media, posts

_ACTIVE = [s.value for s in ACTIVE]
_PUBLISHING = [s.value for s in (State.READY, State.DEFERRED, State.PUBLISHING, State.VERIFYING)]


class LeaseLost(Exception):
    """The post is no longer ours: another worker, the user or a re-import took it."""


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        sa.or_(
            posts.c.state.in_(_ACTIVE),
            sa.and_(posts.c.state == State.PUBLISHED.value, posts.c.followup_pending.is_(True)),
        ),
        posts.c.next_action_at <= now,
        sa.or_(posts.c.lease_until.is_(None), posts.c.lease_until < now),
    )


def claim_due(conn: Connection, owner: str, lease_s: float, now: datetime, limit: int) -> list[PostRecord]:
    """Lease up to `limit` due posts, earliest first. SKIP LOCKED on PostgreSQL; on SQLite
    the surrounding BEGIN IMMEDIATE already serialises claimers."""
    # publishing due posts goes first: polls and staging can wait a moment, the due time cannot
    publishing_first = sa.case((posts.c.state.in_(_PUBLISHING), 0), else_=1)
    pick = (
        sa.select(posts.c.id).where(_due(now)).order_by(publishing_first, posts.c.next_action_at).limit(limit)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    rows = conn.execute(
        posts.update()
        .where(posts.c.id.in_(pick.scalar_subquery()))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), lease_token=token)
        .returning(*posts.c)
    ).all()
    first = set(_PUBLISHING)
    return sorted((PostRecord.from_row(r) for r in rows), key=lambda p: (p.state not in first, p.next_action_at))


def next_action_at(conn: Connection) -> datetime | None:
    """The earliest moment any active post needs attention (leases included)."""
    nxt = conn.execute(
        sa.select(sa.func.min(posts.c.next_action_at)).where(
            sa.or_(posts.c.state.in_(_ACTIVE), posts.c.followup_pending.is_(True)),
            posts.c.lease_until.is_(None),
        )
    ).scalar()
    lease = conn.execute(
        sa.select(sa.func.min(posts.c.lease_until)).where(
            posts.c.state.in_(_ACTIVE), posts.c.lease_until.is_not(None)
        )
    ).scalar()
    candidates = [t for t in (nxt, lease) if t is not None]
    return min(candidates) if candidates else None


@contextmanager
def fenced(conn: Connection, post_id: int, token: str) -> Iterator[PostRecord]:
    """Inside the caller's transaction: proceed only while we still hold the lease."""
    q = sa.select(posts).where(posts.c.id == post_id, posts.c.lease_token == token)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise LeaseLost(f"post {post_id}")
    yield PostRecord.from_row(row)


def update_post(
    conn: Connection, post_id: int, token: str, now: datetime, actor: str,
    event: str | None = None, release: bool = True, move: PostMove | None = None,
    **values: Unpack[PostChanges],
) -> PostRecord:
    """Compare-and-set on the lease token; `move` (a transition of lifecycle.POSTS, checked
    against the post's current state) changes the state, and is recorded as an event."""
    unknown = set(values) - PostChanges.__optional_keys__
    if unknown:  # e.g. `state`: it changes only through a transition
        raise TypeError(f"not a column a step may change: {', '.join(sorted(unknown))}")
    with fenced(conn, post_id, token) as rec:
        row: dict[str, Any] = dict(values)
        row["updated_at"] = now
        if move is not None:
            row["state"] = POSTS.target(move, rec.state, rec.key)
        if "reason" in row and "hold" not in row:
            row["hold"] = None  # a new reason: whatever the post was held for is over
        if release:
            row.update(lease_owner=None, lease_until=None, lease_token=None)
        conn.execute(posts.update().where(posts.c.id == post_id).values(**row))
        new_state = row.get("state", rec.state)
        if new_state != rec.state or event:
            add_event(conn, post_id, now, rec.state, new_state, event, actor)
        return rec


def update_media(conn: Connection, post_id: int, token: str, media_id: int, values: MediaChanges) -> None:
    with fenced(conn, post_id, token):
        conn.execute(post_media.update().where(post_media.c.id == media_id).values(**values))


def reset_containers(conn: Connection, post_id: int, token: str) -> None:
    """Forget every container of a post (expired or unusable): staging starts over."""
    with fenced(conn, post_id, token):
        conn.execute(
            post_media.update().where(post_media.c.post_id == post_id).values(
                container_id=None, container_created_at=None, status_code=None,
                status_checked_at=None, error=None,
            )
        )
        conn.execute(
            posts.update().where(posts.c.id == post_id).values(container_id=None, container_created_at=None)
        )


def renew(conn: Connection, post_id: int, token: str, lease_s: float, now: datetime) -> bool:
    res = conn.execute(
        posts.update()
        .where(posts.c.id == post_id, posts.c.lease_token == token)
        .values(lease_until=now + timedelta(seconds=lease_s))
    )
    return res.rowcount == 1


def release_own_leases(conn: Connection, owner: str, now: datetime) -> int:
    """At start, a daemon takes back what a crashed predecessor of the same identity held:
    the lease ends now, so the normal rules (publishing → verifying) apply at once."""
    res = conn.execute(
        posts.update()
        .where(posts.c.lease_owner == owner, posts.c.lease_until.is_not(None))
        .values(lease_until=now - timedelta(microseconds=1), next_action_at=now)
    )
    return res.rowcount
