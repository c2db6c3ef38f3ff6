"""After publish: the permalink (best effort, read in bulk for a burst), the first comment
(exactly once), and the account's publishing quota when our copy is due for a refresh.

Meta can create a comment and still answer with an error, so before any retry we look for
the account's own comment with the same text on the media.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any

from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import backoff_s, retries_left
from scheduler.pipeline.liveness import SEARCH_MARGIN_S
from scheduler.pipeline.outcomes import update
from scheduler.pipeline.quota import quota_after_publish
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostRecord

log = logging.getLogger(__name__)


async def followup(rt: Runtime, post: PostRecord, token: str) -> None:
    values: dict[str, Any] = {}
    with contextlib.suppress(GraphError, Paused):  # best effort; the next publish tries again
        await quota_after_publish(rt, post, token)
    if post.media_id and not post.permalink:
        try:
            link = await permalink_of(rt, post, token)
            if link:
                values["permalink"] = link
        except (GraphError, Paused) as e:
            log.info("permalink of %s not found (kept empty): %s", post.key, e)
    text = post.spec.get("first_comment")
    if post.comment_state != "pending" or not text:
        await update(rt, post, None, followup_pending=False, **values)
        return
    if not post.media_id:
        await update(rt, post, "first comment not posted: the media id is unknown", followup_pending=False,
                     comment_state="failed", comment_error="media id unknown", **values)
        return
    try:
        existing = await _own_comment(rt, post, token, text) if post.attempts > 0 else None
        comment_id = existing or await rt.graph.post_comment(post.media_id, token, text)
    except Paused as p:
        await update(rt, post, None, next_action_at=p.until, **values)
        return
    except GraphError as e:
        attempt = post.attempts + 1
        retryable = e.error_class in (ErrorClass.TRANSIENT, ErrorClass.AMBIGUOUS, ErrorClass.NOT_FOUND_FRESH,
                                      ErrorClass.THROTTLED, ErrorClass.APP_THROTTLED,
                                      ErrorClass.POLICY_BLOCKED, ErrorClass.ACCOUNT_RESTRICTED)
        if retryable and retries_left(attempt, rt.settings.retries):
            delay = backoff_s(attempt, rt.settings.retries)
            await update(rt, post, f"first comment try {attempt} failed: {e}", attempts=attempt,
                         next_action_at=rt.clock.now() + timedelta(seconds=delay), **values)
        else:
            # the post is live: a comment problem never marks it failed
            await update(rt, post, f"first comment failed: {e}", followup_pending=False, attempts=attempt,
                         comment_state="failed", comment_error=str(e), **values)
        return
    await update(rt, post, "first comment posted" + (" (found after an error answer)" if existing else ""),
                 followup_pending=False, comment_state="posted", comment_id=comment_id, **values)


async def permalink_of(rt: Runtime, post: PostRecord, token: str) -> str | None:
    """The post's permalink: from a bulk read of the account's media back to the post's time
    (one call, or a page per 50 media, for every post of a burst), else read alone."""
    assert post.media_id is not None
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    cache = rt.permalinks
    if (link := cache.get(post.media_id)) is not None:
        return link
    since = (post.published_at or rt.clock.now()) - timedelta(seconds=SEARCH_MARGIN_S)
    async with cache.lock(post.account):
        if (link := cache.get(post.media_id)) is not None:
            return link  # a bulk read made while we waited found it
        try:
            found = {str(m["id"]): str(m["permalink"])
                     async for m in rt.graph.media_back_to(ig, token, since, fields=("id", "permalink"),
                                                           stories=post.kind == "story")
                     if m.get("id") and m.get("permalink")}
        except GraphError as e:
            log.info("permalinks of %s not read in bulk: %s", post.account, e)
            found = {}
        cache.add(found)
        await rt.db(rt.store.set_permalinks, post.account, found)
    if (link := found.get(post.media_id)) is not None:
        return link
    info = await rt.graph.media_info(post.media_id, token, fields=("id", "permalink"))
    return str(info["permalink"]) if info.get("permalink") else None


async def _own_comment(rt: Runtime, post: PostRecord, token: str, text: str) -> str | None:
    """The account's own top-level comment with this text on the media, if there is one."""
    assert post.media_id is not None
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    # the IG user's own node, not /me: with Facebook Login, /me is the Page
    me = (await rt.graph.user(ig, token, fields=("id", "username"))).get("username")
    for c in await rt.graph.comments(post.media_id, token, fields=("id", "text", "username", "timestamp")):
        if me and c.get("username") == me and c.get("text") == text:
            return str(c["id"])
    return None
