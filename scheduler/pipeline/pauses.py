"""Pauses and headroom: which account (or the whole app) no call may go to, and until when.

The Graph client reports each call (`observe`, synchronously, in the event loop): usage
figures and throttling answers are noted at once, in memory, so that no further call goes to
a paused account; the call log then writes them for other daemons. The client's pre-call hook
(`guard`) refuses a call to a paused account by raising Paused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.clock import Clock
from scheduler.config import AccountSettings, Settings
from scheduler.graph.client import CallContext, CallRecord
from scheduler.graph.errors import ErrorClass
from scheduler.headroom import pause_until_from_error, pause_until_from_usage, spacing_factor
from scheduler.store import AccountRecord, UsageFigures

log = logging.getLogger(__name__)
APP = "*"  # key of the app-wide pause

# usage figures cover Meta's rolling hour; an older figure says nothing about now
USAGE_WINDOW = timedelta(hours=1)


class Paused(Exception):
    """No call may go to this account (or the app) before `until`."""

    def __init__(self, until: datetime, reason: str) -> None:
        self.until, self.reason = until, reason
        super().__init__(reason)


@dataclass
class Learnt:
    """What one call taught: new or longer pauses, and the account's usage figures."""

    pauses: list[tuple[str, datetime, str]] = field(default_factory=list)  # (scope, until, reason)
    usage: dict[str, UsageFigures] = field(default_factory=dict)


class Pauses:
    def __init__(self, settings: Settings, clock: Clock,
                 accounts: Mapping[str, AccountSettings] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._accounts = accounts if accounts is not None else {a.name: a for a in settings.accounts}
        self.pauses: dict[str, tuple[datetime, str]] = {}
        self.usage_pct: dict[str, float] = {}
        self._usage_at: dict[str, datetime] = {}  # when usage_pct[account] was reported

    def observe(self, rec: CallRecord) -> Learnt:
        now = self.clock.now()
        out = Learnt()
        account = rec.account
        a = self._accounts.get(account) if account else None
        ig_id = a.ig_user_id if a else None
        usage = rec.usage
        fallback = self.settings.limits.throttle_backoff_s
        # a throttling answer first, so that its reason (not the usage figure that comes
        # with it) is what `list` and `quota` show
        cls = rec.error_class
        if cls is not None:
            regain = usage.regain_seconds(ig_id) if usage is not None else 0.0
            what = f"Graph error {rec.error_code}" + (f"/{rec.error_subcode}" if rec.error_subcode else "")
            if cls is ErrorClass.APP_THROTTLED:
                self._pause(out, APP, pause_until_from_error(regain, now, fallback), f"app throttled ({what})")
            elif cls is ErrorClass.THROTTLED and account:
                self._pause(out, account, pause_until_from_error(regain, now, fallback), f"throttled ({what})")
            elif cls is ErrorClass.SPAM and account:
                self._pause(out, account, now + timedelta(seconds=fallback * 6),
                            f"flagged as spam ({what}); backing off hard")
            elif cls is ErrorClass.POLICY_BLOCKED and account:
                self._pause(out, account, pause_until_from_error(regain, now, fallback),
                            f"temporarily blocked by Meta for policy reasons ({what})")
            elif cls is ErrorClass.ACCOUNT_RESTRICTED and account:
                # without a pause, the other posts would clear the flag with a working token
                # check and hit the error one after another
                self._pause(out, account, now + timedelta(seconds=self.settings.limits.reauth_check_s),
                            f"account restricted or checkpointed ({what}): a person must act in the Instagram app")
        if usage is not None and not usage.is_empty:
            if usage.app is not None:
                until = pause_until_from_usage(usage.app.max_pct, 0, now, fallback)
                if until:
                    self._pause(out, APP, until, f"app usage at {usage.app.max_pct} % (X-App-Usage)")
            if account:
                buc = usage.buc_figures(ig_id)
                self.usage_pct[account] = usage.max_pct(ig_id)
                self._usage_at[account] = now
                out.usage[account] = UsageFigures(
                    usage.app.max_pct if usage.app else None,
                    buc.max_pct if buc else None,
                    usage.regain_seconds(ig_id),
                )
                if buc is not None:
                    until = pause_until_from_usage(buc.max_pct, buc.regain_seconds, now, fallback)
                    if until:
                        self._pause(out, account, until, f"usage at {buc.max_pct} % (X-Business-Use-Case-Usage)")
        return out

    def _pause(self, out: Learnt, scope: str, until: datetime, reason: str) -> None:
        current = self.pauses.get(scope)
        if current is None or current[0] < until:
            self.pauses[scope] = (until, reason)
            out.pauses.append((scope, until, reason))
            log.warning("pausing %s until %s: %s", "the app" if scope == APP else scope, until, reason)

    def current(self, account: str) -> Paused | None:
        """The pause that stops calls to this account now, if any (in memory, no I/O)."""
        now = self.clock.now()
        for scope in (APP, account):
            p = self.pauses.get(scope)
            if p and p[0] > now:
                return Paused(*p)
        return None

    def guard(self, ctx: CallContext, endpoint: str = "") -> None:
        """The Graph client's pre-call hook: no call to a paused account (or app)."""
        p = self.current(ctx.account or APP)
        if p is not None:
            raise p

    def absorb(self, account: str, app: tuple[datetime, str] | None, rec: AccountRecord | None) -> None:
        """Take in the pauses and usage figures other daemons (or an earlier run) recorded:
        the database is the source of truth."""
        now = self.clock.now()
        if app:
            self._pause_quiet(APP, app[0], app[1])
        if rec and rec.paused_until and rec.paused_until > now:
            self._pause_quiet(account, rec.paused_until, rec.pause_reason or "paused")
        if rec and rec.usage_at and rec.usage_at > now - USAGE_WINDOW:
            seen = self._usage_at.get(account)
            if seen is None or rec.usage_at > seen:  # newer than what our own calls told us
                self.usage_pct[account] = float(max(rec.usage_app_pct or 0, rec.usage_buc_pct or 0))
                self._usage_at[account] = rec.usage_at

    def _pause_quiet(self, scope: str, until: datetime, reason: str) -> None:
        current = self.pauses.get(scope)
        if current is None or current[0] < until:
            self.pauses[scope] = (until, reason)

    def spacing(self, account: str) -> float:
        return spacing_factor(self.usage_pct.get(account, 0.0), self.settings.limits.soft_threshold_pct)
