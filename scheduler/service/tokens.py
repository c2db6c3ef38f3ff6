"""When to refresh an access token, and what a failed refresh means. Pure: no I/O, no clock.

Instagram Login tokens (graph.instagram.com) last 60 days and can be refreshed once they are
at least 24 h old and not yet expired; the new one lasts 60 days again. The API tells a token's
expiry only in the refresh answer (`expires_in`), so a token whose expiry is unknown is
refreshed soon after it is first seen. Facebook Login Page tokens (graph.facebook.com) do not
expire and are left alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from scheduler.graph.errors import ErrorClass, GraphError, GraphUnavailable

MIN_AGE = timedelta(hours=24)  # Meta refuses to refresh a younger token
FIRST_TRY_AFTER = timedelta(minutes=1)  # unknown expiry: soon after start, not in the start rush
TOO_YOUNG_MARGIN = timedelta(minutes=5)
RETRY_BASE = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=6)
WARN_DAYS_LEFT = (7, 1)  # token_expiring notifications
# 190 subcodes that mean the login itself is gone (facts sheet §5): only a person can fix them
REAUTH_SUBCODES = frozenset({458, 459, 460, 463, 464, 467, 492})


class Flavour(StrEnum):
    INSTAGRAM_LOGIN = "instagram_login"
    FACEBOOK_LOGIN = "facebook_login"


def flavour(base_url: str, login: str = "auto") -> Flavour:
    """Which login the accounts' tokens come from (setting graph.login). `auto`: Instagram
    Login only on graph.instagram.com; any other host (graph.facebook.com, a proxy, the
    emulator) is left alone unless the setting says `instagram`."""
    if login == "instagram":
        return Flavour.INSTAGRAM_LOGIN
    if login == "facebook":
        return Flavour.FACEBOOK_LOGIN
    host = (urlsplit(base_url).hostname or "").lower()
    return Flavour.INSTAGRAM_LOGIN if host == "graph.instagram.com" else Flavour.FACEBOOK_LOGIN


@dataclass(frozen=True)
class TokenFacts:
    """What igsched knows about the token it currently uses for one account."""

    seen_at: datetime  # first seen (seeded from the configuration) or issued (refreshed)
    expires_at: datetime | None = None  # known only after a refresh
    refreshed: bool = False  # True: `seen_at` is the exact issue time
    failures: int = 0  # failed refresh attempts since the last success
    last_attempt_at: datetime | None = None
    not_before: datetime | None = None  # after a "too young" refusal


class Verdict(StrEnum):
    REFRESH_NOW = "refresh_now"
    LATER = "later"
    LEAVE_ALONE = "leave_alone"  # never needs a refresh (Facebook Login)
    EXPIRED = "expired"  # past its expiry: only a new login helps


@dataclass(frozen=True)
class RefreshPlan:
    verdict: Verdict
    at: datetime | None  # REFRESH_NOW: now; LATER: when to look again; else None
    reason: str


def retry_delay(failures: int) -> timedelta:
    """5 min, 10 min, 20 min … capped at 6 h."""
    return min(RETRY_CAP, RETRY_BASE * (2 ** max(0, failures - 1)))


def plan_refresh(
    kind: Flavour, facts: TokenFacts, now: datetime, refresh_days_left: float
) -> RefreshPlan:
    """Refresh now, later (and when), or leave the token alone."""
    if kind is Flavour.FACEBOOK_LOGIN:
        return RefreshPlan(Verdict.LEAVE_ALONE, None, "Facebook Login Page tokens do not expire")
    if facts.expires_at is not None and facts.expires_at <= now:
        return RefreshPlan(Verdict.EXPIRED, None, "the token has expired: log in again")
    if facts.expires_at is None:
        wanted = facts.seen_at + FIRST_TRY_AFTER
        why = "expiry unknown until a refresh tells it"
    else:
        wanted = facts.expires_at - timedelta(days=refresh_days_left)
        why = f"fewer than {refresh_days_left:g} days left"
    if facts.refreshed or facts.expires_at is not None:
        # we know when it was issued: asking before 24 h would only be refused
        wanted = max(wanted, facts.seen_at + MIN_AGE)
    if facts.not_before is not None:
        wanted = max(wanted, facts.not_before)
    if facts.failures and facts.last_attempt_at is not None:
        wanted = max(wanted, facts.last_attempt_at + retry_delay(facts.failures))
    if wanted <= now:
        return RefreshPlan(Verdict.REFRESH_NOW, now, why)
    return RefreshPlan(Verdict.LATER, wanted, f"refresh due at {wanted.isoformat()}")


class Failure(StrEnum):
    TOO_YOUNG = "too_young"  # quietly try again once it is 24 h old
    NEEDS_REAUTH = "needs_reauth"  # the login is gone: a person must log in again
    RETRY = "retry"  # anything else: back off and try again


@dataclass(frozen=True)
class RefreshFailure:
    kind: Failure
    facts: TokenFacts  # updated facts to store
    retry_at: datetime | None


def judge_failure(facts: TokenFacts, now: datetime, error: Exception) -> RefreshFailure:
    """What a failed refresh means.

    Meta's answer to a token younger than 24 h is not documented, so a refusal of a token that
    may be that young counts as "too young" unless its subcode says the login itself is gone;
    the next regular call with the token tells whether it still works.
    """
    attempted = replace(facts, last_attempt_at=now)
    transient = isinstance(error, GraphUnavailable) or (
        isinstance(error, GraphError)
        and error.error_class
        in (ErrorClass.TRANSIENT, ErrorClass.THROTTLED, ErrorClass.APP_THROTTLED,
            ErrorClass.AMBIGUOUS)
    )
    subcode = error.subcode if isinstance(error, GraphError) else None
    if not transient and subcode in REAUTH_SUBCODES:
        return RefreshFailure(Failure.NEEDS_REAUTH, replace(attempted, failures=0), None)
    maybe_young = now - facts.seen_at < MIN_AGE
    if not transient and maybe_young and isinstance(error, GraphError):
        at = facts.seen_at + MIN_AGE + TOO_YOUNG_MARGIN
        return RefreshFailure(Failure.TOO_YOUNG, replace(attempted, not_before=at, failures=0), at)
    if (not transient and isinstance(error, GraphError)
            and error.error_class is ErrorClass.AUTH and error.code == 190):
        return RefreshFailure(Failure.NEEDS_REAUTH, replace(attempted, failures=0), None)
    failed = replace(attempted, failures=facts.failures + 1)
    return RefreshFailure(Failure.RETRY, failed, now + retry_delay(failed.failures))


def refreshed(now: datetime, expires_in_s: float) -> TokenFacts:
    """Facts for a token a refresh has just issued."""
    return TokenFacts(seen_at=now, expires_at=now + timedelta(seconds=expires_in_s), refreshed=True)


def expiry_warning(expires_at: datetime | None, now: datetime) -> int | None:
    """The token_expiring threshold (7 or 1 days left) the token is under now, if any.

    The smallest threshold crossed wins; the daemon records one notification per token expiry
    and threshold, so each is sent once.
    """
    if expires_at is None or expires_at <= now:
        return None
    left = expires_at - now
    crossed = [d for d in WARN_DAYS_LEFT if left <= timedelta(days=d)]
    return min(crossed) if crossed else None


def seconds_left(expires_at: datetime | None, now: datetime) -> float | None:
    return None if expires_at is None else (expires_at - now).total_seconds()


def fingerprint(token: str) -> str:
    """A one-way name for a token, so a new login can be noticed without storing the token.

    Unkeyed on purpose: rotating the encryption key must not make the configured token look
    new (it would replace a refreshed token with the stale configured one). Access tokens are
    long random strings, so the digest gives nothing away.
    """
    return hashlib.sha256(b"igsched-token:" + token.encode("utf-8")).hexdigest()


def choose_token(
    configured: str, seeded_fingerprint: str | None, has_refreshed: bool
) -> Literal["config", "refreshed"]:
    """Which token an account uses: the refreshed one, unless the configuration holds a token
    other than the one the account was seeded with (a new login), which then wins."""
    if not has_refreshed or seeded_fingerprint != fingerprint(configured):
        return "config"
    return "refreshed"
