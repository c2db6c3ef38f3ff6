"""Messaging windows: 24 h for DMs (7 days with HUMAN_AGENT), 7 days for private replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scheduler.engage.windows import dm_outside_window, parse_graph_time, private_reply_too_late

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_parse_graph_time() -> None:
    assert parse_graph_time("2026-11-30T12:00:00+0000") == NOW
    assert parse_graph_time("2026-11-30T13:00:00+0100") == NOW
    with pytest.raises(ValueError):
        parse_graph_time("yesterday")


def test_private_reply_window() -> None:
    assert private_reply_too_late(NOW - timedelta(days=7), NOW) is None
    reason = private_reply_too_late(NOW - timedelta(days=7, seconds=1), NOW)
    assert reason and "within 7 days" in reason


def test_dm_window() -> None:
    assert dm_outside_window(None, NOW) is None  # unknown: Meta decides
    assert dm_outside_window(NOW - timedelta(hours=24), NOW) is None
    reason = dm_outside_window(NOW - timedelta(hours=25), NOW)
    assert reason and "24 hours" in reason
    assert dm_outside_window(NOW - timedelta(days=6), NOW, human_agent=True) is None
    assert dm_outside_window(NOW - timedelta(days=8), NOW, human_agent=True)
    other_zone = (NOW - timedelta(hours=1)).astimezone(timezone(timedelta(hours=5)))
    assert dm_outside_window(other_zone, NOW) is None
    with pytest.raises(ValueError):
        dm_outside_window(datetime(2026, 11, 30), NOW)
