"""Publishing at the due time, at most once: quota gate, media_publish, verification.

Every ambiguous outcome (timeout, dropped connection, lost answer, lost lease) goes through
`verifying`, which asks the container before anything else: PUBLISHED means it went live,
FINISHED means it did not (publish again), and no new container is made for a post whose
container may have gone live.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from scheduler.graph.client import ContainerStatus
from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import PostMove, backoff_s, retries_left
from scheduler.pipeline.failed_containers import container_failed
from scheduler.pipeline.liveness import check_live, find_media, first_attempt_at
from scheduler.pipeline.outcomes import fail, handle_error, retry_later, transition, update
from scheduler.pipeline.published import mark_published, record_published
from scheduler.pipeline.quota import ensure_quota_fresh, quota_before_publish, recheck_s
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostRecord

log = logging.getLogger(__name__)


async def _quota_unknown(rt: Runtime, post: PostRecord) -> bool:
    a = await rt.db(rt.store.account, post.account)
    return a is None or a.quota_total is None


async def publish(rt: Runtime, post: PostRecord, token: str) -> None:
    now = rt.clock.now()
    if now < post.due_at and await rt.db(rt.store.now) < post.due_at:
        # woken early (the database's clock decides: claims use it too, so a host clock that
        # runs behind cannot make this post bounce between claim and wait)
        await update(rt, post, None, next_action_at=post.due_at)
        return
    age_limit = rt.settings.staging.container_max_age_s
    if post.container_id is None or (
        post.container_created_at and (now - post.container_created_at).total_seconds() > age_limit
    ):
        await rt.db(rt.store.reset_containers, post)
        await transition(rt, post, PostMove.TO_PLANNED, "container too old to publish safely; staging again",
                         next_action_at=now)
        return
    try:
        await quota_before_publish(rt, post, token)
    except (GraphError, Paused) as e:
        if isinstance(e, GraphError) and await _quota_unknown(rt, post) and retries_left(post.attempts + 1, rt.settings.retries):
            # never read yet: the fallback is a guess, and a media_publish over Meta's real
            # quota must never be sent; try the read again shortly (the time matters too:
            # after max_tries the guess is used)
            await update(rt, post, f"publishing quota unknown: {e}; reading it again", attempts=post.attempts + 1,
                         next_action_at=rt.clock.now() + timedelta(seconds=backoff_s(post.attempts + 1, rt.settings.retries)))
            return
        # a stale quota figure is no reason to miss the time; our own count still applies
        log.warning("could not refresh the publishing quota of %s: %s", post.account, e)
    check = await rt.db(rt.store.begin_publish, post, rt.identity, rt.settings.limits.quota_fallback_total,
                        recheck_s(rt))
    rt.quota.note(post.account, check.used, check.total)
    if not check.ok:
        assert check.free_at is not None
        when = "next slot at" if check.exact else "checking again at"
        flying = f", {check.in_flight} publish(es) still being confirmed" if check.in_flight else ""
        await transition(rt, post, PostMove.TO_DEFERRED, None, publish_started_at=None,
                         reason=f"publishing quota full ({check.used}/{check.total} in the rolling window{flying}); "
                                f"{when} {check.free_at:%Y-%m-%d %H:%M:%S} UTC",
                         next_action_at=check.free_at)
        return
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    post = check.post or post  # now in `publishing`, same lease
    assert post.container_id is not None
    try:
        media_id = await rt.graph.publish(ig, token, post.container_id)
    except Paused as p:
        await transition(rt, post, PostMove.TO_DEFERRED, f"paused: {p.reason}", reason=p.reason,
                         next_action_at=p.until, publish_started_at=None)
        return
    except GraphError as e:
        await _publish_failed(rt, post, e, token)
        return
    await mark_published(rt, post, media_id, rt.clock.now(), "published")


# Answers that refuse the request itself (nothing was done): proof that *this* attempt did not
# go live. They prove nothing about an earlier attempt of the same post: "creation id expired"
# or "not found" is also what Meta may answer for a container an earlier attempt published.
_REFUSALS = frozenset({
    ErrorClass.NOT_READY, ErrorClass.QUOTA, ErrorClass.RECREATE, ErrorClass.RETRY_THEN_RECREATE,
    ErrorClass.THROTTLED, ErrorClass.APP_THROTTLED, ErrorClass.POLICY_BLOCKED, ErrorClass.AUTH,
    ErrorClass.ACCOUNT_RESTRICTED, ErrorClass.SPAM,
})


async def _publish_failed(rt: Runtime, post: PostRecord, e: GraphError, token: str) -> None:
    """An answer to media_publish that is not a media id. Nothing is repeated and no new
    container is made until every attempt of the post is proven not live (liveness.py)."""
    now = rt.clock.now()
    if e.error_class is ErrorClass.AMBIGUOUS:
        await transition(rt, post, PostMove.TO_VERIFYING, f"publish outcome unknown ({e}); verifying",
                         reason=f"checking whether the publish went through: {e}", next_action_at=now)
        return
    attempts = await rt.db(rt.store.publish_attempt_times, post.id)
    status: ContainerStatus | None = None
    if e.error_class not in _REFUSALS or len(attempts) > 1:
        try:
            live = await check_live(rt, post, token)
        except (GraphError, Paused) as x:
            log.info("post %s: liveness not checked: %s", post.key, x)
            await transition(rt, post, PostMove.TO_VERIFYING, f"{e}; verifying",
                             reason=f"checking whether an earlier publish went through: {e}", next_action_at=now)
            return
        if live.live:
            await record_published(rt, post, token, f"{live.how}, despite the answer ({e})", live.found)
            return
        status = live.status
    # proven: nothing of this post is live
    await update(rt, post, None, release=False, publish_started_at=None)
    if status is not None and status.status_code != "FINISHED":
        await _not_live(rt, post, status, f"publish refused ({e})")
    else:
        await _refused(rt, post, e, token)


async def _refused(rt: Runtime, post: PostRecord, e: GraphError, token: str) -> None:
    """Act on an error answer to a publish that is proven not live."""
    cls = e.error_class
    now = rt.clock.now()
    if cls is ErrorClass.NOT_READY:
        await transition(rt, post, PostMove.TO_STAGING, f"{e}; polling the container", reason=str(e),
                         next_action_at=now + timedelta(seconds=rt.settings.staging.poll_min_s))
    elif cls is ErrorClass.QUOTA:
        with contextlib.suppress(GraphError, Paused):
            await ensure_quota_fresh(rt, post, token, force=True)
        await transition(rt, post, PostMove.TO_DEFERRED, str(e),
                         reason=f"publishing quota reached (Meta): {e}",
                         next_action_at=now + timedelta(seconds=rt.settings.limits.quota_refresh_s))
    elif cls is ErrorClass.RETRY_THEN_RECREATE and post.attempts < 2:
        await transition(rt, post, PostMove.TO_READY, str(e), attempts=post.attempts + 1, reason=str(e),
                         next_action_at=now + timedelta(seconds=30 * (post.attempts + 1)))
    elif cls in (ErrorClass.RECREATE, ErrorClass.RETRY_THEN_RECREATE):
        await rt.db(rt.store.reset_containers, post)
        await transition(rt, post, PostMove.TO_PLANNED, f"{e}; creating a new container", attempts=0,
                         reason=str(e), next_action_at=now)
    elif cls is ErrorClass.TRANSIENT:
        await retry_later(rt, post, e, PostMove.TO_READY)  # not live: the same container again
    else:
        await handle_error(rt, post, e, PostMove.TO_READY)


async def _not_live(rt: Runtime, post: PostRecord, st: ContainerStatus, why: str) -> None:
    """Nothing of the post is live and its container is not FINISHED: go by its status."""
    now = rt.clock.now()
    code = st.status_code
    if code == "IN_PROGRESS":
        await transition(rt, post, PostMove.TO_STAGING, f"{why}; still processing", publish_started_at=None,
                         next_action_at=now)
    elif code == "EXPIRED":
        await rt.db(rt.store.reset_containers, post)
        await transition(rt, post, PostMove.TO_PLANNED, f"{why}; not published and expired; staging again",
                         publish_started_at=None, next_action_at=now)
    elif code == "ERROR":
        media = await rt.db(rt.store.media, post.id)  # a carousel's parent has no media row
        single = next((m for m in media if m.position == 0), None)
        await container_failed(rt, post, single, st.status)
    else:
        await fail(rt, post, f"Meta could not process the media: {st.status or code}")


async def verify(rt: Runtime, post: PostRecord, token: str) -> None:
    """Find out whether an earlier media_publish went through, before anything else: the
    container's status, and once an earlier request can no longer be in flight, the
    account's media (a published container may still say FINISHED for a while)."""
    now = rt.clock.now()
    if post.container_id is None:
        await transition(rt, post, PostMove.TO_PLANNED, "nothing was published (no container); staging",
                         next_action_at=now)
        return
    try:
        st = await rt.graph.container_status(post.container_id, token)
        if st.status_code == "PUBLISHED":
            await record_published(rt, post, token, "verified: the container says PUBLISHED")
            return
        settle = None
        if post.publish_started_at is not None:
            settle = post.publish_started_at + timedelta(
                seconds=rt.settings.graph.timeout_s + rt.settings.limits.publish_settle_margin_s)
        if settle is not None and now < settle and st.status_code in ("FINISHED", "IN_PROGRESS"):
            # an earlier request may still be in flight at Meta: wait until it cannot be
            await transition(rt, post, PostMove.TO_VERIFYING, None,
                             reason="waiting for an earlier publish request to settle", next_action_at=settle)
            return
        since = await first_attempt_at(rt, post)
        found = await find_media(rt, post, token, since) if since is not None else None
    except Paused as p:
        await transition(rt, post, PostMove.TO_VERIFYING, None, reason=f"verification waits: {p.reason}",
                         next_action_at=p.until)
        return
    except GraphError as e:
        if e.error_class is ErrorClass.AUTH:
            await handle_error(rt, post, e, PostMove.TO_VERIFYING)
            return
        # never a blind republish: keep asking, however long it takes
        attempt = post.attempts + 1
        await transition(rt, post, PostMove.TO_VERIFYING, f"verification failed: {e}", attempts=attempt,
                         reason=f"cannot verify yet: {e}",
                         next_action_at=now + timedelta(seconds=backoff_s(attempt, rt.settings.retries)))
        return
    if found is not None:
        await record_published(rt, post, token, f"verified: its media {found.media_id} is on the account "
                               f"(the container said {st.status_code})", found)
    elif st.status_code == "FINISHED":
        await transition(rt, post, PostMove.TO_READY,
                         "verified: not published (container FINISHED, no such media on the account); "
                         "publishing again", reason=None, publish_started_at=None, attempts=0, next_action_at=now)
    else:
        await _not_live(rt, post, st, "verified: not published")
