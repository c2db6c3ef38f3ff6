"""`Engagement`: DMs, comments and profiles from Python, the same operations as the
`comments`, `message`, `profile` and `actions` commands (README "Engagement").

    async with Engagement(load_settings(Path("config.yaml"))) as eng:
        result = await eng.send(message_from_flags(to="1234567890", text="Hi!"), key="hi-1234")
        print(result.view())  # {"key": "hi-1234", "state": "done", "recipient_id": …, "message_id": …}

Every write is an action in the database (sent at most once per key, within the budgets,
its outcome recorded), run at once through the same executor the daemon uses; every call
is recorded in `api_calls` with its usage headers, and a paused account gets no call.
Bad input raises InvalidInput (every problem, each naming its field) before anything is
written or sent.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from scheduler.clock import SYSTEM_CLOCK, Clock, to_aware
from scheduler.config import AccountSettings, Settings
from scheduler.engage.actions import (
    BUDGET_WINDOW_S,
    ActionKind,
    action_view,
    comment_action,
    id_problem,
    key_problem,
    message_action,
    new_key,
    reply_text_problem,
)
from scheduler.engage.executor import run_action
from scheduler.engage.messages import OutboundMessage, parse_message
from scheduler.engage.windows import parse_graph_time, private_reply_too_late
from scheduler.graph.client import call_context
from scheduler.graph.engagement import MAX_COMMENTS_PAGE, PROFILE_FIELDS, CommentInfo
from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import ActionState
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.problems import InvalidInput, Problem
from scheduler.store import ActionRecord, NewAction, Store

FIELD_RE = re.compile(r"^[a-z_]{1,40}$")
RUN_NOW_MAX_WAIT_S = 60.0  # the CLI waits this long at most for retries of its own action


class OverBudget(Exception):
    """A profile lookup over the app's hourly budget (nothing was sent)."""

    def __init__(self, reason: str, free_at: datetime) -> None:
        self.reason, self.free_at = reason, free_at
        super().__init__(reason)


@dataclass(frozen=True)
class ActionResult:
    """What one write did. `earlier`: the key was used before, so nothing was sent and
    `action` is the earlier one."""

    action: ActionRecord
    earlier: bool = False

    def view(self) -> dict[str, Any]:
        """What the command prints with --json (README "Engagement")."""
        a = self.action
        out: dict[str, Any] = {"key": a.key, "state": a.state}
        result = a.result or {}
        if a.kind in ("message", "private_reply"):
            out["recipient_id"] = result.get("recipient_id")
            out["message_id"] = result.get("message_id")
        elif a.kind == "reply":
            out["id"] = result.get("id")
        else:
            out["success"] = result.get("success")
        out["reason"] = a.reason
        if self.earlier:
            out["earlier"] = True
        return out


