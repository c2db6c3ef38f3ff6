"""A publish whose answer is lost, then 24/2207008 for the same container (issue 12), run by
the daemon over real HTTP on both databases, on a clock that jumps: exactly one post, no new
container, media id recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.clock import FakeClock
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from tests.e2e.test_faults import (
    SHOP,
    add_accounts,
    fast_settings,
    tokens,  # noqa: F401 - the autouse fixture that puts the tokens in the environment
)
from tests.helpers import image_spec
from tests.kinds_support import run_daemon, warped_emulator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # frozen between jumps


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        add_accounts(e)
        yield e


def test_lost_publish_answer_then_2207008_publishes_once(db_url: str, emu: RunningEmulator, clock: FakeClock) -> None:
    emu.state.configure(republish_answer="2207008")
    emu.state.inject_fault("media_publish", "drop_after", account=SHOP)
    settings = fast_settings(db_url, emu.base_url, limits={"publish_settle_margin_s": 0.5})
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    store.enqueue([image_spec("lost", in_s=2.5, caption="answer lost")], "test")
    run_daemon(settings, store, timeout_s=30, warp=clock)
    post = store.get("lost")
    assert post is not None and post.state == "published", (post.state if post else None, post.reason if post else None)
    [media] = emu.state.published_media(SHOP)
    assert post.media_id == media["id"] and media["caption"] == "answer lost"
    endpoints = [r["endpoint"] for r in emu.state.requests if r["account"] == SHOP]
    assert endpoints.count("media") == 1  # no new container
    publishes = [r for r in emu.state.requests if r["endpoint"] == "media_publish"]
    assert [r["outcome"] for r in publishes] in (["dropped"], ["dropped", "error"])
    assert all(r["error_subcode"] in (None, 2207008) for r in publishes)
