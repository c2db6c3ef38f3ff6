"""Queue side of the store: import specs, list, show, cancel, retry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.clock import to_naive_utc
from scheduler.config import LeadSettings
from scheduler.lifecycle import ACTIVE, EDITABLE, FINISHED, POSTS, PostMove, State, stage_at
from scheduler.models import PostSpec
from scheduler.store.records import EnqueueReport, MediaRecord, PostRecord
from scheduler.store.schema import post_events, post_media, posts


def _lock(conn: Connection, stmt: sa.Select) -> sa.Select:
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def add_event(
    conn: Connection, post_id: int, at: datetime, from_state: str | None, to_state: str,
    reason: str | None, actor: str | None,
) -> None:
    conn.execute(_INSERT_EVENT, {"post_id": post_id, "at": at, "from_state": from_state, "to_state": to_state,
                                 "reason": reason, "actor": actor})


_INSERT_EVENT = post_events.insert()  # built once: every step records an event


def _media_rows(post_id: int, spec: PostSpec) -> list[dict[str, object]]:
    if spec.kind == "carousel":
        return [
            {"post_id": post_id, "position": i, "media_kind": m.kind, "source": m.source}
            for i, m in enumerate(spec.media, start=1)
        ]
    m = spec.media[0]
    return [{"post_id": post_id, "position": 0, "media_kind": m.kind, "source": m.source}]


def _plan_values(spec: PostSpec, now: datetime, skip_check: LeadSettings | None = None) -> dict[str, object]:
    """A post's planned columns. `skip_check` (the lead times), when the media check is off:
    a post with nothing local to look at needs no step to learn that, so it is planned
    straight for its staging time; one with a local file still takes the check step (it
    knows whether the configured API can take an upload)."""
    due = to_naive_utc(spec.at) if spec.at is not None else now
    skip = skip_check is not None and not any(m.is_local for m in spec.media)
    return {
        "account": spec.account,
        "kind": spec.kind,
        "spec": spec.content(),
        "spec_hash": spec.content_hash(),
        "due_at": due,
        "asap": spec.at is None,
        "state": State.PLANNED.value,
        "reason": None,
        "preflight": "skipped" if skip else None,
        # the media check runs at once; staging at its lead time
        "next_action_at": max(now, stage_at(due, spec.kind, skip_check)) if skip_check is not None and skip else now,
        "attempts": 0,
        "lease_owner": None,
        "lease_until": None,
        "lease_token": None,
        "container_id": None,
        "container_created_at": None,
        "publish_started_at": None,
        "late_cause": None,
        "hold": None,
        "followup_pending": False,
        "comment_state": "pending" if spec.first_comment else None,
        "comment_id": None,
        "comment_error": None,
        "source_file": spec.source_file,
        "updated_at": now,
    }


ENQUEUE_CHUNK = 500  # keys looked up (and rows inserted) per statement


def enqueue(conn: Connection, specs: Sequence[PostSpec], now: datetime, actor: str,
            skip_check: LeadSettings | None = None) -> EnqueueReport:
    """Import validated specs in the caller's transaction: new, updated, unchanged or kept.
    Existing posts are looked up and new ones inserted in chunks, not one by one, so a queue
    of 100,000 posts goes in within seconds."""
    report = EnqueueReport([], [], [], [])
    existing: dict[str, Any] = {}
    keys = list(dict.fromkeys(s.key for s in specs))
    for i in range(0, len(keys), ENQUEUE_CHUNK):
        chunk = keys[i:i + ENQUEUE_CHUNK]
        existing.update({r.key: r for r in conn.execute(_lock(conn, sa.select(posts).where(posts.c.key.in_(chunk))))})
    new: dict[str, tuple[PostSpec, dict[str, object]]] = {}
    for spec in specs:
        values = _plan_values(spec, now, skip_check)
        if spec.key in new:  # the same key twice in one import: the last one counts
            if new[spec.key][1]["spec_hash"] == values["spec_hash"]:
                report.unchanged.append(spec.key)
            else:
                new[spec.key] = (spec, values)
                report.updated.append(spec.key)
            continue
        row = existing.get(spec.key)
        if row is None:
            new[spec.key] = (spec, values)
            report.new.append(spec.key)
            continue
        _reimport(conn, PostRecord.from_row(row), spec, values, now, actor, report)
    _insert_new(conn, list(new.values()), now, actor)
    return report


def _insert_new(conn: Connection, new: list[tuple[PostSpec, dict[str, object]]], now: datetime, actor: str) -> None:
    for i in range(0, len(new), ENQUEUE_CHUNK):
        chunk = new[i:i + ENQUEUE_CHUNK]
        conn.execute(posts.insert(), [{"key": spec.key, "created_at": now, **values} for spec, values in chunk])
        # keys are unique: one lookup per chunk (RETURNING over many rows goes row by row on SQLite)
        by_key = {key: pid for key, pid in conn.execute(sa.select(posts.c.key, posts.c.id).where(
            posts.c.key.in_([spec.key for spec, _ in chunk])))}
        ids = [by_key[spec.key] for spec, _ in chunk]
        conn.execute(post_media.insert(), [m for (spec, _), pid in zip(chunk, ids, strict=True)
                                           for m in _media_rows(pid, spec)])
        conn.execute(post_events.insert(), [
            {"post_id": pid, "at": now, "from_state": None, "to_state": State.PLANNED.value,
             "reason": f"enqueued from {spec.source_file}", "actor": actor}
            for (spec, _), pid in zip(chunk, ids, strict=True)
        ])


def _reimport(conn: Connection, rec: PostRecord, spec: PostSpec, values: dict[str, object], now: datetime,
              actor: str, report: EnqueueReport) -> None:
    if rec.account != spec.account and rec.state != State.PLANNED:
        # its containers belong to the other account: moving it would publish them there
        raise NotAllowed(
            f"key {spec.key} belongs to a post of account {rec.account} that is already "
            f"{rec.state}; it cannot move to account {spec.account} (use another key)",
            source=(spec.source_file or "-", spec.key),
        )
    if rec.spec_hash == values["spec_hash"]:
        report.unchanged.append(spec.key)
    elif rec.state not in EDITABLE:
        what = "already published" if rec.state == State.PUBLISHED else f"already {rec.state}"
        report.kept.append((spec.key, f"{what}; a re-import never changes it"))
    else:
        # containers of the old version are abandoned; Meta expires them after 24 h
        values["state"] = POSTS.target(PostMove.REPLAN, rec.state, rec.key)
        conn.execute(posts.update().where(posts.c.id == rec.id).values(**values))
        conn.execute(post_media.delete().where(post_media.c.post_id == rec.id))
        conn.execute(post_media.insert(), _media_rows(rec.id, spec))
        add_event(conn, rec.id, now, rec.state, State.PLANNED, f"updated from {spec.source_file}", actor)
        report.updated.append(spec.key)


def get_post(conn: Connection, key: str) -> PostRecord | None:
    row = conn.execute(sa.select(posts).where(posts.c.key == key)).first()
    return PostRecord.from_row(row) if row else None


def get_post_by_id(conn: Connection, post_id: int) -> PostRecord | None:
    row = conn.execute(sa.select(posts).where(posts.c.id == post_id)).first()
    return PostRecord.from_row(row) if row else None


def media_of(conn: Connection, post_id: int) -> list[MediaRecord]:
    rows = conn.execute(
        sa.select(post_media).where(post_media.c.post_id == post_id).order_by(post_media.c.position)
    )
    return [MediaRecord.from_row(r) for r in rows]


def list_posts(
    conn: Connection, states: Iterable[str], account: str | None = None,
    since: datetime | None = None, newest_first: bool = False, limit: int | None = None,
) -> list[PostRecord]:
    q = sa.select(posts).where(posts.c.state.in_(list(states)))
    if account:
        q = q.where(posts.c.account == account)
    if since is not None:
        q = q.where(posts.c.updated_at >= since)
    if newest_first:
        q = q.order_by(posts.c.updated_at.desc(), posts.c.id.desc())
    else:
        q = q.order_by(posts.c.due_at, posts.c.id)
    if limit:
        q = q.limit(limit)
    return [PostRecord.from_row(r) for r in conn.execute(q)]


def events_of(conn: Connection, post_id: int) -> list[dict[str, object]]:
    rows = conn.execute(
        sa.select(post_events).where(post_events.c.post_id == post_id).order_by(post_events.c.id)
    )
    return [dict(r._mapping) for r in rows]


class PostNotFound(Exception):
    pass


class NotAllowed(Exception):
    """A change the rules refuse. `source`: the queue file, and the post's key in it, that
    asked for it (an import), so the message can name where to fix it."""

    def __init__(self, message: str, source: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.source = source


def cancel(conn: Connection, key: str, now: datetime, actor: str) -> PostRecord:
    row = conn.execute(_lock(conn, sa.select(posts).where(posts.c.key == key))).first()
    if row is None:
        raise PostNotFound(key)
    rec = PostRecord.from_row(row)
    if rec.state in (State.PUBLISHING, State.VERIFYING):
        raise NotAllowed(f"post {key} is being published right now; it cannot be cancelled")
    if rec.state in FINISHED:
        raise NotAllowed(f"post {key} is already {rec.state}")
    # clearing the lease token fences out a worker that holds the post now
    conn.execute(
        posts.update().where(posts.c.id == rec.id).values(
            state=POSTS.target(PostMove.CANCEL, rec.state, rec.key), reason="cancelled by the user", lease_owner=None,
            lease_until=None, lease_token=None, updated_at=now,
        )
    )
    add_event(conn, rec.id, now, rec.state, State.CANCELLED, "cancelled by the user", actor)
    return rec


def retry(conn: Connection, key: str, now: datetime, lead: LeadSettings, actor: str) -> PostRecord:
    """Plan a failed or cancelled post again (a deferred or waiting one: try it now)."""
    row = conn.execute(_lock(conn, sa.select(posts).where(posts.c.key == key))).first()
    if row is None:
        raise PostNotFound(key)
    rec = PostRecord.from_row(row)
    if rec.state == State.PUBLISHED:
        raise NotAllowed(f"post {key} is already published (media {rec.media_id}); it is never published twice")
    if rec.state in (State.FAILED, State.CANCELLED):
        spec = rec.post_spec()
        values = _plan_values(spec, now)
        values["due_at"] = max(rec.due_at, now)
        values["next_action_at"] = max(now, stage_at(values["due_at"], rec.kind, lead))  # type: ignore[arg-type]
        values["comment_state"] = rec.comment_state
        values["state"] = POSTS.target(PostMove.RETRY, rec.state, rec.key)
        conn.execute(posts.update().where(posts.c.id == rec.id).values(**values))
        conn.execute(
            post_media.update().where(post_media.c.post_id == rec.id).values(
                container_id=None, container_created_at=None, status_code=None, error=None
            )
        )
        add_event(conn, rec.id, now, rec.state, State.PLANNED, "retry requested by the user", actor)
    elif rec.state in ACTIVE:
        conn.execute(
            posts.update().where(posts.c.id == rec.id).values(next_action_at=now, attempts=0, updated_at=now)
        )
        add_event(conn, rec.id, now, rec.state, rec.state, "retry requested: try now", actor)
    return rec
