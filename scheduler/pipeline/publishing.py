"""Publishing at the due time, at most once: quota gate, media_publish, verification.

Every ambiguous outcome (timeout, dropped connection, lost answer, lost lease) goes through
`verifying`, which asks the container before anything else: PUBLISHED means it went live,
FINISHED means it did not (publish again), and no new container is made for a post whose
container may have gone live.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from scheduler.clock import to_aware, utcnow
from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import State, backoff_s, retries_left
from scheduler.pipeline.outcomes import fail, handle_error, move, retry_later
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.pipeline.staging import lateness_note
from scheduler.store import PostRecord

log = logging.getLogger(__name__)


async def ensure_quota_fresh(rt: Runtime, post: PostRecord, token: str, force: bool = False) -> None:
    """Read content_publishing_limit when our copy is older than quota_refresh_s."""
    a = await rt.db(rt.store.account, post.account)
    ig = rt.ig_user_id(post.account)
    if a is None or ig is None:
        return
    fresh = a.quota_checked_at and (utcnow() - a.quota_checked_at).total_seconds() < rt.settings.limits.quota_refresh_s
    if fresh and not force:
        return
    rt.check_pause(post.account)
    lim = await rt.graph.publishing_limit(ig, token)
    await rt.db(rt.store.update_quota, post.account, lim.quota_usage, lim.quota_total, lim.quota_duration)


async def _quota_unknown(rt: Runtime, post: PostRecord) -> bool:
    a = await rt.db(rt.store.account, post.account)
    return a is None or a.quota_total is None


def _quota_recheck_s(rt: Runtime) -> float:
    """How soon a post deferred by publishes still in flight (or by Meta's count, which may
    include them twice) looks again: by then an ambiguous publish has settled."""
    return min(rt.settings.limits.quota_refresh_s, rt.settings.graph.timeout_s + rt.settings.limits.publish_settle_margin_s)


async def publish(rt: Runtime, post: PostRecord, token: str) -> None:
    now = utcnow()
    if now < post.due_at and await rt.db(rt.store.now) < post.due_at:
        # woken early (the database's clock decides: claims use it too, so a host clock that
        # runs behind cannot make this post bounce between claim and wait)
        await move(rt, post, None, next_action_at=post.due_at)
        return
    age_limit = rt.settings.staging.container_max_age_s
    if post.container_id is None or (
        post.container_created_at and (now - post.container_created_at).total_seconds() > age_limit
    ):
        await rt.db(rt.store.reset_containers, post)
        await move(rt, post, "container too old to publish safely; staging again",
                   state=State.PLANNED, next_action_at=now)
        return
    try:
        await ensure_quota_fresh(rt, post, token)
    except (GraphError, Paused) as e:
        if isinstance(e, GraphError) and await _quota_unknown(rt, post) and retries_left(post.attempts + 1, rt.settings.retries):
            # never read yet: the fallback is a guess, and a media_publish over Meta's real
            # quota must never be sent; try the read again shortly (the time matters too:
            # after max_tries the guess is used)
            await move(rt, post, f"publishing quota unknown: {e}; reading it again", attempts=post.attempts + 1,
                       next_action_at=utcnow() + timedelta(seconds=backoff_s(post.attempts + 1, rt.settings.retries)))
            return
        # a stale quota figure is no reason to miss the time; our own count still applies
        log.warning("could not refresh the publishing quota of %s: %s", post.account, e)
    check = await rt.db(rt.store.begin_publish, post, rt.identity, rt.settings.limits.quota_fallback_total,
                        _quota_recheck_s(rt))
    if not check.ok:
        assert check.free_at is not None
        when = "next slot at" if check.exact else "checking again at"
        flying = f", {check.in_flight} publish(es) still being confirmed" if check.in_flight else ""
        await move(rt, post, None, state=State.DEFERRED, publish_started_at=None,
                   reason=f"publishing quota full ({check.used}/{check.total} in the rolling window{flying}); "
                          f"{when} {check.free_at:%Y-%m-%d %H:%M:%S} UTC",
                   next_action_at=check.free_at)
        return
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    current = await rt.db(rt.store.get_by_id, post.id)
    post = current or post  # now in `publishing`, same lease
    assert post.container_id is not None
    try:
        rt.check_pause(post.account)
        media_id = await rt.graph.publish(ig, token, post.container_id)
    except Paused as p:
        await move(rt, post, f"paused: {p.reason}", state=State.DEFERRED, reason=p.reason,
                   next_action_at=p.until, publish_started_at=None)
        return
    except GraphError as e:
        await _publish_failed(rt, post, e, token)
        return
    await _published(rt, post, media_id, utcnow(), "published")


async def _published(rt: Runtime, post: PostRecord, media_id: str | None, at: datetime, event: str) -> None:
    lateness = (at - post.due_at).total_seconds()
    late = await lateness_note(rt, post, lateness)  # e.g. "published 12.3 s late: the video was …"
    reason = late if media_id else f"{late or 'published'}; media id not found"
    # permalink and first comment follow as their own step (followup_pending), claimed after
    # every post that is due to publish: in a burst, publishing goes first
    await move(rt, post, f"{event}; {late}" if late else event, state=State.PUBLISHED,
               media_id=media_id, published_at=at, lateness_s=lateness, reason=reason,
               followup_pending=True, next_action_at=at, attempts=0)
    log.info("published %s (media %s, %.3f s after its time)", post.key, media_id, lateness)


async def _publish_failed(rt: Runtime, post: PostRecord, e: GraphError, token: str) -> None:
    cls = e.error_class
    now = utcnow()
    if cls is ErrorClass.AMBIGUOUS:
        await move(rt, post, f"publish outcome unknown ({e}); verifying", state=State.VERIFYING,
                   reason=f"checking whether the publish went through: {e}", next_action_at=now)
    elif cls is ErrorClass.NOT_READY:
        await move(rt, post, f"{e}; polling the container", state=State.STAGING, reason=str(e),
                   next_action_at=now + timedelta(seconds=rt.settings.staging.poll_min_s))
    elif cls is ErrorClass.QUOTA:
        with contextlib.suppress(GraphError, Paused):
            await ensure_quota_fresh(rt, post, token, force=True)
        await move(rt, post, str(e), state=State.DEFERRED, publish_started_at=None,
                   reason=f"publishing quota reached (Meta): {e}",
                   next_action_at=now + timedelta(seconds=rt.settings.limits.quota_refresh_s))
    elif cls is ErrorClass.RETRY_THEN_RECREATE and post.attempts < 2:
        await move(rt, post, str(e), state=State.READY, attempts=post.attempts + 1, reason=str(e),
                   next_action_at=now + timedelta(seconds=30 * (post.attempts + 1)))
    elif cls in (ErrorClass.RECREATE, ErrorClass.RETRY_THEN_RECREATE):
        # Meta answered with an error: this container did not go live, a new one is safe
        await rt.db(rt.store.reset_containers, post)
        await move(rt, post, f"{e}; creating a new container", state=State.PLANNED, attempts=0,
                   reason=str(e), next_action_at=now)
    elif cls in (ErrorClass.TRANSIENT, ErrorClass.PERMANENT):
        # an error answer is no proof that nothing went live (a 500 after the work was done,
        # "already published" after a lost answer): ask the container before anything else
        status = await _container_status(rt, post, token)
        if status == "PUBLISHED":
            await record_published(rt, post, token, f"the container says PUBLISHED despite the answer ({e})")
        elif status is None or (cls is ErrorClass.TRANSIENT and status != "FINISHED"):
            await move(rt, post, f"{e}; verifying", state=State.VERIFYING,
                       reason=f"checking whether the publish went through: {e}", next_action_at=now)
        elif cls is ErrorClass.TRANSIENT:
            await retry_later(rt, post, e, State.READY)  # not live: the same container again
        else:
            await handle_error(rt, post, e, State.READY)  # fails with Meta's message
    else:
        await handle_error(rt, post, e, State.READY)


async def _container_status(rt: Runtime, post: PostRecord, token: str) -> str | None:
    """The published container's status_code, or None when it cannot be asked now."""
    assert post.container_id is not None
    try:
        rt.check_pause(post.account)
        return (await rt.graph.container_status(post.container_id, token)).status_code
    except (GraphError, Paused) as e:
        log.info("post %s: container %s not asked: %s", post.key, post.container_id, e)
        return None


