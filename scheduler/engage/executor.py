"""One claimed action, one step: the limits first, then the call, then its outcome, each a
named transition of lifecycle.ACTIONS (README "Engagement").

The call goes through the pipeline's Graph client, so it is recorded with its usage headers,
the pause hook refuses a call to a paused account, and throttling pauses the account as for
publishing. A lost answer: hide, unhide and delete are made again; a public reply is looked
for among the account's own replies before it is sent again; a DM, a private reply or a
reply to a mention becomes `unknown` and is never sent again by itself (a mention is on
another account's media, whose replies Meta does not document as readable, so the reply
cannot be looked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from scheduler.clock import to_aware
from scheduler.config import TokenMissing
from scheduler.engage.actions import AT_MOST_ONCE, BUDGET_WINDOW_S, budget_for
from scheduler.engage.windows import dm_outside_window, parse_graph_time, private_reply_too_late
from scheduler.graph.client import call_context
from scheduler.graph.engagement import send_body, text_message, to_person
from scheduler.graph.errors import ErrorClass, GraphError, messaging_refusal
from scheduler.lifecycle import ActionMove, ActionState, backoff_s, retries_left
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import ActionChanges, ActionRecord, LeaseLost

log = logging.getLogger(__name__)

_PAUSING = (ErrorClass.THROTTLED, ErrorClass.APP_THROTTLED, ErrorClass.POLICY_BLOCKED)


class _Done(Exception):
    """The step has recorded its outcome; `action` is the row as it is now."""

    def __init__(self, action: ActionRecord) -> None:
        self.action = action


async def run_action(rt: Runtime, action: ActionRecord) -> ActionRecord:
    """Work one leased action; returns it as it is afterwards (its lease released)."""
    renewer = asyncio.create_task(_keep_lease(rt, action))
    try:
        with call_context(account=action.account):
            return await _step(rt, action)
    except _Done as d:
        return d.action
    except LeaseLost:
        log.info("action %s: lease lost; nothing changed", action.key)
    except Exception:
        log.exception("action %s: unexpected error; trying again later", action.key)
        with contextlib.suppress(Exception):
            return await _update(rt, action, "internal error; see the log",
                                 next_action_at=rt.clock.now() + timedelta(seconds=rt.settings.retries.cap_s))
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
    fresh = await rt.db(rt.store.action, action.key)
    return fresh or action


async def _keep_lease(rt: Runtime, action: ActionRecord) -> None:
    lease = rt.settings.daemon.lease_s
    while True:
        await asyncio.sleep(lease / 3)
        try:
            if not await rt.db(rt.store.renew_action, action, lease):
                return
        except Exception:
            log.warning("action %s: could not renew its lease", action.key, exc_info=True)


# --- moves ---------------------------------------------------------------------------------


async def _move(rt: Runtime, action: ActionRecord, move: ActionMove, event: str | None,
                release: bool = True, **values: Unpack[ActionChanges]) -> ActionRecord:
    return await rt.db(rt.store.action_transition, action, move, rt.identity, event, release, **values)


async def _update(rt: Runtime, action: ActionRecord, event: str | None,
                  **values: Unpack[ActionChanges]) -> ActionRecord:
    return await rt.db(rt.store.action_update, action, rt.identity, event, True, **values)


async def _defer(rt: Runtime, action: ActionRecord, reason: str, until: datetime,
                 error: str | None = None) -> ActionRecord:
    if action.state == ActionState.SENDING and error is None:
        # stopped before its call went out (the pause hook): it does not count against a budget
        return await _move(rt, action, ActionMove.DEFER, reason, reason=reason, next_action_at=until,
                           sent_at=None)
    return await _move(rt, action, ActionMove.DEFER, reason, reason=reason, next_action_at=until,
                       error=error)


async def _fail(rt: Runtime, action: ActionRecord, reason: str, error: str | None = None) -> ActionRecord:
    log.warning("action %s failed: %s", action.key, reason)
    return await _move(rt, action, ActionMove.FAIL, reason, reason=reason, error=error, done_at=rt.clock.now())


async def _later(rt: Runtime, action: ActionRecord, err: GraphError | str) -> ActionRecord:
    """Back off and try again (the attempt was counted when it was sent); after
    retries.max_tries the action fails."""
    retries = rt.settings.retries
    if not retries_left(action.attempts, retries):
        return await _fail(rt, action, f"gave up after {action.attempts} tries: {err}", str(err))
    delay = backoff_s(max(1, action.attempts), retries)
    when = rt.clock.now() + timedelta(seconds=delay)
    return await _move(rt, action, ActionMove.TO_PENDING, f"try {action.attempts} failed: {err}; next in {delay:.3g} s",
                       reason=f"retrying after: {err}", error=str(err), next_action_at=when)


# --- the step ------------------------------------------------------------------------------


async def _step(rt: Runtime, action: ActionRecord) -> ActionRecord:
    now = rt.clock.now()
    acct = rt.account_settings(action.account)
    recheck = now + timedelta(seconds=rt.settings.limits.reauth_check_s)
    if action.state == ActionState.SENDING and _at_most_once(action):
        # a lease that ran out while the call was out: it may have been delivered
        return await _unknown(rt, action, "the daemon stopped while the message was being sent")
    if acct is None:
        return await _defer(rt, action, f"account {action.account} is not in the configuration", recheck)
    try:
        token = await rt.tokens.token(acct)  # configured, or refreshed (README "Running it for months")
    except TokenMissing as e:
        return await _defer(rt, action, str(e), recheck)
    account = await rt.load_pauses(action.account)
    paused = rt.pause_of(action.account)
    if paused is not None:
        return await _defer(rt, action, f"{paused.reason}; no calls before {paused.until:%Y-%m-%d %H:%M:%S} UTC",
                            paused.until)
    if account is not None and account.needs_reauth:
        return await _defer(rt, action, f"account {action.account} needs re-authorisation: {account.reauth_reason}",
                            recheck)
    if action.kind == "private_reply" and action.state != ActionState.SENDING:
        await _check_private_reply_window(rt, action, token)
    if action.kind == "message" and action.state != ActionState.SENDING:
        await _check_message_window(rt, action)
    if _mention_reply(action) and not action.payload.get("media_id"):
        return await _fail(rt, action, "a reply to a mention needs the media id, and the webhook event had none")
    budget = budget_for(action.kind, rt.settings.engagement)
    check = await rt.db(rt.store.begin_send, action, rt.identity, budget.limit if budget else None,
                        budget.kinds if budget else (action.kind,), budget.what if budget else action.kind,
                        BUDGET_WINDOW_S)
    sending = await rt.db(rt.store.action, action.key)
    assert sending is not None
    if not check.ok:
        return sending
    return await _send(rt, sending, token)


async def _check_private_reply_window(rt: Runtime, action: ActionRecord, token: str) -> None:
    """Meta takes a private reply only within 7 days of the comment: the comment's time comes
    with the action (from the stored event, or the command that looked it up) or is asked."""
    raw = action.payload.get("comment_at")
    commented_at: datetime | None = None
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            commented_at = to_aware(datetime.fromisoformat(raw))
    if commented_at is None:
        try:
            info = await rt.graph.comment_info(action.target, token)
        except Paused as p:
            raise _Done(await _defer(rt, action, f"{p.reason}; no calls before {p.until:%H:%M:%S} UTC", p.until)) \
                from None
        except GraphError as e:
            if e.error_class in (ErrorClass.TRANSIENT, ErrorClass.AMBIGUOUS, *_PAUSING):
                when = rt.clock.now() + timedelta(seconds=backoff_s(action.attempts + 1, rt.settings.retries))
                raise _Done(await _update(rt, action, f"could not read the comment's time: {e}",
                                          reason=f"waiting to read the comment: {e}", next_action_at=when)) from None
            raise _Done(await _fail(rt, action, f"comment {action.target} cannot be read: {e}", str(e))) from None
        if info.timestamp:
            with contextlib.suppress(ValueError):
                commented_at = parse_graph_time(info.timestamp)
    if commented_at is None:
        return  # unknown: Meta's answer decides
    late = private_reply_too_late(commented_at, to_aware(rt.clock.now()).astimezone(UTC))
    if late:
        raise _Done(await _fail(rt, action, late))


async def _check_message_window(rt: Runtime, action: ActionRecord) -> None:
    """Meta takes a DM only within 24 hours of the person's last message: when the webhook
    receiver has seen that message, a DM past the window fails before any call; when it has
    not, Meta's answer decides (10/2534022)."""
    ig = rt.ig_user_id(action.account)
    if ig is None:
        return
    last = await rt.db(rt.store.last_inbound_at, ig, action.target)
    if last is None:
        return
    late = dm_outside_window(to_aware(last), to_aware(rt.clock.now()))
    if late:
        raise _Done(await _fail(rt, action, late))


