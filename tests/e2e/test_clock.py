"""Days of waiting, tested end to end in seconds: the store, the daemon and the fake Graph API
read one FakeClock, which jumps to the next moment a post needs attention (run_daemon's
`warp`). Over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.clock import FakeClock, to_aware
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from tests.helpers import settings_for
from tests.kinds_support import (
    SHOP_ID,
    TOKENS,
    add_accounts,
    at_in,
    by_key,
    count,
    created,
    enqueue_yaml,
    events_text,
    media_url,
    run_daemon,
    warped_emulator,
)

DAY = 86400.0


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # frozen between jumps: a loaded machine does not make a step late


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        add_accounts(e)
        yield e


def test_a_post_planned_a_week_ahead_is_staged_at_its_lead_and_published_on_time(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    text = f"""
account: shop
posts:
  - {{key: next-week, at: {at_in(7 * DAY)}, image: {media_url(emu, "a.jpg")}, caption: a week ahead}}
"""
    settings = settings_for(db_url, emu.base_url, staging={"lead_s": {"image": 600}})
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)
    start = clock.now()

    run_daemon(settings, store, timeout_s=20, warp=clock)

    post = by_key(store)["next-week"]
    assert post.state == "published", events_text(store, post)
    assert (post.due_at - start).total_seconds() == pytest.approx(7 * DAY, abs=1)
    assert post.lateness_s is not None and 0 <= post.lateness_s < 1.0
    [container] = emu.state.containers.values()
    lead = post.due_at - clock_time(container["created_at"])
    assert timedelta(seconds=590) <= lead <= timedelta(seconds=601)  # staged at its lead, not at once
    assert count(emu, "media_publish") == 1 and len(created(emu)) == 1


def _quota_of_two(emu: RunningEmulator, db_url: str, clock: FakeClock, **staging: object) -> tuple[Store, list[str]]:
    """Three image posts due a second apart on an account that may publish two a day."""
    emu.state.add_account(SHOP_ID, quota_total=2)
    text = "account: shop\nposts:\n" + "".join(
        f"  - {{key: q{i}, at: {at_in(5 + i)}, image: {media_url(emu, f'{i}.jpg')}}}\n" for i in range(3)
    )
    settings = settings_for(db_url, emu.base_url, staging=staging)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)
    run_daemon(settings, store, timeout_s=30, warp=clock)
    return store, [f"q{i}" for i in range(3)]


def test_a_full_rolling_quota_window_defers_to_the_exact_slot(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """The third post waits a day for the first publish to leave Meta's rolling window; its
    container, older than staging.container_max_age_s by then, is made again first."""
    store, keys = _quota_of_two(emu, db_url, clock)
    posts = by_key(store)
    first, second, third = (posts[k] for k in keys)
    assert {p.state for p in posts.values()} == {"published"}, events_text(store, third)
    assert first.lateness_s is not None and first.lateness_s < 1.0
    assert second.lateness_s is not None and second.lateness_s < 1.0
    assert first.published_at is not None and third.published_at is not None
    slot = first.published_at + timedelta(seconds=DAY)
    [restaged] = [e for e in store.events(third.id) if "container too old" in (e["reason"] or "")]
    assert timedelta(0) <= restaged["at"] - slot < timedelta(seconds=1)  # looked again at the slot
    # the new container is first polled as for any overdue post (1/8 of its lateness, at most
    # staging.poll_max_s): published within that of the slot
    assert timedelta(0) <= third.published_at - slot <= timedelta(seconds=62)
    history = events_text(store, third)
    assert "ready → deferred" in history
    assert "container too old to publish safely" in history
    # Meta never refused a publish: the gate held, and no expired container was sent
    assert count(emu, "media_publish") == 3 and len(emu.state.published_media()) == 3
    assert len(created(emu)) == 4


def test_a_container_meta_expired_after_24_hours_is_made_again(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """With igsched trusting containers for two days, Meta's own 24-hour expiry is what the
    deferred post meets at publish: the refused container is replaced and the post is
    published exactly once."""
    store, keys = _quota_of_two(emu, db_url, clock, container_max_age_s=2 * DAY)
    third = by_key(store)[keys[2]]
    assert third.state == "published", events_text(store, third)
    [expired] = [c for c in emu.state.containers.values() if c["status_code"] == "EXPIRED"]
    assert to_aware(third.published_at).timestamp() - expired["created_at"] > DAY  # type: ignore[arg-type]
    assert count(emu, "media_publish") == 4  # the refused one, then three that went live
    assert len(emu.state.published_media()) == 3 and len(created(emu)) == 4


def clock_time(emulator_t: float) -> datetime:
    return datetime.fromtimestamp(emulator_t, UTC).replace(tzinfo=None)
