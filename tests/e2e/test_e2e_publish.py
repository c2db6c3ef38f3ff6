"""End to end over real HTTP: queue → daemon → fake Graph API → published, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.store import Store
from tests.daemonrun import run_until_idle
from tests.helpers import image_spec, settings_for


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", "tok-shop-secret")
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", "tok-brand2-secret")


def _endpoint_count(emu: Any, name: str) -> int:
    return sum(1 for r in emu.state.requests if r["endpoint"] == name)


def test_image_posts_publish_on_time_exactly_once(db_url: str, clock: FakeClock, emulator: Any) -> None:
    settings = settings_for(db_url, emulator.base_url)
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    specs = [image_spec("e1", in_s=3.5), image_spec("e2", in_s=4.5, caption="two", account="brand2")]
    store.enqueue(specs, "test")

    run_until_idle(settings, store, timeout_s=40)

    published = {p.key: p for p in store.list_posts(["published"])}
    assert set(published) == {"e1", "e2"}
    for p in published.values():
        assert p.lateness_s is not None and 0 <= p.lateness_s < 1.0, (p.key, p.lateness_s)
        assert p.media_id and p.permalink
    assert len(emulator.state.published_media()) == 2
    assert _endpoint_count(emulator, "media_publish") == 2
    assert _endpoint_count(emulator, "media") == 2
    # every Graph call is a history row, with the usage figures, and no token anywhere
    with store.engine.connect() as c:
        rows = c.execute(sa.text("SELECT * FROM api_calls")).mappings().all()
        assert len(rows) == len(emulator.state.requests)
        assert all(r["buc_call_count"] is not None for r in rows)
        dump = repr(rows) + repr(c.execute(sa.text("SELECT * FROM post_events")).all())
    assert "tok-shop-secret" not in dump and "tok-brand2-secret" not in dump
    states = [e["to_state"] for e in store.events(published["e1"].id)]
    assert states[0] == "planned" and "staging" in states and "ready" in states and states[-1] == "published"


def test_permanent_error_fails_with_metas_reason(db_url: str, clock: FakeClock, emulator: Any) -> None:
    settings = settings_for(db_url, emulator.base_url)
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    store.enqueue([image_spec("bad", in_s=3, url="https://cdn.example.com/x.jpg?emu_fail=2207052")], "test")
    run_until_idle(settings, store, timeout_s=30)
    rec = store.get("bad")
    assert rec is not None and rec.state == "failed"
    assert "2207052" in (rec.reason or "")
    assert _endpoint_count(emulator, "media_publish") == 0
