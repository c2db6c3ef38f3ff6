"""The call-log flusher on a database that refuses every write (read-only here; a full disk
behaves the same): one log line per kind of failure, retries backing off, no SQL or values
in the log, and nothing lost once the database takes writes again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.clock import to_aware, utcnow
from scheduler.graph.client import CallRecord
from scheduler.graph.usage import Usage
from scheduler.pipeline.calllog import MAX_BACKOFF_S, USAGE_REWRITE_S, CallLog
from scheduler.store import Store, UsageFigures
from tests.helpers import counted, settings_for

SECRET_LOOKING = "caption-text-that-must-not-be-logged"


def _call(n: int) -> CallRecord:
    return CallRecord(
        method="POST", endpoint="POST /{ig-user-id}/media", path=f"/v23.0/1/media/{n}", http_status=400,
        duration_ms=1.0, error_code=100, error_subcode=None, error_message=SECRET_LOOKING, fbtrace_id=None,
        usage=Usage(), outcome="error", account="shop", post_id=None, started_at=to_aware(utcnow()),
    )


def test_a_refusing_database_logs_once_backs_off_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "igsched.db"
    url = f"sqlite:///{path}"
    Store(url).sync_accounts(settings_for(url).accounts)
    read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true", upgrade=False)
    now = [0.0]
    log = CallLog(read_only, timer=lambda: now[0])
    for n in range(5):
        log.add_call(_call(n))

    async def flush_for(seconds: float) -> int:
        attempts = 0
        end = now[0] + seconds
        while now[0] < end:  # the daemon's 0.5 s interval, in simulated time
            before = log.failures
            await log.flush()
            attempts += log.failures - before
            now[0] += 0.5
        return attempts

    with caplog.at_level(logging.DEBUG, logger="scheduler.pipeline.calllog"):
        attempts = asyncio.run(flush_for(300))
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "readonly" in message and "5 API call row" in message
    assert SECRET_LOOKING not in message and "INSERT" not in message.upper()
    # 0.5, 1, 2, … 32, then every 60 s: about a dozen tries in 5 minutes instead of 600
    assert 8 <= attempts <= 14, attempts
    assert log._retry_at - now[0] <= MAX_BACKOFF_S

    # writable again: everything kept is written, and the recovery is said once
    log.store = Store(url)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scheduler.pipeline.calllog"):
        asyncio.run(log.flush(force=True))
    assert [r.getMessage() for r in caplog.records] == [f"call log written again after {attempts} failed tries"]
    assert log.failures == 0 and log.unwritten_calls() == []
    with Store(url).engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM api_calls")).scalar_one() == 5


def test_calls_being_written_still_count_as_unwritten_until_their_commit(tmp_path: Path) -> None:
    """The container budget counts the table plus the unwritten calls: a flush in progress
    must not hide its calls from both (a fifth container was created past a budget of four)."""
    url = f"sqlite:///{tmp_path / 'igsched.db'}"
    store = Store(url)
    store.sync_accounts(settings_for(url).accounts)
    entered, go_on = asyncio.Event(), asyncio.Event()

    class SlowStore:
        def record_activity(self, *args: object) -> None:
            loop.call_soon_threadsafe(entered.set)
            asyncio.run_coroutine_threadsafe(go_on.wait(), loop).result(timeout=5)
            store.record_activity(*args)  # type: ignore[arg-type]

        async def call(self, fn: Any, *args: object) -> object:  # as Store.call, in a thread
            return await asyncio.to_thread(fn, *args)

    async def main() -> None:
        log = CallLog(SlowStore())  # type: ignore[arg-type]
        log.add_call(_call(1))
        flushing = asyncio.create_task(log.flush())
        await entered.wait()
        log.add_call(_call(2))  # made while the flush writes the first
        assert [c.path for c in log.unwritten_calls()] == ["/v23.0/1/media/1", "/v23.0/1/media/2"]
        go_on.set()
        await flushing
        assert [c.path for c in log.unwritten_calls()] == ["/v23.0/1/media/2"]

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM api_calls")).scalar_one() == 1


def test_usage_figures_unchanged_since_written_are_not_written_again_for_a_minute(db_url: str) -> None:
    """Every call brings its account's usage figures, and each write locks the account's row
    (which a publish of the account locks too): unchanged figures are written again only
    USAGE_REWRITE_S after, changed ones at once."""
    store = Store(db_url)
    store.sync_accounts(settings_for(db_url).accounts)
    now = [0.0]
    log = CallLog(store, timer=lambda: now[0])

    async def calls_then_flush(figures: UsageFigures, calls: int = 3) -> None:
        for _ in range(calls):
            log.add_usage("shop", figures)
            await log.flush()
            now[0] += 0.5

    def usage_updates(seen: list[str]) -> int:
        return sum(1 for q in seen if q.lstrip().upper().startswith("UPDATE ACCOUNTS SET USAGE"))

    with counted(store.engine) as seen:
        asyncio.run(calls_then_flush(UsageFigures(10, 20, 0.0)))
        assert usage_updates(seen) == 1  # the first; the two same after it are not written
        asyncio.run(calls_then_flush(UsageFigures(10, 21, 0.0)))
        assert usage_updates(seen) == 2  # changed: written at once
        now[0] += USAGE_REWRITE_S
        asyncio.run(calls_then_flush(UsageFigures(10, 21, 0.0), calls=1))
        assert usage_updates(seen) == 3  # unchanged, but a minute on: written again, with its time
    shop = store.account("shop")
    assert shop is not None and (shop.usage_app_pct, shop.usage_buc_pct) == (10, 21)
