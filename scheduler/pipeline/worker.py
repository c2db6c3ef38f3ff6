"""One claimed post, one step: dispatch on its state, keep the lease alive meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from scheduler.config import TokenMissing
from scheduler.graph.client import call_context
from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.headroom import spaced_stage_at
from scheduler.lifecycle import PostMove, State, lead_seconds
from scheduler.pipeline.followup import followup
from scheduler.pipeline.outcomes import handle_error, reschedule_paused, transition, update
from scheduler.pipeline.preflight import check
from scheduler.pipeline.publishing import publish, verify
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.pipeline.staging import stage
from scheduler.store import AccountRecord, LeaseLost, PostRecord

log = logging.getLogger(__name__)


class Unread:
    """The account's row has not been read with the claim."""


UNREAD = Unread()


async def work(rt: Runtime, post: PostRecord, account: AccountRecord | Unread | None = UNREAD) -> None:
    """One step of a claimed post. `account`: the account's row as the claim read it (the
    pauses in it already absorbed, see Runtime.absorb_claim); UNREAD: read it now."""
    renewer = asyncio.create_task(_keep_lease(rt, post))
    try:
        with call_context(account=post.account, post_id=post.id):
            await _step(rt, post, account)
    except LeaseLost:
        log.info("post %s: lease lost (taken over, cancelled or edited); nothing changed", post.key)
    except Exception:
        log.exception("post %s: unexpected error; retrying later", post.key)
        with contextlib.suppress(Exception):
            await update(rt, post, "internal error; see the daemon log",
                         next_action_at=rt.clock.now() + timedelta(seconds=rt.settings.retries.cap_s))
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def _keep_lease(rt: Runtime, post: PostRecord) -> None:
    lease = rt.settings.daemon.lease_s
    while True:
        await asyncio.sleep(lease / 3)
        try:
            if not await rt.db(rt.store.renew, post, lease):
                return
        except Exception:
            log.warning("post %s: could not renew its lease", post.key, exc_info=True)


async def _step(rt: Runtime, post: PostRecord, account: AccountRecord | Unread | None) -> None:
    acct = rt.account_settings(post.account)
    now = rt.clock.now()
    if acct is None:
        await _wait_for_account(rt, post, f"account {post.account} is not in the configuration")
        return
    try:
        token = await rt.tokens.token(acct)  # configured, or refreshed (README "Running it for months")
    except TokenMissing as e:
        await _wait_for_account(rt, post, str(e))
        return
    if isinstance(account, Unread):
        account = await rt.load_pauses(post.account)
    paused = rt.pause_of(post.account)
    if paused is not None and post.state not in (State.PUBLISHING, State.VERIFYING):
        await reschedule_paused(rt, post, paused)
        return
    reauth = (post.state == State.WAITING or (account is not None and account.needs_reauth)
              or post.account in rt.auth_refused)
    if reauth and not await _token_works(rt, post, token):
        return
    state = post.state
    if state == State.PLANNED and post.preflight is None:
        await check(rt, post)
    elif state == State.PUBLISHED:
        await followup(rt, post, token)
    elif state == State.PLANNED and await _staging_postponed(rt, post):
        return
    elif state in (State.PLANNED, State.STAGING):
        await stage(rt, post, token)
    elif state in (State.READY, State.DEFERRED):
        await publish(rt, post, token)
    elif state in (State.PUBLISHING, State.VERIFYING):
        # a lease that ran out mid-publish, or an unknown answer: never a blind retry
        await verify(rt, post, token)
    elif state == State.WAITING:
        # the token works again: resume where the containers are, but a post that was being
        # published when the token failed (publish_started_at) may have gone live: verify first
        resume = PostMove.TO_VERIFYING if post.publish_started_at and post.container_id else (
            PostMove.TO_STAGING if post.container_id else PostMove.TO_PLANNED)
        await transition(rt, post, resume, "account authorised again; resuming", reason=None, next_action_at=now)


async def _wait_for_account(rt: Runtime, post: PostRecord, reason: str) -> None:
    """No token to call with: the post waits (a published one only postpones its follow-up)."""
    when = rt.clock.now() + timedelta(seconds=rt.settings.limits.reauth_check_s)
    if post.state == State.PUBLISHED:
        await update(rt, post, None, reason=reason, next_action_at=when)
    else:
        await transition(rt, post, PostMove.TO_WAITING, None, reason=reason, next_action_at=when)


async def _staging_postponed(rt: Runtime, post: PostRecord) -> bool:
    """Above the soft usage threshold, creating containers can wait (publishing cannot):
    the lead time shrinks with the usage, but never below what processing needs."""
    factor = rt.spacing(post.account)
    if factor <= 1.0:
        return False
    lead = lead_seconds(post.kind, rt.settings.staging.lead_s)
    kind = "image" if post.kind == "image" else "video"  # carousels and stories: the slower guess
    need = rt.processing.estimate_s(post.account, kind)
    start = spaced_stage_at(post.due_at, lead, factor, need, rt.settings.staging.poll_min_s)
    if rt.clock.now() >= start:
        return False
    pct = rt.pauses.usage_pct.get(post.account, 0.0)
    await update(rt, post, f"usage at {pct:.0f} %: staging postponed to {start:%H:%M:%S} UTC", next_action_at=start)
    return True


async def _token_works(rt: Runtime, post: PostRecord, token: str) -> bool:
    """For an account marked as needing re-authorisation: one cheap call tells."""
    try:
        await rt.graph.me(token)
    except Paused as p:
        await reschedule_paused(rt, post, p)
        return False
    except GraphError as e:
        if e.error_class is ErrorClass.AUTH:
            reason = f"account {post.account} needs re-authorisation: {e}"
            when = rt.clock.now() + timedelta(seconds=rt.settings.limits.reauth_check_s)
            if post.state in (State.PUBLISHING, State.VERIFYING, State.PUBLISHED):
                await update(rt, post, None, reason=reason, next_action_at=when)
            else:
                await transition(rt, post, PostMove.TO_WAITING, None, reason=reason, next_action_at=when)
        else:
            await handle_error(rt, post, e, None)
        return False
    await rt.db(rt.store.set_reauth, post.account, False, None)
    rt.auth_refused.discard(post.account)
    return True
