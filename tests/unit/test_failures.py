"""A loop that keeps failing says so once per kind of failure, backs off, and says when it
works again; no SQL statement or parameter reaches the log."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from scheduler.failures import MAX_BACKOFF_S, Failures, failure_kind


def _db_error() -> sa.exc.OperationalError:
    orig = OSError("database or disk is full")
    return sa.exc.OperationalError("INSERT INTO posts (caption) VALUES (?)", ("secret caption",), orig)


def test_one_line_per_kind_until_it_works_again(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.failures")
    f = Failures(log, "claiming due posts")
    with caplog.at_level(logging.INFO, logger="test.failures"):
        for _ in range(50):
            f.failed(_db_error())
        f.failed(ValueError("another kind"))
        f.ok()
        f.ok()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "claiming due posts failed: OSError: database or disk is full; trying again (said once until it works)",
        "claiming due posts failed: ValueError: another kind; trying again (said once until it works)",
        "claiming due posts works again after 51 failure(s)",
    ]
    assert not any(r.exc_info for r in caplog.records)  # no traceback above DEBUG
    assert "secret caption" not in caplog.text and "INSERT" not in caplog.text


def test_the_wait_doubles_while_failing_and_resets_after() -> None:
    f = Failures(logging.getLogger("test.failures"), "x")
    assert f.delay(5.0) == 5.0
    waits = []
    for _ in range(6):
        f.failed(RuntimeError("down"))
        waits.append(f.delay(5.0))
    assert waits == [5.0, 10.0, 20.0, 40.0, MAX_BACKOFF_S, MAX_BACKOFF_S]
    f.ok()
    assert f.delay(5.0) == 5.0


def test_failure_kind_names_the_driver_error_not_the_statement() -> None:
    assert failure_kind(_db_error()) == "OSError: database or disk is full"
