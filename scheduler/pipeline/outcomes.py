"""Changing a post: named transitions (lifecycle.POSTS), plain updates, and turning an API
failure into the post's next state (README "Limits, retries and crash safety").

Retries are scheduled through `next_action_at`, never by sleeping in a worker.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Unpack

from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import POSTS, PostMove, State, backoff_s, retries_left
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostChanges, PostRecord

log = logging.getLogger(__name__)


async def transition(rt: Runtime, post: PostRecord, move: PostMove, event: str | None = None,
                     release: bool = True, **values: Unpack[PostChanges]) -> PostRecord:
    """A named transition, compare-and-set on the post's lease; returns the post as it is now."""
    return await rt.db(rt.store.transition, post, move, rt.identity, event, release, **values)


async def update(rt: Runtime, post: PostRecord, event: str | None = None, release: bool = True,
                 **values: Unpack[PostChanges]) -> PostRecord:
    """Change a post without changing its state (fenced by its lease); returns it as it is now."""
    return await rt.db(rt.store.update, post, rt.identity, event, release, **values)


async def reschedule_paused(rt: Runtime, post: PostRecord, p: Paused) -> None:
    event = f"paused: {p.reason}"
    reason = f"{p.reason}; no calls before {p.until:%Y-%m-%d %H:%M:%S} UTC"
    # a post that was ready (or publishing, which failed for sure) waits as "deferred"
    if post.state in (State.READY, State.DEFERRED, State.PUBLISHING):
        await transition(rt, post, PostMove.TO_DEFERRED, event, reason=reason, next_action_at=p.until)
    else:
        await update(rt, post, event, reason=reason, next_action_at=p.until)


async def needs_reauth(rt: Runtime, post: PostRecord, why: str) -> None:
    await rt.db(rt.store.set_reauth, post.account, True, why)
    await transition(rt, post, PostMove.TO_WAITING, why,
                     reason=f"account {post.account} needs re-authorisation: {why}",
                     next_action_at=rt.clock.now() + timedelta(seconds=rt.settings.limits.reauth_check_s))


async def fail(rt: Runtime, post: PostRecord, reason: str) -> None:
    log.warning("post %s failed: %s", post.key, reason)
    await transition(rt, post, PostMove.FAIL, reason, reason=reason, next_action_at=rt.clock.now())


async def retry_later(rt: Runtime, post: PostRecord, err: Exception, then: PostMove | None,
                      give_up: bool = True) -> None:
    """Exponential backoff, then `then` (None: stay in the current state); after max_tries
    the post fails (unless it must never give up)."""
    attempt = post.attempts + 1
    retries = rt.settings.retries
    if give_up and not retries_left(attempt, retries):
        await fail(rt, post, f"gave up after {attempt} tries: {err}")
        return
    target = POSTS.transitions[then].target if then is not None else post.state
    delay = backoff_s(attempt, retries) * (rt.spacing(post.account) if target != State.READY else 1)
    event = f"try {attempt} failed: {err}; next in {delay:.3g} s"
    when = rt.clock.now() + timedelta(seconds=delay)
    if then is None:
        await update(rt, post, event, attempts=attempt, reason=f"retrying after: {err}", next_action_at=when)
    else:
        await transition(rt, post, then, event, attempts=attempt, reason=f"retrying after: {err}",
                         next_action_at=when)


async def handle_error(rt: Runtime, post: PostRecord, err: GraphError | Paused, then: PostMove | None) -> None:
    """The generic rules; callers handle the step-specific classes first. `then`: the
    transition a retry takes (None: the post stays in its state)."""
    if isinstance(err, Paused):
        await reschedule_paused(rt, post, err)
        return
    cls = err.error_class
    if cls in (ErrorClass.THROTTLED, ErrorClass.APP_THROTTLED, ErrorClass.POLICY_BLOCKED):
        pause = rt.pause_of(post.account) or Paused(rt.clock.now() + timedelta(seconds=60), str(err))
        await reschedule_paused(rt, post, pause)
    elif cls is ErrorClass.SPAM:
        await fail(rt, post, f"Meta flagged this as spam; not retried: {err}")
    elif cls is ErrorClass.AUTH:
        await needs_reauth(rt, post, str(err))
    elif cls is ErrorClass.ACCOUNT_RESTRICTED:
        await needs_reauth(rt, post, f"the account is restricted or checkpointed; a person must act in the Instagram app ({err})")
    elif cls is ErrorClass.PERMANENT:
        await fail(rt, post, str(err))
    else:  # transient, ambiguous (for calls that may safely repeat), fresh-id hiccups …
        await retry_later(rt, post, err, then)
