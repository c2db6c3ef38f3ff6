"""GraphClient.refresh_token against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from scheduler.clock import utcnow
from scheduler.graph import CallRecord, GraphClient, GraphError
from scheduler.service.refresh import attempt_refresh
from scheduler.service.tokens import Failure, TokenFacts, judge_failure, refreshed

emulator = pytest.importorskip("scheduler.emulator")

IG = "17841400000000001"
OLD = "IGAAold-token-0123456789abcdefghijkl"


@pytest.fixture
def emu() -> Any:
    with emulator.RunningEmulator() as running:
        running.state.add_account(IG, username="shop")
        yield running


def test_refresh_gives_a_new_token_and_the_old_one_stops_working(emu: Any) -> None:
    emu.state.set_token(IG, OLD, age_s=55 * 86400, lifetime_s=60 * 86400)
    records: list[CallRecord] = []

    async def main() -> tuple[str, int | None, GraphError]:
        async with GraphClient(emu.base_url, "v23.0", 10.0, on_call=records.append) as client:
            fresh = await client.refresh_token(OLD)
            assert (await client.me(fresh.access_token))["id"] == IG
            with pytest.raises(GraphError) as old_fails:
                await client.me(OLD)
            return fresh.access_token, fresh.expires_in, old_fails.value

    new, expires_in, old_error = asyncio.run(main())
    assert new != OLD and expires_in == 60 * 86400
    assert old_error.code == 190
    assert records[0].endpoint == "GET /refresh_access_token" and records[0].outcome == "ok"
    assert records[0].path == "/refresh_access_token"
    logged = json.dumps(emu.state.requests)
    assert OLD not in logged and new not in logged
    assert new not in repr(records) and OLD not in repr(records)
    facts = refreshed(utcnow(), expires_in or 0)
    assert facts.expires_at is not None and facts.refreshed
    # the emulator's 60 days run from the refresh: 59 days on, the new token still works
    emu.state.advance(59 * 86400)

    async def later() -> None:
        async with GraphClient(emu.base_url, "v23.0", 10.0) as client:
            assert (await client.me(new))["id"] == IG
            emu.state.advance(2 * 86400)
            with pytest.raises(GraphError) as expired:
                await client.me(new)
            assert (expired.value.code, expired.value.subcode) == (190, 463)

    asyncio.run(later())


def test_a_token_younger_than_a_day_is_refused_and_judged_too_young(emu: Any) -> None:
    emu.state.set_token(IG, OLD, age_s=3600)

    async def main() -> GraphError:
        async with GraphClient(emu.base_url, "v23.0", 10.0) as client:
            with pytest.raises(GraphError) as refused:
                await client.refresh_token(OLD)
            assert (await client.me(OLD))["id"] == IG  # still the working token
            return refused.value

    err = asyncio.run(main())
    now = utcnow()
    assert judge_failure(TokenFacts(seen_at=now), now, err).kind is Failure.TOO_YOUNG
    emu.state.advance(86400)

    async def again() -> None:
        async with GraphClient(emu.base_url, "v23.0", 10.0) as client:
            assert (await client.refresh_token(OLD)).access_token != OLD

    asyncio.run(again())


def test_an_expired_token_cannot_be_refreshed(emu: Any) -> None:
    emu.state.set_token(IG, OLD, age_s=61 * 86400, lifetime_s=60 * 86400)

    async def main() -> GraphError:
        async with GraphClient(emu.base_url, "v23.0", 10.0) as client:
            with pytest.raises(GraphError) as refused:
                await client.refresh_token(OLD)
            return refused.value

    err = asyncio.run(main())
    now = utcnow()
    assert (err.code, err.subcode) == (190, 463)
    assert judge_failure(TokenFacts(seen_at=now), now, err).kind is Failure.NEEDS_REAUTH
    assert OLD not in str(err)


def test_attempt_refresh_success_too_young_and_gone(
    emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()

    async def attempt(token: str, facts: TokenFacts) -> Any:
        async with GraphClient(emu.base_url, "v23.0", 10.0) as client:
            return await attempt_refresh(client, "shop", token, facts, now)

    emu.state.set_token(IG, OLD, age_s=3600)
    with caplog.at_level(logging.DEBUG, logger="scheduler.service.refresh"):
        young = asyncio.run(attempt(OLD, TokenFacts(seen_at=now)))
    assert young.new_token is None and young.failure.kind is Failure.TOO_YOUNG
    assert young.facts.not_before is not None
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]  # quietly

    emu.state.set_token(IG, OLD, age_s=40 * 86400, lifetime_s=60 * 86400)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scheduler.service.refresh"):
        done = asyncio.run(attempt(OLD, TokenFacts(seen_at=now)))
    assert done.failure is None and done.new_token and done.new_token != OLD
    assert done.facts.refreshed and done.facts.expires_at is not None
    assert done.new_token not in repr(done) and done.new_token not in caplog.text

    gone = asyncio.run(attempt(OLD, TokenFacts(seen_at=now - timedelta(days=40))))
    assert gone.failure.kind is Failure.NEEDS_REAUTH  # the old token died with the refresh