async def _send(rt: Runtime, action: ActionRecord, token: str) -> ActionRecord:
    found = None
    try:
        if action.kind == "reply" and not _mention_reply(action) and action.attempts > 1:
            # an earlier try may have created the reply although its answer was lost or an error
            found = await _own_reply(rt, action, token)
        result = {"id": found} if found else await _call(rt, action, token)
    except Paused as p:
        reason = f"{p.reason}; no calls before {p.until:%Y-%m-%d %H:%M:%S} UTC"
        return await _defer(rt, action, reason, p.until)
    except GraphError as e:
        return await _after_error(rt, action, token, e)
    result_id = result.get("message_id") or result.get("id")
    event = "the reply from an earlier try was found; not sent again" if found else "done"
    return await _move(rt, action, ActionMove.MARK_DONE, event, result=result,
                       result_id=str(result_id) if result_id else None, reason=None, error=None,
                       done_at=rt.clock.now())


def _mention_reply(action: ActionRecord) -> bool:
    """A rule's public reply to a mention (README "Webhooks and rules")."""
    return action.kind == "reply" and action.payload.get("mention") is True


def _at_most_once(action: ActionRecord) -> bool:
    return action.kind in AT_MOST_ONCE or _mention_reply(action)


def _sender(rt: Runtime, account: str) -> str:
    a = rt.account_settings(account)
    return a.page_id if a is not None and a.page_id else "me"


