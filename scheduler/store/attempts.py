"""What the pipeline asks before it repeats a publish or reads permalinks in bulk: when a post
was sent to `media_publish`, which media ids other posts of the account already own, and the
permalinks found for many posts at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.lifecycle import State
from scheduler.store.schema import post_events, posts


def publish_attempt_times(conn: Connection, post_id: int) -> list[datetime]:
    """When each media_publish of the post began (its moves to `publishing`), oldest first."""
    rows = conn.execute(
        sa.select(post_events.c.at)
        .where(post_events.c.post_id == post_id, post_events.c.to_state == State.PUBLISHING.value,
               sa.or_(post_events.c.from_state.is_(None), post_events.c.from_state != State.PUBLISHING.value))
        .order_by(post_events.c.id)
    )
    return [r[0] for r in rows]


def media_ids_owned(conn: Connection, account: str, since: datetime, exclude_post: int) -> set[str]:
    """Media ids of the account's other posts published since `since`: a media found on the
    account's list that one of them owns is not this post's."""
    rows = conn.execute(
        sa.select(posts.c.media_id).where(
            posts.c.account == account, posts.c.media_id.is_not(None), posts.c.id != exclude_post,
            posts.c.published_at >= since,
        )
    )
    return {str(r[0]) for r in rows}


def set_permalinks(conn: Connection, account: str, found: Mapping[str, str], now: datetime) -> int:
    """Fill the permalink of the account's published posts whose media id is in `found`
    (never overwriting one). A column written once and never read for a decision, so no lease
    is needed: the post's own follow-up finds it set and makes no call. A post with no first
    comment to post then has nothing left to follow up, so its follow-up is marked done here
    too: it is not claimed only to find that out (a claim, a lease and a release a post, in
    a burst). One whose follow-up is already under way finishes it as before. What such a
    post no longer does is its own look at the account's publishing quota, which the
    follow-up that made this read took just before (a look that failed is tried again
    after the account's next publish, not by these posts)."""
    if not found:
        return 0
    # one executemany: a statement per row cost more in Python than in the database
    res = conn.execute(_SET_PERMALINK, [{"acct": account, "mid": media_id, "permalink": permalink, "updated_at": now}
                                        for media_id, permalink in found.items()])
    return res.rowcount or 0


# Built once: a burst sets hundreds. No test of the state: only the move to `published` sets a
# media id, and that state is final. With it, statistics taken before the burst (when no post
# was published yet) had PostgreSQL walk every published post by the state index for each row.
_SET_PERMALINK = posts.update().where(
    posts.c.account == sa.bindparam("acct"), posts.c.media_id == sa.bindparam("mid"),
    posts.c.permalink.is_(None)).values(
    # what followup.py tests: a first comment still to post keeps the follow-up
    followup_pending=sa.and_(posts.c.followup_pending, posts.c.comment_state.is_not_distinct_from("pending")))
