"""Turning an API failure into the post's next state (design §3, §5; issue: error taxonomy).

Retries are scheduled through `next_action_at`, never by sleeping in a worker.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from scheduler.clock import utcnow
from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import State, backoff_s, retries_left
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import PostRecord

log = logging.getLogger(__name__)


async def move(rt: Runtime, post: PostRecord, event: str | None = None, release: bool = True,
               **values: Any) -> PostRecord:
    """Compare-and-set the post (fenced by its lease); returns the post as it was before."""
    return await rt.db(rt.store.update, post, rt.identity, event, release, **values)


def _waiting_state(post: PostRecord) -> str:
    # a post that was ready (or publishing, which failed for sure) waits as "deferred"
    if post.state in (State.READY, State.DEFERRED, State.PUBLISHING):
        return State.DEFERRED
    return post.state


async def reschedule_paused(rt: Runtime, post: PostRecord, p: Paused) -> None:
    await move(rt, post, f"paused: {p.reason}", state=_waiting_state(post),
               reason=f"{p.reason}; no calls before {p.until:%Y-%m-%d %H:%M:%S} UTC",
               next_action_at=p.until)


async def needs_reauth(rt: Runtime, post: PostRecord, why: str) -> None:
    await rt.db(rt.store.set_reauth, post.account, True, why)
    await move(rt, post, why, state=State.WAITING,
               reason=f"account {post.account} needs re-authorisation: {why}",
               next_action_at=utcnow() + timedelta(seconds=rt.settings.limits.reauth_check_s))


async def fail(rt: Runtime, post: PostRecord, reason: str) -> None:
    log.warning("post %s failed: %s", post.key, reason)
    await move(rt, post, reason, state=State.FAILED, reason=reason, next_action_at=utcnow())


async def retry_later(rt: Runtime, post: PostRecord, err: Exception, state: str,
                      give_up: bool = True) -> None:
    """Exponential backoff; after max_tries the post fails (unless it must never give up)."""
    attempt = post.attempts + 1
    retries = rt.settings.retries
    if give_up and not retries_left(attempt, retries):
        await fail(rt, post, f"gave up after {attempt} tries: {err}")
        return
    delay = backoff_s(attempt, retries) * (rt.spacing(post.account) if state != State.READY else 1)
    await move(rt, post, f"try {attempt} failed: {err}; next in {delay:.3g} s", state=state,
               attempts=attempt, reason=f"retrying after: {err}",
               next_action_at=utcnow() + timedelta(seconds=delay))


async def handle_error(rt: Runtime, post: PostRecord, err: GraphError | Paused, state_on_retry: str) -> None:
    """The generic rules; callers handle the step-specific classes first."""
    if isinstance(err, Paused):
        await reschedule_paused(rt, post, err)
        return
    cls = err.error_class
    if cls in (ErrorClass.THROTTLED, ErrorClass.APP_THROTTLED, ErrorClass.POLICY_BLOCKED):
        pause = _pause_of(rt, post.account) or Paused(utcnow() + timedelta(seconds=60), str(err))
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
        await retry_later(rt, post, err, state_on_retry)


def _pause_of(rt: Runtime, account: str) -> Paused | None:
    try:
        rt.check_pause(account)
    except Paused as p:
        return p
    return None


def seconds_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()
