"""Daemon duty: keep Instagram Login tokens alive (README "Running it for months").

Every `tokens.check_s` it looks at each account's token row: a configured token it has not
seen is seeded (a new login starts afresh); one that `plan_refresh` says is due is refreshed
by the one daemon that wins the row's lease, and the new token is stored encrypted, so every
replica calls with it at once. A token past its expiry, or one Meta refuses for good, marks
the account as needing re-authorisation (a person must log in again; a notification says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from scheduler.clock import to_aware
from scheduler.config import AccountSettings, TokenMissing
from scheduler.failures import Failures
from scheduler.graph.client import call_context
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.redaction import redact, remember_secret
from scheduler.service.refresh import attempt_refresh
from scheduler.service.secrets import KeyFileError
from scheduler.service.tokens import Failure, TokenFacts, Verdict, fingerprint, plan_refresh
from scheduler.store import TokenState

log = logging.getLogger(__name__)


def where_token(acct: AccountSettings) -> str:
    """Where a person puts a new token for the account."""
    if acct.token_env is not None:
        return f"environment variable {acct.token_env}"
    return f"token_file {acct.token_file}"


def relogin_advice(acct: AccountSettings) -> str:
    return (f"log in again with Instagram Login and put the new long-lived token in "
            f"{where_token(acct)}; its posts wait until then and resume by themselves")


def facts_of(state: TokenState) -> TokenFacts:
    return TokenFacts(seen_at=state.seen_at, expires_at=state.expires_at,
                      refreshed=state.refreshed_at is not None, failures=state.failures,
                      last_attempt_at=state.last_attempt_at, not_before=state.not_before)


class TokenRenewal:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.owner = f"{rt.identity}:{os.getpid()}"
        # a refresh is one call: the lease outlasts its timeout with room to store the answer
        self.lease_s = self.settings.graph.timeout_s + 60.0
        self.refreshed = 0  # refreshes this daemon made (tests, logs)
        self._task: asyncio.Task[None] | None = None
        self._failures = Failures(log, "the token refresh check")
        self._key_problem: str | None = None

    async def start(self) -> None:
        if self.rt.tokens.refreshes and self._task is None:
            try:  # redaction knows the stored tokens before the daemon logs a line about work
                await asyncio.to_thread(self.rt.tokens.remember_stored)
            except Exception:
                log.warning("could not read the stored tokens", exc_info=True)
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-tokens")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as e:
                self._failures.failed(e)
            else:
                self._failures.ok()
            await asyncio.sleep(self._failures.delay(self.settings.tokens.check_s))

    async def run_once(self) -> None:
        for acct in self.settings.accounts:
            try:
                configured = acct.token()
            except TokenMissing:
                continue  # its posts wait and say why
            state = await self.rt.db(self.rt.store.token_state, acct.name)
            fp = fingerprint(configured)
            if state is None or state.seeded_fingerprint != fp:
                if state is not None:
                    log.info("account %s: a new token in %s (a new login) replaces the stored one",
                             acct.name, where_token(acct))
                state = await self.rt.db(self.rt.store.seed_token, acct.name, fp)
            with call_context(account=acct.name):
                await self._consider(acct, configured, state)

    async def _consider(self, acct: AccountSettings, configured: str, state: TokenState) -> None:
        rt = self.rt
        facts = facts_of(state)
        now = rt.clock.now()
        plan = plan_refresh(rt.tokens.kind, facts, now, self.settings.tokens.refresh_days_left)
        if plan.verdict is Verdict.EXPIRED:
            await self._needs_reauth(acct, f"its token expired on "
                                     f"{to_aware(state.expires_at or now):%Y-%m-%d %H:%M} UTC")
            return
        if plan.verdict is not Verdict.REFRESH_NOW:
            return
        try:
            cipher = await asyncio.to_thread(rt.tokens.cipher)
        except KeyFileError as e:
            # refreshing kills the old token: never refresh without a way to keep the new one
            if self._key_problem != str(e):
                log.error("tokens are not refreshed: %s", e)
                self._key_problem = str(e)
            return
        self._key_problem = None
        if not await rt.db(rt.store.claim_refresh, acct.name, state.version, self.owner, self.lease_s):
            return  # another daemon is refreshing it, or just did
        try:
            token = await asyncio.to_thread(rt.tokens.pick, acct, configured, state)
            result = await attempt_refresh(rt.graph, acct.name, token, facts, now)
        except (Paused, TokenMissing) as e:
            await rt.db(rt.store.refresh_failed, acct.name, self.owner, now, state.failures,
                        e.until if isinstance(e, Paused) else None, redact(str(e)) or "")
            return
        if result.new_token is not None:
            remember_secret(result.new_token)
            ciphertext = cipher.encrypt(result.new_token)
            stored = await rt.db(rt.store.store_refreshed, acct.name, ciphertext,
                                 result.facts.seen_at, result.facts.expires_at)
            if stored:
                self.refreshed += 1
            else:
                log.warning("account %s: a newer refreshed token was already stored", acct.name)
            return
        failure = result.failure
        assert failure is not None
        await rt.db(rt.store.refresh_failed, acct.name, self.owner, now, result.facts.failures,
                    result.facts.not_before, failure.kind.value)
        if failure.kind is Failure.NEEDS_REAUTH:
            await self._needs_reauth(acct, "Meta refused to refresh its token (expired or revoked)")

    async def _needs_reauth(self, acct: AccountSettings, why: str) -> None:
        rt = self.rt
        rec = await rt.db(rt.store.account, acct.name)
        if rec is not None and rec.needs_reauth:
            return
        reason = f"{why}: {relogin_advice(acct)}"
        log.error("account %s needs re-authorisation: %s", acct.name, reason)
        await rt.db(rt.store.set_reauth, acct.name, True, reason)
