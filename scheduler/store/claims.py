"""Claims and leases: which daemon works which post, fenced by a lease token.

A claim is one short transaction committed before any API call. Finishing a step is a
compare-and-set on the token, so a worker that lost its lease (reaped, cancelled, edited)
changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.lifecycle import ACTIVE, POSTS, PostMove, State
from scheduler.store.posts import add_event
from scheduler.store.records import MediaChanges, PostChanges, PostRecord
from scheduler.store.schema import (
    LANE_OTHER,
    LANE_OTHER_STATES,
    LANE_PUBLISHING,
    LANE_PUBLISHING_STATES,
    LEASED,
    post_events,
    post_media,
    posts,
)

_ACTIVE = [s.value for s in ACTIVE]
_PUBLISHING = [s.value for s in (State.READY, State.DEFERRED, State.PUBLISHING, State.VERIFYING)]


class LeaseLost(Exception):
    """The post is no longer ours: another worker, the user or a re-import took it."""


# the lanes must cover every active state, each once (schema.py holds them as SQL text)
assert set(LANE_PUBLISHING_STATES) == set(_PUBLISHING)
assert set(LANE_PUBLISHING_STATES) | set(LANE_OTHER_STATES) == set(_ACTIVE)
assert not set(LANE_PUBLISHING_STATES) & set(LANE_OTHER_STATES)
# SQLite's planner, without statistics, prefers ix_posts_state_next and sorts; INDEXED BY
# makes it take the lane's index (and fail loudly, rather than sort, if it ever could not).
# SQLAlchemy renders no index hints for SQLite, hence statements written out.
_LANE_INDEX = {LANE_PUBLISHING: "ix_posts_claim_publishing", LANE_OTHER: "ix_posts_claim_other"}
_TIMES = (sa.bindparam("now", type_=sa.DateTime), sa.bindparam("n", type_=sa.Integer))


def _indexed_by(conn: Connection, index: str) -> str:
    return f" INDEXED BY {index}" if conn.dialect.name == "sqlite" else ""


def lane_pick(conn: Connection, lane: str) -> sa.TextClause:
    """The ids of up to :n due, unleased posts of one lane, earliest first: a range of the
    lane's partial index, read in its order, stopping after :n (leased rows in the range are
    skipped; there are at most as many as posts being worked). SKIP LOCKED on PostgreSQL."""
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    return sa.text(
        f"SELECT id FROM posts{_indexed_by(conn, _LANE_INDEX[lane])} WHERE {lane} AND next_action_at <= :now "
        f"AND (lease_until IS NULL OR lease_until < :now) ORDER BY next_action_at LIMIT :n{lock}"
    ).bindparams(*_TIMES)


def claim_due(conn: Connection, owner: str, lease_s: float, now: datetime, limit: int) -> list[PostRecord]:
    """Lease up to `limit` due posts: publishing work first (the due time cannot wait; polls
    and staging can wait a moment), each lane earliest first. One query per lane, each served
    by the lane's index. SKIP LOCKED on PostgreSQL; on SQLite the surrounding BEGIN IMMEDIATE
    already serialises claimers."""
    ids: list[int] = []
    for lane in (LANE_PUBLISHING, LANE_OTHER):
        if len(ids) >= limit:
            break
        ids += conn.execute(lane_pick(conn, lane), {"now": now, "n": limit - len(ids)}).scalars().all()
    if not ids:
        return []
    token = uuid.uuid4().hex
    rows = conn.execute(
        posts.update()
        .where(posts.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), lease_token=token)
        .returning(*posts.c)
    ).all()
    return sorted((PostRecord.from_row(r) for r in rows), key=claim_order)


_FIRST = frozenset(_PUBLISHING)


def claim_order(post: PostRecord) -> tuple[bool, datetime]:
    """The order claimed posts are worked in: publishing work first, then the earliest."""
    return (post.state not in _FIRST, post.next_action_at)


def first_due_sql(dialect: str) -> tuple[str, str, str]:
    """Three scalar subqueries: the first unleased post of each lane, and the first lease to
    run out (lookahead.py reads them with the actions' times in one statement)."""
    def hint(index: str) -> str:
        return f" INDEXED BY {index}" if dialect == "sqlite" else ""

    def first(lane: str) -> str:
        return (f"(SELECT next_action_at FROM posts{hint(_LANE_INDEX[lane])} WHERE {lane} "
                "AND lease_until IS NULL ORDER BY next_action_at LIMIT 1)")

    lease = f"(SELECT lease_until FROM posts{hint('ix_posts_lease')} WHERE {LEASED} ORDER BY lease_until LIMIT 1)"
    return first(LANE_PUBLISHING), first(LANE_OTHER), lease


# Built once: the post's hot path (every step's writes) then pays for executing them, not for
# building and keying a statement each time (a burst of 1,000 publishes spent more time there
# than in SQLite).
_FENCE = sa.select(posts).where(posts.c.id == sa.bindparam("pid"), posts.c.lease_token == sa.bindparam("tok"))
_FENCE_LOCK = _FENCE.with_for_update()
_HOLDER = sa.select(posts.c.state, posts.c.key).where(
    posts.c.id == sa.bindparam("pid"), posts.c.lease_token == sa.bindparam("tok"))
_EVENT_COLUMNS = ("post_id", "at", "from_state", "to_state", "reason", "actor")
_EVENT_VALUES = (sa.bindparam("ev_at", type_=sa.DateTime), sa.bindparam("ev_from", type_=sa.String),
                 sa.bindparam("ev_to", type_=sa.String), sa.bindparam("ev_reason", type_=sa.String),
                 sa.bindparam("ev_actor", type_=sa.String))
_SET_AS_SEEN: dict[tuple[str, tuple[str, ...], bool], sa.Executable] = {}


def _set_clause(table: sa.Table, keys: tuple[str, ...]) -> dict[str, sa.BindParameter[Any]]:
    """SET for the columns `keys`, bound as v_<column> (apart from the WHERE's parameters)."""
    return {k: sa.bindparam(f"v_{k}", type_=table.c[k].type) for k in keys}


def _set_params(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{k}": v for k, v in values.items()}


def _set_as_seen(dialect: str, keys: tuple[str, ...], with_event: bool) -> sa.Executable:
    """The compare-and-set of update_post: UPDATE … WHERE id, lease token and state as seen,
    RETURNING the row. On PostgreSQL with its event in the same statement (a data-modifying
    CTE inserts the event for the row it changed, none when it changed none): one round trip
    for a transition, and atomic alone, so it needs no transaction around it. Built once per
    set of columns."""
    key = (dialect, keys, with_event)
    stmt = _SET_AS_SEEN.get(key)
    if stmt is None:
        update = posts.update().where(
            posts.c.id == sa.bindparam("pid"), posts.c.lease_token == sa.bindparam("tok"),
            posts.c.state == sa.bindparam("seen"),
        ).values(_set_clause(posts, keys)).returning(*posts.c)
        if with_event and dialect == "postgresql":
            moved = update.cte("moved")
            event = post_events.insert().from_select(
                list(_EVENT_COLUMNS), sa.select(moved.c.id, *_EVENT_VALUES)).cte("event")
            stmt = sa.select(moved).add_cte(event)
        else:
            stmt = update
        _SET_AS_SEEN[key] = stmt
    return stmt


@contextmanager
def fenced(conn: Connection, post_id: int, token: str) -> Iterator[PostRecord]:
    """Inside the caller's transaction: proceed only while we still hold the lease."""
    q = _FENCE_LOCK if conn.dialect.name == "postgresql" else _FENCE
    row = conn.execute(q, {"pid": post_id, "tok": token}).first()
    if row is None:
        raise LeaseLost(f"post {post_id}")
    yield PostRecord.from_row(row)


def update_post(
    conn: Connection, post_id: int, token: str, now: datetime, actor: str,
    event: str | None = None, release: bool = True, move: PostMove | None = None,
    expected: str | None = None, **values: Unpack[PostChanges],
) -> PostRecord:
    """Compare-and-set on the lease token and the state; `move` (a transition of
    lifecycle.POSTS, checked against the post's current state) changes the state, and is
    recorded as an event. Returns the post as it is afterwards.

    `expected`: the state the caller last saw. The usual case, where it is still the state,
    takes one UPDATE (on PostgreSQL the event rides in it); otherwise (or when the table
    refuses the move from it) the state is read, LeaseLost or TransitionNotAllowed tell what
    changed, and the compare-and-set is made against the state read. Every statement is
    atomic on its own: no transaction is needed around it (`OneByOne`)."""
    unknown = set(values) - PostChanges.__optional_keys__
    if unknown:  # e.g. `state`: it changes only through a transition
        raise TypeError(f"not a column a step may change: {', '.join(sorted(unknown))}")
    row: dict[str, Any] = dict(values)
    row["updated_at"] = now
    if "reason" in row and "hold" not in row:
        row["hold"] = None  # a new reason: whatever the post was held for is over
    if release:
        row.update(lease_owner=None, lease_until=None, lease_token=None)
    seen, ident = expected, "?"
    for _ in range(3):  # the lease is ours: the state changes under us only by our own hand
        if seen is None or (move is not None and not POSTS.allows(move, seen)):
            held = conn.execute(_HOLDER, {"pid": post_id, "tok": token}).first()
            if held is None:
                raise LeaseLost(f"post {post_id}")
            seen, ident = held.state, held.key
        new_state = POSTS.target(move, seen, ident) if move is not None else seen
        values_now = {**row, "state": new_state} if move is not None else row
        with_event = new_state != seen or event is not None
        stmt = _set_as_seen(conn.dialect.name, tuple(sorted(values_now)), with_event)
        params = {"pid": post_id, "tok": token, "seen": seen, **_set_params(values_now)}
        if with_event:
            params.update(ev_at=now, ev_from=seen, ev_to=new_state, ev_reason=event, ev_actor=actor)
        done = conn.execute(stmt, params).first()
        if done is not None:
            if with_event and conn.dialect.name != "postgresql":
                add_event(conn, post_id, now, seen, new_state, event, actor)
            return PostRecord.from_row(done)
        seen = None
    raise LeaseLost(f"post {post_id}")


_UPDATE_MEDIA: dict[tuple[str, tuple[str, ...]], sa.Executable] = {}


def update_media(conn: Connection, post_id: int, token: str, media_id: int, values: MediaChanges) -> None:
    """One media row of a post we hold: one statement, fenced by the lease token in it (on
    PostgreSQL with the post's row locked for the statement, as a claim would lock it)."""
    keys = tuple(sorted(values))
    stmt = _UPDATE_MEDIA.get((conn.dialect.name, keys))
    if stmt is None:
        held = _FENCE.with_only_columns(posts.c.id)
        if conn.dialect.name == "postgresql":
            held = held.with_for_update()
        stmt = post_media.update().where(
            post_media.c.id == sa.bindparam("mid"), post_media.c.post_id.in_(held),
        ).values(_set_clause(post_media, keys))
        _UPDATE_MEDIA[(conn.dialect.name, keys)] = stmt
    done = conn.execute(stmt, {"mid": media_id, "pid": post_id, "tok": token, **_set_params(values)})
    if done.rowcount != 1:
        raise LeaseLost(f"post {post_id}")


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
