"""A container Meta could not process (`status_code: ERROR`): try again, make a new one, or
fail with Meta's words, by the subcode in its `status` text (graph/container_errors.py).

- retry (2207001 server error, 2207003 download too slow): a new container after the backoff
  of `retries`, up to `retries.max_tries`;
- re-create (2207032, 2207053, 2207020): a new container at once, while the post's time is
  still ahead (a post already due fails instead: there is no lead time left), up to
  `retries.max_tries`;
- anything else: the post fails with Meta's text.

An ERROR container never went live, so only that container is forgotten; finished carousel
items are kept.
"""

from __future__ import annotations

from datetime import timedelta

from scheduler.graph.container_errors import classify_container_error
from scheduler.graph.errors import ErrorClass
from scheduler.lifecycle import PostMove, backoff_s, retries_left
from scheduler.pipeline.outcomes import fail, transition, update
from scheduler.pipeline.runtime import Runtime
from scheduler.store import MediaRecord, PostRecord


def label(m: MediaRecord | None) -> str:
    if m is None:
        return "the carousel container"
    return "the media" if m.position == 0 else f"carousel item {m.position}"


async def container_failed(rt: Runtime, post: PostRecord, m: MediaRecord | None, status: str | None) -> None:
    """`m`: the media row whose container is in ERROR (None: a carousel's parent)."""
    verdict = classify_container_error(status)
    where = label(m) + (f" ({m.source})" if m is not None else "")
    words = f"Meta could not process {where}: {verdict.message}"
    if verdict.error_class is ErrorClass.PERMANENT:
        await fail(rt, post, words)
        return
    attempt = post.attempts + 1
    if not retries_left(attempt, rt.settings.retries):
        await fail(rt, post, f"gave up after {attempt} tries: {words}")
        return
    now = rt.clock.now()
    if verdict.recreate and not post.asap and now >= post.due_at:
        await fail(rt, post, f"{words} (no lead time left to make a new container)")
        return
    if m is not None:
        await rt.db(rt.store.update_media, post, m.id, container_id=None, container_created_at=None,
                    status_code=None, status_checked_at=None, error=status)
    if m is None or m.position == 0:
        await update(rt, post, None, release=False, container_id=None, container_created_at=None)
    delay = backoff_s(attempt, rt.settings.retries) if verdict.retry else 0.0
    then = f"trying again in {delay:.3g} s" if verdict.retry else "making a new container"
    await transition(rt, post, PostMove.TO_STAGING, f"{words}; {then}", attempts=attempt,
                     reason=f"{words}; {then}", publish_started_at=None,
                     next_action_at=now + timedelta(seconds=delay))