class Engagement:
    """The engagement operations, opened from Settings (async context manager)."""

    def __init__(self, settings: Settings, store: Store | None = None, *, clock: Clock | None = None,
                 identity: str | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database.url, upgrade=True)
        self._own_store = store is None
        self.identity = identity or f"cli:{socket.gethostname()}:{os.getpid()}"
        self.rt = Runtime(settings, self.store, self.identity, clock or self.store.clock or SYSTEM_CLOCK)
        self._synced = False

    async def __aenter__(self) -> Engagement:
        if not self._synced:
            await self.rt.db(self.store.sync_accounts, self.settings.accounts)
            self._synced = True
        self.rt.calllog.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.rt.aclose()  # writes the call log that is left
        if self._own_store:  # waits for the group commit's writes: not on the event loop
            await asyncio.to_thread(self.store.close)

    # --- accounts ------------------------------------------------------------------------
    def account(self, name: str | None) -> AccountSettings:
        """The named account, or the only one configured; InvalidInput otherwise."""
        names = [a.name for a in self.settings.accounts]
        if name is None:
            if len(names) == 1:
                return self.settings.accounts[0]
            why = "no accounts are configured" if not names else f"configured: {', '.join(names)}"
            raise InvalidInput([Problem("command line", f"say which account ({why})", field="--account")])
        acct = self.settings.account(name)
        if acct is None:
            known = ", ".join(names) or "none"
            raise InvalidInput([Problem("command line", f"account {name!r} is not configured (configured: {known})",
                                        field="--account")])
        return acct

    # --- reading comments ----------------------------------------------------------------
    async def comments(self, media_id: str, *, limit: int | None = MAX_COMMENTS_PAGE,
                       account: str | None = None) -> list[CommentInfo]:
        """A media's top-level comments, newest first: the first `limit`, or all (None)."""
        acct = self._checked(account, [id_problem(media_id, "MEDIA_ID", "a media id"), _limit_problem(limit)])
        with call_context(account=acct.name):
            return await self.rt.graph.list_comments(media_id, await self.rt.tokens.token(acct), limit=limit)

    async def replies(self, comment_id: str, *, limit: int | None = MAX_COMMENTS_PAGE,
                      account: str | None = None) -> list[CommentInfo]:
        """Replies to a comment, oldest first: the first `limit`, or all (None)."""
        acct = self._checked(account, [id_problem(comment_id, "COMMENT_ID", "a comment id"), _limit_problem(limit)])
        with call_context(account=acct.name):
            return await self.rt.graph.list_replies(comment_id, await self.rt.tokens.token(acct), limit=limit)

    # --- writes (actions) ----------------------------------------------------------------
    async def reply(self, comment_id: str, text: str, *, key: str | None = None,
                    account: str | None = None) -> ActionResult:
        """A public reply to a comment."""
        acct = self._checked(account, [id_problem(comment_id, "COMMENT_ID", "a comment id"),
                                       reply_text_problem(text), _key_problem(key)])
        return await self._act(comment_action(key or new_key("reply"), acct.name, "reply", comment_id,
                                              self._source(), text))

    async def private_reply(self, comment_id: str, text: str, *, key: str | None = None,
                            account: str | None = None) -> ActionResult:
        """A DM to the person who wrote a comment: once per comment, within 7 days of it."""
        problems: list[Problem | None] = [_key_problem(key)]
        try:
            message = parse_message({"comment": comment_id, "text": text}, source="command line")
        except InvalidInput as e:
            problems += e.problems
        acct = self._checked(account, problems)
        key = key or new_key("private_reply")
        earlier = await self.rt.db(self.store.action, key)
        if earlier is not None:
            return ActionResult(earlier, earlier=True)
        owner = await self.rt.db(self.store.private_reply_owner, comment_id)
        if owner is not None:
            raise InvalidInput([Problem(
                "command line", f"comment {comment_id} already has a private reply (action {owner.key}, "
                f"{owner.state}); Meta allows one per comment", field="COMMENT_ID")])
        planned = message_action(key, acct.name, message, self._source())
        commented_at = await self._comment_time(acct, comment_id)
        if commented_at is not None:
            late = private_reply_too_late(commented_at, to_aware(self.rt.clock.now()).astimezone(UTC))
            if late:
                raise InvalidInput([Problem("command line", late, field="COMMENT_ID")])
            planned = NewAction(**{**planned.__dict__, "payload": {**planned.payload,
                                                                    "comment_at": commented_at.isoformat()}})
        return await self._act(planned)

    async def hide(self, comment_id: str, *, key: str | None = None, account: str | None = None) -> ActionResult:
        return await self._moderate("hide", comment_id, key, account)

    async def unhide(self, comment_id: str, *, key: str | None = None, account: str | None = None) -> ActionResult:
        return await self._moderate("unhide", comment_id, key, account)

    async def delete(self, comment_id: str, *, key: str | None = None, account: str | None = None) -> ActionResult:
        return await self._moderate("delete", comment_id, key, account)

    async def send(self, message: OutboundMessage, *, key: str | None = None,
                   account: str | None = None) -> ActionResult:
        """A DM (or, for a message to a `comment`, a private reply), validated beforehand with
        `scheduler.engage.messages` (parse_message, message_from_flags, load_message_file)."""
        if message.comment is not None:
            text = getattr(message.content, "text", "")
            return await self.private_reply(message.comment, text, key=key, account=account)
        acct = self._checked(account, [_key_problem(key)])
        return await self._act(message_action(key or new_key("message"), acct.name, message, self._source()))

    async def actions(self, state: str | None = None, account: str | None = None,
                      limit: int | None = None) -> list[ActionRecord]:
        """Actions, newest first."""
        if account is not None:
            self.account(account)
        return await self.rt.db(self.store.list_actions, [state] if state else [], account, limit)

    async def retry(self, key: str) -> ActionResult:
        """Send a failed or unknown action again, on a person's word (a DM whose answer was
        lost may then arrive twice), or try a deferred one now."""
        await self.rt.db(self.store.retry_action, key, self.identity)
        return ActionResult(await self._run_now(key))

    # --- profiles ------------------------------------------------------------------------
    async def profile(self, igsid: str, *, fields: Sequence[str] = PROFILE_FIELDS, refresh: bool = False,
                      account: str | None = None) -> dict[str, Any]:
        """A person's profile: from the cache while it is younger than
        engagement.profile_ttl_s (unless `refresh`), else from Meta, within the app's hourly
        budget of profile lookups."""
        problems = [id_problem(igsid, "IGSID", "an IGSID")]
        problems += [Problem("command line", f"{f!r} is not a field name (lowercase letters and _)", field="--fields")
                     for f in fields if not FIELD_RE.match(f)]
        acct = self._checked(account, problems)
        wanted = list(dict.fromkeys(["id", *fields]))
        now = self.rt.clock.now()
        cached = await self.rt.db(self.store.profile, igsid)
        ttl = timedelta(seconds=self.settings.engagement.profile_ttl_s)
        if (cached is not None and not refresh and now - cached.fetched_at < ttl
                and all(f in cached.fields for f in wanted)):
            return {f: cached.fields.get(f) for f in wanted}
        budget = self.settings.engagement.profile_lookups_per_hour
        since = now - timedelta(seconds=BUDGET_WINDOW_S)
        times = await self.rt.db(self.store.profile_lookups_since, since)
        times += [to_aware(c.started_at).astimezone(UTC).replace(tzinfo=None)
                  for c in self.rt.calllog.unwritten_calls() if c.endpoint == "GET /{igsid}"]
        times.sort()
        if len(times) >= budget:
            free_at = times[len(times) - budget] + timedelta(seconds=BUDGET_WINDOW_S)
            raise OverBudget(f"profile lookups budget: {len(times)} of {budget} in the last hour (for the app); "
                             f"next free slot at {free_at:%Y-%m-%d %H:%M:%S} UTC", free_at)
        with call_context(account=acct.name):
            p = await self.rt.graph.profile(igsid, await self.rt.tokens.token(acct), [f for f in wanted if f != "id"] or ["id"])
        await self.rt.db(self.store.save_profile, igsid, acct.name, {"id": p.id, **p.fields})
        return {f: ({"id": p.id, **p.fields}).get(f) for f in wanted}

    # --- plumbing ------------------------------------------------------------------------
    def _source(self) -> str:
        return "cli" if self.identity.startswith("cli:") else "api"

    def _checked(self, account: str | None, problems: Sequence[Problem | None]) -> AccountSettings:
        found = [p for p in problems if p is not None]
        try:
            acct = self.account(account)
        except InvalidInput as e:
            found += e.problems
            raise InvalidInput(found) from None
        if found:
            raise InvalidInput(found)
        return acct

    async def _moderate(self, kind: ActionKind, comment_id: str, key: str | None,
                        account: str | None) -> ActionResult:
        acct = self._checked(account, [id_problem(comment_id, "COMMENT_ID", "a comment id"), _key_problem(key)])
        return await self._act(comment_action(key or new_key(kind), acct.name, kind, comment_id, self._source()))

    async def _comment_time(self, acct: AccountSettings, comment_id: str) -> datetime | None:
        """When the comment was written, asked from Meta (None when Meta's answer cannot
        tell now: the executor asks again before sending)."""
        try:
            with call_context(account=acct.name):
                info = await self.rt.graph.comment_info(comment_id, await self.rt.tokens.token(acct))
        except Paused:
            return None
        except GraphError as e:
            if e.error_class in (ErrorClass.PERMANENT, ErrorClass.NOT_FOUND_FRESH):
                raise InvalidInput([Problem("command line", f"comment {comment_id} cannot be read: {e}",
                                            field="COMMENT_ID")]) from None
            return None
        if not info.timestamp:
            return None
        try:
            return parse_graph_time(info.timestamp)
        except ValueError:
            return None

    async def _act(self, new: NewAction) -> ActionResult:
        planned = (await self.rt.db(self.store.plan_actions, [new], self.identity))[0]
        if planned.outcome == "exists":
            return ActionResult(planned.action, earlier=True)
        if planned.outcome == "refused":
            return ActionResult(planned.action)
        return ActionResult(await self._run_now(new.key))

    async def _run_now(self, key: str) -> ActionRecord:
        """Claim, call, record — at once; a retry due within a short while is waited for."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RUN_NOW_MAX_WAIT_S
        while True:
            claimed = await self.rt.db(self.store.claim_action, key, self.identity, self.settings.daemon.lease_s)
            rec = await run_action(self.rt, claimed) if claimed else await self.rt.db(self.store.action, key)
            assert rec is not None
            now = self.rt.clock.now()
            wait = (rec.next_action_at - now).total_seconds()
            held = rec.lease_until is not None and rec.lease_until > now  # another process is sending it
            if held:
                wait = 0.2
            elif rec.state != ActionState.PENDING:
                return rec
            if loop.time() + max(0.0, wait) > give_up:
                return rec
            await asyncio.sleep(max(0.0, wait))


def _limit_problem(limit: int | None) -> Problem | None:
    if limit is not None and limit < 1:
        return Problem("command line", f"must be at least 1, not {limit}", field="--limit")
    return None


def _key_problem(key: str | None) -> Problem | None:
    return key_problem(key) if key is not None else None


__all__ = ["ActionResult", "Engagement", "OverBudget", "action_view"]
