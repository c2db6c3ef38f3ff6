"""After publish: the permalink (best effort) and the first comment, exactly once.

Meta can create a comment and still answer with an error, so before any retry we look for
the account's own comment with the same text on the media.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import backoff_s, retries_left
from scheduler.pipeline.outcomes import update
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostRecord

log = logging.getLogger(__name__)


async def followup(rt: Runtime, post: PostRecord, token: str) -> None:
    values: dict[str, Any] = {}
    if post.media_id and not post.permalink:
        try:
            info = await rt.graph.media_info(post.media_id, token)
            if info.get("permalink"):
                values["permalink"] = info["permalink"]
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
