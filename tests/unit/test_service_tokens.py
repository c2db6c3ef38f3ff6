"""Token refresh decisions with a fake clock: when, whether, and what a refusal means."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from scheduler.graph.errors import GraphError, GraphUnavailable
from scheduler.service.tokens import (
    MIN_AGE,
    Failure,
    Flavour,
    TokenFacts,
    Verdict,
    choose_token,
    expiry_warning,
    fingerprint,
    flavour,
    judge_failure,
    plan_refresh,
    refreshed,
    retry_delay,
)

T0 = datetime(2026, 1, 1, 12, 0)
IG = Flavour.INSTAGRAM_LOGIN
DAY = timedelta(days=1)


def test_flavour_from_the_api_host() -> None:
    assert flavour("https://graph.facebook.com") is Flavour.FACEBOOK_LOGIN
    assert flavour("https://graph.instagram.com/") is IG
    # any other host (a proxy, the emulator) says which login in graph.login
    assert flavour("http://127.0.0.1:8790") is Flavour.FACEBOOK_LOGIN
    assert flavour("http://127.0.0.1:8790", "instagram") is IG
    assert flavour("https://graph.instagram.com", "facebook") is Flavour.FACEBOOK_LOGIN


def test_facebook_login_tokens_are_left_alone() -> None:
    plan = plan_refresh(Flavour.FACEBOOK_LOGIN, TokenFacts(seen_at=T0 - 90 * DAY), T0, 30)
    assert plan.verdict is Verdict.LEAVE_ALONE and plan.at is None


def test_unknown_expiry_is_refreshed_soon_after_it_is_first_seen() -> None:
    facts = TokenFacts(seen_at=T0)
    assert plan_refresh(IG, facts, T0, 30).verdict is Verdict.LATER
    assert plan_refresh(IG, facts, T0, 30).at == T0 + timedelta(minutes=1)
    assert plan_refresh(IG, facts, T0 + timedelta(minutes=1), 30).verdict is Verdict.REFRESH_NOW


def test_known_expiry_waits_for_the_days_left_threshold() -> None:
    facts = refreshed(T0, 60 * 86400)  # a token just issued for 60 days
    plan = plan_refresh(IG, facts, T0 + DAY, 30)
    assert plan.verdict is Verdict.LATER and plan.at == T0 + 30 * DAY
    assert plan_refresh(IG, facts, T0 + 30 * DAY, 30).verdict is Verdict.REFRESH_NOW
    assert plan_refresh(IG, facts, T0 + 55 * DAY, 30).verdict is Verdict.REFRESH_NOW
    assert plan_refresh(IG, facts, T0 + 60 * DAY, 30).verdict is Verdict.EXPIRED


def test_a_refreshed_token_is_never_asked_before_it_is_a_day_old() -> None:
    facts = refreshed(T0, 20 * 86400)  # short-lived answer: threshold already crossed
    plan = plan_refresh(IG, facts, T0 + timedelta(hours=1), 30)
    assert plan.verdict is Verdict.LATER and plan.at == T0 + MIN_AGE
    assert plan_refresh(IG, facts, T0 + MIN_AGE, 30).verdict is Verdict.REFRESH_NOW


def test_too_young_refusal_is_retried_quietly_after_24_hours() -> None:
    facts = TokenFacts(seen_at=T0)
    now = T0 + timedelta(minutes=1)
    refusal = GraphError("token too young", code=100, http_status=400)
    out = judge_failure(facts, now, refusal)
    assert out.kind is Failure.TOO_YOUNG
    assert out.retry_at is not None and out.retry_at >= T0 + MIN_AGE
    assert out.facts.failures == 0
    plan = plan_refresh(IG, out.facts, now + timedelta(hours=2), 30)
    assert plan.verdict is Verdict.LATER and plan.at == out.retry_at
    assert plan_refresh(IG, out.facts, out.retry_at, 30).verdict is Verdict.REFRESH_NOW


@pytest.mark.parametrize("subcode", [463, 460, 458])
def test_a_gone_login_needs_reauthorisation(subcode: int) -> None:
    facts = TokenFacts(seen_at=T0)
    err = GraphError("Session has expired", code=190, subcode=subcode, http_status=400)
    assert judge_failure(facts, T0 + timedelta(minutes=1), err).kind is Failure.NEEDS_REAUTH
    old = TokenFacts(seen_at=T0 - 10 * DAY)
    plain = GraphError("Invalid OAuth access token", code=190, http_status=400)
    assert judge_failure(old, T0, plain).kind is Failure.NEEDS_REAUTH


def test_transport_failures_back_off() -> None:
    facts = TokenFacts(seen_at=T0 - 40 * DAY)
    err = GraphUnavailable("connect", "GET /refresh_access_token: ConnectError")
    first = judge_failure(facts, T0, err)
    assert first.kind is Failure.RETRY and first.retry_at == T0 + retry_delay(1)
    second = judge_failure(first.facts, T0 + timedelta(minutes=5), err)
    assert second.facts.failures == 2 and second.retry_at == T0 + timedelta(minutes=15)
    plan = plan_refresh(IG, second.facts, T0 + timedelta(minutes=6), 30)
    assert plan.verdict is Verdict.LATER and plan.at == second.retry_at
    # a transient failure of a young token is still a transient failure, not "too young"
    assert judge_failure(TokenFacts(seen_at=T0), T0, err).kind is Failure.RETRY
    assert retry_delay(30) == timedelta(hours=6)


def test_expiry_warnings_at_seven_and_one_day() -> None:
    exp = T0 + 60 * DAY
    assert expiry_warning(None, T0) is None
    assert expiry_warning(exp, exp - 8 * DAY) is None
    assert expiry_warning(exp, exp - 7 * DAY) == 7
    assert expiry_warning(exp, exp - 2 * DAY) == 7
    assert expiry_warning(exp, exp - timedelta(hours=23)) == 1
    assert expiry_warning(exp, exp) is None  # expired: that is needs_reauth, not a warning


def test_a_new_configured_token_wins_over_the_refreshed_one() -> None:
    seeded = fingerprint("IGAA-first-login")
    assert seeded != fingerprint("IGAA-second-login") and "IGAA" not in seeded
    assert choose_token("IGAA-first-login", seeded, has_refreshed=True) == "refreshed"
    assert choose_token("IGAA-second-login", seeded, has_refreshed=True) == "config"
    assert choose_token("IGAA-first-login", seeded, has_refreshed=False) == "config"
    assert choose_token("IGAA-first-login", None, has_refreshed=True) == "config"
