"""The pure core: lead windows, polling, backoff and headroom, with a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduler.config import LeadSettings, RetrySettings, StagingSettings
from scheduler.headroom import pause_until_from_error, pause_until_from_usage, spacing_factor
from scheduler.lifecycle import backoff_s, first_check_s, poll_delay_s, retries_left, stage_at

T0 = datetime(2026, 12, 1, 9, 0, 0)


def test_stage_at_uses_the_kinds_lead() -> None:
    lead = LeadSettings(image=600, reel=3600)
    assert stage_at(T0, "image", lead) == T0 - timedelta(minutes=10)
    assert stage_at(T0, "reel", lead) == T0 - timedelta(hours=1)


def test_backoff_doubles_and_caps() -> None:
    r = RetrySettings(max_tries=5, base_s=1, cap_s=6)
    assert [backoff_s(a, r) for a in range(1, 6)] == [1, 2, 4, 6, 6]
    assert retries_left(4, r) and not retries_left(5, r)


def test_first_poll_waits_for_the_expected_processing_time() -> None:
    """Due soon: at the expected processing time. With time to spare: when processing is very
    likely over (4 × expected), but never past half the time to the due time."""
    s = StagingSettings(poll_min_s=1, poll_max_s=60)
    soon = T0 + timedelta(seconds=40)
    assert poll_delay_s(T0, soon, T0, 20, s) == 20
    assert poll_delay_s(T0 + timedelta(seconds=5), soon, T0, 20, s) == 15
    due = T0 + timedelta(hours=1)
    assert poll_delay_s(T0, due, T0, 20, s) == 80
    assert poll_delay_s(T0 + timedelta(seconds=5), due, T0, 20, s) == 75
    assert first_check_s(100, 20) == 50 and first_check_s(30, 20) == 20


def test_polling_is_sparse_far_from_due_and_dense_close_to_it() -> None:
    s = StagingSettings(poll_min_s=1, poll_max_s=60)
    created = T0
    far = poll_delay_s(T0 + timedelta(minutes=10), T0 + timedelta(hours=1), created, 20, s)
    assert far == 60  # about once a minute (Meta's guidance)
    near = poll_delay_s(T0 + timedelta(minutes=10), T0 + timedelta(minutes=10, seconds=8), created, 20, s)
    assert near == 4  # half the time left
    overdue = poll_delay_s(T0 + timedelta(minutes=10), T0 + timedelta(minutes=10, seconds=-5), created, 20, s)
    assert overdue == 1


def test_overdue_polling_backs_off_with_the_lateness() -> None:
    """A container still processing at its time: every poll_min_s at first, then an eighth
    of the lateness (so it is published within ~12 % of its lateness after it finished),
    capped at poll_max_s (a stuck container is not asked every second for hours)."""
    s = StagingSettings(poll_min_s=1, poll_max_s=60)
    due = T0

    def late_by(seconds: float, spacing: float = 1.0) -> float:
        return poll_delay_s(due + timedelta(seconds=seconds), due, T0 - timedelta(minutes=30), 20, s, spacing)

    assert late_by(0) == 1 and late_by(4) == 1
    assert late_by(60) == 7.5
    assert late_by(3600) == 60
    assert late_by(60, spacing=4.0) == 7.5  # high usage never makes a late post later


def test_high_usage_spaces_out_polls_but_never_past_the_due_time() -> None:
    s = StagingSettings(poll_min_s=1, poll_max_s=60)
    assert spacing_factor(50, 80) == 1.0
    assert spacing_factor(90, 80) == 2.5
    assert spacing_factor(100, 80) == 4.0
    spaced = poll_delay_s(T0 + timedelta(minutes=10), T0 + timedelta(hours=1), T0, 20, s, spacing=4.0)
    assert spaced == 240
    near = poll_delay_s(T0 + timedelta(minutes=10), T0 + timedelta(minutes=10, seconds=8), T0, 20, s, spacing=4.0)
    assert near == 4


def test_pauses_follow_metas_estimate_or_the_backoff() -> None:
    assert pause_until_from_usage(99, 0, T0, 600) is None
    assert pause_until_from_usage(100, 120, T0, 600) == T0 + timedelta(seconds=120)
    assert pause_until_from_usage(100, 0, T0, 600) == T0 + timedelta(seconds=600)
    assert pause_until_from_error(0, T0, 600) == T0 + timedelta(seconds=600)
