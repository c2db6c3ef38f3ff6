"""What every pipeline step shares: settings, the clock, the two seams (store, graph), and the
background duties, each in its own module: pauses and headroom (pauses.py), processing-time
learning (processing.py), the call-log flusher (calllog.py).

The graph client reports each call to `on_call` (synchronously, in the event loop), and asks
the pauses before each call (its pre-call hook), so no step guards its calls by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

import httpx

from scheduler.clock import SYSTEM_CLOCK, Clock
from scheduler.config import AccountSettings, Settings
from scheduler.graph.client import CallContext, CallRecord, GraphClient
from scheduler.graph.endpoints import TOKEN_CHECK
from scheduler.graph.errors import ErrorClass
from scheduler.pipeline.calllog import CallLog
from scheduler.pipeline.pauses import Paused, Pauses
from scheduler.pipeline.permalinkcache import Permalinks
from scheduler.pipeline.processing import ProcessingTimes
from scheduler.pipeline.quotareads import QuotaReads
from scheduler.service.credentials import TokenProvider
from scheduler.store import AccountRecord, Claim, PostRecord, Store
from scheduler.tls import tls_context

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["Paused", "Runtime"]


class Runtime:
    def __init__(self, settings: Settings, store: Store, identity: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.store = store
        self.identity = identity
        self.clock = clock
        # by name: every step asks, and an agency's list of accounts is long
        self._accounts = {a.name: a for a in settings.accounts}
        self.pauses = Pauses(settings, clock, self._accounts)
        self.calllog = CallLog(store)
        self.processing = ProcessingTimes(store)
        self.quota = QuotaReads()  # publishing-quota reads: one at a time per account
        self.permalinks = Permalinks()  # permalinks read in bulk, per account
        self.container_reservations: dict[str, int] = {}  # budget.py: slots taken, not yet used
        self.calls_made = 0
        # which token a step calls with: the configured one or a refreshed one (store)
        self.tokens = TokenProvider(settings, store)
        # background duties listen here (metrics): each call, each post that went live
        self.call_observers: list[Callable[[CallRecord], None]] = []
        self.publish_observers: list[Callable[[PostRecord, float], None]] = []
        # accounts whose token Meta refused since this daemon last saw it work: a step that
        # was claimed before (with the account's row as it was then) checks the token first
        self.auth_refused: set[str] = set()
        self.graph = GraphClient(
            settings.graph.base_url, settings.graph.api_version, settings.graph.timeout_s,
            on_call=self.on_call, before_call=self.before_call, clock=clock,
        )
        # for the media check (not the Graph API: no token, redirects followed like Meta does)
        self.http = httpx.AsyncClient(timeout=settings.preflight.timeout_s, follow_redirects=True,
                                      verify=tls_context())  # one per process (scheduler/tls.py)

    async def aclose(self) -> None:
        await self.calllog.stop()
        await self.graph.aclose()
        await self.http.aclose()

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a (blocking) store call off the event loop (Store.call: in a worker thread, or
        a grouped write straight into SQLite's group commit)."""
        return await self.store.call(fn, *args, **kwargs)

    def account_settings(self, name: str) -> AccountSettings | None:
        return self._accounts.get(name)

    def ig_user_id(self, name: str) -> str | None:
        a = self._accounts.get(name)
        return a.ig_user_id if a else None

    def before_call(self, ctx: CallContext, endpoint: str) -> None:
        """The Graph client's pre-call hook: no call to a paused account (or app), and none
        but the token check to an account whose token Meta just refused: steps of that
        account already under way stop before their call and check the token first."""
        self.pauses.guard(ctx, endpoint)
        if ctx.account in self.auth_refused and endpoint != TOKEN_CHECK:
            # a post's next step checks the token itself at once; anything else waits for
            # the re-authorisation check
            wait = 0.0 if ctx.post_id is not None else self.settings.limits.reauth_check_s
            raise Paused(self.clock.now() + timedelta(seconds=wait),
                         f"Meta refused the token of {ctx.account}; checking it first")

    def on_call(self, rec: CallRecord) -> None:
        self.calls_made += 1
        self.calllog.add_call(rec)
        if rec.error_class is ErrorClass.AUTH and rec.account:
            self.auth_refused.add(rec.account)
        learnt = self.pauses.observe(rec)
        for account, figures in learnt.usage.items():
            self.calllog.add_usage(account, figures)
        for scope, until, reason in learnt.pauses:
            self.calllog.add_pause(scope, until, reason)
        for observe in self.call_observers:
            observe(rec)

    def published(self, post: PostRecord, lateness_s: float) -> None:
        """A post went live `lateness_s` after its time (observers must not block)."""
        for observe in self.publish_observers:
            observe(post, lateness_s)

    def pause_of(self, account: str) -> Paused | None:
        """The pause that stops calls to this account now, if any (in memory, no I/O)."""
        return self.pauses.current(account)

    def absorb_claim(self, claim: Claim) -> None:
        """Take in what the claim read with the posts: their accounts' pauses and usage, the
        app pause (what load_pauses would read for each step)."""
        for name, rec in claim.accounts.items():
            self.pauses.absorb(name, claim.app_pause, rec)

    async def load_pauses(self, account: str) -> AccountRecord | None:
        """Learn pauses and usage figures other daemons (or an earlier run) recorded; returns
        the account's row."""
        app, rec = await self.db(self.store.pause_state, account)
        self.pauses.absorb(account, app, rec)
        return rec

    def spacing(self, account: str) -> float:
        return self.pauses.spacing(account)
