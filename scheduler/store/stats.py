"""Read-only figures the staging step learns from: an account's own recent history.

- how long Meta took to process the account's recent containers (to know when to ask first);
- how many containers the account created in the last 24 h (Meta allows 400).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.graph.endpoints import CREATE_CONTAINER
from scheduler.store.schema import api_calls, post_media, posts


def recent_processing_s(conn: Connection, account: str, media_kind: str, limit: int = 20) -> list[float]:
    """Seconds from creation to the FINISHED status check of the account's `limit` most
    recent containers of this media kind, newest first. Each is an upper bound of the real
    processing time: FINISHED is seen only when it is asked for."""
    rows = conn.execute(
        sa.select(post_media.c.container_created_at, post_media.c.status_checked_at)
        .join(posts, posts.c.id == post_media.c.post_id)
        .where(
            posts.c.account == account,
            post_media.c.media_kind == media_kind,
            post_media.c.status_code == "FINISHED",
            post_media.c.container_created_at.is_not(None),
            post_media.c.status_checked_at.is_not(None),
        )
        .order_by(post_media.c.status_checked_at.desc())
        .limit(limit)
    ).all()
    out = []
    for created, checked in rows:
        seconds = (checked - created).total_seconds()
        if seconds >= 0:
            out.append(seconds)
    return out


def containers_created_since(conn: Connection, account: str, since: datetime) -> list[datetime]:
    """When the account's containers were created since `since` (naive UTC), oldest first:
    every successful POST /{ig-user-id}/media in the call history, by any daemon."""
    rows = conn.execute(
        sa.select(api_calls.c.at)
        .where(
            api_calls.c.account == account,
            api_calls.c.endpoint == CREATE_CONTAINER,
            api_calls.c.outcome == "ok",
            api_calls.c.at >= since,
        )
        .order_by(api_calls.c.at)
    ).all()
    return [r[0] for r in rows]
