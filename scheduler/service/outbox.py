"""Daemon duty: notifications, durable and once per occurrence (README "Running it for months").

Every `notifications.check_s` the daemon (every replica does the same) looks at what happened
since the last look — posts that failed or went live late, posts deferred past their time,
accounts needing re-authorisation, tokens with 7 or 1 days left — and records one row per
occurrence and target. The (occurrence, target) pair is unique in the database, so however
many daemons notice an occurrence, it is recorded, and sent, once. Then it delivers the rows
that are due, each under a short lease, retrying with backoff; a restart loses nothing.

Nothing here runs on the publishing path: this is its own task, and every delivery is bounded
by its target's timeout.

More events plug in as one more scanner (`Outbox.scanners`). `action_failed` comes from the
engagement `actions` table, and is simply never found in a database without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from scheduler.config import TokenMissing
from scheduler.failures import Failures
from scheduler.pipeline.runtime import Runtime
from scheduler.service.notify import (
    Notification,
    Notifier,
    OutcomeState,
    occurrence_key,
    secret_env_names,
    target_id,
    targets_for,
)
from scheduler.service.renewal import relogin_advice
from scheduler.service.tokens import expiry_warning, fingerprint
from scheduler.store import NewNotification

log = logging.getLogger(__name__)

# post_events are stamped before their transaction commits: each look goes back this far,
# so an event committed late is still seen (the unique occurrence makes repeats harmless)
OVERLAP = timedelta(minutes=5)
BATCH = 20

Scanner = Callable[[datetime, datetime], Awaitable[list[tuple[str, Notification]]]]


class Outbox:
    def __init__(self, rt: Runtime, notifier: Notifier | None = None) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.owner = f"{rt.identity}:{os.getpid()}"
        self.notifier = notifier
        self.targets = {target_id(t): t for t in self.settings.notify}
        self.lease_s = max((t.timeout_s for t in self.settings.notify), default=10.0) + 30.0
        # each: (since, now) → [(occurrence key, notification)]
        self.scanners: list[Scanner] = [self._posts, self._deferred, self._reauth, self._expiring,
                                        self._actions]
        self._task: asyncio.Task[None] | None = None
        self._scan_failures = Failures(log, "notifications: looking for events")
        self._send_failures = Failures(log, "notifications: delivering")

    async def start(self) -> None:
        if self.targets and self._task is None:
            if self.notifier is None:
                self.notifier = Notifier(self.settings.notifications, secret_env_names(self.settings))
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-notify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.notifier is not None:
            await self.notifier.aclose()
            self.notifier = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception as e:
                self._scan_failures.failed(e)
            else:
                self._scan_failures.ok()
            try:
                await self.deliver_due()
            except Exception as e:
                self._send_failures.failed(e)
            else:
                self._send_failures.ok()
            check_s = self.settings.notifications.check_s
            await asyncio.sleep(max(f.delay(check_s) for f in (self._scan_failures, self._send_failures)))

    # --- recording ----------------------------------------------------------------------
    async def scan(self) -> int:
        """Record what happened since the last look; returns how many rows were new."""
        store = self.rt.store
        now = self.rt.clock.now()
        cursor = await self.rt.db(store.scan_cursor)
        if cursor is None:  # a new database, or one from before notifications: start now
            await self.rt.db(store.move_scan_cursor, now)
            cursor = now
        found: list[tuple[str, Notification]] = []
        for scanner in self.scanners:
            found.extend(await scanner(cursor - OVERLAP, now))
        rows = [
            NewNotification(note.event, occurrence, target_id(t), note.account, note.key,
                            note.body().decode("utf-8"))
            for occurrence, note in found
            for t in targets_for(note.event, self.settings.notify)
        ]
        added = await self.rt.db(store.add_notifications, rows) if rows else 0
        await self.rt.db(store.move_scan_cursor, now)
        return added

    async def _posts(self, since: datetime, now: datetime) -> list[tuple[str, Notification]]:
        out = []
        late_after = self.settings.notifications.late_after_s
        for e in await self.rt.db(self.rt.store.post_events_since, since, ["failed", "published"]):
            if e.to_state == "failed":
                out.append((occurrence_key("post_failed", e.post_id, e.event_id), Notification(
                    "post_failed", e.at, e.account, e.key, "failed", e.reason, None)))
            elif not e.asap and e.lateness_s is not None and e.lateness_s > late_after:
                out.append((occurrence_key("post_late", e.post_id, "published"), Notification(
                    "post_late", e.at, e.account, e.key, "published",
                    f"published {e.lateness_s:.0f} s after its time", e.permalink)))
        return out

    async def _deferred(self, since: datetime, now: datetime) -> list[tuple[str, Notification]]:
        due_before = now - timedelta(seconds=self.settings.notifications.late_after_s)
        return [
            (occurrence_key("post_late", p["id"], "deferred"), Notification(
                "post_late", now, p["account"], p["key"], p["state"],
                f"still deferred {(now - p['due_at']).total_seconds():.0f} s after its time: "
                f"{p['reason'] or 'no reason recorded'}", None))
            for p in await self.rt.db(self.rt.store.deferred_since, due_before)
        ]

    async def _reauth(self, since: datetime, now: datetime) -> list[tuple[str, Notification]]:
        out = []
        states = {s.account: s for s in await self.rt.db(self.rt.store.token_states)}
        for rec in await self.rt.db(self.rt.store.accounts):
            acct = self.settings.account(rec.name)
            if not rec.needs_reauth or acct is None:
                continue
            # one occurrence per token that stopped working: a new login that fails later
            # is a new one
            try:
                which = fingerprint(acct.token())[:16]
            except TokenMissing:
                which = "no-token"
            state = states.get(rec.name)
            refreshed = state.refreshed_at.isoformat() if state and state.refreshed_at else "-"
            reason = rec.reauth_reason or "the token does not work"
            if "log in again" not in reason:
                reason = f"{reason}; {relogin_advice(acct)}"
            out.append((occurrence_key("needs_reauth", rec.name, which, refreshed), Notification(
                "needs_reauth", now, rec.name, None, "needs_reauth", reason, None)))
        return out

    async def _expiring(self, since: datetime, now: datetime) -> list[tuple[str, Notification]]:
        out = []
        for s in await self.rt.db(self.rt.store.token_states):
            days = expiry_warning(s.expires_at, now)
            acct = self.settings.account(s.account)
            if days is None or s.expires_at is None or acct is None:
                continue
            left = (s.expires_at - now).total_seconds() / 86400
            out.append((occurrence_key("token_expiring", s.account, s.expires_at.isoformat(), days),
                        Notification("token_expiring", now, s.account, None, s.source,
                                     f"the token expires in {left:.1f} days and refreshing it has "
                                     f"not worked; {relogin_advice(acct)}", None)))
        return out

    async def _actions(self, since: datetime, now: datetime) -> list[tuple[str, Notification]]:
        failed = await self.rt.db(self.rt.store.failed_actions_since, since)
        return [
            (occurrence_key("action_failed", a["id"]), Notification(
                "action_failed", a["done_at"] or now, a["account"], a["key"], "failed",
                f"{a['kind']}: {a['error'] or a['reason'] or 'no reason recorded'}", None))
            for a in failed
        ]

    # --- delivering ---------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """Deliver the rows that are due (several daemons share them through leases)."""
        store = self.rt.store
        notes = await self.rt.db(store.claim_notifications, self.owner, self.lease_s, BATCH)
        if notes:
            assert self.notifier is not None
            await asyncio.gather(*(self._deliver(n.id, n.target_id, n.body, n.attempts, n.created_at)
                                   for n in notes))
        return len(notes)

    async def _deliver(self, note_id: int, tid: str, body: str, attempts: int,
                       created_at: datetime) -> None:
        store = self.rt.store
        target = self.targets.get(tid)
        if target is None:
            await self.rt.db(store.finish_notification, note_id, self.owner, "gave_up", attempts,
                             None, "the target is no longer in the configuration")
            return
        assert self.notifier is not None
        outcome = await self.notifier.attempt(target, body.encode("utf-8"), attempts_before=attempts,
                                              created_at=created_at, now=self.rt.clock.now())
        state = {OutcomeState.DELIVERED: "delivered", OutcomeState.RETRY: "pending",
                 OutcomeState.GAVE_UP: "gave_up"}[outcome.state]
        await self.rt.db(store.finish_notification, note_id, self.owner, state, outcome.attempts,
                         outcome.next_attempt_at, None if state == "delivered" else outcome.detail)
