"""What every pipeline step shares: settings, the two seams (store, graph), pauses, learning.

The graph client reports each call to `on_call` (synchronously, in the event loop): we note
the usage figures and throttling answers at once, in memory, so that no further call goes to a
paused account, and write the call rows to the database in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from scheduler.clock import to_naive_utc, utcnow
from scheduler.config import AccountSettings, Settings
from scheduler.graph.client import CallRecord, GraphClient
from scheduler.graph.errors import ErrorClass
from scheduler.headroom import pause_until_from_error, pause_until_from_usage, spacing_factor
from scheduler.store import AccountRecord, Store
from scheduler.store import accounts as acc

log = logging.getLogger(__name__)
T = TypeVar("T")
APP = "*"  # key of the app-wide pause in `pauses`

# usage figures cover Meta's rolling hour; an older figure says nothing about now
USAGE_WINDOW = timedelta(hours=1)

# first guess of container processing time (s) until the account's own history says better
DEFAULT_PROCESSING_S = {"image": 2.0, "video": 20.0}


class Paused(Exception):
    """No call may go to this account (or the app) before `until`."""

    def __init__(self, until: datetime, reason: str) -> None:
        self.until, self.reason = until, reason
        super().__init__(reason)


class Runtime:
    def __init__(self, settings: Settings, store: Store, identity: str) -> None:
        self.settings = settings
        self.store = store
        self.identity = identity
        self.graph = GraphClient(
            settings.graph.base_url, settings.graph.api_version, settings.graph.timeout_s,
            on_call=self.on_call,
        )
        # for the media check (not the Graph API: no token, redirects followed like Meta does)
        self.http = httpx.AsyncClient(timeout=settings.preflight.timeout_s, follow_redirects=True)
        self.pauses: dict[str, tuple[datetime, str]] = {}
        self.usage_pct: dict[str, float] = {}
        self.processing_s: dict[tuple[str, str], float] = {}
        # (account, media kind) whose estimate was seeded from the database (pipeline/learning.py)
        self.processing_seeded: set[tuple[str, str]] = set()
        self._pending_calls: list[CallRecord] = []
        self._pending_pauses: list[tuple[str, datetime, str]] = []
        self._pending_usage: dict[str, tuple[int | None, int | None, float]] = {}
        self.calls_made = 0
        self._flushes: set[asyncio.Task[None]] = set()
        self._usage_at: dict[str, datetime] = {}  # when usage_pct[account] was reported

    async def aclose(self) -> None:
        await self.flush()
        await self.graph.aclose()
        await self.http.aclose()

    # --- plumbing -------------------------------------------------------------
    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def account_settings(self, name: str) -> AccountSettings | None:
        return self.settings.account(name)

    def ig_user_id(self, name: str) -> str | None:
        a = self.settings.account(name)
        return a.ig_user_id if a else None

    # --- pauses and headroom ------------------------------------------------------
    def on_call(self, rec: CallRecord) -> None:
        self.calls_made += 1
        self._pending_calls.append(rec)
        now = utcnow()
        account = rec.account
        ig_id = self.ig_user_id(account) if account else None
        usage = rec.usage
        fallback = self.settings.limits.throttle_backoff_s
        # a throttling answer first, so that its reason (not the usage figure that comes
        # with it) is what `list` and `quota` show
        cls = rec.error_class
        if cls is not None:
            regain = usage.regain_seconds(ig_id) if usage is not None else 0.0
            what = f"Graph error {rec.error_code}" + (f"/{rec.error_subcode}" if rec.error_subcode else "")
            if cls is ErrorClass.APP_THROTTLED:
                self._pause(APP, pause_until_from_error(regain, now, fallback), f"app throttled ({what})")
            elif cls is ErrorClass.THROTTLED and account:
                self._pause(account, pause_until_from_error(regain, now, fallback), f"throttled ({what})")
            elif cls is ErrorClass.SPAM and account:
                self._pause(account, now + timedelta(seconds=fallback * 6), f"flagged as spam ({what}); backing off hard")
            elif cls is ErrorClass.POLICY_BLOCKED and account:
                self._pause(account, pause_until_from_error(regain, now, fallback), f"temporarily blocked by Meta for policy reasons ({what})")
            elif cls is ErrorClass.ACCOUNT_RESTRICTED and account:
                self._pause(account, now + timedelta(seconds=self.settings.limits.reauth_check_s),
                            f"account restricted or checkpointed ({what}): a person must act in the Instagram app")
        if usage is not None and not usage.is_empty:
            if usage.app is not None:
                until = pause_until_from_usage(usage.app.max_pct, 0, now, fallback)
                if until:
                    self._pause(APP, until, f"app usage at {usage.app.max_pct} % (X-App-Usage)")
            if account:
                buc = usage.buc_figures(ig_id)
                pct = usage.max_pct(ig_id)
                self.usage_pct[account] = pct
                self._usage_at[account] = now
                self._pending_usage[account] = (
                    usage.app.max_pct if usage.app else None,
                    buc.max_pct if buc else None,
                    usage.regain_seconds(ig_id),
                )
                if buc is not None:
                    until = pause_until_from_usage(buc.max_pct, buc.regain_seconds, now, fallback)
                    if until:
                        self._pause(account, until, f"usage at {buc.max_pct} % (X-Business-Use-Case-Usage)")

    def _pause(self, scope: str, until: datetime, reason: str) -> None:
        current = self.pauses.get(scope)
        if current is None or current[0] < until:
            self.pauses[scope] = (until, reason)
            self._pending_pauses.append((scope, until, reason))
            log.warning("pausing %s until %s: %s", "the app" if scope == APP else scope, until, reason)
            self._flush_soon()  # other daemons learn of the pause from the database

    def _flush_soon(self) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self.flush())
        except RuntimeError:  # no loop (a synchronous caller): the periodic flush writes it
            return
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    def check_pause(self, account: str) -> None:
        """Raise Paused if no call may go to this account now (in-memory, no I/O)."""
        now = utcnow()
        for scope in (APP, account):
            p = self.pauses.get(scope)
            if p and p[0] > now:
                raise Paused(*p)

    async def load_pauses(self, account: str) -> AccountRecord | None:
        """Learn pauses and usage figures other daemons (or an earlier run) recorded: the
        database is the source of truth. Returns the account's row."""
        now = utcnow()

        def read() -> tuple[Any, Any]:
            with self.store.tx() as conn:
                return acc.app_paused_until(conn, now), acc.get_account(conn, account)

        app, rec = await self.db(read)
        if app:
            self._pause_quiet(APP, app[0], app[1])
        if rec and rec.paused_until and rec.paused_until > now:
            self._pause_quiet(account, rec.paused_until, rec.pause_reason or "paused")
        if rec and rec.usage_at and rec.usage_at > now - USAGE_WINDOW:
            seen = self._usage_at.get(account)
            if seen is None or rec.usage_at > seen:  # newer than what our own calls told us
                self.usage_pct[account] = float(max(rec.usage_app_pct or 0, rec.usage_buc_pct or 0))
                self._usage_at[account] = rec.usage_at
        return rec

    def _pause_quiet(self, scope: str, until: datetime, reason: str) -> None:
        current = self.pauses.get(scope)
        if current is None or current[0] < until:
            self.pauses[scope] = (until, reason)

    def spacing(self, account: str) -> float:
        return spacing_factor(self.usage_pct.get(account, 0.0), self.settings.limits.soft_threshold_pct)

    # --- learning processing times -----------------------------------------------
    def expected_processing_s(self, account: str, media_kind: str) -> float:
        return self.processing_s.get((account, media_kind), DEFAULT_PROCESSING_S[media_kind])

    def observe_processing(self, account: str, media_kind: str, seconds: float) -> None:
        """An exponential average of observed processing times (an upper bound: we see
        FINISHED only when we ask)."""
        old = self.processing_s.get((account, media_kind))
        self.processing_s[(account, media_kind)] = seconds if old is None else 0.7 * old + 0.3 * seconds

    def unflushed_calls(self) -> list[CallRecord]:
        """Calls made but not yet written to api_calls (the next flush writes them)."""
        return list(self._pending_calls)

    # --- background writes --------------------------------------------------------------
    async def flush(self) -> None:
        calls, self._pending_calls = self._pending_calls, []
        pauses, self._pending_pauses = self._pending_pauses, []
        usage, self._pending_usage = self._pending_usage, {}
        if not (calls or pauses or usage):
            return
        now = utcnow()

        def write() -> None:
            from scheduler.store.history import record_call

            with self.store.tx() as conn:
                for rec in calls:
                    record_call(conn, rec)
                # account rows in name order, then the app row: daemons flushing at the same
                # time on PostgreSQL then wait for each other instead of deadlocking
                for account in sorted(set(usage) | {scope for scope, _, _ in pauses if scope != APP}):
                    if account in usage:
                        app_pct, buc_pct, regain = usage[account]
                        acc.update_usage(conn, account, app_pct, buc_pct, regain, now)
                    for scope, until, reason in pauses:
                        if scope == account:
                            acc.pause_account(conn, scope, to_naive_utc(until), reason, now)
                for scope, until, reason in pauses:
                    if scope == APP:
                        acc.pause_app(conn, to_naive_utc(until), reason, now)

        try:
            await self.db(write)
        except Exception:
            log.exception("could not write %d API call rows; keeping them for the next flush", len(calls))
            self._pending_calls[:0] = calls
            self._pending_pauses[:0] = pauses
            self._pending_usage = {**usage, **self._pending_usage}
