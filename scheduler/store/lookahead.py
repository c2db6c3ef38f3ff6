"""When anything next needs the daemon: one statement, read without taking the write lock.

The daemon asks at every tick. While nothing is due the answer is all it needs: the claim
(a write transaction) is then skipped, and so are the action duty's and the rules' own looks.
Each part reads an index entry or a few.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.store.actions import CLAIMABLE
from scheduler.store.claims import first_due_sql
from scheduler.store.schema import actions
from scheduler.store.webhook_schema import events, waiting_actions


@dataclass(frozen=True)
class NextTimes:
    posts: datetime | None  # the first post due, or lease to run out
    actions: datetime | None  # the same for engagement actions
    events_waiting: bool  # webhook events not yet handled, or rule actions waiting for others

    @property
    def earliest(self) -> datetime | None:
        times = [t for t in (self.posts, self.actions) if t is not None]
        return min(times) if times else None


@functools.cache
def next_times_statement(dialect: str) -> sa.Select[*tuple[Any, ...]]:
    lanes = [sa.literal_column(sql, sa.DateTime).label(f"p{i}") for i, sql in enumerate(first_due_sql(dialect))]
    claimable = actions.c.state.in_(CLAIMABLE)
    action_next = sa.select(sa.func.min(actions.c.next_action_at)).where(
        claimable, actions.c.lease_until.is_(None)).scalar_subquery()
    action_lease = sa.select(sa.func.min(actions.c.lease_until)).where(
        claimable, actions.c.lease_until.is_not(None)).scalar_subquery()
    unhandled = sa.exists(sa.select(events.c.id).where(events.c.handled_at.is_(None)))
    waiting = sa.exists(sa.select(waiting_actions.c.event_id))
    return sa.select(*lanes, action_next.label("a0"), action_lease.label("a1"),
                     sa.or_(unhandled, waiting).label("ev"))


def next_times(conn: Connection) -> NextTimes:
    row: tuple[Any, ...] = tuple(conn.execute(next_times_statement(conn.dialect.name)).one())
    posts: list[datetime] = [t for t in row[:3] if t is not None]
    acts: list[datetime] = [t for t in row[3:5] if t is not None]
    return NextTimes(min(posts) if posts else None, min(acts) if acts else None, bool(row[5]))
