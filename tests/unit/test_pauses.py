"""Pauses and the Graph client's pre-call hook, on a fake clock: a throttling answer pauses the
account (or the app), no further call is sent to it until the pause ends, other accounts
carry on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from scheduler.clock import FakeClock, to_aware
from scheduler.graph.client import CallRecord, GraphClient, call_context
from scheduler.graph.errors import ErrorClass
from scheduler.graph.usage import Usage
from scheduler.pipeline.pauses import APP, Paused, Pauses
from tests.helpers import settings_for

SETTINGS = settings_for("sqlite://")


def _answer(clock: FakeClock, account: str | None, cls: ErrorClass | None, code: int | None = None) -> CallRecord:
    return CallRecord(
        method="GET", endpoint="GET /{container-id}", path="/v23.0/1", http_status=400 if cls else 200,
        duration_ms=1.0, error_code=code, error_subcode=None, error_message=None, fbtrace_id=None,
        usage=Usage(), outcome="error" if cls else "ok", account=account, post_id=None,
        started_at=to_aware(clock.now()), error_class=cls,
    )


def test_a_throttling_answer_pauses_that_account_until_the_backoff_ends() -> None:
    clock = FakeClock()
    pauses = Pauses(SETTINGS, clock)
    learnt = pauses.observe(_answer(clock, "shop", ErrorClass.THROTTLED, 17))
    until = clock.now() + timedelta(seconds=SETTINGS.limits.throttle_backoff_s)
    assert learnt.pauses == [("shop", until, "throttled (Graph error 17)")]
    p = pauses.current("shop")
    assert p is not None and p.until == until
    assert pauses.current("brand2") is None
    # a shorter pause never shortens a longer one
    assert pauses.observe(_answer(clock, "shop", None)).pauses == []
    clock.advance(SETTINGS.limits.throttle_backoff_s)
    assert pauses.current("shop") is None


def test_an_app_throttle_pauses_every_account() -> None:
    clock = FakeClock()
    pauses = Pauses(SETTINGS, clock)
    [(scope, _, _)] = pauses.observe(_answer(clock, "shop", ErrorClass.APP_THROTTLED, 4)).pauses
    assert scope == APP
    assert pauses.current("shop") is not None and pauses.current("brand2") is not None


def test_the_pre_call_hook_stops_calls_to_a_paused_account_before_anything_is_sent() -> None:
    clock = FakeClock()
    pauses = Pauses(SETTINGS, clock)
    sent: list[str] = []
    recorded: list[CallRecord] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={"id": "c1", "status_code": "FINISHED"})

    async def main() -> None:
        async with GraphClient("https://graph.test", "v23.0", 5.0, recorded.append, before_call=pauses.guard,
                               transport=httpx.MockTransport(handler), clock=clock) as graph:
            with call_context(account="shop"):
                assert (await graph.container_status("c1", "tok")).status_code == "FINISHED"
            pauses.observe(_answer(clock, "shop", ErrorClass.THROTTLED, 17))
            with call_context(account="shop"), pytest.raises(Paused):
                await graph.container_status("c1", "tok")
            with call_context(account="brand2"):  # another account carries on
                await graph.container_status("c1", "tok")
            clock.advance(SETTINGS.limits.throttle_backoff_s)
            with call_context(account="shop"):
                await graph.container_status("c1", "tok")

    asyncio.run(main())
    assert len(sent) == 3 and len(recorded) == 3  # the refused call was neither sent nor recorded
    assert recorded[-1].started_at == to_aware(clock.now())  # stamped by the injected clock
