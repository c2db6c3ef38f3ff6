"""Recording a post that went live: its media id (looked up when the answer was lost), its
lateness and why, and the follow-up step (permalink, first comment) it still needs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from scheduler.clock import to_aware
from scheduler.graph.errors import GraphError
from scheduler.lifecycle import PostMove, backoff_s, retries_left
from scheduler.pipeline.outcomes import transition
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostRecord

log = logging.getLogger(__name__)
LATE_NOTE_S = 1.0  # a post published this late (or more) records how late and why


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
    # every post that is due to publish: in a burst, publishing goes first
    await transition(rt, post, PostMove.MARK_PUBLISHED, f"{event}; {late}" if late else event,
                     media_id=media_id, published_at=at, lateness_s=lateness, reason=reason,
                     followup_pending=True, next_action_at=at, attempts=0)
    rt.published(post, lateness)
    log.info("published %s (media %s, %.3f s after its time)", post.key, media_id, lateness)


async def record_published(rt: Runtime, post: PostRecord, token: str, event: str) -> None:
    """The container went live but we never saw the answer: find the media id (best effort)."""
    media_id = None
    at = post.publish_started_at or rt.clock.now()
    ig = rt.ig_user_id(post.account)
    try:
        assert ig is not None
        media_id = await _find_media_id(rt, post, ig, token, at)
    except (GraphError, Paused, AssertionError) as e:
        attempt = post.attempts + 1
        if isinstance(e, GraphError) and retries_left(attempt, rt.settings.retries):
            # live for sure, but a media id is worth another try: verification asks again
            await transition(rt, post, PostMove.TO_VERIFYING, f"{event}; media id lookup failed ({e}); trying again",
                             attempts=attempt, reason=f"live; looking up its media id after: {e}",
                             next_action_at=rt.clock.now() + timedelta(seconds=backoff_s(attempt, rt.settings.retries)))
            return
        log.warning("post %s is live but its media id could not be looked up: %s", post.key, e)
    await mark_published(rt, post, media_id, at, event)


async def _find_media_id(rt: Runtime, post: PostRecord, ig: str, token: str, since: datetime) -> str | None:
    """The media that went live from this post: among the account's newest media (stories are
    listed apart, on /stories, and have no caption), the one with the post's caption whose
    time is closest to when publishing started."""
    caption = post.spec.get("caption")
    if post.kind == "story":
        items = await rt.graph.stories(ig, token, limit=25, fields=("id", "timestamp"))
        caption = None
    else:
        items = await rt.graph.recent_media(ig, token, limit=25, fields=("id", "caption", "timestamp"))
    started = to_aware(since)
    lower = started - timedelta(minutes=5)
    best: tuple[float, str] | None = None
    for item in items:
        ts = item.get("timestamp")
        try:
            when = datetime.fromisoformat(str(ts).replace("+0000", "+00:00"))
        except ValueError:
            continue
        if when >= lower and (item.get("caption") or None) == (caption or None) and item.get("id"):
            distance = abs((when - started).total_seconds())
            if best is None or distance < best[0]:
                best = (distance, str(item["id"]))
    return best[1] if best else None