async def _call(rt: Runtime, action: ActionRecord, token: str) -> dict[str, Any]:
    kind, target, payload = action.kind, action.target, action.payload
    if kind == "message":
        # a planned message carries Meta's message object; a plain text (e.g. a rule's) is one
        message = payload.get("message") or text_message(str(payload["text"]))
        sent = await rt.graph.send_message(token, send_body(to_person(target), message),
                                           sender=_sender(rt, action.account))
        return {"recipient_id": sent.recipient_id, "message_id": sent.message_id}
    if kind == "private_reply":
        sent = await rt.graph.private_reply(token, target, str(payload["text"]), sender=_sender(rt, action.account))
        return {"recipient_id": sent.recipient_id, "message_id": sent.message_id}
    if kind == "reply" and _mention_reply(action):
        # a comment on another account's media: answered through the mentions edge
        ig = rt.ig_user_id(action.account)
        assert ig is not None
        return {"id": await rt.graph.reply_to_mention(ig, token, str(payload["media_id"]), target,
                                                      str(payload["text"]))}
    if kind == "reply":
        return {"id": await rt.graph.reply_to_comment(target, token, str(payload["text"]))}
    if kind in ("hide", "unhide"):
        return {"success": await rt.graph.set_comment_hidden(target, token, kind == "hide")}
    if kind == "delete":
        return {"success": await rt.graph.delete_comment(target, token)}
    raise ValueError(f"unknown action kind {kind!r}")


async def _own_reply(rt: Runtime, action: ActionRecord, token: str) -> str | None:
    ig = rt.ig_user_id(action.account)
    assert ig is not None
    # the IG user's own node, not /me: with Facebook Login, /me is the Page
    me = (await rt.graph.user(ig, token, fields=("id", "username"))).get("username")
    if not isinstance(me, str) or not me:
        return None
    found = await rt.graph.find_reply(action.target, token, username=me, text=str(action.payload["text"]))
    return found.id if found else None


async def _after_error(rt: Runtime, action: ActionRecord, token: str, e: GraphError) -> ActionRecord:
    cls = e.error_class
    if cls is ErrorClass.AMBIGUOUS:  # the call may have taken effect: its answer is lost
        if _at_most_once(action):
            return await _unknown(rt, action, f"the answer was lost ({e})")
        return await _later(rt, action, e)  # hide/unhide/delete repeat; a reply is looked for first
    if cls in _PAUSING:
        pause = rt.pause_of(action.account)
        until = pause.until if pause else rt.clock.now() + timedelta(seconds=rt.settings.limits.throttle_backoff_s)
        reason = f"{pause.reason if pause else 'throttled'}; no calls before {until:%Y-%m-%d %H:%M:%S} UTC"
        return await _defer(rt, action, reason, until, str(e))
    if cls in (ErrorClass.AUTH, ErrorClass.ACCOUNT_RESTRICTED):
        why = str(e) if cls is ErrorClass.AUTH else f"the account is restricted or checkpointed ({e})"
        await rt.db(rt.store.set_reauth, action.account, True, why)
        until = rt.clock.now() + timedelta(seconds=rt.settings.limits.reauth_check_s)
        return await _defer(rt, action, f"account {action.account} needs re-authorisation: {why}", until, str(e))
    if cls is ErrorClass.TRANSIENT:
        return await _later(rt, action, e)
    refusal = messaging_refusal(e)
    return await _fail(rt, action, f"{refusal}: {e}" if refusal else str(e), str(e))


async def _unknown(rt: Runtime, action: ActionRecord, why: str) -> ActionRecord:
    what = ("reply to the mention" if _mention_reply(action)
            else "private reply" if action.kind == "private_reply" else "message")
    reason = (f"{why}; the {what} may have been delivered, so it is not sent again by itself "
              f"(igsched actions retry {action.key} sends it again)")
    log.warning("action %s unknown: %s", action.key, why)
    return await _move(rt, action, ActionMove.TO_UNKNOWN, reason, reason=reason, done_at=rt.clock.now())


__all__ = ["run_action"]