async def verify(rt: Runtime, post: PostRecord, token: str) -> None:
    """Find out whether an earlier media_publish went through, before anything else."""
    now = utcnow()
    if post.container_id is None:
        await move(rt, post, "nothing was published (no container); staging", state=State.PLANNED,
                   next_action_at=now)
        return
    try:
        rt.check_pause(post.account)
        st = await rt.graph.container_status(post.container_id, token)
    except Paused as p:
        await move(rt, post, None, state=State.VERIFYING, reason=f"verification waits: {p.reason}",
                   next_action_at=p.until)
        return
    except GraphError as e:
        if e.error_class is ErrorClass.AUTH:
            await handle_error(rt, post, e, State.VERIFYING)
            return
        # never a blind republish: keep asking, however long it takes
        attempt = post.attempts + 1
        await move(rt, post, f"verification failed: {e}", state=State.VERIFYING, attempts=attempt,
                   reason=f"cannot verify yet: {e}",
                   next_action_at=now + timedelta(seconds=backoff_s(attempt, rt.settings.retries)))
        return
    code = st.status_code
    if code == "PUBLISHED":
        await record_published(rt, post, token, "verified: the container says PUBLISHED")
    elif code == "FINISHED":
        started = post.publish_started_at or now
        settle = started + timedelta(seconds=rt.settings.graph.timeout_s + rt.settings.limits.publish_settle_margin_s)
        if now < settle:
            # an earlier request may still be in flight at Meta: wait until it cannot be
            await move(rt, post, None, state=State.VERIFYING, reason="waiting for an earlier publish request to settle",
                       next_action_at=settle)
        else:
            await move(rt, post, "verified: the container was not published; publishing again",
                       state=State.READY, reason=None, publish_started_at=None, attempts=0, next_action_at=now)
    elif code == "IN_PROGRESS":
        await move(rt, post, "verified: still processing", state=State.STAGING, next_action_at=now)
    elif code == "EXPIRED":
        await rt.db(rt.store.reset_containers, post)
        await move(rt, post, "verified: not published and expired; staging again", state=State.PLANNED,
                   next_action_at=now)
    else:
        await fail(rt, post, f"Meta could not process the media: {st.status or code}")


