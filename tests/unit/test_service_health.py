"""The verdict behind `status`'s exit code, with a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduler.service.health import DaemonSeen, assess

NOW = datetime(2026, 5, 1, 12, 0)
DAY = 86400.0


def test_healthy() -> None:
    h = assess(NOW, [DaemonSeen("a", NOW - timedelta(seconds=5))], [], {"shop": 40 * DAY,
                                                                     "page": None})
    assert h.healthy and h.exit_code == 0 and h.problems == []


def test_an_account_needing_reauthorisation() -> None:
    h = assess(NOW, [DaemonSeen("a", NOW)], ["shop", "shop"], {})
    assert h.exit_code == 1 and h.problems == [
        "account shop needs re-authorisation: log in again and update its token"
    ]


def test_a_daemon_that_stopped_ticking_and_one_that_stopped_cleanly() -> None:
    daemons = [
        DaemonSeen("b", NOW - timedelta(seconds=61)),
        DaemonSeen("a", NOW - timedelta(seconds=59)),
        DaemonSeen("c", NOW - timedelta(days=3), stopped=True),
    ]
    h = assess(NOW, daemons, [], {})
    assert h.problems == ["daemon b: no tick for 61 s"]


def test_tokens_under_seven_days_or_expired() -> None:
    h = assess(NOW, [], [], {"a": 6.5 * DAY, "b": 7 * DAY, "c": -1.0})
    assert h.problems == [
        "account a: token expires in 6.5 days and has not been refreshed",
        "account c: token expired: log in again",
    ]
