"""In a burst of publishes the daemon claims in batches, not a post at a time: with more than
half a worker set of publishes already claimed and waiting, a finished step does not send a
claim (daemon.claim_room; its cases are unit-tested in tests/unit/test_claim_room.py). Over
real HTTP, on both databases. The bound tells only on PostgreSQL: on SQLite a claim joins
the group commit, and the steps that end while it waits are claimed for together anyway
(5–10 claims here without the rule)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.store import Store
from tests.helpers import counted, image_spec, settings_for
from tests.kinds_support import count, run_daemon

WORKERS = 8
POSTS = 48  # 24 an account, under the emulator's quota of 50


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", "tok-shop-secret")
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", "tok-brand2-secret")


def _count(store: Store, where: str) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.text(f"SELECT count(*) FROM posts WHERE {where}")).scalar_one())


def test_a_burst_of_publishes_is_claimed_in_batches(db_url: str, clock: FakeClock, emulator: Any) -> None:
    emulator.state.configure(latency_s=0.05)
    settings = settings_for(db_url, emulator.base_url, daemon={"workers": WORKERS, "lease_s": 60},
                            preflight={"enabled": False})
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    # all due in the same second, a minute ahead: staged first, then published together
    store.enqueue([image_spec(f"b{i:02d}", in_s=60, account=("shop", "brand2")[i % 2]) for i in range(POSTS)],
                  "test", skip_check=settings.staging.lead_s)
    run_daemon(settings, store, until=lambda: _count(store, "state = 'ready'") == POSTS, warp=clock)

    with counted(store.engine) as seen:
        run_daemon(settings, store, until=lambda: _count(store, "state = 'published'") == POSTS, warp=clock)
    # the claim's lease-taking UPDATE (claims.claim_due); a lease given back sets no owner by id list
    claims = [s for s in seen if s.lstrip().upper().startswith("UPDATE POSTS SET LEASE_OWNER")
              and "WHERE POSTS.ID IN" in s.upper()]

    assert _count(store, "state = 'published'") == POSTS
    assert count(emulator, "media_publish") == POSTS  # each once
    # the first claim takes two worker sets (16 posts); then each takes half a worker set at
    # least, so 1 + 32 / 4 = 9, and 2 to spare for a post retried (without the rule: 15–25)
    assert len(claims) >= POSTS // (2 * WORKERS)  # the filter sees the claims (none claims more)
    assert len(claims) <= 1 + (POSTS - 2 * WORKERS) // (WORKERS // 2) + 2, len(claims)