async def record_published(rt: Runtime, post: PostRecord, token: str, event: str) -> None:
    """The container went live but we never saw the answer: find the media id (best effort)."""
    media_id = None
    at = post.publish_started_at or utcnow()
    ig = rt.ig_user_id(post.account)
    try:
        assert ig is not None
        rt.check_pause(post.account)
        media_id = await _find_media_id(rt, post, ig, token, at)
    except (GraphError, Paused, AssertionError) as e:
        attempt = post.attempts + 1
        if isinstance(e, GraphError) and retries_left(attempt, rt.settings.retries):
            # live for sure, but a media id is worth another try: verification asks again
            await move(rt, post, f"{event}; media id lookup failed ({e}); trying again", state=State.VERIFYING,
                       attempts=attempt, reason=f"live; looking up its media id after: {e}",
                       next_action_at=utcnow() + timedelta(seconds=backoff_s(attempt, rt.settings.retries)))
            return
        log.warning("post %s is live but its media id could not be looked up: %s", post.key, e)
    await _published(rt, post, media_id, at, event)


async def _find_media_id(rt: Runtime, post: PostRecord, ig: str, token: str, since: datetime) -> str | None:
    """The media that went live from this post: among the account's newest media (stories are
    listed apart, on /stories, and have no caption), the one with the post's caption whose
    time is closest to when publishing started."""
    caption = post.spec.get("caption")
    if post.kind == "story":
        body, _ = await rt.graph.request(
            "GET", f"{ig}/stories", token, params={"fields": "id,timestamp", "limit": "25"},
            endpoint_name="GET /{ig-user-id}/stories", require=("data",))
        data = body.get("data")
        items = [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []
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
