"""The daemon claims ahead of its free workers (a burst never waits for a claim's round trip)
and gives back what it claimed but did not start when it stops, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.store import Store
from tests.daemonrun import run_until
from tests.helpers import image_spec, settings_for


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", "tok-shop-secret")
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", "tok-brand2-secret")


def test_posts_claimed_ahead_are_given_back_at_stop(db_url: str, clock: FakeClock, emulator: Any) -> None:
    emulator.state.configure(latency_s=1.5)  # the first steps stay in flight while we look
    settings = settings_for(db_url, emulator.base_url, daemon={"workers": 2, "lease_s": 60},
                            preflight={"enabled": False})
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    # media check off: enqueue plans staging itself, so every step is a slow container creation
    store.enqueue([image_spec(f"q{i}", in_s=0.5) for i in range(8)], "test", skip_check=settings.staging.lead_s)

    def leased_now() -> int:
        with store.engine.connect() as c:
            return int(c.execute(sa.text("SELECT count(*) FROM posts WHERE lease_owner IS NOT NULL")).scalar_one())

    seen: list[int] = []

    def claimed() -> bool:  # stop right after the first claim: 2 posts started, 2 waiting
        seen.append(leased_now())
        return seen[-1] > 0

    run_until(settings, store, claimed, timeout_s=30, check_every_s=0.02)

    with store.engine.connect() as c:
        leased = c.execute(sa.text("SELECT key, lease_owner FROM posts WHERE lease_owner IS NOT NULL")).all()
        stepped = c.execute(sa.text(
            "SELECT count(DISTINCT post_id) FROM post_events WHERE actor = 'test-daemon'")).scalar_one()
    assert leased == []  # nothing left leased: another daemon could take every post at once
    assert seen[-1] == 4, seen  # claimed for the 2 workers and as many again
    assert stepped == 2  # only the two started posts were worked; the queued two were not
