"""Recording a post that went live: its media id (looked up when the answer was lost), its
lateness and why, and the follow-up step (permalink, first comment) it still needs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from scheduler.clock import to_naive_utc
from scheduler.graph.errors import GraphError
from scheduler.lifecycle import PostMove, backoff_s, retries_left
from scheduler.pipeline.liveness import Found, find_media, first_attempt_at
from scheduler.pipeline.outcomes import transition
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostRecord

log = logging.getLogger(__name__)
LATE_NOTE_S = 1.0  # a post published this late (or more) records how late and why
PERMALINK_BATCH_S = 1.0  # a published post's permalink is read this long after it went live


def lateness_note(post: PostRecord, lateness_s: float) -> str | None:
    """For a post published `lateness_s` after its time: how late, and why when staging knows
    (e.g. "published 12.3 s late: the video was still processing at its time")."""
    if post.asap or lateness_s < LATE_NOTE_S:
        return None
    note = f"published {lateness_s:.1f} s late"
    return f"{note}: {post.late_cause}" if post.late_cause else note


async def mark_published(rt: Runtime, post: PostRecord, media_id: str | None, at: datetime, event: str) -> None:
    lateness = (at - post.due_at).total_seconds()
    late = lateness_note(post, lateness)  # e.g. "published 12.3 s late: the video was …"
    reason = late if media_id else f"{late or 'published'}; media id not found"
    # permalink and first comment follow as their own step (followup_pending), claimed after
    # every post that is due to publish: in a burst, publishing goes first. Without a first
    # comment it waits a moment, so that one read of the account's media brings the
    # permalinks of every post of a burst
    later = 0.0 if post.spec.get("first_comment") else PERMALINK_BATCH_S
    await transition(rt, post, PostMove.MARK_PUBLISHED, f"{event}; {late}" if late else event,
                     media_id=media_id, published_at=at, lateness_s=lateness, reason=reason,
                     followup_pending=True, next_action_at=max(at, rt.clock.now()) + timedelta(seconds=later),
                     attempts=0)
    rt.published(post, lateness)
    log.info("published %s (media %s, %.3f s after its time)", post.key, media_id, lateness)


async def record_published(rt: Runtime, post: PostRecord, token: str, event: str,
                           found: Found | None = None) -> None:
    """The post went live but we never saw the answer: find its media id on the account's
    media, paged back to the first attempt (best effort: a burst of any size is covered)."""
    at = post.publish_started_at or rt.clock.now()
    try:
        if found is None:
            since = await first_attempt_at(rt, post) or post.container_created_at or at
            found = await find_media(rt, post, token, since)
    except (GraphError, Paused) as e:
        attempt = post.attempts + 1
        if isinstance(e, GraphError) and retries_left(attempt, rt.settings.retries):
            # live for sure, but a media id is worth another try: verification asks again
            await transition(rt, post, PostMove.TO_VERIFYING, f"{event}; media id lookup failed ({e}); trying again",
                             attempts=attempt, reason=f"live; looking up its media id after: {e}",
                             next_action_at=rt.clock.now() + timedelta(seconds=backoff_s(attempt, rt.settings.retries)))
            return
        log.warning("post %s is live but its media id could not be looked up: %s", post.key, e)
    if found is not None and found.at is not None and to_naive_utc(found.at) < at - timedelta(seconds=1):
        at = to_naive_utc(found.at)  # an earlier attempt is the one that went live
    await mark_published(rt, post, found.media_id if found else None, at, event)
